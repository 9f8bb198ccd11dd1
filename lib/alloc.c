/*
 * alloc.c - every allocation and every thread start in the library.
 *
 * Routing them through one function each lets tests make the N-th call fail
 * (as SQLite's sqlite3FaultSim does), so every error path can be exercised:
 * fut__fault_set() arms a countdown per site. Disarmed, the cost is one
 * relaxed atomic load.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

struct fault {
    atomic_long countdown; /* 0 = off; 1 = the next call fails */
    atomic_bool persistent;
    atomic_long fired; /* calls failed so far */
};

static struct fault faults[FUT_FAULT_NSITES];

void fut__fault_set(enum fut__fault_site site, long nth, bool persistent)
{
    atomic_store(&faults[site].persistent, persistent);
    atomic_store(&faults[site].countdown, nth);
}

/* How many calls at @site have been made to fail, so a test can tell
 * whether its workload reached the N-th call. */
long fut__fault_fired(enum fut__fault_site site)
{
    return atomic_load(&faults[site].fired);
}

static bool fault_hit(enum fut__fault_site site)
{
    struct fault *f = &faults[site];
    long n = atomic_load_explicit(&f->countdown, memory_order_relaxed);
    while (n > 0) {
        long next = n - 1;
        if (n == 1 && atomic_load(&f->persistent))
            next = 1; /* stay at "the next call fails" */
        if (atomic_compare_exchange_weak(&f->countdown, &n, next)) {
            if (n == 1)
                atomic_fetch_add(&f->fired, 1);
            return n == 1;
        }
    }
    return false;
}

void *fut__calloc(size_t size)
{
    if (fault_hit(FUT_FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = calloc(1, size);
    if (!p)
        errno = ENOMEM;
    return p;
}

void fut__mem_free(void *p)
{
    free(p);
}

/* Like fut__calloc(), and fails at the same fault site whether or not
 * slab.c's caches can serve it, so tests reach the same failures. */
void *fut__future_calloc(size_t size, unsigned *cls)
{
    if (fault_hit(FUT_FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = fut__slab_alloc(size, cls);
    if (!p)
        errno = ENOMEM;
    return p;
}

/*
 * Starts a thread with every signal blocked, so that signals go to the
 * application's own threads (as libuv's threadpool does). Returns 0 or the
 * error of pthread_create().
 */
int fut__thread_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    if (fault_hit(FUT_FAULT_THREAD))
        return EAGAIN;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(tid, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
