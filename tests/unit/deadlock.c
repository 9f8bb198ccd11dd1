/*
 * Tests of wait-cycle detection: running tasks each waiting for the next
 * one's future, across pools, closed by a task or a blocking job, get
 * EDEADLK on the wait that closes the cycle; the same shapes with the
 * cycle broken (a promise another thread holds, a timer, a timed wait)
 * wait as usual; FUTURES_DEADLOCK=abort reports and aborts.
 */
#include "helpers.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * A ring of n tasks: task i waits for task (i + 1) % n's future. Each
 * publishes nothing until every future exists (a promise per slot holds
 * the future's pointer), so the waits happen once all the tasks run.
 */
#define RING_MAX 3

struct ring {
    int n;
    promise_t *ready; /* resolved once every slot is filled */
    future_t *fs[RING_MAX];
    atomic_int deadlocks; /* waits that got EDEADLK */
    atomic_int started;
    sem_t all_started;
    /* What a task waits for instead of the next one's future, made from
     * it (a compose over it, say); NULL: the future itself. */
    future_t *(*through)(future_t *next);
};

struct member {
    struct ring *r;
    int i;
};

static int ring_task(void *arg, void **result)
{
    struct member *m = arg;
    struct ring *r = m->r;
    if (atomic_fetch_add(&r->started, 1) + 1 == r->n)
        sem_post(&r->all_started);
    future_t *ready = promise_future(r->ready);
    future_wait(ready, NULL); /* every fs[] is filled */
    future_release(ready);
    future_t *next = r->fs[(m->i + 1) % r->n];
    future_t *link = r->through ? r->through(next) : future_retain(next);
    int error = future_wait(link, NULL);
    future_release(link);
    if (error == EDEADLK)
        atomic_fetch_add(&r->deadlocks, 1);
    /* Succeeds either way, so that the others' waits end with success:
     * an EDEADLK they saw could only be their own wait's. */
    *result = U2P(error);
    return error == EDEADLK || error == 0 ? 0 : error;
}

/* Runs a ring of @n tasks, task i on pools[i]; blocking jobs where asked;
 * each waiting through what @through makes, if not NULL. */
static void run_ring_through(int n, pool_t **pools, const bool *blocking,
                             future_t *(*through)(future_t *))
{
    struct ring r = {.n = n, .ready = promise_create(), .through = through};
    sem_init(&r.all_started, 0, 0);
    struct member m[RING_MAX];
    for (int i = 0; i < n; i++) {
        m[i] = (struct member){&r, i};
        r.fs[i] = blocking && blocking[i]
                      ? pool_submit_blocking(pools[i], ring_task, &m[i])
                      : pool_submit(pools[i], ring_task, &m[i]);
    }
    sem_wait(&r.all_started);
    promise_resolve(r.ready, NULL);
    int refused = 0;
    for (int i = 0; i < n; i++) {
        void *saw = NULL;
        cr_assert_eq(future_wait(r.fs[i], &saw), 0, "task %d", i);
        cr_assert(P2U(saw) == 0 || P2U(saw) == EDEADLK, "task %d", i);
        refused += P2U(saw) == EDEADLK;
    }
    /* The wait that closed the cycle failed; the others then saw an
     * ordinary outcome. */
    cr_assert_eq(refused, 1);
    cr_assert_eq(atomic_load(&r.deadlocks), 1);
    for (int i = 0; i < n; i++)
        future_release(r.fs[i]);
    promise_release(r.ready);
    sem_destroy(&r.all_started);
}

static void run_ring(int n, pool_t **pools, const bool *blocking)
{
    run_ring_through(n, pools, blocking, NULL);
}

CheckedTest(deadlock, two_tasks_on_two_pools_waiting_for_each_other)
{
    pool_t *a = pool_create(1), *b = pool_create(1);
    pool_t *pools[2] = {a, b};
    run_ring(2, pools, NULL);
    pool_destroy(a);
    pool_destroy(b);
}

CheckedTest(deadlock, three_tasks_across_two_pools)
{
    pool_t *a = pool_create(2), *b = pool_create(1);
    pool_t *pools[3] = {a, b, a};
    run_ring(3, pools, NULL);
    pool_destroy(a);
    pool_destroy(b);
}

CheckedTest(deadlock, a_cycle_closed_by_a_blocking_job)
{
    pool_t *a = pool_create(1);
    pool_t *pools[2] = {a, a};
    const bool blocking[2] = {false, true};
    run_ring(2, pools, blocking);
    pool_destroy(a);
}

CheckedTest(deadlock, on_one_pool_too)
{
    pool_t *a = pool_create(2);
    pool_t *pools[2] = {a, a};
    run_ring(2, pools, NULL);
    pool_destroy(a);
}

/* ------------------------------------------- cycles through a compose -- */

static future_t *resolved_with(void *value, void *arg)
{
    (void)arg;
    return future_resolved(value);
}

/* The next task's outcome, reached through a compose step not yet run. */
static future_t *compose_over(future_t *next)
{
    return future_compose(next, resolved_with, NULL);
}

CheckedTest(deadlock, through_a_compose_waiting_for_its_input)
{
    pool_t *a = pool_create(1), *b = pool_create(1);
    pool_t *pools[2] = {a, b};
    run_ring_through(2, pools, NULL, compose_over);
    pool_destroy(a);
    pool_destroy(b);
}

CheckedTest(deadlock, through_composes_three_tasks_across_two_pools)
{
    pool_t *a = pool_create(2), *b = pool_create(1);
    pool_t *pools[3] = {a, b, a};
    run_ring_through(3, pools, NULL, compose_over);
    pool_destroy(a);
    pool_destroy(b);
}

/* The compose's step has run and given its relay the next task's future,
 * which the relay has adopted before the task waits for it. */
bool fut__compose_adopted(future_t *f); /* compose.c, for tests */

static future_t *the_future_given(void *value, void *arg)
{
    (void)value;
    return future_retain(arg);
}

static future_t *compose_adopting(future_t *next)
{
    future_t *done = future_resolved(NULL);
    future_t *relay = future_compose(done, the_future_given, next);
    future_release(done);
    while (!fut__compose_adopted(relay)) /* its step runs on the default pool */
        sched_yield();
    return relay;
}

CheckedTest(deadlock, through_a_compose_that_adopted_the_next_future)
{
    pool_t *a = pool_create(1), *b = pool_create(1);
    pool_t *pools[2] = {a, b};
    run_ring_through(2, pools, NULL, compose_adopting);
    pool_destroy(a);
    pool_destroy(b);
}

/* ------------------------------------------------------ cycles broken -- */

/* Task A waits for task B, which waits for @what: never a deadlock. */
struct chain {
    future_t *b;
    future_t *what;
    bool timed;
    sem_t b_waiting;
};

static int b_task(void *arg, void **result)
{
    struct chain *c = arg;
    sem_post(&c->b_waiting);
    if (c->timed) {
        while (!future_wait_for(c->what, 1000000))
            ;
        *result = NULL;
        return 0;
    }
    return future_wait(c->what, result);
}

static int a_task(void *arg, void **result)
{
    struct chain *c = arg;
    return future_wait(c->b, result);
}

static void *resolve_after_post(void *arg)
{
    promise_t **p = arg;
    promise_resolve(*p, U2P(7));
    return NULL;
}

/* A waits for B, which waits through what @through makes of the future of
 * a promise (NULL: the future itself) that another thread resolves once B
 * waits: A gets the promise's value, never EDEADLK. */
static void promise_held_elsewhere(future_t *(*through)(future_t *))
{
    pool_t *a = pool_create(1), *b = pool_create(1);
    promise_t *p = promise_create();
    future_t *pf = promise_future(p);
    struct chain c = {.what = through ? through(pf) : future_retain(pf)};
    future_release(pf);
    sem_init(&c.b_waiting, 0, 0);
    c.b = pool_submit(b, b_task, &c);
    future_t *fa = pool_submit(a, a_task, &c);
    sem_wait(&c.b_waiting);
    pthread_t t;
    pthread_create(&t, NULL, resolve_after_post, &p);
    void *v = NULL;
    cr_assert_eq(future_wait(fa, &v), 0);
    cr_assert_eq(P2U(v), 7u);
    pthread_join(t, NULL);
    future_release(fa);
    future_release(c.b);
    future_release(c.what);
    promise_release(p);
    sem_destroy(&c.b_waiting);
    pool_destroy(a);
    pool_destroy(b);
}

CheckedTest(deadlock, a_promise_another_thread_holds_breaks_it)
{
    promise_held_elsewhere(NULL);
}

/* The same through a compose over the promise: its step waits for the
 * promise, which another thread still holds. */
CheckedTest(deadlock, a_promise_held_elsewhere_breaks_it_through_a_compose)
{
    promise_held_elsewhere(compose_over);
}

CheckedTest(deadlock, a_timer_breaks_it)
{
    pool_t *a = pool_create(1), *b = pool_create(1);
    struct chain c = {.what = future_delay(20 * 1000000)};
    sem_init(&c.b_waiting, 0, 0);
    c.b = pool_submit(b, b_task, &c);
    future_t *fa = pool_submit(a, a_task, &c);
    cr_assert_eq(future_wait(fa, NULL), 0);
    future_release(fa);
    future_release(c.b);
    future_release(c.what);
    sem_destroy(&c.b_waiting);
    pool_destroy(a);
    pool_destroy(b);
}

/* A ring whose one link is a timed wait is no deadlock: it times out. */
struct timed_ring {
    promise_t *ready;
    future_t *fa, *fb;
    atomic_int deadlocks;
};

static int timed_side(void *arg, void **result)
{
    struct timed_ring *r = arg;
    future_t *ready = promise_future(r->ready);
    future_wait(ready, NULL);
    future_release(ready);
    *result = NULL;
    /* Waits 20 ms for A, which waits for this task: then gives up. */
    return future_wait_for(r->fa, 20 * 1000000) ? 0 : ETIMEDOUT;
}

static int untimed_side(void *arg, void **result)
{
    struct timed_ring *r = arg;
    future_t *ready = promise_future(r->ready);
    future_wait(ready, NULL);
    future_release(ready);
    int e = future_wait(r->fb, result);
    if (e == EDEADLK)
        atomic_fetch_add(&r->deadlocks, 1);
    return e;
}

CheckedTest(deadlock, a_timed_wait_in_the_ring_breaks_it)
{
    pool_t *a = pool_create(1), *b = pool_create(1);
    struct timed_ring r = {.ready = promise_create()};
    r.fb = pool_submit(b, timed_side, &r);
    r.fa = pool_submit(a, untimed_side, &r);
    promise_resolve(r.ready, NULL);
    int ea = future_wait(r.fa, NULL), eb = future_wait(r.fb, NULL);
    /* B's timed wait ends by itself: A's wait is never a deadlock. B's
     * own wait, if it looked after A blocked, may be refused at once. */
    cr_assert_eq(atomic_load(&r.deadlocks), 0);
    cr_assert_eq(ea, eb);
    cr_assert_eq(eb, ETIMEDOUT);
    future_release(r.fa);
    future_release(r.fb);
    promise_release(r.ready);
    pool_destroy(a);
    pool_destroy(b);
}

/* --------------------------------------------------------------- abort -- */

/* What the child's ring tasks tell the parent, in memory both share: the
 * kernel id (LWP) of the thread each ran on. */
static int *ring_lwps;

/* Not static: the report names it through dladdr() (linked -rdynamic).
 * Each labels itself, with no trace running, before the ring closes. */
int named_ring_task(void *arg, void **result);
int named_ring_task(void *arg, void **result)
{
    struct member *m = arg;
    ring_lwps[m->i] = (int)syscall(SYS_gettid);
    futures_trace_name(m->i == 0 ? "ring member A" : "ring member B");
    return ring_task(arg, result);
}

/* In the child: the two-pool ring with FUTURES_DEADLOCK=abort. */
static _Noreturn void abort_on_a_ring(int err_fd)
{
    dup2(err_fd, 2);
    setenv("FUTURES_DEADLOCK", "abort", 1);
    pool_t *a = pool_create(1), *b = pool_create(1);
    struct ring r = {.n = 2, .ready = promise_create()};
    sem_init(&r.all_started, 0, 0);
    struct member m[2] = {{&r, 0}, {&r, 1}};
    r.fs[0] = pool_submit(a, named_ring_task, &m[0]);
    r.fs[1] = pool_submit(b, named_ring_task, &m[1]);
    sem_wait(&r.all_started);
    promise_resolve(r.ready, NULL);
    future_wait(r.fs[0], NULL);
    future_wait(r.fs[1], NULL);
    _exit(0); /* not reached: the cycle aborts */
}

CheckedTest(deadlock, futures_deadlock_abort_reports_and_aborts)
{
    ring_lwps = mmap(NULL, 2 * sizeof *ring_lwps, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(ring_lwps, MAP_FAILED);
    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0)
        abort_on_a_ring(out[1]);
    close(out[1]);
    char text[8192];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof text - 1 &&
           (got = read(out[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)got;
    text[len] = '\0';
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "status %d:\n%s", status, text);
    cr_assert(strstr(text, "libfutures: deadlock"), "%s", text);
    cr_assert(strstr(text, "named_ring_task"), "names the tasks:\n%s", text);
    cr_assert(strstr(text, "deadlock: this thread, futures-") &&
                  strstr(text, "core thread of pool") && strstr(text, "LWP "),
              "names the thread that found it:\n%s", text);
    cr_assert(strstr(text, "\"ring member A\"") &&
                  strstr(text, "\"ring member B\""),
              "gives each task's label:\n%s", text);
    for (int i = 0; i < 2; i++) {
        char lwp[32];
        snprintf(lwp, sizeof lwp, "LWP %d)", ring_lwps[i]);
        cr_assert(strstr(text, lwp), "names task %d's thread, %s:\n%s", i, lwp,
                  text);
    }
    cr_assert(strstr(text, "run by futures-"), "%s", text);
    /* Some line names the ring's blocked thread as waiting (the test's
     * main thread waits too, for the first task). */
    bool pool_thread_waits = false;
    for (char *w = text; (w = strstr(w, "waited for by ")) != NULL; w++) {
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(w, "\n"), w);
        pool_thread_waits |= strstr(line, "core thread of pool") != NULL;
    }
    cr_assert(pool_thread_waits, "%s", text);
    munmap(ring_lwps, 2 * sizeof *ring_lwps);
}

/* --------------------------------------------------- pool_destroy_timeout */

int stuck_job(void *arg, void **result);
int stuck_job(void *arg, void **result)
{
    struct gate *g = arg;
    gate_pass(g);
    *result = NULL;
    return 0;
}

CheckedTest(destroy_timeout, a_stuck_task_times_out_and_is_reported)
{
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    future_t *f = pool_submit_blocking(pool, stuck_job, &g);
    future_t *queued = pool_submit(pool, value_task, NULL);
    gate_await_started(&g, 1);
    char *text = NULL;
    size_t len = 0;
    FILE *report = open_memstream(&text, &len);
    uint64_t start = monotonic_ns();
    cr_assert_eq(pool_destroy_timeout(pool, 50 * 1000000, report), ETIMEDOUT);
    uint64_t took = monotonic_ns() - start;
    fclose(report);
    cr_assert_geq(took, 50 * 1000000u);
    cr_assert_lt(took, 5000 * 1000000u, "returned in time");
    cr_assert(strstr(text, "did not end within"), "%s", text);
    cr_assert(strstr(text, "stuck_job"), "names the running task:\n%s", text);
    free(text);
    errno = 0;
    cr_assert_null(pool_submit(pool, value_task, NULL), "shut down");
    cr_assert_eq(errno, ESHUTDOWN);
    gate_open(&g); /* the task ends: now the pool can */
    cr_assert_eq(pool_destroy_timeout(pool, UINT64_MAX, NULL), 0);
    cr_assert_eq(future_wait(f, NULL), 0);
    cr_assert_eq(future_wait(queued, NULL), 0, "a drain runs what is queued");
    future_release(f);
    future_release(queued);
    gate_destroy(&g);
}

CheckedTest(destroy_timeout, an_idle_pool_ends_at_once)
{
    pool_t *pool = pool_create(2);
    future_t *f = pool_submit(pool, value_task, NULL);
    future_wait(f, NULL);
    future_release(f);
    cr_assert_eq(pool_destroy_timeout(pool, 10 * UINT64_C(1000000000), NULL),
                 0);
    cr_assert_eq(pool_destroy_timeout(NULL, 0, NULL), EINVAL);
}

/* ---------------------------------------------------- futures_shutdown -- */

static atomic_int forgotten_ran;
static int forgotten(void *arg, void **result)
{
    (void)arg;
    work_for_ns(2000000); /* the job's simulated work */
    atomic_fetch_add(&forgotten_ran, 1);
    *result = NULL;
    return 0;
}

static long library_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

CheckedTest(shutdown, drains_fire_and_forget_work_then_the_library_restarts)
{
    atomic_store(&forgotten_ran, 0);
    long before = library_threads();
    for (int i = 0; i < 20; i++)
        future_release(pool_submit(pool_default(), forgotten, NULL));
    future_t *delay = future_delay(UINT64_C(60) * 1000000000);
    cr_assert_gt(library_threads(), before, "the default pool and timer");
    cr_assert_eq(futures_shutdown(UINT64_C(10) * 1000000000), 0);
    cr_assert_eq(atomic_load(&forgotten_ran), 20, "queued work ran");
    cr_assert_eq(future_wait(delay, NULL), ECANCELED, "pending delays end");
    future_release(delay);
    cr_assert_leq(library_threads(), before + 1, /* the timer's, ending */
                  "threads left: %ld, %ld before", library_threads(), before);
    /* And back on first use. */
    future_t *f = pool_submit(pool_default(), value_task, U2P(3));
    future_t *d = future_delay(1000000);
    void *v = NULL;
    cr_assert_eq(future_wait(f, &v), 0);
    cr_assert_eq(P2U(v), 3u);
    cr_assert_eq(future_wait(d, NULL), 0);
    future_release(f);
    future_release(d);
    cr_assert_eq(futures_shutdown(UINT64_C(10) * 1000000000), 0);
}

static int blocks_on(void *arg, void **result)
{
    struct gate *g = arg;
    gate_pass(g);
    *result = NULL;
    return 0;
}

CheckedTest(shutdown, a_stuck_default_pool_times_out_and_says_so)
{
    struct gate g;
    gate_init(&g);
    future_t *f = pool_submit(pool_default(), blocks_on, &g);
    gate_await_started(&g, 1);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2); /* the report */
    int rc = futures_shutdown(20 * 1000000);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    cr_assert_eq(rc, ETIMEDOUT);
    gate_open(&g);
    cr_assert_eq(future_wait(f, NULL), 0);
    future_release(f);
    gate_destroy(&g);
}
