/* Tests of lib/then.c: future_then() and future_catch(). */
#include "helpers.h"

#include <errno.h>

static int add_arg(void *value, void *arg, void **result)
{
    *result = U2P(P2U(value) + P2U(arg));
    return 0;
}

static int count_then(void *value, void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = value;
    return 0;
}

static int count_catch(int error, void *arg, void **result)
{
    (void)error;
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = NULL;
    return 0;
}

static int fail_with_arg(void *value, void *arg, void **result)
{
    (void)value;
    (void)result;
    return (int)P2U(arg);
}

CheckedTest(then, runs_on_the_value_and_settles_with_its_return, .timeout = 30)
{
    pool_t *pool = pool_create(2);
    future_t *f = pool_submit(pool, value_task, U2P(40));
    future_t *g = future_then(f, add_arg, U2P(2));
    future_t *h = future_then(g, fail_with_arg, U2P(EBADMSG));
    void *v;
    cr_assert_eq(future_wait(g, &v), 0);
    cr_assert_eq(v, U2P(42));
    cr_assert_eq(future_wait(h, NULL), EBADMSG);
    future_release(f);
    future_release(g);
    future_release(h);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(then, is_skipped_on_failure_which_passes_through, .timeout = 30)
{
    atomic_int runs = 0;
    pool_t *pool = pool_create(2);
    future_t *f = pool_submit(pool, fail_task, U2P(ENOENT));
    future_t *g = future_then(f, count_then, &runs);
    future_t *h = future_then(g, count_then, &runs);
    cr_assert_eq(future_wait(h, NULL), ENOENT);
    cr_assert_eq(future_wait(g, NULL), ENOENT);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&runs), 0);
    future_release(f);
    future_release(g);
    future_release(h);
    expect_no_leaks();
}

static int recover_with_error(int error, void *arg, void **result)
{
    (void)arg;
    *result = U2P(1000 + error);
    return 0;
}

CheckedTest(then, catch_recovers_from_failure, .timeout = 30)
{
    future_t *f = future_failed(EIO);
    future_t *g = future_catch(f, recover_with_error, NULL);
    void *v;
    cr_assert_eq(future_wait(g, &v), 0);
    cr_assert_eq(v, U2P(1000 + EIO));
    future_release(f);
    future_release(g);
    expect_no_leaks();
}

static int rethrow(int error, void *arg, void **result)
{
    (void)arg;
    (void)result;
    return error + 1;
}

CheckedTest(then, catch_may_fail_again, .timeout = 30)
{
    future_t *f = future_failed(10);
    future_t *g = future_catch(f, rethrow, NULL);
    cr_assert_eq(future_wait(g, NULL), 11);
    future_release(f);
    future_release(g);
}

CheckedTest(then, catch_passes_success_through_without_running, .timeout = 30)
{
    atomic_int runs = 0;
    int x;
    future_t *f = future_resolved(&x);
    future_t *g = future_catch(f, count_catch, &runs);
    future_t *sync = future_then(g, count_then, &runs); /* runs after g */
    void *v;
    cr_assert_eq(future_wait(g, &v), 0);
    cr_assert_eq(v, &x);
    cr_assert_eq(future_wait(sync, NULL), 0);
    cr_assert_eq(atomic_load(&runs), 1, "only the then ran");
    future_release(f);
    future_release(g);
    future_release(sync);
}

CheckedTest(then, null_arguments_are_einval_and_register_nothing)
{
    future_t *f = future_resolved(NULL);
    errno = 0;
    cr_assert_null(future_then(NULL, add_arg, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch(NULL, count_catch, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
    expect_no_leaks();
}

CheckedTest(then, many_continuations_before_and_after_settling_all_run,
            .timeout = 60)
{
    atomic_int runs = 0;
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *gs[2000];
    for (int i = 0; i < 1000; i++)
        gs[i] = future_then(f, count_then, &runs);
    promise_resolve(p, U2P(8));
    for (int i = 1000; i < 2000; i++)
        gs[i] = future_then(f, count_then, &runs);
    for (int i = 0; i < 2000; i++) {
        void *v;
        cr_assert_eq(future_wait(gs[i], &v), 0);
        cr_assert_eq(v, U2P(8));
        future_release(gs[i]);
    }
    cr_assert_eq(atomic_load(&runs), 2000);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

struct where {
    pthread_t thread;
    atomic_bool ran;
};

static int record_thread(void *value, void *arg, void **result)
{
    struct where *w = arg;
    w->thread = pthread_self();
    atomic_store(&w->ran, true);
    *result = value;
    return 0;
}

static int record_task_thread(void *arg, void **result)
{
    *(pthread_t *)arg = pthread_self();
    *result = NULL;
    return 0;
}

CheckedTest(then, runs_on_the_pool_that_ran_the_predecessor, .timeout = 30)
{
    pthread_t task_thread;
    struct where w = {0};
    pool_t *pool = pool_create(1); /* a single thread: it must be this one */
    future_t *f = pool_submit(pool, record_task_thread, &task_thread);
    cr_assert_eq(future_wait(f, NULL), 0);
    future_t *g = future_then(f, record_thread, &w); /* attached after */
    cr_assert_eq(future_wait(g, NULL), 0);
    cr_assert(pthread_equal(w.thread, task_thread));
    future_release(f);
    future_release(g);
    pool_destroy(pool);
}

CheckedTest(then, never_runs_inside_the_registering_call, .timeout = 30)
{
    struct where w = {0};
    future_t *f = future_resolved(NULL);
    future_t *g = future_then(f, record_thread, &w);
    cr_assert_eq(future_wait(g, NULL), 0);
    cr_assert(atomic_load(&w.ran));
    cr_assert_not(pthread_equal(w.thread, pthread_self()),
                  "ran on the caller's thread");
    future_release(f);
    future_release(g);
}

CheckedTest(then, never_runs_inside_promise_resolve, .timeout = 30)
{
    struct where w = {0};
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *g = future_then(f, record_thread, &w);
    promise_resolve(p, NULL);
    cr_assert_eq(future_wait(g, NULL), 0);
    cr_assert_not(pthread_equal(w.thread, pthread_self()));
    future_release(f);
    future_release(g);
    promise_release(p);
}

/* The spread of stack addresses one thread saw in the chain's callbacks. */
static _Thread_local uintptr_t stack_lo, stack_hi;
static atomic_uintptr_t widest;

static int hop(void *value, void *arg, void **result)
{
    (void)arg;
    char here;
    uintptr_t at = (uintptr_t)&here;
    if (!stack_lo || at < stack_lo)
        stack_lo = at;
    if (at > stack_hi)
        stack_hi = at;
    uintptr_t spread = stack_hi - stack_lo, w = atomic_load(&widest);
    while (spread > w && !atomic_compare_exchange_weak(&widest, &w, spread))
        ;
    *result = U2P(P2U(value) + 1);
    return 0;
}

static future_t *chain(future_t *f, int n, then_fn fn)
{
    future_t *g = future_retain(f);
    for (int i = 0; i < n; i++) {
        future_t *next = future_then(g, fn, NULL);
        cr_assert_not_null(next);
        future_release(g);
        g = next;
    }
    return g;
}

CheckedTest(then, a_million_hops_do_not_grow_the_stack, .timeout = 120)
{
    promise_t *p = promise_create();
    future_t *root = promise_future(p);
    future_t *end = chain(root, 1000000, hop);
    promise_resolve(p, U2P(0));
    void *v;
    cr_assert_eq(future_wait(end, &v), 0);
    cr_assert_eq(v, U2P(1000000));
    cr_assert_lt(atomic_load(&widest), 64 * 1024, "stack spread %zu bytes",
                 (size_t)atomic_load(&widest));
    future_release(end);
    future_release(root);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(then, a_failure_crosses_a_million_hops_without_recursion,
            .timeout = 120)
{
    /* Skipped callbacks settle inline; a recursive implementation would
     * overflow the stack here. */
    promise_t *p = promise_create();
    future_t *root = promise_future(p);
    future_t *end = chain(root, 1000000, hop);
    promise_reject(p, EPROTO);
    cr_assert_eq(future_wait(end, NULL), EPROTO);
    future_release(end);
    future_release(root);
    promise_release(p);
    expect_no_leaks();
}

struct self_release {
    future_t *own;
    sem_t done;
};

static int release_own_future(void *value, void *arg, void **result)
{
    struct self_release *s = arg;
    future_release(s->own); /* the caller handed its reference over */
    future_t *ready = future_resolved(NULL); /* any call is allowed here */
    future_t *extra = future_then(ready, add_arg, NULL);
    future_release(ready);
    future_release(extra);
    *result = value;
    sem_post(&s->done);
    return 0;
}

CheckedTest(then, a_callback_may_release_its_own_future, .timeout = 30)
{
    struct self_release s;
    sem_init(&s.done, 0, 0);
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    s.own = future_then(f, release_own_future, &s);
    promise_resolve(p, NULL);
    sem_wait(&s.done);
    future_release(f);
    promise_release(p);
    sem_destroy(&s.done);
}

struct endless {
    future_t *current; /* the hop running now; the chain's own reference */
    atomic_bool stop;
    long hops;
    sem_t done;
};

/* Each hop registers the next one on its own future, so the next becomes
 * ready as this one settles, on this thread: an endless chain. */
static int endless_hop(void *value, void *arg, void **result)
{
    struct endless *e = arg;
    e->hops++;
    if (atomic_load(&e->stop)) {
        sem_post(&e->done);
    } else {
        future_t *next = future_then(e->current, endless_hop, e);
        future_release(e->current);
        e->current = next;
    }
    *result = value;
    return 0;
}

static int stop_the_chain(void *arg, void **result)
{
    atomic_store(&((struct endless *)arg)->stop, true);
    *result = NULL;
    return 0;
}

CheckedTest(then, an_endless_chain_does_not_starve_a_one_thread_pool,
            .timeout = 60)
{
    /* The chain stops only when the task queued behind it has run: if
     * the thread ran the chain's hops one after another for ever, without
     * ever turning to its queue, this would hang. */
    struct endless e = {.hops = 0};
    sem_init(&e.done, 0, 0);
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    /* The chain starts once the gate opens: by then e.current is set and
     * the stopper is queued. */
    future_t *first = pool_submit(pool, gated_task, &g);
    e.current = future_then(first, endless_hop, &e);
    future_t *stopper = pool_submit(pool, stop_the_chain, &e);
    gate_open(&g);
    cr_assert_eq(future_wait(stopper, NULL), 0);
    sem_wait(&e.done);
    cr_assert_gt(e.hops, 0);
    future_wait(e.current, NULL);
    future_release(e.current);
    future_release(stopper);
    future_release(first);
    pool_destroy(pool);
    sem_destroy(&e.done);
    gate_destroy(&g);
    expect_no_leaks();
}
