/*
 * Tests of pool_submit_ex(): the argument's destructor runs exactly once on
 * every path a task can take.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

CheckedTest(pool_ex, frees_once_after_the_task_ran, .timeout = 30)
{
    struct owned_arg ok = {0, 0}, bad = {0, 0};
    pool_t *pool = pool_create(2);
    future_t *f = pool_submit_ex(pool, use_owned, &ok, free_owned);
    future_t *g = pool_submit_ex(pool, fail_owned, &bad, free_owned);
    cr_assert_eq(future_wait(f, NULL), 0, "freed before it ran");
    cr_assert_eq(future_wait(g, NULL), EIO);
    cr_assert_eq(atomic_load(&ok.frees), 1, "freed by the time it settled");
    cr_assert_eq(atomic_load(&bad.frees), 1, "a failure frees it too");
    future_release(f);
    future_release(g);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&ok.frees), 1);
    cr_assert_eq(atomic_load(&bad.frees), 1);
    expect_no_leaks();
}

CheckedTest(pool_ex, frees_once_when_cancelled_while_queued, .timeout = 30)
{
    struct gate g;
    gate_init(&g);
    struct owned_arg o = {0, 0};
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &g);
    future_t *f = pool_submit_ex(pool, use_owned, &o, free_owned);
    cr_assert(future_cancel(f));
    cr_assert_eq(atomic_load(&o.frees), 1, "freed when cancelled");
    gate_open(&g);
    pool_destroy(pool); /* the worker drops the cancelled task */
    cr_assert_eq(atomic_load(&o.frees), 1);
    cr_assert_eq(atomic_load(&o.runs), 0);
    future_release(f);
    cr_assert_eq(atomic_load(&o.frees), 1, "not again when released");
    release_all(busy, 1);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(pool_ex, frees_every_task_pool_cancel_cancels, .timeout = 30)
{
    enum { N = 100 };
    struct gate g;
    gate_init(&g);
    struct owned_arg o[N];
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &g);
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct owned_arg){0, 0};
        fs[i] = pool_submit_ex(pool, use_owned, &o[i], free_owned);
    }
    pool_shutdown(pool, POOL_CANCEL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(atomic_load(&o[i].frees), 1, "task %d", i);
    gate_open(&g);
    pool_destroy(pool);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(future_wait(fs[i], NULL), ECANCELED);
        future_release(fs[i]);
        cr_assert_eq(atomic_load(&o[i].frees), 1, "task %d", i);
        cr_assert_eq(atomic_load(&o[i].runs), 0, "task %d", i);
    }
    release_all(busy, 1);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(pool_ex, frees_before_returning_when_not_accepted)
{
    struct owned_arg shut = {0, 0}, oom = {0, 0}, bad = {0, 0};
    pool_t *pool = pool_create(1);

    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(pool_submit_ex(pool, use_owned, &oom, free_owned));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(atomic_load(&oom.frees), 1);

    errno = 0;
    cr_assert_null(pool_submit_ex(pool, NULL, &bad, free_owned));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&bad.frees), 1);

    pool_shutdown(pool, POOL_DRAIN);
    errno = 0;
    cr_assert_null(pool_submit_ex(pool, use_owned, &shut, free_owned));
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(atomic_load(&shut.frees), 1);

    pool_destroy(pool);
    cr_assert_eq(atomic_load(&shut.runs) + atomic_load(&oom.runs) +
                     atomic_load(&bad.runs),
                 0);
    expect_no_leaks();
}

CheckedTest(pool_ex, without_a_destructor_is_pool_submit, .timeout = 30)
{
    struct owned_arg o = {0, 0};
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit_ex(pool, use_owned, &o, NULL);
    cr_assert_eq(future_wait(f, NULL), 0);
    cr_assert_eq(atomic_load(&o.runs), 1);
    cr_assert_eq(atomic_load(&o.frees), 0);
    future_release(f);
    pool_destroy(pool);
}

struct racer {
    future_t *f;
    pthread_barrier_t go;
};

static void *cancel_at_barrier(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(&r->go);
    future_cancel(r->f);
    return NULL;
}

CheckedTest(pool_ex, frees_once_when_cancel_races_the_start, .timeout = 120)
{
    pool_t *pool = pool_create(2);
    for (int round = 0; round < 3000; round++) {
        struct owned_arg o = {0, 0};
        struct racer r;
        pthread_barrier_init(&r.go, NULL, 2);
        r.f = pool_submit_ex(pool, use_owned, &o, free_owned);
        pthread_t t;
        pthread_create(&t, NULL, cancel_at_barrier, &r);
        pthread_barrier_wait(&r.go);
        int rc = future_wait(r.f, NULL);
        pthread_join(t, NULL);
        cr_assert(rc == 0 || rc == ECANCELED, "round %d: %d", round, rc);
        cr_assert_eq(atomic_load(&o.runs), rc == 0, "round %d", round);
        cr_assert_eq(atomic_load(&o.frees), 1, "round %d", round);
        future_release(r.f);
        pthread_barrier_destroy(&r.go);
    }
    pool_destroy(pool);
    expect_no_leaks();
}
