/*
 * Tests of future_then_ex() and future_catch_ex(): the argument's
 * destructor runs exactly once on every path a continuation can take.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

struct owned {
    atomic_int frees;
    atomic_int runs;
};

static void free_owned(void *arg)
{
    atomic_fetch_add(&((struct owned *)arg)->frees, 1);
}

static int then_owned(void *value, void *arg, void **result)
{
    struct owned *o = arg;
    atomic_fetch_add(&o->runs, 1);
    *result = value;
    return atomic_load(&o->frees) ? EFAULT : 0; /* freed too early? */
}

static int catch_owned(int error, void *arg, void **result)
{
    (void)error;
    return then_owned(NULL, arg, result);
}

CheckedTest(then_ex, frees_once_after_the_callback_ran, .timeout = 30)
{
    struct owned t = {0, 0}, c = {0, 0};
    future_t *ok = future_resolved(U2P(1)), *bad = future_failed(EIO);
    future_t *g = future_then_ex(ok, then_owned, &t, free_owned);
    future_t *h = future_catch_ex(bad, catch_owned, &c, free_owned);
    cr_assert_eq(future_wait(g, NULL), 0, "freed before it ran");
    cr_assert_eq(future_wait(h, NULL), 0, "freed before it ran");
    cr_assert_eq(atomic_load(&t.frees), 1);
    cr_assert_eq(atomic_load(&c.frees), 1);
    cr_assert_eq(atomic_load(&t.runs), 1);
    cr_assert_eq(atomic_load(&c.runs), 1);
    future_release(g);
    future_release(h);
    future_release(ok);
    future_release(bad);
    cr_assert_eq(atomic_load(&t.frees) + atomic_load(&c.frees), 2);
    expect_no_leaks();
}

CheckedTest(then_ex, frees_once_when_the_callback_is_skipped, .timeout = 30)
{
    struct owned t = {0, 0}, c = {0, 0};
    future_t *ok = future_resolved(U2P(1)), *bad = future_failed(EIO);
    future_t *g = future_then_ex(bad, then_owned, &t, free_owned);
    future_t *h = future_catch_ex(ok, catch_owned, &c, free_owned);
    cr_assert_eq(future_wait(g, NULL), EIO);
    cr_assert_eq(future_wait(h, NULL), 0);
    cr_assert_eq(atomic_load(&t.frees), 1, "a then skipped on failure");
    cr_assert_eq(atomic_load(&c.frees), 1, "a catch skipped on success");
    cr_assert_eq(atomic_load(&t.runs) + atomic_load(&c.runs), 0);
    future_release(g);
    future_release(h);
    future_release(ok);
    future_release(bad);
    expect_no_leaks();
}

CheckedTest(then_ex, frees_once_when_cancelled_while_waiting, .timeout = 30)
{
    struct owned o = {0, 0};
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *g = future_then_ex(f, then_owned, &o, free_owned);
    cr_assert(future_cancel(g));
    cr_assert_eq(atomic_load(&o.frees), 1, "freed when cancelled");
    promise_resolve(p, NULL);
    future_release(g);
    future_release(f);
    promise_release(p);
    cr_assert_eq(atomic_load(&o.frees), 1);
    cr_assert_eq(atomic_load(&o.runs), 0);
    expect_no_leaks();
}

CheckedTest(then_ex, frees_before_returning_when_it_fails)
{
    struct owned oom = {0, 0}, bad = {0, 0}, none = {0, 0};
    future_t *f = future_resolved(NULL);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(future_then_ex(f, then_owned, &oom, free_owned));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(atomic_load(&oom.frees), 1);
    errno = 0;
    cr_assert_null(future_catch_ex(NULL, catch_owned, &bad, free_owned));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&bad.frees), 1);
    errno = 0;
    cr_assert_null(future_then(f, NULL, &none)); /* no destructor: untouched */
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&none.frees), 0);
    future_release(f);
    expect_no_leaks();
}

struct racer {
    future_t *g;
    pthread_barrier_t go;
};

static void *cancel_at_barrier(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(&r->go);
    future_cancel(r->g);
    return NULL;
}

CheckedTest(then_ex, frees_once_when_cancel_races_the_predecessor,
            .timeout = 120)
{
    for (int round = 0; round < 3000; round++) {
        struct owned o = {0, 0};
        promise_t *p = promise_create();
        future_t *f = promise_future(p);
        struct racer r = {.g = future_then_ex(f, then_owned, &o, free_owned)};
        pthread_barrier_init(&r.go, NULL, 2);
        pthread_t t;
        pthread_create(&t, NULL, cancel_at_barrier, &r);
        pthread_barrier_wait(&r.go);
        promise_resolve(p, NULL);
        int rc = future_wait(r.g, NULL);
        pthread_join(t, NULL);
        cr_assert(rc == 0 || rc == ECANCELED, "round %d: %d", round, rc);
        cr_assert_eq(atomic_load(&o.runs), rc == 0, "round %d", round);
        cr_assert_eq(atomic_load(&o.frees), 1, "round %d", round);
        future_release(r.g);
        future_release(f);
        promise_release(p);
        pthread_barrier_destroy(&r.go);
    }
    expect_no_leaks();
}
