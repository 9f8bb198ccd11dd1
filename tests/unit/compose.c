/*
 * Tests of future_compose(): flattening, cancellation, and its recursion in
 * constant stack and memory.
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>

struct seen {
    atomic_int runs;
    int error;
    void *value;
    pthread_t thread;
};

/* Records what it was given; succeeds with error + 100 as its value. */
static int record(int error, void *value, void *arg, void **result)
{
    struct seen *s = arg;
    s->error = error;
    s->value = value;
    s->thread = pthread_self();
    atomic_fetch_add(&s->runs, 1);
    *result = U2P(100 + error);
    return 0;
}

/* -------------------------------------------------------- future_compose */

static future_t *inner_of(void *value, void *arg)
{
    (void)value;
    return future_retain(arg); /* the future the test prepared */
}

CheckedTest(compose, settles_with_the_inner_future_outcome)
{
    future_t *in = future_resolved(U2P(1));
    promise_t *p = promise_create();
    future_t *g = promise_future(p);
    future_t *r = future_compose(in, inner_of, g);
    cr_assert_not(future_wait_for(r, 10 * 1000000), "settled before g");
    promise_resolve(p, U2P(42));
    void *v = NULL;
    cr_assert_eq(future_wait(r, &v), 0);
    cr_assert_eq(P2U(v), 42u);
    future_release(r);
    future_release(g);
    future_release(in);
    promise_release(p);
}

CheckedTest(compose, an_inner_failure_passes_with_its_message)
{
    future_t *in = future_resolved(NULL);
    promise_t *p = promise_create();
    future_t *g = promise_future(p);
    future_t *r = future_compose(in, inner_of, g);
    promise_reject_message(p, ENOENT, "no page %d", 7);
    cr_assert_eq(future_wait(r, NULL), ENOENT);
    cr_assert_str_eq(future_error_message(r), "no page 7");
    future_release(r);
    future_release(g);
    future_release(in);
    promise_release(p);
}

CheckedTest(compose, an_input_failure_passes_with_its_message)
{
    promise_t *p = promise_create();
    future_t *in = promise_future(p);
    future_t *r = future_compose(in, inner_of, NULL);
    promise_reject_message(p, EACCES, "denied by %s", "policy");
    cr_assert_eq(future_wait(r, NULL), EACCES);
    cr_assert_str_eq(future_error_message(r), "denied by policy");
    future_release(r);
    future_release(in);
    promise_release(p);
}

static atomic_int compose_runs;
static future_t *counting_step(void *value, void *arg)
{
    (void)arg;
    atomic_fetch_add(&compose_runs, 1);
    return future_resolved(value);
}

CheckedTest(compose, an_input_failure_passes_through_and_fn_never_runs)
{
    atomic_store(&compose_runs, 0);
    future_t *in = future_failed(EIO);
    future_t *r = future_compose(in, counting_step, NULL);
    cr_assert_eq(future_wait(r, NULL), EIO);
    cr_assert_eq(atomic_load(&compose_runs), 0);
    future_release(r);
    future_release(in);
}

static future_t *returns_null(void *value, void *arg)
{
    (void)value;
    errno = (int)P2U(arg);
    return NULL;
}

CheckedTest(compose, fn_returning_null_fails_with_errno_or_einval)
{
    future_t *in = future_resolved(NULL);
    future_t *r1 = future_compose(in, returns_null, U2P(ENOENT));
    future_t *r2 = future_compose(in, returns_null, U2P(0));
    cr_assert_eq(future_wait(r1, NULL), ENOENT);
    cr_assert_eq(future_wait(r2, NULL), EINVAL);
    future_release(r1);
    future_release(r2);
    future_release(in);
}

/* Returns the future its argument holds, once the test may cancel. */
struct handed {
    future_t *g;
    sem_t returning;
};

static future_t *hand_g(void *value, void *arg)
{
    (void)value;
    struct handed *h = arg;
    sem_post(&h->returning);
    return future_retain(h->g);
}

CheckedTest(compose, cancelling_while_waiting_for_g_cancels_g)
{
    future_t *in = future_resolved(NULL);
    promise_t *p = promise_create();
    struct handed h;
    h.g = promise_future(p);
    sem_init(&h.returning, 0, 0);
    future_t *r = future_compose(in, hand_g, &h);
    sem_wait(&h.returning); /* fn has run: r waits for g, or is about to */
    cr_assert(future_cancel(r));
    cr_assert_eq(future_wait(h.g, NULL), ECANCELED);
    cr_assert_eq(future_wait(r, NULL), ECANCELED);
    sem_destroy(&h.returning);
    future_release(r);
    future_release(h.g);
    future_release(in);
    promise_release(p);
}

CheckedTest(compose, cancelled_before_fn_runs_never_runs_it)
{
    atomic_store(&compose_runs, 0);
    promise_t *p = promise_create();
    future_t *in = promise_future(p);
    future_t *r = future_compose(in, counting_step, NULL);
    cr_assert(future_cancel(r));
    promise_resolve(p, NULL);
    cr_assert_eq(future_wait(r, NULL), ECANCELED);
    future_release(r);
    future_release(in);
    promise_release(p);
    /* Had its step been queued, it would have run before it was freed. */
    expect_no_live_futures();
    cr_assert_eq(atomic_load(&compose_runs), 0);
}

CheckedTest(compose, never_runs_fn_inside_the_call)
{
    struct seen s = {0};
    future_t *in = future_resolved(NULL);
    future_t *inner = future_handle(in, record, &s);
    future_t *r = future_compose(in, inner_of, inner);
    cr_assert_eq(future_wait(r, NULL), 0);
    cr_assert_not(pthread_equal(s.thread, pthread_self()));
    future_release(r);
    future_release(inner);
    future_release(in);
}

/*
 * The recursion: each step returns future_compose() of the next, over a
 * resolved future or a pool task. Every step notes the most futures alive
 * at once: a chain of relays waiting for one another would hold one per
 * step until the end.
 */
struct loop_state {
    pool_t *pool; /* NULL: steps on resolved futures */
    uintptr_t steps;
    atomic_long peak_live;
};

static int plus_one(void *arg, void **result)
{
    *result = U2P(P2U(arg) + 1);
    return 0;
}

static future_t *next_step(void *value, void *arg)
{
    struct loop_state *st = arg;
    long live = fut__live_futures();
    long peak = atomic_load(&st->peak_live);
    while (live > peak &&
           !atomic_compare_exchange_weak(&st->peak_live, &peak, live))
        ;
    uintptr_t n = P2U(value);
    if (n == st->steps)
        return future_resolved(value);
    future_t *next = st->pool ? pool_submit(st->pool, plus_one, value)
                              : future_resolved(U2P(n + 1));
    future_t *r = future_compose(next, next_step, st);
    future_release(next);
    return r;
}

static void *run_recursion(void *arg)
{
    struct loop_state *st = arg;
    future_t *start = future_resolved(U2P(0));
    future_t *r = future_compose(start, next_step, st);
    void *v = NULL;
    int error = future_wait(r, &v);
    future_release(r);
    future_release(start);
    return error ? NULL : v;
}

/* Runs @st's recursion on a thread with a 256 KiB stack. */
static uintptr_t recurse_on_small_stack(struct loop_state *st)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, &attr, run_recursion, st), 0);
    void *v;
    pthread_join(t, &v);
    pthread_attr_destroy(&attr);
    return P2U(v);
}

CheckedTest(compose, a_million_step_recursion_runs_in_flat_memory,
            .timeout = 120)
{
    struct loop_state st = {.steps = 1000000};
    cr_assert_eq(recurse_on_small_stack(&st), 1000000u);
    cr_assert_lt(atomic_load(&st.peak_live), 1000, "peak %ld live futures",
                 atomic_load(&st.peak_live));
}

CheckedTest(compose, a_recursion_over_pool_tasks_runs_in_flat_memory,
            .timeout = 120)
{
    pool_t *pool = pool_create(2);
    struct loop_state st = {.pool = pool, .steps = 100000};
    cr_assert_eq(recurse_on_small_stack(&st), 100000u);
    pool_destroy(pool);
    cr_assert_lt(atomic_load(&st.peak_live), 1000, "peak %ld live futures",
                 atomic_load(&st.peak_live));
}

CheckedTest(compose, null_arguments_are_einval)
{
    future_t *f = future_resolved(NULL);
    errno = 0;
    cr_assert_null(future_compose(NULL, counting_step, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_compose(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
}

