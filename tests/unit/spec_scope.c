/*
 * spec_scope.c - task scopes (issue 14), tested from their specification
 * only (the Semantics section and include/futures.h): scope_create,
 * scope_submit, scope_submit_blocking, scope_set_limit, scope_join,
 * scope_future, scope_cancel, scope_cancelled and scope_release.
 *
 * Interleavings are forced with gates and semaphores, never slept into.
 * Where a test must see something happen that the library does on another
 * thread (a cancellation reaching a running task), it waits for it with a
 * bounded wait and fails if it does not come.
 */
#include "spec_helpers.h"

#include <stdio.h>
#include <string.h>

#define SEC ((uint64_t)1000000000u)
/* A bounded wait for something that must happen: failing it fails the
 * test instead of hanging it. */
#define MUST_NS (20 * SEC)

#define EARG(e) ((void *)(intptr_t)(e))

/* ------------------------------------------------------- shared bits -- */

static scope_t *spec_scope(pool_t *p)
{
    scope_t *s = scope_create(p);
    cr_assert_not_null(s, "scope_create failed: errno %d", errno);
    return s;
}

static future_t *must_submit(scope_t *s, task_fn fn, void *arg)
{
    future_t *f = scope_submit(s, fn, arg);
    cr_assert_not_null(f, "scope_submit failed: errno %d", errno);
    return f;
}

static future_t *must_submit_blocking(scope_t *s, task_fn fn, void *arg)
{
    future_t *f = scope_submit_blocking(s, fn, arg);
    cr_assert_not_null(f, "scope_submit_blocking failed: errno %d", errno);
    return f;
}

/* Waits at most MUST_NS for @f; fails the test if it does not settle. */
static int must_settle(future_t *f)
{
    cr_assert(future_wait_for(f, MUST_NS), "future did not settle");
    return future_wait(f, NULL);
}

/* Waits on @s at most MUST_NS; false on timeout. */
static bool sem_wait_bounded(sem_t *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(MUST_NS / SEC);
    for (;;) {
        if (sem_timedwait(s, &ts) == 0)
            return true;
        if (errno != EINTR)
            return false;
    }
}

static void must_sem_wait_n(sem_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(sem_wait_bounded(s), "only %zu of %zu tasks started", i, n);
}

/* Inside a task: waits (bounded) for task_cancelled() to turn true. The
 * cancellation comes from another thread; the spin yields the CPU. */
static bool await_task_cancelled(void)
{
    uint64_t deadline = monotonic_ns() + MUST_NS;
    while (!task_cancelled()) {
        if (monotonic_ns() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

/* On the test thread: waits (bounded) for scope_cancelled(@s). */
static bool await_scope_cancelled(const scope_t *s)
{
    uint64_t deadline = monotonic_ns() + MUST_NS;
    while (!scope_cancelled(s)) {
        if (monotonic_ns() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

/* Threads of this process, from /proc/self/status. */
static long proc_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0) {
            n = strtol(line + 8, NULL, 10);
            break;
        }
    fclose(f);
    cr_assert_gt(n, 0);
    return n;
}

/* The pool's count of tasks run, once it reaches @target (bounded: the
 * count may lag a moment behind the futures settling). */
static uint64_t await_completed(pool_t *p, uint64_t target)
{
    uint64_t deadline = monotonic_ns() + MUST_NS;
    struct pool_stats st;
    for (;;) {
        cr_assert_eq(pool_stats(p, &st), 0);
        if (st.completed >= target || monotonic_ns() > deadline)
            return st.completed;
        sched_yield();
    }
}

static void quiet_unobserved(void)
{
    futures_set_unobserved_handler(NULL, NULL);
}

/*
 * A watched task: counts how many run at once (peak measured inside the
 * tasks), holds the first `hold` that start at a gate, records the order
 * tasks start in, and whether task_cancelled() was true before / after the
 * gate.
 */
struct watch {
    atomic_int running;
    atomic_int peak;
    atomic_int started;
    atomic_int finished;
    atomic_int saw_cancel_before;
    atomic_int saw_cancel_after;
    int hold;
    bool await_cancel; /* held tasks wait for task_cancelled() after gate */
    spec_gate_t gate;
    sem_t first; /* posted by each held task */
    int *order;  /* start order, when not NULL */
    atomic_int order_pos;
};

struct wtask {
    struct watch *w;
    int index;
};

static void watch_init(struct watch *w, int hold)
{
    memset(w, 0, sizeof *w);
    atomic_init(&w->running, 0);
    atomic_init(&w->peak, 0);
    atomic_init(&w->started, 0);
    atomic_init(&w->finished, 0);
    atomic_init(&w->saw_cancel_before, 0);
    atomic_init(&w->saw_cancel_after, 0);
    atomic_init(&w->order_pos, 0);
    w->hold = hold;
    spec_gate_init(&w->gate);
    sem_init(&w->first, 0, 0);
}

static void watch_destroy(struct watch *w)
{
    sem_destroy(&w->first);
    spec_gate_destroy(&w->gate);
}

static int watch_task(void *arg, void **result)
{
    struct wtask *t = arg;
    struct watch *w = t->w;
    int r = atomic_fetch_add(&w->running, 1) + 1;
    int p = atomic_load(&w->peak);
    while (r > p && !atomic_compare_exchange_weak(&w->peak, &p, r)) {
    }
    if (task_cancelled())
        atomic_fetch_add(&w->saw_cancel_before, 1);
    if (w->order)
        w->order[atomic_fetch_add(&w->order_pos, 1)] = t->index;
    int n = atomic_fetch_add(&w->started, 1) + 1;
    if (n <= w->hold) {
        sem_post(&w->first);
        spec_gate_wait(&w->gate);
        if (w->await_cancel ? await_task_cancelled() : task_cancelled())
            atomic_fetch_add(&w->saw_cancel_after, 1);
    } else {
        for (int i = 0; i < 4; i++) /* a little work, so that tasks overlap */
            sched_yield();
    }
    atomic_fetch_add(&w->running, -1);
    atomic_fetch_add(&w->finished, 1);
    *result = t;
    return 0;
}

/* A task that fails with an error and a message once its gate opens. */
struct failer {
    spec_gate_t gate;
    sem_t started;
    int error;
    const char *msg;
};

static void failer_init(struct failer *f, int error, const char *msg)
{
    spec_gate_init(&f->gate);
    sem_init(&f->started, 0, 0);
    f->error = error;
    f->msg = msg;
}

static void failer_destroy(struct failer *f)
{
    sem_destroy(&f->started);
    spec_gate_destroy(&f->gate);
}

static int failer_task(void *arg, void **result)
{
    (void)result;
    struct failer *f = arg;
    sem_post(&f->started);
    spec_gate_wait(&f->gate);
    if (f->msg)
        return task_fail(f->error, "%s", f->msg);
    return f->error;
}

/* ========================================================= basics -- */

CheckedTest(spec_scope, create_with_null_pool_runs_on_default, .timeout = 30)
{
    pool_t *def = pool_default();
    cr_assert_not_null(def);
    struct pool_stats before;
    cr_assert_eq(pool_stats(def, &before), 0);
    scope_t *s = spec_scope(NULL);
    future_t *f = must_submit(s, spec_value_task, U2P(42));
    spec_expect_value(f, U2P(42));
    cr_assert_eq(scope_join(s), 0);
    cr_assert_gt(await_completed(def, before.completed + 1),
                 before.completed, "the default pool ran nothing");
    future_release(f);
    scope_release(s);
}

CheckedTest(spec_scope, tasks_run_on_the_scope_pool, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    struct pool_stats before;
    cr_assert_eq(pool_stats(p, &before), 0);
    scope_t *s = spec_scope(p);
    atomic_int count = 0;
    enum { N = 50 };
    for (int i = 0; i < N; i++)
        future_release(must_submit(s, spec_count_task, &count));
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&count), N);
    uint64_t done = await_completed(p, before.completed + N);
    cr_assert_geq(done - before.completed, (uint64_t)N,
                  "the pool ran %llu tasks, expected at least %d",
                  (unsigned long long)(done - before.completed), N);
    scope_release(s);
    pool_destroy(p);
}

CheckedTest(spec_scope, future_is_the_task_outcome, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    future_t *fs[16];
    for (int i = 0; i < 16; i++)
        fs[i] = must_submit(s, spec_value_task, U2P(1000 + i));
    for (int i = 0; i < 16; i++)
        spec_expect_value(fs[i], U2P(1000 + i));
    cr_assert_eq(scope_join(s), 0);
    spec_release_all(fs, 16);
    scope_release(s);
    pool_destroy(p);
}

CheckedTest(spec_scope, join_of_empty_scope_returns_0, .timeout = 30)
{
    scope_t *s = spec_scope(NULL);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_not(scope_cancelled(s));
    scope_release(s);
}

/* The scope keeps its own hold: a task whose future the caller dropped at
 * once still runs, and join waits for it. */
CheckedTest(spec_scope, join_waits_for_tasks_whose_future_was_released,
            .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    struct watch w;
    watch_init(&w, 2);
    struct wtask t[40];
    for (int i = 0; i < 40; i++) {
        t[i] = (struct wtask){&w, i};
        future_release(must_submit(s, watch_task, &t[i]));
    }
    must_sem_wait_n(&w.first, 2);
    cr_assert_eq(atomic_load(&w.finished), 0);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.finished), 40, "join returned before all ran");
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* ================================================== bad arguments -- */

CheckedTest(spec_scope, null_arguments, .timeout = 30)
{
    errno = 0;
    cr_assert_null(scope_submit(NULL, spec_value_task, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(scope_submit_blocking(NULL, spec_value_task, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(scope_set_limit(NULL, 3), EINVAL);
    cr_assert_eq(scope_join(NULL), EINVAL);
    errno = 0;
    cr_assert_null(scope_future(NULL));
    cr_assert_eq(errno, EINVAL);
    scope_cancel(NULL);  /* no-op */
    scope_release(NULL); /* no-op */
    cr_assert_not(scope_cancelled(NULL));

    scope_t *s = spec_scope(NULL);
    errno = 0;
    cr_assert_null(scope_submit(s, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(scope_submit_blocking(s, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    scope_release(s);
}

/* A failed call consumes nothing: the scope is neither cancelled nor
 * closed, and takes tasks as before. */
CheckedTest(spec_scope, failed_submit_consumes_nothing, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    cr_assert_null(scope_submit(s, NULL, U2P(1)));
    cr_assert_null(scope_submit_blocking(s, NULL, U2P(1)));
    cr_assert_not(scope_cancelled(s));
    future_t *f = must_submit(s, spec_value_task, U2P(5));
    spec_expect_value(f, U2P(5));
    cr_assert_eq(scope_join(s), 0);
    future_release(f);
    scope_release(s);
    pool_destroy(p);
}

CheckedTest(spec_scope, submit_to_shut_down_pool_fails_eshutdown,
            .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    pool_shutdown(p, POOL_DRAIN);
    atomic_int count = 0;
    errno = 0;
    cr_assert_null(scope_submit(s, spec_count_task, &count));
    cr_assert_eq(errno, ESHUTDOWN);
    errno = 0;
    cr_assert_null(scope_submit_blocking(s, spec_count_task, &count));
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(scope_join(s), 0, "a refused submission counted");
    cr_assert_eq(atomic_load(&count), 0);
    scope_release(s);
    pool_destroy(p);
}

/* ========================================================== limit -- */

/* @n tasks through a scope with @limit on a pool with more threads than
 * the limit; the first @limit hold at a gate while the rest are
 * submitted, so a scope that let more run would show it in the peak. */
static void run_limit(size_t limit, int n, bool blocking)
{
    pool_t *p = spec_pool(blocking ? 1 : limit + 4);
    if (blocking)
        cr_assert_eq(pool_set_blocking_limit(p, (size_t)limit + 8), 0);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, limit), 0);
    struct watch w;
    watch_init(&w, (int)limit);
    struct wtask *t = calloc((size_t)n, sizeof *t);
    future_t **fs = calloc((size_t)n, sizeof *fs);
    cr_assert(t && fs);
    for (int i = 0; i < n; i++) {
        t[i] = (struct wtask){&w, i};
        fs[i] = blocking ? must_submit_blocking(s, watch_task, &t[i])
                         : must_submit(s, watch_task, &t[i]);
    }
    must_sem_wait_n(&w.first, limit);
    cr_assert_leq(atomic_load(&w.peak), (int)limit,
                  "%d ran at once with the limit %zu",
                  atomic_load(&w.peak), limit);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.finished), n);
    cr_assert_eq(atomic_load(&w.peak), (int)limit,
                 "peak %d running with the limit %zu", atomic_load(&w.peak),
                 limit);
    for (int i = 0; i < n; i++) {
        cr_assert(future_is_ready(fs[i]));
        spec_expect_value(fs[i], &t[i]);
    }
    spec_release_all(fs, (size_t)n);
    free(fs);
    free(t);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

CheckedTest(spec_scope, limit_1_never_exceeded_10000_tasks, .timeout = 120)
{
    run_limit(1, 10000, false);
}

CheckedTest(spec_scope, limit_7_never_exceeded_10000_tasks, .timeout = 120)
{
    run_limit(7, 10000, false);
}

CheckedTest(spec_scope, limit_64_never_exceeded_10000_tasks, .timeout = 120)
{
    run_limit(64, 10000, false);
}

CheckedTest(spec_scope, limit_7_holds_for_blocking_jobs, .timeout = 120)
{
    run_limit(7, 2000, true);
}

/* No limit by default: as many run at once as the pool has threads. */
CheckedTest(spec_scope, no_limit_by_default, .timeout = 30)
{
    pool_t *p = spec_pool(6);
    scope_t *s = spec_scope(p);
    struct watch w;
    watch_init(&w, 6);
    struct wtask t[6];
    future_t *fs[6];
    for (int i = 0; i < 6; i++) {
        t[i] = (struct wtask){&w, i};
        fs[i] = must_submit(s, watch_task, &t[i]);
    }
    must_sem_wait_n(&w.first, 6);
    cr_assert_eq(atomic_load(&w.peak), 6);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    spec_release_all(fs, 6);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* scope_set_limit(s, 0) lifts a limit: the waiting tasks start. */
CheckedTest(spec_scope, limit_0_lifts_the_limit, .timeout = 30)
{
    pool_t *p = spec_pool(5);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 5);
    struct wtask t[5];
    future_t *fs[5];
    for (int i = 0; i < 5; i++) {
        t[i] = (struct wtask){&w, i};
        fs[i] = must_submit(s, watch_task, &t[i]);
    }
    must_sem_wait_n(&w.first, 1);
    cr_assert_eq(scope_set_limit(s, 0), 0);
    must_sem_wait_n(&w.first, 4); /* all five run at once now */
    cr_assert_eq(atomic_load(&w.peak), 5);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    spec_release_all(fs, 5);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* Under the limit, tasks start in the order they were submitted. */
CheckedTest(spec_scope, fifo_start_order_under_the_limit, .timeout = 60)
{
    enum { N = 500 };
    pool_t *p = spec_pool(4);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 1);
    int *order = calloc(N, sizeof *order);
    w.order = order;
    struct wtask t[N];
    for (int i = 0; i < N; i++) {
        t[i] = (struct wtask){&w, i};
        future_release(must_submit(s, watch_task, &t[i]));
    }
    must_sem_wait_n(&w.first, 1);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.order_pos), N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(order[i], i, "start #%d was task %d", i, order[i]);
    free(order);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* Blocking jobs and plain tasks wait in one line: submission order. */
CheckedTest(spec_scope, fifo_start_order_mixing_blocking_and_plain,
            .timeout = 60)
{
    enum { N = 200 };
    pool_t *p = spec_pool(3);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 1);
    int *order = calloc(N, sizeof *order);
    w.order = order;
    struct wtask t[N];
    for (int i = 0; i < N; i++) {
        t[i] = (struct wtask){&w, i};
        future_release((i % 3 == 1) ? must_submit_blocking(s, watch_task, &t[i])
                                    : must_submit(s, watch_task, &t[i]));
    }
    must_sem_wait_n(&w.first, 1);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.order_pos), N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(order[i], i, "start #%d was task %d", i, order[i]);
    free(order);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* Lowering the limit never stops a running task; no new task starts until
 * fewer than the new limit run. */
struct lower {
    spec_gate_t gate;
    sem_t started;
    atomic_int running;
    atomic_int over;     /* later tasks that started with too many running */
    atomic_int cancelled;
    atomic_int early_done;
    atomic_int late_done;
};

static int lower_early(void *arg, void **result)
{
    struct lower *l = arg;
    atomic_fetch_add(&l->running, 1);
    sem_post(&l->started);
    spec_gate_wait(&l->gate);
    if (task_cancelled())
        atomic_fetch_add(&l->cancelled, 1);
    atomic_fetch_add(&l->early_done, 1);
    atomic_fetch_add(&l->running, -1);
    *result = l;
    return 0;
}

static int lower_late(void *arg, void **result)
{
    struct lower *l = arg;
    int r = atomic_fetch_add(&l->running, 1) + 1;
    if (r > 1)
        atomic_fetch_add(&l->over, 1);
    for (int i = 0; i < 4; i++)
        sched_yield();
    atomic_fetch_add(&l->late_done, 1);
    atomic_fetch_add(&l->running, -1);
    *result = l;
    return 0;
}

CheckedTest(spec_scope, lowering_the_limit_never_stops_a_running_task,
            .timeout = 60)
{
    pool_t *p = spec_pool(8);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 4), 0);
    struct lower l;
    memset(&l, 0, sizeof l);
    spec_gate_init(&l.gate);
    sem_init(&l.started, 0, 0);
    future_t *early[4];
    for (int i = 0; i < 4; i++)
        early[i] = must_submit(s, lower_early, &l);
    must_sem_wait_n(&l.started, 4);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    enum { LATE = 300 };
    future_t *late[LATE];
    for (int i = 0; i < LATE; i++)
        late[i] = must_submit(s, lower_late, &l);
    /* the four run on, untouched */
    for (int i = 0; i < 4; i++)
        cr_assert_not(future_is_ready(early[i]));
    cr_assert_eq(atomic_load(&l.late_done), 0,
                 "a task started with 4 running and the limit 1");
    spec_gate_open(&l.gate);
    for (int i = 0; i < 4; i++)
        spec_expect_value(early[i], &l);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&l.cancelled), 0, "lowering cancelled a task");
    cr_assert_eq(atomic_load(&l.early_done), 4);
    cr_assert_eq(atomic_load(&l.late_done), LATE);
    cr_assert_eq(atomic_load(&l.over), 0,
                 "%d tasks started above the lowered limit",
                 atomic_load(&l.over));
    spec_release_all(early, 4);
    spec_release_all(late, LATE);
    scope_release(s);
    pool_destroy(p);
    spec_gate_destroy(&l.gate);
    sem_destroy(&l.started);
}

/* Raising the limit starts waiting tasks at once. */
CheckedTest(spec_scope, raising_the_limit_starts_waiting_tasks, .timeout = 30)
{
    pool_t *p = spec_pool(6);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 6);
    struct wtask t[6];
    future_t *fs[6];
    for (int i = 0; i < 6; i++) {
        t[i] = (struct wtask){&w, i};
        fs[i] = must_submit(s, watch_task, &t[i]);
    }
    must_sem_wait_n(&w.first, 1);
    cr_assert_eq(scope_set_limit(s, 4), 0);
    must_sem_wait_n(&w.first, 3); /* three more start while one runs */
    cr_assert_eq(atomic_load(&w.peak), 4);
    cr_assert_eq(scope_set_limit(s, 6), 0);
    must_sem_wait_n(&w.first, 2);
    cr_assert_eq(atomic_load(&w.peak), 6);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.finished), 6);
    spec_release_all(fs, 6);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* A task waiting for the limit holds no thread: other work on the pool
 * runs beside it. */
CheckedTest(spec_scope, limit_held_tasks_hold_no_thread, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 1);
    struct wtask t[20];
    future_t *fs[20];
    for (int i = 0; i < 20; i++) {
        t[i] = (struct wtask){&w, i};
        fs[i] = must_submit(s, watch_task, &t[i]);
    }
    must_sem_wait_n(&w.first, 1);
    /* one thread is busy with the scope's running task; the other is free */
    future_t *other = pool_submit(p, spec_value_task, U2P(9));
    cr_assert_not_null(other);
    cr_assert(future_wait_for(other, MUST_NS),
              "limit-held tasks occupy the pool's free thread");
    spec_expect_value(other, U2P(9));
    struct pool_stats st;
    cr_assert_eq(pool_stats(p, &st), 0);
    cr_assert_eq(st.threads, 2, "%zu threads", st.threads);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.peak), 1);
    future_release(other);
    spec_release_all(fs, 20);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* 100,000 tasks held by a limit of 50 use no more threads than the pool
 * has. */
CheckedTest(spec_scope, threads_do_not_grow_with_100000_limit_held_tasks,
            .timeout = 300)
{
    enum { N = 100000, LIMIT = 50, THREADS = 4 };
    pool_t *p = spec_pool(THREADS);
    /* every pool thread started and idle again */
    struct watch warm;
    watch_init(&warm, THREADS);
    struct wtask wt[THREADS];
    future_t *wf[THREADS];
    for (int i = 0; i < THREADS; i++) {
        wt[i] = (struct wtask){&warm, i};
        wf[i] = pool_submit(p, watch_task, &wt[i]);
        cr_assert_not_null(wf[i]);
    }
    must_sem_wait_n(&warm.first, THREADS);
    spec_gate_open(&warm.gate);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(future_wait(wf[i], NULL), 0);
    spec_release_all(wf, THREADS);
    long base = proc_threads();

    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, LIMIT), 0);
    struct watch w;
    watch_init(&w, THREADS);
    struct wtask t = {&w, 0};
    for (int i = 0; i < N; i++)
        future_release(must_submit(s, watch_task, &t));
    must_sem_wait_n(&w.first, THREADS); /* every pool thread holds one */
    long now = proc_threads();
    struct pool_stats st;
    cr_assert_eq(pool_stats(p, &st), 0);
    cr_assert_eq(now, base, "%ld threads with %d tasks held, %ld before",
                 now, N, base);
    cr_assert_eq(st.threads, THREADS, "the pool has %zu threads",
                 st.threads);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.finished), N);
    cr_assert_leq(atomic_load(&w.peak), THREADS);
    cr_assert_leq(proc_threads(), base);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
    watch_destroy(&warm);
}

/* The blocking variant: 20,000 blocking jobs with the limit 50 start no
 * more than 50 blocking threads. */
CheckedTest(spec_scope, blocking_jobs_held_by_limit_start_no_threads,
            .timeout = 300)
{
    enum { N = 20000, LIMIT = 50 };
    pool_t *p = spec_pool(1);
    future_t *warm = pool_submit(p, spec_value_task, NULL);
    cr_assert_not_null(warm);
    cr_assert_eq(future_wait(warm, NULL), 0);
    future_release(warm);
    long base = proc_threads();
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, LIMIT), 0);
    struct watch w;
    watch_init(&w, LIMIT);
    struct wtask t = {&w, 0};
    for (int i = 0; i < N; i++)
        future_release(must_submit_blocking(s, watch_task, &t));
    must_sem_wait_n(&w.first, LIMIT); /* fifty blocking jobs at once */
    long now = proc_threads();
    cr_assert_leq(now - base, LIMIT,
                  "%ld more threads for %d jobs with the limit %d",
                  now - base, N, LIMIT);
    cr_assert_eq(atomic_load(&w.peak), LIMIT);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.finished), N);
    cr_assert_eq(atomic_load(&w.peak), LIMIT);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* Blocking jobs start beyond the core threads, and blocking and ordinary
 * tasks share one limit. */
CheckedTest(spec_scope, blocking_and_plain_tasks_share_the_limit,
            .timeout = 60)
{
    pool_t *p = spec_pool(1);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 3), 0);
    struct watch w;
    watch_init(&w, 3);
    enum { N = 400 };
    struct wtask t[N];
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        t[i] = (struct wtask){&w, i};
        fs[i] = (i % 2) ? must_submit(s, watch_task, &t[i])
                        : must_submit_blocking(s, watch_task, &t[i]);
    }
    /* on a one-thread pool three run at once: the blocking ones have
     * threads of their own */
    must_sem_wait_n(&w.first, 3);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.finished), N);
    cr_assert_eq(atomic_load(&w.peak), 3, "peak %d", atomic_load(&w.peak));
    for (int i = 0; i < N; i++)
        spec_expect_value(fs[i], &t[i]);
    spec_release_all(fs, N);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* ============================================= failure cancels all -- */

/* A failure cancels the tasks queued on the pool: they never run and fail
 * with ECANCELED; the running one sees task_cancelled(). */
CheckedTest(spec_scope, first_failure_cancels_queued_tasks, .timeout = 60)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    struct watch w; /* the running one */
    watch_init(&w, 1);
    w.await_cancel = true;
    struct wtask wt = {&w, 0};
    future_t *run = must_submit(s, watch_task, &wt);
    must_sem_wait_n(&w.first, 1);
    struct failer fl;
    failer_init(&fl, EIO, NULL);
    future_t *ff = must_submit(s, failer_task, &fl);
    must_sem_wait_n(&fl.started, 1);
    /* both threads busy: these are queued on the pool */
    atomic_int count = 0;
    future_t *q[10];
    for (int i = 0; i < 10; i++)
        q[i] = must_submit(s, spec_count_task, &count);
    cr_assert_not(scope_cancelled(s));
    spec_gate_open(&fl.gate);
    spec_expect_error(ff, EIO);
    cr_assert(await_scope_cancelled(s), "a failure did not cancel the scope");
    for (int i = 0; i < 10; i++)
        cr_assert_eq(must_settle(q[i]), ECANCELED, "queued task %d", i);
    cr_assert_eq(atomic_load(&count), 0, "%d queued tasks ran",
                 atomic_load(&count));
    spec_gate_open(&w.gate);
    spec_expect_value(run, &wt); /* its own return decides */
    cr_assert_eq(atomic_load(&w.saw_cancel_before), 0);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 1,
                 "the running task never saw task_cancelled()");
    cr_assert_eq(scope_join(s), EIO);
    cr_assert_eq(atomic_load(&count), 0);
    future_release(run);
    future_release(ff);
    spec_release_all(q, 10);
    scope_release(s);
    pool_destroy(p);
    failer_destroy(&fl);
    watch_destroy(&w);
}

/* A failure cancels the tasks waiting for the limit: they settle with
 * ECANCELED without waiting for the running ones, and never run. */
CheckedTest(spec_scope, first_failure_cancels_limit_held_tasks, .timeout = 60)
{
    quiet_unobserved();
    pool_t *p = spec_pool(6);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 2), 0);
    struct watch w;
    watch_init(&w, 1);
    w.await_cancel = true;
    struct wtask wt = {&w, 0};
    future_t *run = must_submit(s, watch_task, &wt);
    must_sem_wait_n(&w.first, 1);
    struct failer fl;
    failer_init(&fl, EPROTO, NULL);
    future_t *ff = must_submit(s, failer_task, &fl);
    must_sem_wait_n(&fl.started, 1);
    atomic_int count = 0;
    enum { H = 50 };
    future_t *h[H];
    for (int i = 0; i < H; i++)
        h[i] = must_submit(s, spec_count_task, &count);
    spec_gate_open(&fl.gate);
    spec_expect_error(ff, EPROTO);
    /* the running task is still at its gate: the held ones settle now */
    for (int i = 0; i < H; i++)
        cr_assert_eq(must_settle(h[i]), ECANCELED, "held task %d", i);
    cr_assert_eq(atomic_load(&count), 0, "%d held tasks ran",
                 atomic_load(&count));
    cr_assert(scope_cancelled(s));
    cr_assert_not(future_is_ready(run));
    spec_gate_open(&w.gate);
    spec_expect_value(run, &wt);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 1);
    cr_assert_eq(scope_join(s), EPROTO);
    cr_assert_eq(atomic_load(&count), 0);
    future_release(run);
    future_release(ff);
    spec_release_all(h, H);
    scope_release(s);
    pool_destroy(p);
    failer_destroy(&fl);
    watch_destroy(&w);
}

/* Every running task sees task_cancelled() turn true after a failure, and
 * none saw it before. */
CheckedTest(spec_scope, failure_makes_every_running_task_see_cancelled,
            .timeout = 60)
{
    quiet_unobserved();
    pool_t *p = spec_pool(6);
    scope_t *s = spec_scope(p);
    struct watch w;
    watch_init(&w, 4);
    w.await_cancel = true;
    struct wtask t[4];
    future_t *fs[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct wtask){&w, i};
        fs[i] = must_submit(s, watch_task, &t[i]);
    }
    must_sem_wait_n(&w.first, 4);
    future_t *ff = must_submit(s, spec_error_task, EARG(ENOENT));
    spec_expect_error(ff, ENOENT);
    spec_gate_open(&w.gate);
    for (int i = 0; i < 4; i++)
        spec_expect_value(fs[i], &t[i]);
    cr_assert_eq(atomic_load(&w.saw_cancel_before), 0);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 4,
                 "%d of 4 running tasks saw task_cancelled()",
                 atomic_load(&w.saw_cancel_after));
    cr_assert_eq(scope_join(s), ENOENT);
    future_release(ff);
    spec_release_all(fs, 4);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* Without a failure nobody sees task_cancelled(). */
CheckedTest(spec_scope, no_failure_no_cancellation, .timeout = 30)
{
    pool_t *p = spec_pool(3);
    scope_t *s = spec_scope(p);
    struct watch w;
    watch_init(&w, 3);
    struct wtask t[30];
    for (int i = 0; i < 30; i++) {
        t[i] = (struct wtask){&w, i};
        future_release(must_submit(s, watch_task, &t[i]));
    }
    must_sem_wait_n(&w.first, 3);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&w.saw_cancel_before), 0);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 0);
    cr_assert_not(scope_cancelled(s));
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* A task that fails with ECANCELED does not cancel the scope. */
CheckedTest(spec_scope, ecanceled_failure_does_not_cancel_the_scope,
            .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    future_t *c = must_submit(s, spec_error_task, EARG(ECANCELED));
    atomic_int count = 0;
    future_t *after[10];
    for (int i = 0; i < 10; i++)
        after[i] = must_submit(s, spec_count_task, &count);
    spec_expect_error(c, ECANCELED);
    for (int i = 0; i < 10; i++)
        spec_expect_value(after[i], &count);
    cr_assert_eq(atomic_load(&count), 10);
    cr_assert_not(scope_cancelled(s));
    future_t *late = must_submit(s, spec_value_task, U2P(3));
    spec_expect_value(late, U2P(3));
    cr_assert_eq(scope_join(s), 0,
                 "ECANCELED from a task counted as the scope's failure");
    future_release(c);
    future_release(late);
    spec_release_all(after, 10);
    scope_release(s);
    pool_destroy(p);
}

/* A task's ECANCELED is not "the first failure": the real one after it is
 * what join returns. */
CheckedTest(spec_scope, join_skips_ecanceled_for_the_first_real_failure,
            .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    future_t *c = must_submit(s, spec_error_task, EARG(ECANCELED));
    spec_expect_error(c, ECANCELED);
    future_t *f = must_submit(s, spec_error_task, EARG(EMLINK));
    spec_expect_error(f, EMLINK);
    cr_assert_eq(scope_join(s), EMLINK);
    future_release(c);
    future_release(f);
    scope_release(s);
    pool_destroy(p);
}

/* future_cancel() on one limit-held task: it never runs and fails with
 * ECANCELED; the scope is not cancelled and the rest run. */
CheckedTest(spec_scope, cancelling_one_held_task_leaves_the_scope_alone,
            .timeout = 30)
{
    pool_t *p = spec_pool(3);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 1);
    struct wtask t0 = {&w, 0};
    future_t *f0 = must_submit(s, watch_task, &t0);
    must_sem_wait_n(&w.first, 1);
    atomic_int a = 0, b = 0, c = 0;
    future_t *fa = must_submit(s, spec_count_task, &a);
    future_t *fb = must_submit(s, spec_count_task, &b);
    future_t *fc = must_submit(s, spec_count_task, &c);
    cr_assert(future_cancel(fb), "a held task counts as not started");
    spec_expect_error(fb, ECANCELED);
    cr_assert_not(scope_cancelled(s));
    spec_gate_open(&w.gate);
    spec_expect_value(fa, &a);
    spec_expect_value(fc, &c);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&a), 1);
    cr_assert_eq(atomic_load(&b), 0, "the cancelled task ran");
    cr_assert_eq(atomic_load(&c), 1);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 0);
    future_t *fs[] = {f0, fa, fb, fc};
    spec_release_all(fs, 4);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* After a failure scope_submit gives a future that has already failed with
 * ECANCELED, never NULL, and the task never runs. */
CheckedTest(spec_scope, submit_after_failure_gives_failed_future,
            .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    future_t *ff = must_submit(s, spec_error_task, EARG(EIO));
    spec_expect_error(ff, EIO);
    cr_assert(await_scope_cancelled(s));
    atomic_int count = 0;
    future_t *a = scope_submit(s, spec_count_task, &count);
    cr_assert_not_null(a, "NULL after cancellation: errno %d", errno);
    cr_assert(future_is_ready(a), "not failed already");
    spec_expect_error(a, ECANCELED);
    future_t *b = scope_submit_blocking(s, spec_count_task, &count);
    cr_assert_not_null(b, "NULL after cancellation: errno %d", errno);
    cr_assert(future_is_ready(b), "not failed already");
    spec_expect_error(b, ECANCELED);
    cr_assert_eq(scope_join(s), EIO);
    cr_assert_eq(atomic_load(&count), 0);
    future_release(a);
    future_release(b);
    future_release(ff);
    scope_release(s);
    pool_destroy(p);
}

/* ============================================== cancel by hand -- */

CheckedTest(spec_scope, scope_cancel_by_hand, .timeout = 60)
{
    pool_t *p = spec_pool(3);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 2), 0);
    struct watch w;
    watch_init(&w, 2);
    w.await_cancel = true;
    struct wtask t[2];
    future_t *run[2];
    for (int i = 0; i < 2; i++) {
        t[i] = (struct wtask){&w, i};
        run[i] = must_submit(s, watch_task, &t[i]);
    }
    must_sem_wait_n(&w.first, 2);
    atomic_int count = 0;
    future_t *h[20];
    for (int i = 0; i < 20; i++)
        h[i] = must_submit(s, spec_count_task, &count);
    cr_assert_not(scope_cancelled(s));
    scope_cancel(s);
    cr_assert(scope_cancelled(s));
    for (int i = 0; i < 20; i++)
        cr_assert_eq(must_settle(h[i]), ECANCELED);
    future_t *after = scope_submit(s, spec_count_task, &count);
    cr_assert_not_null(after);
    cr_assert(future_is_ready(after));
    spec_expect_error(after, ECANCELED);
    spec_gate_open(&w.gate);
    for (int i = 0; i < 2; i++)
        spec_expect_value(run[i], &t[i]);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 2);
    cr_assert_eq(scope_join(s), ECANCELED);
    cr_assert_eq(atomic_load(&count), 0);
    cr_assert(scope_cancelled(s));
    future_release(after);
    spec_release_all(run, 2);
    spec_release_all(h, 20);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

CheckedTest(spec_scope, cancel_is_idempotent_and_cancelled_stays_true,
            .timeout = 30)
{
    scope_t *s = spec_scope(NULL);
    cr_assert_not(scope_cancelled(s));
    scope_cancel(s);
    scope_cancel(s);
    cr_assert(scope_cancelled(s));
    cr_assert_eq(scope_join(s), ECANCELED);
    cr_assert(scope_cancelled(s));
    scope_release(s);
}

CheckedTest(spec_scope, cancelled_is_false_after_a_clean_join, .timeout = 30)
{
    scope_t *s = spec_scope(NULL);
    future_t *f = must_submit(s, spec_value_task, NULL);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_not(scope_cancelled(s));
    future_release(f);
    scope_release(s);
}

/* Cancelled by hand, then a running task fails: join returns the failure,
 * not ECANCELED. */
CheckedTest(spec_scope, failure_after_hand_cancel_wins_in_join, .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    struct failer fl;
    failer_init(&fl, EXDEV, NULL);
    future_t *f = must_submit(s, failer_task, &fl);
    must_sem_wait_n(&fl.started, 1);
    scope_cancel(s);
    spec_gate_open(&fl.gate);
    cr_assert_eq(scope_join(s), EXDEV);
    spec_expect_error(f, EXDEV);
    future_release(f);
    scope_release(s);
    pool_destroy(p);
    failer_destroy(&fl);
}

/* ========================================================== join -- */

/* The first failure in settlement order, not in submission order: the
 * later-submitted task fails first (its future has settled before the
 * other may fail). Repeated, since a scope that records failures late
 * gets the order wrong only now and then. */
CheckedTest(spec_scope, join_returns_first_failure_in_settlement_order,
            .timeout = 120)
{
    quiet_unobserved();
    enum { RUNS = 2000 };
    pool_t *p = spec_pool(3);
    int wrong = 0, first_wrong = -1, first_rc = 0;
    for (int r = 0; r < RUNS; r++) {
        scope_t *s = spec_scope(p);
        struct failer a, b;
        failer_init(&a, EIO, NULL);
        failer_init(&b, EPERM, NULL);
        future_t *fa = must_submit(s, failer_task, &a); /* submitted first */
        future_t *fb = must_submit(s, failer_task, &b);
        must_sem_wait_n(&a.started, 1);
        must_sem_wait_n(&b.started, 1);
        spec_gate_open(&b.gate); /* settles first */
        spec_expect_error(fb, EPERM);
        spec_gate_open(&a.gate);
        spec_expect_error(fa, EIO);
        int rc = scope_join(s);
        if (rc != EPERM) {
            if (wrong++ == 0) {
                first_wrong = r;
                first_rc = rc;
            }
        }
        future_release(fa);
        future_release(fb);
        scope_release(s);
        failer_destroy(&a);
        failer_destroy(&b);
    }
    cr_assert_eq(wrong, 0,
                 "%d of %d joins returned a later failure (first: run %d, "
                 "%d instead of EPERM %d)",
                 wrong, RUNS, first_wrong, first_rc, EPERM);
    pool_destroy(p);
}

/* The failing task's future was dropped: join still reports it. */
CheckedTest(spec_scope, join_reports_failure_of_released_future, .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    for (int i = 0; i < 5; i++)
        future_release(must_submit(s, spec_value_task, NULL));
    future_release(must_submit(s, spec_error_task, EARG(ENOSPC)));
    cr_assert_eq(scope_join(s), ENOSPC);
    cr_assert(scope_cancelled(s));
    scope_release(s);
    pool_destroy(p);
}

/* join waits for tasks submitted while it waits. */
struct during {
    scope_t *s;
    spec_gate_t gate_a, gate_b;
    sem_t b_started;
    sem_t joining;
    atomic_int joined;
    atomic_int b_done;
    int join_rc;
    future_t *fb;
};

static int during_b(void *arg, void **result)
{
    struct during *d = arg;
    sem_post(&d->b_started);
    spec_gate_wait(&d->gate_b);
    atomic_store(&d->b_done, 1);
    *result = d;
    return 0;
}

static int during_a(void *arg, void **result)
{
    struct during *d = arg;
    spec_gate_wait(&d->gate_a);
    d->fb = scope_submit(d->s, during_b, d);
    *result = d;
    return d->fb ? 0 : errno;
}

static void *during_joiner(void *arg)
{
    struct during *d = arg;
    sem_post(&d->joining);
    d->join_rc = scope_join(d->s);
    atomic_store(&d->joined, 1);
    return NULL;
}

CheckedTest(spec_scope, join_waits_for_tasks_submitted_during_the_join,
            .timeout = 30)
{
    pool_t *p = spec_pool(3);
    struct during d;
    memset(&d, 0, sizeof d);
    d.s = spec_scope(p);
    spec_gate_init(&d.gate_a);
    spec_gate_init(&d.gate_b);
    sem_init(&d.b_started, 0, 0);
    sem_init(&d.joining, 0, 0);
    future_t *fa = must_submit(d.s, during_a, &d);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, during_joiner, &d), 0);
    spec_sem_wait(&d.joining);
    spec_gate_open(&d.gate_a); /* A submits B, during the join */
    must_sem_wait_n(&d.b_started, 1);
    spec_expect_value(fa, &d);
    cr_assert_eq(atomic_load(&d.joined), 0, "join returned with B running");
    spec_gate_open(&d.gate_b);
    pthread_join(th, NULL);
    cr_assert_eq(d.join_rc, 0);
    cr_assert_eq(atomic_load(&d.b_done), 1, "join returned before B ran");
    cr_assert(future_is_ready(d.fb));
    future_release(d.fb);
    future_release(fa);
    scope_release(d.s);
    pool_destroy(p);
    spec_gate_destroy(&d.gate_a);
    spec_gate_destroy(&d.gate_b);
    sem_destroy(&d.b_started);
    sem_destroy(&d.joining);
}

/* Tasks may submit to their own scope: a binary tree of 2047 tasks, each
 * submitting its two children, is all joined. */
struct tree {
    scope_t *s;
    atomic_int count;
    atomic_int refused;
};

struct node {
    struct tree *t;
    int depth;
};

static int tree_task(void *arg, void **result)
{
    struct node *n = arg;
    struct tree *t = n->t;
    atomic_fetch_add(&t->count, 1);
    if (n->depth > 0) {
        for (int i = 0; i < 2; i++) {
            struct node *c = malloc(sizeof *c);
            *c = (struct node){t, n->depth - 1};
            future_t *f = scope_submit(t->s, tree_task, c);
            if (f)
                future_release(f);
            else {
                atomic_fetch_add(&t->refused, 1);
                free(c);
            }
        }
    }
    free(n);
    *result = NULL;
    return 0;
}

CheckedTest(spec_scope, tasks_submit_to_their_own_scope, .timeout = 60)
{
    pool_t *p = spec_pool(4);
    struct tree t;
    t.s = spec_scope(p);
    atomic_init(&t.count, 0);
    atomic_init(&t.refused, 0);
    cr_assert_eq(scope_set_limit(t.s, 3), 0);
    struct node *root = malloc(sizeof *root);
    *root = (struct node){&t, 10};
    future_release(must_submit(t.s, tree_task, root));
    cr_assert_eq(scope_join(t.s), 0);
    cr_assert_eq(atomic_load(&t.refused), 0);
    cr_assert_eq(atomic_load(&t.count), 2047);
    scope_release(t.s);
    pool_destroy(p);
}

/* join inside a task of a one-thread pool, the scope on that same pool. */
struct inner {
    pool_t *pool;
    atomic_int count;
    int n;
};

static int join_inside_task(void *arg, void **result)
{
    struct inner *in = arg;
    scope_t *s = scope_create(in->pool);
    if (!s)
        return errno;
    scope_set_limit(s, 2);
    for (int i = 0; i < in->n; i++) {
        future_t *f = scope_submit(s, spec_count_task, &in->count);
        if (!f) {
            scope_release(s);
            return errno;
        }
        future_release(f);
    }
    int rc = scope_join(s);
    scope_release(s);
    *result = in;
    return rc;
}

CheckedTest(spec_scope, join_inside_a_one_thread_pool_task, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct inner in = {.pool = p, .n = 25};
    atomic_init(&in.count, 0);
    future_t *f = pool_submit(p, join_inside_task, &in);
    cr_assert_not_null(f);
    cr_assert(future_wait_for(f, MUST_NS), "join deadlocked its pool");
    spec_expect_value(f, &in);
    cr_assert_eq(atomic_load(&in.count), 25);
    future_release(f);
    pool_destroy(p);
}

CheckedTest(spec_scope, submit_after_join_fails_eshutdown, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    future_t *f = must_submit(s, spec_value_task, NULL);
    cr_assert_eq(scope_join(s), 0);
    atomic_int count = 0;
    errno = 0;
    cr_assert_null(scope_submit(s, spec_count_task, &count));
    cr_assert_eq(errno, ESHUTDOWN);
    errno = 0;
    cr_assert_null(scope_submit_blocking(s, spec_count_task, &count));
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(atomic_load(&count), 0);
    future_release(f);
    scope_release(s);
    pool_destroy(p);
}

/* A failed scope, once joined, is closed too: ESHUTDOWN, not a failed
 * future. */
CheckedTest(spec_scope, submit_after_join_of_failed_scope_fails_eshutdown,
            .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    future_release(must_submit(s, spec_error_task, EARG(EIO)));
    cr_assert_eq(scope_join(s), EIO);
    errno = 0;
    cr_assert_null(scope_submit(s, spec_value_task, NULL));
    cr_assert_eq(errno, ESHUTDOWN);
    scope_release(s);
    pool_destroy(p);
}

/* ================================================== scope_future -- */

CheckedTest(spec_scope, scope_future_of_empty_scope_settles_at_once,
            .timeout = 30)
{
    scope_t *s = spec_scope(NULL);
    future_t *f = scope_future(s);
    cr_assert_not_null(f, "errno %d", errno);
    cr_assert(future_is_ready(f));
    cr_assert_eq(future_wait(f, NULL), 0);
    future_release(f);
    scope_release(s);
}

static int count_then(void *value, void *arg, void **result)
{
    (void)value;
    struct watch *w = arg;
    *result = U2P(atomic_load(&w->finished));
    return 0;
}

/* It settles once every task has, without blocking anyone: a continuation
 * on it sees all of them finished. */
CheckedTest(spec_scope, scope_future_settles_after_all_tasks, .timeout = 30)
{
    pool_t *p = spec_pool(3);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 2), 0);
    struct watch w;
    watch_init(&w, 2);
    struct wtask t[30];
    for (int i = 0; i < 30; i++) {
        t[i] = (struct wtask){&w, i};
        future_release(must_submit(s, watch_task, &t[i]));
    }
    must_sem_wait_n(&w.first, 2);
    future_t *sf = scope_future(s);
    cr_assert_not_null(sf);
    future_t *c = future_then(sf, count_then, &w);
    cr_assert_not_null(c);
    cr_assert_not(future_is_ready(sf));
    cr_assert_not(future_is_ready(c));
    spec_gate_open(&w.gate);
    spec_expect_value(c, U2P(30));
    cr_assert_eq(future_wait(sf, NULL), 0);
    future_release(c);
    future_release(sf);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* It fails with the first failure and carries its message; the message
 * passes through when_all and future_then. */
CheckedTest(spec_scope, scope_future_carries_first_failure_and_message,
            .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(3);
    scope_t *s = spec_scope(p);
    struct failer a, b;
    failer_init(&a, EIO, "disk 7 is gone");
    failer_init(&b, EPERM, "second failure");
    future_t *fa = must_submit(s, failer_task, &a);
    future_t *fb = must_submit(s, failer_task, &b);
    must_sem_wait_n(&a.started, 1);
    must_sem_wait_n(&b.started, 1);
    future_t *sf = scope_future(s);
    cr_assert_not_null(sf);
    future_t *other = future_resolved(U2P(1));
    future_t *all_in[] = {other, sf};
    future_t *all = when_all(all_in, 2);
    cr_assert_not_null(all);
    future_t *then = future_then(sf, spec_inc_then, NULL);
    cr_assert_not_null(then);
    spec_gate_open(&a.gate);
    spec_expect_error(fa, EIO);
    spec_gate_open(&b.gate);
    spec_expect_error(fb, EPERM);
    spec_expect_error(sf, EIO);
    const char *m = future_error_message(sf);
    cr_assert_not_null(m, "scope_future has no message");
    cr_assert_str_eq(m, "disk 7 is gone");
    spec_expect_error(all, EIO);
    m = future_error_message(all);
    cr_assert_not_null(m);
    cr_assert_str_eq(m, "disk 7 is gone");
    spec_expect_error(then, EIO);
    m = future_error_message(then);
    cr_assert_not_null(m);
    cr_assert_str_eq(m, "disk 7 is gone");
    future_t *fs[] = {fa, fb, sf, other, all, then};
    spec_release_all(fs, 6);
    scope_release(s);
    pool_destroy(p);
    failer_destroy(&a);
    failer_destroy(&b);
}

/* The same, repeated: the failure and message scope_future() gives are
 * those of the failure that settled first, every time. */
CheckedTest(spec_scope, scope_future_message_is_the_first_failures_repeated,
            .timeout = 120)
{
    quiet_unobserved();
    enum { RUNS = 1000 };
    pool_t *p = spec_pool(3);
    int wrong = 0, first_rc = 0;
    char first_msg[64] = "";
    for (int r = 0; r < RUNS; r++) {
        scope_t *s = spec_scope(p);
        struct failer a, b;
        failer_init(&a, ENOTDIR, "first");
        failer_init(&b, EISDIR, "second");
        future_t *fb = must_submit(s, failer_task, &b);
        future_t *fa = must_submit(s, failer_task, &a);
        future_t *sf = scope_future(s);
        cr_assert_not_null(sf);
        must_sem_wait_n(&a.started, 1);
        must_sem_wait_n(&b.started, 1);
        spec_gate_open(&a.gate);
        spec_expect_error(fa, ENOTDIR);
        spec_gate_open(&b.gate);
        spec_expect_error(fb, EISDIR);
        int rc = must_settle(sf);
        const char *m = future_error_message(sf);
        if (rc != ENOTDIR || !m || strcmp(m, "first") != 0) {
            if (wrong++ == 0) {
                first_rc = rc;
                snprintf(first_msg, sizeof first_msg, "%s", m ? m : "(null)");
            }
        }
        future_release(fa);
        future_release(fb);
        future_release(sf);
        scope_release(s);
        failer_destroy(&a);
        failer_destroy(&b);
    }
    cr_assert_eq(wrong, 0,
                 "%d of %d: scope_future failed with %d \"%s\", expected "
                 "%d \"first\"",
                 wrong, RUNS, first_rc, first_msg, ENOTDIR);
    pool_destroy(p);
}

CheckedTest(spec_scope, scope_future_ecanceled_when_cancelled_by_hand,
            .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    struct watch w;
    watch_init(&w, 1);
    struct wtask t = {&w, 0};
    future_t *f = must_submit(s, watch_task, &t);
    must_sem_wait_n(&w.first, 1);
    future_t *sf = scope_future(s);
    cr_assert_not_null(sf);
    scope_cancel(s);
    cr_assert_not(future_is_ready(sf), "settled with a task still running");
    spec_gate_open(&w.gate);
    spec_expect_value(f, &t);
    spec_expect_error(sf, ECANCELED);
    future_release(f);
    future_release(sf);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* Pending scope_future: tasks may still submit; it waits for them; once it
 * has settled the scope is closed. */
CheckedTest(spec_scope, scope_future_waits_for_late_submissions_then_closes,
            .timeout = 30)
{
    pool_t *p = spec_pool(3);
    struct during d;
    memset(&d, 0, sizeof d);
    d.s = spec_scope(p);
    spec_gate_init(&d.gate_a);
    spec_gate_init(&d.gate_b);
    sem_init(&d.b_started, 0, 0);
    sem_init(&d.joining, 0, 0);
    future_t *fa = must_submit(d.s, during_a, &d);
    future_t *sf = scope_future(d.s);
    cr_assert_not_null(sf);
    spec_gate_open(&d.gate_a);
    must_sem_wait_n(&d.b_started, 1);
    spec_expect_value(fa, &d);
    cr_assert_not(future_is_ready(sf), "settled with B running");
    spec_gate_open(&d.gate_b);
    cr_assert_eq(future_wait(sf, NULL), 0);
    cr_assert_eq(atomic_load(&d.b_done), 1);
    errno = 0;
    cr_assert_null(scope_submit(d.s, spec_value_task, NULL));
    cr_assert_eq(errno, ESHUTDOWN);
    future_release(d.fb);
    future_release(fa);
    future_release(sf);
    scope_release(d.s);
    pool_destroy(p);
    spec_gate_destroy(&d.gate_a);
    spec_gate_destroy(&d.gate_b);
    sem_destroy(&d.b_started);
    sem_destroy(&d.joining);
}

/* scope_future and scope_join agree. */
CheckedTest(spec_scope, scope_future_and_join_agree, .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    future_release(must_submit(s, spec_value_task, NULL));
    future_release(must_submit(s, spec_error_task, EARG(EBADMSG)));
    future_t *sf = scope_future(s);
    cr_assert_not_null(sf);
    future_t *sf2 = scope_future(s);
    cr_assert_not_null(sf2);
    cr_assert_eq(scope_join(s), EBADMSG);
    cr_assert(future_is_ready(sf));
    spec_expect_error(sf, EBADMSG);
    spec_expect_error(sf2, EBADMSG);
    future_release(sf);
    future_release(sf2);
    scope_release(s);
    pool_destroy(p);
}

/* ======================================================== nesting -- */

struct nest {
    pool_t *pool;
    spec_gate_t leaf_gate;
    sem_t leaf_started;
    sem_t mid_ready;
    atomic_int leaf_saw_cancel;
    atomic_int leaf_ran;
    atomic_int held_ran;
    atomic_int held_ecanceled;
    atomic_int t0_saw_cancel, t1_saw_cancel;
    atomic_int s1_cancelled, s2_cancelled;
    int t1_join, t0_join;
    int leaf_error; /* 0: leaves wait for cancellation; else one fails */
};

enum { LEAVES = 3, HELD = 5 };

static int nest_leaf(void *arg, void **result)
{
    struct nest *n = arg;
    atomic_fetch_add(&n->leaf_ran, 1);
    sem_post(&n->leaf_started);
    spec_gate_wait(&n->leaf_gate);
    if (await_task_cancelled())
        atomic_fetch_add(&n->leaf_saw_cancel, 1);
    *result = n;
    return 0;
}

static int nest_held(void *arg, void **result)
{
    struct nest *n = arg;
    atomic_fetch_add(&n->held_ran, 1);
    *result = n;
    return 0;
}

static int nest_failing_leaf(void *arg, void **result)
{
    (void)result;
    struct nest *n = arg;
    return task_fail(n->leaf_error, "leaf failed");
}

/* T1: a task of S1; makes S2 (grandchild of S0) and joins it. */
static int nest_t1(void *arg, void **result)
{
    struct nest *n = arg;
    scope_t *s2 = scope_create(n->pool);
    if (!s2)
        return errno;
    scope_set_limit(s2, LEAVES + (n->leaf_error ? 1 : 0));
    future_t *held[HELD];
    int nheld = 0;
    for (int i = 0; i < LEAVES; i++) {
        future_t *f = scope_submit(s2, nest_leaf, n);
        if (f)
            future_release(f);
    }
    if (n->leaf_error) {
        future_t *f = scope_submit(s2, nest_failing_leaf, n);
        if (f)
            future_release(f);
    }
    for (int i = 0; i < HELD; i++) {
        future_t *f = scope_submit(s2, nest_held, n);
        if (f)
            held[nheld++] = f;
    }
    sem_post(&n->mid_ready);
    int rc = scope_join(s2);
    for (int i = 0; i < nheld; i++) {
        if (future_wait(held[i], NULL) == ECANCELED)
            atomic_fetch_add(&n->held_ecanceled, 1);
        future_release(held[i]);
    }
    atomic_store(&n->s2_cancelled, scope_cancelled(s2));
    scope_release(s2);
    if (task_cancelled())
        atomic_store(&n->t1_saw_cancel, 1);
    n->t1_join = rc;
    *result = n;
    return rc;
}

/* T0: a task of S0; makes S1 (child of S0) and joins it. */
static int nest_t0(void *arg, void **result)
{
    struct nest *n = arg;
    scope_t *s1 = scope_create(n->pool);
    if (!s1)
        return errno;
    future_t *f = scope_submit(s1, nest_t1, n);
    if (f)
        future_release(f);
    int rc = scope_join(s1);
    atomic_store(&n->s1_cancelled, scope_cancelled(s1));
    scope_release(s1);
    if (task_cancelled())
        atomic_store(&n->t0_saw_cancel, 1);
    n->t0_join = rc;
    *result = n;
    return rc;
}

static void nest_init(struct nest *n, pool_t *p, int leaf_error)
{
    memset(n, 0, sizeof *n);
    n->pool = p;
    n->leaf_error = leaf_error;
    spec_gate_init(&n->leaf_gate);
    sem_init(&n->leaf_started, 0, 0);
    sem_init(&n->mid_ready, 0, 0);
}

static void nest_destroy(struct nest *n)
{
    sem_destroy(&n->mid_ready);
    sem_destroy(&n->leaf_started);
    spec_gate_destroy(&n->leaf_gate);
}

/* Three deep: cancelling the top reaches the bottom tasks. */
CheckedTest(spec_scope, nesting_three_deep_cancel_from_the_top, .timeout = 60)
{
    pool_t *p = spec_pool(6);
    struct nest n;
    nest_init(&n, p, 0);
    scope_t *s0 = spec_scope(p);
    future_t *t0 = must_submit(s0, nest_t0, &n);
    must_sem_wait_n(&n.mid_ready, 1);
    must_sem_wait_n(&n.leaf_started, LEAVES);
    cr_assert_not(scope_cancelled(s0));
    scope_cancel(s0);
    spec_gate_open(&n.leaf_gate);
    cr_assert_eq(scope_join(s0), ECANCELED);
    spec_expect_error(t0, ECANCELED);
    cr_assert_eq(atomic_load(&n.leaf_ran), LEAVES);
    cr_assert_eq(atomic_load(&n.leaf_saw_cancel), LEAVES,
                 "%d of %d bottom tasks saw task_cancelled()",
                 atomic_load(&n.leaf_saw_cancel), LEAVES);
    cr_assert_eq(atomic_load(&n.held_ran), 0, "held bottom tasks ran");
    cr_assert_eq(atomic_load(&n.held_ecanceled), HELD);
    cr_assert(atomic_load(&n.s1_cancelled), "child not cancelled");
    cr_assert(atomic_load(&n.s2_cancelled), "grandchild not cancelled");
    cr_assert(atomic_load(&n.t0_saw_cancel));
    cr_assert(atomic_load(&n.t1_saw_cancel));
    cr_assert_eq(n.t1_join, ECANCELED);
    cr_assert_eq(n.t0_join, ECANCELED);
    future_release(t0);
    scope_release(s0);
    pool_destroy(p);
    nest_destroy(&n);
    expect_no_leaks();
}

/* Three deep: a bottom failure fails the joining tasks, and so reaches the
 * top, which cancels its other tasks. */
CheckedTest(spec_scope, nesting_child_failure_reaches_the_parent,
            .timeout = 60)
{
    quiet_unobserved();
    pool_t *p = spec_pool(6);
    struct nest n;
    nest_init(&n, p, EOVERFLOW);
    spec_gate_open(&n.leaf_gate); /* leaves wait for their cancellation */
    scope_t *s0 = spec_scope(p);
    struct watch w; /* a sibling of T0 in S0 */
    watch_init(&w, 1);
    w.await_cancel = true;
    struct wtask wt = {&w, 0};
    future_t *sib = must_submit(s0, watch_task, &wt);
    must_sem_wait_n(&w.first, 1);
    future_t *t0 = must_submit(s0, nest_t0, &n);
    spec_expect_error(t0, EOVERFLOW);
    spec_gate_open(&w.gate);
    cr_assert_eq(scope_join(s0), EOVERFLOW);
    cr_assert(scope_cancelled(s0));
    cr_assert_eq(n.t1_join, EOVERFLOW);
    cr_assert_eq(n.t0_join, EOVERFLOW);
    cr_assert(atomic_load(&n.s1_cancelled));
    cr_assert(atomic_load(&n.s2_cancelled));
    cr_assert_eq(atomic_load(&n.held_ran), 0);
    cr_assert_eq(atomic_load(&n.leaf_saw_cancel),
                 atomic_load(&n.leaf_ran),
                 "a leaf beside the failure missed task_cancelled()");
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 1,
                 "the top scope's other task was not cancelled");
    spec_expect_value(sib, &wt);
    future_release(sib);
    future_release(t0);
    scope_release(s0);
    pool_destroy(p);
    nest_destroy(&n);
    watch_destroy(&w);
}

/* Cancelling a child does not cancel the parent: the task joining it
 * returns ECANCELED, which is no failure. */
struct midcancel {
    pool_t *pool;
    atomic_int child_cancelled;
};

static int cancel_own_child(void *arg, void **result)
{
    struct midcancel *m = arg;
    scope_t *c = scope_create(m->pool);
    if (!c)
        return errno;
    future_t *f = scope_submit(c, spec_value_task, NULL);
    future_release(f);
    scope_cancel(c);
    atomic_store(&m->child_cancelled, scope_cancelled(c));
    int rc = scope_join(c);
    scope_release(c);
    *result = m;
    return rc;
}

CheckedTest(spec_scope, cancelling_a_child_leaves_the_parent_alone,
            .timeout = 30)
{
    pool_t *p = spec_pool(3);
    struct midcancel m = {.pool = p};
    atomic_init(&m.child_cancelled, 0);
    scope_t *s0 = spec_scope(p);
    future_t *t = must_submit(s0, cancel_own_child, &m);
    spec_expect_error(t, ECANCELED);
    cr_assert(atomic_load(&m.child_cancelled));
    cr_assert_not(scope_cancelled(s0), "a child's cancel reached the parent");
    atomic_int count = 0;
    future_t *after = must_submit(s0, spec_count_task, &count);
    spec_expect_value(after, &count);
    cr_assert_eq(scope_join(s0), 0);
    future_release(after);
    future_release(t);
    scope_release(s0);
    pool_destroy(p);
}

/* A scope created outside any scope task is nobody's child. */
CheckedTest(spec_scope, scope_made_outside_a_task_is_not_a_child,
            .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *a = spec_scope(p);
    scope_t *b = spec_scope(p);
    scope_cancel(a);
    cr_assert(scope_cancelled(a));
    cr_assert_not(scope_cancelled(b));
    future_t *f = must_submit(b, spec_value_task, U2P(8));
    spec_expect_value(f, U2P(8));
    cr_assert_eq(scope_join(b), 0);
    cr_assert_eq(scope_join(a), ECANCELED);
    future_release(f);
    scope_release(a);
    scope_release(b);
    pool_destroy(p);
}

/* Nesting on a pool of one thread: each level joins inside a task. */
CheckedTest(spec_scope, nesting_joins_on_a_one_thread_pool, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct inner in = {.pool = p, .n = 10};
    atomic_init(&in.count, 0);
    scope_t *s0 = spec_scope(p);
    future_t *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = must_submit(s0, join_inside_task, &in);
    future_t *sf = scope_future(s0);
    cr_assert_not_null(sf);
    cr_assert(future_wait_for(sf, MUST_NS), "nested joins deadlocked");
    cr_assert_eq(future_wait(sf, NULL), 0);
    for (int i = 0; i < 3; i++)
        spec_expect_value(fs[i], &in);
    cr_assert_eq(atomic_load(&in.count), 30);
    spec_release_all(fs, 3);
    future_release(sf);
    scope_release(s0);
    pool_destroy(p);
}

/* ======================================================== release -- */

/* Release without join: cancels, returns at once (a task is still held at
 * its gate), and every task still settles. */
CheckedTest(spec_scope, release_without_join_cancels_and_returns_at_once,
            .timeout = 60)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 1);
    w.await_cancel = true;
    struct wtask t = {&w, 0};
    future_t *run = must_submit(s, watch_task, &t);
    must_sem_wait_n(&w.first, 1);
    atomic_int count = 0;
    future_t *h[10];
    for (int i = 0; i < 10; i++)
        h[i] = must_submit(s, spec_count_task, &count);
    scope_release(s); /* the running task is blocked: this must not wait */
    cr_assert_not(future_is_ready(run));
    for (int i = 0; i < 10; i++)
        cr_assert_eq(must_settle(h[i]), ECANCELED);
    spec_gate_open(&w.gate);
    spec_expect_value(run, &t);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 1,
                 "release did not cancel the running task");
    cr_assert_eq(atomic_load(&count), 0);
    cr_assert_eq(atomic_load(&w.finished), 1);
    future_release(run);
    spec_release_all(h, 10);
    pool_destroy(p);
    watch_destroy(&w);
    expect_no_leaks();
}

/* Release with every future already dropped: the running tasks still run
 * to their end (their clean-up code runs, counted), nothing is lost, and no
 * future outlives the test (CheckedTest). */
struct owned {
    spec_gate_t gate;
    sem_t started;
    sem_t cleaned;
    atomic_int cleanups;
};

static int owned_task(void *arg, void **result)
{
    struct owned *o = arg;
    char *resource = malloc(64); /* what a destructor would free */
    sem_post(&o->started);
    spec_gate_wait(&o->gate);
    free(resource);
    atomic_fetch_add(&o->cleanups, 1);
    sem_post(&o->cleaned);
    *result = NULL;
    return 0;
}

CheckedTest(spec_scope, release_never_loses_a_running_task, .timeout = 60)
{
    pool_t *p = spec_pool(4);
    scope_t *s = spec_scope(p);
    struct owned o;
    spec_gate_init(&o.gate);
    sem_init(&o.started, 0, 0);
    sem_init(&o.cleaned, 0, 0);
    atomic_init(&o.cleanups, 0);
    for (int i = 0; i < 4; i++)
        future_release(must_submit(s, owned_task, &o));
    must_sem_wait_n(&o.started, 4);
    scope_release(s);
    spec_gate_open(&o.gate);
    must_sem_wait_n(&o.cleaned, 4);
    cr_assert_eq(atomic_load(&o.cleanups), 4);
    pool_destroy(p); /* drains; the scope's last tasks are gone */
    spec_gate_destroy(&o.gate);
    sem_destroy(&o.started);
    sem_destroy(&o.cleaned);
    expect_no_leaks();
}

/* A task may release its own (child) scope without joining it; the
 * child's tasks still settle. */
struct relchild {
    pool_t *pool;
    spec_gate_t gate;
    sem_t started;
    atomic_int saw_cancel;
    future_t *f;
};

static int relchild_leaf(void *arg, void **result)
{
    struct relchild *r = arg;
    sem_post(&r->started);
    spec_gate_wait(&r->gate);
    if (await_task_cancelled())
        atomic_store(&r->saw_cancel, 1);
    *result = r;
    return 0;
}

static int relchild_task(void *arg, void **result)
{
    struct relchild *r = arg;
    scope_t *c = scope_create(r->pool);
    if (!c)
        return errno;
    r->f = scope_submit(c, relchild_leaf, r);
    int rc = r->f ? 0 : errno;
    if (r->f && !sem_wait_bounded(&r->started)) /* the leaf runs */
        rc = ETIMEDOUT;
    scope_release(c);
    *result = r;
    return rc;
}

CheckedTest(spec_scope, release_inside_a_task_without_join, .timeout = 30)
{
    pool_t *p = spec_pool(3);
    struct relchild r;
    memset(&r, 0, sizeof r);
    r.pool = p;
    spec_gate_init(&r.gate);
    sem_init(&r.started, 0, 0);
    scope_t *s0 = spec_scope(p);
    future_t *t = must_submit(s0, relchild_task, &r);
    /* returned with its child's task still at its gate */
    spec_expect_value(t, &r);
    cr_assert_not(future_is_ready(r.f));
    spec_gate_open(&r.gate);
    spec_expect_value(r.f, &r);
    cr_assert(atomic_load(&r.saw_cancel));
    cr_assert_not(scope_cancelled(s0));
    cr_assert_eq(scope_join(s0), 0);
    future_release(r.f);
    future_release(t);
    scope_release(s0);
    pool_destroy(p);
    spec_gate_destroy(&r.gate);
    sem_destroy(&r.started);
    expect_no_leaks();
}

/* Releasing a scope whose scope_future was taken does not cancel it: it
 * counts as joined, and every task runs. */
CheckedTest(spec_scope, release_after_scope_future_does_not_cancel,
            .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 1);
    struct wtask t = {&w, 0};
    future_release(must_submit(s, watch_task, &t));
    must_sem_wait_n(&w.first, 1);
    atomic_int count = 0;
    for (int i = 0; i < 10; i++)
        future_release(must_submit(s, spec_count_task, &count));
    future_t *sf = scope_future(s);
    cr_assert_not_null(sf);
    scope_release(s);
    spec_gate_open(&w.gate);
    cr_assert_eq(must_settle(sf), 0);
    cr_assert_eq(atomic_load(&count), 10);
    cr_assert_eq(atomic_load(&w.saw_cancel_after), 0);
    future_release(sf);
    pool_destroy(p);
    watch_destroy(&w);
    expect_no_leaks();
}

CheckedTest(spec_scope, release_after_join, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    atomic_int count = 0;
    future_t *f = must_submit(s, spec_count_task, &count);
    cr_assert_eq(scope_join(s), 0);
    scope_release(s);
    spec_expect_value(f, &count);
    cr_assert_eq(atomic_load(&count), 1);
    future_release(f);
    pool_destroy(p);
}

/* ================================================= pool lifetime -- */

/* The scope keeps its pool's memory: the pool may be destroyed first;
 * submitting then fails with ESHUTDOWN, and nothing is used after free. */
CheckedTest(spec_scope, pool_destroyed_before_the_scope, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    atomic_int count = 0;
    future_t *f = must_submit(s, spec_count_task, &count);
    spec_expect_value(f, &count);
    pool_destroy(p);
    errno = 0;
    cr_assert_null(scope_submit(s, spec_count_task, &count));
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&count), 1);
    future_release(f);
    scope_release(s);
    expect_no_leaks();
}

/* A task waiting for the limit when the pool stops taking work fails with
 * ESHUTDOWN and never runs. */
CheckedTest(spec_scope, held_task_fails_eshutdown_when_the_pool_stops,
            .timeout = 30)
{
    quiet_unobserved();
    pool_t *p = spec_pool(2);
    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct watch w;
    watch_init(&w, 1);
    struct wtask t = {&w, 0};
    future_t *run = must_submit(s, watch_task, &t);
    must_sem_wait_n(&w.first, 1);
    atomic_int count = 0;
    future_t *h[5];
    for (int i = 0; i < 5; i++)
        h[i] = must_submit(s, spec_count_task, &count);
    pool_shutdown(p, POOL_DRAIN);
    spec_gate_open(&w.gate);
    spec_expect_value(run, &t);
    for (int i = 0; i < 5; i++) {
        int rc = must_settle(h[i]);
        cr_assert(rc == ESHUTDOWN || (i > 0 && rc == ECANCELED),
                  "held task %d: %d", i, rc);
    }
    cr_assert_eq(must_settle(h[0]), ESHUTDOWN,
                 "the first refused task must fail with ESHUTDOWN");
    cr_assert_eq(atomic_load(&count), 0, "a refused task ran");
    cr_assert_eq(scope_join(s), ESHUTDOWN);
    future_release(run);
    spec_release_all(h, 5);
    scope_release(s);
    pool_destroy(p);
    watch_destroy(&w);
}

/* ======================================================== memory -- */

/* A task waiting for the limit costs about what a queued task does. */
CheckedTest(spec_scope, held_task_memory_is_that_of_a_queued_task,
            .timeout = 60)
{
    plain_allocator();
    enum { N = 4000 };
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *blk[1];
    spec_saturate(p, &b, blk, 1);
    atomic_int count = 0;
    future_t **fs = calloc(N, sizeof *fs);
    future_t **gs = calloc(N, sizeof *gs);
    cr_assert(fs && gs);

    size_t before = allocated_bytes();
    for (int i = 0; i < N; i++) {
        fs[i] = pool_submit(p, spec_count_task, &count);
        cr_assert_not_null(fs[i]);
    }
    long plain = ((long)allocated_bytes() - (long)before) / N;

    scope_t *s = spec_scope(p);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    gs[0] = must_submit(s, spec_count_task, &count); /* queued, in limit */
    before = allocated_bytes();
    for (int i = 1; i < N; i++)
        gs[i] = must_submit(s, spec_count_task, &count);
    long held = ((long)allocated_bytes() - (long)before) / (N - 1);
    cr_log_info("bytes per queued task %ld, per held task %ld", plain, held);
    cr_assert_leq(held, 2 * plain + 64,
                  "a held task takes %ld bytes, a queued one %ld", held,
                  plain);
    spec_gate_open(&b.gate);
    cr_assert_eq(scope_join(s), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0);
    cr_assert_eq(atomic_load(&count), 2 * N);
    spec_release_all(fs, N);
    spec_release_all(gs, N);
    spec_release_all(blk, 1);
    free(fs);
    free(gs);
    scope_release(s);
    pool_destroy(p);
    spec_blocker_destroy(&b);
    expect_no_leaks();
}
