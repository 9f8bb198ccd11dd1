/*
 * spec_concurrency.c - many threads submitting, waiting, chaining,
 * cancelling and releasing at once; the counts must add up.
 */
#include "spec_helpers.h"

enum { THREADS = 8 };

struct shared {
    pool_t *pool;
    spec_gate_t go;
    atomic_int ran;
    atomic_int errors;
};

static void shared_init(struct shared *s, size_t nthreads)
{
    s->pool = spec_pool(nthreads);
    spec_gate_init(&s->go);
    atomic_init(&s->ran, 0);
    atomic_init(&s->errors, 0);
}

static void run_threads(struct shared *s, void *(*fn)(void *), void *args,
                        size_t argsize)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(
            pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsize),
            0);
    spec_gate_open(&s->go);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

struct targ {
    struct shared *s;
    int id;
};

/* ------------------------------------------------------ submit + wait -- */

enum { PER_THREAD = 300 };

static int add_task(void *arg, void **result)
{
    struct shared *s = *(struct shared **)arg;
    atomic_fetch_add(&s->ran, 1);
    *result = arg;
    return 0;
}

static void *submit_wait_thread(void *arg)
{
    struct targ *a = arg;
    struct shared *s = a->s;
    spec_gate_wait(&s->go);
    struct shared **self = &a->s;
    for (int i = 0; i < PER_THREAD; i++) {
        future_t *f = pool_submit(s->pool, add_task, self);
        if (!f) {
            atomic_fetch_add(&s->errors, 1);
            continue;
        }
        void *v = NULL;
        if (i % 3 == 0) {
            future_t *extra = future_retain(f);
            future_release(f);
            f = extra;
        }
        if (future_wait(f, &v) != 0 || v != self)
            atomic_fetch_add(&s->errors, 1);
        future_release(f);
    }
    return NULL;
}

CheckedTest(spec_concurrency, many_threads_submit_and_wait, .timeout = 60)
{
    struct shared s;
    shared_init(&s, 3);
    struct targ a[THREADS];
    for (int i = 0; i < THREADS; i++)
        a[i] = (struct targ){&s, i};
    run_threads(&s, submit_wait_thread, a, sizeof a[0]);
    pool_destroy(s.pool);
    cr_assert_eq(atomic_load(&s.errors), 0);
    cr_assert_eq(atomic_load(&s.ran), THREADS * PER_THREAD);
    spec_gate_destroy(&s.go);
}

/* ---------------------------------------------------- fire and forget -- */

static int ff_task(void *arg, void **result)
{
    atomic_fetch_add(&((struct shared *)arg)->ran, 1);
    *result = NULL;
    return 0;
}

static void *fire_forget_thread(void *arg)
{
    struct targ *a = arg;
    struct shared *s = a->s;
    spec_gate_wait(&s->go);
    for (int i = 0; i < PER_THREAD; i++) {
        future_t *f = pool_submit(s->pool, ff_task, s);
        if (!f)
            atomic_fetch_add(&s->errors, 1);
        future_release(f);
    }
    return NULL;
}

CheckedTest(spec_concurrency, fire_and_forget_from_many_threads, .timeout = 60)
{
    struct shared s;
    shared_init(&s, 2);
    struct targ a[THREADS];
    for (int i = 0; i < THREADS; i++)
        a[i] = (struct targ){&s, i};
    run_threads(&s, fire_forget_thread, a, sizeof a[0]);
    pool_destroy(s.pool);
    cr_assert_eq(atomic_load(&s.errors), 0);
    cr_assert_eq(atomic_load(&s.ran), THREADS * PER_THREAD);
    spec_gate_destroy(&s.go);
}

/* ------------------------------------------------------------ chaining -- */

static int chain_add_then(void *value, void *arg, void **result)
{
    atomic_fetch_add(&((struct shared *)arg)->ran, 1);
    *result = (void *)((uintptr_t)value + 1);
    return 0;
}

static int chain_catch(int error, void *arg, void **result)
{
    atomic_fetch_add(&((struct shared *)arg)->ran, 1);
    *result = (void *)(uintptr_t)error;
    return 0;
}

enum { CHAIN_ROUNDS = 100 };

/* per round: 2 thens run on success, 1 catch runs on failure */
static void *chain_thread(void *arg)
{
    struct targ *a = arg;
    struct shared *s = a->s;
    spec_gate_wait(&s->go);
    for (int i = 0; i < CHAIN_ROUNDS; i++) {
        promise_t *pr = promise_create();
        future_t *t =
            pool_submit(s->pool, spec_value_task, (void *)(uintptr_t)10);
        if (!pr || !t) {
            atomic_fetch_add(&s->errors, 1);
            promise_release(pr);
            future_release(t);
            continue;
        }
        future_t *pf = promise_future(pr);
        future_t *g1 = future_then(pf, chain_add_then, s);
        future_t *g2 = future_then(t, chain_add_then, s);
        future_t *in[2] = {g1, g2};
        future_t *all = when_all(in, 2);
        future_t *any = when_any(in, 2);
        future_t *bad = future_failed(EIO + (i % 5));
        future_t *rec = future_catch(bad, chain_catch, s);
        /* release early: the library must keep what it needs alive */
        future_release(pf);
        if (i % 2) {
            future_release(t);
            t = NULL;
        }
        if (promise_resolve(pr, (void *)(uintptr_t)i) != 0)
            atomic_fetch_add(&s->errors, 1);
        void *v = NULL;
        if (future_wait(all, NULL) != 0)
            atomic_fetch_add(&s->errors, 1);
        if (future_wait(g1, &v) != 0 || v != (void *)(uintptr_t)(i + 1))
            atomic_fetch_add(&s->errors, 1);
        if (future_wait(g2, &v) != 0 || v != (void *)(uintptr_t)11)
            atomic_fetch_add(&s->errors, 1);
        if (future_wait(any, &v) != 0 || (uintptr_t)v > 1)
            atomic_fetch_add(&s->errors, 1);
        if (future_wait(rec, &v) != 0 ||
            v != (void *)(uintptr_t)(EIO + (i % 5)))
            atomic_fetch_add(&s->errors, 1);
        future_t *fs[] = {t, g1, g2, all, any, bad, rec};
        spec_release_all(fs, sizeof fs / sizeof fs[0]);
        promise_release(pr);
    }
    return NULL;
}

CheckedTest(spec_concurrency, many_threads_chain_and_release, .timeout = 60)
{
    struct shared s;
    shared_init(&s, 3);
    struct targ a[THREADS];
    for (int i = 0; i < THREADS; i++)
        a[i] = (struct targ){&s, i};
    run_threads(&s, chain_thread, a, sizeof a[0]);
    pool_destroy(s.pool);
    cr_assert_eq(atomic_load(&s.errors), 0);
    cr_assert_eq(atomic_load(&s.ran), THREADS * CHAIN_ROUNDS * 3);
    spec_gate_destroy(&s.go);
}

/* ----------------------------------------- attach while it is settling -- */

enum { ATTACH = 100 };

struct attach_arg {
    struct shared *s;
    future_t *f;
    future_t *g[ATTACH];
};

static void *attach_thread(void *arg)
{
    struct attach_arg *a = arg;
    spec_gate_wait(&a->s->go);
    for (int i = 0; i < ATTACH; i++)
        a->g[i] = future_then(a->f, chain_add_then, a->s);
    return NULL;
}

CheckedTest(spec_concurrency, continuations_attached_while_settling,
            .timeout = 60)
{
    for (int round = 0; round < 5; round++) {
        struct shared s;
        shared_init(&s, 1);
        promise_t *pr = spec_promise();
        future_t *f = spec_pfuture(pr);
        struct attach_arg *a = calloc(THREADS, sizeof *a);
        cr_assert_not_null(a);
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            a[i].s = &s;
            a[i].f = f;
            cr_assert_eq(pthread_create(&t[i], NULL, attach_thread, &a[i]), 0);
        }
        spec_gate_open(&s.go);
        cr_assert_eq(promise_resolve(pr, (void *)(uintptr_t)round), 0);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < THREADS; i++) {
            for (int j = 0; j < ATTACH; j++) {
                cr_assert_not_null(a[i].g[j]);
                spec_expect_value(a[i].g[j], (void *)(uintptr_t)(round + 1));
                future_release(a[i].g[j]);
            }
        }
        cr_assert_eq(atomic_load(&s.ran), THREADS * ATTACH);
        free(a);
        future_release(f);
        promise_release(pr);
        pool_destroy(s.pool);
        spec_gate_destroy(&s.go);
    }
}

/* ----------------------------------------------------------- cancelling -- */

enum { NCANCEL = 2000, CANCELLERS = 4 };

struct ctask {
    atomic_int ran;
    atomic_int cancel_true;
};

struct cancel_state {
    future_t *f[NCANCEL];
    struct ctask t[NCANCEL];
    atomic_int published;
    spec_gate_t go;
};

static int ctask_fn(void *arg, void **result)
{
    struct ctask *t = arg;
    atomic_fetch_add(&t->ran, 1);
    *result = t;
    return 0; /* succeeds even if asked to cancel while running */
}

struct canceller {
    struct cancel_state *st;
    int id;
};

static void *cancel_thread(void *arg)
{
    struct canceller *c = arg;
    struct cancel_state *st = c->st;
    spec_gate_wait(&st->go);
    for (int i = 0; i < NCANCEL; i++) {
        /* thread 0 tries everything; the others a share each */
        if (c->id != 0 && i % (CANCELLERS - 1) != c->id - 1)
            continue;
        while (atomic_load(&st->published) <= i)
            sched_yield();
        if (future_cancel(st->f[i]))
            atomic_fetch_add(&st->t[i].cancel_true, 1);
    }
    return NULL;
}

CheckedTest(spec_concurrency, cancel_races_with_running, .timeout = 60)
{
    struct cancel_state *st = calloc(1, sizeof *st);
    cr_assert_not_null(st);
    atomic_init(&st->published, 0);
    spec_gate_init(&st->go);
    pool_t *p = spec_pool(2);
    pthread_t t[CANCELLERS];
    struct canceller c[CANCELLERS];
    for (int i = 0; i < CANCELLERS; i++) {
        c[i] = (struct canceller){st, i};
        cr_assert_eq(pthread_create(&t[i], NULL, cancel_thread, &c[i]), 0);
    }
    spec_gate_open(&st->go);
    for (int i = 0; i < NCANCEL; i++) {
        atomic_init(&st->t[i].ran, 0);
        atomic_init(&st->t[i].cancel_true, 0);
        st->f[i] = pool_submit(p, ctask_fn, &st->t[i]);
        cr_assert_not_null(st->f[i]);
        atomic_store(&st->published, i + 1);
    }
    for (int i = 0; i < CANCELLERS; i++)
        pthread_join(t[i], NULL);
    pool_destroy(p);

    int cancelled = 0, succeeded = 0;
    for (int i = 0; i < NCANCEL; i++) {
        void *v = NULL;
        int rc = future_wait(st->f[i], &v);
        int ran = atomic_load(&st->t[i].ran);
        int ct = atomic_load(&st->t[i].cancel_true);
        cr_assert_leq(ct, 1, "task %d: cancel returned true %d times", i, ct);
        if (rc == ECANCELED) {
            cancelled++;
            cr_assert_eq(ran, 0, "task %d cancelled yet ran", i);
            cr_assert_eq(ct, 1, "task %d: ECANCELED without a true", i);
        } else {
            succeeded++;
            cr_assert_eq(rc, 0, "task %d: unexpected %d", i, rc);
            cr_assert_eq(v, &st->t[i]);
            cr_assert_eq(ran, 1, "task %d ran %d times", i, ran);
            cr_assert_eq(ct, 0, "task %d: true cancel yet it ran", i);
        }
        future_release(st->f[i]);
    }
    cr_assert_eq(cancelled + succeeded, NCANCEL);
    spec_gate_destroy(&st->go);
    free(st);
}

/* --------------------------------------------- shared waits + releases -- */

struct wr_arg {
    struct shared *s;
    future_t *f;
    void *expect;
};

static void *wait_release_thread(void *arg)
{
    struct wr_arg *a = arg;
    future_t *mine = a->f; /* a reference of this thread's own */
    spec_gate_wait(&a->s->go);
    for (int i = 0; i < 200; i++) {
        future_t *r = future_retain(mine);
        void *v = NULL;
        if (future_wait(r, &v) != 0 || v != a->expect)
            atomic_fetch_add(&a->s->errors, 1);
        if (!future_is_ready(r))
            atomic_fetch_add(&a->s->errors, 1);
        future_release(r);
    }
    future_release(mine);
    return NULL;
}

CheckedTest(spec_concurrency, shared_future_waited_retained_released,
            .timeout = 60)
{
    struct shared s;
    shared_init(&s, 1);
    spec_blocker_t b;
    spec_blocker_init(&b);
    future_t *f = pool_submit(s.pool, spec_block_task, &b);
    cr_assert_not_null(f);
    struct wr_arg a[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct wr_arg){&s, future_retain(f), &b};
        cr_assert_eq(pthread_create(&t[i], NULL, wait_release_thread, &a[i]),
                     0);
    }
    spec_gate_open(&s.go);
    future_release(f); /* the threads' own references keep it alive */
    spec_gate_open(&b.gate);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pool_destroy(s.pool);
    cr_assert_eq(atomic_load(&s.errors), 0);
    spec_blocker_destroy(&b);
    spec_gate_destroy(&s.go);
}
