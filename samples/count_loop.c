/*
 * count_loop.c - the "One / Two" example in asyncio's own model: one
 * thread, an event loop, and a timer instead of a blocking sleep.
 *
 * asyncio runs count() as a coroutine: it prints "One", then
 * `await asyncio.sleep(1)` hands control back to the loop, which starts the
 * next coroutine; a second later a timer resumes it to print "Two". C has
 * no coroutines, so the part after the await becomes a continuation:
 * future_delay() is asyncio.sleep(), and future_then_on() asks for the rest
 * to run on the loop when the delay is over. Every line is printed by the
 * thread that called loop_run(), and no thread sleeps: the three delays
 * run side by side on the library's one timer thread, so the whole run
 * takes about one second, like count_async.c with its three threads.
 *
 *   usage: count_loop [--scale F]   (F multiplies every delay; default 1.0)
 */
#include <futures.h>

#include "sample.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define NJOBS 3

static double scale = 1.0;
static loop_t *loop;
static pthread_t loop_thread;
static int wrong_thread; /* lines printed anywhere but on the loop */

static void say(const char *line)
{
    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread++;
    puts(line);
    fflush(stdout);
}

/* The part of count() after `await asyncio.sleep(1)`. */
static int count_after_sleep(void *value, void *arg, void **result)
{
    (void)value;
    char name[32];
    snprintf(name, sizeof name, "count %d, after sleep", (int)(intptr_t)arg);
    futures_trace_name(name);
    say("Two");
    *result = NULL;
    return 0;
}

/* The part of count() before the await: a small task run on the loop. */
static int count(void *arg, void **result)
{
    char name[32];
    snprintf(name, sizeof name, "count %d", (int)(intptr_t)arg);
    futures_trace_name(name);
    say("One");
    future_t *sleep = future_delay((uint64_t)(1e9 * scale));
    future_t *rest =
        sleep ? future_then_on(sleep, loop, count_after_sleep, arg) : NULL;
    /* Nobody waits for these: the loop keeps running until they are done. */
    future_release(sleep);
    future_release(rest);
    *result = NULL;
    return rest ? 0 : errno;
}

int main(int argc, char **argv)
{
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]"))
        return 2;
    double start = sample_now();
    loop = loop_create();
    if (!loop) {
        perror("loop_create");
        return 1;
    }
    loop_thread = pthread_self();
    future_t *jobs[NJOBS];
    for (int i = 0; i < NJOBS; i++)
        jobs[i] = loop_submit(loop, count, (void *)(intptr_t)(i + 1));
    int err = loop_run(loop); /* asyncio.run(main()) */
    for (int i = 0; i < NJOBS; i++) {
        if (!err && (!jobs[i] || future_wait(jobs[i], NULL) != 0))
            err = 1;
        future_release(jobs[i]);
    }
    loop_destroy(loop);
    if (err || wrong_thread) {
        fprintf(stderr, "count_loop: failed (%d lines off the loop)\n",
                wrong_thread);
        return 1;
    }
    printf("count_loop executed in %.2f seconds.\n", sample_now() - start);
    return 0;
}
