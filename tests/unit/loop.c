/*
 * Tests of lib/loop.c: event loops, loop_submit(), future_then_on() and
 * future_catch_on().
 *
 * A loop's callbacks run one at a time on the thread inside loop_run(), so
 * the records they keep need no locks; the test reads them after loop_run()
 * returned. When a loop must be known to be running, one of its callbacks
 * posts a semaphore and waits at a gate (helpers.h).
 */
#include "helpers.h"

#include <errno.h>
#include <time.h>

#define MS UINT64_C(1000000)

/* loop_run() on a thread of its own. */
struct runner {
    loop_t *loop;
    pthread_t thread;
    int rc;
};

static void *run_loop(void *arg)
{
    struct runner *r = arg;
    r->rc = loop_run(r->loop);
    return NULL;
}

static void start_runner(struct runner *r, loop_t *loop)
{
    r->loop = loop;
    r->rc = -1;
    cr_assert_eq(pthread_create(&r->thread, NULL, run_loop, r), 0);
}

static int join_runner(struct runner *r)
{
    cr_assert_eq(pthread_join(r->thread, NULL), 0);
    return r->rc;
}

/* ------------------------------------------------------------- threads -- */

enum { NWHERE = 32 };

/* Where each callback ran: one slot per callback. */
struct where {
    pthread_t thread[NWHERE];
    bool ran[NWHERE];
};

struct spot {
    struct where *where;
    int index;
};

static void mark(struct spot *s)
{
    s->where->thread[s->index] = pthread_self();
    s->where->ran[s->index] = true;
}

static int mark_task(void *arg, void **result)
{
    mark(arg);
    *result = arg;
    return 0;
}

static int mark_then(void *value, void *arg, void **result)
{
    mark(arg);
    *result = value;
    return 0;
}

static int mark_catch(int error, void *arg, void **result)
{
    mark(arg);
    *result = U2P(error);
    return 0;
}

static int resolve_task(void *arg, void **result)
{
    *result = NULL;
    return promise_resolve(arg, U2P(77));
}

CheckedTest(loop, every_callback_runs_on_the_thread_in_loop_run, .timeout = 60)
{
    static struct where where;
    static struct spot spots[NWHERE];
    future_t *mine[NWHERE] = {0}, *inputs[NWHERE] = {0};
    int n = 0;
    for (int i = 0; i < NWHERE; i++)
        spots[i] = (struct spot){&where, i};
    loop_t *loop = loop_create();
    cr_assert_not_null(loop);
    pool_t *pool = pool_create(2);
    promise_t *p = promise_create();

    for (int i = 0; i < 4; i++, n++) /* loop tasks */
        mine[n] = loop_submit(loop, mark_task, &spots[n]);
    for (int i = 0; i < 4; i++, n++) { /* continuations of pool tasks */
        inputs[n] = pool_submit(pool, value_task, U2P(i));
        mine[n] = future_then_on(inputs[n], loop, mark_then, &spots[n]);
    }
    inputs[n] = pool_submit_blocking(pool, value_task, NULL); /* of a job */
    mine[n] = future_then_on(inputs[n], loop, mark_then, &spots[n]);
    n++;
    inputs[n] = pool_submit(pool, fail_task, U2P(EIO)); /* of a failure */
    mine[n] = future_catch_on(inputs[n], loop, mark_catch, &spots[n]);
    n++;
    inputs[n] = promise_future(p); /* resolved by a pool thread */
    mine[n] = future_then_on(inputs[n], loop, mark_then, &spots[n]);
    n++;
    for (int i = 0; i < 3; i++, n++) { /* of delays */
        inputs[n] = future_delay((uint64_t)(5 + 10 * i) * MS);
        mine[n] = future_then_on(inputs[n], loop, mark_then, &spots[n]);
    }
    future_t *resolver = pool_submit(pool, resolve_task, p);

    struct runner r;
    start_runner(&r, loop);
    cr_assert_eq(join_runner(&r), 0);
    for (int i = 0; i < n; i++) {
        cr_assert_not_null(mine[i]);
        cr_assert(future_is_ready(mine[i]), "callback %d not run", i);
        cr_assert_eq(future_wait(mine[i], NULL), 0, "callback %d", i);
        cr_assert(where.ran[i], "callback %d did not run", i);
        cr_assert(pthread_equal(where.thread[i], r.thread),
                  "callback %d ran off the loop's thread", i);
    }
    cr_assert_eq(future_wait(resolver, NULL), 0);
    for (int i = 0; i < n; i++) {
        future_release(mine[i]);
        future_release(inputs[i]);
    }
    future_release(resolver);
    promise_release(p);
    pool_destroy(pool);
    loop_destroy(loop);
    expect_no_leaks();
}

/* --------------------------------------------------------------- order -- */

struct seq {
    int at[256];
    int n;
};

struct entry {
    struct seq *seq;
    int index;
};

static int append(void *arg, void **result)
{
    struct entry *e = arg;
    e->seq->at[e->seq->n++] = e->index;
    *result = U2P(e->index);
    return 0;
}

CheckedTest(loop, ready_callbacks_run_in_fifo_order, .timeout = 60)
{
    enum { N = 100 };
    static struct seq seq;
    static struct entry entries[N];
    future_t *fs[N];
    loop_t *loop = loop_create();
    for (int i = 0; i < N; i++) {
        entries[i] = (struct entry){&seq, i};
        fs[i] = loop_submit(loop, append, &entries[i]);
        cr_assert_not_null(fs[i]);
    }
    cr_assert_eq(seq.n, 0, "nothing runs before loop_run");
    cr_assert_not(future_is_ready(fs[0]));
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(seq.n, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(seq.at[i], i, "ran %d-th: task %d", i, seq.at[i]);
        void *v;
        cr_assert_eq(future_wait(fs[i], &v), 0);
        cr_assert_eq(v, U2P(i));
        future_release(fs[i]);
    }
    loop_destroy(loop);
    expect_no_leaks();
}

CheckedTest(loop, an_empty_loop_returns_at_once, .timeout = 60)
{
    loop_t *loop = loop_create();
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(loop_run(loop), 0, "and again");
    loop_destroy(loop);
    expect_no_leaks();
}

/* ---------------------------------------------- running until all done -- */

struct late {
    struct gate gate; /* holds the pool task */
    atomic_int done;  /* continuations run */
    loop_t *loop;
    future_t *resubmitted;
};

/* The pool task: held at the gate, then some work after it. */
static int slow_task(void *arg, void **result)
{
    struct late *l = arg;
    gate_pass(&l->gate);
    work_for_ns(20 * MS);
    *result = U2P(5);
    return 0;
}

static int count_done(void *value, void *arg, void **result)
{
    struct late *l = arg;
    atomic_fetch_add(&l->done, 1);
    *result = value;
    return 0;
}

static int count_task_done(void *arg, void **result)
{
    return count_done(NULL, arg, result);
}

/* The loop's first callback: lets the pool task go, submits another. */
static int release_the_task(void *arg, void **result)
{
    struct late *l = arg;
    gate_await_started(&l->gate, 1);
    gate_open(&l->gate);
    l->resubmitted = loop_submit(l->loop, count_task_done, l);
    *result = NULL;
    return 0;
}

static int plus_one(void *value, void *arg, void **result)
{
    (void)arg;
    *result = U2P(P2U(value) + 1);
    return 0;
}

CheckedTest(loop, run_waits_for_continuations_whose_input_is_still_running,
            .timeout = 60)
{
    struct late l = {.loop = loop_create()};
    gate_init(&l.gate);
    pool_t *pool = pool_create(1);
    future_t *task = pool_submit(pool, slow_task, &l);
    future_t *cont = future_then_on(task, l.loop, count_done, &l);
    /* A chain: a delay, then a step on the default pool, then the loop. */
    future_t *d = future_delay(30 * MS);
    future_t *step = future_then(d, plus_one, NULL);
    future_t *last = future_then_on(step, l.loop, count_done, &l);
    future_t *first = loop_submit(l.loop, release_the_task, &l);
    cr_assert_eq(loop_run(l.loop), 0);
    cr_assert_eq(atomic_load(&l.done), 3, "returned with work pending");
    cr_assert(future_is_ready(cont));
    cr_assert(future_is_ready(last));
    cr_assert(future_is_ready(l.resubmitted));
    void *v;
    cr_assert_eq(future_wait(cont, &v), 0);
    cr_assert_eq(v, U2P(5));
    cr_assert_eq(future_wait(last, &v), 0);
    cr_assert_eq(v, U2P(1));
    cr_assert_eq(future_wait(first, NULL), 0);
    future_release(l.resubmitted);
    future_release(first);
    future_release(last);
    future_release(step);
    future_release(d);
    future_release(cont);
    future_release(task);
    pool_destroy(pool);
    loop_destroy(l.loop);
    gate_destroy(&l.gate);
    expect_no_leaks();
}

/* ------------------------------------------------------------ stopping -- */

struct stopper {
    struct seq seq;
    loop_t *loop;
    int stop_at;
};

struct stop_entry {
    struct stopper *s;
    int index;
};

static int append_or_stop(void *arg, void **result)
{
    struct stop_entry *e = arg;
    e->s->seq.at[e->s->seq.n++] = e->index;
    if (e->index == e->s->stop_at)
        loop_stop(e->s->loop);
    *result = NULL;
    return 0;
}

CheckedTest(loop, stop_from_a_callback_returns_early_and_run_resumes,
            .timeout = 60)
{
    enum { N = 10 };
    static struct stopper s;
    static struct stop_entry entries[N];
    s.loop = loop_create();
    s.stop_at = 3;
    future_t *fs[N];
    for (int i = 0; i < N; i++) {
        entries[i] = (struct stop_entry){&s, i};
        fs[i] = loop_submit(s.loop, append_or_stop, &entries[i]);
    }
    cr_assert_eq(loop_run(s.loop), 0);
    cr_assert_eq(s.seq.n, 4, "stopped after the callback that asked");
    for (int i = 4; i < N; i++)
        cr_assert_not(future_is_ready(fs[i]), "task %d ran", i);
    s.stop_at = -1;
    cr_assert_eq(loop_run(s.loop), 0);
    cr_assert_eq(s.seq.n, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(s.seq.at[i], i);
        cr_assert_eq(future_wait(fs[i], NULL), 0);
        future_release(fs[i]);
    }
    loop_destroy(s.loop);
    expect_no_leaks();
}

CheckedTest(loop, stop_from_another_thread_ends_a_loop_waiting_for_input,
            .timeout = 60)
{
    struct gate g;
    gate_init(&g);
    gate_open(&g); /* only its semaphore is used: the loop runs */
    loop_t *loop = loop_create();
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    future_t *cont = future_then_on(pf, loop, plus_one, NULL);
    future_t *ran = loop_submit(loop, gated_task, &g);
    struct runner r;
    start_runner(&r, loop);
    gate_await_started(&g, 1);
    loop_stop(loop); /* it waits for the promise: this ends it */
    cr_assert_eq(join_runner(&r), 0);
    cr_assert_eq(future_wait(ran, NULL), 0);
    cr_assert_not(future_is_ready(cont));
    cr_assert_eq(promise_resolve(p, U2P(1)), 0);
    cr_assert_eq(loop_run(loop), 0);
    void *v;
    cr_assert_eq(future_wait(cont, &v), 0);
    cr_assert_eq(v, U2P(2));
    future_release(ran);
    future_release(cont);
    future_release(pf);
    promise_release(p);
    loop_destroy(loop);
    gate_destroy(&g);
    expect_no_leaks();
}

/* ---------------------------------------------------------------- EBUSY -- */

struct nested_run {
    loop_t *loop;
    int rc;
};

static int run_again(void *arg, void **result)
{
    struct nested_run *n = arg;
    n->rc = loop_run(n->loop);
    *result = NULL;
    return 0;
}

CheckedTest(loop, a_second_run_at_the_same_time_is_ebusy, .timeout = 60)
{
    struct gate g;
    gate_init(&g);
    loop_t *loop = loop_create();
    future_t *held = loop_submit(loop, gated_task, &g);
    struct runner r;
    start_runner(&r, loop);
    gate_await_started(&g, 1); /* it is running, inside the gated task */
    cr_assert_eq(loop_run(loop), EBUSY);
    gate_open(&g);
    cr_assert_eq(join_runner(&r), 0);
    cr_assert_eq(future_wait(held, NULL), 0);

    /* From inside its own callback, too. */
    struct nested_run n = {loop, -1};
    future_t *inner = loop_submit(loop, run_again, &n);
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(n.rc, EBUSY);
    cr_assert_eq(future_wait(inner, NULL), 0);
    future_release(inner);
    future_release(held);
    loop_destroy(loop);
    gate_destroy(&g);
    expect_no_leaks();
}

/* -------------------------------------------------------------- EDEADLK -- */

struct deadlock {
    loop_t *loop;
    pool_t *pool;
    promise_t *p;
    future_t *queued, *then, *pending;
    int rc_queued, rc_then, rc_pending, rc_pool;
    void *pool_value;
};

/* A loop callback waiting for what only the loop can run, and for what a
 * pool runs. */
static int wait_on_the_loop(void *arg, void **result)
{
    struct deadlock *d = arg;
    d->queued = loop_submit(d->loop, value_task, U2P(1));
    d->rc_queued = future_wait(d->queued, NULL);
    future_t *r = future_resolved(U2P(2));
    d->then = future_then_on(r, d->loop, plus_one, NULL);
    d->rc_then = future_wait(d->then, NULL);
    future_release(r);
    future_t *pf = promise_future(d->p);
    d->pending = future_then_on(pf, d->loop, plus_one, NULL);
    d->rc_pending = future_wait(d->pending, NULL);
    future_release(pf);
    future_t *g = pool_submit(d->pool, value_task, U2P(9));
    d->rc_pool = future_wait(g, &d->pool_value);
    future_release(g);
    promise_resolve(d->p, U2P(4));
    *result = NULL;
    return 0;
}

CheckedTest(loop, waiting_on_the_loop_thread_for_the_loop_is_edeadlk,
            .timeout = 60)
{
    struct deadlock d = {
        .loop = loop_create(), .pool = pool_create(1), .p = promise_create()};
    future_t *f = loop_submit(d.loop, wait_on_the_loop, &d);
    cr_assert_eq(loop_run(d.loop), 0);
    cr_assert_eq(future_wait(f, NULL), 0);
    cr_assert_eq(d.rc_queued, EDEADLK, "a loop task queued behind");
    cr_assert_eq(d.rc_then, EDEADLK, "a continuation on the loop");
    cr_assert_eq(d.rc_pending, EDEADLK, "a continuation on the loop");
    cr_assert_eq(d.rc_pool, 0, "a pool's task is not the loop's");
    cr_assert_eq(d.pool_value, U2P(9));
    void *v;
    cr_assert_eq(future_wait(d.queued, &v), 0, "it ran afterwards");
    cr_assert_eq(v, U2P(1));
    cr_assert_eq(future_wait(d.then, &v), 0);
    cr_assert_eq(v, U2P(3));
    cr_assert_eq(future_wait(d.pending, &v), 0);
    cr_assert_eq(v, U2P(5));
    future_release(d.queued);
    future_release(d.then);
    future_release(d.pending);
    future_release(f);
    promise_release(d.p);
    pool_destroy(d.pool);
    loop_destroy(d.loop);
    expect_no_leaks();
}

/* ---------------------------------------------------------------- catch -- */

struct caught {
    int runs;
    int error;
    pthread_t thread;
};

static int recover(int error, void *arg, void **result)
{
    struct caught *c = arg;
    c->runs++;
    c->error = error;
    c->thread = pthread_self();
    *result = U2P(error * 10);
    return 0;
}

static int never_then(void *value, void *arg, void **result)
{
    (void)value;
    ((struct caught *)arg)->runs += 100;
    *result = NULL;
    return 0;
}

CheckedTest(loop, catch_on_runs_on_failure_only, .timeout = 60)
{
    struct caught c = {0};
    loop_t *loop = loop_create();
    pool_t *pool = pool_create(1);
    future_t *bad = pool_submit(pool, fail_task, U2P(EACCES));
    future_t *ok = pool_submit(pool, value_task, U2P(6));
    future_t *recovered = future_catch_on(bad, loop, recover, &c);
    future_t *passed = future_catch_on(ok, loop, recover, &c);
    future_t *skipped = future_then_on(bad, loop, never_then, &c);
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(c.runs, 1, "recover ran %d times", c.runs);
    cr_assert_eq(c.error, EACCES);
    cr_assert(pthread_equal(c.thread, pthread_self()));
    void *v;
    cr_assert_eq(future_wait(recovered, &v), 0);
    cr_assert_eq(v, U2P(EACCES * 10));
    cr_assert_eq(future_wait(passed, &v), 0);
    cr_assert_eq(v, U2P(6));
    cr_assert_eq(future_wait(skipped, NULL), EACCES);
    future_release(recovered);
    future_release(passed);
    future_release(skipped);
    future_release(bad);
    future_release(ok);
    pool_destroy(pool);
    loop_destroy(loop);
    expect_no_leaks();
}

/* ---------------------------------------------- EDEADLK through futures -- */

/*
 * Waits for what only a loop task queued behind the waiter can settle: a
 * combinator, a timeout or a continuation over it. Each case builds its
 * future on the loop's thread from that task; wait_behind() runs the case
 * in a loop callback, then lets the loop run the task, after which what the
 * case built settles too (its last step may run on a pool).
 */
struct behind {
    loop_t *loop;
    future_t *(*build)(struct behind *b);
    promise_t *p;      /* for the cases that mix in a promise */
    struct gate *gate; /* opened just before the wait, for the resolver */
    future_t *task, *built, *extra;
    int rc;
};

static int wait_for_built(void *arg, void **result)
{
    struct behind *b = arg;
    b->task = loop_submit(b->loop, value_task, U2P(1));
    b->built = b->build(b);
    if (b->gate)
        gate_open(b->gate);
    b->rc = future_wait(b->built, NULL);
    *result = NULL;
    return 0;
}

/* Runs @b's case on a loop; returns the outcome of what it built. */
static int wait_behind(struct behind *b)
{
    b->loop = loop_create();
    cr_assert_not_null(b->loop);
    future_t *f = loop_submit(b->loop, wait_for_built, b);
    cr_assert_eq(loop_run(b->loop), 0);
    cr_assert_eq(future_wait(f, NULL), 0);
    void *v;
    cr_assert_eq(future_wait(b->task, &v), 0, "the task ran afterwards");
    cr_assert_eq(v, U2P(1));
    int rc = future_wait(b->built, NULL); /* a pool may run the last step */
    future_release(b->built);
    future_release(b->extra);
    future_release(b->task);
    future_release(f);
    loop_destroy(b->loop);
    return rc;
}

static future_t *all_of_task(struct behind *b)
{
    return when_all(&b->task, 1);
}

static future_t *all_of_task_and_settled(struct behind *b)
{
    b->extra = future_resolved(NULL);
    return when_all((future_t *[]){b->task, b->extra}, 2);
}

static future_t *any_of_task(struct behind *b)
{
    return when_any(&b->task, 1);
}

static future_t *timeout_of_task(struct behind *b)
{
    return future_timeout(b->task, 60 * UINT64_C(1000000000));
}

static future_t *then_of_task(struct behind *b)
{
    return future_then(b->task, plus_one, NULL);
}

static future_t *then_of_all(struct behind *b)
{
    b->extra = when_all(&b->task, 1);
    return future_then(b->extra, plus_one, NULL);
}

static int never_catch(int error, void *arg, void **result)
{
    (void)arg;
    (void)result;
    return error; /* the task succeeds: this never runs */
}

static future_t *timeout_of_catch_of_any(struct behind *b)
{
    future_t *any = when_any(&b->task, 1);
    b->extra = future_catch(any, never_catch, NULL);
    future_release(any); /* the catch keeps it */
    return future_timeout(b->extra, 60 * UINT64_C(1000000000));
}

CheckedTest(loop, waiting_for_when_all_of_a_task_queued_behind_is_edeadlk,
            .timeout = 20)
{
    struct behind b = {.build = all_of_task};
    cr_assert_eq(wait_behind(&b), 0);
    cr_assert_eq(b.rc, EDEADLK);
    expect_no_leaks();
}

CheckedTest(loop, when_all_with_a_settled_input_still_needs_the_loop,
            .timeout = 20)
{
    struct behind b = {.build = all_of_task_and_settled};
    cr_assert_eq(wait_behind(&b), 0);
    cr_assert_eq(b.rc, EDEADLK);
    expect_no_leaks();
}

CheckedTest(loop, waiting_for_when_any_of_a_task_queued_behind_is_edeadlk,
            .timeout = 20)
{
    struct behind b = {.build = any_of_task};
    cr_assert_eq(wait_behind(&b), 0);
    cr_assert_eq(b.rc, EDEADLK);
    expect_no_leaks();
}

CheckedTest(loop, a_timeout_over_a_task_queued_behind_is_edeadlk_at_once,
            .timeout = 20)
{
    /* Without the rule the wait would block for the whole 60 s and then
     * fail with ETIMEDOUT; the suite's timeout is far shorter. */
    struct behind b = {.build = timeout_of_task};
    cr_assert_eq(wait_behind(&b), 0, "the input won once the loop ran it");
    cr_assert_eq(b.rc, EDEADLK);
    expect_no_leaks();
}

CheckedTest(loop, a_continuation_of_a_task_queued_behind_is_edeadlk,
            .timeout = 20)
{
    struct behind b = {.build = then_of_task}; /* it runs on the loop */
    cr_assert_eq(wait_behind(&b), 0);
    cr_assert_eq(b.rc, EDEADLK);
    expect_no_leaks();
}

CheckedTest(loop, a_continuation_of_when_all_over_the_loop_is_edeadlk,
            .timeout = 20)
{
    struct behind b = {.build = then_of_all}; /* it runs on a pool */
    cr_assert_eq(wait_behind(&b), 0);
    cr_assert_eq(b.rc, EDEADLK);
    expect_no_leaks();
}

CheckedTest(loop, nested_combinators_over_the_loop_are_edeadlk, .timeout = 20)
{
    struct behind b = {.build = timeout_of_catch_of_any};
    cr_assert_eq(wait_behind(&b), 0);
    cr_assert_eq(b.rc, EDEADLK);
    expect_no_leaks();
}

/* A pool task that resolves the promise once the waiter is about to wait. */
static int resolve_at_gate(void *arg, void **result)
{
    struct behind *b = arg;
    gate_pass(b->gate);
    *result = NULL;
    return promise_resolve(b->p, U2P(2));
}

static future_t *any_of_task_and_promise(struct behind *b)
{
    b->extra = promise_future(b->p);
    return when_any((future_t *[]){b->task, b->extra}, 2);
}

CheckedTest(loop, when_any_with_an_input_off_the_loop_waits_for_it,
            .timeout = 20)
{
    /* The promise may settle the when_any while the loop is stuck, so the
     * wait is legitimate and ends when a pool thread resolves it. */
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    struct behind b = {
        .build = any_of_task_and_promise, .p = promise_create(), .gate = &g};
    future_t *resolver = pool_submit(pool, resolve_at_gate, &b);
    cr_assert_eq(wait_behind(&b), 0);
    cr_assert_eq(b.rc, 0, "the wait ended with the promise's win");
    cr_assert_eq(future_wait(resolver, NULL), 0);
    future_release(resolver);
    promise_release(b.p);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

/* A chain far longer than the walk looks, over a promise: the wait is
 * legitimate, and must neither be refused nor recurse the chain's length.
 * The loop runs on a thread with a small stack, which a walk down the
 * whole chain would overflow. */
static int wait_for_the_end_briefly(void *arg, void **result)
{
    *result = U2P(future_wait_for(arg, MS));
    return 0;
}

CheckedTest(loop, a_long_chain_off_the_loop_is_not_walked_to_its_end,
            .timeout = 60)
{
    enum { LINKS = 100000 };
    loop_t *loop = loop_create();
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    future_t *all = when_all(&pf, 1), *end = all;
    for (int i = 0; i < LINKS; i++) {
        future_t *next = future_then(end, plus_one, NULL);
        cr_assert_not_null(next);
        future_release(end); /* each link keeps the one before */
        end = next;
    }
    future_t *f = loop_submit(loop, wait_for_the_end_briefly, end);
    struct runner r = {loop, .rc = -1};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    cr_assert_eq(pthread_create(&r.thread, &attr, run_loop, &r), 0);
    pthread_attr_destroy(&attr);
    cr_assert_eq(join_runner(&r), 0);
    void *settled;
    cr_assert_eq(future_wait(f, &settled), 0);
    cr_assert_eq(settled, U2P(false), "nothing settled it yet");
    cr_assert_eq(promise_resolve(p, U2P(0)), 0);
    void *v;
    cr_assert_eq(future_wait(end, &v), 0);
    cr_assert_eq(v, U2P(LINKS));
    future_release(end);
    future_release(f);
    future_release(pf);
    promise_release(p);
    loop_destroy(loop);
    expect_no_leaks();
}

/* -------------------------------------------------------------- destroy -- */

CheckedTest(loop, destroy_cancels_queued_callbacks, .timeout = 60)
{
    enum { N = 5 };
    atomic_int runs = 0;
    loop_t *loop = loop_create();
    future_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = loop_submit(loop, count_task, &runs);
    future_t *done = future_resolved(NULL);
    future_t *ready = future_then_on(done, loop, count_done, &runs);
    loop_destroy(loop);
    for (int i = 0; i < N; i++) {
        cr_assert(future_is_ready(fs[i]), "task %d not settled", i);
        cr_assert_eq(future_wait(fs[i], NULL), ECANCELED);
        future_release(fs[i]);
    }
    cr_assert_eq(future_wait(ready, NULL), ECANCELED);
    cr_assert_eq(atomic_load(&runs), 0);
    future_release(ready);
    future_release(done);
    expect_no_leaks();
}

CheckedTest(loop, continuations_sent_after_destroy_fail_with_ecanceled,
            .timeout = 60)
{
    struct caught c = {0};
    loop_t *loop = loop_create();
    promise_t *p = promise_create(), *q = promise_create();
    future_t *pf = promise_future(p), *qf = promise_future(q);
    future_t *then = future_then_on(pf, loop, never_then, &c);
    future_t *caught = future_catch_on(qf, loop, recover, &c);
    loop_destroy(loop);
    cr_assert_eq(promise_resolve(p, U2P(1)), 0);
    cr_assert_eq(promise_reject(q, EIO), 0);
    cr_assert_eq(future_wait(then, NULL), ECANCELED);
    cr_assert_eq(future_wait(caught, NULL), ECANCELED);
    cr_assert_eq(c.runs, 0);
    future_release(then);
    future_release(caught);
    future_release(pf);
    future_release(qf);
    promise_release(p);
    promise_release(q);
    expect_no_leaks();
}

CheckedTest(loop, destroy_cancels_continuations_still_waiting_for_input,
            .timeout = 60)
{
    /* They never run, and fail with ECANCELED once their predecessor
     * settles, whatever its outcome: here a failure, which a then would
     * otherwise pass through and a catch would otherwise handle. */
    struct caught c = {0};
    loop_t *loop = loop_create();
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    future_t *then = future_then_on(pf, loop, never_then, &c);
    future_t *caught = future_catch_on(pf, loop, recover, &c);
    loop_destroy(loop);
    cr_assert_eq(promise_reject(p, EIO), 0);
    cr_assert_eq(future_wait(then, NULL), ECANCELED);
    cr_assert_eq(future_wait(caught, NULL), ECANCELED);
    cr_assert_eq(c.runs, 0);
    future_release(then);
    future_release(caught);
    future_release(pf);
    promise_release(p);
    expect_no_leaks();
}

/* ------------------------------------------------------------ arguments -- */

CheckedTest(loop, functions_check_their_arguments, .timeout = 60)
{
    atomic_int runs = 0;
    loop_t *loop = loop_create();
    future_t *f = future_resolved(NULL);
    cr_assert_eq(loop_run(NULL), EINVAL);
    loop_stop(NULL);
    loop_destroy(NULL);
    errno = 0;
    cr_assert_null(loop_submit(NULL, count_task, &runs));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(loop_submit(loop, NULL, &runs));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then_on(f, NULL, plus_one, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then_on(NULL, loop, plus_one, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then_on(f, loop, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch_on(f, NULL, recover, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch_on(NULL, loop, recover, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch_on(f, loop, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    /* Nothing was registered: the loop has nothing to wait for. */
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(atomic_load(&runs), 0);
    future_release(f);
    loop_destroy(loop);
    expect_no_leaks();
}

CheckedTest(loop, a_stop_asked_before_run_runs_what_is_queued_then_returns,
            .timeout = 60)
{
    atomic_int runs = 0;
    loop_t *loop = loop_create();
    future_t *a = loop_submit(loop, count_task, &runs);
    future_t *b = loop_submit(loop, count_task, &runs);
    loop_stop(loop);
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(atomic_load(&runs), 2, "what was queued ran");
    future_t *c = loop_submit(loop, count_task, &runs);
    cr_assert_eq(loop_run(loop), 0, "the stop was used up");
    cr_assert_eq(atomic_load(&runs), 3);
    future_release(a);
    future_release(b);
    future_release(c);
    loop_destroy(loop);
    expect_no_leaks();
}
