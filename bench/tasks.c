/*
 * tasks.c - the scheduler's hot paths, as the performance issue defines
 * them. Each workload prints one line with the median of BENCH_RUNS runs:
 *
 *   W1   1,000,000 trivial tasks on 2 workers, when_all, wait, release
 *   W1s  the same with about 1 us of CPU work per task
 *   W3   a chain of 100,000 future_then hops on a promise, resolved once:
 *        building it (future_then on a pending future), running it, and
 *        the two together, the figure the layering issue targets
 *   W4   one task submitted to an idle pool and waited for, 10,000 times
 *        with 1 ms between (idle) and back to back (hot)
 *   W5   bytes per queued task, future included: 1,000,000 tasks queued
 *        behind blocked workers, RSS growth / n
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

static atomic_long counter;

static int trivial(void *arg, void **result)
{
    (void)arg;
    (void)result;
    atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    return 0;
}

static int one_microsecond(void *arg, void **result)
{
    (void)arg;
    (void)result;
    spin(spin_per_us);
    return 0;
}

/* W1 and W1s: @n tasks of @fn; returns ns per task. */
static double fan_out(pool_t *pool, size_t n, task_fn fn)
{
    future_t **fs = malloc(n * sizeof *fs);
    double start = now_s();
    for (size_t i = 0; i < n; i++)
        if (!(fs[i] = pool_submit(pool, fn, NULL)))
            die("pool_submit");
    future_t *all = when_all(fs, n);
    if (!all || future_wait(all, NULL))
        die("when_all");
    future_release(all);
    for (size_t i = 0; i < n; i++)
        future_release(fs[i]);
    double took = now_s() - start;
    free(fs);
    return took * 1e9 / (double)n;
}

static int hop(void *value, void *arg, void **result)
{
    (void)arg;
    *result = (void *)((uintptr_t)value + 1);
    return 0;
}

/* W3: ns per hop to build the chain (future_then on a pending future)
 * and to run it, from the resolve to the end of the chain. */
struct chain_cost {
    double build, run;
};

static struct chain_cost chain(size_t n)
{
    promise_t *p = promise_create();
    future_t *root = promise_future(p), *g = future_retain(root);
    double start = now_s();
    for (size_t i = 0; i < n; i++) {
        future_t *next = future_then(g, hop, NULL);
        if (!next)
            die("future_then");
        future_release(g);
        g = next;
    }
    double built = now_s();
    promise_resolve(p, NULL);
    void *v;
    future_wait(g, &v);
    double ran = now_s();
    if ((uintptr_t)v != n)
        die("chain value");
    future_release(g);
    future_release(root);
    promise_release(p);
    return (struct chain_cost){(built - start) * 1e9 / (double)n,
                               (ran - built) * 1e9 / (double)n};
}

/* W4: latencies in us of submit + wait on an idle (gap) or hot pool. */
static void round_trips(pool_t *pool, double *us, size_t n, uint64_t gap_ns)
{
    for (size_t i = 0; i < n; i++) {
        if (gap_ns)
            block_for_ns(gap_ns);
        uint64_t start = now_ns();
        future_t *f = pool_submit(pool, trivial, NULL);
        future_wait(f, NULL);
        us[i] = (double)(now_ns() - start) / 1e3;
        future_release(f);
    }
}

struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
};

static int wait_at_gate(void *arg, void **result)
{
    struct gate *g = arg;
    (void)result;
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

/* W5: bytes per queued task, future included. */
static double queued_bytes(size_t n)
{
    pool_t *pool = pool_create(2);
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                     false};
    future_t *blockers[2];
    for (int i = 0; i < 2; i++)
        blockers[i] = pool_submit(pool, wait_at_gate, &g);
    future_t **fs = malloc(n * sizeof *fs);
    for (size_t i = 0; i < n; i++) /* fault the array in first */
        fs[i] = NULL;
    long before = proc_status("VmRSS");
    for (size_t i = 0; i < n; i++)
        if (!(fs[i] = pool_submit(pool, trivial, NULL)))
            die("pool_submit");
    long after = proc_status("VmRSS");
    pthread_mutex_lock(&g.lock);
    g.open = true;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pool_destroy(pool);
    for (size_t i = 0; i < n; i++)
        future_release(fs[i]);
    for (int i = 0; i < 2; i++)
        future_release(blockers[i]);
    free(fs);
    return (double)(after - before) * 1024.0 / (double)n;
}

static void w1(pool_t *pool, int runs, double *v)
{
    for (int r = 0; r < runs; r++)
        v[r] = fan_out(pool, 1000000, trivial);
    printf("W1  1M trivial tasks, 2 workers, when_all:   %8.1f ns/task "
           "(median of %d)\n",
           quantile(v, (size_t)runs, 0.5), runs);
}

static void w1s(pool_t *pool, int runs, double *v)
{
    calibrate();
    for (int r = 0; r < runs; r++)
        v[r] = fan_out(pool, 1000000, one_microsecond);
    printf("W1s 1M tasks of ~1 us CPU, 2 workers:        %8.1f ns/task "
           "(floor ~500)\n",
           quantile(v, (size_t)runs, 0.5));
}

static void w3(int runs, double *v)
{
    double build[64], run[64];
    for (int r = 0; r < runs; r++) {
        struct chain_cost c = chain(100000);
        build[r] = c.build;
        run[r] = c.run;
        v[r] = c.build + c.run;
    }
    printf("W3  100k future_then hops, built then run:   %8.1f ns/hop "
           "(build %.1f, run %.1f)\n",
           quantile(v, (size_t)runs, 0.5), quantile(build, (size_t)runs, 0.5),
           quantile(run, (size_t)runs, 0.5));
}

static void w4(pool_t *pool)
{
    static double lat[10000];
    round_trips(pool, lat, 10000, 1000000);
    double med = quantile(lat, 10000, 0.5), p99 = quantile(lat, 10000, 0.99);
    round_trips(pool, lat, 10000, 0);
    printf("W4  submit+wait, idle pool (1 ms gaps):      %8.2f us median, "
           "%.2f us p99; hot: %.2f us median\n",
           med, p99, quantile(lat, 10000, 0.5));
}

/* W5 measures RSS growth: run it in a fresh process (make bench does). */
static void w5(void)
{
    printf("W5  bytes per queued task (future included): %8.1f bytes\n",
           queued_bytes(1000000));
}

/* Runs the workloads named on the command line (all but W5 by default). */
int main(int argc, char **argv)
{
    int runs = bench_runs();
    double v[64];
    if (runs > 64)
        runs = 64;
    const char *all[] = {"w1", "w1s", "w3", "w4"};
    char **names = argc > 1 ? argv + 1 : (char **)all;
    int count = argc > 1 ? argc - 1 : 4;
    pool_t *pool = pool_create(2);
    if (!pool)
        die("pool_create");
    for (int i = 0; i < count; i++) {
        if (strcmp(names[i], "w1") == 0)
            w1(pool, runs, v);
        else if (strcmp(names[i], "w1s") == 0)
            w1s(pool, runs, v);
        else if (strcmp(names[i], "w3") == 0)
            w3(runs, v);
        else if (strcmp(names[i], "w4") == 0)
            w4(pool);
        else if (strcmp(names[i], "w5") == 0)
            w5();
        else
            fprintf(stderr, "tasks: unknown workload %s\n", names[i]);
        fflush(stdout);
    }
    pool_destroy(pool);
    return 0;
}
