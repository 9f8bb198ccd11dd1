/*
 * internal.h - what libfutures' source files share. Never installed.
 *
 * The library is built in layers. A file calls only files of its own
 * layer or below; a lower layer reaches a higher one only through a
 * function pointer (struct fut__exec_ops, struct fut__ops, a watch's
 * notify, the default executor and offload that the pool registers); no
 * two objects depend on each other by symbol (make layers checks it).
 * docs/internals.md walks a task and a continuation through them.
 *
 *  L4 fork.c        what a child of fork() keeps; calls each layer's hook
 *  L3 executors     pool.c (the public face, the default pool) and
 *                   pool_exec.c (the executor operations) over the
 *                   pool's private files (pool_internal.h): runq.c,
 *                   worker.c, idle.c, threads.c, jobs.c, ring.c;
 *                   scope.c, tasks that belong together, on a pool;
 *                   loop.c, a single-threaded executor
 *  L2 future kinds  task.c, then.c, compose.c, combinators.c,
 *                   completion.c, promise.c, timer.c
 *  L1 the core      settle.c (the state machine, dispatch to executors),
 *                   wait.c (waiting), watch.c (dependents, notification),
 *                   future.c (the object: references, freeing),
 *                   message.c (a failure's message)
 *  L0 base          declared in base.h: thread.c (fut__self, the
 *                   thread's context), thread_report.c, sync.c (checked
 *                   locks, clocks, the fork gate), stripe.c,
 *                   alloc.c (allocation and thread starts, fault
 *                   injection), slab.c, owned.c (result destructors),
 *                   defer.c (where users' destructors run), trace.c,
 *                   unobserved.c
 *
 * A future's life, written out (its state field):
 *
 *   PENDING --(inputs settle)--> QUEUED --(a worker takes it)--> RUNNING
 *      |                           |                               |
 *      +--(claimed)--> SETTLING <--+                               |
 *                         |                                        |
 *                         +----------------------------------------+--> SETTLED
 *
 * Tasks start QUEUED; continuations and combinators start PENDING; promises
 * stay PENDING until settled by hand. Cancellation settles PENDING and QUEUED
 * futures at once; a RUNNING one only gets FUT_CANCEL_REQUESTED.
 * SETTLED is final, and error == 0 means success.
 *
 * Every step is a compare-and-swap or an exchange, with no lock on the
 * way: a continuation readied, a task started, a future settled. A future
 * that no worker runs (PENDING or QUEUED) is settled by the thread that
 * claims it with a compare-and-swap to SETTLING, a short-lived state in
 * which no worker can start it and no other settler can win; a RUNNING one
 * only by the thread that runs it (settle.c, claim). Its dependents are a
 * list in one word, closed by the settler with one compare-and-swap
 * (watch.c): that close commits the outcome, and the future counts as
 * settled from then on (fut__is_settled). Only a thread that blocks in a
 * wait takes a lock, its future's stripe.
 */
#ifndef FUTURES_INTERNAL_H
#define FUTURES_INTERNAL_H

#include "futures.h"
#include "base.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef FUT_DEBUG
#define FUT_DEBUG 0
#endif

#define fut__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

enum fut__state {
    FUT_PENDING,
    FUT_QUEUED,
    FUT_RUNNING,
    FUT_SETTLING, /* claimed by a settler that is writing its outcome */
    FUT_SETTLED
};

/* ----------------------------------------------------------- executors -- */

/* How a thread that is about to block in future_wait() should wait. */
enum fut__block {
    FUT_BLOCK_PLAIN,       /* not a pool thread: just wait */
    FUT_BLOCK_COMPENSATED, /* a core thread with a stand-in */
    FUT_BLOCK_HELP,        /* a core thread without one: run queued work */
    FUT_BLOCK_JOB,         /* a blocking job, not counted while it waits */
    FUT_BLOCK_STUCK        /* HELP without room to help: the wait gives up */
};

/* What a waiter's attempt to run queued work did (help_one). One call both
 * measures the stack and helps, so "no room" and "helped" never disagree. */
enum fut__help {
    FUT_HELPED,  /* ran a queued task */
    FUT_NO_WORK, /* nothing queued that this thread could run */
    FUT_NO_ROOM  /* its stack has no room to nest another task */
};

/* Something that runs futures: a pool or an event loop. schedule() takes
 * over one reference to @f (QUEUED) and must run it with fut__run() or
 * settle it; it never fails and never runs @f inside the call. */
struct fut__exec;
struct fut__exec_ops {
    void (*schedule)(struct fut__exec *exec, future_t *f);
    void (*retain)(struct fut__exec *exec);
    void (*release)(struct fut__exec *exec);
    /* Optional (NULL for pools): told when a continuation that will run on
     * this executor is registered, and when it settles, however it does. */
    void (*pending_add)(struct fut__exec *exec);
    void (*pending_done)(struct fut__exec *exec);
    /* Optional: why the executor takes nothing more (ECANCELED for a
     * destroyed loop, ESHUTDOWN for a pool shut down), or 0. A
     * continuation that must run there then fails with it (then.c). */
    int (*refuses)(struct fut__exec *exec);
    /*
     * For an executor with threads of its own, which its threads name in
     * fut__self.serves: one of them is about to block in a wait (wait.c).
     * block_begin says how it should wait (enum fut__block); with HELP,
     * it asks block_retry for a stand-in again, meanwhile runs queued work
     * with help_one, which says when its stack has no room left to nest
     * another task, and block_end closes the wait.
     */
    enum fut__block (*block_begin)(struct fut__exec *exec);
    bool (*block_retry)(struct fut__exec *exec);
    enum fut__help (*help_one)(struct fut__exec *exec);
    void (*block_end)(struct fut__exec *exec, enum fut__block how);
};
struct fut__exec {
    const struct fut__exec_ops *ops;
};

/* ------------------------------------------------------------- watches -- */

/*
 * How one future (the owner: a continuation, when_all, when_any) learns that
 * its inputs settled. The owner embeds a fut__inputs and one fut__watch per
 * input it watches; each watch is a node in its input's (the target's) list.
 * A watch's index says which of the owner's inputs it watches: its position
 * in the set, unless the owner watches only some of its inputs (a when_all
 * skips those that had settled already) and numbered them itself.
 *
 * Lifetimes are counted in pins: one per watch that has not ended, one for
 * the thread arming the set, one for each fut__inputs_detach() in progress.
 * While any pin remains, the set holds a reference to every target and one
 * to the owner, so a watch's memory and its target are always valid to
 * whoever holds a pin. A watch ends exactly once: when its target settles
 * (then notify() runs) or when fut__inputs_detach() unlinks it first. The
 * last pin to go releases the targets and the owner.
 *
 * notify() is internal code, never a user callback. Notifications pass
 * through a per-thread queue, so a settlement that causes another inside a
 * notification never deepens the stack.
 */
struct fut__inputs;
struct fut__watch {
    struct fut__watch *prev, *next; /* target's list, then the queue */
    future_t *target;
    struct fut__inputs *set;
    unsigned index; /* the owner's input it watches */
};

/*
 * future.deps, a future's dependents: a list of watches, newest first, in
 * one word. The first is pushed by a compare-and-swap; more, and any taken
 * out before the target settles (a cancel, a decided when_any), are linked
 * or unlinked under DEPS_LOCKED, a bit set only by a thread holding the
 * target's stripe lock, which keeps the list doubly linked so that any
 * watch leaves in constant time. The settler closes the list with one
 * compare-and-swap (waiting out the bit, a few instructions) and owns it
 * from then on. fork() never finds the bit set (gated stripes, fork.c).
 */
#define FUT_DEPS_LOCKED ((uintptr_t)1)
#define FUT_DEPS_CLOSED ((uintptr_t)2)
struct fut__watch *fut__close_deps(future_t *f); /* the settler's list */

struct fut__inputs {
    future_t *owner;
    /* @pos: the watch's position in w, which need not be its index. */
    void (*notify)(struct fut__inputs *in, size_t pos);
    atomic_uint pins;
    size_t n;
    struct fut__watch *w; /* n watches, embedded in the owner */
};

void fut__inputs_init(struct fut__inputs *in, future_t *owner,
                      struct fut__watch *w, future_t *const *targets, size_t n,
                      void (*notify)(struct fut__inputs *, size_t));
void fut__inputs_init_filled(struct fut__inputs *in, future_t *owner,
                             struct fut__watch *w, size_t n,
                             void (*notify)(struct fut__inputs *, size_t));
void fut__inputs_arm(struct fut__inputs *in);
void fut__inputs_detach(struct fut__inputs *in);
void fut__deliver(struct fut__watch *list);

/*
 * How an owner's watched inputs decide when it can settle, for
 * fut__needs_exec(): once every one has settled (when_all), once any one
 * has (when_any), or once the first has, whatever the others do (a
 * continuation's one predecessor; a timeout's input, the second watch
 * being its delay).
 */
enum fut__decides { FUT_DECIDES_EVERY, FUT_DECIDES_ANY, FUT_DECIDES_FIRST };

/* A pin on @in, unless none is left (its watches have all ended). */
bool fut__inputs_pin(struct fut__inputs *in);
void fut__inputs_unpin(struct fut__inputs *in);
void fut__timer_report(FILE *out); /* timer.c, for futures_dump() */
int fut__timer_stop(const struct timespec *deadline); /* futures_shutdown */
int fut__dump_on_signal(const char *name); /* dump.c */
void fut__loops_report(FILE *out);         /* loop.c, for futures_dump() */

/* ------------------------------------------------------------- futures -- */

typedef void (*fut__fn)(void); /* any function, for failure reports */

struct fut__ops {
    const char *kind; /* for traces and failure reports: "task", "then" */
    bool is_task;     /* submitted work, which POOL_CANCEL cancels */
    /* Runs a QUEUED future's work; returns its error, 0 with *result. */
    int (*run)(future_t *f, void **result);
    /* After a PENDING future settled early (cancelled, when_any decided):
     * let go of the inputs it still watches. */
    void (*detach)(future_t *f);
    /* Optional: releases what the future holds, just before it is freed. */
    void (*destroy)(future_t *f);
    /* Optional: the user's function that run() called, for reports of a
     * failure (unobserved.c); asked after run() failed, before settling. */
    fut__fn (*site)(const future_t *f);
    /* Optional: the watch set of an unsettled future that settles when its
     * inputs do, and how they decide (watch.c, fut__needs_exec); or the
     * one future whose outcome it will take (a compose relay), to a walk. */
    struct fut__inputs *(*inputs)(future_t *f);
    enum fut__decides decides;
    future_t *(*follows)(future_t *f);
    /* Optional: told of a failure as it is written, before anyone can
     * see @f settled, so that what it records comes in settlement order
     * (scope.c: the first failure); then told once @f has settled, on the
     * thread that settled it, no lock held. Never a user's callback. */
    void (*failing)(future_t *f);
    void (*settled)(future_t *f);
    /* Optional, for a PENDING future whose holder ends a cancel (a
     * cancellable promise): future_cancel() sets FUT_CANCEL_REQUESTED and,
     * the first time, calls this instead of settling @f; no lock held, no
     * user code inside (promise.c hands that to a task). */
    void (*cancel)(future_t *f);
};

/* Bits of future.flags. */
enum {
    FUT_CANCEL_REQUESTED = 1, /* future_cancel() while RUNNING */
    FUT_OBSERVED = 2,         /* its outcome was waited for or watched */
    FUT_OWNS_VALUE = 4,       /* has a result destructor (owned.c) */
    FUT_KEEPS_SOURCE = 8,     /* passes on a value that a source it holds
                                 owns (future_catch, future_timeout) */
    FUT_HANDED_OUT = 16       /* a promise's future was handed out */
};
/* The top bits of future.flags: slab.c's size class + 1, or 0 (calloc). */
#define FUT_SLAB_SHIFT 5

struct future {
    const struct fut__ops *ops;
    atomic_uint refs;
    atomic_uchar state; /* enum fut__state */
    atomic_uchar flags; /* FUT_CANCEL_REQUESTED, FUT_OBSERVED, ... */
    bool tracked;       /* tell exec->ops->pending_done when it settles */
    atomic_bool waited; /* a thread blocks on it: wake its stripe */
    /* A queued task needs its function, a settled future its outcome,
     * never both: they share the space (56 bytes in all, so a task and its
     * future fit one 56-byte slot of slab.c). */
    union {
        struct {
            union {
                void *value;  /* valid once SETTLED with error 0 */
                fut__fn site; /* after a failure: what failed, or NULL */
                struct fut__why *why; /* instead, if has_why */
            };
            int error;    /* valid once SETTLED */
            bool has_why; /* a failure with a message: why, not site */
        };
        struct {
            task_fn fn;
            void *arg;
        } task; /* a pool or loop task, until it runs */
    };
    _Atomic(uintptr_t) deps; /* dependents (watch.c), or DEPS_CLOSED */
    struct fut__exec *exec;  /* runs it and its continuations, or NULL */
    future_t *next;          /* run-queue link, owned by the executor */
};

/*
 * A failure's message (task_fail(), promise_reject_message()), with the
 * site that failed: reference-counted, since every future that passes the
 * failure on shares it. A failure without one stores its site alone.
 */
struct fut__why {
    atomic_uint refs;
    fut__fn site;
    char text[];
};
#define FUT_MESSAGE_MAX 255
struct fut__why *fut__why_format(const char *fmt, va_list ap);
struct fut__why *fut__why_retain(struct fut__why *why);
void fut__why_release(struct fut__why *why);


/* What a started future's work returned (fut__start, fut__finish). */
struct fut__outcome {
    int error;
    void *result;
    struct fut__why *why; /* task_fail()'s message, with an error */
};

future_t *fut__new(size_t size, const struct fut__ops *ops, int state,
                   unsigned refs);
void fut__free(future_t *f);
bool fut__settle(future_t *f, int error, void *value);
bool fut__pass_on(future_t *f, const future_t *from); /* from's outcome */
bool fut__fail_why(future_t *f, int error, struct fut__why *why); /* takes why */
void fut__observe(future_t *f);
void fut__discard(future_t *f, void *value); /* a value offered too late */

/* Result destructors (owned.c). */
typedef void (*fut__value_free_fn)(void *);
fut__value_free_fn fut__result_free_of(const future_t *f, bool take);

static inline bool fut__owns_value(const future_t *f)
{
    return atomic_load_explicit(&((future_t *)f)->flags, memory_order_acquire) &
           FUT_OWNS_VALUE;
}

/* What a settled failure says: the function that failed, and its message
 * (inline, so that unobserved.c, below message.c, reads them too). */
static inline fut__fn fut__failure_site(const future_t *f)
{
    return f->has_why ? f->why->site : f->site;
}

static inline const char *fut__failure_message(const future_t *f)
{
    return f->has_why ? f->why->text : NULL;
}

/* Must whoever reads @f's value keep @f alive while it does? Yes if the
 * value goes when @f goes: @f owns it, or holds the source that does. */
static inline bool fut__value_needs_f(const future_t *f)
{
    return atomic_load_explicit(&((future_t *)f)->flags, memory_order_acquire) &
           (FUT_OWNS_VALUE | FUT_KEEPS_SOURCE);
}
void fut__enqueue(future_t *f);
bool fut__start(future_t *f, struct fut__outcome *out);
void fut__finish(future_t *f, struct fut__outcome *out);
bool fut__run(future_t *f); /* start and finish */
void fut__set_exec(future_t *f, struct fut__exec *exec);
void fut__schedule(future_t *f);         /* to its executor, or the default */
void fut__schedule_default(future_t *f); /* to the default executor */
/* Up-calls the pools register (pool.c): the default executor, and a way
 * to run a destructor away from a thread that forbids user code. */
void fut__set_default_exec(struct fut__exec *(*get)(void));
void fut__set_offload(bool (*offload)(void (*fn)(void *), void *arg));
/* Tests: count live futures (switch on before any exists), and read it. */
void fut__count_live(bool on);
long fut__live_futures(void);
/* Continuations (then.c): what a caller asks to run, and when. */
enum fut__when { FUT_ON_SUCCESS, FUT_ON_FAILURE, FUT_ON_EITHER };
struct fut__callback {
    enum fut__when when;
    union { /* the one that @when calls */
        then_fn then;
        catch_fn catch_;
        handle_fn handle;
    };
    void *arg;
    void (*arg_free)(void *); /* the _ex forms' destructor, or NULL */
};
/* A continuation of @f running @cb on @exec (NULL: where @f ran). */
future_t *fut__continue(future_t *f, struct fut__exec *exec,
                        const struct fut__callback *cb);
/* Tasks (task.c): the futures pool_submit() and loop_submit() make. */
future_t *fut__task_new(task_fn fn, void *arg, struct fut__exec *exec);
future_t *fut__owned_task_new(task_fn fn, void *arg, void (*arg_free)(void *),
                              struct fut__exec *exec);

/* The state, relaxed: for a look that a later acquire confirms. */
static inline int fut__state(const future_t *f)
{
    return atomic_load_explicit(&((future_t *)f)->state, memory_order_relaxed);
}

/*
 * Has @f settled? Its settler commits the outcome by closing @f's
 * dependents (settle.c), and only then stores SETTLED; a future whose
 * dependents are closed counts as settled already, so that nothing that
 * depends on it is seen settled before it is, and a child of fork() never
 * waits for a settler that closed the list in the parent but is not here
 * to store SETTLED.
 */
static inline bool fut__is_settled(const future_t *f)
{
    future_t *g = (future_t *)f;
    return atomic_load_explicit(&g->state, memory_order_acquire) ==
               FUT_SETTLED ||
           atomic_load_explicit(&g->deps, memory_order_acquire) ==
               FUT_DEPS_CLOSED;
}

/* ---------------------------------------------------------------- queues */

/* A FIFO of QUEUED futures, linked through their next fields. */
struct fut__queue {
    future_t *head, *tail;
    size_t len;
};

static inline void fut__queue_push(struct fut__queue *q, future_t *f)
{
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->len++;
}

static inline future_t *fut__queue_pop(struct fut__queue *q)
{
    future_t *f = q->head;
    if (f) {
        q->head = f->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
    }
    return f;
}

#endif /* FUTURES_INTERNAL_H */
