/*
 * dump_race.c - futures_dump() while other threads submit, settle, wait,
 * block in waits and end, for TSan and valgrind: every dump completes and
 * reads nothing another thread frees meanwhile. The tasks label themselves
 * (futures_trace_name()), and a waiting one may run the other, labelled,
 * on top of its own frame: dumps read labels as their frames come and go.
 */
#include "common.h"

#include <stdio.h>
#include <time.h>

static int quick(void *arg, void **result)
{
    futures_trace_name("quick");
    *result = arg;
    return 0;
}

/* Long enough that its waiter blocks, and a dump explains that wait while
 * the task settles (a review's TSan run found a dump reading a task's
 * function as the task's outcome was written over it). */
static int naps(void *arg, void **result)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
    *result = arg;
    return 0;
}

static int waits_for_quick(void *arg, void **result)
{
    futures_trace_name("waits for quick");
    future_t *f = pool_submit(arg, quick, NULL);
    int e = future_wait(f, result);
    future_release(f);
    return e;
}

struct worker {
    pool_t *pool;
    int n;
};

static void *churn(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->n; i++) {
        task_fn fns[] = {quick, waits_for_quick, naps};
        future_t *f = pool_submit(w->pool, fns[i % 3], w->pool);
        CHECK(f != NULL, "submit");
        future_t *d = future_delay(1000);
        future_wait(f, NULL);
        future_wait(d, NULL);
        future_release(f);
        future_release(d);
    }
    return NULL;
}

static void *dumper(void *arg)
{
    int *n = arg;
    FILE *null = fopen("/dev/null", "w");
    CHECK(null != NULL, "fopen");
    for (int i = 0; i < *n; i++)
        CHECK(futures_dump(null) == 0, "dump %d", i);
    fclose(null);
    return NULL;
}

int main(void)
{
    bool light = getenv("STRESS_LIGHT") != NULL;
    pool_t *pool = pool_create(2);
    struct worker w[3];
    for (int i = 0; i < 3; i++)
        w[i] = (struct worker){pool, (int)rounds(light ? 200 : 2000)};
    int dumps = (int)rounds(light ? 50 : 500);
    pthread_t d;
    pthread_create(&d, NULL, dumper, &dumps);
    run_threads(3, churn, w, sizeof w[0]);
    pthread_join(d, NULL);
    pool_destroy(pool);
    printf("dump_race: %d dumps beside %d tasks on 3 threads\n", dumps,
           3 * w[0].n);
    return 0;
}
