/*
 * timers.c - 100,000 concurrent future_delay()s of random 1-100 ms: how
 * late they fire (median, p99, max) and how many threads it takes.
 * Lateness is measured where a user sees it: in a continuation.
 */
#include "common.h"

#include <stdatomic.h>

enum { N = 100000 };

static uint64_t deadline[N];
static double late_ms[N];
static atomic_int fired;

static int on_time(void *value, void *arg, void **result)
{
    (void)value;
    size_t i = (size_t)(uintptr_t)arg;
    late_ms[i] = (double)(now_ns() - deadline[i]) / 1e6;
    atomic_fetch_add(&fired, 1);
    *result = NULL;
    return 0;
}

int main(void)
{
    static future_t *cont[N];
    pool_t *pool = pool_default(); /* continuations run here */
    if (!pool)
        die("pool_default");
    long threads_before = proc_status("Threads");
    uint32_t seed = 12345;
    for (size_t i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t ns = (1 + (seed >> 8) % 100) * 1000000ull;
        deadline[i] = now_ns() + ns;
        future_t *d = future_delay(ns);
        if (!d)
            die("future_delay");
        cont[i] = future_then(d, on_time, U2P(i));
        future_release(d);
    }
    long threads_during = proc_status("Threads");
    future_t *all = when_all(cont, N);
    future_wait(all, NULL);
    future_release(all);
    for (size_t i = 0; i < N; i++)
        future_release(cont[i]);
    printf("timers: %d delays of 1-100 ms fired late by median %.3f ms, "
           "p99 %.3f ms, max %.3f ms; threads %ld before, %ld during\n",
           atomic_load(&fired), quantile(late_ms, N, 0.5),
           quantile(late_ms, N, 0.99), quantile(late_ms, N, 1.0),
           threads_before, threads_during);
    return 0;
}
