/*
 * spec_reliability.c - result destructors, unobserved failures, fork().
 *
 * Black-box tests written from include/futures.h and docs/api.md alone
 * (future_set_result_free, "Unobserved failures", "After fork()", the EAGAIN
 * note of future_then and the EALREADY note of promise_resolve).
 *
 * Interleavings are forced with gates and semaphores. "Nothing happened"
 * checks wait until every future has been freed (the live-futures counter
 * that CheckedTest switches on): a report or a destructor is due at the
 * latest when the last reference goes, so once nothing is alive any report
 * that was going to come has come.
 *
 * Fork tests: the child checks with CHILD_CHECK, which sends the failing
 * line through a pipe and _exit()s; alarm() turns a hang into SIGALRM; the
 * parent waitpid()s and asserts.
 */
#include "spec_helpers.h"

/* Forking under GCC's ASan can hang the child in ASan's own allocator
 * (tests/unit/fork.c explains): the fork tests run without it. */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_UNDER_ASAN 1
#else
#define FORK_UNDER_ASAN 0
#endif

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPEC_S (1000u * SPEC_MS)

/* ------------------------------------------------------------ waiting -- */

static void sem_wait_or_fail(sem_t *s, uint64_t ns, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ns / SPEC_S);
    ts.tv_nsec += (long)(ns % SPEC_S);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc;
    while ((rc = sem_timedwait(s, &ts)) != 0 && errno == EINTR) {
    }
    cr_assert_eq(rc, 0, "timed out waiting for %s", what);
}

/* Wait until every future made in this test has been freed. */
static void wait_quiet(void)
{
    uint64_t deadline = monotonic_ns() + 10 * SPEC_S;
    long live;
    while ((live = fut__live_futures()) != 0 && monotonic_ns() < deadline)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    cr_assert_eq(live, 0, "%ld futures still alive", live);
}

/* ------------------------------------------------- result destructors -- */

#define BOX_MAGIC 0x5eedf00du

/* A value with a marker, so "freed" is visible without freeing memory. */
struct box {
    uint32_t magic;
    atomic_int freed;
};

#define BOX_INIT {BOX_MAGIC, 0}

enum { RF_MAX = 64 };

static struct {
    pthread_mutex_t mu;
    int n;
    void *vals[RF_MAX];
    pthread_t tids[RF_MAX];
    sem_t sem;
    atomic_int other; /* calls of the second destructor */
} rf = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void rf_init(void)
{
    sem_init(&rf.sem, 0, 0);
}

static void rf_record(void *v)
{
    pthread_mutex_lock(&rf.mu);
    if (rf.n < RF_MAX) {
        rf.vals[rf.n] = v;
        rf.tids[rf.n] = pthread_self();
    }
    rf.n++;
    pthread_mutex_unlock(&rf.mu);
    sem_post(&rf.sem);
}

static int rf_count(void)
{
    pthread_mutex_lock(&rf.mu);
    int n = rf.n;
    pthread_mutex_unlock(&rf.mu);
    return n;
}

static int rf_count_of(void *v)
{
    int k = 0;
    pthread_mutex_lock(&rf.mu);
    for (int i = 0; i < rf.n && i < RF_MAX; i++)
        if (rf.vals[i] == v)
            k++;
    pthread_mutex_unlock(&rf.mu);
    return k;
}

/* The destructor: marks a box freed and records the call. */
static void box_free(void *v)
{
    cr_assert_not_null(v, "the result destructor was given NULL");
    struct box *b = v;
    atomic_fetch_add(&b->freed, 1);
    rf_record(v);
}

/* A second destructor, to tell which one ran. */
static void box_free_other(void *v)
{
    atomic_fetch_add(&rf.other, 1);
    (void)v;
}

/* A destructor for non-box values: only records. */
static void any_free(void *v)
{
    cr_assert_not_null(v, "the result destructor was given NULL");
    rf_record(v);
}

static void rf_wait(int n)
{
    for (int i = 0; i < n; i++)
        sem_wait_or_fail(&rf.sem, 10 * SPEC_S, "the result destructor");
}

struct releaser {
    future_t *f;
    pthread_t tid;
};

static void *release_thread(void *arg)
{
    struct releaser *r = arg;
    r->tid = pthread_self();
    future_release(r->f);
    return NULL;
}

CheckedTest(spec_reliability, result_free_runs_once_when_last_ref_goes,
            .timeout = 30)
{
    rf_init();
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    struct box b = BOX_INIT;
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    cr_assert_eq(promise_resolve(pr, &b), 0);
    promise_release(pr);
    spec_expect_value(f, &b);
    future_t *extra = future_retain(f);
    cr_assert_eq(extra, f);
    future_t *third = future_retain(f);
    future_release(f);
    future_release(extra);
    cr_assert_eq(atomic_load(&b.freed), 0, "freed while a reference is held");
    cr_assert_eq(b.magic, BOX_MAGIC);

    /* the last reference goes on another thread: the destructor runs there */
    struct releaser r = {third, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, release_thread, &r), 0);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&b.freed), 1,
                 "not freed by the time the last release returned");
    cr_assert_eq(rf_count(), 1);
    cr_assert_eq(rf.vals[0], &b);
    cr_assert(pthread_equal(rf.tids[0], r.tid),
              "the destructor ran on another thread than the one that "
              "dropped the last reference");
    wait_quiet();
    cr_assert_eq(atomic_load(&b.freed), 1);
}

CheckedTest(spec_reliability, result_free_fire_and_forget_on_pool_thread,
            .timeout = 30)
{
    rf_init();
    pool_t *p = spec_pool(1);
    spec_blocker_t blk;
    spec_blocker_init(&blk);
    future_t *bf;
    spec_saturate(p, &blk, &bf, 1);
    struct box b = BOX_INIT;
    future_t *f = pool_submit(p, spec_value_task, &b);
    cr_assert_not_null(f);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    future_release(f); /* dropped before the task produced its value */
    cr_assert_eq(atomic_load(&b.freed), 0);
    spec_gate_open(&blk.gate);
    rf_wait(1);
    cr_assert_eq(atomic_load(&b.freed), 1);
    cr_assert_not(pthread_equal(rf.tids[0], pthread_self()),
                  "freed on the test thread, which had let go long before");
    pool_destroy(p);
    future_release(bf);
    wait_quiet();
    cr_assert_eq(rf_count(), 1, "the value was freed more than once");
    spec_blocker_destroy(&blk);
}

CheckedTest(spec_reliability, result_free_set_after_success, .timeout = 30)
{
    rf_init();
    struct box a = BOX_INIT, b = BOX_INIT;
    future_t *f = future_resolved(&a);
    cr_assert_not_null(f);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    spec_expect_value(f, &a);
    future_release(f);
    cr_assert_eq(atomic_load(&a.freed), 1);

    pool_t *p = spec_pool(1);
    future_t *g = pool_submit(p, spec_value_task, &b);
    cr_assert_not_null(g);
    spec_expect_value(g, &b); /* settled before the destructor is set */
    cr_assert_eq(future_set_result_free(g, box_free), 0);
    future_release(g);
    rf_wait(2);
    cr_assert_eq(atomic_load(&b.freed), 1);
    pool_destroy(p);
    wait_quiet();
    cr_assert_eq(rf_count(), 2);
}

enum { RACE_THREADS = 8 };

struct race_release {
    future_t *f;
    spec_gate_t *go;
    pthread_t tid;
};

static void *race_release_thread(void *arg)
{
    struct race_release *r = arg;
    r->tid = pthread_self();
    spec_gate_wait(r->go);
    future_release(r->f);
    return NULL;
}

CheckedTest(spec_reliability, result_free_once_under_concurrent_releases,
            .timeout = 60)
{
    rf_init();
    for (int round = 0; round < 50; round++) {
        struct box b = BOX_INIT;
        future_t *f = future_resolved(&b);
        cr_assert_not_null(f);
        cr_assert_eq(future_set_result_free(f, box_free), 0);
        spec_gate_t go;
        spec_gate_init(&go);
        pthread_t t[RACE_THREADS];
        struct race_release r[RACE_THREADS];
        for (int i = 0; i < RACE_THREADS; i++) {
            r[i].f = future_retain(f);
            r[i].go = &go;
            cr_assert_eq(pthread_create(&t[i], NULL, race_release_thread, &r[i]),
                         0);
        }
        future_release(f);
        cr_assert_eq(atomic_load(&b.freed), 0);
        spec_gate_open(&go);
        for (int i = 0; i < RACE_THREADS; i++)
            pthread_join(t[i], NULL);
        cr_assert_eq(atomic_load(&b.freed), 1, "round %d: freed %d times",
                     round, atomic_load(&b.freed));
        int last = rf_count() - 1;
        bool on_a_releaser = false;
        for (int i = 0; i < RACE_THREADS; i++)
            if (pthread_equal(rf.tids[last], r[i].tid))
                on_a_releaser = true;
        cr_assert(on_a_releaser, "freed on a thread that dropped no reference");
        spec_gate_destroy(&go);
    }
    wait_quiet();
}

/* ------------------------------------ values stay valid while readable -- */

struct reader {
    atomic_int ran;
    int freed_at_read;
    uint32_t magic_at_read;
    spec_gate_t *gate; /* if set, the callback blocks here before reading */
    sem_t started;
    struct box *fresh; /* if set, the callback succeeds with it */
};

static void reader_init(struct reader *r)
{
    atomic_init(&r->ran, 0);
    r->freed_at_read = -1;
    r->magic_at_read = 0;
    r->gate = NULL;
    r->fresh = NULL;
    sem_init(&r->started, 0, 0);
}

static int reader_then(void *value, void *arg, void **result)
{
    struct reader *r = arg;
    sem_post(&r->started);
    if (r->gate)
        spec_gate_wait(r->gate);
    struct box *b = value;
    r->freed_at_read = atomic_load(&b->freed);
    r->magic_at_read = b->magic;
    atomic_fetch_add(&r->ran, 1);
    *result = r->fresh;
    return 0;
}

static int never_catch(int error, void *arg, void **result)
{
    (void)result;
    atomic_fetch_add((atomic_int *)arg, 1);
    return error;
}

CheckedTest(spec_reliability, result_free_waits_for_queued_continuation,
            .timeout = 30)
{
    rf_init();
    pool_t *p = spec_pool(1);
    spec_blocker_t blk;
    spec_blocker_init(&blk);
    future_t *bf;
    spec_saturate(p, &blk, &bf, 1);
    struct box b = BOX_INIT, fresh = BOX_INIT;
    future_t *f = pool_submit(p, spec_value_task, &b);
    cr_assert_not_null(f);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    struct reader r;
    reader_init(&r);
    r.fresh = &fresh;
    future_t *g = future_then(f, reader_then, &r);
    cr_assert_not_null(g);
    future_release(f); /* only the continuation holds f now */
    spec_gate_open(&blk.gate);
    spec_expect_value(g, &fresh);
    cr_assert_eq(atomic_load(&r.ran), 1);
    cr_assert_eq(r.freed_at_read, 0,
                 "the value was freed before the continuation read it");
    cr_assert_eq(r.magic_at_read, BOX_MAGIC);
    rf_wait(1); /* the continuation let go of f: its value goes, once */
    cr_assert_eq(atomic_load(&b.freed), 1);
    /* the continuation's own value is not f's: not freed */
    cr_assert_eq(atomic_load(&fresh.freed), 0);
    future_release(g);
    future_release(bf);
    pool_destroy(p);
    wait_quiet();
    cr_assert_eq(rf_count(), 1);
    cr_assert_eq(atomic_load(&fresh.freed), 0);
    spec_blocker_destroy(&blk);
}

CheckedTest(spec_reliability, result_free_waits_for_running_continuation,
            .timeout = 30)
{
    rf_init();
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    struct box b = BOX_INIT;
    spec_gate_t gate;
    spec_gate_init(&gate);
    struct reader r;
    reader_init(&r);
    r.gate = &gate;
    future_t *g = future_then(f, reader_then, &r);
    cr_assert_not_null(g);
    cr_assert_eq(promise_resolve(pr, &b), 0);
    sem_wait_or_fail(&r.started, 10 * SPEC_S, "the continuation");
    /* the callback has the value in hand: drop every reference we have */
    promise_release(pr);
    future_release(f);
    cr_assert_eq(atomic_load(&b.freed), 0,
                 "freed while a continuation's callback runs on it");
    spec_gate_open(&gate);
    spec_expect_value(g, NULL);
    cr_assert_eq(r.freed_at_read, 0,
                 "the value was freed while the callback could read it");
    cr_assert_eq(r.magic_at_read, BOX_MAGIC);
    future_release(g);
    rf_wait(1);
    wait_quiet();
    cr_assert_eq(atomic_load(&b.freed), 1);
    spec_gate_destroy(&gate);
}

CheckedTest(spec_reliability, result_free_catch_pass_through_keeps_value,
            .timeout = 30)
{
    rf_init();
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    struct box b = BOX_INIT;
    atomic_int caught;
    atomic_init(&caught, 0);
    future_t *c = future_catch(f, never_catch, &caught);
    cr_assert_not_null(c);
    cr_assert_eq(promise_resolve(pr, &b), 0);
    promise_release(pr);
    future_release(f);
    spec_expect_value(c, &b);
    cr_assert_eq(atomic_load(&caught), 0);
    /* c passes f's value on: it stays valid as long as c is referenced */
    cr_assert_eq(atomic_load(&b.freed), 0, "freed while the catch holds it");
    struct reader r;
    reader_init(&r);
    future_t *g = future_then(c, reader_then, &r);
    cr_assert_not_null(g);
    future_release(c);
    spec_expect_value(g, NULL);
    cr_assert_eq(r.freed_at_read, 0);
    cr_assert_eq(r.magic_at_read, BOX_MAGIC);
    future_release(g);
    rf_wait(1);
    wait_quiet();
    cr_assert_eq(atomic_load(&b.freed), 1);
    cr_assert_eq(rf_count_of(&b), 1);
}

CheckedTest(spec_reliability, result_free_timeout_pass_through_keeps_value,
            .timeout = 30)
{
    rf_init();
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    struct box b = BOX_INIT;
    future_t *t = future_timeout(f, 60 * SPEC_S);
    cr_assert_not_null(t);
    cr_assert_eq(promise_resolve(pr, &b), 0);
    promise_release(pr);
    future_release(f);
    spec_expect_value(t, &b);
    cr_assert_eq(atomic_load(&b.freed), 0,
                 "freed while the future_timeout() result holds it");
    struct reader r;
    reader_init(&r);
    future_t *g = future_then(t, reader_then, &r);
    cr_assert_not_null(g);
    future_release(t);
    spec_expect_value(g, NULL);
    cr_assert_eq(r.freed_at_read, 0);
    cr_assert_eq(r.magic_at_read, BOX_MAGIC);
    future_release(g);
    rf_wait(1);
    wait_quiet();
    cr_assert_eq(atomic_load(&b.freed), 1);
}

struct gated_value {
    spec_gate_t gate;
    sem_t started;
    struct box *box;
};

static int gated_value_task(void *arg, void **result)
{
    struct gated_value *g = arg;
    sem_post(&g->started);
    spec_gate_wait(&g->gate);
    *result = g->box;
    return 0;
}

CheckedTest(spec_reliability, result_free_value_produced_after_timeout_gave_up,
            .timeout = 30)
{
    rf_init();
    pool_t *p = spec_pool(1);
    struct box b = BOX_INIT;
    struct gated_value gv;
    spec_gate_init(&gv.gate);
    sem_init(&gv.started, 0, 0);
    gv.box = &b;
    future_t *f = pool_submit(p, gated_value_task, &gv);
    cr_assert_not_null(f);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    sem_wait_or_fail(&gv.started, 10 * SPEC_S, "the task");
    future_t *t = future_timeout(f, 20 * SPEC_MS);
    cr_assert_not_null(t);
    future_release(f);
    /* running: the cancel is only a request, the task decides */
    spec_expect_error(t, ETIMEDOUT);
    future_release(t);
    cr_assert_eq(atomic_load(&b.freed), 0);
    spec_gate_open(&gv.gate); /* the value arrives after everyone let go */
    rf_wait(1);
    cr_assert_eq(atomic_load(&b.freed), 1);
    pool_destroy(p);
    wait_quiet();
    cr_assert_eq(rf_count(), 1);
    sem_destroy(&gv.started);
    spec_gate_destroy(&gv.gate);
}

/* With real malloc()/free(): under ASan a premature free is a crash. */
#define BUF_LEN 64

static int make_buffer_task(void *arg, void **result)
{
    (void)arg;
    unsigned char *buf = malloc(BUF_LEN);
    if (!buf)
        return ENOMEM;
    memset(buf, 0xA5, BUF_LEN);
    *result = buf;
    return 0;
}

static int check_buffer_then(void *value, void *arg, void **result)
{
    unsigned char *buf = value;
    int ok = 1;
    for (int i = 0; i < BUF_LEN; i++)
        if (buf[i] != 0xA5)
            ok = 0;
    atomic_fetch_add((atomic_int *)arg, ok);
    *result = NULL;
    return ok ? 0 : EBADMSG;
}

CheckedTest(spec_reliability, result_free_malloced_value_through_chains,
            .timeout = 60)
{
    rf_init();
    pool_t *p = spec_pool(1);
    spec_blocker_t blk;
    spec_blocker_init(&blk);
    future_t *bf;
    spec_saturate(p, &blk, &bf, 1);
    /* f -> catch (pass-through) -> then, and f -> timeout -> then, all
     * built while f's task is still queued, then every handle but the last
     * of each chain dropped */
    future_t *f = pool_submit(p, make_buffer_task, NULL);
    cr_assert_not_null(f);
    cr_assert_eq(future_set_result_free(f, free), 0);
    atomic_int caught, good;
    atomic_init(&caught, 0);
    atomic_init(&good, 0);
    future_t *c = future_catch(f, never_catch, &caught);
    future_t *g1 = future_then(c, check_buffer_then, &good);
    future_t *t = future_timeout(f, 60 * SPEC_S);
    future_t *g2 = future_then(t, check_buffer_then, &good);
    future_t *g3 = future_then(f, check_buffer_then, &good);
    cr_assert(c && g1 && t && g2 && g3);
    future_release(f);
    future_release(c);
    future_release(t);
    spec_gate_open(&blk.gate);
    spec_expect_value(g1, NULL);
    spec_expect_value(g2, NULL);
    spec_expect_value(g3, NULL);
    cr_assert_eq(atomic_load(&good), 3);
    cr_assert_eq(atomic_load(&caught), 0);
    future_release(g1);
    future_release(g2);
    future_release(g3);
    future_release(bf);
    pool_destroy(p);
    wait_quiet();
    expect_no_leaks();
    spec_blocker_destroy(&blk);
}

/* ------------------------------------------- late values, EALREADY -- */

CheckedTest(spec_reliability, result_free_late_resolve_value_freed_at_once,
            .timeout = 30)
{
    rf_init();
    /* settled by an earlier resolve */
    struct box a = BOX_INIT, late = BOX_INIT;
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    cr_assert_eq(promise_resolve(pr, &a), 0);
    cr_assert_eq(promise_resolve(pr, &late), EALREADY);
    cr_assert_eq(atomic_load(&late.freed), 1,
                 "the value offered after settlement was not freed at once");
    cr_assert(pthread_equal(rf.tids[0], pthread_self()));
    cr_assert_eq(atomic_load(&a.freed), 0, "the real value was freed");
    /* a NULL offered late is not passed to it */
    cr_assert_eq(promise_resolve(pr, NULL), EALREADY);
    cr_assert_eq(rf_count(), 1);
    spec_expect_value(f, &a);
    future_release(f);
    promise_release(pr);
    cr_assert_eq(atomic_load(&a.freed), 1);
    cr_assert_eq(atomic_load(&late.freed), 1);

    /* settled by a reject */
    struct box late2 = BOX_INIT;
    pr = spec_promise();
    f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    cr_assert_eq(promise_reject(pr, EIO), 0);
    cr_assert_eq(promise_resolve(pr, &late2), EALREADY);
    cr_assert_eq(atomic_load(&late2.freed), 1,
                 "late value after a reject not freed at once");
    spec_expect_error(f, EIO);
    future_release(f);
    promise_release(pr);

    /* settled by a cancellation */
    struct box late3 = BOX_INIT;
    pr = spec_promise();
    f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    cr_assert(future_cancel(f));
    cr_assert_eq(promise_resolve(pr, &late3), EALREADY);
    cr_assert_eq(atomic_load(&late3.freed), 1,
                 "late value after a cancel not freed at once");
    spec_expect_error(f, ECANCELED);
    future_release(f);
    promise_release(pr);

    /* settled by a future_timeout() that gave up on it, while nobody
     * holds the future but the promise */
    struct box late4 = BOX_INIT;
    pr = spec_promise();
    f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    future_t *t = future_timeout(f, 20 * SPEC_MS);
    cr_assert_not_null(t);
    spec_expect_error(t, ETIMEDOUT);
    future_release(t);
    future_release(f);
    cr_assert(future_wait_for(f = spec_pfuture(pr), 10 * SPEC_S));
    future_release(f);
    cr_assert_eq(promise_resolve(pr, &late4), EALREADY);
    cr_assert_eq(atomic_load(&late4.freed), 1,
                 "late value after a timeout's cancel not freed at once");
    promise_release(pr);

    wait_quiet();
    cr_assert_eq(rf_count(), 5);
    cr_assert_eq(rf_count_of(&late), 1);
    cr_assert_eq(rf_count_of(&late2), 1);
    cr_assert_eq(rf_count_of(&late3), 1);
    cr_assert_eq(rf_count_of(&late4), 1);
}

CheckedTest(spec_reliability, result_free_promise_is_last_holder,
            .timeout = 30)
{
    rf_init();
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    future_release(f);
    struct box b = BOX_INIT;
    cr_assert_eq(promise_resolve(pr, &b), 0);
    /* the promise can still hand the future out: the value is readable */
    future_t *again = spec_pfuture(pr);
    spec_expect_value(again, &b);
    cr_assert_eq(atomic_load(&b.freed), 0);
    future_release(again);
    promise_release(pr);
    wait_quiet();
    cr_assert_eq(atomic_load(&b.freed), 1);
    cr_assert_eq(rf_count(), 1);
}

/* ------------------------------------------- NULLs and failures never -- */

static int fail_after_writing_task(void *arg, void **result)
{
    *result = arg; /* written, but the task fails: not a value */
    return EIO;
}

static int fail_after_writing_then(void *value, void *arg, void **result)
{
    (void)value;
    *result = arg;
    return EPROTO;
}

static int null_then(void *value, void *arg, void **result)
{
    (void)value;
    (void)arg;
    *result = NULL;
    return 0;
}

CheckedTest(spec_reliability, result_free_never_gets_null_or_failures,
            .timeout = 30)
{
    rf_init();
    futures_set_unobserved_handler(NULL, NULL);
    pool_t *p = spec_pool(2);
    struct box junk1 = BOX_INIT, junk2 = BOX_INIT;
    future_t *fs[8];
    int k = 0;

    promise_t *pr = spec_promise();
    fs[k] = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(fs[k], any_free), 0);
    cr_assert_eq(promise_resolve(pr, NULL), 0);
    promise_release(pr);
    spec_expect_value(fs[k++], NULL);

    fs[k] = future_resolved(NULL);
    cr_assert_not_null(fs[k]);
    cr_assert_eq(future_set_result_free(fs[k++], any_free), 0);

    fs[k] = pool_submit(p, spec_value_task, NULL);
    cr_assert_not_null(fs[k]);
    cr_assert_eq(future_set_result_free(fs[k], any_free), 0);
    spec_expect_value(fs[k++], NULL);

    pr = spec_promise();
    fs[k] = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(fs[k], any_free), 0);
    cr_assert_eq(promise_reject(pr, EIO), 0);
    promise_release(pr);
    spec_expect_error(fs[k++], EIO);

    fs[k] = future_failed(ENOENT);
    cr_assert_not_null(fs[k]);
    cr_assert_eq(future_set_result_free(fs[k++], any_free), 0);

    fs[k] = pool_submit(p, fail_after_writing_task, &junk1);
    cr_assert_not_null(fs[k]);
    cr_assert_eq(future_set_result_free(fs[k], any_free), 0);
    spec_expect_error(fs[k++], EIO);

    future_t *ok = future_resolved(&junk2);
    cr_assert_not_null(ok);
    fs[k] = future_then(ok, fail_after_writing_then, &junk2);
    cr_assert_not_null(fs[k]);
    cr_assert_eq(future_set_result_free(fs[k], any_free), 0);
    spec_expect_error(fs[k++], EPROTO);

    fs[k] = future_then(ok, null_then, NULL);
    cr_assert_not_null(fs[k]);
    cr_assert_eq(future_set_result_free(fs[k], any_free), 0);
    spec_expect_value(fs[k++], NULL);

    spec_release_all(fs, (size_t)k);
    future_release(ok);
    pool_destroy(p);
    wait_quiet();
    cr_assert_eq(rf_count(), 0, "the destructor got %d NULL values/failures",
                 rf_count());
}

CheckedTest(spec_reliability, result_free_replace_and_remove, .timeout = 30)
{
    rf_init();
    /* replaced: only the second destructor runs */
    struct box a = BOX_INIT;
    future_t *f = future_resolved(&a);
    cr_assert_not_null(f);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    cr_assert_eq(future_set_result_free(f, box_free_other), 0);
    future_release(f);
    cr_assert_eq(atomic_load(&rf.other), 1);
    cr_assert_eq(atomic_load(&a.freed), 0, "the replaced destructor ran");

    /* removed: nothing runs */
    struct box b = BOX_INIT;
    f = future_resolved(&b);
    cr_assert_not_null(f);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    cr_assert_eq(future_set_result_free(f, NULL), 0);
    future_release(f);
    cr_assert_eq(atomic_load(&b.freed), 0, "the removed destructor ran");

    /* removed, then set again on a pending promise */
    struct box c = BOX_INIT;
    promise_t *pr = spec_promise();
    f = spec_pfuture(pr);
    cr_assert_eq(future_set_result_free(f, box_free_other), 0);
    cr_assert_eq(future_set_result_free(f, NULL), 0);
    cr_assert_eq(future_set_result_free(f, box_free), 0);
    cr_assert_eq(promise_resolve(pr, &c), 0);
    promise_release(pr);
    future_release(f);
    wait_quiet();
    cr_assert_eq(atomic_load(&c.freed), 1);
    cr_assert_eq(atomic_load(&rf.other), 1);
    cr_assert_eq(rf_count(), 1);
}

CheckedTest(spec_reliability, result_free_null_future_is_einval)
{
    cr_assert_eq(future_set_result_free(NULL, free), EINVAL);
    cr_assert_eq(future_set_result_free(NULL, NULL), EINVAL);
}

/* ------------------------------------------------ unobserved failures -- */

enum { UO_MAX = 16 };

static struct {
    pthread_mutex_t mu;
    int n;
    int error[UO_MAX];
    char kind[UO_MAX][32];
    bool kind_null[UO_MAX];
    void (*site[UO_MAX])(void);
    void *arg[UO_MAX];
    pthread_t tid[UO_MAX];
    sem_t sem;
} uo = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void uo_handler(const struct futures_failure *f, void *arg)
{
    pthread_mutex_lock(&uo.mu);
    int i = uo.n++;
    if (i < UO_MAX) {
        uo.error[i] = f->error;
        uo.kind_null[i] = f->kind == NULL;
        snprintf(uo.kind[i], sizeof uo.kind[i], "%s", f->kind ? f->kind : "");
        uo.site[i] = f->site;
        uo.arg[i] = arg;
        uo.tid[i] = pthread_self();
    }
    pthread_mutex_unlock(&uo.mu);
    sem_post(&uo.sem);
}

static int uo_cookie;

static void uo_install(void)
{
    sem_init(&uo.sem, 0, 0);
    futures_set_unobserved_handler(uo_handler, &uo_cookie);
}

static int uo_count(void)
{
    pthread_mutex_lock(&uo.mu);
    int n = uo.n;
    pthread_mutex_unlock(&uo.mu);
    return n;
}

static void uo_wait(int n)
{
    for (int i = 0; i < n; i++)
        sem_wait_or_fail(&uo.sem, 10 * SPEC_S, "an unobserved-failure report");
}

/* Every future freed, then exactly @n reports. */
static void uo_expect_total(int n)
{
    wait_quiet();
    cr_assert_eq(uo_count(), n,
                 "%d unobserved-failure reports, expected %d (first: error %d, "
                 "kind \"%s\")",
                 uo_count(), n, uo_count() ? uo.error[0] : 0,
                 uo_count() ? uo.kind[0] : "");
}

#define SITE(fn) ((void (*)(void))(fn))

/* A promise's future, failed with @error and with the promise let go, so
 * the only reference left is the one returned. */
static future_t *rejected(int error)
{
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert_eq(promise_reject(pr, error), 0);
    promise_release(pr);
    return f;
}

CheckedTest(spec_reliability, unobserved_reported_once_at_last_release,
            .timeout = 30)
{
    uo_install();
    future_t *f = rejected(EIO);
    future_t *extra = future_retain(f);
    future_release(f);
    cr_assert_eq(uo_count(), 0, "reported while a reference was still held");
    future_release(extra);
    cr_assert_eq(uo_count(), 1,
                 "not reported by the release of the last reference");
    cr_assert_eq(uo.error[0], EIO);
    cr_assert_not(uo.kind_null[0], "kind is NULL");
    cr_assert_str_eq(uo.kind[0], "promise");
    cr_assert(pthread_equal(uo.tid[0], pthread_self()));
    cr_assert_eq(uo.arg[0], &uo_cookie, "the handler's arg was not passed");

    /* successes are never reported */
    future_t *s = future_resolved(NULL);
    cr_assert_not_null(s);
    future_release(s);
    uo_expect_total(1);
}

CheckedTest(spec_reliability, unobserved_reported_on_dropping_thread,
            .timeout = 30)
{
    uo_install();
    future_t *f = rejected(ENOTCONN);
    struct releaser r = {f, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, release_thread, &r), 0);
    pthread_join(t, NULL);
    cr_assert_eq(uo_count(), 1);
    cr_assert_eq(uo.error[0], ENOTCONN);
    cr_assert(pthread_equal(uo.tid[0], r.tid),
              "the handler did not run on the thread that dropped the last "
              "reference");
    uo_expect_total(1);
}

static int failing_task(void *arg, void **result)
{
    (void)result;
    return (int)(intptr_t)arg;
}

static int gated_failing_task(void *arg, void **result)
{
    (void)result;
    spec_gate_wait(arg);
    return EIO;
}

CheckedTest(spec_reliability, unobserved_task_failure_names_the_task,
            .timeout = 30)
{
    uo_install();
    pool_t *p = spec_pool(1);
    spec_gate_t gate;
    spec_gate_init(&gate);
    future_t *f = pool_submit(p, gated_failing_task, &gate);
    cr_assert_not_null(f);
    future_release(f); /* fire and forget */
    cr_assert_eq(uo_count(), 0, "reported before the task failed");
    spec_gate_open(&gate);
    uo_wait(1);
    cr_assert_eq(uo.error[0], EIO);
    cr_assert_str_eq(uo.kind[0], "task");
    cr_assert_eq(uo.site[0], SITE(gated_failing_task),
                 "site is not the failing task");
    cr_assert_not(pthread_equal(uo.tid[0], pthread_self()),
                  "reported on a thread that had no reference left");
    cr_assert_eq(uo.arg[0], &uo_cookie);
    pool_destroy(p);
    uo_expect_total(1);
    spec_gate_destroy(&gate);
}

static int failing_then(void *value, void *arg, void **result)
{
    (void)value;
    (void)result;
    return (int)(intptr_t)arg;
}

static int failing_catch(int error, void *arg, void **result)
{
    (void)error;
    (void)result;
    return (int)(intptr_t)arg;
}

CheckedTest(spec_reliability, unobserved_callback_failures_name_callback,
            .timeout = 30)
{
    uo_install();
    future_t *ok = future_resolved(NULL);
    future_t *bad = future_failed(EIO);
    cr_assert(ok && bad);
    future_t *g = future_then(ok, failing_then, (void *)(intptr_t)ENOEXEC);
    future_t *c = future_catch(bad, failing_catch, (void *)(intptr_t)EXDEV);
    cr_assert(g && c);
    cr_assert(future_wait_for(g, 10 * SPEC_S));
    cr_assert(future_wait_for(c, 10 * SPEC_S));
    future_release(ok);
    future_release(bad); /* observed: handed to future_catch() */
    future_release(g);
    uo_wait(1);
    cr_assert_eq(uo.error[0], ENOEXEC);
    cr_assert_str_eq(uo.kind[0], "then");
    cr_assert_eq(uo.site[0], SITE(failing_then));
    future_release(c);
    uo_wait(1);
    cr_assert_eq(uo.error[1], EXDEV);
    cr_assert_str_eq(uo.kind[1], "catch");
    cr_assert_eq(uo.site[1], SITE(failing_catch));
    uo_expect_total(2);
}

CheckedTest(spec_reliability, unobserved_timeout_expiry_reported,
            .timeout = 30)
{
    uo_install();
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    future_t *t = future_timeout(f, 20 * SPEC_MS);
    cr_assert_not_null(t);
    cr_assert(future_wait_for(t, 10 * SPEC_S)); /* not an observation */
    cr_assert(future_wait_for(f, 10 * SPEC_S));
    future_release(t);
    future_release(f);
    promise_release(pr);
    /* t's ETIMEDOUT is reported; f's cancellation never is */
    uo_expect_total(1);
    cr_assert_eq(uo.error[0], ETIMEDOUT);
    cr_assert_str_eq(uo.kind[0], "timeout");
}

CheckedTest(spec_reliability, unobserved_future_failed_reported,
            .timeout = 30)
{
    uo_install();
    future_t *f = future_failed(EDOM);
    cr_assert_not_null(f);
    future_release(f);
    uo_expect_total(1);
    cr_assert_eq(uo.error[0], EDOM);
}

/* ------------------------------------------------ what counts as seen -- */

struct bg_waiter {
    future_t *f;
    int rc;
};

static void *bg_wait(void *arg)
{
    struct bg_waiter *w = arg;
    w->rc = future_wait(w->f, NULL);
    return NULL;
}

CheckedTest(spec_reliability, unobserved_not_reported_after_future_wait,
            .timeout = 30)
{
    uo_install();
    future_t *f = rejected(EIO);
    spec_expect_error(f, EIO);
    future_release(f);
    cr_assert_eq(uo_count(), 0);

    /* waited for on another thread, released here */
    future_t *g = rejected(EACCES);
    struct bg_waiter w = {g, -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bg_wait, &w), 0);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, EACCES);
    future_release(g);

    /* a task's failure, waited for */
    pool_t *p = spec_pool(1);
    future_t *h = pool_submit(p, failing_task, (void *)(intptr_t)ENOSPC);
    cr_assert_not_null(h);
    spec_expect_error(h, ENOSPC);
    future_release(h);
    pool_destroy(p);
    uo_expect_total(0);
}

static int recover_catch(int error, void *arg, void **result)
{
    (void)error;
    (void)arg;
    *result = NULL;
    return 0;
}

CheckedTest(spec_reliability, unobserved_handing_to_then_observes,
            .timeout = 30)
{
    uo_install();
    future_t *f = rejected(EIO);
    atomic_int ran;
    atomic_init(&ran, 0);
    future_t *g = future_then(f, spec_count_then, &ran);
    cr_assert_not_null(g);
    future_release(f);
    spec_expect_error(g, EIO); /* the end of the chain is observed */
    future_release(g);
    uo_expect_total(0);
    cr_assert_eq(atomic_load(&ran), 0);
}

CheckedTest(spec_reliability, unobserved_handing_to_catch_observes,
            .timeout = 30)
{
    uo_install();
    future_t *f = rejected(EIO);
    future_t *c = future_catch(f, recover_catch, NULL);
    cr_assert_not_null(c);
    future_release(f);
    cr_assert(future_wait_for(c, 10 * SPEC_S));
    future_release(c); /* succeeded: nothing to report */
    uo_expect_total(0);
}

CheckedTest(spec_reliability, unobserved_handing_to_when_all_observes,
            .timeout = 30)
{
    uo_install();
    future_t *in[2] = {future_resolved(NULL), rejected(EIO)};
    cr_assert_not_null(in[0]);
    future_t *w = when_all(in, 2);
    cr_assert_not_null(w);
    spec_release_all(in, 2);
    spec_expect_error(w, EIO);
    future_release(w);
    uo_expect_total(0);

    /* when_all's own failure, unobserved, is reported, and only once */
    future_t *in2[2] = {rejected(ENOMSG), future_resolved(NULL)};
    cr_assert_not_null(in2[1]);
    future_t *w2 = when_all(in2, 2);
    cr_assert_not_null(w2);
    spec_release_all(in2, 2);
    cr_assert(future_wait_for(w2, 10 * SPEC_S));
    future_release(w2);
    uo_expect_total(1);
    cr_assert_eq(uo.error[0], ENOMSG);
}

CheckedTest(spec_reliability, unobserved_handing_to_when_any_observes,
            .timeout = 30)
{
    uo_install();
    promise_t *pending = spec_promise();
    future_t *in[2] = {rejected(EIO), spec_pfuture(pending)};
    future_t *w = when_any(in, 2);
    cr_assert_not_null(w);
    spec_expect_value(w, (void *)(uintptr_t)0);
    future_release(w);
    future_release(in[0]);
    cr_assert_eq(promise_resolve(pending, NULL), 0);
    promise_release(pending);
    future_release(in[1]);
    uo_expect_total(0);
}

CheckedTest(spec_reliability, unobserved_handing_to_timeout_observes,
            .timeout = 30)
{
    uo_install();
    future_t *f = rejected(EIO);
    future_t *t = future_timeout(f, 60 * SPEC_S);
    cr_assert_not_null(t);
    future_release(f);
    spec_expect_error(t, EIO);
    future_release(t);
    uo_expect_total(0);

    /* the timeout result passes the failure on: unobserved, it is
     * reported once */
    pool_t *p = spec_pool(1);
    future_t *g = pool_submit(p, failing_task, (void *)(intptr_t)EREMOTEIO);
    cr_assert_not_null(g);
    future_t *t2 = future_timeout(g, 60 * SPEC_S);
    cr_assert_not_null(t2);
    future_release(g);
    cr_assert(future_wait_for(t2, 10 * SPEC_S));
    future_release(t2);
    pool_destroy(p);
    uo_expect_total(1);
    cr_assert_eq(uo.error[0], EREMOTEIO);
    cr_assert_eq(uo.site[0], SITE(failing_task));
}

CheckedTest(spec_reliability, unobserved_when_any_loser_failing_later,
            .timeout = 30)
{
    uo_install();
    promise_t *loser = spec_promise();
    future_t *in[2] = {spec_pfuture(loser), future_resolved(NULL)};
    cr_assert_not_null(in[1]);
    future_t *w = when_any(in, 2);
    cr_assert_not_null(w);
    spec_expect_value(w, (void *)(uintptr_t)1);
    future_release(w);
    /* the input fails after when_any() settled: it was handed on all the
     * same, so it counts as observed */
    cr_assert_eq(promise_reject(loser, EIO), 0);
    promise_release(loser);
    spec_release_all(in, 2);
    uo_expect_total(0);
}

CheckedTest(spec_reliability, unobserved_when_all_cancelled_input_fails_later,
            .timeout = 30)
{
    uo_install();
    promise_t *pr = spec_promise();
    future_t *in[1] = {spec_pfuture(pr)};
    future_t *w = when_all(in, 1);
    cr_assert_not_null(w);
    cr_assert(future_cancel(w)); /* does not cancel the input */
    future_release(w);
    cr_assert_eq(promise_reject(pr, EIO), 0);
    promise_release(pr);
    future_release(in[0]);
    uo_expect_total(0);
}

CheckedTest(spec_reliability, unobserved_cancelled_dependents_still_observed,
            .timeout = 30)
{
    uo_install();
    atomic_int ran;
    atomic_init(&ran, 0);
    int reported[3] = {0, 0, 0}, before = 0;
    /* future_then(), future_catch(), future_timeout(): the dependent is
     * cancelled before its input fails; the input was handed on all the
     * same */
    for (int kind = 0; kind < 3; kind++) {
        promise_t *pr = spec_promise();
        future_t *f = spec_pfuture(pr);
        future_t *d = kind == 0   ? future_then(f, spec_count_then, &ran)
                      : kind == 1 ? future_catch(f, spec_count_catch, &ran)
                                  : future_timeout(f, 60 * SPEC_S);
        cr_assert_not_null(d);
        cr_assert(future_cancel(d));
        future_release(d);
        if (kind == 2) /* a cancelled timeout may have cancelled f: fine */
            (void)future_wait_for(f, 0);
        (void)promise_reject(pr, EIO);
        promise_release(pr);
        future_release(f);
        wait_quiet();
        reported[kind] = uo_count() - before;
        before = uo_count();
    }
    cr_assert_eq(uo_count(), 0,
                 "inputs of cancelled dependents reported: then %d, catch %d, "
                 "timeout %d (first: error %d, kind \"%s\")",
                 reported[0], reported[1], reported[2], uo.error[0],
                 uo.kind[0]);
    cr_assert_eq(atomic_load(&ran), 0);
}

CheckedTest(spec_reliability, unobserved_timeout_input_failing_late,
            .timeout = 30)
{
    uo_install();
    pool_t *p = spec_pool(1);
    spec_gate_t gate;
    spec_gate_init(&gate);
    future_t *f = pool_submit(p, gated_failing_task, &gate);
    cr_assert_not_null(f);
    future_t *t = future_timeout(f, 20 * SPEC_MS);
    cr_assert_not_null(t);
    future_release(f);
    spec_expect_error(t, ETIMEDOUT); /* observed */
    future_release(t);
    spec_gate_open(&gate); /* f fails with EIO once nobody holds it */
    pool_destroy(p);
    uo_expect_total(0);
    spec_gate_destroy(&gate);
}

CheckedTest(spec_reliability, unobserved_wait_for_and_is_ready_do_not_observe,
            .timeout = 30)
{
    uo_install();
    future_t *f = rejected(EIO);
    cr_assert(future_wait_for(f, 0));
    cr_assert(future_wait_for(f, 10 * SPEC_MS));
    cr_assert(future_is_ready(f));
    future_release(f);
    cr_assert_eq(uo_count(), 1,
                 "future_wait_for()/future_is_ready() counted as observing");
    cr_assert_eq(uo.error[0], EIO);
    uo_expect_total(1);
}

/* ------------------------------------------------------ cancellations -- */

CheckedTest(spec_reliability, unobserved_cancellations_never_reported,
            .timeout = 30)
{
    uo_install();
    /* a cancelled promise future */
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    cr_assert(future_cancel(f));
    future_release(f);
    promise_release(pr);

    /* a queued task, cancelled; a continuation that inherits it */
    pool_t *p = spec_pool(1);
    spec_blocker_t blk;
    spec_blocker_init(&blk);
    future_t *bf;
    spec_saturate(p, &blk, &bf, 1);
    future_t *q = pool_submit(p, spec_value_task, NULL);
    cr_assert_not_null(q);
    atomic_int ran;
    atomic_init(&ran, 0);
    future_t *g = future_then(q, spec_count_then, &ran);
    cr_assert_not_null(g);
    cr_assert(future_cancel(q));
    cr_assert(future_wait_for(g, 10 * SPEC_S));
    future_release(q);
    future_release(g);

    /* queued tasks cancelled by POOL_CANCEL */
    future_t *q2 = pool_submit(p, spec_value_task, NULL);
    cr_assert_not_null(q2);
    future_release(q2);

    /* a task that returns ECANCELED itself */
    future_t *q3 = pool_submit(p, failing_task, (void *)(intptr_t)ECANCELED);
    cr_assert_not_null(q3);
    future_release(q3);

    /* a continuation cancelled while it waits */
    promise_t *pr2 = spec_promise();
    future_t *f2 = spec_pfuture(pr2);
    future_t *g2 = future_then(f2, spec_count_then, &ran);
    cr_assert_not_null(g2);
    cr_assert(future_cancel(g2));
    future_release(g2);
    future_release(f2);
    promise_release(pr2); /* f2 fails with EPIPE: observed by g2 */

    pool_shutdown(p, POOL_CANCEL);
    spec_gate_open(&blk.gate);
    future_release(bf);
    pool_destroy(p);
    uo_expect_total(0);
    cr_assert_eq(atomic_load(&ran), 0);
    spec_blocker_destroy(&blk);
}

CheckedTest(spec_reliability, unobserved_self_cancelled_task_not_reported,
            .timeout = 30)
{
    uo_install();
    pool_t *p = spec_pool(1);
    future_t *q = pool_submit(p, failing_task, (void *)(intptr_t)ECANCELED);
    cr_assert_not_null(q);
    cr_assert(future_wait_for(q, 10 * SPEC_S));
    future_release(q);
    pool_destroy(p);
    uo_expect_total(0);
}

/* -------------------------------------------------------------- chains -- */

CheckedTest(spec_reliability, unobserved_chain_reported_once_by_last,
            .timeout = 30)
{
    uo_install();
    pool_t *p = spec_pool(1);
    atomic_int ran;
    atomic_init(&ran, 0);

    /* built while the task is queued; the first links let go first */
    spec_gate_t gate;
    spec_gate_init(&gate);
    future_t *f = pool_submit(p, gated_failing_task, &gate);
    cr_assert_not_null(f);
    future_t *g = future_then(f, spec_count_then, &ran);
    future_t *h = future_then(g, spec_count_then, &ran);
    cr_assert(g && h);
    future_release(f);
    future_release(g);
    spec_gate_open(&gate);
    cr_assert(future_wait_for(h, 10 * SPEC_S));
    cr_assert_eq(uo_count(), 0, "reported while the chain's last future lives");
    future_release(h);
    uo_wait(1);
    cr_assert_eq(uo.error[0], EIO);
    cr_assert_eq(uo.site[0], SITE(gated_failing_task),
                 "the report does not name the first failure");
    uo_expect_total(1);

    /* built after the failure; the last link let go first */
    future_t *f2 = pool_submit(p, failing_task, (void *)(intptr_t)ENOLINK);
    cr_assert_not_null(f2);
    cr_assert(future_wait_for(f2, 10 * SPEC_S));
    future_t *g2 = future_then(f2, spec_count_then, &ran);
    future_t *h2 = future_then(g2, spec_count_then, &ran);
    future_t *i2 = future_then(h2, spec_count_then, &ran);
    cr_assert(g2 && h2 && i2);
    cr_assert(future_wait_for(i2, 10 * SPEC_S));
    future_release(i2);
    future_release(h2);
    future_release(g2);
    future_release(f2);
    uo_expect_total(2);
    cr_assert_eq(uo.error[1], ENOLINK);
    cr_assert_eq(uo.site[1], SITE(failing_task));
    cr_assert_eq(atomic_load(&ran), 0);
    pool_destroy(p);
    spec_gate_destroy(&gate);
}

CheckedTest(spec_reliability, unobserved_chain_failing_in_the_middle,
            .timeout = 30)
{
    uo_install();
    future_t *ok = future_resolved(NULL);
    cr_assert_not_null(ok);
    atomic_int ran;
    atomic_init(&ran, 0);
    future_t *g = future_then(ok, failing_then, (void *)(intptr_t)EBADE);
    future_t *h = future_then(g, spec_count_then, &ran);
    future_t *i = future_then(h, spec_count_then, &ran);
    cr_assert(g && h && i);
    cr_assert(future_wait_for(i, 10 * SPEC_S));
    future_release(ok);
    future_release(g);
    future_release(h);
    future_release(i);
    uo_expect_total(1);
    cr_assert_eq(uo.error[0], EBADE);
    cr_assert_eq(uo.site[0], SITE(failing_then));
    cr_assert_eq(atomic_load(&ran), 0);
}

CheckedTest(spec_reliability, unobserved_chain_observed_at_end_not_reported,
            .timeout = 30)
{
    uo_install();
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, failing_task, (void *)(intptr_t)EIO);
    cr_assert_not_null(f);
    atomic_int ran;
    atomic_init(&ran, 0);
    future_t *g = future_then(f, spec_count_then, &ran);
    future_t *h = future_then(g, spec_count_then, &ran);
    cr_assert(g && h);
    future_release(f);
    future_release(g);
    spec_expect_error(h, EIO);
    future_release(h);
    pool_destroy(p);
    uo_expect_total(0);
}

/* ------------------------------------------------------------ promises -- */

CheckedTest(spec_reliability, unobserved_promise_never_handed_out,
            .timeout = 30)
{
    uo_install();
    promise_t *a = spec_promise();
    promise_release(a); /* broken, but nobody could have seen it */
    wait_quiet();
    cr_assert_eq(uo_count(), 0,
                 "a broken promise whose future was never handed out was "
                 "reported (error %d, kind \"%s\")", uo.error[0], uo.kind[0]);
    promise_t *b = spec_promise();
    cr_assert_eq(promise_reject(b, EIO), 0);
    promise_release(b);
    wait_quiet();
    cr_assert_eq(uo_count(), 0,
                 "a rejected promise whose future was never handed out was "
                 "reported (error %d, kind \"%s\")", uo.error[0], uo.kind[0]);
}

CheckedTest(spec_reliability, unobserved_broken_promise_reported,
            .timeout = 30)
{
    uo_install();
    promise_t *pr = spec_promise();
    future_t *f = spec_pfuture(pr);
    promise_release(pr); /* broken: EPIPE */
    cr_assert(future_is_ready(f));
    future_release(f);
    uo_expect_total(1);
    cr_assert_eq(uo.error[0], EPIPE);
}

/* ---------------------------------------------- handler, print, NULL -- */

struct capture {
    int saved;
    FILE *file;
};

static void capture_start(struct capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    cr_assert_not_null(c->file);
    c->saved = dup(2);
    cr_assert_geq(c->saved, 0);
    cr_assert_eq(dup2(fileno(c->file), 2), 2);
}

/* Returns what was written to stderr since capture_start(); free() it. */
static char *capture_stop(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    long n = ftell(c->file);
    if (n < 0)
        n = 0;
    char *s = calloc((size_t)n + 1, 1);
    cr_assert_not_null(s);
    rewind(c->file);
    size_t got = fread(s, 1, (size_t)n, c->file);
    s[got] = '\0';
    fclose(c->file);
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

CheckedTest(spec_reliability, unobserved_handler_gets_its_arg, .timeout = 30)
{
    sem_init(&uo.sem, 0, 0);
    static int other_cookie;
    futures_set_unobserved_handler(uo_handler, &other_cookie);
    future_release(rejected(EIO));
    futures_set_unobserved_handler(uo_handler, NULL);
    future_release(rejected(EIO));
    uo_expect_total(2);
    cr_assert_eq(uo.arg[0], &other_cookie);
    cr_assert_null(uo.arg[1]);
}

CheckedTest(spec_reliability, unobserved_null_handler_turns_reports_off,
            .timeout = 30)
{
    uo_install();
    futures_set_unobserved_handler(NULL, NULL);
    struct capture cap;
    capture_start(&cap);
    future_release(rejected(EIO));
    pool_t *p = spec_pool(1);
    future_t *f = pool_submit(p, failing_task, (void *)(intptr_t)EIO);
    cr_assert_not_null(f);
    future_release(f);
    pool_destroy(p);
    wait_quiet();
    char *out = capture_stop(&cap);
    cr_assert_eq(uo_count(), 0);
    cr_assert_str_empty(out, "stderr got: %s", out);
    free(out);

    /* the default handler reinstalled prints again */
    futures_set_unobserved_handler(futures_unobserved_print, NULL);
    capture_start(&cap);
    future_release(rejected(EIO));
    wait_quiet();
    out = capture_stop(&cap);
    cr_assert_eq(count_lines(out), 1, "stderr got: %s", out);
    cr_assert(strstr(out, "EIO"), "no error name in: %s", out);
    free(out);
}

static int named_failing_task(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return EIO;
}

CheckedTest(spec_reliability, unobserved_default_prints_one_line,
            .timeout = 30)
{
    /* the default handler, which the test wrapper replaced */
    futures_set_unobserved_handler(futures_unobserved_print, NULL);
    pool_t *p = spec_pool(1);
    struct capture cap;
    capture_start(&cap);
    future_t *f = pool_submit(p, named_failing_task, NULL);
    cr_assert_not_null(f);
    cr_assert(future_wait_for(f, 10 * SPEC_S));
    future_release(f);
    pool_destroy(p);
    wait_quiet();
    char *out = capture_stop(&cap);
    cr_assert_eq(count_lines(out), 1, "expected one line, stderr got: %s", out);
    cr_assert_eq(out[strlen(out) - 1], '\n', "not a whole line: %s", out);
    cr_assert(strstr(out, "EIO"), "no error name in: %s", out);
    /* the site is known: its name or its address */
    char addr[32];
    snprintf(addr, sizeof addr, "%lx",
             (unsigned long)(uintptr_t)named_failing_task);
    char lower[512];
    size_t n = strlen(out) < sizeof lower - 1 ? strlen(out) : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)(out[i] >= 'A' && out[i] <= 'F' ? out[i] - 'A' + 'a'
                                                         : out[i]);
    lower[n] = '\0';
    cr_assert(strstr(out, "named_failing_task") || strstr(lower, addr),
              "neither the function's name nor its address (%s) in: %s", addr,
              out);
    free(out);
}

CheckedTest(spec_reliability, unobserved_print_direct_one_line_per_call,
            .timeout = 30)
{
    static const struct {
        int error;
        const char *name;
    } cases[] = {{EIO, "EIO"}, {ENOENT, "ENOENT"}, {ETIMEDOUT, "ETIMEDOUT"},
                 {EPIPE, "EPIPE"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int with_site = 0; with_site < 2; with_site++) {
            struct futures_failure fl = {
                cases[i].error, "task",
                with_site ? SITE(named_failing_task) : NULL, NULL};
            struct capture cap;
            capture_start(&cap);
            futures_unobserved_print(&fl, NULL);
            char *out = capture_stop(&cap);
            cr_assert_eq(count_lines(out), 1, "%s: stderr got: %s",
                         cases[i].name, out);
            cr_assert_eq(out[strlen(out) - 1], '\n');
            cr_assert(strstr(out, cases[i].name), "no %s in: %s",
                      cases[i].name, out);
            free(out);
        }
    }
}

/* -------------------------------------------------------------- fork() -- */

static int child_pipe = -1;

#define CHILD_CHECK(cond)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            int line_ = __LINE__;                                            \
            if (write(child_pipe, &line_, sizeof line_) < 0) {               \
            }                                                                \
            _exit(1);                                                        \
        }                                                                    \
    } while (0)

#define CHILD_SKIP 77

/* Runs @body in a child with a watchdog; fails unless it exits with 0.
 * Returns false if the child skipped. */
static bool in_child(void (*body)(void *), void *arg)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        child_pipe = fds[1];
        alarm(20); /* a hang kills the child with SIGALRM */
        body(arg);
        _exit(0);
    }
    close(fds[1]);
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) == -1 && errno == EINTR) {
    }
    cr_assert_eq(w, pid);
    int line = 0;
    ssize_t got = read(fds[0], &line, sizeof line);
    close(fds[0]);
    cr_assert(WIFEXITED(status), "child killed by signal %d%s",
              WIFSIGNALED(status) ? WTERMSIG(status) : 0,
              WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM
                  ? " (hung: the watchdog fired)"
                  : "");
    if (WEXITSTATUS(status) == CHILD_SKIP)
        return false;
    cr_assert_eq(WEXITSTATUS(status), 0, "child check failed at line %d",
                 got == (ssize_t)sizeof line ? line : -1);
    return true;
}

/* Wait until @p runs and queues nothing (so no pool thread is busy when
 * the test forks). */
static void quiesce(pool_t *p)
{
    uint64_t deadline = monotonic_ns() + 10 * SPEC_S;
    struct pool_stats st;
    for (;;) {
        cr_assert_eq(pool_stats(p, &st), 0);
        if ((st.running == 0 && st.queued == 0) || monotonic_ns() > deadline)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static bool child_wait_value(future_t *f, void *want)
{
    if (!future_wait_for(f, 10 * SPEC_S))
        return false;
    void *v = (void *)(uintptr_t)0xdeadbeef;
    return future_wait(f, &v) == 0 && v == want;
}

struct fork_pools {
    pool_t *parent_default;
    pool_t *pool;
    future_t *queued; /* queued on pool behind a blocker, in the parent */
    atomic_int *queued_runs;
};

static void child_default_pool(void *arg)
{
    struct fork_pools *fp = arg;
    pool_t *d = pool_default();
    CHILD_CHECK(d != NULL);
    CHILD_CHECK(d != fp->parent_default); /* a pool of its own */
    CHILD_CHECK(pool_default() == d);
    atomic_int runs;
    atomic_init(&runs, 0);
    future_t *fs[8];
    for (int i = 0; i < 8; i++) {
        fs[i] = pool_submit(d, spec_count_task, &runs);
        CHILD_CHECK(fs[i] != NULL);
    }
    for (int i = 0; i < 8; i++)
        CHILD_CHECK(child_wait_value(fs[i], &runs));
    CHILD_CHECK(atomic_load(&runs) == 8);
    struct pool_stats st; /* (completed may lag the waiters: not checked) */
    CHILD_CHECK(pool_stats(d, &st) == 0);
    /* a new pool works in the child too */
    pool_t *p = pool_create(2);
    CHILD_CHECK(p != NULL);
    future_t *f = pool_submit(p, spec_value_task, (void *)(uintptr_t)5);
    CHILD_CHECK(child_wait_value(f, (void *)(uintptr_t)5));
    pool_destroy(p);
}

CheckedTest(spec_reliability, fork_child_has_its_own_default_pool,
            .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    pool_t *d = pool_default();
    cr_assert_not_null(d);
    future_t *f = pool_submit(d, spec_value_task, NULL);
    cr_assert_not_null(f);
    spec_expect_value(f, NULL);
    future_release(f);
    quiesce(d);
    struct fork_pools fp = {.parent_default = d};
    in_child(child_default_pool, &fp);
    /* the parent's default pool is untouched */
    cr_assert_eq(pool_default(), d);
    f = pool_submit(d, spec_value_task, (void *)(uintptr_t)3);
    cr_assert_not_null(f);
    spec_expect_value(f, (void *)(uintptr_t)3);
    future_release(f);
}

static atomic_int ex_frees;
static atomic_int ex_runs;

static void ex_arg_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ex_frees, 1);
}

static int ex_task(void *arg, void **result)
{
    (void)arg;
    (void)result;
    atomic_fetch_add(&ex_runs, 1);
    return 0;
}

static void refuses(pool_t *p)
{
    errno = 0;
    CHILD_CHECK(pool_submit(p, ex_task, NULL) == NULL);
    CHILD_CHECK(errno == ECHILD);
    errno = 0;
    CHILD_CHECK(pool_submit_blocking(p, ex_task, NULL) == NULL);
    CHILD_CHECK(errno == ECHILD);
    int before = atomic_load(&ex_frees);
    errno = 0;
    CHILD_CHECK(pool_submit_ex(p, ex_task, &ex_frees, ex_arg_free) == NULL);
    CHILD_CHECK(errno == ECHILD);
    CHILD_CHECK(atomic_load(&ex_frees) == before + 1); /* before returning */
    struct pool_stats st;
    CHILD_CHECK(pool_stats(p, &st) == ECHILD);
    CHILD_CHECK(pool_set_blocking_limit(p, 4) == ECHILD);
    CHILD_CHECK(pool_set_idle_timeout(p, 1000) == ECHILD);
    CHILD_CHECK(atomic_load(&ex_runs) == 0);
}

static void child_parent_pools_refuse(void *arg)
{
    struct fork_pools *fp = arg;
    refuses(fp->pool);
    refuses(fp->parent_default);
    /* work the parent had queued never runs here */
    CHILD_CHECK(!future_wait_for(fp->queued, 200 * SPEC_MS));
    /* shutdown and destroy do nothing: the queued task is not cancelled,
     * the pool still says ECHILD (not ESHUTDOWN), and nothing hangs */
    pool_shutdown(fp->pool, POOL_CANCEL);
    CHILD_CHECK(!future_is_ready(fp->queued));
    refuses(fp->pool);
    pool_destroy(fp->pool);
    CHILD_CHECK(!future_is_ready(fp->queued));
    refuses(fp->pool); /* its memory stays */
    pool_shutdown(fp->parent_default, POOL_DRAIN);
    pool_destroy(fp->parent_default);
    refuses(fp->parent_default);
    CHILD_CHECK(atomic_load(fp->queued_runs) == 0);
    CHILD_CHECK(atomic_load(&ex_frees) == 5);
    /* and the child's own default pool still works */
    future_t *f = pool_submit(pool_default(), spec_value_task, NULL);
    CHILD_CHECK(f != NULL);
    CHILD_CHECK(child_wait_value(f, NULL));
}

CheckedTest(spec_reliability, fork_parent_pools_refuse_with_echild,
            .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    pool_t *d = pool_default();
    cr_assert_not_null(d);
    pool_t *p = spec_pool(1);
    spec_blocker_t blk;
    spec_blocker_init(&blk);
    future_t *bf;
    spec_saturate(p, &blk, &bf, 1);
    atomic_int runs;
    atomic_init(&runs, 0);
    future_t *q = pool_submit(p, spec_count_task, &runs);
    cr_assert_not_null(q);
    struct fork_pools fp = {d, p, q, &runs};
    in_child(child_parent_pools_refuse, &fp);
    /* in the parent everything still works */
    cr_assert_eq(atomic_load(&ex_frees), 0);
    spec_gate_open(&blk.gate);
    spec_expect_value(q, &runs);
    cr_assert_eq(atomic_load(&runs), 1);
    struct pool_stats st;
    cr_assert_eq(pool_stats(p, &st), 0);
    cr_assert_eq(pool_set_idle_timeout(p, SPEC_S), 0);
    future_t *f = pool_submit_ex(p, ex_task, NULL, ex_arg_free);
    cr_assert_not_null(f);
    spec_expect_value(f, NULL);
    future_release(f);
    future_release(q);
    future_release(bf);
    pool_destroy(p);
    cr_assert_eq(atomic_load(&ex_runs), 1);
    cr_assert_eq(atomic_load(&ex_frees), 1);
    spec_blocker_destroy(&blk);
}

struct fork_timers {
    future_t *delay;
    future_t *timeout;
    future_t *timed; /* the input of timeout, never settled */
};

static void child_timers(void *arg)
{
    struct fork_timers *ft = arg;
    CHILD_CHECK(future_wait_for(ft->delay, 10 * SPEC_S));
    CHILD_CHECK(future_wait(ft->delay, NULL) == 0);
    CHILD_CHECK(future_wait_for(ft->timeout, 10 * SPEC_S));
    CHILD_CHECK(future_wait(ft->timeout, NULL) == ETIMEDOUT);
    CHILD_CHECK(future_wait_for(ft->timed, 10 * SPEC_S));
    CHILD_CHECK(future_wait(ft->timed, NULL) == ECANCELED);
    /* a continuation of an inherited delay runs; new timers work */
    future_t *g = future_then(ft->delay, spec_inc_then, NULL);
    CHILD_CHECK(g != NULL);
    CHILD_CHECK(child_wait_value(g, (void *)(uintptr_t)1));
    future_t *d2 = future_delay(10 * SPEC_MS);
    CHILD_CHECK(d2 != NULL);
    CHILD_CHECK(child_wait_value(d2, NULL));
}

CheckedTest(spec_reliability, fork_inherited_delays_and_timeouts_fire,
            .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    promise_t *pr = spec_promise();
    struct fork_timers ft;
    ft.timed = spec_pfuture(pr);
    ft.delay = future_delay(1500 * SPEC_MS);
    ft.timeout = future_timeout(ft.timed, 1500 * SPEC_MS);
    cr_assert(ft.delay && ft.timeout);
    cr_assert_not(future_is_ready(ft.delay));
    cr_assert_not(future_is_ready(ft.timeout));
    in_child(child_timers, &ft);
    /* the parent's timers fire as well */
    spec_expect_value(ft.delay, NULL);
    spec_expect_error(ft.timeout, ETIMEDOUT);
    spec_expect_error(ft.timed, ECANCELED);
    future_release(ft.delay);
    future_release(ft.timeout);
    future_release(ft.timed);
    promise_release(pr);
}

struct fork_conts {
    promise_t *pending;     /* unsettled at the fork */
    future_t *pending_then; /* a continuation of it, made in the parent */
    future_t *resolved;     /* future_resolved(41) */
    future_t *failed;       /* future_failed(EIO) */
    future_t *pool_done;    /* a parent pool's task, settled with 7 */
    future_t *parent_then;  /* a parent pool's continuation, still waiting */
    pool_t *pool;
};

static void child_conts(void *arg)
{
    struct fork_conts *fc = arg;
    /* continuations made in the parent, triggered in the child */
    CHILD_CHECK(promise_resolve(fc->pending, (void *)(uintptr_t)1) == 0);
    CHILD_CHECK(child_wait_value(fc->pending_then, (void *)(uintptr_t)2));
    /* continuations made in the child on the parent's futures */
    future_t *a = future_then(fc->resolved, spec_inc_then, NULL);
    CHILD_CHECK(a != NULL);
    CHILD_CHECK(child_wait_value(a, (void *)(uintptr_t)42));
    future_t *b = future_catch(fc->failed, recover_catch, NULL);
    CHILD_CHECK(b != NULL);
    CHILD_CHECK(child_wait_value(b, NULL));
    /* the future of a parent pool's task: that pool cannot run it here */
    future_t *c = future_then(fc->pool_done, spec_inc_then, NULL);
    CHILD_CHECK(c != NULL);
    CHILD_CHECK(child_wait_value(c, (void *)(uintptr_t)8));
    future_t *c2 = future_then(c, spec_inc_then, NULL);
    CHILD_CHECK(c2 != NULL);
    CHILD_CHECK(child_wait_value(c2, (void *)(uintptr_t)9));
    future_t *in[2] = {fc->resolved, fc->pool_done};
    future_t *w = when_all(in, 2);
    CHILD_CHECK(w != NULL);
    future_t *wc = future_then(w, spec_inc_then, NULL);
    CHILD_CHECK(wc != NULL);
    CHILD_CHECK(child_wait_value(wc, (void *)(uintptr_t)1));
}

CheckedTest(spec_reliability, fork_continuations_of_parent_futures_run,
            .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    struct fork_conts fc;
    fc.pending = spec_promise();
    future_t *pf = spec_pfuture(fc.pending);
    fc.pending_then = future_then(pf, spec_inc_then, NULL);
    fc.resolved = future_resolved((void *)(uintptr_t)41);
    fc.failed = future_failed(EIO);
    fc.pool = spec_pool(1);
    fc.pool_done = pool_submit(fc.pool, spec_value_task, (void *)(uintptr_t)7);
    cr_assert(fc.pending_then && fc.resolved && fc.failed && fc.pool_done);
    spec_expect_value(fc.pool_done, (void *)(uintptr_t)7);
    quiesce(fc.pool);
    in_child(child_conts, &fc);
    /* in the parent, the same pieces still work */
    cr_assert_eq(promise_resolve(fc.pending, (void *)(uintptr_t)1), 0);
    spec_expect_value(fc.pending_then, (void *)(uintptr_t)2);
    future_t *c = future_then(fc.pool_done, spec_inc_then, NULL);
    cr_assert_not_null(c);
    spec_expect_value(c, (void *)(uintptr_t)8);
    spec_expect_error(fc.failed, EIO);
    future_t *fs[] = {pf, fc.pending_then, fc.resolved, fc.failed,
                      fc.pool_done, c};
    spec_release_all(fs, sizeof fs / sizeof fs[0]);
    promise_release(fc.pending);
    pool_destroy(fc.pool);
}

/* ------------------------------------- EAGAIN: no default pool thread -- */

static void *noop_thread(void *arg)
{
    return arg;
}

static void child_no_threads(void *arg)
{
    (void)arg;
    struct rlimit old;
    CHILD_CHECK(getrlimit(RLIMIT_NPROC, &old) == 0);
    struct rlimit one = {1, old.rlim_max};
    if (setrlimit(RLIMIT_NPROC, &one) != 0)
        _exit(CHILD_SKIP);
    /* RLIMIT_NPROC does not bind root: become nobody if we are root */
    if (geteuid() == 0 &&
        (setresgid(65534, 65534, 65534) != 0 ||
         setresuid(65534, 65534, 65534) != 0))
        _exit(CHILD_SKIP);
    pthread_t t;
    if (pthread_create(&t, NULL, noop_thread, NULL) == 0) {
        pthread_join(t, NULL);
        _exit(CHILD_SKIP); /* cannot make thread creation fail here */
    }

    atomic_int ran;
    atomic_init(&ran, 0);
    /* registered before the predecessor settles */
    promise_t *pr = promise_create();
    CHILD_CHECK(pr != NULL);
    future_t *f = promise_future(pr);
    CHILD_CHECK(f != NULL);
    future_t *g = future_then(f, spec_count_then, &ran);
    CHILD_CHECK(g != NULL);
    CHILD_CHECK(promise_resolve(pr, (void *)(uintptr_t)1) == 0);
    CHILD_CHECK(future_wait_for(g, 10 * SPEC_S)); /* no waiting for ever */
    CHILD_CHECK(future_wait(g, NULL) == EAGAIN);
    /* registered after it settled */
    future_t *r = future_resolved((void *)(uintptr_t)1);
    CHILD_CHECK(r != NULL);
    future_t *h = future_then(r, spec_count_then, &ran);
    CHILD_CHECK(h != NULL);
    CHILD_CHECK(future_wait_for(h, 10 * SPEC_S));
    CHILD_CHECK(future_wait(h, NULL) == EAGAIN);
    future_t *k = future_catch(future_failed(EIO), spec_count_catch, &ran);
    CHILD_CHECK(k != NULL);
    CHILD_CHECK(future_wait_for(k, 10 * SPEC_S));
    CHILD_CHECK(future_wait(k, NULL) == EAGAIN);
    CHILD_CHECK(atomic_load(&ran) == 0); /* fn never ran */
    errno = 0;
    CHILD_CHECK(pool_default() == NULL);
    CHILD_CHECK(errno == EAGAIN);

    /* threads can start again: a later call tries again */
    CHILD_CHECK(setrlimit(RLIMIT_NPROC, &old) == 0);
    CHILD_CHECK(pool_default() != NULL);
    future_t *m = future_then(r, spec_count_then, &ran);
    CHILD_CHECK(m != NULL);
    CHILD_CHECK(child_wait_value(m, (void *)(uintptr_t)1));
    CHILD_CHECK(atomic_load(&ran) == 1);
}

CheckedTest(spec_reliability, then_fails_with_eagain_without_default_pool,
            .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    if (!in_child(child_no_threads, NULL))
        cr_skip_test("cannot make pthread_create() fail in a child here");
}
