/*
 * pool_end.c - the end of a pool: pool_shutdown(), pool_destroy() and
 * pool_destroy_timeout().
 *
 * Shutting a pool down, step by step (docs/internals.md has the whole):
 *  1. pool_shutdown() sets DRAINING or CANCELLED under the pool lock and
 *     inject.lock, so no submission lands in a queue already emptied;
 *  2. with CANCELLED, fut__cancel_queued() empties the injection queue,
 *     the jobs and every ring, cancelling tasks and sending continuations
 *     to the default pool; a thread that took a task a moment before
 *     cancels it itself (worker.c, run_on_core);
 *  3. threads that find no work call fut__maybe_stop_locked() (idle.c):
 *     once nothing is queued, running or held by a busy ring, the pool is
 *     STOPPED and every idle thread is woken;
 *  4. each thread sees the pool winding down, leaves its loop and goes on
 *     the exited list (threads.c); the last one signals `ended`;
 *  5. pool_destroy() waits for `ended`, joins the threads and drops the
 *     creator's reference; the last future the pool ran drops the last.
 */
#include "pool_internal.h"

#include <errno.h>
#include <stdio.h>

/* --------------------------------------------------------- shutting down -- */

/* Sets @pool's state; its lock is held, and the injection queue's lock is
 * taken too, so no submission slips into a queue already emptied. */
static void set_state_locked(pool_t *pool, int state)
{
    FUT_ASSERT_HELD(&pool->lock);
    fut__mutex_lock(&pool->inject.lock);
    atomic_store(&pool->shared.state, state);
    fut__mutex_unlock(&pool->inject.lock);
}

/* pool_shutdown() for any pool, the default one too (futures_shutdown). */
static void shutdown_pool(pool_t *pool, int mode)
{
    fut__pool_lock(pool);
    bool cancel = false;
    if (pool->shared.state == FUT_POOL_OPEN) {
        cancel = mode == POOL_CANCEL;
        set_state_locked(pool, cancel ? FUT_POOL_CANCELLED : FUT_POOL_DRAINING);
        fut__maybe_stop_locked(pool);
        pthread_cond_broadcast(&pool->work);
        pthread_cond_broadcast(&pool->blocking.work);
    }
    fut__pool_unlock(pool);
    if (cancel)
        fut__cancel_queued(pool);
}

void pool_shutdown(pool_t *pool, int mode)
{
    if (!pool || pool->is_default || fut__pool_is_stale(pool))
        return;
    shutdown_pool(pool, mode);
}

/*
 * Waits until every thread of @pool has ended and returns them to join, or
 * until @deadline (NULL: none) passes: then returns NULL with *@late set.
 * A task of another pool may be the one waiting: it counts as blocked
 * there, so that pool keeps its capacity, and if no stand-in thread could
 * start it runs that pool's queued work meanwhile and asks again, as
 * future_wait() does; what @pool is finishing may be waiting for that work.
 */
static struct fut__worker *
wait_for_threads(pool_t *pool, const struct timespec *deadline, bool *late)
{
    enum fut__block how = fut__block_begin();
    fut__pool_lock(pool);
    *late = false;
    while (pool->locked.nlive + pool->blocking.live > 0) {
        if (deadline && how != FUT_BLOCK_HELP) {
            if (pthread_cond_timedwait(&pool->ended, &pool->lock, deadline) ==
                    ETIMEDOUT &&
                pool->locked.nlive + pool->blocking.live > 0) {
                *late = true;
                break;
            }
            continue;
        }
        if (how != FUT_BLOCK_HELP) {
            pthread_cond_wait(&pool->ended, &pool->lock);
            continue;
        }
        fut__pool_unlock(pool);
        bool helped = false;
        if (fut__block_retry())
            how = FUT_BLOCK_COMPENSATED;
        else
            helped = fut__help_one() == FUT_HELPED;
        fut__pool_lock(pool);
        if (how == FUT_BLOCK_HELP && !helped) {
            struct timespec soon; /* new work there would not wake us */
            fut__deadline(&soon, 1000000);
            pthread_cond_timedwait(&pool->ended, &pool->lock, &soon);
        }
        if (deadline && fut__passed(deadline) &&
            pool->locked.nlive + pool->blocking.live > 0) {
            *late = true;
            break;
        }
    }
    struct fut__worker *ended = *late ? NULL : fut__take_exited_locked(pool);
    fut__pool_unlock(pool);
    fut__block_end(how);
    return ended;
}

/* What pool_destroy_timeout() reports of a pool that did not end. */
static void report_stuck(pool_t *pool, uint64_t timeout_ns, FILE *out)
{
    struct fut__report r;
    FILE *to = fut__report_begin(&r, out);
    fprintf(to, "libfutures: pool %u did not end within %.3f s\n", pool->id,
            (double)timeout_ns / 1e9);
    fut__pool_describe(pool, to);
    fut__thread_report(to, &pool->exec);
    fut__report_end(&r);
}

/* pool_destroy(), waiting until @deadline at most (NULL: for ever); false
 * if the threads had not all ended by then (the pool stays, shut down). */
static bool destroy_until(pool_t *pool, const struct timespec *deadline)
{
    shutdown_pool(pool, POOL_DRAIN);
    struct fut__worker *ended;
    if (fut__on_pool_thread(pool)) {
        fut__pool_lock(pool);
        pool->locked.detach_exits = true; /* this thread cannot join itself */
        ended = fut__take_exited_locked(pool);
        fut__pool_unlock(pool);
    } else {
        bool late;
        ended = wait_for_threads(pool, deadline, &late);
        if (late)
            return false;
    }
    fut__join_all(ended);
    fut__pool_release(pool); /* the creator's */
    return true;
}

void pool_destroy(pool_t *pool)
{
    /* A parent's pool, in a child of fork(), is left alone: its threads
     * are not here to join and its lock may never be free again. */
    if (!pool || pool->is_default || fut__pool_is_stale(pool))
        return;
    destroy_until(pool, NULL);
}

int pool_destroy_timeout(pool_t *pool, uint64_t timeout_ns, FILE *report)
{
    if (!pool)
        return EINVAL;
    if (pool->is_default || fut__pool_is_stale(pool))
        return 0; /* as pool_destroy(): nothing to end here */
    struct timespec deadline;
    fut__deadline(&deadline, timeout_ns);
    if (destroy_until(pool, &deadline))
        return 0;
    if (report)
        report_stuck(pool, timeout_ns, report);
    return ETIMEDOUT;
}

/* ------------------------------------------------- the library's own -- */

/*
 * Ends the library's own threads: the default pool drains (what it was
 * given still runs) and its threads, stand-ins included, exit and are
 * joined; the timer thread ends, cancelling the delays pending. Both come
 * back on first use. A report of what did not end goes to stderr.
 */
int futures_shutdown(uint64_t timeout_ns)
{
    struct timespec deadline;
    fut__deadline(&deadline, timeout_ns);
    int rc = 0;
    pool_t *p = fut__default_pool_take();
    if (p && !fut__on_pool_thread(p) && !destroy_until(p, &deadline)) {
        report_stuck(p, timeout_ns, stderr); /* left shut down; it ends */
        rc = ETIMEDOUT;
    } else if (p && fut__on_pool_thread(p)) {
        destroy_until(p, NULL); /* from one of its tasks: as pool_destroy */
    }
    if (fut__timer_stop(&deadline)) {
        fprintf(stderr, "libfutures: the timer thread did not end within "
                        "%.3f s\n",
                (double)timeout_ns / 1e9);
        rc = ETIMEDOUT;
    }
    return rc;
}
