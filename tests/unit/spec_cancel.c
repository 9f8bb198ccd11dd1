/*
 * spec_cancel.c - future_cancel and task_cancelled.
 */
#include "spec_helpers.h"

static _Thread_local bool tls_in_call;

CheckedTest(spec_cancel, queued_task_never_runs, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);

    atomic_int n;
    atomic_init(&n, 0);
    future_t *f = pool_submit(p, spec_count_task, &n);
    future_t *other = pool_submit(p, spec_count_task, &n);
    cr_assert_not_null(f);
    cr_assert_not_null(other);
    cr_assert(future_cancel(f));
    /* settled now, while the pool is still busy */
    spec_expect_error(f, ECANCELED);
    cr_assert_not(future_cancel(f), "second cancel reported success");
    spec_gate_open(&b.gate);
    spec_expect_value(other, &n);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&n), 1, "the cancelled task ran");
    spec_expect_error(f, ECANCELED);
    future_release(f);
    future_release(other);
    future_release(run[0]);
    spec_blocker_destroy(&b);
}

struct runner {
    sem_t started;
    spec_gate_t gate;
    int ret;         /* what the task returns */
    bool saw_before; /* task_cancelled() when it started */
    bool saw_after;  /* task_cancelled() after the gate */
};

static int runner_task(void *arg, void **result)
{
    struct runner *r = arg;
    r->saw_before = task_cancelled();
    sem_post(&r->started);
    spec_gate_wait(&r->gate);
    r->saw_after = task_cancelled();
    *result = r;
    return r->ret;
}

static void running_case(int ret)
{
    pool_t *p = spec_pool(1);
    struct runner r;
    sem_init(&r.started, 0, 0);
    spec_gate_init(&r.gate);
    r.ret = ret;
    r.saw_before = r.saw_after = false;
    future_t *f = pool_submit(p, runner_task, &r);
    cr_assert_not_null(f);
    spec_sem_wait(&r.started);
    cr_assert_not(future_cancel(f), "cancel of a running task returned true");
    cr_assert_not(future_is_ready(f));
    spec_gate_open(&r.gate);
    if (ret == 0)
        spec_expect_value(f, &r);
    else
        spec_expect_error(f, ret);
    cr_assert_not(r.saw_before);
    cr_assert(r.saw_after, "task_cancelled() stayed false");
    future_release(f);
    pool_destroy(p);
    sem_destroy(&r.started);
    spec_gate_destroy(&r.gate);
}

CheckedTest(spec_cancel, running_task_decides_success, .timeout = 30)
{
    running_case(0);
}

CheckedTest(spec_cancel, running_task_decides_its_own_error, .timeout = 30)
{
    running_case(99);
}

CheckedTest(spec_cancel, running_task_may_return_ecanceled, .timeout = 30)
{
    running_case(ECANCELED);
}

struct spinner {
    sem_t started;
    atomic_long spins;
};

/* Polls task_cancelled() until it turns true. */
static int spin_task(void *arg, void **result)
{
    struct spinner *s = arg;
    sem_post(&s->started);
    while (!task_cancelled()) {
        atomic_fetch_add(&s->spins, 1);
        sched_yield();
    }
    *result = s;
    return ECANCELED;
}

CheckedTest(spec_cancel, task_cancelled_turns_true_while_running, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    struct spinner s;
    sem_init(&s.started, 0, 0);
    atomic_init(&s.spins, 0);
    future_t *f = pool_submit(p, spin_task, &s);
    cr_assert_not_null(f);
    spec_sem_wait(&s.started);
    cr_assert_not(future_cancel(f));
    spec_expect_error(f, ECANCELED);
    future_release(f);
    pool_destroy(p);
    sem_destroy(&s.started);
}

static int cancelled_flag_task(void *arg, void **result)
{
    (void)arg;
    *result = (void *)(uintptr_t)(task_cancelled() ? 1 : 2);
    return 0;
}

static int cancelled_flag_then(void *value, void *arg, void **result)
{
    (void)value;
    return cancelled_flag_task(arg, result);
}

CheckedTest(spec_cancel, task_cancelled_false_when_not_asked, .timeout = 30)
{
    cr_assert_not(task_cancelled(), "true outside any task");
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, cancelled_flag_task, NULL);
    cr_assert_not_null(f);
    spec_expect_value(f, (void *)(uintptr_t)2);
    future_t *g = future_then(f, cancelled_flag_then, NULL);
    cr_assert_not_null(g);
    spec_expect_value(g, (void *)(uintptr_t)2);
    future_release(f);
    future_release(g);
    pool_destroy(p);
    cr_assert_not(task_cancelled());
}

CheckedTest(spec_cancel, settled_future_returns_false, .timeout = 30)
{
    int obj = 0;
    future_t *r = future_resolved(&obj);
    future_t *e = future_failed(EIO);
    cr_assert_not_null(r);
    cr_assert_not_null(e);
    cr_assert_not(future_cancel(r));
    cr_assert_not(future_cancel(e));
    spec_expect_value(r, &obj);
    spec_expect_error(e, EIO);

    pool_t *p = spec_pool(1);
    future_t *t = pool_submit(p, spec_value_task, &obj);
    cr_assert_not_null(t);
    cr_assert_eq(future_wait(t, NULL), 0);
    cr_assert_not(future_cancel(t));
    spec_expect_value(t, &obj);

    promise_t *pr = spec_promise();
    future_t *pf = spec_pfuture(pr);
    cr_assert_eq(promise_reject(pr, EPERM), 0);
    cr_assert_not(future_cancel(pf));
    spec_expect_error(pf, EPERM);

    cr_assert_not(future_cancel(NULL));

    future_release(r);
    future_release(e);
    future_release(t);
    future_release(pf);
    promise_release(pr);
    pool_destroy(p);
}

CheckedTest(spec_cancel, waiting_continuation_settles_now, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);

    atomic_int nt, nc, ndep;
    atomic_init(&nt, 0);
    atomic_init(&nc, 0);
    atomic_init(&ndep, 0);
    /* continuations of the running task (they wait for it) */
    future_t *gt = future_then(run[0], spec_count_then, &nt);
    future_t *gc = future_catch(run[0], spec_count_catch, &nc);
    cr_assert_not_null(gt);
    cr_assert_not_null(gc);
    future_t *dep = future_then(gt, spec_count_then, &ndep);
    cr_assert_not_null(dep);

    cr_assert(future_cancel(gt));
    cr_assert(future_is_ready(gt), "cancelled continuation not settled now");
    spec_expect_error(gt, ECANCELED);
    cr_assert(future_cancel(gc));
    cr_assert(future_is_ready(gc));
    spec_expect_error(gc, ECANCELED);
    cr_assert_not(future_cancel(gt));

    spec_gate_open(&b.gate);
    /* the dependent sees an ordinary ECANCELED failure */
    spec_expect_error(dep, ECANCELED);
    spec_expect_value(run[0], &b); /* predecessor unaffected */
    cr_assert_eq(atomic_load(&b.saw_cancel), 0);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&nt), 0, "cancelled then callback ran");
    cr_assert_eq(atomic_load(&nc), 0, "cancelled catch callback ran");
    cr_assert_eq(atomic_load(&ndep), 0);
    future_release(gt);
    future_release(gc);
    future_release(dep);
    future_release(run[0]);
    spec_blocker_destroy(&b);
}

static int recover_catch(int error, void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = (void *)(uintptr_t)error;
    return 0;
}

CheckedTest(spec_cancel, reaches_dependents_as_ecanceled_failure, .timeout = 30)
{
    pool_t *p = spec_pool(1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *run[1];
    spec_saturate(p, &b, run, 1);

    atomic_int n, nt, nc;
    atomic_init(&n, 0);
    atomic_init(&nt, 0);
    atomic_init(&nc, 0);
    future_t *f = pool_submit(p, spec_count_task, &n);
    cr_assert_not_null(f);
    future_t *t = future_then(f, spec_count_then, &nt);
    future_t *c = future_catch(f, recover_catch, &nc);
    future_t *ok = future_resolved(NULL);
    cr_assert_not_null(t);
    cr_assert_not_null(c);
    cr_assert_not_null(ok);
    future_t *in[2] = {ok, f};
    future_t *all = when_all(in, 2);
    future_t *any = when_any(&f, 1);
    cr_assert_not_null(all);
    cr_assert_not_null(any);

    cr_assert(future_cancel(f));
    /* dependents may run on the (busy) pool that accepted f: free it */
    spec_gate_open(&b.gate);
    spec_expect_error(t, ECANCELED);
    spec_expect_value(c, (void *)(uintptr_t)ECANCELED);
    spec_expect_error(all, ECANCELED);
    spec_expect_value(any, (void *)(uintptr_t)0);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&n), 0);
    cr_assert_eq(atomic_load(&nt), 0);
    cr_assert_eq(atomic_load(&nc), 1);
    future_t *fs[] = {f, t, c, ok, all, any, run[0]};
    spec_release_all(fs, sizeof fs / sizeof fs[0]);
    spec_blocker_destroy(&b);
}

CheckedTest(spec_cancel, promise_future_cancel_wins_over_later_settle,
            .timeout = 30)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert(future_cancel(f));
    spec_expect_error(f, ECANCELED);
    cr_assert_eq(promise_resolve(pr, NULL), EALREADY);
    cr_assert_eq(promise_reject(pr, EIO), EALREADY);
    spec_expect_error(f, ECANCELED);
    future_t *f2 = spec_pfuture(pr);
    spec_expect_error(f2, ECANCELED);
    future_release(f2);
    future_release(f);
    promise_release(pr);
}

struct in_call_probe {
    atomic_int ran;
    atomic_int inside;
};

static int in_call_catch(int error, void *arg, void **result)
{
    struct in_call_probe *p = arg;
    if (tls_in_call)
        atomic_fetch_add(&p->inside, 1);
    atomic_fetch_add(&p->ran, 1);
    *result = NULL;
    return error;
}

struct cancel_inside {
    future_t *target;
    bool rc;
};

static int cancel_inside_task(void *arg, void **result)
{
    struct cancel_inside *c = arg;
    tls_in_call = true;
    c->rc = future_cancel(c->target);
    tls_in_call = false;
    *result = NULL;
    return 0;
}

CheckedTest(spec_cancel, callbacks_never_run_inside_cancel, .timeout = 30)
{
    /* from the test thread */
    struct in_call_probe pr1 = {0};
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *g = future_catch(f, in_call_catch, &pr1);
    cr_assert_not_null(g);
    tls_in_call = true;
    bool rc = future_cancel(f);
    tls_in_call = false;
    cr_assert(rc);
    spec_expect_error(g, ECANCELED);
    cr_assert_eq(atomic_load(&pr1.ran), 1);
    cr_assert_eq(atomic_load(&pr1.inside), 0, "callback ran inside cancel");

    /* from inside a pool task: a continuation waiting on a promise */
    pool_t *p = spec_pool(1);
    promise_t *pr2 = spec_promise();
    future_t *pf2 = spec_pfuture(pr2);
    atomic_int nt;
    atomic_init(&nt, 0);
    future_t *waiting = future_then(pf2, spec_count_then, &nt);
    cr_assert_not_null(waiting);
    struct in_call_probe pb2 = {0};
    future_t *g2 = future_catch(waiting, in_call_catch, &pb2);
    cr_assert_not_null(g2);
    struct cancel_inside ci = {waiting, false};
    future_t *canceller = pool_submit(p, cancel_inside_task, &ci);
    cr_assert_not_null(canceller);
    cr_assert_eq(future_wait(canceller, NULL), 0);
    cr_assert(ci.rc, "cancel of a waiting continuation returned false");
    spec_expect_error(waiting, ECANCELED);
    spec_expect_error(g2, ECANCELED);
    cr_assert_eq(atomic_load(&pb2.ran), 1);
    cr_assert_eq(atomic_load(&pb2.inside), 0, "callback ran inside cancel");
    cr_assert_eq(promise_resolve(pr2, NULL), 0);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&nt), 0);
    future_t *fs[] = {f, g, pf2, waiting, g2, canceller};
    spec_release_all(fs, sizeof fs / sizeof fs[0]);
    promise_release(pr);
    promise_release(pr2);
}

struct running_cb {
    sem_t started;
    spec_gate_t gate;
    bool saw_before;
    bool saw_after;
};

static int running_then(void *value, void *arg, void **result)
{
    struct running_cb *r = arg;
    r->saw_before = task_cancelled();
    sem_post(&r->started);
    spec_gate_wait(&r->gate);
    r->saw_after = task_cancelled();
    *result = value;
    return 0;
}

CheckedTest(spec_cancel, running_continuation_decides_its_outcome,
            .timeout = 30)
{
    struct running_cb r;
    sem_init(&r.started, 0, 0);
    spec_gate_init(&r.gate);
    r.saw_before = r.saw_after = false;
    int obj = 0;
    future_t *f = future_resolved(&obj);
    cr_assert_not_null(f);
    future_t *g = future_then(f, running_then, &r);
    cr_assert_not_null(g);
    spec_sem_wait(&r.started);
    cr_assert_not(future_cancel(g), "cancel of a running callback was true");
    spec_gate_open(&r.gate);
    spec_expect_value(g, &obj);
    cr_assert_not(r.saw_before);
    cr_assert(r.saw_after, "task_cancelled() stayed false in the callback");
    future_release(g);
    future_release(f);
    sem_destroy(&r.started);
    spec_gate_destroy(&r.gate);
}
