/*
 * jobs.c - blocking jobs (pool_submit_blocking) and the threads that run
 * them.
 *
 * Jobs wait in one FIFO under the pool lock: they are expected to block
 * for milliseconds, so a lock per job costs nothing next to them, and what
 * matters is having a thread for each. Blocking threads start on demand,
 * one per job that finds no idle one, up to blocking.limit, and exit after
 * idle_ns without work. A job blocked in future_wait() does not count
 * against the limit while it waits (blocking.waiting), and a thread above the
 * limit (after pool_set_blocking_limit lowered it) exits instead of
 * taking another job. Starting a thread takes tens of microseconds, so a
 * burst of jobs is met by a tree of starts (BLOCKING_FANOUT): each new
 * thread starts more as it begins, on every CPU at once.
 *
 * If no blocking thread is alive and none can be started, the core threads
 * run the jobs (shared.jobs_hint tells them, worker.c), so a job is never
 * stranded. The pool lock is held wherever a function's name ends in
 * _locked.
 */
#include "pool_internal.h"

#ifndef BLOCKING_FANOUT
#define BLOCKING_FANOUT 2 /* threads each new blocking thread may start */
#endif

static void grow_blocking_locked(pool_t *p, int retries);
static void blocking_main_locked(pool_t *p, struct fut__worker *w);

/*
 * Jobs that core threads should take: those no blocking thread will run,
 * because none is alive, or because the last start failed and the jobs
 * outnumber the blocking threads idle or starting. Otherwise a job whose
 * thread could not start would wait for the next submission to try again,
 * and for ever if the job that blocks a blocking thread waits for it.
 */
static bool jobs_for_core_locked(const pool_t *p)
{
    FUT_ASSERT_HELD(&((pool_t *)p)->lock);
    return p->blocking.jobs.len &&
           (p->blocking.live == 0 ||
            (p->blocking.start_failed &&
             p->blocking.jobs.len > p->blocking.idle + p->blocking.starting));
}

/* Keeps the hint core threads watch up to date, and wakes one if the
 * jobs have just become theirs. */
void fut__update_jobs_hint_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    bool theirs = jobs_for_core_locked(p);
    atomic_store(&p->shared.jobs_hint, theirs);
    if (theirs)
        fut__wake_one_locked(p);
}

/*
 * Is the caller a blocking thread of @p settling its job? Then it goes
 * back to the queue next and takes a job pushed now itself: one such
 * push (a scope starting the task its job made room for) needs no new
 * thread. The credit is used once.
 */
static bool finisher_will_take_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    struct fut__worker *me = fut__self.worker;
    if (!me || me->pool != p || !me->finishing)
        return false;
    me->finishing = false;
    return true;
}

void fut__push_job_locked(pool_t *p, future_t *f, uint32_t stamp)
{
    FUT_ASSERT_HELD(&p->lock);
    fut__queue_push(&p->blocking.jobs, f);
    uint32_t seq = p->blocking.pushed++;
    if (stamp)
        fut__age_note(&p->blocking.ages, seq, stamp,
                      p->blocking.pushed - (uint32_t)p->blocking.jobs.len);
    if (!finisher_will_take_locked(p))
        grow_blocking_locked(p, 1); /* on failure the job waits */
    fut__update_jobs_hint_locked(p);
    if (p->blocking.idle)
        pthread_cond_signal(&p->blocking.work);
}

/* A job for a core thread, counted as running; NULL if none is theirs. */
future_t *fut__take_job_for_core(pool_t *p)
{
    if (!atomic_load_explicit(&p->shared.jobs_hint, memory_order_relaxed))
        return NULL;
    fut__pool_lock(p);
    future_t *f =
        jobs_for_core_locked(p) ? fut__queue_pop(&p->blocking.jobs) : NULL;
    if (f)
        p->blocking.running++;
    fut__update_jobs_hint_locked(p);
    fut__pool_unlock(p);
    return f;
}

/* The next job for a blocking thread, counted as running; lock held. */
static future_t *next_job_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    future_t *f = fut__queue_pop(&p->blocking.jobs);
    if (f)
        p->blocking.running++;
    fut__update_jobs_hint_locked(p);
    return f;
}

/*
 * Blocking threads that count against the limit: a job blocked in
 * future_wait() does not while it waits (fut__job_wait_begin), as a
 * waiting core task is replaced by a stand-in.
 */
static size_t counted_locked(const pool_t *p)
{
    FUT_ASSERT_HELD(&((pool_t *)p)->lock);
    return p->blocking.live - p->blocking.waiting;
}

/* More threads than the limit allows: this one should exit rather than
 * take a job, so that after a lowered limit no new job starts until the
 * running ones above it have finished. */
static bool over_limit_locked(const pool_t *p)
{
    FUT_ASSERT_HELD(&((pool_t *)p)->lock);
    return counted_locked(p) > p->blocking.limit;
}

/* With the lock held and no job found: waits for one, or returns false
 * when this thread should exit. */
static bool wait_for_job_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    fut__maybe_stop_locked(p);
    if (fut__pool_winding_down(p) || over_limit_locked(p))
        return false;
    p->blocking.idle++;
    bool timed_out = fut__idle_wait_locked(p, &p->blocking.work, true);
    p->blocking.idle--;
    return !(timed_out && !p->blocking.jobs.len);
}

/*
 * Runs job @f. Once its function has returned, its thread counts as
 * finishing until the job has settled: as good as free for what the settle
 * submits (a scope's next task), which then starts no thread for it
 * (grow_blocking_locked). It still counts as running, so a draining pool
 * does not stop under the continuations its settle readies.
 */
static void run_job_locked(pool_t *p, future_t *f)
{
    FUT_ASSERT_HELD(&p->lock);
    fut__pool_unlock(p);
    struct fut__outcome out;
    bool ran = fut__start(f, &out);
    if (ran) {
        struct fut__worker *me = fut__self.worker;
        atomic_fetch_add(&p->blocking.finishing, 1);
        me->finishing = true; /* see finisher_will_take_locked() */
        fut__finish(f, &out);
        me->finishing = false;
    }
    future_release(f); /* the run queue's reference */
    if (fut__pool_is_stale(p))
        pthread_exit(NULL); /* the job forked; see worker.c's run_on_core() */
    fut__pool_lock(p);
    if (ran)
        atomic_fetch_sub(&p->blocking.finishing, 1);
    p->blocking.running--;
    if (ran)
        p->blocking.completed++;
}

/* A blocking thread's loop; the lock is held on entry and exit. */
static void blocking_loop_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    bool starting = true;
    for (;;) {
        bool surplus = over_limit_locked(p);
        future_t *f = surplus ? NULL : next_job_locked(p);
        if (starting) {
            /* Counted as starting until now; with its job taken, what is
             * still queued is what more threads are for. */
            starting = false;
            p->blocking.starting--;
            for (int i = 0; i < BLOCKING_FANOUT; i++)
                grow_blocking_locked(p, 1); /* a burst meets a tree */
        }
        if (f) {
            run_job_locked(p, f);
        } else if (surplus || !wait_for_job_locked(p)) {
            if (p->blocking.jobs.len && p->blocking.idle)
                pthread_cond_signal(&p->blocking.work); /* not this one */
            /* This thread may have run a draining pool's last job, or
             * woken from its idle wait after the last one ended: with
             * nothing left, the pool stops, or it would wait for ever
             * for a stop that nobody is left to make. */
            fut__maybe_stop_locked(p);
            return;
        }
    }
}

/*
 * A blocking job is about to wait in future_wait(): it stops counting
 * against the limit, and a queued job it may be waiting for gets a thread
 * (or, if none can start, the core threads, through jobs_hint). Without
 * this, jobs waiting for jobs queued behind them hang at the limit.
 */
void fut__job_wait_begin(pool_t *p)
{
    fut__pool_lock(p);
    p->blocking.waiting++;
    grow_blocking_locked(p, 1);
    fut__update_jobs_hint_locked(p);
    fut__pool_unlock(p);
}

void fut__job_wait_end(pool_t *p)
{
    fut__pool_lock(p);
    p->blocking.waiting--;
    fut__pool_unlock(p);
}

/* No blocking thread could start: the core threads may have to take over
 * the jobs (jobs_for_core_locked). */
static void blocking_start_failed_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    p->blocking.start_failed = true;
    p->blocking.failures++;
    fut__update_jobs_hint_locked(p);
}

/*
 * Starts a blocking thread if queued jobs outnumber the threads that will
 * take them. Starting a thread takes tens of microseconds, so it happens
 * with the lock dropped (blocking.starting counts threads on their way, so two
 * callers never start one for the same job), and each new blocking thread
 * calls this BLOCKING_FANOUT times as it starts: a burst of jobs is met by a
 * tree of starts on every CPU rather than by the submitter alone, one by one.
 */
static void grow_blocking_locked(pool_t *p, int retries)
{
    FUT_ASSERT_HELD(&p->lock);
    /* Not while idle or starting threads will take the queued jobs, nor
     * while there are as many threads as jobs queued and running (those
     * finishing not counted): those that are busy come back for the rest. Without the second rule a
     * stream of short jobs, each submitted as another ends (a scope at
     * its limit), would start a thread for every job that found its
     * predecessor's thread still finishing. */
    size_t busy = p->blocking.running - atomic_load(&p->blocking.finishing);
    if (p->blocking.jobs.len <= p->blocking.idle + p->blocking.starting ||
        p->blocking.live >= busy + p->blocking.jobs.len ||
        counted_locked(p) >= p->blocking.limit)
        return;
    struct fut__worker *w = fut__worker_new(p, blocking_main_locked);
    if (!w) {
        blocking_start_failed_locked(p);
        return;
    }
    w->blocking = true;
    fut__pool_retain(p); /* the thread's */
    p->blocking.live++;
    p->blocking.starting++;
    unsigned failures = p->blocking.failures;
    struct fut__worker *ended = fut__take_exited_locked(p);
    fut__pool_unlock(p);
    fut__join_all(ended);
    int rc = fut__thread_launch(w);
    fut__pool_lock(p);
    if (rc) {
        p->blocking.live--;
        p->blocking.starting--;
        atomic_fetch_sub(&p->refs, 1); /* the caller's remains */
        fut__mem_free(w);
        blocking_start_failed_locked(p);
        if (p->locked.nlive + p->blocking.live == 0)
            pthread_cond_broadcast(&p->ended);
        /* Other jobs may have counted on this start: try once more. */
        if (retries > 0)
            grow_blocking_locked(p, retries - 1);
    } else if (p->blocking.failures == failures) {
        /* A start that failed while this one was on its way is newer
         * news: its jobs may still need the core threads. */
        p->blocking.start_failed = false;
    }
    if (!rc)
        fut__note_peak_locked(p);
}

/* A blocking thread's life, entered and left with the lock held
 * (threads.c). */
static void blocking_main_locked(pool_t *p, struct fut__worker *w)
{
    FUT_ASSERT_HELD(&p->lock);
    (void)w;
    blocking_loop_locked(p);
    p->blocking.live--;
    fut__update_jobs_hint_locked(p); /* its jobs may fall to the core threads */
}
