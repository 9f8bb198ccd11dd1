/*
 * Tests of failure messages: task_fail(), promise_reject_message(),
 * future_error_message(), and where they go.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int fails_with_text(void *arg, void **result)
{
    (void)result;
    return task_fail(EIO, "HTTP %d from %s", 404, (const char *)arg);
}

CheckedTest(messages, a_task_failure_carries_its_message)
{
    future_t *f = pool_submit(pool_default(), fails_with_text, "/x");
    cr_assert_eq(future_wait(f, NULL), EIO);
    cr_assert_str_eq(future_error_message(f), "HTTP 404 from /x");
    future_release(f);
}

static int long_text(void *arg, void **result)
{
    (void)arg, (void)result;
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    return task_fail(EMSGSIZE, "%s", big);
}

CheckedTest(messages, a_long_message_is_cut_at_255_bytes)
{
    future_t *f = pool_submit(pool_default(), long_text, NULL);
    cr_assert_eq(future_wait(f, NULL), EMSGSIZE);
    const char *m = future_error_message(f);
    cr_assert_not_null(m);
    cr_assert_eq(strlen(m), 255u);
    cr_assert_eq(m[254], 'a');
    future_release(f);
}

static int noted_then_succeeds(void *arg, void **result)
{
    (void)arg;
    task_fail(EIO, "changed my mind");
    *result = U2P(3);
    return 0;
}

static int noted_twice(void *arg, void **result)
{
    (void)arg, (void)result;
    task_fail(EIO, "first");
    return task_fail(ENOENT, "second");
}

CheckedTest(messages, success_drops_it_and_the_last_one_wins)
{
    future_t *ok = pool_submit(pool_default(), noted_then_succeeds, NULL);
    cr_assert_eq(future_wait(ok, NULL), 0);
    cr_assert_null(future_error_message(ok));
    future_t *twice = pool_submit(pool_default(), noted_twice, NULL);
    cr_assert_eq(future_wait(twice, NULL), ENOENT);
    cr_assert_str_eq(future_error_message(twice), "second");
    future_release(ok);
    future_release(twice);
}

CheckedTest(messages, outside_a_task_nothing_is_recorded)
{
    cr_assert_eq(task_fail(EPERM, "nobody hears %d", 1), EPERM);
    future_t *f = pool_submit(pool_default(), fail_task, U2P(EIO));
    cr_assert_eq(future_wait(f, NULL), EIO);
    cr_assert_null(future_error_message(f), "a failure without a message");
    future_release(f);
}

CheckedTest(messages, none_for_success_pending_or_null)
{
    promise_t *p = promise_create();
    future_t *pending = promise_future(p);
    cr_assert_null(future_error_message(pending));
    cr_assert_null(future_error_message(NULL));
    promise_resolve(p, NULL);
    cr_assert_null(future_error_message(pending));
    future_release(pending);
    promise_release(p);
}

CheckedTest(messages, promise_reject_message_records_one)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    cr_assert_eq(promise_reject_message(p, ECONNRESET, "peer %s left", "b"), 0);
    cr_assert_eq(future_wait(f, NULL), ECONNRESET);
    cr_assert_str_eq(future_error_message(f), "peer b left");
    cr_assert_eq(promise_reject_message(p, EIO, "late"), EALREADY);
    cr_assert_str_eq(future_error_message(f), "peer b left");
    cr_assert_eq(promise_reject_message(NULL, EIO, "x"), EINVAL);
    cr_assert_eq(promise_reject_message(p, 0, "x"), EINVAL);
    future_release(f);
    promise_release(p);
}

static int never(void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    return EFAULT;
}

CheckedTest(messages, pass_through_then_timeout_and_when_all)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *then = future_then(f, never, NULL);
    future_t *timed = future_timeout(f, UINT64_C(60) * 1000000000);
    future_t *ok = future_resolved(NULL);
    future_t *other = rejected_future(EIO); /* no message, later index */
    future_t *ins[3] = {ok, f, other};
    future_t *all = when_all(ins, 3);
    promise_reject_message(p, ETIMEDOUT, "upstream %d s", 30);
    future_t *outs[3] = {then, timed, all};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(future_wait(outs[i], NULL), ETIMEDOUT, "output %d", i);
        cr_assert_str_eq(future_error_message(outs[i]), "upstream 30 s",
                         "output %d", i);
        future_release(outs[i]);
    }
    future_release(ok);
    future_release(other);
    future_release(f);
    promise_release(p);
}

CheckedTest(messages, when_all_takes_the_message_of_the_input_it_reports)
{
    promise_t *p = promise_create();
    future_t *late = promise_future(p);
    future_t *early = pool_submit(pool_default(), fails_with_text, "/early");
    future_wait(early, NULL); /* settled before when_all looks */
    future_t *ins[2] = {late, early};
    future_t *all = when_all(ins, 2);
    promise_reject_message(p, ENOENT, "index zero");
    cr_assert_eq(future_wait(all, NULL), ENOENT);
    cr_assert_str_eq(future_error_message(all), "index zero");
    future_t *ins2[2] = {early, late};
    future_t *all2 = when_all(ins2, 2);
    cr_assert_eq(future_wait(all2, NULL), EIO);
    cr_assert_str_eq(future_error_message(all2), "HTTP 404 from /early");
    future_release(all);
    future_release(all2);
    future_release(early);
    future_release(late);
    promise_release(p);
}

static char reported[300];
static sem_t report_came;
static void keep_message(const struct futures_failure *f, void *arg)
{
    (void)arg;
    snprintf(reported, sizeof reported, "%s", f->message ? f->message : "-");
    sem_post(&report_came);
}

CheckedTest(messages, the_unobserved_handler_is_told_the_message)
{
    reported[0] = '\0';
    sem_init(&report_came, 0, 0);
    futures_set_unobserved_handler(keep_message, NULL);
    future_t *f = pool_submit(pool_default(), fails_with_text, "/lost");
    /* future_wait_for(), not future_wait(): that would observe it */
    cr_assert(future_wait_for(f, UINT64_MAX));
    future_release(f);
    /* The last reference may be the worker's, dropped a moment later. */
    sem_wait(&report_came);
    restore_unobserved_check();
    sem_destroy(&report_came);
    cr_assert_str_eq(reported, "HTTP 404 from /lost");
}

static int fails_in_loop(void *arg, void **result)
{
    (void)arg, (void)result;
    return task_fail(EBADMSG, "loop %s", "said no");
}

CheckedTest(messages, loop_tasks_and_blocking_jobs_carry_them_too)
{
    loop_t *loop = loop_create();
    future_t *lf = loop_submit(loop, fails_in_loop, NULL);
    loop_run(loop);
    cr_assert_eq(future_wait(lf, NULL), EBADMSG);
    cr_assert_str_eq(future_error_message(lf), "loop said no");
    future_t *job = pool_submit_blocking(pool_default(), fails_with_text, "/j");
    cr_assert_eq(future_wait(job, NULL), EIO);
    cr_assert_str_eq(future_error_message(job), "HTTP 404 from /j");
    future_release(lf);
    future_release(job);
    loop_destroy(loop);
}

CheckedTest(messages, without_memory_the_failure_goes_without_its_message)
{
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false); /* the message's allocation */
    cr_assert_eq(promise_reject_message(p, EIO, "lost"), 0);
    fut__fault_set(FUT_FAULT_ALLOC, 0, false);
    cr_assert_eq(future_wait(pf, NULL), EIO);
    cr_assert_null(future_error_message(pf));
    future_release(pf);
    promise_release(p);
}

static int rethrow(int error, void *arg, void **result)
{
    (void)arg, (void)result;
    return error;
}

static int handle_rethrow(int error, void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    return error;
}

static int catch_retells(int error, void *arg, void **result)
{
    (void)arg, (void)result;
    return task_fail(error, "retold");
}

CheckedTest(messages, a_catch_returning_its_error_passes_the_message_on)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *c = future_catch(f, rethrow, NULL);
    future_t *h = future_handle(f, handle_rethrow, NULL);
    future_t *own = future_catch(f, catch_retells, NULL);
    promise_reject_message(p, EPIPE, "pipe %d closed", 3);
    cr_assert_eq(future_wait(c, NULL), EPIPE);
    cr_assert_str_eq(future_error_message(c), "pipe 3 closed");
    cr_assert_eq(future_wait(h, NULL), EPIPE);
    cr_assert_str_eq(future_error_message(h), "pipe 3 closed");
    cr_assert_eq(future_wait(own, NULL), EPIPE);
    cr_assert_str_eq(future_error_message(own), "retold");
    future_release(c);
    future_release(h);
    future_release(own);
    future_release(f);
    promise_release(p);
}

static future_t *step_fails(void *value, void *arg)
{
    (void)value, (void)arg;
    errno = task_fail(EHOSTUNREACH, "no route to %s", "b");
    return NULL;
}

CheckedTest(messages, a_compose_step_failing_with_task_fail_passes_it)
{
    future_t *in = future_resolved(NULL);
    future_t *r = future_compose(in, step_fails, NULL);
    cr_assert_eq(future_wait(r, NULL), EHOSTUNREACH);
    cr_assert_str_eq(future_error_message(r), "no route to b");
    future_release(r);
    future_release(in);
}
