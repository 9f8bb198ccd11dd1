/*
 * Tests of when_all()'s and when_any()'s fast path over inputs that have
 * settled before the call: nothing is allocated or armed for them, yet the
 * outcome (lowest-index failure, first settled index), the observed marks,
 * cancellation and the caller's freedom to release inputs are as before.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

/* errs[i] == 0: a settled success; > 0: a settled failure; -1: a promise,
 * left pending in ps[i]. */
static void make_inputs(const int *errs, int n, future_t **fs, promise_t **ps)
{
    for (int i = 0; i < n; i++) {
        ps[i] = NULL;
        if (errs[i] < 0) {
            ps[i] = promise_create();
            fs[i] = promise_future(ps[i]);
        } else {
            fs[i] = errs[i] ? rejected_future(errs[i]) : future_resolved(U2P(i));
        }
        cr_assert_not_null(fs[i]);
    }
}

static void drop_inputs(future_t **fs, promise_t **ps, int n)
{
    for (int i = 0; i < n; i++) {
        future_release(fs[i]);
        promise_release(ps[i]);
    }
}

/* when_all over settled inputs only: settled on return, with @expect. */
static void all_settled_case(const int *errs, int n, int expect)
{
    future_t *fs[16];
    promise_t *ps[16];
    make_inputs(errs, n, fs, ps);
    future_t *all = when_all(fs, (size_t)n);
    cr_assert_not_null(all);
    cr_assert(future_is_ready(all), "settled inputs only: ready at once");
    void *v = U2P(1);
    cr_assert_eq(future_wait(all, &v), expect);
    if (expect == 0)
        cr_assert_null(v);
    future_release(all);
    drop_inputs(fs, ps, n);
}

CheckedTest(when_all_settled, settled_inputs_settle_it_at_once)
{
    const int none[6] = {0, 0, 0, 0, 0, 0};
    all_settled_case(none, 6, 0);
    const int one[1] = {EIO};
    all_settled_case(one, 1, EIO);
    const int first[5] = {EPERM, 0, EIO, 0, EBUSY};
    all_settled_case(first, 5, EPERM);
    const int middle[7] = {0, 0, 0, EBUSY, 0, EIO, EPERM};
    all_settled_case(middle, 7, EBUSY);
    const int last[8] = {0, 0, 0, 0, 0, 0, 0, ENOENT};
    all_settled_case(last, 8, ENOENT);
    const int every[4] = {EXDEV, EIO, EPERM, EBUSY};
    all_settled_case(every, 4, EXDEV);
    expect_no_leaks();
}

CheckedTest(when_all_settled, settled_inputs_cost_no_watches)
{
    enum { N = 2000 }; /* its watches would stay below the mmap threshold */
    plain_allocator();
    future_t **fs = calloc(N, sizeof *fs);
    for (int i = 0; i < N; i++)
        fs[i] = i % 7 == 3 ? future_failed(EIO) : future_resolved(NULL);
    size_t before = allocated_bytes();
    future_t *all = when_all(fs, N);
    size_t grown = allocated_bytes() - before;
    cr_assert_not_null(all);
    cr_assert(future_is_ready(all));
    cr_assert_lt(grown, (size_t)N, "%zu bytes for %d settled inputs", grown,
                 N);
    cr_assert_eq(future_wait(all, NULL), EIO);
    future_release(all);
    for (int i = 0; i < N; i++)
        future_release(fs[i]);
    free(fs);
    expect_no_leaks();
}

/* Inputs per @errs; then the pending ones settle in @order, with perr[i]
 * (0: success). The result must stay pending until the last, then fail
 * with @expect. */
static void mixed_case(const int *errs, int n, const int *order, int norder,
                       const int *perr, int expect)
{
    future_t *fs[16];
    promise_t *ps[16];
    make_inputs(errs, n, fs, ps);
    future_t *all = when_all(fs, (size_t)n);
    cr_assert_not_null(all);
    for (int k = 0; k < norder; k++) {
        cr_assert_not(future_is_ready(all), "ready with inputs pending");
        int i = order[k];
        if (perr[i])
            promise_reject(ps[i], perr[i]);
        else
            promise_resolve(ps[i], U2P(i));
    }
    cr_assert(future_wait_for(all, UINT64_C(10000000000)));
    cr_assert_eq(future_wait(all, NULL), expect);
    future_release(all);
    for (int k = 0; k < norder; k++) /* observed through when_all */
        future_wait(fs[order[k]], NULL);
    drop_inputs(fs, ps, n);
}

CheckedTest(when_all_settled, pending_inputs_keep_their_indices)
{
    /*                 0   1    2   3    4    5   6    7 */
    const int errs[8] = {0, -1, 0, -1, EIO, -1, 0, -1};
    const int back[4] = {7, 5, 3, 1}, fwd[4] = {1, 3, 5, 7};
    const int mix[4] = {5, 1, 7, 3};
    const int ok[8] = {0};
    mixed_case(errs, 8, back, 4, ok, EIO);
    mixed_case(errs, 8, mix, 4, ok, EIO);
    /* A pending input below the settled failure wins, whenever it fails. */
    int low[8] = {0};
    low[3] = EBUSY;
    low[7] = EPERM;
    mixed_case(errs, 8, back, 4, low, EBUSY);
    mixed_case(errs, 8, fwd, 4, low, EBUSY);
    mixed_case(errs, 8, mix, 4, low, EBUSY);
    low[1] = EXDEV;
    mixed_case(errs, 8, back, 4, low, EXDEV);
    /* Above it, a pending failure loses to the settled one. */
    int high[8] = {0};
    high[5] = EPERM;
    high[7] = EBUSY;
    mixed_case(errs, 8, back, 4, high, EIO);
    mixed_case(errs, 8, fwd, 4, high, EIO);
    /* Only pending failures above settled successes. */
    const int errs2[6] = {0, 0, -1, 0, -1, -1};
    const int order2[3] = {5, 4, 2};
    int perr2[6] = {0};
    perr2[4] = ENOENT;
    perr2[5] = EPERM;
    mixed_case(errs2, 6, order2, 3, perr2, ENOENT);
    expect_no_leaks();
}

CheckedTest(when_all_settled, repeated_inputs_count_each_time)
{
    promise_t *p = promise_create();
    future_t *pending = promise_future(p), *failed = future_failed(EIO);
    future_t *fs[5] = {pending, failed, pending, failed, pending};
    future_t *all = when_all(fs, 5);
    cr_assert_not(future_is_ready(all));
    promise_reject(p, EBUSY); /* index 0 fails first in index order */
    cr_assert_eq(future_wait(all, NULL), EBUSY);
    future_release(all);
    future_release(pending);
    future_release(failed);
    promise_release(p);
    expect_no_leaks();
}

/* ------------------------------------------------------- unobserved -- */

static atomic_int reports;

static void count_report(const struct futures_failure *failure, void *arg)
{
    (void)failure, (void)arg;
    atomic_fetch_add(&reports, 1);
}

CheckedTest(when_all_settled, a_settled_failure_handed_over_is_observed)
{
    futures_set_unobserved_handler(count_report, NULL);
    future_release(rejected_future(EIO)); /* the handler hears a dropped one */
    cr_assert_eq(atomic_load(&reports), 1);

    /* Settled inputs only, and beside a pending one. */
    future_t *a = rejected_future(EIO), *b = future_resolved(NULL);
    future_t *two[2] = {b, a};
    future_t *all = when_all(two, 2);
    future_release(a);
    future_release(b);
    cr_assert_eq(future_wait(all, NULL), EIO);
    future_release(all);

    promise_t *p = promise_create();
    future_t *c = rejected_future(EPERM), *d = promise_future(p);
    future_t *three[3] = {d, c, d};
    all = when_all(three, 3);
    future_release(c);
    promise_resolve(p, NULL);
    cr_assert_eq(future_wait(all, NULL), EPERM);
    future_release(all);
    future_release(d);
    promise_release(p);
    cr_assert_eq(atomic_load(&reports), 1, "a handed-over failure reported");
}

CheckedTest(when_all_settled, a_refused_call_observes_nothing)
{
    futures_set_unobserved_handler(count_report, NULL);
    future_t *failed = rejected_future(EIO), *ok = future_resolved(NULL);
    future_t *fs[2] = {ok, failed};
    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(when_all(fs, 2));
    cr_assert_eq(errno, ENOMEM);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(when_any(fs, 2));
    cr_assert_eq(errno, ENOMEM);
    fut__fault_set(FUT_FAULT_ALLOC, 0, false);
    future_release(ok);
    future_release(failed); /* nobody looked: still reported */
    cr_assert_eq(atomic_load(&reports), 1);
    expect_no_leaks();
}

CheckedTest(when_all_settled, when_any_observes_every_input_it_skips)
{
    futures_set_unobserved_handler(count_report, NULL);
    promise_t *p = promise_create();
    future_t *ok = future_resolved(NULL), *failed = rejected_future(EIO);
    future_t *later = promise_future(p);
    future_t *fs[3] = {ok, later, failed};
    future_t *any = when_any(fs, 3);
    void *v;
    cr_assert_eq(future_wait(any, &v), 0);
    cr_assert_eq(v, U2P(0));
    future_release(any);
    promise_reject(p, EBUSY); /* handed to when_any: observed */
    future_release(ok);
    future_release(failed);
    future_release(later);
    promise_release(p);
    cr_assert_eq(atomic_load(&reports), 0);
}

/* --------------------------------------------------------- when_any -- */

/* when_any over @errs (as make_inputs) must give @expect at once. */
static void any_case(const int *errs, int n, uintptr_t expect)
{
    future_t *fs[16];
    promise_t *ps[16];
    make_inputs(errs, n, fs, ps);
    future_t *any = when_any(fs, (size_t)n);
    cr_assert_not_null(any);
    cr_assert(future_is_ready(any), "a settled input decides at once");
    void *v;
    cr_assert_eq(future_wait(any, &v), 0);
    cr_assert_eq(v, U2P(expect));
    future_release(any);
    for (int i = 0; i < n; i++) {
        if (!ps[i])
            future_wait(fs[i], NULL); /* none goes unobserved */
    }
    drop_inputs(fs, ps, n);
}

CheckedTest(when_all_settled, when_any_picks_the_lowest_settled_index)
{
    const int a[3] = {-1, 0, 0};
    any_case(a, 3, 1);
    const int b[4] = {-1, -1, EIO, 0};
    any_case(b, 4, 2);
    const int c[3] = {0, EIO, -1};
    any_case(c, 3, 0);
    const int d[5] = {-1, -1, -1, -1, EBUSY};
    any_case(d, 5, 4);
    expect_no_leaks();
}

CheckedTest(when_all_settled, when_any_over_pending_inputs_still_watches)
{
    promise_t *ps[4];
    future_t *fs[4];
    const int errs[4] = {-1, -1, -1, -1};
    make_inputs(errs, 4, fs, ps);
    future_t *any = when_any(fs, 4);
    cr_assert_not(future_is_ready(any));
    promise_reject(ps[2], EIO);
    void *v;
    cr_assert_eq(future_wait(any, &v), 0);
    cr_assert_eq(v, U2P(2));
    future_release(any);
    drop_inputs(fs, ps, 4);
    expect_no_leaks();
}

/* ------------------------------------------- cancelling, releasing -- */

CheckedTest(when_all_settled, cancelling_with_some_watches_armed)
{
    /*                  0   1    2   3    4 */
    const int errs[5] = {0, -1, EIO, -1, 0};
    future_t *fs[5];
    promise_t *ps[5];
    make_inputs(errs, 5, fs, ps);
    future_t *all = when_all(fs, 5);
    promise_resolve(ps[3], NULL); /* one watch ends, one stays armed */
    cr_assert(future_cancel(all));
    cr_assert_eq(future_wait(all, NULL), ECANCELED);
    cr_assert_not(future_is_ready(fs[1]), "the inputs are spared");
    promise_reject(ps[1], EBUSY); /* observed: it was handed over */
    cr_assert_eq(future_wait(all, NULL), ECANCELED);
    future_release(all);
    drop_inputs(fs, ps, 5);
    expect_no_leaks();
}

CheckedTest(when_all_settled, cancelling_races_settling_inputs, .timeout = 60)
{
    pool_t *pool = pool_create(2);
    for (int round = 0; round < 200; round++) {
        future_t *fs[32];
        for (int i = 0; i < 32; i++)
            fs[i] = i % 3 ? pool_submit(pool, value_task, U2P(i))
                          : future_resolved(NULL);
        future_t *all = when_all(fs, 32);
        for (int i = 0; i < 32; i++)
            future_release(fs[i]);
        bool cancelled = future_cancel(all);
        int rc = future_wait(all, NULL);
        cr_assert_eq(rc, cancelled ? ECANCELED : 0);
        future_release(all);
    }
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(when_all_settled, inputs_released_right_after_the_call,
            .timeout = 30)
{
    promise_t *p = promise_create(), *q = promise_create();
    future_t *fs[5] = {future_resolved(NULL), promise_future(p),
                       future_failed(EPERM), promise_future(q),
                       future_failed(EIO)};
    future_t *all = when_all(fs, 5);
    future_t *any = when_any(fs, 5);
    for (int i = 0; i < 5; i++)
        future_release(fs[i]); /* the settled ones are freed now */
    cr_assert_not(future_is_ready(all));
    promise_resolve(q, NULL);
    promise_reject(p, EBUSY); /* index 1: below the settled failures */
    cr_assert_eq(future_wait(all, NULL), EBUSY);
    void *v;
    cr_assert_eq(future_wait(any, &v), 0);
    cr_assert_eq(v, U2P(0));
    future_release(all);
    future_release(any);
    promise_release(p);
    promise_release(q);
    expect_no_leaks();
}

CheckedTest(when_all_settled, a_join_over_finished_tasks, .timeout = 60)
{
    enum { N = 2000 };
    plain_allocator();
    pool_t *pool = pool_create(2);
    future_t **fs = calloc(N, sizeof *fs);
    for (int i = 0; i < N; i++)
        fs[i] = pool_submit(pool, i == N - 10 ? fail_task : value_task,
                            U2P(i == N - 10 ? EXDEV : i));
    future_t *first = when_all(fs, N); /* mostly pending or settling */
    cr_assert_eq(future_wait(first, NULL), EXDEV);
    /* The first failure ends that join while later tasks still run, and
     * what they allocate meanwhile is not the second join's. */
    for (int i = 0; i < N; i++)
        future_wait(fs[i], NULL);
    size_t before = allocated_bytes();
    future_t *again = when_all(fs, N); /* every input settled */
    size_t grown = allocated_bytes() - before;
    cr_assert(future_is_ready(again));
    cr_assert_lt(grown, (size_t)N, "%zu bytes over settled inputs", grown);
    cr_assert_eq(future_wait(again, NULL), EXDEV);
    future_release(first);
    future_release(again);
    for (int i = 0; i < N; i++)
        future_release(fs[i]);
    free(fs);
    pool_destroy(pool);
    expect_no_leaks();
}
