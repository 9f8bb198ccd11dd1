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

/* What a caller asks to run: its then or catch callback and argument. */
struct callback {
    bool catches; /* future_catch: run on failure, pass success through */
    then_fn then;
    catch_fn catch_;
    void *arg;
    void (*arg_free)(void *); /* future_then_ex / future_catch_ex, or NULL */
};

struct continuation {
    future_t base;
    struct callback cb;
    _Atomic(void (*)(void *)) arg_free; /* taken once: free_arg_once() */
    int in_error; /* the predecessor's outcome, copied when it settles */
    void *in_value;
    future_t *source; /* the predecessor, kept while its value is in use */
    struct fut__inputs in;
    struct fut__watch watch;
};

static struct continuation *of(future_t *f)
{
    return fut__container_of(f, struct continuation, base);
}

/*
 * The argument's destructor runs once, wherever the continuation's fate
 * is decided: after its callback ran, when it settles without running
 * (predecessor_settled), when it is cancelled (detach), or when it goes
 * without either (destroy).
 */
static void free_arg_once(future_t *f)
{
    struct continuation *c = of(f);
    void (*arg_free)(void *) = atomic_exchange(&c->arg_free, NULL);
    if (arg_free)
        fut__run_user(arg_free, c->cb.arg);
}

/* Lets go of the predecessor once its value is no longer needed. */
static void drop_source(struct continuation *c)
{
    future_release(c->source);
    c->source = NULL;
}

static int run_continuation(future_t *f, void **result)
{
    struct continuation *c = of(f);
    int error = c->cb.catches ? c->cb.catch_(c->in_error, c->cb.arg, result)
                              : c->cb.then(c->in_value, c->cb.arg, result);
    free_arg_once(f);
    if (c->source && !error && *result == c->in_value)
        atomic_fetch_or(&f->flags, FUT_KEEPS_SOURCE); /* passed it on */
    else
        drop_source(c);
    return error;
}

static void destroy_continuation(future_t *f)
{
    free_arg_once(f);
    drop_source(of(f));
}

static fut__fn callback_site(const future_t *f)
{
    const struct continuation *c = of((future_t *)f);
    return c->cb.catches ? (fut__fn)c->cb.catch_ : (fut__fn)c->cb.then;
}

static void detach_continuation(future_t *f)
{
    fut__inputs_detach(&of(f)->in);
    free_arg_once(f);
}

/* What a continuation waits for: its one predecessor (fut__needs_exec). */
static struct fut__inputs *continuation_inputs(future_t *f)
{
    return &of(f)->in;
}

static const struct fut__ops then_ops = {.kind = "then",
                                         .run = run_continuation,
                                         .detach = detach_continuation,
                                         .destroy = destroy_continuation,
                                         .site = callback_site,
                                         .inputs = continuation_inputs,
                                         .decides = FUT_DECIDES_FIRST};
static const struct fut__ops catch_ops = {.kind = "catch",
                                          .run = run_continuation,
                                          .detach = detach_continuation,
                                          .destroy = destroy_continuation,
                                          .site = callback_site,
                                          .inputs = continuation_inputs,
                                          .decides = FUT_DECIDES_FIRST};

static void predecessor_settled(struct fut__inputs *in, size_t index)
{
    (void)index;
    struct continuation *c = of(in->owner);
    future_t *pred = c->watch.target;
    c->in_error = pred->error;
    c->in_value = pred->error ? NULL : pred->value;
    /* A value that pred owns (future_set_result_free, set before it
     * settled, as the header asks) would go with pred: keep pred until the
     * callback has run, or as long as we pass the value on. */
    if (c->in_value && fut__value_needs_f(pred))
        c->source = future_retain(pred);
    struct fut__exec *exec = c->base.exec;
    bool closed =
        c->base.tracked && exec->ops->closed && exec->ops->closed(exec);
    if (!closed && (pred->error != 0) == c->cb.catches) {
        fut__enqueue(&c->base);
        return;
    }
    free_arg_once(&c->base); /* its callback will never run */
    if (closed) {
        fut__settle(&c->base, ECANCELED, NULL); /* its loop is gone */
        return;
    }
    if (c->source) /* before settling: our continuations must keep us */
        atomic_fetch_or(&c->base.flags, FUT_KEEPS_SOURCE);
    fut__pass_on(&c->base, pred);
}

/*
 * Registers @cb to run on @exec, or where @f ran when @exec is NULL. If it
 * cannot, the argument's destructor (if any) runs before NULL is returned.
 */
static future_t *continue_with(future_t *f, struct fut__exec *exec,
                               const struct callback *cb)
{
    struct continuation *c = NULL;
    if (!f || (cb->catches ? !cb->catch_ : !cb->then))
        errno = EINVAL;
    else
        c = (struct continuation *)fut__new(
            sizeof *c, cb->catches ? &catch_ops : &then_ops, FUT_PENDING, 1);
    if (!c) {
        int error = errno;
        if (cb->arg_free)
            cb->arg_free(cb->arg);
        errno = error;
        return NULL;
    }
    c->cb = *cb;
    atomic_init(&c->arg_free, cb->arg_free);
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
    return continue_with(f, NULL, &(struct callback){.then = fn, .arg = arg});
}

future_t *future_catch(future_t *f, catch_fn fn, void *arg)
{
    return continue_with(
        f, NULL, &(struct callback){.catches = true, .catch_ = fn, .arg = arg});
}

future_t *future_then_ex(future_t *f, then_fn fn, void *arg,
                         void (*arg_free)(void *))
{
    return continue_with(
        f, NULL,
        &(struct callback){.then = fn, .arg = arg, .arg_free = arg_free});
}

future_t *future_catch_ex(future_t *f, catch_fn fn, void *arg,
                          void (*arg_free)(void *))
{
    return continue_with(
        f, NULL,
        &(struct callback){
            .catches = true, .catch_ = fn, .arg = arg, .arg_free = arg_free});
}

future_t *future_then_on(future_t *f, loop_t *loop, then_fn fn, void *arg)
{
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    return continue_with(f, fut__loop_exec(loop),
                         &(struct callback){.then = fn, .arg = arg});
}

future_t *future_catch_on(future_t *f, loop_t *loop, catch_fn fn, void *arg)
{
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    return continue_with(
        f, fut__loop_exec(loop),
        &(struct callback){.catches = true, .catch_ = fn, .arg = arg});
}
