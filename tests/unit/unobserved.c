/*
 * Tests of futures_set_unobserved_handler(): a failure nobody waited for
 * or handed on is reported once, when its future's last reference goes;
 * observed failures and cancellations are not.
 */
#define CHECKED_TEST_KEEPS_UNOBSERVED_HANDLER /* the handler is the subject */
#include "helpers.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int reports;
static struct futures_failure last;

static void remember(const struct futures_failure *failure, void *arg)
{
    cr_assert_eq(arg, &reports, "the handler's argument is passed");
    last = *failure;
    atomic_fetch_add(&reports, 1);
}

/* Waits, at most 10 s, until @n reports came from other threads. */
static void await_reports(int n)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        if (atomic_load(&reports) >= n)
            return;
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - start.tv_sec < 10);
}

static void listen(void)
{
    futures_set_unobserved_handler(remember, &reports);
}

CheckedTest(unobserved, a_dropped_failure_is_reported_once)
{
    listen();
    future_release(rejected_future(EIO));
    cr_assert_eq(atomic_load(&reports), 1);
    cr_assert_eq(last.error, EIO);
    cr_assert_str_eq(last.kind, "promise");
    cr_assert_null(last.site);
}

CheckedTest(unobserved, a_failed_task_names_its_function, .timeout = 30)
{
    listen();
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, fail_task, U2P(ENOENT));
    cr_assert(future_wait_for(f, UINT64_C(30000000000)));
    pool_destroy(pool); /* so that ours is the last reference */
    cr_assert_eq(atomic_load(&reports), 0, "reported while referenced");
    future_release(f);
    cr_assert_eq(atomic_load(&reports), 1);
    cr_assert_eq(last.error, ENOENT);
    cr_assert_str_eq(last.kind, "task");
    cr_assert(last.site == (void (*)(void))fail_task);
}

static int recover_with_zero(int error, void *arg, void **result);

CheckedTest(unobserved, waiting_or_watching_observes, .timeout = 30)
{
    listen();
    future_t *a = rejected_future(EIO), *b = rejected_future(EIO), *c = rejected_future(EIO);
    cr_assert_eq(future_wait(a, NULL), EIO);
    future_t *caught = future_catch(b, recover_with_zero, NULL);
    future_t *all = when_all(&c, 1);
    cr_assert_eq(future_wait(caught, NULL), 0);
    cr_assert_eq(future_wait(all, NULL), EIO);
    future_release(a);
    future_release(b);
    future_release(c);
    future_release(caught);
    future_release(all);
    cr_assert_eq(atomic_load(&reports), 0);
}

static int recover_with_zero(int error, void *arg, void **result)
{
    (void)error, (void)arg;
    *result = NULL;
    return 0;
}

static int never_called(void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    return EFAULT;
}

CheckedTest(unobserved, a_chain_reports_once_with_the_first_site, .timeout = 30)
{
    listen();
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, fail_task, U2P(EIO));
    future_t *g = future_then(f, never_called, NULL);
    future_t *h = future_then(g, never_called, NULL);
    future_release(f);
    future_release(g);
    cr_assert(future_wait_for(h, UINT64_C(30000000000)));
    pool_destroy(pool);
    future_release(h);
    cr_assert_eq(atomic_load(&reports), 1);
    cr_assert_eq(last.error, EIO);
    cr_assert_str_eq(last.kind, "then");
    cr_assert(last.site == (void (*)(void))fail_task, "the first failure");
}

CheckedTest(unobserved, cancellations_and_successes_are_not_reported)
{
    listen();
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_cancel(f);
    future_release(f);
    promise_release(p);
    future_release(future_resolved(NULL));
    /* A promise given up with no future handed out: nobody can see it. */
    promise_release(promise_create());
    cr_assert_eq(atomic_load(&reports), 0);
}

CheckedTest(unobserved, a_timeout_nobody_saw_is_reported, .timeout = 30)
{
    listen();
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *t = future_timeout(f, 1000);
    cr_assert(future_wait_for(t, UINT64_C(30000000000)));
    future_release(t);
    await_reports(1); /* the timer thread may hold the last reference */
    cr_assert_eq(atomic_load(&reports), 1, "ETIMEDOUT dropped unseen");
    cr_assert_eq(last.error, ETIMEDOUT);
    cr_assert_str_eq(last.kind, "timeout");
    future_release(f); /* cancelled by the timeout: not reported */
    promise_release(p);
    cr_assert_eq(atomic_load(&reports), 1);
}

CheckedTest(unobserved, a_null_handler_turns_reports_off)
{
    listen();
    futures_set_unobserved_handler(NULL, NULL);
    future_release(rejected_future(EIO));
    cr_assert_eq(atomic_load(&reports), 0);
}

/* Runs the default handler with stderr sent to a file; returns its text. */
static char *printed(const struct futures_failure *failure)
{
    static char text[512];
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    futures_unobserved_print(failure, NULL);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    return text;
}

CheckedTest(unobserved, the_default_prints_one_line_with_error_and_site)
{
    struct futures_failure failure = {EIO, "task",
                                      (void (*)(void))fail_task, NULL};
    char *text = printed(&failure);
    cr_assert(strstr(text, "task"), "%s", text);
    cr_assert(strstr(text, "EIO"), "%s", text);
    cr_assert(strstr(text, "Input/output error"), "%s", text);
    cr_assert(strstr(text, " in "), "names or locates the site: %s", text);
    cr_assert_eq(strchr(text, '\n'), text + strlen(text) - 1, "one line");

    failure.site = NULL;
    text = printed(&failure);
    cr_assert_null(strstr(text, " in "), "%s", text);
}

CheckedTest(unobserved, the_default_is_installed_at_start)
{
    /* A fresh process (Criterion forks one per test) reports to stderr. */
    int saved = dup(STDERR_FILENO);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), STDERR_FILENO);
    future_release(rejected_future(EBADMSG));
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    char text[512];
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    cr_assert(strstr(text, "EBADMSG"), "%s", text);
}

CheckedTest(unobserved, a_rejection_is_reported_whichever_reference_goes_last)
{
    listen();
    promise_t *p = promise_create();
    future_release(promise_future(p)); /* taken, dropped unread */
    promise_reject(p, EIO);
    promise_release(p); /* the last reference */
    cr_assert_eq(atomic_load(&reports), 1);
    cr_assert_eq(last.error, EIO);
}
