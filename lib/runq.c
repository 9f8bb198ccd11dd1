/*
 * runq.c - where a pool's core work waits, and how it gets there.
 *
 * Where work waits. A core thread's own work (a task it submits, a
 * continuation it readies) goes into its ring (ring.c), with no lock.
 * Work from any other thread goes into the pool's injection queue, under
 * inject.lock, which a core thread empties in batches into its ring. An
 * idle core thread looks in its ring, then the injection queue, then
 * steals half of another thread's ring. Blocking jobs (pool_submit_blocking)
 * have their own queue under the pool lock, for the blocking threads
 * (jobs.c).
 *
 * Chaining. While a core thread settles a future it has just run (not
 * while user code runs: worker.c sets fut__self.chaining around the
 * settle), the first continuation that becomes ready for its own pool is
 * kept in its chained slot instead of being queued, and the thread runs it
 * next: a chain of continuations then costs no queue and no wake-up per
 * hop. It is run from the thread's loop, so the stack does not grow, and
 * it is kept only when the thread is certain to run it next, so it is
 * never stranded out of other threads' sight. After CHAIN_LIMIT hops in a
 * row the next one is queued like any other, so an endless chain cannot
 * starve the queue of a one-thread pool.
 *
 * Shutting down: the state is written under both locks, and read under
 * inject.lock by whoever queues from outside, so nothing lands in a queue
 * that shutdown has already emptied (fut__cancel_queued).
 */
#include "pool_internal.h"

#define CHAIN_LIMIT 64

static void inject_lock(pool_t *p)
{
    fut__mutex_lock(&p->inject.lock);
}

static void inject_unlock(pool_t *p)
{
    fut__mutex_unlock(&p->inject.lock);
}

static void queue_push_front(struct fut__queue *q, future_t *f)
{
    f->next = q->head;
    q->head = f;
    if (!q->tail)
        q->tail = f;
    q->len++;
}

/* Keeps @f for this thread to run next, if it may; see above. */
static bool keep_chained(pool_t *p, future_t *f)
{
    struct fut__thread *me = &fut__self;
    if (!me->chaining || me->chained || me->chain_len >= CHAIN_LIMIT ||
        !me->worker || me->worker->blocking || me->worker->pool != p ||
        !fut__pool_runs_work(p))
        return false; /* (a pool that stopped: the default pool takes it) */
    me->chained = f;
    return true;
}

/*
 * Queues @f from outside @p's core threads. A submission needs the pool
 * open; a continuation, only that it still runs work. The state is read
 * under inject.lock, which every change of state takes too, so nothing
 * lands in a queue that shutdown has already emptied.
 */
static bool inject(pool_t *p, future_t *f, bool submission)
{
    uint32_t stamp = fut__queued_stamp();
    inject_lock(p);
    bool ok = submission ? fut__pool_state(p) == FUT_POOL_OPEN
                         : fut__pool_runs_work(p);
    if (ok) {
        fut__queue_push(&p->inject.queue, f);
        atomic_store(&p->inject.len, p->inject.queue.len); /* see the top */
        uint32_t seq = p->inject.pushed++;
        if (stamp)
            fut__age_note(&p->inject.ages, seq, stamp,
                          p->inject.pushed - (uint32_t)p->inject.queue.len);
    }
    inject_unlock(p);
    if (ok)
        fut__wake_if_needed(p);
    return ok;
}

/* Puts @batch, taken from the injection queue, back at its front: it was
 * queued before anything that came in since (though another thread may
 * hand back, meanwhile, what it took later). Its first future was queued
 * at @stamp; the batch is numbered anew, in front of the queue's head. */
static void give_back_injected(pool_t *p, struct fut__queue *batch,
                               uint32_t stamp)
{
    inject_lock(p);
    if (stamp || p->inject.ages.n) {
        uint32_t head = p->inject.pushed - (uint32_t)p->inject.queue.len;
        fut__age_hand_back(&p->inject.ages, head - (uint32_t)batch->len, head,
                           p->inject.pushed, stamp);
    }
    batch->tail->next = p->inject.queue.head;
    if (!p->inject.queue.head)
        p->inject.queue.tail = batch->tail;
    p->inject.queue.head = batch->head;
    p->inject.queue.len += batch->len;
    atomic_store(&p->inject.len, p->inject.queue.len);
    inject_unlock(p);
    fut__wake_if_needed(p);
}

/* Queues @f, the current thread's, in its own ring if it has one for @p. */
static bool push_local(pool_t *p, future_t *f)
{
    struct fut__worker *me = fut__current_worker();
    if (!me || me->pool != p || !me->ring ||
        !fut__ring_push(me->ring, f, fut__queued_stamp()))
        return false;
    if (atomic_load(&p->shared.state) == FUT_POOL_CANCELLED) {
        /* Cancelled since the caller looked, and perhaps swept already
         * (fut__cancel_queued): this thread may be about to wait for it,
         * so it cancels what it queued itself. */
        future_t *g;
        while ((g = fut__ring_pop(me->ring)) != NULL)
            fut__dispose(g);
        return true;
    }
    /* While chaining, this thread goes straight back to its ring: if @f
     * is all there is, a thread woken for it would only take it away
     * (a long chain would bounce between threads every CHAIN_LIMIT hops). */
    if (!(fut__self.chaining && fut__ring_len(me->ring) == 1))
        fut__wake_if_needed(p);
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
future_t *fut__take_injected(pool_t *p, struct fut__worker *w, bool take)
{
    if (!atomic_load_explicit(&p->inject.len, memory_order_relaxed))
        return NULL;
    struct fut__age_log ages; /* when each was queued (age.c) */
    ages.n = 0;
    inject_lock(p);
    struct fut__queue batch = p->inject.queue;
    uint32_t seq = p->inject.pushed - (uint32_t)batch.len;
    if (p->inject.ages.n)
        ages = p->inject.ages;
    p->inject.queue = (struct fut__queue){0};
    atomic_store(&p->inject.len, 0);
    inject_unlock(p);
    future_t *f = take ? fut__queue_pop(&batch) : NULL;
    seq += take;
    future_t *g;
    while ((g = fut__queue_pop(&batch)) != NULL) {
        /* Off the list before it is in the ring: from there another
         * thread may take it, run it and free it at once. */
        if (!fut__ring_push(w->ring, g, fut__age_at(&ages, seq))) {
            queue_push_front(&batch, g);
            break;
        }
        seq++;
    }
    if (batch.head)
        give_back_injected(p, &batch, fut__age_at(&ages, seq));
    else if (fut__ring_len(w->ring))
        fut__wake_if_needed(p); /* see "Out of sight" above */
    return f;
}

/* Takes half of another thread's ring, trying each once. */
future_t *fut__steal(pool_t *p, struct fut__worker *w)
{
    size_t n = fut__pool_nrings(p);
    for (size_t i = 0; i < n; i++) {
        struct fut__ring *victim = p->rings[(w->turns + i) % n];
        if (victim == w->ring)
            continue;
        future_t *f = fut__ring_steal(victim, w->ring);
        if (f) {
            if (fut__ring_len(w->ring))
                fut__wake_if_needed(p); /* see "Out of sight" above */
            return f;
        }
    }
    return NULL;
}

/* Queues @f, a new task of @p's; false if @p takes no submissions. */
bool fut__submit(pool_t *p, future_t *f, bool blocking)
{
    if (blocking) {
        uint32_t stamp = fut__queued_stamp();
        fut__pool_lock(p);
        bool open = fut__pool_state(p) == FUT_POOL_OPEN;
        if (open)
            fut__push_job_locked(p, f, stamp);
        fut__pool_unlock(p);
        return open;
    }
    if (fut__pool_state(p) == FUT_POOL_OPEN && push_local(p, f))
        return true;
    return inject(p, f, true);
}

/*
 * Disposes of @f, taken from a cancelled pool's queue. Continuations of
 * tasks the pool accepted earlier are not its to cancel: they go to the
 * default pool, as the header promises.
 */
void fut__dispose(future_t *f)
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
        fut__dispose(f);
}

/* After pool_shutdown(POOL_CANCEL), with no lock held: cancels what is
 * queued. A thread that took a task a moment before cancels it itself. */
void fut__cancel_queued(pool_t *p)
{
    fut__pool_lock(p);
    struct fut__queue jobs = p->blocking.jobs;
    p->blocking.jobs = (struct fut__queue){0};
    fut__update_jobs_hint_locked(p);
    inject_lock(p);
    struct fut__queue injected = p->inject.queue;
    p->inject.queue = (struct fut__queue){0};
    atomic_store(&p->inject.len, 0);
    inject_unlock(p);
    fut__pool_unlock(p);
    dispose_all(&injected);
    dispose_all(&jobs);
    /* The state was stored first (sequentially consistent), and the
     * rings are read the same way: a core thread pushing meanwhile either
     * finds its future here or sees CANCELLED and disposes of it itself
     * (push_local). */
    size_t n = fut__pool_nrings(p);
    for (size_t i = 0; i < n; i++) {
        future_t *f;
        while (fut__ring_len(p->rings[i]) &&
               (f = fut__ring_pop(p->rings[i])) != NULL)
            fut__dispose(f);
    }
}

void fut__pool_counts_locked(pool_t *p, size_t *queued, size_t *running,
                             uint64_t *completed)
{
    FUT_ASSERT_HELD(&p->lock);
    *queued = p->blocking.jobs.len +
              atomic_load_explicit(&p->inject.len, memory_order_relaxed);
    *running = p->blocking.running;
    *completed = p->blocking.completed;
    size_t n = fut__pool_nrings(p);
    for (size_t i = 0; i < n; i++) {
        struct fut__ring *r = p->rings[i];
        *queued += fut__ring_len(r);
        *running += atomic_load_explicit(&r->executing, memory_order_relaxed);
        *completed += atomic_load_explicit(&r->completed, memory_order_relaxed);
    }
}

/* When the oldest of @p's queued work was queued, as far as it is known. */
void fut__pool_oldest_locked(pool_t *p, struct fut__oldest *o)
{
    FUT_ASSERT_HELD(&p->lock);
    struct fut__queue *jobs = &p->blocking.jobs;
    if (jobs->len)
        fut__age_oldest(&p->blocking.ages,
                        p->blocking.pushed - (uint32_t)jobs->len,
                        p->blocking.pushed, o);
    inject_lock(p);
    struct fut__queue *q = &p->inject.queue;
    if (q->len)
        fut__age_oldest(&p->inject.ages, p->inject.pushed - (uint32_t)q->len,
                        p->inject.pushed, o);
    inject_unlock(p);
    size_t n = fut__pool_nrings(p);
    for (size_t i = 0; i < n; i++)
        fut__ring_oldest(p->rings[i], o);
}

/* Queues @f on @p if @p still runs work; returns false if it does not. */
bool fut__queue_on(pool_t *p, future_t *f)
{
    if (fut__pool_runs_work(p) && push_local(p, f))
        return true;
    return inject(p, f, false);
}

/* As fut__queue_on(), unless this thread keeps @f to run next (chaining). */
static bool try_push(pool_t *p, future_t *f)
{
    return keep_chained(p, f) || fut__queue_on(p, f);
}

/* The pool's executor door (pool.c): queues @f, QUEUED with the run
 * queue's reference, on @p, or, if @p runs nothing more, on the default
 * pool. That one never refuses (it is never shut down, and a child of
 * fork() makes its own), so this never comes back here for it. */
void fut__pool_schedule(pool_t *p, future_t *f)
{
    if (fut__pool_is_stale(p) || !try_push(p, f))
        fut__schedule_default(f); /* the default pool is never shut down */
}
