/*
 * compose.c - what composition costs. Each line is the median of
 * BENCH_RUNS runs:
 *
 *   compose     a 100,000-step loop written as recursion, each step
 *               returning future_compose() of a resolved future and the
 *               next step: ns per step, beside a future_then hop (a
 *               100,000-hop chain on a resolved future, built and run)
 *   completion  100,000 pool tasks, each added to a completion queue as
 *               it is submitted, taken back with completion_next() as they
 *               settle: futures per second, end to end
 */
#include "common.h"

#include <stdatomic.h>

#define STEPS 100000

static future_t *step(void *value, void *arg)
{
    uintptr_t n = (uintptr_t)value;
    if (n == STEPS)
        return future_resolved(value);
    future_t *next = future_resolved((void *)(n + 1));
    future_t *r = future_compose(next, step, arg);
    future_release(next);
    return r;
}

/* ns per step of the compose recursion. */
static double compose_loop(void)
{
    double start = now_s();
    future_t *first = future_resolved(NULL);
    future_t *r = future_compose(first, step, NULL);
    void *v = NULL;
    if (!r || future_wait(r, &v) || (uintptr_t)v != STEPS)
        die("compose loop");
    future_release(r);
    future_release(first);
    return (now_s() - start) * 1e9 / STEPS;
}

static int hop(void *value, void *arg, void **result)
{
    (void)arg;
    *result = (void *)((uintptr_t)value + 1);
    return 0;
}

/* ns per hop of a then chain started on a resolved future, built and run:
 * the hop a compose step is measured against. */
static double then_chain(void)
{
    double start = now_s();
    future_t *g = future_resolved(NULL);
    for (size_t i = 0; i < STEPS; i++) {
        future_t *next = future_then(g, hop, NULL);
        if (!next)
            die("future_then");
        future_release(g);
        g = next;
    }
    void *v = NULL;
    if (future_wait(g, &v) || (uintptr_t)v != STEPS)
        die("then chain");
    future_release(g);
    return (now_s() - start) * 1e9 / STEPS;
}

static int trivial(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* Futures per second through a completion queue, tasks included. */
static double completion_rate(pool_t *pool)
{
    completion_t *c = completion_create();
    if (!c)
        die("completion_create");
    double start = now_s();
    for (size_t i = 0; i < STEPS; i++) {
        future_t *f = pool_submit(pool, trivial, NULL);
        if (!f || completion_add(c, f))
            die("submit and add");
        future_release(f);
    }
    size_t taken = 0;
    future_t *f;
    while ((f = completion_next(c, UINT64_MAX)) != NULL) {
        future_release(f);
        taken++;
    }
    double took = now_s() - start;
    if (errno != ENOENT || taken != STEPS)
        die("completion_next");
    completion_release(c);
    return STEPS / took;
}

int main(void)
{
    int runs = bench_runs();
    double composed[64], thens[64], rates[64];
    if (runs > 64)
        runs = 64;
    pool_t *pool = pool_create(2);
    if (!pool)
        die("pool_create");
    for (int r = 0; r < runs; r++) { /* interleaved, so both see one load */
        composed[r] = compose_loop();
        thens[r] = then_chain();
        rates[r] = completion_rate(pool);
    }
    double c = quantile(composed, (size_t)runs, 0.5),
           t = quantile(thens, (size_t)runs, 0.5);
    printf("compose     100k-step recursion:           %8.1f ns/step "
           "(then hop %.1f ns, ratio %.2f)\n",
           c, t, c / t);
    printf("completion  100k tasks through add/next:   %8.0f futures/s\n",
           quantile(rates, (size_t)runs, 0.5));
    pool_destroy(pool);
    return 0;
}
