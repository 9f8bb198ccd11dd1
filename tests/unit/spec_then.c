/*
 * spec_then.c - future_then / future_catch continuations and long chains.
 */
#include "spec_helpers.h"

/* Set by the test thread around a library call: a callback that finds it
 * set on its own thread ran inside that call. */
static _Thread_local bool tls_in_call;

struct probe {
    atomic_int ran;
    atomic_int inside;
    pthread_t tid;
    void *seen_value;
    int seen_error;
    void *seen_arg;
    sem_t done;
};

static void probe_init(struct probe *p)
{
    atomic_init(&p->ran, 0);
    atomic_init(&p->inside, 0);
    p->seen_value = NULL;
    p->seen_error = 0;
    p->seen_arg = NULL;
    sem_init(&p->done, 0, 0);
}

static void probe_record(struct probe *p)
{
    if (tls_in_call)
        atomic_fetch_add(&p->inside, 1);
    p->tid = pthread_self();
    p->seen_arg = p;
    atomic_fetch_add(&p->ran, 1);
}

/* then: succeeds with value + 1 */
static int probe_then(void *value, void *arg, void **result)
{
    struct probe *p = arg;
    probe_record(p);
    p->seen_value = value;
    *result = (void *)((uintptr_t)value + 1);
    sem_post(&p->done);
    return 0;
}

/* then: fails with 77 */
static int probe_then_fail(void *value, void *arg, void **result)
{
    struct probe *p = arg;
    probe_record(p);
    p->seen_value = value;
    *result = (void *)(uintptr_t)1; /* must be ignored */
    sem_post(&p->done);
    return 77;
}

/* catch: recovers with value error + 1000 */
static int probe_catch(int error, void *arg, void **result)
{
    struct probe *p = arg;
    probe_record(p);
    p->seen_error = error;
    *result = (void *)(uintptr_t)(error + 1000);
    sem_post(&p->done);
    return 0;
}

/* catch: fails with error + 1 */
static int probe_catch_fail(int error, void *arg, void **result)
{
    struct probe *p = arg;
    (void)result;
    probe_record(p);
    p->seen_error = error;
    sem_post(&p->done);
    return error + 1;
}

/* ------------------------------------------------------------- then -- */

CheckedTest(spec_then, runs_on_success_with_value_and_arg, .timeout = 30)
{
    struct probe pb;
    probe_init(&pb);
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *g = future_then(f, probe_then, &pb);
    cr_assert_not_null(g);
    cr_assert_eq(promise_resolve(pr, (void *)(uintptr_t)41), 0);
    spec_expect_value(g, (void *)(uintptr_t)42);
    cr_assert_eq(atomic_load(&pb.ran), 1);
    cr_assert_eq(pb.seen_value, (void *)(uintptr_t)41);
    cr_assert_eq(pb.seen_arg, &pb);
    cr_assert(!pthread_equal(pb.tid, pthread_self()),
              "continuation ran on the caller's thread");
    spec_expect_value(f, (void *)(uintptr_t)41);
    future_release(g);
    future_release(f);
    promise_release(pr);
    sem_destroy(&pb.done);
}

CheckedTest(spec_then, callback_error_fails_the_result, .timeout = 30)
{
    struct probe pb;
    probe_init(&pb);
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, spec_value_task, (void *)(uintptr_t)5);
    cr_assert_not_null(f);
    future_t *g = future_then(f, probe_then_fail, &pb);
    cr_assert_not_null(g);
    spec_expect_error(g, 77);
    cr_assert_eq(pb.seen_value, (void *)(uintptr_t)5);
    future_release(g);
    future_release(f);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&pb.ran), 1);
    sem_destroy(&pb.done);
}

CheckedTest(spec_then, skipped_when_predecessor_fails, .timeout = 30)
{
    struct probe before, after;
    probe_init(&before);
    probe_init(&after);
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    future_t *f = pool_submit(p, spec_error_task, (void *)(intptr_t)33);
    cr_assert_not_null(f);
    future_t *g1 = future_then(f, probe_then, &before); /* before settling */
    cr_assert_not_null(g1);
    spec_gate_open(&b.gate);
    spec_expect_error(f, 33);
    future_t *g2 = future_then(f, probe_then, &after); /* after settling */
    cr_assert_not_null(g2);
    spec_expect_error(g1, 33);
    spec_expect_error(g2, 33);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&before.ran), 0, "then ran on failure");
    cr_assert_eq(atomic_load(&after.ran), 0, "then ran on failure");
    future_release(g1);
    future_release(g2);
    future_release(f);
    future_release(run[0]);
    spec_blocker_destroy(&b);
    sem_destroy(&before.done);
    sem_destroy(&after.done);
}

CheckedTest(spec_then, skipped_when_predecessor_cancelled, .timeout = 30)
{
    struct probe pb;
    probe_init(&pb);
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    atomic_int n;
    atomic_init(&n, 0);
    future_t *f = pool_submit(p, spec_count_task, &n);
    cr_assert_not_null(f);
    future_t *g = future_then(f, probe_then, &pb);
    cr_assert_not_null(g);
    cr_assert(future_cancel(f));
    spec_gate_open(&b.gate);
    spec_expect_error(g, ECANCELED);
    pool_destroy(p);
    spec_expect_error(f, ECANCELED);
    cr_assert_eq(atomic_load(&pb.ran), 0);
    cr_assert_eq(atomic_load(&n), 0);
    future_release(g);
    future_release(f);
    future_release(run[0]);
    spec_blocker_destroy(&b);
    sem_destroy(&pb.done);
}

static int tid_task(void *arg, void **result)
{
    *(pthread_t *)arg = pthread_self();
    *result = arg;
    return 0;
}

CheckedTest(spec_then, runs_on_the_pool_that_ran_the_predecessor, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    pthread_t worker;
    future_t *w = pool_submit(p, tid_task, &worker);
    cr_assert_not_null(w);
    cr_assert_eq(future_wait(w, NULL), 0);

    /* attached before f settles */
    struct probe pb1, pb2;
    probe_init(&pb1);
    probe_init(&pb2);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    future_t *f = pool_submit(p, spec_value_task, (void *)(uintptr_t)10);
    cr_assert_not_null(f);
    future_t *g1 = future_then(f, probe_then, &pb1);
    cr_assert_not_null(g1);
    spec_gate_open(&b.gate);
    spec_expect_value(g1, (void *)(uintptr_t)11);
    cr_assert(pthread_equal(pb1.tid, worker),
              "continuation did not run on the predecessor's pool");

    /* attached after f settled, while the pool's only thread is busy: it
     * must wait for that thread */
    spec_blocker_t b2;
    spec_blocker_init(&b2);
    future_t *run2[1];
    spec_saturate(p, &b2, run2, 1);
    future_t *g2 = future_then(f, probe_then, &pb2);
    cr_assert_not_null(g2);
    cr_assert_not(future_wait_for(g2, 20 * SPEC_MS),
                  "continuation ran elsewhere while its pool was busy");
    spec_gate_open(&b2.gate);
    spec_expect_value(g2, (void *)(uintptr_t)11);
    cr_assert(pthread_equal(pb2.tid, worker),
              "continuation did not run on the predecessor's pool");

    future_release(g1);
    future_release(g2);
    future_release(f);
    future_release(w);
    future_release(run[0]);
    future_release(run2[0]);
    pool_destroy(p);
    spec_blocker_destroy(&b);
    spec_blocker_destroy(&b2);
    sem_destroy(&pb1.done);
    sem_destroy(&pb2.done);
}

CheckedTest(spec_then, poolless_futures_continue_on_the_default_pool,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    pthread_t worker;
    future_t *w = pool_submit(p, tid_task, &worker);
    cr_assert_not_null(w);
    cr_assert_eq(future_wait(w, NULL), 0);
    /* the pool's only thread is now blocked: nothing can run on it */
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);

    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    cr_assert_eq(promise_resolve(pr, (void *)(uintptr_t)1), 0);
    future_t *all = when_all(&w, 1);
    future_t *any = when_any(&w, 1);
    future_t *res = future_resolved((void *)(uintptr_t)1);
    cr_assert_not_null(all);
    cr_assert_not_null(any);
    cr_assert_not_null(res);

    future_t *src[4] = {pf, all, any, res};
    struct probe pb[4];
    future_t *g[4];
    for (int i = 0; i < 4; i++) {
        probe_init(&pb[i]);
        g[i] = future_then(src[i], probe_then, &pb[i]);
        cr_assert_not_null(g[i]);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(future_wait(g[i], NULL), 0, "source %d", i);
        cr_assert(!pthread_equal(pb[i].tid, worker), "source %d", i);
        cr_assert(!pthread_equal(pb[i].tid, pthread_self()), "source %d", i);
    }
    spec_gate_open(&b.gate);
    spec_release_all(g, 4);
    spec_release_all(src, 4);
    future_release(w);
    future_release(run[0]);
    promise_release(pr);
    pool_destroy(p);
    spec_blocker_destroy(&b);
    for (int i = 0; i < 4; i++)
        sem_destroy(&pb[i].done);
}

CheckedTest(spec_then, many_continuations_before_and_after_settling,
            .timeout = 30)
{
    enum { K = 16 };
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    struct probe pb[2 * K];
    future_t *g[2 * K];
    for (int i = 0; i < K; i++) {
        probe_init(&pb[i]);
        g[i] = future_then(f, probe_then, &pb[i]);
        cr_assert_not_null(g[i]);
    }
    cr_assert_eq(promise_resolve(pr, (void *)(uintptr_t)100), 0);
    for (int i = K; i < 2 * K; i++) {
        probe_init(&pb[i]);
        g[i] = future_then(f, probe_then, &pb[i]);
        cr_assert_not_null(g[i]);
    }
    for (int i = 0; i < 2 * K; i++) {
        spec_expect_value(g[i], (void *)(uintptr_t)101);
        cr_assert_eq(atomic_load(&pb[i].ran), 1, "continuation %d", i);
        cr_assert_eq(pb[i].seen_value, (void *)(uintptr_t)100);
    }
    spec_release_all(g, 2 * K);
    future_release(f);
    promise_release(pr);
    for (int i = 0; i < 2 * K; i++)
        sem_destroy(&pb[i].done);
}

CheckedTest(spec_then, null_arguments_are_einval)
{
    future_t *f = future_resolved(NULL);
    cr_assert_not_null(f);
    errno = 0;
    cr_assert_null(future_then(NULL, spec_inc_then, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch(NULL, spec_count_catch, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
}

/* --------------------------------------- never inside future_then/catch -- */

struct inside_arg {
    future_t *settled_ok;
    future_t *settled_bad;
    struct probe *pt;
    struct probe *pc;
    future_t *gt;
    future_t *gc;
};

/* Attaches continuations to settled futures of its own pool from inside a
 * task on that pool's only thread. */
static int attach_inside_task(void *arg, void **result)
{
    struct inside_arg *a = arg;
    tls_in_call = true;
    a->gt = future_then(a->settled_ok, probe_then, a->pt);
    tls_in_call = false;
    tls_in_call = true;
    a->gc = future_catch(a->settled_bad, probe_catch, a->pc);
    tls_in_call = false;
    *result = NULL;
    return 0;
}

CheckedTest(spec_then, callbacks_never_run_inside_then_or_catch, .timeout = 30)
{
    struct probe pt, pc;
    probe_init(&pt);
    probe_init(&pc);

    /* from the test thread, on settled futures */
    future_t *ok = future_resolved((void *)(uintptr_t)1);
    future_t *bad = future_failed(EIO);
    cr_assert_not_null(ok);
    cr_assert_not_null(bad);
    tls_in_call = true;
    future_t *gt = future_then(ok, probe_then, &pt);
    tls_in_call = false;
    tls_in_call = true;
    future_t *gc = future_catch(bad, probe_catch, &pc);
    tls_in_call = false;
    cr_assert_not_null(gt);
    cr_assert_not_null(gc);
    spec_expect_value(gt, (void *)(uintptr_t)2);
    spec_expect_value(gc, (void *)(uintptr_t)(EIO + 1000));
    cr_assert_eq(atomic_load(&pt.inside), 0);
    cr_assert_eq(atomic_load(&pc.inside), 0);
    cr_assert(!pthread_equal(pt.tid, pthread_self()));
    cr_assert(!pthread_equal(pc.tid, pthread_self()));
    future_release(gt);
    future_release(gc);
    future_release(ok);
    future_release(bad);

    /* from inside a task, whose pool is the one the callbacks run on */
    struct probe qt, qc;
    probe_init(&qt);
    probe_init(&qc);
    pool_t *p = spec_pool(1);
    struct inside_arg a = {0};
    a.settled_ok = pool_submit(p, spec_value_task, (void *)(uintptr_t)5);
    a.settled_bad = pool_submit(p, spec_error_task, (void *)(intptr_t)EIO);
    cr_assert_not_null(a.settled_ok);
    cr_assert_not_null(a.settled_bad);
    future_wait(a.settled_ok, NULL);
    future_wait(a.settled_bad, NULL);
    a.pt = &qt;
    a.pc = &qc;
    future_t *t = pool_submit(p, attach_inside_task, &a);
    cr_assert_not_null(t);
    cr_assert_eq(future_wait(t, NULL), 0);
    cr_assert_not_null(a.gt);
    cr_assert_not_null(a.gc);
    spec_expect_value(a.gt, (void *)(uintptr_t)6);
    spec_expect_value(a.gc, (void *)(uintptr_t)(EIO + 1000));
    cr_assert_eq(atomic_load(&qt.inside), 0, "then callback ran inside call");
    cr_assert_eq(atomic_load(&qc.inside), 0, "catch callback ran inside call");
    future_release(a.gt);
    future_release(a.gc);
    future_release(a.settled_ok);
    future_release(a.settled_bad);
    future_release(t);
    pool_destroy(p);
    sem_destroy(&pt.done);
    sem_destroy(&pc.done);
    sem_destroy(&qt.done);
    sem_destroy(&qc.done);
}

/* ------------------------------------------------------------ catch -- */

CheckedTest(spec_catch, runs_on_failure_and_recovers, .timeout = 30)
{
    struct probe pb;
    probe_init(&pb);
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, spec_error_task, (void *)(intptr_t)5);
    cr_assert_not_null(f);
    future_t *g = future_catch(f, probe_catch, &pb);
    cr_assert_not_null(g);
    spec_expect_value(g, (void *)(uintptr_t)1005);
    cr_assert_eq(pb.seen_error, 5);
    cr_assert_eq(pb.seen_arg, &pb);
    cr_assert(!pthread_equal(pb.tid, pthread_self()));
    spec_expect_error(f, 5);
    future_release(g);
    future_release(f);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&pb.ran), 1);
    sem_destroy(&pb.done);
}

CheckedTest(spec_catch, callback_error_fails_the_result, .timeout = 30)
{
    struct probe pb;
    probe_init(&pb);
    future_t *f = future_failed(20);
    cr_assert_not_null(f);
    future_t *g = future_catch(f, probe_catch_fail, &pb);
    cr_assert_not_null(g);
    spec_expect_error(g, 21);
    cr_assert_eq(pb.seen_error, 20);
    future_release(g);
    future_release(f);
    sem_destroy(&pb.done);
}

CheckedTest(spec_catch, runs_on_cancellation_with_ecanceled, .timeout = 30)
{
    struct probe pb;
    probe_init(&pb);
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *g = future_catch(f, probe_catch, &pb);
    cr_assert_not_null(g);
    cr_assert(future_cancel(f));
    spec_expect_value(g, (void *)(uintptr_t)(ECANCELED + 1000));
    cr_assert_eq(pb.seen_error, ECANCELED);
    future_release(g);
    future_release(f);
    promise_release(pr);
    sem_destroy(&pb.done);
}

CheckedTest(spec_catch, skipped_on_success_value_passes_through, .timeout = 30)
{
    struct probe before, after;
    probe_init(&before);
    probe_init(&after);
    pool_t *p = spec_pool(1);
    int obj = 0;
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    future_t *f = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(f);
    future_t *g1 = future_catch(f, probe_catch, &before);
    cr_assert_not_null(g1);
    spec_gate_open(&b.gate);
    spec_expect_value(f, &obj);
    future_t *g2 = future_catch(f, probe_catch, &after);
    cr_assert_not_null(g2);
    spec_expect_value(g1, &obj);
    spec_expect_value(g2, &obj);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&before.ran), 0, "catch ran on success");
    cr_assert_eq(atomic_load(&after.ran), 0, "catch ran on success");
    future_release(g1);
    future_release(g2);
    future_release(f);
    future_release(run[0]);
    spec_blocker_destroy(&b);
    sem_destroy(&before.done);
    sem_destroy(&after.done);
}

CheckedTest(spec_catch, then_after_catch_and_catch_after_then, .timeout = 30)
{
    /* fail -> then (skipped) -> catch (recovers) -> then (runs) */
    atomic_int skipped;
    atomic_init(&skipped, 0);
    future_t *f = future_failed(9);
    cr_assert_not_null(f);
    future_t *a = future_then(f, spec_count_then, &skipped);
    cr_assert_not_null(a);
    struct probe pc;
    probe_init(&pc);
    future_t *c = future_catch(a, probe_catch, &pc);
    cr_assert_not_null(c);
    future_t *d = future_then(c, spec_inc_then, NULL);
    cr_assert_not_null(d);
    spec_expect_value(d, (void *)(uintptr_t)1010);
    spec_expect_error(a, 9);
    cr_assert_eq(pc.seen_error, 9);
    cr_assert_eq(atomic_load(&skipped), 0);
    future_release(d);
    future_release(c);
    future_release(a);
    future_release(f);
    sem_destroy(&pc.done);
}

/* ------------------------------------------------------ long chains -- */

#define CHAIN_LEN   1000000
#define STACK_LIMIT ((uintptr_t)256 * 1024)

static _Thread_local uintptr_t tls_lo, tls_hi;
static atomic_uintptr_t max_spread;
static atomic_long chain_calls;

static void record_stack(void)
{
#if defined(__GNUC__)
    uintptr_t a = (uintptr_t)__builtin_frame_address(0);
#else
    volatile char local = 0;
    uintptr_t a = (uintptr_t)&local;
#endif
    if (tls_lo == 0 || a < tls_lo)
        tls_lo = a;
    if (a > tls_hi)
        tls_hi = a;
    uintptr_t s = tls_hi - tls_lo;
    uintptr_t cur = atomic_load(&max_spread);
    while (s > cur && !atomic_compare_exchange_weak(&max_spread, &cur, s)) {
    }
}

static int chain_then(void *value, void *arg, void **result)
{
    (void)arg;
    record_stack();
    atomic_fetch_add(&chain_calls, 1);
    *result = (void *)((uintptr_t)value + 1);
    return 0;
}

static int chain_catch(int error, void *arg, void **result)
{
    (void)arg;
    record_stack();
    atomic_fetch_add(&chain_calls, 1);
    *result = (void *)(uintptr_t)error;
    return 0;
}

/* Builds a chain of CHAIN_LEN future_then on @head (whose reference it
 * takes over) and returns the last future. */
static future_t *build_chain(future_t *head)
{
    future_t *f = head;
    for (long i = 0; i < CHAIN_LEN; i++) {
        future_t *g = future_then(f, chain_then, NULL);
        cr_assert_not_null(g, "future_then %ld failed: errno %d", i, errno);
        future_release(f);
        f = g;
    }
    return f;
}

CheckedTest(spec_chain, million_thens_attached_before_settling, .timeout = 120)
{
    atomic_store(&max_spread, 0);
    atomic_store(&chain_calls, 0);
    promise_t *pr = spec_promise();
    future_t *last = build_chain(spec_pfuture(pr));
    cr_assert_eq(atomic_load(&chain_calls), 0);
    cr_assert_eq(promise_resolve(pr, (void *)(uintptr_t)0), 0);
    spec_expect_value(last, (void *)(uintptr_t)CHAIN_LEN);
    cr_assert_eq(atomic_load(&chain_calls), CHAIN_LEN);
    uintptr_t spread = atomic_load(&max_spread);
    cr_assert_lt(spread, STACK_LIMIT, "stack grew by %zu bytes",
                 (size_t)spread);
    future_release(last);
    promise_release(pr);
}

CheckedTest(spec_chain, million_thens_on_a_settled_pool_future, .timeout = 120)
{
    atomic_store(&max_spread, 0);
    atomic_store(&chain_calls, 0);
    pool_t *p = spec_pool(2);
    future_t *head = pool_submit(p, spec_value_task, (void *)(uintptr_t)7);
    cr_assert_not_null(head);
    future_t *last = build_chain(head);
    spec_expect_value(last, (void *)(uintptr_t)(CHAIN_LEN + 7));
    cr_assert_eq(atomic_load(&chain_calls), CHAIN_LEN);
    uintptr_t spread = atomic_load(&max_spread);
    cr_assert_lt(spread, STACK_LIMIT, "stack grew by %zu bytes",
                 (size_t)spread);
    future_release(last);
    pool_destroy(p);
}

CheckedTest(spec_chain, million_thens_propagate_a_failure, .timeout = 120)
{
    atomic_store(&max_spread, 0);
    atomic_store(&chain_calls, 0);
    promise_t *pr = spec_promise();
    future_t *last = build_chain(spec_pfuture(pr));
    future_t *c = future_catch(last, chain_catch, NULL);
    cr_assert_not_null(c);
    cr_assert_eq(promise_reject(pr, ENOSPC), 0);
    spec_expect_value(c, (void *)(uintptr_t)ENOSPC);
    spec_expect_error(last, ENOSPC);
    cr_assert_eq(atomic_load(&chain_calls), 1, "a then ran on failure");
    future_release(c);
    future_release(last);
    promise_release(pr);
}
