/*
 * compose_race.c - the composition calls under contention, for TSan and
 * valgrind:
 *
 *   recursion        compose loops of 200 steps over pool tasks, each step
 *                    forwarding the relay it returns while that relay's
 *                    step may already run on the other worker; the loop's
 *                    value must be exact.
 *   cancel_midway    the same loops, cancelled from another thread at a
 *                    random step: the result is ECANCELED or the full
 *                    count, and every future is freed either way (valgrind
 *                    and the live count judge).
 *   completion       four threads take 2,000 futures per round from one
 *                    completion queue while two pools settle them: each
 *                    comes back exactly once.
 *   via_shutdown     future_then_via on a pool that shuts down while the
 *                    input settles: ESHUTDOWN without running, or a run.
 */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

struct loop {
    pool_t *pool;
    uintptr_t steps;
};

static int plus_one(void *arg, void **result)
{
    *result = U2P(P2U(arg) + 1);
    return 0;
}

static future_t *next_step(void *value, void *arg)
{
    struct loop *l = arg;
    if (P2U(value) == l->steps)
        return future_resolved(value);
    future_t *next = pool_submit(l->pool, plus_one, value);
    if (!next)
        return NULL;
    future_t *r = future_compose(next, next_step, l);
    future_release(next);
    return r;
}

static future_t *start_loop(struct loop *l)
{
    future_t *first = future_resolved(U2P(0));
    future_t *r = future_compose(first, next_step, l);
    future_release(first);
    return r;
}

static void recursion(pool_t *pool, long n)
{
    struct loop l = {pool, 200};
    for (long i = 0; i < n; i++) {
        future_t *r = start_loop(&l);
        void *v = NULL;
        CHECK(future_wait(r, &v) == 0 && P2U(v) == l.steps, "round %ld", i);
        future_release(r);
    }
    printf("recursion      %ld loops of %lu steps\n", n,
           (unsigned long)l.steps);
}

struct canceller {
    future_t *target; /* written before go, read after it */
    atomic_int go;
    uint32_t seed;
};

static void *cancel_when_told(void *arg)
{
    struct canceller *c = arg;
    int seen = 0;
    for (;;) {
        int go; /* a round's number, -1 to stop, or -round - 1: done */
        while ((go = atomic_load(&c->go)) != -1 && go <= seen)
            sched_yield();
        if (go == -1)
            return NULL;
        seen = go;
        for (uint32_t spin = next_random(&c->seed) % 20000; spin; spin--)
            atomic_signal_fence(memory_order_seq_cst);
        future_cancel(c->target);
        atomic_store(&c->go, -seen - 1); /* done with it */
    }
}

static void cancel_midway(pool_t *pool, long n)
{
    struct loop l = {pool, 200};
    struct canceller c = {.seed = 12345};
    pthread_t t;
    pthread_create(&t, NULL, cancel_when_told, &c);
    long cancelled = 0, finished = 0;
    for (long i = 0; i < n; i++) {
        future_t *r = start_loop(&l);
        c.target = r;
        atomic_store(&c.go, (int)i + 1);
        void *v = NULL;
        int error = future_wait(r, &v);
        CHECK(error == ECANCELED || (error == 0 && P2U(v) == l.steps),
              "round %ld: %d", i, error);
        cancelled += error != 0;
        finished += error == 0;
        while (atomic_load(&c.go) != -(int)i - 2)
            sched_yield(); /* the canceller has let go of r */
        future_release(r);
    }
    atomic_store(&c.go, -1);
    pthread_join(t, NULL);
    printf("cancel_midway  %ld loops: %ld cancelled, %ld finished\n", n,
           cancelled, finished);
}

struct taker {
    completion_t *c;
    atomic_int *seen; /* per future index */
    long taken;
};

static void *take(void *arg)
{
    struct taker *t = arg;
    future_t *f;
    while ((f = completion_next(t->c, UINT64_MAX)) != NULL) {
        void *v;
        CHECK(future_wait(f, &v) == 0, "a taken future failed");
        atomic_fetch_add(&t->seen[P2U(v)], 1);
        t->taken++;
        future_release(f);
    }
    CHECK(errno == ENOENT, "next: %s", strerror(errno));
    return NULL;
}

static int identity(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static void completion(pool_t *a, pool_t *b, long rounds_n)
{
    enum { N = 2000, T = 4 };
    atomic_int *seen = calloc(N, sizeof *seen);
    for (long r = 0; r < rounds_n; r++) {
        completion_t *c = completion_create();
        for (int i = 0; i < N; i++) {
            atomic_store(&seen[i], 0);
            future_t *f = pool_submit(i % 2 ? a : b, identity, U2P(i));
            CHECK(f && completion_add(c, f) == 0, "add");
            future_release(f);
        }
        struct taker t[T];
        for (int i = 0; i < T; i++)
            t[i] = (struct taker){c, seen, 0};
        run_threads(T, take, t, sizeof t[0]);
        for (int i = 0; i < N; i++)
            CHECK(atomic_load(&seen[i]) == 1, "round %ld: future %d came %d times",
                  r, i, atomic_load(&seen[i]));
        completion_release(c);
    }
    free(seen);
    printf("completion     %ld rounds of %d futures, 4 takers\n", rounds_n,
           (int)N);
}

static atomic_long via_runs;
static int count_run(void *value, void *arg, void **result)
{
    (void)value, (void)arg, (void)result;
    atomic_fetch_add(&via_runs, 1);
    return 0;
}

static void *shut(void *arg)
{
    pool_shutdown(arg, POOL_DRAIN);
    return NULL;
}

static void via_shutdown(long n)
{
    long refused = 0, ran = 0;
    uint32_t seed = 777;
    for (long i = 0; i < n; i++) {
        pool_t *pool = pool_create(1);
        promise_t *p = promise_create();
        future_t *in = promise_future(p);
        future_t *c = future_then_via(in, pool, count_run, NULL);
        long before = atomic_load(&via_runs);
        pthread_t t;
        pthread_create(&t, NULL, shut, pool);
        /* Settle before the shutdown, or after, or while it happens. */
        for (uint32_t spin = next_random(&seed) % 200000; spin; spin--)
            atomic_signal_fence(memory_order_seq_cst);
        promise_resolve(p, NULL);
        int error = future_wait(c, NULL);
        CHECK(error == 0 || error == ESHUTDOWN, "round %ld: %d", i, error);
        CHECK(atomic_load(&via_runs) - before == (error == 0), "round %ld", i);
        refused += error != 0;
        ran += error == 0;
        pthread_join(t, NULL);
        future_release(c);
        future_release(in);
        promise_release(p);
        pool_destroy(pool);
    }
    printf("via_shutdown   %ld rounds: %ld refused, %ld ran\n", n, refused,
           ran);
}

int main(void)
{
    bool light = getenv("STRESS_LIGHT") != NULL;
    pool_t *a = pool_create(2), *b = pool_create(2);
    recursion(a, rounds(light ? 20 : 200));
    cancel_midway(a, rounds(light ? 50 : 500));
    completion(a, b, rounds(light ? 3 : 20));
    via_shutdown(rounds(light ? 50 : 500));
    pool_destroy(a);
    pool_destroy(b);
    return 0;
}
