/*
 * blocking.c - when_all over many jobs that each sleep 100 ms: a fixed pool
 * against pool_submit_blocking(), and the ideal (one sleep). Prints one
 * line per configuration: the median time of BENCH_RUNS runs, and the
 * peak RSS and thread count for the large run.
 */
#include "common.h"

#define SLEEP_NS (100 * 1000000ull)

static int sleeper(void *arg, void **result)
{
    (void)arg;
    block_for_ns(SLEEP_NS);
    *result = NULL;
    return 0;
}

/* One gather of @n sleepers; returns its time in seconds. */
static double gather(pool_t *pool, size_t n, bool blocking)
{
    future_t **fs = calloc(n, sizeof *fs);
    double start = now_s();
    for (size_t i = 0; i < n; i++) {
        fs[i] = blocking ? pool_submit_blocking(pool, sleeper, NULL)
                         : pool_submit(pool, sleeper, NULL);
        if (!fs[i])
            die("submit");
    }
    future_t *all = when_all(fs, n);
    if (!all || future_wait(all, NULL) != 0)
        die("when_all");
    double took = now_s() - start;
    future_release(all);
    for (size_t i = 0; i < n; i++)
        future_release(fs[i]);
    free(fs);
    return took;
}

static void report(const char *what, size_t n, bool blocking, size_t limit,
                   int runs)
{
    double t[32];
    struct pool_stats st = {0};
    for (int r = 0; r < runs; r++) {
        pool_t *pool = pool_create(2);
        if (!pool)
            die("pool_create");
        if (limit)
            pool_set_blocking_limit(pool, limit);
        t[r] = gather(pool, n, blocking);
        pool_stats(pool, &st);
        pool_destroy(pool);
    }
    printf("blocking: %-40s %6zu jobs x 100 ms: median %.3f s "
           "(peak threads %zu)\n",
           what, n, quantile(t, (size_t)runs, 0.5), st.peak_threads);
    fflush(stdout);
}

int main(void)
{
    int runs = bench_runs();
    if (runs > 32)
        runs = 32;
    printf("blocking: ideal (one sleep)                          %.3f s\n",
           SLEEP_NS / 1e9);
    report("fixed pool of 2 (pool_submit), 100 jobs", 100, false, 0, 1);
    printf("blocking:   (1000 jobs on the fixed pool would take %.1f s)\n",
           1000 * SLEEP_NS / 1e9 / 2);
    report("pool_submit_blocking, default limit 512", 1000, true, 0, runs);
    report("pool_submit_blocking, limit 1000", 1000, true, 1000, runs);

    long rss_before = proc_status("VmRSS");
    report("pool_submit_blocking, limit 10000", 10000, true, 10000, 1);
    long hwm = proc_status("VmHWM");
    printf("blocking: 10000 jobs: peak RSS %.1f MiB (%.1f MiB before), "
           "%.1f KiB per job\n",
           hwm / 1024.0, rss_before / 1024.0,
           (double)(hwm - rss_before) / 10000);
    return 0;
}
