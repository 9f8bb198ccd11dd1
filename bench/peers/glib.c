/*
 * glib.c - the bench/tasks.c workloads on GLib's GThreadPool.
 *
 * One exclusive GThreadPool of 2 threads runs everything. A GThreadPool has
 * a single task function for the whole pool, so each pushed item is a
 * pointer to a `struct job` naming what to run. There are no per-task
 * handles: the only per-task memory is GLib's queue node (W5 shows it).
 *
 * Joining: every counted task bumps `done` (an atomic); the one that reaches
 * `target` signals a GCond, which the main thread waits on under a GMutex.
 *
 *   W1/W1s  n pushes, then wait for n completions
 *   W3      each hop pushes its successor from inside the task
 *           (g_thread_pool_push on a worker thread); the last one signals
 *   W4      push one trivial task, wait for its completion signal
 *   W5      2 workers held by blocker tasks, 1M pushes, RSS growth / n
 */
#define PEER_NAME "glib"
#define LABEL_W5 "bytes per queued task (queue node; no handle)"
#include "peers.h"

#include <glib.h>

static GThreadPool *pool;

/* ---- completion counting --------------------------------------------- */

static GMutex lock;
static GCond cond;
static long done, target;

/* Expects @n completions; call before submitting them. */
static void expect(long n)
{
    __atomic_store_n(&done, 0, __ATOMIC_RELAXED);
    target = n;
}

static void complete_one(void)
{
    if (__atomic_add_fetch(&done, 1, __ATOMIC_ACQ_REL) == target) {
        g_mutex_lock(&lock); /* under the lock: no lost wake-up */
        g_cond_signal(&cond);
        g_mutex_unlock(&lock);
    }
}

static void wait_all(void)
{
    g_mutex_lock(&lock);
    while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < target)
        g_cond_wait(&cond, &lock);
    g_mutex_unlock(&lock);
}

/* ---- the jobs -------------------------------------------------------- */

struct job {
    void (*run)(void);
};

static void trivial_job(void) { task_body(0); complete_one(); }
static void heavy_job(void) { task_body(1); complete_one(); }
static void uncounted_job(void) { task_body(0); } /* W5's queued tasks */

static long hops_left; /* one hop in flight at a time: the queue orders */
static void hop_job(void);

static const struct job TRIVIAL = {trivial_job}, HEAVY = {heavy_job},
                        UNCOUNTED = {uncounted_job}, HOP = {hop_job},
                        BLOCKER = {gate_block};

static void hop_job(void)
{
    task_body(0);
    if (--hops_left > 0)
        g_thread_pool_push(pool, (gpointer)&HOP, NULL);
    else
        complete_one();
}

/* The pool's single task function: runs the job @data points to. */
static void run_job(gpointer data, gpointer user_data)
{
    (void)user_data;
    ((const struct job *)data)->run();
}

static void push(const struct job *j)
{
    GError *err = NULL;
    if (!g_thread_pool_push(pool, (gpointer)j, &err)) {
        fprintf(stderr, "glib: g_thread_pool_push: %s\n", err->message);
        exit(1);
    }
}

/* ---- the hooks ------------------------------------------------------- */

static void peer_start(void)
{
    GError *err = NULL;
    /* exclusive: 2 dedicated threads, started now and kept */
    pool = g_thread_pool_new(run_job, NULL, 2, TRUE, &err);
    if (!pool) {
        fprintf(stderr, "glib: g_thread_pool_new: %s\n", err->message);
        exit(1);
    }
}

static void peer_stop(void) { g_thread_pool_free(pool, FALSE, TRUE); }

static double fan_out(size_t n, int heavy)
{
    expect((long)n);
    double start = now_s();
    for (size_t i = 0; i < n; i++)
        push(heavy ? &HEAVY : &TRIVIAL);
    wait_all();
    return (now_s() - start) * 1e9 / (double)n;
}

static double chain(size_t n)
{
    expect(1);
    hops_left = (long)n;
    double start = now_s();
    push(&HOP);
    wait_all();
    return (now_s() - start) * 1e9 / (double)n;
}

static void submit_wait(void)
{
    expect(1);
    push(&TRIVIAL);
    wait_all();
}

static double queued_bytes(size_t n)
{
    push(&BLOCKER);
    push(&BLOCKER);
    gate_wait_blocked(2);
    long before = proc_status("VmRSS");
    for (size_t i = 0; i < n; i++)
        push(&UNCOUNTED);
    long after = proc_status("VmRSS");
    gate_open();
    g_thread_pool_free(pool, FALSE, TRUE); /* runs the queue, then joins */
    pool = g_thread_pool_new(run_job, NULL, 2, TRUE, NULL);
    return (double)(after - before) * 1024.0 / (double)n;
}

int main(int argc, char **argv) { return peer_main(argc, argv); }
