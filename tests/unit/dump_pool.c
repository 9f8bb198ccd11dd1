/*
 * Tests of what futures_dump() says of a pool: its core threads that wait
 * and their stand-ins, and "the oldest queued for 2.00 s" for work queued
 * from outside the pool, by its own thread (its ring), and as blocking
 * jobs, each waiting a measured while; work queued before ages were kept;
 * and the stamps (age.c) that the queues keep, taken apart directly.
 */
#include "helpers.h"
#include "pool_internal.h" /* the age log */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_NS UINT64_C(300000000) /* how long the queued work waits */

/* The age the dump gives the oldest queued work, in s; -1 if none. */
static double oldest_in(const char *text)
{
    const char *at = strstr(text, ", the oldest queued for ");
    double secs = -1;
    if (at)
        sscanf(at + strlen(", the oldest queued for "), "%lf s", &secs);
    return secs;
}

/* Lets work queued at @queued_ns wait WAIT_NS (the wait is what the test
 * measures, not a way to synchronise), then checks the dump's age for it:
 * at least the wait (less the coarse clock's tick), at most the time since
 * @queued_ns. */
static void expect_age_since(uint64_t queued_ns)
{
    work_for_ns(WAIT_NS);
    char *text = dump_text();
    double most = (double)(monotonic_ns() - queued_ns) / 1e9 + 0.02;
    double secs = oldest_in(text);
    cr_assert(secs >= 0.28 && secs <= most, "%.2f s, want 0.28 to %.2f:\n%s",
              secs, most, text);
    free(text);
}

CheckedTest(dump_pool, counts_core_threads_blocked_in_waits_and_stand_ins)
{
    pool_t *pool = pool_create(1);
    struct waiter w = {.p = promise_create()};
    sem_init(&w.started, 0, 0);
    future_t *f = pool_submit(pool, dumped_waiter, &w);
    sem_wait(&w.started);
    /* The task blocks, and its stand-in starts, soon after it posted:
     * dump until the pool says so. */
    const char *want = "(open): 2 core threads (1 blocked in a wait, "
                       "1 stand-in) and 0 blocking (0 idle)";
    char *text = NULL;
    uint64_t deadline = monotonic_ns() + UINT64_C(10000000000);
    do {
        free(text);
        text = dump_text();
    } while (!strstr(text, want) && monotonic_ns() < deadline);
    cr_assert(strstr(text, want), "%s", text);
    free(text);
    promise_resolve(w.p, NULL);
    cr_assert_eq(future_wait(f, NULL), 0);
    future_release(f);
    promise_release(w.p);
    sem_destroy(&w.started);
    pool_destroy(pool);
}

CheckedTest(queued_age, of_work_queued_from_outside_the_pool)
{
    free(dump_text()); /* the first dump: ages are kept from now on */
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    future_t **busy = saturate(pool, 1, &g);
    uint64_t t0 = monotonic_ns();
    future_t *queued[3];
    for (int i = 0; i < 3; i++)
        queued[i] = pool_submit(pool, value_task, NULL);
    expect_age_since(t0);
    gate_open(&g);
    cr_assert_eq(future_wait_all(queued, 3, NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        future_release(queued[i]);
    char *text = dump_text();
    cr_assert_null(strstr(text, "the oldest queued"), "none queued:\n%s",
                   text);
    free(text);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&g);
}

struct submitter {
    pool_t *pool;
    struct gate *g;
    future_t *queued[2];
    uint64_t queued_ns;
};

/* Queues two tasks in this thread's own ring, then holds the thread. */
static int submit_then_block(void *arg, void **result)
{
    struct submitter *s = arg;
    s->queued_ns = monotonic_ns();
    for (int i = 0; i < 2; i++)
        s->queued[i] = pool_submit(s->pool, value_task, NULL);
    gate_pass(s->g);
    *result = NULL;
    return 0;
}

CheckedTest(queued_age, of_work_a_pool_thread_queued_in_its_own_ring)
{
    free(dump_text());
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    struct submitter s = {.pool = pool, .g = &g};
    future_t *f = pool_submit(pool, submit_then_block, &s);
    gate_await_started(&g, 1);
    char *text = dump_text();
    cr_assert(strstr(text, "2 queued"), "in the ring:\n%s", text);
    free(text);
    expect_age_since(s.queued_ns);
    gate_open(&g);
    cr_assert_eq(future_wait(f, NULL), 0);
    cr_assert_eq(future_wait_all(s.queued, 2, NULL, NULL), 0);
    future_release(f);
    future_release(s.queued[0]);
    future_release(s.queued[1]);
    pool_destroy(pool);
    gate_destroy(&g);
}

CheckedTest(queued_age, of_a_blocking_job_waiting_for_a_thread)
{
    free(dump_text());
    pool_t *pool = pool_create(1);
    cr_assert_eq(pool_set_blocking_limit(pool, 1), 0);
    struct gate g;
    gate_init(&g);
    future_t **busy = saturate(pool, 1, &g); /* no core thread takes it */
    future_t *job = pool_submit_blocking(pool, gated_task, &g);
    gate_await_started(&g, 1);
    uint64_t t0 = monotonic_ns();
    future_t *queued = pool_submit_blocking(pool, value_task, NULL);
    char *text = dump_text();
    cr_assert(strstr(text, "1 queued (1 of them blocking jobs)"), "%s", text);
    free(text);
    expect_age_since(t0);
    gate_open(&g);
    cr_assert_eq(future_wait(queued, NULL), 0);
    cr_assert_eq(future_wait(job, NULL), 0);
    future_release(queued);
    future_release(job);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&g);
}

/* More than a ring holds, queued from outside: the pool's thread moves
 * what fits into its ring, with the stamps, and hands the rest back. */
CheckedTest(queued_age, survives_the_move_from_the_injection_queue_to_a_ring)
{
    free(dump_text());
    enum { N = FUT_RING_SIZE + 100 };
    pool_t *pool = pool_create(1);
    struct gate first, second;
    gate_init(&first);
    gate_init(&second);
    future_t **busy = saturate(pool, 1, &first);
    uint64_t t0 = monotonic_ns();
    future_t *hold = pool_submit(pool, gated_task, &second);
    future_t **queued = calloc(N, sizeof *queued);
    for (int i = 0; i < N; i++)
        queued[i] = pool_submit(pool, value_task, NULL);
    gate_open(&first); /* the thread takes them, then holds at second */
    gate_await_started(&second, 1);
    char *text = dump_text();
    char want[64];
    snprintf(want, sizeof want, "%d queued", N);
    cr_assert(strstr(text, want), "%s:\n%s", want, text);
    free(text);
    expect_age_since(t0);
    gate_open(&second);
    cr_assert_eq(future_wait_all(queued, N, NULL, NULL), 0);
    cr_assert_eq(future_wait(hold, NULL), 0);
    for (int i = 0; i < N; i++)
        future_release(queued[i]);
    free(queued);
    future_release(hold);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&first);
    gate_destroy(&second);
}

CheckedTest(queued_age, is_unknown_for_work_queued_before_the_first_dump)
{
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    future_t **busy = saturate(pool, 1, &g);
    future_t *early = pool_submit(pool, value_task, NULL);
    char *text = dump_text();
    cr_assert(strstr(text, ", the oldest queued before the first dump"),
              "%s", text);
    free(text);
    future_t *late = pool_submit(pool, value_task, NULL);
    text = dump_text(); /* the early one is still the oldest */
    cr_assert(strstr(text, ", the oldest queued before the first dump"),
              "%s", text);
    free(text);
    gate_open(&g);
    cr_assert_eq(future_wait(early, NULL), 0);
    cr_assert_eq(future_wait(late, NULL), 0);
    future_release(early);
    future_release(late);
    release_all(busy, 1);
    pool_destroy(pool);
    gate_destroy(&g);
}

/* ------------------------------------------------------------- the log -- */

CheckedTest(age_log, work_queued_in_the_same_tick_shares_an_entry)
{
    struct fut__age_log log = {0};
    for (uint32_t seq = 0; seq < 10; seq++)
        fut__age_note(&log, seq, 500, 0);
    fut__age_note(&log, 10, 507, 0);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(fut__age_at(&log, 0), 500);
    cr_assert_eq(fut__age_at(&log, 9), 500);
    cr_assert_eq(fut__age_at(&log, 10), 507);
    cr_assert_eq(fut__age_at(&log, 11), 507);
}

CheckedTest(age_log, knows_nothing_of_work_before_its_first_entry)
{
    struct fut__age_log log = {0};
    cr_assert_eq(fut__age_at(&log, 3), 0);
    fut__age_note(&log, 4, 0, 0); /* stamp 0: ages were not kept */
    cr_assert_eq(log.n, 0);
    fut__age_note(&log, 5, 900, 0);
    cr_assert_eq(fut__age_at(&log, 4), 0);
    cr_assert_eq(fut__age_at(&log, 5), 900);
}

CheckedTest(age_log, drops_entries_whose_work_has_left)
{
    struct fut__age_log log = {0};
    fut__age_note(&log, 0, 100, 0);
    fut__age_note(&log, 5, 200, 0);
    fut__age_note(&log, 9, 300, 0);
    fut__age_note(&log, 12, 400, 6); /* 0 to 5 have left */
    cr_assert_eq(log.n, 3);
    cr_assert_eq(fut__age_at(&log, 6), 200);
    cr_assert_eq(fut__age_at(&log, 12), 400);
}

/* Full: the entry nearest in time to the one before merges into it, so
 * the oldest work keeps its exact stamp and no work reads younger than it
 * is. */
CheckedTest(age_log, when_full_merges_the_closest_and_keeps_the_oldest_exact)
{
    struct fut__age_log log = {0};
    uint32_t ms = 1000;
    for (uint32_t seq = 0; seq < FUT_AGE_LOG; seq++) {
        ms += seq == 7 ? 1 : 50; /* 7 is 1 ms after 6 */
        fut__age_note(&log, seq * 10, ms, 0);
    }
    cr_assert_eq(log.n, FUT_AGE_LOG);
    uint32_t first = fut__age_at(&log, 0), six = fut__age_at(&log, 60);
    fut__age_note(&log, FUT_AGE_LOG * 10, ms + 50, 0);
    cr_assert_eq(log.n, FUT_AGE_LOG);
    cr_assert_eq(fut__age_at(&log, 0), first);
    cr_assert_eq(fut__age_at(&log, 70), six, "7 merged into 6");
    cr_assert_eq(fut__age_at(&log, FUT_AGE_LOG * 10), ms + 50);
    for (uint32_t seq = 0; seq <= FUT_AGE_LOG * 10; seq++) {
        uint32_t exact = 1000 + 50 * (seq / 10 + 1) - (seq >= 70 ? 49 : 0);
        cr_assert_leq(fut__age_at(&log, seq), exact, "seq %u", seq);
    }
}

/* The oldest of what @log says of work numbered @head up to @end: its
 * stamp, or 0 if that is not known. */
static uint32_t log_oldest(const struct fut__age_log *log, uint32_t head,
                           uint32_t end)
{
    struct fut__oldest o = {0};
    fut__age_oldest(log, head, end, &o);
    return o.unknown ? 0 : o.stamp;
}

/* Pushes work numbered *@pushed on, @n of it, at @ms, as runq.c does. */
static void push_n(struct fut__age_log *log, uint32_t *pushed, uint32_t *len,
                   uint32_t n, uint32_t ms)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t seq = (*pushed)++;
        (*len)++;
        fut__age_note(log, seq, ms, *pushed - *len);
    }
}

/* Work handed back to the front of a queue is numbered anew in front of
 * its head, with its own, older stamp. */
CheckedTest(age_log, takes_work_handed_back_in_front)
{
    struct fut__age_log log = {0};
    uint32_t pushed = 0, len = 0;
    push_n(&log, &pushed, &len, 20, 100);
    len = 0;                              /* a thread takes all 20 */
    push_n(&log, &pushed, &len, 5, 300);  /* 20 to 24 */
    fut__age_hand_back(&log, 12, 20, pushed, 100); /* it hands back 8 */
    len += 8;
    cr_assert_eq(pushed - len, 12);
    cr_assert_eq(fut__age_at(&log, 12), 100);
    cr_assert_eq(fut__age_at(&log, 19), 100);
    cr_assert_eq(fut__age_at(&log, 20), 300);
    cr_assert_eq(log_oldest(&log, 12, pushed), 100);
}

/*
 * Two threads take from the queue at once and hand their rests back in
 * either order: the older rest may end up behind the younger one, and the
 * oldest is still the older rest's stamp, never a younger one's and never
 * "not known" (a review found both, with the head read as pushed - len
 * over numbers that no longer ran in one sequence).
 */
static void two_hand_backs(bool older_last)
{
    struct fut__age_log log = {0};
    uint32_t pushed = 0, len = 0;
    push_n(&log, &pushed, &len, 300, 1000);
    len = 0; /* thread A cuts 0..299, hands back 43 */
    push_n(&log, &pushed, &len, 300, 5000);
    len = 0; /* thread B cuts 300..599, hands back 43 */
    for (int k = 0; k < 2; k++) {
        bool a = older_last ? k == 1 : k == 0;
        uint32_t head = pushed - len;
        fut__age_hand_back(&log, head - 43, head, pushed, a ? 1000 : 5000);
        len += 43;
    }
    cr_assert_eq(log_oldest(&log, pushed - len, pushed), 1000,
                 "older_last %d", older_last);
    push_n(&log, &pushed, &len, 1, 7000); /* and the queue goes on */
    cr_assert_eq(log_oldest(&log, pushed - len, pushed), 1000);
    cr_assert_eq(fut__age_at(&log, pushed - 1), 7000);
}

CheckedTest(age_log, two_threads_handing_back_at_once_keep_the_oldest)
{
    two_hand_backs(true);
    two_hand_backs(false);
}

CheckedTest(age_log, counts_through_the_wrap_of_its_numbers)
{
    struct fut__age_log log = {0};
    fut__age_note(&log, UINT32_MAX - 1, 100, UINT32_MAX - 1);
    fut__age_note(&log, 2, 200, UINT32_MAX - 1);
    cr_assert_eq(fut__age_at(&log, UINT32_MAX), 100);
    cr_assert_eq(fut__age_at(&log, 0), 100);
    cr_assert_eq(fut__age_at(&log, 3), 200);
    fut__age_note(&log, 4, 300, 3);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(fut__age_at(&log, 3), 200);
}

/* ------------------------------------------------------------ the ring -- */

static uint32_t ring_oldest(struct fut__ring *r)
{
    struct fut__oldest o = {0};
    fut__ring_oldest(r, &o);
    return o.known ? o.stamp : 0;
}

/* A thief takes the stamps with the futures: the oldest it holds reads as
 * old as it was where it was queued. */
CheckedTest(age_ring, a_steal_carries_the_stamps_along)
{
    struct fut__ring *a = aligned_alloc(64, sizeof *a);
    struct fut__ring *b = aligned_alloc(64, sizeof *b);
    fut__ring_init(a);
    fut__ring_init(b);
    static int items[4];
    for (int i = 0; i < 4; i++)
        cr_assert(fut__ring_push(a, (future_t *)&items[i], 10u * (i + 1)));
    cr_assert_eq(ring_oldest(a), 10);
    cr_assert_eq(ring_oldest(b), 0, "empty");
    /* Half of four: the first to run at once, the second into b. */
    cr_assert_eq(fut__ring_steal(a, b), (future_t *)&items[0]);
    cr_assert_eq(ring_oldest(b), 20);
    cr_assert_eq(ring_oldest(a), 30);
    cr_assert_eq(fut__ring_pop(b), (future_t *)&items[1]);
    cr_assert_eq(ring_oldest(b), 0, "empty again");
    free(a);
    free(b);
}
