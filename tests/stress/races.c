/*
 * races.c - the races a futures library must win, many times over, for
 * ThreadSanitizer: a continuation registered while its future completes,
 * a cancel while the task starts, a release right after a wait, a promise
 * settled from many threads at once, when_all/when_any over futures that
 * settle as they are watched.
 */
#include "common.h"

#include <errno.h>

static pool_t *pool;
static atomic_long then_runs, task_runs;

static int task(void *arg, void **result)
{
    atomic_fetch_add(&task_runs, 1);
    *result = arg;
    return 0;
}

static int plus_one(void *value, void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&then_runs, 1);
    *result = U2P(P2U(value) + 1);
    return 0;
}

/* then registered while the task may be finishing. */
static void register_while_completing(long n)
{
    for (long i = 0; i < n; i++) {
        future_t *f = pool_submit(pool, task, U2P(i));
        future_t *g = future_then(f, plus_one, NULL);
        void *v;
        CHECK(future_wait(g, &v) == 0 && v == U2P(i + 1), "round %ld", i);
        future_release(f);
        future_release(g);
    }
}

/* cancel racing the worker that starts the task. */
static void cancel_while_starting(long n)
{
    for (long i = 0; i < n; i++) {
        future_t *f = pool_submit(pool, task, U2P(i));
        bool cancelled = future_cancel(f);
        int rc = future_wait(f, NULL);
        CHECK(cancelled ? rc == ECANCELED : rc == 0,
              "round %ld: cancelled %d rc %d", i, cancelled, rc);
        future_release(f);
    }
}

/* The waiter releases the instant future_wait returns, while the worker
 * that settled the future may still be touching it. */
static void release_after_wait(long n)
{
    for (long i = 0; i < n; i++) {
        future_t *f = pool_submit(pool, task, U2P(i));
        future_t *g = future_then(f, plus_one, NULL);
        future_release(f);
        CHECK(future_wait(g, NULL) == 0, "round %ld", i);
        future_release(g);
    }
}

struct settle_arg {
    promise_t **promises;
    long n;
    atomic_long *wins;
    pthread_barrier_t *barrier;
};

static void *settle_all(void *arg)
{
    struct settle_arg *a = arg;
    for (long i = 0; i < a->n; i++) {
        pthread_barrier_wait(a->barrier);
        int rc = (i & 1) ? promise_resolve(a->promises[i], U2P(i))
                         : promise_reject(a->promises[i], EIO);
        CHECK(rc == 0 || rc == EALREADY, "rc %d", rc);
        if (rc == 0)
            atomic_fetch_add(a->wins, 1);
    }
    return NULL;
}

/* 8 threads settle each promise at once; exactly one wins each. */
static void promise_from_eight_threads(long n)
{
    enum { T = 8 };
    promise_t **ps = calloc((size_t)n, sizeof *ps);
    future_t **gs = calloc((size_t)n, sizeof *gs);
    for (long i = 0; i < n; i++) {
        ps[i] = promise_create();
        future_t *f = promise_future(ps[i]);
        gs[i] = future_then(f, plus_one, NULL);
        future_release(f);
    }
    atomic_long wins = 0;
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, T);
    struct settle_arg args[T];
    for (int t = 0; t < T; t++)
        args[t] = (struct settle_arg){ps, n, &wins, &barrier};
    run_threads(T, settle_all, args, sizeof args[0]);
    CHECK(atomic_load(&wins) == n, "%ld winners for %ld promises",
          atomic_load(&wins), n);
    for (long i = 0; i < n; i++) {
        int rc = future_wait(gs[i], NULL);
        CHECK(rc == ((i & 1) ? 0 : EIO), "promise %ld: %d", i, rc);
        future_release(gs[i]);
        promise_release(ps[i]);
    }
    pthread_barrier_destroy(&barrier);
    free(ps);
    free(gs);
}

/* Combinators armed while their inputs settle on other threads. */
static void combinators_while_settling(long n)
{
    for (long i = 0; i < n; i++) {
        future_t *fs[4];
        for (int k = 0; k < 4; k++)
            fs[k] = pool_submit(pool, task, U2P(k));
        future_t *all = when_all(fs, 4), *any = when_any(fs, 4);
        future_cancel(i % 5 == 0 ? any : NULL);
        void *v;
        CHECK(future_wait(all, NULL) == 0, "when_all round %ld", i);
        int rc = future_wait(any, &v);
        CHECK(rc == ECANCELED || (rc == 0 && P2U(v) < 4),
              "when_any round %ld: %d", i, rc);
        future_release(all);
        future_release(any);
        for (int k = 0; k < 4; k++)
            future_release(fs[k]);
    }
}

struct worker_arg {
    int id;
    long n;
};

static void *mixed(void *arg)
{
    struct worker_arg *a = arg;
    switch (a->id % 4) {
    case 0:
        register_while_completing(a->n);
        break;
    case 1:
        cancel_while_starting(a->n);
        break;
    case 2:
        release_after_wait(a->n);
        break;
    default:
        combinators_while_settling(a->n / 4);
        break;
    }
    return NULL;
}

int main(void)
{
    long n = rounds(2000);
    pool = pool_create(2);
    CHECK(pool, "pool_create");

    struct worker_arg args[8];
    for (int i = 0; i < 8; i++)
        args[i] = (struct worker_arg){i, n};
    run_threads(8, mixed, args, sizeof args[0]);
    promise_from_eight_threads(n / 4);

    pool_destroy(pool);
    printf(
        "races: %ld rounds per thread, %ld tasks and %ld continuations ran\n",
        n, atomic_load(&task_runs), atomic_load(&then_runs));
    return 0;
}
