/*
 * pool_exec.c - a pool as the core sees it: the executor operations that
 * settle.c and wait.c call through struct fut__exec_ops, and the end of a
 * pool's memory when its last reference goes.
 *
 * A pool's references: its creator's (pool_destroy drops it), one per live
 * thread, and one per future it runs or will run its continuations on
 * (fut__set_exec). The files below pool.c take and drop them through these
 * operations, so none of them names fut__pool_free().
 *
 * The wait operations act on the calling thread's own pool, which its
 * worker record names (fut__self.worker): the core calls them only for the
 * executor the thread serves.
 */
#include "pool_internal.h"

#include <errno.h>

/* ----------------------------------------------------------- freeing -- */

void fut__pool_free(pool_t *p)
{
    fut__pools_remove(p);
    size_t n = atomic_load(&p->shared.nrings);
    for (size_t i = 0; i < n; i++)
        fut__mem_free(p->rings[i]);
    fut__mem_free(p->rings);
    pthread_mutex_destroy(&p->inject.lock);
    pthread_cond_destroy(&p->ended);
    pthread_cond_destroy(&p->blocking.work);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    fut__mem_free(p);
}

/* ------------------------------------------------------- the executor -- */

static pool_t *pool_of(struct fut__exec *exec)
{
    return fut__container_of(exec, pool_t, exec);
}

static void exec_retain(struct fut__exec *exec)
{
    atomic_fetch_add_explicit(&pool_of(exec)->refs, 1, memory_order_relaxed);
}

static void exec_release(struct fut__exec *exec)
{
    pool_t *p = pool_of(exec);
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        fut__pool_free(p);
}

static void exec_schedule(struct fut__exec *exec, future_t *f)
{
    fut__pool_schedule(pool_of(exec), f);
}

/* A pool shut down takes no more work, not even a continuation made to
 * run on it (future_then_via); a copy in a child of fork() none at all. */
static int exec_refuses(struct fut__exec *exec)
{
    pool_t *p = pool_of(exec);
    if (fut__pool_is_stale(p))
        return ECHILD;
    return fut__pool_state(p) == FUT_POOL_OPEN ? 0 : ESHUTDOWN;
}

static enum fut__block exec_block_begin(struct fut__exec *exec)
{
    (void)exec;
    return fut__block_begin();
}

static bool exec_block_retry(struct fut__exec *exec)
{
    (void)exec;
    return fut__block_retry();
}

static enum fut__help exec_help_one(struct fut__exec *exec)
{
    (void)exec;
    return fut__help_one();
}

static void exec_block_end(struct fut__exec *exec, enum fut__block how)
{
    (void)exec;
    fut__block_end(how);
}

const struct fut__exec_ops fut__pool_exec_ops = {
    .schedule = exec_schedule,
    .retain = exec_retain,
    .release = exec_release,
    .refuses = exec_refuses,
    .block_begin = exec_block_begin,
    .block_retry = exec_block_retry,
    .help_one = exec_help_one,
    .block_end = exec_block_end};
