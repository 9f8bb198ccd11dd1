/*
 * watch.c - how a future learns that its inputs settled.
 *
 * The protocol (pins, and who ends a watch) is described in internal.h. This
 * file also owns the per-thread notification queue: fut__deliver() appends
 * a settled future's watchers to it, and only the outermost call on a thread
 * drains it. A notification that settles another future therefore queues
 * that future's watchers instead of recursing into them, so a chain of any
 * length is told in constant stack.
 *
 * It also answers, for a loop's thread about to wait, whether a future can
 * settle only once that loop runs more of its queue (fut__needs_exec): the
 * future's own executor is the loop, or its inputs need the loop the way
 * its ops say they decide (every one, any one, the first). The walk reads
 * a set's targets only with a pin, taken as fut__inputs_detach() takes it,
 * so inputs that settle and go meanwhile stay valid until it is dropped.
 * It looks at a bounded number of futures and recurses no deeper, so a
 * wait on a chain of any length costs a bounded stack; past the bound it
 * answers no, and the wait blocks as if the walk had never run.
 */
#include "internal.h"

#include <errno.h>

struct notify_queue {
    struct fut__watch *head, *tail;
    bool draining;
};

static _Thread_local struct notify_queue queue;

/* Links @w into its target's list, or returns false if the target has
 * settled already. */
static bool link_watch(struct fut__watch *w)
{
    future_t *t = w->target;
    struct fut__stripe *s = fut__lock(t);
    bool settled = fut__state(t) == FUT_SETTLED;
    if (!settled) {
        w->prev = NULL;
        w->next = t->watchers;
        if (t->watchers)
            t->watchers->prev = w;
        t->watchers = w;
        w->linked = true;
    }
    fut__unlock(s);
    return !settled;
}

/* Unlinks @w if it is still in its unsettled target's list. */
static bool unlink_watch(struct fut__watch *w)
{
    future_t *t = w->target;
    struct fut__stripe *s = fut__lock(t);
    bool unlinked = w->linked && fut__state(t) != FUT_SETTLED;
    if (unlinked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            t->watchers = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->linked = false;
    }
    fut__unlock(s);
    return unlinked;
}

/* Takes a pin unless none is left: then every watch has ended, and the
 * set may have let go of its targets already. */
static bool pin(struct fut__inputs *in)
{
    unsigned pins = atomic_load(&in->pins);
    do {
        if (pins == 0)
            return false;
    } while (!atomic_compare_exchange_weak(&in->pins, &pins, pins + 1));
    return true;
}

static void unpin(struct fut__inputs *in)
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
    atomic_init(&in->pins, (unsigned)n + 1);
    for (size_t i = 0; i < n; i++) {
        future_retain(w[i].target);
        w[i].set = in;
        w[i].linked = false;
    }
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
            unpin(in);
        } else if (!link_watch(w)) {
            /* Settled already; one that settles later is marked observed
             * as it settles (future.c). Only failures need the mark. */
            if (w->target->error)
                fut__observe(w->target);
            w->next = NULL;
            fut__deliver(w);
        } else if (fut__is_settled(in->owner) && unlink_watch(w)) {
            fut__observe(w->target);
            unpin(in);
        }
    }
    unpin(in);
}

/* Ends every watch whose target has not settled yet; the others end in
 * their notifications or in fut__inputs_arm(). Safe from any thread. */
void fut__inputs_detach(struct fut__inputs *in)
{
    if (!pin(in))
        return; /* every watch has ended already */
    for (size_t i = 0; i < in->n; i++) {
        /* Handed to a combinator or continuation: observed, even if it
         * settles only after its watcher gave up (when_any decided). */
        if (unlink_watch(&in->w[i])) {
            fut__observe(in->w[i].target);
            unpin(in);
        }
    }
    unpin(in);
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
    if (queue.tail)
        queue.tail->next = first;
    else
        queue.head = first;
    queue.tail = last;

    if (queue.draining)
        return;
    queue.draining = true;
    fut__pass_begin(); /* destructors wait until the pass is over */
    struct fut__watch *w;
    while ((w = queue.head) != NULL) {
        queue.head = w->next;
        if (!queue.head)
            queue.tail = NULL;
        struct fut__inputs *in = w->set;
        in->notify(in, (size_t)(w - in->w));
        unpin(in);
    }
    queue.draining = false;
    fut__pass_end();
}

/* ------------------------------------------------ what a future needs -- */

/* The walk's answer for one future: it can settle without the executor
 * (FREE), only once the executor runs (NEEDS), or the budget ran out. */
enum need { FREE, NEEDS, UNKNOWN };

/* Futures the walk looks at, at most; also the deepest it recurses. */
#define NEED_BUDGET 1000

struct walk {
    const struct fut__exec *exec;
    unsigned budget;
};

static enum need needs(future_t *f, struct walk *wk);

/* What the targets of @in, pinned, say about its owner, decided @how. A
 * when_all needs the executor as soon as one input does, a when_any only
 * if every input does. */
static enum need inputs_need(struct fut__inputs *in, enum fut__decides how,
                             struct walk *wk)
{
    if (in->n == 0)
        return FREE;
    if (how == FUT_DECIDES_FIRST)
        return needs(in->w[0].target, wk);
    enum need decisive = how == FUT_DECIDES_EVERY ? NEEDS : FREE;
    for (size_t i = 0; i < in->n; i++) {
        enum need v = needs(in->w[i].target, wk);
        if (v == decisive || v == UNKNOWN)
            return v;
    }
    return decisive == NEEDS ? FREE : NEEDS;
}

static enum need needs(future_t *f, struct walk *wk)
{
    if (wk->budget == 0)
        return UNKNOWN;
    wk->budget--;
    if (fut__is_settled(f))
        return FREE;
    if (f->exec == wk->exec)
        return NEEDS;
    if (!f->ops->inputs)
        return FREE; /* a task elsewhere, a promise, a delay */
    struct fut__inputs *in = f->ops->inputs(f);
    if (!pin(in))
        return FREE; /* its inputs have all settled */
    enum need v = inputs_need(in, f->ops->decides, wk);
    unpin(in);
    return v;
}

/*
 * Can @f, unsettled, settle only once @exec runs more of its queue? Only a
 * definite yes counts: a walk that ran out of budget says no, and so does
 * one that finds @f settled meanwhile (a loop task cancelled from another
 * thread settles what waited for it).
 */
bool fut__needs_exec(future_t *f, const struct fut__exec *exec)
{
    struct walk wk = {exec, NEED_BUDGET};
    return needs(f, &wk) == NEEDS && !fut__is_settled(f);
}
