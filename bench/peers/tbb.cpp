/*
 * tbb.cpp - the bench/tasks.c workloads on oneTBB.
 *
 * A tbb::task_arena arena(2) and a tbb::task_group. In TBB the thread that
 * enters an arena (arena.execute) takes one of its slots: arena(2) is the
 * calling thread + 1 worker thread, and task_group::wait() makes the caller
 * run tasks too. That is TBB's model, so W1/W1s/W3 measure it as is.
 * Tasks are lambdas stored by the task_group; there are no handles.
 *
 * Joining: task_group::wait() inside arena.execute().
 *
 *   W1/W1s  n task_group::run inside arena.execute, then wait()
 *   W3      each task runs task_group::run for its successor from within
 *           the task; wait() returns when the last hop is done
 *   W4      task_group::wait() would run the one task on the caller, so W4
 *           hands it to the worker with arena.enqueue() and the caller
 *           waits for its completion signal (std::mutex + condvar), like
 *           the other pools
 *   W5      the worker held by a blocker task, the caller (the arena's
 *           other slot) runs 1M task_group::run, RSS growth / n
 *
 * bench/common.h compiles as C++, so the shared driver is used as is.
 */
#define PEER_NAME "tbb"
#define LABEL_W1 "1M trivial tasks, arena(2): caller + 1 worker"
#define LABEL_W1S "1M tasks of ~1 us CPU, arena(2): caller + 1 worker"
#define LABEL_W4 "submit+wait (arena.enqueue), idle pool (1 ms gaps)"
#define LABEL_W5 "bytes per queued task (task_group::run)"
#include "peers.h"

#include <condition_variable>
#include <mutex>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

static tbb::task_arena *arena;
static tbb::task_group *group;

/* ---- the hooks ------------------------------------------------------- */

static void peer_start(void)
{
    arena = new tbb::task_arena(2);
    arena->initialize();
    group = new tbb::task_group;
    submit_wait(); /* starts the worker thread */
}

static void peer_stop(void)
{
    delete group;
    delete arena;
}

static double fan_out(size_t n, int heavy)
{
    double start = now_s();
    arena->execute([&] {
        for (size_t i = 0; i < n; i++)
            group->run([heavy] { task_body(heavy); });
        group->wait();
    });
    return (now_s() - start) * 1e9 / (double)n;
}

/* A hop: runs the trivial body, then spawns the next hop. */
struct hop {
    long left;
    void operator()() const
    {
        task_body(0);
        if (left > 1)
            group->run(hop{left - 1});
    }
};

static double chain(size_t n)
{
    double start = now_s();
    arena->execute([&] {
        group->run(hop{(long)n});
        group->wait();
    });
    return (now_s() - start) * 1e9 / (double)n;
}

static std::mutex lock;
static std::condition_variable cond;
static bool finished;

static void submit_wait(void)
{
    {
        std::lock_guard<std::mutex> g(lock);
        finished = false;
    }
    arena->enqueue([] {
        task_body(0);
        std::lock_guard<std::mutex> g(lock);
        finished = true;
        cond.notify_one();
    });
    std::unique_lock<std::mutex> g(lock);
    cond.wait(g, [] { return finished; });
}

static double queued_bytes(size_t n)
{
    long before = 0, after = 0;
    arena->execute([&] {
        group->run([] { gate_block(); }); /* the worker steals it */
        gate_wait_blocked(1);
        before = proc_status("VmRSS");
        for (size_t i = 0; i < n; i++)
            group->run([] { task_body(0); });
        after = proc_status("VmRSS");
        gate_open();
        group->wait();
    });
    return (double)(after - before) * 1024.0 / (double)n;
}

int main(int argc, char **argv) { return peer_main(argc, argv); }
