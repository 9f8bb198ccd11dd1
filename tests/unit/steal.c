/*
 * Tests of the work-stealing scheduler (lib/runq.c, lib/worker.c, lib/ring.c) through the
 * public API: work a task submits goes to its thread's own ring and another
 * thread steals it; bursts from outside spread over the threads; one thread
 * runs what it is given in submission order; a ring that overflows loses
 * nothing; pool_stats() counts what sits in rings; POOL_CANCEL and
 * POOL_DRAIN reach the tasks in a ring.
 *
 * A task that must wait for another one here busy-waits on a flag, never
 * with future_wait(): future_wait() would start a stand-in thread, which
 * could run the work itself and hide a scheduler that failed to steal it.
 * Every busy-wait is bounded and reports a time-out instead of hanging.
 */
#include "helpers.h"

#include <sched.h>
#include <stdbool.h>
#include <string.h>

/* How long a busy-wait may last before the test calls the work lost. */
#define LOST_NS (10 * UINT64_C(1000000000))

/* Spins until *@flag is non-zero or @bound_ns pass; true if it turned.
 * Yields now and then: on two CPUs the thread that sets the flag may be
 * waiting for this one's. */
static bool wait_flag(atomic_int *flag, uint64_t bound_ns)
{
    uint64_t until = monotonic_ns() + bound_ns;
    for (unsigned i = 1; !atomic_load(flag); i++) {
        if (i % 64 == 0) {
            if (monotonic_ns() > until)
                return false;
            sched_yield();
        }
    }
    return true;
}

static void busy_wait_ns(uint64_t ns)
{
    uint64_t until = monotonic_ns() + ns;
    while (monotonic_ns() < until)
        ;
}

/* Waits for @f with a bound, so a lost task fails the test, not Criterion's
 * timeout; returns its outcome. */
static int wait_bounded(future_t *f, void **value)
{
    cr_assert(future_wait_for(f, LOST_NS), "a task never ran");
    return future_wait(f, value);
}

/* Polls pool_stats() until completed reaches @want: the counter moves
 * just after a task's future settles, so a waiter may be a moment early. */
static struct pool_stats stats_when_completed(pool_t *pool, uint64_t want)
{
    struct pool_stats st;
    uint64_t until = monotonic_ns() + LOST_NS;
    do {
        cr_assert_eq(pool_stats(pool, &st), 0);
        if (st.completed >= want)
            break;
        sched_yield();
    } while (monotonic_ns() < until);
    cr_assert_eq(st.completed, want, "completed %llu, want %llu",
                 (unsigned long long)st.completed, (unsigned long long)want);
    return st;
}

/* --------------------------------------------- a worker's work is stolen -- */

struct handoff {
    pool_t *pool;
    uint64_t delay_ns; /* before the outer task submits */
    atomic_int done;   /* set by the inner task */
    bool seen;         /* the outer task saw it within the bound */
    pthread_t outer, inner;
    future_t *inner_f;
};

static int inner_task(void *arg, void **result)
{
    struct handoff *h = arg;
    h->inner = pthread_self();
    atomic_store(&h->done, 1);
    *result = NULL;
    return 0;
}

/* Submits to its own pool (its thread's ring), then busy-waits: only
 * another thread can run the inner task, by stealing it. */
static int outer_task(void *arg, void **result)
{
    struct handoff *h = arg;
    h->outer = pthread_self();
    busy_wait_ns(h->delay_ns);
    h->inner_f = pool_submit(h->pool, inner_task, h);
    h->seen = h->inner_f && wait_flag(&h->done, LOST_NS);
    *result = NULL;
    return 0;
}

/* The delay before the submission straddles FUT_SPIN_NS (30 us), so the
 * other thread is sometimes still spinning and sometimes asleep. */
CheckedTest(steal, work_a_worker_submits_is_run_by_another_while_it_spins,
            .timeout = 60)
{
    pool_t *pool = pool_create(2);
    cr_assert_not_null(pool);
    for (int round = 0; round < 200; round++) {
        struct handoff h = {.pool = pool,
                            .delay_ns = (uint64_t)(round % 20) * 10000};
        future_t *f = pool_submit(pool, outer_task, &h);
        cr_assert_not_null(f);
        cr_assert_eq(wait_bounded(f, NULL), 0);
        cr_assert_not_null(h.inner_f, "round %d: submission refused", round);
        cr_assert(h.seen, "round %d (delay %llu ns): the task in a busy "
                  "worker's ring was not stolen within %.0f s", round,
                  (unsigned long long)h.delay_ns, LOST_NS / 1e9);
        cr_assert_eq(wait_bounded(h.inner_f, NULL), 0);
        cr_assert(!pthread_equal(h.outer, h.inner),
                  "round %d: the busy thread ran its own task", round);
        future_release(h.inner_f);
        future_release(f);
    }
    pool_destroy(pool);
    expect_no_leaks();
}

/* ---------------------------------------------- a burst from outside -- */

enum { BURST = 10000 };

struct burst {
    atomic_int ran, first_known, other_ran;
    pthread_t first;
    pthread_t who[BURST];
};

struct burst_slot {
    struct burst *b;
    int index;
};

/*
 * Records its thread. The first task to run holds its thread (bounded)
 * until a task has run on the other one, so both threads run some however
 * the OS schedules them, and the other thread can only have got work by
 * being woken and finding the injection queue or stealing.
 */
static int burst_task(void *arg, void **result)
{
    struct burst_slot *s = arg;
    struct burst *b = s->b;
    pthread_t me = pthread_self();
    b->who[s->index] = me;
    if (atomic_fetch_add(&b->ran, 1) == 0) {
        b->first = me;
        atomic_store(&b->first_known, 1);
        wait_flag(&b->other_ran, LOST_NS);
    } else if (wait_flag(&b->first_known, LOST_NS) &&
               !pthread_equal(me, b->first)) {
        atomic_store(&b->other_ran, 1);
    }
    *result = NULL;
    return 0;
}

CheckedTest(steal, burst_from_outside_runs_entirely_and_on_both_threads,
            .timeout = 60)
{
    static struct burst b;
    static struct burst_slot slots[BURST];
    static future_t *fs[BURST];
    memset(&b, 0, sizeof b);
    pool_t *pool = pool_create(2);
    cr_assert_not_null(pool);
    for (int i = 0; i < BURST; i++) {
        slots[i] = (struct burst_slot){&b, i};
        fs[i] = pool_submit(pool, burst_task, &slots[i]);
        cr_assert_not_null(fs[i]);
    }
    for (int i = 0; i < BURST; i++) {
        cr_assert_eq(wait_bounded(fs[i], NULL), 0, "task %d", i);
        future_release(fs[i]);
    }
    cr_assert_eq(atomic_load(&b.ran), BURST);
    pthread_t a = b.who[0];
    int on_a = 0, on_b = 0, others = 0;
    pthread_t second = a;
    for (int i = 0; i < BURST; i++) {
        if (pthread_equal(b.who[i], a)) {
            on_a++;
        } else if (on_b == 0 || pthread_equal(b.who[i], second)) {
            second = b.who[i];
            on_b++;
        } else {
            others++;
        }
    }
    cr_assert_eq(others, 0, "a third thread ran %d tasks", others);
    cr_assert(on_a > 0 && on_b > 0,
              "one thread ran all %d tasks (%d and %d)", BURST, on_a, on_b);
    cr_log_info("burst: %d and %d tasks per thread", on_a, on_b);
    pool_destroy(pool);
    expect_no_leaks();
}


/* ------------------------------------------ order, overflow, shutdown -- */

enum {
    ORDERED = 200,  /* fits a ring (FUT_RING_SIZE, 256): nothing overflows */
    OVERFLOW = 1000 /* a ring and then some */
};

struct order;
struct order_slot {
    struct order *o;
    int index;
};

/* @n tasks that record the order they run in; submitted by a task of the
 * pool (submit_all_task) or from outside (submit_all). */
struct order {
    pool_t *pool;
    int n;
    struct gate *gate;        /* submit_then_gate waits here */
    bool refused;             /* a submission failed */
    struct pool_stats inside; /* pool_stats() right after submitting */
    atomic_int next;          /* positions handed out */
    int seq[OVERFLOW];        /* seq[k]: the index of the k-th to run */
    struct order_slot slot[OVERFLOW];
    future_t *fs[OVERFLOW];
};

static struct order *order_new(pool_t *pool, int n)
{
    struct order *o = calloc(1, sizeof *o);
    cr_assert_not_null(o);
    cr_assert(n <= OVERFLOW);
    o->pool = pool;
    o->n = n;
    return o;
}

static int record_order(void *arg, void **result)
{
    struct order_slot *s = arg;
    int pos = atomic_fetch_add(&s->o->next, 1);
    if (pos < OVERFLOW)
        s->o->seq[pos] = s->index;
    *result = U2P(s->index);
    return 0;
}

static void submit_all(struct order *o)
{
    for (int i = 0; i < o->n; i++) {
        o->slot[i] = (struct order_slot){o, i};
        o->fs[i] = pool_submit(o->pool, record_order, &o->slot[i]);
        o->refused |= o->fs[i] == NULL;
    }
    pool_stats(o->pool, &o->inside);
}

/* Submits from a pool thread: into that thread's ring. */
static int submit_all_task(void *arg, void **result)
{
    submit_all(arg);
    *result = NULL;
    return 0;
}

/* The same, then blocks its thread at the gate (not in future_wait(), so
 * no stand-in starts): on a one-thread pool the tasks stay in its ring. */
static int submit_then_gate(void *arg, void **result)
{
    struct order *o = arg;
    submit_all(o);
    gate_pass(o->gate);
    *result = NULL;
    return 0;
}

/* Waits for every task of @o: each ran once, with its own value. */
static void expect_all_ran(struct order *o)
{
    cr_assert(!o->refused, "a submission was refused");
    for (int i = 0; i < o->n; i++) {
        void *v = NULL;
        cr_assert_eq(wait_bounded(o->fs[i], &v), 0, "task %d", i);
        cr_assert_eq(v, U2P(i));
    }
    cr_assert_eq(atomic_load(&o->next), o->n, "%d runs for %d tasks",
                 atomic_load(&o->next), o->n);
    bool *seen = calloc((size_t)o->n, 1);
    for (int k = 0; k < o->n; k++) {
        cr_assert(!seen[o->seq[k]], "task %d ran twice", o->seq[k]);
        seen[o->seq[k]] = true;
    }
    free(seen);
}

static void expect_fifo(struct order *o)
{
    for (int k = 0; k < o->n; k++)
        cr_assert_eq(o->seq[k], k,
                     "run %d was task %d: out of submission order "
                     "(runs %d..%d were tasks %d %d %d ...)",
                     k, o->seq[k], k, k + 2, o->seq[k],
                     k + 1 < o->n ? o->seq[k + 1] : -1,
                     k + 2 < o->n ? o->seq[k + 2] : -1);
}

static void order_free(struct order *o)
{
    for (int i = 0; i < o->n; i++)
        future_release(o->fs[i]);
    free(o);
}

CheckedTest(steal, one_thread_runs_a_workers_submissions_in_order,
            .timeout = 30)
{
    pool_t *pool = pool_create(1);
    struct order *o = order_new(pool, ORDERED);
    future_t *f = pool_submit(pool, submit_all_task, o);
    cr_assert_eq(wait_bounded(f, NULL), 0);
    expect_all_ran(o);
    expect_fifo(o);
    future_release(f);
    order_free(o);
    pool_destroy(pool);
    expect_no_leaks();
}

/* From outside, everything goes through the injection queue, which the
 * thread empties into its ring in batches. The thread is held at a gate
 * first, so the whole burst is queued before anything runs. */
static void outside_in_order(int n)
{
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    future_t **busy = saturate(pool, 1, &g);
    struct order *o = order_new(pool, n);
    submit_all(o);
    gate_open(&g);
    expect_all_ran(o);
    expect_fifo(o);
    cr_assert_eq(wait_bounded(busy[0], NULL), 0);
    release_all(busy, 1);
    order_free(o);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(steal, one_thread_runs_outside_submissions_in_order,
            .timeout = 30)
{
    outside_in_order(ORDERED);
}

CheckedTest(steal, one_thread_runs_a_large_outside_burst_in_order,
            .timeout = 30)
{
    outside_in_order(OVERFLOW);
}

/* More than a ring holds, submitted by one task: the ring fills and the
 * rest must go elsewhere (the injection queue), all of it to run once. */
static void overflow(size_t nthreads)
{
    pool_t *pool = pool_create(nthreads);
    struct order *o = order_new(pool, OVERFLOW);
    future_t *f = pool_submit(pool, submit_all_task, o);
    cr_assert_eq(wait_bounded(f, NULL), 0);
    if (nthreads == 1) { /* nothing could run while the task submitted */
        cr_assert_eq(o->inside.queued, OVERFLOW, "queued %zu",
                     o->inside.queued);
        cr_assert_eq(o->inside.running, 1);
    }
    expect_all_ran(o);
    stats_when_completed(pool, OVERFLOW + 1);
    future_release(f);
    order_free(o);
    pool_destroy(pool);
    expect_no_leaks();
}

CheckedTest(steal, ring_overflow_on_one_thread_loses_nothing, .timeout = 30)
{
    overflow(1);
}

CheckedTest(steal, ring_overflow_on_two_threads_loses_nothing, .timeout = 30)
{
    overflow(2);
}

/* ------------------------------------------------------- pool_stats -- */

CheckedTest(steal, stats_count_ring_and_injected_tasks, .timeout = 30)
{
    enum { IN_RING = 100, OUTSIDE = 50 };
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    pool_t *pool = pool_create(1);
    struct order *o = order_new(pool, IN_RING);
    o->gate = &g;
    future_t *f = pool_submit(pool, submit_then_gate, o);
    gate_await_started(&g, 1);
    struct pool_stats st;
    cr_assert_eq(pool_stats(pool, &st), 0);
    cr_assert_eq(st.queued, IN_RING, "queued %zu", st.queued);
    cr_assert_eq(st.running, 1, "running %zu", st.running);
    cr_assert_eq(st.completed, 0);
    future_t *out[OUTSIDE];
    for (int i = 0; i < OUTSIDE; i++)
        cr_assert_not_null(out[i] = pool_submit(pool, count_task, &runs));
    cr_assert_eq(pool_stats(pool, &st), 0);
    cr_assert_eq(st.queued, IN_RING + OUTSIDE, "queued %zu", st.queued);
    cr_assert_eq(st.running, 1);
    gate_open(&g);
    cr_assert_eq(wait_bounded(f, NULL), 0);
    expect_all_ran(o);
    for (int i = 0; i < OUTSIDE; i++) {
        cr_assert_eq(wait_bounded(out[i], NULL), 0);
        future_release(out[i]);
    }
    cr_assert_eq(atomic_load(&runs), OUTSIDE);
    st = stats_when_completed(pool, IN_RING + OUTSIDE + 1);
    cr_assert_eq(st.queued, 0, "queued %zu", st.queued);
    cr_assert_eq(st.running, 0, "running %zu", st.running);
    future_release(f);
    order_free(o);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(steal, stats_add_up_after_a_burst_on_two_threads, .timeout = 30)
{
    enum { N = 3000 };
    struct gate g;
    gate_init(&g);
    atomic_int runs = 0;
    pool_t *pool = pool_create(2);
    future_t **busy = saturate(pool, 2, &g);
    static future_t *fs[N];
    for (int i = 0; i < N; i++)
        cr_assert_not_null(fs[i] = pool_submit(pool, count_task, &runs));
    struct pool_stats st;
    cr_assert_eq(pool_stats(pool, &st), 0);
    cr_assert_eq(st.queued, N, "queued %zu", st.queued);
    cr_assert_eq(st.running, 2, "running %zu", st.running);
    gate_open(&g);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(wait_bounded(fs[i], NULL), 0);
        future_release(fs[i]);
    }
    cr_assert_eq(atomic_load(&runs), N);
    st = stats_when_completed(pool, N + 2);
    cr_assert_eq(st.queued, 0, "queued %zu", st.queued);
    cr_assert_eq(st.running, 0, "running %zu", st.running);
    release_all(busy, 2);
    pool_destroy(pool);
    gate_destroy(&g);
    expect_no_leaks();
}

/* ------------------------------------------- shutdown reaches rings -- */

/*
 * A task of a one-thread pool submits @n tasks to its own pool (its ring,
 * and past FUT_RING_SIZE the injection queue) and blocks at a gate; the
 * pool is shut down from outside with @mode, then the gate opens.
 */
static void shutdown_with_tasks_in_ring(int mode, int n)
{
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    struct order *o = order_new(pool, n);
    o->gate = &g;
    future_t *f = pool_submit(pool, submit_then_gate, o);
    gate_await_started(&g, 1);
    cr_assert(!o->refused);
    cr_assert_eq(o->inside.queued, (size_t)n, "queued %zu", o->inside.queued);
    pool_shutdown(pool, mode);
    for (int i = 0; i < n; i++) /* cancelled at once, or still queued */
        cr_assert_eq(future_is_ready(o->fs[i]), mode == POOL_CANCEL,
                     "task %d", i);
    gate_open(&g);
    for (int i = 0; i < n; i++) {
        int rc = wait_bounded(o->fs[i], NULL);
        cr_assert_eq(rc, mode == POOL_CANCEL ? ECANCELED : 0, "task %d: %d",
                     i, rc);
    }
    cr_assert_eq(wait_bounded(f, NULL), 0); /* it was running */
    future_release(f);
    pool_destroy(pool);
    cr_assert_eq(atomic_load(&o->next), mode == POOL_CANCEL ? 0 : n,
                 "%d tasks ran", atomic_load(&o->next));
    if (mode == POOL_DRAIN && n <= ORDERED)
        expect_fifo(o); /* they never left the ring */
    order_free(o);
    gate_destroy(&g);
    expect_no_leaks();
}

CheckedTest(steal, cancel_cancels_the_tasks_in_a_workers_ring, .timeout = 30)
{
    shutdown_with_tasks_in_ring(POOL_CANCEL, ORDERED);
}

CheckedTest(steal, cancel_cancels_a_rings_overflow_too, .timeout = 30)
{
    shutdown_with_tasks_in_ring(POOL_CANCEL, OVERFLOW);
}

CheckedTest(steal, drain_runs_the_tasks_in_a_workers_ring, .timeout = 30)
{
    shutdown_with_tasks_in_ring(POOL_DRAIN, ORDERED);
}

CheckedTest(steal, drain_runs_a_rings_overflow_too, .timeout = 30)
{
    shutdown_with_tasks_in_ring(POOL_DRAIN, OVERFLOW);
}
