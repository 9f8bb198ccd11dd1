/*
 * when_any_race.c - when_any decided by another thread while it is still
 * linking its watches. Each round, a racer thread settles input 0 just as
 * when_any arms; input 1 never settles, and must be left with no watch on
 * it. The window is a few instructions wide: it takes many rounds to hit.
 */
#include "common.h"
#include "internal.h" /* to count the watches on a future */

static size_t watchers_of(future_t *f)
{
    struct fut__stripe *s = fut__lock(f); /* keeps detaches out (watch.c) */
    uintptr_t d = atomic_load(&f->deps);
    size_t n = 0;
    if (d != FUT_DEPS_CLOSED)
        for (struct fut__watch *w = (struct fut__watch *)d; w; w = w->next)
            n++;
    fut__unlock(s);
    return n;
}

struct racer {
    pthread_barrier_t go;
    promise_t **promises;
    long rounds;
};

static void *resolve_each_round(void *arg)
{
    struct racer *r = arg;
    for (long i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->go);
        promise_resolve(r->promises[i], NULL);
    }
    return NULL;
}

int main(void)
{
    /* Valgrind runs this some fifty times slower: it asks for less. */
    struct racer r = {.rounds = rounds(getenv("STRESS_LIGHT") ? 2500 : 50000)};
    r.promises = calloc((size_t)r.rounds, sizeof *r.promises);
    for (long i = 0; i < r.rounds; i++)
        r.promises[i] = promise_create();
    promise_t *never = promise_create();
    future_t *slow = promise_future(never);
    pthread_barrier_init(&r.go, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, resolve_each_round, &r);
    for (long i = 0; i < r.rounds; i++) {
        future_t *fast = promise_future(r.promises[i]);
        future_t *fs[2] = {fast, slow};
        pthread_barrier_wait(&r.go);
        future_t *any = when_any(fs, 2);
        CHECK(any != NULL, "round %ld", i);
        future_release(any);
        future_release(fast);
    }
    pthread_join(t, NULL);
    size_t left = watchers_of(slow);
    CHECK(left == 0, "%zu watches left on the never-settled input", left);
    for (long i = 0; i < r.rounds; i++)
        promise_release(r.promises[i]);
    free(r.promises);
    pthread_barrier_destroy(&r.go);
    future_release(slow);
    promise_release(never);
    printf("when_any_race: %ld rounds, no watch left behind\n", r.rounds);
    return 0;
}
