/*
 * sched.c - a pool's threads: run queues, sleeping, waking, exiting.
 *
 * The rest of the library sees only fut__schedule(), the executor
 * interface and the fut__block_* calls, so this file can be replaced
 * without touching futures or combinators. pool.c is the public face.
 *
 * Two queues, both FIFO, linked through the futures' next fields and
 * guarded by the pool's mutex: tasks, for the core threads, and jobs
 * (pool_submit_blocking), for the blocking threads. A submission wakes an
 * idle thread of the right kind only if there is one.
 *
 * Core threads. A pool keeps ncore of them able to run tasks. One that
 * blocks in future_wait() no longer counts (nblocked), and if that leaves
 * fewer than ncore the pool starts a stand-in, so a task waiting for work
 * queued behind it never deadlocks, even with one thread. Core threads
 * beyond ncore that stay idle for idle_ns exit. If no stand-in can be
 * started, the waiter runs queued tasks itself (FUT_BLOCK_HELP).
 *
 * Blocking threads start on demand, one per job that finds no idle one, up
 * to nb_limit, and exit after idle_ns without work. If none is alive and
 * none can be started, the core threads run the jobs, so a job is never
 * stranded.
 *
 * The pool's states are in internal.h. A draining pool stops when both
 * queues are empty and nothing runs (nrunning == 0); in CANCELLED and
 * STOPPED, threads exit once they find no work.
 *
 * Threads. A thread that exits puts itself on the exited list, and whoever
 * next starts a thread, or pool_destroy(), joins it. A pool destroyed from
 * one of its own threads cannot join that one: its threads then detach
 * themselves as they exit, and their references keep the pool alive.
 *
 * Lock order: a pool lock is taken with no other lock held, and no thread
 * holds it while running a future.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#ifndef BLOCKING_FANOUT
#define BLOCKING_FANOUT 2 /* threads each new blocking thread may start */
#endif

struct fut__worker {
    pthread_t thread;
    pool_t *pool;
    bool blocking;
    struct fut__worker *next; /* on the pool's exited list */
};

static _Thread_local struct fut__worker *self; /* NULL off pool threads */

/*
 * Chaining. While a core thread settles a future it has just run (not
 * while user code runs), the first continuation that becomes ready for its
 * own pool is kept in `chained` instead of being queued, and the thread
 * runs it next: a chain of continuations then costs no queue lock and no
 * wake-up per hop. It is run from the thread's loop, so the stack does not
 * grow, and it is kept only when the thread is certain to run it next, so
 * it is never stranded out of other threads' sight. After CHAIN_LIMIT hops
 * in a row the next one is queued like any other, so an endless chain
 * cannot starve the queue of a one-thread pool.
 */
#define CHAIN_LIMIT 64

static _Thread_local bool chaining;
static _Thread_local future_t *chained;
static _Thread_local unsigned chain_len;

void fut__chain(bool on)
{
    chaining = on;
}

/* Keeps @f for this thread to run next, if it may; see above. */
static bool keep_chained(pool_t *p, future_t *f)
{
    if (!chaining || chained || chain_len >= CHAIN_LIMIT || !self ||
        self->blocking || self->pool != p)
        return false;
    int state = atomic_load_explicit(&p->state, memory_order_relaxed);
    if (state != FUT_POOL_OPEN && state != FUT_POOL_DRAINING)
        return false; /* the default pool takes it (try_push) */
    chained = f;
    return true;
}

static _Atomic(pool_t *) default_pool;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------- locks, references -- */

void fut__pool_lock(pool_t *p)
{
    if (pthread_mutex_lock(&p->lock))
        fut__panic("pool lock failed");
}

void fut__pool_unlock(pool_t *p)
{
    if (pthread_mutex_unlock(&p->lock))
        fut__panic("pool unlock failed");
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
    return self && self->pool == p;
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

static int start_thread_locked(pool_t *p, bool blocking);
static void grow_blocking_locked(pool_t *p, int retries);

/*
 * Jobs that core threads should take: those no blocking thread will run,
 * because none is alive, or because the last start failed and the jobs
 * outnumber the blocking threads idle or starting. Otherwise a job whose
 * thread could not start would wait for the next submission to try again,
 * and for ever if the job that blocks a blocking thread waits for it.
 */
static bool jobs_for_core_locked(const pool_t *p)
{
    return p->jobs.len &&
           (p->nb_live == 0 || (p->nb_start_failed &&
                                p->jobs.len > p->nb_idle + p->nb_starting));
}

/* Is there work for a core thread: a task, or a job (above)? */
static bool core_work_locked(const pool_t *p)
{
    return p->tasks.len || jobs_for_core_locked(p);
}

/* Keeps the hint that spinning core threads watch up to date. */
static void update_hint_locked(pool_t *p)
{
    atomic_store_explicit(&p->work_hint, core_work_locked(p),
                          memory_order_relaxed);
}

void fut__push_task_locked(pool_t *p, future_t *f)
{
    fut__queue_push(&p->tasks, f);
    update_hint_locked(p);
    if (p->nidle)
        pthread_cond_signal(&p->work);
}

void fut__push_job_locked(pool_t *p, future_t *f)
{
    fut__queue_push(&p->jobs, f);
    grow_blocking_locked(p, 1); /* on failure the job waits */
    update_hint_locked(p);
    if (p->nb_idle)
        pthread_cond_signal(&p->blocking_work);
    else if (jobs_for_core_locked(p) && p->nidle)
        pthread_cond_signal(&p->work); /* a core thread will run it */
}

/* --------------------------------------------------------- the threads -- */

void fut__maybe_stop_locked(pool_t *p)
{
    if (p->state == FUT_POOL_DRAINING && !p->tasks.len && !p->jobs.len &&
        !p->nrunning) {
        p->state = FUT_POOL_STOPPED;
        pthread_cond_broadcast(&p->work);
        pthread_cond_broadcast(&p->blocking_work);
    }
}

static bool winding_down(const pool_t *p)
{
    return p->state == FUT_POOL_CANCELLED || p->state == FUT_POOL_STOPPED;
}

/* Core threads beyond ncore that are able to run tasks. */
static bool core_surplus(const pool_t *p)
{
    return p->nlive - p->nblocked > p->ncore;
}

/* The next future for this thread, or NULL; the lock is held. */
static future_t *next_work_locked(pool_t *p, bool blocking)
{
    if (chained) {
        future_t *f = chained; /* a continuation this thread kept */
        chained = NULL;
        chain_len++;
        return f;
    }
    chain_len = 0;
    future_t *f = blocking ? NULL : fut__queue_pop(&p->tasks);
    if (!f && (blocking || jobs_for_core_locked(p)))
        f = fut__queue_pop(&p->jobs); /* for core threads: none could start */
    update_hint_locked(p);
    return f;
}

/* Waits on @cond until woken, or for idle_ns when @timed; true on time-out. */
static bool idle_wait_locked(pool_t *p, pthread_cond_t *cond, bool timed)
{
    if (!timed) {
        pthread_cond_wait(cond, &p->lock);
        return false;
    }
    struct timespec deadline;
    fut__deadline(&deadline, p->idle_ns);
    return pthread_cond_timedwait(cond, &p->lock, &deadline) == ETIMEDOUT;
}

/*
 * With the lock held and no tasks found, a core thread spins a while with
 * the lock dropped, watching for a task, before it goes to sleep: while it
 * spins it is not idle, so a submission need not wake anyone. It yields
 * the CPU every few hundred nanoseconds, because the thread it just woke
 * (a waiter, say) is often queued on this very CPU and would otherwise
 * wait for the spin to end. Returns whether a task arrived.
 */
static bool spin_for_task_locked(pool_t *p)
{
    fut__pool_unlock(p);
    uint64_t until = fut__now_ns() + FUT_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->work_hint, memory_order_relaxed))
            break;
        if (i % 64 == 0) {
            if (fut__now_ns() > until)
                break;
            sched_yield();
        }
        fut__cpu_relax();
    }
    fut__pool_lock(p);
    return core_work_locked(p);
}

/*
 * With the lock held and no work found: waits for work, or returns false
 * when this thread should exit (the pool is winding down, or the thread is
 * beyond what the pool keeps and stayed idle for idle_ns).
 */
static bool wait_for_work_locked(pool_t *p, bool blocking)
{
    fut__maybe_stop_locked(p);
    if (winding_down(p))
        return false;
    if (!blocking && spin_for_task_locked(p))
        return true;
    /* The lock was dropped while spinning: look at the state again, or a
     * shutdown's broadcast could have passed this thread by. */
    fut__maybe_stop_locked(p);
    if (winding_down(p))
        return false;
    if (blocking) {
        if (p->nb_live > p->nb_limit)
            return false;
        p->nb_idle++;
        bool timed_out = idle_wait_locked(p, &p->blocking_work, true);
        p->nb_idle--;
        return !(timed_out && !p->jobs.len);
    }
    p->nidle++;
    bool timed_out = idle_wait_locked(p, &p->work, core_surplus(p));
    p->nidle--;
    return !(timed_out && !core_work_locked(p) && core_surplus(p));
}

/*
 * Runs @f, which the caller took off a queue and has already counted in
 * nrunning: a draining pool must never see it in no queue and not running,
 * even while the lock is dropped before it starts.
 */
static void run_counted_locked(pool_t *p, future_t *f, bool may_chain)
{
    fut__pool_unlock(p);
    bool ran = fut__run(f, may_chain);
    future_release(f); /* the run queue's reference */
    if (fut__pool_is_stale(p))
        pthread_exit(NULL); /* the task forked: this is the child's copy of
                               a parent's thread, and the pool is not ours */
    fut__pool_lock(p);
    p->nrunning--;
    if (ran)
        p->completed++; /* not a task cancelled while it waited */
}

static void exit_locked(pool_t *p, struct fut__worker *w)
{
    if (w->blocking) {
        p->nb_live--;
        update_hint_locked(p); /* its jobs may fall to the core threads */
        if (p->nb_live == 0 && p->jobs.len && p->nidle)
            pthread_cond_signal(&p->work);
    } else {
        p->nlive--;
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

static void *thread_main(void *arg)
{
    struct fut__worker *w = arg;
    pool_t *p = w->pool;
    self = w;

    fut__pool_lock(p);
    char name[16];
    snprintf(name, sizeof name, "futures-%u%c%u", p->id,
             w->blocking ? 'b' : '.', p->next_thread++);
    pthread_setname_np(pthread_self(), name);
    bool starting = w->blocking;
    for (;;) {
        future_t *f = next_work_locked(p, w->blocking);
        if (f)
            p->nrunning++;
        if (starting) {
            /* Counted as starting until now; with its job taken, what is
             * still queued is what more threads are for. */
            starting = false;
            p->nb_starting--;
            for (int i = 0; i < BLOCKING_FANOUT; i++)
                grow_blocking_locked(p, 1); /* a burst meets a tree */
        }
        if (f)
            run_counted_locked(p, f, !w->blocking);
        else if (!wait_for_work_locked(p, w->blocking))
            break;
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
    struct fut__worker *list = p->exited;
    p->exited = NULL;
    return list;
}

/*
 * Starts one more thread; the pool lock is held. Returns 0 or an errno.
 * Joins exited threads on the way: they have ended, so it cannot block.
 */
static int start_thread_locked(pool_t *p, bool blocking)
{
    fut__join_all(fut__take_exited_locked(p));
    struct fut__worker *w = fut__calloc(sizeof *w);
    if (!w)
        return ENOMEM;
    w->pool = p;
    w->blocking = blocking;
    fut__pool_retain(p); /* the thread's */
    int rc = fut__thread_start(&w->thread, thread_main, w);
    if (rc) {
        atomic_fetch_sub(&p->refs, 1); /* the caller's remains */
        fut__mem_free(w);
        return rc;
    }
    if (blocking)
        p->nb_live++;
    else
        p->nlive++;
    if (p->nlive + p->nb_live > p->peak)
        p->peak = p->nlive + p->nb_live;
    return 0;
}

int fut__start_core_locked(pool_t *p)
{
    return start_thread_locked(p, false);
}

/*
 * Starts a blocking thread if queued jobs outnumber the threads that will
 * take them. Starting a thread takes tens of microseconds, so it happens
 * with the lock dropped (nb_starting counts threads on their way, so two
 * callers never start one for the same job), and each new blocking thread
 * calls this BLOCKING_FANOUT times as it starts: a burst of jobs is met by a
 * tree of starts on every CPU rather than by the submitter alone, one by one.
 */
/* No blocking thread could start: the core threads may have to take over
 * the jobs (jobs_for_core_locked). */
static void blocking_start_failed_locked(pool_t *p)
{
    p->nb_start_failed = true;
    update_hint_locked(p);
    if (jobs_for_core_locked(p) && p->nidle)
        pthread_cond_signal(&p->work);
}

static void grow_blocking_locked(pool_t *p, int retries)
{
    if (p->jobs.len <= p->nb_idle + p->nb_starting || p->nb_live >= p->nb_limit)
        return;
    struct fut__worker *w = fut__calloc(sizeof *w);
    if (!w) {
        blocking_start_failed_locked(p);
        return;
    }
    w->pool = p;
    w->blocking = true;
    fut__pool_retain(p); /* the thread's */
    p->nb_live++;
    p->nb_starting++;
    struct fut__worker *ended = fut__take_exited_locked(p);
    fut__pool_unlock(p);
    fut__join_all(ended);
    int rc = fut__thread_start(&w->thread, thread_main, w);
    fut__pool_lock(p);
    if (rc) {
        p->nb_live--;
        p->nb_starting--;
        atomic_fetch_sub(&p->refs, 1); /* the caller's remains */
        fut__mem_free(w);
        blocking_start_failed_locked(p);
        if (p->nlive + p->nb_live == 0)
            pthread_cond_broadcast(&p->ended);
        /* Other jobs may have counted on this start: try once more. */
        if (retries > 0)
            grow_blocking_locked(p, retries - 1);
    } else {
        p->nb_start_failed = false;
        if (p->nlive + p->nb_live > p->peak)
            p->peak = p->nlive + p->nb_live;
    }
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

/* Queues @f on @p if @p still runs tasks; returns false if it does not. */
static bool try_push(pool_t *p, future_t *f)
{
    if (keep_chained(p, f))
        return true;
    fut__pool_lock(p);
    bool runs = p->state == FUT_POOL_OPEN || p->state == FUT_POOL_DRAINING;
    if (runs)
        fut__push_task_locked(p, f);
    fut__pool_unlock(p);
    return runs;
}

/*
 * The default pool takes what a shut-down pool cannot run; it is never shut
 * down itself. If it cannot be started, the future fails with the reason
 * rather than being lost.
 */
static void schedule_on_default(future_t *f)
{
    pool_t *d = pool_default();
    if (d) {
        try_push(d, f);
        return;
    }
    fut__settle(f, errno, NULL);
    future_release(f); /* the run queue's reference */
}

static void exec_schedule(struct fut__exec *exec, future_t *f)
{
    pool_t *p = pool_of(exec);
    if (fut__pool_is_stale(p) || !try_push(p, f))
        schedule_on_default(f);
}

const struct fut__exec_ops fut__pool_exec_ops = {
    exec_schedule, exec_retain, exec_release, NULL, NULL, NULL};

/* Hands a QUEUED future, with the run queue's reference, to its executor. */
void fut__schedule(future_t *f)
{
    if (f->exec)
        f->exec->ops->schedule(f->exec, f);
    else
        schedule_on_default(f);
}

/* fork(): the parent's default pool has no threads in the child, which
 * makes its own on first use (the old one is left as it is: its locks
 * may have been held when the parent forked). */
void fut__sched_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        pthread_mutex_lock(&default_lock);
        return;
    }
    if (phase == FUT_FORK_CHILD)
        atomic_store(&default_pool, NULL);
    pthread_mutex_unlock(&default_lock);
}

pool_t *pool_default(void)
{
    pool_t *p = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (p)
        return p;
    pthread_mutex_lock(&default_lock);
    p = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (!p) {
        p = pool_create(0);
        if (p) {
            p->is_default = true;
            atomic_store_explicit(&default_pool, p, memory_order_release);
        }
    }
    pthread_mutex_unlock(&default_lock);
    return p;
}

/* --------------------------------------------- blocking inside a task -- */

/* Counts this core thread as blocked and keeps the pool's capacity with a
 * stand-in; false if one was needed and could not be started. */
static bool compensate(pool_t *p)
{
    fut__pool_lock(p);
    p->nblocked++;
    bool runs = p->state == FUT_POOL_OPEN || p->state == FUT_POOL_DRAINING;
    bool ok = !(runs && p->nlive - p->nblocked < p->ncore &&
                start_thread_locked(p, false) != 0);
    if (!ok)
        p->nblocked--;
    fut__pool_unlock(p);
    return ok;
}

enum fut__block fut__block_begin(void)
{
    if (!self || self->blocking || fut__pool_is_stale(self->pool))
        return FUT_BLOCK_PLAIN; /* blocking threads may block */
    return compensate(self->pool) ? FUT_BLOCK_COMPENSATED : FUT_BLOCK_HELP;
}

bool fut__block_retry(void)
{
    return compensate(self->pool);
}

void fut__block_end(enum fut__block how)
{
    if (how != FUT_BLOCK_COMPENSATED)
        return;
    pool_t *p = self->pool;
    fut__pool_lock(p);
    p->nblocked--;
    fut__pool_unlock(p);
}

unsigned fut__pool_id_of_thread(void)
{
    return self ? self->pool->id : 0;
}

/* Runs one task queued on this thread's pool; returns false if none was. */
bool fut__help_one(void)
{
    pool_t *p = self->pool;
    fut__pool_lock(p);
    future_t *f = next_work_locked(p, false);
    if (f) {
        p->nrunning++;
        run_counted_locked(p, f, false);
    }
    fut__pool_unlock(p);
    return f != NULL;
}
