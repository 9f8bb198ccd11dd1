/*
 * age.c - how long queued work has waited, for the dumps' "the oldest
 * queued for 2.00 s" (pools.c).
 *
 * A task has no room for a timestamp (it fills its 56-byte slot), so the
 * stamps live beside the queues instead. Every queue of a pool is FIFO
 * and numbers what it takes in: the injection queue and the blocking jobs
 * count pushes (the oldest queued is number pushed - len), and a ring's
 * `tail` and `head` are such numbers already. A ring keeps one stamp per
 * slot (ring.c), written by its owner with the slot. The two locked
 * queues keep a log instead: an entry (seq, ms) says that work number seq
 * and those after it, up to the next entry, were queued at ms. Pushes in
 * the same millisecond share an entry, so a burst costs one.
 *
 * The log holds FUT_AGE_LOG entries. Entries whose work has all left the
 * queue are dropped first; if it is still full, the entry closest in time
 * to the one before it is merged into that one (keeping the older stamp),
 * so no work reads younger than it is. Work a core thread takes out of
 * the injection queue carries its stamp into its ring (runq.c). What it
 * cannot fit there goes back to the queue's front, numbered anew in front
 * of the head with its stamp: two threads may hand back at once, in either
 * order, so the queue's numbers must stay one run, and the older work may
 * sit behind younger. That is why a report takes the oldest of every
 * entry and every ring slot that describes queued work, not the head's.
 *
 * Stamps are milliseconds of CLOCK_MONOTONIC_COARSE, kept to 32 bits
 * (ages wrap after 49 days), with 0 for "not known": reading the clock is
 * left off until a program shows it wants dumps (fut__timing_tasks), as
 * for the times of running tasks, so work queued before that has no age.
 */
#include "pool_internal.h"

uint32_t fut__queued_stamp(void)
{
    if (!atomic_load_explicit(&fut__timing_tasks, memory_order_relaxed))
        return 0;
    uint32_t ms = (uint32_t)fut__coarse_ms();
    return ms ? ms : 1;
}

/* Is sequence number @a before @b? (They wrap.) */
static bool seq_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static void remove_entry(struct fut__age_log *log, unsigned i)
{
    for (; i + 1 < log->n; i++)
        log->e[i] = log->e[i + 1];
    log->n--;
}

/* Drops the entries whose work has all left: the next one starts at or
 * before @oldest, the number of the oldest work still queued. */
static void drop_gone(struct fut__age_log *log, uint32_t oldest)
{
    while (log->n >= 2 && !seq_before(oldest, log->e[1].seq))
        remove_entry(log, 0);
}

/* Merges the entry nearest in time to its predecessor into it, and says
 * which it was; the first entry, the oldest work's, stays as it is. */
static unsigned merge_closest(struct fut__age_log *log)
{
    unsigned best = 1;
    uint32_t best_gap = UINT32_MAX;
    for (unsigned i = 1; i < log->n; i++) {
        uint32_t gap = log->e[i].ms - log->e[i - 1].ms;
        if (gap < best_gap) {
            best = i;
            best_gap = gap;
        }
    }
    if (seq_before(log->e[best].ms, log->e[best - 1].ms))
        log->e[best - 1].ms = log->e[best].ms; /* keep the older stamp */
    remove_entry(log, best);
    return best;
}

void fut__age_note(struct fut__age_log *log, uint32_t seq, uint32_t ms,
                   uint32_t oldest)
{
    if (!ms)
        return;
    drop_gone(log, oldest);
    unsigned i = log->n;
    while (i > 0 && seq_before(seq, log->e[i - 1].seq))
        i--; /* work handed back: it goes in front of what came since */
    if (i == log->n && i > 0 && log->e[i - 1].ms == ms)
        return; /* the last entry covers it */
    if (i > 0 && log->e[i - 1].seq == seq) {
        log->e[i - 1].ms = ms;
        return;
    }
    if (log->n == FUT_AGE_LOG && merge_closest(log) < i)
        i--;
    for (unsigned j = log->n; j > i; j--)
        log->e[j] = log->e[j - 1];
    log->e[i].seq = seq;
    log->e[i].ms = ms;
    log->n++;
}

/*
 * Work handed back to the front of a queue whose head was @head (@end
 * being the next number a push takes): it is renumbered @front up to
 * @head - 1, so that the queue's numbers stay one run with pushed - len
 * its head, whoever hands back in whatever order, and was queued at @ms
 * (0: not known). Entries at or before @head describe work that has left,
 * but for the stamp of @head itself, which is kept.
 */
void fut__age_hand_back(struct fut__age_log *log, uint32_t front,
                        uint32_t head, uint32_t end, uint32_t ms)
{
    uint32_t head_ms = fut__age_at(log, head);
    while (log->n && !seq_before(head, log->e[0].seq))
        remove_entry(log, 0);
    unsigned add = head == end ? 1 : 2; /* an empty queue: no head to keep */
    while (log->n + add > FUT_AGE_LOG)
        merge_closest(log);
    for (unsigned j = log->n; j > 0; j--)
        log->e[j - 1 + add] = log->e[j - 1];
    log->e[0].seq = front;
    log->e[0].ms = ms;
    if (add == 2) {
        log->e[1].seq = head;
        log->e[1].ms = head_ms;
    }
    log->n += add;
}

uint32_t fut__age_at(const struct fut__age_log *log, uint32_t seq)
{
    uint32_t ms = 0;
    for (unsigned i = 0; i < log->n && !seq_before(seq, log->e[i].seq); i++)
        ms = log->e[i].ms;
    return ms;
}

/* Adds the stamps of the queued work, numbered @head up to @end, that
 * @log knows of: work handed back may be older than what is ahead of it,
 * so every entry that describes some of it counts. */
void fut__age_oldest(const struct fut__age_log *log, uint32_t head,
                     uint32_t end, struct fut__oldest *o)
{
    if (log->n == 0 || seq_before(head, log->e[0].seq))
        fut__oldest_add(o, 0); /* queued before ages were kept */
    for (unsigned i = 0; i < log->n && seq_before(log->e[i].seq, end); i++) {
        if (i + 1 == log->n || seq_before(head, log->e[i + 1].seq))
            fut__oldest_add(o, log->e[i].ms);
    }
}

void fut__oldest_add(struct fut__oldest *o, uint32_t stamp)
{
    if (!stamp)
        o->unknown = true;
    else if (!o->known || seq_before(stamp, o->stamp))
        o->stamp = stamp;
    o->known |= stamp != 0;
}

void fut__oldest_print(const struct fut__oldest *o, FILE *out)
{
    if (o->unknown) {
        fprintf(out, ", the oldest queued before the first dump");
    } else if (o->known) {
        uint32_t ms = (uint32_t)fut__coarse_ms() - o->stamp;
        if ((int32_t)ms < 0)
            ms = 0;
        fprintf(out, ", the oldest queued for %u.%02u s", ms / 1000,
                ms % 1000 / 10);
    }
}
