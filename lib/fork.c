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
 * Stripes and buckets. The futures' 128 stripes (stripe.c) and the 64
 * buckets of result destructors (owned.c) are too many to hold at once:
 * ThreadSanitizer's deadlock detector tracks 64 locks per thread and aborts
 * beyond that. So they are gated locks, and fork() holds only the gate:
 *
 *   prepare  lock the gate; set fut__forking; lock and at once unlock each
 *            bucket and each stripe, so whoever was inside has left.
 *   gated    fut__gated_lock(): lock the mutex, load fut__forking; if set,
 *            unlock it, lock and unlock the gate (the forking thread holds
 *            it until its parent or child handler), and try again.
 *   parent   clear fut__forking; unlock the gate.
 *   child    re-initialise every bucket and stripe mutex (and the stripes'
 *            condition variables); clear fut__forking; unlock the gate.
 *
 * Why the relaxed load after the lock is enough. Each mutex orders its
 * critical sections in time. If a thread's section on mutex M comes after
 * the prepare handler's lock and unlock of M, that unlock synchronises with
 * the thread's lock, so the store of true, made before it, happens before
 * the thread's load, which therefore sees true (or a later value: then the
 * fork is over) and backs off. If it comes before, the prepare handler's
 * lock of M waited for it to end. Either way no thread is inside a real
 * critical section of a stripe or bucket when fork() copies the process.
 * A thread that saw true and waits at the gate sees false when it passes:
 * the clear comes before the gate's unlock, which its lock of the gate
 * follows.
 *
 * A thread may still hold a stripe or bucket mutex at the fork, but only in
 * a moment that writes nothing: between its lock and its back-off, or as a
 * waiter that pthread_cond_wait() or timedwait() woke and locked the stripe
 * again (bypassing fut__gated_lock). Such a waiter only reads its future's
 * state and the clock before it waits again or unlocks (future.c,
 * block_on), so the child's copy of what the stripe guards is whole. That
 * is why the child starts every such mutex afresh instead of unlocking it.
 *
 * Lock order: the modules' own locks, then the gate, then the buckets and
 * the stripes one at a time, which are leaves (no code takes a module's
 * lock, the gate, a stripe or a bucket while it holds one); last the
 * allocator's depot (slab.c), since freeing a future may take it under any
 * other lock. So a thread that waits at the gate holds nothing the forking
 * thread still needs. Across fork() itself the prepare handler holds the
 * modules' locks, the gate and the depot.
 */
#include "internal.h"

atomic_uint fut__generation;
atomic_bool fut__forking;

/* Held by the forking thread from its prepare handler to its parent or
 * child handler; gated locks wait here meanwhile. */
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

void fut__fork_wait(pthread_mutex_t *held)
{
    pthread_mutex_unlock(held);
    pthread_mutex_lock(&gate);
    pthread_mutex_unlock(&gate);
}

/* One gated lock's part in fork(): see the top. */
void fut__gated_fork(pthread_mutex_t *m, enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        pthread_mutex_lock(m);
        pthread_mutex_unlock(m);
    } else if (phase == FUT_FORK_CHILD && fut__mutex_init(m) != 0) {
        fut__panic("cannot initialise a lock after fork()");
    }
}

/* The store needs no more than the unlocks that follow it (see the top);
 * seq_cst costs nothing once per fork. */
static void gate_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        pthread_mutex_lock(&gate);
        atomic_store(&fut__forking, true);
        return;
    }
    atomic_store(&fut__forking, false);
    pthread_mutex_unlock(&gate);
}

/* Prepare in this order; parent and child in the reverse one. */
static void (*const hooks[])(enum fut__fork_phase) = {
    fut__sched_fork, fut__timer_fork, fut__trace_fork,  fut__unobserved_fork,
    gate_fork,       fut__owned_fork, fut__stripe_fork, fut__slab_fork};
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
