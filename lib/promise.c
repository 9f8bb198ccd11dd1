/*
 * promise.c - futures settled by hand.
 *
 * A promise is its future's allocation seen from the writing side: the
 * promise handle owns one of the future's references, promise_future()
 * hands out more, and promise_release() drops the promise's own after
 * breaking the promise if it was never kept. The first settlement wins,
 * whether it comes from promise_resolve(), promise_reject(), future_cancel()
 * or the release.
 */
#include "internal.h"

#include <errno.h>

struct promise {
    future_t future;
};

static const struct fut__ops promise_ops = {.kind = "promise"};

/*
 * A cancellable promise: future_cancel() leaves it PENDING and calls
 * cancel_requested() (settle.c), which tells the holder on the default
 * pool, never inside future_cancel(). The task holds a reference to the
 * promise's future, so @p stays valid while the holder is told.
 */
struct cancellable {
    struct promise base;
    promise_cancel_fn on_cancel;
    void *arg;
};

static int tell_holder(void *arg, void **result)
{
    (void)result;
    struct cancellable *c = arg;
    if (!fut__is_settled(&c->base.future))
        c->on_cancel(&c->base, c->arg);
    future_release(&c->base.future);
    return 0;
}

static void cancel_requested(future_t *f)
{
    struct cancellable *c = (struct cancellable *)f;
    future_retain(f); /* the task's, released by tell_holder() */
    future_t *task = fut__task_new(tell_holder, c, NULL);
    if (!task) { /* never lost: tell the holder here (header) */
        void *unused;
        tell_holder(c, &unused);
        return;
    }
    fut__schedule(task); /* takes the run queue's reference */
    future_release(task);
}

static const struct fut__ops cancellable_ops = {.kind = "promise",
                                                .cancel = cancel_requested};

promise_t *promise_create(void)
{
    return (promise_t *)fut__new(sizeof(struct promise), &promise_ops,
                                 FUT_PENDING, 1);
}

promise_t *promise_create_cancellable(promise_cancel_fn on_cancel, void *arg)
{
    if (!on_cancel) {
        errno = EINVAL;
        return NULL;
    }
    struct cancellable *c = (struct cancellable *)fut__new(
        sizeof *c, &cancellable_ops, FUT_PENDING, 1);
    if (!c)
        return NULL;
    c->on_cancel = on_cancel;
    c->arg = arg;
    return &c->base;
}

future_t *promise_future(promise_t *p)
{
    if (!p) {
        errno = EINVAL;
        return NULL;
    }
    atomic_fetch_or(&p->future.flags, FUT_HANDED_OUT);
    return future_retain(&p->future);
}

int promise_resolve(promise_t *p, void *value)
{
    if (!p)
        return EINVAL;
    if (fut__settle(&p->future, 0, value))
        return 0;
    fut__discard(&p->future, value);
    return EALREADY;
}

int promise_reject(promise_t *p, int error)
{
    if (!p || error <= 0)
        return EINVAL;
    return fut__settle(&p->future, error, NULL) ? 0 : EALREADY;
}

int promise_reject_message(promise_t *p, int error, const char *fmt, ...)
{
    if (!p || error <= 0)
        return EINVAL;
    va_list ap;
    va_start(ap, fmt);
    struct fut__why *why = fut__why_format(fmt, ap);
    va_end(ap);
    return fut__fail_why(&p->future, error, why) ? 0 : EALREADY;
}

void promise_release(promise_t *p)
{
    if (!p)
        return;
    /* Its future never handed out: nobody could ever have seen how it
     * ended, so that is no failure to report (unobserved.c). */
    if (!(atomic_load(&p->future.flags) & FUT_HANDED_OUT))
        fut__observe(&p->future);
    fut__settle(&p->future, EPIPE, NULL);
    future_release(&p->future);
}
