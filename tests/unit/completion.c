/*
 * Tests of completion queues (completion_*) and future_wait_all(): the
 * order futures come back in, each exactly once, the time-outs and the
 * end, and waits inside a pool task.
 */
#include "helpers.h"

#include <errno.h>
#include <stdlib.h>

#define MS UINT64_C(1000000)

CheckedTest(completion, returns_futures_in_the_order_they_settle)
{
    enum { N = 8 };
    static const int order[N] = {5, 2, 7, 0, 3, 6, 1, 4};
    promise_t *ps[N];
    future_t *fs[N];
    completion_t *c = completion_create();
    for (int i = 0; i < N; i++) {
        ps[i] = promise_create();
        fs[i] = promise_future(ps[i]);
        cr_assert_eq(completion_add(c, fs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        promise_resolve(ps[order[i]], U2P(order[i]));
    for (int i = 0; i < N; i++) {
        future_t *f = completion_next(c, UINT64_MAX);
        cr_assert_eq(f, fs[order[i]], "position %d", i);
        future_release(f);
    }
    errno = 0;
    cr_assert_null(completion_next(c, UINT64_MAX));
    cr_assert_eq(errno, ENOENT);
    completion_release(c);
    for (int i = 0; i < N; i++) {
        future_release(fs[i]);
        promise_release(ps[i]);
    }
}

CheckedTest(completion, a_future_added_twice_comes_back_twice)
{
    completion_t *c = completion_create();
    future_t *f = future_resolved(NULL);
    completion_add(c, f);
    completion_add(c, f);
    future_t *a = completion_next(c, 0), *b = completion_next(c, 0);
    cr_assert_eq(a, f);
    cr_assert_eq(b, f);
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT);
    future_release(a);
    future_release(b);
    future_release(f);
    completion_release(c);
}

CheckedTest(completion, polls_and_times_out_while_nothing_settles)
{
    completion_t *c = completion_create();
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ENOENT, "an empty queue has nothing to come");
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    completion_add(c, f);
    errno = 0;
    cr_assert_null(completion_next(c, 0));
    cr_assert_eq(errno, ETIMEDOUT);
    uint64_t start = monotonic_ns();
    errno = 0;
    cr_assert_null(completion_next(c, 20 * MS));
    cr_assert_eq(errno, ETIMEDOUT);
    cr_assert_geq(monotonic_ns() - start, 20 * MS);
    promise_resolve(p, NULL);
    future_t *got = completion_next(c, 0);
    cr_assert_eq(got, f);
    future_release(got);
    future_release(f);
    promise_release(p);
    completion_release(c);
}

struct settler {
    promise_t *p;
    sem_t go;
};

static void *settle_later(void *arg)
{
    struct settler *s = arg;
    sem_wait(&s->go);
    promise_resolve(s->p, U2P(9));
    return NULL;
}

CheckedTest(completion, a_blocked_next_wakes_when_one_settles)
{
    completion_t *c = completion_create();
    struct settler s = {.p = promise_create()};
    sem_init(&s.go, 0, 0);
    future_t *f = promise_future(s.p);
    completion_add(c, f);
    pthread_t t;
    pthread_create(&t, NULL, settle_later, &s);
    sem_post(&s.go); /* it may settle before or after next() blocks */
    future_t *got = completion_next(c, UINT64_MAX);
    cr_assert_eq(got, f);
    pthread_join(t, NULL);
    sem_destroy(&s.go);
    future_release(got);
    future_release(f);
    promise_release(s.p);
    completion_release(c);
}

/* Four threads take 10,000 futures that settle as they go: each future
 * comes back exactly once. */
struct taker {
    completion_t *c;
    future_t **seen;
    atomic_size_t *n;
};

static void *take_all(void *arg)
{
    struct taker *t = arg;
    future_t *f;
    while ((f = completion_next(t->c, UINT64_MAX)) != NULL)
        t->seen[atomic_fetch_add(t->n, 1)] = f;
    return errno == ENOENT ? NULL : (void *)1;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (future_t *const *)a,
              y = (uintptr_t) * (future_t *const *)b;
    return (x > y) - (x < y);
}

CheckedTest(completion, four_takers_get_each_future_exactly_once,
            .timeout = 60)
{
    enum { N = 10000, T = 4 };
    pool_t *pool = pool_create(2);
    completion_t *c = completion_create();
    future_t **fs = calloc(N, sizeof *fs), **seen = calloc(N, sizeof *seen);
    for (int i = 0; i < N; i++) {
        fs[i] = pool_submit(pool, value_task, U2P(i));
        cr_assert_eq(completion_add(c, fs[i]), 0);
    }
    atomic_size_t n = 0;
    struct taker tk = {c, seen, &n};
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, take_all, &tk);
    for (int i = 0; i < T; i++) {
        void *bad;
        pthread_join(th[i], &bad);
        cr_assert_null(bad, "a taker stopped on an error other than ENOENT");
    }
    cr_assert_eq(atomic_load(&n), (size_t)N);
    qsort(seen, N, sizeof *seen, cmp_ptr);
    qsort(fs, N, sizeof *fs, cmp_ptr);
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], fs[i], "future %d", i);
    for (int i = 0; i < N; i++) {
        future_release(seen[i]);
        future_release(fs[i]);
    }
    free(fs);
    free(seen);
    completion_release(c);
    pool_destroy(pool);
}

static atomic_int ran;
static int count_and_gate(void *arg, void **result)
{
    gate_pass(arg);
    atomic_fetch_add(&ran, 1);
    *result = NULL;
    return 0;
}

CheckedTest(completion, released_with_futures_left_those_still_run)
{
    atomic_store(&ran, 0);
    pool_t *pool = pool_create(2);
    struct gate g;
    gate_init(&g);
    completion_t *c = completion_create();
    future_t *done = future_resolved(NULL);
    completion_add(c, done); /* queued, never taken */
    for (int i = 0; i < 4; i++) {
        future_t *f = pool_submit(pool, count_and_gate, &g);
        completion_add(c, f);
        future_release(f); /* only the queue holds it now */
    }
    completion_release(c);
    gate_open(&g);
    pool_destroy(pool); /* drains: every task runs */
    cr_assert_eq(atomic_load(&ran), 4);
    future_release(done);
    gate_destroy(&g);
}

CheckedTest(completion, null_arguments_are_einval)
{
    future_t *f = future_resolved(NULL);
    completion_t *c = completion_create();
    cr_assert_eq(completion_add(NULL, f), EINVAL);
    cr_assert_eq(completion_add(c, NULL), EINVAL);
    errno = 0;
    cr_assert_null(completion_next(NULL, 0));
    cr_assert_eq(errno, EINVAL);
    completion_release(NULL);
    completion_release(c);
    future_release(f);
}

/* Inside a task on a pool of one thread: next() waits as future_wait()
 * does, so the tasks it waits for still run. */
struct inside {
    pool_t *pool;
    int n;
};

static int take_inside(void *arg, void **result)
{
    struct inside *in = arg;
    completion_t *c = completion_create();
    for (int i = 0; i < in->n; i++) {
        future_t *f = pool_submit(in->pool, value_task, U2P(i + 1));
        completion_add(c, f);
        future_release(f);
    }
    uintptr_t sum = 0;
    future_t *f;
    while ((f = completion_next(c, UINT64_MAX)) != NULL) {
        void *v;
        future_wait(f, &v);
        sum += P2U(v);
        future_release(f);
    }
    completion_release(c);
    *result = U2P(sum);
    return errno == ENOENT ? 0 : errno;
}

CheckedTest(completion, next_inside_a_task_on_a_one_thread_pool_finishes)
{
    pool_t *one = pool_create(1);
    struct inside in = {one, 10};
    future_t *f = pool_submit(one, take_inside, &in);
    void *v = NULL;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(P2U(v), 55u);
    future_release(f);
    pool_destroy(one);
}

/* ------------------------------------------------------- future_wait_all */

CheckedTest(wait_all, fills_values_and_errors_and_returns_the_first_error)
{
    future_t *fs[4] = {future_resolved(U2P(1)), future_failed(EIO),
                       future_resolved(U2P(3)), future_failed(ENOENT)};
    void *values[4] = {U2P(99), U2P(99), U2P(99), U2P(99)};
    int errors[4] = {-1, -1, -1, -1};
    cr_assert_eq(future_wait_all(fs, 4, values, errors), EIO);
    cr_assert_eq(P2U(values[0]), 1u);
    cr_assert_null(values[1]);
    cr_assert_eq(P2U(values[2]), 3u);
    cr_assert_null(values[3]);
    cr_assert_eq(errors[0], 0);
    cr_assert_eq(errors[1], EIO);
    cr_assert_eq(errors[2], 0);
    cr_assert_eq(errors[3], ENOENT);
    cr_assert_eq(future_wait_all(fs, 4, NULL, NULL), EIO);
    cr_assert_eq(future_wait_all(&fs[2], 1, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        future_release(fs[i]);
}

CheckedTest(wait_all, bad_arguments_are_einval_and_nothing_is_empty)
{
    future_t *fs[2] = {future_resolved(NULL), NULL};
    cr_assert_eq(future_wait_all(NULL, 1, NULL, NULL), EINVAL);
    cr_assert_eq(future_wait_all(fs, 2, NULL, NULL), EINVAL);
    cr_assert_eq(future_wait_all(NULL, 0, NULL, NULL), 0);
    future_release(fs[0]);
}

CheckedTest(wait_all, waits_for_every_input)
{
    pool_t *pool = pool_create(2);
    struct gate g;
    gate_init(&g);
    future_t *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = pool_submit(pool, gated_task, &g);
    gate_open(&g);
    void *values[3];
    cr_assert_eq(future_wait_all(fs, 3, values, NULL), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert(future_is_ready(fs[i]));
        cr_assert_eq(values[i], &g);
        future_release(fs[i]);
    }
    pool_destroy(pool);
    gate_destroy(&g);
}

static int gather_inside(void *arg, void **result)
{
    pool_t *pool = arg;
    future_t *fs[5];
    for (int i = 0; i < 5; i++)
        fs[i] = pool_submit(pool, value_task, U2P(i));
    void *values[5];
    int error = future_wait_all(fs, 5, values, NULL);
    uintptr_t sum = 0;
    for (int i = 0; i < 5; i++) {
        sum += P2U(values[i]);
        future_release(fs[i]);
    }
    *result = U2P(sum);
    return error;
}

CheckedTest(wait_all, inside_a_task_on_a_one_thread_pool_finishes)
{
    pool_t *one = pool_create(1);
    future_t *f = pool_submit(one, gather_inside, one);
    void *v = NULL;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(P2U(v), 10u);
    future_release(f);
    pool_destroy(one);
}

static atomic_int reports;
static void count_report(const struct futures_failure *f, void *arg)
{
    (void)f, (void)arg;
    atomic_fetch_add(&reports, 1);
}

CheckedTest(wait_all, a_failure_it_returns_counts_as_observed)
{
    atomic_store(&reports, 0);
    futures_set_unobserved_handler(count_report, NULL);
    future_t *f = rejected_future(EIO);
    cr_assert_eq(future_wait_all(&f, 1, NULL, NULL), EIO);
    future_release(f);
    restore_unobserved_check();
    cr_assert_eq(atomic_load(&reports), 0);
}

CheckedTest(completion, adding_counts_as_observing)
{
    atomic_store(&reports, 0);
    futures_set_unobserved_handler(count_report, NULL);
    completion_t *c = completion_create();
    future_t *f = rejected_future(EIO);
    completion_add(c, f);
    future_release(f);
    completion_release(c); /* never taken back, yet handed over */
    restore_unobserved_check();
    cr_assert_eq(atomic_load(&reports), 0);
}

CheckedTest(completion, futures_settled_when_added_come_in_the_order_added)
{
    completion_t *c = completion_create();
    future_t *a = future_resolved(U2P(1)), *b = future_failed(EIO);
    promise_t *p = promise_create();
    future_t *later = promise_future(p);
    completion_add(c, later);
    completion_add(c, b);
    completion_add(c, a);
    promise_resolve(p, NULL);
    future_t *got[3];
    for (int i = 0; i < 3; i++)
        got[i] = completion_next(c, 0);
    cr_assert_eq(got[0], b);
    cr_assert_eq(got[1], a);
    cr_assert_eq(got[2], later);
    for (int i = 0; i < 3; i++)
        future_release(got[i]);
    future_release(a);
    future_release(b);
    future_release(later);
    promise_release(p);
    completion_release(c);
}
