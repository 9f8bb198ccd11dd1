/* common.h - timing, memory and statistics for the benchmark programs. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <futures.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define U2P(n) ((void *)(uintptr_t)(n))

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A field of /proc/self/status in kB (VmRSS, VmHWM) or a count (Threads). */
static inline long proc_status(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long value = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            value = atol(line + n + 1);
            break;
        }
    }
    fclose(f);
    return value;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The @q quantile (0.5: the median) of @n values; sorts them. */
static inline double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, compare_doubles);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Runs from the environment (BENCH_RUNS), at least 1; 5 by default. */
static inline int bench_runs(void)
{
    const char *s = getenv("BENCH_RUNS");
    int n = s ? atoi(s) : 5;
    return n > 0 ? n : 1;
}

static inline void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static inline void block_for_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* CPU work: @n steps of a generator the compiler cannot drop. */
static volatile unsigned long bench_sink;
static unsigned long spin_per_us = 1; /* steps per microsecond: calibrate() */

static inline void spin(unsigned long n)
{
    unsigned long x = bench_sink;
    for (unsigned long i = 0; i < n; i++)
        x = x * 6364136223846793005ul + 1442695040888963407ul;
    bench_sink = x;
}

static inline void calibrate(void)
{
    unsigned long n = 1000000;
    double start = now_s();
    spin(n);
    double took = now_s() - start;
    spin_per_us = (unsigned long)((double)n / (took * 1e6));
    if (spin_per_us == 0)
        spin_per_us = 1;
}

#endif
