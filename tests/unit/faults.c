/*
 * Allocation failure at every site: a workload that uses every part of the
 * API runs with the N-th allocation failing, once ("transient") and from
 * then on ("persistent"), for N = 1 up to the first N the workload never
 * reaches. Every call that fails must say so (NULL with ENOMEM, or a
 * future that fails), nothing may crash, hang or leak, and the library
 * must work again once allocations succeed.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

static int add_one(void *value, void *arg, void **result)
{
    (void)arg;
    *result = U2P(P2U(value) + 1);
    return 0;
}

static int recover(int error, void *arg, void **result)
{
    (void)arg;
    *result = U2P(error);
    return 0;
}

static void drop(future_t **fs, int n)
{
    for (int i = 0; i < n; i++)
        future_release(fs[i]);
}

/* Waits for @f if it exists; a NULL future must come with ENOMEM (or the
 * EAGAIN of a thread that could not start). Counts what settled. */
static int settle_or_refused(future_t *f, int saved_errno)
{
    if (!f) {
        cr_assert(saved_errno == ENOMEM || saved_errno == EAGAIN,
                  "refused with errno %d", saved_errno);
        return 0;
    }
    int rc = future_wait(f, NULL);
    cr_assert(rc == 0 || rc == ENOMEM || rc == EAGAIN || rc == ECANCELED ||
                  rc == ETIMEDOUT || rc == EPIPE || rc == EIO,
              "unexpected outcome %d", rc);
    return 1;
}

#define TRY(expr) (errno = 0, (expr))

/* One pass of everything; returns how many futures settled. */
static int workload(void)
{
    int settled = 0;
    pool_t *pool = TRY(pool_create(2));
    if (!pool) {
        cr_assert(errno == ENOMEM || errno == EAGAIN, "pool: %d", errno);
        return 0;
    }
    future_t *fs[12] = {0};
    int err[12] = {0};
    fs[0] = TRY(pool_submit(pool, value_task, U2P(1))), err[0] = errno;
    fs[1] = TRY(pool_submit_blocking(pool, value_task, U2P(2))), err[1] = errno;
    fs[2] = fs[0] ? TRY(future_then(fs[0], add_one, NULL)) : NULL,
    err[2] = errno;
    fs[3] = TRY(future_failed(EIO)), err[3] = errno;
    fs[4] = fs[3] ? TRY(future_catch(fs[3], recover, NULL)) : NULL,
    err[4] = errno;
    promise_t *p = TRY(promise_create());
    int perr = errno;
    fs[5] = p ? promise_future(p) : NULL, err[5] = perr;
    fs[6] = TRY(future_delay(1000000)), err[6] = errno;
    fs[7] = fs[5] ? TRY(future_timeout(fs[5], 2000000)) : NULL, err[7] = errno;
    future_t *some[3] = {fs[0], fs[1], fs[6]};
    bool have = some[0] && some[1] && some[2];
    fs[8] = have ? TRY(when_all(some, 3)) : NULL, err[8] = errno;
    fs[9] = have ? TRY(when_any(some, 3)) : NULL, err[9] = errno;
    loop_t *loop = TRY(loop_create());
    if (loop) {
        fs[10] = TRY(loop_submit(loop, value_task, NULL)), err[10] = errno;
        fs[11] = fs[6] ? TRY(future_then_on(fs[6], loop, add_one, NULL)) : NULL;
        err[11] = errno;
        cr_assert_eq(loop_run(loop), 0);
    }
    if (p)
        promise_resolve(p, NULL);
    for (int i = 0; i < 12; i++) {
        if (i == 10 || i == 11) {
            if (!loop)
                continue;
            if (!fs[i] && i == 11 && !fs[6])
                continue;
        } else if (!fs[i] && ((i == 2 && !fs[0]) || (i == 4 && !fs[3]) ||
                              (i == 7 && !fs[5]) || (i >= 8 && !have))) {
            continue; /* never asked for: its input was refused */
        }
        if (i == 5 && !p)
            continue;
        settled += settle_or_refused(fs[i], err[i]);
    }
    drop(fs, 12);
    promise_release(p);
    loop_destroy(loop);
    pool_destroy(pool);
    return settled;
}

static void sweep(bool persistent)
{
    long sites = 0;
    for (long n = 1; n < 100000; n++) {
        long fired = fut__fault_fired(FUT_FAULT_ALLOC);
        fut__fault_set(FUT_FAULT_ALLOC, n, persistent);
        workload();
        bool reached = fut__fault_fired(FUT_FAULT_ALLOC) > fired;
        fut__fault_set(FUT_FAULT_ALLOC, 0, false);
        if (!reached)
            break; /* the workload needs fewer allocations than n */
        sites++;
    }
    cr_assert_gt(sites, 10, "the sweep reached only %ld sites", sites);
    /* Allocations succeed again: everything works. */
    cr_assert_geq(workload(), 10, "the library did not recover");
    cr_log_info("%s: %ld allocation sites failed in turn",
                persistent ? "persistent" : "transient", sites);
}

CheckedTest(faults, every_allocation_can_fail_once, .timeout = 240)
{
    sweep(false);
    expect_no_leaks();
}

CheckedTest(faults, every_allocation_can_fail_from_then_on, .timeout = 240)
{
    sweep(true);
    expect_no_leaks();
}
