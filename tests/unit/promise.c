/* Tests of lib/promise.c. */
#include "helpers.h"

#include <errno.h>

CheckedTest(promise, resolves_once_and_the_first_settlement_wins)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    cr_assert_eq(promise_resolve(p, U2P(1)), 0);
    cr_assert_eq(promise_resolve(p, U2P(2)), EALREADY);
    cr_assert_eq(promise_reject(p, EIO), EALREADY);
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(1));
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(promise, rejects_with_its_error)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    cr_assert_eq(promise_reject(p, 0), EINVAL, "0 is not an error");
    cr_assert_eq(promise_reject(p, -1), EINVAL);
    cr_assert_not(future_is_ready(f), "a refused reject settles nothing");
    cr_assert_eq(promise_reject(p, ETIMEDOUT), 0);
    cr_assert_eq(promise_resolve(p, NULL), EALREADY);
    cr_assert_eq(future_wait(f, NULL), ETIMEDOUT);
    future_release(f);
    promise_release(p);
}

CheckedTest(promise, null_arguments_are_einval)
{
    errno = 0;
    cr_assert_null(promise_future(NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(promise_resolve(NULL, NULL), EINVAL);
    cr_assert_eq(promise_reject(NULL, EIO), EINVAL);
    promise_release(NULL);
}

CheckedTest(promise, hands_out_its_future_many_times)
{
    promise_t *p = promise_create();
    future_t *a = promise_future(p), *b = promise_future(p);
    cr_assert_eq(a, b, "the same future, one more reference each");
    promise_resolve(p, U2P(4));
    future_release(a);
    void *v;
    cr_assert_eq(future_wait(b, &v), 0, "b's reference is still good");
    cr_assert_eq(v, U2P(4));
    future_release(b);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(promise, released_unsettled_breaks_with_epipe)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    promise_release(p);
    cr_assert_eq(future_wait(f, NULL), EPIPE);
    future_release(f);
    expect_no_leaks();
}

CheckedTest(promise, released_after_settling_keeps_the_outcome)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    promise_resolve(p, U2P(9));
    promise_release(p);
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(9));
    future_release(f);
}

static void *wait_on_future(void *arg)
{
    void *v = NULL;
    future_wait(arg, &v);
    return v;
}

CheckedTest(promise, wakes_threads_waiting_for_it, .timeout = 30)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, wait_on_future, f);
    promise_resolve(p, U2P(5));
    for (int i = 0; i < 4; i++) {
        void *v;
        pthread_join(t[i], &v);
        cr_assert_eq(v, U2P(5));
    }
    future_release(f);
    promise_release(p);
}

struct race {
    promise_t *p;
    pthread_barrier_t start;
    atomic_int winners;
};

static void *settle_racer(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(&r->start);
    intptr_t me = (intptr_t)pthread_self() & 1;
    int rc = me ? promise_resolve(r->p, U2P(1)) : promise_reject(r->p, EIO);
    if (rc == 0)
        atomic_fetch_add(&r->winners, 1);
    else if (rc != EALREADY)
        atomic_fetch_add(&r->winners, 100); /* any other answer is wrong */
    return NULL;
}

CheckedTest(promise, exactly_one_of_eight_racing_settlers_wins, .timeout = 60)
{
    for (int round = 0; round < 200; round++) {
        struct race r = {.p = promise_create()};
        pthread_barrier_init(&r.start, NULL, 8);
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, settle_racer, &r);
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
        cr_assert_eq(atomic_load(&r.winners), 1, "round %d", round);
        pthread_barrier_destroy(&r.start);
        promise_release(r.p);
    }
    expect_no_leaks();
}
