/*
 * spec_wait.c - outcomes, future_wait / future_wait_for / future_is_ready,
 * waiting inside pool tasks, future_resolved / future_failed.
 */
#include "spec_helpers.h"

/* ----------------------------------------------------------- outcome -- */

CheckedTest(spec_wait, repeated_waits_return_the_same_outcome, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    int obj = 0;
    future_t *ok = pool_submit(p, spec_value_task, &obj);
    future_t *bad = pool_submit(p, spec_error_task, (void *)(intptr_t)EIO);
    cr_assert_not_null(ok);
    cr_assert_not_null(bad);
    for (int i = 0; i < 5; i++) {
        spec_expect_value(ok, &obj);
        spec_expect_error(bad, EIO);
        cr_assert_eq(future_wait(ok, NULL), 0);
    }
    pool_destroy(p);
    spec_expect_value(ok, &obj);
    spec_expect_error(bad, EIO);
    future_release(ok);
    future_release(bad);
}

enum { WAITERS = 8 };

struct waiter_arg {
    future_t *f;
    sem_t *ready;
    int rc;
    void *value;
};

static void *waiter_thread(void *arg)
{
    struct waiter_arg *w = arg;
    sem_post(w->ready);
    w->value = NULL;
    w->rc = future_wait(w->f, &w->value);
    /* a second wait must agree */
    void *again = NULL;
    int rc2 = future_wait(w->f, &again);
    if (rc2 != w->rc || again != w->value)
        w->rc = -1;
    return NULL;
}

static void many_waiters(bool succeed)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    sem_t ready;
    sem_init(&ready, 0, 0);
    pthread_t t[WAITERS];
    struct waiter_arg a[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        a[i] = (struct waiter_arg){f, &ready, -2, NULL};
        cr_assert_eq(pthread_create(&t[i], NULL, waiter_thread, &a[i]), 0);
    }
    spec_sem_wait_n(&ready, WAITERS);
    int obj = 0;
    if (succeed)
        cr_assert_eq(promise_resolve(pr, &obj), 0);
    else
        cr_assert_eq(promise_reject(pr, ENOENT), 0);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(a[i].rc, succeed ? 0 : ENOENT, "waiter %d got %d", i,
                     a[i].rc);
        if (succeed)
            cr_assert_eq(a[i].value, &obj);
    }
    future_release(f);
    promise_release(pr);
    sem_destroy(&ready);
}

CheckedTest(spec_wait, many_threads_see_the_same_success, .timeout = 30)
{
    many_waiters(true);
}

CheckedTest(spec_wait, many_threads_see_the_same_failure, .timeout = 30)
{
    many_waiters(false);
}

CheckedTest(spec_wait, null_future_is_einval)
{
    void *v = NULL;
    cr_assert_eq(future_wait(NULL, &v), EINVAL);
    cr_assert_eq(future_wait(NULL, NULL), EINVAL);
    cr_assert_not(future_wait_for(NULL, 0));
    cr_assert_not(future_wait_for(NULL, SPEC_MS));
    cr_assert_not(future_is_ready(NULL));
}

CheckedTest(spec_wait, wait_for_and_is_ready_track_settlement, .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_not(future_is_ready(f));
    cr_assert_not(future_wait_for(f, 0));
    cr_assert_not(future_wait_for(f, 2 * SPEC_MS));
    cr_assert_not(future_is_ready(f));
    int obj = 0;
    cr_assert_eq(promise_resolve(pr, &obj), 0);
    cr_assert(future_wait_for(f, 10000 * SPEC_MS));
    cr_assert(future_is_ready(f));
    cr_assert(future_wait_for(f, 0));
    spec_expect_value(f, &obj);
    future_release(f);
    promise_release(pr);
}

/* ------------------------------------------------ resolved and failed -- */

CheckedTest(spec_wait, resolved_and_failed_are_already_settled)
{
    int obj = 0;
    future_t *r = future_resolved(&obj);
    future_t *n = future_resolved(NULL);
    future_t *e = future_failed(EPERM);
    cr_assert_not_null(r);
    cr_assert_not_null(n);
    cr_assert_not_null(e);
    cr_assert(future_is_ready(r));
    cr_assert(future_is_ready(e));
    cr_assert(future_wait_for(r, 0));
    spec_expect_value(r, &obj);
    spec_expect_value(n, NULL);
    spec_expect_error(e, EPERM);
    future_release(r);
    future_release(n);
    future_release(e);
}

CheckedTest(spec_wait, failed_with_non_positive_error_is_einval)
{
    errno = 0;
    cr_assert_null(future_failed(0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_failed(-5));
    cr_assert_eq(errno, EINVAL);
}

/* --------------------------------------------------- waiting in tasks -- */

struct nest {
    pool_t *pool;
    int depth;
};

/* Submits a task behind itself on the same pool and waits for it. */
static int nested_task(void *arg, void **result)
{
    struct nest *n = arg;
    if (n->depth == 0) {
        *result = (void *)(uintptr_t)1000;
        return 0;
    }
    struct nest *child = malloc(sizeof *child);
    if (!child)
        return ENOMEM;
    child->pool = n->pool;
    child->depth = n->depth - 1;
    future_t *f = pool_submit(n->pool, nested_task, child);
    if (!f) {
        free(child);
        return errno;
    }
    void *v = NULL;
    int rc = future_wait(f, &v);
    future_release(f);
    free(child);
    if (rc)
        return rc;
    *result = (void *)((uintptr_t)v + 1);
    return 0;
}

CheckedTest(spec_wait, inside_task_single_thread, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct nest n = {p, 1};
    future_t *f = pool_submit(p, nested_task, &n);
    cr_assert_not_null(f);
    spec_expect_value(f, (void *)(uintptr_t)1001);
    future_release(f);
    pool_destroy(p);
}

CheckedTest(spec_wait, inside_task_nested_single_thread, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct nest n = {p, 6};
    future_t *f = pool_submit(p, nested_task, &n);
    cr_assert_not_null(f);
    spec_expect_value(f, (void *)(uintptr_t)1006);
    future_release(f);
    pool_destroy(p);
}

struct behind {
    sem_t started;
    spec_gate_t submitted;
    future_t *target;
};

/* Waits for a future that the test submits behind it, once it runs. */
static int wait_behind_task(void *arg, void **result)
{
    struct behind *b = arg;
    sem_post(&b->started);
    spec_gate_wait(&b->submitted);
    return future_wait(b->target, result);
}

CheckedTest(spec_wait, inside_task_waits_for_task_queued_behind_it,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct behind b;
    sem_init(&b.started, 0, 0);
    spec_gate_init(&b.submitted);
    future_t *a = pool_submit(p, wait_behind_task, &b);
    cr_assert_not_null(a);
    spec_sem_wait(&b.started);
    /* the only thread is busy: this one is queued behind it */
    int obj = 0;
    b.target = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(b.target);
    spec_gate_open(&b.submitted);
    spec_expect_value(a, &obj);
    spec_expect_value(b.target, &obj);
    future_release(a);
    future_release(b.target);
    pool_destroy(p);
    sem_destroy(&b.started);
    spec_gate_destroy(&b.submitted);
}

/* All threads of a pool wait for a queued task at once. */
CheckedTest(spec_wait, inside_task_every_thread_waits, .timeout = 30)
{
    enum { NT = 3 };
    pool_t *p = spec_pool(NT);
    struct behind b[NT];
    future_t *a[NT];
    for (int i = 0; i < NT; i++) {
        sem_init(&b[i].started, 0, 0);
        spec_gate_init(&b[i].submitted);
        a[i] = pool_submit(p, wait_behind_task, &b[i]);
        cr_assert_not_null(a[i]);
    }
    for (int i = 0; i < NT; i++)
        spec_sem_wait(&b[i].started);
    int obj = 0;
    future_t *target = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(target);
    for (int i = 0; i < NT; i++) {
        b[i].target = target;
        spec_gate_open(&b[i].submitted);
    }
    for (int i = 0; i < NT; i++)
        spec_expect_value(a[i], &obj);
    spec_release_all(a, NT);
    future_release(target);
    pool_destroy(p);
    for (int i = 0; i < NT; i++) {
        sem_destroy(&b[i].started);
        spec_gate_destroy(&b[i].submitted);
    }
}

struct selfwait {
    spec_gate_t have_self;
    future_t *self;
    int wait_rc;
    bool wait_for_rc;
};

static int self_wait_task(void *arg, void **result)
{
    struct selfwait *s = arg;
    spec_gate_wait(&s->have_self);
    s->wait_for_rc = future_wait_for(s->self, 0);
    s->wait_rc = future_wait(s->self, NULL);
    *result = s;
    return 0;
}

CheckedTest(spec_wait, task_waiting_for_itself_is_edeadlk, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct selfwait s;
    spec_gate_init(&s.have_self);
    s.wait_rc = -1;
    s.wait_for_rc = true;
    s.self = pool_submit(p, self_wait_task, &s);
    cr_assert_not_null(s.self);
    spec_gate_open(&s.have_self);
    spec_expect_value(s.self, &s);
    cr_assert_eq(s.wait_rc, EDEADLK);
    cr_assert_not(s.wait_for_rc);
    future_release(s.self);
    pool_destroy(p);
    spec_gate_destroy(&s.have_self);
}

/* A continuation callback on a one-thread pool waits for a task it queues
 * behind itself on that pool. */
static int wait_in_callback_then(void *value, void *arg, void **result)
{
    pool_t *p = arg;
    future_t *f = pool_submit(p, spec_value_task, value);
    if (!f)
        return errno;
    int rc = future_wait(f, result);
    future_release(f);
    return rc;
}

CheckedTest(spec_wait, inside_continuation_single_thread, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    int obj = 0;
    future_t *f = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(f);
    future_t *g = future_then(f, wait_in_callback_then, p);
    cr_assert_not_null(g);
    spec_expect_value(g, &obj);
    future_release(g);
    future_release(f);
    pool_destroy(p);
}

struct crowd {
    sem_t started;
    future_t *gate_future;
};

static int crowd_task(void *arg, void **result)
{
    struct crowd *c = arg;
    sem_post(&c->started);
    return future_wait(c->gate_future, result);
}

CheckedTest(spec_wait, more_waiting_tasks_than_threads, .timeout = 30)
{
    enum { NT = 2, K = 12 };
    pool_t *p = spec_pool(NT);
    promise_t *pr = spec_promise();
    struct crowd c;
    sem_init(&c.started, 0, 0);
    c.gate_future = spec_pfuture(pr);
    future_t *f[K];
    for (int i = 0; i < K; i++) {
        f[i] = pool_submit(p, crowd_task, &c);
        cr_assert_not_null(f[i]);
    }
    /* every one of them starts although each one blocks its thread */
    spec_sem_wait_n(&c.started, K);
    /* and the pool still runs new work */
    int obj = 0;
    future_t *extra = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(extra);
    spec_expect_value(extra, &obj);
    cr_assert_eq(promise_resolve(pr, &c), 0);
    for (int i = 0; i < K; i++)
        spec_expect_value(f[i], &c);
    spec_release_all(f, K);
    future_release(extra);
    future_release(c.gate_future);
    promise_release(pr);
    pool_destroy(p);
    sem_destroy(&c.started);
}
