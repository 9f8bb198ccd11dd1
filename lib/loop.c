/*
 * loop.c - a single-threaded executor, as asyncio's event loop.
 *
 * A loop is an executor (internal.h) whose run queue is drained by
 * whichever thread calls loop_run(), one future at a time, in the order
 * they became ready. Any thread may schedule onto it: pools, promises and
 * the timer thread complete continuations onto a loop through
 * fut__schedule() like onto a pool.
 *
 * loop_run() must know when nothing more can arrive, so a loop counts its
 * pending continuations: every continuation whose executor is the loop
 * counts from its registration until it settles, however it settles (it
 * ran, its predecessor failed, it was cancelled). The count is kept through
 * two executor operations, pending_add and pending_done, that futures call
 * when their exec asks for it (f->tracked).
 *
 * States, under the loop's lock: idle, running, destroyed. After
 * loop_destroy() began, whatever is scheduled onto the loop fails with
 * ECANCELED rather than being lost, and so does every continuation headed
 * for it, whatever its predecessor's outcome (exec_refuses).
 *
 * A stop asked for while the loop is not running is kept: the next
 * loop_run() runs the callbacks queued at its start, then returns.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

struct loop {
    struct fut__exec exec;
    atomic_uint refs; /* the creator's, and each future it runs */
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct fut__queue queue;
    size_t npending; /* continuations sent here, not settled yet */
    bool running, stop_requested, destroyed;
    loop_t *reg_prev, *reg_next; /* every live loop, under loops_lock */
};

/* Every live loop, for futures_dump(). A loop leaves the list before its
 * memory goes; a report holds loops_lock while it reads one. */
static pthread_mutex_t loops_lock = PTHREAD_MUTEX_INITIALIZER;
static loop_t *loops;

static void loops_add(loop_t *loop)
{
    fut__mutex_lock(&loops_lock);
    loop->reg_next = loops;
    if (loops)
        loops->reg_prev = loop;
    loops = loop;
    fut__mutex_unlock(&loops_lock);
}

static void loops_remove(loop_t *loop)
{
    fut__mutex_lock(&loops_lock);
    if (loop->reg_prev)
        loop->reg_prev->reg_next = loop->reg_next;
    else
        loops = loop->reg_next;
    if (loop->reg_next)
        loop->reg_next->reg_prev = loop->reg_prev;
    fut__mutex_unlock(&loops_lock);
}

/* One line a loop. A loop whose lock is busy this instant (or held by a
 * thread a child of fork() does not have) is named, not waited for. */
void fut__loops_report(FILE *out)
{
    fut__mutex_lock(&loops_lock);
    for (loop_t *l = loops; l; l = l->reg_next) {
        if (pthread_mutex_trylock(&l->lock)) {
            fprintf(out, "loop %p: busy this instant\n", (void *)l);
            continue;
        }
        bool running = l->running, destroyed = l->destroyed;
        size_t queued = l->queue.len, pending = l->npending;
        pthread_mutex_unlock(&l->lock);
        fprintf(out,
                "loop %p: %s, %zu queued, %zu continuations on their "
                "way\n",
                (void *)l,
                destroyed ? "destroyed"
                : running ? "running"
                          : "not running",
                queued, pending);
    }
    fut__mutex_unlock(&loops_lock);
}

void fut__loop_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE)
        fut__mutex_lock(&loops_lock);
    else
        fut__mutex_unlock(&loops_lock);
}

static loop_t *loop_of(struct fut__exec *exec)
{
    return fut__container_of(exec, loop_t, exec);
}

static void loop_free(loop_t *loop)
{
    loops_remove(loop);
    pthread_cond_destroy(&loop->ready);
    pthread_mutex_destroy(&loop->lock);
    fut__mem_free(loop);
}

/* ------------------------------------------------------- the executor -- */

static void exec_retain(struct fut__exec *exec)
{
    atomic_fetch_add_explicit(&loop_of(exec)->refs, 1, memory_order_relaxed);
}

static void exec_release(struct fut__exec *exec)
{
    loop_t *loop = loop_of(exec);
    if (atomic_fetch_sub_explicit(&loop->refs, 1, memory_order_acq_rel) == 1)
        loop_free(loop);
}

/* Queues @f unless the loop is being destroyed; returns whether it did. */
static bool try_push(loop_t *loop, future_t *f)
{
    fut__mutex_lock(&loop->lock);
    bool open = !loop->destroyed;
    if (open) {
        fut__queue_push(&loop->queue, f);
        pthread_cond_signal(&loop->ready);
    }
    fut__mutex_unlock(&loop->lock);
    return open;
}

/* Queues @f, or cancels it if the loop is being destroyed. */
static void exec_schedule(struct fut__exec *exec, future_t *f)
{
    if (!try_push(loop_of(exec), f)) {
        future_cancel(f);
        future_release(f); /* the run queue's reference */
    }
}

static void exec_pending_add(struct fut__exec *exec)
{
    loop_t *loop = loop_of(exec);
    fut__mutex_lock(&loop->lock);
    loop->npending++;
    fut__mutex_unlock(&loop->lock);
}

static void exec_pending_done(struct fut__exec *exec)
{
    loop_t *loop = loop_of(exec);
    fut__mutex_lock(&loop->lock);
    if (--loop->npending == 0)
        pthread_cond_signal(&loop->ready);
    fut__mutex_unlock(&loop->lock);
}

static int exec_refuses(struct fut__exec *exec)
{
    loop_t *loop = loop_of(exec);
    fut__mutex_lock(&loop->lock);
    bool closed = loop->destroyed;
    fut__mutex_unlock(&loop->lock);
    return closed ? ECANCELED : 0;
}

/* No wait operations: a loop's thread is the caller's own, and is never
 * told of a wait (fut__self.serves stays as it was). */
static const struct fut__exec_ops loop_exec_ops = {
    .schedule = exec_schedule,
    .retain = exec_retain,
    .release = exec_release,
    .pending_add = exec_pending_add,
    .pending_done = exec_pending_done,
    .refuses = exec_refuses};

/* ---------------------------------------------------------- the public API */

loop_t *loop_create(void)
{
    loop_t *loop = fut__calloc(sizeof *loop);
    if (!loop)
        return NULL;
    if (fut__mutex_init(&loop->lock)) {
        fut__mem_free(loop);
        errno = ENOMEM;
        return NULL;
    }
    if (fut__cond_init(&loop->ready)) {
        pthread_mutex_destroy(&loop->lock);
        fut__mem_free(loop);
        errno = ENOMEM;
        return NULL;
    }
    loop->exec.ops = &loop_exec_ops;
    atomic_init(&loop->refs, 1);
    loops_add(loop);
    return loop;
}

int loop_run(loop_t *loop)
{
    if (!loop)
        return EINVAL;
    fut__mutex_lock(&loop->lock);
    if (loop->running || loop->destroyed) {
        fut__mutex_unlock(&loop->lock);
        return EBUSY;
    }
    /* A loop run from another's callback: the outer one comes back. */
    struct fut__exec *outer = fut__self.loop;
    loop->running = true;
    fut__self.loop = &loop->exec;
    const char *role = atomic_load(&fut__self.role);
    fut__thread_set_role("running an event loop", 0);
    /* Stopped before it ran: only what is queued now. */
    bool limited = loop->stop_requested;
    size_t budget = loop->queue.len;
    loop->stop_requested = false;
    while (!limited || budget > 0) {
        future_t *f = fut__queue_pop(&loop->queue);
        if (f) {
            budget--;
            fut__mutex_unlock(&loop->lock);
            fut__run(f);
            future_release(f); /* the run queue's reference */
            fut__mutex_lock(&loop->lock);
        } else if (limited || loop->stop_requested || loop->npending == 0) {
            break;
        } else {
            fut__thread_sleeps(true);
            pthread_cond_wait(&loop->ready, &loop->lock);
            fut__thread_sleeps(false);
        }
        if (loop->stop_requested)
            break;
    }
    loop->stop_requested = false;
    fut__self.loop = outer;
    fut__thread_set_role(role, atomic_load(&fut__self.role_pool));
    loop->running = false;
    fut__mutex_unlock(&loop->lock);
    return 0;
}

void loop_stop(loop_t *loop)
{
    if (!loop)
        return;
    fut__mutex_lock(&loop->lock);
    loop->stop_requested = true;
    pthread_cond_signal(&loop->ready);
    fut__mutex_unlock(&loop->lock);
}

void loop_destroy(loop_t *loop)
{
    if (!loop)
        return;
    fut__mutex_lock(&loop->lock);
    loop->destroyed = true;
    struct fut__queue queued = loop->queue;
    loop->queue = (struct fut__queue){0};
    fut__mutex_unlock(&loop->lock);
    future_t *f;
    while ((f = fut__queue_pop(&queued)) != NULL) {
        future_cancel(f);
        future_release(f);
    }
    exec_release(&loop->exec); /* the creator's */
}

future_t *loop_submit(loop_t *loop, task_fn fn, void *arg)
{
    if (!loop || !fn) {
        errno = EINVAL;
        return NULL;
    }
    future_t *f = fut__task_new(fn, arg, &loop->exec);
    if (!f)
        return NULL;
    /* A defence, not a promise: the header calls a submit that races
     * loop_destroy() undefined, since the loop may be freed already. */
    if (!try_push(loop, f)) {
        fut__free(f); /* never seen by anyone */
        errno = ESHUTDOWN;
        return NULL;
    }
    return f;
}

future_t *future_then_on(future_t *f, loop_t *loop, then_fn fn, void *arg)
{
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    return fut__continue(f, &loop->exec,
                         &(struct fut__callback){.then = fn, .arg = arg});
}

future_t *future_catch_on(future_t *f, loop_t *loop, catch_fn fn, void *arg)
{
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    return fut__continue(f, &loop->exec,
                         &(struct fut__callback){
                             .when = FUT_ON_FAILURE, .catch_ = fn, .arg = arg});
}
