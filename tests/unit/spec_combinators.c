/*
 * spec_combinators.c - when_all and when_any.
 */
#include "spec_helpers.h"

enum { NP = 4 };

struct set {
    promise_t *p[NP];
    future_t *f[NP];
};

static void set_init(struct set *s)
{
    for (int i = 0; i < NP; i++) {
        s->p[i] = spec_promise();
        s->f[i] = spec_pfuture(s->p[i]);
    }
}

static void set_fini(struct set *s)
{
    for (int i = 0; i < NP; i++) {
        future_release(s->f[i]);
        promise_release(s->p[i]);
    }
}

/* Best-effort negative check: @f has not settled (and does not within a
 * short grace period). Never used to order events. */
static void expect_pending(future_t *f, const char *what)
{
    cr_assert_not(future_is_ready(f), "%s settled early", what);
    cr_assert_not(future_wait_for(f, 20 * SPEC_MS), "%s settled early", what);
}

/* ---------------------------------------------------------- when_all -- */

CheckedTest(spec_when_all, succeeds_with_null_after_every_input, .timeout = 30)
{
    struct set s;
    set_init(&s);
    future_t *w = when_all(s.f, NP);
    cr_assert_not_null(w);
    int vals[NP];
    for (int i = 0; i < NP; i++) {
        expect_pending(w, "when_all");
        cr_assert_eq(promise_resolve(s.p[i], &vals[i]), 0);
    }
    spec_expect_value(w, NULL);
    for (int i = 0; i < NP; i++)
        spec_expect_value(s.f[i], &vals[i]); /* values stay in the inputs */
    future_release(w);
    set_fini(&s);
}

CheckedTest(spec_when_all, does_not_settle_early_on_a_failure, .timeout = 30)
{
    struct set s;
    set_init(&s);
    future_t *w = when_all(s.f, NP);
    cr_assert_not_null(w);
    cr_assert_eq(promise_reject(s.p[0], EIO), 0);
    expect_pending(w, "when_all after first failure");
    cr_assert_eq(promise_resolve(s.p[1], NULL), 0);
    cr_assert_eq(promise_reject(s.p[3], ENOENT), 0);
    expect_pending(w, "when_all with one input left");
    cr_assert_eq(promise_resolve(s.p[2], NULL), 0);
    spec_expect_error(w, EIO);
    future_release(w);
    set_fini(&s);
}

static void lowest_index_case(const int *order, const int *errs, int expect)
{
    struct set s;
    set_init(&s);
    future_t *w = when_all(s.f, NP);
    cr_assert_not_null(w);
    for (int k = 0; k < NP; k++) {
        int i = order[k];
        if (errs[i])
            cr_assert_eq(promise_reject(s.p[i], errs[i]), 0);
        else
            cr_assert_eq(promise_resolve(s.p[i], NULL), 0);
        /* let the input settle before the next one, so that settle order
         * differs from index order */
        future_wait(s.f[i], NULL);
    }
    spec_expect_error(w, expect);
    future_release(w);
    set_fini(&s);
}

CheckedTest(spec_when_all, fails_with_lowest_index_error, .timeout = 30)
{
    const int errs[NP] = {0, 11, 22, 33};
    const int back[NP] = {3, 2, 1, 0};
    const int fwd[NP] = {0, 1, 2, 3};
    const int mixed[NP] = {2, 0, 3, 1};
    lowest_index_case(back, errs, 11);
    lowest_index_case(fwd, errs, 11);
    lowest_index_case(mixed, errs, 11);
    const int errs2[NP] = {0, 0, 0, 44};
    lowest_index_case(back, errs2, 44);
    const int errs3[NP] = {55, 0, 66, 0};
    lowest_index_case(back, errs3, 55);
}

CheckedTest(spec_when_all, lowest_index_cancellation_counts_as_failure,
            .timeout = 30)
{
    struct set s;
    set_init(&s);
    future_t *w = when_all(s.f, NP);
    cr_assert_not_null(w);
    cr_assert_eq(promise_reject(s.p[3], EIO), 0);
    future_wait(s.f[3], NULL);
    cr_assert(future_cancel(s.f[1]));
    cr_assert_eq(promise_resolve(s.p[0], NULL), 0);
    cr_assert_eq(promise_resolve(s.p[2], NULL), 0);
    spec_expect_error(w, ECANCELED);
    future_release(w);
    set_fini(&s);
}

CheckedTest(spec_when_all, zero_inputs_already_succeeded)
{
    future_t *dummy[1] = {NULL};
    future_t *w = when_all(dummy, 0);
    cr_assert_not_null(w);
    cr_assert(future_is_ready(w));
    spec_expect_value(w, NULL);
    future_release(w);

    future_t *w2 = when_all(NULL, 0);
    cr_assert_not_null(w2);
    cr_assert(future_is_ready(w2));
    spec_expect_value(w2, NULL);
    future_release(w2);
}

CheckedTest(spec_when_all, repeated_inputs_from_pools_and_promises,
            .timeout = 30)
{
    pool_t *pa = spec_pool(1), *pb = spec_pool(2);
    spec_blocker_t ba, bb;
    spec_blocker_init(&ba);
    spec_blocker_init(&bb);
    future_t *fa = pool_submit(pa, spec_block_task, &ba);
    future_t *fb = pool_submit(pb, spec_block_task, &bb);
    cr_assert_not_null(fa);
    cr_assert_not_null(fb);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    future_t *in[7] = {fa, pf, fb, fa, pf, fa, fb};
    future_t *w = when_all(in, 7);
    cr_assert_not_null(w);
    spec_sem_wait(&ba.started);
    spec_sem_wait(&bb.started);
    expect_pending(w, "when_all");
    spec_gate_open(&ba.gate);
    cr_assert_eq(future_wait(fa, NULL), 0);
    expect_pending(w, "when_all");
    cr_assert_eq(promise_resolve(pr, NULL), 0);
    expect_pending(w, "when_all");
    spec_gate_open(&bb.gate);
    spec_expect_value(w, NULL);
    future_release(w);
    future_release(fa);
    future_release(fb);
    future_release(pf);
    promise_release(pr);
    pool_destroy(pa);
    pool_destroy(pb);
    spec_blocker_destroy(&ba);
    spec_blocker_destroy(&bb);
}

CheckedTest(spec_when_all, inputs_are_borrowed_and_kept_alive, .timeout = 30)
{
    promise_t *p[NP];
    future_t *f[NP];
    for (int i = 0; i < NP; i++) {
        p[i] = spec_promise();
        f[i] = spec_pfuture(p[i]);
    }
    future_t *w = when_all(f, NP);
    cr_assert_not_null(w);
    /* the array is borrowed: scribbling over it must not matter */
    for (int i = 0; i < NP; i++) {
        future_release(f[i]);
        f[i] = NULL;
    }
    for (int i = 0; i < NP; i++)
        cr_assert_eq(promise_resolve(p[i], NULL), 0);
    spec_expect_value(w, NULL);
    future_release(w);
    for (int i = 0; i < NP; i++)
        promise_release(p[i]);
}

CheckedTest(spec_when_all, bad_input_is_einval)
{
    future_t *ok = future_resolved(NULL);
    cr_assert_not_null(ok);
    future_t *in[3] = {ok, NULL, ok};
    errno = 0;
    cr_assert_null(when_all(in, 3));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(when_all(NULL, 2));
    cr_assert_eq(errno, EINVAL);
    future_release(ok);
}

CheckedTest(spec_when_all, cancelling_the_result_spares_the_inputs,
            .timeout = 30)
{
    struct set s;
    set_init(&s);
    atomic_int n;
    atomic_init(&n, 0);
    future_t *w = when_all(s.f, NP);
    cr_assert_not_null(w);
    future_t *g = future_then(w, spec_count_then, &n);
    cr_assert_not_null(g);
    cr_assert(future_cancel(w));
    cr_assert(future_is_ready(w));
    spec_expect_error(w, ECANCELED);
    spec_expect_error(g, ECANCELED);
    for (int i = 0; i < NP; i++) {
        cr_assert_not(future_is_ready(s.f[i]));
        cr_assert_eq(promise_resolve(s.p[i], (void *)(uintptr_t)i), 0);
        spec_expect_value(s.f[i], (void *)(uintptr_t)i);
    }
    spec_expect_error(w, ECANCELED);
    cr_assert_eq(atomic_load(&n), 0);
    future_release(g);
    future_release(w);
    set_fini(&s);
}

/* ---------------------------------------------------------- when_any -- */

CheckedTest(spec_when_any, succeeds_with_index_of_first_settled, .timeout = 30)
{
    struct set s;
    set_init(&s);
    future_t *w = when_any(s.f, NP);
    cr_assert_not_null(w);
    expect_pending(w, "when_any");
    int obj = 0;
    cr_assert_eq(promise_resolve(s.p[2], &obj), 0);
    /* settles while the other inputs are still pending */
    spec_expect_value(w, (void *)(uintptr_t)2);
    cr_assert_eq(promise_resolve(s.p[0], NULL), 0);
    cr_assert_eq(promise_resolve(s.p[3], NULL), 0);
    cr_assert_eq(promise_reject(s.p[1], EIO), 0);
    spec_expect_value(w, (void *)(uintptr_t)2);
    spec_expect_value(s.f[2], &obj);
    future_release(w);
    set_fini(&s);
}

CheckedTest(spec_when_any, a_failed_input_counts_as_first, .timeout = 30)
{
    struct set s;
    set_init(&s);
    future_t *w = when_any(s.f, NP);
    cr_assert_not_null(w);
    cr_assert_eq(promise_reject(s.p[3], ENOENT), 0);
    spec_expect_value(w, (void *)(uintptr_t)3);
    spec_expect_error(s.f[3], ENOENT);
    future_release(w);
    set_fini(&s);
}

CheckedTest(spec_when_any, settles_while_other_tasks_still_run, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *slow = pool_submit(p, spec_block_task, &b);
    cr_assert_not_null(slow);
    spec_sem_wait(&b.started);
    future_t *fast = pool_submit(p, spec_value_task, NULL);
    cr_assert_not_null(fast);
    future_t *in[3] = {slow, slow, fast};
    future_t *w = when_any(in, 3);
    cr_assert_not_null(w);
    spec_expect_value(w, (void *)(uintptr_t)2);
    cr_assert_not(future_is_ready(slow));
    spec_gate_open(&b.gate);
    future_release(w);
    future_release(slow);
    future_release(fast);
    pool_destroy(p);
    spec_blocker_destroy(&b);
}

CheckedTest(spec_when_any, already_settled_input_wins, .timeout = 30)
{
    struct set s;
    set_init(&s);
    expect_unobserved(EPIPE); /* the set's promises are never kept */
    future_t *done = future_failed(EBUSY);
    cr_assert_not_null(done);
    future_t *in[3] = {s.f[0], done, s.f[1]};
    future_t *w = when_any(in, 3);
    cr_assert_not_null(w);
    spec_expect_value(w, (void *)(uintptr_t)1);
    future_release(w);
    future_release(done);
    set_fini(&s);
}

CheckedTest(spec_when_any, bad_input_is_einval)
{
    future_t *ok = future_resolved(NULL);
    cr_assert_not_null(ok);
    future_t *in[2] = {ok, NULL};
    errno = 0;
    cr_assert_null(when_any(in, 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(when_any(NULL, 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(when_any(NULL, 2));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(when_any(in, 2));
    cr_assert_eq(errno, EINVAL);
    future_release(ok);
}

CheckedTest(spec_when_any, cancelling_the_result_spares_the_inputs,
            .timeout = 30)
{
    struct set s;
    set_init(&s);
    future_t *w = when_any(s.f, NP);
    cr_assert_not_null(w);
    cr_assert(future_cancel(w));
    spec_expect_error(w, ECANCELED);
    cr_assert_not(future_is_ready(s.f[0]));
    cr_assert_eq(promise_resolve(s.p[0], NULL), 0);
    spec_expect_value(s.f[0], NULL);
    spec_expect_error(w, ECANCELED);
    future_release(w);
    set_fini(&s);
}
