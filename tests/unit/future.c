/* Tests of the future core (lib/future.c, lib/settle.c, lib/wait.c):
 * references, outcomes, waiting, cancelling. */
#include "helpers.h"

#include <errno.h>
#include <string.h>

CheckedTest(future, resolved_future_is_settled_with_its_value)
{
    int x;
    future_t *f = future_resolved(&x);
    cr_assert(future_is_ready(f));
    void *v = NULL;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, &x);
    future_release(f);
    expect_no_leaks();
}

CheckedTest(future, failed_future_reports_its_error_and_leaves_value_alone)
{
    future_t *f = future_failed(ENOENT);
    void *v = U2P(7);
    cr_assert_eq(future_wait(f, &v), ENOENT);
    cr_assert_eq(v, U2P(7), "a failed wait must not write the value");
    future_release(f);
}

CheckedTest(future, failed_rejects_non_positive_errors)
{
    errno = 0;
    cr_assert_null(future_failed(0));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(future_failed(-5));
    cr_assert_eq(errno, EINVAL);
}

CheckedTest(future, null_arguments_get_clear_errors)
{
    cr_assert_eq(future_wait(NULL, NULL), EINVAL);
    cr_assert_not(future_wait_for(NULL, 1000));
    cr_assert_not(future_is_ready(NULL));
    cr_assert_null(future_retain(NULL));
    future_release(NULL);
    cr_assert_not(future_cancel(NULL));
    cr_assert_not(task_cancelled());
}

CheckedTest(future, retain_adds_a_reference_that_release_drops)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    cr_assert_eq(future_retain(f), f);
    future_release(f);
    /* Still one reference: the future must be usable. */
    cr_assert_not(future_is_ready(f));
    promise_resolve(p, U2P(3));
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(v, U2P(3));
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

struct many_waiters {
    future_t *f;
    atomic_int same;
};

static void *wait_repeatedly(void *arg)
{
    struct many_waiters *w = arg;
    for (int i = 0; i < 100; i++) {
        void *v = NULL;
        if (future_wait(w->f, &v) == 0 && v == U2P(99))
            atomic_fetch_add(&w->same, 1);
    }
    return NULL;
}

CheckedTest(future, waiters_on_many_threads_all_see_the_same_outcome)
{
    promise_t *p = promise_create();
    struct many_waiters w = {promise_future(p), 0};
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, wait_repeatedly, &w);
    promise_resolve(p, U2P(99));
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&w.same), 800);
    future_release(w.f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(future, wait_for_times_out_then_sees_the_settlement)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    cr_assert_not(future_wait_for(f, 0), "0 only polls");
    cr_assert_not(future_wait_for(f, 2000000), "nothing settles it");
    promise_reject(p, EIO);
    cr_assert(future_wait_for(f, 0));
    cr_assert(future_wait_for(f, UINT64_MAX), "a huge timeout must not wrap");
    cr_assert_eq(future_wait(f, NULL), EIO);
    future_release(f);
    promise_release(p);
}

static int slow_value(void *arg, void **result)
{
    gate_pass(arg);
    *result = U2P(5);
    return 0;
}

CheckedTest(future, wait_for_returns_true_when_settled_in_time, .timeout = 30)
{
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, slow_value, &g);
    gate_await_started(&g, 1);
    cr_assert_not(future_is_ready(f));
    gate_open(&g);
    cr_assert(future_wait_for(f, 60 * UINT64_C(1000000000)));
    future_release(f);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(future, values_belong_to_the_user_and_are_never_freed)
{
    char *buf = malloc(16);
    strcpy(buf, "still mine");
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, value_task, buf);
    void *v;
    cr_assert_eq(future_wait(f, &v), 0);
    future_release(f);
    pool_destroy(pool);
    cr_assert_str_eq(v, "still mine");
    free(buf); /* a second free would be caught by ASan */
    expect_no_leaks();
}

static int post_and_succeed(void *arg, void **result)
{
    (void)result;
    sem_post(arg);
    return 0;
}

CheckedTest(future, released_task_still_runs, .timeout = 30)
{
    sem_t ran;
    sem_init(&ran, 0, 0);
    pool_t *pool = pool_create(2);
    for (int i = 0; i < 100; i++)
        future_release(pool_submit(pool, post_and_succeed, &ran));
    for (int i = 0; i < 100; i++)
        sem_wait(&ran);
    pool_destroy(pool);
    sem_destroy(&ran);
    expect_no_leaks();
}

struct self_wait {
    struct gate gate;
    future_t *self;
    int wait_result;
    bool wait_for_result;
};

static int wait_for_myself(void *arg, void **result)
{
    struct self_wait *s = arg;
    (void)result;
    gate_pass(&s->gate); /* until the test has stored our future */
    s->wait_result = future_wait(s->self, NULL);
    s->wait_for_result = future_wait_for(s->self, 1000);
    return 0;
}

CheckedTest(future, a_task_waiting_for_itself_gets_edeadlk, .timeout = 30)
{
    struct self_wait s = {.wait_result = -1, .wait_for_result = true};
    gate_init(&s.gate);
    pool_t *pool = pool_create(1);
    s.self = pool_submit(pool, wait_for_myself, &s);
    gate_await_started(&s.gate, 1);
    gate_open(&s.gate);
    cr_assert_eq(future_wait(s.self, NULL), 0);
    cr_assert_eq(s.wait_result, EDEADLK);
    cr_assert_not(s.wait_for_result);
    future_release(s.self);
    pool_destroy(pool);
    gate_destroy(&s.gate);
}
