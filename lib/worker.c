/*
 * worker.c - a pool's core threads: the loop that finds work and runs it,
 * and what a core thread does when a task it runs blocks in a wait.
 *
 * The loop: the chained continuation first (runq.c), then the thread's
 * own ring, the injection queue (first once in INJECT_EVERY turns), half
 * of another thread's ring, and blocking jobs the blocking threads cannot
 * take (jobs.c); with nothing found, it searches, spins and sleeps
 * (idle.c).
 *
 * Core threads. A pool keeps ncore of them able to run tasks. One that
 * blocks in future_wait() no longer counts (locked.nwaiting), and if that
 * leaves fewer than ncore the pool starts a stand-in, so a task waiting for
 * work queued behind it never deadlocks, even with one thread. Core threads
 * beyond ncore that stay idle for idle_ns exit. If no stand-in can be
 * started, the waiter runs queued tasks itself (FUT_BLOCK_HELP), nested
 * on its own stack while half of it is free (help_has_room).
 *
 */
#define _GNU_SOURCE /* pthread_getattr_np */
#include "pool_internal.h"

#include <errno.h>
#include <pthread.h>

/* A core thread looks at the injection queue before its own ring once in
 * this many turns, so work from outside is not starved by work it makes. */
#define INJECT_EVERY 61

/* Core threads that spin at once for work; a couple are enough to pick up
 * what comes, and more would only take CPU from those that run it. */
#define MAX_SPINNERS 2

/*
 * Helping nests: the task a waiter runs may wait and help in turn, each
 * level on top of the last, so a waiter helps only while less than half
 * of its stack is used. The other half is the tasks' own. Where the stack
 * is unknown, HELP_DEPTH_UNKNOWN levels are allowed.
 */
#define HELP_DEPTH_UNKNOWN 16

/*
 * The next future for core thread @w, or NULL; *job says it came from the
 * blocking jobs (and is counted in nrunning). No lock is held.
 */
static future_t *find_work(pool_t *p, struct fut__worker *w, bool *job)
{
    *job = false;
    if (fut__self.chained) {
        future_t *f = fut__self.chained; /* a continuation this thread kept */
        fut__self.chained = NULL;
        fut__self.chain_len++;
        return f;
    }
    fut__self.chain_len = 0;
    if (++w->turns % INJECT_EVERY == 0)
        fut__take_injected(p, w, false);
    future_t *f = fut__ring_pop(w->ring);
    if (!f)
        f = fut__take_injected(p, w, true);
    if (!f)
        f = fut__steal(p, w);
    if (!f && (f = fut__take_job_for_core(p)) != NULL)
        *job = true;
    return f;
}

/*
 * Runs @f on core thread @w, or, if the pool was cancelled since it was
 * queued, disposes of it (see fut__cancel_queued()).
 */
static void run_on_core(pool_t *p, struct fut__worker *w, future_t *f, bool job,
                        bool may_chain)
{
    struct fut__ring *r = w->ring;
    bool ran = false;
    if (fut__pool_state(p) == FUT_POOL_CANCELLED && !job) {
        fut__dispose(f);
    } else {
        /* A job is counted in nrunning already. */
        unsigned executing =
            atomic_load_explicit(&r->executing, memory_order_relaxed);
        atomic_store_explicit(&r->executing, executing + !job,
                              memory_order_relaxed);
        struct fut__outcome out;
        ran = fut__start(f, &out);
        if (ran && may_chain) {
            /* Chaining: only while settling, never while user code runs.
             * A task a waiter helps with (!may_chain) leaves the flag as
             * the settle it interrupted had it. */
            fut__self.chaining = true;
            fut__finish(f, &out);
            fut__self.chaining = false;
        } else if (ran) {
            fut__finish(f, &out);
        }
        future_release(f); /* the run queue's reference */
        if (fut__pool_is_stale(p))
            pthread_exit(NULL); /* the task forked: this is the child's
                                   copy of a parent's thread */
        atomic_store_explicit(&r->executing, executing, memory_order_relaxed);
    }
    if (job) {
        fut__pool_lock(p);
        p->blocking.running--;
        if (ran)
            p->blocking.completed++;
        fut__pool_unlock(p);
    } else if (ran) { /* not a task cancelled while it waited */
        uint64_t done =
            atomic_load_explicit(&r->completed, memory_order_relaxed);
        atomic_store_explicit(&r->completed, done + 1, memory_order_relaxed);
    }
}

/* A core thread's life; returns with the pool lock held. */
static void core_loop(pool_t *p, struct fut__worker *w)
{
    for (;;) {
        bool job;
        future_t *f = find_work(p, w, &job);
        if (f) {
            fut__stop_searching(p, w, true);
            run_on_core(p, w, f, job, true);
            continue;
        }
        fut__start_searching(p, w);
        if (atomic_load(&p->shared.nsearching) <= MAX_SPINNERS &&
            fut__spin_for_work(p))
            continue;
        fut__pool_lock(p);
        if (!fut__park_locked(p, w))
            return; /* with the lock held: the exit must count at once,
                       or two surplus threads could both decide to go */
        fut__pool_unlock(p);
    }
}

/*
 * A ring for a new core thread: one a thread that exited left (empty: only
 * its owner fills it, and it found nothing before it went), or a new one.
 * Rings stay until the pool goes, so a thief never reads a freed one.
 */
static struct fut__ring *claim_ring_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    size_t n = fut__pool_nrings(p);
    for (size_t i = 0; i < n; i++)
        if (!p->rings[i]->owned)
            return p->rings[i];
    if (n == p->rings_cap) {
        errno = EAGAIN;
        return NULL;
    }
    struct fut__ring *r = fut__calloc(sizeof *r);
    if (!r)
        return NULL;
    fut__ring_init(r);
    p->rings[n] = r;
    atomic_store_explicit(&p->shared.nrings, n + 1, memory_order_release);
    return r;
}

/* Counts this core thread as blocked and keeps the pool's capacity with a
 * stand-in; false if one was needed and could not be started. */
static bool compensate(pool_t *p)
{
    fut__pool_lock(p);
    p->locked.nwaiting++;
    bool ok = !(fut__pool_runs_work(p) &&
                p->locked.nlive - p->locked.nwaiting < p->locked.ncore &&
                fut__start_core_locked(p) != 0);
    if (!ok)
        p->locked.nwaiting--;
    fut__pool_unlock(p);
    return ok;
}

/* --------------------------------------------- blocking inside a task -- */

enum fut__block fut__block_begin(void)
{
    struct fut__worker *me = fut__current_worker();
    if (!me || fut__pool_is_stale(me->pool))
        return FUT_BLOCK_PLAIN;
    if (me->blocking) {
        fut__job_wait_begin(me->pool); /* jobs.c */
        return FUT_BLOCK_JOB;
    }
    if (fut__self.chained) {
        /* User code (a destructor run while a future settled) is about to
         * wait, perhaps for the continuation kept for this thread: queue
         * it where others can run it. */
        future_t *f = fut__self.chained;
        fut__self.chained = NULL;
        if (!fut__queue_on(me->pool, f))
            fut__schedule_default(f);
    }
    if (fut__self.chaining && fut__ring_len(me->ring))
        fut__wake_if_needed(me->pool); /* what push_local left to this thread */
    return compensate(me->pool) ? FUT_BLOCK_COMPENSATED : FUT_BLOCK_HELP;
}

bool fut__block_retry(void)
{
    struct fut__worker *me = fut__current_worker();
    return compensate(me->pool);
}

void fut__block_end(enum fut__block how)
{
    struct fut__worker *me = fut__current_worker();
    if (how == FUT_BLOCK_JOB)
        fut__job_wait_end(me->pool);
    if (how != FUT_BLOCK_COMPENSATED)
        return;
    pool_t *p = me->pool;
    fut__pool_lock(p);
    p->locked.nwaiting--;
    fut__pool_unlock(p);
}

static bool help_has_room(void)
{
    struct fut__worker *me = fut__current_worker();
    if (!me->stack_top)
        return me->helping < HELP_DEPTH_UNKNOWN;
    /* The frame, not a local's address: ASan may move locals to the heap. */
    char *here = __builtin_frame_address(0);
    size_t used = (size_t)(me->stack_top - here);
    return used < me->stack_size / 2;
}

/* Runs one task queued on this thread's pool, if its stack has room for
 * one (see above). The waiter decides whether to give up on this answer
 * alone: measured twice, at two depths, the stack could have room for one
 * question and none for the other, and the waiter would neither help nor
 * give up, for ever. */
enum fut__help fut__help_one(void)
{
    struct fut__worker *me = fut__current_worker();
    if (!help_has_room())
        return FUT_NO_ROOM;
    pool_t *p = me->pool;
    bool job;
    future_t *f = find_work(p, me, &job);
    if (!f)
        return FUT_NO_WORK;
    me->helping++;
    run_on_core(p, me, f, job, false);
    me->helping--;
    return FUT_HELPED;
}

/* ---------------------------------------------------- starting threads -- */

/* A core thread's life, entered and left with the lock held (threads.c). */
static void core_main_locked(pool_t *p, struct fut__worker *w)
{
    fut__pool_unlock(p);
    core_loop(p, w); /* returns with the lock held */
    p->locked.nlive--;
    w->ring->owned = false;
    w->ring->busy = false;
}

/*
 * Starts one more core thread; 0 or an errno. Joins exited threads on the
 * way: they have ended, so it cannot block.
 */
int fut__start_core_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    fut__join_all(fut__take_exited_locked(p));
    struct fut__worker *w = fut__worker_new(p, core_main_locked);
    if (!w)
        return ENOMEM;
    if (!(w->ring = claim_ring_locked(p))) {
        int error = errno;
        fut__mem_free(w);
        return error;
    }
    fut__pool_retain(p); /* the thread's */
    w->searching = true; /* it looks for work first */
    atomic_fetch_add(&p->shared.nsearching, 1);
    int rc = fut__thread_launch(w);
    if (rc) {
        atomic_fetch_sub(&p->shared.nsearching, 1);
        if (fut__core_work_visible(p)) /* a queuer counted on it */
            fut__wake_one_locked(p);
        atomic_fetch_sub(&p->refs, 1); /* the caller's remains */
        fut__mem_free(w);
        return rc;
    }
    p->locked.nlive++;
    w->ring->owned = true;
    w->ring->busy = true;
    fut__note_peak_locked(p);
    return 0;
}
