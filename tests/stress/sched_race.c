/*
 * sched_race.c - the lock-free parts of the work-stealing scheduler
 * (lib/ring.c, the park/wake protocol of lib/idle.c), each race run for an
 * exact number of rounds with every round checked:
 *
 *   ring_last_item     the owner pushes one item; the owner's pop and a
 *                      thief's steal race for it (and, in ring_last_item3,
 *                      a second thief's pop too): exactly one side gets it.
 *   ring_stream        the owner pushes a stream of distinct items and pops
 *                      some while 2 thieves steal (from the owner and from
 *                      each other) into their own rings and drain them
 *                      lazily: every item is taken exactly once, across
 *                      hundreds of wrap-arounds, with the owner's ring full
 *                      now and then (forced: the thieves hold off; and by
 *                      chance), the owner keeping what push refuses.
 *   park_wake_1, _2    through the API, a pool of 1 and of 2 threads: a task
 *                      submitted from outside 0-200 us after the pool ran
 *                      out of work, around the moment its threads stop
 *                      spinning (FUT_SPIN_NS) and sleep; each must start.
 *   steal_wake         a task submits 1-3 tasks to its own pool (its ring)
 *                      and busy-waits for them: the other thread of the pool
 *                      must wake, if it slept, and steal them.
 *   shutdown_submit    pool_submit() from a task (its ring) and from outside
 *                      (the injection queue) racing pool_shutdown(), DRAIN
 *                      and CANCEL in turn: every accepted future settles, 0
 *                      with one run or ECANCELED with none (DRAIN: 0), each
 *                      refusal is NULL with ESHUTDOWN and stays so, and
 *                      pool_destroy() returns.
 *
 * The ring races call fut__ring_* directly on rings of their own, with fake
 * future pointers into a static array: a ring never looks at what it holds.
 *
 * Rounds: rounds(ROUNDS), 10,000 times STRESS_SCALE, for the ring races and
 * the stream's items times 10; fewer for the races that cost a wake-up or a
 * pool each round (see main()); a tenth under STRESS_LIGHT (valgrind). Each
 * line prints its rounds, which must be the figure, and the counts of the
 * outcomes on each side of its window.
 *
 * No sleeps: threads meet at spin barriers and busy-wait on flags. Every
 * wait is bounded (LOST_NS) and a time-out is a failure with what was
 * being waited for; an alarm() watchdog turns any other hang (a
 * pool_destroy() that never returns) into exit status 3 naming the race
 * and round.
 */
#include "common.h"
#include "pool_internal.h" /* struct fut__ring and fut__ring_*() */

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS       10000
#define LOST_NS      (10 * UINT64_C(1000000000)) /* a bounded wait's limit */
#define WATCHDOG_S   120
#define SPAWN_CAP    400 /* submissions per submitter per shutdown round */

static long light_div = 1; /* 10 under STRESS_LIGHT */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void busy_until(uint64_t t)
{
    while (now_ns() < t)
        fut__cpu_relax();
}

/* Busy-waits about @n steps of a nanosecond or so (the fence keeps the
 * compiler from folding the loop away): moves one side of a race. */
static void spin(long n)
{
    for (long k = 0; k < n; k++)
        atomic_signal_fence(memory_order_seq_cst);
}

/* Spins until *@flag == @want or LOST_NS pass; true if it got there.
 * Yields after a short tight spin: on two CPUs the thread that turns the
 * flag may be waiting for this one's. */
static bool wait_int(atomic_int *flag, int want)
{
    uint64_t until = 0;
    for (unsigned k = 0; atomic_load(flag) != want; k++) {
        if (k < 256)
            continue;
        if (!until)
            until = now_ns() + LOST_NS;
        else if (k % 64 == 0 && now_ns() > until)
            return false;
        sched_yield();
    }
    return true;
}

/* --------------------------------------------------------- watchdog -- */

static const char *volatile race_name = "start";
static atomic_long race_round;
static uint64_t last_armed;

static void put_str(const char *s)
{
    ssize_t rc = write(2, s, strlen(s));
    (void)rc;
}

static void on_alarm(int sig)
{
    (void)sig;
    char digits[24], *p = digits + sizeof digits;
    *--p = '\0';
    long r = atomic_load_explicit(&race_round, memory_order_relaxed);
    do
        *--p = (char)('0' + r % 10);
    while ((r /= 10) > 0 && p > digits);
    put_str("sched_race: watchdog: ");
    put_str(race_name);
    put_str(" hung in round ");
    put_str(p);
    put_str("\n");
    _exit(3);
}

/* The driver of a race reports progress: re-arms the alarm about once a
 * second, so a round that hangs for WATCHDOG_S seconds fires it. */
static void progress(long round)
{
    atomic_store_explicit(&race_round, round, memory_order_relaxed);
    uint64_t t = now_ns();
    if (t - last_armed > 1000000000u) {
        last_armed = t;
        alarm(WATCHDOG_S);
    }
}

static void start_race(const char *name)
{
    race_name = name;
    last_armed = 0;
    progress(0);
}

/* ----------------------------------------------------- spin barrier -- */

/*
 * Threads leave a spin barrier within nanoseconds of each other when they
 * are all on a CPU, which pthread_barrier_wait()'s futex wake-ups do not
 * give: the ring races need both sides to arrive together. With more
 * parties than CPUs, a long spin only burns the time slice the missing
 * party needs (a round then costs a slice, and under TSan far more): such
 * a barrier spins briefly (@short_spin) or blocks.
 */
struct sbar {
    atomic_uint arrived, generation;
    unsigned n, spins;
    bool blocks;
    pthread_barrier_t pb;
};

static void sbar_init(struct sbar *b, unsigned n, bool short_spin)
{
    atomic_store(&b->arrived, 0);
    atomic_store(&b->generation, 0);
    b->n = n;
    bool crowded = (long)n > sysconf(_SC_NPROCESSORS_ONLN);
    b->spins = crowded ? 256 : 16384;
    b->blocks = crowded && !short_spin;
    if (b->blocks)
        CHECK(pthread_barrier_init(&b->pb, NULL, n) == 0, "barrier");
}

static void sbar_destroy(struct sbar *b)
{
    if (b->blocks)
        pthread_barrier_destroy(&b->pb);
}

/* True for the last thread to arrive. */
static bool sbar_wait(struct sbar *b)
{
    if (b->blocks)
        return pthread_barrier_wait(&b->pb) == PTHREAD_BARRIER_SERIAL_THREAD;
    unsigned gen = atomic_load(&b->generation);
    if (atomic_fetch_add(&b->arrived, 1) == b->n - 1) {
        atomic_store(&b->arrived, 0);
        atomic_store(&b->generation, gen + 1);
        return true;
    }
    uint64_t until = 0;
    for (unsigned k = 0; atomic_load(&b->generation) == gen; k++) {
        if (k < b->spins) /* on the CPU a while, then yield */
            continue;
        if (!until)
            until = now_ns() + LOST_NS;
        else if (k % 64 == 0)
            CHECK(now_ns() < until, "%s round %ld: a thread never reached "
                  "the barrier", race_name, atomic_load(&race_round));
        sched_yield();
    }
    return false;
}

/* ---------------------------------------------- the rings' own races -- */

/* Fake futures: distinct addresses the rings store and never follow. */
static char *items;
static long nitems;
#define ITEM(i) ((future_t *)(void *)&items[(i) % nitems])

static struct fut__ring owner_ring, thief_ring[2];

/* tail - head, read the owner's way: never more than the ring holds. */
static unsigned ring_fill(struct fut__ring *r)
{
    unsigned tail = atomic_load(&r->tail);
    unsigned head = atomic_load(&r->head);
    return tail - head;
}

/* ------------------------- 1. steal versus pop on the last element -- */

struct last_race {
    const char *name;
    int parties;      /* 2: owner and thief; 3: and a popping thief */
    long n;
    struct sbar start, end;
    future_t *got[3]; /* what each side took this round */
    uint64_t at[3];   /* when each side made its call */
    long close;       /* rounds where a loser called within 1 us of the
                         winner: the two really raced */
    atomic_long delay; /* > 0: the owner waits; < 0: the thieves do */
    long wins[3];
    uint32_t seed[3];
};

/* Each side's part of one round, after the start barrier. */
static future_t *last_take(struct last_race *r, int side)
{
    long d = atomic_load(&r->delay);
    long jitter = (long)(next_random(&r->seed[side]) % 32);
    if (side == 0 && d > 0)
        spin(d + jitter);
    else if (side > 0 && d < 0)
        spin(-d + jitter);
    else
        spin(jitter);
    r->at[side] = now_ns();
    if (side == 0)
        return fut__ring_pop(&owner_ring);
    if (side == 1)
        return fut__ring_steal(&owner_ring, &thief_ring[0]);
    return fut__ring_pop(&owner_ring);
}

/* Run by the owner after the end barrier: exactly one side took the item. */
static void last_check(struct last_race *r, long i)
{
    int winner = -1;
    for (int s = 0; s < r->parties; s++) {
        if (!r->got[s])
            continue;
        CHECK(r->got[s] == ITEM(i), "%s round %ld: side %d took a wrong item",
              r->name, i, s);
        CHECK(winner < 0, "%s round %ld: sides %d and %d both took the item",
              r->name, i, winner, s);
        winner = s;
    }
    CHECK(winner >= 0, "%s round %ld: nobody took the item", r->name, i);
    CHECK(fut__ring_len(&owner_ring) == 0 &&
              fut__ring_len(&thief_ring[0]) == 0,
          "%s round %ld: items left in a ring (%zu, %zu)", r->name, i,
          fut__ring_len(&owner_ring), fut__ring_len(&thief_ring[0]));
    r->wins[winner]++;
    for (int s = 0; s < r->parties; s++) {
        uint64_t a = r->at[s], b = r->at[winner];
        if (s != winner && (a > b ? a - b : b - a) <= 1000) {
            r->close++;
            break;
        }
    }
    /* Steer towards a tie: hold back whoever won, by a sixteenth more each
     * time it wins again, within 20 us either way. */
    long d = atomic_load(&r->delay);
    long step = 1 + (d < 0 ? -d : d) / 16;
    if (winner == 0 && d < 20000)
        d += step;
    else if (winner != 0 && d > -20000)
        d -= step;
    atomic_store(&r->delay, d);
}

struct last_arg {
    struct last_race *r;
    int side;
};

static void *last_side(void *arg)
{
    struct last_arg *a = arg;
    struct last_race *r = a->r;
    for (long i = 0; i < r->n; i++) {
        if (a->side == 0) {
            progress(i);
            CHECK(fut__ring_push(&owner_ring, ITEM(i), 1), "%s round %ld: push",
                  r->name, i);
        }
        sbar_wait(&r->start);
        r->got[a->side] = last_take(r, a->side);
        sbar_wait(&r->end);
        if (a->side == 0)
            last_check(r, i);
    }
    return NULL;
}

static void ring_last_item(const char *name, int parties, long n)
{
    start_race(name);
    double t0 = (double)now_ns();
    static struct last_race r;
    memset(&r, 0, sizeof r);
    r = (struct last_race){.name = name, .parties = parties, .n = n};
    sbar_init(&r.start, (unsigned)parties, true);
    sbar_init(&r.end, (unsigned)parties, false);
    struct last_arg args[3];
    for (int s = 0; s < parties; s++) {
        args[s] = (struct last_arg){&r, s};
        r.seed[s] = 0x9e3779b9u * (uint32_t)(s + 1);
    }
    run_threads(parties, last_side, args, sizeof args[0]);
    sbar_destroy(&r.start);
    sbar_destroy(&r.end);
    long total = r.wins[0] + r.wins[1] + r.wins[2];
    CHECK(total == n, "%s: %ld rounds checked of %ld", name, total, n);
    printf("sched_race: %-16s %8ld rounds %6.2f s  won by owner pop/"
           "thief steal%s %ld/%ld",
           name, total, ((double)now_ns() - t0) / 1e9,
           parties == 3 ? "/thief pop" : "", r.wins[0], r.wins[1]);
    if (parties == 3)
        printf("/%ld", r.wins[2]);
    printf(", a loser within 1 us %ld\n", r.close);
}

/* ------------------------------------- 0. what one steal takes, alone -- */

/*
 * Single-threaded, every size: a steal from a ring of k items returns the
 * first and moves the next ceil(k/2) - 1, in order, into the thief's ring,
 * or as many as its room allows; the victim keeps the rest, in order.
 */
static void ring_steal_sizes(void)
{
    static struct fut__ring a, b;
    long checked = 0;
    for (unsigned room = 0; room <= FUT_RING_SIZE; room += 1 + room / 2)
        for (unsigned k = 0; k <= FUT_RING_SIZE; k++) {
            fut__ring_init(&a);
            fut__ring_init(&b);
            for (unsigned j = 0; j < FUT_RING_SIZE - room; j++)
                CHECK(fut__ring_push(&b, ITEM(nitems - 1), 1), "fill");
            for (unsigned j = 0; j < k; j++)
                CHECK(fut__ring_push(&a, ITEM(j), 1), "push %u of %u", j, k);
            future_t *f = fut__ring_steal(&a, &b);
            unsigned want = k - k / 2; /* taken, the returned one included */
            if (want > room + 1)
                want = room + 1;
            CHECK(k ? f == ITEM(0) : f == NULL, "steal of %u: wrong first",
                  k);
            CHECK(fut__ring_len(&a) == k - want &&
                      fut__ring_len(&b) == FUT_RING_SIZE - room + want - !!k,
                  "steal of %u with room %u: left %zu, moved to %zu", k,
                  room, fut__ring_len(&a), fut__ring_len(&b));
            for (unsigned j = 0; j < FUT_RING_SIZE - room; j++)
                fut__ring_pop(&b);
            for (unsigned j = 1; j < want; j++)
                CHECK(fut__ring_pop(&b) == ITEM(j), "moved out of order");
            for (unsigned j = want; j < k; j++)
                CHECK(fut__ring_pop(&a) == ITEM(j), "kept out of order");
            CHECK(!fut__ring_pop(&a) && !fut__ring_pop(&b), "left over");
            checked++;
        }
    printf("sched_race: %-16s %8ld cases           every size 0-%d, "
           "thief's room 0-%d\n",
           "ring_steal_sizes", checked, FUT_RING_SIZE, FUT_RING_SIZE);
}

/* --------------------- 2. steal versus push and pop over a stream -- */

struct stream {
    long n;                 /* items */
    atomic_uchar *taken;    /* per item: how many times taken */
    atomic_long total;      /* items taken */
    atomic_int pause;       /* the owner asks the thieves to hold off */
    atomic_int paused;      /* thieves holding off */
    struct sbar start;      /* all three begin together */
    /* Counts, each written by one thread. */
    long owner_pops, kept_forced, kept_racing, forced_fills;
    long steals[2], stolen_moved[2], thief_pops[2], room_limited[2];
    long wraps;
};

static struct stream st;

static void take(future_t *f, const char *who)
{
    long idx = (long)((char *)(void *)f - items);
    CHECK(idx >= 0 && idx < st.n, "%s took a pointer that was never pushed",
          who);
    unsigned char before = atomic_fetch_add(&st.taken[idx], 1);
    CHECK(before == 0, "item %ld taken twice (the second time by %s)", idx,
          who);
    atomic_fetch_add(&st.total, 1);
}

static void check_fill(struct fut__ring *r, const char *which)
{
    unsigned fill = ring_fill(r);
    CHECK(fill <= FUT_RING_SIZE, "%s ring holds %u items", which, fill);
}

/* The owner takes @i itself: push refused it. */
static void keep(long i, bool forced)
{
    CHECK(fut__ring_len(&owner_ring) == FUT_RING_SIZE || !forced,
          "push refused item %ld with %zu in the ring", i,
          fut__ring_len(&owner_ring));
    take(ITEM(i), "owner (kept)");
    if (forced)
        st.kept_forced++;
    else
        st.kept_racing++;
}

/* Fills the ring with the thieves held off: push must refuse exactly the
 * item after the FUT_RING_SIZE-th. Returns the next item. */
static long forced_fill(long i)
{
    atomic_store(&st.pause, 1);
    CHECK(wait_int(&st.paused, 2), "ring_stream: thieves never paused");
    size_t before = fut__ring_len(&owner_ring);
    long pushed = 0;
    for (; i < st.n; i++, pushed++) {
        if (!fut__ring_push(&owner_ring, ITEM(i), 1)) {
            CHECK((size_t)pushed == FUT_RING_SIZE - before,
                  "push refused after %ld items with %zu already in",
                  pushed, before);
            keep(i++, true);
            st.forced_fills++;
            break;
        }
        check_fill(&owner_ring, "owner's");
    }
    atomic_store(&st.pause, 0);
    return i;
}

/* Takes what remains anywhere until every item is taken, or fails with the
 * first few that were lost. */
static void owner_finish(void)
{
    uint64_t until = now_ns() + LOST_NS;
    future_t *f;
    while (atomic_load(&st.total) < st.n) {
        if ((f = fut__ring_pop(&owner_ring)) != NULL) {
            take(f, "owner (final pop)");
            continue;
        }
        for (int t = 0; t < 2; t++)
            if ((f = fut__ring_steal(&thief_ring[t], &owner_ring)) != NULL)
                take(f, "owner (final steal)");
        if (now_ns() > until) {
            long shown = 0;
            for (long k = 0; k < st.n && shown < 8; k++)
                if (atomic_load(&st.taken[k]) == 0) {
                    fprintf(stderr, "ring_stream: item %ld never taken\n", k);
                    shown++;
                }
            CHECK(false, "ring_stream: %ld of %ld items taken; rings hold "
                  "%zu/%zu/%zu",
                  atomic_load(&st.total), st.n, fut__ring_len(&owner_ring),
                  fut__ring_len(&thief_ring[0]), fut__ring_len(&thief_ring[1]));
        }
        sched_yield();
    }
}

/*
 * The owner goes in phases of 1024 items: fast ones, where it pushes as
 * fast as it can and the ring fills whenever the thieves fall behind, and
 * paced ones, where it waits a little after each push so the thieves keep
 * the ring nearly empty and fight it over the last items.
 */
static void *stream_owner(void *arg)
{
    uint32_t seed = 0x12345u;
    (void)arg;
    long fill_every = FUT_RING_SIZE * 16;
    bool paced = false;
    sbar_wait(&st.start);
    for (long i = 0; i < st.n;) {
        if (i % 1024 == 0) {
            progress(i);
            paced = next_random(&seed) % 2;
        }
        if (paced)
            spin(next_random(&seed) % 512);
        if (i > 0 && i % fill_every == 0) {
            i = forced_fill(i);
            continue;
        }
        if (fut__ring_push(&owner_ring, ITEM(i), 1)) {
            check_fill(&owner_ring, "owner's");
        } else {
            keep(i, false);
            if (st.kept_racing % 8 == 0) /* the thieves may need the CPU */
                sched_yield();
        }
        i++;
        uint32_t r = next_random(&seed);
        /* Pop about one item in four; now and then a run of them. */
        int pops = r % 4 == 0 ? 1 : r % 64 == 1 ? (int)(r >> 8) % 32 : 0;
        for (future_t *f; pops-- > 0 && (f = fut__ring_pop(&owner_ring));) {
            take(f, "owner (pop)");
            st.owner_pops++;
        }
    }
    st.wraps = st.n / FUT_RING_SIZE;
    owner_finish();
    return NULL;
}

/* A thief's turn: steal from the owner (or the other thief), pop now and
 * then from the owner directly, and drain its own ring lazily, so that it
 * fills up and steals are limited by its room. */
static bool thief_turn(int t, uint32_t *seed, bool hoard)
{
    struct fut__ring *mine = &thief_ring[t];
    uint32_t r = next_random(seed);
    future_t *f;
    if (r % 8 == 0) {
        if ((f = fut__ring_pop(&owner_ring)) != NULL) {
            take(f, "thief (pop of the owner's)");
            st.thief_pops[t]++;
        }
    } else {
        struct fut__ring *victim = r % 8 == 1 ? &thief_ring[1 - t]
                                              : &owner_ring;
        size_t had = fut__ring_len(mine);
        if ((f = fut__ring_steal(victim, mine)) != NULL) {
            take(f, "thief (steal)");
            st.steals[t]++;
            size_t now = fut__ring_len(mine);
            st.stolen_moved[t] += (long)(now > had ? now - had : 0);
            if (had == FUT_RING_SIZE)
                st.room_limited[t]++;
            check_fill(mine, "a thief's");
        }
    }
    bool found = f != NULL;
    int drain = hoard                ? (r >> 8) % 8 == 0
                : (r >> 8) % 4 == 0 ? FUT_RING_SIZE
                                     : (int)(r >> 12) % 3;
    while (drain-- > 0 && (f = fut__ring_pop(mine)) != NULL) {
        take(f, "thief (pop of its own)");
        found = true;
    }
    return found;
}

struct thief_arg {
    int t;
};

static void *stream_thief(void *arg)
{
    int t = ((struct thief_arg *)arg)->t;
    uint32_t seed = 0xabcdefu + (uint32_t)t * 7919u;
    uint64_t until = 0;
    unsigned idle = 0, turns = 0;
    bool hoard = false;
    sbar_wait(&st.start);
    while (atomic_load(&st.total) < st.n) {
        if (atomic_load(&st.pause)) {
            atomic_fetch_add(&st.paused, 1);
            CHECK(wait_int(&st.pause, 0), "ring_stream: never unpaused");
            atomic_fetch_sub(&st.paused, 1);
            continue;
        }
        /* Found nothing: let the owner have the CPU, which on a machine
         * with fewer CPUs than threads it may be waiting for. */
        /* Now and then a thief hoards for a while: it barely drains its
         * ring, which fills, and its steals are cut to its room. */
        if (++turns % 4096 == 0)
            hoard = next_random(&seed) % 4 == 0;
        if (!thief_turn(t, &seed, hoard) && ++idle % 16 == 0)
            sched_yield();
        /* Bounded: all items taken is the only way out. */
        if ((seed & 0xfff) == 0) {
            if (!until)
                until = now_ns() + 20 * LOST_NS;
            CHECK(now_ns() < until || atomic_load(&st.total) == st.n,
                  "ring_stream: thief %d: %ld of %ld taken after %.0f s", t,
                  atomic_load(&st.total), st.n, 20 * LOST_NS / 1e9);
        }
    }
    return NULL;
}

static void *stream_side(void *arg)
{
    int side = *(int *)arg;
    if (side == 0)
        return stream_owner(NULL);
    struct thief_arg a = {side - 1};
    return stream_thief(&a);
}

static void ring_stream(long n)
{
    start_race("ring_stream");
    double t0 = (double)now_ns();
    CHECK(n <= nitems, "stream of %ld items", n);
    memset(&st, 0, sizeof st);
    st.n = n;
    sbar_init(&st.start, 3, false);
    st.taken = calloc((size_t)n, sizeof *st.taken);
    CHECK(st.taken, "calloc");
    int sides[3] = {0, 1, 2};
    run_threads(3, stream_side, sides, sizeof sides[0]);
    sbar_destroy(&st.start);
    for (long k = 0; k < n; k++)
        CHECK(atomic_load(&st.taken[k]) == 1, "item %ld taken %d times", k,
              atomic_load(&st.taken[k]));
    CHECK(atomic_load(&st.total) == n, "%ld taken of %ld",
          atomic_load(&st.total), n);
    for (int r = 0; r < 3; r++) {
        struct fut__ring *ring = r ? &thief_ring[r - 1] : &owner_ring;
        CHECK(fut__ring_len(ring) == 0, "ring %d not empty", r);
    }
    free(st.taken);
    printf("sched_race: %-16s %8ld items  %6.2f s  %ld wraps; owner pops %ld,"
           " kept when full %ld forced + %ld racing; steals %ld+%ld moving "
           "%ld+%ld, %ld+%ld into a full ring; thief pops %ld+%ld\n",
           "ring_stream", n, ((double)now_ns() - t0) / 1e9, st.wraps,
           st.owner_pops, st.kept_forced, st.kept_racing, st.steals[0],
           st.steals[1], st.stolen_moved[0], st.stolen_moved[1],
           st.room_limited[0], st.room_limited[1], st.thief_pops[0],
           st.thief_pops[1]);
    CHECK(st.forced_fills > 0 && st.wraps >= 30,
          "the stream never filled the ring or wrapped enough");
    CHECK(st.steals[0] + st.steals[1] > 0, "no steal succeeded");
}

/* ------------------------------------------- 3. parking versus waking -- */

static atomic_ullong last_end; /* when the last trivial task ended */

struct stamp {
    uint64_t started;
};

static int stamp_task(void *arg, void **result)
{
    struct stamp *s = arg;
    s->started = now_ns();
    atomic_store(&last_end, now_ns());
    *result = arg;
    return 0;
}

static void lost(pool_t *pool, const char *race, long i, uint64_t delay,
                 const char *what)
{
    struct pool_stats ps = {0};
    pool_stats(pool, &ps);
    fprintf(stderr,
            "sched_race: %s round %ld (delay %.1f us): %s within %.0f s: "
            "a lost wake-up? pool: %zu threads, %zu queued, %zu running, "
            "%llu completed\n",
            race, i, delay / 1e3, what, LOST_NS / 1e9, ps.threads, ps.queued,
            ps.running, (unsigned long long)ps.completed);
    exit(1);
}

/* The delay after the pool ran out of work: half the rounds anywhere in
 * 0-200 us, half within 10 us of FUT_SPIN_NS, where a thread decides to
 * sleep. */
static uint64_t park_delay(uint32_t *seed)
{
    uint32_t r = next_random(seed);
    if (r & 1)
        return (r >> 1) % 200000;
    return FUT_SPIN_NS - 10000 + (r >> 1) % 20000;
}

static void park_wake(const char *name, size_t nthreads, long n)
{
    start_race(name);
    double t0 = (double)now_ns();
    pool_t *pool = pool_create(nthreads);
    CHECK(pool, "pool_create(%zu)", nthreads);
    uint32_t seed = 0x2545f491u + (uint32_t)nthreads;
    long spinning = 0, asleep = 0, slow_start = 0, tasks = 0;
    atomic_store(&last_end, now_ns());
    for (long i = 0; i < n; i++) {
        progress(i);
        uint64_t delay = park_delay(&seed);
        busy_until(atomic_load(&last_end) + delay);
        int k = 1 + (int)(next_random(&seed) % nthreads);
        struct stamp s[2];
        future_t *f[2];
        uint64_t submitted = now_ns();
        for (int j = 0; j < k; j++)
            CHECK(f[j] = pool_submit(pool, stamp_task, &s[j]),
                  "%s round %ld: pool_submit", name, i);
        for (int j = 0; j < k; j++) {
            if (!future_wait_for(f[j], LOST_NS))
                lost(pool, name, i, delay, "a submitted task never ran");
            void *v = NULL;
            CHECK(future_wait(f[j], &v) == 0 && v == &s[j], "%s round %ld",
                  name, i);
            if (s[j].started - submitted > 20000)
                slow_start++;
            future_release(f[j]);
        }
        tasks += k;
        if (delay < FUT_SPIN_NS)
            spinning++;
        else
            asleep++;
    }
    pool_destroy(pool);
    CHECK(spinning + asleep == n, "%s: %ld rounds of %ld", name,
          spinning + asleep, n);
    printf("sched_race: %-16s %8ld rounds %6.2f s  %ld tasks; submitted "
           "while spinning/after %d us %ld/%ld, started after > 20 us %ld\n",
           name, n, ((double)now_ns() - t0) / 1e9, tasks, FUT_SPIN_NS / 1000,
           spinning, asleep, slow_start);
}

/* ------------------------- 3b. a worker's own work, stolen after a sleep -- */

struct handoff {
    pool_t *pool;
    uint64_t delay;
    int k;                /* inner tasks */
    atomic_int done;      /* inner tasks that ran */
    bool timed_out;
    bool refused;
    pthread_t outer;
    atomic_int same_thread; /* an inner task ran on the busy thread */
    future_t *inner[3];
};

static int inner_task(void *arg, void **result)
{
    struct handoff *h = arg;
    if (pthread_equal(pthread_self(), h->outer))
        atomic_store(&h->same_thread, 1);
    atomic_store(&last_end, now_ns());
    atomic_fetch_add(&h->done, 1);
    *result = NULL;
    return 0;
}

/* Submits to its own pool, so into its ring, then busy-waits (not
 * future_wait(), which would start a stand-in): only a steal by the other
 * thread can run the inner tasks. */
static int outer_task(void *arg, void **result)
{
    struct handoff *h = arg;
    h->outer = pthread_self();
    busy_until(atomic_load(&last_end) + h->delay);
    for (int j = 0; j < h->k; j++)
        h->refused |= !(h->inner[j] = pool_submit(h->pool, inner_task, h));
    h->timed_out = !h->refused && !wait_int(&h->done, h->k);
    *result = NULL;
    return 0;
}

static void steal_wake(long n)
{
    const char *name = "steal_wake";
    start_race(name);
    double t0 = (double)now_ns();
    pool_t *pool = pool_create(2);
    CHECK(pool, "pool_create(2)");
    uint32_t seed = 0x68e31da4u;
    long spinning = 0, asleep = 0, inner = 0;
    atomic_store(&last_end, now_ns());
    for (long i = 0; i < n; i++) {
        progress(i);
        static struct handoff h;
        memset(&h, 0, sizeof h);
        h.pool = pool;
        h.delay = park_delay(&seed);
        h.k = 1 + (int)(next_random(&seed) % 3);
        future_t *f = pool_submit(pool, outer_task, &h);
        CHECK(f, "%s round %ld: pool_submit", name, i);
        if (!future_wait_for(f, 2 * LOST_NS))
            lost(pool, name, i, h.delay, "the outer task did not end");
        CHECK(future_wait(f, NULL) == 0, "%s round %ld", name, i);
        CHECK(!h.refused, "%s round %ld: a submission from a task was refused",
              name, i);
        if (h.timed_out)
            lost(pool, name, i, h.delay,
                 "a task queued in a busy thread's ring was not stolen");
        CHECK(!atomic_load(&h.same_thread),
              "%s round %ld: an inner task ran on the thread busy-waiting "
              "for it",
              name, i);
        for (int j = 0; j < h.k; j++) {
            CHECK(future_wait_for(h.inner[j], LOST_NS) &&
                      future_wait(h.inner[j], NULL) == 0,
                  "%s round %ld: inner task %d", name, i, j);
            future_release(h.inner[j]);
        }
        future_release(f);
        inner += h.k;
        if (h.delay < FUT_SPIN_NS)
            spinning++;
        else
            asleep++;
    }
    pool_destroy(pool);
    printf("sched_race: %-16s %8ld rounds %6.2f s  %ld tasks stolen from a "
           "busy ring; submitted while spinning/after %d us %ld/%ld\n",
           name, spinning + asleep, ((double)now_ns() - t0) / 1e9, inner,
           FUT_SPIN_NS / 1000, spinning, asleep);
    CHECK(spinning + asleep == n, "%s: %ld rounds of %ld", name,
          spinning + asleep, n);
}

/* ----------------------------------------- 4. shutdown versus submit -- */

/* One submission: its future or refusal, and the task's runs. */
struct record {
    future_t *f;
    atomic_int runs;
    int err; /* errno of a refusal */
    int rc;  /* the accepted future's outcome */
};

/* Submitter 0 is a task of the pool (the spawner), 1 a thread outside;
 * each fills its own records in order, and stops at the first refusal or
 * at SPAWN_CAP. */
struct ledger {
    pool_t *pool;
    struct record rec[2][SPAWN_CAP];
    int count[2];
    struct record spawner;
};

static struct ledger led;
static struct sbar shut_start, shut_end;
static atomic_int shut_quit;

static int counted_task(void *arg, void **result)
{
    struct record *r = arg;
    atomic_fetch_add(&r->runs, 1);
    *result = arg;
    return 0;
}

static void submit_until_refused(int who)
{
    for (int j = 0; j < SPAWN_CAP; j++) {
        struct record *r = &led.rec[who][j];
        errno = 0;
        r->f = pool_submit(led.pool, counted_task, r);
        r->err = errno;
        led.count[who] = j + 1;
        if (!r->f)
            return;
    }
}

static int spawner_task(void *arg, void **result)
{
    atomic_fetch_add(&led.spawner.runs, 1);
    submit_until_refused(0);
    *result = arg;
    return 0;
}

static void *outside_submitter(void *arg)
{
    (void)arg;
    for (;;) {
        sbar_wait(&shut_start);
        if (atomic_load(&shut_quit))
            return NULL;
        submit_until_refused(1);
        sbar_wait(&shut_end);
    }
}

struct shut_tally {
    long rounds, accepted, ran, cancelled, refused, capped;
    long spawner_cancelled;
};

/* Settles the account of one record (see the top of the file). */
static void check_record(struct record *r, int mode, long i, const char *who,
                         struct shut_tally *t)
{
    if (!r->f) {
        CHECK(r->err == ESHUTDOWN, "shutdown round %ld: %s refused with "
              "errno %d, not ESHUTDOWN", i, who, r->err);
        CHECK(atomic_load(&r->runs) == 0, "round %ld: a refused task ran", i);
        t->refused++;
        return;
    }
    t->accepted++;
    CHECK(future_wait_for(r->f, LOST_NS), "shutdown round %ld (%s): a future "
          "%s accepted never settled", i, mode ? "cancel" : "drain", who);
    int rc = r->rc = future_wait(r->f, NULL);
    int runs = atomic_load(&r->runs);
    if (rc == 0) {
        CHECK(runs == 1, "round %ld: %s's task settled 0 after %d runs", i,
              who, runs);
        t->ran++;
    } else {
        CHECK(rc == ECANCELED && mode == POOL_CANCEL && runs == 0,
              "round %ld (%s): %s's task settled %d after %d runs", i,
              mode ? "cancel" : "drain", who, rc, runs);
        t->cancelled++;
    }
}

static void shutdown_round(long i, uint32_t *seed, struct shut_tally *t)
{
    int mode = i % 2 ? POOL_CANCEL : POOL_DRAIN;
    size_t nthreads = 1 + (size_t)(i / 2 % 2);
    memset(&led, 0, sizeof led);
    led.pool = pool_create(nthreads);
    CHECK(led.pool, "round %ld: pool_create", i);
    led.spawner.f = pool_submit(led.pool, spawner_task, NULL);
    CHECK(led.spawner.f, "round %ld: pool_submit", i);
    uint64_t delay = next_random(seed) % 150000; /* 0-150 us */
    sbar_wait(&shut_start);
    busy_until(now_ns() + delay);
    pool_shutdown(led.pool, mode);
    sbar_wait(&shut_end);
    /* The spawner stops at its first refusal: its end is the last
     * submission from a task. */
    CHECK(future_wait_for(led.spawner.f, LOST_NS),
          "shutdown round %ld: the spawner never settled", i);
    if (future_wait(led.spawner.f, NULL) == ECANCELED) {
        CHECK(mode == POOL_CANCEL && atomic_load(&led.spawner.runs) == 0,
              "round %ld: spawner cancelled", i);
        t->spawner_cancelled++;
    }
    future_release(led.spawner.f);
    static const char *const who[2] = {"a task", "a thread outside"};
    for (int s = 0; s < 2; s++) {
        int n = led.count[s];
        for (int j = 0; j < n; j++) {
            CHECK(led.rec[s][j].f || j == n - 1, "round %ld: %s was refused,"
                  " then accepted", i, who[s]);
            check_record(&led.rec[s][j], mode, i, who[s], t);
        }
        if (n == SPAWN_CAP && led.rec[s][n - 1].f)
            t->capped++;
    }
    pool_destroy(led.pool); /* the watchdog guards it */
    /* Every thread has gone: a task cancelled yet run late would show. */
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < led.count[s]; j++) {
            struct record *r = &led.rec[s][j];
            int want = r->f && r->rc == 0 ? 1 : 0;
            CHECK(atomic_load(&r->runs) == want, "round %ld: %s's task ran "
                  "%d times after it settled %d", i, who[s],
                  atomic_load(&r->runs), r->rc);
            future_release(r->f);
        }
    t->rounds++;
}

static void shutdown_submit(long n)
{
    start_race("shutdown_submit");
    double t0 = (double)now_ns();
    sbar_init(&shut_start, 2, false);
    sbar_init(&shut_end, 2, false);
    pthread_t helper;
    CHECK(pthread_create(&helper, NULL, outside_submitter, NULL) == 0,
          "thread");
    struct shut_tally t = {0};
    uint32_t seed = 0x5bd1e995u;
    for (long i = 0; i < n; i++) {
        progress(i);
        shutdown_round(i, &seed, &t);
    }
    atomic_store(&shut_quit, 1);
    sbar_wait(&shut_start);
    pthread_join(helper, NULL);
    sbar_destroy(&shut_start);
    sbar_destroy(&shut_end);
    CHECK(t.rounds == n, "shutdown_submit: %ld rounds of %ld", t.rounds, n);
    CHECK(t.accepted == t.ran + t.cancelled, "accounts");
    printf("sched_race: %-16s %8ld rounds %6.2f s  accepted %ld = ran %ld + "
           "cancelled %ld, refused %ld; spawner cancelled %ld, submitters "
           "capped %ld\n",
           "shutdown_submit", n, ((double)now_ns() - t0) / 1e9, t.accepted,
           t.ran, t.cancelled, t.refused, t.spawner_cancelled, t.capped);
}

/* ------------------------------------------------------------ main -- */

int main(void)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    if (getenv("STRESS_LIGHT"))
        light_div = 10;
    double t0 = (double)now_ns();
    long n = rounds(ROUNDS) / light_div;
    nitems = n * 10;
    items = malloc((size_t)nitems);
    CHECK(items, "malloc");
    ring_steal_sizes();
    fut__ring_init(&owner_ring);
    fut__ring_init(&thief_ring[0]);
    fut__ring_init(&thief_ring[1]);

    ring_last_item("ring_last_item", 2, n);
    ring_last_item("ring_last_item3", 3, n);
    ring_stream(nitems);
    park_wake("park_wake_1", 1, n * 4 / 10);
    park_wake("park_wake_2", 2, n * 4 / 10);
    steal_wake(n * 4 / 10);
    shutdown_submit(n / 5);
    alarm(0);
    free(items);
    printf("sched_race: all races passed, %.2f s\n",
           ((double)now_ns() - t0) / 1e9);
    return 0;
}
