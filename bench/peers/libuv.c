/*
 * libuv.c - the bench/tasks.c workloads on libuv's thread pool.
 *
 * uv_queue_work() on the default loop, with UV_THREADPOOL_SIZE=2 set before
 * the pool's first use. Each task is a malloc'd uv_work_t - libuv's
 * counterpart of a future: the caller owns it, and it is freed in the
 * after_work callback (every handle released). after_work callbacks run on
 * the loop thread (here: the main thread inside uv_run), woken by the pool
 * through an async handle.
 *
 * Joining: uv_run(UV_RUN_DEFAULT) returns once no request is active, i.e.
 * after every after_work callback ran.
 *
 *   W1/W1s  n uv_queue_work, then uv_run until all after_work ran
 *   W3      after_work queues the successor: each hop is a round trip
 *           worker -> loop thread -> worker (libuv has no way to queue work
 *           from the work callback itself; the label says so)
 *   W4      queue one trivial task, uv_run until its after_work ran
 *   W5      2 workers held by blocker tasks, 1M uv_queue_work, RSS growth / n
 */
#define PEER_NAME "libuv"
#define LABEL_W3 "100k hops, queued from after_work (loop round trip)"
#define LABEL_W5 "bytes per queued task (uv_work_t included)"
#include "peers.h"

#include <uv.h>

static uv_loop_t *loop;

static void queue(uv_work_cb work, uv_after_work_cb after)
{
    uv_work_t *req = malloc(sizeof *req);
    if (!req)
        die("malloc");
    int err = uv_queue_work(loop, req, work, after);
    if (err) {
        fprintf(stderr, "libuv: uv_queue_work: %s\n", uv_strerror(err));
        exit(1);
    }
}

static void trivial_work(uv_work_t *req) { (void)req; task_body(0); }
static void heavy_work(uv_work_t *req) { (void)req; task_body(1); }
static void block_work(uv_work_t *req) { (void)req; gate_block(); }

static void release(uv_work_t *req, int status)
{
    (void)status;
    free(req);
}

static long hops_left; /* touched on the loop thread only */

static void hop_done(uv_work_t *req, int status)
{
    release(req, status);
    if (--hops_left > 0)
        queue(trivial_work, hop_done);
}

/* ---- the hooks ------------------------------------------------------- */

static void peer_start(void)
{
    setenv("UV_THREADPOOL_SIZE", "2", 1); /* read at the pool's first use */
    loop = uv_default_loop();
    submit_wait(); /* starts the pool's threads */
}

static void peer_stop(void) { uv_loop_close(loop); }

static double fan_out(size_t n, int heavy)
{
    double start = now_s();
    for (size_t i = 0; i < n; i++)
        queue(heavy ? heavy_work : trivial_work, release);
    uv_run(loop, UV_RUN_DEFAULT);
    return (now_s() - start) * 1e9 / (double)n;
}

static double chain(size_t n)
{
    hops_left = (long)n;
    double start = now_s();
    queue(trivial_work, hop_done);
    uv_run(loop, UV_RUN_DEFAULT);
    return (now_s() - start) * 1e9 / (double)n;
}

static void submit_wait(void)
{
    queue(trivial_work, release);
    uv_run(loop, UV_RUN_DEFAULT);
}

static double queued_bytes(size_t n)
{
    queue(block_work, release);
    queue(block_work, release);
    gate_wait_blocked(2);
    long before = proc_status("VmRSS");
    for (size_t i = 0; i < n; i++)
        queue(trivial_work, release);
    long after = proc_status("VmRSS");
    gate_open();
    uv_run(loop, UV_RUN_DEFAULT);
    return (double)(after - before) * 1024.0 / (double)n;
}

int main(int argc, char **argv) { return peer_main(argc, argv); }
