/*
 * Tests of scope_submit_ex() and scope_submit_blocking_ex(): the
 * argument's destructor runs exactly once on every path a scope's task can
 * take, refusals included, as pool_submit_ex()'s does (pool_ex.c).
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

/* An owned argument that also holds a gate its task waits at. */
struct gated_owned {
    struct owned_arg o;
    struct gate *gate;
};

static void free_gated(void *arg)
{
    free_owned(&((struct gated_owned *)arg)->o);
}

static int gated_owned_task(void *arg, void **result)
{
    struct gated_owned *g = arg;
    gate_pass(g->gate);
    return use_owned(&g->o, result);
}

CheckedTest(scope_ex, frees_once_after_the_task_ran, .timeout = 30)
{
    struct owned_arg ok = {0, 0}, bad = {0, 0}, job = {0, 0};
    pool_t *pool = pool_create(2);
    scope_t *s = scope_create(pool);
    future_t *f = scope_submit_ex(s, use_owned, &ok, free_owned);
    future_t *b = scope_submit_blocking_ex(s, use_owned, &job, free_owned);
    cr_assert_eq(future_wait(f, NULL), 0, "freed before it ran");
    cr_assert_eq(future_wait(b, NULL), 0, "freed before it ran");
    cr_assert_eq(atomic_load(&ok.frees), 1, "freed by the time it settled");
    cr_assert_eq(atomic_load(&job.frees), 1, "freed by the time it settled");
    future_t *g = scope_submit_ex(s, fail_owned, &bad, free_owned);
    cr_assert_eq(scope_join(s), EIO);
    cr_assert_eq(atomic_load(&bad.frees), 1, "a failure frees it too");
    future_release(f);
    future_release(b);
    future_release(g);
    scope_release(s);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&ok.frees), 1);
    cr_assert_eq(atomic_load(&job.frees), 1);
    cr_assert_eq(atomic_load(&bad.frees), 1);
    expect_no_leaks();
}

/* Limit 1: the first task holds the slot at a gate, the rest wait in the
 * scope; a cancel frees the waiting ones at once, the running one once it
 * has returned. */
static void frees_when_cancelled_while_waiting(bool blocking)
{
    enum { N = 20 };
    struct gate gate;
    gate_init(&gate);
    pool_t *pool = pool_create(2);
    scope_t *s = scope_create(pool);
    cr_assert_eq(scope_set_limit(s, 1), 0);
    struct gated_owned first = {{0, 0}, &gate};
    future_t *running = scope_submit_ex(s, gated_owned_task, &first,
                                        free_gated);
    gate_await_started(&gate, 1);
    struct owned_arg o[N];
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct owned_arg){0, 0};
        fs[i] = blocking ? scope_submit_blocking_ex(s, use_owned, &o[i],
                                                    free_owned)
                         : scope_submit_ex(s, use_owned, &o[i], free_owned);
        cr_assert_not_null(fs[i]);
    }
    scope_cancel(s);
    for (int i = 0; i < N; i++)
        cr_assert_eq(atomic_load(&o[i].frees), 1, "task %d: freed by cancel",
                     i);
    cr_assert_eq(atomic_load(&first.o.frees), 0, "still running");
    gate_open(&gate);
    cr_assert_eq(scope_join(s), ECANCELED);
    cr_assert_eq(atomic_load(&first.o.frees), 1);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(future_wait(fs[i], NULL), ECANCELED);
        future_release(fs[i]);
        cr_assert_eq(atomic_load(&o[i].frees), 1, "task %d", i);
        cr_assert_eq(atomic_load(&o[i].runs), 0, "task %d", i);
    }
    future_release(running);
    scope_release(s);
    pool_destroy(pool);
    gate_destroy(&gate);
}

CheckedTest(scope_ex, frees_once_when_cancelled_while_waiting, .timeout = 30)
{
    frees_when_cancelled_while_waiting(false);
    frees_when_cancelled_while_waiting(true);
    expect_no_leaks();
}

CheckedTest(scope_ex, frees_once_when_a_sibling_fails, .timeout = 30)
{
    struct gate gate;
    gate_init(&gate);
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &gate);
    scope_t *s = scope_create(pool);
    struct owned_arg bad = {0, 0}, queued = {0, 0};
    future_t *f = scope_submit_ex(s, fail_owned, &bad, free_owned);
    future_t *g = scope_submit_ex(s, use_owned, &queued, free_owned);
    gate_open(&gate); /* bad runs first and cancels queued */
    cr_assert_eq(scope_join(s), EIO);
    cr_assert_eq(future_wait(g, NULL), ECANCELED);
    cr_assert_eq(atomic_load(&queued.runs), 0);
    cr_assert_eq(atomic_load(&queued.frees), 1);
    cr_assert_eq(atomic_load(&bad.frees), 1);
    future_release(f);
    future_release(g);
    scope_release(s);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&gate);
    expect_no_leaks();
}

CheckedTest(scope_ex, frees_every_task_pool_cancel_cancels, .timeout = 30)
{
    enum { N = 50 };
    struct gate gate;
    gate_init(&gate);
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &gate);
    scope_t *s = scope_create(pool);
    struct owned_arg o[N];
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct owned_arg){0, 0};
        fs[i] = scope_submit_ex(s, use_owned, &o[i], free_owned);
    }
    pool_shutdown(pool, POOL_CANCEL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(atomic_load(&o[i].frees), 1, "task %d", i);
    gate_open(&gate);
    /* Cancelled by the pool, not failed: the scope's verdict is clean. */
    cr_assert_eq(scope_join(s), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(future_wait(fs[i], NULL), ECANCELED);
        future_release(fs[i]);
        cr_assert_eq(atomic_load(&o[i].frees), 1, "task %d", i);
        cr_assert_eq(atomic_load(&o[i].runs), 0, "task %d", i);
    }
    scope_release(s);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&gate);
    expect_no_leaks();
}

/* One submission of each kind that is not accepted: the argument is freed
 * before the call returns, and errno says why. */
static void expect_refused(scope_t *s, task_fn fn, int error, bool blocking)
{
    struct owned_arg o = {0, 0};
    errno = 0;
    future_t *f = blocking ? scope_submit_blocking_ex(s, fn, &o, free_owned)
                           : scope_submit_ex(s, fn, &o, free_owned);
    cr_assert_null(f);
    cr_assert_eq(errno, error);
    cr_assert_eq(atomic_load(&o.frees), 1, "freed before returning");
    cr_assert_eq(atomic_load(&o.runs), 0);
}

CheckedTest(scope_ex, frees_before_returning_when_not_accepted)
{
    pool_t *pool = pool_create(1);
    scope_t *s = scope_create(pool);
    for (int blocking = 0; blocking < 2; blocking++) {
        expect_refused(NULL, use_owned, EINVAL, blocking);
        expect_refused(s, NULL, EINVAL, blocking);
        fut__fault_set(FUT_FAULT_ALLOC, 1, false);
        expect_refused(s, use_owned, ENOMEM, blocking);
    }
    cr_assert_eq(scope_join(s), 0);
    expect_refused(s, use_owned, ESHUTDOWN, false); /* joined */
    scope_release(s);

    s = scope_create(pool);
    pool_shutdown(pool, POOL_DRAIN);
    expect_refused(s, use_owned, ESHUTDOWN, false);
    expect_refused(s, use_owned, ESHUTDOWN, true);
    scope_release(s);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(scope_ex, a_cancelled_scope_frees_before_returning_its_failed_future)
{
    pool_t *pool = pool_create(1);
    scope_t *s = scope_create(pool);
    scope_cancel(s);
    for (int blocking = 0; blocking < 2; blocking++) {
        struct owned_arg o = {0, 0};
        future_t *f = blocking
                          ? scope_submit_blocking_ex(s, use_owned, &o,
                                                     free_owned)
                          : scope_submit_ex(s, use_owned, &o, free_owned);
        cr_assert_not_null(f, "a cancelled scope hands back a future");
        cr_assert_eq(atomic_load(&o.frees), 1, "freed before returning");
        cr_assert_eq(future_wait(f, NULL), ECANCELED);
        cr_assert_eq(atomic_load(&o.runs), 0);
        future_release(f);
        cr_assert_eq(atomic_load(&o.frees), 1, "not again when released");
    }
    cr_assert_eq(scope_join(s), ECANCELED);
    scope_release(s);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(scope_ex, frees_once_when_the_caller_cancels, .timeout = 30)
{
    struct gate gate;
    gate_init(&gate);
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &gate);
    scope_t *s = scope_create(pool);
    struct owned_arg o = {0, 0};
    future_t *f = scope_submit_ex(s, use_owned, &o, free_owned);
    cr_assert(future_cancel(f));
    cr_assert_eq(atomic_load(&o.frees), 1, "freed when cancelled");
    gate_open(&gate);
    cr_assert_eq(scope_join(s), 0, "a caller's cancel fails nothing");
    future_release(f);
    cr_assert_eq(atomic_load(&o.frees), 1, "not again when released");
    cr_assert_eq(atomic_load(&o.runs), 0);
    scope_release(s);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&gate);
    expect_no_leaks();
}

CheckedTest(scope_ex, without_a_destructor_is_scope_submit, .timeout = 30)
{
    struct owned_arg o = {0, 0};
    pool_t *pool = pool_create(1);
    scope_t *s = scope_create(pool);
    future_t *f = scope_submit_ex(s, use_owned, &o, NULL);
    future_t *g = scope_submit_blocking_ex(s, use_owned, &o, NULL);
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&o.runs), 2);
    cr_assert_eq(atomic_load(&o.frees), 0);
    future_release(f);
    future_release(g);
    scope_release(s);
    pool_destroy(pool);
}
