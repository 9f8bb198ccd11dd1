/*
 * wait.c - waiting for a future: spinning a little, then blocking.
 *
 * A thread that blocks sets the future's waited flag and sleeps on its
 * stripe (stripe.c); the settler, having stored SETTLED, reads waited and
 * wakes the stripe (settle.c gives the ordering argument). A pool's thread
 * tells its pool before it blocks, through the executor it serves
 * (fut__self.serves, and the block_* operations of struct fut__exec_ops),
 * so the pool can start a stand-in or have the waiter help; the core knows
 * no more of pools than that.
 *
 * A wait that could only end once this very thread moved on fails at once
 * with EDEADLK: one for a future whose work runs below it on this stack
 * (a task waiting for itself, or for the task that a helped wait runs
 * above), and one on a loop's thread for a future that only that loop can
 * settle (watch.c, fut__needs_exec).
 */
#include "internal.h"
#include "walk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Would waiting for @f here wait for this thread's own stack to unwind? */
static bool waits_for_itself(future_t *f)
{
    for (const struct fut__frame *fr = fut__self.running; fr; fr = fr->outer) {
        if (fr->f == f)
            return true;
    }
    return fut__self.loop && fut__needs_exec(f, fut__self.loop);
}

static int block_on(future_t *f, const struct timespec *deadline);

/*
 * Blocks for @f, as block_on(), unless the wait would never end: what
 * settles @f waits, through running tasks each blocked on the next one's
 * future, for this thread (deadlock.c). Looking and then saying what it
 * blocks on is one step among all threads (fut__cycle_check_begin), so of
 * threads closing a cycle together the last to look sees it whole, and
 * only its wait fails. The check runs only here, once spinning has not
 * sufficed.
 */
/* Would waiting for @f on this thread wait for ever? Then EDEADLK, or,
 * with FUTURES_DEADLOCK=abort, a report of the cycle and abort(). */
static int wait_cycle(future_t *f)
{
    if (!fut__needs_this_thread(f, NULL))
        return 0;
    if (!fut__deadlock_aborts())
        return EDEADLK;
    fut__deadlock_report_head(f);
    fut__needs_this_thread(f, stderr); /* again, saying what it finds */
    fflush(stderr);
    abort();
}

static int block_unless_cycle(future_t *f, const struct timespec *deadline)
{
    int error = 0;
    struct fut__blocked saved;
    bool said = false;
    if (fut__cycle_check_begin()) {
        error = wait_cycle(f);
        if (!error) {
            fut__thread_block(f, deadline != NULL, &saved);
            said = true;
        }
        fut__cycle_check_end();
    }
    if (!error)
        error = block_on(f, deadline);
    if (said)
        fut__thread_unblock(&saved);
    return error;
}

/* The executor this thread serves, when it can be told of a wait. */
static struct fut__exec *served(void)
{
    return fut__self.serves;
}

static enum fut__block block_begin(void)
{
    struct fut__exec *e = served();
    return e ? e->ops->block_begin(e) : FUT_BLOCK_PLAIN;
}

static void block_end(enum fut__block how)
{
    if (how != FUT_BLOCK_PLAIN)
        served()->ops->block_end(served(), how);
}

/*
 * A waiter that could get no stand-in and whose stack has no room to help
 * (help_one says FUT_NO_ROOM) gives up, with EAGAIN, even when @f is
 * running: the pool counts this thread as one that runs work (it has no
 * stand-in), so another waiter may have gone to sleep trusting it to run
 * what that waiter queued, and the task that @f runs may wait for exactly
 * that. Giving up unwinds one task from this stack, and the thread helps
 * again from there. A timed wait just waits: it ends by itself.
 */
static bool must_give_up(const struct timespec *deadline, enum fut__help help)
{
    return !deadline && help == FUT_NO_ROOM;
}

/*
 * One step of waiting for @f with its stripe @s locked. Returns false once
 * @deadline (NULL: none) has passed, or when the wait gives up (*how is
 * then FUT_BLOCK_STUCK).
 */
static bool wait_step(future_t *f, struct fut__stripe **s, enum fut__block *how,
                      const struct timespec *deadline)
{
    if (*how == FUT_BLOCK_HELP) {
        /* No stand-in thread could be started. Try again, and meanwhile run
         * queued work here, polling, since new work that @f needs would
         * not wake this thread. A helped task that waits for one of ours
         * gets EDEADLK (waits_for_itself) rather than hanging. */
        fut__unlock(*s);
        enum fut__help help = FUT_NO_WORK;
        if (served()->ops->block_retry(served())) {
            *how = FUT_BLOCK_COMPENSATED;
        } else {
            help = served()->ops->help_one(served());
            if (must_give_up(deadline, help))
                *how = FUT_BLOCK_STUCK;
        }
        bool helped = help == FUT_HELPED;
        *s = fut__lock(f);
        if (*how == FUT_BLOCK_STUCK)
            return false;
        if (*how != FUT_BLOCK_HELP)
            return true;
        if (!helped) {
            struct timespec soon;
            fut__deadline(&soon, 1000000);
            pthread_cond_timedwait(&(*s)->cond, &(*s)->lock, &soon);
        }
        return !deadline || !fut__passed(deadline);
    }
    if (!deadline) {
        pthread_cond_wait(&(*s)->cond, &(*s)->lock);
        return true;
    }
    return pthread_cond_timedwait(&(*s)->cond, &(*s)->lock, deadline) !=
           ETIMEDOUT;
}

/*
 * Spins up to @ns for @f to settle; returns whether it did. Only a running
 * future is worth the whole spin: one still queued may wait for a sleeping
 * worker to wake, and a waiter that spins meanwhile keeps its CPU from
 * running that worker, so it gives up after QUEUED_SPIN_NS.
 */
#define QUEUED_SPIN_NS 2000

static bool spin_on(const future_t *f, uint64_t ns)
{
    uint64_t start = fut__now_ns(), elapsed = 0;
    for (unsigned i = 1;; i++) {
        if (fut__is_settled(f))
            return true;
        int state =
            atomic_load_explicit(&((future_t *)f)->state, memory_order_relaxed);
        if (i % 32 == 0) {
            elapsed = fut__now_ns() - start;
            if (elapsed > ns ||
                (state < FUT_RUNNING && elapsed > QUEUED_SPIN_NS))
                return false;
        }
        fut__cpu_relax();
    }
}

/* fut__is_settled(), but sequentially consistent: the load that pairs
 * with the settler's store of SETTLED and load of waited (settle.c). */
static bool settled_seq_cst(future_t *f)
{
    return atomic_load_explicit(&f->state, memory_order_seq_cst) ==
               FUT_SETTLED ||
           atomic_load_explicit(&f->deps, memory_order_acquire) ==
               FUT_DEPS_CLOSED;
}

/*
 * Blocks until @f settles or @deadline passes; returns 0 if it settled,
 * else ETIMEDOUT, or EAGAIN if it gave up (must_give_up). A pool thread
 * that blocks asks its pool for a stand-in first (worker.c).
 */
static int block_on(future_t *f, const struct timespec *deadline)
{
    enum fut__block how = block_begin();
    struct fut__stripe *s = fut__lock(f);
    /* Never cleared: a spare wake-up is harmless. Sequentially consistent,
     * as the settler's store of SETTLED and load of waited (see the top). */
    atomic_store_explicit(&f->waited, true, memory_order_seq_cst);
    while (!settled_seq_cst(f) && wait_step(f, &s, &how, deadline))
        ;
    bool settled = fut__is_settled(f);
    fut__unlock(s);
    block_end(how);
    if (settled)
        return 0;
    return how == FUT_BLOCK_STUCK ? EAGAIN : ETIMEDOUT;
}

/* Waits until @f has settled; 0, or why the wait could not be made
 * (EDEADLK, EAGAIN: @f itself is untouched). */
static int wait_settled(future_t *f)
{
    if (fut__is_settled(f))
        return 0;
    if (waits_for_itself(f))
        return EDEADLK;
    return spin_on(f, FUT_SPIN_NS) ? 0 : block_unless_cycle(f, NULL);
}

/* The outcome of @f, settled: its error, and its value in *@value. */
static int outcome(future_t *f, void **value)
{
    if (f->error)
        fut__observe(f); /* only failures are ever reported */
    if (value)
        *value = f->error ? NULL : f->value;
    return f->error;
}

int future_wait(future_t *f, void **value)
{
    if (!f)
        return EINVAL;
    int error = wait_settled(f);
    if (error)
        return error;
    if (f->error)
        return outcome(f, NULL); /* *value stays as it was */
    return outcome(f, value);
}

int future_wait_all(future_t *const *fs, size_t n, void **values, int *errors)
{
    if (n > 0 && !fs)
        return EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i])
            return EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        int error = wait_settled(fs[i]);
        if (error) { /* a wait that cannot be made: say so at its index */
            if (values)
                values[i] = NULL;
            if (errors)
                errors[i] = error;
            return error;
        }
    }
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int error = outcome(fs[i], values ? &values[i] : NULL);
        if (errors)
            errors[i] = error;
        if (error && !first)
            first = error;
    }
    return first;
}

bool future_wait_for(future_t *f, uint64_t timeout_ns)
{
    if (!f)
        return false;
    if (fut__is_settled(f))
        return true;
    if (timeout_ns == 0 || waits_for_itself(f))
        return false;
    struct timespec deadline; /* from now, not from after the spin */
    fut__deadline(&deadline, timeout_ns);
    if (spin_on(f, timeout_ns < FUT_SPIN_NS ? timeout_ns : FUT_SPIN_NS))
        return true;
    return block_unless_cycle(f, &deadline) == 0;
}

bool future_is_ready(const future_t *f)
{
    return f && fut__is_settled(f);
}
