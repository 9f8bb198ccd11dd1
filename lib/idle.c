/*
 * idle.c - a pool's core threads searching, sleeping and waking, and the
 * pool stopping once they are all idle.
 *
 * Sleeping and waking. A wake-up costs tens of microseconds here while a
 * task costs a fraction of one, so a thread that runs out of work first
 * spins a while (FUT_SPIN_NS) watching for more, counted in nsearching,
 * and only then sleeps, counted in nsleeping. Whoever queues work wakes a
 * sleeper only if nobody is searching: a searcher will find it. The two
 * sides follow the store-then-load pattern with sequentially consistent
 * atomics (a ring's tail, inject.len, the counters), so a queued future
 * and a thread going to sleep always see each other:
 *
 *   queuer:  queue the work;              read nsearching, nsleeping
 *   sleeper: nsleeping++, nsearching--;   look at the queues again
 *
 * and a searcher that finds work, if it was the last one searching and
 * more is queued, wakes another. A waker moves the sleeper it wakes into
 * nsearching itself and leaves a token, so two queuers never both wake
 * for one searcher's worth of work; a thread woken without a token (a
 * broadcast, a time-out) moves itself.
 *
 * The pool's states are in internal.h. Each ring's `busy` flag says its
 * owner holds or looks for work; it changes only under the pool lock, so
 * a draining pool stops, under that lock, when no owner is busy, every
 * queue is empty and no job runs. A cancelled pool's queued tasks are
 * cancelled by pool_shutdown(), and any a thread took just before are
 * cancelled by that thread instead of run.
 *
 */
#include "pool_internal.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

/* Is any core work queued anywhere? A look without locks. */
bool fut__core_work_visible(pool_t *p)
{
    if (atomic_load(&p->inject.len) || atomic_load(&p->shared.jobs_hint))
        return true;
    size_t n = fut__pool_nrings(p);
    for (size_t i = 0; i < n; i++)
        if (fut__ring_len(p->rings[i]))
            return true;
    return false;
}

/* Wakes a sleeping core thread, as a searcher; the pool lock is held. */
void fut__wake_one_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    if (atomic_load(&p->shared.nsleeping) == 0 ||
        atomic_load(&p->shared.nsearching) != 0)
        return; /* (sequentially consistent loads: see the top) */
    atomic_fetch_sub_explicit(&p->shared.nsleeping, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->shared.nsearching, 1, memory_order_relaxed);
    p->locked.wake_tokens++;
    pthread_cond_signal(&p->work);
}

/* After queueing core work: wakes a thread if none will find it. */
void fut__wake_if_needed(pool_t *p)
{
    if (atomic_load(&p->shared.nsearching) != 0 ||
        atomic_load(&p->shared.nsleeping) == 0)
        return;
    fut__pool_lock(p);
    fut__wake_one_locked(p);
    fut__pool_unlock(p);
}

/* ------------------------------------------------------ waking threads -- */

void fut__start_searching(pool_t *p, struct fut__worker *w)
{
    if (!w->searching) {
        w->searching = true;
        atomic_fetch_add_explicit(&p->shared.nsearching, 1,
                                  memory_order_seq_cst);
    }
}

/* A searcher found work. If it was the last one searching and more work
 * is queued, another thread must look for it (see the top of the file). */
void fut__stop_searching(pool_t *p, struct fut__worker *w, bool found)
{
    if (!w->searching)
        return;
    w->searching = false;
    if (atomic_fetch_sub(&p->shared.nsearching, 1) == 1 && found &&
        fut__core_work_visible(p))
        fut__wake_if_needed(p);
}

/* Does any core thread hold or look for work? The lock is held. */
static bool any_busy_locked(const pool_t *p)
{
    FUT_ASSERT_HELD(&((pool_t *)p)->lock);
    size_t n = fut__pool_nrings((pool_t *)p);
    for (size_t i = 0; i < n; i++)
        if (p->rings[i]->busy || fut__ring_len(p->rings[i]))
            return true;
    return false;
}

/* ---------------------------------------------------- stopping, cancelling */

void fut__maybe_stop_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    if (fut__pool_state(p) != FUT_POOL_DRAINING || p->blocking.jobs.len ||
        p->blocking.running || any_busy_locked(p))
        return;
    fut__mutex_lock(&p->inject.lock);
    bool empty = p->inject.queue.len == 0;
    if (empty)
        atomic_store(&p->shared.state, FUT_POOL_STOPPED);
    fut__mutex_unlock(&p->inject.lock);
    if (empty) {
        pthread_cond_broadcast(&p->work);
        pthread_cond_broadcast(&p->blocking.work);
    }
}

/* Core threads beyond ncore that are able to run tasks. */
static bool core_surplus_locked(const pool_t *p)
{
    return p->locked.nlive - p->locked.nwaiting > p->locked.ncore;
}

/* Waits on @cond until woken, or for idle_ns when @timed; true on time-out. */
bool fut__idle_wait_locked(pool_t *p, pthread_cond_t *cond, bool timed)
{
    FUT_ASSERT_HELD(&p->lock);
    fut__thread_sleeps(true);
    bool timed_out = false;
    if (!timed) {
        pthread_cond_wait(cond, &p->lock);
    } else {
        struct timespec deadline;
        fut__deadline(&deadline, p->locked.idle_ns);
        timed_out = pthread_cond_timedwait(cond, &p->lock, &deadline) ==
                    ETIMEDOUT;
    }
    fut__thread_sleeps(false);
    return timed_out;
}

/*
 * Spins a while watching for core work before the thread goes to sleep.
 * It yields the CPU every few hundred nanoseconds, because the thread it
 * just woke (a waiter, say) is often queued on this very CPU and would
 * otherwise wait for the spin to end. Returns whether work showed up.
 */
bool fut__spin_for_work(pool_t *p)
{
    uint64_t until = fut__now_ns() + FUT_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (fut__core_work_visible(p))
            return true;
        if (i % 64 == 0) {
            if (fut__now_ns() > until || fut__pool_winding_down(p))
                return false;
            sched_yield();
        }
        fut__cpu_relax();
    }
}

/* A woken thread is a searcher again: its waker made it one, or it does. */
static void woken_locked(pool_t *p, struct fut__worker *w)
{
    FUT_ASSERT_HELD(&p->lock);
    if (p->locked.wake_tokens) {
        p->locked.wake_tokens--;
    } else {
        atomic_fetch_sub_explicit(&p->shared.nsleeping, 1,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&p->shared.nsearching, 1,
                                  memory_order_relaxed);
    }
    w->searching = true;
    w->ring->busy = true;
}

/*
 * A searching core thread that found nothing: sleeps until there is work
 * (true), or returns false when it should exit (the pool is winding down,
 * or the thread is beyond what the pool keeps and stayed idle for
 * idle_ns). The lock is held.
 */
bool fut__park_locked(pool_t *p, struct fut__worker *w)
{
    FUT_ASSERT_HELD(&p->lock);
    w->ring->busy = false;
    fut__maybe_stop_locked(p);
    if (fut__pool_winding_down(p)) {
        fut__stop_searching(p, w, false);
        return false;
    }
    atomic_fetch_add(&p->shared.nsleeping, 1);
    w->searching = false;
    atomic_fetch_sub(&p->shared.nsearching, 1);
    if (fut__core_work_visible(p)) { /* it came in meanwhile: no sleep */
        atomic_fetch_sub_explicit(&p->shared.nsleeping, 1,
                                  memory_order_relaxed);
        fut__start_searching(p, w);
        w->ring->busy = true;
        return true;
    }
    bool timed_out = fut__idle_wait_locked(p, &p->work, core_surplus_locked(p));
    woken_locked(p, w);
    if (!timed_out || !core_surplus_locked(p))
        return true;
    /* Idle for idle_ns and beyond the core: go, but leave the searchers
     * before the last look, as a sleeper does, or a queuer who counted on
     * this thread would wake nobody. */
    w->searching = false;
    atomic_fetch_sub(&p->shared.nsearching, 1);
    if (fut__core_work_visible(p)) {
        fut__start_searching(p, w);
        return true;
    }
    w->ring->busy = false;
    return false;
}
