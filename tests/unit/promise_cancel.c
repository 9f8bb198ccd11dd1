/* Tests of lib/promise.c: promises whose holder decides how a cancel ends
 * (promise_create_cancellable). */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

/* What on_cancel saw: the thread it ran on and how often it ran. */
struct told {
    sem_t ran;
    atomic_int times;
    pthread_t thread;
    promise_t *p;
    bool reject; /* settle with ECANCELED from inside the callback */
};

static void on_cancel(promise_t *p, void *arg)
{
    struct told *t = arg;
    t->thread = pthread_self();
    t->p = p;
    atomic_fetch_add(&t->times, 1);
    if (t->reject)
        promise_reject(p, ECANCELED);
    sem_post(&t->ran);
}

static void told_init(struct told *t, bool reject)
{
    sem_init(&t->ran, 0, 0);
    atomic_init(&t->times, 0);
    t->p = NULL;
    t->reject = reject;
}

CheckedTest(promise_cancel, cancel_tells_the_holder_and_leaves_it_pending)
{
    struct told t;
    told_init(&t, false);
    promise_t *p = promise_create_cancellable(on_cancel, &t);
    future_t *f = promise_future(p);
    cr_assert_not(future_cancel(f), "the holder decides, as for a running task");
    sem_wait(&t.ran);
    cr_assert_eq(t.p, p);
    cr_assert_not(pthread_equal(t.thread, pthread_self()),
                  "told on a pool thread, never inside future_cancel()");
    cr_assert_not(future_is_ready(f), "still pending until the holder settles");
    cr_assert_eq(promise_resolve(p, U2P(7)), 0, "the work finished first");
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(7));
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(promise_cancel, holder_settles_with_ecanceled)
{
    struct told t;
    told_init(&t, true);
    promise_t *p = promise_create_cancellable(on_cancel, &t);
    future_t *f = promise_future(p);
    future_cancel(f);
    cr_assert_eq(future_wait(f, NULL), ECANCELED);
    cr_assert_not(future_cancel(f), "settled: nothing more");
    cr_assert_eq(atomic_load(&t.times), 1);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(promise_cancel, holder_is_told_once)
{
    struct told t;
    told_init(&t, false);
    promise_t *p = promise_create_cancellable(on_cancel, &t);
    future_t *f = promise_future(p);
    for (int i = 0; i < 5; i++)
        cr_assert_not(future_cancel(f));
    sem_wait(&t.ran);
    promise_reject(p, ECANCELED);
    cr_assert_eq(future_wait(f, NULL), ECANCELED);
    cr_assert_eq(atomic_load(&t.times), 1);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(promise_cancel, settled_promise_is_not_told)
{
    struct told t;
    told_init(&t, false);
    promise_t *p = promise_create_cancellable(on_cancel, &t);
    future_t *f = promise_future(p);
    promise_resolve(p, NULL);
    cr_assert_not(future_cancel(f));
    cr_assert_eq(future_wait(f, NULL), 0);
    cr_assert_eq(atomic_load(&t.times), 0);
    future_release(f);
    promise_release(p);
}

CheckedTest(promise_cancel, released_unsettled_still_breaks_with_epipe)
{
    struct told t;
    told_init(&t, false);
    promise_t *p = promise_create_cancellable(on_cancel, &t);
    future_t *f = promise_future(p);
    promise_release(p);
    cr_assert_eq(future_wait(f, NULL), EPIPE);
    future_release(f);
}

CheckedTest(promise_cancel, continuations_see_the_holders_outcome)
{
    struct told t;
    told_init(&t, true);
    promise_t *p = promise_create_cancellable(on_cancel, &t);
    future_t *f = promise_future(p);
    future_t *both = when_all(&f, 1);
    future_cancel(f);
    cr_assert_eq(future_wait(both, NULL), ECANCELED);
    future_release(both);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(promise_cancel, null_callback_is_einval)
{
    errno = 0;
    cr_assert_null(promise_create_cancellable(NULL, NULL));
    cr_assert_eq(errno, EINVAL);
}

CheckedTest(promise_cancel, without_memory_the_holder_is_told_inside_cancel)
{
    struct told t;
    told_init(&t, true);
    promise_t *p = promise_create_cancellable(on_cancel, &t);
    future_t *f = promise_future(p);
    long fired = fut__fault_fired(FUT_FAULT_ALLOC);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false); /* the telling's task */
    cr_assert_not(future_cancel(f));
    fut__fault_set(FUT_FAULT_ALLOC, 0, false);
    cr_assert_gt(fut__fault_fired(FUT_FAULT_ALLOC), fired);
    cr_assert(pthread_equal(t.thread, pthread_self()),
              "never lost: told here rather than not at all");
    cr_assert(future_is_ready(f));
    cr_assert_eq(future_wait(f, NULL), ECANCELED);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}
