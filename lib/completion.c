/*
 * completion.c - completion queues: futures handed back in the order they
 * settle (asyncio.as_completed, Java's ExecutorCompletionService).
 *
 * Each added future gets a watcher: a small internal future whose one
 * watch is on it (watch.c). The settlement's notification appends the
 * watcher to the queue, so the queue's order is the order in which the
 * futures settled, and adding or taking one costs O(1) whatever the count.
 *
 * A thread that finds the queue empty waits on a bell: a promise that the
 * next append resolves. Waiting on a future, rather than on a condition
 * variable, gives completion_next() future_wait()'s guarantees inside a
 * task (a stand-in thread, or help with queued work). Every waiter shares
 * the bell; the one that finds the queue empty again rings a new one.
 *
 * Lifetime: the queue holds one reference of its owner's and one per
 * watcher not yet told. completion_release() drops the owner's and the
 * futures already queued; a watcher told afterwards drops its own, and the
 * last one frees the queue.
 */
#include "internal.h"

#include <errno.h>

struct watcher {
    future_t base;
    struct completion *c;
    future_t *target; /* a reference, handed to completion_next()'s caller */
    struct watcher *next;
    struct fut__inputs in;
    struct fut__watch watch;
};

struct completion {
    pthread_mutex_t lock;
    struct watcher *head, *tail; /* settled, not yet returned */
    size_t outstanding;          /* added, not yet returned */
    promise_t *bell;             /* what an empty queue's waiters wait on */
    size_t refs;                 /* the owner's, one per watcher not told */
    bool released;
};

static struct watcher *of(future_t *f)
{
    return fut__container_of(f, struct watcher, base);
}

static void destroy_watcher(future_t *f)
{
    future_release(of(f)->target); /* never handed out */
}

/* Never handed out, so never cancelled: no detach. */
static const struct fut__ops watcher_ops = {.kind = "completion",
                                            .destroy = destroy_watcher};

/* Drops a reference to @c, the lock held; frees it (and unlocks) at the
 * last. Returns whether @c is gone. */
static bool unref_locked(completion_t *c)
{
    if (--c->refs > 0)
        return false;
    fut__mutex_unlock(&c->lock);
    pthread_mutex_destroy(&c->lock);
    fut__mem_free(c);
    return true;
}

/* The watched future settled: queue its watcher, and ring the bell. */
static void target_settled(struct fut__inputs *in, size_t pos)
{
    (void)pos;
    struct watcher *w = of(in->owner);
    completion_t *c = w->c;
    fut__settle(&w->base, 0, NULL); /* the watcher's job is done */
    fut__mutex_lock(&c->lock);
    promise_t *bell = NULL;
    if (c->released) {
        future_release(&w->base); /* nobody will take it */
    } else {
        w->next = NULL;
        if (c->tail)
            c->tail->next = w;
        else
            c->head = w;
        c->tail = w;
        bell = c->bell;
        c->bell = NULL;
    }
    if (!unref_locked(c))
        fut__mutex_unlock(&c->lock);
    if (bell) {
        promise_resolve(bell, NULL);
        promise_release(bell);
    }
}

completion_t *completion_create(void)
{
    completion_t *c = fut__calloc(sizeof *c);
    if (!c)
        return NULL;
    if (fut__mutex_init(&c->lock)) {
        fut__mem_free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->refs = 1;
    return c;
}

int completion_add(completion_t *c, future_t *f)
{
    if (!c || !f)
        return EINVAL;
    struct watcher *w = (struct watcher *)fut__new(sizeof *w, &watcher_ops,
                                                   FUT_PENDING, 1);
    if (!w)
        return ENOMEM;
    w->c = c;
    w->target = future_retain(f);
    fut__mutex_lock(&c->lock);
    c->outstanding++;
    c->refs++;
    fut__mutex_unlock(&c->lock);
    fut__inputs_init(&w->in, &w->base, &w->watch, &f, 1, target_settled);
    fut__inputs_arm(&w->in);
    return 0;
}

/* Takes the oldest settled future, with its reference, the lock held. */
static future_t *pop_locked(completion_t *c)
{
    struct watcher *w = c->head;
    if (!w)
        return NULL;
    c->head = w->next;
    if (!c->head)
        c->tail = NULL;
    c->outstanding--;
    future_t *f = w->target;
    w->target = NULL;
    future_release(&w->base); /* settled, and nothing else refers to it */
    return f;
}

/* The bell an empty queue's waiter waits on, a new reference; NULL with
 * errno ENOMEM. The lock is held. */
static future_t *bell_locked(completion_t *c)
{
    if (!c->bell)
        c->bell = promise_create();
    return c->bell ? promise_future(c->bell) : NULL;
}

/* Waits for @bell until @deadline_ns (UINT64_MAX: for ever); 0 if it
 * rang, else ETIMEDOUT or why the wait could not be made. */
static int wait_bell(future_t *bell, uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX)
        return future_wait(bell, NULL);
    uint64_t now = fut__now_ns();
    if (now >= deadline_ns)
        return ETIMEDOUT;
    return future_wait_for(bell, deadline_ns - now) ? 0 : ETIMEDOUT;
}

future_t *completion_next(completion_t *c, uint64_t timeout_ns)
{
    if (!c) {
        errno = EINVAL;
        return NULL;
    }
    uint64_t deadline = UINT64_MAX;
    if (timeout_ns != UINT64_MAX && timeout_ns < UINT64_MAX - fut__now_ns())
        deadline = fut__now_ns() + timeout_ns;
    for (;;) {
        fut__mutex_lock(&c->lock);
        future_t *f = pop_locked(c);
        int error = f ? 0 : c->outstanding == 0 ? ENOENT
                        : timeout_ns == 0       ? ETIMEDOUT
                                                : 0;
        future_t *bell = f || error ? NULL : bell_locked(c);
        fut__mutex_unlock(&c->lock);
        if (f)
            return f;
        if (!error && !bell)
            error = ENOMEM;
        if (!error) {
            error = wait_bell(bell, deadline);
            future_release(bell);
        }
        if (error) {
            errno = error;
            return NULL;
        }
    }
}

void completion_release(completion_t *c)
{
    if (!c)
        return;
    fut__mutex_lock(&c->lock);
    c->released = true;
    struct watcher *queued = c->head;
    c->head = c->tail = NULL;
    promise_t *bell = c->bell;
    c->bell = NULL;
    if (!unref_locked(c))
        fut__mutex_unlock(&c->lock);
    while (queued) {
        struct watcher *next = queued->next;
        future_release(&queued->base); /* and the future it kept */
        queued = next;
    }
    if (bell) {
        promise_resolve(bell, NULL); /* nobody waits: no failure to report */
        promise_release(bell);
    }
}
