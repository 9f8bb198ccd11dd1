/*
 * shutdown_soak.c - pool_shutdown() loses nothing, with 100,000 tasks
 * pending and submitters racing it.
 *
 * Each repetition fills every thread of a new pool with a task blocked at
 * a gate, so everything submitted next is known to be queued, and queues
 * 100,000 tasks behind them (10,000 with STRESS_LIGHT set, for valgrind);
 * every third goes through pool_submit_ex() with a destructor for its
 * argument. Submitter threads then keep submitting, in the same mix, and
 * the main thread shuts the pool down while they do (see `struct race`):
 * POOL_DRAIN and POOL_CANCEL in turn. The gate opens after pool_shutdown() and
 * before pool_destroy(). Every submission has a record of its own, so each one
 * is accounted for afterwards:
 *  - accepted: its future has settled once pool_destroy() returns, and
 *    either the task ran exactly once and succeeded with its argument, or
 *    it never ran and the future failed with ECANCELED;
 *  - refused: NULL with errno ESHUTDOWN, the task never ran, and for
 *    pool_submit_ex() its destructor had already run when the call
 *    returned; every submission after a refusal is refused too.
 * Every pool_submit_ex() destructor runs exactly once, whatever the path.
 * POOL_DRAIN runs every accepted task (ran == accepted); POOL_CANCEL
 * cancels every one, since all were still queued behind the gate (ran == 0,
 * so ran + cancelled == accepted).
 *
 * A watchdog (alarm(), re-armed per repetition) turns a hang into exit
 * status 3 with the repetition and the step it hung in; a failed check
 * exits with status 1. Nothing sleeps: gates, condition variables, joins
 * and one spin on an atomic counter order every step.
 *
 * Size: rounds(2) repetitions per mode, so 2 + 2 at STRESS_SCALE=1 (what
 * CI runs under ThreadSanitizer and valgrind) and the long soak, 1000
 * repetitions per mode, at STRESS_SCALE=500.
 */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TASKS         100000 /* queued behind the gate per repetition */
#define TASKS_LIGHT   10000  /* the same under STRESS_LIGHT (valgrind) */
#define SUBMITTERS    2      /* threads racing the shutdown */
#define WARM_UP       64     /* accepted from each before the shutdown */
#define BUDGET        16384  /* at most, before pool_shutdown() returned */
#define AFTER_REFUSAL 3      /* submissions after the first refusal */
#define WATCHDOG_S    60     /* per repetition; even valgrind needs ~2 s */

/* -------------------------------------------------------------- gate -- */

/* Holds the pool's threads: each gated task counts itself in, then waits. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
    int started;
};

static void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = false;
    g->started = 0;
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_await_started(struct gate *g, int n)
{
    pthread_mutex_lock(&g->lock);
    while (g->started < n)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

static int gated_task(void *arg, void **result)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->lock);
    g->started++;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    *result = arg;
    return 0;
}

/* ------------------------------------------------------------ ledger -- */

/* One submission: its future (NULL if refused) and what happened to it. */
struct rec {
    future_t *f;
    int error;  /* errno of a refused submission */
    bool owned; /* went through pool_submit_ex() */
    atomic_int runs, frees;
};

/* A thread's records, in chunks so a record never moves while a task
 * holds a pointer to it. */
enum { CHUNK = 4096 };

struct chunk {
    struct chunk *next;
    size_t n;
    struct rec r[CHUNK];
};

struct ledger {
    struct chunk *head; /* the newest chunk */
};

static struct rec *ledger_add(struct ledger *l)
{
    if (!l->head || l->head->n == CHUNK) {
        struct chunk *c = malloc(sizeof *c);
        CHECK(c, "out of memory");
        c->next = l->head;
        c->n = 0;
        l->head = c;
    }
    struct rec *r = &l->head->r[l->head->n++];
    atomic_init(&r->runs, 0);
    atomic_init(&r->frees, 0);
    return r;
}

static atomic_long arg_free_calls;

static int count_run(void *arg, void **result)
{
    struct rec *r = arg;
    atomic_fetch_add(&r->runs, 1);
    *result = arg;
    return 0;
}

static void count_free(void *arg)
{
    struct rec *r = arg;
    atomic_fetch_add(&r->frees, 1);
    atomic_fetch_add(&arg_free_calls, 1);
}

/* Submits the @i-th task of a thread; every third owns its argument. */
static struct rec *submit_one(pool_t *pool, struct ledger *l, long i)
{
    struct rec *r = ledger_add(l);
    r->owned = i % 3 == 0;
    r->f = r->owned ? pool_submit_ex(pool, count_run, r, count_free)
                    : pool_submit(pool, count_run, r);
    r->error = r->f ? 0 : errno;
    return r;
}

static void check_refused(const struct rec *r)
{
    CHECK(r->error == ESHUTDOWN, "refused with errno %d", r->error);
    CHECK(atomic_load(&r->frees) == (r->owned ? 1 : 0),
          "pool_submit_ex() refused with its arg_free run %d times",
          atomic_load(&r->frees));
}

/* -------------------------------------------------------- submitters -- */

/*
 * The race. The main thread sets GO; each submitter submits, and counts
 * itself in `ready` after its first WARM_UP submissions (all accepted: the
 * pool is still open); once all have, the main thread calls pool_shutdown()
 * while they are still submitting, then sets SHUT. A submitter submits until
 * refused. It is held to BUDGET submissions before SHUT, so a scheduler
 * that starves the main thread (valgrind's) cannot make it queue millions;
 * one that reached the budget waits for SHUT and so did not race this time.
 */
enum { WAIT, GO, SHUT };

struct race {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int phase; /* written under the lock */
    atomic_int ready; /* submitters past WARM_UP */
};

static void race_init(struct race *r)
{
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    atomic_init(&r->phase, WAIT);
    atomic_init(&r->ready, 0);
}

static void race_set(struct race *r, int phase)
{
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->phase, phase);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void race_await(struct race *r, int phase)
{
    pthread_mutex_lock(&r->lock);
    while (atomic_load(&r->phase) < phase)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

static void race_destroy(struct race *r)
{
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
}

struct submitter {
    pthread_t thread;
    pool_t *pool;
    struct race *race;
    struct ledger ledger;
    bool raced; /* was still submitting when pool_shutdown() took effect */
};

/* Submits until refused, then a few more that must be refused too. */
static void *submit_until_refused(void *arg)
{
    struct submitter *s = arg;
    race_await(s->race, GO);
    s->raced = true;
    long i = 0;
    for (;; i++) {
        int phase = atomic_load(&s->race->phase);
        if (phase < SHUT && i >= BUDGET) {
            race_await(s->race, SHUT);
            phase = SHUT;
            s->raced = false;
        }
        struct rec *r = submit_one(s->pool, &s->ledger, i);
        if (r->f) {
            CHECK(phase < SHUT, "accepted after pool_shutdown() returned");
        } else {
            CHECK(i >= WARM_UP, "refused before pool_shutdown()");
            check_refused(r);
            break;
        }
        if (i + 1 == WARM_UP)
            atomic_fetch_add(&s->race->ready, 1);
    }
    for (long k = 1; k <= AFTER_REFUSAL; k++) {
        struct rec *r = submit_one(s->pool, &s->ledger, i + k);
        CHECK(!r->f, "accepted after a refusal");
        check_refused(r);
    }
    return NULL;
}

static void start_submitters(struct submitter *s, pool_t *pool,
                             struct race *race)
{
    for (int i = 0; i < SUBMITTERS; i++) {
        s[i] = (struct submitter){.pool = pool, .race = race};
        int rc =
            pthread_create(&s[i].thread, NULL, submit_until_refused, &s[i]);
        CHECK(rc == 0, "pthread_create: %d", rc);
    }
    race_set(race, GO);
    /* Spinning, not sleeping: a wake-up would come too late to race. */
    while (atomic_load(&race->ready) < SUBMITTERS)
        sched_yield();
}

/* ---------------------------------------------------------- watchdog -- */

static const char *const step_names[] = {
    "starting the pool and saturating it\n",
    "queueing the pending tasks\n",
    "starting the submitters\n",
    "pool_shutdown()\n",
    "pool_destroy()\n",
    "joining the submitters\n",
    "checking the outcomes\n",
};
enum step { START, QUEUE, WARM, SHUTDOWN, DESTROY, JOIN, VERIFY };

static char watchdog_msg[96]; /* written before the alarm is armed */
static volatile sig_atomic_t step;

static void watchdog(int sig)
{
    (void)sig;
    const char *name = step_names[step];
    ssize_t rc = write(2, watchdog_msg, strlen(watchdog_msg));
    rc = write(2, name, strlen(name));
    (void)rc;
    _exit(3);
}

static void arm_watchdog(long rep, const char *mode)
{
    alarm(0);
    snprintf(watchdog_msg, sizeof watchdog_msg,
             "shutdown_soak: watchdog: repetition %ld (%s) hung %d s in ", rep,
             mode, WATCHDOG_S);
    step = START;
    alarm(WATCHDOG_S);
}

/* ------------------------------------------------------- repetitions -- */

struct tally {
    long submitted, accepted, ran, cancelled, refused, owned, freed;
    long raced; /* submitters still submitting as the shutdown hit */
};

/* Accounts for every record of @l (see the top of the file), frees it. */
static void settle_ledger(struct ledger *l, struct tally *t)
{
    struct chunk *c = l->head;
    while (c) {
        for (size_t i = 0; i < c->n; i++) {
            struct rec *r = &c->r[i];
            int runs = atomic_load(&r->runs), frees = atomic_load(&r->frees);
            t->submitted++;
            t->owned += r->owned;
            t->freed += frees;
            CHECK(frees == (r->owned ? 1 : 0), "arg_free ran %d times", frees);
            if (!r->f) {
                CHECK(runs == 0, "a refused task ran %d times", runs);
                t->refused++;
                continue;
            }
            t->accepted++;
            CHECK(future_is_ready(r->f), "unsettled after pool_destroy()");
            void *value = NULL;
            int rc = future_wait(r->f, &value);
            if (rc == 0) {
                CHECK(runs == 1 && value == r, "ran %d times, value %p", runs,
                      value);
                t->ran++;
            } else {
                CHECK(rc == ECANCELED, "task failed with %d", rc);
                CHECK(runs == 0, "a cancelled task ran %d times", runs);
                t->cancelled++;
            }
            future_release(r->f);
        }
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    l->head = NULL;
}

static void tally_add(struct tally *sum, const struct tally *t)
{
    sum->submitted += t->submitted;
    sum->accepted += t->accepted;
    sum->ran += t->ran;
    sum->cancelled += t->cancelled;
    sum->refused += t->refused;
    sum->owned += t->owned;
    sum->freed += t->freed;
    sum->raced += t->raced;
}

/* Fills each of @pool's threads with a gated task; returns their count. */
static int saturate(pool_t *pool, struct gate *g, future_t **gated, int max)
{
    struct pool_stats st;
    CHECK(pool_stats(pool, &st) == 0, "pool_stats");
    int n = (int)st.threads; /* fewer than asked if some failed to start */
    CHECK(n >= 1 && n <= max, "%d threads", n);
    for (int i = 0; i < n; i++) {
        gated[i] = pool_submit(pool, gated_task, g);
        CHECK(gated[i], "gated task: errno %d", errno);
    }
    gate_await_started(g, n);
    return n;
}

static void queue_pending(pool_t *pool, struct ledger *l, long ntasks,
                          int nthreads)
{
    for (long i = 0; i < ntasks; i++) {
        struct rec *r = submit_one(pool, l, i);
        CHECK(r->f, "task %ld refused by an open pool: errno %d", i, r->error);
    }
    struct pool_stats st;
    CHECK(pool_stats(pool, &st) == 0, "pool_stats");
    CHECK(st.queued == (size_t)ntasks && st.running == (size_t)nthreads,
          "%zu queued, %zu running: not all pending", st.queued, st.running);
}

/* One repetition; adds its figures to @sum and returns its seconds. */
static double repetition(long rep, int mode, long ntasks, struct tally *sum)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    arm_watchdog(rep, mode == POOL_DRAIN ? "drain" : "cancel");
    enum { MAX_THREADS = 3 };
    pool_t *pool = pool_create(1 + (size_t)(rep / 2) % MAX_THREADS);
    CHECK(pool, "pool_create: errno %d", errno);
    struct gate g;
    gate_init(&g);
    future_t *gated[MAX_THREADS];
    int nthreads = saturate(pool, &g, gated, MAX_THREADS);

    step = QUEUE;
    struct ledger pending = {0};
    queue_pending(pool, &pending, ntasks, nthreads);

    step = WARM;
    struct submitter subs[SUBMITTERS];
    struct race race;
    race_init(&race);
    start_submitters(subs, pool, &race);

    step = SHUTDOWN;
    pool_shutdown(pool, mode);
    race_set(&race, SHUT);
    gate_open(&g);
    step = DESTROY;
    pool_destroy(pool);
    step = JOIN;
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_join(subs[i].thread, NULL);

    step = VERIFY;
    for (int i = 0; i < nthreads; i++) {
        void *value = NULL;
        CHECK(future_wait(gated[i], &value) == 0 && value == &g,
              "gated task %d", i);
        future_release(gated[i]);
    }
    struct tally t = {0};
    settle_ledger(&pending, &t);
    for (int i = 0; i < SUBMITTERS; i++) {
        settle_ledger(&subs[i].ledger, &t);
        t.raced += subs[i].raced;
    }
    CHECK(t.refused >= SUBMITTERS * (1 + AFTER_REFUSAL), "%ld refused",
          t.refused);
    CHECK(t.accepted == t.ran + t.cancelled,
          "%ld accepted != %ld ran + %ld cancelled", t.accepted, t.ran,
          t.cancelled);
    if (mode == POOL_DRAIN)
        CHECK(t.ran == t.accepted, "drain: %ld of %ld accepted ran", t.ran,
              t.accepted);
    else
        CHECK(t.ran == 0 && t.cancelled == t.accepted,
              "cancel: %ld of %ld accepted ran, %ld cancelled", t.ran,
              t.accepted, t.cancelled);
    CHECK(t.freed == t.owned, "%ld arg_free calls for %ld owned", t.freed,
          t.owned);
    tally_add(sum, &t);

    race_destroy(&race);
    gate_destroy(&g);
    alarm(0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

int main(void)
{
    struct sigaction sa = {.sa_handler = watchdog};
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");

    const char *light = getenv("STRESS_LIGHT");
    long ntasks = light && *light ? TASKS_LIGHT : TASKS;
    long reps = rounds(2); /* per mode */
    struct tally sum = {0};
    double max_s = 0;
    for (long rep = 0; rep < 2 * reps; rep++) {
        int mode = rep % 2 ? POOL_CANCEL : POOL_DRAIN;
        double s = repetition(rep, mode, ntasks, &sum);
        if (s > max_s)
            max_s = s;
    }
    CHECK(sum.accepted + sum.refused == sum.submitted, "%ld + %ld != %ld",
          sum.accepted, sum.refused, sum.submitted);
    CHECK(atomic_load(&arg_free_calls) == sum.owned,
          "%ld arg_free calls for %ld owned arguments",
          atomic_load(&arg_free_calls), sum.owned);
    printf("shutdown_soak: %ld repetitions per mode, %ld pending each; %ld "
           "submitted: %ld ran + %ld cancelled = %ld accepted, %ld refused; "
           "%ld arg_free calls for %ld owned; %ld of %ld submitters raced "
           "the shutdown; max repetition %.3f s\n",
           reps, ntasks, sum.submitted, sum.ran, sum.cancelled, sum.accepted,
           sum.refused, atomic_load(&arg_free_calls), sum.owned, sum.raced,
           2 * reps * SUBMITTERS, max_s);
    return 0;
}
