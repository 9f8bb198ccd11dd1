/*
 * pool.c - the public face of pools: creating, submitting, shutting down,
 * destroying, settings and statistics. The threads themselves are in
 * sched.c.
 *
 * A submitted task is a bare future, its function and argument kept where
 * its outcome will go (internal.h): one 56-byte allocation. It starts QUEUED
 * with two references, the caller's and the run queue's. A submission the pool
 * refuses is freed before anyone could see it, so a failed call has consumed
 * nothing.
 */
#include "internal.h"

#include <errno.h>
#include <unistd.h>

#define MAX_THREADS          4096
#define MAX_BLOCKING_THREADS 65536
#define DEFAULT_BLOCKING     512
#define DEFAULT_IDLE_NS      (10 * UINT64_C(1000000000))

/* A task is a bare future: its function and argument live in its task
 * fields until it runs, where its outcome goes after (internal.h). */
static int run_task(future_t *f, void **result)
{
    return f->task.fn(f->task.arg, result);
}

/* What failed, for reports: the task's function, which its fields still
 * hold between running and settling. */
static fut__fn task_site(const future_t *f)
{
    return (fut__fn)f->task.fn;
}

static const struct fut__ops task_ops = {
    .kind = "task", .is_task = true, .run = run_task, .site = task_site};

/*
 * A task with a destructor for its argument (pool_submit_ex). The argument
 * is kept outside the union, which the outcome overwrites, and the
 * destructor is taken with an atomic exchange wherever the task's fate is
 * decided, so it runs exactly once: after the task ran, when it is
 * cancelled before it could run (detach), or when the future goes without
 * ever having been run, as a refused submission does (destroy).
 */
struct owned_task {
    future_t base;
    void *arg;
    _Atomic(void (*)(void *)) arg_free;
};

static void free_arg_once(future_t *f)
{
    struct owned_task *t = fut__container_of(f, struct owned_task, base);
    void (*arg_free)(void *) = atomic_exchange(&t->arg_free, NULL);
    if (arg_free)
        fut__run_user(arg_free, t->arg);
}

static int run_owned_task(future_t *f, void **result)
{
    int error = f->task.fn(f->task.arg, result);
    free_arg_once(f);
    return error;
}

static const struct fut__ops owned_task_ops = {.kind = "task",
                                               .is_task = true,
                                               .run = run_owned_task,
                                               .detach = free_arg_once,
                                               .destroy = free_arg_once,
                                               .site = task_site};

static atomic_uint pool_ids;

/* A QUEUED task for @exec, with the caller's and the run queue's refs. */
future_t *fut__task_new(task_fn fn, void *arg, struct fut__exec *exec)
{
    future_t *f = fut__new(sizeof *f, &task_ops, FUT_QUEUED, 2);
    if (!f)
        return NULL;
    f->task.fn = fn;
    f->task.arg = arg;
    fut__set_exec(f, exec);
    return f;
}

/* ------------------------------------------------------ creating one -- */

void fut__pool_free(pool_t *p)
{
    size_t n = atomic_load(&p->nrings);
    for (size_t i = 0; i < n; i++)
        fut__mem_free(p->rings[i]);
    fut__mem_free(p->rings);
    pthread_mutex_destroy(&p->inject_lock);
    pthread_cond_destroy(&p->ended);
    pthread_cond_destroy(&p->blocking_work);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    fut__mem_free(p);
}

static size_t online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* Core threads' rings a pool can have: its own threads, and stand-ins
 * for those blocked in future_wait(). Past that, a blocked thread's pool
 * gets no stand-in and the waiter helps instead (sched.c). */
static size_t rings_for(size_t nthreads)
{
    return 2 * nthreads + 1024;
}

/* The pool's locks and condition variables; 0 or an errno, with none
 * left initialised on failure. */
static int init_sync(pool_t *p)
{
    int rc = fut__mutex_init(&p->lock);
    if (rc)
        return rc;
    if ((rc = fut__mutex_init(&p->inject_lock)) != 0)
        goto no_inject;
    if ((rc = fut__cond_init(&p->work)) != 0)
        goto no_work;
    if ((rc = fut__cond_init(&p->blocking_work)) != 0)
        goto no_blocking;
    if ((rc = fut__cond_init(&p->ended)) == 0)
        return 0;
    pthread_cond_destroy(&p->blocking_work);
no_blocking:
    pthread_cond_destroy(&p->work);
no_work:
    pthread_mutex_destroy(&p->inject_lock);
no_inject:
    pthread_mutex_destroy(&p->lock);
    return rc;
}

static pool_t *pool_alloc(size_t nthreads)
{
    pool_t *p = fut__calloc(sizeof *p);
    if (!p)
        return NULL;
    p->rings_cap = rings_for(nthreads);
    p->rings = fut__calloc(p->rings_cap * sizeof *p->rings);
    if (!p->rings || init_sync(p)) {
        fut__mem_free(p->rings);
        fut__mem_free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->exec.ops = &fut__pool_exec_ops;
    p->generation = fut__fork_generation();
    p->id = atomic_fetch_add(&pool_ids, 1) + 1;
    atomic_init(&p->refs, 1);
    p->ncore = nthreads;
    p->nb_limit = DEFAULT_BLOCKING;
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
    fut__pool_lock(p);
    int rc = 0;
    while (p->nlive < p->ncore && (rc = fut__start_core_locked(p)) == 0)
        ;
    if (p->nlive > 0 && p->nlive < p->ncore)
        p->ncore = p->nlive; /* run with the threads we got */
    bool none = p->nlive == 0;
    fut__pool_unlock(p);
    if (none) {
        fut__pool_free(p);
        errno = rc;
        return NULL;
    }
    return p;
}

/* ---------------------------------------------------------- submitting -- */

/* Queues @f, a new task of @pool's, or frees it and sets errno. */
static future_t *submit_task(pool_t *pool, future_t *f, bool blocking)
{
    if (fut__pool_is_stale(pool)) {
        fut__free(f); /* never seen by anyone */
        errno = ECHILD;
        return NULL;
    }
    if (!fut__submit(pool, f, blocking)) {
        fut__free(f); /* never seen by anyone */
        errno = ESHUTDOWN;
        return NULL;
    }
    return f;
}

static future_t *submit(pool_t *pool, task_fn fn, void *arg, bool blocking)
{
    if (!pool || !fn) {
        errno = EINVAL;
        return NULL;
    }
    future_t *f = fut__task_new(fn, arg, &pool->exec);
    return f ? submit_task(pool, f, blocking) : NULL;
}

future_t *pool_submit(pool_t *pool, task_fn fn, void *arg)
{
    return submit(pool, fn, arg, false);
}

future_t *pool_submit_blocking(pool_t *pool, task_fn fn, void *arg)
{
    return submit(pool, fn, arg, true);
}

future_t *pool_submit_ex(pool_t *pool, task_fn fn, void *arg,
                         void (*arg_free)(void *))
{
    if (!arg_free)
        return pool_submit(pool, fn, arg);
    int error = EINVAL;
    if (pool && fn) {
        struct owned_task *t = (struct owned_task *)fut__new(
            sizeof *t, &owned_task_ops, FUT_QUEUED, 2);
        if (t) {
            t->base.task.fn = fn;
            t->base.task.arg = t->arg = arg;
            atomic_init(&t->arg_free, arg_free);
            fut__set_exec(&t->base, &pool->exec);
            return submit_task(pool, &t->base, false); /* frees if refused */
        }
        error = errno;
    }
    arg_free(arg); /* not accepted: the argument is done with */
    errno = error;
    return NULL;
}

/* --------------------------------------------------------- shutting down -- */

/* Sets @pool's state; its lock is held, and the injection queue's lock is
 * taken too, so no submission slips into a queue already emptied. */
static void set_state_locked(pool_t *pool, int state)
{
    FUT_ASSERT_HELD(&pool->lock);
    fut__mutex_lock(&pool->inject_lock);
    atomic_store(&pool->state, state);
    fut__mutex_unlock(&pool->inject_lock);
}

void pool_shutdown(pool_t *pool, int mode)
{
    if (!pool || pool->is_default || fut__pool_is_stale(pool))
        return;
    fut__pool_lock(pool);
    bool cancel = false;
    if (pool->state == FUT_POOL_OPEN) {
        cancel = mode == POOL_CANCEL;
        set_state_locked(pool, cancel ? FUT_POOL_CANCELLED
                                      : FUT_POOL_DRAINING);
        fut__maybe_stop_locked(pool);
        pthread_cond_broadcast(&pool->work);
        pthread_cond_broadcast(&pool->blocking_work);
    }
    fut__pool_unlock(pool);
    if (cancel)
        fut__cancel_queued(pool);
}

/*
 * Waits until every thread of @pool has ended and returns them to join. A
 * task of another pool may be the one waiting: it counts as blocked there,
 * so that pool keeps its capacity, and if no stand-in thread could start it
 * runs that pool's queued work meanwhile and asks again, as future_wait()
 * does; what @pool is finishing may be waiting for that work.
 */
static struct fut__worker *wait_for_threads(pool_t *pool)
{
    enum fut__block how = fut__block_begin();
    fut__pool_lock(pool);
    while (pool->nlive + pool->nb_live > 0) {
        if (how != FUT_BLOCK_HELP) {
            pthread_cond_wait(&pool->ended, &pool->lock);
            continue;
        }
        fut__pool_unlock(pool);
        bool helped = false;
        if (fut__block_retry())
            how = FUT_BLOCK_COMPENSATED;
        else
            helped = fut__help_one();
        fut__pool_lock(pool);
        if (how == FUT_BLOCK_HELP && !helped) {
            struct timespec soon; /* new work there would not wake us */
            fut__deadline(&soon, 1000000);
            pthread_cond_timedwait(&pool->ended, &pool->lock, &soon);
        }
    }
    struct fut__worker *ended = fut__take_exited_locked(pool);
    fut__pool_unlock(pool);
    fut__block_end(how);
    return ended;
}

void pool_destroy(pool_t *pool)
{
    /* A parent's pool, in a child of fork(), is left alone: its threads
     * are not here to join and its lock may never be free again. */
    if (!pool || pool->is_default || fut__pool_is_stale(pool))
        return;
    pool_shutdown(pool, POOL_DRAIN);
    struct fut__worker *ended;
    if (fut__on_pool_thread(pool)) {
        fut__pool_lock(pool);
        pool->detach_exits = true; /* this thread cannot join itself */
        ended = fut__take_exited_locked(pool);
        fut__pool_unlock(pool);
    } else {
        ended = wait_for_threads(pool);
    }
    fut__join_all(ended);
    fut__pool_release(pool); /* the creator's */
}

/* ------------------------------------------------ settings, statistics -- */

int pool_set_blocking_limit(pool_t *pool, size_t limit)
{
    if (!pool || limit == 0 || limit > MAX_BLOCKING_THREADS)
        return EINVAL;
    if (fut__pool_is_stale(pool))
        return ECHILD;
    fut__pool_lock(pool);
    pool->nb_limit = limit;
    pthread_cond_broadcast(&pool->blocking_work); /* surplus ones exit */
    fut__pool_unlock(pool);
    return 0;
}

int pool_set_idle_timeout(pool_t *pool, uint64_t ns)
{
    if (!pool)
        return EINVAL;
    if (fut__pool_is_stale(pool))
        return ECHILD;
    fut__pool_lock(pool);
    pool->idle_ns = ns;
    pthread_cond_broadcast(&pool->work); /* restart timed waits */
    pthread_cond_broadcast(&pool->blocking_work);
    fut__pool_unlock(pool);
    return 0;
}

int pool_stats(pool_t *pool, struct pool_stats *out)
{
    if (!pool || !out)
        return EINVAL;
    if (fut__pool_is_stale(pool))
        return ECHILD;
    fut__pool_lock(pool);
    size_t queued, running;
    uint64_t completed;
    fut__pool_counts(pool, &queued, &running, &completed);
    *out = (struct pool_stats){
        .threads = pool->nlive + pool->nb_live,
        .peak_threads = pool->peak,
        .blocking_threads = pool->nb_live,
        .queued = queued,
        .running = running,
        .completed = completed,
    };
    fut__pool_unlock(pool);
    return 0;
}
