/*
 * spec_helpers.h - shared helpers for the black-box spec_* test suites.
 *
 * Only static inline functions: every tests/unit C file is linked into one
 * binary. Synchronisation is done with gates and semaphores, never sleeps.
 */
#ifndef SPEC_HELPERS_H
#define SPEC_HELPERS_H

#include <criterion/criterion.h>
#include <futures.h>

#include "helpers.h" /* CheckedTest() */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_MS ((uint64_t)1000000u)

/* ------------------------------------------------------------- gate -- */

/* A one-shot barrier: waiters block until the test opens it. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} spec_gate_t;

static inline void spec_gate_init(spec_gate_t *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = false;
}

static inline void spec_gate_open(spec_gate_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static inline void spec_gate_wait(spec_gate_t *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static inline void spec_gate_destroy(spec_gate_t *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* ------------------------------------------------------- semaphores -- */

static inline void spec_sem_wait(sem_t *s)
{
    while (sem_wait(s) != 0 && errno == EINTR) {
    }
}

static inline void spec_sem_wait_n(sem_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        spec_sem_wait(s);
}

/* ---------------------------------------------------------- blocker -- */

/*
 * A blocker task: it counts itself, posts `started`, blocks on `gate`, then
 * records whether task_cancelled() was true and succeeds with the blocker's
 * address as value.
 */
typedef struct {
    spec_gate_t gate;
    sem_t started;
    atomic_int ran;
    atomic_int saw_cancel;
} spec_blocker_t;

static inline void spec_blocker_init(spec_blocker_t *b)
{
    spec_gate_init(&b->gate);
    sem_init(&b->started, 0, 0);
    atomic_init(&b->ran, 0);
    atomic_init(&b->saw_cancel, 0);
}

static inline void spec_blocker_destroy(spec_blocker_t *b)
{
    sem_destroy(&b->started);
    spec_gate_destroy(&b->gate);
}

static inline int spec_block_task(void *arg, void **result)
{
    spec_blocker_t *b = arg;
    atomic_fetch_add(&b->ran, 1);
    sem_post(&b->started);
    spec_gate_wait(&b->gate);
    if (task_cancelled())
        atomic_fetch_add(&b->saw_cancel, 1);
    *result = b;
    return 0;
}

/*
 * Occupy every one of the @n threads of @p with a blocker and wait until all
 * of them run: anything submitted to @p afterwards is known to be queued.
 */
static inline void spec_saturate(pool_t *p, spec_blocker_t *b, future_t **out,
                                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = pool_submit(p, spec_block_task, b);
        cr_assert_not_null(out[i], "pool_submit failed: errno %d", errno);
    }
    spec_sem_wait_n(&b->started, n);
}

/* ------------------------------------------------------ small tasks -- */

/* Succeeds with arg as value. */
static inline int spec_value_task(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* Fails with the error (int)(intptr_t)arg. */
static inline int spec_error_task(void *arg, void **result)
{
    (void)result;
    return (int)(intptr_t)arg;
}

/* Increments the atomic_int at arg and succeeds with arg as value. */
static inline int spec_count_task(void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = arg;
    return 0;
}

/* then_fn: increments the atomic_int at arg, passes the value through. */
static inline int spec_count_then(void *value, void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = value;
    return 0;
}

/* catch_fn: increments the atomic_int at arg, keeps the error. */
static inline int spec_count_catch(int error, void *arg, void **result)
{
    (void)result;
    atomic_fetch_add((atomic_int *)arg, 1);
    return error;
}

/* then_fn: value + 1 (values are integers carried in pointers). */
static inline int spec_inc_then(void *value, void *arg, void **result)
{
    (void)arg;
    *result = (void *)((uintptr_t)value + 1);
    return 0;
}

/* ------------------------------------------------------ assertions -- */

/* Assert that f succeeded with @value. */
static inline void spec_expect_value(future_t *f, void *value)
{
    void *v = (void *)(uintptr_t)0xdeadbeef;
    int rc = future_wait(f, &v);
    cr_assert_eq(rc, 0, "expected success, got error %d", rc);
    cr_assert_eq(v, value, "expected value %p, got %p", value, v);
}

/* Assert that f failed with @error. */
static inline void spec_expect_error(future_t *f, int error)
{
    int rc = future_wait(f, NULL);
    cr_assert_eq(rc, error, "expected error %d, got %d", error, rc);
}

/* Release every future of an array. */
static inline void spec_release_all(future_t **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        future_release(fs[i]);
}

/* A pool or die. */
static inline pool_t *spec_pool(size_t n)
{
    pool_t *p = pool_create(n);
    cr_assert_not_null(p, "pool_create(%zu) failed: errno %d", n, errno);
    return p;
}

/* A promise's future or die. */
static inline future_t *spec_pfuture(promise_t *p)
{
    future_t *f = promise_future(p);
    cr_assert_not_null(f, "promise_future failed: errno %d", errno);
    return f;
}

static inline promise_t *spec_promise(void)
{
    promise_t *p = promise_create();
    cr_assert_not_null(p, "promise_create failed: errno %d", errno);
    return p;
}

#endif /* SPEC_HELPERS_H */
