/*
 * slab.c - futures' memory: small objects kept on free lists.
 *
 * A plain task is a 56-byte future, which malloc rounds up to a 64-byte
 * chunk, and fresh memory costs more in page faults than the rest of a
 * task's life. So futures up to 208 bytes come from a few size classes
 * instead: slots of exactly that size, carved from 64 KiB blocks, reused
 * from free lists, never given back to the system while the process lives.
 * Larger futures go to calloc() as before.
 *
 * Each thread keeps a cache per class: a free list that it alone touches,
 * so allocating and freeing on one thread take no lock and no atomic
 * read-modify-write. Futures are often freed on another thread than the one
 * that made them (the main thread submits, a worker drops the last
 * reference), so the lists move in batches through a depot:
 *
 *   free:  push on this thread's list; past CACHE_MAX objects, hand the
 *          first BATCH to the depot
 *   alloc: pop from this thread's list; if it is empty, take a batch from
 *          the depot, or else carve BATCH new slots from a block
 *
 * A thread's caches are bounded; the depot holds what was freed and is
 * drawn on before any new block is carved. When a thread exits, a
 * pthread key's destructor hands its caches to the depot, and anything the
 * thread frees after that goes straight there too.
 *
 * Every block stays on the depot's list, so a memory checker finds the
 * free objects "still reachable". It would also miss a use after free, so
 * the caches are off under AddressSanitizer and ThreadSanitizer (compiled
 * out), under valgrind, and when FUTURES_NO_CACHE is set: then every
 * future is calloc()ed and free()d. Each future records its class in the
 * top bits of its flags (FUT_SLAB_SHIFT), 0 for calloc(), so a free never
 * depends on the mode.
 *
 * Locks: the depot's lock is a leaf. Nothing else is taken while it is held,
 * except malloc's own locks to carve a block; fork() takes it last (fork.c).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLAB_COMPILED_OUT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLAB_COMPILED_OUT 1
#endif
#endif
#ifndef SLAB_COMPILED_OUT
#define SLAB_COMPILED_OUT 0
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* A thread that only frees (a worker) or only allocates (a submitter)
 * takes the depot's lock once per BATCH objects; one that does both, as
 * continuations do, takes it not at all while its cache stays between
 * empty and CACHE_MAX. */
#define BLOCK_SIZE (64 * 1024)
#define BATCH      32
#define CACHE_MAX  (2 * BATCH)

/* Tasks, promises, settled futures (56); timers, owned tasks (72);
 * when_all/when_any of none (120), of one or two inputs (160 to 208),
 * future_timeout (192), continuations (208). Multiples of 8: futures need
 * no more than a pointer's alignment. */
static const size_t class_size[] = {56, 72, 128, 208};
#define NCLASSES (sizeof class_size / sizeof class_size[0])
_Static_assert(NCLASSES < 1u << (8 - FUT_SLAB_SHIFT), "too many classes");

/* A free slot. In the depot, the first slot of a batch also links the next
 * batch and counts its own. */
struct slot {
    struct slot *next;
    struct slot *next_batch;
    size_t n;
};

struct list {
    struct slot *head;
    size_t n;
};

struct cache {
    struct list lists[NCLASSES];
    bool registered; /* my_cache() has set it up */
    bool exited;     /* no destructor will run (any more): keep nothing */
};

static _Thread_local struct cache cache;

struct block {
    struct block *next; /* the slots follow */
};

static struct depot {
    pthread_mutex_t lock;
    struct slot *batches[NCLASSES];
    size_t nfree[NCLASSES];  /* slots in the batches */
    size_t carved[NCLASSES]; /* slots ever carved, for tests */
    char *tail[NCLASSES], *end[NCLASSES]; /* the newest block's rest */
    struct block *blocks;
} depot = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_key_t exit_key;
static bool have_exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------ the mode -- */

enum { MODE_UNKNOWN, MODE_CACHE, MODE_PLAIN };
static atomic_int mode;

/* Decided once: every thread reaches the same answer, so a race is
 * harmless. */
static int decide_mode(void)
{
    bool plain = SLAB_COMPILED_OUT || RUNNING_ON_VALGRIND ||
                 getenv("FUTURES_NO_CACHE") != NULL;
    int m = plain ? MODE_PLAIN : MODE_CACHE;
    atomic_store_explicit(&mode, m, memory_order_relaxed);
    return m;
}

bool fut__slab_caching(void)
{
    if (SLAB_COMPILED_OUT)
        return false;
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    return (m == MODE_UNKNOWN ? decide_mode() : m) == MODE_CACHE;
}

/* ----------------------------------------------------------- the depot -- */

/* Carves up to BATCH slots of @c into @l (empty), with a new block if the
 * last one is used up. Depot lock held. */
static bool carve_locked(unsigned c, struct list *l)
{
    FUT_ASSERT_HELD(&depot.lock);
    size_t size = class_size[c];
    if ((size_t)(depot.end[c] - depot.tail[c]) < size) {
        struct block *b = calloc(1, BLOCK_SIZE); /* the only source */
        if (!b)
            return false;
        b->next = depot.blocks;
        depot.blocks = b;
        depot.tail[c] = (char *)(b + 1);
        depot.end[c] = (char *)b + BLOCK_SIZE;
    }
    while (l->n < BATCH && (size_t)(depot.end[c] - depot.tail[c]) >= size) {
        struct slot *s = (struct slot *)(void *)depot.tail[c];
        depot.tail[c] += size;
        s->next = l->head;
        l->head = s;
        l->n++;
    }
    depot.carved[c] += l->n;
    return true;
}

/* Fills @l (empty) with a batch from the depot, or with new slots. */
static bool refill(unsigned c, struct list *l)
{
    fut__mutex_lock(&depot.lock);
    struct slot *b = depot.batches[c];
    bool ok = true;
    if (b) {
        depot.batches[c] = b->next_batch;
        depot.nfree[c] -= b->n;
        l->head = b;
        l->n = b->n;
    } else {
        ok = carve_locked(c, l);
    }
    fut__mutex_unlock(&depot.lock);
    return ok;
}

/* Hands the first @n slots of @l to the depot as one batch. */
static void spill(unsigned c, struct list *l, size_t n)
{
    struct slot *first = l->head, *last = first;
    for (size_t i = 1; i < n; i++)
        last = last->next;
    l->head = last->next;
    l->n -= n;
    last->next = NULL;
    first->n = n;

    fut__mutex_lock(&depot.lock);
    first->next_batch = depot.batches[c];
    depot.batches[c] = first;
    depot.nfree[c] += n;
    fut__mutex_unlock(&depot.lock);
}

static void spill_all(struct cache *k)
{
    for (unsigned c = 0; c < NCLASSES; c++) {
        if (k->lists[c].n)
            spill(c, &k->lists[c], k->lists[c].n);
    }
}

/* ---------------------------------------------------- a thread's cache -- */

/* Pool threads come and go: an ending thread's slots go to the depot. */
static void thread_exit(void *arg)
{
    struct cache *k = arg;
    k->exited = true;
    spill_all(k);
}

static void make_exit_key(void)
{
    have_exit_key = pthread_key_create(&exit_key, thread_exit) == 0;
}

/* This thread's cache, set up to be emptied when the thread ends. If it
 * cannot be (no key left, no memory), nothing is kept in it: every free
 * goes to the depot, as after the thread's end. */
static struct cache *my_cache(void)
{
    struct cache *k = &cache;
    if (!k->registered) {
        pthread_once(&exit_key_once, make_exit_key);
        k->registered = true;
        if (!have_exit_key || pthread_setspecific(exit_key, k) != 0)
            k->exited = true;
    }
    return k;
}

/* Size class of an object of @size, or -1: calloc() it. */
static int class_of(size_t size)
{
    if (!fut__slab_caching())
        return -1;
    for (unsigned c = 0; c < NCLASSES; c++) {
        if (size <= class_size[c])
            return (int)c;
    }
    return -1;
}

void *fut__slab_alloc(size_t size, unsigned *cls)
{
    int c = class_of(size);
    *cls = 0;
    if (c < 0)
        return calloc(1, size);
    struct cache *k = my_cache();
    struct list *l = &k->lists[c];
    if (!l->head && !refill((unsigned)c, l))
        return NULL;
    struct slot *s = l->head;
    l->head = s->next;
    l->n--;
    if (k->exited)
        spill_all(k); /* the thread is ending: keep nothing */
    memset(s, 0, size); /* calloc()'s promise */
    *cls = (unsigned)c + 1;
    return s;
}

void fut__slab_free(void *p, unsigned cls)
{
    if (cls == 0) {
        free(p);
        return;
    }
    unsigned c = cls - 1;
    struct cache *k = my_cache();
    struct list *l = &k->lists[c];
    struct slot *s = p;
    s->next = l->head;
    l->head = s;
    l->n++;
    if (k->exited)
        spill(c, l, l->n);
    else if (l->n > CACHE_MAX)
        spill(c, l, BATCH);
}

/* --------------------------------------------------------- fork, tests -- */

void fut__slab_fork(enum fut__fork_phase phase)
{
    /* The child's other threads are gone with their caches; their slots
     * stay in the blocks, unused but reachable. */
    if (phase == FUT_FORK_PREPARE)
        fut__mutex_lock(&depot.lock);
    else
        fut__mutex_unlock(&depot.lock);
}

void fut__slab_stats(struct fut__slab_stats *out)
{
    *out = (struct fut__slab_stats){0};
    fut__mutex_lock(&depot.lock);
    for (unsigned c = 0; c < NCLASSES; c++) {
        out->carved += depot.carved[c];
        out->in_depot += depot.nfree[c];
        out->in_cache += cache.lists[c].n;
    }
    for (const struct block *b = depot.blocks; b; b = b->next)
        out->blocks++;
    fut__mutex_unlock(&depot.lock);
}
