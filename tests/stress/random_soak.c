/*
 * random_soak.c - a seeded random soak over the whole public API.
 *
 * THREADS threads each run a long random sequence of operations on a
 * handful of futures of their own (their slots): tasks submitted every way
 * there is, to the default pool, to a loop and to private pools that other
 * threads create, shut down (either mode) and destroy meanwhile;
 * continuations of every kind, on pools and on a loop run by a thread of
 * its own; when_all / when_any over random subsets; delays and timeouts;
 * promises in a table that any thread settles or releases, pool threads
 * included; cancels at random moments; waits, polls, retains, releases;
 * futures passed between threads through a mailbox; result destructors and
 * an unobserved-failure handler. Tasks and callbacks do tiny work: they
 * count, sometimes fail, sometimes poll task_cancelled().
 *
 * What must add up at the end (each a CHECK, all on the summary line):
 *  - every accepted task ran or was cancelled, as its future's outcome
 *    says (ECANCELED if and only if it never ran), and no refused
 *    submission ran: tasks run == tasks whose future says they ran;
 *  - every arg_free ran once per _ex call;
 *  - every result destructor ran once per non-NULL value made for a
 *    future that had one (values made == values freed);
 *  - unobserved failures: exact counts from probes that use error codes of
 *    their own, never a cancellation, nothing that was observed;
 *  - no future is left (fut__live_futures() == 0) once everything is
 *    released and the pools are destroyed;
 *  - operations run == rounds(BASE).
 *
 * Replaying: the seed is printed first; SOAK_SEED=n runs the same sequence
 * of operations again (each thread's generator derives from it, and every
 * operation draws the same amount of randomness whatever happens). Thread
 * interleaving is not replayable, so neither is what the operations find.
 *
 * Size: rounds(BASE) operations in all, BASE = 100,000 (10,000 with
 * STRESS_LIGHT=1, for valgrind). STRESS_SCALE=100 gives the long run of
 * 10,000,000 operations. On 2 CPUs, at STRESS_SCALE=1: about 0.3 s plain,
 * 3 s under ThreadSanitizer, 5 s under valgrind (light); the long run
 * takes about 30 s plain.
 */
#include "common.h"
#include "internal.h" /* fut__count_live(), fut__live_futures() */

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#define BASE       100000
#define LIGHT_BASE 10000

enum {
    THREADS = 6,
    SLOTS = 12,     /* futures each thread plays with */
    AUDIT_MAX = 48, /* task futures waiting for their outcome to be checked */
    NPOOLS = 3,     /* private pools alive at once, at most */
    NPROMISES = 8,  /* the shared promise table */
    NMAIL = 4,      /* the mailbox futures cross threads through */
    DRAW = 6        /* random words each operation draws */
};

/* Below this, a pointer-sized value is a mode or an index, never memory. */
#define TAG_LIMIT 4096

#define REC_LIVE   0x7a5c11feu
#define OWNED_LIVE 0x0a1eda7au
#define VALUE_LIVE 0x5a1a7e00u
#define DEAD       0xdeadbeefu

static pool_t *dflt;
static loop_t *loop;

/*
 * Under valgrind (STRESS_LIGHT) blocking jobs and tasks that wait, which
 * would start threads on the default pool, go to this private pool
 * instead. The default pool is never destroyed, so threads it starts
 * beyond its core (stand-ins, blocking threads) are still alive or
 * unjoined at exit, and their thread-local blocks, on stacks that glibc
 * may have recycled from any earlier thread, show as "possibly lost"
 * where tests/valgrind.supp cannot match them.
 */
static pool_t *side;

/* ------------------------------------------------------------ counters -- */

static atomic_long ops_run;
static atomic_long accepted, refused, tasks_ran, seen_ran, seen_cancelled;
static atomic_long ex_calls, ex_freed;
static atomic_long values_made, values_freed;
static atomic_long callbacks_ran, cancels_won;
static atomic_long pools_made, pools_destroyed;
static atomic_long promises_made, promises_released, settled_first,
    settled_late;

/* Unobserved failures: each probe uses an error code nothing else does. */
static atomic_long reports, expect_edom, got_edom, expect_erange, got_erange,
    expect_enotsup, got_enotsup, expect_eilseq, got_eilseq, expect_enomsg,
    got_enomsg, probes_never_ran;
static int unobserved_tag;

/* ---------------------------------------------------------------- values -- */

/* A value a task or callback succeeds with, owned by its future. */
struct value {
    uint32_t magic;
};

static void *value_new(void)
{
    struct value *v = malloc(sizeof *v);
    CHECK(v, "malloc");
    v->magic = VALUE_LIVE;
    atomic_fetch_add(&values_made, 1);
    return v;
}

/* The destructor given with future_set_result_free(). */
static void value_free(void *p)
{
    struct value *v = p;
    CHECK(v != NULL, "a NULL value was passed to the result destructor");
    CHECK(P2U(v) >= TAG_LIMIT && v->magic == VALUE_LIVE,
          "result destructor: %p is not a live value (freed twice?)", p);
    v->magic = DEAD;
    free(v);
    atomic_fetch_add(&values_freed, 1);
}

/* Whatever a future succeeded with: NULL, an index, or a live value. */
static void value_check(const void *p)
{
    if (P2U(p) >= TAG_LIMIT)
        CHECK(((const struct value *)p)->magic == VALUE_LIVE,
              "value %p read after it was freed", p);
}

/* The outcomes anything in the soak may settle with. */
static bool known_error(int e)
{
    return e == EIO || e == ENOENT || e == EINTR || e == ECANCELED ||
           e == ETIMEDOUT || e == EPIPE;
}

static void outcome_check(int rc, void *v)
{
    CHECK(rc == 0 || known_error(rc), "unexpected outcome %d", rc);
    if (rc == 0)
        value_check(v);
}

/* ---------------------------------------------------- work and its modes -- */

enum {
    M_FAIL = 1,   /* fail with EIO (or ENOENT with M_ENOENT) */
    M_ENOENT = 2, /* with M_FAIL: ENOENT rather than EIO */
    M_ALLOC = 4,  /* succeed with a new value: the future has a destructor */
    M_CHECK = 8,  /* fail with EINTR if asked to cancel */
    M_SPIN = 16,  /* poll task_cancelled() a while: widens cancel races */
    M_WAIT = 32   /* wait for a short delay inside (never on the loop) */
};

static int work(unsigned mode, void **result)
{
    if (mode & M_SPIN) {
        for (int i = 0; i < 300 && !task_cancelled(); i++)
            fut__cpu_relax();
    }
    if (mode & M_WAIT) {
        future_t *d = future_delay(20000);
        CHECK(d, "future_delay inside a task");
        CHECK(future_wait(d, NULL) == 0, "a delay waited for inside failed");
        future_release(d);
    }
    if ((mode & M_CHECK) && task_cancelled())
        return EINTR;
    if (mode & M_FAIL)
        return mode & M_ENOENT ? ENOENT : EIO;
    if (mode & M_ALLOC)
        *result = value_new();
    return 0;
}

/* ------------------------------------------------------------- promises -- */

/*
 * A promise shared between threads: whoever drops the last reference
 * releases the promise. The table holds one reference per entry, handed
 * over with atomic exchanges, so a holder is never touched after its end.
 */
struct holder {
    promise_t *p;
    atomic_int refs;
    bool owns; /* its future has the result destructor */
};

static _Atomic(struct holder *) promises[NPROMISES];

static void holder_unref(struct holder *h)
{
    if (atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    promise_release(h->p);
    free(h);
    atomic_fetch_add(&promises_released, 1);
}

/* Resolves or rejects, racing every other thread that does the same. */
static void holder_settle(struct holder *h, uint32_t r)
{
    int rc;
    if (r % 3 == 0) {
        rc = promise_reject(h->p, r & 4 ? ENOENT : EIO);
    } else {
        /* A value offered too late is freed at once (EALREADY). */
        void *v = h->owns && (r & 8) ? value_new() : NULL;
        rc = promise_resolve(h->p, v);
    }
    CHECK(rc == 0 || rc == EALREADY, "promise settled with rc %d", rc);
    atomic_fetch_add(rc ? &settled_late : &settled_first, 1);
}

/* A reference of the caller's to entry @i, which stays in the table. */
static struct holder *promise_borrow(unsigned i)
{
    struct holder *h = atomic_exchange(&promises[i], NULL);
    if (!h)
        return NULL;
    atomic_fetch_add(&h->refs, 1);
    struct holder *empty = NULL;
    if (!atomic_compare_exchange_strong(&promises[i], &empty, h))
        holder_unref(h); /* the table's: another took the entry meanwhile */
    return h;
}

static void promise_install(unsigned i, struct holder *h)
{
    struct holder *old = atomic_exchange(&promises[i], h);
    if (old)
        holder_unref(old);
}

/* ----------------------------------------------------------------- pools -- */

/* A private pool shared between threads; the last reference destroys it. */
struct pool_ref {
    pool_t *pool;
    int refs; /* under pools_lock */
};

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_ref *pools[NPOOLS];

static struct pool_ref *pool_borrow(unsigned i)
{
    pthread_mutex_lock(&pools_lock);
    struct pool_ref *r = pools[i];
    if (r)
        r->refs++;
    pthread_mutex_unlock(&pools_lock);
    return r;
}

static void pool_unref(struct pool_ref *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&pools_lock);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&pools_lock);
    if (!last)
        return;
    pool_destroy(r->pool);
    free(r);
    atomic_fetch_add(&pools_destroyed, 1);
}

static struct pool_ref *pool_take(unsigned i)
{
    pthread_mutex_lock(&pools_lock);
    struct pool_ref *r = pools[i];
    pools[i] = NULL;
    pthread_mutex_unlock(&pools_lock);
    return r;
}

/* ------------------------------------------------------ tasks, callbacks -- */

/* A task's record: did it run? Freed once its outcome has been checked. */
struct task_rec {
    uint32_t magic;
    unsigned mode;
    atomic_int ran;
};

/* The argument of every _ex call, freed by its arg_free. */
struct owned {
    uint32_t magic;
    unsigned mode;
    uint32_t settle;        /* how to settle @promise: holder_settle() */
    struct task_rec *rec;   /* a task's record, or NULL */
    struct holder *promise; /* a reference: settled when it runs, or NULL */
    future_t *hold;         /* a reference, dropped by arg_free, or NULL */
};

static struct owned *owned_new(unsigned mode, struct task_rec *rec)
{
    struct owned *o = calloc(1, sizeof *o);
    CHECK(o, "calloc");
    o->magic = OWNED_LIVE;
    o->mode = mode;
    o->rec = rec;
    atomic_fetch_add(&ex_calls, 1);
    return o;
}

/* The arg_free of every _ex call. It may drop a promise's last reference
 * or a future's: releases from pool threads and the timer thread. */
static void owned_free(void *arg)
{
    struct owned *o = arg;
    CHECK(o->magic == OWNED_LIVE, "arg_free ran twice for %p", arg);
    o->magic = DEAD;
    if (o->promise)
        holder_unref(o->promise);
    future_release(o->hold);
    free(o);
    atomic_fetch_add(&ex_freed, 1);
}

static int task_run(struct task_rec *rec, void **result)
{
    CHECK(rec->magic == REC_LIVE,
          "a task ran after its future said it never would");
    CHECK(atomic_exchange(&rec->ran, 1) == 0, "a task ran twice");
    atomic_fetch_add(&tasks_ran, 1);
    return work(rec->mode, result);
}

static int task_plain(void *arg, void **result)
{
    return task_run(arg, result);
}

static int task_owned(void *arg, void **result)
{
    struct owned *o = arg;
    CHECK(o->magic == OWNED_LIVE, "a task ran after its arg_free");
    if (o->promise)
        holder_settle(o->promise, o->settle);
    return task_run(o->rec, result);
}

/* Plain callbacks get their mode as a small integer, _ex ones an owned. */
static int callback(void *arg, void **result)
{
    unsigned mode = (unsigned)P2U(arg);
    if (P2U(arg) >= TAG_LIMIT) {
        struct owned *o = arg;
        CHECK(o->magic == OWNED_LIVE, "a callback ran after its arg_free");
        mode = o->mode;
        if (o->promise)
            holder_settle(o->promise, o->settle);
    }
    atomic_fetch_add(&callbacks_ran, 1);
    return work(mode, result);
}

static int cb_then(void *value, void *arg, void **result)
{
    value_check(value);
    return callback(arg, result);
}

static int cb_catch(int error, void *arg, void **result)
{
    CHECK(known_error(error), "catch callback got error %d", error);
    return callback(arg, result);
}

static int keep_loop(void *value, void *arg, void **result)
{
    (void)value;
    (void)arg;
    (void)result;
    return 0;
}

/* ----------------------------------------------------------------- slots -- */

/* One reference to a future, and what its owner knows about it. */
struct slot {
    future_t *f;
    struct task_rec *rec; /* a task's record: this reference checks it */
    bool taint;           /* may wait on a promise: never future_wait() it */
    bool vany;            /* may succeed with something other than NULL */
};

struct worker {
    int id;
    uint32_t rng;
    long ops;
    struct slot slots[SLOTS];
    struct slot audit[AUDIT_MAX]; /* a FIFO ring */
    size_t a_head, a_len;
};

/* Checks a task's outcome against its record, and drops the reference. */
static void audit_finish(struct slot *s)
{
    void *v = NULL;
    int rc = future_wait(s->f, &v);
    struct task_rec *r = s->rec;
    CHECK(r->magic == REC_LIVE, "task record %p checked twice", (void *)r);
    bool ran = atomic_load(&r->ran);
    if (rc == ECANCELED) {
        CHECK(!ran, "a task ran, yet its future says it was cancelled");
        atomic_fetch_add(&seen_cancelled, 1);
    } else {
        CHECK(ran, "a task never ran, yet its future settled with %d", rc);
        CHECK(rc == 0 || rc == EIO || rc == ENOENT || rc == EINTR,
              "a task's future settled with %d", rc);
        if (rc == 0) {
            value_check(v);
            CHECK((v != NULL) == !!(r->mode & M_ALLOC),
                  "task succeeded with %p, mode %#x", v, r->mode);
        }
        atomic_fetch_add(&seen_ran, 1);
    }
    r->magic = DEAD;
    free(r);
    future_release(s->f);
    *s = (struct slot){0};
}

static void audit_push(struct worker *w, struct slot *s)
{
    if (w->a_len == AUDIT_MAX) {
        audit_finish(&w->audit[w->a_head]); /* tasks always settle */
        w->a_head = (w->a_head + 1) % AUDIT_MAX;
        w->a_len--;
    }
    w->audit[(w->a_head + w->a_len) % AUDIT_MAX] = *s;
    w->a_len++;
}

/* Checks the task futures that have settled, oldest first. */
static void audit_poll(struct worker *w, bool all)
{
    while (w->a_len && (all || future_is_ready(w->audit[w->a_head].f))) {
        audit_finish(&w->audit[w->a_head]);
        w->a_head = (w->a_head + 1) % AUDIT_MAX;
        w->a_len--;
    }
}

static void slot_drop(struct worker *w, struct slot *s)
{
    if (s->f && s->rec && w)
        audit_push(w, s);
    else if (s->f && s->rec)
        audit_finish(s);
    else
        future_release(s->f);
    *s = (struct slot){0};
}

static void slot_put(struct worker *w, uint32_t r, struct slot s)
{
    struct slot *to = &w->slots[r % SLOTS];
    slot_drop(w, to);
    *to = s;
}

/* A slot that holds a future, starting at @r; NULL if all are empty. */
static struct slot *pick_full(struct worker *w, uint32_t r)
{
    for (unsigned i = 0; i < SLOTS; i++) {
        struct slot *s = &w->slots[(r + i) % SLOTS];
        if (s->f)
            return s;
    }
    return NULL;
}

/* A few µs to about 1 ms, mostly short. */
static uint64_t short_ns(uint32_t r)
{
    return 1000 + (uint64_t)(r % 1000) * (UINT64_C(1) << ((r >> 10) % 11));
}

/* ------------------------------------------------------------ operations -- */

static unsigned task_mode(uint32_t r, bool blocking, bool on_loop)
{
    unsigned m = 0;
    if (r % 5 == 0)
        m |= M_FAIL | (r & 0x100 ? M_ENOENT : 0);
    if (r & 0x200)
        m |= M_ALLOC;
    if (r & 0x400)
        m |= M_CHECK;
    if ((r >> 12) % 16 == 0)
        m |= M_SPIN;
    if (!on_loop && (blocking ? (r >> 16) % 4 == 0 : (r >> 16) % 256 == 0))
        m |= M_WAIT;
    return m;
}

static unsigned cb_mode(uint32_t r)
{
    return task_mode(r, false, true); /* loops run callbacks too */
}

/* pool_submit, _ex, _blocking, loop_submit; default or private pool. */
static void op_submit(struct worker *w, const uint32_t *r)
{
    unsigned how = r[1] % 8; /* 0-2 plain, 3-5 ex, 6 blocking, 7 loop */
    struct pool_ref *pr = NULL;
    pool_t *pool = dflt;
    if (how != 7 && r[2] % 2 && (pr = pool_borrow(r[2] / 2 % NPOOLS)))
        pool = pr->pool;
    unsigned mode = task_mode(r[3], how == 6, how == 7);
    if (side && pool == dflt && (how == 6 || (mode & M_WAIT)))
        pool = side;
    struct task_rec *rec = calloc(1, sizeof *rec);
    CHECK(rec, "calloc");
    rec->magic = REC_LIVE;
    rec->mode = mode;
    future_t *f;
    if (how < 3) {
        f = pool_submit(pool, task_plain, rec);
    } else if (how < 6) {
        struct owned *o = owned_new(mode, rec);
        struct slot *h = pick_full(w, r[4]);
        if (h && r[4] % 4 == 0)
            o->hold = future_retain(h->f);
        if (r[4] % 8 == 1) /* a promise settled on a pool thread */
            o->promise = promise_borrow(r[5] % NPROMISES);
        o->settle = r[5] >> 8;
        f = pool_submit_ex(pool, task_owned, o, owned_free);
    } else if (how == 6) {
        f = pool_submit_blocking(pool, task_plain, rec);
    } else {
        f = loop_submit(loop, task_plain, rec);
    }
    if (!f) {
        CHECK(pr && errno == ESHUTDOWN, "submission refused: errno %d", errno);
        atomic_fetch_add(&refused, 1);
        rec->magic = DEAD;
        free(rec);
    } else {
        atomic_fetch_add(&accepted, 1);
        if (mode & M_ALLOC) {
            if (r[5] % 8 == 0) /* NULL takes a destructor away again */
                CHECK(future_set_result_free(f, NULL) == 0, "set NULL");
            CHECK(future_set_result_free(f, value_free) == 0, "set");
        }
        slot_put(w, r[4] >> 8,
                 (struct slot){f, rec, false, !!(mode & M_ALLOC)});
    }
    pool_unref(pr);
}

/* then, then_ex, catch, catch_ex, then_on, catch_on. */
static void op_continue(struct worker *w, const uint32_t *r)
{
    struct slot *in = pick_full(w, r[1]);
    if (!in)
        return;
    unsigned kind = r[2] % 6;
    bool catches = kind == 2 || kind == 3 || kind == 5;
    unsigned mode = cb_mode(r[3]);
    /* A catch passes its input's value on: it owns a value of its own only
     * if its input never has one. */
    if (catches && in->vany)
        mode &= ~(unsigned)M_ALLOC;
    future_t *g;
    if (kind == 1 || kind == 3) {
        struct owned *o = owned_new(mode, NULL);
        struct slot *h = pick_full(w, r[4]);
        if (h && r[4] % 4 == 0)
            o->hold = future_retain(h->f);
        /* Only a continuation sure to settle may keep a promise open. */
        if (r[4] % 8 == 1 && !in->taint)
            o->promise = promise_borrow(r[5] % NPROMISES);
        o->settle = r[5] >> 8;
        g = kind == 1 ? future_then_ex(in->f, cb_then, o, owned_free)
                      : future_catch_ex(in->f, cb_catch, o, owned_free);
    } else if (kind == 0) {
        g = future_then(in->f, cb_then, U2P(mode));
    } else if (kind == 2) {
        g = future_catch(in->f, cb_catch, U2P(mode));
    } else if (kind == 4) {
        g = future_then_on(in->f, loop, cb_then, U2P(mode));
    } else {
        g = future_catch_on(in->f, loop, cb_catch, U2P(mode));
    }
    CHECK(g, "continuation kind %u: errno %d", kind, errno);
    if (mode & M_ALLOC)
        CHECK(future_set_result_free(g, value_free) == 0, "set");
    bool vany = (mode & M_ALLOC) || (catches && in->vany);
    slot_put(w, r[4] >> 8, (struct slot){g, NULL, in->taint, vany});
}

static void op_combine(struct worker *w, const uint32_t *r)
{
    size_t n = 1 + r[1] % 4;
    future_t *fs[4];
    bool any_taint = false, all_taint = true;
    for (size_t k = 0; k < n; k++) {
        struct slot *s = pick_full(w, r[2] >> (8 * k));
        if (!s)
            return;
        fs[k] = s->f;
        any_taint |= s->taint;
        all_taint &= s->taint;
    }
    bool all = r[3] % 2;
    future_t *g = !all             ? when_any(fs, n)
                  : r[3] % 16 == 1 ? when_all(NULL, 0)
                                   : when_all(fs, n);
    CHECK(g, "combinator: errno %d", errno);
    slot_put(w, r[4],
             (struct slot){g, NULL, all ? any_taint : all_taint, !all});
}

static void op_delay(struct worker *w, const uint32_t *r)
{
    future_t *d = future_delay(short_ns(r[1]));
    CHECK(d, "future_delay: errno %d", errno);
    if (r[2] % 4 == 0) /* succeeds with NULL: never handed to it */
        CHECK(future_set_result_free(d, value_free) == 0, "set");
    slot_put(w, r[3], (struct slot){d, NULL, false, false});
}

static void op_timeout(struct worker *w, const uint32_t *r)
{
    struct slot *in = pick_full(w, r[1]);
    if (!in)
        return;
    future_t *t = future_timeout(in->f, 2 * short_ns(r[2]));
    CHECK(t, "future_timeout: errno %d", errno);
    slot_put(w, r[3], (struct slot){t, NULL, false, in->vany});
}

static void op_promise_new(struct worker *w, const uint32_t *r)
{
    struct holder *h = calloc(1, sizeof *h);
    CHECK(h, "calloc");
    h->p = promise_create();
    CHECK(h->p, "promise_create");
    atomic_init(&h->refs, 1);
    h->owns = r[1] % 2;
    atomic_fetch_add(&promises_made, 1);
    future_t *f = promise_future(h->p);
    CHECK(f, "promise_future");
    bool owns = h->owns; /* h may be gone once given away */
    if (owns)
        CHECK(future_set_result_free(f, value_free) == 0, "set");
    if (r[2] % 4 == 0) { /* one kept here: settled at once, or released */
        if (r[2] % 8 == 0)
            holder_settle(h, r[3]);
        holder_unref(h);
    } else {
        promise_install(r[3] % NPROMISES, h);
    }
    slot_put(w, r[4], (struct slot){f, NULL, true, owns});
}

static void op_promise_settle(struct worker *w, const uint32_t *r)
{
    (void)w;
    struct holder *h = promise_borrow(r[1] % NPROMISES);
    if (!h)
        return;
    holder_settle(h, r[2]);
    holder_unref(h);
}

static void op_promise_release(struct worker *w, const uint32_t *r)
{
    (void)w;
    struct holder *h = atomic_exchange(&promises[r[1] % NPROMISES], NULL);
    if (h)
        holder_unref(h);
}

static void op_cancel(struct worker *w, const uint32_t *r)
{
    struct slot *s = pick_full(w, r[1]);
    if (s && future_cancel(s->f)) {
        atomic_fetch_add(&cancels_won, 1);
        CHECK(future_is_ready(s->f), "cancelled but not settled");
    }
}

static void op_wait(struct worker *w, const uint32_t *r)
{
    struct slot *s = pick_full(w, r[1]);
    if (!s)
        return;
    void *v = NULL;
    if (!s->taint) {
        outcome_check(future_wait(s->f, &v), v);
    } else if (future_wait_for(s->f, (r[2] % 100) * 1000)) {
        CHECK(future_is_ready(s->f), "wait_for true, not ready");
        outcome_check(future_wait(s->f, &v), v);
    }
}

static void op_poll(struct worker *w, const uint32_t *r)
{
    struct slot *s = pick_full(w, r[1]);
    if (!s)
        return;
    if (r[2] % 2 ? future_is_ready(s->f) : future_wait_for(s->f, 0)) {
        CHECK(future_wait_for(s->f, 0) && future_is_ready(s->f),
              "settled, then not");
        void *v = NULL;
        outcome_check(future_wait(s->f, &v), v);
    }
}

static void op_dup(struct worker *w, const uint32_t *r)
{
    struct slot *s = pick_full(w, r[1]);
    struct slot *to = &w->slots[r[2] % SLOTS];
    if (!s || s == to)
        return;
    CHECK(future_retain(s->f) == s->f, "future_retain");
    struct slot copy = {s->f, NULL, s->taint, s->vany};
    slot_drop(w, to);
    *to = copy;
}

static void op_release(struct worker *w, const uint32_t *r)
{
    slot_drop(w, &w->slots[r[1] % SLOTS]);
}

/* Swaps a slot with the mailbox: futures released, waited for and
 * checked on threads other than the one that made them. */
static _Atomic(struct slot *) mail[NMAIL];

static void op_share(struct worker *w, const uint32_t *r)
{
    struct slot *s = &w->slots[r[1] % SLOTS];
    struct slot *box = NULL;
    if (s->f) {
        box = malloc(sizeof *box);
        CHECK(box, "malloc");
        *box = *s;
    }
    struct slot *got = atomic_exchange(&mail[r[2] % NMAIL], box);
    *s = got ? *got : (struct slot){0};
    free(got);
}

static void op_settled(struct worker *w, const uint32_t *r)
{
    future_t *f;
    bool vany = false;
    if (r[1] % 3 == 0) {
        f = future_failed(r[1] & 8 ? EIO : ENOENT);
    } else if (r[1] % 3 == 1) {
        f = future_resolved(NULL);
    } else {
        f = future_resolved(value_new());
        vany = true;
    }
    CHECK(f, "future_resolved/failed");
    if (vany || r[2] % 2)
        CHECK(future_set_result_free(f, value_free) == 0, "set");
    slot_put(w, r[3], (struct slot){f, NULL, false, vany});
}

static void op_pool(struct worker *w, const uint32_t *r)
{
    (void)w;
    unsigned i = r[2] % NPOOLS;
    struct pool_ref *pr;
    struct pool_stats st;
    switch (r[1] % 8) {
    case 0:
    case 1: { /* create */
        pthread_mutex_lock(&pools_lock);
        bool empty = !pools[i];
        pthread_mutex_unlock(&pools_lock);
        if (!empty)
            break;
        pool_t *p = pool_create(1 + r[3] % 2);
        CHECK(p, "pool_create: errno %d", errno);
        atomic_fetch_add(&pools_made, 1);
        CHECK(pool_set_idle_timeout(p, r[3] & 4 ? 0 : 1000000) == 0, "idle");
        CHECK(pool_set_blocking_limit(p, 1 + r[3] / 8 % 4) == 0, "limit");
        pr = malloc(sizeof *pr);
        CHECK(pr, "malloc");
        *pr = (struct pool_ref){p, 1};
        pthread_mutex_lock(&pools_lock);
        if (!pools[i]) {
            pools[i] = pr;
            pr = NULL;
        }
        pthread_mutex_unlock(&pools_lock);
        pool_unref(pr); /* lost the race for the entry */
        break;
    }
    case 2:
    case 3: /* shut down, either mode, while others submit */
        pr = pool_borrow(i);
        if (pr)
            pool_shutdown(pr->pool, r[3] % 2 ? POOL_CANCEL : POOL_DRAIN);
        pool_unref(pr);
        break;
    case 4:
    case 5: /* destroy: by whoever lets go of it last */
        pool_unref(pool_take(i));
        break;
    case 6:
        pr = pool_borrow(i);
        CHECK(pool_stats(pr ? pr->pool : dflt, &st) == 0, "pool_stats");
        CHECK(st.peak_threads > 0, "a pool with no thread ever");
        pool_unref(pr);
        break;
    default:
        pr = pool_borrow(i);
        if (pr)
            CHECK(pool_set_blocking_limit(pr->pool, 1 + r[3] % 4) == 0, "l");
        pool_unref(pr);
        break;
    }
}

/* ------------------------------------------------- unobserved failures -- */

static int probe_erange(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return ERANGE;
}

static int probe_enotsup(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return ENOTSUP;
}

static int probe_observed(void *arg, void **result)
{
    (void)result;
    return (int)P2U(arg);
}

static int probe_eilseq(void *value, void *arg, void **result)
{
    (void)value;
    (void)arg;
    (void)result;
    return EILSEQ;
}

static int probe_never(void *value, void *arg, void **result)
{
    (void)value;
    (void)arg;
    (void)result;
    atomic_fetch_add(&probes_never_ran, 1);
    return 0;
}

static int probe_recover(int error, void *arg, void **result)
{
    (void)arg;
    (void)result;
    CHECK(error == EXDEV, "recover: %d", error);
    return 0;
}

static void on_unobserved(const struct futures_failure *fl, void *arg)
{
    CHECK(arg == &unobserved_tag, "handler argument %p", arg);
    CHECK(fl && fl->kind, "a failure with no kind");
    atomic_fetch_add(&reports, 1);
    switch (fl->error) {
    case EIO:
    case ENOENT:
    case EINTR:
    case ETIMEDOUT:
    case EPIPE:
        break;
    case EDOM:
        atomic_fetch_add(&got_edom, 1);
        break;
    case ERANGE:
        CHECK(fl->site == (void (*)(void))probe_erange &&
                  strcmp(fl->kind, "task") == 0,
              "ERANGE reported as %s", fl->kind);
        atomic_fetch_add(&got_erange, 1);
        break;
    case ENOTSUP:
        CHECK(fl->site == (void (*)(void))probe_enotsup,
              "a failure passed on down a chain lost its site (%s)", fl->kind);
        atomic_fetch_add(&got_enotsup, 1);
        break;
    case EILSEQ:
        CHECK(fl->site == (void (*)(void))probe_eilseq &&
                  strcmp(fl->kind, "then") == 0,
              "EILSEQ reported as %s", fl->kind);
        atomic_fetch_add(&got_eilseq, 1);
        break;
    case ENOMSG:
        CHECK(strcmp(fl->kind, "promise") == 0, "ENOMSG reported as %s",
              fl->kind);
        atomic_fetch_add(&got_enomsg, 1);
        break;
    default:
        /* ECANCELED, and EOVERFLOW, EXDEV, EBADMSG, which were observed. */
        CHECK(0, "unobserved-failure report of error %d (%s)", fl->error,
              fl->kind);
    }
}

/* Failures with codes of their own, so their reports can be counted. */
static void op_probe(struct worker *w, const uint32_t *r)
{
    (void)w;
    future_t *f, *g, *h;
    switch (r[1] % 8) {
    case 0: /* never observed: reported once */
        atomic_fetch_add(&expect_edom, 1);
        f = future_failed(EDOM);
        CHECK(f, "future_failed");
        future_release(f);
        break;
    case 1: /* a task's failure, released unread: reported with its site */
        atomic_fetch_add(&expect_erange, 1);
        f = pool_submit(dflt, probe_erange, NULL);
        CHECK(f, "pool_submit");
        future_release(f);
        break;
    case 2: /* passed down a chain: reported once, by its end */
        atomic_fetch_add(&expect_enotsup, 1);
        f = pool_submit(dflt, probe_enotsup, NULL);
        g = future_then(f, probe_never, NULL);
        h = future_then(g, probe_never, NULL);
        CHECK(f && g && h, "probe chain");
        future_release(r[2] % 2 ? f : h);
        future_release(g);
        future_release(r[2] % 2 ? h : f);
        break;
    case 3: /* a callback's failure */
        atomic_fetch_add(&expect_eilseq, 1);
        f = future_resolved(NULL);
        g = future_then(f, probe_eilseq, NULL);
        CHECK(f && g, "probe then");
        future_release(f);
        future_release(g);
        break;
    case 4: { /* a promise rejected, its future released last, unread.
               * (Released last, the promise itself is not reported:
               * promise.c counts a future nobody else holds as seen.) */
        atomic_fetch_add(&expect_enomsg, 1);
        promise_t *p = promise_create();
        f = promise_future(p);
        CHECK(p && f && promise_reject(p, ENOMSG) == 0, "probe promise");
        promise_release(p);
        future_release(f);
        break;
    }
    case 5: /* observed by a wait: never reported */
        f = pool_submit(dflt, probe_observed, U2P(EOVERFLOW));
        CHECK(f && future_wait(f, NULL) == EOVERFLOW, "probe wait");
        future_release(f);
        break;
    case 6: /* observed by a catch that recovers: never reported */
        f = pool_submit(dflt, probe_observed, U2P(EXDEV));
        g = future_catch(f, probe_recover, NULL);
        CHECK(f && g, "probe catch");
        future_release(f);
        future_release(g);
        break;
    default: /* observed by when_all and future_timeout, then waited */
        f = pool_submit(dflt, probe_observed, U2P(EBADMSG));
        CHECK(f, "probe");
        g = r[2] % 2 ? when_all(&f, 1) : future_timeout(f, 1000000000);
        CHECK(g, "probe combinator");
        future_release(f);
        CHECK(future_wait(g, NULL) == EBADMSG, "probe when_all/timeout");
        future_release(g);
        break;
    }
}

/* ------------------------------------------------------------ the soak -- */

typedef void (*op_fn)(struct worker *, const uint32_t *);

/* Weights out of 1000. */
static const struct {
    op_fn fn;
    unsigned weight;
} op_table[] = {
    {op_submit, 230},        {op_continue, 210},
    {op_combine, 60},        {op_delay, 40},
    {op_timeout, 40},        {op_promise_new, 40},
    {op_promise_settle, 50}, {op_promise_release, 20},
    {op_cancel, 60},         {op_wait, 60},
    {op_poll, 40},           {op_dup, 30},
    {op_release, 60},        {op_share, 30},
    {op_settled, 20},        {op_pool, 5},
    {op_probe, 5},
};

static void *soak(void *arg)
{
    struct worker *w = arg;
    for (long i = 0; i < w->ops; i++) {
        uint32_t r[DRAW];
        for (int k = 0; k < DRAW; k++)
            r[k] = next_random(&w->rng);
        unsigned pick = r[0] % 1000;
        size_t k = 0;
        while (pick >= op_table[k].weight)
            pick -= op_table[k++].weight;
        op_table[k].fn(w, r);
        atomic_fetch_add(&ops_run, 1);
        audit_poll(w, false);
    }
    for (int i = 0; i < SLOTS; i++)
        slot_drop(w, &w->slots[i]);
    audit_poll(w, true);
    return NULL;
}

/* The loop's thread: runs it until main stops it. */
static atomic_bool loop_stopping;

static void *run_loop(void *arg)
{
    (void)arg;
    CHECK(loop_run(loop) == 0, "loop_run");
    CHECK(atomic_load(&loop_stopping),
          "loop_run returned with a continuation pending and no stop");
    return NULL;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The calls that must fail, and consume nothing when they do. */
static void check_refusals(void)
{
    errno = 0;
    CHECK(!pool_submit(NULL, task_plain, NULL) && errno == EINVAL, "submit");
    CHECK(future_set_result_free(NULL, value_free) == EINVAL, "set NULL f");
    CHECK(!future_then(NULL, cb_then, NULL) && errno == EINVAL, "then");
    CHECK(!when_any(NULL, 0) && errno == EINVAL, "when_any");
    CHECK(!future_failed(0) && errno == EINVAL, "future_failed(0)");
    long before = atomic_load(&ex_freed);
    CHECK(!pool_submit_ex(NULL, task_owned, owned_new(0, NULL), owned_free),
          "submit_ex");
    CHECK(!future_then_ex(NULL, cb_then, owned_new(0, NULL), owned_free),
          "then_ex");
    CHECK(atomic_load(&ex_freed) == before + 2,
          "arg_free did not run on refused _ex calls");
}

/* Everything has been released: wait (bounded) for workers and the timer
 * thread to drop their last references, and for the reports that go with
 * them. */
static bool settled_down(void)
{
    return fut__live_futures() == 0 &&
           atomic_load(&got_edom) == atomic_load(&expect_edom) &&
           atomic_load(&got_erange) == atomic_load(&expect_erange) &&
           atomic_load(&got_enotsup) == atomic_load(&expect_enotsup) &&
           atomic_load(&got_eilseq) == atomic_load(&expect_eilseq) &&
           atomic_load(&got_enomsg) == atomic_load(&expect_enomsg) &&
           atomic_load(&values_freed) == atomic_load(&values_made);
}

int main(void)
{
    fut__count_live(true);
    futures_set_unobserved_handler(on_unobserved, &unobserved_tag);

    const char *s = getenv("SOAK_SEED");
    uint64_t seed;
    if (s && *s) {
        seed = strtoull(s, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
    }
    printf("random_soak: seed %" PRIu64 " (SOAK_SEED=%" PRIu64
           " replays the operations)\n",
           seed, seed);
    fflush(stdout);

    bool light = getenv("STRESS_LIGHT") != NULL;
    long total = rounds(light ? LIGHT_BASE : BASE);
    double start = now_s();
    /* The process-wide threads first, on stacks nothing used before. */
    dflt = pool_default();
    CHECK(dflt, "pool_default");
    future_t *first = future_delay(1000);
    CHECK(first && future_wait(first, NULL) == 0, "first delay");
    future_release(first);
    if (light)
        CHECK((side = pool_create(2)) != NULL, "pool_create");
    CHECK(pool_set_blocking_limit(dflt, 16) == 0, "blocking limit");
    check_refusals();

    /* The loop runs until loop_stop(); this continuation, pending until
     * the end, keeps it from returning when it runs out of work. */
    loop = loop_create();
    CHECK(loop, "loop_create");
    promise_t *hold_p = promise_create();
    future_t *hold_f = promise_future(hold_p);
    future_t *hold = future_then_on(hold_f, loop, keep_loop, NULL);
    CHECK(hold_p && hold_f && hold, "hold");
    pthread_t loop_thread;
    CHECK(pthread_create(&loop_thread, NULL, run_loop, NULL) == 0, "thread");

    struct worker *ws = calloc(THREADS, sizeof *ws);
    CHECK(ws, "calloc");
    uint64_t sm = seed;
    for (int i = 0; i < THREADS; i++) {
        ws[i].id = i;
        ws[i].ops = total / THREADS + (i < total % THREADS);
        do
            ws[i].rng = (uint32_t)splitmix64(&sm);
        while (ws[i].rng == 0);
    }
    run_threads(THREADS, soak, ws, sizeof *ws);

    /* Let go of everything the threads shared. */
    for (int i = 0; i < NMAIL; i++) {
        struct slot *box = atomic_exchange(&mail[i], NULL);
        if (box)
            slot_drop(NULL, box);
        free(box);
    }
    for (int i = 0; i < NPROMISES; i++)
        promise_install(i, NULL);
    for (int i = 0; i < NPOOLS; i++)
        pool_unref(pool_take(i));
    pool_destroy(side);
    atomic_store(&loop_stopping, true);
    loop_stop(loop);
    pthread_join(loop_thread, NULL);
    loop_destroy(loop);
    promise_release(hold_p);
    CHECK(future_wait(hold, NULL) == ECANCELED,
          "a continuation sent to a destroyed loop did not fail ECANCELED");
    future_release(hold);
    future_release(hold_f);

    double deadline = now_s() + (light ? 60 : 20);
    while (!settled_down() && now_s() < deadline) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    double secs = now_s() - start;

    long ops = atomic_load(&ops_run);
    CHECK(ops == total, "%ld operations run for %ld", ops, total);
    CHECK(atomic_load(&accepted) ==
              atomic_load(&seen_ran) + atomic_load(&seen_cancelled),
          "%ld tasks accepted, %ld ran + %ld cancelled", atomic_load(&accepted),
          atomic_load(&seen_ran), atomic_load(&seen_cancelled));
    CHECK(atomic_load(&tasks_ran) == atomic_load(&seen_ran),
          "%ld tasks ran, %ld futures say so", atomic_load(&tasks_ran),
          atomic_load(&seen_ran));
    CHECK(atomic_load(&ex_freed) == atomic_load(&ex_calls),
          "%ld arg_free calls for %ld _ex calls", atomic_load(&ex_freed),
          atomic_load(&ex_calls));
    CHECK(atomic_load(&values_freed) == atomic_load(&values_made),
          "%ld values freed of %ld made", atomic_load(&values_freed),
          atomic_load(&values_made));
    CHECK(atomic_load(&promises_released) == atomic_load(&promises_made),
          "%ld promises released of %ld", atomic_load(&promises_released),
          atomic_load(&promises_made));
    CHECK(atomic_load(&pools_destroyed) == atomic_load(&pools_made),
          "%ld pools destroyed of %ld", atomic_load(&pools_destroyed),
          atomic_load(&pools_made));
    CHECK(fut__live_futures() == 0, "%ld futures still live",
          fut__live_futures());
    CHECK(atomic_load(&probes_never_ran) == 0,
          "a then callback ran on a failed future");
#define PROBE(e)                                                             \
    CHECK(atomic_load(&got_##e) == atomic_load(&expect_##e),                 \
          "%ld reports of unobserved " #e " for %ld", atomic_load(&got_##e), \
          atomic_load(&expect_##e))
    PROBE(edom);
    PROBE(erange);
    PROBE(enotsup);
    PROBE(eilseq);
    PROBE(enomsg);
#undef PROBE
    long probes = atomic_load(&expect_edom) + atomic_load(&expect_erange) +
                  atomic_load(&expect_enotsup) + atomic_load(&expect_eilseq) +
                  atomic_load(&expect_enomsg);

    printf("random_soak: seed %" PRIu64 ", %ld ops on %d threads in %.2f s; "
           "tasks %ld accepted = %ld ran + %ld cancelled, %ld refused; "
           "%ld arg_free for %ld _ex calls; values %ld made = %ld freed; "
           "%ld callbacks, %ld cancels won, %ld promises (%ld settled "
           "first, %ld late), %ld pools; %ld unobserved reports (%ld "
           "probes exact); %ld live futures\n",
           seed, ops, THREADS, secs, atomic_load(&accepted),
           atomic_load(&seen_ran), atomic_load(&seen_cancelled),
           atomic_load(&refused), atomic_load(&ex_freed),
           atomic_load(&ex_calls), atomic_load(&values_made),
           atomic_load(&values_freed), atomic_load(&callbacks_ran),
           atomic_load(&cancels_won), atomic_load(&promises_made),
           atomic_load(&settled_first), atomic_load(&settled_late),
           atomic_load(&pools_made), atomic_load(&reports), probes,
           fut__live_futures());
    free(ws);
    return 0;
}
