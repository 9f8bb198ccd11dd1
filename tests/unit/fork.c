/*
 * Tests of fork(): the child can use libfutures. Its default pool is new,
 * delays inherited from the parent still fire, continuations of the
 * parent's futures run; pools made in the parent refuse work with ECHILD
 * rather than queueing it where no thread will ever run it. Each child
 * reports through its exit status (the line of the first failed check).
 */
#include "helpers.h"
#include "internal.h" /* fut__lock: hold a stripe across fork() */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * GCC's AddressSanitizer runtime does not hold its allocator's locks across
 * fork(): a child forked while another thread allocates or frees (a pool
 * thread dropping a future, say) can hang inside ASan's calloc (seen here:
 * __sanitizer::Mutex::Lock under asan_calloc). So these tests run in the
 * plain suite and under valgrind (make valgrind-unit), not under ASan.
 */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_UNDER_ASAN 1
#else
#define FORK_UNDER_ASAN 0
#endif

#define CHILD_CHECK(cond)                                                    \
    do {                                                                     \
        if (!(cond))                                                         \
            _exit(__LINE__ % 250 + 1);                                       \
    } while (0)

/* Runs @body in a child, with a watchdog; asserts that it exited with 0. */
static void in_child(void (*body)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        alarm(10); /* a hang kills the child: SIGALRM, not exit 0 */
        body(arg);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child killed by signal %d",
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    cr_assert_eq(WEXITSTATUS(status), 0,
                 "child check failed at line ~%d (mod 250)",
                 WEXITSTATUS(status) - 1);
}

static int plus_one(void *value, void *arg, void **result)
{
    (void)arg;
    *result = U2P(P2U(value) + 1);
    return 0;
}

/* The work a child does to show the library works there. */
static void use_the_library(void *arg)
{
    (void)arg;
    atomic_int runs = 0;
    future_t *fs[8];
    for (int i = 0; i < 8; i++) {
        fs[i] = pool_submit(pool_default(), count_task, &runs);
        CHILD_CHECK(fs[i]);
    }
    future_t *all = when_all(fs, 8);
    CHILD_CHECK(future_wait(all, NULL) == 0);
    CHILD_CHECK(atomic_load(&runs) == 8);
    future_t *then = future_then(fs[0], plus_one, NULL);
    void *v = NULL;
    CHILD_CHECK(future_wait(then, &v) == 0 && v == U2P(P2U(&runs) + 1));
    future_t *delay = future_delay(1000000);
    CHILD_CHECK(future_wait(delay, NULL) == 0);
    future_t *blocking = pool_submit_blocking(pool_default(), value_task, &v);
    CHILD_CHECK(future_wait(blocking, NULL) == 0);
    for (int i = 0; i < 8; i++)
        future_release(fs[i]);
    future_release(all);
    future_release(then);
    future_release(delay);
    future_release(blocking);
}

CheckedTest(fork, the_child_gets_a_default_pool_of_its_own, .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    pool_t *parents = pool_default();
    atomic_int runs = 0;
    future_t *f = pool_submit(parents, count_task, &runs); /* threads up */
    cr_assert_eq(future_wait(f, NULL), 0);
    future_release(f);
    in_child(use_the_library, NULL);
    in_child(use_the_library, NULL); /* and again, from the same parent */
    f = pool_submit(parents, count_task, &runs); /* the parent's still works */
    cr_assert_eq(future_wait(f, NULL), 0);
    future_release(f);
}

static atomic_int arg_frees;

static void count_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&arg_frees, 1);
}

struct parents {
    pool_t *pool, *default_pool;
};

static void parents_pools_refuse(void *arg)
{
    struct parents *p = arg;
    CHILD_CHECK(pool_default() != p->default_pool);
    pool_t *both[] = {p->pool, p->default_pool};
    for (int i = 0; i < 2; i++) {
        atomic_int runs = 0;
        errno = 0;
        CHILD_CHECK(!pool_submit(both[i], count_task, &runs) && errno == ECHILD);
        errno = 0;
        CHILD_CHECK(!pool_submit_blocking(both[i], count_task, &runs) &&
                    errno == ECHILD);
        errno = 0;
        int before = atomic_load(&arg_frees);
        CHILD_CHECK(!pool_submit_ex(both[i], count_task, &runs, count_free) &&
                    errno == ECHILD);
        CHILD_CHECK(atomic_load(&arg_frees) == before + 1);
        struct pool_stats stats;
        CHILD_CHECK(pool_stats(both[i], &stats) == ECHILD);
        CHILD_CHECK(pool_set_blocking_limit(both[i], 4) == ECHILD);
        CHILD_CHECK(pool_set_idle_timeout(both[i], 1000) == ECHILD);
        CHILD_CHECK(atomic_load(&runs) == 0);
    }
    pool_shutdown(p->pool, POOL_CANCEL); /* no effect, no hang */
    pool_destroy(p->pool);
    use_the_library(NULL);
}

CheckedTest(fork, the_parents_pools_refuse_work_in_the_child, .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    struct parents p = {pool_create(2), pool_default()};
    struct gate g;
    gate_init(&g);
    future_t **busy = saturate(p.pool, 2, &g); /* its lock is in use, too */
    in_child(parents_pools_refuse, &p);
    gate_open(&g);
    release_all(busy, 2);
    atomic_int runs = 0;
    future_t *f = pool_submit(p.pool, count_task, &runs);
    cr_assert_eq(future_wait(f, NULL), 0, "the parent's pool still works");
    future_release(f);
    pool_destroy(p.pool);
    gate_destroy(&g);
}

static void wait_inherited(void *arg)
{
    future_t **fs = arg;
    CHILD_CHECK(future_wait(fs[0], NULL) == 0); /* the delay fires here too */
    future_t *g = future_then(fs[1], plus_one, NULL); /* ran on a parent pool */
    void *v = NULL;
    CHILD_CHECK(g && future_wait(g, &v) == 0 && v == U2P(8));
    future_release(g);
}

CheckedTest(fork, inherited_delays_fire_and_continuations_run, .timeout = 60,
            .disabled = FORK_UNDER_ASAN)
{
    pool_t *pool = pool_create(1);
    future_t *fs[2] = {future_delay(UINT64_C(20000000)),
                       pool_submit(pool, value_task, U2P(7))};
    cr_assert_eq(future_wait(fs[1], NULL), 0);
    in_child(wait_inherited, fs);
    cr_assert_eq(future_wait(fs[0], NULL), 0);
    future_release(fs[0]);
    future_release(fs[1]);
    pool_destroy(pool);
}

/* ----------------------------------------- forking while others work -- */

struct churn {
    atomic_bool stop;
    pool_t *pool;
};

static int chain_step(void *value, void *arg, void **result)
{
    (void)arg;
    *result = value;
    return 0;
}

/* Keeps every lock in the library busy: submits, waits, chains, promises,
 * delays, on two pools. */
static void *churn(void *arg)
{
    struct churn *c = arg;
    atomic_int runs = 0;
    while (!atomic_load(&c->stop)) {
        future_t *f = pool_submit(c->pool, count_task, &runs);
        future_t *g = future_then(f, chain_step, NULL);
        future_t *d = future_delay(1000);
        promise_t *p = promise_create();
        future_t *q = promise_future(p);
        future_t *h = pool_submit(pool_default(), count_task, &runs);
        promise_resolve(p, NULL);
        future_t *all[] = {g, d, q, h};
        future_t *w = when_all(all, 4);
        future_wait(w, NULL);
        future_release(w);
        for (int i = 0; i < 4; i++)
            future_release(all[i]);
        future_release(f);
        promise_release(p);
    }
    return NULL;
}

CheckedTest(fork, forking_while_other_threads_work, .timeout = 120,
            .disabled = FORK_UNDER_ASAN)
{
    struct churn c = {.pool = pool_create(2)};
    pthread_t threads[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&threads[i], NULL, churn, &c);
    for (int round = 0; round < 40; round++)
        in_child(use_the_library, NULL); /* no lock left held in the child */
    atomic_store(&c.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], NULL);
    pool_destroy(c.pool);
}

/* Settles promises as fast as it can: some stripe lock is nearly always
 * held, so a fork() that did not take them all would leave one locked. */
static void *settle_promises(void *arg)
{
    atomic_bool *stop = arg;
    while (!atomic_load(stop)) {
        promise_t *p = promise_create();
        future_t *f = promise_future(p);
        promise_resolve(p, NULL);
        future_wait(f, NULL);
        future_release(f);
        promise_release(p);
    }
    return NULL;
}

/* Enough futures to hash onto every stripe. */
static void touch_every_stripe(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4096; i++) {
        promise_t *p = promise_create();
        future_t *f = promise_future(p);
        CHILD_CHECK(promise_resolve(p, NULL) == 0);
        CHILD_CHECK(future_wait(f, NULL) == 0);
        future_release(f);
        promise_release(p);
    }
}

CheckedTest(fork, forking_while_futures_settle, .timeout = 120,
            .disabled = FORK_UNDER_ASAN)
{
    atomic_bool stop = false;
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, settle_promises, &stop);
    for (int round = 0; round < 100; round++)
        in_child(touch_every_stripe, NULL);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
}

/* Makes and ends event loops as fast as it can: the loop registry's lock
 * is nearly always held, so a fork() that did not take it would leave it
 * locked in the child. */
static void *churn_loops(void *arg)
{
    atomic_bool *stop = arg;
    while (!atomic_load(stop))
        loop_destroy(loop_create());
    return NULL;
}

/* A child makes a loop (it joins the registry) and dumps (it reads it). */
static void make_a_loop_and_dump(void *arg)
{
    (void)arg;
    loop_t *loop = loop_create();
    CHILD_CHECK(loop);
    FILE *out = fopen("/dev/null", "w");
    CHILD_CHECK(out && futures_dump(out) == 0);
    fclose(out);
    loop_destroy(loop);
}

CheckedTest(fork, forking_while_loops_come_and_go, .timeout = 120,
            .disabled = FORK_UNDER_ASAN)
{
    atomic_bool stop = false;
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, churn_loops, &stop);
    for (int round = 0; round < 100; round++)
        in_child(make_a_loop_and_dump, NULL);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
}

/*
 * A thread holds a future's stripe lock when fork() begins, and lets go
 * only once fork's prepare handlers have started (this test registers one
 * that runs before the library's). The library's handler must wait for
 * the lock, so the child finds it free; without that, the child would
 * inherit it held by a thread that does not exist there, and hang.
 */
static sem_t let_go, released;
static atomic_bool holding;

static void let_the_holder_go(void)
{
    if (atomic_exchange(&holding, false))
        sem_post(&let_go);
}

static void *hold_stripe(void *arg)
{
    struct fut__stripe *s = fut__lock(arg);
    atomic_store(&holding, true);
    sem_post(&released); /* "I hold it" */
    sem_wait(&let_go);
    fut__unlock(s);
    future_release(arg);
    return NULL;
}

static void settle_the_held_future(void *arg)
{
    CHILD_CHECK(promise_resolve(arg, U2P(5)) == 0);
}

CheckedTest(fork, a_stripe_held_when_fork_begins_is_free_in_the_child,
            .timeout = 60, .disabled = FORK_UNDER_ASAN)
{
    sem_init(&let_go, 0, 0);
    sem_init(&released, 0, 0);
    expect_unobserved(EPIPE); /* only the child keeps the promise */
    cr_assert_eq(pthread_atfork(let_the_holder_go, NULL, NULL), 0);
    promise_t *p = promise_create();
    pthread_t holder;
    pthread_create(&holder, NULL, hold_stripe, promise_future(p));
    sem_wait(&released);
    in_child(settle_the_held_future, p);
    pthread_join(holder, NULL);
    promise_release(p);
}

/* ------------------------------------------------- fork inside a task -- */

static pid_t test_pid;
static sem_t forker_may_go;

/* Queued behind the forking task: it must never run in the child. */
static int parents_work(void *arg, void **result)
{
    (void)arg;
    if (getpid() != test_pid)
        _exit(42);
    *result = NULL;
    return 0;
}

/* Forks; the child returns from the task, as a careless task might. */
static int forking_task(void *arg, void **result)
{
    (void)arg;
    *result = NULL;
    sem_wait(&forker_may_go); /* parents_work is queued behind us */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        return 0; /* back into what was the parent's worker loop */
    }
    /* 42: it ran the parent's work; a signal: it hung (alarm). Any other
     * exit is fine: under ASan, LeakSanitizer's exit-time check fails the
     * child for the parent's objects it inherited. */
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) != 42 ? 0 : EFAULT;
}

CheckedTest(fork, a_child_forked_by_a_task_runs_none_of_the_parents_work,
            .timeout = 60, .disabled = FORK_UNDER_ASAN)
{
    test_pid = getpid();
    sem_init(&forker_may_go, 0, 0);
    pool_t *pool = pool_create(1);
    future_t *a = pool_submit(pool, forking_task, NULL);
    future_t *b = pool_submit(pool, parents_work, NULL);
    sem_post(&forker_may_go);
    cr_assert_eq(future_wait(a, NULL), 0,
                 "the child ran the parent's queued task, or hung");
    cr_assert_eq(future_wait(b, NULL), 0);
    future_release(a);
    future_release(b);
    pool_destroy(pool);
}

/* The child cannot restart the timer thread at fork (its first thread
 * start fails): no abort; the next delay starts it, and the inherited
 * delay fires too. */
static long starts_failed_before_fork;

static void timer_restarts_later(void *arg)
{
    future_t *inherited = arg;
    /* The restart at fork() met the failure (the delay was pending). */
    CHILD_CHECK(fut__fault_fired(FUT_FAULT_THREAD) >
                starts_failed_before_fork);
    future_t *fresh = future_delay(1000000);
    CHILD_CHECK(fresh);
    CHILD_CHECK(future_wait(fresh, NULL) == 0);
    CHILD_CHECK(future_wait(inherited, NULL) == 0);
    future_release(fresh);
}

CheckedTest(fork, a_timer_that_cannot_restart_in_the_child_does_later,
            .timeout = 60, .disabled = FORK_UNDER_ASAN)
{
    /* Pending at the fork even under valgrind, so the child restarts. */
    future_t *d = future_delay(UINT64_C(2000000000)); /* timer thread up */
    starts_failed_before_fork = fut__fault_fired(FUT_FAULT_THREAD);
    fut__fault_set(FUT_FAULT_THREAD, 1, false); /* the child's first start */
    in_child(timer_restarts_later, d);
    fut__fault_set(FUT_FAULT_THREAD, 0, false);
    cr_assert_eq(future_wait(d, NULL), 0);
    future_release(d);
}
