/*
 * pool.c - the public face of pools: creating, submitting, settings and
 * statistics, the default pool. pool_end.c shuts pools down and destroys
 * them, pool_exec.c is what the core sees of a pool, and the files below
 * them (pool_internal.h) run the threads.
 *
 * A submitted task is a bare future (task.c): one 56-byte allocation. It
 * starts QUEUED with two references, the caller's and the run queue's. A
 * submission the pool refuses is freed before anyone could see it, so a
 * failed call has consumed nothing.
 */
#include "pool_internal.h"

#include <errno.h>
#include <unistd.h>

#define MAX_THREADS          4096
#define MAX_BLOCKING_THREADS 65536
#define DEFAULT_BLOCKING     512
#define DEFAULT_IDLE_NS      (10 * UINT64_C(1000000000))

static atomic_uint pool_ids;

/* The default pool: made on first use, never shut down (pool_default). */
static _Atomic(pool_t *) default_pool;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

struct offloaded {
    void (*fn)(void *);
    void *arg;
};

static size_t online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* Core threads' rings a pool can have: its own threads, and stand-ins
 * for those blocked in future_wait(). Past that, a blocked thread's pool
 * gets no stand-in and the waiter helps instead (worker.c). */
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
    if ((rc = fut__mutex_init(&p->inject.lock)) != 0)
        goto no_inject;
    if ((rc = fut__cond_init(&p->work)) != 0)
        goto no_work;
    if ((rc = fut__cond_init(&p->blocking.work)) != 0)
        goto no_blocking;
    if ((rc = fut__cond_init(&p->ended)) == 0)
        return 0;
    pthread_cond_destroy(&p->blocking.work);
no_blocking:
    pthread_cond_destroy(&p->work);
no_work:
    pthread_mutex_destroy(&p->inject.lock);
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
    p->locked.ncore = nthreads;
    p->blocking.limit = DEFAULT_BLOCKING;
    p->locked.idle_ns = DEFAULT_IDLE_NS;
    fut__pools_add(p);
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
    while (p->locked.nlive < p->locked.ncore &&
           (rc = fut__start_core_locked(p)) == 0)
        ;
    if (p->locked.nlive > 0 && p->locked.nlive < p->locked.ncore)
        p->locked.ncore = p->locked.nlive; /* run with the threads we got */
    bool none = p->locked.nlive == 0;
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

static future_t *submit_owned(pool_t *pool, task_fn fn, void *arg,
                              void (*arg_free)(void *), bool blocking)
{
    if (!arg_free)
        return submit(pool, fn, arg, blocking);
    if (!pool || !fn) {
        arg_free(arg); /* not accepted: the argument is done with */
        errno = EINVAL;
        return NULL;
    }
    future_t *f = fut__owned_task_new(fn, arg, arg_free, &pool->exec);
    return f ? submit_task(pool, f, blocking) : NULL; /* frees if refused */
}

future_t *pool_submit_ex(pool_t *pool, task_fn fn, void *arg,
                         void (*arg_free)(void *))
{
    return submit_owned(pool, fn, arg, arg_free, false);
}

future_t *pool_submit_blocking_ex(pool_t *pool, task_fn fn, void *arg,
                                  void (*arg_free)(void *))
{
    return submit_owned(pool, fn, arg, arg_free, true);
}

/* ---------------------------------------------------- continuations -- */

future_t *future_then_via(future_t *f, pool_t *pool, then_fn fn, void *arg)
{
    if (!pool) {
        errno = EINVAL;
        return NULL;
    }
    return fut__continue(f, &pool->exec,
                         &(struct fut__callback){.then = fn, .arg = arg});
}

future_t *future_catch_via(future_t *f, pool_t *pool, catch_fn fn, void *arg)
{
    if (!pool) {
        errno = EINVAL;
        return NULL;
    }
    return fut__continue(f, &pool->exec,
                         &(struct fut__callback){
                             .when = FUT_ON_FAILURE, .catch_ = fn, .arg = arg});
}

/* ------------------------------------------------ settings, statistics -- */

int pool_set_blocking_limit(pool_t *pool, size_t limit)
{
    if (!pool || limit == 0 || limit > MAX_BLOCKING_THREADS)
        return EINVAL;
    if (fut__pool_is_stale(pool))
        return ECHILD;
    fut__pool_lock(pool);
    pool->blocking.limit = limit;
    pthread_cond_broadcast(&pool->blocking.work); /* surplus ones exit */
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
    pool->locked.idle_ns = ns;
    pthread_cond_broadcast(&pool->work); /* restart timed waits */
    pthread_cond_broadcast(&pool->blocking.work);
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
    fut__pool_counts_locked(pool, &queued, &running, &completed);
    *out = (struct pool_stats){
        .threads = pool->locked.nlive + pool->blocking.live,
        .peak_threads = pool->locked.peak,
        .blocking_threads = pool->blocking.live,
        .queued = queued,
        .running = running,
        .completed = completed,
    };
    fut__pool_unlock(pool);
    return 0;
}

/* fork(): the parent's default pool has no threads in the child, which
 * makes its own on first use (the old one is left as it is: its locks
 * may have been held when the parent forked). */
void fut__pool_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        fut__mutex_lock(&default_lock);
        fut__pools_fork(phase);
        return;
    }
    fut__pools_fork(phase);
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

/* Takes the default pool away (futures_shutdown): the next pool_default()
 * makes a new one. */
pool_t *fut__default_pool_take(void)
{
    fut__mutex_lock(&default_lock);
    pool_t *p = atomic_exchange(&default_pool, NULL);
    fut__mutex_unlock(&default_lock);
    return p;
}

/* ------------------------------------------------ the default executor -- */

static struct fut__exec *default_exec(void)
{
    pool_t *p = pool_default();
    return p ? &p->exec : NULL;
}

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
