/*
 * races.c - the four races of the reliability issue, and the combinators
 * race, each run for an exact number of rounds with every round checked:
 *
 *   then_while_completing  future_then() registered while a worker settles
 *                          the future; the continuation runs exactly once,
 *                          on the right value.
 *   cancel_while_starting  future_cancel() while a worker starts the task:
 *                          true means the task never runs and the outcome
 *                          is ECANCELED; false means it ran once, with 0.
 *   release_after_wait     future_release() the instant future_wait()
 *                          returns, while the worker that settled the future
 *                          may still be touching it (TSan and valgrind judge).
 *   promise_8_threads      8 threads resolve or reject one promise at once:
 *                          one call returns 0, seven return EALREADY, and the
 *                          future holds the winner's offer.
 *   combinators_settling   when_all and when_any armed while their inputs
 *                          settle, some when_any cancelled on the way.
 *
 * Each race runs exactly rounds(ROUNDS) rounds, 10,000 times STRESS_SCALE
 * (ROUNDS_LIGHT, 1,000, when STRESS_LIGHT is set, for valgrind), split
 * between one or two driver threads; a race's line prints the rounds it
 * checked, and the program fails unless that is the figure. The issue asks
 * for 100,000 rounds per race under ThreadSanitizer with no report, and
 * 1,000,000 plain; after make tsan and make build/stress/races:
 *
 *   STRESS_SCALE=10 TSAN_OPTIONS=halt_on_error=1 build/tsan/stress/races
 *   STRESS_SCALE=100 build/stress/races
 *
 * No sleeps: threads meet at barriers or wait (spinning, then yielding) on
 * flags. Where a window is narrow, a busy-wait delay steers itself towards
 * it round by round; the delay only moves where a round falls, never what
 * it must find. After each line's timing come the counts of rounds on each
 * side of its window, which show both sides were reached.
 */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#define ROUNDS       10000
#define ROUNDS_LIGHT 1000
#define WORKERS      2    /* the pool's threads; cancel rounds block all */
#define DRIVERS      2    /* threads sharing the rounds of a pool race */
#define OFFERERS     8    /* threads settling each promise */
#define OFFER_ERROR  1000 /* offerer t rejects with OFFER_ERROR + t */

static pool_t *pool;
static atomic_long task_runs, then_runs;

/* Busy-wait about @n steps (the fence keeps the compiler from folding the
 * loop away), yielding every 1024: when the machine is loaded the thread
 * on the other side of the race may be waiting for this one's CPU, and
 * then only a yield moves the window. */
static void spin(long n)
{
    for (long k = 0; k < n; k++) {
        atomic_signal_fence(memory_order_seq_cst);
        if (k % 1024 == 1023)
            sched_yield();
    }
}

/* Waits for *@flag to reach @n: a short tight spin, as the flag usually
 * turns at once, then yielding, as on two CPUs the thread that turns it
 * may need this one's. */
static void spin_until(atomic_int *flag, int n)
{
    for (int k = 0; atomic_load(flag) < n; k++)
        if (k >= 256)
            sched_yield();
}

/* A delay that moves towards a race's window: longer by a sixteenth when
 * @dir > 0, shorter when @dir < 0, capped so it can never run away. */
static long steer(long delay, int dir)
{
    if (dir > 0 && delay < 65536)
        return delay + delay / 16 + 1;
    if (dir < 0 && delay > 0)
        return delay - delay / 16 - 1;
    return delay;
}

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

/* The share of a race's rounds that one driver thread runs. */
struct share {
    long first, n;
    uint32_t seed;
};

/* What a race counts: rounds checked, and which side of its window each
 * round fell on. */
struct tally {
    const char *name;
    atomic_long rounds, a, b, c, d;
};

/* ------------------------------------------ 1. then while completing -- */

static struct tally then_race = {.name = "then_while_completing"};

/* The task announces it has started and returns only when let go, so the
 * driver can register its continuation just as the worker settles. */
struct gate {
    atomic_int started, go;
    void *value;
};

static int gated_task(void *arg, void **result)
{
    struct gate *g = arg;
    atomic_fetch_add(&task_runs, 1);
    atomic_store(&g->started, 1);
    spin_until(&g->go, 1);
    *result = g->value;
    return 0;
}

/* Returns where the registration fell: -1 after the future settled, 0 while
 * it settled, 1 before, so the driver can steer its delay. */
static int then_round(long i, long delay)
{
    struct gate g = {.value = U2P(i)};
    future_t *f = pool_submit(pool, gated_task, &g);
    CHECK(f, "round %ld: pool_submit", i);
    spin_until(&g.started, 1);
    atomic_store(&g.go, 1);
    spin(delay);
    bool before = future_is_ready(f);
    future_t *t = future_then(f, plus_one, NULL);
    bool after = future_is_ready(f);
    CHECK(t, "round %ld: future_then", i);
    void *v = NULL;
    int rc = future_wait(t, &v);
    CHECK(rc == 0 && v == U2P(i + 1), "round %ld: rc %d value %lu", i, rc,
          (unsigned long)P2U(v));
    future_release(f);
    future_release(t);
    /* a: registered on a settled future, b: while it settled, c: before. */
    atomic_fetch_add(before  ? &then_race.a
                     : after ? &then_race.b
                             : &then_race.c,
                     1);
    atomic_fetch_add(&then_race.rounds, 1);
    return before ? -1 : after ? 0 : 1;
}

/* The delay between letting the task go and registering homes in on the
 * moment the worker settles the future. */
static void *then_driver(void *arg)
{
    struct share *s = arg;
    long delay = 0;
    for (long i = s->first; i < s->first + s->n; i++) {
        long jitter = (long)(next_random(&s->seed) % 8);
        delay = steer(delay, then_round(i, delay + jitter));
    }
    return NULL;
}

/* ------------------------------------------ 2. cancel while starting -- */

static struct tally cancel_race = {.name = "cancel_while_starting"};
static atomic_long cancel_task_runs;

/*
 * Each round fills every worker with a blocker (libuv's
 * saturate_threadpool()), so the task submitted next is certainly queued;
 * then it lets the blockers go and cancels. A worker that finishes its blocker
 * takes the task from the queue at once, without the delay of a wake-up, so the
 * cancel meets it just as it starts.
 */
struct start_slot {
    atomic_int blocked, go;      /* the blockers */
    atomic_int runs, saw_cancel; /* the task */
    void *value;
};

static int blocker(void *arg, void **result)
{
    struct start_slot *s = arg;
    atomic_fetch_add(&task_runs, 1);
    atomic_fetch_add(&s->blocked, 1);
    spin_until(&s->go, 1);
    *result = NULL;
    return 0;
}

static int starting_task(void *arg, void **result)
{
    struct start_slot *s = arg;
    atomic_fetch_add(&cancel_task_runs, 1);
    atomic_fetch_add(&s->runs, 1);
    /* Linger a moment, so a cancel can also land while the task runs. */
    for (int k = 0; k < 16 && !task_cancelled(); k++)
        spin(8);
    atomic_store(&s->saw_cancel, task_cancelled());
    *result = s->value;
    return 0;
}

static void check_cancel(long i, bool cancelled, int rc, void *v,
                         struct start_slot *s)
{
    int runs = atomic_load(&s->runs);
    if (cancelled)
        CHECK(rc == ECANCELED && runs == 0,
              "round %ld: cancelled, yet rc %d and %d runs", i, rc, runs);
    else
        CHECK(rc == 0 && v == U2P(i) && runs == 1,
              "round %ld: not cancelled, yet rc %d and %d runs", i, rc, runs);
    /* a: cancelled before it started, b: asked while running, c: late. */
    atomic_fetch_add(cancelled                     ? &cancel_race.a
                     : atomic_load(&s->saw_cancel) ? &cancel_race.b
                                                   : &cancel_race.c,
                     1);
    atomic_fetch_add(&cancel_race.rounds, 1);
}

/* Returns whether the cancel won, so the driver can steer its delay. */
static bool cancel_round(long i, long delay)
{
    struct start_slot s = {.value = U2P(i)};
    future_t *b[WORKERS];
    for (int k = 0; k < WORKERS; k++)
        CHECK(b[k] = pool_submit(pool, blocker, &s), "round %ld", i);
    spin_until(&s.blocked, WORKERS);
    future_t *f = pool_submit(pool, starting_task, &s);
    CHECK(f, "round %ld: pool_submit", i);
    atomic_store(&s.go, 1);
    spin(delay);
    bool cancelled = future_cancel(f);
    void *v = NULL;
    int rc = future_wait(f, &v);
    future_release(f);
    for (int k = 0; k < WORKERS; k++) {
        CHECK(future_wait(b[k], NULL) == 0, "round %ld: blocker", i);
        future_release(b[k]);
    }
    check_cancel(i, cancelled, rc, v, &s);
    return cancelled;
}

/* One driver, since it fills the whole pool. Its delay between letting the
 * blockers go and the cancel homes in on the moment a worker picks the task
 * up: longer after the cancel won, shorter after it lost. */
static void *cancel_driver(void *arg)
{
    struct share *s = arg;
    long delay = 0;
    for (long i = s->first; i < s->first + s->n; i++) {
        long jitter = (long)(next_random(&s->seed) % 8);
        bool won = cancel_round(i, delay + jitter);
        delay = steer(delay, won ? 1 : -1);
    }
    return NULL;
}

/* ------------------------------------------- 3. release after a wait -- */

static struct tally release_race = {.name = "release_after_wait"};

/* Odd rounds wait on a continuation instead, so the settler is a worker
 * that has just run a then-callback. Either way the wait holds the last
 * reference the program has. */
static void release_round(long i)
{
    future_t *f = pool_submit(pool, task, U2P(i));
    CHECK(f, "round %ld: pool_submit", i);
    uintptr_t want = (uintptr_t)i;
    if (i & 1) {
        future_t *t = future_then(f, plus_one, NULL);
        CHECK(t, "round %ld: future_then", i);
        future_release(f);
        f = t;
        want++;
    }
    bool ready = future_is_ready(f);
    void *v = NULL;
    int rc = future_wait(f, &v);
    future_release(f);
    CHECK(rc == 0 && v == U2P(want), "round %ld: rc %d value %lu", i, rc,
          (unsigned long)P2U(v));
    /* a: the wait had to block for the settler, b: it had settled. */
    atomic_fetch_add(ready ? &release_race.b : &release_race.a, 1);
    atomic_fetch_add(&release_race.rounds, 1);
}

static void *release_driver(void *arg)
{
    struct share *s = arg;
    for (long i = s->first; i < s->first + s->n; i++)
        release_round(i);
    return NULL;
}

/* -------------------------------------- 4. a promise from 8 threads -- */

static struct tally promise_race = {.name = "promise_8_threads"};

/*
 * All offerers meet at a barrier before each round. The one that
 * pthread_barrier_wait() names serial then checks the previous round and
 * creates the promise of the next one in the same slot: every offerer has
 * finished round i - 1 before anyone passes barrier i, and nobody touches
 * round i + 1 before barrier i + 1.
 */
struct offer_round {
    promise_t *p;
    int rc[OFFERERS];
};

struct offer_race {
    pthread_barrier_t go;
    long n;
    struct offer_round slot[2];
    atomic_long wins_by[OFFERERS], already;
};

struct offerer {
    struct offer_race *race;
    int id;
};

static void *offer_value(long i, int t)
{
    return U2P(((uintptr_t)i << 3) | (uintptr_t)t);
}

static void check_offers(struct offer_race *r, long i)
{
    struct offer_round *o = &r->slot[i & 1];
    int winner = -1;
    for (int t = 0; t < OFFERERS; t++) {
        CHECK(o->rc[t] == 0 || o->rc[t] == EALREADY, "round %ld: rc %d", i,
              o->rc[t]);
        if (o->rc[t] == 0) {
            CHECK(winner < 0, "round %ld: offerers %d and %d both won", i,
                  winner, t);
            winner = t;
        }
    }
    CHECK(winner >= 0, "round %ld: no offerer won", i);
    future_t *f = promise_future(o->p);
    void *v = NULL;
    int rc = future_wait(f, &v);
    if (winner % 2 == 0)
        CHECK(rc == 0 && v == offer_value(i, winner),
              "round %ld: offerer %d resolved, future has rc %d", i, winner,
              rc);
    else
        CHECK(rc == OFFER_ERROR + winner,
              "round %ld: offerer %d rejected, future has rc %d", i, winner,
              rc);
    future_release(f);
    promise_release(o->p);
    atomic_fetch_add(&r->wins_by[winner], 1);
    atomic_fetch_add(&r->already, OFFERERS - 1);
    atomic_fetch_add(&promise_race.rounds, 1);
}

static void open_round(struct offer_race *r, long i)
{
    r->slot[i & 1].p = promise_create();
    CHECK(r->slot[i & 1].p, "round %ld: promise_create", i);
}

/* Even offerers resolve, odd ones reject: the outcome names the winner. */
static void *offerer(void *arg)
{
    struct offerer *me = arg;
    struct offer_race *r = me->race;
    int t = me->id;
    for (long i = 0; i < r->n; i++) {
        int serial = pthread_barrier_wait(&r->go);
        struct offer_round *o = &r->slot[i & 1];
        o->rc[t] = t % 2 == 0 ? promise_resolve(o->p, offer_value(i, t))
                              : promise_reject(o->p, OFFER_ERROR + t);
        if (serial != PTHREAD_BARRIER_SERIAL_THREAD)
            continue;
        if (i > 0)
            check_offers(r, i - 1);
        if (i + 1 < r->n)
            open_round(r, i + 1);
    }
    return NULL;
}

static void promise_8_threads(long n)
{
    static struct offer_race r;
    r.n = n;
    pthread_barrier_init(&r.go, NULL, OFFERERS);
    open_round(&r, 0);
    struct offerer args[OFFERERS];
    for (int t = 0; t < OFFERERS; t++)
        args[t] = (struct offerer){&r, t};
    run_threads(OFFERERS, offerer, args, sizeof args[0]);
    check_offers(&r, n - 1);
    pthread_barrier_destroy(&r.go);
    long least = n, most = 0;
    for (int t = 0; t < OFFERERS; t++) {
        long w = atomic_load(&r.wins_by[t]);
        least = w < least ? w : least;
        most = w > most ? w : most;
        atomic_fetch_add(t % 2 ? &promise_race.b : &promise_race.a, w);
    }
    CHECK(atomic_load(&r.already) == (OFFERERS - 1) * n, "EALREADY %ld",
          atomic_load(&r.already));
    atomic_store(&promise_race.c, least);
    atomic_store(&promise_race.d, most);
}

/* ----------------------------------- 5. combinators while settling -- */

static struct tally combine_race = {.name = "combinators_settling"};

static void combine_round(long i)
{
    future_t *fs[4];
    for (int k = 0; k < 4; k++) {
        fs[k] = pool_submit(pool, task, U2P(k));
        CHECK(fs[k], "round %ld: pool_submit", i);
    }
    future_t *all = when_all(fs, 4), *any = when_any(fs, 4);
    CHECK(all && any, "round %ld: when_all/when_any", i);
    bool cancelled = i % 5 == 0 && future_cancel(any);
    CHECK(future_wait(all, NULL) == 0, "when_all round %ld", i);
    for (int k = 0; k < 4; k++) {
        void *v = NULL;
        CHECK(future_wait(fs[k], &v) == 0 && v == U2P(k), "round %ld", i);
    }
    void *v = NULL;
    int rc = future_wait(any, &v);
    if (cancelled)
        CHECK(rc == ECANCELED, "when_any round %ld: cancelled, rc %d", i, rc);
    else
        CHECK(rc == 0 && P2U(v) < 4, "when_any round %ld: rc %d", i, rc);
    future_release(all);
    future_release(any);
    for (int k = 0; k < 4; k++)
        future_release(fs[k]);
    /* a: when_any cancelled in time, b: it settled with an index. */
    atomic_fetch_add(cancelled ? &combine_race.a : &combine_race.b, 1);
    atomic_fetch_add(&combine_race.rounds, 1);
}

static void *combine_driver(void *arg)
{
    struct share *s = arg;
    for (long i = s->first; i < s->first + s->n; i++)
        combine_round(i);
    return NULL;
}

/* ------------------------------------------------------------ main -- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Split @n rounds exactly between @drivers threads and run them. */
static void drive(long n, int drivers, void *(*driver)(void *))
{
    struct share s[DRIVERS];
    long first = 0;
    for (int d = 0; d < drivers; d++) {
        long part = n / drivers + (d < n % drivers);
        s[d] = (struct share){first, part, 0x9e3779b9u * (uint32_t)(d + 1)};
        first += part;
    }
    run_threads(drivers, driver, s, sizeof s[0]);
}

/* One line per race; @sides names the first @shown of counters a..d. */
static void report(struct tally *t, long n, double secs, const char *sides,
                   int shown)
{
    long done = atomic_load(&t->rounds);
    CHECK(done == n, "%s: %ld rounds checked of %ld", t->name, done, n);
    printf("races: %-21s %8ld rounds %7.2f s  %s", t->name, done, secs, sides);
    long v[4] = {t->a, t->b, t->c, t->d};
    for (int k = 0; k < shown; k++)
        printf("%s%ld", k ? "/" : " ", v[k]);
    putchar('\n');
}

int main(void)
{
    long n = rounds(getenv("STRESS_LIGHT") ? ROUNDS_LIGHT : ROUNDS);
    pool = pool_create(WORKERS);
    CHECK(pool, "pool_create");
    double start = now(), t0 = start;

    drive(n, 1, then_driver);
    report(&then_race, n, now() - t0, "settled before/during/after then", 3);
    t0 = now();
    drive(n, 1, cancel_driver);
    report(&cancel_race, n, now() - t0, "cancelled/seen running/too late", 3);
    t0 = now();
    drive(n, DRIVERS, release_driver);
    report(&release_race, n, now() - t0, "wait blocked/found settled", 2);
    t0 = now();
    promise_8_threads(n);
    report(&promise_race, n, now() - t0,
           "won by resolve/reject, per thread min/max", 4);
    t0 = now();
    drive(n, DRIVERS, combine_driver);
    report(&combine_race, n, now() - t0, "when_any cancelled/indexed", 2);

    pool_destroy(pool);
    /* The pool has drained: a cancelled task that ran late would show. */
    long ran = atomic_load(&cancel_task_runs);
    CHECK(ran == n - atomic_load(&cancel_race.a),
          "%ld cancel-race tasks ran for %ld rounds not cancelled", ran,
          n - atomic_load(&cancel_race.a));
    /* Per round: a gated task, the blockers, a released one, 4 combined. */
    long want = (6 + WORKERS) * n;
    CHECK(atomic_load(&task_runs) == want, "%ld other tasks ran, not %ld",
          atomic_load(&task_runs), want);
    CHECK(atomic_load(&then_runs) == n + n / 2,
          "%ld continuations ran, expected %ld", atomic_load(&then_runs),
          n + n / 2);
    printf("races: total %ld rounds (5 races x %ld), %ld tasks and %ld "
           "continuations ran, %.2f s\n",
           5 * n, n, atomic_load(&task_runs) + ran, atomic_load(&then_runs),
           now() - start);
    return 0;
}
