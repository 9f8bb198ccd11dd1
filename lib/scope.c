/*
 * scope.c - scopes: tasks that belong together (scope_create and the rest),
 * over scope_task.c, which counts the tasks and cancels them.
 */
#include "scope_internal.h"

#include <errno.h>

/* ------------------------------------------------------- the public API -- */

/* The scope of the task running on this thread, if it is a scope's. */
static scope_t *enclosing_scope(void)
{
    const struct fut__frame *fr = fut__self.running;
    return fr && fr->f->ops == &fut__scoped_ops ? task_of(fr->f)->scope : NULL;
}

scope_t *scope_create(pool_t *pool)
{
    if (!pool && !(pool = pool_default()))
        return NULL;
    scope_t *s = fut__calloc(sizeof *s);
    if (!s)
        return NULL;
    if (fut__mutex_init(&s->lock)) {
        fut__mem_free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->pool = pool;
    fut__pool_retain(pool);
    atomic_init(&s->refs, 1);
    scope_t *parent = enclosing_scope();
    if (parent) {
        fut__scope_ref(parent);
        scope_lock(parent);
        s->parent = parent;
        s->sib_next = parent->children;
        if (parent->children)
            parent->children->sib_prev = s;
        parent->children = s;
        s->cancelled = parent->cancelled; /* born into a cancelled one */
        scope_unlock(parent);
    }
    return s;
}

/* Frees @arg of a submission refused before any task held it; keeps
 * errno, which says why. */
static void refuse_arg(void *arg, void (*arg_free)(void *))
{
    if (arg_free) {
        int error = errno;
        arg_free(arg); /* not accepted: the argument is done with */
        errno = error;
    }
}

/*
 * Once the task exists, its argument goes with it: every path from there
 * (run, cancel, refusal, fut__free) ends in its destructor (scope_task.c).
 */
static future_t *submit(scope_t *s, task_fn fn, void *arg,
                        void (*arg_free)(void *), bool blocking)
{
    if (!s || !fn) {
        errno = EINVAL;
        refuse_arg(arg, arg_free);
        return NULL;
    }
    if (fut__pool_state(s->pool) != FUT_POOL_OPEN ||
        fut__pool_is_stale(s->pool)) {
        /* Refused as pool_submit() would be; a pool that stops taking
         * work while a task is on its way fails that task instead. */
        errno = fut__pool_is_stale(s->pool) ? ECHILD : ESHUTDOWN;
        refuse_arg(arg, arg_free);
        return NULL;
    }
    struct scoped_task *t =
        (struct scoped_task *)fut__new(sizeof *t, &fut__scoped_ops, FUT_QUEUED,
                                       2); /* the caller's, the queue's */
    if (!t) {
        refuse_arg(arg, arg_free);
        return NULL;
    }
    t->base.task.fn = fn;
    t->base.task.arg = t->arg = arg;
    atomic_init(&t->arg_free, arg_free);
    t->scope = s;
    t->blocking = blocking;
    fut__set_exec(&t->base, &s->pool->exec);
    scope_lock(s);
    int refused = s->closed ? ESHUTDOWN : s->cancelled ? ECANCELED : 0;
    /* Behind any task already waiting, so that tasks start in the order
     * they came even while a settle is about to start the oldest. */
    bool waits =
        !refused && s->limit && (s->running >= s->limit || s->held.len > 0);
    bool kick = waits && s->running < s->limit;
    if (!refused) {
        s->pending++;
        fut__scope_ref(s);
        if (waits)
            fut__queue_push(&s->held, &t->base);
        else
            fut__scope_start_locked(s, t);
    }
    scope_unlock(s);
    if (refused) {
        fut__free(&t->base); /* never seen by anyone */
        if (refused == ECANCELED)
            return future_failed(ECANCELED);
        errno = refused;
        return NULL;
    }
    if (!waits)
        fut__scope_hand_out(s, t);
    else if (kick)
        fut__scope_start_waiting(s);
    return &t->base;
}

future_t *scope_submit(scope_t *s, task_fn fn, void *arg)
{
    return submit(s, fn, arg, NULL, false);
}

future_t *scope_submit_blocking(scope_t *s, task_fn fn, void *arg)
{
    return submit(s, fn, arg, NULL, true);
}

future_t *scope_submit_ex(scope_t *s, task_fn fn, void *arg,
                          void (*arg_free)(void *))
{
    return submit(s, fn, arg, arg_free, false);
}

future_t *scope_submit_blocking_ex(scope_t *s, task_fn fn, void *arg,
                                   void (*arg_free)(void *))
{
    return submit(s, fn, arg, arg_free, true);
}

int scope_set_limit(scope_t *s, size_t max_running)
{
    if (!s)
        return EINVAL;
    scope_lock(s);
    s->limit = max_running;
    scope_unlock(s);
    fut__scope_start_waiting(s);
    return 0;
}

future_t *scope_future(scope_t *s)
{
    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    scope_lock(s);
    if (!s->done && !(s->done = promise_create())) {
        scope_unlock(s);
        return NULL;
    }
    s->closing = true;
    future_t *f = promise_future(s->done);
    int error = 0;
    struct fut__why *why = NULL;
    promise_t *done = fut__scope_close_if_idle_locked(s, &error, &why);
    scope_unlock(s);
    if (done)
        fut__scope_settle_done(done, error, why);
    return f;
}

int scope_join(scope_t *s)
{
    if (!s)
        return EINVAL;
    future_t *f = scope_future(s);
    if (!f)
        return errno;
    int error = future_wait(f, NULL);
    future_release(f);
    return error;
}

void scope_cancel(scope_t *s)
{
    if (s)
        fut__scope_cancel(s);
}

bool scope_cancelled(const scope_t *s)
{
    if (!s)
        return false;
    scope_t *m = (scope_t *)s;
    scope_lock(m);
    bool cancelled = m->cancelled;
    scope_unlock(m);
    return cancelled;
}

void scope_release(scope_t *s)
{
    if (!s)
        return;
    scope_lock(s);
    bool joined = s->closing;
    scope_unlock(s);
    if (!joined)
        fut__scope_cancel(s);
    fut__scope_unref(s);
}
