/*
 * sched.c - pools: worker threads, their run queue, sleeping and waking.
 *
 * This is the whole scheduler; the rest of the library sees only
 * fut__schedule(), the executor interface and the fut__block_* calls, so it
 * can be replaced without touching futures or combinators.
 *
 * Design. One FIFO run queue per pool, linked through the futures' next
 * fields and guarded by the pool's mutex; idle workers sleep on one
 * condition variable and a submission wakes one of them only if one is
 * idle. A worker that exits puts itself on the pool's exited list, and
 * whoever next starts a thread, or pool_destroy(), joins it: pool_destroy()
 * returns only once every thread has ended.
 *
 * Capacity. A pool keeps ncore threads able to run tasks. A worker that
 * blocks in future_wait() no longer counts (nblocked), and if that leaves
 * fewer than ncore the pool starts a stand-in thread, so a task waiting on
 * work queued behind it never deadlocks, even with one thread. Threads beyond
 * ncore that stay idle for idle_ns exit. If no stand-in can be started, the
 * waiter runs queued tasks itself (FUT_BLOCK_HELP).
 *
 * States, under the pool lock:
 *
 *   OPEN --pool_shutdown(DRAIN)--> DRAINING --queue empty, all idle--> STOPPED
 *     \--pool_shutdown(CANCEL)--> CANCELLED (queue emptied, running tasks
 * finish)
 *
 * OPEN accepts submissions; OPEN and DRAINING accept continuations; in
 * CANCELLED and STOPPED continuations go to the default pool instead, so
 * nothing scheduled is ever dropped. Workers exit in CANCELLED and STOPPED
 * once they find no work.
 *
 * References to a pool: its creator's, one per live worker, one per future
 * whose exec it is. The memory goes with the last. A pool destroyed from
 * one of its own tasks cannot join that thread: its workers then detach
 * themselves as they exit, and their references keep the pool alive.
 *
 * Lock order: a pool lock may be taken with no other lock held, and a
 * worker never holds it while running a future.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

enum pool_state { POOL_OPEN, POOL_DRAINING, POOL_CANCELLED, POOL_STOPPED };

#define MAX_THREADS     4096
#define DEFAULT_IDLE_NS (10 * UINT64_C(1000000000))

struct worker {
    pthread_t thread;
    pool_t *pool;
    struct worker *next; /* on the pool's exited list */
};

struct pool {
    struct fut__exec exec;
    atomic_uint refs;
    pthread_mutex_t lock;
    pthread_cond_t work;  /* idle workers wait here */
    pthread_cond_t ended; /* pool_destroy() waits here for nlive == 0 */
    future_t *head, *tail;
    int state; /* enum pool_state */
    bool is_default;
    size_t ncore;          /* threads the pool keeps able to run tasks */
    size_t nlive;          /* threads alive */
    size_t nidle;          /* threads waiting for work */
    size_t nblocked;       /* threads blocked in future_wait() */
    unsigned id;           /* for thread names and traces */
    unsigned next_id;      /* for thread names */
    struct worker *exited; /* ended, not joined yet */
    bool detach_exits;     /* destroyed from inside: nobody will join */
    uint64_t idle_ns;      /* how long a surplus thread lingers */
};

static _Thread_local pool_t *current_pool; /* the pool this thread works for */

static _Atomic(pool_t *) default_pool;
static atomic_uint pool_ids;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------------- references -- */

static void pool_free(pool_t *p)
{
    pthread_cond_destroy(&p->ended);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    fut__mem_free(p);
}

static void pool_retain(pool_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

static void pool_release(pool_t *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        pool_free(p);
}

static void lock(pool_t *p)
{
    if (pthread_mutex_lock(&p->lock))
        fut__panic("pool lock failed");
}

static void unlock(pool_t *p)
{
    if (pthread_mutex_unlock(&p->lock))
        fut__panic("pool unlock failed");
}

/* ----------------------------------------------------------- the queue -- */

static void push_locked(pool_t *p, future_t *f)
{
    f->next = NULL;
    if (p->tail)
        p->tail->next = f;
    else
        p->head = f;
    p->tail = f;
    if (p->nidle)
        pthread_cond_signal(&p->work);
}

static future_t *pop_locked(pool_t *p)
{
    future_t *f = p->head;
    if (f) {
        p->head = f->next;
        if (!p->head)
            p->tail = NULL;
    }
    return f;
}

/* --------------------------------------------------------- the workers -- */

static int start_worker_locked(pool_t *p);

/* Threads beyond ncore that are able to run tasks. */
static bool surplus_locked(const pool_t *p)
{
    return p->nlive - p->nblocked > p->ncore;
}

/*
 * Waits for work with the lock held. Returns false when this thread should
 * exit: the pool has stopped, or it is surplus and stayed idle for idle_ns.
 */
static bool wait_for_work_locked(pool_t *p)
{
    if (p->state == POOL_DRAINING && p->nidle + 1 == p->nlive) {
        p->state = POOL_STOPPED; /* nothing queued, nobody running */
        pthread_cond_broadcast(&p->work);
    }
    if (p->state == POOL_CANCELLED || p->state == POOL_STOPPED)
        return false;

    int rc = 0;
    p->nidle++;
    if (surplus_locked(p)) {
        struct timespec deadline;
        fut__deadline(&deadline, p->idle_ns);
        rc = pthread_cond_timedwait(&p->work, &p->lock, &deadline);
    } else {
        pthread_cond_wait(&p->work, &p->lock);
    }
    p->nidle--;
    return !(rc == ETIMEDOUT && !p->head && surplus_locked(p));
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    pool_t *p = self->pool;
    current_pool = p;

    lock(p);
    char name[16];
    snprintf(name, sizeof name, "futures-%u.%u", p->id, p->next_id++);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        future_t *f = pop_locked(p);
        if (f) {
            unlock(p);
            fut__run(f);
            future_release(f); /* the run queue's reference */
            lock(p);
        } else if (!wait_for_work_locked(p)) {
            break;
        }
    }
    if (p->detach_exits) {
        pthread_detach(pthread_self());
        fut__mem_free(self);
    } else {
        self->next = p->exited;
        p->exited = self;
    }
    if (--p->nlive == 0)
        pthread_cond_broadcast(&p->ended);
    unlock(p);
    pool_release(p);
    return NULL;
}

/* Joins the threads on @list, which have ended or are about to. */
static void join_all(struct worker *list)
{
    while (list) {
        struct worker *next = list->next;
        pthread_join(list->thread, NULL);
        fut__mem_free(list);
        list = next;
    }
}

static struct worker *take_exited_locked(pool_t *p)
{
    struct worker *list = p->exited;
    p->exited = NULL;
    return list;
}

/*
 * Starts one more worker; the pool lock is held. Returns 0 or an errno.
 * Joins retired threads on the way: they have ended, so it cannot block.
 */
static int start_worker_locked(pool_t *p)
{
    join_all(take_exited_locked(p));
    struct worker *w = fut__calloc(sizeof *w);
    if (!w)
        return ENOMEM;
    w->pool = p;
    pool_retain(p); /* the worker's */
    p->nlive++;
    int rc = fut__thread_start(&w->thread, worker_main, w);
    if (rc) {
        p->nlive--;
        atomic_fetch_sub(&p->refs, 1); /* the creator's remains */
        fut__mem_free(w);
    }
    return rc;
}

/* --------------------------------------------------- the executor side -- */

static pool_t *pool_of(struct fut__exec *exec)
{
    return fut__container_of(exec, pool_t, exec);
}

static void exec_retain(struct fut__exec *exec)
{
    pool_retain(pool_of(exec));
}

static void exec_release(struct fut__exec *exec)
{
    pool_release(pool_of(exec));
}

/* Queues @f on @p if @p still runs tasks; returns false if it does not. */
static bool try_push(pool_t *p, future_t *f)
{
    lock(p);
    bool runs = p->state == POOL_OPEN || p->state == POOL_DRAINING;
    if (runs)
        push_locked(p, f);
    unlock(p);
    return runs;
}

/*
 * The default pool takes what a shut-down pool cannot run. If even it cannot
 * be started, the future fails with the reason rather than being lost.
 */
static void schedule_on_default(future_t *f)
{
    pool_t *d = pool_default();
    if (d && try_push(d, f))
        return;
    fut__settle(f, d ? ESHUTDOWN : errno, NULL);
    future_release(f); /* the run queue's reference */
}

static void exec_schedule(struct fut__exec *exec, future_t *f)
{
    if (!try_push(pool_of(exec), f))
        schedule_on_default(f);
}

static const struct fut__exec_ops pool_exec_ops = {exec_schedule, exec_retain,
                                                   exec_release};

/* Hands a QUEUED future, with the run queue's reference, to its executor. */
void fut__schedule(future_t *f)
{
    if (f->exec)
        f->exec->ops->schedule(f->exec, f);
    else
        schedule_on_default(f);
}

/* --------------------------------------------------------------- tasks -- */

struct task {
    future_t base;
    task_fn fn;
    void *arg;
};

static int run_task(future_t *f, void **result)
{
    struct task *t = fut__container_of(f, struct task, base);
    return t->fn(t->arg, result);
}

static const struct fut__ops task_ops = {"task", run_task, NULL};

/* ------------------------------------------------------ the public API -- */

static size_t online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

static pool_t *pool_alloc(size_t nthreads)
{
    pool_t *p = fut__calloc(sizeof *p);
    if (!p)
        return NULL;
    if (fut__mutex_init(&p->lock)) {
        fut__mem_free(p);
        errno = ENOMEM;
        return NULL;
    }
    if (fut__cond_init(&p->work) || fut__cond_init(&p->ended)) {
        pthread_mutex_destroy(&p->lock);
        fut__mem_free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->exec.ops = &pool_exec_ops;
    p->id = atomic_fetch_add(&pool_ids, 1) + 1;
    atomic_init(&p->refs, 1);
    p->ncore = nthreads;
    p->idle_ns = DEFAULT_IDLE_NS;
    return p;
}

pool_t *pool_create(size_t nthreads)
{
    if (nthreads > MAX_THREADS) {
        errno = EINVAL;
        return NULL;
    }
    pool_t *p = pool_alloc(nthreads ? nthreads : online_cpus());
    if (!p)
        return NULL;
    lock(p);
    int rc = 0;
    while (p->nlive < p->ncore && (rc = start_worker_locked(p)) == 0)
        ;
    if (p->nlive > 0 && p->nlive < p->ncore)
        p->ncore = p->nlive; /* run with the threads we got */
    bool none = p->nlive == 0;
    unlock(p);
    if (none) {
        pool_free(p);
        errno = rc;
        return NULL;
    }
    return p;
}

future_t *pool_submit(pool_t *pool, task_fn fn, void *arg)
{
    if (!pool || !fn) {
        errno = EINVAL;
        return NULL;
    }
    /* Two references: the caller's and the run queue's. */
    struct task *t =
        (struct task *)fut__new(sizeof *t, &task_ops, FUT_QUEUED, 2);
    if (!t)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    fut__set_exec(&t->base, &pool->exec);
    future_t *f = &t->base;
    lock(pool);
    bool open = pool->state == POOL_OPEN;
    if (open)
        push_locked(pool, f);
    unlock(pool);
    if (!open) {
        fut__free(f); /* never seen by anyone */
        errno = ESHUTDOWN;
        return NULL;
    }
    return f;
}

/* Settles every future in the list @f with ECANCELED. */
static void cancel_all(future_t *f)
{
    while (f) {
        future_t *next = f->next;
        future_cancel(f);
        future_release(f); /* the run queue's reference */
        f = next;
    }
}

void pool_shutdown(pool_t *pool, int mode)
{
    if (!pool || pool->is_default)
        return;
    future_t *cancelled = NULL;
    lock(pool);
    if (pool->state == POOL_OPEN) {
        pool->state = mode == POOL_CANCEL ? POOL_CANCELLED : POOL_DRAINING;
        if (mode == POOL_CANCEL) {
            cancelled = pool->head;
            pool->head = pool->tail = NULL;
        }
        pthread_cond_broadcast(&pool->work);
    }
    unlock(pool);
    cancel_all(cancelled);
}

void pool_destroy(pool_t *pool)
{
    if (!pool || pool->is_default)
        return;
    pool_shutdown(pool, POOL_DRAIN);
    struct worker *ended;
    if (current_pool == pool) {
        lock(pool);
        pool->detach_exits = true; /* this thread cannot join itself */
        ended = take_exited_locked(pool);
        unlock(pool);
    } else {
        /* A task of another pool may be the one waiting: count it as
         * blocked there, so that pool keeps its capacity. */
        enum fut__block how = fut__block_begin();
        lock(pool);
        while (pool->nlive > 0)
            pthread_cond_wait(&pool->ended, &pool->lock);
        ended = take_exited_locked(pool);
        unlock(pool);
        fut__block_end(how);
    }
    join_all(ended);
    pool_release(pool); /* the creator's */
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

/* ---------------------------------------------- blocking inside a task -- */

enum fut__block fut__block_begin(void)
{
    pool_t *p = current_pool;
    if (!p)
        return FUT_BLOCK_PLAIN;
    enum fut__block how = FUT_BLOCK_COMPENSATED;
    lock(p);
    p->nblocked++;
    bool runs = p->state == POOL_OPEN || p->state == POOL_DRAINING;
    if (runs && p->nlive - p->nblocked < p->ncore &&
        start_worker_locked(p) != 0) {
        p->nblocked--;
        how = FUT_BLOCK_HELP;
    }
    unlock(p);
    return how;
}

void fut__block_end(enum fut__block how)
{
    if (how != FUT_BLOCK_COMPENSATED)
        return;
    pool_t *p = current_pool;
    lock(p);
    p->nblocked--;
    unlock(p);
}

unsigned fut__pool_id_of_thread(void)
{
    return current_pool ? current_pool->id : 0;
}

/* Runs one task queued on this thread's pool; returns false if none was. */
bool fut__help_one(void)
{
    pool_t *p = current_pool;
    lock(p);
    future_t *f = pop_locked(p);
    unlock(p);
    if (!f)
        return false;
    fut__run(f);
    future_release(f);
    return true;
}
