/*
 * future.c - the future as an object: making one, references, freeing.
 *
 * Every future, whatever made it, is a struct future at the start of its
 * allocation; what differs (a task's function, a continuation's callback, a
 * combinator's inputs) follows it and is reached through f->ops. How its
 * state changes is settle.c's; how a thread waits for it, wait.c's.
 *
 * References: the caller's handle, a queued future's run-queue entry, and
 * each armed set of watches on it (watch.c) each own one. The count never
 * reaches zero on an unsettled future that anyone can still reach.
 */
#include "internal.h"

#include <errno.h>

/* Tests: counting is always on now (thread.c); kept for their helpers. */
void fut__count_live(bool on)
{
    (void)on;
}

long fut__live_futures(void)
{
    return (long)futures_live_count();
}

future_t *fut__new(size_t size, const struct fut__ops *ops, int state,
                   unsigned refs)
{
    unsigned cls;
    future_t *f = fut__future_calloc(size, &cls);
    if (!f)
        return NULL;
    fut__count_future(1);
    f->ops = ops;
    atomic_init(&f->refs, refs);
    atomic_init(&f->state, state);
    atomic_init(&f->flags, (unsigned char)(cls << FUT_SLAB_SHIFT));
    if (state == FUT_SETTLED) /* born settled: nothing will close them */
        atomic_init(&f->deps, FUT_DEPS_CLOSED);
    return f;
}

/* Frees a future nobody refers to, or one that was never handed out. */
void fut__free(future_t *f)
{
    /* Where its memory came from (slab.c), recorded by fut__new(). */
    unsigned cls =
        atomic_load_explicit(&f->flags, memory_order_relaxed) >> FUT_SLAB_SHIFT;
    if (fut__owns_value(f)) {
        /* A value passed on from a source is the source's to free. */
        bool passed_on = atomic_load(&f->flags) & FUT_KEEPS_SOURCE;
        fut__value_free_fn result_free = fut__result_free_of(f, true);
        if (result_free && !passed_on && fut__is_settled(f) && f->error == 0 &&
            f->value)
            fut__run_user(result_free, f->value); /* nobody reads it now */
    }
    if (fut__is_settled(f) && f->error && f->has_why)
        fut__why_release(f->why);
    if (f->ops->destroy)
        f->ops->destroy(f);
    if (f->exec)
        f->exec->ops->release(f->exec);
    fut__count_future(-1);
    fut__slab_free(f, cls);
}

void fut__set_exec(future_t *f, struct fut__exec *exec)
{
    if (exec)
        exec->ops->retain(exec);
    f->exec = exec;
}

future_t *future_retain(future_t *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

/* What goes when the last reference to @f goes. */
static void last_reference_gone(future_t *f)
{
    if (FUT_DEBUG && !fut__is_settled(f))
        fut__panic("last reference to an unsettled future released");
    if (fut__is_settled(f) && f->error)
        fut__report_unobserved(f); /* unless someone looked */
    fut__free(f);
}

/*
 * Freeing a future may drop the last reference to another (a continuation
 * its source, a timeout its input and its delay), and that one to a third:
 * a chain of a million pass-through links would free itself a million
 * frames deep. So while a thread frees, a future whose last reference it
 * drops waits in fut__self.freeing, linked through its next field (no run queue
 * holds a future nobody refers to), and the outermost release frees them
 * one after another, in constant stack.
 */
void future_release(future_t *f)
{
    if (!f)
        return;
    unsigned old = atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel);
    if (old == 0)
        fut__panic("future released more than retained");
    if (old != 1)
        return;
    struct fut__thread *me = &fut__self;
    if (me->freeing_active) {
        f->next = me->freeing;
        me->freeing = f;
        return;
    }
    me->freeing_active = true;
    while (f) {
        last_reference_gone(f);
        f = me->freeing;
        if (f)
            me->freeing = f->next;
    }
    me->freeing_active = false;
}

/* Marks @f's outcome as seen, so its failure is nobody's surprise. */
void fut__observe(future_t *f)
{
    if (!(atomic_load_explicit(&f->flags, memory_order_relaxed) & FUT_OBSERVED))
        atomic_fetch_or_explicit(&f->flags, FUT_OBSERVED, memory_order_relaxed);
}

/* @value was offered to @f after it settled: nobody will ever read it. */
void fut__discard(future_t *f, void *value)
{
    fut__value_free_fn result_free = fut__result_free_of(f, false);
    if (result_free && value)
        fut__run_user(result_free, value);
}

/* --------------------------------------------- already-settled futures -- */

static const struct fut__ops settled_ops = {.kind = "settled"};

static future_t *settled_future(int error, void *value)
{
    future_t *f = fut__new(sizeof *f, &settled_ops, FUT_SETTLED, 1);
    if (f) {
        f->error = error;
        f->value = value;
    }
    return f;
}

future_t *future_resolved(void *value)
{
    return settled_future(0, value);
}

future_t *future_failed(int error)
{
    if (error <= 0) {
        errno = EINVAL;
        return NULL;
    }
    return settled_future(error, NULL);
}
