/*
 * then.c - continuations: future_then() and future_catch().
 *
 * A continuation is a future with one watch on its predecessor. When the
 * predecessor settles, the notification decides: if the callback should run
 * (success for then, failure for catch) the continuation is queued on an
 * executor; otherwise it settles at once with the predecessor's outcome,
 * without a trip through a queue. The callback itself always runs on a pool
 * thread, never inside the call that registered or settled anything, so a
 * chain of any length grows no stack: each hop is a separate run.
 *
 * The executor is the one that ran the predecessor (its exec field), the
 * default pool for futures no pool ran, or the loop given to
 * future_then_on(). A loop counts the continuations headed its way
 * (f->tracked) so loop_run() knows when nothing more can arrive.
 */
#include "internal.h"

#include <errno.h>

struct continuation {
    future_t base;
    bool catches; /* future_catch: run on failure, pass success through */
    union {
        then_fn then;
        catch_fn catch_;
    } fn;
    void *arg;
    int in_error; /* the predecessor's outcome, copied when it settles */
    void *in_value;
    struct fut__inputs in;
    struct fut__watch watch;
};

static struct continuation *of(future_t *f)
{
    return fut__container_of(f, struct continuation, base);
}

static int run_continuation(future_t *f, void **result)
{
    struct continuation *c = of(f);
    if (c->catches)
        return c->fn.catch_(c->in_error, c->arg, result);
    return c->fn.then(c->in_value, c->arg, result);
}

static void detach_continuation(future_t *f)
{
    fut__inputs_detach(&of(f)->in);
}

static const struct fut__ops then_ops = {
    .kind = "then", .run = run_continuation, .detach = detach_continuation};
static const struct fut__ops catch_ops = {
    .kind = "catch", .run = run_continuation, .detach = detach_continuation};

static void predecessor_settled(struct fut__inputs *in, size_t index)
{
    (void)index;
    struct continuation *c = of(in->owner);
    future_t *pred = c->watch.target;
    c->in_error = pred->error;
    c->in_value = pred->value;
    struct fut__exec *exec = c->base.exec;
    if (c->base.tracked && exec->ops->closed && exec->ops->closed(exec))
        fut__settle(&c->base, ECANCELED, NULL); /* its loop is gone */
    else if ((pred->error != 0) == c->catches)
        fut__enqueue(&c->base);
    else
        fut__settle(&c->base, pred->error, pred->value);
}

/*
 * Registers @then, or @catch_ when @catches, to run on @exec, or where @f
 * ran when @exec is NULL.
 */
static future_t *continue_with(future_t *f, struct fut__exec *exec,
                               bool catches, then_fn then, catch_fn catch_,
                               void *arg)
{
    if (!f || (catches ? !catch_ : !then)) {
        errno = EINVAL;
        return NULL;
    }
    struct continuation *c = (struct continuation *)fut__new(
        sizeof *c, catches ? &catch_ops : &then_ops, FUT_PENDING, 1);
    if (!c)
        return NULL;
    c->catches = catches;
    if (catches)
        c->fn.catch_ = catch_;
    else
        c->fn.then = then;
    c->arg = arg;
    fut__set_exec(&c->base, exec ? exec : f->exec);
    if (c->base.exec && c->base.exec->ops->pending_add) {
        c->base.exec->ops->pending_add(c->base.exec);
        c->base.tracked = true;
    }
    fut__inputs_init(&c->in, &c->base, &c->watch, &f, 1, predecessor_settled);
    fut__inputs_arm(&c->in);
    return &c->base;
}

future_t *future_then(future_t *f, then_fn fn, void *arg)
{
    return continue_with(f, NULL, false, fn, NULL, arg);
}

future_t *future_catch(future_t *f, catch_fn fn, void *arg)
{
    return continue_with(f, NULL, true, NULL, fn, arg);
}

future_t *future_then_on(future_t *f, loop_t *loop, then_fn fn, void *arg)
{
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    return continue_with(f, fut__loop_exec(loop), false, fn, NULL, arg);
}

future_t *future_catch_on(future_t *f, loop_t *loop, catch_fn fn, void *arg)
{
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    return continue_with(f, fut__loop_exec(loop), true, NULL, fn, arg);
}
