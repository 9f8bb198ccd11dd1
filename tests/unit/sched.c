/* Tests of pools (lib/pool.c, lib/runq.c, lib/worker.c): submission,
 * shutdown, waiting inside tasks. */
#include "helpers.h"
#include "pool_internal.h" /* fault injection, a pool's id */

#include <errno.h>
#include <signal.h>

CheckedTest(pool, create_sizes_itself_and_refuses_absurd_sizes)
{
    pool_t *cpus = pool_create(0);
    cr_assert_not_null(cpus);
    pool_destroy(cpus);
    errno = 0;
    cr_assert_null(pool_create((size_t)-1));
    cr_assert_eq(errno, EINVAL);
    expect_no_leaks();
}

CheckedTest(pool, submit_checks_its_arguments)
{
    pool_t *pool = pool_create(1);
    errno = 0;
    cr_assert_null(pool_submit(NULL, value_task, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(pool_submit(pool, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    pool_destroy(pool);
    pool_shutdown(NULL, POOL_DRAIN);
    pool_destroy(NULL);
    expect_no_leaks();
}

CheckedTest(pool, runs_tasks_and_reports_their_outcomes, .timeout = 30)
{
    pool_t *pool = pool_create(2);
    future_t *ok = pool_submit(pool, value_task, U2P(17));
    future_t *bad = pool_submit(pool, fail_task, U2P(EACCES));
    void *v;
    cr_assert_eq(future_wait(ok, &v), 0);
    cr_assert_eq(v, U2P(17));
    cr_assert_eq(future_wait(bad, NULL), EACCES);
    future_release(ok);
    future_release(bad);
    pool_destroy(pool);
    expect_no_leaks();
}

static void refuses_after_shutdown(int mode)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    pool_shutdown(pool, mode);
    pool_shutdown(pool, mode); /* twice is harmless */
    errno = 0;
    cr_assert_null(pool_submit(pool, count_task, &runs));
    cr_assert_eq(errno, ESHUTDOWN);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 0);
    expect_no_leaks();
}

CheckedTest(pool, refuses_submissions_after_drain)
{
    refuses_after_shutdown(POOL_DRAIN);
}

CheckedTest(pool, refuses_submissions_after_cancel)
{
    refuses_after_shutdown(POOL_CANCEL);
}

CheckedTest(pool, drain_runs_every_queued_task, .timeout = 30)
{
    enum { N = 200 };
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    pool_t *pool = pool_create(2);
    future_t **busy = saturate(pool, 2, &g);
    future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = pool_submit(pool, count_task, &runs);
    pool_shutdown(pool, POOL_DRAIN);
    cr_assert_eq(atomic_load(&runs), 0, "all were queued");
    gate_open(&g);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(future_wait(fs[i], NULL), 0, "valid after pool_destroy");
        future_release(fs[i]);
    }
    release_all(busy, 2);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(pool, cancel_cancels_queued_tasks_and_lets_running_ones_finish,
            .timeout = 30)
{
    enum { N = 200 };
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    pool_t *pool = pool_create(2);
    future_t **busy = saturate(pool, 2, &g);
    future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = pool_submit(pool, count_task, &runs);
    pool_shutdown(pool, POOL_CANCEL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(fs[i], NULL), ECANCELED,
                     "settled by the shutdown");
    cr_assert_not(future_is_ready(busy[0]), "running tasks go on");
    gate_open(&g);
    pool_destroy(pool);
    cr_assert_eq(future_wait(busy[0], NULL), 0);
    cr_assert_eq(future_wait(busy[1], NULL), 0);
    cr_assert_eq(atomic_load(&runs), 0);
    for (int i = 0; i < N; i++)
        future_release(fs[i]);
    release_all(busy, 2);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(pool, destroy_drains_when_not_shut_down, .timeout = 30)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(2);
    for (int i = 0; i < 1000; i++)
        future_release(pool_submit(pool, count_task, &runs));
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 1000);
    expect_no_leaks();
}

static int add_one(void *value, void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = U2P(P2U(value) + 1);
    return 0;
}

CheckedTest(pool, continuations_of_accepted_tasks_run_during_a_drain,
            .timeout = 30)
{
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &g);
    future_t *queued = pool_submit(pool, value_task, U2P(10));
    future_t *g1 = future_then(busy[0], add_one, &runs);
    future_t *g2 = future_then(queued, add_one, &runs);
    future_t *g3 = future_then(g2, add_one, &runs);
    pool_shutdown(pool, POOL_DRAIN);
    gate_open(&g);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 3,
                 "every continuation ran before destroy returned");
    void *v;
    cr_assert_eq(future_wait(g3, &v), 0);
    cr_assert_eq(v, U2P(12));
    cr_assert_eq(future_wait(g1, NULL), 0);
    future_release(g1);
    future_release(g2);
    future_release(g3);
    future_release(queued);
    release_all(busy, 1);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(pool, continuations_attached_after_destroy_still_run, .timeout = 30)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, value_task, U2P(1));
    pool_destroy(pool);
    future_t *g = future_then(f, add_one, &runs); /* on the default pool */
    void *v;
    cr_assert_eq(future_wait(g, &v), 0);
    cr_assert_eq(v, U2P(2));
    future_release(f);
    future_release(g);
    expect_no_leaks();
}

CheckedTest(pool, the_default_pool_cannot_be_shut_down, .timeout = 30)
{
    pool_t *d = pool_default();
    cr_assert_not_null(d);
    cr_assert_eq(pool_default(), d, "one process-wide pool");
    pool_shutdown(d, POOL_CANCEL);
    pool_destroy(d);
    future_t *f = pool_submit(d, value_task, U2P(3));
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(3));
    future_release(f);
}

struct nested {
    pool_t *pool;
    int depth;
};

/* Submits the next level to its own pool and waits for it. */
static int wait_on_child(void *arg, void **result)
{
    struct nested *n = arg;
    if (n->depth == 0) {
        *result = U2P(1);
        return 0;
    }
    struct nested child = {n->pool, n->depth - 1};
    future_t *f = pool_submit(n->pool, wait_on_child, &child);
    void *v;
    int rc = future_wait(f, &v);
    future_release(f);
    *result = U2P(P2U(v) + 1);
    return rc;
}

CheckedTest(pool, waiting_inside_a_task_never_deadlocks_one_thread,
            .timeout = 60)
{
    pool_t *pool = pool_create(1);
    struct nested top = {pool, 1};
    future_t *f = pool_submit(pool, wait_on_child, &top);
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(2));
    future_release(f);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(pool, waits_nested_fifty_deep_complete, .timeout = 60)
{
    pool_t *pool = pool_create(1);
    struct nested top = {pool, 50};
    future_t *f = pool_submit(pool, wait_on_child, &top);
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(51));
    future_release(f);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(pool, waits_complete_by_helping_when_no_thread_can_start,
            .timeout = 60)
{
    pool_t *pool = pool_create(1);
    fut__fault_set(FUT_FAULT_THREAD, 1, true); /* no stand-in thread */
    struct nested top = {pool, 5};
    future_t *f = pool_submit(pool, wait_on_child, &top);
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(6));
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    future_release(f);
    pool_destroy(pool);
    expect_no_leaks();
}

static int destroy_own_pool(void *arg, void **result)
{
    pool_destroy(arg); /* cannot wait for itself: shuts down and returns */
    *result = arg;
    return 0;
}

CheckedTest(pool, a_task_may_destroy_its_own_pool, .timeout = 30)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, destroy_own_pool, pool);
    cr_assert_eq(future_wait(f, NULL), 0);
    future_t *g = future_then(f, add_one, &runs);
    cr_assert_eq(future_wait(g, NULL), 0);
    cr_assert_eq(atomic_load(&runs), 1);
    future_release(f);
    future_release(g);
}

CheckedTest(pool, create_fails_cleanly_without_threads)
{
    fut__fault_set(FUT_FAULT_THREAD, 1, true);
    errno = 0;
    cr_assert_null(pool_create(2));
    cr_assert_eq(errno, EAGAIN);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    expect_no_leaks();
}

CheckedTest(pool, create_runs_with_the_threads_it_got, .timeout = 30)
{
    atomic_int runs = 0;
    fut__fault_set(FUT_FAULT_THREAD, 3, true); /* the third and later fail */
    pool_t *pool = pool_create(4);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    cr_assert_not_null(pool);
    for (int i = 0; i < 100; i++)
        future_release(pool_submit(pool, count_task, &runs));
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 100);
    expect_no_leaks();
}

CheckedTest(pool, allocation_failures_are_enomem_and_consume_nothing)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    future_t *ready = future_resolved(NULL);

    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(pool_submit(pool, count_task, &runs));
    cr_assert_eq(errno, ENOMEM);

    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(future_then(ready, add_one, &runs));
    cr_assert_eq(errno, ENOMEM);

    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(when_all(&ready, 1));
    cr_assert_eq(errno, ENOMEM);

    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(promise_create());
    cr_assert_eq(errno, ENOMEM);

    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(pool_create(1));
    cr_assert_eq(errno, ENOMEM);

    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 0);
    future_release(ready);
    expect_no_leaks();
}

struct submitter {
    pool_t *pool;
    atomic_int *runs;
    int ok;
};

static void *submit_and_wait(void *arg)
{
    struct submitter *s = arg;
    for (int i = 0; i < 2000; i++) {
        future_t *f = pool_submit(s->pool, count_task, s->runs);
        future_t *g = future_then(f, add_one, s->runs);
        if (i % 3 == 0)
            future_cancel(f);
        int rf = future_wait(f, NULL), rg = future_wait(g, NULL);
        if ((rf == 0 && rg == 0) || (rf == ECANCELED && rg == ECANCELED))
            s->ok++;
        future_release(f);
        future_release(g);
    }
    return NULL;
}

CheckedTest(pool, many_threads_submit_chain_cancel_and_wait_at_once,
            .timeout = 120)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(2);
    struct submitter s[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        s[i] = (struct submitter){pool, &runs, 0};
        pthread_create(&t[i], NULL, submit_and_wait, &s[i]);
    }
    int ok = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ok += s[i].ok;
    }
    pool_destroy(pool);
    cr_assert_eq(ok, 8 * 2000, "every pair settled consistently");
    expect_no_leaks();
}

struct nested_help {
    promise_t *input;
    future_t *outer;
    sem_t inner_started;
};

static int wait_on_input(void *arg, void **result)
{
    struct nested_help *n = arg;
    (void)result;
    future_t *f = promise_future(n->input);
    int rc = future_wait(f, NULL);
    future_release(f);
    return rc;
}

static int wait_on_outer(void *arg, void **result)
{
    struct nested_help *n = arg;
    (void)result;
    sem_post(&n->inner_started);
    return future_wait(n->outer, NULL); /* runs nested inside outer's wait */
}

CheckedTest(pool, a_helped_task_waiting_for_its_helper_gets_edeadlk,
            .timeout = 60)
{
    /* No stand-in can start, so the outer task's wait runs the queued
     * inner task on its own stack; the inner one waits for the outer. It
     * must get EDEADLK, not hang both. */
    struct nested_help n = {.input = promise_create()};
    sem_init(&n.inner_started, 0, 0);
    pool_t *pool = pool_create(1);
    fut__fault_set(FUT_FAULT_THREAD, 1, true);
    n.outer = pool_submit(pool, wait_on_input, &n);
    future_t *inner = pool_submit(pool, wait_on_outer, &n);
    sem_wait(&n.inner_started); /* only the outer's wait can have run it */
    cr_assert_eq(future_wait(inner, NULL), EDEADLK);
    promise_resolve(n.input, NULL);
    cr_assert_eq(future_wait(n.outer, NULL), 0);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    future_release(n.outer);
    future_release(inner);
    promise_release(n.input);
    pool_destroy(pool);
    sem_destroy(&n.inner_started);
    expect_no_leaks();
}

static int recorded(void *value, void *arg, void **result)
{
    atomic_store((atomic_bool *)arg, true);
    *result = value;
    return 0;
}

CheckedTest(pool, cancel_leaves_continuations_of_finished_tasks_alone,
            .timeout = 30)
{
    struct gate g;
    gate_init(&g);
    atomic_bool ran = false;
    pool_t *pool = pool_create(1);
    future_t *done = pool_submit(pool, value_task, U2P(6));
    cr_assert_eq(future_wait(done, NULL), 0);
    future_t **busy = saturate(pool, 1, &g);
    future_t *cont = future_then(done, recorded, &ran); /* queued */
    pool_shutdown(pool, POOL_CANCEL);
    void *v;
    cr_assert_eq(future_wait(cont, &v), 0, "runs on the default pool");
    cr_assert_eq(v, U2P(6));
    cr_assert(atomic_load(&ran));
    gate_open(&g);
    pool_destroy(pool);
    future_release(done);
    future_release(cont);
    release_all(busy, 1);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(pool, shutdown_reaches_threads_that_were_spinning, .timeout = 60)
{
    /* Idle threads spin a while before they sleep; a shutdown that comes
     * while they spin must still reach them, or destroy waits forever. */
    for (int i = 0; i < 300; i++) {
        atomic_int runs = 0;
        pool_t *pool = pool_create(4);
        future_t *f = pool_submit(pool, count_task, &runs);
        pool_shutdown(pool, i % 2 ? POOL_CANCEL : POOL_DRAIN);
        pool_destroy(pool);
        future_release(f);
    }
    expect_no_leaks();
}

struct cancelled_chain {
    struct gate gate;
    atomic_uint ran_on; /* the id of the pool the continuation ran on */
};

static int held_then_done(void *arg, void **result)
{
    gate_pass(&((struct cancelled_chain *)arg)->gate);
    *result = NULL;
    return 0;
}

static int note_pool(void *value, void *arg, void **result)
{
    atomic_store(&((struct cancelled_chain *)arg)->ran_on,
                 fut__pool_id_of_thread());
    *result = value;
    return 0;
}

CheckedTest(pool, a_cancelled_pool_runs_no_more_continuations_itself,
            .timeout = 30)
{
    /* The continuation is made ready as the last running task settles on
     * the cancelled pool; it must go to the default pool, not be kept and
     * run by the thread that settled it. */
    struct cancelled_chain c = {.ran_on = 0};
    gate_init(&c.gate);
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, held_then_done, &c);
    future_t *g = future_then(f, note_pool, &c);
    gate_await_started(&c.gate, 1);
    pool_shutdown(pool, POOL_CANCEL);
    gate_open(&c.gate);
    cr_assert_eq(future_wait(g, NULL), 0);
    unsigned ran_on = atomic_load(&c.ran_on);
    cr_assert_neq(ran_on, 0u, "ran on no pool");
    cr_assert_neq(ran_on, pool->id, "ran on the cancelled pool");
    pool_destroy(pool);
    future_release(f);
    future_release(g);
    gate_destroy(&c.gate);
}

/* ---------------------------------------------- lock checks (DEBUG=1) -- */

/*
 * In a debug build every function whose name ends in _locked asserts that
 * its caller holds the lock (FUT_ASSERT_HELD, lib/sync.c): called without
 * it, one stops the program. make check runs the suites in such a build;
 * in others the check compiles to nothing and this test is skipped.
 */
CheckedTest(pool, a_locked_function_called_without_its_lock_aborts,
            .signal = SIGABRT, .disabled = !FUT_DEBUG)
{
    pool_t *pool = pool_create(1);
    cr_assert_not_null(pool);
    fut__take_exited_locked(pool); /* the pool lock is not held */
}

CheckedTest(pool, a_locked_function_called_with_its_lock_runs,
            .disabled = !FUT_DEBUG)
{
    pool_t *pool = pool_create(1);
    cr_assert_not_null(pool);
    fut__pool_lock(pool);
    fut__join_all(fut__take_exited_locked(pool));
    fut__pool_unlock(pool);
    pool_destroy(pool);
}
