/*
 * peers.h - the workload driver shared by the peer benchmarks (glib.c,
 * libuv.c, tbb.cpp). It compiles as C and as C++.
 *
 * Each peer program defines PEER_NAME (and, where its mechanics differ from
 * libfutures', a label override below), implements the hooks declared here,
 * includes this file and returns peer_main(argc, argv) from main(). The
 * driver runs the workloads of bench/tasks.c and prints them in its format,
 * with "<peer>: " after the workload tag, e.g.
 *
 *   W1  glib: 1M trivial tasks, 2 workers:    247.0 ns/task (median of 5)
 *
 * The figure and its unit (ns/task, ns/hop, us median ... us p99; hot: ...
 * us median, bytes) are what bench/peers/run.sh reads; the words around them
 * are for people.
 */
#ifndef BENCH_PEERS_H
#define BENCH_PEERS_H

#include "../common.h"

#include <pthread.h>

/* ---- hooks each peer implements --------------------------------------- */

/* Creates the 2-worker pool (and warms it up: threads started). */
static void peer_start(void);
static void peer_stop(void);
/* W1 / W1s: @n tasks running task_body(@heavy), all joined; ns per task. */
static double fan_out(size_t n, int heavy);
/* W3: a chain of @n dependent hops, each started by its predecessor;
 * ns per hop from the first submission to the end of the chain. */
static double chain(size_t n);
/* W4: submits one task running task_body(0) and waits until it is done. */
static void submit_wait(void);
/* W5: bytes of RSS per task with @n tasks queued behind blocked workers. */
static double queued_bytes(size_t n);

/* ---- labels; a peer may override one before including this file ------- */

#ifndef LABEL_W1
#define LABEL_W1 "1M trivial tasks, 2 workers"
#endif
#ifndef LABEL_W1S
#define LABEL_W1S "1M tasks of ~1 us CPU, 2 workers"
#endif
#ifndef LABEL_W3
#define LABEL_W3 "100k hops, each task submits its successor"
#endif
#ifndef LABEL_W4
#define LABEL_W4 "submit+wait, idle pool (1 ms gaps)"
#endif
#ifndef LABEL_W5
#define LABEL_W5 "bytes per queued task"
#endif

/* ---- task bodies, as in bench/tasks.c --------------------------------- */

static long counter; /* bumped by every trivial task (GCC atomics: C/C++) */

/* The trivial task (an atomic increment) or, if @heavy, ~1 us of CPU. */
static inline void task_body(int heavy)
{
    if (heavy)
        spin(spin_per_us);
    else
        __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
}

/* ---- a gate that blocks workers for W5 -------------------------------- */

struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open, waiting; /* waiting: blockers that have arrived */
};
static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                           0, 0};

/* Body of a blocker task: holds its worker until gate_open(). */
static void gate_block(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.waiting++;
    pthread_cond_broadcast(&gate.cond);
    while (!gate.open)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
}

/* Waits until @n blockers hold their workers, so nothing else runs. */
static void gate_wait_blocked(int n)
{
    pthread_mutex_lock(&gate.lock);
    while (gate.waiting < n)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

/* ---- the driver -------------------------------------------------------- */

/* Prints "<tag><peer>: <what>:" padded like bench/tasks.c's labels. */
static void label(const char *tag, const char *what)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%s: %s:", PEER_NAME, what);
    printf("%-4s%-46s", tag, buf);
}

static void check_counter(long before, size_t n)
{
    long got = __atomic_load_n(&counter, __ATOMIC_RELAXED) - before;
    if (got != (long)n) {
        fprintf(stderr, "%s: %ld of %zu tasks ran\n", PEER_NAME, got, n);
        exit(1);
    }
}

static void w1(int runs, double *v, int heavy)
{
    const size_t n = 1000000;
    for (int r = 0; r < runs; r++) {
        long before = __atomic_load_n(&counter, __ATOMIC_RELAXED);
        v[r] = fan_out(n, heavy);
        check_counter(before, heavy ? 0 : n);
    }
    if (heavy) {
        label("W1s", LABEL_W1S);
        printf(" %8.1f ns/task (floor ~500)\n", quantile(v, (size_t)runs, 0.5));
    } else {
        label("W1", LABEL_W1);
        printf(" %8.1f ns/task (median of %d)\n",
               quantile(v, (size_t)runs, 0.5), runs);
    }
}

static void w3(int runs, double *v)
{
    for (int r = 0; r < runs; r++)
        v[r] = chain(100000);
    label("W3", LABEL_W3);
    printf(" %8.1f ns/hop\n", quantile(v, (size_t)runs, 0.5));
}

/* W4: latencies in us of submit + wait on an idle (gap) or hot pool. */
static void round_trips(double *us, size_t n, uint64_t gap_ns)
{
    for (size_t i = 0; i < n; i++) {
        if (gap_ns)
            block_for_ns(gap_ns);
        uint64_t start = now_ns();
        submit_wait();
        us[i] = (double)(now_ns() - start) / 1e3;
    }
}

static void w4(void)
{
    static double lat[10000];
    round_trips(lat, 10000, 1000000);
    double med = quantile(lat, 10000, 0.5), p99 = quantile(lat, 10000, 0.99);
    round_trips(lat, 10000, 0);
    label("W4", LABEL_W4);
    printf(" %8.2f us median, %.2f us p99; hot: %.2f us median\n", med, p99,
           quantile(lat, 10000, 0.5));
}

/* W5 measures RSS growth: run it in a fresh process (run.sh does). */
static void w5(void)
{
    double bytes = queued_bytes(1000000);
    label("W5", LABEL_W5);
    printf(" %8.1f bytes\n", bytes);
}

/* Runs the workloads named on the command line (all but W5 by default). */
static int peer_main(int argc, char **argv)
{
    int runs = bench_runs();
    double v[64];
    if (runs > 64)
        runs = 64;
    const char *all[] = {"w1", "w1s", "w3", "w4"};
    char **names = argc > 1 ? argv + 1 : (char **)all;
    int count = argc > 1 ? argc - 1 : 4;
    peer_start();
    for (int i = 0; i < count; i++) {
        if (strcmp(names[i], "w1") == 0)
            w1(runs, v, 0);
        else if (strcmp(names[i], "w1s") == 0) {
            calibrate();
            w1(runs, v, 1);
        } else if (strcmp(names[i], "w3") == 0)
            w3(runs, v);
        else if (strcmp(names[i], "w4") == 0)
            w4();
        else if (strcmp(names[i], "w5") == 0)
            w5();
        else
            fprintf(stderr, "%s: unknown workload %s\n", PEER_NAME, names[i]);
        fflush(stdout);
    }
    peer_stop();
    return 0;
}

#endif
