/*
 * Thread-start failure at every place the library starts a thread: a pool's
 * core threads (pool_create), the stand-ins of tasks that block (in
 * future_wait, or in pool_destroy inside a task), the blocking-job threads
 * (pool_submit_blocking, and the tree of starts each new one makes), the
 * timer thread (future_delay, future_timeout) and the default pool.
 *
 * As faults.c does for allocations, each scenario runs with the k-th thread
 * start failing, once ("transient") or from then on ("persistent"), for
 * k = 1 up to the first k it never reaches (fut__fault_fired tells). A call
 * may fail only as the header documents, a pool may run with fewer threads
 * only as documented, every accepted task must run or be reported
 * cancelled, nothing may hang, crash or leak, and once threads start again
 * the same pool and API work.
 *
 * Scenarios wait for the state they need (gates, semaphores, a pool's
 * statistics polled with sched_yield), never for time to pass; each test's
 * .timeout is only a watchdog. future_wait_for() with a generous timeout is
 * used where the library may hang, so the test reports it instead.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <criterion/parameterized.h>
#include <errno.h>
#include <sched.h>
#include <unistd.h>

#define WATCHDOG 20                         /* seconds, per test */
#define HANG_NS  (5 * UINT64_C(1000000000)) /* "it hangs" after this */

/* ----------------------------------------------------------- helpers -- */

static long fired(void)
{
    return fut__fault_fired(FUT_FAULT_THREAD);
}

static void arm(long k, bool persistent)
{
    fut__fault_set(FUT_FAULT_THREAD, k, persistent);
}

static void disarm(void)
{
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static struct pool_stats stats_of(pool_t *pool)
{
    struct pool_stats st;
    cr_assert_eq(pool_stats(pool, &st), 0);
    return st;
}

static void release_each(future_t **fs, int n)
{
    for (int i = 0; i < n; i++)
        future_release(fs[i]);
}

/* Waits for each of @fs, which must succeed with @value. */
static void expect_values(future_t **fs, int n, void *value)
{
    for (int i = 0; i < n; i++) {
        void *v = NULL;
        cr_assert_eq(future_wait(fs[i], &v), 0, "future %d", i);
        cr_assert_eq(v, value, "future %d", i);
    }
}

/*
 * Runs the scenario with the k-th start failing for k = 1, 2, ... until it
 * no longer reaches the k-th start; returns how many starts failed in turn.
 */
typedef bool (*scenario_fn)(long k, bool persistent);

static long sweep(const char *what, scenario_fn run, bool persistent)
{
    enum { MAX_K = 200 };
    long sites = 0;
    while (sites < MAX_K && run(sites + 1, persistent))
        sites++;
    cr_assert_lt(sites, MAX_K, "%s: the sweep did not end", what);
    cr_log_info("%s, %s: thread starts 1..%ld failed in turn", what,
                persistent ? "persistent" : "transient", sites);
    return sites;
}

/*
 * A chain of tasks: each level submits the next to the same pool and waits
 * for it (odd levels with future_wait_for, to cover timed waits), and the
 * deepest waits at a gate. Every level blocks while the gate is shut, so
 * each one asks its pool for a stand-in, or helps when none can start.
 */
struct chain {
    pool_t *pool;
    struct gate leaf;
    atomic_int runs;
};

struct level {
    struct chain *c;
    int depth;
};

static int chain_task(void *arg, void **result)
{
    struct level *l = arg;
    atomic_fetch_add(&l->c->runs, 1);
    if (l->depth == 0) {
        gate_pass(&l->c->leaf);
        *result = U2P(1);
        return 0;
    }
    struct level child = {l->c, l->depth - 1}; /* lives until we return */
    future_t *f = pool_submit(l->c->pool, chain_task, &child);
    if (!f)
        return errno;
    if (l->depth % 2 && !future_wait_for(f, 60 * UINT64_C(1000000000)))
        return ETIMEDOUT; /* the test's watchdog fires first */
    void *v = NULL;
    int rc = future_wait(f, &v);
    future_release(f);
    *result = U2P(P2U(v) + 1);
    return rc;
}

static void chain_init(struct chain *c, pool_t *pool)
{
    c->pool = pool;
    gate_init(&c->leaf);
    atomic_init(&c->runs, 0);
}

/* Waits for the chain's top future @f: it must succeed through @depth. */
static void chain_finish(struct chain *c, future_t *f, int depth)
{
    gate_open(&c->leaf);
    void *v = NULL;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(depth + 1));
    cr_assert_eq(atomic_load(&c->runs), depth + 1, "every level ran once");
    future_release(f);
    gate_destroy(&c->leaf);
}

/* Runs a chain of @depth nested waits on @pool to the end. */
static void chain_run(pool_t *pool, int depth)
{
    struct chain c;
    chain_init(&c, pool);
    struct level top = {&c, depth};
    future_t *f = pool_submit(pool, chain_task, &top);
    cr_assert_not_null(f, "errno %d", errno);
    gate_await_started(&c.leaf, 1);
    chain_finish(&c, f, depth);
}

/* Runs @n counting tasks on @pool; all must run. */
static void run_tasks(pool_t *pool, int n)
{
    atomic_int runs = 0;
    future_t **fs = calloc((size_t)n, sizeof *fs);
    for (int i = 0; i < n; i++) {
        fs[i] = pool_submit(pool, count_task, &runs);
        cr_assert_not_null(fs[i], "task %d: errno %d", i, errno);
    }
    expect_values(fs, n, &runs);
    cr_assert_eq(atomic_load(&runs), n);
    release_each(fs, n);
    free(fs);
}

/* Shows that exactly @n threads run @pool's tasks: @n gated tasks all
 * start, and one more stays queued until they finish. */
static void expect_capacity(pool_t *pool, size_t n)
{
    struct gate g;
    gate_init(&g);
    future_t **busy = saturate(pool, (int)n, &g);
    atomic_int runs = 0;
    future_t *extra = pool_submit(pool, count_task, &runs);
    cr_assert_not_null(extra);
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.running, n);
    cr_assert_eq(st.queued, 1, "a pool of %zu threads has no more", n);
    gate_open(&g);
    cr_assert_eq(future_wait(extra, NULL), 0);
    cr_assert_eq(atomic_load(&runs), 1);
    future_release(extra);
    expect_values(busy, (int)n, &g);
    release_all(busy, (int)n);
    gate_destroy(&g);
}

/* ------------------------------------------------------- pool_create -- */

#define CREATE_N 4 /* core threads asked for */

/*
 * The k-th of pool_create's starts fails. The header: "If some but not all
 * threads could be started, the pool runs with the threads it got (at
 * least one)", and "EAGAIN when no thread could be started". pool_create
 * stops at the first failure, so a pool gets the k - 1 threads before it.
 */
static bool create_scenario(long k, bool persistent)
{
    long before = fired();
    arm(k, persistent);
    errno = 0;
    pool_t *pool = pool_create(CREATE_N);
    int err = errno;
    bool reached = fired() > before;
    cr_assert_eq(reached, k <= CREATE_N, "k=%ld", k);
    size_t got = min_size((size_t)k - 1, CREATE_N);
    if (got == 0) {
        cr_assert_null(pool, "no thread started, yet a pool");
        cr_assert_eq(err, EAGAIN);
        disarm();
        pool = pool_create(CREATE_N); /* works again, in full */
        cr_assert_not_null(pool, "errno %d", errno);
        got = CREATE_N;
    } else {
        cr_assert_not_null(pool, "k=%ld: errno %d", k, err);
    }
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.threads, got, "k=%ld", k);
    cr_assert_eq(st.peak_threads, got);
    expect_capacity(pool, got);
    run_tasks(pool, 100);
    chain_run(pool, 3); /* a persistent failure: the waiters help */
    disarm();
    run_tasks(pool, 100); /* starts succeed again: the same pool works */
    chain_run(pool, 3);
    pool_destroy(pool);
    return reached;
}

CheckedTest(thread_faults, pool_create_kth_start_fails_once,
            .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("pool_create", create_scenario, false), CREATE_N);
    expect_no_leaks();
}

CheckedTest(thread_faults, pool_create_kth_and_later_starts_fail,
            .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("pool_create", create_scenario, true), CREATE_N);
    expect_no_leaks();
}

/* ---------------------------------------------------------- stand-ins -- */

#define CHAIN_DEPTH 6 /* nested waits: one stand-in each */
#define CHAIN_CORE  2

/*
 * A chain of CHAIN_DEPTH waits on a pool of CHAIN_CORE threads, the k-th
 * stand-in failing to start. A waiter without a stand-in helps (runs
 * queued tasks itself) and asks again: with a transient failure it gets
 * one on asking again, with a persistent one the chain completes by
 * helping and the pool never grows beyond the k - 1 stand-ins it got.
 */
static bool standin_scenario(long k, bool persistent)
{
    pool_t *pool = pool_create(CHAIN_CORE);
    cr_assert_not_null(pool);
    struct chain c;
    chain_init(&c, pool);
    struct level top = {&c, CHAIN_DEPTH};
    bool fails = k <= CHAIN_DEPTH;
    size_t want =
        CHAIN_CORE +
        (persistent ? min_size((size_t)k - 1, CHAIN_DEPTH) : CHAIN_DEPTH);
    long before = fired();
    arm(k, persistent);
    future_t *f = pool_submit(pool, chain_task, &top);
    cr_assert_not_null(f);
    gate_await_started(&c.leaf, 1);
    /* The gate is shut, so every level blocks and asks for a stand-in
     * (again and again while none starts): wait until they have. */
    while (stats_of(pool).threads < want || (fails && fired() == before))
        sched_yield();
    chain_finish(&c, f, CHAIN_DEPTH);
    struct pool_stats st = stats_of(pool);
    bool reached = fired() > before;
    disarm();
    cr_assert_eq(reached, fails, "k=%ld", k);
    cr_assert_eq(st.peak_threads, want, "k=%ld", k);
    chain_run(pool, CHAIN_DEPTH); /* the same pool, starts succeeding */
    run_tasks(pool, 50);
    pool_destroy(pool);
    return reached;
}

CheckedTest(thread_faults, standin_kth_start_fails_once, .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("stand-ins", standin_scenario, false), CHAIN_DEPTH);
    expect_no_leaks();
}

CheckedTest(thread_faults, standin_kth_and_later_starts_fail,
            .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("stand-ins", standin_scenario, true), CHAIN_DEPTH);
    expect_no_leaks();
}

struct awaits_input {
    future_t *input;
    sem_t waiting;
};

static int wait_on_input(void *arg, void **result)
{
    struct awaits_input *w = arg;
    sem_post(&w->waiting);
    return future_wait(w->input, result);
}

/*
 * The only thread of a pool waits for a promise and no stand-in can start:
 * tasks and blocking jobs submitted while it waits (not only the children
 * it waits for, as tests/unit/sched.c tests) must run, on the waiter's own stack.
 */
CheckedTest(thread_faults, a_waiter_without_stand_in_runs_later_work,
            .timeout = WATCHDOG)
{
    enum { N = 20 };
    pool_t *pool = pool_create(1);
    promise_t *p = promise_create();
    struct awaits_input w = {.input = promise_future(p)};
    sem_init(&w.waiting, 0, 0);
    long before = fired();
    arm(1, true);
    future_t *waiter = pool_submit(pool, wait_on_input, &w);
    sem_wait(&w.waiting);
    atomic_int runs = 0;
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = pool_submit(pool, count_task, &runs);
        cr_assert_not_null(fs[i]);
    }
    future_t *job = pool_submit_blocking(pool, value_task, U2P(9));
    cr_assert_not_null(job, "blocking submission never fails");
    expect_values(fs, N, &runs);
    void *v = NULL;
    cr_assert_eq(future_wait(job, &v), 0);
    cr_assert_eq(v, U2P(9));
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.peak_threads, 1, "no thread started");
    cr_assert(!future_is_ready(waiter));
    cr_assert_eq(promise_resolve(p, U2P(4)), 0);
    cr_assert_eq(future_wait(waiter, &v), 0);
    cr_assert_eq(v, U2P(4));
    cr_assert_gt(fired() - before, 1, "the waiter asked again");
    disarm();
    chain_run(pool, 3);
    cr_assert_gt(stats_of(pool).peak_threads, 1, "stand-ins start again");
    release_each(fs, N);
    future_release(job);
    future_release(waiter);
    future_release(w.input);
    promise_release(p);
    sem_destroy(&w.waiting);
    pool_destroy(pool);
    expect_no_leaks();
}

struct destroyer {
    pool_t *victim;
    sem_t started;
};

static int destroy_other_pool(void *arg, void **result)
{
    struct destroyer *d = arg;
    sem_post(&d->started);
    pool_destroy(d->victim); /* blocks this thread: wants a stand-in */
    *result = arg;
    return 0;
}

struct needs_other {
    pool_t *other;
    struct gate go;
    sem_t submitted;
};

static int wait_on_other_pool(void *arg, void **result)
{
    struct needs_other *n = arg;
    gate_pass(&n->go);
    future_t *x = pool_submit(n->other, value_task, U2P(5));
    sem_post(&n->submitted);
    if (!x)
        return errno;
    int rc = future_wait(x, result);
    future_release(x);
    return rc;
}

/*
 * pool_destroy() inside a task of pool A counts the task as blocked in A
 * and asks A for a stand-in, as future_wait() does. Here the pool being
 * destroyed, B, waits for a task queued on A, whose only thread is the one
 * in pool_destroy(). With no stand-in, that task can only run once starts
 * succeed again. Expected: it does (as future_wait's waiters ask again).
 * pool_destroy once neither helped nor asked again, so A and B stayed
 * deadlocked after failures stopped.
 */
CheckedTest(thread_faults, destroy_in_a_task_recovers_when_starts_succeed,
            .timeout = WATCHDOG)
{
    pool_t *a = pool_create(1), *b = pool_create(1);
    struct needs_other n = {.other = a};
    gate_init(&n.go);
    sem_init(&n.submitted, 0, 0);
    struct destroyer d = {.victim = b};
    sem_init(&d.started, 0, 0);
    future_t *fb = pool_submit(b, wait_on_other_pool, &n);
    gate_await_started(&n.go, 1);
    long before = fired();
    arm(1, true);
    future_t *fa = pool_submit(a, destroy_other_pool, &d);
    sem_wait(&d.started);
    while (fired() == before) /* its stand-in failed: only it asks now */
        sched_yield();
    gate_open(&n.go);
    sem_wait(&n.submitted); /* queued on A behind the destroying task */
    disarm();               /* threads start again */
    bool done = future_wait_for(fa, HANG_NS);
    cr_assert(done,
              "a task in pool_destroy() got no stand-in and "
              "asked for none once starts succeeded: deadlock "
              "(A: %zu queued)",
              stats_of(a).queued);
    void *v = NULL;
    cr_assert_eq(future_wait(fb, &v), 0);
    cr_assert_eq(v, U2P(5));
    cr_assert_eq(future_wait(fa, NULL), 0);
    future_release(fa);
    future_release(fb);
    pool_destroy(a);
    gate_destroy(&n.go);
    sem_destroy(&n.submitted);
    sem_destroy(&d.started);
    expect_no_leaks();
}

/* ------------------------------------------------------ blocking jobs -- */

#define JOBS 8

/*
 * JOBS gated blocking jobs on a pool whose core thread is busy, the k-th
 * blocking-thread start failing. The header: "when a thread cannot be
 * started, jobs queue and never fail". A transient failure is retried at
 * once, so every job gets a thread; a persistent one leaves the jobs past
 * the k - 1 threads queued. Once starts succeed, a new submission starts
 * threads for them all (nothing else retries: see BUG 1).
 * @queued_first: the JOBS jobs were queued while no thread could start,
 * and the k-th start is counted from one more submission, so starts 2 and
 * up are all made by new blocking threads (the tree of starts).
 */
static bool blocking_run(long k, bool persistent, bool queued_first)
{
    pool_t *pool = pool_create(1);
    struct gate core, jobs;
    gate_init(&core);
    gate_init(&jobs);
    future_t **busy = saturate(pool, 1, &core);
    future_t *fs[JOBS + 2];
    int n = 0;
    if (queued_first) {
        arm(1, true);
        for (; n < JOBS; n++) {
            fs[n] = pool_submit_blocking(pool, gated_task, &jobs);
            cr_assert_not_null(fs[n], "job %d refused", n);
        }
        cr_assert_eq(stats_of(pool).queued, JOBS);
        disarm();
    }
    long before = fired();
    arm(k, persistent);
    for (int i = 0; i < (queued_first ? 1 : JOBS); i++, n++) {
        fs[n] = pool_submit_blocking(pool, gated_task, &jobs);
        cr_assert_not_null(fs[n], "k=%ld: job %d refused (errno %d)", k, n,
                           errno);
    }
    size_t got = persistent ? min_size((size_t)k - 1, (size_t)n) : (size_t)n;
    gate_await_started(&jobs, (int)got);
    /* Starts are made by submitters and by new threads before they run
     * their job, so none is still under way. */
    struct pool_stats st = stats_of(pool);
    bool reached = fired() > before;
    disarm();
    cr_assert_eq(reached, k <= (long)n, "k=%ld", k);
    cr_assert_eq(st.blocking_threads, got, "k=%ld", k);
    cr_assert_eq(st.queued, n - got, "k=%ld", k);
    cr_assert_eq(st.running, 1 + got, "k=%ld", k);
    if (got < (size_t)n) {
        fs[n++] = pool_submit_blocking(pool, gated_task, &jobs);
        cr_assert_not_null(fs[n - 1]);
        gate_await_started(&jobs, n - (int)got);
        st = stats_of(pool);
        cr_assert_eq(st.blocking_threads, (size_t)n, "every job got a thread");
        cr_assert_eq(st.queued, 0);
    }
    gate_open(&jobs);
    gate_open(&core);
    expect_values(fs, n, &jobs);
    expect_values(busy, 1, &core);
    release_each(fs, n);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&core);
    gate_destroy(&jobs);
    return reached;
}

static bool blocking_scenario(long k, bool persistent)
{
    return blocking_run(k, persistent, false);
}

static bool tree_scenario(long k, bool persistent)
{
    return blocking_run(k, persistent, true);
}

CheckedTest(thread_faults, blocking_kth_start_fails_once, .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("blocking jobs", blocking_scenario, false), JOBS);
    expect_no_leaks();
}

CheckedTest(thread_faults, blocking_kth_and_later_starts_fail,
            .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("blocking jobs", blocking_scenario, true), JOBS);
    expect_no_leaks();
}

CheckedTest(thread_faults, blocking_tree_kth_start_fails_once,
            .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("blocking tree", tree_scenario, false), JOBS + 1);
    expect_no_leaks();
}

CheckedTest(thread_faults, blocking_tree_kth_and_later_starts_fail,
            .timeout = WATCHDOG)
{
    cr_assert_eq(sweep("blocking tree", tree_scenario, true), JOBS + 1);
    expect_no_leaks();
}

/* With no thread able to start, queued jobs still drain on the core
 * thread, or are reported cancelled: none is lost, nothing hangs. */
static void shutdown_without_threads(int mode)
{
    pool_t *pool = pool_create(1);
    struct gate core;
    gate_init(&core);
    future_t **busy = saturate(pool, 1, &core);
    arm(1, true);
    atomic_int runs = 0;
    future_t *fs[JOBS];
    for (int i = 0; i < JOBS; i++) {
        fs[i] = pool_submit_blocking(pool, count_task, &runs);
        cr_assert_not_null(fs[i], "job %d refused", i);
    }
    cr_assert_eq(stats_of(pool).queued, JOBS);
    pool_shutdown(pool, mode);
    gate_open(&core);
    pool_destroy(pool); /* failures still on */
    for (int i = 0; i < JOBS; i++)
        cr_assert_eq(future_wait(fs[i], NULL),
                     mode == POOL_CANCEL ? ECANCELED : 0, "job %d", i);
    cr_assert_eq(atomic_load(&runs), mode == POOL_CANCEL ? 0 : JOBS);
    disarm();
    release_each(fs, JOBS);
    release_all(busy, 1);
    gate_destroy(&core);
    expect_no_leaks();
}

CheckedTest(thread_faults, jobs_queued_without_threads_drain,
            .timeout = WATCHDOG)
{
    shutdown_without_threads(POOL_DRAIN);
}

CheckedTest(thread_faults, jobs_queued_without_threads_are_cancelled,
            .timeout = WATCHDOG)
{
    shutdown_without_threads(POOL_CANCEL);
}

struct waits_for_job {
    future_t *b;
    sem_t started, b_ready;
};

static int wait_for_job_b(void *arg, void **result)
{
    struct waits_for_job *w = arg;
    sem_post(&w->started);
    sem_wait(&w->b_ready);
    return future_wait(w->b, result);
}

/*
 * Job A runs on the pool's one blocking thread and waits for job B, whose
 * thread could not start: B queues behind A, where the core thread may
 * take it, since a start failed. B must run.
 * Once nothing retried a failed start, so A and B stayed deadlocked until
 * an unrelated blocking submission.
 */
CheckedTest(thread_faults, a_job_queued_by_failed_starts_runs_once_they_succeed,
            .timeout = WATCHDOG)
{
    pool_t *pool = pool_create(1);
    struct waits_for_job w;
    sem_init(&w.started, 0, 0);
    sem_init(&w.b_ready, 0, 0);
    future_t *a = pool_submit_blocking(pool, wait_for_job_b, &w);
    sem_wait(&w.started);
    arm(1, true);
    w.b = pool_submit_blocking(pool, value_task, U2P(7));
    cr_assert_not_null(w.b, "blocking submission never fails");
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.blocking_threads, 1);
    /* B waits in the queue, or the core thread has taken it already (a
     * start failed, so the jobs are the core threads' too), or even run
     * it; A runs throughout. */
    cr_assert(st.queued <= 1 && st.running >= 1 &&
                  st.queued + st.running <= 2,
              "queued %zu, running %zu", st.queued, st.running);
    disarm(); /* threads start again */
    sem_post(&w.b_ready);
    bool done = future_wait_for(a, HANG_NS);
    st = stats_of(pool);
    if (!done) { /* free them, so the test ends cleanly */
        future_t *kick = pool_submit_blocking(pool, value_task, NULL);
        cr_assert_eq(future_wait(kick, NULL), 0);
        future_release(kick);
    }
    void *v = NULL;
    cr_assert_eq(future_wait(a, &v), 0);
    cr_assert_eq(v, U2P(7));
    future_release(a);
    future_release(w.b);
    pool_destroy(pool);
    sem_destroy(&w.started);
    sem_destroy(&w.b_ready);
    cr_assert(done,
              "job B stayed queued (%zu queued, %zu blocking "
              "threads) after starts succeeded again; A waited for it "
              "%.0f s",
              st.queued, st.blocking_threads, HANG_NS / 1e9);
    expect_no_leaks();
}

/* -------------------------------------------------------------- timer -- */

/* Criterion runs each test in a fresh process, so each test below sees
 * the timer thread not started yet: there is one per process. */

static int mark(void *value, void *arg, void **result)
{
    atomic_store((atomic_bool *)arg, true);
    *result = value;
    return 0;
}

CheckedTest(thread_faults, timer_first_start_fails_once, .timeout = WATCHDOG)
{
    long before = fired();
    arm(1, false);
    errno = 0;
    cr_assert_null(future_delay(1000), "the timer thread cannot start");
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(fired() - before, 1);
    future_t *d = future_delay(1000); /* a later call tries again */
    cr_assert_not_null(d, "errno %d", errno);
    cr_assert_eq(future_wait(d, NULL), 0);
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    future_t *t = future_timeout(pf, 1000);
    cr_assert_not_null(t);
    cr_assert_eq(future_wait(t, NULL), ETIMEDOUT);
    future_release(t);
    future_release(pf);
    promise_release(p);
    future_release(d);
    disarm();
    expect_no_leaks();
}

CheckedTest(thread_faults, timer_every_start_fails, .timeout = WATCHDOG)
{
    long before = fired();
    arm(1, true);
    for (int i = 0; i < 3; i++) {
        errno = 0;
        cr_assert_null(future_delay(1000));
        cr_assert_eq(errno, EAGAIN);
    }
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    errno = 0;
    cr_assert_null(future_timeout(pf, 1000), "needs the timer thread");
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(fired() - before, 4, "each call tried to start it");
    /* The refused timeout consumed nothing: the input is untouched. */
    cr_assert(!future_is_ready(pf));
    disarm();
    future_t *t = future_timeout(pf, 60 * UINT64_C(1000000000));
    cr_assert_not_null(t, "errno %d", errno);
    cr_assert_eq(promise_resolve(p, U2P(3)), 0);
    void *v = NULL;
    cr_assert_eq(future_wait(t, &v), 0);
    cr_assert_eq(v, U2P(3));
    future_t *d = future_delay(1000);
    cr_assert_not_null(d);
    cr_assert_eq(future_wait(d, NULL), 0);
    future_release(d);
    future_release(t);
    future_release(pf);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(thread_faults, timer_starts_one_thread_per_process,
            .timeout = WATCHDOG)
{
    long before = fired();
    arm(2, false); /* the sweep's k = 2: never reached */
    future_t *fs[8];
    for (int i = 0; i < 8; i++) {
        fs[i] = future_delay(1000 * (uint64_t)i);
        cr_assert_not_null(fs[i], "errno %d", errno);
    }
    for (int i = 0; i < 8; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0);
    arm(1, true); /* the thread runs: nothing more to fail */
    future_t *again = future_delay(1000);
    cr_assert_not_null(again);
    cr_assert_eq(future_wait(again, NULL), 0);
    cr_assert_eq(fired(), before, "k = 1 is the timer's only start");
    disarm();
    future_release(again);
    release_each(fs, 8);
    expect_no_leaks();
}

/* ------------------------------------------------------- default pool -- */

static size_t online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/*
 * A continuation of a promise runs on the default pool. Returns its
 * outcome; *@ran tells whether the callback ran. If the default pool
 * cannot start, the continuation may fail (the callback then never runs)
 * or wait for a thread: *@hung says it did not settle within HANG_NS, and
 * then it must run once failures stop.
 */
static int continuation_outcome(bool *ran, bool *hung)
{
    atomic_bool marked = false;
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    future_t *then = future_then(pf, mark, &marked);
    cr_assert_not_null(then, "errno %d", errno);
    cr_assert_eq(promise_resolve(p, U2P(6)), 0);
    *hung = !future_wait_for(then, HANG_NS);
    if (*hung)
        disarm();
    void *v = NULL;
    int rc = future_wait(then, &v);
    *ran = atomic_load(&marked);
    cr_assert(rc == 0 ? *ran && v == U2P(6) : !*ran,
              "outcome %d, callback ran: %d", rc, *ran);
    future_release(then);
    future_release(pf);
    promise_release(p);
    return rc;
}

struct default_case {
    long k;
    bool persistent;
};

ParameterizedTestParameters(thread_faults, default_pool_kth_start_fails)
{
    static struct default_case cases[2 * 11];
    size_t ncpu = online_cpus(), n = 0;
    for (int persistent = 0; persistent < 2; persistent++)
        for (size_t k = 1; k <= ncpu + 1; k++)
            if (k <= 8 || k >= ncpu) /* 1..8, and the last two */
                cases[n++] = (struct default_case){(long)k, persistent};
    return cr_make_param_array(struct default_case, cases, n);
}

/*
 * pool_default() with its k-th start failing, in a fresh process. The
 * header: "NULL with errno ENOMEM or EAGAIN; a later call tries again",
 * and pool_create's "runs with the threads it got".
 */
ParameterizedTest(struct default_case *c, thread_faults,
                  default_pool_kth_start_fails, .timeout = WATCHDOG)
{
    fut__count_live(true);
    size_t ncpu = online_cpus();
    long before = fired();
    arm(c->k, c->persistent);
    errno = 0;
    pool_t *d = pool_default();
    int err = errno;
    cr_assert_eq(fired() > before, (size_t)c->k <= ncpu, "k=%ld", c->k);
    bool ran, hung;
    if (c->k == 1) {
        cr_assert_null(d, "no thread started, yet a default pool");
        cr_assert_eq(err, EAGAIN);
        int rc = continuation_outcome(&ran, &hung);
        cr_log_info("default pool, k=1 %s: a continuation %s",
                    c->persistent ? "persistent" : "transient",
                    ran    ? "ran"
                    : hung ? "waited, then ran"
                           : "failed");
        cr_assert(ran || hung || rc == EAGAIN, "rc %d", rc);
        disarm();
        d = pool_default();
        cr_assert_not_null(d, "a later call tries again: errno %d", errno);
        cr_assert_eq(stats_of(d).threads, ncpu);
    } else {
        size_t got = min_size((size_t)c->k - 1, ncpu);
        cr_assert_not_null(d, "k=%ld: errno %d", c->k, err);
        cr_assert_eq(stats_of(d).threads, got, "k=%ld", c->k);
        expect_capacity(d, got);
        cr_assert_eq(continuation_outcome(&ran, &hung), 0);
        run_tasks(d, 50);
        chain_run(d, 3); /* a persistent failure: the waiters help */
        disarm();
    }
    cr_assert_eq(pool_default(), d, "one default pool");
    cr_assert_eq(continuation_outcome(&ran, &hung), 0);
    cr_assert(ran && !hung);
    run_tasks(d, 50);
    chain_run(d, 3);
    expect_no_live_futures();
    expect_no_leaks();
}

/*
 * The first use of the default pool is a continuation's, and that one
 * start fails once. As the header documents (future_then), the
 * continuation either ran, or failed with EAGAIN without running its
 * callback; this test logs which.
 */
CheckedTest(thread_faults, default_pool_first_start_fails_under_a_continuation,
            .timeout = WATCHDOG)
{
    long before = fired();
    arm(1, false);
    bool ran, hung;
    int rc = continuation_outcome(&ran, &hung);
    cr_assert_eq(fired() - before, 1, "the default pool's first start");
    cr_assert(ran || rc == EAGAIN, "rc %d", rc);
    if (!ran)
        cr_log_info("one failed thread start failed a continuation with "
                    "EAGAIN; its callback never ran");
    disarm();
    cr_assert_not_null(pool_default(), "a later call tries again");
    cr_assert_eq(continuation_outcome(&ran, &hung), 0);
    cr_assert(ran);
    expect_no_leaks();
}

/* As above, but what fails is the allocation of the blocking thread's own
 * record, before any thread start: the job must still run. */
static pool_t *record_pool;

static int wait_for_a_job_whose_record_fails(void *arg, void **result)
{
    (void)arg;
    /* The 1st allocation is the job's future, the 2nd the worker record
     * of the blocking thread that would run it. */
    fut__fault_set(FUT_FAULT_ALLOC, 2, false);
    future_t *job = pool_submit_blocking(record_pool, value_task, U2P(1));
    fut__fault_set(FUT_FAULT_ALLOC, 0, false);
    if (!job)
        return EIO;
    bool done = future_wait_for(job, HANG_NS);
    future_release(job);
    *result = NULL;
    return done ? 0 : ETIMEDOUT;
}

/* Many rounds: the failure can land while the start of the thread that
 * runs the outer job is still being recorded as a success, and that
 * success must not hide it (it did, in about one round in 300). */
CheckedTest(thread_faults, a_job_whose_thread_record_cannot_be_allocated_runs,
            .timeout = WATCHDOG)
{
    for (int round = 0; round < 1000; round++) {
        record_pool = pool_create(1);
        long before = fut__fault_fired(FUT_FAULT_ALLOC);
        future_t *f = pool_submit_blocking(
            record_pool, wait_for_a_job_whose_record_fails, NULL);
        cr_assert_eq(future_wait(f, NULL), 0, "round %d: the job was stranded",
                     round);
        cr_assert_eq(fut__fault_fired(FUT_FAULT_ALLOC) - before, 1);
        future_release(f);
        pool_destroy(record_pool);
    }
}

/*
 * With no blocking thread able to start, the core thread runs the job: it
 * is counted once in pool_stats' running, as a job (it was counted twice,
 * as a job and as the core thread's task).
 */
CheckedTest(thread_faults, a_job_run_by_a_core_thread_counts_once,
            .timeout = WATCHDOG)
{
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    arm(1, true); /* every thread start fails from now on */
    future_t *job = pool_submit_blocking(pool, gated_task, &g);
    cr_assert_not_null(job);
    gate_await_started(&g, 1);
    struct pool_stats st = stats_of(pool);
    disarm();
    cr_assert_eq(st.blocking_threads, 0);
    cr_assert_eq(st.running, 1, "running %zu", st.running);
    cr_assert_eq(st.queued, 0);
    gate_open(&g);
    cr_assert_eq(future_wait(job, NULL), 0);
    future_release(job);
    pool_destroy(pool);
    gate_destroy(&g);
}
