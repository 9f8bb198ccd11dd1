/*
 * waiting_destructors.c - the fixes for waits that hung, under TSan and
 * valgrind: user destructors that wait, decided on the timer thread (a
 * timeout cancelling the continuation) or inside a notification pass (a
 * rejection skipping it); blocking jobs that wait for blocking jobs at a
 * small limit while another thread lowers and raises it; and pass-through
 * chains released from several threads at once.
 */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <time.h>

#define MS UINT64_C(1000000)

static atomic_long destructors_run;
static sem_t destructor_ended; /* posted by each, wherever it runs */

/* A destructor that waits for a delay: only the timer thread fires it. */
static void free_after_a_delay(void *arg)
{
    (void)arg;
    future_t *delay = future_delay(MS / 10);
    CHECK(delay && future_wait(delay, NULL) == 0, "delay");
    future_release(delay);
    atomic_fetch_add(&destructors_run, 1);
    sem_post(&destructor_ended);
}

/* Waits for @n destructors, some of which run on the default pool after
 * their continuation has settled; false if they take over a minute. */
static bool destructors_ended(long n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    for (long i = 0; i < n; i++)
        while (sem_timedwait(&destructor_ended, &deadline) != 0)
            if (errno != EINTR)
                return false;
    return true;
}

static int never_runs(void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    return EFAULT;
}

/* Each round, a timeout cancels a continuation whose destructor waits,
 * and a rejection skips another whose destructor waits. */
static void *timeouts_and_rejections(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        promise_t *p = promise_create();
        future_t *f = promise_future(p);
        future_t *g = future_then_ex(f, never_runs, NULL, free_after_a_delay);
        future_t *t = future_timeout(g, MS / 10);
        future_t *h = future_then_ex(f, never_runs, NULL, free_after_a_delay);
        CHECK(future_wait(t, NULL) == ETIMEDOUT, "timeout");
        CHECK(promise_reject(p, EIO) == 0, "reject");
        CHECK(future_wait(h, NULL) == EIO, "skipped then");
        future_release(h);
        future_release(t);
        future_release(g);
        future_release(f);
        promise_release(p);
    }
    return NULL;
}

struct nest {
    pool_t *pool;
    int depth;
};

static int job_waiting_for_job(void *arg, void **result)
{
    struct nest *n = arg;
    *result = NULL;
    if (n->depth == 0)
        return 0;
    struct nest inner = {n->pool, n->depth - 1};
    future_t *f = pool_submit_blocking(n->pool, job_waiting_for_job, &inner);
    CHECK(f, "submit: %d", errno);
    int error = future_wait(f, NULL);
    future_release(f);
    return error;
}

struct limits {
    pool_t *pool;
    long rounds;
    atomic_bool done;
};

static void *nested_jobs(void *arg)
{
    struct limits *l = arg;
    for (long i = 0; i < l->rounds; i++) {
        struct nest top = {l->pool, 3};
        future_t *f = pool_submit_blocking(l->pool, job_waiting_for_job, &top);
        CHECK(f && future_wait(f, NULL) == 0, "nested jobs");
        future_release(f);
    }
    atomic_store(&l->done, true);
    return NULL;
}

/* Moves the limit while the jobs run. It yields between moves: under
 * valgrind, which runs one thread at a time, a changer that never lets go
 * of the CPU starves the jobs it races, and one run took 10 s, the next
 * over 8 minutes. On real cores the two still race as before. */
static void *changing_the_limit(void *arg)
{
    struct limits *l = arg;
    for (size_t k = 0; !atomic_load(&l->done); k++) {
        CHECK(pool_set_blocking_limit(l->pool, 1 + k % 3) == 0, "limit");
        sched_yield();
    }
    return NULL;
}

static void free_value(void *v)
{
    atomic_fetch_add((atomic_long *)v, 1);
}

static int recover(int error, void *arg, void **result)
{
    (void)error;
    *result = arg;
    return 0;
}

/* Pass-through chains, freed in constant stack, from many threads. */
static void *chains(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        atomic_long frees = 0;
        future_t *f = future_resolved(&frees);
        CHECK(future_set_result_free(f, free_value) == 0, "result_free");
        for (int k = 0; k < 1000; k++) {
            future_t *next = k % 2 ? future_catch(f, recover, NULL)
                                   : future_timeout(f, 3600000 * MS);
            CHECK(next, "link");
            future_release(f);
            f = next;
        }
        CHECK(future_wait(f, NULL) == 0, "chain");
        future_release(f);
        CHECK(atomic_load(&frees) == 1, "freed %ld times", atomic_load(&frees));
    }
    return NULL;
}

int main(void)
{
    long light = getenv("STRESS_LIGHT") != NULL;
    long n[2] = {rounds(light ? 20 : 200), rounds(light ? 20 : 200)};
    sem_init(&destructor_ended, 0, 0);
    run_threads(2, timeouts_and_rejections, n, sizeof n[0]);
    CHECK(destructors_ended(4 * n[0]), "%ld destructors ran",
          atomic_load(&destructors_run));
    CHECK(atomic_load(&destructors_run) == 4 * n[0], "%ld destructors ran",
          atomic_load(&destructors_run));
    printf("waiting destructors: %ld ran, none hung\n",
           atomic_load(&destructors_run));

    struct limits l = {.pool = pool_create(1), .rounds = rounds(light ? 50 : 500)};
    CHECK(l.pool, "pool");
    pthread_t changer;
    CHECK(pthread_create(&changer, NULL, changing_the_limit, &l) == 0, "thread");
    nested_jobs(&l);
    pthread_join(changer, NULL);
    pool_destroy(l.pool);
    printf("nested blocking jobs: %ld rounds at changing limits of 1-3\n",
           l.rounds);

    long c[2] = {rounds(light ? 5 : 50), rounds(light ? 5 : 50)};
    run_threads(2, chains, c, sizeof c[0]);
    printf("pass-through chains: %ld of 1,000 links released\n", 2 * c[0]);
    return 0;
}
