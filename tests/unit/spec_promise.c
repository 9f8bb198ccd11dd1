/*
 * spec_promise.c - promises.
 */
#include "spec_helpers.h"

static _Thread_local bool tls_in_call;

CheckedTest(spec_promise, resolve_then_first_wins, .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_not(future_is_ready(f));
    int a = 0, b = 0;
    cr_assert_eq(promise_resolve(pr, &a), 0);
    cr_assert_eq(promise_resolve(pr, &b), EALREADY);
    cr_assert_eq(promise_reject(pr, EIO), EALREADY);
    spec_expect_value(f, &a);
    future_release(f);
    promise_release(pr);
}

CheckedTest(spec_promise, reject_then_first_wins, .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    int a = 0;
    cr_assert_eq(promise_reject(pr, ENOTDIR), 0);
    cr_assert_eq(promise_resolve(pr, &a), EALREADY);
    cr_assert_eq(promise_reject(pr, EIO), EALREADY);
    spec_expect_error(f, ENOTDIR);
    future_release(f);
    promise_release(pr);
}

CheckedTest(spec_promise, reject_with_non_positive_error_is_einval,
            .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(promise_reject(pr, 0), EINVAL);
    cr_assert_eq(promise_reject(pr, -3), EINVAL);
    /* nothing was consumed: still unsettled */
    cr_assert_not(future_is_ready(f));
    int a = 0;
    cr_assert_eq(promise_resolve(pr, &a), 0);
    spec_expect_value(f, &a);
    future_release(f);
    promise_release(pr);
}

CheckedTest(spec_promise, null_arguments)
{
    cr_assert_eq(promise_resolve(NULL, NULL), EINVAL);
    cr_assert_eq(promise_reject(NULL, EIO), EINVAL);
    errno = 0;
    cr_assert_null(promise_future(NULL));
    cr_assert_eq(errno, EINVAL);
    promise_release(NULL);
}

CheckedTest(spec_promise, future_may_be_taken_many_times, .timeout = 30)
{
    enum { K = 6 };
    promise_t *pr = spec_promise();
    future_t *f[K];
    for (int i = 0; i < K; i++)
        f[i] = spec_pfuture(pr);
    /* each call is its own reference: dropping some keeps the rest valid */
    for (int i = 0; i < K - 2; i++)
        future_release(f[i]);
    int a = 0;
    cr_assert_eq(promise_resolve(pr, &a), 0);
    spec_expect_value(f[K - 2], &a);
    spec_expect_value(f[K - 1], &a);
    future_t *late = spec_pfuture(pr);
    spec_expect_value(late, &a);
    future_release(late);
    future_release(f[K - 2]);
    promise_release(pr);
    /* the future outlives its promise */
    spec_expect_value(f[K - 1], &a);
    future_release(f[K - 1]);
}

struct bg_wait {
    future_t *f;
    sem_t ready;
    int rc;
};

static void *bg_waiter(void *arg)
{
    struct bg_wait *w = arg;
    sem_post(&w->ready);
    w->rc = future_wait(w->f, NULL);
    return NULL;
}

CheckedTest(spec_promise, releasing_unsettled_promise_breaks_it, .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    atomic_int nt;
    atomic_init(&nt, 0);
    future_t *g = future_then(f, spec_count_then, &nt);
    cr_assert_not_null(g);
    struct bg_wait w;
    w.f = f;
    w.rc = -1;
    sem_init(&w.ready, 0, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bg_waiter, &w), 0);
    spec_sem_wait(&w.ready);
    promise_release(pr);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, EPIPE);
    spec_expect_error(f, EPIPE);
    spec_expect_error(g, EPIPE);
    cr_assert_eq(atomic_load(&nt), 0);
    future_release(g);
    future_release(f);
    sem_destroy(&w.ready);
}

CheckedTest(spec_promise, releasing_settled_promise_keeps_outcome,
            .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(promise_reject(pr, EROFS), 0);
    promise_release(pr);
    spec_expect_error(f, EROFS);
    future_release(f);

    promise_t *pr2 = spec_promise();
    future_t *f2 = spec_pfuture(pr2);
    int a = 0;
    cr_assert_eq(promise_resolve(pr2, &a), 0);
    promise_release(pr2);
    spec_expect_value(f2, &a);
    future_release(f2);
}

CheckedTest(spec_promise, release_without_any_future_taken, .timeout = 30)
{
    promise_t *pr = spec_promise();
    promise_release(pr);
    promise_t *pr2 = spec_promise();
    cr_assert_eq(promise_resolve(pr2, NULL), 0);
    promise_release(pr2);
}

/* ------------------------------------------- never inside resolve/reject -- */

struct cb_probe {
    atomic_int ran;
    atomic_int inside;
    pthread_t tid;
};

static int probe_then(void *value, void *arg, void **result)
{
    struct cb_probe *p = arg;
    if (tls_in_call)
        atomic_fetch_add(&p->inside, 1);
    p->tid = pthread_self();
    atomic_fetch_add(&p->ran, 1);
    *result = value;
    return 0;
}

static int probe_catch(int error, void *arg, void **result)
{
    struct cb_probe *p = arg;
    if (tls_in_call)
        atomic_fetch_add(&p->inside, 1);
    p->tid = pthread_self();
    atomic_fetch_add(&p->ran, 1);
    *result = NULL;
    return error;
}

struct settle_inside {
    promise_t *pr;
    int error; /* 0: resolve */
    int rc;
};

static int settle_inside_task(void *arg, void **result)
{
    struct settle_inside *s = arg;
    tls_in_call = true;
    if (s->error)
        s->rc = promise_reject(s->pr, s->error);
    else
        s->rc = promise_resolve(s->pr, (void *)(uintptr_t)1);
    tls_in_call = false;
    *result = NULL;
    return 0;
}

CheckedTest(spec_promise, callbacks_never_run_inside_resolve_or_reject,
            .timeout = 30)
{
    promise_t *ok = spec_promise(), *bad = spec_promise();
    future_t *fo = spec_pfuture(ok), *fb = spec_pfuture(bad);
    struct cb_probe po = {0}, pb = {0};
    future_t *go = future_then(fo, probe_then, &po);
    future_t *gb = future_catch(fb, probe_catch, &pb);
    cr_assert_not_null(go);
    cr_assert_not_null(gb);
    tls_in_call = true;
    int rc1 = promise_resolve(ok, (void *)(uintptr_t)3);
    int rc2 = promise_reject(bad, EIO);
    tls_in_call = false;
    cr_assert_eq(rc1, 0);
    cr_assert_eq(rc2, 0);
    spec_expect_value(go, (void *)(uintptr_t)3);
    spec_expect_error(gb, EIO);
    cr_assert_eq(atomic_load(&po.ran), 1);
    cr_assert_eq(atomic_load(&pb.ran), 1);
    cr_assert_eq(atomic_load(&po.inside), 0, "then ran inside resolve");
    cr_assert_eq(atomic_load(&pb.inside), 0, "catch ran inside reject");
    cr_assert(!pthread_equal(po.tid, pthread_self()));
    cr_assert(!pthread_equal(pb.tid, pthread_self()));

    /* settled from inside pool tasks */
    pool_t *p = spec_pool(1);
    promise_t *ok2 = spec_promise(), *bad2 = spec_promise();
    future_t *fo2 = spec_pfuture(ok2), *fb2 = spec_pfuture(bad2);
    struct cb_probe qo = {0}, qb = {0};
    future_t *go2 = future_then(fo2, probe_then, &qo);
    future_t *gb2 = future_catch(fb2, probe_catch, &qb);
    cr_assert_not_null(go2);
    cr_assert_not_null(gb2);
    struct settle_inside so = {ok2, 0, -1}, sb = {bad2, EIO, -1};
    future_t *t1 = pool_submit(p, settle_inside_task, &so);
    future_t *t2 = pool_submit(p, settle_inside_task, &sb);
    cr_assert_not_null(t1);
    cr_assert_not_null(t2);
    cr_assert_eq(future_wait(t1, NULL), 0);
    cr_assert_eq(future_wait(t2, NULL), 0);
    cr_assert_eq(so.rc, 0);
    cr_assert_eq(sb.rc, 0);
    spec_expect_value(go2, (void *)(uintptr_t)1);
    spec_expect_error(gb2, EIO);
    cr_assert_eq(atomic_load(&qo.inside), 0, "then ran inside resolve");
    cr_assert_eq(atomic_load(&qb.inside), 0, "catch ran inside reject");
    pool_destroy(p);

    future_t *fs[] = {fo, fb, go, gb, fo2, fb2, go2, gb2, t1, t2};
    spec_release_all(fs, sizeof fs / sizeof fs[0]);
    promise_release(ok);
    promise_release(bad);
    promise_release(ok2);
    promise_release(bad2);
}

/* ------------------------------------------------------- racing settle -- */

enum { RACERS = 8 };

struct racer {
    promise_t *pr;
    spec_gate_t *go;
    int id;
    int rc;
};

static void *racer_thread(void *arg)
{
    struct racer *r = arg;
    spec_gate_wait(r->go);
    if (r->id % 2)
        r->rc = promise_reject(r->pr, 100 + r->id);
    else
        r->rc = promise_resolve(r->pr, (void *)(uintptr_t)(100 + r->id));
    return NULL;
}

CheckedTest(spec_promise, concurrent_settles_exactly_one_wins, .timeout = 30)
{
    for (int round = 0; round < 50; round++) {
        promise_t *pr = spec_promise();
        future_t *f = spec_pfuture(pr);
        spec_gate_t go;
        spec_gate_init(&go);
        pthread_t t[RACERS];
        struct racer r[RACERS];
        for (int i = 0; i < RACERS; i++) {
            r[i] = (struct racer){pr, &go, i, -1};
            cr_assert_eq(pthread_create(&t[i], NULL, racer_thread, &r[i]), 0);
        }
        spec_gate_open(&go);
        int winners = 0, winner = -1;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(t[i], NULL);
            if (r[i].rc == 0) {
                winners++;
                winner = i;
            } else {
                cr_assert_eq(r[i].rc, EALREADY);
            }
        }
        cr_assert_eq(winners, 1);
        void *v = NULL;
        int rc = future_wait(f, &v);
        if (winner % 2)
            cr_assert_eq(rc, 100 + winner);
        else {
            cr_assert_eq(rc, 0);
            cr_assert_eq(v, (void *)(uintptr_t)(100 + winner));
        }
        future_release(f);
        promise_release(pr);
        spec_gate_destroy(&go);
    }
}
