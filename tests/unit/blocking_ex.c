/*
 * Tests of pool_submit_blocking_ex(): its destructor runs exactly once on
 * every path, as pool_submit_ex()'s does.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

/* ----------------------------------------------- pool_submit_blocking_ex */

static atomic_int frees;
static void count_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&frees, 1);
}

CheckedTest(blocking_ex, the_destructor_runs_once_after_the_job)
{
    atomic_store(&frees, 0);
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit_blocking_ex(pool, value_task, U2P(5), count_free);
    void *v = NULL;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(P2U(v), 5u);
    future_release(f);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&frees), 1);
}

CheckedTest(blocking_ex, the_destructor_runs_once_when_cancelled_queued)
{
    atomic_store(&frees, 0);
    pool_t *pool = pool_create(1);
    cr_assert_eq(pool_set_blocking_limit(pool, 1), 0);
    struct gate g;
    gate_init(&g);
    future_t *busy = pool_submit_blocking(pool, gated_task, &g);
    gate_await_started(&g, 1); /* the one blocking thread is taken */
    future_t *f = pool_submit_blocking_ex(pool, value_task, NULL, count_free);
    cr_assert(future_cancel(f));
    cr_assert_eq(atomic_load(&frees), 1);
    gate_open(&g);
    future_wait(busy, NULL);
    future_release(busy);
    future_release(f);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&frees), 1);
    gate_destroy(&g);
}

CheckedTest(blocking_ex, refused_or_invalid_it_runs_before_null)
{
    atomic_store(&frees, 0);
    pool_t *pool = pool_create(1);
    pool_shutdown(pool, POOL_DRAIN);
    errno = 0;
    cr_assert_null(pool_submit_blocking_ex(pool, value_task, NULL, count_free));
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(atomic_load(&frees), 1);
    errno = 0;
    cr_assert_null(pool_submit_blocking_ex(NULL, value_task, NULL, count_free));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(pool_submit_blocking_ex(pool, NULL, NULL, count_free));
    cr_assert_eq(atomic_load(&frees), 3);
    pool_destroy(pool);
}

CheckedTest(blocking_ex, without_memory_it_runs_before_null)
{
    atomic_store(&frees, 0);
    pool_t *pool = pool_create(1);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    future_t *f = pool_submit_blocking_ex(pool, value_task, NULL, count_free);
    fut__fault_set(FUT_FAULT_ALLOC, 0, false);
    cr_assert_null(f);
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(atomic_load(&frees), 1);
    pool_destroy(pool);
}
