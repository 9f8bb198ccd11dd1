/*
 * random_add.c - three slow additions run four ways: one by one, the
 * classic pitfall, tasks awaited in turn, and gathered.
 *
 * A job waits `delay` seconds (nanosleep, standing in for I/O), then sums a
 * list of random integers and prints "Sum([a, b, c]) = S". Three calls, with
 * delays of 5, 8 and 2 seconds, are run:
 *
 *   sync     plain calls, one after another: 5 + 8 + 2 = 15 s.
 *   pitfall  submit a job, wait for it, submit the next: still 15 s. This
 *            is awaiting coroutines one by one in asyncio: nothing else is
 *            running while we wait, so nothing overlaps.
 *   tasks    submit all three, then wait for each in turn (create_task,
 *            then await each): the longest delay, 8 s.
 *   gather   submit all three and join them with when_all()
 *            (asyncio.gather): 8 s, and the jobs finish 3, 1, 2.
 *
 * After each way a table shows when each call started and finished, in
 * seconds since that way began, as measured inside the job, and in which
 * order the calls finished.
 *
 *   usage: random_add [--scale F] [--mode sync|pitfall|tasks|gather|all]
 */
#include <futures.h>

#include "sample.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NCALLS   3
#define NNUMBERS 3 /* integers in each list */
#define SEED     2024u

struct call {
    int id;       /* 1, 2, 3: as printed */
    double delay; /* seconds, before scaling */
    int numbers[NNUMBERS];
    /* Written by the job as it runs, read once the job's future settled. */
    double start, finish; /* seconds since the way began */
    int order;            /* 1 for the first call to finish */
};

static struct call calls[NCALLS] = {
    {.id = 1, .delay = 5.0}, {.id = 2, .delay = 8.0}, {.id = 3, .delay = 2.0}};
static double scale = 1.0;
static double way_start;          /* when the running way began */
static atomic_int finished_calls; /* of the running way, for the order */

/* xorshift32: the same lists on every run and every libc. */
static unsigned next_random(unsigned *state)
{
    unsigned x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Fill the lists up front: rand() and friends are not for threads. */
static void make_lists(void)
{
    unsigned state = SEED;
    for (int i = 0; i < NCALLS; i++)
        for (int j = 0; j < NNUMBERS; j++)
            calls[i].numbers[j] = (int)(next_random(&state) % 100) + 1;
}

static void print_sum(const struct call *c)
{
    char list[64];
    int len = 0;
    long sum = 0;
    for (int j = 0; j < NNUMBERS; j++) {
        len += snprintf(list + len, sizeof list - (size_t)len, "%s%d",
                        j ? ", " : "", c->numbers[j]);
        sum += c->numbers[j];
    }
    /* Three threads print: flush so that the lines leave in finish order. */
    printf("Sum([%s]) = %ld\n", list, sum);
    fflush(stdout);
}

/* The job, as a task_fn so the pool runs it as it is. */
static int add(void *arg, void **result)
{
    struct call *c = arg;
    char name[32];
    snprintf(name, sizeof name, "job %d", c->id);
    futures_trace_name(name);
    c->start = sample_now() - way_start;
    sample_sleep(c->delay * scale);
    print_sum(c);
    c->finish = sample_now() - way_start;
    c->order = atomic_fetch_add(&finished_calls, 1) + 1;
    *result = NULL;
    return 0;
}

/*
 * The future's outcome: 0, or its error, said on stderr. A NULL @f is a
 * pool_submit() or when_all() that failed, with its error in errno.
 */
static int wait_for(future_t *f, const char *what)
{
    int err = f ? future_wait(f, NULL) : errno;
    if (err)
        fprintf(stderr, "%s: %s\n", what, strerror(err));
    return err;
}

static int run_sync(pool_t *pool)
{
    (void)pool; /* the point: no pool at all */
    for (int i = 0; i < NCALLS; i++) {
        char name[32];
        snprintf(name, sizeof name, "job %d", calls[i].id);
        /* Mark the call by hand so that it shows on a trace's timeline. */
        futures_trace_begin(name);
        void *unused;
        add(&calls[i], &unused);
        futures_trace_end();
    }
    return 0;
}

/*
 * The pitfall: each future_wait() returns only once its job has finished,
 * and the next job is not even submitted before that. The pool never holds
 * two jobs at once, so this takes as long as run_sync(), with threads on top.
 */
static int run_pitfall(pool_t *pool)
{
    for (int i = 0; i < NCALLS; i++) {
        future_t *f = pool_submit(pool, add, &calls[i]);
        int err = wait_for(f, "add");
        future_release(f);
        if (err)
            return err;
    }
    printf("note: every wait ended before the next submit, "
           "so no two jobs overlapped\n");
    return 0;
}

static int submit_all(pool_t *pool, future_t **fs)
{
    for (int i = 0; i < NCALLS; i++) {
        fs[i] = pool_submit(pool, add, &calls[i]);
        if (!fs[i]) {
            int err = errno;
            perror("pool_submit");
            /* The jobs submitted so far still run; pool_destroy() waits. */
            while (i-- > 0)
                future_release(fs[i]);
            return err;
        }
    }
    return 0;
}

/* All three run at once; waiting for call 1 first costs nothing, since
 * the others go on running meanwhile. */
static int run_tasks(pool_t *pool)
{
    future_t *fs[NCALLS];
    int err = submit_all(pool, fs);
    if (err)
        return err;
    for (int i = 0; i < NCALLS; i++) {
        int e = wait_for(fs[i], "add");
        err = err ? err : e;
    }
    for (int i = 0; i < NCALLS; i++)
        future_release(fs[i]);
    return err;
}

static int run_gather(pool_t *pool)
{
    future_t *fs[NCALLS];
    int err = submit_all(pool, fs);
    if (err)
        return err;
    future_t *all = when_all(fs, NCALLS); /* asyncio.gather(*calls) */
    err = wait_for(all, "when_all");
    future_release(all);
    for (int i = 0; i < NCALLS; i++)
        future_release(fs[i]);
    return err;
}

struct way {
    const char *name;
    const char *what;
    int (*run)(pool_t *pool);
};

static const struct way ways[] = {
    {"sync", "plain calls, one after another", run_sync},
    {"pitfall", "submit one, wait for it, then submit the next", run_pitfall},
    {"tasks", "submit all three, then wait for each in turn", run_tasks},
    {"gather", "submit all three, join them with when_all()", run_gather},
};
#define NWAYS (sizeof ways / sizeof ways[0])

static void print_table(double total)
{
    printf("call | start | finish | finish order\n");
    for (int i = 0; i < NCALLS; i++)
        printf("%4d | %5.2f | %5.2f | %d\n", calls[i].id, calls[i].start,
               calls[i].finish, calls[i].order);
    printf("total: %.2f s\n", total);
}

static int run_way(const struct way *w, pool_t *pool)
{
    printf("%s: %s", w->name, w->what);
    if (scale != 1.0)
        printf(" (delays scaled by %g)", scale);
    printf("\n");
    fflush(stdout);
    atomic_store(&finished_calls, 0);
    way_start = sample_now();
    int err = w->run(pool);
    double total = sample_now() - way_start;
    if (!err)
        print_table(total);
    return err;
}

/* The ways to run for @mode: one of them, or all in turn. */
static bool pick_ways(const char *mode, size_t *first, size_t *last)
{
    *first = 0;
    *last = NWAYS - 1;
    if (strcmp(mode, "all") == 0)
        return true;
    for (size_t i = 0; i < NWAYS; i++) {
        if (strcmp(mode, ways[i].name) == 0) {
            *first = *last = i;
            return true;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    const char *mode = "all";
    if (!sample_parse_args(
            argc, argv, &scale, &mode,
            "[--scale F] [--mode sync|pitfall|tasks|gather|all]"))
        return 2;
    size_t first, last;
    if (!pick_ways(mode, &first, &last)) {
        fprintf(stderr, "%s: unknown mode '%s'\n", argv[0], mode);
        return 2;
    }
    make_lists();
    /*
     * One thread per call, not one per CPU: the jobs spend their time
     * blocked, not computing. With two threads (pool_create(0) on a
     * two-core machine) call 3 would queue until call 1 ended at 5 s; the
     * total would still be 8 s, but the calls would no longer all start
     * together as they do under asyncio.gather().
     */
    pool_t *pool = pool_create(NCALLS);
    if (!pool) {
        perror("pool_create");
        return 1;
    }
    int err = 0;
    for (size_t i = first; i <= last && !err; i++) {
        if (i > first)
            printf("\n");
        err = run_way(&ways[i], pool);
    }
    pool_destroy(pool);
    return err || fflush(stdout) != 0 ? 1 : 0;
}
