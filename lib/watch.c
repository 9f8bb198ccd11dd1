/*
 * watch.c - how a future learns that its inputs settled.
 *
 * The protocol (pins, and who ends a watch) is described in internal.h. This
 * file also owns the per-thread notification queue (fut__self.notify_*):
 * fut__deliver() appends a settled future's watchers to it, and only the
 * outermost call on a thread drains it. A notification that settles another
 * future therefore queues that future's watchers instead of recursing into
 * them, so a chain of any length is told in constant stack.
 *
 * Walks that read a future's inputs (walk.c) pin the set as
 * fut__inputs_detach() does, with fut__inputs_pin().
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>

/* Waits out a detach that holds @f's dependents (DEPS_LOCKED): a few
 * instructions, unless its thread was preempted in them. */
static uintptr_t deps_unlocked(future_t *f, unsigned *spins)
{
    if (++*spins % 64 == 0)
        sched_yield();
    else
        fut__cpu_relax();
    return atomic_load_explicit(&f->deps, memory_order_acquire);
}

/*
 * Takes the DEPS_LOCKED bit of @t's dependents and returns what they were,
 * or DEPS_CLOSED if @t has settled. The caller holds @t's stripe lock, so
 * no other thread holds the bit (see internal.h).
 */
static uintptr_t lock_deps(future_t *t)
{
    uintptr_t d = atomic_load_explicit(&t->deps, memory_order_acquire);
    while (d != FUT_DEPS_CLOSED &&
           !atomic_compare_exchange_weak_explicit(
               &t->deps, &d, d | FUT_DEPS_LOCKED, memory_order_acquire,
               memory_order_acquire))
        ;
    return d;
}

/* Pushes @w in front of the dependents @t already has, with the lock. */
static bool link_behind_others(struct fut__watch *w)
{
    future_t *t = w->target;
    struct fut__stripe *s = fut__lock(t);
    uintptr_t d = lock_deps(t);
    if (d != FUT_DEPS_CLOSED) {
        struct fut__watch *head = (struct fut__watch *)d;
        w->prev = NULL;
        w->next = head;
        if (head)
            head->prev = w;
        atomic_store_explicit(&t->deps, (uintptr_t)w, memory_order_release);
    }
    fut__unlock(s);
    return d != FUT_DEPS_CLOSED;
}

/*
 * Pushes @w onto its target's dependents, or returns false if the target
 * has settled already. The first dependent, the one a chain has, takes one
 * compare-and-swap; more take the lock, to keep the list doubly linked so
 * that any of them can leave in constant time (unlink_watch).
 */
static bool link_watch(struct fut__watch *w)
{
    future_t *t = w->target;
    uintptr_t d = 0;
    /* w->prev and w->next are still zero, as the owner was allocated, and
     * are written only under the lock from now on: a detach on another
     * thread may be reading them (unlink_watch). */
    /* acq_rel: a detach that found nothing to unlink stored the empty
     * list (unlink_watch); reading it, the arming thread must then see the
     * owner settled, or the watch would stay behind (fut__inputs_arm). */
    if (atomic_compare_exchange_strong_explicit(&t->deps, &d, (uintptr_t)w,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
        return true;
    return d != FUT_DEPS_CLOSED && link_behind_others(w);
}

/* Closes @f's dependents for good and returns them, newest first; its
 * settler calls this once, after the outcome is written. */
struct fut__watch *fut__close_deps(future_t *f)
{
    unsigned spins = 0;
    uintptr_t d = atomic_load_explicit(&f->deps, memory_order_acquire);
    for (;;) {
        if (d & FUT_DEPS_LOCKED) {
            d = deps_unlocked(f, &spins);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&f->deps, &d, FUT_DEPS_CLOSED,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return d == FUT_DEPS_CLOSED ? NULL : (struct fut__watch *)d;
    }
}

/*
 * Takes @w out of its unsettled target's dependents; false if it is not
 * there (the target settled, and its settler tells @w, or @w was never
 * pushed). The stripe lock keeps other editors of the list out and fork()
 * away (see DEPS_LOCKED in internal.h); the bit keeps the first push and
 * the close out while the list is edited.
 */
static bool unlink_watch(struct fut__watch *w)
{
    future_t *t = w->target;
    struct fut__stripe *s = fut__lock(t);
    uintptr_t d = lock_deps(t);
    struct fut__watch *head = (struct fut__watch *)d;
    bool found = d != FUT_DEPS_CLOSED && (head == w || w->prev);
    if (found) {
        if (w->prev)
            w->prev->next = w->next;
        else
            head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->prev = w->next = NULL;
    }
    if (d != FUT_DEPS_CLOSED)
        atomic_store_explicit(&t->deps, (uintptr_t)head, memory_order_release);
    fut__unlock(s);
    return found;
}

/* Takes a pin unless none is left: then every watch has ended, and the
 * set may have let go of its targets already. */
bool fut__inputs_pin(struct fut__inputs *in)
{
    unsigned pins = atomic_load(&in->pins);
    do {
        if (pins == 0)
            return false;
    } while (!atomic_compare_exchange_weak(&in->pins, &pins, pins + 1));
    return true;
}

void fut__inputs_unpin(struct fut__inputs *in)
{
    if (atomic_fetch_sub_explicit(&in->pins, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < in->n; i++)
        future_release(in->w[i].target);
    future_release(in->owner);
}

/* Sets up @n watches, one on each of @targets (borrowed), in order. */
void fut__inputs_init(struct fut__inputs *in, future_t *owner,
                      struct fut__watch *w, future_t *const *targets, size_t n,
                      void (*notify)(struct fut__inputs *, size_t))
{
    for (size_t i = 0; i < n; i++) {
        w[i].target = targets[i];
        w[i].index = (unsigned)i;
    }
    fut__inputs_init_filled(in, owner, w, n, notify);
}

/* Sets up @n watches whose target (borrowed) and index the owner has
 * filled in already. */
void fut__inputs_init_filled(struct fut__inputs *in, future_t *owner,
                             struct fut__watch *w, size_t n,
                             void (*notify)(struct fut__inputs *, size_t))
{
    in->owner = future_retain(owner);
    in->notify = notify;
    in->n = n;
    in->w = w;
    for (size_t i = 0; i < n; i++) {
        future_retain(w[i].target);
        w[i].set = in;
    }
    /* Last, and a release: a set may be in sight of other threads before
     * it is filled in (a compose relay's, which a cancel detaches as it
     * adopts), and those read it only once a pin says it is. */
    atomic_store_explicit(&in->pins, (unsigned)n + 1, memory_order_release);
}

/*
 * Puts every watch in its target's list. A target that has settled already
 * is told at once, through the queue as usual. Once the owner has settled
 * (when_any decided, or a cancel) the remaining watches end unlinked; one
 * linked just as the owner settled on another thread, after that thread's
 * detach passed it by, is unlinked again here.
 */
void fut__inputs_arm(struct fut__inputs *in)
{
    for (size_t i = 0; i < in->n; i++) {
        struct fut__watch *w = &in->w[i];
        if (fut__is_settled(in->owner)) {
            fut__observe(w->target); /* handed to a decided combinator */
            fut__inputs_unpin(in);
        } else if (!link_watch(w)) {
            /* Settled already; one that settles later is marked observed
             * as it settles (future.c). Only failures need the mark. */
            if (w->target->error)
                fut__observe(w->target);
            w->next = NULL;
            fut__deliver(w);
        } else if (fut__is_settled(in->owner) && unlink_watch(w)) {
            fut__observe(w->target);
            fut__inputs_unpin(in);
        }
    }
    fut__inputs_unpin(in);
}

/* Ends every watch whose target has not settled yet; the others end in
 * their notifications or in fut__inputs_arm(). Safe from any thread. */
void fut__inputs_detach(struct fut__inputs *in)
{
    if (!fut__inputs_pin(in))
        return; /* every watch has ended already */
    for (size_t i = 0; i < in->n; i++) {
        /* Handed to a combinator or continuation: observed, even if it
         * settles only after its watcher gave up (when_any decided). */
        if (unlink_watch(&in->w[i])) {
            fut__observe(in->w[i].target);
            fut__inputs_unpin(in);
        }
    }
    fut__inputs_unpin(in);
}

/*
 * Tells every watch in @list (a settled target's list, newest first) that
 * its target settled, oldest first.
 */
void fut__deliver(struct fut__watch *list)
{
    if (!list)
        return;
    struct fut__watch *first = NULL, *last = list;
    while (list) {
        struct fut__watch *next = list->next;
        list->next = first;
        first = list;
        list = next;
    }
    struct fut__thread *me = &fut__self;
    if (me->notify_tail)
        me->notify_tail->next = first;
    else
        me->notify_head = first;
    me->notify_tail = last;

    if (me->notifying)
        return;
    me->notifying = true;
    fut__pass_begin(); /* destructors wait until the pass is over */
    struct fut__watch *w;
    while ((w = me->notify_head) != NULL) {
        me->notify_head = w->next;
        if (!me->notify_head)
            me->notify_tail = NULL;
        struct fut__inputs *in = w->set;
        in->notify(in, (size_t)(w - in->w));
        fut__inputs_unpin(in);
    }
    me->notifying = false;
    fut__pass_end();
}
