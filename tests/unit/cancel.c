/* Tests of future_cancel() and task_cancelled() on every kind of future. */
#include "helpers.h"

#include <errno.h>

CheckedTest(cancel, a_queued_task_never_runs_and_fails_with_ecanceled,
            .timeout = 30)
{
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &g);
    future_t *queued = pool_submit(pool, count_task, &runs);
    cr_assert(future_cancel(queued));
    cr_assert(future_is_ready(queued), "settles at once");
    cr_assert_eq(future_wait(queued, NULL), ECANCELED);
    cr_assert_not(future_cancel(queued), "settled already");
    gate_open(&g);
    pool_destroy(pool); /* a late run would be counted by now */
    cr_assert_eq(atomic_load(&runs), 0);
    release_all(busy, 1);
    future_release(queued);
    gate_destroy(&g);
    expect_no_leaks();
}

struct cooperative {
    struct gate gate;
    bool saw_request_before;
    bool saw_request_after;
};

static int cooperative_task(void *arg, void **result)
{
    struct cooperative *c = arg;
    c->saw_request_before = task_cancelled();
    gate_pass(&c->gate);
    c->saw_request_after = task_cancelled();
    *result = U2P(42); /* finishes anyway: its return decides */
    return 0;
}

CheckedTest(cancel, a_running_task_is_asked_and_decides_its_outcome,
            .timeout = 30)
{
    struct cooperative c = {0};
    gate_init(&c.gate);
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, cooperative_task, &c);
    gate_await_started(&c.gate, 1);
    cr_assert_not(future_cancel(f), "running: only a request");
    gate_open(&c.gate);
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(42));
    cr_assert_not(c.saw_request_before);
    cr_assert(c.saw_request_after);
    cr_assert_not(task_cancelled(), "outside any task");
    future_release(f);
    pool_destroy(pool);
    gate_destroy(&c.gate);
}

static int honour_cancel(void *arg, void **result)
{
    (void)result;
    gate_pass(arg);
    return task_cancelled() ? ECANCELED : 0;
}

CheckedTest(cancel, a_running_task_may_honour_the_request, .timeout = 30)
{
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, honour_cancel, &g);
    gate_await_started(&g, 1);
    cr_assert_not(future_cancel(f));
    gate_open(&g);
    cr_assert_eq(future_wait(f, NULL), ECANCELED);
    future_release(f);
    pool_destroy(pool);
    gate_destroy(&g);
}

CheckedTest(cancel, a_settled_future_cannot_be_cancelled)
{
    future_t *ok = future_resolved(NULL), *bad = future_failed(EIO);
    cr_assert_not(future_cancel(ok));
    cr_assert_not(future_cancel(bad));
    cr_assert_eq(future_wait(ok, NULL), 0);
    cr_assert_eq(future_wait(bad, NULL), EIO);
    future_release(ok);
    future_release(bad);
}

static int count_then(void *value, void *arg, void **result)
{
    (void)value;
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = NULL;
    return 0;
}

CheckedTest(cancel, a_waiting_continuation_settles_now_and_never_runs,
            .timeout = 30)
{
    atomic_int runs = 0;
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *g = future_then(f, count_then, &runs);
    cr_assert(future_cancel(g));
    cr_assert(future_is_ready(g));
    cr_assert_eq(future_wait(g, NULL), ECANCELED);
    promise_resolve(p, NULL);
    /* Anything the predecessor would have started runs after this one. */
    future_t *after = future_then(f, count_then, &runs);
    cr_assert_eq(future_wait(after, NULL), 0);
    cr_assert_eq(atomic_load(&runs), 1, "only the second continuation ran");
    future_release(after);
    future_release(g);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

static int recover(int error, void *arg, void **result)
{
    (void)arg;
    *result = U2P(error);
    return 0;
}

CheckedTest(cancel, dependents_see_an_ordinary_ecanceled_failure, .timeout = 30)
{
    atomic_int runs = 0;
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *then = future_then(f, count_then, &runs);
    future_t *caught = future_catch(f, recover, NULL);
    future_t *all = when_all(&f, 1);
    cr_assert(future_cancel(f),
              "an unsettled promise's future can be cancelled");
    cr_assert_eq(promise_resolve(p, NULL), EALREADY);
    cr_assert_eq(future_wait(then, NULL), ECANCELED);
    void *v;
    cr_assert_eq(future_wait(caught, &v), 0);
    cr_assert_eq(v, U2P(ECANCELED));
    cr_assert_eq(future_wait(all, NULL), ECANCELED);
    cr_assert_eq(atomic_load(&runs), 0);
    future_release(then);
    future_release(caught);
    future_release(all);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(cancel, cancelling_when_all_leaves_its_inputs_alone)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *all = when_all(&f, 1);
    cr_assert(future_cancel(all));
    cr_assert_eq(future_wait(all, NULL), ECANCELED);
    cr_assert_not(future_is_ready(f));
    cr_assert_eq(promise_resolve(p, U2P(1)), 0);
    future_release(all);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(cancel, many_cancelled_continuations_are_let_go, .timeout = 60)
{
    /* Each cancelled continuation must unlink itself from the pending
     * future; otherwise this would keep 100k of them alive until the end. */
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    atomic_int runs = 0;
    size_t before = allocated_bytes();
    for (int i = 0; i < 100000; i++) {
        future_t *g = future_then(f, count_then, &runs);
        cr_assert(future_cancel(g));
        future_release(g);
    }
    size_t grown = allocated_bytes() - before;
    cr_assert_lt(grown, 1u << 20, "100k cancelled continuations kept %zu bytes",
                 grown);
    promise_resolve(p, NULL);
    future_t *last = future_then(f, count_then, &runs);
    cr_assert_eq(future_wait(last, NULL), 0);
    cr_assert_eq(atomic_load(&runs), 1);
    future_release(last);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}
