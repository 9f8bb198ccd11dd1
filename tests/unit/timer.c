/*
 * Tests of lib/timer.c: future_delay() and future_timeout().
 *
 * Times are measured on CLOCK_MONOTONIC, the clock the header promises,
 * and bounded only from below (a delay never fires early) or with wide
 * margins. The order in which delays fire is read on an event loop: its
 * callbacks run one at a time in the order they became ready, so the
 * sequence they record is the order the delays settled in.
 */
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS UINT64_C(1000000)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The process's thread count, from /proc/self/status. */
static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    cr_assert_gt(n, 0, "no Threads: line");
    return n;
}

/* A small deterministic generator, so every run shuffles alike. */
static uint32_t next_random(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void shuffle(int *a, int n, uint32_t seed)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next_random(&seed) % (uint32_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* --------------------------------------------------------------- delays -- */

CheckedTest(timer, a_delay_succeeds_with_null_after_at_least_its_time,
            .timeout = 60)
{
    static const uint64_t delays[] = {0, 1 * MS, 20 * MS, 60 * MS};
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        uint64_t start = now_ns();
        future_t *d = future_delay(delays[i]);
        cr_assert_not_null(d);
        void *v = U2P(1);
        cr_assert_eq(future_wait(d, &v), 0);
        uint64_t took = now_ns() - start;
        cr_assert_null(v);
        cr_assert_geq(took, delays[i],
                      "%" PRIu64 " ns delay fired after %" PRIu64 " ns",
                      delays[i], took);
        cr_assert_lt(took, delays[i] + 5000 * MS, "took %" PRIu64 " ns", took);
        future_release(d);
    }
    expect_no_leaks();
}

static int count_then(void *value, void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = value;
    return 0;
}

CheckedTest(timer, continuations_of_a_delay_run_when_it_fires, .timeout = 60)
{
    atomic_int runs = 0;
    uint64_t start = now_ns();
    future_t *d = future_delay(30 * MS);
    future_t *c = future_then(d, count_then, &runs);
    cr_assert_eq(future_wait(c, NULL), 0);
    cr_assert_geq(now_ns() - start, 30 * MS);
    cr_assert_eq(atomic_load(&runs), 1);
    future_release(c);
    future_release(d);
    expect_no_leaks();
}

struct order {
    int seq[64];
    int n;
};

struct slot {
    struct order *order;
    int index;
};

/* On the loop, so no lock: appends the delay's rank. */
static int record_slot(void *value, void *arg, void **result)
{
    (void)value;
    struct slot *s = arg;
    s->order->seq[s->order->n++] = s->index;
    *result = NULL;
    return 0;
}

/*
 * Creates @n delays, the one at rank k due @base + k * @step after its
 * call, in a shuffled order, and checks on a loop that they fired in the
 * order of their deadlines. A deadline is known to lie between the clock
 * read before its call and after it, plus its delay: a pair is out of
 * order only if one was surely due before the other yet fired after it.
 */
static void expect_fired_by_deadline(int n, uint64_t base, uint64_t step,
                                     uint32_t seed)
{
    struct order order = {.n = 0};
    struct slot slots[64];
    int rank[64];
    uint64_t lo[64], hi[64]; /* bounds of each rank's deadline */
    future_t *ds[64], *cs[64];
    cr_assert_leq(n, 64);
    for (int i = 0; i < n; i++)
        rank[i] = i;
    shuffle(rank, n, seed);
    loop_t *loop = loop_create();
    for (int i = 0; i < n; i++) {
        uint64_t ns = base + (uint64_t)rank[i] * step;
        slots[i] = (struct slot){&order, rank[i]};
        lo[rank[i]] = now_ns() + ns;
        ds[i] = future_delay(ns);
        hi[rank[i]] = now_ns() + ns;
        cr_assert_not_null(ds[i]);
    }
    for (int i = 0; i < n; i++) {
        cs[i] = future_then_on(ds[i], loop, record_slot, &slots[i]);
        cr_assert_not_null(cs[i]);
    }
    cr_assert_eq(loop_run(loop), 0); /* until every continuation ran */
    cr_assert_eq(order.n, n);
    int inversions = 0, first_a = -1, first_b = -1;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            int a = order.seq[i], b = order.seq[j]; /* a fired first */
            if (lo[a] > hi[b]) {
                if (!inversions++) {
                    first_a = a;
                    first_b = b;
                }
            }
        }
    cr_assert_eq(inversions, 0,
                 "%d pairs fired out of deadline order, e.g. rank %d, due "
                 "%" PRIu64 " ns after rank %d, fired before it",
                 inversions, first_a,
                 inversions ? lo[first_a] - hi[first_b] : 0, first_b);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(future_wait(cs[i], NULL), 0);
        future_release(cs[i]);
        future_release(ds[i]);
    }
    loop_destroy(loop);
}

CheckedTest(timer, delays_fire_in_deadline_order, .timeout = 60)
{
    /* 30 delays 5 ms apart, created in a shuffled order: 200 ms. */
    expect_fired_by_deadline(30, 50 * MS, 5 * MS, 12345);
    expect_no_leaks();
}

CheckedTest(timer, delays_due_together_fire_in_deadline_order, .timeout = 60)
{
    /* 20 us apart: the timer thread finds several due at each wake-up. */
    expect_fired_by_deadline(64, 30 * MS, 20000, 777);
    expect_no_leaks();
}

CheckedTest(timer, ten_thousand_delays_fire_without_a_thread_each,
            .timeout = 60)
{
    enum { N = 10000 };
    future_t **ds = calloc(N, sizeof *ds);
    uint32_t seed = 42;
    int before = threads_now();
    uint64_t start = now_ns();
    for (int i = 0; i < N; i++) {
        uint64_t ms = 1 + next_random(&seed) % 50;
        ds[i] = future_delay(ms * MS);
        cr_assert_not_null(ds[i], "delay %d: %s", i, strerror(errno));
    }
    int during = threads_now();
    cr_assert_leq(during, before + 1, "%d threads, %d before", during, before);
    for (int i = 0; i < N; i++) {
        void *v = U2P(1);
        cr_assert_eq(future_wait(ds[i], &v), 0, "delay %d", i);
        cr_assert_null(v);
    }
    uint64_t took = now_ns() - start;
    cr_assert_geq(took, 50 * MS - 1 * MS);
    cr_assert_lt(took, 10000 * MS, "took %.2f s", (double)took / 1e9);
    int after = threads_now();
    cr_assert_leq(after, before + 1, "%d threads, %d before", after, before);
    for (int i = 0; i < N; i++)
        future_release(ds[i]);
    free(ds);
    expect_no_leaks();
}

CheckedTest(timer, cancelling_a_delay_settles_it_at_once, .timeout = 60)
{
    atomic_int runs = 0;
    future_t *d = future_delay(3600 * UINT64_C(1000000000)); /* an hour */
    future_t *c = future_then(d, count_then, &runs);
    cr_assert_not(future_is_ready(d));
    cr_assert(future_cancel(d));
    cr_assert(future_is_ready(d), "settled inside the call");
    cr_assert_eq(future_wait(d, NULL), ECANCELED);
    cr_assert_eq(future_wait(c, NULL), ECANCELED);
    cr_assert_eq(atomic_load(&runs), 0);
    cr_assert_not(future_cancel(d), "cancelled once");
    future_release(c);
    future_release(d);
    expect_no_leaks();
}

CheckedTest(timer, a_fired_delay_cannot_be_cancelled, .timeout = 60)
{
    future_t *d = future_delay(1 * MS);
    cr_assert_eq(future_wait(d, NULL), 0);
    cr_assert_not(future_cancel(d));
    cr_assert_eq(future_wait(d, NULL), 0);
    future_release(d);
    expect_no_leaks();
}

CheckedTest(timer, cancelled_delays_leave_the_others_on_time, .timeout = 60)
{
    enum { N = 100 };
    future_t *ds[N];
    uint64_t start = now_ns();
    /* Long enough that none is due before the cancels, even under
     * valgrind, where making a hundred delays takes tens of ms. */
    for (int i = 0; i < N; i++)
        ds[i] = future_delay((uint64_t)(200 + i % 10) * MS);
    for (int i = 0; i < N; i += 2)
        cr_assert(future_cancel(ds[i]));
    for (int i = 0; i < N; i++)
        cr_assert_eq(future_wait(ds[i], NULL), i % 2 ? 0 : ECANCELED,
                     "delay %d", i);
    cr_assert_geq(now_ns() - start, 201 * MS);
    for (int i = 0; i < N; i++)
        future_release(ds[i]);
    expect_no_leaks();
}

/* ------------------------------------------------------------- timeouts -- */

CheckedTest(timer,
            a_timeout_on_a_future_that_never_settles_fails_and_cancels_it,
            .timeout = 60)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    uint64_t start = now_ns();
    future_t *t = future_timeout(f, 30 * MS);
    cr_assert_not_null(t);
    cr_assert_eq(future_wait(t, NULL), ETIMEDOUT);
    cr_assert_geq(now_ns() - start, 30 * MS);
    cr_assert_eq(future_wait(f, NULL), ECANCELED, "asked to cancel");
    cr_assert_eq(promise_resolve(p, U2P(1)), EALREADY);
    future_release(t);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(timer, a_timeout_takes_the_value_of_a_future_settled_in_time,
            .timeout = 60)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *t = future_timeout(f, 3600 * UINT64_C(1000000000));
    cr_assert_not(future_is_ready(t));
    cr_assert_eq(promise_resolve(p, U2P(42)), 0);
    void *v;
    cr_assert_eq(future_wait(t, &v), 0);
    cr_assert_eq(v, U2P(42));
    cr_assert_eq(future_wait(f, &v), 0, "not cancelled");
    cr_assert_eq(v, U2P(42));
    future_release(t);
    future_release(f);
    promise_release(p);
    expect_no_leaks();
}

CheckedTest(timer, a_timeout_takes_the_error_of_a_future_failed_in_time,
            .timeout = 60)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_t *t = future_timeout(f, 3600 * UINT64_C(1000000000));
    cr_assert_eq(promise_reject(p, EACCES), 0);
    cr_assert_eq(future_wait(t, NULL), EACCES);
    future_release(t);
    future_release(f);
    promise_release(p);

    /* Settled before the call, and with a zero timeout. */
    future_t *done = future_resolved(U2P(3));
    future_t *bad = future_failed(EPERM);
    future_t *t1 = future_timeout(done, 3600 * UINT64_C(1000000000));
    future_t *t2 = future_timeout(bad, 3600 * UINT64_C(1000000000));
    void *v;
    cr_assert_eq(future_wait(t1, &v), 0);
    cr_assert_eq(v, U2P(3));
    cr_assert_eq(future_wait(t2, NULL), EPERM);
    future_release(t1);
    future_release(t2);
    future_release(done);
    future_release(bad);
    expect_no_leaks();
}

CheckedTest(timer, a_timeout_on_a_task_finishing_in_time_takes_its_value,
            .timeout = 60)
{
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, value_task, U2P(8));
    future_t *t = future_timeout(f, 3600 * UINT64_C(1000000000));
    void *v;
    cr_assert_eq(future_wait(t, &v), 0);
    cr_assert_eq(v, U2P(8));
    future_release(t);
    future_release(f);
    pool_destroy(pool);
    expect_no_leaks();
}

struct cancellable {
    sem_t started;
    atomic_bool saw; /* task_cancelled() turned true */
};

/* Runs until asked to cancel (ten seconds at most); says whether it was. */
static int until_cancelled(void *arg, void **result)
{
    (void)result;
    struct cancellable *c = arg;
    sem_post(&c->started);
    uint64_t deadline = now_ns() + 10000 * MS;
    while (!task_cancelled() && now_ns() < deadline) {
        struct timespec ts = {0, (long)MS};
        nanosleep(&ts, NULL); /* the job's simulated work */
    }
    atomic_store(&c->saw, task_cancelled());
    return task_cancelled() ? ECANCELED : 0;
}

CheckedTest(timer, a_timeout_asks_a_running_task_to_cancel, .timeout = 60)
{
    struct cancellable c = {.saw = false};
    sem_init(&c.started, 0, 0);
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit_blocking(pool, until_cancelled, &c);
    sem_wait(&c.started); /* running, not queued, when the timeout fires */
    future_t *t = future_timeout(f, 20 * MS);
    cr_assert_eq(future_wait(t, NULL), ETIMEDOUT);
    cr_assert_eq(future_wait(f, NULL), ECANCELED, "the task's own return");
    cr_assert(atomic_load(&c.saw), "task_cancelled() turned true");
    sem_destroy(&c.started);
    future_release(t);
    future_release(f);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(timer, a_timeout_checks_its_arguments)
{
    errno = 0;
    cr_assert_null(future_timeout(NULL, MS));
    cr_assert_eq(errno, EINVAL);
    expect_no_leaks();
}

CheckedTest(timer, a_cancelled_timeout_takes_its_delay_out_of_the_heap,
            .timeout = 60)
{
    /* 10,000 cancelled timeouts of 10 s: with their delays left in the
     * heap until the deadline, this would hold on to some 700 KiB. */
    promise_t *p = promise_create();
    future_t *never = promise_future(p);
    size_t before = allocated_bytes();
    for (int i = 0; i < 10000; i++) {
        future_t *t = future_timeout(never, 10000 * MS);
        cr_assert_not_null(t);
        cr_assert(future_cancel(t));
        future_release(t);
    }
    size_t grown = allocated_bytes() - before;
    cr_assert_lt(grown, 300u * 1024, "cancelled timeouts kept %zu bytes",
                 grown);
    cr_assert_not(future_is_ready(never), "the input is left alone");
    future_release(never);
    promise_release(p);
    expect_no_leaks();
}
