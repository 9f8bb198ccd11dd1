/*
 * blocking_time_loop.c - the parts of issue 4 under contention: blocking
 * jobs whose threads start with the pool lock dropped and retire at once,
 * delays and timeouts racing cancels, and continuations completing onto a
 * loop from many threads while it runs. Every outcome is accounted for.
 */
#include "common.h"

#include <errno.h>

enum { THREADS = 6 };

static pool_t *pool;
static loop_t *loop;
static atomic_long jobs_ran, loop_ran, timeouts, in_time;

static int job(void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&jobs_ran, 1);
    *result = NULL;
    return 0;
}

static int on_loop(void *value, void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&loop_ran, 1);
    *result = value;
    return 0;
}

static void *hammer(void *arg)
{
    long n = *(long *)arg;
    uint32_t seed = (uint32_t)(uintptr_t)&n | 1;
    for (long i = 0; i < n; i++) {
        future_t *j = pool_submit_blocking(pool, job, NULL);
        future_t *d = future_delay(next_random(&seed) % 200000);
        future_t *t = future_timeout(j, next_random(&seed) % 300000);
        future_t *c = future_then_on(d, loop, on_loop, NULL);
        CHECK(j && d && t && c, "allocation failed at round %ld", i);
        if (next_random(&seed) % 4 == 0)
            future_cancel(d);
        int rt = future_wait(t, NULL), rj = future_wait(j, NULL);
        int rd = future_wait(d, NULL), rc = future_wait(c, NULL);
        CHECK(rj == 0 || rj == ECANCELED, "job: %d", rj);
        CHECK(rt == 0 ? rj == 0 : rt == ETIMEDOUT, "timeout: %d", rt);
        atomic_fetch_add(rt ? &timeouts : &in_time, 1);
        CHECK(rd == 0 || rd == ECANCELED, "delay: %d", rd);
        CHECK(rc == rd, "continuation %d for delay %d", rc, rd);
        future_release(j);
        future_release(d);
        future_release(t);
        future_release(c);
    }
    return NULL;
}

static void *run_loop(void *arg)
{
    (void)arg;
    CHECK(loop_run(loop) == 0, "loop_run");
    return NULL;
}

static int keep_alive(void *value, void *arg, void **result)
{
    (void)value;
    (void)arg;
    *result = NULL;
    return 0;
}

int main(void)
{
    long n = rounds(400);
    pool = pool_create(2);
    loop = loop_create();
    CHECK(pool && loop, "create");
    pool_set_idle_timeout(pool, 0); /* threads retire as soon as idle */
    pool_set_blocking_limit(pool, 8);

    /* The loop runs until this promise lets its continuation go. */
    promise_t *done = promise_create();
    future_t *df = promise_future(done);
    future_t *hold = future_then_on(df, loop, keep_alive, NULL);
    pthread_t lt;
    pthread_create(&lt, NULL, run_loop, NULL);

    long per[THREADS];
    for (int i = 0; i < THREADS; i++)
        per[i] = n;
    run_threads(THREADS, hammer, per, sizeof per[0]);

    promise_resolve(done, NULL);
    pthread_join(lt, NULL);
    CHECK(future_wait(hold, NULL) == 0, "hold");
    future_release(hold);
    future_release(df);
    promise_release(done);
    loop_destroy(loop);
    pool_destroy(pool);
    printf("blocking_time_loop: %ld jobs ran, %ld timeouts, %ld in time, "
           "%ld loop callbacks\n",
           atomic_load(&jobs_ran), atomic_load(&timeouts),
           atomic_load(&in_time), atomic_load(&loop_ran));
    return 0;
}
