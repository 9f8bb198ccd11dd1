/*
 * limit.c - many blocking jobs, a few at a time: a scope with a limit
 * (asyncio's TaskGroup with a Semaphore, Go's errgroup with SetLimit).
 *
 * 200 jobs each block for 50 ms (nanosleep, standing in for a request).
 * They all go to one scope whose limit is 10, so they run in 20 rounds of
 * ten: about 1 s, where one by one would take 10 s and all at once 50 ms.
 * The jobs count themselves as they start and end, so the sample prints
 * the most that ever ran at the same time, as seen from inside them.
 * Waiting for the limit holds no thread: the pool starts ten blocking
 * threads, not two hundred.
 *
 * Then the same again, but job 5 fails early with task_fail(EIO, ...).
 * The failure cancels the scope: the jobs waiting for the limit never run,
 * the nine running beside job 5 see task_cancelled() turn true and stop,
 * and the join reports job 5's error and message.
 *
 *   usage: limit [--scale F]   (F multiplies every delay; default 1.0)
 */
#include <futures.h>

#include "sample.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NJOBS    200
#define LIMIT    10
#define JOB_TIME 0.050 /* seconds each job blocks, before scaling */
#define FAIL_AT  0.025 /* when the failing job gives up */
#define STEP     0.010 /* how often a job looks at task_cancelled() */
#define FAILING  5     /* the job that fails, in the second run */

struct job {
    int id; /* 1 to NJOBS */
    bool fails;
    /* Written by the job as it runs, read once its future has settled. */
    bool ran;
    bool stopped; /* saw task_cancelled() and gave up */
};

static struct job jobs[NJOBS];
static double scale = 1.0;
static atomic_int running, peak; /* jobs inside job() now, and the most */

/* Counts this job in, and raises the peak if it is a new one. */
static void enter(void)
{
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&peak);
    while (now > seen && !atomic_compare_exchange_weak(&peak, &seen, now))
        ;
}

/* Sleeps until @deadline (sample_now() seconds). An absolute deadline, so
 * that waking up every STEP does not make the job any longer. */
static void sleep_until(double deadline)
{
    struct timespec ts = {(time_t)deadline,
                          (long)((deadline - (double)(time_t)deadline) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/*
 * The job: block for JOB_TIME, a STEP at a time, giving up if the scope
 * has been cancelled meanwhile. A thread blocked in a system call cannot be
 * interrupted, so checking task_cancelled() between steps is how a job
 * learns that its work is no longer wanted.
 */
static int job(void *arg, void **result)
{
    struct job *j = arg;
    char name[32];
    snprintf(name, sizeof name, "job %d", j->id);
    futures_trace_name(name);
    enter();
    j->ran = true;
    double start = sample_now();
    double end = start + (j->fails ? FAIL_AT : JOB_TIME) * scale;
    int err = 0;
    for (double t = start; t < end && !err;) {
        t = t + STEP * scale < end ? t + STEP * scale : end;
        sleep_until(t);
        if (task_cancelled()) {
            j->stopped = true;
            err = ECANCELED;
        }
    }
    atomic_fetch_sub(&running, 1);
    if (!err && j->fails)
        return task_fail(EIO, "job %d: the disk went away", j->id);
    *result = NULL;
    return err;
}

/* What one run saw, from the jobs and from their futures. */
struct tally {
    int ran, stopped, never_ran;
    int ok, failed, cancelled; /* futures: 0, an error, ECANCELED */
};

/*
 * Waits for every future (so that each outcome is observed), counts the
 * outcomes, and releases them. @n futures were submitted.
 */
static void collect(future_t **fs, int n, struct tally *t)
{
    static int errors[NJOBS];
    memset(t, 0, sizeof *t);
    future_wait_all(fs, (size_t)n, NULL, errors);
    for (int i = 0; i < n; i++) {
        if (errors[i] == 0)
            t->ok++;
        else if (errors[i] == ECANCELED)
            t->cancelled++;
        else
            t->failed++;
        t->ran += jobs[i].ran;
        t->stopped += jobs[i].stopped;
        t->never_ran += !jobs[i].ran;
        future_release(fs[i]);
    }
}

/*
 * Submits NJOBS jobs to a new scope with limit LIMIT and waits for them.
 * Returns the join's outcome; *@message gets a copy of its message, if any.
 */
static int run(pool_t *pool, struct tally *t, char *message, size_t size)
{
    static future_t *fs[NJOBS];
    scope_t *s = scope_create(pool);
    if (!s || scope_set_limit(s, LIMIT) != 0) {
        perror("scope_create");
        scope_release(s);
        return -1;
    }
    atomic_store(&running, 0);
    atomic_store(&peak, 0);
    int n = 0;
    for (; n < NJOBS; n++) {
        /* Never NULL for a scope that was cancelled: such a future has
         * failed with ECANCELED already, so the loop goes on as usual. */
        fs[n] = scope_submit_blocking(s, job, &jobs[n]);
        if (!fs[n]) {
            perror("scope_submit_blocking");
            scope_cancel(s); /* the jobs submitted so far are not wanted */
            break;
        }
    }
    /* Every job the scope took has settled once the join returns. The
     * join gives the first failure's error; its message is on the scope's
     * future, which has settled by now, so scope_future() does not wait. */
    int err = scope_join(s);
    future_t *done = err ? scope_future(s) : NULL;
    const char *msg = future_error_message(done);
    snprintf(message, size, "%s", msg ? msg : "");
    future_release(done);
    collect(fs, n, t);
    scope_release(s);
    return n < NJOBS ? -1 : err;
}

static void heading(const char *what)
{
    printf("%s", what);
    if (scale != 1.0)
        printf(" (delays scaled by %g)", scale);
    printf("\n");
}

static int run_ok(pool_t *pool)
{
    heading("200 jobs of 50 ms, at most 10 at once");
    struct tally t;
    char message[256];
    double start = sample_now();
    int err = run(pool, &t, message, sizeof message);
    double wall = sample_now() - start;
    if (err < 0)
        return 1;
    int rounds = (NJOBS + LIMIT - 1) / LIMIT;
    printf("join: %s\n", err ? strerror(err) : "ok");
    printf("wall time: %.2f s (ideal %.2f s: %d rounds of one job)\n", wall,
           rounds * JOB_TIME * scale, rounds);
    printf("peak running at once: %d (limit %d)\n", atomic_load(&peak), LIMIT);
    printf("jobs: %d ran, %d succeeded\n", t.ran, t.ok);
    /* The jobs waiting for the limit held no thread: the pool started a
     * blocking thread for each job running at once, and no more. */
    struct pool_stats st;
    if (pool_stats(pool, &st) == 0)
        printf("threads at peak: %zu (2 core, the rest blocking)\n",
               st.peak_threads);
    return err || atomic_load(&peak) > LIMIT;
}

static int run_failing(pool_t *pool)
{
    heading("the same, but job 5 fails after 25 ms");
    jobs[FAILING - 1].fails = true;
    struct tally t;
    char message[256];
    double start = sample_now();
    int err = run(pool, &t, message, sizeof message);
    double wall = sample_now() - start;
    if (err < 0)
        return 1;
    printf("join: %s%s%s\n", err ? strerror(err) : "ok", *message ? ": " : "",
           message);
    printf("wall time: %.3f s\n", wall);
    printf("peak running at once: %d (limit %d)\n", atomic_load(&peak), LIMIT);
    printf("jobs: %d ran (%d failed, %d stopped early on task_cancelled()), "
           "%d never ran\n",
           t.ran, t.failed, t.stopped, t.never_ran);
    printf("futures: %d succeeded, %d failed, %d cancelled (ECANCELED)\n", t.ok,
           t.failed, t.cancelled);
    return err != EIO || atomic_load(&peak) > LIMIT;
}

int main(int argc, char **argv)
{
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]"))
        return 2;
    for (int i = 0; i < NJOBS; i++)
        jobs[i].id = i + 1;
    /* Two core threads: the jobs block, so they run on the pool's
     * blocking threads, which it starts as the jobs need them. */
    pool_t *pool = pool_create(2);
    if (!pool) {
        perror("pool_create");
        return 1;
    }
    int failed = run_ok(pool);
    printf("\n");
    for (int i = 0; i < NJOBS; i++)
        jobs[i].ran = jobs[i].stopped = false;
    failed = failed || run_failing(pool);
    pool_destroy(pool);
    return failed || fflush(stdout) != 0 ? 1 : 0;
}
