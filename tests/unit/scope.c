/*
 * Tests of scopes: the limit, the order tasks start in under it, the first
 * failure cancelling the rest, joins (also from inside a task, also with
 * tasks arriving meanwhile), nesting, release without a join, and what a
 * hundred thousand waiting tasks cost in threads.
 */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Counts how many of its tasks run at once, and the most ever seen. */
struct gauge {
    atomic_int now, peak, ran;
};

static int measured_task(void *arg, void **result)
{
    struct gauge *g = arg;
    int now = atomic_fetch_add(&g->now, 1) + 1;
    int peak = atomic_load(&g->peak);
    while (now > peak && !atomic_compare_exchange_weak(&g->peak, &peak, now))
        ;
    for (volatile int spin = 0; spin < 2000; spin++)
        ; /* stay running a moment, so others overlap if they may */
    atomic_fetch_sub(&g->now, 1);
    atomic_fetch_add(&g->ran, 1);
    *result = NULL;
    return 0;
}

static void expect_limit_holds(size_t limit, bool blocking)
{
    enum { N = 10000 };
    pool_t *pool = pool_create(4);
    scope_t *s = scope_create(pool);
    cr_assert_eq(scope_set_limit(s, limit), 0);
    struct gauge g = {0};
    for (int i = 0; i < N; i++) {
        future_t *f = blocking ? scope_submit_blocking(s, measured_task, &g)
                               : scope_submit(s, measured_task, &g);
        cr_assert_not_null(f);
        future_release(f);
    }
    cr_assert_eq(scope_join(s), 0);
    cr_assert_eq(atomic_load(&g.ran), N);
    cr_assert_leq(atomic_load(&g.peak), (int)limit, "limit %zu, peak %d",
                  limit, atomic_load(&g.peak));
    scope_release(s);
    pool_destroy(pool);
}

CheckedTest(scope, the_limit_is_never_exceeded, .timeout = 120)
{
    expect_limit_holds(1, false);
    expect_limit_holds(7, false);
    expect_limit_holds(64, false);
}

CheckedTest(scope, the_limit_holds_for_blocking_jobs_too, .timeout = 120)
{
    expect_limit_holds(7, true);
}

/* Tasks record the order in which they started. */
struct order {
    atomic_int next;
    int started[100];
};

struct numbered {
    struct order *o;
    int n;
};

static int record_start(void *arg, void **result)
{
    struct numbered *nb = arg;
    nb->o->started[atomic_fetch_add(&nb->o->next, 1)] = nb->n;
    *result = NULL;
    return 0;
}

CheckedTest(scope, under_a_limit_of_one_tasks_start_in_submission_order)
{
    struct order o = {0};
    struct numbered nb[100];
    scope_t *s = scope_create(NULL);
    scope_set_limit(s, 1);
    for (int i = 0; i < 100; i++) {
        nb[i] = (struct numbered){&o, i};
        future_release(scope_submit(s, record_start, &nb[i]));
    }
    cr_assert_eq(scope_join(s), 0);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(o.started[i], i, "position %d", i);
    scope_release(s);
}

/* A task that runs until it sees task_cancelled(), then says so. */
static int until_cancelled(void *arg, void **result)
{
    struct gate *g = arg;
    gate_pass(g); /* counted as started, then the test lets it go on */
    while (!task_cancelled())
        sched_yield();
    *result = NULL;
    return ECANCELED;
}

static int fails_eio(void *arg, void **result)
{
    (void)arg, (void)result;
    return task_fail(EIO, "disk %d gone", 2);
}

static atomic_int never_ran;
static int must_not_run(void *arg, void **result)
{
    (void)arg, (void)result;
    atomic_fetch_add(&never_ran, 1);
    return 0;
}

CheckedTest(scope, the_first_failure_cancels_the_rest)
{
    atomic_store(&never_ran, 0);
    pool_t *pool = pool_create(2);
    scope_t *s = scope_create(pool);
    scope_set_limit(s, 2);
    struct gate g;
    gate_init(&g);
    future_t *running = scope_submit(s, until_cancelled, &g);
    gate_await_started(&g, 1);
    gate_open(&g);
    future_t *held[5];
    future_t *failing = scope_submit(s, fails_eio, NULL);
    for (int i = 0; i < 5; i++)
        held[i] = scope_submit(s, must_not_run, NULL);
    cr_assert_eq(scope_join(s), EIO);
    cr_assert(scope_cancelled(s));
    cr_assert_eq(future_wait(failing, NULL), EIO);
    cr_assert_eq(future_wait(running, NULL), ECANCELED, "it saw the cancel");
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(future_wait(held[i], NULL), ECANCELED);
        future_release(held[i]);
    }
    cr_assert_eq(atomic_load(&never_ran), 0);
    future_t *sf = scope_future(s);
    cr_assert_eq(future_wait(sf, NULL), EIO);
    cr_assert_str_eq(future_error_message(sf), "disk 2 gone");
    future_release(sf);
    future_release(failing);
    future_release(running);
    scope_release(s);
    pool_destroy(pool);
    gate_destroy(&g);
}

CheckedTest(scope, after_a_cancel_submit_returns_a_failed_future)
{
    scope_t *s = scope_create(NULL);
    cr_assert_not(scope_cancelled(s));
    scope_cancel(s);
    cr_assert(scope_cancelled(s));
    future_t *f = scope_submit(s, must_not_run, NULL);
    cr_assert_not_null(f);
    cr_assert(future_is_ready(f));
    cr_assert_eq(future_wait(f, NULL), ECANCELED);
    cr_assert_eq(scope_join(s), ECANCELED, "cancelled by hand, nothing failed");
    future_release(f);
    scope_release(s);
}

CheckedTest(scope, after_a_join_submit_is_eshutdown)
{
    scope_t *s = scope_create(NULL);
    cr_assert_eq(scope_join(s), 0, "nothing to wait for");
    errno = 0;
    cr_assert_null(scope_submit(s, must_not_run, NULL));
    cr_assert_eq(errno, ESHUTDOWN);
    scope_release(s);
}

/* Each task submits the next one to its own scope, ten deep, while the
 * test thread joins. */
struct relay_race {
    scope_t *s;
    atomic_int left, ran;
    struct gate *g;
};

static int submit_another(void *arg, void **result)
{
    struct relay_race *r = arg;
    if (atomic_fetch_add(&r->ran, 1) == 0)
        gate_pass(r->g); /* the first waits until the join has begun */
    if (atomic_fetch_sub(&r->left, 1) > 1)
        future_release(scope_submit(r->s, submit_another, r));
    *result = NULL;
    return 0;
}

static void *open_later(void *arg)
{
    gate_open(arg);
    return NULL;
}

CheckedTest(scope, a_join_waits_for_tasks_submitted_while_it_waits)
{
    struct gate g;
    gate_init(&g);
    struct relay_race r = {.s = scope_create(NULL), .left = 10, .g = &g};
    future_release(scope_submit(r.s, submit_another, &r));
    gate_await_started(&g, 1);
    pthread_t t;
    pthread_create(&t, NULL, open_later, &g); /* before or during the join */
    cr_assert_eq(scope_join(r.s), 0);
    cr_assert_eq(atomic_load(&r.ran), 10);
    pthread_join(t, NULL);
    scope_release(r.s);
    gate_destroy(&g);
}

static int join_inside(void *arg, void **result)
{
    pool_t *pool = arg;
    scope_t *s = scope_create(pool);
    struct gauge g = {0};
    for (int i = 0; i < 20; i++)
        future_release(scope_submit(s, measured_task, &g));
    int error = scope_join(s);
    scope_release(s);
    *result = U2P(atomic_load(&g.ran));
    return error;
}

CheckedTest(scope, a_join_inside_a_task_on_a_one_thread_pool_finishes)
{
    pool_t *one = pool_create(1);
    future_t *f = pool_submit(one, join_inside, one);
    void *v = NULL;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(P2U(v), 20u);
    future_release(f);
    pool_destroy(one);
}

/* Three levels: each task of a level makes a child scope and runs one
 * task in it; the deepest waits for its cancel. */
struct level {
    int depth;
    struct gate *g;
};

static int nest(void *arg, void **result)
{
    struct level *l = arg;
    *result = NULL;
    if (l->depth == 3)
        return until_cancelled(l->g, result);
    scope_t *child = scope_create(NULL);
    struct level *deeper = malloc(sizeof *deeper);
    *deeper = (struct level){l->depth + 1, l->g};
    future_release(scope_submit(child, nest, deeper));
    int error = scope_join(child);
    scope_release(child);
    free(deeper);
    return error;
}

CheckedTest(scope, cancelling_the_top_reaches_three_levels_down)
{
    struct gate g;
    gate_init(&g);
    gate_open(&g);
    scope_t *top = scope_create(NULL);
    struct level l = {1, &g};
    future_t *f = scope_submit(top, nest, &l);
    gate_await_started(&g, 1); /* the deepest task runs */
    scope_cancel(top);
    cr_assert_eq(future_wait(f, NULL), ECANCELED);
    cr_assert_eq(scope_join(top), ECANCELED);
    future_release(f);
    scope_release(top);
    gate_destroy(&g);
}

CheckedTest(scope, release_without_a_join_cancels_and_returns_at_once)
{
    atomic_store(&never_ran, 0);
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    scope_t *s = scope_create(pool);
    scope_set_limit(s, 1);
    future_t *busy = scope_submit(s, until_cancelled, &g);
    gate_await_started(&g, 1);
    future_t *held = scope_submit(s, must_not_run, NULL);
    scope_release(s); /* returns while busy still runs */
    gate_open(&g);
    cr_assert_eq(future_wait(busy, NULL), ECANCELED);
    cr_assert_eq(future_wait(held, NULL), ECANCELED);
    cr_assert_eq(atomic_load(&never_ran), 0);
    future_release(busy);
    future_release(held);
    pool_destroy(pool);
    gate_destroy(&g);
}

static long threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

CheckedTest(scope, a_hundred_thousand_waiting_tasks_hold_no_threads,
            .timeout = 120)
{
    enum { N = 100000 };
    pool_t *pool = pool_create(2);
    scope_t *s = scope_create(pool);
    scope_set_limit(s, 50);
    struct gauge g = {0};
    long before = threads_now();
    for (int i = 0; i < N; i++)
        future_release(scope_submit_blocking(s, measured_task, &g));
    cr_assert_eq(scope_join(s), 0);
    long after = threads_now(); /* idle blocking threads linger 10 s */
    cr_assert_eq(atomic_load(&g.ran), N);
    cr_assert_leq(atomic_load(&g.peak), 50);
    /* The limit's 50 blocking threads and the two core ones, give or take
     * a start in flight: no thread for any waiting task. */
    cr_assert_leq(after - before, 50 + 2 + 4, "%ld threads before, %ld after",
                  before, after);
    scope_release(s);
    pool_destroy(pool);
}

CheckedTest(scope, raising_the_limit_starts_waiting_tasks)
{
    pool_t *pool = pool_create(2);
    struct gate g;
    gate_init(&g);
    scope_t *s = scope_create(pool);
    scope_set_limit(s, 1);
    future_t *a = scope_submit(s, gated_task, &g);
    future_t *b = scope_submit(s, gated_task, &g);
    gate_await_started(&g, 1);
    cr_assert_not(future_is_ready(b));
    scope_set_limit(s, 2);
    gate_await_started(&g, 1); /* b started while a still runs */
    gate_open(&g);
    cr_assert_eq(scope_join(s), 0);
    future_release(a);
    future_release(b);
    scope_release(s);
    pool_destroy(pool);
    gate_destroy(&g);
}

static atomic_int frees;
static void count_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&frees, 1);
}

static int then_fail(void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    return EPERM;
}

CheckedTest(scope, its_future_chains_like_any_other)
{
    atomic_store(&frees, 0);
    scope_t *s = scope_create(NULL);
    future_t *ok = scope_submit(s, value_task, U2P(1));
    future_t *sf = scope_future(s);
    future_t *after = future_then_ex(sf, then_fail, NULL, count_free);
    cr_assert_eq(future_wait(after, NULL), EPERM, "then ran on its success");
    cr_assert_eq(atomic_load(&frees), 1);
    cr_assert(future_is_ready(ok));
    errno = 0;
    cr_assert_null(scope_submit(s, must_not_run, NULL), "closed once settled");
    cr_assert_eq(errno, ESHUTDOWN);
    future_release(after);
    future_release(sf);
    future_release(ok);
    scope_release(s);
}

CheckedTest(scope, a_task_cancelled_by_its_caller_fails_nothing)
{
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    scope_t *s = scope_create(pool);
    future_t *busy = scope_submit(s, gated_task, &g);
    gate_await_started(&g, 1);
    future_t *queued = scope_submit(s, must_not_run, NULL);
    cr_assert(future_cancel(queued));
    gate_open(&g);
    cr_assert_eq(scope_join(s), 0, "a cancelled task is no failure");
    cr_assert_not(scope_cancelled(s));
    future_release(busy);
    future_release(queued);
    scope_release(s);
    pool_destroy(pool);
    gate_destroy(&g);
}

CheckedTest(scope, null_arguments_are_einval)
{
    errno = 0;
    cr_assert_null(scope_submit(NULL, must_not_run, NULL));
    cr_assert_eq(errno, EINVAL);
    scope_t *s = scope_create(NULL);
    errno = 0;
    cr_assert_null(scope_submit(s, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(scope_set_limit(NULL, 1), EINVAL);
    cr_assert_eq(scope_join(NULL), EINVAL);
    errno = 0;
    cr_assert_null(scope_future(NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_not(scope_cancelled(NULL));
    scope_cancel(NULL);
    scope_release(NULL);
    scope_release(s);
}
