/*
 * count_async.c - the "One / Two" example, run on a pool: three jobs at
 * once, joined with when_all().
 *
 * Each job prints "One", blocks for a second (nanosleep, standing in for
 * I/O), then prints "Two". Submitted together to a pool with a thread for
 * each, all three print "One" at once, sleep side by side, then print "Two":
 * One One One Two Two Two, in about one second instead of count_sync.c's
 * three. when_all() plays the part of asyncio.gather().
 *
 * It reproduces the asynchronous script of the classic asyncio tutorial,
 * down to its last line, "<program> executed in N.NN seconds."
 *
 *   usage: count_async [--scale F]   (F multiplies every delay; default 1.0)
 */
#include <futures.h>

#include "sample.h"

#include <stdint.h>
#include <stdio.h>

#define NJOBS 3

static double scale = 1.0;

/* Three threads print: flush each line so none waits in a buffer. */
static void say(const char *line)
{
    puts(line);
    fflush(stdout);
}

/* The job, as a task_fn so the pool runs it as it is; arg is its number. */
static int count(void *arg, void **result)
{
    char name[32];
    snprintf(name, sizeof name, "count %d", (int)(intptr_t)arg);
    futures_trace_name(name);
    say("One");
    sample_sleep(1.0 * scale);
    say("Two");
    *result = NULL;
    return 0;
}

/* Submit every job, then wait for all of them: asyncio.gather(). */
static int run(pool_t *pool)
{
    future_t *jobs[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        jobs[i] = pool_submit(pool, count, (void *)(intptr_t)(i + 1));
        if (!jobs[i]) {
            perror("pool_submit");
            return 1;
        }
    }
    future_t *all = when_all(jobs, NJOBS);
    int err = all ? future_wait(all, NULL) : errno;
    if (err)
        fprintf(stderr, "when_all: %s\n", strerror(err));
    future_release(all);
    for (int i = 0; i < NJOBS; i++)
        future_release(jobs[i]);
    return err ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]"))
        return 2;
    double start = sample_now();
    /*
     * One thread per job, not one per CPU: the jobs spend their time
     * blocked, not computing. pool_create(0) on a two-core machine would
     * run two jobs, then the third after them, and take two seconds.
     * (pool_submit_blocking() would also do: it starts threads for such
     * jobs by itself; this sample keeps to the plain pool to show why.)
     */
    pool_t *pool = pool_create(NJOBS);
    if (!pool) {
        perror("pool_create");
        return 1;
    }
    int status = run(pool);
    pool_destroy(pool);
    double elapsed = sample_now() - start;
    printf("count_async executed in %0.2f seconds.\n", elapsed);
    return fflush(stdout) == 0 ? status : 1;
}
