/*
 * scope_task.c - a scope's tasks: counting them as they settle, starting
 * those waiting for the limit, cancelling, and the scope's lifetime.
 * scope.c is the public API over it.
 *
 * A scope's task is a task with three more things: the scope it counts
 * against, a place in the scope's list of tasks handed to the pool (so a
 * cancel can reach them), and whether it was started or is waiting for
 * the limit. The scope learns that a task settled, however it did (it ran,
 * a cancel, a POOL_CANCEL), through its future's settled operation
 * (struct fut__ops), and does its accounting then: one fewer pending, one
 * fewer running, the first failure noted, a waiting task started.
 *
 * A task past the limit is QUEUED but in no pool queue: it waits in the
 * scope's FIFO (held), holding its queue reference and no thread, and is
 * handed to the pool (fut__submit) when a running one settles. A waiting
 * task that is cancelled stays in the FIFO, settled, until the FIFO gets
 * to it.
 *
 * Counts, lists and flags live under the scope's lock, a leaf: nothing
 * else is locked while it is held, and every cancel, submission and
 * settlement it leads to happens after it is dropped. A parent's lock and
 * a child's are never held together.
 *
 * References to a scope: its owner's (scope_release), one per task not yet
 * settled, one per child. The last one frees it.
 */
#include "scope_internal.h"

#include <errno.h>

/* ------------------------------------------------------------ lifetime -- */

static void unlink_child(scope_t *child)
{
    scope_t *p = child->parent;
    scope_lock(p);
    if (child->sib_prev)
        child->sib_prev->sib_next = child->sib_next;
    else
        p->children = child->sib_next;
    if (child->sib_next)
        child->sib_next->sib_prev = child->sib_prev;
    scope_unlock(p);
}

static void scope_free(scope_t *s)
{
    future_t *f;
    while ((f = fut__queue_pop(&s->held)) != NULL)
        future_release(f); /* settled ones the FIFO never got to */
    if (s->done)
        promise_release(s->done);
    fut__why_release(s->first_why);
    pthread_mutex_destroy(&s->lock);
    fut__pool_release(s->pool);
    scope_t *parent = s->parent;
    if (parent)
        unlink_child(s);
    fut__mem_free(s);
    if (parent)
        fut__scope_unref(parent);
}

void fut__scope_ref(scope_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Takes a reference unless none is left: then @s is being freed. */
static bool ref_unless_gone(scope_t *s)
{
    size_t refs = atomic_load(&s->refs);
    do {
        if (refs == 0)
            return false;
    } while (!atomic_compare_exchange_weak(&s->refs, &refs, refs + 1));
    return true;
}

void fut__scope_unref(scope_t *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        scope_free(s);
}

/* --------------------------------------------------------- cancelling -- */

/*
 * Cancels @s: the tasks waiting for the limit settle with ECANCELED,
 * those handed to the pool are cancelled (queued ones never run, running
 * ones see task_cancelled()), and so are its children.
 */
void fut__scope_cancel(scope_t *s)
{
    scope_lock(s);
    if (s->cancelled) {
        scope_unlock(s);
        return;
    }
    s->cancelled = true;
    struct fut__queue held = s->held;
    s->held = (struct fut__queue){0};
    struct scoped_task *victims = NULL;
    for (struct scoped_task *t = s->out; t; t = t->next) {
        future_retain(&t->base);
        t->victim = victims;
        victims = t;
    }
    scope_t *children = NULL;
    for (scope_t *c = s->children; c; c = c->sib_next) {
        if (!ref_unless_gone(c))
            continue; /* its last reference went: it has no tasks left */
        c->victim = children; /* under the parent's lock, as c's links */
        children = c;
    }
    scope_unlock(s);
    future_t *f;
    while ((f = fut__queue_pop(&held)) != NULL) {
        future_cancel(f);  /* settled already if cancelled before */
        future_release(f); /* the queue reference it waited with */
    }
    while (victims) {
        struct scoped_task *t = victims;
        victims = t->victim;
        future_cancel(&t->base);
        future_release(&t->base);
    }
    while (children) {
        scope_t *c = children;
        children = c->victim;
        fut__scope_cancel(c);
        fut__scope_unref(c);
    }
}

/* ------------------------------------------------------- starting tasks -- */

static void link_out_locked(scope_t *s, struct scoped_task *t)
{
    FUT_ASSERT_HELD(&s->lock);
    t->prev = NULL;
    t->next = s->out;
    if (s->out)
        s->out->prev = t;
    s->out = t;
    t->linked = true;
}

static void unlink_out_locked(scope_t *s, struct scoped_task *t)
{
    FUT_ASSERT_HELD(&s->lock);
    if (!t->linked)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        s->out = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->linked = false;
}

/* Counts @t as running and puts it in the list a cancel reaches, before
 * it is handed to the pool; the lock is held. */
void fut__scope_start_locked(scope_t *s, struct scoped_task *t)
{
    FUT_ASSERT_HELD(&s->lock);
    t->started = true;
    s->running++;
    link_out_locked(s, t);
}

/*
 * Hands @t, started, to the pool with its queue reference. A cancel may
 * have settled it already: the pool then drops it. Refused (the pool shut
 * down), it fails with ESHUTDOWN.
 */
void fut__scope_hand_out(scope_t *s, struct scoped_task *t)
{
    if (!fut__submit(s->pool, &t->base, t->blocking)) {
        fut__settle(&t->base, ESHUTDOWN, NULL);
        future_release(&t->base);
    }
}

/* Starts waiting tasks while the limit allows; the lock is not held. */
void fut__scope_start_waiting(scope_t *s)
{
    for (;;) {
        scope_lock(s);
        future_t *f = NULL;
        while (!s->cancelled && (!s->limit || s->running < s->limit) &&
               (f = fut__queue_pop(&s->held)) != NULL && task_of(f)->done) {
            scope_unlock(s);
            future_release(f); /* cancelled while it waited */
            scope_lock(s);
            f = NULL;
        }
        if (f)
            fut__scope_start_locked(s, task_of(f));
        scope_unlock(s);
        if (!f)
            return;
        fut__scope_hand_out(s, task_of(f));
    }
}

/* ------------------------------------------------------ settling tasks -- */

/* The result scope_join() gives, once nothing is pending; lock held. */
static int outcome_locked(scope_t *s)
{
    FUT_ASSERT_HELD(&s->lock);
    return s->first_error ? s->first_error : s->cancelled ? ECANCELED : 0;
}

/* If @s is closing and nothing is pending, closes it and returns the
 * promise to settle (the caller settles it, unlocked); lock held. */
promise_t *fut__scope_close_if_idle_locked(scope_t *s, int *error,
                                           struct fut__why **why)
{
    FUT_ASSERT_HELD(&s->lock);
    if (!s->closing || s->closed || s->pending)
        return NULL;
    s->closed = true;
    *error = outcome_locked(s);
    *why = s->first_error ? fut__why_retain(s->first_why) : NULL;
    return s->done;
}

void fut__scope_settle_done(promise_t *done, int error, struct fut__why *why)
{
    future_t *f = promise_future(done);
    if (error)
        fut__fail_why(f, error, why);
    else
        fut__settle(f, 0, NULL);
    future_release(f);
}

/*
 * A task of the scope is failing (fut__ops.failing): its outcome is
 * written, and nobody can see it settled yet. The first failure other
 * than ECANCELED is noted now, so that it is the first in the order the
 * tasks settled, as anyone watching their futures saw it.
 */
static void task_failing(future_t *f)
{
    struct scoped_task *t = task_of(f);
    scope_t *s = t->scope;
    fut__observe(f); /* the scope's to report (scope_join) */
    if (f->error == ECANCELED)
        return;
    scope_lock(s);
    if (!s->first_error) {
        s->first_error = f->error;
        s->first_why = fut__why_retain(f->has_why ? f->why : NULL);
        t->first_failure = true; /* it cancels the scope, once settled */
    }
    scope_unlock(s);
}

/* A task of the scope settled (fut__ops.settled): count it. */
static void task_settled(future_t *f)
{
    struct scoped_task *t = task_of(f);
    scope_t *s = t->scope;
    scope_lock(s);
    t->done = true;
    unlink_out_locked(s, t);
    if (t->started)
        s->running--;
    s->pending--;
    bool failed = t->first_failure;
    bool room = s->held.len && (!s->limit || s->running < s->limit);
    int error = 0;
    struct fut__why *why = NULL;
    promise_t *done = fut__scope_close_if_idle_locked(s, &error, &why);
    scope_unlock(s);
    if (failed)
        fut__scope_cancel(s);
    else if (room)
        fut__scope_start_waiting(s);
    if (done)
        fut__scope_settle_done(done, error, why);
    fut__scope_unref(s); /* the task's */
}

/*
 * Frees a scope_submit_ex() task's argument, once: after it ran, when it
 * is cancelled before it could run (detach: future_cancel(), the scope's
 * cancel, POOL_CANCEL), or when its future goes without its having run
 * (destroy: a refused submission, a task the pool refused on the way).
 */
static void free_scoped_arg_once(future_t *f)
{
    struct scoped_task *t = task_of(f);
    void (*arg_free)(void *) = atomic_exchange(&t->arg_free, NULL);
    if (arg_free)
        fut__run_user(arg_free, t->arg);
}

static int run_scoped(future_t *f, void **result)
{
    int error = f->task.fn(f->task.arg, result);
    free_scoped_arg_once(f);
    return error;
}

static fut__fn scoped_site(const future_t *f)
{
    return (fut__fn)f->task.fn;
}

const struct fut__ops fut__scoped_ops = {.kind = "task",
                                         .is_task = true,
                                         .run = run_scoped,
                                         .detach = free_scoped_arg_once,
                                         .destroy = free_scoped_arg_once,
                                         .site = scoped_site,
                                         .failing = task_failing,
                                         .settled = task_settled};
