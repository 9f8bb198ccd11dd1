/*
 * spec_pool.c - pools: submit, shutdown, destroy, default pool, ownership.
 */
#include "spec_helpers.h"

/* ------------------------------------------------------------ submit -- */

CheckedTest(spec_pool, submit_succeeds_with_task_value, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    int obj = 7;
    future_t *f = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(f);
    spec_expect_value(f, &obj);
    future_release(f);
    pool_destroy(p);
}

CheckedTest(spec_pool, submit_fails_with_task_error, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    future_t *f = pool_submit(p, spec_error_task, (void *)(intptr_t)4242);
    cr_assert_not_null(f);
    spec_expect_error(f, 4242);
    future_release(f);
    pool_destroy(p);
}

static int result_starts_null_task(void *arg, void **result)
{
    (void)arg;
    return *result == NULL ? 0 : EINVAL;
}

CheckedTest(spec_pool, task_result_starts_null, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, result_starts_null_task, NULL);
    cr_assert_not_null(f);
    spec_expect_value(f, NULL);
    future_release(f);
    pool_destroy(p);
}

CheckedTest(spec_pool, create_zero_threads_means_cpu_count, .timeout = 30)
{
    pool_t *p = spec_pool(0);
    int obj = 1;
    future_t *f = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(f);
    spec_expect_value(f, &obj);
    future_release(f);
    pool_destroy(p);
}

CheckedTest(spec_pool, submit_null_pool_is_einval, .timeout = 30)
{
    atomic_int n;
    atomic_init(&n, 0);
    errno = 0;
    future_t *f = pool_submit(NULL, spec_count_task, &n);
    cr_assert_null(f);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&n), 0);
}

CheckedTest(spec_pool, submit_null_fn_is_einval, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    errno = 0;
    future_t *f = pool_submit(p, NULL, NULL);
    cr_assert_null(f);
    cr_assert_eq(errno, EINVAL);
    pool_destroy(p);
}

CheckedTest(spec_pool, submit_after_shutdown_drain_is_eshutdown, .timeout = 30)
{
    atomic_int n;
    atomic_init(&n, 0);
    pool_t *p = spec_pool(2);
    pool_shutdown(p, POOL_DRAIN);
    errno = 0;
    future_t *f = pool_submit(p, spec_count_task, &n);
    cr_assert_null(f);
    cr_assert_eq(errno, ESHUTDOWN);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&n), 0, "refused task ran");
}

CheckedTest(spec_pool, submit_after_shutdown_cancel_is_eshutdown, .timeout = 30)
{
    atomic_int n;
    atomic_init(&n, 0);
    pool_t *p = spec_pool(2);
    pool_shutdown(p, POOL_CANCEL);
    errno = 0;
    future_t *f = pool_submit(p, spec_count_task, &n);
    cr_assert_null(f);
    cr_assert_eq(errno, ESHUTDOWN);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&n), 0, "refused task ran");
}

/* ---------------------------------------------------------- shutdown -- */

#define QUEUED 16

CheckedTest(spec_pool, shutdown_drain_runs_every_queued_task, .timeout = 30)
{
    enum { NT = 2 };
    pool_t *p = spec_pool(NT);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[NT];
    spec_saturate(p, &b, run, NT);

    atomic_int n;
    atomic_init(&n, 0);
    future_t *q[QUEUED];
    for (int i = 0; i < QUEUED; i++) {
        q[i] = pool_submit(p, spec_count_task, &n);
        cr_assert_not_null(q[i]);
    }
    pool_shutdown(p, POOL_DRAIN);

    errno = 0;
    future_t *late = pool_submit(p, spec_count_task, &n);
    cr_assert_null(late);
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(atomic_load(&n), 0,
                 "queued tasks ran while the pool was busy");

    spec_gate_open(&b.gate);
    pool_destroy(p);

    cr_assert_eq(atomic_load(&n), QUEUED);
    for (int i = 0; i < QUEUED; i++)
        spec_expect_value(q[i], &n);
    for (int i = 0; i < NT; i++)
        spec_expect_value(run[i], &b);
    cr_assert_eq(atomic_load(&b.saw_cancel), 0);
    spec_release_all(q, QUEUED);
    spec_release_all(run, NT);
    spec_blocker_destroy(&b);
}

CheckedTest(spec_pool, shutdown_cancel_cancels_queued_and_finishes_running,
            .timeout = 30)
{
    enum { NT = 2 };
    pool_t *p = spec_pool(NT);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[NT];
    spec_saturate(p, &b, run, NT);

    atomic_int n;
    atomic_init(&n, 0);
    future_t *q[QUEUED];
    for (int i = 0; i < QUEUED; i++) {
        q[i] = pool_submit(p, spec_count_task, &n);
        cr_assert_not_null(q[i]);
    }
    pool_shutdown(p, POOL_CANCEL);

    errno = 0;
    future_t *late = pool_submit(p, spec_count_task, &n);
    cr_assert_null(late);
    cr_assert_eq(errno, ESHUTDOWN);

    spec_gate_open(&b.gate);
    pool_destroy(p);

    cr_assert_eq(atomic_load(&n), 0, "a cancelled queued task ran");
    for (int i = 0; i < QUEUED; i++)
        spec_expect_error(q[i], ECANCELED);
    /* running tasks finish with their own outcome */
    for (int i = 0; i < NT; i++)
        spec_expect_value(run[i], &b);
    cr_assert_eq(atomic_load(&b.ran), NT);
    spec_release_all(q, QUEUED);
    spec_release_all(run, NT);
    spec_blocker_destroy(&b);
}

CheckedTest(spec_pool, shutdown_twice_and_null_do_nothing, .timeout = 30)
{
    pool_shutdown(NULL, POOL_DRAIN);
    pool_shutdown(NULL, POOL_CANCEL);
    pool_destroy(NULL);

    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    atomic_int n;
    atomic_init(&n, 0);
    future_t *q = pool_submit(p, spec_count_task, &n);
    cr_assert_not_null(q);
    pool_shutdown(p, POOL_DRAIN);
    pool_shutdown(p, POOL_CANCEL); /* second call does nothing */
    spec_gate_open(&b.gate);
    pool_destroy(p);
    spec_expect_value(q, &n);
    cr_assert_eq(atomic_load(&n), 1);
    future_release(q);
    future_release(run[0]);
    spec_blocker_destroy(&b);
}

/* ----------------------------------------------------------- destroy -- */

struct destroyer {
    pool_t *pool;
    sem_t calling;
};

static void *destroy_thread(void *arg)
{
    struct destroyer *d = arg;
    sem_post(&d->calling);
    pool_destroy(d->pool);
    return NULL;
}

CheckedTest(spec_pool, destroy_drains_queued_tasks, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);

    atomic_int n;
    atomic_init(&n, 0);
    size_t cap = 64;
    future_t **q = calloc(cap, sizeof *q);
    cr_assert_not_null(q);
    size_t nq = 0;
    for (; nq < QUEUED; nq++) {
        q[nq] = pool_submit(p, spec_count_task, &n);
        cr_assert_not_null(q[nq]);
    }

    struct destroyer d;
    d.pool = p;
    sem_init(&d.calling, 0, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, destroy_thread, &d), 0);
    spec_sem_wait(&d.calling);

    /* Wait until pool_destroy has begun refusing tasks: the queued ones are
     * then known to be in the pool while it is being destroyed. */
    for (;;) {
        errno = 0;
        future_t *f = pool_submit(p, spec_count_task, &n);
        if (f == NULL) {
            cr_assert_eq(errno, ESHUTDOWN);
            break;
        }
        if (nq == cap) {
            cap *= 2;
            q = realloc(q, cap * sizeof *q);
            cr_assert_not_null(q);
        }
        q[nq++] = f;
        sched_yield();
    }
    cr_assert_eq(atomic_load(&n), 0);
    spec_gate_open(&b.gate);
    pthread_join(t, NULL);

    cr_assert_eq(atomic_load(&n), (int)nq, "destroy did not drain");
    for (size_t i = 0; i < nq; i++)
        spec_expect_value(q[i], &n);
    spec_release_all(q, nq);
    free(q);
    sem_destroy(&d.calling);
    future_release(run[0]);
    spec_blocker_destroy(&b);
}

CheckedTest(spec_pool, futures_stay_valid_after_destroy, .timeout = 30)
{
    pool_t *p = spec_pool(2);
    int obj = 3;
    future_t *ok = pool_submit(p, spec_value_task, &obj);
    future_t *bad = pool_submit(p, spec_error_task, (void *)(intptr_t)17);
    cr_assert_not_null(ok);
    cr_assert_not_null(bad);
    pool_destroy(p);

    cr_assert(future_is_ready(ok));
    cr_assert(future_is_ready(bad));
    spec_expect_value(ok, &obj);
    spec_expect_error(bad, 17);
    /* continuations may still be attached: they run on the default pool */
    atomic_int n;
    atomic_init(&n, 0);
    future_t *g = future_then(ok, spec_count_then, &n);
    cr_assert_not_null(g);
    spec_expect_value(g, &obj);
    cr_assert_eq(atomic_load(&n), 1);
    future_release(g);
    future_release(ok);
    future_release(bad);
}

CheckedTest(spec_pool, destroy_default_pool_does_nothing, .timeout = 30)
{
    pool_t *d = pool_default();
    cr_assert_not_null(d);
    cr_assert_eq(pool_default(), d, "pool_default is not one pool");
    pool_destroy(d);
    pool_shutdown(d, POOL_CANCEL);
    pool_destroy(pool_default());
    int obj = 5;
    future_t *f = pool_submit(pool_default(), spec_value_task, &obj);
    cr_assert_not_null(f, "default pool refused work: errno %d", errno);
    spec_expect_value(f, &obj);
    future_release(f);
}

/* ------------------------------------------------- drain + continuations -- */

static int plus_hundred_then(void *value, void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = (void *)((uintptr_t)value + 100);
    return 0;
}

CheckedTest(spec_pool, continuations_of_accepted_tasks_run_during_drain,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);

    atomic_int n;
    atomic_init(&n, 0);
    /* continuation of a running task */
    future_t *g0 = future_then(run[0], spec_count_then, &n);
    /* a queued task and a two-step chain on it */
    future_t *q = pool_submit(p, spec_value_task, (void *)(uintptr_t)1);
    cr_assert_not_null(g0);
    cr_assert_not_null(q);
    future_t *g1 = future_then(q, plus_hundred_then, &n);
    cr_assert_not_null(g1);
    future_t *g2 = future_then(g1, plus_hundred_then, &n);
    cr_assert_not_null(g2);

    pool_shutdown(p, POOL_DRAIN);
    spec_gate_open(&b.gate);
    pool_destroy(p);

    spec_expect_value(g0, &b);
    spec_expect_value(g1, (void *)(uintptr_t)101);
    spec_expect_value(g2, (void *)(uintptr_t)201);
    cr_assert_eq(atomic_load(&n), 3);
    future_release(g0);
    future_release(g1);
    future_release(g2);
    future_release(q);
    future_release(run[0]);
    spec_blocker_destroy(&b);
}

/* ---------------------------------------------------------- ownership -- */

struct ff {
    atomic_int n;
    sem_t done;
};

static int ff_task(void *arg, void **result)
{
    struct ff *s = arg;
    atomic_fetch_add(&s->n, 1);
    sem_post(&s->done);
    *result = NULL;
    return 0;
}

CheckedTest(spec_ownership, released_task_still_runs, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);

    struct ff s;
    atomic_init(&s.n, 0);
    sem_init(&s.done, 0, 0);
    for (int i = 0; i < 8; i++) {
        future_t *f = pool_submit(p, ff_task, &s);
        cr_assert_not_null(f);
        future_release(f); /* released while known to be queued */
    }
    cr_assert_eq(atomic_load(&s.n), 0);
    spec_gate_open(&b.gate);
    spec_sem_wait_n(&s.done, 8);
    cr_assert_eq(atomic_load(&s.n), 8);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&s.n), 8);
    future_release(run[0]);
    sem_destroy(&s.done);
    spec_blocker_destroy(&b);
}

static int ff_then(void *value, void *arg, void **result)
{
    (void)value;
    return ff_task(arg, result);
}

CheckedTest(spec_ownership, released_continuation_still_runs, .timeout = 30)
{
    struct ff s;
    atomic_init(&s.n, 0);
    sem_init(&s.done, 0, 0);
    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    future_t *g = future_then(pf, ff_then, &s);
    cr_assert_not_null(g);
    future_release(g);
    future_release(pf);
    cr_assert_eq(promise_resolve(pr, NULL), 0);
    spec_sem_wait(&s.done);
    cr_assert_eq(atomic_load(&s.n), 1);
    promise_release(pr);
    sem_destroy(&s.done);
}

CheckedTest(spec_ownership, retain_adds_a_reference, .timeout = 30)
{
    cr_assert_null(future_retain(NULL));
    future_release(NULL);

    int obj = 9;
    future_t *f = future_resolved(&obj);
    cr_assert_not_null(f);
    cr_assert_eq(future_retain(f), f);
    cr_assert_eq(future_retain(f), f);
    future_release(f);
    future_release(f);
    /* one reference left */
    spec_expect_value(f, &obj);
    future_release(f);

    /* a retained unsettled task future survives the submitter's release */
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    future_t *extra = future_retain(run[0]);
    cr_assert_eq(extra, run[0]);
    future_release(run[0]);
    spec_gate_open(&b.gate);
    spec_expect_value(extra, &b);
    future_release(extra);
    pool_destroy(p);
    spec_blocker_destroy(&b);
}

static int id_then(void *value, void *arg, void **result)
{
    (void)arg;
    *result = value;
    return 0;
}

static int id_catch(int error, void *arg, void **result)
{
    (void)arg;
    (void)result;
    return error;
}

CheckedTest(spec_ownership, combinators_and_chains_borrow_their_inputs,
            .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *inputs[3] = {f, f, f};

    future_t *t = future_then(f, id_then, NULL);
    future_t *c = future_catch(f, id_catch, NULL);
    future_t *all = when_all(inputs, 3);
    future_t *any = when_any(inputs, 3);
    cr_assert_not_null(t);
    cr_assert_not_null(c);
    cr_assert_not_null(all);
    cr_assert_not_null(any);
    int obj = 1;
    cr_assert_eq(promise_resolve(pr, &obj), 0);
    promise_release(pr);
    cr_assert_eq(future_wait(f, NULL), 0);
    spec_expect_value(t, &obj);
    spec_expect_value(c, &obj);
    spec_expect_value(all, NULL);
    spec_expect_value(any, (void *)(uintptr_t)0);
    future_release(t);
    future_release(c);
    future_release(all);
    future_release(any);
    /* our own reference is still intact */
    cr_assert(future_is_ready(f));
    spec_expect_value(f, &obj);
    future_release(f);
}

CheckedTest(spec_ownership, library_never_frees_values, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    int *v = malloc(sizeof *v);
    cr_assert_not_null(v);
    *v = 1234;
    future_t *f = pool_submit(p, spec_value_task, v);
    cr_assert_not_null(f);
    future_t *g = future_then(f, id_then, NULL);
    cr_assert_not_null(g);
    spec_expect_value(g, v);
    future_release(g);
    future_release(f);
    pool_destroy(p);

    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    cr_assert_eq(promise_resolve(pr, v), 0);
    promise_release(pr);
    spec_expect_value(pf, v);
    future_release(pf);

    future_t *r = future_resolved(v);
    cr_assert_not_null(r);
    future_release(r);

    /* still ours: a library free would make this a double free */
    cr_assert_eq(*v, 1234);
    *v = 1;
    free(v);
}

CheckedTest(spec_pool, cancel_shutdown_moves_continuations_to_default,
            .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);
    atomic_int n;
    atomic_init(&n, 0);
    future_t *g = future_then(run[0], spec_count_then, &n);
    cr_assert_not_null(g);
    pool_shutdown(p, POOL_CANCEL);
    spec_gate_open(&b.gate);
    pool_destroy(p);
    spec_expect_value(g, &b);
    cr_assert_eq(atomic_load(&n), 1);
    future_release(g);
    future_release(run[0]);
    spec_blocker_destroy(&b);
}

struct self_destroy {
    pool_t *pool;
    sem_t started;
    spec_gate_t go;
    int submit_errno;
};

static int self_destroy_task(void *arg, void **result)
{
    struct self_destroy *s = arg;
    sem_post(&s->started);
    spec_gate_wait(&s->go);
    pool_destroy(s->pool); /* must return: it cannot wait for itself */
    errno = 0;
    future_t *f = pool_submit(s->pool, spec_value_task, NULL);
    s->submit_errno = f ? 0 : errno;
    future_release(f);
    *result = s;
    return 0;
}

CheckedTest(spec_pool, destroy_from_own_task_drains_and_returns, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct self_destroy s;
    s.pool = p;
    s.submit_errno = -1;
    sem_init(&s.started, 0, 0);
    spec_gate_init(&s.go);
    atomic_int n;
    atomic_init(&n, 0);
    future_t *t = pool_submit(p, self_destroy_task, &s);
    cr_assert_not_null(t);
    spec_sem_wait(&s.started);
    future_t *q[4];
    for (int i = 0; i < 4; i++) {
        q[i] = pool_submit(p, spec_count_task, &n); /* queued behind it */
        cr_assert_not_null(q[i]);
    }
    /* from here on the test no longer touches the pool: it ends by itself
     * once its last task has finished, and must not be destroyed again */
    spec_gate_open(&s.go);
    spec_expect_value(t, &s);
    cr_assert_eq(s.submit_errno, ESHUTDOWN);
    for (int i = 0; i < 4; i++)
        spec_expect_value(q[i], &n);
    cr_assert_eq(atomic_load(&n), 4);
    spec_release_all(q, 4);
    future_release(t);
    sem_destroy(&s.started);
    spec_gate_destroy(&s.go);
}
