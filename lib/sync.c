/*
 * sync.c - the primitives every file locks and waits with: mutexes taken
 * through one checked wrapper, condition variables on the monotonic clock,
 * deadlines, and the fork gate.
 *
 * The checked wrapper. A failed lock or unlock is a bug (an uninitialised
 * or corrupted mutex) and stops the program, as in libuv. In debug builds
 * (make DEBUG=1) mutexes are error-checking, and the wrapper keeps the
 * locks this thread holds in fut__self, so that every function whose name
 * ends in _locked asserts its caller holds the lock (FUT_ASSERT_HELD).
 *
 * The fork gate.
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
 * state and the clock before it waits again or unlocks (wait.c,
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

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------------ mutexes -- */

int fut__mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (FUT_DEBUG)
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    int rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

int fut__cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

#if FUT_DEBUG
static void note_held(pthread_mutex_t *m)
{
    if (fut__self.nheld == sizeof fut__self.held / sizeof fut__self.held[0])
        fut__panic("more library locks held at once than tracked");
    fut__self.held[fut__self.nheld++] = m;
}

/* Forgets @m; one the wrapper never saw taken (fork()'s handlers take
 * some directly) is ignored. */
static void note_released(pthread_mutex_t *m)
{
    for (unsigned i = fut__self.nheld; i-- > 0;) {
        if (fut__self.held[i] == m) {
            fut__self.held[i] = fut__self.held[--fut__self.nheld];
            return;
        }
    }
}

bool fut__mutex_held(const pthread_mutex_t *m)
{
    for (unsigned i = 0; i < fut__self.nheld; i++)
        if (fut__self.held[i] == m)
            return true;
    return false;
}
#else
static void note_held(pthread_mutex_t *m)
{
    (void)m;
}

static void note_released(pthread_mutex_t *m)
{
    (void)m;
}
#endif

void fut__mutex_lock(pthread_mutex_t *m)
{
    if (pthread_mutex_lock(m))
        fut__panic("lock failed");
    note_held(m);
}

void fut__mutex_unlock(pthread_mutex_t *m)
{
    note_released(m);
    if (pthread_mutex_unlock(m))
        fut__panic("unlock failed");
}

/* ---------------------------------------------------------- the clock -- */

uint64_t fut__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void fut__deadline(struct timespec *ts, uint64_t ns_from_now)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t ns = (uint64_t)ts->tv_nsec + ns_from_now % 1000000000u;
    uint64_t s = ns_from_now / 1000000000u + ns / 1000000000u;
    /* Clamp absurd timeouts rather than wrap into the past. */
    if (s > (uint64_t)INT32_MAX * 16)
        s = (uint64_t)INT32_MAX * 16;
    ts->tv_sec += (time_t)s;
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Has CLOCK_MONOTONIC reached @deadline? */
bool fut__passed(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* ------------------------------------------------------- the fork gate -- */

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
void fut__gate_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        pthread_mutex_lock(&gate);
        atomic_store(&fut__forking, true);
        return;
    }
    atomic_store(&fut__forking, false);
    pthread_mutex_unlock(&gate);
}
