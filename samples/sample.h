/*
 * sample.h - the few helpers the samples share: a monotonic clock in
 * seconds, a sleep that survives signals, and the --scale option.
 *
 * Everything here is static inline, so each sample stays one file to read
 * and compiles on its own; nothing in it is part of libfutures.
 */
#ifndef SAMPLE_H
#define SAMPLE_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
static inline double sample_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Block the calling thread for @seconds: the stand-in for a request, a disk
 * read or any other wait. nanosleep() stops early on a signal and leaves
 * what is left in its second argument, so go on sleeping until none is.
 */
static inline void sample_sleep(double seconds)
{
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* A scale is a finite number above zero, and nothing but a number. */
static inline bool sample_parse_scale(const char *text, double *scale)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno || !isfinite(v) || v <= 0)
        return false;
    *scale = v;
    return true;
}

/*
 * Parse "[--scale F]" and, when @mode is not NULL, "[--mode M]" too (M is
 * checked by the caller). Anything else prints @usage and returns false.
 */
static inline bool sample_parse_args(int argc, char **argv, double *scale,
                                     const char **mode, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = false;
        if (strcmp(opt, "--scale") == 0 && val)
            ok = sample_parse_scale(val, scale);
        else if (mode && strcmp(opt, "--mode") == 0 && val)
            ok = (*mode = val) != NULL;
        if (!ok) {
            fprintf(stderr, "usage: %s %s\n", argv[0], usage);
            return false;
        }
        i++; /* the option's value */
    }
    return true;
}

#endif /* SAMPLE_H */
