/*
 * stripe.c - the locks and condition variables that futures share.
 *
 * A future needs a lock only for the few instructions that change its state
 * or its list of watchers, and a condition variable only while someone
 * blocks on it. Rather than give every future a mutex and a condition
 * variable (88 bytes on glibc), futures hash to one of a fixed set of
 * stripes, as a parking lot does. Two futures may share a stripe; that costs
 * an occasional spurious wake-up, never a wrong answer, because every waiter
 * re-checks its own future's state.
 *
 * Lock order: no code holds two stripe locks at once, and no stripe lock is
 * held while a pool lock is taken or a callback runs. They are leaves, which
 * lets fork() gate them rather than hold them all (fork.c).
 */
#include "internal.h"

#include <stdint.h>
#include <time.h>

#define STRIPE_BITS  7
#define STRIPE_COUNT (1u << STRIPE_BITS)

struct padded_stripe {
    struct fut__stripe s;
    char pad[64 - sizeof(struct fut__stripe) % 64];
};

static struct padded_stripe stripes[STRIPE_COUNT];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

int fut__mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (FUT_DEBUG)
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    int rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

int fut__cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

static void stripes_init(void)
{
    for (unsigned i = 0; i < STRIPE_COUNT; i++) {
        if (fut__mutex_init(&stripes[i].s.lock) ||
            fut__cond_init(&stripes[i].s.cond))
            fut__panic("cannot initialise the future locks");
    }
}

/*
 * fork(): the stripes are gated locks (fork.c). The prepare handler waits
 * for each to empty; the child gets fresh mutexes, since one may be held
 * by a thread that does not exist there, and fresh condition variables:
 * waiters of the parent's do not exist here, and glibc's would wait for
 * them to leave.
 */
void fut__stripe_fork(enum fut__fork_phase phase)
{
    pthread_once(&stripes_once, stripes_init);
    for (unsigned i = 0; i < STRIPE_COUNT; i++) {
        struct fut__stripe *s = &stripes[i].s;
        fut__gated_fork(&s->lock, phase);
        if (phase == FUT_FORK_CHILD && fut__cond_init(&s->cond) != 0)
            fut__panic("cannot initialise the future locks");
    }
}

struct fut__stripe *fut__lock(const future_t *f)
{
    pthread_once(&stripes_once, stripes_init);
    /* Fibonacci hashing spreads neighbouring allocations over all stripes. */
    uint64_t h = ((uint64_t)(uintptr_t)f >> 4) * UINT64_C(0x9E3779B97F4A7C15);
    struct fut__stripe *s = &stripes[h >> (64 - STRIPE_BITS)].s;
    if (fut__gated_lock(&s->lock))
        fut__panic("future lock failed");
    return s;
}

void fut__unlock(struct fut__stripe *s)
{
    if (pthread_mutex_unlock(&s->lock))
        fut__panic("future unlock failed");
}

uint64_t fut__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void fut__deadline(struct timespec *ts, uint64_t ns_from_now)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t ns = (uint64_t)ts->tv_nsec + ns_from_now % 1000000000u;
    uint64_t s = ns_from_now / 1000000000u + ns / 1000000000u;
    /* Clamp absurd timeouts rather than wrap into the past. */
    if (s > (uint64_t)INT32_MAX * 16)
        s = (uint64_t)INT32_MAX * 16;
    ts->tv_sec += (time_t)s;
    ts->tv_nsec = (long)(ns % 1000000000u);
}
