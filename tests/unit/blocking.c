/*
 * Tests of blocking jobs (pool_submit_blocking), their limit, idle
 * timeouts, pool_stats, and waiting inside a task counted as blocking.
 *
 * Jobs that sleep do so as their simulated work, never to order events:
 * ordering comes from gates. Where a thread must exit on its own (an idle
 * timeout), the test polls pool_stats() with an overall deadline.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>
#include <time.h>

#define MS UINT64_C(1000000)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits about a millisecond without sleeping: a wait that never ends. */
static void pause_a_moment(void)
{
    promise_t *never = promise_create();
    future_t *f = promise_future(never);
    cr_assert_not(future_wait_for(f, MS));
    cr_assert(future_cancel(f)); /* so that it fails without a report */
    future_release(f);
    promise_release(never);
}

static struct pool_stats stats_of(pool_t *pool)
{
    struct pool_stats st;
    cr_assert_eq(pool_stats(pool, &st), 0);
    return st;
}

static bool has_blocking_threads(const struct pool_stats *st, size_t n)
{
    return st->blocking_threads == n;
}

/* Every stand-in gone and every task counted. */
static bool settled_down_to(const struct pool_stats *st, size_t n)
{
    return st->threads == n && st->running == 0;
}

/* Polls @pool's stats until @done, for at most ten seconds. */
static struct pool_stats
await_stats(pool_t *pool, bool (*done)(const struct pool_stats *, size_t),
            size_t n)
{
    uint64_t deadline = now_ns() + 10000 * MS;
    struct pool_stats st = stats_of(pool);
    while (!done(&st, n) && now_ns() < deadline) {
        pause_a_moment();
        st = stats_of(pool);
    }
    cr_assert(done(&st, n),
              "after 10 s: %zu threads, %zu blocking, %zu running, %zu queued",
              st.threads, st.blocking_threads, st.running, st.queued);
    return st;
}

static struct pool_stats await_blocking_threads(pool_t *pool, size_t n)
{
    return await_stats(pool, has_blocking_threads, n);
}

/* The simulated work of a blocking job: 50 ms of sleep. */
static int sleep_job(void *arg, void **result)
{
    work_for_ns(50 * MS);
    *result = arg;
    return 0;
}

static void wait_all_ok(future_t **fs, int n)
{
    for (int i = 0; i < n; i++) {
        void *v;
        cr_assert_eq(future_wait(fs[i], &v), 0, "job %d", i);
        cr_assert_eq(v, U2P(i), "job %d", i);
    }
}

static void release_each(future_t **fs, int n)
{
    for (int i = 0; i < n; i++)
        future_release(fs[i]);
}

/* ------------------------------------------------------------ overlap -- */

CheckedTest(blocking, sleeping_jobs_overlap_on_a_pool_of_one_core_thread,
            .timeout = 60)
{
    enum { N = 200 };
    pool_t *pool = pool_create(1);
    cr_assert_not_null(pool);
    future_t *fs[N];
    uint64_t start = now_ns();
    for (int i = 0; i < N; i++) {
        fs[i] = pool_submit_blocking(pool, sleep_job, U2P(i));
        cr_assert_not_null(fs[i]);
    }
    wait_all_ok(fs, N);
    uint64_t took = now_ns() - start;
    /* One by one: N * 50 ms = 10 s. */
    cr_assert_lt(took, N * 50 * MS / 4, "took %.2f s", (double)took / 1e9);
    struct pool_stats st = stats_of(pool);
    cr_assert_gt(st.peak_threads, 2, "peak %zu threads", st.peak_threads);
    cr_assert_leq(st.peak_threads, N + 1);
    release_each(fs, N);
    pool_destroy(pool);
    expect_no_leaks();
}

/* -------------------------------------------------------------- limit -- */

struct concurrency {
    atomic_int now, max;
    struct gate gate;
};

/* Raises *@max to @n if @n is larger. */
static void raise_max(atomic_int *max, int n)
{
    int seen = atomic_load(max);
    while (n > seen && !atomic_compare_exchange_weak(max, &seen, n))
        ;
}

/* Counts the jobs running with it, then waits at the gate. */
static int counted_job(void *arg, void **result)
{
    struct concurrency *c = arg;
    raise_max(&c->max, atomic_fetch_add(&c->now, 1) + 1);
    gate_pass(&c->gate);
    atomic_fetch_sub(&c->now, 1);
    *result = arg;
    return 0;
}

CheckedTest(blocking, the_blocking_limit_caps_threads_and_the_rest_queue,
            .timeout = 60)
{
    enum { N = 20, LIMIT = 4 };
    struct concurrency c = {0};
    gate_init(&c.gate);
    pool_t *pool = pool_create(1);
    cr_assert_eq(pool_set_blocking_limit(pool, LIMIT), 0);
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = pool_submit_blocking(pool, counted_job, &c);
        cr_assert_not_null(fs[i], "past the limit jobs queue, never fail");
    }
    gate_await_started(&c.gate, LIMIT);
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.blocking_threads, LIMIT);
    cr_assert_eq(st.threads, LIMIT + 1, "one core thread and the limit");
    cr_assert_eq(st.running, LIMIT);
    cr_assert_eq(st.queued, N - LIMIT);
    cr_assert_eq(st.completed, 0);
    cr_assert_eq(atomic_load(&c.max), LIMIT);
    gate_open(&c.gate);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0, "job %d", i);
    cr_assert_eq(atomic_load(&c.max), LIMIT, "at most %d at once", LIMIT);
    st = stats_of(pool);
    cr_assert_eq(st.peak_threads, LIMIT + 1);
    cr_assert_leq(st.blocking_threads, LIMIT);
    release_each(fs, N);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&c.now), 0);
    gate_destroy(&c.gate);
    expect_no_leaks();
}

CheckedTest(blocking, a_lowered_limit_lets_running_jobs_finish_then_applies,
            .timeout = 60)
{
    enum { N = 8 };
    struct concurrency c = {0};
    gate_init(&c.gate);
    pool_t *pool = pool_create(1);
    future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = pool_submit_blocking(pool, counted_job, &c);
    gate_await_started(&c.gate, N);
    cr_assert_eq(stats_of(pool).blocking_threads, N);
    cr_assert_eq(pool_set_blocking_limit(pool, 2), 0);
    cr_assert_eq(stats_of(pool).running, N, "running jobs are not stopped");
    gate_open(&c.gate);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0);
    /* The surplus threads exit once their job is done. */
    struct pool_stats st = await_blocking_threads(pool, 2);
    cr_assert_eq(st.threads, 3);
    cr_assert_eq(st.peak_threads, N + 1);
    release_each(fs, N);
    pool_destroy(pool);
    gate_destroy(&c.gate);
    expect_no_leaks();
}

/* --------------------------------------------------------- idle timeout -- */

CheckedTest(blocking, idle_blocking_threads_retire_and_come_back_on_demand,
            .timeout = 60)
{
    enum { N = 8 };
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    cr_assert_eq(pool_set_idle_timeout(pool, 20 * MS), 0);
    future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = pool_submit_blocking(pool, gated_task, &g);
    gate_await_started(&g, N); /* each on a thread of its own */
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.blocking_threads, N);
    cr_assert_eq(st.threads, N + 1);
    cr_assert_eq(st.running, N);
    gate_open(&g);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0);
    st = await_blocking_threads(pool, 0);
    cr_assert_eq(st.threads, 1, "the core thread stays");
    cr_assert_eq(st.peak_threads, N + 1);
    cr_assert_eq(st.completed, N);
    cr_assert_eq(st.running, 0);
    cr_assert_eq(st.queued, 0);

    /* A job after they retired starts a thread again. */
    future_t *again = pool_submit_blocking(pool, value_task, U2P(5));
    void *v;
    cr_assert_eq(future_wait(again, &v), 0);
    cr_assert_eq(v, U2P(5));
    st = await_blocking_threads(pool, 0);
    cr_assert_eq(st.completed, N + 1);
    future_release(again);
    release_each(fs, N);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(blocking, idle_threads_stay_for_the_default_timeout, .timeout = 60)
{
    enum { N = 4 };
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = pool_submit_blocking(pool, gated_task, &g);
    gate_await_started(&g, N);
    gate_open(&g);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0);
    /* Ten seconds by default: they are all still there. */
    cr_assert_eq(stats_of(pool).blocking_threads, N);
    /* A shorter timeout set now applies to threads idle already. */
    cr_assert_eq(pool_set_idle_timeout(pool, 10 * MS), 0);
    struct pool_stats st = await_blocking_threads(pool, 0);
    cr_assert_eq(st.threads, 1);
    release_each(fs, N);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

/* ------------------------------------------------- where things run -- */

static int add_one(void *value, void *arg, void **result)
{
    (void)arg;
    *result = U2P(P2U(value) + 1);
    return 0;
}

CheckedTest(blocking, jobs_run_beside_busy_core_threads_and_continue_on_them,
            .timeout = 60)
{
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &g);
    /* The core thread is busy: a job still runs, on a thread of its own. */
    future_t *job = pool_submit_blocking(pool, value_task, U2P(7));
    void *v;
    cr_assert_eq(future_wait(job, &v), 0);
    cr_assert_eq(v, U2P(7));
    /* Its continuation, and plain tasks, wait for the core thread: the
     * idle blocking thread does not take them. */
    future_t *cont = future_then(job, add_one, NULL);
    future_t *task = pool_submit(pool, value_task, U2P(9));
    cr_assert_not(future_wait_for(cont, 50 * MS), "ran off the core");
    cr_assert_not(future_is_ready(task), "a task ran off the core");
    cr_assert_eq(stats_of(pool).blocking_threads, 1);
    gate_open(&g);
    cr_assert_eq(future_wait(cont, &v), 0);
    cr_assert_eq(v, U2P(8));
    cr_assert_eq(future_wait(task, &v), 0);
    cr_assert_eq(v, U2P(9));
    future_release(cont);
    future_release(task);
    future_release(job);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

/* ------------------------------------------------------- thread faults -- */

CheckedTest(blocking, jobs_run_on_core_threads_when_no_thread_can_start,
            .timeout = 60)
{
    enum { N = 50 };
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &g);
    fut__fault_set(FUT_FAULT_THREAD, 1, true); /* every creation fails */
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = pool_submit_blocking(pool, count_task, &runs);
        cr_assert_not_null(fs[i], "job %d refused", i);
    }
    cr_assert_eq(stats_of(pool).queued, N, "queued behind the core thread");
    gate_open(&g); /* the core thread is free: it runs them */
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0, "job %d", i);
    cr_assert_eq(atomic_load(&runs), N);
    /* And when the core thread is idle at submission. */
    future_t *late = pool_submit_blocking(pool, value_task, U2P(3));
    cr_assert_not_null(late);
    void *v;
    cr_assert_eq(future_wait(late, &v), 0);
    cr_assert_eq(v, U2P(3));
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.blocking_threads, 0);
    cr_assert_eq(st.peak_threads, 1);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    future_release(late);
    release_each(fs, N);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(blocking, a_failed_thread_start_loses_no_job, .timeout = 60)
{
    /* The second start fails: its job waits in the queue until a later
     * start (the next submission's, or a new thread's) picks it up. */
    enum { N = 4 };
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    fut__fault_set(FUT_FAULT_THREAD, 2, false); /* only the second fails */
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = pool_submit_blocking(pool, gated_task, &g);
        cr_assert_not_null(fs[i], "job %d refused", i);
    }
    gate_await_started(&g, N); /* every job runs, side by side */
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.blocking_threads, N);
    cr_assert_eq(st.running, N);
    cr_assert_eq(st.queued, 0);
    gate_open(&g);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0, "job %d", i);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    release_each(fs, N);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

/* ------------------------------------------------------------ arguments -- */

CheckedTest(blocking, submit_checks_its_arguments)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    errno = 0;
    cr_assert_null(pool_submit_blocking(NULL, count_task, &runs));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(pool_submit_blocking(pool, NULL, &runs));
    cr_assert_eq(errno, EINVAL);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 0);
    expect_no_leaks();
}

static void refuses_jobs_after_shutdown(int mode)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    pool_shutdown(pool, mode);
    errno = 0;
    cr_assert_null(pool_submit_blocking(pool, count_task, &runs));
    cr_assert_eq(errno, ESHUTDOWN);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 0);
    expect_no_leaks();
}

CheckedTest(blocking, refuses_jobs_after_drain)
{
    refuses_jobs_after_shutdown(POOL_DRAIN);
}

CheckedTest(blocking, refuses_jobs_after_cancel)
{
    refuses_jobs_after_shutdown(POOL_CANCEL);
}

CheckedTest(blocking, settings_and_stats_check_their_arguments)
{
    pool_t *pool = pool_create(1);
    struct pool_stats st;
    cr_assert_eq(pool_set_blocking_limit(NULL, 4), EINVAL);
    cr_assert_eq(pool_set_blocking_limit(pool, 0), EINVAL);
    cr_assert_eq(pool_set_blocking_limit(pool, 65537), EINVAL);
    cr_assert_eq(pool_set_blocking_limit(pool, 65536), 0);
    cr_assert_eq(pool_set_blocking_limit(pool, 1), 0);
    cr_assert_eq(pool_set_idle_timeout(NULL, MS), EINVAL);
    cr_assert_eq(pool_set_idle_timeout(pool, MS), 0);
    cr_assert_eq(pool_stats(NULL, &st), EINVAL);
    cr_assert_eq(pool_stats(pool, NULL), EINVAL);
    cr_assert_eq(pool_stats(NULL, NULL), EINVAL);
    cr_assert_eq(pool_stats(pool, &st), 0);
    cr_assert_eq(st.threads, 1);
    cr_assert_eq(st.blocking_threads, 0);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.running, 0);
    cr_assert_eq(st.completed, 0);
    pool_destroy(pool);
    expect_no_leaks();
}

/* ------------------------------------------------------------ shutdown -- */

/* A pool of one core thread and one blocking thread, held at a gate, with
 * @n jobs queued behind it. */
static pool_t *queue_jobs_behind_one(struct gate *g, future_t **held,
                                     future_t **fs, int n, atomic_int *runs)
{
    pool_t *pool = pool_create(1);
    cr_assert_eq(pool_set_blocking_limit(pool, 1), 0);
    *held = pool_submit_blocking(pool, gated_task, g);
    gate_await_started(g, 1);
    for (int i = 0; i < n; i++)
        fs[i] = pool_submit_blocking(pool, count_task, runs);
    struct pool_stats st = stats_of(pool);
    cr_assert_eq(st.queued, (size_t)n);
    cr_assert_eq(st.running, 1);
    return pool;
}

CheckedTest(blocking, cancel_cancels_queued_jobs_and_lets_running_ones_finish,
            .timeout = 60)
{
    enum { N = 10 };
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    future_t *held, *fs[N];
    pool_t *pool = queue_jobs_behind_one(&g, &held, fs, N, &runs);
    pool_shutdown(pool, POOL_CANCEL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), ECANCELED, "job %d", i);
    cr_assert_not(future_is_ready(held), "the running job goes on");
    gate_open(&g);
    pool_destroy(pool);
    cr_assert_eq(future_wait(held, NULL), 0);
    cr_assert_eq(atomic_load(&runs), 0);
    future_release(held);
    release_each(fs, N);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(blocking, drain_runs_every_queued_job, .timeout = 60)
{
    enum { N = 10 };
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    future_t *held, *fs[N];
    pool_t *pool = queue_jobs_behind_one(&g, &held, fs, N, &runs);
    pool_shutdown(pool, POOL_DRAIN);
    errno = 0;
    cr_assert_null(pool_submit_blocking(pool, count_task, &runs));
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(atomic_load(&runs), 0);
    gate_open(&g);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), N);
    cr_assert_eq(future_wait(held, NULL), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0, "job %d", i);
    future_release(held);
    release_each(fs, N);
    gate_destroy(&g);
    expect_no_leaks();
}

/* --------------------------------------- waiting inside a task blocks -- */

enum { CHAIN = 200 };

struct chain {
    future_t *start; /* settles once every link is submitted */
    future_t *links[CHAIN];
};

struct link {
    struct chain *chain;
    int index;
};

/* Waits for the start, then for the link after it (submitted later). */
static int wait_for_next(void *arg, void **result)
{
    struct link *l = arg;
    int rc = future_wait(l->chain->start, NULL);
    if (rc)
        return rc;
    void *v = NULL;
    if (l->index + 1 < CHAIN &&
        (rc = future_wait(l->chain->links[l->index + 1], &v)) != 0)
        return rc;
    *result = U2P(P2U(v) + 1);
    return 0;
}

CheckedTest(blocking, tasks_waiting_on_tasks_behind_them_all_complete,
            .timeout = 60)
{
    static struct chain chain;
    static struct link links[CHAIN];
    promise_t *start = promise_create();
    chain.start = promise_future(start);
    pool_t *pool = pool_create(2);
    for (int i = 0; i < CHAIN; i++) {
        links[i] = (struct link){&chain, i};
        chain.links[i] = pool_submit(pool, wait_for_next, &links[i]);
        cr_assert_not_null(chain.links[i]);
    }
    cr_assert_eq(promise_resolve(start, NULL), 0);
    void *v;
    cr_assert_eq(future_wait(chain.links[0], &v), 0);
    cr_assert_eq(v, U2P(CHAIN), "every link ran");
    struct pool_stats st = stats_of(pool);
    cr_assert_gt(st.peak_threads, 2, "waiters were stood in for");
    cr_assert_eq(st.blocking_threads, 0, "stand-ins are not job threads");
    /* Stand-ins that stay idle exit again; the two core threads stay. */
    cr_assert_eq(pool_set_idle_timeout(pool, 10 * MS), 0);
    st = await_stats(pool, settled_down_to, 2);
    cr_assert_eq(st.completed, CHAIN);
    for (int i = 0; i < CHAIN; i++)
        future_release(chain.links[i]);
    future_release(chain.start);
    promise_release(start);
    pool_destroy(pool);
    expect_no_leaks();
}

/* ------------------------------------------- waiting inside a blocking job */

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/*
 * A blocking job that submits @depth more, each waiting for the next: with
 * the limit reached, the waiting ones must not hold the queued one back.
 */
struct nested_job {
    pool_t *pool;
    int depth;
    struct gate *hold; /* the top jobs wait here until all of them run */
};

static int submit_and_wait_job(void *arg, void **result)
{
    struct nested_job *job = arg;
    *result = arg;
    if (job->hold)
        gate_pass(job->hold);
    if (job->depth == 0)
        return 0;
    struct nested_job inner = {job->pool, job->depth - 1, NULL};
    future_t *f = pool_submit_blocking(job->pool, submit_and_wait_job, &inner);
    if (!f)
        return errno;
    void *v = NULL;
    int error = future_wait(f, &v);
    future_release(f);
    return error ? error : v == &inner ? 0 : EFAULT;
}

static void run_nested_jobs(size_t limit, int jobs, int depth)
{
    pool_t *pool = pool_create(1);
    cr_assert_not_null(pool);
    if (limit)
        cr_assert_eq(pool_set_blocking_limit(pool, limit), 0);
    struct nested_job *top = calloc((size_t)jobs, sizeof *top);
    future_t **fs = calloc((size_t)jobs, sizeof *fs);
    struct gate hold;
    gate_init(&hold);
    for (int i = 0; i < jobs; i++) {
        top[i] = (struct nested_job){pool, depth, &hold};
        fs[i] = pool_submit_blocking(pool, submit_and_wait_job, &top[i]);
        cr_assert_not_null(fs[i]);
    }
    /* Every thread the limit allows holds a top job before any submits. */
    gate_await_started(&hold, jobs);
    gate_open(&hold);
    for (int i = 0; i < jobs; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0, "job %d", i);
    release_each(fs, jobs);
    pool_destroy(pool);
    gate_destroy(&hold);
    free(fs);
    free(top);
}

CheckedTest(blocking, a_job_waiting_for_a_job_at_a_limit_of_one_finishes,
            .timeout = 30)
{
    run_nested_jobs(1, 1, 1);
}

CheckedTest(blocking, jobs_nested_ten_deep_at_a_limit_of_one_finish,
            .timeout = 30)
{
    run_nested_jobs(1, 1, 10);
}

CheckedTest(blocking, jobs_at_the_default_limit_each_waiting_for_one_more,
            .timeout = 120)
{
    /* 512 waiting jobs need 1,024 threads; valgrind runs at most 500, so
     * there the same happens at a limit of 100. */
    if (RUNNING_ON_VALGRIND)
        run_nested_jobs(100, 100, 1);
    else
        run_nested_jobs(0, 512, 1);
}

CheckedTest(blocking, a_waiting_job_does_not_count_against_the_limit,
            .timeout = 30)
{
    enum { LIMIT = 4 };
    run_nested_jobs(LIMIT, LIMIT, 2);
}

/* ------------------------------------------------------ lowering the limit */

/*
 * Jobs started before the limit was lowered (old) and after (new): a new
 * job records how many old ones still run as it starts, and how many new
 * ones run beside it.
 */
struct two_kinds {
    atomic_int old_running, old_seen_by_new;
    struct concurrency new_jobs;
    struct gate gate;
};

static int old_job(void *arg, void **result)
{
    struct two_kinds *k = arg;
    atomic_fetch_add(&k->old_running, 1);
    gate_pass(&k->gate);
    atomic_fetch_sub(&k->old_running, 1);
    *result = arg;
    return 0;
}

static int new_job(void *arg, void **result)
{
    struct two_kinds *k = arg;
    raise_max(&k->old_seen_by_new, atomic_load(&k->old_running));
    struct concurrency *c = &k->new_jobs;
    raise_max(&c->max, atomic_fetch_add(&c->now, 1) + 1);
    work_for_ns(MS); /* simulated work, long enough to overlap if allowed */
    atomic_fetch_sub(&c->now, 1);
    *result = arg;
    return 0;
}

CheckedTest(blocking, no_new_job_starts_while_threads_exceed_a_lowered_limit,
            .timeout = 60)
{
    enum { OLD = 64, NEW = 20 };
    struct two_kinds k = {0};
    gate_init(&k.gate);
    pool_t *pool = pool_create(1);
    future_t *fs[OLD + NEW];
    for (int i = 0; i < OLD; i++)
        fs[i] = pool_submit_blocking(pool, old_job, &k);
    gate_await_started(&k.gate, OLD);
    cr_assert_eq(pool_set_blocking_limit(pool, 1), 0);
    for (int i = OLD; i < OLD + NEW; i++)
        fs[i] = pool_submit_blocking(pool, new_job, &k);
    gate_open(&k.gate);
    for (int i = 0; i < OLD + NEW; i++)
        cr_assert_eq(future_wait(fs[i], NULL), 0, "job %d", i);
    cr_assert_eq(atomic_load(&k.new_jobs.max), 1,
                 "%d new jobs ran at once under a limit of 1",
                 atomic_load(&k.new_jobs.max));
    cr_assert_eq(atomic_load(&k.old_seen_by_new), 0,
                 "a new job started beside %d old ones",
                 atomic_load(&k.old_seen_by_new));
    release_each(fs, OLD + NEW);
    pool_destroy(pool);
    gate_destroy(&k.gate);
    expect_no_leaks();
}

/* ------------------------------------------ waits nested past the stand-ins */

/*
 * A task that submits the next level to its own pool and waits for it,
 * 100,000 levels deep, on a one-thread pool whose threads have 256 KiB
 * stacks. The pool starts stand-ins up to its cap; past it each waiter
 * runs the next level on its own stack, until half of that stack is used.
 * Then the wait gives up with EAGAIN instead of overflowing, its task fails
 * with it, and the levels queued below still run once threads are free.
 */
struct tower {
    pool_t *pool;
    atomic_long levels_run, gave_up;
    promise_t *bottom_reached;
};

static struct tower tower;

static int tower_level(void *arg, void **result)
{
    (void)result;
    long below = (long)P2U(arg);
    atomic_fetch_add(&tower.levels_run, 1);
    if (below == 0)
        return promise_resolve(tower.bottom_reached, NULL);
    future_t *f = pool_submit(tower.pool, tower_level, U2P(below - 1));
    if (!f)
        return errno;
    int error = future_wait(f, NULL);
    future_release(f); /* on EAGAIN it still runs, on its own */
    if (error == EAGAIN)
        atomic_fetch_add(&tower.gave_up, 1);
    return error;
}

CheckedTest(blocking, waits_nested_100000_deep_on_small_stacks_never_overflow,
            .timeout = 300)
{
    /* Under valgrind, which is fifty times slower and dies past 500
     * threads, a tenth of the height, and thread starts fail past 300 as
     * they would under RLIMIT_NPROC. */
    long height = RUNNING_ON_VALGRIND ? 10000 : 100000;
    expect_unobserved(EAGAIN); /* the levels whose waits gave up */
    if (RUNNING_ON_VALGRIND)
        fut__fault_set(FUT_FAULT_THREAD, 300, true);
    pthread_attr_t small;
    pthread_attr_init(&small);
    cr_assert_eq(pthread_attr_setstacksize(&small, 256 * 1024), 0);
    cr_assert_eq(pthread_setattr_default_np(&small), 0);
    pthread_attr_destroy(&small);
    tower.pool = pool_create(1);
    cr_assert_not_null(tower.pool);
    tower.bottom_reached = promise_create();
    future_t *bottom = promise_future(tower.bottom_reached);
    future_t *top = pool_submit(tower.pool, tower_level, U2P(height - 1));
    int error = future_wait(top, NULL);
    cr_assert(error == 0 || error == EAGAIN, "the top level: %d", error);
    /* Levels below a wait that gave up go on by themselves. */
    cr_assert_eq(future_wait(bottom, NULL), 0);
    pool_destroy(tower.pool);
    cr_assert_eq(atomic_load(&tower.levels_run), height,
                 "%ld of %ld levels ran", atomic_load(&tower.levels_run),
                 height);
    cr_assert_eq(error == EAGAIN, atomic_load(&tower.gave_up) > 0);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    future_release(top);
    future_release(bottom);
    promise_release(tower.bottom_reached);
}

/* ----------------------------------------- waits when no thread can start */

/*
 * With no thread left to start, task A waits for a promise and runs queued
 * tasks meanwhile, on its own stack. Task B, run that way, sits on top of
 * A: a wait of B's for A's future could end only once B has returned, so
 * it fails with EDEADLK. A wait of B's for anything else waits, and ends.
 */
struct exhausted {
    promise_t *promise;
    future_t *promised, *a;
    struct gate a_waits, b_waits;
    int b_error;
};

static int task_a(void *arg, void **result)
{
    struct exhausted *e = arg;
    *result = NULL;
    sem_post(&e->a_waits.started);
    return future_wait(e->promised, NULL);
}

static int task_b_waits_for_a(void *arg, void **result)
{
    struct exhausted *e = arg;
    *result = NULL;
    e->b_error = future_wait(e->a, NULL);
    return 0;
}

static int task_b_waits_for_the_promise(void *arg, void **result)
{
    struct exhausted *e = arg;
    *result = NULL;
    sem_post(&e->b_waits.started);
    e->b_error = future_wait(e->promised, NULL);
    return 0;
}

/* Runs A on a one-thread pool that can start no thread, then B, which only
 * A's wait can run. The promise A waits for is resolved once B has run
 * (@resolve_first false: once B waits). */
static void run_a_then_b(struct exhausted *e, task_fn b, bool resolve_first,
                         int a_expected)
{
    gate_init(&e->a_waits);
    gate_init(&e->b_waits);
    e->promise = promise_create();
    e->promised = promise_future(e->promise);
    pool_t *pool = pool_create(1);
    fut__fault_set(FUT_FAULT_THREAD, 1, true); /* no stand-in, ever */
    e->a = pool_submit(pool, task_a, e);
    gate_await_started(&e->a_waits, 1);
    future_t *fb = pool_submit(pool, b, e);
    if (resolve_first) {
        cr_assert_eq(future_wait(fb, NULL), 0, "B ran, nested in A's wait");
        cr_assert_eq(promise_resolve(e->promise, NULL), 0);
    } else {
        gate_await_started(&e->b_waits, 1);
        cr_assert_eq(promise_resolve(e->promise, NULL), 0);
        cr_assert_eq(future_wait(fb, NULL), 0);
    }
    cr_assert_eq(future_wait(e->a, NULL), a_expected);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    future_release(fb);
    future_release(e->a);
    future_release(e->promised);
    promise_release(e->promise);
    pool_destroy(pool);
    gate_destroy(&e->a_waits);
    gate_destroy(&e->b_waits);
}

CheckedTest(blocking, exhausted_a_helped_task_waiting_beneath_itself_is_edeadlk,
            .timeout = 30)
{
    struct exhausted e = {0};
    run_a_then_b(&e, task_b_waits_for_a, true, 0);
    cr_assert_eq(e.b_error, EDEADLK);
}

CheckedTest(blocking, exhausted_a_helped_task_waiting_for_a_promise_gets_it,
            .timeout = 30)
{
    struct exhausted e = {0};
    run_a_then_b(&e, task_b_waits_for_the_promise, false, 0);
    cr_assert_eq(e.b_error, 0, "a wait that could end failed: %d", e.b_error);
}

/*
 * A thread in a helping wait is not blocked while the task it helps with
 * runs on top of that wait. T, the one thread of a pool that can start no
 * stand-in, runs B, which waits for A's future, and meanwhile runs X above
 * that wait. A, on another pool, then waits for X. X is running, and
 * nothing waits for A's thread, so A's wait must wait: a check that took
 * T for blocked on A's future there saw a cycle through A and failed the
 * wait with EDEADLK (a false alarm the tower above hit under load).
 */
struct helped_above {
    struct gate a_may_wait, b_waits, x_runs;
    future_t *a, *x;
    int a_error;
};

static int a_waits_for_x(void *arg, void **result)
{
    struct helped_above *h = arg;
    *result = NULL;
    gate_pass(&h->a_may_wait);
    h->a_error = future_wait(h->x, NULL);
    return 0;
}

static int b_waits_for_a(void *arg, void **result)
{
    struct helped_above *h = arg;
    *result = NULL;
    sem_post(&h->b_waits.started);
    return future_wait(h->a, NULL);
}

/* Whether a dump shows a thread blocked waiting for @f. */
static bool dump_shows_blocked_on(const future_t *f)
{
    char *text = dump_text(), want[64];
    snprintf(want, sizeof want, "blocked waiting for a task %p", (void *)f);
    bool shown = strstr(text, want) != NULL;
    free(text);
    return shown;
}

CheckedTest(blocking, a_task_helped_on_top_of_a_wait_is_running_not_blocked,
            .timeout = 60)
{
    struct helped_above h = {0};
    gate_init(&h.a_may_wait);
    gate_init(&h.b_waits);
    gate_init(&h.x_runs);
    pool_t *p = pool_create(1), *q = pool_create(1);
    h.a = pool_submit(q, a_waits_for_x, &h);
    gate_await_started(&h.a_may_wait, 1);
    future_t *b = pool_submit(p, b_waits_for_a, &h);
    gate_await_started(&h.b_waits, 1);
    fut__fault_set(FUT_FAULT_THREAD, 1, true); /* no stand-in for B */
    h.x = pool_submit(p, gated_task, &h.x_runs);
    gate_await_started(&h.x_runs, 1); /* on T, above B's wait */
    gate_open(&h.a_may_wait);
    /* A blocks on X, or (the false alarm) fails at once. */
    uint64_t deadline = monotonic_ns() + UINT64_C(10000000000);
    while (!future_is_ready(h.a) && !dump_shows_blocked_on(h.x) &&
           monotonic_ns() < deadline)
        sched_yield();
    cr_assert_not(future_is_ready(h.a), "A's wait for X ended: %d",
                  h.a_error);
    cr_assert(dump_shows_blocked_on(h.x), "A never blocked on X");
    gate_open(&h.x_runs);
    cr_assert_eq(future_wait(b, NULL), 0);
    cr_assert_eq(future_wait(h.a, NULL), 0);
    cr_assert_eq(h.a_error, 0, "A's wait for X: %d", h.a_error);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    future_release(b);
    future_release(h.x);
    future_release(h.a);
    pool_destroy(p);
    pool_destroy(q);
    gate_destroy(&h.a_may_wait);
    gate_destroy(&h.b_waits);
    gate_destroy(&h.x_runs);
}
