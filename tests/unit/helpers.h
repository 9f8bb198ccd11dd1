/*
 * helpers.h - gates and counters for the unit tests.
 *
 * Interleavings are forced, never slept into: a task that must be running
 * posts `started` and then waits at a gate the test opens; saturate() fills
 * every thread of a pool with such tasks, so anything submitted afterwards
 * is known to be queued (libuv's saturate_threadpool()).
 */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <futures.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* LeakSanitizer reports do not fail a Criterion test by themselves. */
#define expect_no_leaks() \
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "leaks")
/* From the sanitizer runtime; GCC ships no header for it. */
size_t __sanitizer_get_current_allocated_bytes(void);
static inline size_t allocated_bytes(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
#define expect_no_leaks() ((void)0)
/* Bytes in use in the main arena: the test thread's own allocations. */
static inline size_t allocated_bytes(void)
{
    return mallinfo2().uordblks;
}
#endif

#define U2P(n) ((void *)(uintptr_t)(n))
#define P2U(p) ((uintptr_t)(p))

/*
 * An _ex argument that counts how often its destructor ran (free_owned)
 * and how often its task did; a task that finds it freed already fails
 * with EFAULT (pool_ex.c, scope_ex.c, then_ex.c).
 */
struct owned_arg {
    atomic_int frees;
    atomic_int runs;
};

static inline void free_owned(void *arg)
{
    atomic_fetch_add(&((struct owned_arg *)arg)->frees, 1);
}

static inline int use_owned(void *arg, void **result)
{
    struct owned_arg *o = arg;
    atomic_fetch_add(&o->runs, 1);
    *result = NULL;
    return atomic_load(&o->frees) ? EFAULT : 0; /* freed too early? */
}

static inline int fail_owned(void *arg, void **result)
{
    (void)result;
    atomic_fetch_add(&((struct owned_arg *)arg)->runs, 1);
    return EIO;
}

struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
    sem_t started; /* posted by each task that reaches the gate */
};

static inline void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = false;
    sem_init(&g->started, 0, 0);
}

static inline void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static inline void gate_pass(struct gate *g)
{
    sem_post(&g->started);
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static inline void gate_await_started(struct gate *g, int n)
{
    while (n-- > 0)
        sem_wait(&g->started);
}

static inline void gate_destroy(struct gate *g)
{
    sem_destroy(&g->started);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

/* A failed promise future, its promise already gone. */
static inline future_t *rejected_future(int error)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    promise_reject(p, error);
    promise_release(p);
    return f;
}

/* A task that waits at the gate given as its argument, then succeeds. */
static inline int gated_task(void *arg, void **result)
{
    gate_pass(arg);
    *result = arg;
    return 0;
}

/* Occupies all @n threads of @pool with gated tasks; returns once they run. */
static inline future_t **saturate(pool_t *pool, int n, struct gate *g)
{
    future_t **fs = calloc((size_t)n, sizeof *fs);
    for (int i = 0; i < n; i++) {
        fs[i] = pool_submit(pool, gated_task, g);
        cr_assert_not_null(fs[i]);
    }
    gate_await_started(g, n);
    return fs;
}

static inline void release_all(future_t **fs, int n)
{
    for (int i = 0; i < n; i++)
        future_release(fs[i]);
    free(fs);
}

/* A task that counts its runs in the atomic_int its argument points to. */
static inline int count_task(void *arg, void **result)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = arg;
    return 0;
}

/* A task that fails with the error its argument encodes. */
static inline int fail_task(void *arg, void **result)
{
    (void)result;
    return (int)P2U(arg);
}

/* A task that succeeds with its argument as value. */
static inline int value_task(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* A job's simulated work: block the calling (pool) thread for @ns. Never
 * for synchronising a test: use gates for that. */
static inline void work_for_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------- dumps -- */

/* futures_dump()'s text, which the caller frees. */
static inline char *dump_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    cr_assert_eq(futures_dump(out), 0);
    fclose(out);
    return text;
}

/* A task blocked in a wait for @p, as a dump shows one: dumped_waiter
 * (dump.c, not static so that dladdr() names it) posts @started, then
 * waits for @p's future. */
struct waiter {
    sem_t started;
    promise_t *p;
};
int dumped_waiter(void *arg, void **result);

/* ------------------------------------------------------- live futures -- */

/*
 * Every test is declared with CheckedTest() instead of Test(): after its
 * body, it fails unless every future the test made has been freed. Criterion
 * runs each test in a process of its own, so the wrapper switches on the
 * library's debug counter of live futures before the body makes the first
 * one.
 *
 * Why not TestSuite(.fini = ...) or a ReportHook: in Criterion 2.4 the
 * runner records a test as passed or failed as soon as its body returns,
 * before any .fini runs, so a failed assertion in a .fini is printed but the
 * test still passes; report hooks run in the runner, whose counter says
 * nothing about the test's process. The check has to run inside the body.
 */
void fut__count_live(bool on); /* lib/internal.h */
long fut__live_futures(void);
bool fut__slab_caching(void);

/*
 * The futures' allocator keeps freed futures on free lists and carves new
 * ones from 64 KiB blocks (lib/slab.c), so a test that counts heap bytes
 * would see blocks, not what the library keeps. Such a test switches it
 * to plain calloc() and free() first; the allocator reads the setting at
 * its first allocation, and the test's process has made none yet.
 * tests/unit/alloc_cache.c checks the allocator's own memory.
 */
static inline void plain_allocator(void)
{
    setenv("FUTURES_NO_CACHE", "1", 1);
    cr_assert_not(fut__slab_caching(), "a future was allocated already");
}

/* How long pool threads get to drop their last references: a waiter may
 * see an outcome a moment before the thread that published it lets go. */
#define LIVE_GRACE_NS (5 * UINT64_C(1000000000))

static inline uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fails the test unless the live futures drop to zero within the grace. */
static inline void expect_no_live_futures(void)
{
    uint64_t deadline = monotonic_ns() + LIVE_GRACE_NS;
    long live;
    while ((live = fut__live_futures()) != 0 && monotonic_ns() < deadline)
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* poll each ms */
    cr_assert_eq(live, 0, "%ld futures still alive %.0f s after the test", live,
                 LIVE_GRACE_NS / 1e9);
}

/* ------------------------------------------------ unobserved failures -- */

/*
 * The wrapper also takes the library's unobserved-failure reports
 * (futures_set_unobserved_handler()). A failure that nobody looked at is a
 * lost error, so it fails the test: the report is printed as usual, and the
 * test fails after its body with how many there were. A test that leaves
 * failures behind on purpose says which error with expect_unobserved(); those
 * are counted (unobserved_expected()) and not printed. A test that installs
 * a handler of its own hands the reports back with
 * restore_unobserved_check().
 */
struct unobserved_log {
    int allowed;          /* the error expect_unobserved() allows, or 0 */
    atomic_long expected; /* reports with that error */
    atomic_long unexpected;
};

static inline struct unobserved_log *unobserved_log(void)
{
    static struct unobserved_log log; /* one test per process */
    return &log;
}

static inline void record_unobserved(const struct futures_failure *failure,
                                     void *arg)
{
    struct unobserved_log *log = arg;
    if (log->allowed != 0 && failure->error == log->allowed) {
        atomic_fetch_add(&log->expected, 1);
        return;
    }
    atomic_fetch_add(&log->unexpected, 1);
    futures_unobserved_print(failure, NULL);
}

static inline void restore_unobserved_check(void)
{
    futures_set_unobserved_handler(record_unobserved, unobserved_log());
}

/* Failures with @error that nobody observes are this test's intent. Call it
 * before the first of them can be reported. */
static inline void expect_unobserved(int error)
{
    unobserved_log()->allowed = error;
}

static inline long unobserved_expected(void)
{
    return atomic_load(&unobserved_log()->expected);
}

/* Run after expect_no_live_futures(): every report has been made by then. */
static inline void expect_no_unobserved(void)
{
    long n = atomic_load(&unobserved_log()->unexpected);
    cr_assert_eq(n, 0, "%ld failures nobody observed (reported above)", n);
}

/* tests/unit/unobserved.c tests the handler itself, the default included:
 * it defines this before including helpers.h and checks its own reports. */
#ifdef CHECKED_TEST_KEEPS_UNOBSERVED_HANDLER
#define CHECKED_UNOBSERVED_START_() ((void)0)
#define CHECKED_UNOBSERVED_END_()   ((void)0)
#else
#define CHECKED_UNOBSERVED_START_() restore_unobserved_check()
#define CHECKED_UNOBSERVED_END_()   expect_no_unobserved()
#endif

#define CHECKED_CAT2_(a, b) a##b
#define CHECKED_CAT_(a, b)  CHECKED_CAT2_(a, b)
#define CHECKED_TEST_(body, ...)       \
    static void body(void);            \
    Test(__VA_ARGS__)                  \
    {                                  \
        fut__count_live(true);         \
        CHECKED_UNOBSERVED_START_();   \
        body();                        \
        expect_no_live_futures();      \
        CHECKED_UNOBSERVED_END_();     \
    }                                  \
    static void body(void)

/* Test(suite, name, options...), then the live-futures and unobserved checks. */
#define CheckedTest(...) \
    CHECKED_TEST_(CHECKED_CAT_(checked_test_body_, __LINE__), __VA_ARGS__)

#endif
