/*
 * cancel_holder_race.c - future_cancel() on a cancellable promise while
 * its holder settles it (promise_create_cancellable). Each round a racer
 * thread resolves the promise with a value just as the main thread
 * cancels its future; the holder's on_cancel rejects with ECANCELED, as
 * libfutures-mpi does once MPI confirms. Every round must end one of two
 * ways: the value won (the holder was told at most once, and its reject
 * found the promise settled), or ECANCELED won (the holder was told, and
 * the racer's resolve returned EALREADY). Never told twice, never lost.
 */
#include "common.h"

#include <errno.h>

struct round {
    promise_t *p;
    atomic_int told;
    int resolved; /* what the racer's promise_resolve() returned */
};

struct racer {
    pthread_barrier_t go;
    struct round *rounds;
    long n;
};

static void on_cancel(promise_t *p, void *arg)
{
    struct round *r = arg;
    atomic_fetch_add(&r->told, 1);
    promise_reject(p, ECANCELED);
}

static void *resolve_each_round(void *arg)
{
    struct racer *rc = arg;
    for (long i = 0; i < rc->n; i++) {
        pthread_barrier_wait(&rc->go);
        rc->rounds[i].resolved = promise_resolve(rc->rounds[i].p, U2P(7));
    }
    return NULL;
}

int main(void)
{
    struct racer rc = {.n = rounds(getenv("STRESS_LIGHT") ? 2000 : 20000)};
    rc.rounds = calloc((size_t)rc.n, sizeof *rc.rounds);
    for (long i = 0; i < rc.n; i++)
        rc.rounds[i].p = promise_create_cancellable(on_cancel, &rc.rounds[i]);
    pthread_barrier_init(&rc.go, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, resolve_each_round, &rc);
    long cancelled = 0;
    future_t **fs = calloc((size_t)rc.n, sizeof *fs);
    for (long i = 0; i < rc.n; i++) {
        fs[i] = promise_future(rc.rounds[i].p);
        pthread_barrier_wait(&rc.go);
        CHECK(!future_cancel(fs[i]), "round %ld: the holder decides", i);
    }
    pthread_join(t, NULL);
    for (long i = 0; i < rc.n; i++) {
        void *v = NULL;
        int err = future_wait(fs[i], &v);
        CHECK(err == 0 || err == ECANCELED, "round %ld: error %d", i, err);
        CHECK(err != 0 || v == U2P(7), "round %ld: value", i);
        CHECK(err != 0 || rc.rounds[i].resolved == 0, "round %ld", i);
        CHECK(err != ECANCELED || rc.rounds[i].resolved == EALREADY,
              "round %ld: cancelled, yet the resolve won", i);
        cancelled += err == ECANCELED;
        future_release(fs[i]);
    }
    /* The tellings still queued run before this returns. */
    CHECK(futures_shutdown(UINT64_MAX) == 0, "shutdown");
    long told = 0;
    for (long i = 0; i < rc.n; i++) {
        int n = atomic_load(&rc.rounds[i].told);
        CHECK(n <= 1, "round %ld: told %d times", i, n);
        told += n;
        promise_release(rc.rounds[i].p);
    }
    CHECK(told >= cancelled, "%ld cancelled but %ld told", cancelled, told);
    free(fs);
    free(rc.rounds);
    pthread_barrier_destroy(&rc.go);
    printf("cancel_holder_race: %ld rounds, %ld cancelled by the holder, "
           "%ld tellings\n", rc.n, cancelled, told);
    return 0;
}
