/*
 * fork.c - a child of fork() can go on using libfutures.
 *
 * fork() copies only the calling thread. Every lock another thread held at
 * that moment stays locked in the child for ever, and the pools' threads are
 * gone. So, as glibc does for malloc, the prepare handler takes each
 * module's own process-wide lock, in a fixed order, and makes sure nobody
 * is inside a stripe or bucket (below); the parent and the child let go of
 * them after. The child then starts
 * afresh: a new default pool on first use, the timer thread restarted for
 * the delays it inherited, no trace. Pools made before the fork belong to
 * the parent; their threads do not exist here, so they refuse work with
 * ECHILD instead of queueing it where nothing would ever run it
 * (fut__pool_is_stale). The fork generation tells them apart.
 *
 * The stripes and the result-destructor buckets are gated locks instead
 * of held ones (sync.c explains why, and why that is safe).
 */
#include "internal.h"

/* Prepare in this order; parent and child in the reverse one. */
static void (*const hooks[])(enum fut__fork_phase) = {
    fut__cycle_fork,  fut__pool_fork,       fut__loop_fork,  fut__timer_fork,
    fut__trace_fork,  fut__unobserved_fork, fut__gate_fork,  fut__owned_fork,
    fut__stripe_fork, fut__slab_fork,       fut__thread_fork};
#define NHOOKS (sizeof hooks / sizeof hooks[0])

static void prepare(void)
{
    for (size_t i = 0; i < NHOOKS; i++)
        hooks[i](FUT_FORK_PREPARE);
}

static void parent(void)
{
    for (size_t i = NHOOKS; i-- > 0;)
        hooks[i](FUT_FORK_PARENT);
}

static void child(void)
{
    atomic_fetch_add(&fut__generation, 1);
    for (size_t i = NHOOKS; i-- > 0;)
        hooks[i](FUT_FORK_CHILD);
    fut__timer_after_fork(); /* the first thread the child starts */
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    if (pthread_atfork(prepare, parent, child) != 0)
        fut__panic("cannot register the fork handlers");
}
