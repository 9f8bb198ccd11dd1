/*
 * combinators.c - when_all() and when_any().
 *
 * A combinator is a future with one watch per input it still waits for
 * (watch.c). Both look at their inputs first, because the common case is a
 * join over work that has mostly finished:
 *
 *   when_all  takes what it needs from each input that has settled already
 *             (its error) and watches only the others, so it allocates and
 *             arms nothing for a settled input and keeps no reference to
 *             it. Each watch carries its input's index. The combinator
 *             counts its watches down and settles with the last one; with
 *             none, it settles at once.
 *   when_any  settles at once with the lowest index of an input that has
 *             settled already; only when none has does it watch them all.
 *             It settles with the index of the first input to settle, then
 *             detaches from the rest so that a loop of when_any over
 *             long-lived futures does not pile watches onto them.
 *
 * when_all fails with the error of the lowest-index input that failed. It
 * keeps that one failure as an atomic minimum of (index << 32 | error),
 * which settled inputs seed before any watch is armed and notifications
 * lower; the last notification reads it after the countdown (acq_rel), so
 * relaxed order suffices for the minimum itself.
 *
 * An input handed to either counts as observed (unobserved.c): a failed
 * input settled before the call is marked here, one that fails later by its
 * watch (watch.c, future.c); when_any marks every input it stops looking at.
 *
 * Neither ever runs a user callback; their continuations run on the default
 * pool (exec is NULL).
 */
#include "internal.h"
#include "walk.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>

#define NO_FAILURE UINT64_MAX /* above any (index, error): index < UINT_MAX */

struct combinator {
    future_t base;
    atomic_size_t remaining;      /* when_all: watches not ended yet */
    atomic_uint_least64_t failed; /* when_all: lowest failure, packed */
    atomic_bool decided;          /* when_any: an input has won */
    struct fut__why *seed_why;    /* when_all: the message of the failure
                                     it found settled at the start */
    struct fut__inputs in;
    struct fut__watch watches[]; /* pending inputs only, for when_all */
};

static struct combinator *of(future_t *f)
{
    return fut__container_of(f, struct combinator, base);
}

static void detach_combinator(future_t *f)
{
    fut__inputs_detach(&of(f)->in);
}

/* The inputs it still watches, and how they decide (fut__needs_exec). */
static struct fut__inputs *combinator_inputs(future_t *f)
{
    return &of(f)->in;
}

static void destroy_combinator(future_t *f)
{
    fut__why_release(of(f)->seed_why);
}

static const struct fut__ops all_ops = {.kind = "combinator",
                                        .detach = detach_combinator,
                                        .destroy = destroy_combinator,
                                        .inputs = combinator_inputs,
                                        .decides = FUT_DECIDES_EVERY};
static const struct fut__ops any_ops = {.kind = "combinator",
                                        .detach = detach_combinator,
                                        .inputs = combinator_inputs,
                                        .decides = FUT_DECIDES_ANY};

static uint64_t pack_failure(size_t index, int error)
{
    return (uint64_t)index << 32 | (uint32_t)error;
}

/* Lowers c->failed to input @index's failure if that one comes first. */
static void note_failure(struct combinator *c, size_t index, int error)
{
    uint64_t mine = pack_failure(index, error);
    uint64_t seen = atomic_load_explicit(&c->failed, memory_order_relaxed);
    while (mine < seen && !atomic_compare_exchange_weak_explicit(
                              &c->failed, &seen, mine, memory_order_relaxed,
                              memory_order_relaxed))
        ;
}

static int failure_error(uint64_t failed)
{
    return failed == NO_FAILURE ? 0 : (int)(uint32_t)failed;
}

/*
 * Settles when_all with the failure it kept (or success), and that
 * failure's message: the input's that failed first by index, found among
 * the watched inputs (their pins keep every target alive while the last
 * one is told) or, if none of them, the one seen settled at the start.
 */
static void settle_all(struct combinator *c, struct fut__inputs *in)
{
    uint64_t failed = atomic_load_explicit(&c->failed, memory_order_relaxed);
    int error = failure_error(failed);
    if (!error) {
        fut__settle(&c->base, 0, NULL);
        return;
    }
    unsigned index = (unsigned)(failed >> 32);
    struct fut__why *why = c->seed_why;
    for (size_t i = 0; in && i < in->n; i++) {
        if (in->w[i].index == index)
            why = in->w[i].target->has_why ? in->w[i].target->why : NULL;
    }
    fut__fail_why(&c->base, error, fut__why_retain(why));
}

static void all_input_settled(struct fut__inputs *in, size_t pos)
{
    struct combinator *c = of(in->owner);
    const struct fut__watch *w = &in->w[pos];
    if (w->target->error)
        note_failure(c, w->index, w->target->error);
    if (atomic_fetch_sub_explicit(&c->remaining, 1, memory_order_acq_rel) != 1)
        return;
    settle_all(c, in);
}

static void any_input_settled(struct fut__inputs *in, size_t pos)
{
    struct combinator *c = of(in->owner);
    if (atomic_exchange(&c->decided, true))
        return;
    size_t index = in->w[pos].index;
    if (fut__settle(&c->base, 0, (void *)(uintptr_t)index))
        fut__inputs_detach(in);
}

/*
 * What a first look at the inputs found, before anything is allocated or
 * marked: @pending inputs had not settled, every input before @from had
 * succeeded, and @settled is the lowest index of a settled input (n: none).
 * Returns false, with errno EINVAL, for a NULL array or input.
 */
struct scan {
    size_t pending;
    size_t from;
    size_t settled;
};

static bool scan_inputs(future_t *const *fs, size_t n, struct scan *s)
{
    if (!fs) {
        errno = EINVAL;
        return false;
    }
    s->pending = 0;
    s->from = s->settled = n;
    for (size_t i = 0; i < n; i++) {
        const future_t *f = fs[i];
        if (!f) {
            errno = EINVAL;
            return false;
        }
        bool settled = fut__is_settled(f);
        s->pending += !settled;
        if (s->from == n && (!settled || f->error))
            s->from = i;
        if (s->settled == n && settled)
            s->settled = i;
    }
    return true;
}

/* Allocates a combinator with room for @nwatch watches, or sets errno. */
static struct combinator *combinator_new(const struct fut__ops *ops, size_t n,
                                         size_t nwatch)
{
    if (n >= UINT_MAX || nwatch > (SIZE_MAX - sizeof(struct combinator)) /
                                      sizeof(struct fut__watch)) {
        errno = ENOMEM;
        return NULL;
    }
    struct combinator *c = (struct combinator *)fut__new(
        sizeof *c + nwatch * sizeof(struct fut__watch), ops, FUT_PENDING, 1);
    if (!c)
        return NULL;
    atomic_init(&c->remaining, 0);
    atomic_init(&c->failed, NO_FAILURE);
    atomic_init(&c->decided, false);
    return c;
}

/*
 * The second look, once nothing can fail: from @from on, a failed settled
 * input is marked observed and seeds c->failed, and one still pending gets
 * the next watch. An input that settled since the first look is taken as
 * settled, so this never needs more watches than the first look counted.
 * Returns how many watches it filled in.
 */
static size_t take_inputs(struct combinator *c, future_t *const *fs, size_t n,
                          size_t from)
{
    uint64_t failed = NO_FAILURE;
    size_t nwatch = 0;
    for (size_t i = from; i < n; i++) {
        future_t *f = fs[i];
        if (!fut__is_settled(f)) {
            c->watches[nwatch].target = f;
            c->watches[nwatch++].index = (unsigned)i;
        } else if (f->error) {
            fut__observe(f); /* handed to when_all */
            if (failed == NO_FAILURE) {
                failed = pack_failure(i, f->error);
                if (f->has_why)
                    c->seed_why = fut__why_retain(f->why);
            }
        }
    }
    atomic_store_explicit(&c->failed, failed, memory_order_relaxed);
    return nwatch;
}

future_t *when_all(future_t *const *futures, size_t n)
{
    if (n == 0)
        return future_resolved(NULL);
    struct scan s;
    if (!scan_inputs(futures, n, &s))
        return NULL;
    struct combinator *c = combinator_new(&all_ops, n, s.pending);
    if (!c)
        return NULL;
    size_t nwatch = take_inputs(c, futures, n, s.from);
    if (nwatch == 0) {
        settle_all(c, NULL);
        return &c->base;
    }
    atomic_store_explicit(&c->remaining, nwatch, memory_order_relaxed);
    fut__inputs_init_filled(&c->in, &c->base, c->watches, nwatch,
                            all_input_settled);
    fut__inputs_arm(&c->in);
    return &c->base;
}

/* when_any decided by input @winner before watching anything: every input
 * was handed to it, so each that failed or may still fail is observed. */
static future_t *any_decided(struct combinator *c, future_t *const *fs,
                             size_t n, size_t winner)
{
    for (size_t i = 0; i < n; i++) {
        if (!fut__is_settled(fs[i]) || fs[i]->error)
            fut__observe(fs[i]);
    }
    fut__settle(&c->base, 0, (void *)(uintptr_t)winner);
    return &c->base;
}

future_t *when_any(future_t *const *futures, size_t n)
{
    struct scan s;
    if (n == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!scan_inputs(futures, n, &s))
        return NULL;
    struct combinator *c = combinator_new(&any_ops, n, s.settled < n ? 0 : n);
    if (!c)
        return NULL;
    if (s.settled < n)
        return any_decided(c, futures, n, s.settled);
    fut__inputs_init(&c->in, &c->base, c->watches, futures, n,
                     any_input_settled);
    fut__inputs_arm(&c->in);
    return &c->base;
}
