/*
 * stripe.c - the locks and condition variables that futures share.
 *
 * A future needs a lock only while a thread blocks on it (wait.c), or
 * while a second dependent joins its list or one leaves it before it
 * settles (watch.c): its state changes without one (settle.c). Rather than give every future a mutex and a condition
 * variable (88 bytes on glibc), futures hash to one of a fixed set of
 * stripes, as a parking lot does. Two futures may share a stripe; that costs
 * an occasional spurious wake-up, never a wrong answer, because every waiter
 * re-checks its own future's state.
 *
 * Lock order: no code holds two stripe locks at once, and no stripe lock is
 * held while a pool lock is taken or a callback runs. They are leaves, which
 * lets fork() gate them rather than hold them all (sync.c).
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
