/*
 * spec_composition.c - the composition API of issue 13, tested from its
 * specification (include/futures.h): future_handle, future_compose,
 * future_then_via / future_catch_via, future_wait_all, completion queues,
 * failure messages (task_fail, promise_reject_message,
 * future_error_message) and pool_submit_blocking_ex.
 *
 * Interleavings are forced with gates and semaphores, never slept into.
 */
#include "spec_helpers.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Set by the test thread (or a task) around a library call: a callback that
 * finds it set on its own thread ran inside that call. */
static _Thread_local bool tls_in_call;

/* ------------------------------------------------------- shared bits -- */

static int tid_task(void *arg, void **result)
{
    *(pthread_t *)arg = pthread_self();
    *result = arg;
    return 0;
}

/* The id of @p's only thread (a pool of one thread, no task waiting). */
static pthread_t pool_thread_id(pool_t *p)
{
    pthread_t t;
    future_t *f = pool_submit(p, tid_task, &t);
    cr_assert_not_null(f, "pool_submit failed: errno %d", errno);
    cr_assert_eq(future_wait(f, NULL), 0);
    future_release(f);
    return t;
}

/* Stack growth, measured across every callback run on a thread. */
#define STACK_LIMIT ((uintptr_t)256 * 1024)
static _Thread_local uintptr_t tls_lo, tls_hi;
static atomic_uintptr_t max_spread;

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

/* The unobserved-failure handler of these tests. */
static atomic_int uo_reports;
static int uo_last_error;
static bool uo_last_had_message;
static char uo_last_message[512];

static void uo_handler(const struct futures_failure *failure, void *arg)
{
    (void)arg;
    uo_last_error = failure->error;
    uo_last_had_message = failure->message != NULL;
    if (failure->message)
        snprintf(uo_last_message, sizeof uo_last_message, "%s",
                 failure->message);
    else
        uo_last_message[0] = '\0';
    atomic_fetch_add(&uo_reports, 1);
}

static void uo_listen(void)
{
    atomic_store(&uo_reports, 0);
    futures_set_unobserved_handler(uo_handler, &uo_reports);
}

static void uo_restore(void)
{
    restore_unobserved_check();
}

/* A future that failed with @error and the message @msg, promise gone. */
static future_t *rejected_with_message(int error, const char *msg)
{
    promise_t *p = spec_promise();
    future_t *f = spec_pfuture(p);
    cr_assert_eq(promise_reject_message(p, error, "%s", msg), 0);
    promise_release(p);
    return f;
}

static void expect_message(future_t *f, const char *msg)
{
    const char *m = future_error_message(f);
    cr_assert_not_null(m, "expected message \"%s\", got NULL", msg);
    cr_assert_str_eq(m, msg);
}

/* ==================================================== future_handle -- */

struct hrec {
    atomic_int ran;
    atomic_int inside;
    int seen_error;
    void *seen_value;
    pthread_t tid;
    int ret_error;   /* what fn returns */
    void *ret_value; /* and stores in *result */
    sem_t done;
};

static void hrec_init(struct hrec *h, int ret_error, void *ret_value)
{
    atomic_init(&h->ran, 0);
    atomic_init(&h->inside, 0);
    h->seen_error = -1;
    h->seen_value = U2P(0xdead);
    h->ret_error = ret_error;
    h->ret_value = ret_value;
    sem_init(&h->done, 0, 0);
}

static int hrec_fn(int error, void *value, void *arg, void **result)
{
    struct hrec *h = arg;
    if (tls_in_call)
        atomic_fetch_add(&h->inside, 1);
    h->seen_error = error;
    h->seen_value = value;
    h->tid = pthread_self();
    atomic_fetch_add(&h->ran, 1);
    *result = h->ret_value;
    sem_post(&h->done);
    return h->ret_error;
}

CheckedTest(spec_composition, handle_sees_success_and_its_return_decides,
            .timeout = 30)
{
    struct hrec h;
    hrec_init(&h, 0, U2P(99));
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *r = future_handle(f, hrec_fn, &h);
    cr_assert_not_null(r, "future_handle failed: errno %d", errno);
    cr_assert_eq(atomic_load(&h.ran), 0, "ran before its input settled");
    cr_assert_eq(promise_resolve(pr, U2P(41)), 0);
    spec_expect_value(r, U2P(99));
    cr_assert_eq(atomic_load(&h.ran), 1);
    cr_assert_eq(h.seen_error, 0);
    cr_assert_eq(h.seen_value, U2P(41));
    cr_assert(!pthread_equal(h.tid, pthread_self()));
    future_release(r);
    future_release(f);
    promise_release(pr);
    sem_destroy(&h.done);
}

CheckedTest(spec_composition, handle_sees_failure_with_null_value,
            .timeout = 30)
{
    struct hrec h;
    hrec_init(&h, 0, U2P(7));
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, spec_error_task, (void *)(intptr_t)EIO);
    cr_assert_not_null(f);
    future_t *r = future_handle(f, hrec_fn, &h);
    cr_assert_not_null(r);
    spec_expect_value(r, U2P(7)); /* fn recovered */
    cr_assert_eq(h.seen_error, EIO);
    cr_assert_null(h.seen_value, "value on failure must be NULL");
    spec_expect_error(f, EIO);
    future_release(r);
    future_release(f);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&h.ran), 1, "fn ran more than once");
    sem_destroy(&h.done);
}

CheckedTest(spec_composition, handle_sees_cancellation_as_ecanceled,
            .timeout = 30)
{
    struct hrec h;
    hrec_init(&h, 0, U2P(5));
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *r = future_handle(f, hrec_fn, &h);
    cr_assert_not_null(r);
    cr_assert(future_cancel(f));
    spec_expect_value(r, U2P(5));
    cr_assert_eq(atomic_load(&h.ran), 1);
    cr_assert_eq(h.seen_error, ECANCELED);
    cr_assert_null(h.seen_value);
    future_release(r);
    future_release(f);
    promise_release(pr);
    sem_destroy(&h.done);
}

CheckedTest(spec_composition, handle_error_return_fails_the_result,
            .timeout = 30)
{
    /* success in, error out */
    struct hrec a;
    hrec_init(&a, 77, U2P(1)); /* the value must be ignored */
    future_t *ok = future_resolved(U2P(3));
    cr_assert_not_null(ok);
    future_t *ra = future_handle(ok, hrec_fn, &a);
    cr_assert_not_null(ra);
    spec_expect_error(ra, 77);
    cr_assert_eq(a.seen_error, 0);
    cr_assert_eq(a.seen_value, U2P(3));

    /* failure in, another error out */
    struct hrec b;
    hrec_init(&b, ENOSPC, NULL);
    future_t *bad = future_failed(EIO);
    cr_assert_not_null(bad);
    future_t *rb = future_handle(bad, hrec_fn, &b);
    cr_assert_not_null(rb);
    spec_expect_error(rb, ENOSPC);
    cr_assert_eq(b.seen_error, EIO);
    cr_assert_eq(atomic_load(&a.ran), 1);
    cr_assert_eq(atomic_load(&b.ran), 1);
    future_release(ra);
    future_release(rb);
    future_release(ok);
    future_release(bad);
    sem_destroy(&a.done);
    sem_destroy(&b.done);
}

struct attach_arg {
    future_t *settled;
    struct hrec *h;
    future_t *out;
};

static int attach_handle_task(void *arg, void **result)
{
    struct attach_arg *a = arg;
    tls_in_call = true;
    a->out = future_handle(a->settled, hrec_fn, a->h);
    tls_in_call = false;
    *result = NULL;
    return 0;
}

CheckedTest(spec_composition, handle_never_runs_inside_the_call, .timeout = 30)
{
    /* settled inputs of every outcome, from the test thread */
    promise_t *pc = spec_promise();
    future_t *cancelled = spec_pfuture(pc);
    cr_assert(future_cancel(cancelled));
    future_t *in[3] = {future_resolved(U2P(1)), future_failed(EIO), cancelled};
    cr_assert_not_null(in[0]);
    cr_assert_not_null(in[1]);
    struct hrec h[3];
    future_t *r[3];
    for (int i = 0; i < 3; i++) {
        hrec_init(&h[i], 0, U2P(i + 10));
        tls_in_call = true;
        r[i] = future_handle(in[i], hrec_fn, &h[i]);
        tls_in_call = false;
        cr_assert_not_null(r[i]);
    }
    for (int i = 0; i < 3; i++) {
        spec_expect_value(r[i], U2P(i + 10));
        cr_assert_eq(atomic_load(&h[i].inside), 0, "input %d: ran inline", i);
        cr_assert(!pthread_equal(h[i].tid, pthread_self()), "input %d", i);
    }
    cr_assert_eq(h[0].seen_error, 0);
    cr_assert_eq(h[1].seen_error, EIO);
    cr_assert_eq(h[2].seen_error, ECANCELED);

    /* from inside a task, on a settled future of its own one-thread pool */
    struct hrec ht;
    hrec_init(&ht, 0, U2P(55));
    pool_t *p = spec_pool(1);
    struct attach_arg a = {0};
    a.settled = pool_submit(p, spec_value_task, U2P(4));
    cr_assert_not_null(a.settled);
    cr_assert_eq(future_wait(a.settled, NULL), 0);
    a.h = &ht;
    future_t *t = pool_submit(p, attach_handle_task, &a);
    cr_assert_not_null(t);
    cr_assert_eq(future_wait(t, NULL), 0);
    cr_assert_not_null(a.out);
    spec_expect_value(a.out, U2P(55));
    cr_assert_eq(atomic_load(&ht.inside), 0, "handle ran inside the call");
    cr_assert_eq(ht.seen_value, U2P(4));

    future_release(a.out);
    future_release(a.settled);
    future_release(t);
    pool_destroy(p);
    spec_release_all(r, 3);
    spec_release_all(in, 3);
    promise_release(pc);
    for (int i = 0; i < 3; i++)
        sem_destroy(&h[i].done);
    sem_destroy(&ht.done);
}

CheckedTest(spec_composition, handle_runs_where_then_would, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    pthread_t worker = pool_thread_id(p);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    future_t *f = pool_submit(p, spec_value_task, U2P(8));
    cr_assert_not_null(f);
    struct hrec h;
    hrec_init(&h, 0, U2P(9));
    future_t *r = future_handle(f, hrec_fn, &h);
    cr_assert_not_null(r);
    spec_gate_open(&b.gate);
    spec_expect_value(r, U2P(9));
    cr_assert(pthread_equal(h.tid, worker),
              "handle did not run on the pool that ran its input");
    future_release(r);
    future_release(f);
    future_release(run[0]);
    pool_destroy(p);
    spec_blocker_destroy(&b);
    sem_destroy(&h.done);
}

CheckedTest(spec_composition, handle_counts_its_input_as_observed,
            .timeout = 30)
{
    uo_listen();
    /* control: an unobserved failure is reported */
    future_release(rejected_future(EIO));
    cr_assert_eq(atomic_load(&uo_reports), 1, "the handler is not installed");

    struct hrec h;
    hrec_init(&h, 0, NULL);
    future_t *f = rejected_future(ENOENT);
    future_t *r = future_handle(f, hrec_fn, &h);
    cr_assert_not_null(r);
    cr_assert_eq(future_wait(r, NULL), 0);
    cr_assert_eq(h.seen_error, ENOENT);
    future_release(f);
    future_release(r);
    expect_no_live_futures(); /* every last reference has gone */
    cr_assert_eq(atomic_load(&uo_reports), 1,
                 "the input of future_handle was reported as unobserved");
    uo_restore();
    sem_destroy(&h.done);
}

CheckedTest(spec_composition, handle_cancelled_before_input_settles_never_runs,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    future_t *f = pool_submit(p, spec_value_task, U2P(3));
    cr_assert_not_null(f);
    struct hrec h;
    hrec_init(&h, 0, U2P(4));
    future_t *r = future_handle(f, hrec_fn, &h);
    cr_assert_not_null(r);
    cr_assert(future_cancel(r), "an unsettled handle did not cancel");
    spec_expect_error(r, ECANCELED);
    spec_gate_open(&b.gate);
    future_wait(f, NULL);
    pool_destroy(p); /* everything the pool would run has run */
    cr_assert_eq(atomic_load(&h.ran), 0,
                 "fn ran after its result was cancelled");
    spec_expect_error(r, ECANCELED);
    future_release(r);
    future_release(f);
    future_release(run[0]);
    spec_blocker_destroy(&b);
    sem_destroy(&h.done);
}

CheckedTest(spec_composition, handle_null_arguments_are_einval)
{
    future_t *f = future_resolved(NULL);
    cr_assert_not_null(f);
    errno = 0;
    cr_assert_null(future_handle(NULL, hrec_fn, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_handle(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
}

static int chain_handle_fn(int error, void *value, void *arg, void **result)
{
    (void)arg;
    record_stack();
    if (error)
        return error;
    *result = (void *)(P2U(value) + 1);
    return 0;
}

CheckedTest(spec_composition, handle_long_chain_keeps_a_flat_stack,
            .timeout = 120)
{
    enum { N = 100000 };
    atomic_store(&max_spread, 0);
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    for (long i = 0; i < N; i++) {
        future_t *g = future_handle(f, chain_handle_fn, NULL);
        cr_assert_not_null(g, "future_handle %ld failed: errno %d", i, errno);
        future_release(f);
        f = g;
    }
    cr_assert_eq(promise_resolve(pr, U2P(0)), 0);
    spec_expect_value(f, U2P(N));
    uintptr_t spread = atomic_load(&max_spread);
    cr_assert_lt(spread, STACK_LIMIT, "stack grew by %zu bytes",
                 (size_t)spread);
    future_release(f);
    promise_release(pr);
}

/* =================================================== future_compose -- */

enum cmode {
    C_RESOLVED, /* future_resolved(value + 1) */
    C_POOL,     /* a task on c->pool that succeeds with value + 1 */
    C_FAILED,   /* a future failed with EPROTO and "inner <value>" */
    C_PROMISE,  /* c->promise's future */
    C_NULL,     /* NULL with errno c->err */
    C_COUNTED,  /* a task on c->pool that counts in c->count */
};

struct crec {
    enum cmode mode;
    atomic_int ran;
    void *seen_value;
    pool_t *pool;
    promise_t *promise;
    atomic_int count;
    int err;
    future_t *g; /* a reference to what fn returned, for the test */
    sem_t done;
};

static void crec_init(struct crec *c, enum cmode mode)
{
    memset(c, 0, sizeof *c);
    c->mode = mode;
    atomic_init(&c->ran, 0);
    atomic_init(&c->count, 0);
    c->seen_value = U2P(0xdead);
    sem_init(&c->done, 0, 0);
}

static future_t *compose_step(void *value, void *arg)
{
    struct crec *c = arg;
    c->seen_value = value;
    atomic_fetch_add(&c->ran, 1);
    future_t *g = NULL;
    switch (c->mode) {
    case C_RESOLVED:
        g = future_resolved((void *)(P2U(value) + 1));
        break;
    case C_POOL:
        g = pool_submit(c->pool, spec_value_task, (void *)(P2U(value) + 1));
        break;
    case C_FAILED: {
        promise_t *p = promise_create();
        g = promise_future(p);
        promise_reject_message(p, EPROTO, "inner %lu",
                               (unsigned long)P2U(value));
        promise_release(p);
        break;
    }
    case C_PROMISE:
        g = promise_future(c->promise);
        break;
    case C_NULL:
        break;
    case C_COUNTED:
        g = pool_submit(c->pool, spec_count_task, &c->count);
        break;
    }
    c->g = future_retain(g);
    sem_post(&c->done);
    if (c->mode == C_NULL)
        errno = c->err;
    return g;
}

static void crec_destroy(struct crec *c)
{
    future_release(c->g);
    sem_destroy(&c->done);
}

CheckedTest(spec_composition, compose_success_takes_the_inner_value,
            .timeout = 30)
{
    pool_t *p = spec_pool(2);
    /* an inner future that has settled already */
    struct crec a;
    crec_init(&a, C_RESOLVED);
    future_t *f = pool_submit(p, spec_value_task, U2P(41));
    cr_assert_not_null(f);
    future_t *r = future_compose(f, compose_step, &a);
    cr_assert_not_null(r, "future_compose failed: errno %d", errno);
    spec_expect_value(r, U2P(42));
    cr_assert_eq(a.seen_value, U2P(41));

    /* an inner future that is a pool task */
    struct crec b;
    crec_init(&b, C_POOL);
    b.pool = p;
    future_t *r2 = future_compose(f, compose_step, &b);
    cr_assert_not_null(r2);
    spec_expect_value(r2, U2P(42));
    spec_expect_value(b.g, U2P(42));

    future_release(r);
    future_release(r2);
    future_release(f);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.ran), 1);
    cr_assert_eq(atomic_load(&b.ran), 1);
    crec_destroy(&a);
    crec_destroy(&b);
}

CheckedTest(spec_composition, compose_settles_only_when_the_inner_future_does,
            .timeout = 30)
{
    struct crec c;
    crec_init(&c, C_PROMISE);
    c.promise = spec_promise();
    future_t *f = future_resolved(U2P(1));
    cr_assert_not_null(f);
    future_t *r = future_compose(f, compose_step, &c);
    cr_assert_not_null(r);
    spec_sem_wait(&c.done);
    cr_assert_not(future_wait_for(r, 20 * SPEC_MS),
                  "the result settled before the inner future");
    cr_assert_eq(promise_resolve(c.promise, U2P(123)), 0);
    spec_expect_value(r, U2P(123));
    future_release(r);
    future_release(f);
    promise_release(c.promise);
    crec_destroy(&c);
}

CheckedTest(spec_composition,
            compose_inner_failure_passes_with_error_and_message, .timeout = 30)
{
    struct crec c;
    crec_init(&c, C_FAILED);
    future_t *f = future_resolved(U2P(6));
    cr_assert_not_null(f);
    future_t *r = future_compose(f, compose_step, &c);
    cr_assert_not_null(r);
    spec_expect_error(r, EPROTO);
    expect_message(r, "inner 6");
    future_release(r);
    future_release(f);
    crec_destroy(&c);
}

CheckedTest(spec_composition, compose_outer_failure_passes_and_fn_never_runs,
            .timeout = 30)
{
    struct crec c;
    crec_init(&c, C_RESOLVED);
    future_t *f = rejected_with_message(EIO, "outer failed");
    future_t *r = future_compose(f, compose_step, &c);
    cr_assert_not_null(r);
    spec_expect_error(r, EIO);
    expect_message(r, "outer failed");

    struct crec d;
    crec_init(&d, C_RESOLVED);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    future_t *rd = future_compose(pf, compose_step, &d);
    cr_assert_not_null(rd);
    cr_assert(future_cancel(pf));
    spec_expect_error(rd, ECANCELED);

    cr_assert_eq(atomic_load(&c.ran), 0, "fn ran on a failed input");
    cr_assert_eq(atomic_load(&d.ran), 0, "fn ran on a cancelled input");
    future_release(r);
    future_release(f);
    future_release(rd);
    future_release(pf);
    promise_release(pr);
    crec_destroy(&c);
    crec_destroy(&d);
}

CheckedTest(spec_composition, compose_null_from_fn_fails_with_errno,
            .timeout = 30)
{
    future_t *f = future_resolved(U2P(2));
    cr_assert_not_null(f);
    struct crec a, b;
    crec_init(&a, C_NULL);
    a.err = ENOENT;
    crec_init(&b, C_NULL);
    b.err = 0;
    future_t *ra = future_compose(f, compose_step, &a);
    future_t *rb = future_compose(f, compose_step, &b);
    cr_assert_not_null(ra);
    cr_assert_not_null(rb);
    spec_expect_error(ra, ENOENT);
    spec_expect_error(rb, EINVAL);
    cr_assert_eq(atomic_load(&a.ran), 1);
    cr_assert_eq(atomic_load(&b.ran), 1);
    future_release(ra);
    future_release(rb);
    future_release(f);
    crec_destroy(&a);
    crec_destroy(&b);
}

CheckedTest(spec_composition, compose_cancel_while_waiting_cancels_g,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct crec c;
    crec_init(&c, C_PROMISE);
    c.promise = spec_promise();
    future_t *f = pool_submit(p, spec_value_task, U2P(1));
    cr_assert_not_null(f);
    future_t *r = future_compose(f, compose_step, &c);
    cr_assert_not_null(r);
    spec_sem_wait(&c.done); /* fn runs on p's only thread */
    future_t *s = pool_submit(p, spec_value_task, NULL);
    cr_assert_not_null(s);
    cr_assert_eq(future_wait(s, NULL), 0); /* ... and has returned */
    cr_assert_not(future_is_ready(r));
    cr_assert(future_cancel(r), "a result waiting for g did not cancel");
    cr_assert_eq(future_wait(c.g, NULL), ECANCELED, "g was not cancelled");
    spec_expect_error(r, ECANCELED);
    cr_assert_eq(promise_resolve(c.promise, U2P(5)), EALREADY);
    future_release(r);
    future_release(f);
    future_release(s);
    pool_destroy(p);
    promise_release(c.promise);
    crec_destroy(&c);
}

CheckedTest(spec_composition,
            compose_cancel_while_waiting_cancels_a_queued_task, .timeout = 30)
{
    pool_t *p = spec_pool(1);  /* runs f and fn */
    pool_t *p2 = spec_pool(1); /* runs g, once its gate opens */
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p2, &b, run, 1);
    struct crec c;
    crec_init(&c, C_COUNTED);
    c.pool = p2;
    future_t *f = pool_submit(p, spec_value_task, U2P(1));
    cr_assert_not_null(f);
    future_t *r = future_compose(f, compose_step, &c);
    cr_assert_not_null(r);
    spec_sem_wait(&c.done);
    future_t *s = pool_submit(p, spec_value_task, NULL);
    cr_assert_not_null(s);
    cr_assert_eq(future_wait(s, NULL), 0);
    cr_assert_not_null(c.g);
    cr_assert(future_cancel(r));
    spec_expect_error(r, ECANCELED);
    cr_assert_eq(future_wait(c.g, NULL), ECANCELED, "g was not cancelled");
    spec_gate_open(&b.gate);
    pool_destroy(p2);
    cr_assert_eq(atomic_load(&c.count), 0, "the cancelled g still ran");
    future_release(r);
    future_release(f);
    future_release(s);
    future_release(run[0]);
    pool_destroy(p);
    spec_blocker_destroy(&b);
    crec_destroy(&c);
}

CheckedTest(spec_composition, compose_cancelled_before_fn_runs_never_runs_fn,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    struct crec c;
    crec_init(&c, C_RESOLVED);
    future_t *f = pool_submit(p, spec_value_task, U2P(1));
    cr_assert_not_null(f);
    future_t *r = future_compose(f, compose_step, &c);
    cr_assert_not_null(r);
    cr_assert(future_cancel(r));
    spec_gate_open(&b.gate);
    future_wait(f, NULL);
    pool_destroy(p);
    spec_expect_error(r, ECANCELED);
    cr_assert_eq(atomic_load(&c.ran), 0,
                 "fn ran after the result was cancelled");
    future_release(r);
    future_release(f);
    future_release(run[0]);
    spec_blocker_destroy(&b);
    crec_destroy(&c);
}

CheckedTest(spec_composition, compose_null_arguments_are_einval)
{
    future_t *f = future_resolved(NULL);
    cr_assert_not_null(f);
    struct crec c;
    crec_init(&c, C_RESOLVED);
    errno = 0;
    cr_assert_null(future_compose(NULL, compose_step, &c));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_compose(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&c.ran), 0);
    future_release(f);
    crec_destroy(&c);
}

/* A loop written as recursion: step n returns future_compose() of step n+1
 * until the target; the final value is the number of the last step. */
struct loop_state {
    long target;
    pool_t *pool; /* NULL: future_resolved() for the next step */
    atomic_long steps;
    atomic_long max_live;
};

static future_t *loop_step(void *value, void *arg)
{
    struct loop_state *L = arg;
    record_stack();
    long n = (long)P2U(value);
    long k = atomic_fetch_add(&L->steps, 1) + 1;
    if (k % 1000 == 0) {
        long live = fut__live_futures();
        long cur = atomic_load(&L->max_live);
        while (live > cur &&
               !atomic_compare_exchange_weak(&L->max_live, &cur, live)) {
        }
    }
    if (n >= L->target)
        return future_resolved(value);
    future_t *next = L->pool ? pool_submit(L->pool, spec_value_task, U2P(n + 1))
                             : future_resolved(U2P(n + 1));
    if (!next)
        return NULL;
    future_t *r = future_compose(next, loop_step, L);
    int e = errno;
    future_release(next);
    errno = e;
    return r;
}

static void run_loop(struct loop_state *L)
{
    atomic_init(&L->steps, 0);
    atomic_init(&L->max_live, 0);
    future_t *f0 = future_resolved(U2P(0));
    cr_assert_not_null(f0);
    future_t *r = future_compose(f0, loop_step, L);
    cr_assert_not_null(r);
    future_release(f0);
    spec_expect_value(r, U2P(L->target));
    cr_assert_eq(atomic_load(&L->steps), L->target + 1);
    future_release(r);
}

CheckedTest(spec_composition, compose_recursion_of_100000_resolved_steps,
            .timeout = 120)
{
    atomic_store(&max_spread, 0);
    struct loop_state L = {.target = 100000, .pool = NULL};
    run_loop(&L);
    uintptr_t spread = atomic_load(&max_spread);
    cr_assert_lt(spread, STACK_LIMIT, "stack grew by %zu bytes",
                 (size_t)spread);
}

CheckedTest(spec_composition, compose_recursion_of_100000_pool_steps,
            .timeout = 120)
{
    atomic_store(&max_spread, 0);
    pool_t *p = spec_pool(2);
    struct loop_state L = {.target = 100000, .pool = p};
    run_loop(&L);
    uintptr_t spread = atomic_load(&max_spread);
    cr_assert_lt(spread, STACK_LIMIT, "stack grew by %zu bytes",
                 (size_t)spread);
    pool_destroy(p);
}

CheckedTest(spec_composition, compose_recursion_frees_settled_links,
            .timeout = 120)
{
    struct loop_state L = {.target = 100000, .pool = NULL};
    run_loop(&L);
    long live = atomic_load(&L.max_live);
    cr_assert_lt(live, 10000,
                 "%ld futures alive during a 100000-step compose loop: "
                 "settled links are kept until the end",
                 live);
}

/* ====================================== future_then_via / catch_via -- */

struct vrec {
    atomic_int ran;
    pthread_t tid;
    int seen_error;
    void *seen_value;
};

static void vrec_init(struct vrec *v)
{
    atomic_init(&v->ran, 0);
    v->seen_error = -1;
    v->seen_value = U2P(0xdead);
}

static int via_then(void *value, void *arg, void **result)
{
    struct vrec *v = arg;
    v->tid = pthread_self();
    v->seen_value = value;
    atomic_fetch_add(&v->ran, 1);
    *result = (void *)(P2U(value) + 1);
    return 0;
}

static int via_catch(int error, void *arg, void **result)
{
    struct vrec *v = arg;
    v->tid = pthread_self();
    v->seen_error = error;
    atomic_fetch_add(&v->ran, 1);
    *result = U2P(error + 1000);
    return 0;
}

CheckedTest(spec_composition, then_via_runs_on_the_given_pool, .timeout = 30)
{
    pool_t *via = spec_pool(1);
    pthread_t worker = pool_thread_id(via);
    pool_t *other = spec_pool(2);

    /* a promise (would continue on the default pool) */
    struct vrec a;
    vrec_init(&a);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    future_t *ra = future_then_via(pf, via, via_then, &a);
    cr_assert_not_null(ra, "future_then_via failed: errno %d", errno);
    cr_assert_eq(promise_resolve(pr, U2P(10)), 0);
    spec_expect_value(ra, U2P(11));
    cr_assert(pthread_equal(a.tid, worker), "promise input: not on the pool");

    /* a task of another pool, attached before and after it settles */
    struct vrec b, c;
    vrec_init(&b);
    vrec_init(&c);
    future_t *t = pool_submit(other, spec_value_task, U2P(20));
    cr_assert_not_null(t);
    future_t *rb = future_then_via(t, via, via_then, &b);
    cr_assert_not_null(rb);
    cr_assert_eq(future_wait(t, NULL), 0);
    future_t *rc = future_then_via(t, via, via_then, &c);
    cr_assert_not_null(rc);
    spec_expect_value(rb, U2P(21));
    spec_expect_value(rc, U2P(21));
    cr_assert(pthread_equal(b.tid, worker), "task input: not on the pool");
    cr_assert(pthread_equal(c.tid, worker), "settled input: not on the pool");

    future_release(ra);
    future_release(rb);
    future_release(rc);
    future_release(pf);
    future_release(t);
    promise_release(pr);
    pool_destroy(other);
    pool_destroy(via);
    cr_assert_eq(atomic_load(&a.ran), 1);
    cr_assert_eq(atomic_load(&b.ran), 1);
    cr_assert_eq(atomic_load(&c.ran), 1);
}

CheckedTest(spec_composition, then_via_waits_for_its_busy_pool, .timeout = 30)
{
    pool_t *via = spec_pool(1);
    pthread_t worker = pool_thread_id(via);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(via, &b, run, 1);
    struct vrec v;
    vrec_init(&v);
    future_t *f = future_resolved(U2P(1));
    cr_assert_not_null(f);
    future_t *r = future_then_via(f, via, via_then, &v);
    cr_assert_not_null(r);
    cr_assert_not(future_wait_for(r, 20 * SPEC_MS),
                  "then_via ran elsewhere while its pool was busy");
    cr_assert_eq(atomic_load(&v.ran), 0);
    spec_gate_open(&b.gate);
    spec_expect_value(r, U2P(2));
    cr_assert(pthread_equal(v.tid, worker));
    future_release(r);
    future_release(f);
    future_release(run[0]);
    pool_destroy(via);
    spec_blocker_destroy(&b);
}

CheckedTest(spec_composition, then_via_failure_passes_with_its_message,
            .timeout = 30)
{
    pool_t *via = spec_pool(1);
    struct vrec v;
    vrec_init(&v);
    future_t *f = rejected_with_message(EIO, "disk on fire");
    future_t *r = future_then_via(f, via, via_then, &v);
    cr_assert_not_null(r);
    spec_expect_error(r, EIO);
    expect_message(r, "disk on fire");
    future_release(r);
    future_release(f);
    pool_destroy(via);
    cr_assert_eq(atomic_load(&v.ran), 0, "then_via ran on a failure");
}

CheckedTest(spec_composition, then_via_on_a_shut_down_pool_fails_eshutdown,
            .timeout = 30)
{
    pool_t *via = spec_pool(1);
    struct vrec v;
    vrec_init(&v);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    future_t *r = future_then_via(pf, via, via_then, &v);
    cr_assert_not_null(r);
    pool_shutdown(via, POOL_DRAIN);
    cr_assert_eq(promise_resolve(pr, U2P(1)), 0);
    spec_expect_error(r, ESHUTDOWN);
    pool_destroy(via);
    cr_assert_eq(atomic_load(&v.ran), 0,
                 "fn ran although the pool was shut down");
    future_release(r);
    future_release(pf);
    promise_release(pr);
}

CheckedTest(spec_composition, then_via_attached_after_shutdown_fails_eshutdown,
            .timeout = 30)
{
    pool_t *via = spec_pool(1);
    pool_shutdown(via, POOL_DRAIN);
    struct vrec v;
    vrec_init(&v);
    future_t *f = future_resolved(U2P(1));
    cr_assert_not_null(f);
    future_t *r = future_then_via(f, via, via_then, &v);
    cr_assert_not_null(r, "future_then_via refused: errno %d", errno);
    spec_expect_error(r, ESHUTDOWN);
    pool_destroy(via);
    cr_assert_eq(atomic_load(&v.ran), 0);
    future_release(r);
    future_release(f);
}

CheckedTest(spec_composition, catch_via_runs_on_failure_only_on_the_pool,
            .timeout = 30)
{
    pool_t *via = spec_pool(1);
    pthread_t worker = pool_thread_id(via);

    struct vrec a;
    vrec_init(&a);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    future_t *ra = future_catch_via(pf, via, via_catch, &a);
    cr_assert_not_null(ra, "future_catch_via failed: errno %d", errno);
    cr_assert_eq(promise_reject(pr, ENOENT), 0);
    spec_expect_value(ra, U2P(ENOENT + 1000));
    cr_assert_eq(a.seen_error, ENOENT);
    cr_assert(pthread_equal(a.tid, worker), "catch_via not on the pool");

    int obj;
    struct vrec b;
    vrec_init(&b);
    future_t *ok = future_resolved(&obj);
    cr_assert_not_null(ok);
    future_t *rb = future_catch_via(ok, via, via_catch, &b);
    cr_assert_not_null(rb);
    spec_expect_value(rb, &obj);

    future_release(ra);
    future_release(rb);
    future_release(pf);
    future_release(ok);
    promise_release(pr);
    pool_destroy(via);
    cr_assert_eq(atomic_load(&a.ran), 1);
    cr_assert_eq(atomic_load(&b.ran), 0, "catch_via ran on success");
}

CheckedTest(spec_composition, catch_via_on_a_shut_down_pool_fails_eshutdown,
            .timeout = 30)
{
    pool_t *via = spec_pool(1);
    struct vrec v;
    vrec_init(&v);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    future_t *r = future_catch_via(pf, via, via_catch, &v);
    cr_assert_not_null(r);
    pool_shutdown(via, POOL_CANCEL);
    cr_assert_eq(promise_reject(pr, EIO), 0);
    spec_expect_error(r, ESHUTDOWN);
    pool_destroy(via);
    cr_assert_eq(atomic_load(&v.ran), 0,
                 "fn ran although the pool was shut down");
    future_release(r);
    future_release(pf);
    promise_release(pr);
}

CheckedTest(spec_composition, via_null_arguments_are_einval)
{
    pool_t *p = spec_pool(1);
    future_t *f = future_resolved(NULL);
    cr_assert_not_null(f);
    struct vrec v;
    vrec_init(&v);
    errno = 0;
    cr_assert_null(future_then_via(NULL, p, via_then, &v));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then_via(f, NULL, via_then, &v));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then_via(f, p, NULL, &v));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch_via(NULL, p, via_catch, &v));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch_via(f, NULL, via_catch, &v));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch_via(f, p, NULL, &v));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&v.ran), 0);
}

/* =================================================== future_wait_all -- */

struct wait_all_call {
    future_t *const *fs;
    size_t n;
    void **values;
    int *errors;
    int rc;
    bool all_ready; /* every input had settled when it returned */
    sem_t done;
};

static void *wait_all_thread(void *arg)
{
    struct wait_all_call *w = arg;
    w->rc = future_wait_all(w->fs, w->n, w->values, w->errors);
    w->all_ready = true;
    for (size_t i = 0; i < w->n; i++)
        if (!future_is_ready(w->fs[i]))
            w->all_ready = false;
    sem_post(&w->done);
    return NULL;
}

CheckedTest(spec_composition, wait_all_blocks_then_fills_values_and_errors,
            .timeout = 30)
{
    enum { N = 5 };
    promise_t *pr[N];
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        pr[i] = spec_promise();
        fs[i] = spec_pfuture(pr[i]);
    }
    void *values[N];
    int errors[N];
    for (int i = 0; i < N; i++) {
        values[i] = U2P(0xdead);
        errors[i] = -1;
    }
    struct wait_all_call w = {
        .fs = fs, .n = N, .values = values, .errors = errors};
    sem_init(&w.done, 0, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, wait_all_thread, &w), 0);

    cr_assert_eq(promise_resolve(pr[4], U2P(40)), 0);
    cr_assert_eq(promise_reject(pr[2], EIO), 0);
    cr_assert_eq(promise_resolve(pr[0], U2P(0)), 0);
    cr_assert_eq(promise_reject(pr[3], ENOENT), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int tw;
    while ((tw = sem_timedwait(&w.done, &ts)) != 0 && errno == EINTR) {
    }
    cr_assert_neq(tw, 0,
                  "future_wait_all returned before its last input settled");
    cr_assert_eq(promise_resolve(pr[1], U2P(10)), 0);
    spec_sem_wait(&w.done);
    pthread_join(th, NULL);

    cr_assert(w.all_ready, "returned before every input had settled");
    cr_assert_eq(w.rc, EIO, "not the lowest-index error");
    void *want_v[N] = {U2P(0), U2P(10), NULL, NULL, U2P(40)};
    int want_e[N] = {0, 0, EIO, ENOENT, 0};
    for (int i = 0; i < N; i++) {
        cr_assert_eq(values[i], want_v[i], "values[%d]", i);
        cr_assert_eq(errors[i], want_e[i], "errors[%d]", i);
    }
    spec_release_all(fs, N);
    for (int i = 0; i < N; i++)
        promise_release(pr[i]);
    sem_destroy(&w.done);
}

CheckedTest(spec_composition, wait_all_returns_the_lowest_index_error,
            .timeout = 30)
{
    /* index 3 fails first, index 1 later: the result is index 1's error */
    pool_t *p = spec_pool(2);
    promise_t *p1 = spec_promise();
    promise_t *p3 = spec_promise();
    future_t *fs[4] = {
        pool_submit(p, spec_value_task, U2P(100)),
        spec_pfuture(p1),
        future_resolved(U2P(102)),
        spec_pfuture(p3),
    };
    cr_assert_not_null(fs[0]);
    cr_assert_not_null(fs[2]);
    cr_assert_eq(promise_reject(p3, ENOENT), 0);
    cr_assert_eq(promise_reject(p1, ECONNRESET), 0);
    void *values[4] = {U2P(1), U2P(1), U2P(1), U2P(1)};
    int errors[4] = {-1, -1, -1, -1};
    cr_assert_eq(future_wait_all(fs, 4, values, errors), ECONNRESET);
    cr_assert_eq(values[0], U2P(100));
    cr_assert_null(values[1]);
    cr_assert_eq(values[2], U2P(102));
    cr_assert_null(values[3]);
    cr_assert_eq(errors[0], 0);
    cr_assert_eq(errors[1], ECONNRESET);
    cr_assert_eq(errors[2], 0);
    cr_assert_eq(errors[3], ENOENT);

    /* all succeeded: 0 */
    future_t *ok[2] = {fs[0], fs[2]};
    cr_assert_eq(future_wait_all(ok, 2, values, errors), 0);
    cr_assert_eq(values[0], U2P(100));
    cr_assert_eq(values[1], U2P(102));
    cr_assert_eq(errors[0], 0);
    cr_assert_eq(errors[1], 0);

    /* a cancelled input */
    promise_t *pc = spec_promise();
    future_t *c[2] = {future_resolved(U2P(5)), spec_pfuture(pc)};
    cr_assert_not_null(c[0]);
    cr_assert(future_cancel(c[1]));
    cr_assert_eq(future_wait_all(c, 2, values, errors), ECANCELED);
    cr_assert_eq(errors[1], ECANCELED);
    cr_assert_null(values[1]);

    spec_release_all(fs, 4);
    spec_release_all(c, 2);
    promise_release(p1);
    promise_release(p3);
    promise_release(pc);
    pool_destroy(p);
}

CheckedTest(spec_composition, wait_all_accepts_null_arrays, .timeout = 30)
{
    future_t *fs[3] = {future_resolved(U2P(1)), future_failed(EPERM),
                       future_failed(EIO)};
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(fs[i]);
    cr_assert_eq(future_wait_all(fs, 3, NULL, NULL), EPERM);
    int errors[3] = {-1, -1, -1};
    cr_assert_eq(future_wait_all(fs, 3, NULL, errors), EPERM);
    cr_assert_eq(errors[0], 0);
    cr_assert_eq(errors[1], EPERM);
    cr_assert_eq(errors[2], EIO);
    void *values[3] = {NULL, U2P(9), U2P(9)};
    cr_assert_eq(future_wait_all(fs, 3, values, NULL), EPERM);
    cr_assert_eq(values[0], U2P(1));
    cr_assert_null(values[1]);
    cr_assert_null(values[2]);
    spec_release_all(fs, 3);
}

CheckedTest(spec_composition, wait_all_of_zero_returns_zero)
{
    cr_assert_eq(future_wait_all(NULL, 0, NULL, NULL), 0);
    future_t *f = future_failed(EIO);
    cr_assert_not_null(f);
    void *v = U2P(7);
    int e = 7;
    cr_assert_eq(future_wait_all(&f, 0, &v, &e), 0);
    cr_assert_eq(v, U2P(7), "wrote values for n == 0");
    cr_assert_eq(e, 7, "wrote errors for n == 0");
    cr_assert_eq(future_wait(f, NULL), EIO);
    future_release(f);
}

CheckedTest(spec_composition, wait_all_null_inputs_are_einval_without_waiting,
            .timeout = 30)
{
    cr_assert_eq(future_wait_all(NULL, 2, NULL, NULL), EINVAL);
    expect_unobserved(EPIPE); /* pr is dropped unkept */
    promise_t *pr = spec_promise();
    future_t *fs[3] = {spec_pfuture(pr), NULL, future_resolved(U2P(1))};
    cr_assert_not_null(fs[2]);
    int errors[3] = {-1, -1, -1};
    /* fs[0] never settles before the call returns: it must not wait */
    cr_assert_eq(future_wait_all(fs, 3, NULL, errors), EINVAL);
    cr_assert_not(future_is_ready(fs[0]));
    future_release(fs[0]);
    future_release(fs[2]);
    promise_release(pr);
}

struct in_task_arg {
    pool_t *pool;
    int rc;
    int submit_failed;
    uintptr_t sum;
    int errs_ok;
};

static int wait_all_in_task(void *arg, void **result)
{
    struct in_task_arg *a = arg;
    enum { K = 4 };
    future_t *fs[K];
    void *values[K];
    int errors[K];
    for (int i = 0; i < K; i++) {
        fs[i] = pool_submit(a->pool, spec_value_task, U2P(i + 1));
        if (!fs[i]) {
            a->submit_failed = 1;
            for (int j = 0; j < i; j++)
                future_release(fs[j]);
            return ENOMEM;
        }
    }
    a->rc = future_wait_all(fs, K, values, errors);
    a->sum = 0;
    a->errs_ok = 1;
    for (int i = 0; i < K; i++) {
        a->sum += P2U(values[i]);
        if (errors[i] != 0)
            a->errs_ok = 0;
        future_release(fs[i]);
    }
    *result = U2P(a->sum);
    return a->rc;
}

CheckedTest(spec_composition, wait_all_inside_a_one_thread_pool_task,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct in_task_arg a = {.pool = p};
    future_t *t = pool_submit(p, wait_all_in_task, &a);
    cr_assert_not_null(t);
    cr_assert_eq(future_wait(t, NULL), 0, "task failed: rc %d", a.rc);
    cr_assert_eq(a.submit_failed, 0);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.sum, 1 + 2 + 3 + 4);
    cr_assert(a.errs_ok);
    future_release(t);
    pool_destroy(p);
}

CheckedTest(spec_composition, wait_all_counts_failures_as_observed,
            .timeout = 30)
{
    uo_listen();
    future_release(rejected_future(EIO)); /* control */
    cr_assert_eq(atomic_load(&uo_reports), 1, "the handler is not installed");
    future_t *fs[2] = {rejected_future(ENOENT), rejected_future(EPERM)};
    cr_assert_eq(future_wait_all(fs, 2, NULL, NULL), ENOENT);
    spec_release_all(fs, 2);
    expect_no_live_futures();
    cr_assert_eq(atomic_load(&uo_reports), 1,
                 "a failure collected by future_wait_all was reported");
    uo_restore();
}

/* ==================================================== completion queue -- */

CheckedTest(spec_composition, completion_returns_futures_in_settlement_order,
            .timeout = 30)
{
    enum { N = 8 };
    static const int order[N] = {5, 2, 7, 0, 3, 6, 1, 4};
    completion_t *c = completion_create();
    cr_assert_not_null(c, "completion_create failed: errno %d", errno);
    promise_t *pr[N];
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        pr[i] = spec_promise();
        fs[i] = spec_pfuture(pr[i]);
        cr_assert_eq(completion_add(c, fs[i]), 0);
    }
    for (int k = 0; k < N; k++) {
        int i = order[k];
        if (i % 3 == 0)
            cr_assert_eq(promise_reject(pr[i], EIO), 0);
        else
            cr_assert_eq(promise_resolve(pr[i], U2P(i)), 0);
    }
    for (int k = 0; k < N; k++) {
        future_t *f = completion_next(c, UINT64_MAX);
        cr_assert_not_null(f, "next %d failed: errno %d", k, errno);
        cr_assert_eq(f, fs[order[k]], "position %d: not future %d", k,
                     order[k]);
        cr_assert(future_is_ready(f));
        future_release(f);
    }
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT);
    completion_release(c);
    spec_release_all(fs, N);
    for (int i = 0; i < N; i++)
        promise_release(pr[i]);
}

CheckedTest(spec_composition, completion_interleaves_settling_and_next,
            .timeout = 30)
{
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    promise_t *a = spec_promise(), *b = spec_promise();
    future_t *fa = spec_pfuture(a), *fb = spec_pfuture(b);
    cr_assert_eq(completion_add(c, fa), 0);
    cr_assert_eq(completion_add(c, fb), 0);
    errno = 0;
    cr_assert_null(completion_next(c, 0), "returned an unsettled future");
    cr_assert_eq(errno, ETIMEDOUT);
    cr_assert_eq(promise_resolve(b, U2P(2)), 0);
    future_t *f = completion_next(c, UINT64_MAX);
    cr_assert_eq(f, fb);
    spec_expect_value(f, U2P(2));
    future_release(f);
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ETIMEDOUT, "a is still pending: not ENOENT");
    cr_assert_eq(promise_reject(a, EPIPE), 0);
    f = completion_next(c, UINT64_MAX);
    cr_assert_eq(f, fa);
    spec_expect_error(f, EPIPE);
    future_release(f);
    errno = 0;
    cr_assert_null(completion_next(c, UINT64_MAX));
    cr_assert_eq(errno, ENOENT);
    completion_release(c);
    future_release(fa);
    future_release(fb);
    promise_release(a);
    promise_release(b);
}

CheckedTest(spec_composition, completion_same_future_twice_is_returned_twice,
            .timeout = 30)
{
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(completion_add(c, f), 0);
    cr_assert_eq(completion_add(c, f), 0);
    future_t *done = future_resolved(U2P(3)); /* already settled, twice too */
    cr_assert_not_null(done);
    cr_assert_eq(completion_add(c, done), 0);
    cr_assert_eq(completion_add(c, done), 0);
    future_release(done); /* the queue keeps its own references */
    cr_assert_eq(promise_resolve(pr, U2P(1)), 0);
    int nf = 0, nd = 0;
    for (int k = 0; k < 4; k++) {
        future_t *g = completion_next(c, UINT64_MAX);
        cr_assert_not_null(g, "next %d failed: errno %d", k, errno);
        void *v = NULL;
        cr_assert_eq(future_wait(g, &v), 0);
        if (g == f)
            nf++;
        else if (v == U2P(3))
            nd++;
        future_release(g);
    }
    cr_assert_eq(nf, 2, "the promise's future came back %d times", nf);
    cr_assert_eq(nd, 2, "the resolved future came back %d times", nd);
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT);
    completion_release(c);
    future_release(f);
    promise_release(pr);
}

CheckedTest(spec_composition, completion_poll_and_empty_queue, .timeout = 30)
{
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    /* nothing added: every added future has been returned */
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT);
    errno = 0;
    cr_assert_null(completion_next(c, UINT64_MAX), "an empty queue blocked?");
    cr_assert_eq(errno, ENOENT);

    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(completion_add(c, f), 0);
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ETIMEDOUT);
    cr_assert_eq(promise_resolve(pr, NULL), 0);
    future_t *g = completion_next(c, UINT64_MAX);
    cr_assert_eq(g, f);
    future_release(g);
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT);
    errno = 0;
    cr_assert_null(completion_next(c, UINT64_MAX));
    cr_assert_eq(errno, ENOENT);
    completion_release(c);
    future_release(f);
    promise_release(pr);
}

CheckedTest(spec_composition, completion_short_timeout_is_etimedout,
            .timeout = 30)
{
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(completion_add(c, f), 0);
    uint64_t t0 = monotonic_ns();
    errno = 0;
    cr_assert_null(completion_next(c, 10 * SPEC_MS));
    uint64_t dt = monotonic_ns() - t0;
    cr_assert_eq(errno, ETIMEDOUT);
    cr_assert_geq(dt, 10 * SPEC_MS,
                  "returned after %llu ns, before the timeout",
                  (unsigned long long)dt);
    cr_assert_lt(dt, 5000 * SPEC_MS, "a 10 ms timeout took %llu ns",
                 (unsigned long long)dt);
    completion_release(c);
    future_release(f);
    promise_release(pr);
}

struct next_call {
    completion_t *c;
    future_t *got;
    int err;
};

static void *next_thread(void *arg)
{
    struct next_call *n = arg;
    n->got = completion_next(n->c, UINT64_MAX);
    n->err = n->got ? 0 : errno;
    return NULL;
}

CheckedTest(spec_composition, completion_next_blocks_until_a_future_settles,
            .timeout = 30)
{
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(completion_add(c, f), 0);
    struct next_call n = {.c = c};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, next_thread, &n), 0);
    cr_assert_eq(promise_resolve(pr, U2P(8)), 0);
    pthread_join(th, NULL);
    cr_assert_eq(n.got, f, "completion_next failed: errno %d", n.err);
    future_release(n.got);
    completion_release(c);
    future_release(f);
    promise_release(pr);
}

#define CQ_N       10000
#define CQ_THREADS 4

struct cq_worker {
    completion_t *c;
    uintptr_t *seen;
    size_t count;
    int last_errno;
    int bad_wait;
};

static void *cq_thread(void *arg)
{
    struct cq_worker *w = arg;
    for (;;) {
        future_t *f = completion_next(w->c, UINT64_MAX);
        if (!f) {
            w->last_errno = errno;
            break;
        }
        void *v = NULL;
        if (future_wait(f, &v) != 0)
            w->bad_wait++;
        if (w->count < CQ_N)
            w->seen[w->count] = P2U(v);
        w->count++;
        future_release(f);
    }
    return NULL;
}

CheckedTest(spec_composition, completion_four_threads_share_10000_futures,
            .timeout = 60)
{
    pool_t *p = spec_pool(4);
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    for (int i = 0; i < CQ_N; i++) {
        future_t *f = pool_submit(p, spec_value_task, U2P(i + 1));
        cr_assert_not_null(f);
        cr_assert_eq(completion_add(c, f), 0);
        future_release(f); /* the queue holds its own */
    }
    struct cq_worker w[CQ_THREADS];
    pthread_t th[CQ_THREADS];
    for (int t = 0; t < CQ_THREADS; t++) {
        w[t] = (struct cq_worker){.c = c};
        w[t].seen = calloc(CQ_N, sizeof *w[t].seen);
        cr_assert_not_null(w[t].seen);
        cr_assert_eq(pthread_create(&th[t], NULL, cq_thread, &w[t]), 0);
    }
    for (int t = 0; t < CQ_THREADS; t++)
        pthread_join(th[t], NULL);
    unsigned char *hits = calloc(CQ_N + 1, 1);
    cr_assert_not_null(hits);
    size_t total = 0;
    for (int t = 0; t < CQ_THREADS; t++) {
        cr_assert_eq(w[t].last_errno, ENOENT, "thread %d ended with errno %d",
                     t, w[t].last_errno);
        cr_assert_eq(w[t].bad_wait, 0);
        cr_assert_leq(w[t].count, (size_t)CQ_N);
        total += w[t].count;
        for (size_t k = 0; k < w[t].count; k++) {
            uintptr_t v = w[t].seen[k];
            cr_assert(v >= 1 && v <= CQ_N, "unknown value %zu", (size_t)v);
            cr_assert_eq(hits[v], 0, "future %zu returned twice", (size_t)v);
            hits[v] = 1;
        }
    }
    cr_assert_eq(total, (size_t)CQ_N, "%zu futures returned, not %d", total,
                 CQ_N);
    free(hits);
    for (int t = 0; t < CQ_THREADS; t++)
        free(w[t].seen);
    completion_release(c);
    pool_destroy(p);
}

CheckedTest(spec_composition, completion_100000_promises_in_settlement_order,
            .timeout = 120)
{
    enum { N = 100000 };
    promise_t **pr = calloc(N, sizeof *pr);
    future_t **fs = calloc(N, sizeof *fs);
    int *order = calloc(N, sizeof *order);
    cr_assert(pr && fs && order);
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    for (int i = 0; i < N; i++) {
        pr[i] = spec_promise();
        fs[i] = spec_pfuture(pr[i]);
        cr_assert_eq(completion_add(c, fs[i]), 0);
        order[i] = i;
    }
    uint64_t x = 88172645463325252ull; /* xorshift64 */
    for (int i = N - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int j = (int)(x % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < N; k++)
        cr_assert_eq(promise_resolve(pr[order[k]], U2P(order[k])), 0);
    for (int k = 0; k < N; k++) {
        future_t *f = completion_next(c, UINT64_MAX);
        cr_assert_not_null(f, "next %d failed: errno %d", k, errno);
        if (f != fs[order[k]])
            cr_assert_fail("position %d: got another future than %d", k,
                           order[k]);
        future_release(f);
    }
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT);
    completion_release(c);
    for (int i = 0; i < N; i++) {
        future_release(fs[i]);
        promise_release(pr[i]);
    }
    free(pr);
    free(fs);
    free(order);
}

CheckedTest(spec_composition,
            completion_release_drops_unreturned_and_tasks_still_run,
            .timeout = 30)
{
    enum { N = 16 };
    pool_t *p = spec_pool(2);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[2];
    spec_saturate(p, &b, run, 2);
    atomic_int n;
    atomic_init(&n, 0);
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    for (int i = 0; i < N; i++) {
        future_t *f = pool_submit(p, spec_count_task, &n);
        cr_assert_not_null(f);
        cr_assert_eq(completion_add(c, f), 0);
        future_release(f);
    }
    /* and some settled ones, never returned either */
    for (int i = 0; i < 3; i++) {
        future_t *f = future_resolved(U2P(i));
        cr_assert_not_null(f);
        cr_assert_eq(completion_add(c, f), 0);
        future_release(f);
    }
    completion_release(c);
    spec_gate_open(&b.gate);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&n), N, "%d of %d tasks ran", atomic_load(&n), N);
    spec_release_all(run, 2);
    spec_blocker_destroy(&b);
    /* CheckedTest: no future outlives the test */
}

struct cq_task_arg {
    pool_t *pool;
    int got;
    int err;
    uintptr_t sum;
};

static int completion_in_task(void *arg, void **result)
{
    struct cq_task_arg *a = arg;
    completion_t *c = completion_create();
    if (!c)
        return ENOMEM;
    for (int i = 0; i < 3; i++) {
        future_t *f = pool_submit(a->pool, spec_value_task, U2P(i + 1));
        if (!f || completion_add(c, f) != 0) {
            future_release(f);
            completion_release(c);
            return ENOMEM;
        }
        future_release(f);
    }
    for (;;) {
        future_t *f = completion_next(c, UINT64_MAX);
        if (!f) {
            a->err = errno;
            break;
        }
        void *v = NULL;
        if (future_wait(f, &v) == 0)
            a->sum += P2U(v);
        a->got++;
        future_release(f);
    }
    completion_release(c);
    *result = NULL;
    return 0;
}

CheckedTest(spec_composition, completion_next_inside_a_one_thread_pool_task,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct cq_task_arg a = {.pool = p};
    future_t *t = pool_submit(p, completion_in_task, &a);
    cr_assert_not_null(t);
    cr_assert_eq(future_wait(t, NULL), 0);
    cr_assert_eq(a.got, 3);
    cr_assert_eq(a.err, ENOENT);
    cr_assert_eq(a.sum, 6);
    future_release(t);
    pool_destroy(p);
}

CheckedTest(spec_composition, completion_add_counts_as_observed, .timeout = 30)
{
    uo_listen();
    future_release(rejected_future(EIO)); /* control */
    cr_assert_eq(atomic_load(&uo_reports), 1, "the handler is not installed");
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    future_t *f = rejected_future(ENOENT);
    cr_assert_eq(completion_add(c, f), 0);
    future_release(f);
    future_t *g = completion_next(c, UINT64_MAX);
    cr_assert_not_null(g);
    future_release(g);
    completion_release(c);
    expect_no_live_futures();
    cr_assert_eq(atomic_load(&uo_reports), 1,
                 "a failure added to a completion queue was reported");
    uo_restore();
}

CheckedTest(spec_composition, completion_null_arguments_are_einval)
{
    completion_t *c = completion_create();
    cr_assert_not_null(c);
    future_t *f = future_resolved(NULL);
    cr_assert_not_null(f);
    cr_assert_eq(completion_add(NULL, f), EINVAL);
    cr_assert_eq(completion_add(c, NULL), EINVAL);
    errno = 0;
    cr_assert_null(completion_next(NULL, 0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(completion_next(NULL, UINT64_MAX));
    cr_assert_eq(errno, EINVAL);
    completion_release(NULL);
    /* nothing was added by the failed calls */
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT);
    completion_release(c);
    future_release(f);
}

/* ================================================== failure messages -- */

static int http_fail_task(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return task_fail(EIO, "HTTP %d from %s", 404, "x");
}

static int long_message_task(void *arg, void **result)
{
    (void)result;
    return task_fail(EMSGSIZE, "%s", (const char *)arg);
}

static int fail_then_succeed_task(void *arg, void **result)
{
    if (task_fail(EIO, "dropped") != EIO)
        return EFAULT; /* task_fail must return its error */
    *result = arg;
    return 0;
}

static int replace_message_task(void *arg, void **result)
{
    (void)arg;
    (void)result;
    task_fail(EIO, "first");
    return task_fail(EIO, "second %d", 2);
}

static int other_error_task(void *arg, void **result)
{
    (void)arg;
    (void)result;
    task_fail(EIO, "said EIO");
    return ENOENT;
}

CheckedTest(spec_composition, task_fail_records_a_formatted_message,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, http_fail_task, NULL);
    cr_assert_not_null(f);
    cr_assert_eq(future_wait(f, NULL), EIO);
    expect_message(f, "HTTP 404 from x");
    future_release(f);
    pool_destroy(p);
}

CheckedTest(spec_composition, task_fail_truncates_at_255_bytes, .timeout = 30)
{
    char longmsg[401], exact[256];
    for (int i = 0; i < 400; i++)
        longmsg[i] = (char)('a' + i % 26);
    longmsg[400] = '\0';
    memcpy(exact, longmsg, 255);
    exact[255] = '\0';
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, long_message_task, longmsg);
    future_t *g = pool_submit(p, long_message_task, exact);
    cr_assert_not_null(f);
    cr_assert_not_null(g);
    cr_assert_eq(future_wait(f, NULL), EMSGSIZE);
    cr_assert_eq(future_wait(g, NULL), EMSGSIZE);
    const char *m = future_error_message(f);
    cr_assert_not_null(m);
    cr_assert_eq(strlen(m), 255, "message of %zu bytes", strlen(m));
    cr_assert_eq(memcmp(m, longmsg, 255), 0,
                 "not the message's first 255 bytes");
    expect_message(g, exact); /* 255 bytes: kept whole */

    /* the same rule for promises */
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    cr_assert_eq(promise_reject_message(pr, EIO, "%s", longmsg), 0);
    const char *pm = future_error_message(pf);
    cr_assert_not_null(pm);
    cr_assert_eq(strlen(pm), 255);
    cr_assert_eq(memcmp(pm, longmsg, 255), 0);
    cr_assert_eq(future_wait(pf, NULL), EIO);

    future_release(f);
    future_release(g);
    future_release(pf);
    promise_release(pr);
    pool_destroy(p);
}

CheckedTest(spec_composition, task_fail_then_success_drops_the_message,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, fail_then_succeed_task, U2P(3));
    cr_assert_not_null(f);
    spec_expect_value(f, U2P(3));
    cr_assert_null(future_error_message(f));
    /* and the dropped message does not stick to the thread's next failure */
    future_t *g = pool_submit(p, spec_error_task, (void *)(intptr_t)EPERM);
    cr_assert_not_null(g);
    spec_expect_error(g, EPERM);
    cr_assert_null(future_error_message(g), "a stale message: \"%s\"",
                   future_error_message(g));
    future_release(f);
    future_release(g);
    pool_destroy(p);
}

CheckedTest(spec_composition,
            task_fail_second_call_replaces_and_any_error_keeps_it,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, replace_message_task, NULL);
    future_t *g = pool_submit(p, other_error_task, NULL);
    cr_assert_not_null(f);
    cr_assert_not_null(g);
    spec_expect_error(f, EIO);
    expect_message(f, "second 2");
    spec_expect_error(g, ENOENT);
    expect_message(g, "said EIO");
    future_release(f);
    future_release(g);
    pool_destroy(p);
}

CheckedTest(spec_composition, task_fail_outside_a_task_records_nothing,
            .timeout = 30)
{
    cr_assert_eq(task_fail(EIO, "outside %d", 1), EIO);
    cr_assert_eq(task_fail(ENOENT, "outside %d", 2), ENOENT);
    /* nothing sticks to this thread's later failures */
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    cr_assert_eq(promise_reject(pr, EPERM), 0);
    spec_expect_error(pf, EPERM);
    cr_assert_null(future_error_message(pf));
    /* not even to a task this thread runs later, as a loop's thread */
    loop_t *l = loop_create();
    cr_assert_not_null(l);
    cr_assert_eq(task_fail(EIO, "outside %d", 3), EIO);
    future_t *t = loop_submit(l, spec_error_task, (void *)(intptr_t)EACCES);
    cr_assert_not_null(t);
    cr_assert_eq(loop_run(l), 0);
    spec_expect_error(t, EACCES);
    cr_assert_null(future_error_message(t), "a stale message: \"%s\"",
                   future_error_message(t));
    future_release(t);
    loop_destroy(l);
    future_release(pf);
    promise_release(pr);
}

static int then_with_message(void *value, void *arg, void **result)
{
    (void)arg;
    (void)result;
    return task_fail(EPROTO, "then saw %lu", (unsigned long)P2U(value));
}

static int catch_with_message(int error, void *arg, void **result)
{
    (void)arg;
    (void)result;
    return task_fail(error + 1, "catch saw %d", error);
}

static int handle_with_message(int error, void *value, void *arg, void **result)
{
    (void)value;
    (void)arg;
    (void)result;
    return task_fail(EBADMSG, "handle saw %d", error);
}

CheckedTest(spec_composition, task_fail_inside_callbacks, .timeout = 30)
{
    future_t *ok = future_resolved(U2P(12));
    future_t *bad = future_failed(20);
    cr_assert_not_null(ok);
    cr_assert_not_null(bad);
    future_t *t = future_then(ok, then_with_message, NULL);
    future_t *c = future_catch(bad, catch_with_message, NULL);
    future_t *h = future_handle(bad, handle_with_message, NULL);
    cr_assert_not_null(t);
    cr_assert_not_null(c);
    cr_assert_not_null(h);
    spec_expect_error(t, EPROTO);
    expect_message(t, "then saw 12");
    spec_expect_error(c, 21);
    expect_message(c, "catch saw 20");
    spec_expect_error(h, EBADMSG);
    expect_message(h, "handle saw 20");
    future_release(t);
    future_release(c);
    future_release(h);
    future_release(ok);
    future_release(bad);
}

CheckedTest(spec_composition, message_passes_through_then_chains, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, http_fail_task, NULL);
    cr_assert_not_null(f);
    future_t *g1 = future_then(f, spec_inc_then, NULL);
    cr_assert_not_null(g1);
    future_t *g2 = future_then(g1, spec_inc_then, NULL);
    cr_assert_not_null(g2);
    spec_expect_error(g2, EIO);
    expect_message(g1, "HTTP 404 from x");
    expect_message(g2, "HTTP 404 from x");
    future_release(g2);
    future_release(g1);
    future_release(f);
    pool_destroy(p);
}

CheckedTest(spec_composition, message_passes_through_timeout, .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *t = future_timeout(f, 30000 * SPEC_MS);
    cr_assert_not_null(t);
    cr_assert_eq(promise_reject_message(pr, ECONNREFUSED, "port %d", 8080), 0);
    spec_expect_error(t, ECONNREFUSED);
    expect_message(t, "port 8080");
    future_release(t);
    future_release(f);
    promise_release(pr);
}

CheckedTest(spec_composition,
            message_passes_through_compose_from_the_inner_future, .timeout = 30)
{
    /* the inner future's message reaches the result even after fn returned
     * an unsettled future */
    struct crec c;
    crec_init(&c, C_PROMISE);
    c.promise = spec_promise();
    future_t *f = future_resolved(U2P(1));
    cr_assert_not_null(f);
    future_t *r = future_compose(f, compose_step, &c);
    cr_assert_not_null(r);
    spec_sem_wait(&c.done);
    cr_assert_eq(
        promise_reject_message(c.promise, EHOSTUNREACH, "host %s", "h"), 0);
    spec_expect_error(r, EHOSTUNREACH);
    expect_message(r, "host h");
    future_release(r);
    future_release(f);
    promise_release(c.promise);
    crec_destroy(&c);
}

CheckedTest(spec_composition,
            when_all_takes_the_message_of_the_input_it_fails_with,
            .timeout = 30)
{
    promise_t *pr[3] = {spec_promise(), spec_promise(), spec_promise()};
    future_t *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = spec_pfuture(pr[i]);
    future_t *all = when_all(fs, 3);
    cr_assert_not_null(all);
    cr_assert_eq(promise_reject_message(pr[2], ENOENT, "two"), 0);
    cr_assert_eq(promise_reject_message(pr[1], EIO, "one"), 0);
    cr_assert_eq(promise_resolve(pr[0], NULL), 0);
    spec_expect_error(all, EIO);
    expect_message(all, "one");

    /* the lowest-index failure has no message: neither has the result */
    promise_t *q[2] = {spec_promise(), spec_promise()};
    future_t *gs[2] = {spec_pfuture(q[0]), spec_pfuture(q[1])};
    future_t *all2 = when_all(gs, 2);
    cr_assert_not_null(all2);
    cr_assert_eq(promise_reject_message(q[1], ENOENT, "later one"), 0);
    cr_assert_eq(promise_reject(q[0], EPERM), 0);
    spec_expect_error(all2, EPERM);
    cr_assert_null(future_error_message(all2), "took \"%s\" from another input",
                   future_error_message(all2));

    future_release(all);
    future_release(all2);
    spec_release_all(fs, 3);
    spec_release_all(gs, 2);
    for (int i = 0; i < 3; i++)
        promise_release(pr[i]);
    promise_release(q[0]);
    promise_release(q[1]);
}

CheckedTest(spec_composition, promise_reject_message_rules, .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(
        promise_reject_message(pr, EACCES, "user %s, uid %d", "bob", 7), 0);
    spec_expect_error(f, EACCES);
    expect_message(f, "user bob, uid 7");
    /* the first settlement wins, message included */
    cr_assert_eq(promise_reject_message(pr, EIO, "second"), EALREADY);
    cr_assert_eq(promise_reject(pr, EIO), EALREADY);
    spec_expect_error(f, EACCES);
    expect_message(f, "user bob, uid 7");

    promise_t *ok = spec_promise();
    future_t *fo = spec_pfuture(ok);
    cr_assert_eq(promise_resolve(ok, U2P(1)), 0);
    cr_assert_eq(promise_reject_message(ok, EIO, "late"), EALREADY);
    spec_expect_value(fo, U2P(1));
    cr_assert_null(future_error_message(fo));

    promise_t *bad = spec_promise();
    future_t *fb = spec_pfuture(bad);
    expect_unobserved(EPIPE); /* bad is dropped unkept */
    cr_assert_eq(promise_reject_message(NULL, EIO, "x"), EINVAL);
    cr_assert_eq(promise_reject_message(bad, 0, "x"), EINVAL);
    cr_assert_eq(promise_reject_message(bad, -5, "x"), EINVAL);
    cr_assert_not(future_is_ready(fb), "a refused call settled the promise");

    /* the string lives as long as the future */
    const char *m = future_error_message(f);
    promise_release(pr);
    cr_assert_str_eq(m, "user bob, uid 7");

    future_release(f);
    future_release(fo);
    future_release(fb);
    promise_release(ok);
    promise_release(bad);
}

CheckedTest(spec_composition, error_message_is_null_unless_a_failure_has_one,
            .timeout = 30)
{
    cr_assert_null(future_error_message(NULL));
    future_t *ok = future_resolved(U2P(1));
    cr_assert_not_null(ok);
    cr_assert_null(future_error_message(ok));
    future_t *bad = future_failed(EIO);
    cr_assert_not_null(bad);
    cr_assert_null(future_error_message(bad));
    cr_assert_eq(future_wait(bad, NULL), EIO);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    cr_assert_null(future_error_message(pf),
                   "an unsettled future has a message");
    cr_assert(future_cancel(pf));
    cr_assert_null(future_error_message(pf));
    pool_t *p = spec_pool(1);
    future_t *t = pool_submit(p, spec_error_task, (void *)(intptr_t)EPERM);
    cr_assert_not_null(t);
    spec_expect_error(t, EPERM);
    cr_assert_null(future_error_message(t));
    future_t *tv = pool_submit(p, spec_value_task, U2P(2));
    cr_assert_not_null(tv);
    spec_expect_value(tv, U2P(2));
    cr_assert_null(future_error_message(tv));
    future_release(t);
    future_release(tv);
    pool_destroy(p);
    future_release(ok);
    future_release(bad);
    future_release(pf);
    promise_release(pr);
}

CheckedTest(spec_composition, unobserved_handler_gets_the_message,
            .timeout = 30)
{
    uo_listen();
    /* a promise's failure */
    future_release(rejected_with_message(EIO, "nobody looked"));
    cr_assert_eq(atomic_load(&uo_reports), 1);
    cr_assert_eq(uo_last_error, EIO);
    cr_assert(uo_last_had_message, "failure->message is NULL");
    cr_assert_str_eq(uo_last_message, "nobody looked");

    /* a task's failure, dropped by this thread after its pool is gone */
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, http_fail_task, NULL);
    cr_assert_not_null(f);
    cr_assert(future_wait_for(f, 30000 * SPEC_MS));
    pool_destroy(p);
    cr_assert_eq(atomic_load(&uo_reports), 1, "reported while referenced");
    future_release(f);
    cr_assert_eq(atomic_load(&uo_reports), 2);
    cr_assert_eq(uo_last_error, EIO);
    cr_assert(uo_last_had_message, "failure->message is NULL");
    cr_assert_str_eq(uo_last_message, "HTTP 404 from x");

    /* no message: NULL */
    future_release(rejected_future(ENOENT));
    cr_assert_eq(atomic_load(&uo_reports), 3);
    cr_assert_eq(uo_last_error, ENOENT);
    cr_assert_not(uo_last_had_message, "a message out of nowhere: \"%s\"",
                  uo_last_message);
    uo_restore();
}

/* =========================================== pool_submit_blocking_ex -- */

struct freeable {
    atomic_int ran;
    atomic_int freed;
    atomic_int ran_at_free; /* ran, as the destructor saw it */
    sem_t freed_sem;
};

static void freeable_init(struct freeable *a)
{
    atomic_init(&a->ran, 0);
    atomic_init(&a->freed, 0);
    atomic_init(&a->ran_at_free, -1);
    sem_init(&a->freed_sem, 0, 0);
}

static void freeable_free(void *arg)
{
    struct freeable *a = arg;
    atomic_store(&a->ran_at_free, atomic_load(&a->ran));
    atomic_fetch_add(&a->freed, 1);
    sem_post(&a->freed_sem);
}

static int freeable_job(void *arg, void **result)
{
    struct freeable *a = arg;
    atomic_fetch_add(&a->ran, 1);
    *result = a;
    return 0;
}

CheckedTest(spec_composition, blocking_ex_frees_once_after_the_job_ran,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct freeable a;
    freeable_init(&a);
    future_t *f = pool_submit_blocking_ex(p, freeable_job, &a, freeable_free);
    cr_assert_not_null(f, "pool_submit_blocking_ex failed: errno %d", errno);
    spec_expect_value(f, &a);
    spec_sem_wait(&a.freed_sem);
    cr_assert_eq(atomic_load(&a.ran_at_free), 1, "arg_free ran before the job");
    future_release(f);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.ran), 1);
    cr_assert_eq(atomic_load(&a.freed), 1, "arg_free ran %d times",
                 atomic_load(&a.freed));
    sem_destroy(&a.freed_sem);
}

CheckedTest(spec_composition, blocking_ex_runs_beyond_busy_core_threads,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1); /* the only core thread is busy */
    struct freeable a;
    freeable_init(&a);
    future_t *f = pool_submit_blocking_ex(p, freeable_job, &a, freeable_free);
    cr_assert_not_null(f);
    spec_expect_value(f, &a); /* runs on a blocking thread meanwhile */
    spec_sem_wait(&a.freed_sem);
    spec_gate_open(&b.gate);
    future_release(f);
    future_release(run[0]);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.freed), 1);
    spec_blocker_destroy(&b);
    sem_destroy(&a.freed_sem);
}

static int blocking_gated_job(void *arg, void **result)
{
    return spec_block_task(arg, result);
}

CheckedTest(spec_composition,
            blocking_ex_frees_once_when_cancelled_before_running, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    cr_assert_eq(pool_set_blocking_limit(p, 1), 0);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *busy = pool_submit_blocking(p, blocking_gated_job, &b);
    cr_assert_not_null(busy);
    spec_sem_wait(&b.started); /* the one blocking thread is taken */
    struct freeable a;
    freeable_init(&a);
    future_t *f = pool_submit_blocking_ex(p, freeable_job, &a, freeable_free);
    cr_assert_not_null(f);
    cr_assert(future_cancel(f), "a queued job did not cancel");
    spec_expect_error(f, ECANCELED);
    spec_sem_wait(&a.freed_sem);
    spec_gate_open(&b.gate);
    spec_expect_value(busy, &b);
    future_release(f);
    future_release(busy);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.ran), 0, "a cancelled job ran");
    cr_assert_eq(atomic_load(&a.freed), 1, "arg_free ran %d times",
                 atomic_load(&a.freed));
    spec_blocker_destroy(&b);
    sem_destroy(&a.freed_sem);
}

CheckedTest(spec_composition, blocking_ex_frees_once_when_pool_cancel_drops_it,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    cr_assert_eq(pool_set_blocking_limit(p, 1), 0);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *busy = pool_submit_blocking(p, blocking_gated_job, &b);
    cr_assert_not_null(busy);
    spec_sem_wait(&b.started);
    struct freeable a;
    freeable_init(&a);
    future_t *f = pool_submit_blocking_ex(p, freeable_job, &a, freeable_free);
    cr_assert_not_null(f);
    pool_shutdown(p, POOL_CANCEL);
    spec_expect_error(f, ECANCELED);
    spec_sem_wait(&a.freed_sem);
    spec_gate_open(&b.gate);
    future_wait(busy, NULL);
    future_release(f);
    future_release(busy);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.ran), 0);
    cr_assert_eq(atomic_load(&a.freed), 1);
    spec_blocker_destroy(&b);
    sem_destroy(&a.freed_sem);
}

CheckedTest(spec_composition,
            blocking_ex_refused_after_shutdown_frees_before_return,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    pool_shutdown(p, POOL_DRAIN);
    struct freeable a;
    freeable_init(&a);
    errno = 0;
    future_t *f = pool_submit_blocking_ex(p, freeable_job, &a, freeable_free);
    cr_assert_null(f);
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(atomic_load(&a.freed), 1, "arg not freed before the return");
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.ran), 0);
    cr_assert_eq(atomic_load(&a.freed), 1);
    sem_destroy(&a.freed_sem);
}

CheckedTest(spec_composition, blocking_ex_null_arguments_free_the_arg)
{
    pool_t *p = spec_pool(1);
    struct freeable a, b;
    freeable_init(&a);
    freeable_init(&b);
    errno = 0;
    cr_assert_null(pool_submit_blocking_ex(p, NULL, &a, freeable_free));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&a.freed), 1);
    errno = 0;
    cr_assert_null(
        pool_submit_blocking_ex(NULL, freeable_job, &b, freeable_free));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&b.freed), 1);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.freed), 1);
    cr_assert_eq(atomic_load(&b.freed), 1);
    cr_assert_eq(atomic_load(&b.ran), 0);
    sem_destroy(&a.freed_sem);
    sem_destroy(&b.freed_sem);
}

CheckedTest(spec_composition, blocking_ex_without_arg_free_is_blocking_submit,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct freeable a;
    freeable_init(&a);
    future_t *f = pool_submit_blocking_ex(p, freeable_job, &a, NULL);
    cr_assert_not_null(f);
    spec_expect_value(f, &a);
    future_release(f);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&a.ran), 1);
    cr_assert_eq(atomic_load(&a.freed), 0);
    sem_destroy(&a.freed_sem);
}
