/* Tests of lib/combinators.c: when_all() and when_any(). */
#include "helpers.h"

#include <errno.h>

static void make_promises(promise_t **ps, future_t **fs, int n)
{
    for (int i = 0; i < n; i++) {
        ps[i] = promise_create();
        fs[i] = promise_future(ps[i]);
    }
}

static void drop_promises(promise_t **ps, future_t **fs, int n)
{
    for (int i = 0; i < n; i++) {
        future_release(fs[i]);
        promise_release(ps[i]);
    }
}

CheckedTest(when_all, of_nothing_has_succeeded_already)
{
    future_t *all = when_all(NULL, 0);
    cr_assert(future_is_ready(all));
    void *v = U2P(1);
    cr_assert_eq(future_wait(all, &v), 0);
    cr_assert_null(v);
    future_release(all);
}

CheckedTest(when_all, bad_arguments_are_einval)
{
    future_t *ok = future_resolved(NULL);
    future_t *with_null[2] = {ok, NULL};
    errno = 0;
    cr_assert_null(when_all(NULL, 2));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(when_all(with_null, 2));
    cr_assert_eq(errno, EINVAL);
    future_release(ok);
    expect_no_leaks();
}

CheckedTest(when_all, succeeds_with_null_and_leaves_values_in_the_inputs,
            .timeout = 30)
{
    pool_t *pool = pool_create(2);
    future_t *fs[16];
    for (uintptr_t i = 0; i < 16; i++)
        fs[i] = pool_submit(pool, value_task, U2P(i * 3));
    future_t *all = when_all(fs, 16);
    void *v = U2P(1);
    cr_assert_eq(future_wait(all, &v), 0);
    cr_assert_null(v);
    for (uintptr_t i = 0; i < 16; i++) {
        cr_assert(future_is_ready(fs[i]), "settled before when_all");
        cr_assert_eq(future_wait(fs[i], &v), 0);
        cr_assert_eq(v, U2P(i * 3));
        future_release(fs[i]);
    }
    future_release(all);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(when_all, fails_with_the_lowest_index_error)
{
    promise_t *ps[4];
    future_t *fs[4];
    make_promises(ps, fs, 4);
    future_t *all = when_all(fs, 4);
    promise_reject(ps[3], 33); /* fails first, but has the highest index */
    promise_reject(ps[1], 11);
    promise_resolve(ps[0], NULL);
    cr_assert_not(future_wait_for(all, 1000000), "input 2 is still pending");
    promise_resolve(ps[2], NULL);
    cr_assert_eq(future_wait(all, NULL), 11);
    future_release(all);
    drop_promises(ps, fs, 4);
    expect_no_leaks();
}

CheckedTest(when_all, never_settles_before_its_last_input)
{
    promise_t *ps[3];
    future_t *fs[3];
    make_promises(ps, fs, 3);
    future_t *all = when_all(fs, 3);
    promise_reject(ps[0], EIO); /* a failure does not end it early */
    promise_resolve(ps[1], NULL);
    cr_assert_not(future_wait_for(all, 5000000));
    promise_resolve(ps[2], NULL);
    cr_assert_eq(future_wait(all, NULL), EIO);
    future_release(all);
    drop_promises(ps, fs, 3);
}

CheckedTest(when_all, accepts_repeated_inputs_from_pools_and_promises,
            .timeout = 30)
{
    pool_t *a = pool_create(1), *b = pool_create(2);
    promise_t *p = promise_create();
    future_t *fp = promise_future(p);
    future_t *fa = pool_submit(a, value_task, NULL);
    future_t *fb = pool_submit(b, value_task, NULL);
    future_t *fs[6] = {fa, fp, fb, fa, fp, fp};
    future_t *all = when_all(fs, 6);
    promise_resolve(p, NULL);
    cr_assert_eq(future_wait(all, NULL), 0);
    future_release(all);
    future_release(fa);
    future_release(fb);
    future_release(fp);
    promise_release(p);
    pool_destroy(a);
    pool_destroy(b);
    expect_no_leaks();
}

CheckedTest(when_all, joins_ten_thousand_tasks, .timeout = 60)
{
    enum { N = 10000 };
    atomic_int runs = 0;
    pool_t *pool = pool_create(2);
    future_t **fs = calloc(N, sizeof *fs);
    for (int i = 0; i < N; i++)
        fs[i] = pool_submit(pool, count_task, &runs);
    future_t *all = when_all(fs, N);
    cr_assert_eq(future_wait(all, NULL), 0);
    cr_assert_eq(atomic_load(&runs), N);
    future_release(all);
    release_all(fs, N);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(when_any, of_nothing_is_einval)
{
    future_t *f = future_resolved(NULL);
    errno = 0;
    cr_assert_null(when_any(&f, 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(when_any(NULL, 1));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
}

CheckedTest(when_any, settles_with_the_index_of_the_first_to_settle)
{
    promise_t *ps[4];
    future_t *fs[4];
    make_promises(ps, fs, 4);
    future_t *any = when_any(fs, 4);
    cr_assert_not(future_is_ready(any));
    promise_reject(ps[2], EIO); /* a failure wins too */
    void *v;
    cr_assert_eq(future_wait(any, &v), 0);
    cr_assert_eq(v, U2P(2));
    promise_resolve(ps[0], NULL); /* later ones change nothing */
    cr_assert_eq(future_wait(any, &v), 0);
    cr_assert_eq(v, U2P(2));
    future_release(any);
    drop_promises(ps, fs, 4); /* the rest break: EPIPE, nobody cares */
    expect_no_leaks();
}

CheckedTest(when_any, over_settled_inputs_picks_one_of_them)
{
    promise_t *p = promise_create();
    future_t *pending = promise_future(p);
    future_t *done = future_resolved(NULL);
    future_t *fs[2] = {pending, done};
    future_t *any = when_any(fs, 2);
    void *v;
    cr_assert_eq(future_wait(any, &v), 0);
    cr_assert_eq(v, U2P(1));
    future_release(any);
    future_release(done);
    future_release(pending);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(when_any, repeated_over_a_pending_future_keeps_memory_flat)
{
    promise_t *p = promise_create();
    future_t *slow = promise_future(p);
    size_t before = allocated_bytes();
    for (int i = 0; i < 20000; i++) {
        future_t *fast = future_resolved(NULL);
        future_t *fs[2] = {slow, fast};
        future_t *any = when_any(fs, 2);
        cr_assert_eq(future_wait(any, NULL), 0);
        future_release(any);
        future_release(fast);
    }
    size_t grown = allocated_bytes() - before;
    cr_assert_lt(grown, 1u << 20,
                 "when_any left %zu bytes on the pending input", grown);
    future_release(slow);
    promise_release(p);
    expect_no_leaks();
}
