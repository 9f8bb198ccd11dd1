/*
 * drain_race.c - a draining pool must not stop while a job is between its
 * queue and its run. A new blocking thread takes its job and then starts
 * more threads with the pool lock dropped; a core thread that finishes in
 * that window must still see the job as running. The symptom was a job
 * running on a STOPPED pool and its continuation sent off the pool, which
 * breaks "continuations still run on @pool while it drains".
 */
#include "common.h"
#include "pool_internal.h" /* the pool's state, fault injection */

#include <sched.h>

static atomic_int go, ran_stopped, off_pool;
static pool_t *pool;

static int busy_until_go(void *arg, void **result)
{
    (void)arg;
    (void)result;
    while (!atomic_load(&go))
        sched_yield();
    return 0;
}

static int job(void *arg, void **result)
{
    (void)arg;
    (void)result;
    if (atomic_load(&pool->shared.state) == FUT_POOL_STOPPED)
        atomic_fetch_add(&ran_stopped, 1);
    return 0;
}

static int continuation(void *value, void *arg, void **result)
{
    (void)value;
    (void)result;
    if (fut__pool_id_of_thread() != (unsigned)(uintptr_t)arg)
        atomic_fetch_add(&off_pool, 1);
    return 0;
}

int main(void)
{
    enum { N = 8 };
    long n = rounds(300);
    for (long round = 0; round < n; round++) {
        atomic_store(&go, 0);
        pool = pool_create(1);
        future_t *busy = pool_submit(pool, busy_until_go, NULL);
        /* Jobs whose threads fail to start queue up; one start that
         * succeeds then fans out while they are still queued. */
        fut__fault_set(FUT_FAULT_THREAD, 1, true);
        future_t *jobs[N + 1], *conts[N + 1];
        for (int i = 0; i < N; i++)
            jobs[i] = pool_submit_blocking(pool, job, NULL);
        fut__fault_set(FUT_FAULT_THREAD, 0, false);
        jobs[N] = pool_submit_blocking(pool, job, NULL);
        for (int i = 0; i <= N; i++)
            conts[i] =
                future_then(jobs[i], continuation, (void *)(uintptr_t)pool->id);
        atomic_store(&go, 1);
        pool_destroy(pool);
        for (int i = 0; i <= N; i++) {
            CHECK(future_wait(conts[i], NULL) == 0, "continuation %d", i);
            future_release(conts[i]);
            future_release(jobs[i]);
        }
        future_release(busy);
    }
    CHECK(atomic_load(&ran_stopped) == 0 && atomic_load(&off_pool) == 0,
          "%d jobs ran on a stopped pool, %d continuations ran off it",
          atomic_load(&ran_stopped), atomic_load(&off_pool));
    printf("drain_race: %ld rounds, no job ran on a stopped pool\n", n);
    return 0;
}
