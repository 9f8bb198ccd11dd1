/*
 * then.c - continuations: future_then(), future_catch(), future_handle()
 * and their _ex forms; pool.c and loop.c make the _via and _on forms with
 * fut__continue().
 *
 * A continuation is a future with one watch on its predecessor. When the
 * predecessor settles, the notification decides: if the callback should run
 * (success for then, failure for catch, either for handle) the
 * continuation is queued on an executor; otherwise it settles at once with
 * the predecessor's outcome, without a trip through a queue. The callback
 * itself always runs on a pool thread, never inside the call that
 * registered or settled anything, so a chain of any length grows no stack:
 * each hop is a separate run.
 *
 * The executor is the one that ran the predecessor (its exec field), the
 * default pool for futures no pool ran, or the one the caller chose
 * (future_then_on, future_then_via). A chosen executor that refuses work
 * by the time the predecessor settles (a destroyed loop, a pool shut down)
 * fails the continuation with its reason instead of running it elsewhere.
 * A loop counts the continuations headed its way (f->tracked) so
 * loop_run() knows when nothing more can arrive.
 */
#include "internal.h"
#include "walk.h"

#include <errno.h>

struct continuation {
    future_t base;
    struct fut__callback cb;
    _Atomic(void (*)(void *)) arg_free; /* taken once: free_arg_once() */
    int in_error; /* the predecessor's outcome, copied when it settles */
    bool chosen;  /* runs only on its executor: fail if it refuses work */
    union {
        void *in_value;          /* after a success */
        struct fut__why *in_why; /* after a failure: its message, or NULL */
    };
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
    int error;
    if (c->cb.when == FUT_ON_SUCCESS)
        error = c->cb.then(c->in_value, c->cb.arg, result);
    else if (c->cb.when == FUT_ON_FAILURE)
        error = c->cb.catch_(c->in_error, c->cb.arg, result);
    else
        error = c->cb.handle(c->in_error, c->in_error ? NULL : c->in_value,
                             c->cb.arg, result);
    /* A catch or handle that returns the failure it was given, without a
     * message of its own, passes the predecessor's message on with it. */
    struct fut__frame *frame = fut__self.running;
    if (error && error == c->in_error && c->in_why && !frame->why)
        frame->why = fut__why_retain(c->in_why);
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
    if (of(f)->in_error)
        fut__why_release(of(f)->in_why);
}

static fut__fn callback_site(const future_t *f)
{
    return (fut__fn)of((future_t *)f)->cb.then; /* whichever it is */
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

#define CONTINUATION_OPS(name)                                          \
    {                                                                   \
        .kind = name, .run = run_continuation,                          \
        .detach = detach_continuation, .destroy = destroy_continuation, \
        .site = callback_site, .inputs = continuation_inputs,           \
        .decides = FUT_DECIDES_FIRST                                    \
    }
static const struct fut__ops ops_by_when[] = {
    [FUT_ON_SUCCESS] = CONTINUATION_OPS("then"),
    [FUT_ON_FAILURE] = CONTINUATION_OPS("catch"),
    [FUT_ON_EITHER] = CONTINUATION_OPS("handle")};

/* Does the callback run for this outcome of the predecessor? */
static bool runs_on(enum fut__when when, int error)
{
    return when == FUT_ON_EITHER || (error != 0) == (when == FUT_ON_FAILURE);
}

static void predecessor_settled(struct fut__inputs *in, size_t index)
{
    (void)index;
    struct continuation *c = of(in->owner);
    future_t *pred = c->watch.target;
    c->in_error = pred->error;
    if (pred->error)
        c->in_why = fut__why_retain(pred->has_why ? pred->why : NULL);
    else
        c->in_value = pred->value;
    /* A value that pred owns (future_set_result_free, set before it
     * settled, as the header asks) would go with pred: keep pred until the
     * callback has run, or as long as we pass the value on. */
    if (!pred->error && c->in_value && fut__value_needs_f(pred))
        c->source = future_retain(pred);
    struct fut__exec *exec = c->base.exec;
    int refused = (c->chosen || c->base.tracked) && exec->ops->refuses
                      ? exec->ops->refuses(exec)
                      : 0;
    if (!refused && runs_on(c->cb.when, pred->error)) {
        fut__enqueue(&c->base);
        return;
    }
    free_arg_once(&c->base); /* its callback will never run */
    if (refused) {
        fut__settle(&c->base, refused, NULL); /* its executor is gone */
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
future_t *fut__continue(future_t *f, struct fut__exec *exec,
                        const struct fut__callback *cb)
{
    struct continuation *c = NULL;
    if (!f || !cb->then) /* the callback, whichever member it is */
        errno = EINVAL;
    else
        c = (struct continuation *)fut__new(sizeof *c, &ops_by_when[cb->when],
                                            FUT_PENDING, 1);
    if (!c) {
        int error = errno;
        if (cb->arg_free)
            cb->arg_free(cb->arg);
        errno = error;
        return NULL;
    }
    c->cb = *cb;
    c->chosen = exec != NULL;
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
    return fut__continue(f, NULL,
                         &(struct fut__callback){.then = fn, .arg = arg});
}

future_t *future_catch(future_t *f, catch_fn fn, void *arg)
{
    return fut__continue(f, NULL,
                         &(struct fut__callback){
                             .when = FUT_ON_FAILURE, .catch_ = fn, .arg = arg});
}

future_t *future_handle(future_t *f, handle_fn fn, void *arg)
{
    return fut__continue(f, NULL,
                         &(struct fut__callback){
                             .when = FUT_ON_EITHER, .handle = fn, .arg = arg});
}

future_t *future_then_ex(future_t *f, then_fn fn, void *arg,
                         void (*arg_free)(void *))
{
    return fut__continue(
        f, NULL,
        &(struct fut__callback){.then = fn, .arg = arg, .arg_free = arg_free});
}

future_t *future_catch_ex(future_t *f, catch_fn fn, void *arg,
                          void (*arg_free)(void *))
{
    return fut__continue(f, NULL,
                         &(struct fut__callback){.when = FUT_ON_FAILURE,
                                                 .catch_ = fn,
                                                 .arg = arg,
                                                 .arg_free = arg_free});
}
