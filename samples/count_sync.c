/*
 * count_sync.c - the "One / Two" example, run the plain way: three jobs,
 * one after another.
 *
 * Each job prints "One", blocks for a second (nanosleep, standing in for
 * I/O), then prints "Two". Called in a row, every job waits for the one
 * before it, so the program prints One Two One Two One Two and takes about
 * three seconds. count_async.c runs the same jobs on a pool.
 *
 * It reproduces the sequential script of the classic asyncio tutorial,
 * down to its last line, "<program> executed in N.NN seconds."
 *
 *   usage: count_sync [--scale F]   (F multiplies every delay; default 1.0)
 */
#include <futures.h>

#include "sample.h"

#include <stdio.h>

#define NJOBS 3

static double scale = 1.0;

/* Threads print in count_async.c; flushing each line keeps the two alike. */
static void say(const char *line)
{
    puts(line);
    fflush(stdout);
}

static void count(void)
{
    say("One");
    sample_sleep(1.0 * scale);
    say("Two");
}

int main(int argc, char **argv)
{
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]"))
        return 2;
    double start = sample_now();
    for (int i = 1; i <= NJOBS; i++) {
        char name[32];
        snprintf(name, sizeof name, "count %d", i);
        /* No pool runs these, so mark each one by hand: a trace of this
         * program then shows the jobs in a row on the main thread. */
        futures_trace_begin(name);
        count();
        futures_trace_end();
    }
    double elapsed = sample_now() - start;
    printf("count_sync executed in %0.2f seconds.\n", elapsed);
    return fflush(stdout) == 0 ? 0 : 1;
}
