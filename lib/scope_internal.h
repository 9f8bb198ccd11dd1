/*
 * scope_internal.h - what scope.c (the public API) and scope_task.c (a
 * scope's tasks, its lifetime and its cancelling) share. Only they
 * include it.
 */
#ifndef FUTURES_SCOPE_INTERNAL_H
#define FUTURES_SCOPE_INTERNAL_H

#include "pool_internal.h"

struct scoped_task {
    future_t base;
    scope_t *scope;
    struct scoped_task *prev, *next; /* the scope's handed-out tasks */
    struct scoped_task *victim;      /* a cancel's list (cancel_scope) */
    bool blocking;
    bool started;       /* counted in running */
    bool linked;        /* in the handed-out list */
    bool done;          /* settled: the scope has counted it */
    bool first_failure; /* the scope's first failure (task_failing) */
    /* scope_submit_ex(): the argument and its destructor, kept outside
     * the future's union (the outcome overwrites task.arg) and taken with
     * an atomic exchange wherever the task's fate is decided, as task.c
     * does for pool_submit_ex(). NULL for scope_submit(). */
    void *arg;
    _Atomic(void (*)(void *)) arg_free;
};

struct scope {
    pthread_mutex_t lock;
    pool_t *pool;
    scope_t *parent;                         /* a reference, or NULL */
    scope_t *children, *sib_prev, *sib_next; /* under the parent's lock */
    scope_t *victim;                         /* a cancel's list */
    atomic_size_t refs;
    size_t limit;            /* 0: none */
    size_t running;          /* handed to the pool, not settled */
    size_t pending;          /* accepted, not settled */
    struct fut__queue held;  /* waiting for the limit, in order */
    struct scoped_task *out; /* handed to the pool */
    int first_error;
    struct fut__why *first_why;
    bool cancelled;
    bool closing;    /* joined, or its future asked for */
    bool closed;     /* ... and every task settled: takes no more */
    promise_t *done; /* what scope_future() hands out */
};

static inline struct scoped_task *task_of(future_t *f)
{
    return fut__container_of(f, struct scoped_task, base);
}

static inline void scope_lock(scope_t *s)
{
    fut__mutex_lock(&s->lock);
}

static inline void scope_unlock(scope_t *s)
{
    fut__mutex_unlock(&s->lock);
}

extern const struct fut__ops fut__scoped_ops;

void fut__scope_ref(scope_t *s);
void fut__scope_unref(scope_t *s);
void fut__scope_cancel(scope_t *s);
void fut__scope_start_locked(scope_t *s, struct scoped_task *t);
void fut__scope_hand_out(scope_t *s, struct scoped_task *t);
void fut__scope_start_waiting(scope_t *s);
promise_t *fut__scope_close_if_idle_locked(scope_t *s, int *error,
                                           struct fut__why **why);
void fut__scope_settle_done(promise_t *done, int error, struct fut__why *why);

#endif /* FUTURES_SCOPE_INTERNAL_H */
