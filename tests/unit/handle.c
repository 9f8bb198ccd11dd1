/*
 * Tests of future_handle() (a continuation for either outcome) and of
 * future_then_via() / future_catch_via() (a continuation on a chosen pool).
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>

/* --------------------------------------------------------- future_handle */

struct seen {
    atomic_int runs;
    int error;
    void *value;
    pthread_t thread;
};

/* Records what it was given; succeeds with error + 100 as its value. */
static int record(int error, void *value, void *arg, void **result)
{
    struct seen *s = arg;
    s->error = error;
    s->value = value;
    s->thread = pthread_self();
    atomic_fetch_add(&s->runs, 1);
    *result = U2P(100 + error);
    return 0;
}

static void expect_handled(future_t *input, int error, void *value)
{
    struct seen s = {0};
    future_t *h = future_handle(input, record, &s);
    cr_assert_not_null(h);
    void *v = NULL;
    cr_assert_eq(future_wait(h, &v), 0);
    cr_assert_eq(atomic_load(&s.runs), 1);
    cr_assert_eq(s.error, error);
    cr_assert_eq(s.value, value);
    cr_assert_eq(P2U(v), 100u + (unsigned)error);
    future_release(h);
}

CheckedTest(handle, runs_on_success_failure_and_cancel)
{
    future_t *ok = future_resolved(U2P(7));
    expect_handled(ok, 0, U2P(7));
    future_t *failed = future_failed(EIO);
    expect_handled(failed, EIO, NULL);
    promise_t *p = promise_create();
    future_t *pending = promise_future(p);
    cr_assert(future_cancel(pending));
    expect_handled(pending, ECANCELED, NULL);
    future_release(ok);
    future_release(failed);
    future_release(pending);
    promise_release(p);
}

static int handle_fails(int error, void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    return error ? error + 1 : EPERM;
}

CheckedTest(handle, its_return_decides_the_result)
{
    future_t *ok = future_resolved(NULL);
    future_t *h = future_handle(ok, handle_fails, NULL);
    cr_assert_eq(future_wait(h, NULL), EPERM);
    future_t *failed = future_failed(EIO);
    future_t *h2 = future_handle(failed, handle_fails, NULL);
    cr_assert_eq(future_wait(h2, NULL), EIO + 1);
    future_release(h);
    future_release(h2);
    future_release(ok);
    future_release(failed);
}

CheckedTest(handle, never_runs_inside_the_call)
{
    struct seen s = {0};
    future_t *ok = future_resolved(NULL);
    future_t *h = future_handle(ok, record, &s);
    future_wait(h, NULL);
    cr_assert_eq(atomic_load(&s.runs), 1);
    cr_assert_not(pthread_equal(s.thread, pthread_self()),
                  "ran on the caller's thread");
    future_release(h);
    future_release(ok);
}

static atomic_int reports;
static void count_report(const struct futures_failure *f, void *arg)
{
    (void)f, (void)arg;
    atomic_fetch_add(&reports, 1);
}

CheckedTest(handle, its_input_counts_as_observed)
{
    atomic_store(&reports, 0);
    futures_set_unobserved_handler(count_report, NULL);
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    struct seen s = {0};
    future_t *h = future_handle(f, record, &s);
    future_release(f);
    promise_reject(p, EIO);
    promise_release(p);
    cr_assert_eq(future_wait(h, NULL), 0);
    future_release(h);
    restore_unobserved_check();
    cr_assert_eq(atomic_load(&reports), 0);
}

CheckedTest(handle, cancelled_before_its_input_settles_never_runs)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    struct seen s = {0};
    future_t *h = future_handle(f, record, &s);
    cr_assert(future_cancel(h));
    promise_resolve(p, NULL);
    cr_assert_eq(future_wait(h, NULL), ECANCELED);
    cr_assert_eq(future_wait(f, NULL), 0);
    cr_assert_eq(atomic_load(&s.runs), 0);
    future_release(h);
    future_release(f);
    promise_release(p);
}

CheckedTest(handle, null_arguments_are_einval)
{
    future_t *f = future_resolved(NULL);
    errno = 0;
    cr_assert_null(future_handle(NULL, record, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_handle(f, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
}

/* ------------------------------------------------- then_via / catch_via */

static int whose_thread(void *arg, void **result)
{
    (void)arg;
    *result = (void *)pthread_self();
    return 0;
}

static int record_thread(void *value, void *arg, void **result)
{
    (void)value, (void)arg;
    *result = (void *)pthread_self();
    return 0;
}

static int catch_thread(int error, void *arg, void **result)
{
    (void)error, (void)arg;
    *result = (void *)pthread_self();
    return 0;
}

CheckedTest(via, then_via_runs_on_the_chosen_pool)
{
    pool_t *one = pool_create(1);
    future_t *id = pool_submit(one, whose_thread, NULL);
    void *pool_thread = NULL;
    future_wait(id, &pool_thread);
    /* The input ran elsewhere (a promise): future_then would use the
     * default pool. */
    future_t *in = future_resolved(NULL);
    future_t *c = future_then_via(in, one, record_thread, NULL);
    void *ran_on = NULL;
    cr_assert_eq(future_wait(c, &ran_on), 0);
    cr_assert(pthread_equal((pthread_t)ran_on, (pthread_t)pool_thread));
    future_t *failed = future_failed(EIO);
    future_t *k = future_catch_via(failed, one, catch_thread, NULL);
    cr_assert_eq(future_wait(k, &ran_on), 0);
    cr_assert(pthread_equal((pthread_t)ran_on, (pthread_t)pool_thread));
    future_release(k);
    future_release(failed);
    future_release(c);
    future_release(in);
    future_release(id);
    pool_destroy(one);
}

CheckedTest(via, catch_via_passes_success_through)
{
    pool_t *one = pool_create(1);
    future_t *ok = future_resolved(U2P(5));
    future_t *k = future_catch_via(ok, one, catch_thread, NULL);
    void *v = NULL;
    cr_assert_eq(future_wait(k, &v), 0);
    cr_assert_eq(P2U(v), 5u);
    future_release(k);
    future_release(ok);
    pool_destroy(one);
}

static atomic_int via_runs;
static int counting_then(void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    atomic_fetch_add(&via_runs, 1);
    return 0;
}

CheckedTest(via, a_pool_shut_down_before_the_input_settles_is_eshutdown)
{
    atomic_store(&via_runs, 0);
    pool_t *one = pool_create(1);
    promise_t *p = promise_create();
    future_t *in = promise_future(p);
    future_t *c = future_then_via(in, one, counting_then, NULL);
    pool_shutdown(one, POOL_DRAIN);
    promise_resolve(p, NULL);
    cr_assert_eq(future_wait(c, NULL), ESHUTDOWN);
    cr_assert_eq(atomic_load(&via_runs), 0);
    /* future_then keeps its rule: it still runs (on the default pool). */
    future_t *plain = future_then(in, counting_then, NULL);
    cr_assert_eq(future_wait(plain, NULL), 0);
    cr_assert_eq(atomic_load(&via_runs), 1);
    future_release(plain);
    future_release(c);
    future_release(in);
    promise_release(p);
    pool_destroy(one);
}

CheckedTest(via, null_arguments_are_einval)
{
    pool_t *one = pool_create(1);
    future_t *f = future_resolved(NULL);
    errno = 0;
    cr_assert_null(future_then_via(f, NULL, counting_then, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_then_via(NULL, one, counting_then, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_catch_via(f, one, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    future_release(f);
    pool_destroy(one);
}

CheckedTest(via, a_pool_destroyed_before_the_input_settles_is_eshutdown)
{
    atomic_store(&via_runs, 0);
    pool_t *one = pool_create(1);
    promise_t *p = promise_create();
    future_t *in = promise_future(p);
    future_t *c = future_then_via(in, one, counting_then, NULL);
    pool_destroy(one);
    promise_resolve(p, NULL);
    cr_assert_eq(future_wait(c, NULL), ESHUTDOWN);
    cr_assert_eq(atomic_load(&via_runs), 0);
    future_release(c);
    future_release(in);
    promise_release(p);
}
