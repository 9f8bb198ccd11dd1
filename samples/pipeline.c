/*
 * pipeline.c - a batch of requests fanned out on a pool, each answer
 * post-processed, each failure replaced by a fallback, all joined.
 *
 * Eight simulated requests block for 0.2 to 1.0 s (nanosleep, standing in
 * for the network). Most answer with a body of text; one times out
 * (ETIMEDOUT), one is refused (ECONNREFUSED) and one answers with a body
 * that is not a number. Each request becomes a small chain of futures:
 *
 *   pool_submit(fetch) --future_then(parse)--> --future_catch(fallback)-->
 *
 * parse turns the body into a number, or fails with EBADMSG; fallback runs
 * only if the fetch or the parse failed, notes the error and recovers with
 * -1, so every chain ends in a value. when_all() joins the chains, and the
 * batch takes about its slowest request instead of the sum of them all.
 *
 *   usage: pipeline [--scale F]   (F multiplies every delay; default 1.0)
 */
#include <futures.h>

#include "sample.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NREQUESTS 8
#define FALLBACK  -1

struct request {
    int id;
    double latency;   /* seconds, before scaling */
    int fails_with;   /* the error the server gives us, or 0 */
    const char *body; /* what it answers when it does */
    /* What should come out, to check the run against. */
    int want_error; /* 0, or the error the fallback should see */
    long want_value;
    /* Filled in by the chain as it runs, read once when_all() settled. */
    double took; /* seconds the fetch blocked, as measured */
    int error;   /* what the fallback saw, or 0 */
};

/* A table reads best as one: fields left out start at zero. */
/* clang-format off */
static struct request requests[NREQUESTS] = {
    {.id = 1, .latency = 0.30, .body = "17", .want_value = 17},
    {.id = 2, .latency = 0.80, .body = "42", .want_value = 42},
    {.id = 3, .latency = 1.00, .fails_with = ETIMEDOUT,
     .want_error = ETIMEDOUT, .want_value = FALLBACK},
    {.id = 4, .latency = 0.20, .body = "256", .want_value = 256},
    {.id = 5, .latency = 0.50, .fails_with = ECONNREFUSED,
     .want_error = ECONNREFUSED, .want_value = FALLBACK},
    {.id = 6, .latency = 0.70, .body = "n/a", /* not a number */
     .want_error = EBADMSG, .want_value = FALLBACK},
    {.id = 7, .latency = 0.60, .body = "1000", .want_value = 1000},
    {.id = 8, .latency = 0.40, .body = "8", .want_value = 8},
};
/* clang-format on */
static double scale = 1.0;

static void trace_name(const char *what, int id)
{
    char name[32];
    snprintf(name, sizeof name, "%s %d", what, id);
    futures_trace_name(name);
}

/* The blocking request: a task_fn, so the pool runs it as it is. */
static int fetch(void *arg, void **result)
{
    struct request *r = arg;
    trace_name("request", r->id);
    double start = sample_now();
    sample_sleep(r->latency * scale);
    r->took = sample_now() - start;
    if (r->fails_with)
        return r->fails_with; /* the future fails with it */
    *result = (void *)r->body;
    return 0;
}

/* Runs only if the fetch succeeded: the body in, a number out. */
static int parse(void *value, void *arg, void **result)
{
    struct request *r = arg;
    trace_name("parse", r->id);
    const char *body = value;
    char *end;
    errno = 0;
    long n = strtol(body, &end, 10);
    if (end == body || *end != '\0' || errno)
        return EBADMSG; /* skips straight to the fallback */
    *result = (void *)(intptr_t)n;
    return 0;
}

/* Runs only if the fetch or the parse failed: note why, then recover. */
static int fallback(int error, void *arg, void **result)
{
    struct request *r = arg;
    trace_name("fallback", r->id);
    r->error = error;
    *result = (void *)(intptr_t)FALLBACK;
    return 0;
}

/* The chain for one request; its value is the number, or FALLBACK. */
static future_t *start_request(pool_t *pool, struct request *r)
{
    future_t *fetched = pool_submit(pool, fetch, r);
    future_t *parsed = fetched ? future_then(fetched, parse, r) : NULL;
    future_t *outcome = parsed ? future_catch(parsed, fallback, r) : NULL;
    int err = errno;
    /* The chain holds its own references: ours can go at once. */
    future_release(parsed);
    future_release(fetched);
    if (!outcome)
        fprintf(stderr, "request %d: %s\n", r->id, strerror(err));
    return outcome;
}

/* Print the request's outcome; false if it is not the one expected. */
static bool report(const struct request *r, future_t *outcome)
{
    void *value = NULL;
    int err = future_wait(outcome, &value); /* settled: returns at once */
    long n = (long)(intptr_t)value;
    if (err)
        printf("request %d: chain failed (%s)\n", r->id, strerror(err));
    else if (r->error)
        printf("request %d: failed (%s) -> fallback %ld\n", r->id,
               strerror(r->error), n);
    else
        printf("request %d: ok -> %ld\n", r->id, n);
    return !err && r->error == r->want_error && n == r->want_value;
}

/* Start every chain, wait for all of them: false if anything went wrong. */
static bool run(pool_t *pool)
{
    future_t *outcomes[NREQUESTS];
    int started = 0;
    while (started < NREQUESTS &&
           (outcomes[started] = start_request(pool, &requests[started])))
        started++;
    bool as_expected = started == NREQUESTS;
    if (as_expected) {
        future_t *all = when_all(outcomes, NREQUESTS);
        int err = all ? future_wait(all, NULL) : errno;
        if (err)
            fprintf(stderr, "when_all: %s\n", strerror(err));
        for (int i = 0; i < NREQUESTS && !err; i++)
            as_expected &= report(&requests[i], outcomes[i]);
        as_expected &= !err;
        future_release(all);
    }
    for (int i = 0; i < started; i++)
        future_release(outcomes[i]);
    return as_expected;
}

int main(int argc, char **argv)
{
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]"))
        return 2;
    /*
     * One thread per request: they spend their time waiting on the
     * "network", not computing, so a pool sized for the CPUs would leave
     * most of them queued. parse and fallback run on the same pool.
     */
    pool_t *pool = pool_create(NREQUESTS);
    if (!pool) {
        perror("pool_create");
        return 1;
    }
    double start = sample_now();
    bool as_expected = run(pool);
    double total = sample_now() - start;
    pool_destroy(pool);
    double latencies = 0;
    for (int i = 0; i < NREQUESTS; i++)
        latencies += requests[i].took;
    printf("total: %.2f s, sum of latencies: %.2f s\n", total, latencies);
    return as_expected && fflush(stdout) == 0 ? 0 : 1;
}
