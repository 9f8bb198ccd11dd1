/*
 * sched.c - a pool's threads: run queues, sleeping, waking, exiting.
 *
 * The rest of the library sees only fut__schedule(), fut__submit(), the
 * executor interface and the fut__block_* calls, so this file can be
 * replaced without touching futures or combinators. pool.c is the public
 * face.
 *
 * Where work waits. A core thread's own work (a task it submits, a
 * continuation it readies) goes into its ring (ring.c), with no lock.
 * Work from any other thread goes into the pool's injection queue, under
 * inject_lock, which a core thread empties in batches into its ring. An
 * idle core thread looks in its ring, then the injection queue, then
 * steals half of another thread's ring. Blocking jobs (pool_submit_blocking)
 * have their own queue under the pool lock, for the blocking threads
 * (jobs.c).
 *
 * Sleeping and waking. A wake-up costs tens of microseconds here while a
 * task costs a fraction of one, so a thread that runs out of work first
 * spins a while (FUT_SPIN_NS) watching for more, counted in nsearching,
 * and only then sleeps, counted in nsleeping. Whoever queues work wakes a
 * sleeper only if nobody is searching: a searcher will find it. The two
 * sides follow the store-then-load pattern with sequentially consistent
 * atomics (a ring's tail, inject_len, the counters), so a queued future
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
 * Core threads. A pool keeps ncore of them able to run tasks. One that
 * blocks in future_wait() no longer counts (nblocked), and if that leaves
 * fewer than ncore the pool starts a stand-in, so a task waiting for work
 * queued behind it never deadlocks, even with one thread. Core threads
 * beyond ncore that stay idle for idle_ns exit. If no stand-in can be
 * started, the waiter runs queued tasks itself (FUT_BLOCK_HELP), nested
 * on its own stack while half of it is free (fut__help_has_room).
 *
 * Blocking jobs and their threads are jobs.c's. When no blocking thread
 * can run them, jobs_hint tells the core threads to.
 *
 * The pool's states are in internal.h. Each ring's `busy` flag says its
 * owner holds or looks for work; it changes only under the pool lock, so
 * a draining pool stops, under that lock, when no owner is busy, every
 * queue is empty and no job runs. A cancelled pool's queued tasks are
 * cancelled by pool_shutdown(), and any a thread took just before are
 * cancelled by that thread instead of run.
 *
 * Threads. A thread that exits puts itself on the exited list, and whoever
 * next starts a thread, or pool_destroy(), joins it. A pool destroyed from
 * one of its own threads cannot join that one: its threads then detach
 * themselves as they exit, and their references keep the pool alive.
 *
 * Lock order: the pool lock, then inject_lock; both are taken with no
 * other lock held, and no thread holds either while running a future.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

/* A core thread looks at the injection queue before its own ring once in
 * this many turns, so work from outside is not starved by work it makes. */
#define INJECT_EVERY 61

/* Core threads that spin at once for work; a couple are enough to pick up
 * what comes, and more would only take CPU from those that run it. */
#define MAX_SPINNERS 2



/*
 * Chaining. While a core thread settles a future it has just run (not
 * while user code runs), the first continuation that becomes ready for its
 * own pool is kept in its chained slot (fut__self) instead of being queued, and the thread
 * runs it next: a chain of continuations then costs no queue and no
 * wake-up per hop. It is run from the thread's loop, so the stack does not
 * grow, and it is kept only when the thread is certain to run it next, so
 * it is never stranded out of other threads' sight. After CHAIN_LIMIT hops
 * in a row the next one is queued like any other, so an endless chain
 * cannot starve the queue of a one-thread pool.
 */
#define CHAIN_LIMIT 64


static int pool_state(const pool_t *p)
{
    return atomic_load_explicit(&((pool_t *)p)->state, memory_order_acquire);
}

/* Does @p still run what reaches it: queued work, continuations? */
static bool runs_work(const pool_t *p)
{
    int state = pool_state(p);
    return state == FUT_POOL_OPEN || state == FUT_POOL_DRAINING;
}

/* Keeps @f for this thread to run next, if it may; see above. */
static bool keep_chained(pool_t *p, future_t *f)
{
    if (!fut__self.chaining || fut__self.chained || fut__self.chain_len >= CHAIN_LIMIT || !fut__self.worker ||
        fut__self.worker->blocking || fut__self.worker->pool != p || !runs_work(p))
        return false; /* (a pool that stopped: the default pool takes it) */
    fut__self.chained = f;
    return true;
}

static _Atomic(pool_t *) default_pool;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------- locks, references -- */

void fut__pool_lock(pool_t *p)
{
    fut__mutex_lock(&p->lock);
}

void fut__pool_unlock(pool_t *p)
{
    fut__mutex_unlock(&p->lock);
}

static void inject_lock(pool_t *p)
{
    fut__mutex_lock(&p->inject_lock);
}

static void inject_unlock(pool_t *p)
{
    fut__mutex_unlock(&p->inject_lock);
}

void fut__pool_retain(pool_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void fut__pool_release(pool_t *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        fut__pool_free(p);
}

bool fut__on_pool_thread(const pool_t *p)
{
    return fut__self.worker && fut__self.worker->pool == p;
}

/* --------------------------------------------------------------- queues -- */

void fut__queue_push(struct fut__queue *q, future_t *f)
{
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->len++;
}

future_t *fut__queue_pop(struct fut__queue *q)
{
    future_t *f = q->head;
    if (f) {
        q->head = f->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
    }
    return f;
}

static void queue_push_front(struct fut__queue *q, future_t *f)
{
    f->next = q->head;
    q->head = f;
    if (!q->tail)
        q->tail = f;
    q->len++;
}

static size_t ring_count(pool_t *p)
{
    return atomic_load_explicit(&p->nrings, memory_order_acquire);
}

/* Is any core work queued anywhere? A look without locks. */
static bool core_work_visible(pool_t *p)
{
    if (atomic_load(&p->inject_len) || atomic_load(&p->jobs_hint))
        return true;
    size_t n = ring_count(p);
    for (size_t i = 0; i < n; i++)
        if (fut__ring_len(p->rings[i]))
            return true;
    return false;
}

/* ------------------------------------------------------ waking threads -- */

/* Wakes a sleeping core thread, as a searcher; the pool lock is held. */
void fut__wake_one_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    if (atomic_load(&p->nsleeping) == 0 || atomic_load(&p->nsearching) != 0)
        return; /* (sequentially consistent loads: see the top) */
    atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->nsearching, 1, memory_order_relaxed);
    p->wake_tokens++;
    pthread_cond_signal(&p->work);
}

/* After queueing core work: wakes a thread if none will find it. */
static void wake_if_needed(pool_t *p)
{
    if (atomic_load(&p->nsearching) != 0 || atomic_load(&p->nsleeping) == 0)
        return;
    fut__pool_lock(p);
    fut__wake_one_locked(p);
    fut__pool_unlock(p);
}

static void start_searching(pool_t *p, struct fut__worker *w)
{
    if (!w->searching) {
        w->searching = true;
        atomic_fetch_add_explicit(&p->nsearching, 1, memory_order_seq_cst);
    }
}

/* A searcher found work. If it was the last one searching and more work
 * is queued, another thread must look for it (see the top of the file). */
static void stop_searching(pool_t *p, struct fut__worker *w, bool found)
{
    if (!w->searching)
        return;
    w->searching = false;
    if (atomic_fetch_sub(&p->nsearching, 1) == 1 && found &&
        core_work_visible(p))
        wake_if_needed(p);
}

/* ---------------------------------------------------- the injection queue */

/*
 * Queues @f from outside @p's core threads. A submission needs the pool
 * open; a continuation, only that it still runs work. The state is read
 * under inject_lock, which every change of state takes too, so nothing
 * lands in a queue that shutdown has already emptied.
 */
static bool inject(pool_t *p, future_t *f, bool submission)
{
    inject_lock(p);
    bool ok = submission ? pool_state(p) == FUT_POOL_OPEN : runs_work(p);
    if (ok) {
        fut__queue_push(&p->inject, f);
        atomic_store(&p->inject_len, p->inject.len); /* see the top */
    }
    inject_unlock(p);
    if (ok)
        wake_if_needed(p);
    return ok;
}

/* Puts @batch, taken from the injection queue, back at its front: it was
 * queued before anything that came in since. */
static void give_back_injected(pool_t *p, struct fut__queue *batch)
{
    inject_lock(p);
    batch->tail->next = p->inject.head;
    if (!p->inject.head)
        p->inject.tail = batch->tail;
    p->inject.head = batch->head;
    p->inject.len += batch->len;
    atomic_store(&p->inject_len, p->inject.len);
    inject_unlock(p);
    wake_if_needed(p);
}

static void dispose(future_t *f);

/* Queues @f, the current thread's, in its own ring if it has one for @p. */
static bool push_local(pool_t *p, future_t *f)
{
    if (!fut__self.worker || fut__self.worker->pool != p || !fut__self.worker->ring ||
        !fut__ring_push(fut__self.worker->ring, f))
        return false;
    if (atomic_load(&p->state) == FUT_POOL_CANCELLED) {
        /* Cancelled since the caller looked, and perhaps swept already
         * (fut__cancel_queued): this thread may be about to wait for it,
         * so it cancels what it queued itself. */
        future_t *g;
        while ((g = fut__ring_pop(fut__self.worker->ring)) != NULL)
            dispose(g);
        return true;
    }
    /* While chaining, this thread goes straight back to its ring: if @f
     * is all there is, a thread woken for it would only take it away
     * (a long chain would bounce between threads every CHAIN_LIMIT hops). */
    if (!(fut__self.chaining && fut__ring_len(fut__self.worker->ring) == 1))
        wake_if_needed(p);
    return true;
}

/*
 * Out of sight. Futures that a thread takes from the injection queue or
 * steals are in no queue at all until they are in its ring, and a thread
 * that looked meanwhile may have gone to sleep beside them: with the taker
 * running a task that waits for one of them, nobody would ever run it. So
 * once they are in its ring, the taker wakes a thread as any queuer does.
 *
 * Takes what the injection queue holds: with @take, the first future, to
 * run at once; as many more as fit into this thread's ring (where idle
 * threads can steal them); and the rest back to the front of the queue.
 * The lock is held only to cut the list out and to splice the rest back,
 * never while walking it: each future is a cache miss here (the submitter
 * wrote it on another CPU), and a submitter must not wait behind those.
 * Without @take, the futures go behind what the ring holds, so nothing
 * overtakes what was queued before it.
 */
static future_t *take_injected(pool_t *p, struct fut__worker *w, bool take)
{
    if (!atomic_load_explicit(&p->inject_len, memory_order_relaxed))
        return NULL;
    inject_lock(p);
    struct fut__queue batch = p->inject;
    p->inject = (struct fut__queue){0};
    atomic_store(&p->inject_len, 0);
    inject_unlock(p);
    future_t *f = take ? fut__queue_pop(&batch) : NULL;
    future_t *g;
    while ((g = fut__queue_pop(&batch)) != NULL) {
        /* Off the list before it is in the ring: from there another
         * thread may take it, run it and free it at once. */
        if (!fut__ring_push(w->ring, g)) {
            queue_push_front(&batch, g);
            break;
        }
    }
    if (batch.head)
        give_back_injected(p, &batch);
    else if (fut__ring_len(w->ring))
        wake_if_needed(p); /* see "Out of sight" above */
    return f;
}

/* Takes half of another thread's ring, trying each once. */
static future_t *steal(pool_t *p, struct fut__worker *w)
{
    size_t n = ring_count(p);
    for (size_t i = 0; i < n; i++) {
        struct fut__ring *victim = p->rings[(w->turns + i) % n];
        if (victim == w->ring)
            continue;
        future_t *f = fut__ring_steal(victim, w->ring);
        if (f) {
            if (fut__ring_len(w->ring))
                wake_if_needed(p); /* see "Out of sight" above */
            return f;
        }
    }
    return NULL;
}

/* ----------------------------------------------------------- submitting -- */

/* Queues @f, a new task of @p's; false if @p takes no submissions. */
bool fut__submit(pool_t *p, future_t *f, bool blocking)
{
    if (blocking) {
        fut__pool_lock(p);
        bool open = pool_state(p) == FUT_POOL_OPEN;
        if (open)
            fut__push_job_locked(p, f);
        fut__pool_unlock(p);
        return open;
    }
    if (pool_state(p) == FUT_POOL_OPEN && push_local(p, f))
        return true;
    return inject(p, f, true);
}

/* ---------------------------------------------------- stopping, cancelling */

/* Does any core thread hold or look for work? The lock is held. */
static bool any_busy_locked(const pool_t *p)
{
    FUT_ASSERT_HELD(&((pool_t *)p)->lock);
    size_t n = ring_count((pool_t *)p);
    for (size_t i = 0; i < n; i++)
        if (p->rings[i]->busy || fut__ring_len(p->rings[i]))
            return true;
    return false;
}

void fut__maybe_stop_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    if (pool_state(p) != FUT_POOL_DRAINING || p->jobs.len || p->nrunning ||
        any_busy_locked(p))
        return;
    inject_lock(p);
    bool empty = p->inject.len == 0;
    if (empty)
        atomic_store(&p->state, FUT_POOL_STOPPED);
    inject_unlock(p);
    if (empty) {
        pthread_cond_broadcast(&p->work);
        pthread_cond_broadcast(&p->blocking_work);
    }
}

/*
 * Disposes of @f, taken from a cancelled pool's queue. Continuations of
 * tasks the pool accepted earlier are not its to cancel: they go to the
 * default pool, as the header promises.
 */
static void dispose(future_t *f)
{
    if (!f->ops->is_task) {
        fut__schedule(f); /* the pool refuses it now: the default pool */
        return;
    }
    future_cancel(f);
    future_release(f); /* the run queue's reference */
}

static void dispose_all(struct fut__queue *q)
{
    future_t *f;
    while ((f = fut__queue_pop(q)) != NULL)
        dispose(f);
}

/* After pool_shutdown(POOL_CANCEL), with no lock held: cancels what is
 * queued. A thread that took a task a moment before cancels it itself. */
void fut__cancel_queued(pool_t *p)
{
    fut__pool_lock(p);
    struct fut__queue jobs = p->jobs;
    p->jobs = (struct fut__queue){0};
    fut__update_jobs_hint_locked(p);
    inject_lock(p);
    struct fut__queue injected = p->inject;
    p->inject = (struct fut__queue){0};
    atomic_store(&p->inject_len, 0);
    inject_unlock(p);
    fut__pool_unlock(p);
    dispose_all(&injected);
    dispose_all(&jobs);
    /* The state was stored first (sequentially consistent), and the
     * rings are read the same way: a core thread pushing meanwhile either
     * finds its future here or sees CANCELLED and disposes of it itself
     * (push_local). */
    size_t n = ring_count(p);
    for (size_t i = 0; i < n; i++) {
        future_t *f;
        while (fut__ring_len(p->rings[i]) &&
               (f = fut__ring_pop(p->rings[i])) != NULL)
            dispose(f);
    }
}

void fut__pool_counts(pool_t *p, size_t *queued, size_t *running,
                      uint64_t *completed)
{
    *queued = p->jobs.len +
              atomic_load_explicit(&p->inject_len, memory_order_relaxed);
    *running = p->nrunning;
    *completed = p->completed;
    size_t n = ring_count(p);
    for (size_t i = 0; i < n; i++) {
        struct fut__ring *r = p->rings[i];
        *queued += fut__ring_len(r);
        *running += atomic_load_explicit(&r->executing, memory_order_relaxed);
        *completed += atomic_load_explicit(&r->completed, memory_order_relaxed);
    }
}

/* --------------------------------------------------------- the threads -- */


/* Core threads beyond ncore that are able to run tasks. */
static bool core_surplus(const pool_t *p)
{
    return p->nlive - p->nblocked > p->ncore;
}

/* Waits on @cond until woken, or for idle_ns when @timed; true on time-out. */
bool fut__idle_wait_locked(pool_t *p, pthread_cond_t *cond, bool timed)
{
    FUT_ASSERT_HELD(&p->lock);
    if (!timed) {
        pthread_cond_wait(cond, &p->lock);
        return false;
    }
    struct timespec deadline;
    fut__deadline(&deadline, p->idle_ns);
    return pthread_cond_timedwait(cond, &p->lock, &deadline) == ETIMEDOUT;
}

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
        take_injected(p, w, false);
    future_t *f = fut__ring_pop(w->ring);
    if (!f)
        f = take_injected(p, w, true);
    if (!f)
        f = steal(p, w);
    if (!f && (f = fut__take_job_for_core(p)) != NULL)
        *job = true;
    return f;
}

/*
 * Runs @f on core thread @w, or, if the pool was cancelled since it was
 * queued, disposes of it (see fut__cancel_queued()).
 */
static void run_on_core(pool_t *p, struct fut__worker *w, future_t *f,
                        bool job, bool may_chain)
{
    struct fut__ring *r = w->ring;
    bool ran = false;
    if (pool_state(p) == FUT_POOL_CANCELLED && !job) {
        dispose(f);
    } else {
        /* A job is counted in nrunning already. */
        unsigned executing =
            atomic_load_explicit(&r->executing, memory_order_relaxed);
        atomic_store_explicit(&r->executing, executing + !job,
                              memory_order_relaxed);
        int error;
        void *result;
        ran = fut__start(f, &error, &result);
        if (ran) {
            /* Chaining: only while settling, never while user code runs. */
            fut__self.chaining = may_chain;
            fut__finish(f, error, result);
            fut__self.chaining = false;
        }
        future_release(f); /* the run queue's reference */
        if (fut__pool_is_stale(p))
            pthread_exit(NULL); /* the task forked: this is the child's
                                   copy of a parent's thread */
        atomic_store_explicit(&r->executing, executing, memory_order_relaxed);
    }
    if (job) {
        fut__pool_lock(p);
        p->nrunning--;
        if (ran)
            p->completed++;
        fut__pool_unlock(p);
    } else if (ran) { /* not a task cancelled while it waited */
        uint64_t done =
            atomic_load_explicit(&r->completed, memory_order_relaxed);
        atomic_store_explicit(&r->completed, done + 1, memory_order_relaxed);
    }
}

/*
 * Spins a while watching for core work before the thread goes to sleep.
 * It yields the CPU every few hundred nanoseconds, because the thread it
 * just woke (a waiter, say) is often queued on this very CPU and would
 * otherwise wait for the spin to end. Returns whether work showed up.
 */
static bool spin_for_work(pool_t *p)
{
    uint64_t until = fut__now_ns() + FUT_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (core_work_visible(p))
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
    if (p->wake_tokens) {
        p->wake_tokens--;
    } else {
        atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->nsearching, 1, memory_order_relaxed);
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
static bool park_locked(pool_t *p, struct fut__worker *w)
{
    FUT_ASSERT_HELD(&p->lock);
    w->ring->busy = false;
    fut__maybe_stop_locked(p);
    if (fut__pool_winding_down(p)) {
        stop_searching(p, w, false);
        return false;
    }
    atomic_fetch_add(&p->nsleeping, 1);
    w->searching = false;
    atomic_fetch_sub(&p->nsearching, 1);
    if (core_work_visible(p)) { /* it came in meanwhile: no sleep */
        atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_relaxed);
        start_searching(p, w);
        w->ring->busy = true;
        return true;
    }
    bool timed_out = fut__idle_wait_locked(p, &p->work, core_surplus(p));
    woken_locked(p, w);
    if (!timed_out || !core_surplus(p))
        return true;
    /* Idle for idle_ns and beyond the core: go, but leave the searchers
     * before the last look, as a sleeper does, or a queuer who counted on
     * this thread would wake nobody. */
    w->searching = false;
    atomic_fetch_sub(&p->nsearching, 1);
    if (core_work_visible(p)) {
        start_searching(p, w);
        return true;
    }
    w->ring->busy = false;
    return false;
}

/* A core thread's life; returns with the pool lock held. */
static void core_loop(pool_t *p, struct fut__worker *w)
{
    for (;;) {
        bool job;
        future_t *f = find_work(p, w, &job);
        if (f) {
            stop_searching(p, w, true);
            run_on_core(p, w, f, job, true);
            continue;
        }
        start_searching(p, w);
        if (atomic_load(&p->nsearching) <= MAX_SPINNERS && spin_for_work(p))
            continue;
        fut__pool_lock(p);
        if (!park_locked(p, w))
            return; /* with the lock held: the exit must count at once,
                       or two surplus threads could both decide to go */
        fut__pool_unlock(p);
    }
}

static void exit_locked(pool_t *p, struct fut__worker *w)
{
    FUT_ASSERT_HELD(&p->lock);
    if (w->blocking) {
        p->nb_live--;
        fut__update_jobs_hint_locked(p); /* its jobs may fall to the core threads */
    } else {
        p->nlive--;
        w->ring->owned = false;
        w->ring->busy = false;
    }
    if (p->detach_exits) {
        pthread_detach(pthread_self());
        fut__mem_free(w);
    } else {
        w->next = p->exited;
        p->exited = w;
    }
    if (p->nlive + p->nb_live == 0)
        pthread_cond_broadcast(&p->ended);
}

/* Notes where @w's stack is, for fut__help_has_room(). */
static void note_stack(struct fut__worker *w)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
        w->stack_top = (char *)lo + size;
        w->stack_size = size;
    }
    pthread_attr_destroy(&attr);
}

void *fut__thread_main(void *arg)
{
    struct fut__worker *w = arg;
    pool_t *p = w->pool;
    fut__self.worker = w;
    fut__self.serves = &p->exec;
    fut__self.pool_id = p->id;
    note_stack(w);

    fut__pool_lock(p);
    char name[16];
    snprintf(name, sizeof name, "futures-%u%c%u", p->id,
             w->blocking ? 'b' : '.', p->next_thread++);
    pthread_setname_np(pthread_self(), name);
    if (w->blocking) {
        fut__blocking_loop_locked(p);
    } else {
        fut__pool_unlock(p);
        core_loop(p, w);
    }
    exit_locked(p, w);
    fut__pool_unlock(p);
    fut__pool_release(p); /* the thread's */
    return NULL;
}

/* Joins the threads on @list, which have ended or are about to. */
void fut__join_all(struct fut__worker *list)
{
    while (list) {
        struct fut__worker *next = list->next;
        pthread_join(list->thread, NULL);
        fut__mem_free(list);
        list = next;
    }
}

struct fut__worker *fut__take_exited_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    struct fut__worker *list = p->exited;
    p->exited = NULL;
    return list;
}

/*
 * A ring for a new core thread: one a thread that exited left (empty: only
 * its owner fills it, and it found nothing before it went), or a new one.
 * Rings stay until the pool goes, so a thief never reads a freed one.
 */
static struct fut__ring *claim_ring_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    size_t n = ring_count(p);
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
    atomic_store_explicit(&p->nrings, n + 1, memory_order_release);
    return r;
}

/*
 * Starts one more thread; the pool lock is held. Returns 0 or an errno.
 * Joins exited threads on the way: they have ended, so it cannot block.
 */
static int start_thread_locked(pool_t *p, bool blocking)
{
    FUT_ASSERT_HELD(&p->lock);
    fut__join_all(fut__take_exited_locked(p));
    struct fut__worker *w = fut__calloc(sizeof *w);
    if (!w)
        return ENOMEM;
    w->pool = p;
    w->blocking = blocking;
    if (!blocking && !(w->ring = claim_ring_locked(p))) {
        int error = errno;
        fut__mem_free(w);
        return error;
    }
    fut__pool_retain(p); /* the thread's */
    w->searching = !blocking; /* it looks for work first */
    if (!blocking)
        atomic_fetch_add(&p->nsearching, 1);
    int rc = fut__thread_start(&w->thread, fut__thread_main, w);
    if (rc) {
        if (!blocking) {
            atomic_fetch_sub(&p->nsearching, 1);
            if (core_work_visible(p)) /* a queuer counted on it */
                fut__wake_one_locked(p);
        }
        atomic_fetch_sub(&p->refs, 1); /* the caller's remains */
        fut__mem_free(w);
        return rc;
    }
    if (blocking) {
        p->nb_live++;
    } else {
        p->nlive++;
        w->ring->owned = true;
        w->ring->busy = true;
    }
    if (p->nlive + p->nb_live > p->peak)
        p->peak = p->nlive + p->nb_live;
    return 0;
}

int fut__start_core_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    return start_thread_locked(p, false);
}

/* ------------------------------------------------------- the executor -- */

static pool_t *pool_of(struct fut__exec *exec)
{
    return fut__container_of(exec, pool_t, exec);
}

static void exec_retain(struct fut__exec *exec)
{
    fut__pool_retain(pool_of(exec));
}

static void exec_release(struct fut__exec *exec)
{
    fut__pool_release(pool_of(exec));
}

/* Queues @f on @p if @p still runs work; returns false if it does not. */
static bool queue_on(pool_t *p, future_t *f)
{
    if (runs_work(p) && push_local(p, f))
        return true;
    return inject(p, f, false);
}

/* As queue_on(), unless this thread keeps @f to run next (chaining). */
static bool try_push(pool_t *p, future_t *f)
{
    return keep_chained(p, f) || queue_on(p, f);
}

static void exec_schedule(struct fut__exec *exec, future_t *f)
{
    pool_t *p = pool_of(exec);
    if (fut__pool_is_stale(p) || !try_push(p, f))
        fut__schedule_default(f); /* the default pool is never shut down */
}

/* fork(): the parent's default pool has no threads in the child, which
 * makes its own on first use (the old one is left as it is: its locks
 * may have been held when the parent forked). */
void fut__sched_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        fut__mutex_lock(&default_lock);
        return;
    }
    if (phase == FUT_FORK_CHILD)
        atomic_store(&default_pool, NULL);
    fut__mutex_unlock(&default_lock);
}

pool_t *pool_default(void)
{
    pool_t *p = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (p)
        return p;
    fut__mutex_lock(&default_lock);
    p = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (!p) {
        p = pool_create(0);
        if (p) {
            p->is_default = true;
            atomic_store_explicit(&default_pool, p, memory_order_release);
        }
    }
    fut__mutex_unlock(&default_lock);
    return p;
}

/* --------------------------------------------- blocking inside a task -- */

/* Counts this core thread as blocked and keeps the pool's capacity with a
 * stand-in; false if one was needed and could not be started. */
static bool compensate(pool_t *p)
{
    fut__pool_lock(p);
    p->nblocked++;
    bool ok = !(runs_work(p) && p->nlive - p->nblocked < p->ncore &&
                start_thread_locked(p, false) != 0);
    if (!ok)
        p->nblocked--;
    fut__pool_unlock(p);
    return ok;
}

enum fut__block fut__block_begin(void)
{
    if (!fut__self.worker || fut__pool_is_stale(fut__self.worker->pool))
        return FUT_BLOCK_PLAIN;
    if (fut__self.worker->blocking) {
        fut__job_wait_begin(fut__self.worker->pool); /* jobs.c */
        return FUT_BLOCK_JOB;
    }
    if (fut__self.chained) {
        /* User code (a destructor run while a future settled) is about to
         * wait, perhaps for the continuation kept for this thread: queue
         * it where others can run it. */
        future_t *f = fut__self.chained;
        fut__self.chained = NULL;
        if (!queue_on(fut__self.worker->pool, f))
            fut__schedule_default(f);
    }
    if (fut__self.chaining && fut__ring_len(fut__self.worker->ring))
        wake_if_needed(fut__self.worker->pool); /* what push_local left to this thread */
    return compensate(fut__self.worker->pool) ? FUT_BLOCK_COMPENSATED : FUT_BLOCK_HELP;
}

bool fut__block_retry(void)
{
    return compensate(fut__self.worker->pool);
}

void fut__block_end(enum fut__block how)
{
    if (how == FUT_BLOCK_JOB)
        fut__job_wait_end(fut__self.worker->pool);
    if (how != FUT_BLOCK_COMPENSATED)
        return;
    pool_t *p = fut__self.worker->pool;
    fut__pool_lock(p);
    p->nblocked--;
    fut__pool_unlock(p);
}


/*
 * Helping nests: the task a waiter runs may wait and help in turn, each
 * level on top of the last, so a waiter helps only while less than half
 * of its stack is used. The other half is the tasks' own. Where the stack
 * is unknown, HELP_DEPTH_UNKNOWN levels are allowed.
 */
#define HELP_DEPTH_UNKNOWN 16

bool fut__help_has_room(void)
{
    if (!fut__self.worker->stack_top)
        return fut__self.worker->helping < HELP_DEPTH_UNKNOWN;
    /* The frame, not a local's address: ASan may move locals to the heap. */
    char *here = __builtin_frame_address(0);
    size_t used = (size_t)(fut__self.worker->stack_top - here);
    return used < fut__self.worker->stack_size / 2;
}

/* Runs one task queued on this thread's pool; returns false if none was,
 * or if the stack has no room for one (see above). */
bool fut__help_one(void)
{
    if (!fut__help_has_room())
        return false;
    pool_t *p = fut__self.worker->pool;
    bool job;
    future_t *f = find_work(p, fut__self.worker, &job);
    if (f) {
        fut__self.worker->helping++;
        run_on_core(p, fut__self.worker, f, job, false);
        fut__self.worker->helping--;
    }
    return f != NULL;
}

/* --------------------------------------- the executor's wait operations -- */

static enum fut__block exec_block_begin(struct fut__exec *exec)
{
    (void)exec; /* the thread's own pool, as fut__self.worker says */
    return fut__block_begin();
}

static bool exec_block_retry(struct fut__exec *exec)
{
    (void)exec;
    return fut__block_retry();
}

static bool exec_help_one(struct fut__exec *exec)
{
    (void)exec;
    return fut__help_one();
}

static bool exec_help_has_room(struct fut__exec *exec)
{
    (void)exec;
    return fut__help_has_room();
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
    .block_begin = exec_block_begin,
    .block_retry = exec_block_retry,
    .help_one = exec_help_one,
    .help_has_room = exec_help_has_room,
    .block_end = exec_block_end};

/* ------------------------------------------------ the default executor -- */

static struct fut__exec *default_exec(void)
{
    pool_t *p = pool_default();
    return p ? &p->exec : NULL;
}

struct offloaded {
    void (*fn)(void *);
    void *arg;
};

static int run_offloaded(void *arg, void **result)
{
    (void)result;
    struct offloaded *o = arg;
    o->fn(o->arg);
    return 0;
}

/* Runs @fn(@arg) as a task of the default pool (defer.c); false if it
 * cannot, and then @fn has not run. */
static bool offload(void (*fn)(void *), void *arg)
{
    struct offloaded *o = fut__calloc(sizeof *o);
    pool_t *pool = o ? pool_default() : NULL;
    if (!pool) {
        fut__mem_free(o);
        return false;
    }
    *o = (struct offloaded){fn, arg};
    future_t *f = pool_submit_ex(pool, run_offloaded, o, fut__mem_free);
    future_release(f); /* nobody waits for it: fire and forget */
    return f != NULL;
}

__attribute__((constructor)) static void register_default_exec(void)
{
    fut__set_default_exec(default_exec);
    fut__set_offload(offload);
}
