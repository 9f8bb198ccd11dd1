/*
 * settle.c - the future's state machine: settling, running, cancelling,
 * and handing ready futures to their executors.
 *
 * The state machine is written out in internal.h. Its rules:
 *  - every change of state is a compare-and-swap or a store by the one
 *    thread that owns the step: settling takes no lock;
 *  - a PENDING or QUEUED future is settled by the thread that claims it
 *    (a compare-and-swap to SETTLING), a RUNNING one by the thread that
 *    runs it;
 *  - the settler writes the outcome, closes the dependents
 *    (fut__close_deps, watch.c: release), stores SETTLED, and tells the
 *    dependents last. The close commits: from then on the future counts as
 *    settled (fut__is_settled), and whoever sees it closed or SETTLED sees
 *    the outcome. A dependent pushed before the close is in the list; one
 *    that comes after finds it closed and is told at once;
 *  - a thread that blocks sets waited and waits on the future's stripe
 *    (stripe.c); the settler stores SETTLED and then reads waited, both
 *    sequentially consistent, so one of the two always sees the other, and
 *    a settler that sees waited wakes the stripe under its lock.
 *
 * The core knows executors only through struct fut__exec_ops: a ready
 * future goes to its own executor, or to the default one that pool.c
 * registers (fut__set_default_exec), and the pool decides what happens
 * around a settle it runs (fut__start, fut__finish: chaining).
 */
#include "internal.h"

#include <errno.h>

/* Wakes the threads blocked on @f (block_on): they wait on its stripe. */
static void wake_waiters(future_t *f)
{
    struct fut__stripe *s = fut__lock(f);
    pthread_cond_broadcast(&s->cond);
    fut__unlock(s);
}

/* What a failure leaves behind: the function that failed (for
 * unobserved.c), and its message, a reference the settle takes over. */
struct failure {
    fut__fn site;
    struct fut__why *why;
};

/*
 * Settles @f, which this thread has claimed, and returns the dependents
 * to tell. A success keeps @value, a failure @why.
 */
static struct fut__watch *settle_claimed(future_t *f, int error, void *value,
                                         struct failure why)
{
    f->error = error;
    f->has_why = error && why.why;
    if (f->has_why) {
        if (why.site && !why.why->site) /* a fresh one: not shared yet */
            why.why->site = why.site;
        f->why = why.why;
    } else if (error) {
        f->site = why.site;
    } else {
        f->value = value;
    }
    if (error && f->ops->failing)
        f->ops->failing(f);
    /* Closing the dependents commits the outcome: from then on the future
     * counts as settled (fut__is_settled), before SETTLED is stored, so a
     * dependent is never seen settled before it, and a child of fork()
     * whose settler stayed in the parent still sees the outcome. */
    struct fut__watch *list = fut__close_deps(f);
    atomic_store_explicit(&f->state, FUT_SETTLED, memory_order_seq_cst);
    if (atomic_load_explicit(&f->waited, memory_order_seq_cst))
        wake_waiters(f);
    if (list && error)
        fut__observe(f); /* the failure goes to whoever watches it */
    return list;
}

/* What follows a settlement. */
static void after_settle(future_t *f, struct fut__watch *list)
{
    if (f->tracked)
        f->exec->ops->pending_done(f->exec);
    if (f->ops->settled)
        f->ops->settled(f);
    fut__deliver(list);
}

/* Moves @f from state @from to @to, unless another thread moved it. */
static bool move_state(future_t *f, int from, int to)
{
    unsigned char expected = (unsigned char)from;
    return atomic_compare_exchange_strong_explicit(
        &f->state, &expected, (unsigned char)to, memory_order_acq_rel,
        memory_order_acquire);
}

/*
 * Makes the settlement of @f this thread's. A PENDING or QUEUED future is
 * claimed by moving it to SETTLING: then no worker can start it while its
 * outcome is written over its task fields, and no other settler can win.
 * A RUNNING future is settled only by the thread that runs it, which is the
 * caller unless @running_is_other.
 */
static bool claim(future_t *f, bool running_is_other)
{
    for (;;) {
        int state = atomic_load_explicit(&f->state, memory_order_acquire);
        if (state == FUT_SETTLED || state == FUT_SETTLING)
            return false;
        if (state == FUT_RUNNING)
            return !running_is_other;
        if (move_state(f, state, FUT_SETTLING))
            return true;
        running_is_other = true; /* if it is RUNNING now, a worker took it */
    }
}

static bool settle(future_t *f, int error, void *value, struct failure why)
{
    if (!claim(f, false)) {
        fut__why_release(why.why);
        return false;
    }
    after_settle(f, settle_claimed(f, error, value, why));
    return true;
}

/*
 * Settles @f with @error (0: success with @value) unless it has settled
 * already. Returns true if this call settled it. The caller holds a
 * reference to @f.
 */
bool fut__settle(future_t *f, int error, void *value)
{
    return settle(f, error, error ? NULL : value, (struct failure){0});
}

/* fut__settle() with a failure and its message; @why is taken over. */
bool fut__fail_why(future_t *f, int error, struct fut__why *why)
{
    return settle(f, error, NULL, (struct failure){NULL, why});
}

/* Settles @f with the outcome of @from, which has settled, message
 * included. A value passed on stays @from's: the caller keeps @from alive
 * while @f is. */
bool fut__pass_on(future_t *f, const future_t *from)
{
    if (!from->error)
        return settle(f, 0, from->value, (struct failure){0});
    struct failure why = {fut__failure_site(from), NULL};
    if (from->has_why)
        why.why = fut__why_retain(from->why);
    return settle(f, from->error, NULL, why);
}

/*
 * Moves a PENDING future whose inputs are ready to QUEUED and hands it to its
 * executor, unless it was cancelled meanwhile. The run queue gets a
 * reference of its own.
 */
void fut__enqueue(future_t *f)
{
    if (move_state(f, FUT_PENDING, FUT_QUEUED))
        fut__schedule(future_retain(f));
}

/*
 * Starts a QUEUED future taken from a run queue: runs its work and returns
 * true, with its outcome in *error and *result, or returns false if it was
 * cancelled while it waited. The caller owns the queue's reference, and
 * settles a started future with fut__finish(): what the executor does
 * around that settle is its own business (a pool keeps the continuation
 * it readies, to run it next).
 */
bool fut__start(future_t *f, struct fut__outcome *out)
{
    if (!move_state(f, FUT_QUEUED, FUT_RUNNING))
        return false; /* cancelled while it waited */
    /* Not zeroed whole: its label is written only if it is given one. */
    struct fut__frame frame;
    frame.f = f;
    frame.outer = fut__self.running;
    frame.why = NULL;
    out->result = NULL;
    fut__self.running = &frame;
    /* For other threads' wait-cycle checks and reports. */
    fut__thread_enter(f, f->ops->kind, f->ops->site ? f->ops->site(f) : NULL,
                      f->exec);
    uint64_t traced = fut__trace_enter();
    out->error = f->ops->run(f, &out->result);
    fut__trace_leave(traced, f->ops->kind, out->error);
    fut__thread_leave();
    fut__self.running = frame.outer;
    out->why = frame.why;
    if (!out->error) { /* a success drops the message */
        fut__why_release(out->why);
        out->why = NULL;
    }
    return true;
}

void fut__finish(future_t *f, struct fut__outcome *out)
{
    if (!out->error) {
        fut__settle(f, 0, out->result);
        return;
    }
    struct failure why = {f->ops->site ? f->ops->site(f) : NULL, out->why};
    out->why = NULL;
    settle(f, out->error, NULL, why);
}

/* fut__start() and fut__finish() together; returns whether @f ran. */
bool fut__run(future_t *f)
{
    struct fut__outcome out;
    if (!fut__start(f, &out))
        return false;
    fut__finish(f, &out);
    return true;
}

/* ----------------------------------------------------------- executors -- */

/* Where futures without an executor of their own run: pool.c registers
 * the default pool's (a constructor), so the core never names a pool. */
static struct fut__exec *(*default_exec)(void);

void fut__set_default_exec(struct fut__exec *(*get)(void))
{
    default_exec = get;
}

/* Hands @f, QUEUED with the run queue's reference, to @exec, or settles it
 * with the reason the default executor could not be had (no thread, no
 * memory): a ready future is never lost. */
static void schedule_on(struct fut__exec *exec, future_t *f)
{
    if (!exec) {
        int error = errno ? errno : EAGAIN;
        fut__settle(f, error, NULL);
        future_release(f); /* the run queue's reference */
        return;
    }
    exec->ops->schedule(exec, f);
}

void fut__schedule_default(future_t *f)
{
    schedule_on(default_exec ? default_exec() : NULL, f);
}

/* Hands a QUEUED future, with the run queue's reference, to its executor. */
void fut__schedule(future_t *f)
{
    if (f->exec)
        schedule_on(f->exec, f);
    else
        fut__schedule_default(f);
}

/* ---------------------------------------------------------- cancelling -- */

bool future_cancel(future_t *f)
{
    if (!f)
        return false;
    if (f->ops->cancel && fut__state(f) == FUT_PENDING) {
        /* Its holder settles it once the work has stopped (promise.c);
         * a settlement racing this is seen there and wins. */
        unsigned char was = atomic_fetch_or(&f->flags, FUT_CANCEL_REQUESTED);
        if (!(was & FUT_CANCEL_REQUESTED))
            f->ops->cancel(f);
        return false;
    }
    if (!claim(f, true)) {
        if (fut__state(f) == FUT_RUNNING)
            atomic_fetch_or(&f->flags, FUT_CANCEL_REQUESTED);
        return false;
    }
    /* A queued future stays in its run queue; the worker that takes it
     * sees that it settled and drops it (fut__run). */
    struct fut__watch *list =
        settle_claimed(f, ECANCELED, NULL, (struct failure){0});
    if (f->ops->detach)
        f->ops->detach(f);
    after_settle(f, list);
    return true;
}

bool task_cancelled(void)
{
    const struct fut__frame *fr = fut__self.running;
    return fr && (atomic_load(&fr->f->flags) & FUT_CANCEL_REQUESTED);
}
