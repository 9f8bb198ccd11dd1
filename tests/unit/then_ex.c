/*
 * Tests of future_then_ex() and future_catch_ex(): the argument's
 * destructor runs exactly once on every path a continuation can take.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

static int then_owned(void *value, void *arg, void **result)
{
    struct owned_arg *o = arg;
    atomic_fetch_add(&o->runs, 1);
    *result = value;
    return atomic_load(&o->frees) ? EFAULT : 0; /* freed too early? */
}

/* A then whose predecessor never succeeds. */
static int then_owned_never(void *value, void *arg, void **result)
{
    (void)value;
    (void)arg;
    (void)result;
    return EFAULT;
}

#define MS_NS UINT64_C(1000000)

static int catch_owned(int error, void *arg, void **result)
{
    (void)error;
    return then_owned(NULL, arg, result);
}

CheckedTest(then_ex, frees_once_after_the_callback_ran, .timeout = 30)
{
    struct owned_arg t = {0, 0}, c = {0, 0};
    future_t *ok = future_resolved(U2P(1)), *bad = future_failed(EIO);
    future_t *g = future_then_ex(ok, then_owned, &t, free_owned);
    future_t *h = future_catch_ex(bad, catch_owned, &c, free_owned);
    cr_assert_eq(future_wait(g, NULL), 0, "freed before it ran");
    cr_assert_eq(future_wait(h, NULL), 0, "freed before it ran");
    cr_assert_eq(atomic_load(&t.frees), 1);
    cr_assert_eq(atomic_load(&c.frees), 1);
    cr_assert_eq(atomic_load(&t.runs), 1);
    cr_assert_eq(atomic_load(&c.runs), 1);
    future_release(g);
    future_release(h);
    future_release(ok);
    future_release(bad);
    cr_assert_eq(atomic_load(&t.frees) + atomic_load(&c.frees), 2);
    expect_no_leaks();
}

CheckedTest(then_ex, frees_once_when_the_callback_is_skipped, .timeout = 30)
{
    struct owned_arg t = {0, 0}, c = {0, 0};
    future_t *ok = future_resolved(U2P(1)), *bad = future_failed(EIO);
    future_t *g = future_then_ex(bad, then_owned, &t, free_owned);
    future_t *h = future_catch_ex(ok, catch_owned, &c, free_owned);
    cr_assert_eq(future_wait(g, NULL), EIO);
    cr_assert_eq(future_wait(h, NULL), 0);
    cr_assert_eq(atomic_load(&t.frees), 1, "a then skipped on failure");
    cr_assert_eq(atomic_load(&c.frees), 1, "a catch skipped on success");
    cr_assert_eq(atomic_load(&t.runs) + atomic_load(&c.runs), 0);
    future_release(g);
    future_release(h);
    future_release(ok);
    future_release(bad);
    expect_no_leaks();
}

CheckedTest(then_ex, frees_once_when_cancelled_while_waiting, .timeout = 30)
{
    struct owned_arg o = {0, 0};
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *g = future_then_ex(f, then_owned, &o, free_owned);
    cr_assert(future_cancel(g));
    cr_assert_eq(atomic_load(&o.frees), 1, "freed when cancelled");
    promise_resolve(p, NULL);
    future_release(g);
    future_release(f);
    promise_release(p);
    cr_assert_eq(atomic_load(&o.frees), 1);
    cr_assert_eq(atomic_load(&o.runs), 0);
    expect_no_leaks();
}

CheckedTest(then_ex, frees_before_returning_when_it_fails)
{
    struct owned_arg oom = {0, 0}, bad = {0, 0}, none = {0, 0};
    future_t *f = future_resolved(NULL);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(future_then_ex(f, then_owned, &oom, free_owned));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(atomic_load(&oom.frees), 1);
    errno = 0;
    cr_assert_null(future_catch_ex(NULL, catch_owned, &bad, free_owned));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&bad.frees), 1);
    errno = 0;
    cr_assert_null(future_then(f, NULL, &none)); /* no destructor: untouched */
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(atomic_load(&none.frees), 0);
    future_release(f);
    expect_no_leaks();
}

struct racer {
    future_t *g;
    pthread_barrier_t go;
};

static void *cancel_at_barrier(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(&r->go);
    future_cancel(r->g);
    return NULL;
}

CheckedTest(then_ex, frees_once_when_cancel_races_the_predecessor,
            .timeout = 120)
{
    for (int round = 0; round < 3000; round++) {
        struct owned_arg o = {0, 0};
        promise_t *p = promise_create();
        future_t *f = promise_future(p);
        struct racer r = {.g = future_then_ex(f, then_owned, &o, free_owned)};
        pthread_barrier_init(&r.go, NULL, 2);
        pthread_t t;
        pthread_create(&t, NULL, cancel_at_barrier, &r);
        pthread_barrier_wait(&r.go);
        promise_resolve(p, NULL);
        int rc = future_wait(r.g, NULL);
        pthread_join(t, NULL);
        cr_assert(rc == 0 || rc == ECANCELED, "round %d: %d", round, rc);
        cr_assert_eq(atomic_load(&o.runs), rc == 0, "round %d", round);
        cr_assert_eq(atomic_load(&o.frees), 1, "round %d", round);
        future_release(r.g);
        future_release(f);
        promise_release(p);
        pthread_barrier_destroy(&r.go);
    }
    expect_no_leaks();
}

/* ------------------------------------------------ destructors that wait -- */

/*
 * A destructor may call any function, waits included. The library must run
 * it where a wait cannot hold up the library's own progress: never on the
 * timer thread (a wait for a delay there would wait for itself), never
 * inside the notification pass that the awaited future needs.
 */
struct waiting_destructor {
    future_t *awaited; /* given to the destructor */
    promise_t *to_resolve;
    int error;   /* what its wait returned */
    sem_t done;  /* posted once it has */
};

/* Waits up to ten seconds for the destructor to have finished its wait. */
static bool destructor_done(struct waiting_destructor *d)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    while (sem_timedwait(&d->done, &deadline) != 0)
        if (errno != EINTR)
            return false;
    return true;
}

static void free_after_a_delay(void *arg)
{
    struct waiting_destructor *d = arg;
    future_t *delay = future_delay(MS_NS);
    d->error = delay ? future_wait(delay, NULL) : errno;
    future_release(delay);
    sem_post(&d->done);
}

CheckedTest(then_ex, a_destructor_run_by_a_timeout_may_wait_for_a_delay,
            .timeout = 30)
{
    promise_t *never = promise_create();
    future_t *pending = promise_future(never);
    struct waiting_destructor d = {.error = -1};
    sem_init(&d.done, 0, 0);
    future_t *g = future_then_ex(pending, then_owned_never, &d,
                                 free_after_a_delay);
    future_t *t = future_timeout(g, MS_NS); /* cancels g when it fires */
    cr_assert_eq(future_wait(t, NULL), ETIMEDOUT);
    cr_assert(destructor_done(&d),
              "the destructor's wait for a delay never ended");
    cr_assert_eq(d.error, 0, "its delay failed: %d", d.error);
    future_release(t);
    future_release(g);
    future_release(pending);
    promise_release(never);
    sem_destroy(&d.done);
    expect_no_leaks();
}

static void resolve_then_wait(void *arg)
{
    struct waiting_destructor *d = arg;
    promise_resolve(d->to_resolve, NULL);
    d->error = future_wait(d->awaited, NULL);
    sem_post(&d->done);
}

CheckedTest(then_ex, a_destructor_run_by_a_rejection_may_wait_for_a_join,
            .timeout = 30)
{
    promise_t *first = promise_create(), *second = promise_create();
    future_t *f = promise_future(first), *s = promise_future(second);
    struct waiting_destructor d = {
        .awaited = when_all(&s, 1), .to_resolve = second, .error = -1};
    sem_init(&d.done, 0, 0);
    future_t *g = future_then_ex(f, then_owned_never, &d, resolve_then_wait);
    /* The then is skipped: its destructor runs as this call settles f,
     * and waits for a join that settles only once s's watchers are told. */
    cr_assert_eq(promise_reject(first, EIO), 0);
    cr_assert(destructor_done(&d), "the destructor's wait never ended");
    cr_assert_eq(d.error, 0, "the join failed: %d", d.error);
    cr_assert_eq(future_wait(g, NULL), EIO);
    future_release(g);
    future_release(d.awaited);
    future_release(s);
    future_release(f);
    promise_release(first);
    promise_release(second);
    sem_destroy(&d.done);
    expect_no_leaks();
}

CheckedTest(then_ex, a_deferred_destructor_without_memory_still_runs_once,
            .timeout = 30)
{
    struct owned_arg o = {0, 0};
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *g = future_then_ex(f, then_owned, &o, free_owned);
    /* Deferring it past the notification pass needs memory: without any,
     * it runs in the pass rather than never. */
    fut__fault_set(FUT_FAULT_ALLOC, 1, true);
    cr_assert_eq(promise_reject(p, EIO), 0);
    long failed = fut__fault_fired(FUT_FAULT_ALLOC);
    fut__fault_set(FUT_FAULT_ALLOC, 0, false);
    cr_assert_gt(failed, 0, "the deferral allocated nothing");
    cr_assert_eq(atomic_load(&o.frees), 1);
    cr_assert_eq(future_wait(g, NULL), EIO);
    cr_assert_eq(atomic_load(&o.runs), 0);
    future_release(g);
    future_release(f);
    promise_release(p);
    cr_assert_eq(atomic_load(&o.frees), 1);
    expect_no_leaks();
}
