/*
 * Tests of lib/settle.c's commit point: a future counts as settled from the
 * moment its settler closes its dependents, before it stores SETTLED, so
 * nothing that depends on it is ever seen settled before it is.
 *
 * Each round, a racer thread resolves a promise at the moment the test's
 * thread arms a dependent on its future (when_all of it, or a catch that
 * passes its success on at once). A dependent armed inside the settler's
 * window between the two steps settles on the spot; the test then looks at
 * the dependent and the input, in that order, and the input must be ready
 * whenever the dependent is. Before the fix, about 1 round in 300 saw the
 * dependent ready and its input not.
 */
#include "helpers.h"

#include <pthread.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define ROUNDS 200000

struct race {
    atomic_long round_started; /* the round the racer may resolve */
    atomic_long round_resolved;
    promise_t *promise;
    long rounds;
};

static void *resolve_each_round(void *arg)
{
    struct race *r = arg;
    for (long i = 1; i <= r->rounds; i++) {
        while (atomic_load(&r->round_started) != i)
            ; /* both threads run the round at once: a spin, not a sleep */
        promise_resolve(r->promise, U2P(1));
        atomic_store(&r->round_resolved, i);
    }
    return NULL;
}

static int pass_on(int error, void *arg, void **result)
{
    (void)arg;
    (void)result;
    return error; /* never called: the input succeeds */
}

/* Arms round @i's dependent, with a little skew so that every point of
 * the settler's path is hit in some round. */
static future_t *dependent_of(future_t *f, long i)
{
    for (long k = 0; k < i % 64; k++)
        __asm__ volatile("" ::: "memory"); /* a few cycles each */
    return i % 2 ? when_all(&f, 1) : future_catch(f, pass_on, NULL);
}

CheckedTest(settle, a_dependent_is_never_ready_before_its_input, .timeout = 120)
{
    struct race r = {.rounds = RUNNING_ON_VALGRIND ? 2000 : ROUNDS};
    pthread_t racer;
    cr_assert_eq(pthread_create(&racer, NULL, resolve_each_round, &r), 0);
    long early = 0;
    for (long i = 1; i <= r.rounds; i++) {
        r.promise = promise_create(); /* the racer reads it once started */
        future_t *f = promise_future(r.promise);
        atomic_store(&r.round_started, i);
        future_t *d = dependent_of(f, i);
        cr_assert_not_null(d);
        bool dependent_ready = future_is_ready(d);
        bool input_ready = future_is_ready(f);
        early += dependent_ready && !input_ready;
        while (atomic_load(&r.round_resolved) != i)
            ;
        cr_assert_eq(future_wait(d, NULL), 0);
        cr_assert(future_is_ready(f));
        future_release(d);
        future_release(f);
        promise_release(r.promise);
    }
    pthread_join(racer, NULL);
    cr_assert_eq(early, 0,
                 "%ld of %ld rounds saw a dependent ready before its input",
                 early, r.rounds);
}
