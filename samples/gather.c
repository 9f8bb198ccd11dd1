/*
 * gather.c - the libfutures demo: run blocking jobs one by one, then all at
 * once on a pool, and compare the times.
 *
 * Each job stands in for a request: it blocks for a while (nanosleep), then
 * returns a result. Run one after another they take the sum of their delays;
 * submitted to a pool with a thread per job and joined with when_all() (the
 * threaded counterpart of asyncio.gather) they take about the longest delay.
 *
 *   usage: gather [--scale F]   (F multiplies every delay; default 1.0)
 */
#include <futures.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NJOBS 4

struct job {
    const char *name;
    double delay; /* seconds, before scaling */
    int answer;
};

static struct job jobs[NJOBS] = {
    {"weather", 1.0, 21},
    {"news", 0.5, 7},
    {"stocks", 0.75, 99},
    {"mail", 0.25, 3},
};
static double scale = 1.0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void block_for(double seconds)
{
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* The blocking job: a task_fn, so the pool can run it as it is. */
static int fetch(void *arg, void **result)
{
    struct job *job = arg;
    block_for(job->delay * scale);
    *result = (void *)(intptr_t)job->answer;
    return 0;
}

static double run_one_by_one(void)
{
    double start = now();
    for (int i = 0; i < NJOBS; i++) {
        void *value;
        fetch(&jobs[i], &value);
        printf("  %-8s -> %d\n", jobs[i].name, (int)(intptr_t)value);
    }
    return now() - start;
}

static double run_together(pool_t *pool)
{
    double start = now();
    future_t *fs[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        fs[i] = pool_submit(pool, fetch, &jobs[i]);
        if (!fs[i]) {
            fprintf(stderr, "pool_submit: %s\n", strerror(errno));
            exit(1);
        }
    }
    future_t *all = when_all(fs, NJOBS); /* asyncio.gather(*jobs) */
    if (!all || future_wait(all, NULL) != 0) {
        fprintf(stderr, "when_all failed\n");
        exit(1);
    }
    for (int i = 0; i < NJOBS; i++) {
        void *value;
        future_wait(fs[i], &value); /* settled already: returns at once */
        printf("  %-8s -> %d\n", jobs[i].name, (int)(intptr_t)value);
        future_release(fs[i]);
    }
    future_release(all);
    return now() - start;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--scale") == 0)
        scale = atof(argv[2]);
    if (scale <= 0 || (argc != 1 && argc != 3)) {
        fprintf(stderr, "usage: %s [--scale F]\n", argv[0]);
        return 2;
    }
    /* One thread per job: the jobs block rather than compute, so the pool
     * is sized for them, not for the CPUs. */
    pool_t *pool = pool_create(NJOBS);
    if (!pool) {
        perror("pool_create");
        return 1;
    }
    printf("one by one:\n");
    double sync = run_one_by_one();
    printf("together (pool of %d, when_all):\n", NJOBS);
    double together = run_together(pool);
    pool_destroy(pool);
    printf("one by one: %.2f s, together: %.2f s (%.1fx faster)\n", sync,
           together, sync / together);
    return 0;
}
