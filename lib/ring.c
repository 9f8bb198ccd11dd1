/*
 * ring.c - a core thread's own run queue: a bounded FIFO that one thread
 * (the owner) appends to and any thread may take from, without locks.
 *
 * Work a core thread makes for its own pool (a task it submits, a
 * continuation it readies) goes here instead of through the pool's lock,
 * so a busy pool's threads do not fight over one queue. Idle threads steal
 * from the front, half at a time, so one steal balances a burst. The owner
 * takes from the front too: FIFO keeps submission order on a one-thread
 * pool, and the cost is the same compare-and-swap a thief pays. (This is the
 * shape of Go's and Tokio's per-worker queues rather than a Chase-Lev deque,
 * whose owner works LIFO at the back.)
 *
 * The protocol. `tail` is written only by the owner, `head` only by
 * compare-and-swap. The owner stores a slot, then publishes it by a release
 * store of tail; a taker reads head and tail, reads the slots, and claims
 * them by moving head past them. A slot is rewritten only when the owner
 * wraps around to it, which needs head to have moved past it, so a taker
 * that read a stale slot always fails its compare-and-swap and retries.
 * Slots are atomics (relaxed) so that such a stale read is not a data race.
 */
#include "pool_internal.h"

void fut__ring_init(struct fut__ring *r)
{
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    for (unsigned i = 0; i < FUT_RING_SIZE; i++) {
        atomic_init(&r->slot[i], NULL);
        atomic_init(&r->stamp[i], 0);
    }
}

static _Atomic(future_t *) *slot(struct fut__ring *r, unsigned i)
{
    return &r->slot[i % FUT_RING_SIZE];
}

/* A slot's stamp (age.c) goes with it, written and read the same way. */
static atomic_uint *stamp(struct fut__ring *r, unsigned i)
{
    return &r->stamp[i % FUT_RING_SIZE];
}

bool fut__ring_push(struct fut__ring *r, future_t *f, uint32_t when)
{
    unsigned tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    unsigned head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail - head >= FUT_RING_SIZE)
        return false; /* full: the caller queues it elsewhere */
    atomic_store_explicit(slot(r, tail), f, memory_order_relaxed);
    atomic_store_explicit(stamp(r, tail), when, memory_order_relaxed);
    /* Sequentially consistent, not just release: a thread about to sleep
     * must see it, or the pusher see the sleeper (idle.c). */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_seq_cst);
    return true;
}

future_t *fut__ring_pop(struct fut__ring *r)
{
    unsigned head = atomic_load_explicit(&r->head, memory_order_acquire);
    for (;;) {
        unsigned tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head == tail)
            return NULL;
        future_t *f = atomic_load_explicit(slot(r, head), memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&r->head, &head, head + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return f;
    }
}

/*
 * Takes half of @from's futures (rounded up): returns the first, to run at
 * once, and moves the rest to @to, whose owner is the caller. NULL if @from
 * was empty. The copies go into @to's free slots before the claim, and are
 * published only once the claim succeeded.
 */
future_t *fut__ring_steal(struct fut__ring *from, struct fut__ring *to)
{
    unsigned to_tail = atomic_load_explicit(&to->tail, memory_order_relaxed);
    unsigned to_head = atomic_load_explicit(&to->head, memory_order_acquire);
    unsigned room = FUT_RING_SIZE - (to_tail - to_head);
    unsigned head = atomic_load_explicit(&from->head, memory_order_acquire);
    for (;;) {
        unsigned tail = atomic_load_explicit(&from->tail, memory_order_acquire);
        unsigned n = tail - head;
        if (n == 0)
            return NULL;
        if (n > FUT_RING_SIZE) { /* our head is stale: others took meanwhile */
            head = atomic_load_explicit(&from->head, memory_order_acquire);
            continue;
        }
        n -= n / 2;
        if (n - 1 > room)
            n = room + 1;
        future_t *first = atomic_load_explicit(slot(from, head),
                                               memory_order_relaxed);
        for (unsigned i = 1; i < n; i++) {
            future_t *f = atomic_load_explicit(slot(from, head + i),
                                               memory_order_relaxed);
            atomic_store_explicit(slot(to, to_tail + i - 1), f,
                                  memory_order_relaxed);
            atomic_store_explicit(
                stamp(to, to_tail + i - 1),
                atomic_load_explicit(stamp(from, head + i),
                                     memory_order_relaxed),
                memory_order_relaxed);
        }
        if (atomic_compare_exchange_weak_explicit(&from->head, &head,
                                                  head + n,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            atomic_store_explicit(&to->tail, to_tail + n - 1,
                                  memory_order_seq_cst); /* as in push */
            return first;
        }
    }
}

size_t fut__ring_len(const struct fut__ring *r)
{
    struct fut__ring *m = (struct fut__ring *)r;
    for (;;) {
        unsigned head = atomic_load_explicit(&m->head, memory_order_seq_cst);
        unsigned tail = atomic_load_explicit(&m->tail, memory_order_seq_cst);
        if (tail - head <= FUT_RING_SIZE)
            return tail - head;
        /* Our head is stale (others took from the ring meanwhile), and
         * answering 0 could send a thread to sleep beside work. */
    }
}

/* Adds the stamps of the futures @r holds: every one, since work moved
 * in from the injection queue may be older than what was ahead of it.
 * The look is not atomic: a report may see a slot reused a moment ago. */
void fut__ring_oldest(struct fut__ring *r, struct fut__oldest *o)
{
    unsigned head = atomic_load_explicit(&r->head, memory_order_acquire);
    unsigned tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (tail - head > FUT_RING_SIZE)
        return; /* a stale head: the ring changed under the look */
    for (unsigned i = head; i != tail; i++)
        fut__oldest_add(o, atomic_load_explicit(stamp(r, i),
                                                memory_order_relaxed));
}
