/*
 * scope.c - what a scope adds to a task. 1,000,000 trivial tasks on a
 * pool of 2, submitted then joined, three ways, interleaved run by run;
 * each line is the median of BENCH_RUNS runs in ns per task:
 *
 *   pool_submit + when_all     the plain fan-out (W1's)
 *   scope_submit + scope_join  no limit
 *   the same, limit 64         tasks wait in the scope, 64 run at once
 */
#include "common.h"

#define N 1000000

static int trivial(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static double plain(pool_t *pool)
{
    future_t **fs = malloc(N * sizeof *fs);
    if (!fs)
        die("malloc");
    double start = now_s();
    for (size_t i = 0; i < N; i++)
        if (!(fs[i] = pool_submit(pool, trivial, NULL)))
            die("pool_submit");
    future_t *all = when_all(fs, N);
    if (!all || future_wait(all, NULL))
        die("when_all");
    future_release(all);
    for (size_t i = 0; i < N; i++)
        future_release(fs[i]);
    double took = now_s() - start;
    free(fs);
    return took * 1e9 / N;
}

static double scoped(pool_t *pool, size_t limit)
{
    double start = now_s();
    scope_t *s = scope_create(pool);
    if (!s || scope_set_limit(s, limit))
        die("scope_create");
    for (size_t i = 0; i < N; i++) {
        future_t *f = scope_submit(s, trivial, NULL);
        if (!f)
            die("scope_submit");
        future_release(f);
    }
    if (scope_join(s))
        die("scope_join");
    scope_release(s);
    return (now_s() - start) * 1e9 / N;
}

int main(void)
{
    int runs = bench_runs();
    double p[64], s0[64], s64[64];
    if (runs > 64)
        runs = 64;
    pool_t *pool = pool_create(2);
    if (!pool)
        die("pool_create");
    for (int r = 0; r < runs; r++) {
        p[r] = plain(pool);
        s0[r] = scoped(pool, 0);
        s64[r] = scoped(pool, 64);
    }
    double mp = quantile(p, (size_t)runs, 0.5);
    double m0 = quantile(s0, (size_t)runs, 0.5);
    double m64 = quantile(s64, (size_t)runs, 0.5);
    printf("scope       1M tasks: pool_submit %.1f ns/task; scope_submit "
           "%.1f (+%.1f), limit 64 %.1f (+%.1f)\n",
           mp, m0, m0 - mp, m64, m64 - mp);
    pool_destroy(pool);
    return 0;
}
