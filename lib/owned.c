/*
 * owned.c - values that futures own: future_set_result_free().
 *
 * Few futures own their value, so the destructor is not a field of every
 * future (that would cost each task 8 bytes, and a 56-byte future fits a
 * 64-byte heap chunk): it lives in this table, keyed by the future, and the
 * future's FUT_OWNS_VALUE bit says whether to look. Futures without the bit
 * never touch the table. A bucket's lock is a leaf: nothing else is taken
 * while it is held, which lets fork() gate the buckets (fork.c).
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>

#define BUCKET_BITS 6
#define NBUCKETS    (1u << BUCKET_BITS)

struct owner {
    const future_t *f;
    void (*result_free)(void *);
    struct owner *next;
};

static struct bucket {
    pthread_mutex_t lock;
    struct owner *owners;
} buckets[NBUCKETS];
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

static void buckets_init(void)
{
    for (unsigned i = 0; i < NBUCKETS; i++) {
        if (fut__mutex_init(&buckets[i].lock))
            fut__panic("cannot initialise the result destructor table");
    }
}

static struct bucket *bucket_of(const future_t *f)
{
    pthread_once(&buckets_once, buckets_init);
    uint64_t h = ((uint64_t)(uintptr_t)f >> 4) * UINT64_C(0x9E3779B97F4A7C15);
    return &buckets[h >> (64 - BUCKET_BITS)];
}

/* Buckets are gated locks and leaves: fork() waits for them to empty
 * rather than holds them (fork.c). */
static void lock_bucket(struct bucket *b)
{
    if (fut__gated_lock(&b->lock))
        fut__panic("result destructor lock failed");
}

/* The entry for @f in @b, or where it would be linked; the lock is held. */
static struct owner **find_locked(struct bucket *b, const future_t *f)
{
    struct owner **o = &b->owners;
    while (*o && (*o)->f != f)
        o = &(*o)->next;
    return o;
}

int future_set_result_free(future_t *f, void (*result_free)(void *))
{
    if (!f)
        return EINVAL;
    struct owner *fresh = result_free ? fut__calloc(sizeof *fresh) : NULL;
    if (result_free && !fresh)
        return ENOMEM;
    struct bucket *b = bucket_of(f);
    lock_bucket(b);
    struct owner **o = find_locked(b, f), *gone = NULL;
    if (*o && result_free) {
        (*o)->result_free = result_free; /* replaced */
        gone = fresh;
    } else if (*o) {
        gone = *o; /* removed */
        *o = gone->next;
        atomic_fetch_and(&f->flags, (unsigned char)~FUT_OWNS_VALUE);
    } else if (result_free) {
        *fresh = (struct owner){f, result_free, NULL};
        *o = fresh;
        atomic_fetch_or(&f->flags, FUT_OWNS_VALUE);
    }
    pthread_mutex_unlock(&b->lock);
    fut__mem_free(gone);
    return 0;
}

/* @f's destructor, or NULL; with @take, @f is being freed and forgets it. */
fut__value_free_fn fut__result_free_of(const future_t *f, bool take)
{
    if (!(atomic_load_explicit(&((future_t *)f)->flags, memory_order_acquire) &
          FUT_OWNS_VALUE))
        return NULL;
    struct bucket *b = bucket_of(f);
    lock_bucket(b);
    struct owner **o = find_locked(b, f), *gone = NULL;
    fut__value_free_fn result_free = *o ? (*o)->result_free : NULL;
    if (*o && take) {
        gone = *o;
        *o = gone->next;
    }
    pthread_mutex_unlock(&b->lock);
    fut__mem_free(gone);
    return result_free;
}

/* fork(): the child gets fresh mutexes, since one may be held by a thread
 * that does not exist there (fork.c). */
void fut__owned_fork(enum fut__fork_phase phase)
{
    pthread_once(&buckets_once, buckets_init);
    for (unsigned i = 0; i < NBUCKETS; i++)
        fut__gated_fork(&buckets[i].lock, phase);
}
