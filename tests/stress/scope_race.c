/*
 * scope_race.c - scopes under contention, for TSan and valgrind:
 *
 *   fan_in         four threads submit to one scope with a limit that a
 *                  fifth keeps changing; the join sees every task run,
 *                  and no more than the highest limit ever ran at once.
 *   cancel_races   a scope cancelled by hand, or by a failing task, while
 *                  tasks are submitted, waiting, queued and running: every
 *                  future settles, ran + cancelled adds up, and nothing
 *                  runs after the join returned.
 *   nested         scopes three deep, the top cancelled at a random
 *                  moment or released without a join.
 */
#include "common.h"

#include <errno.h>
#include <sched.h>

struct counts {
    atomic_int now, peak, ran;
};

static int counted(void *arg, void **result)
{
    struct counts *c = arg;
    int now = atomic_fetch_add(&c->now, 1) + 1;
    int peak = atomic_load(&c->peak);
    while (now > peak && !atomic_compare_exchange_weak(&c->peak, &peak, now))
        ;
    sched_yield();
    atomic_fetch_sub(&c->now, 1);
    atomic_fetch_add(&c->ran, 1);
    *result = NULL;
    return 0;
}

struct submitter {
    scope_t *s;
    struct counts *c;
    int n;
};

static void *submit_many(void *arg)
{
    struct submitter *sb = arg;
    for (int i = 0; i < sb->n; i++) {
        future_t *f = scope_submit(sb->s, counted, sb->c);
        CHECK(f != NULL, "submit");
        future_release(f);
    }
    return NULL;
}

struct limiter {
    scope_t *s;
    atomic_bool stop;
};

static void *change_limit(void *arg)
{
    struct limiter *l = arg;
    uint32_t seed = 99;
    while (!atomic_load(&l->stop))
        scope_set_limit(l->s, 1 + next_random(&seed) % 8);
    return NULL;
}

static void fan_in(pool_t *pool, long rounds_n)
{
    for (long r = 0; r < rounds_n; r++) {
        struct counts c = {0};
        scope_t *s = scope_create(pool);
        scope_set_limit(s, 8);
        struct limiter l = {s, false};
        pthread_t lt;
        pthread_create(&lt, NULL, change_limit, &l);
        struct submitter sb[4];
        for (int i = 0; i < 4; i++)
            sb[i] = (struct submitter){s, &c, 500};
        run_threads(4, submit_many, sb, sizeof sb[0]);
        atomic_store(&l.stop, true);
        pthread_join(lt, NULL);
        CHECK(scope_join(s) == 0, "round %ld", r);
        CHECK(atomic_load(&c.ran) == 2000, "round %ld: ran %d", r,
              atomic_load(&c.ran));
        CHECK(atomic_load(&c.peak) <= 8, "round %ld: peak %d", r,
              atomic_load(&c.peak));
        scope_release(s);
    }
    printf("fan_in         %ld rounds of 4 x 500 tasks, limit changing\n",
           rounds_n);
}

static int fails_late(void *arg, void **result)
{
    (void)result;
    for (int i = (int)P2U(arg); i > 0; i--)
        sched_yield();
    return EIO;
}

static void cancel_races(pool_t *pool, long rounds_n)
{
    uint32_t seed = 4242;
    long by_hand = 0, by_failure = 0;
    for (long r = 0; r < rounds_n; r++) {
        struct counts c = {0};
        scope_t *s = scope_create(pool);
        scope_set_limit(s, 1 + next_random(&seed) % 4);
        bool hand = next_random(&seed) % 2;
        future_t *fs[64];
        int cut = (int)(next_random(&seed) % 64);
        for (int i = 0; i < 64; i++) {
            if (i == cut) {
                if (hand)
                    scope_cancel(s);
                else
                    future_release(scope_submit(
                        s, fails_late, U2P(next_random(&seed) % 50)));
            }
            fs[i] = scope_submit(s, counted, &c);
            CHECK(fs[i] != NULL, "submit");
        }
        int error = scope_join(s);
        int ran_at_join = atomic_load(&c.ran);
        CHECK(error == (hand ? ECANCELED : EIO) || (!hand && error == 0),
              "round %ld: join %d", r, error);
        int ok = 0, cancelled = 0;
        for (int i = 0; i < 64; i++) {
            CHECK(future_is_ready(fs[i]), "round %ld: %d pending", r, i);
            int e = future_wait(fs[i], NULL);
            ok += e == 0;
            cancelled += e == ECANCELED;
            future_release(fs[i]);
        }
        CHECK(ok + cancelled == 64, "round %ld", r);
        CHECK(ok == ran_at_join && atomic_load(&c.ran) == ran_at_join,
              "round %ld: %d ok, %d ran", r, ok, atomic_load(&c.ran));
        by_hand += hand;
        by_failure += !hand;
        scope_release(s);
    }
    printf("cancel_races   %ld rounds: %ld by hand, %ld by a failure\n",
           rounds_n, by_hand, by_failure);
}

struct depth {
    pool_t *pool; /* not the default pool: valgrind wants every thread
                     ended at exit */
    int level;
    atomic_int *deepest;
};

static int nest(void *arg, void **result)
{
    struct depth *d = arg;
    *result = NULL;
    if (d->level == 3) {
        atomic_fetch_add(d->deepest, 1);
        while (!task_cancelled())
            sched_yield();
        return ECANCELED;
    }
    scope_t *child = scope_create(d->pool);
    struct depth deeper[2] = {{d->pool, d->level + 1, d->deepest},
                              {d->pool, d->level + 1, d->deepest}};
    for (int i = 0; i < 2; i++)
        future_release(scope_submit(child, nest, &deeper[i]));
    int error = scope_join(child);
    scope_release(child);
    return error;
}

static void nested(pool_t *pool, long rounds_n)
{
    uint32_t seed = 7;
    for (long r = 0; r < rounds_n; r++) {
        atomic_int deepest = 0;
        scope_t *top = scope_create(pool);
        struct depth d = {pool, 1, &deepest};
        future_t *f = scope_submit(top, nest, &d);
        for (uint32_t spin = next_random(&seed) % 3000; spin; spin--)
            sched_yield();
        if (next_random(&seed) % 2) {
            scope_cancel(top);
            CHECK(scope_join(top) == ECANCELED, "round %ld", r);
            scope_release(top);
        } else {
            scope_release(top); /* cancels, returns at once */
        }
        CHECK(future_wait(f, NULL) == ECANCELED, "round %ld", r);
        future_release(f);
    }
    printf("nested         %ld rounds, three levels\n", rounds_n);
}

int main(void)
{
    bool light = getenv("STRESS_LIGHT") != NULL;
    pool_t *pool = pool_create(2);
    fan_in(pool, rounds(light ? 3 : 30));
    cancel_races(pool, rounds(light ? 100 : 1000));
    nested(pool, rounds(light ? 20 : 200));
    pool_destroy(pool);
    return 0;
}
