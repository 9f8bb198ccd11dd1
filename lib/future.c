/*
 * future.c - the future: references, settling, running, waiting, cancelling.
 *
 * Every future, whatever made it, is a struct future at the start of its
 * allocation; what differs (a task's function, a continuation's callback, a
 * combinator's inputs) follows it and is reached through f->ops.
 *
 * The state machine is written out in internal.h. Its rules:
 *  - every change of state is a compare-and-swap or a store by the one
 *    thread that owns the step: settling takes no lock;
 *  - a PENDING or QUEUED future is settled by the thread that claims it
 *    (a compare-and-swap to RUNNING), a RUNNING one by the thread that runs
 *    it; error and value are written before state becomes SETTLED
 *    (release), so whoever sees SETTLED sees the outcome;
 *  - then the settler closes the dependents (fut__close_deps, watch.c) and
 *    tells them; a dependent pushed before the close is in its list, one
 *    that comes after finds the list closed and sees the outcome;
 *  - a thread that blocks sets waited and waits on the future's stripe
 *    (stripe.c); the settler stores SETTLED and then reads waited, both
 *    sequentially consistent, so one of the two always sees the other, and
 *    a settler that sees waited wakes the stripe under its lock.

 * References: the caller's handle, a queued future's run-queue entry, and
 * each armed set of watches on it (watch.c) each own one. The count never
 * reaches zero on an unsettled future that anyone can still reach.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The futures whose work this thread is running, innermost first: more
 * than one only while a waiter runs queued work itself (FUT_BLOCK_HELP).
 */
struct frame {
    future_t *f;
    struct frame *outer;
};

static _Thread_local struct frame *running;

/* Would waiting for @f here wait for this thread's own stack to unwind? */
static bool waits_for_itself(future_t *f)
{
    for (const struct frame *fr = running; fr; fr = fr->outer) {
        if (fr->f == f)
            return true;
    }
    return fut__would_deadlock(f);
}

/*
 * Live futures, for tests that check nothing outlives them. Counting is off
 * unless switched on before the first future is made, so a counter shared
 * by every thread costs the hot path one relaxed load.
 */
static atomic_bool counting;
static atomic_long live;

void fut__count_live(bool on)
{
    atomic_store(&counting, on);
}

long fut__live_futures(void)
{
    return atomic_load(&live);
}

static void count_live(long delta)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&live, delta, memory_order_relaxed);
}

future_t *fut__new(size_t size, const struct fut__ops *ops, int state,
                   unsigned refs)
{
    unsigned cls;
    future_t *f = fut__future_calloc(size, &cls);
    if (!f)
        return NULL;
    count_live(1);
    f->ops = ops;
    atomic_init(&f->refs, refs);
    atomic_init(&f->state, state);
    atomic_init(&f->flags, (unsigned char)(cls << FUT_SLAB_SHIFT));
    if (state == FUT_SETTLED) /* born settled: nothing will close them */
        atomic_init(&f->deps, FUT_DEPS_CLOSED);
    return f;
}

/* Frees a future nobody refers to, or one that was never handed out. */
void fut__free(future_t *f)
{
    /* Where its memory came from (slab.c), recorded by fut__new(). */
    unsigned cls = atomic_load_explicit(&f->flags, memory_order_relaxed) >>
                   FUT_SLAB_SHIFT;
    if (fut__owns_value(f)) {
        /* A value passed on from a source is the source's to free. */
        bool passed_on = atomic_load(&f->flags) & FUT_KEEPS_SOURCE;
        fut__value_free_fn result_free = fut__result_free_of(f, true);
        if (result_free && !passed_on && fut__is_settled(f) &&
            f->error == 0 && f->value)
            fut__run_user(result_free, f->value); /* nobody reads it now */
    }
    if (f->ops->destroy)
        f->ops->destroy(f);
    if (f->exec)
        f->exec->ops->release(f->exec);
    count_live(-1);
    fut__slab_free(f, cls);
}

void fut__set_exec(future_t *f, struct fut__exec *exec)
{
    if (exec)
        exec->ops->retain(exec);
    f->exec = exec;
}

future_t *future_retain(future_t *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

/* What goes when the last reference to @f goes. */
static void last_reference_gone(future_t *f)
{
    if (FUT_DEBUG && !fut__is_settled(f))
        fut__panic("last reference to an unsettled future released");
    if (fut__is_settled(f) && f->error)
        fut__report_unobserved(f); /* unless someone looked */
    fut__free(f);
}

/*
 * Freeing a future may drop the last reference to another (a continuation
 * its source, a timeout its input and its delay), and that one to a third:
 * a chain of a million pass-through links would free itself a million
 * frames deep. So while a thread frees, a future whose last reference it
 * drops waits in this list, linked through its next field (no run queue
 * holds a future nobody refers to), and the outermost release frees them
 * one after another, in constant stack.
 */
static _Thread_local struct {
    future_t *head;
    bool active;
} freeing;

void future_release(future_t *f)
{
    if (!f)
        return;
    unsigned old = atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel);
    if (old == 0)
        fut__panic("future released more than retained");
    if (old != 1)
        return;
    if (freeing.active) {
        f->next = freeing.head;
        freeing.head = f;
        return;
    }
    freeing.active = true;
    while (f) {
        last_reference_gone(f);
        f = freeing.head;
        if (f)
            freeing.head = f->next;
    }
    freeing.active = false;
}

/* Marks @f's outcome as seen, so its failure is nobody's surprise. */
void fut__observe(future_t *f)
{
    if (!(atomic_load_explicit(&f->flags, memory_order_relaxed) & FUT_OBSERVED))
        atomic_fetch_or_explicit(&f->flags, FUT_OBSERVED, memory_order_relaxed);
}

/* Wakes the threads blocked on @f (block_on): they wait on its stripe. */
static void wake_waiters(future_t *f)
{
    struct fut__stripe *s = fut__lock(f);
    pthread_cond_broadcast(&s->cond);
    fut__unlock(s);
}

/*
 * Settles @f, which this thread has claimed, and returns the dependents
 * to tell. A success keeps @value, a failure @site, the function that
 * failed (for unobserved.c).
 */
static struct fut__watch *settle_claimed(future_t *f, int error, void *value,
                                         fut__fn site)
{
    f->error = error;
    if (error)
        f->site = site;
    else
        f->value = value;
    atomic_store_explicit(&f->state, FUT_SETTLED, memory_order_seq_cst);
    if (atomic_load_explicit(&f->waited, memory_order_seq_cst))
        wake_waiters(f);
    struct fut__watch *list = fut__close_deps(f);
    if (list && error)
        fut__observe(f); /* the failure goes to whoever watches it */
    return list;
}

/* What follows a settlement. */
static void after_settle(future_t *f, struct fut__watch *list)
{
    if (f->tracked)
        f->exec->ops->pending_done(f->exec);
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
 * claimed by moving it to RUNNING: then no worker can start it while its
 * outcome is written over its task fields, and no other settler can win.
 * A future found RUNNING is settled only by the thread that runs it, which
 * is the caller unless @running_is_other.
 */
static bool claim(future_t *f, bool running_is_other)
{
    for (;;) {
        int state = atomic_load_explicit(&f->state, memory_order_acquire);
        if (state == FUT_SETTLED)
            return false;
        if (state == FUT_RUNNING)
            return !running_is_other;
        if (move_state(f, state, FUT_RUNNING))
            return true;
        running_is_other = true; /* if it is RUNNING now, a worker took it */
    }
}

static bool settle(future_t *f, int error, void *value, fut__fn site)
{
    if (!claim(f, false))
        return false;
    after_settle(f, settle_claimed(f, error, value, site));
    return true;
}

/*
 * Settles @f with @error (0: success with @value) unless it has settled
 * already. Returns true if this call settled it. The caller holds a
 * reference to @f.
 */
bool fut__settle(future_t *f, int error, void *value)
{
    return settle(f, error, error ? NULL : value, NULL);
}

/* fut__settle() with a failure that @site, a user's function, returned. */
bool fut__fail(future_t *f, int error, fut__fn site)
{
    return settle(f, error, NULL, site);
}

/* Settles @f with the outcome of @from, which has settled. A value passed
 * on stays @from's: the caller keeps @from alive while @f is. */
bool fut__pass_on(future_t *f, const future_t *from)
{
    return from->error ? settle(f, from->error, NULL, from->site)
                       : settle(f, 0, from->value, NULL);
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
 * Runs a QUEUED future taken from a run queue, unless it was cancelled while
 * it waited. The caller owns the queue's reference and drops it afterwards.
 * With @may_chain, the caller is a pool thread's own loop, which will run
 * one continuation that this settlement makes ready without a trip through
 * the queue (fut__chain in sched.c). Returns whether it ran @f.
 */
bool fut__run(future_t *f, bool may_chain)
{
    if (!move_state(f, FUT_QUEUED, FUT_RUNNING))
        return false; /* cancelled while it waited */

    struct frame frame = {f, running};
    void *result = NULL;
    running = &frame;
    uint64_t traced = fut__trace_enter();
    int error = f->ops->run(f, &result);
    fut__trace_leave(traced, f->ops->kind, error);
    running = frame.outer;
    if (may_chain)
        fut__chain(true);
    if (error)
        fut__fail(f, error, f->ops->site ? f->ops->site(f) : NULL);
    else
        fut__settle(f, 0, result);
    if (may_chain)
        fut__chain(false);
    return true;
}

/* ------------------------------------------------------------- waiting -- */

static bool passed(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/*
 * A waiter that could get no stand-in and whose stack has no room to help
 * (fut__help_has_room) gives up, with EAGAIN, unless @f is running: a
 * running future ends without help, but one that is queued or pending may
 * need this very thread's help, which it can no longer give (every thread
 * of the pool may be a waiter like this one). A timed wait just waits.
 */
static bool must_give_up(const future_t *f, const struct timespec *deadline)
{
    return !deadline && !fut__help_has_room() &&
           atomic_load_explicit(&((future_t *)f)->state,
                                memory_order_acquire) != FUT_RUNNING;
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
        bool helped = false;
        if (fut__block_retry())
            *how = FUT_BLOCK_COMPENSATED;
        else if (must_give_up(f, deadline))
            *how = FUT_BLOCK_STUCK;
        else
            helped = fut__help_one();
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
        return !deadline || !passed(deadline);
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
        int state =
            atomic_load_explicit(&((future_t *)f)->state, memory_order_acquire);
        if (state == FUT_SETTLED)
            return true;
        if (i % 32 == 0) {
            elapsed = fut__now_ns() - start;
            if (elapsed > ns ||
                (state != FUT_RUNNING && elapsed > QUEUED_SPIN_NS))
                return false;
        }
        fut__cpu_relax();
    }
}

/*
 * Blocks until @f settles or @deadline passes; returns 0 if it settled,
 * else ETIMEDOUT, or EAGAIN if it gave up (must_give_up). A pool thread
 * that blocks asks its pool for a stand-in first (sched.c).
 */
static int block_on(future_t *f, const struct timespec *deadline)
{
    enum fut__block how = fut__block_begin();
    struct fut__stripe *s = fut__lock(f);
    /* Never cleared: a spare wake-up is harmless. Sequentially consistent,
     * as the settler's store of SETTLED and load of waited (see the top). */
    atomic_store_explicit(&f->waited, true, memory_order_seq_cst);
    while (atomic_load_explicit(&f->state, memory_order_seq_cst) !=
               FUT_SETTLED &&
           wait_step(f, &s, &how, deadline))
        ;
    bool settled = fut__is_settled(f);
    fut__unlock(s);
    fut__block_end(how);
    if (settled)
        return 0;
    return how == FUT_BLOCK_STUCK ? EAGAIN : ETIMEDOUT;
}

int future_wait(future_t *f, void **value)
{
    if (!f)
        return EINVAL;
    if (!fut__is_settled(f)) {
        if (waits_for_itself(f))
            return EDEADLK;
        int error = spin_on(f, FUT_SPIN_NS) ? 0 : block_on(f, NULL);
        if (error)
            return error; /* EAGAIN: f itself is untouched */
    }
    if (f->error)
        fut__observe(f); /* only failures are ever reported */
    if (value && f->error == 0)
        *value = f->value;
    return f->error;
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
    return block_on(f, &deadline) == 0;
}

bool future_is_ready(const future_t *f)
{
    return f && fut__is_settled(f);
}

/* ---------------------------------------------------------- cancelling -- */

bool future_cancel(future_t *f)
{
    if (!f)
        return false;
    if (!claim(f, true)) {
        if (fut__state(f) == FUT_RUNNING)
            atomic_fetch_or(&f->flags, FUT_CANCEL_REQUESTED);
        return false;
    }
    /* A queued future stays in its run queue; the worker that takes it
     * sees that it settled and drops it (fut__run). */
    struct fut__watch *list = settle_claimed(f, ECANCELED, NULL, NULL);
    if (f->ops->detach)
        f->ops->detach(f);
    after_settle(f, list);
    return true;
}

bool task_cancelled(void)
{
    return running &&
           (atomic_load(&running->f->flags) & FUT_CANCEL_REQUESTED);
}

/* @value was offered to @f after it settled: nobody will ever read it. */
void fut__discard(future_t *f, void *value)
{
    fut__value_free_fn result_free = fut__result_free_of(f, false);
    if (result_free && value)
        fut__run_user(result_free, value);
}

/* --------------------------------------------- already-settled futures -- */

static const struct fut__ops settled_ops = {.kind = "settled"};

static future_t *settled_future(int error, void *value)
{
    future_t *f = fut__new(sizeof *f, &settled_ops, FUT_SETTLED, 1);
    if (f) {
        f->error = error;
        f->value = value;
    }
    return f;
}

future_t *future_resolved(void *value)
{
    return settled_future(0, value);
}

future_t *future_failed(int error)
{
    if (error <= 0) {
        errno = EINVAL;
        return NULL;
    }
    return settled_future(error, NULL);
}
