/* common.h - checks and timing shared by the stress programs. */
#ifndef STRESS_COMMON_H
#define STRESS_COMMON_H

#include <futures.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define U2P(n) ((void *)(uintptr_t)(n))
#define P2U(p) ((uintptr_t)(p))

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

/* Rounds scale with STRESS_SCALE (default 1) for longer soaks. */
static inline long rounds(long base)
{
    const char *s = getenv("STRESS_SCALE");
    long k = s ? atol(s) : 1;
    return base * (k > 0 ? k : 1);
}

/* A small deterministic generator, one per thread. */
static inline uint32_t next_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

static inline void run_threads(int n, void *(*fn)(void *), void *args,
                               size_t arg_size)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++)
        CHECK(pthread_create(&t[i], NULL, fn,
                             (char *)args + (size_t)i * arg_size) == 0,
              "thread");
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
}

#endif
