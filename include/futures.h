/*
 * futures.h - libfutures, futures and a worker pool for C11 on POSIX threads.
 *
 * A pool runs submitted functions on worker threads and hands back a future
 * for each one. A future settles exactly once: it succeeds with a value (a
 * pointer of the user's, never freed by the library), fails with a positive
 * error code, or is cancelled (failure with ECANCELED). Code can wait for a
 * future, chain work onto it (future_then, future_catch), join many
 * (when_all, when_any), or complete one by hand through a promise.
 *
 * Conventions that hold for every function below:
 *  - Functions returning int return 0 or a positive errno value. Functions
 *    returning a handle return NULL and set errno on failure. A call that
 *    fails has consumed nothing: no callback will run and no reference was
 *    taken.
 *  - Every returned future_t * carries one reference that belongs to the
 *    caller; drop it with future_release(). Functions that take futures
 *    borrow them and never consume the caller's reference.
 *  - Every function may be called from any thread at any time, including from
 *    inside a task or callback.
 *  - Whatever a task or callback wrote before it returned is visible to any
 *    thread that then sees its future settled (a wait that returns, a
 *    continuation, future_is_ready() returning true).
 *  - User callbacks never run inside the call that registered or triggered
 *    them, and never with a library lock held.
 *  - Destructors (an _ex argument's, future_set_result_free()'s) may call
 *    any function, waits included. One whose moment comes on the
 *    library's timer thread (a future_timeout() cancelling what it
 *    watches) runs on pool_default() instead; one whose moment comes while
 *    a settlement tells its dependents runs on that thread once they have
 *    all been told, before the call that settled returns.
 */
#ifndef FUTURES_H
#define FUTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* FILE, for reports */

#if defined(__GNUC__)
#define FUTURES_API __attribute__((visibility("default")))
#else
#define FUTURES_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define FUTURES_VERSION_MAJOR 0
#define FUTURES_VERSION_MINOR 1
#define FUTURES_VERSION_PATCH 0

typedef struct pool pool_t;       /* a set of worker threads and their queue */
typedef struct future future_t;   /* a reference-counted eventual outcome */
typedef struct promise promise_t; /* the writing end of a future */

/*
 * A task. It starts with *result == NULL. Return 0 to succeed with *result
 * as the future's value, or a positive error code to fail with it.
 */
typedef int (*task_fn)(void *arg, void **result);

/* A continuation run on the value of a predecessor that succeeded. */
typedef int (*then_fn)(void *value, void *arg, void **result);

/* A continuation run on the error of a predecessor that failed. */
typedef int (*catch_fn)(int error, void *arg, void **result);

/* Modes for pool_shutdown(). */
#define POOL_DRAIN  0 /* refuse new tasks, run every queued one */
#define POOL_CANCEL 1 /* refuse new tasks, cancel every queued one */

/* --------------------------------------------------------------- pools -- */

/**
 * pool_create() - start a pool of @nthreads worker threads.
 *
 * @nthreads == 0 means one thread per online CPU. The pool keeps that many
 * threads ready for tasks; while a task blocks in future_wait() the pool
 * starts a stand-in thread so that its capacity never drops (see
 * future_wait()). Stand-ins that stay idle for a while exit again.
 * If some but not all threads could be started, the pool runs with the
 * threads it got (at least one).
 * Ownership: the pool is yours; end it with pool_destroy().
 * Errors: NULL with errno EINVAL (@nthreads above 4096), ENOMEM, or EAGAIN
 * when no thread could be started.
 */
FUTURES_API pool_t *pool_create(size_t nthreads);

/**
 * pool_submit() - queue fn(arg, &result) to run on one of @pool's threads.
 *
 * Returns the task's future, which settles with the task's outcome, or with
 * ECANCELED if the task is cancelled before it starts. The task runs even if
 * every reference to its future is released first (fire and forget).
 * Ownership: the result is a new reference, yours; @arg stays yours.
 * Errors: NULL with errno EINVAL (NULL @pool or @fn), ENOMEM, or ESHUTDOWN
 * after pool_shutdown(); @fn will never run.
 */
FUTURES_API future_t *pool_submit(pool_t *pool, task_fn fn, void *arg);

/**
 * pool_submit_ex() - pool_submit(), and a destructor for @arg.
 *
 * @arg_free(@arg) runs exactly once on every path: after the task has run
 * (whatever it returned), when it is cancelled before it could run
 * (future_cancel() or POOL_CANCEL), or, if the submission is not accepted,
 * before this call returns NULL. It runs on the thread where that path
 * ends, but never on the timer thread (see the conventions at the top).
 * A NULL @arg_free makes this pool_submit().
 * Errors: as pool_submit(); @arg has been freed.
 */
FUTURES_API future_t *pool_submit_ex(pool_t *pool, task_fn fn, void *arg,
                                     void (*arg_free)(void *));

/**
 * pool_shutdown() - stop @pool accepting tasks.
 *
 * POOL_DRAIN lets every queued task run; POOL_CANCEL cancels every queued
 * task (its future fails with ECANCELED) while running tasks finish. Either
 * way pool_submit() fails with ESHUTDOWN from now on. Continuations of tasks
 * the pool accepted still run: on @pool while it drains, on the default pool
 * once @pool no longer runs tasks. Returns at once; pool_destroy() waits.
 * Calling it again, or with a NULL pool or on pool_default(), does nothing;
 * an unknown @mode is treated as POOL_DRAIN.
 */
FUTURES_API void pool_shutdown(pool_t *pool, int mode);

/**
 * pool_destroy() - shut @pool down, wait for its threads, release it.
 *
 * Drains @pool first unless pool_shutdown() was called. Futures that came
 * from the pool stay valid. Called from one of @pool's own tasks it cannot
 * wait for itself: it shuts the pool down (drain) and returns, and the pool
 * ends once its last task has finished.
 * Does nothing for NULL or pool_default().
 */
FUTURES_API void pool_destroy(pool_t *pool);

/**
 * pool_destroy_timeout() - pool_destroy(), waiting at most @timeout_ns.
 *
 * Returns 0 once every thread has ended and the pool is gone, as
 * pool_destroy() does. If its work has not ended in time, returns
 * ETIMEDOUT with the pool still there, shut down (no task is cancelled),
 * having written to @report (when not NULL) what it is doing: its thread
 * and queue counts, and each task running on it, with the function it
 * runs and the future its thread is blocked on. The caller may call it
 * again, or pool_destroy(). From inside one of the pool's own tasks it
 * does what pool_destroy() does there, and returns 0; so it does, doing
 * nothing, for pool_default() and for a parent's pool in a child of fork().
 * Errors: EINVAL (NULL @pool), ETIMEDOUT.
 */
FUTURES_API int pool_destroy_timeout(pool_t *pool, uint64_t timeout_ns,
                                     FILE *report);

/**
 * pool_default() - the process-wide pool, started on first use.
 *
 * It has one thread per online CPU and runs the continuations of futures
 * that no pool ran (promises, when_all, when_any, future_resolved). It is
 * never shut down: pool_shutdown() and pool_destroy() ignore it.
 * Ownership: borrowed; never release it.
 * Errors: NULL with errno ENOMEM or EAGAIN; a later call tries again.
 *
 * After fork(), the child has a default pool of its own, started on first
 * use; delays and timeouts it inherited still fire, and continuations of
 * the parent's futures run on it. Pools made before the fork, the parent's
 * default pool included, belong to the parent: in the child, submitting to
 * them fails with ECHILD (an _ex destructor runs as for any refusal),
 * pool_stats() and the setters return ECHILD, and pool_shutdown() and
 * pool_destroy() do nothing (the pool's memory stays, since its lock may
 * have been held when the parent forked). Work the parent had queued never
 * runs in the child, so a wait for it there would not end: use
 * future_wait_for(). Event loops do not cross a fork either. The
 * library's own locks are held across fork() so none is left locked. A
 * task that calls fork() may go on in the child; when it returns there,
 * the child's copy of the pool thread ends (and the child process with it
 * if it was its only thread) rather than run the parent's queue.
 */
FUTURES_API pool_t *pool_default(void);

/**
 * pool_submit_blocking() - queue a job that blocks (I/O, sleeps, locks).
 *
 * The same contract as pool_submit(), but the job runs on one of the pool's
 * blocking threads, which it starts on demand beyond its core threads, so
 * a thousand sleeping jobs overlap instead of queueing behind two threads.
 * At most pool_set_blocking_limit() such threads run (512 unless set); past
 * the limit, or when a thread cannot be started, jobs queue and never fail.
 * Blocking threads idle for the pool's idle timeout (10 s) exit.
 * Continuations of the job run on the pool's core threads.
 * Ownership and errors as for pool_submit().
 */
FUTURES_API future_t *pool_submit_blocking(pool_t *pool, task_fn fn, void *arg);

/**
 * pool_submit_blocking_ex() - pool_submit_blocking(), and a destructor for
 * @arg, with pool_submit_ex()'s rule: @arg_free(@arg) runs exactly once on
 * every path (after the job ran, when it is cancelled before it could run,
 * or before this call returns NULL). A NULL @arg_free makes this
 * pool_submit_blocking(). Errors: as pool_submit(); @arg has been freed.
 */
FUTURES_API future_t *pool_submit_blocking_ex(pool_t *pool, task_fn fn,
                                              void *arg,
                                              void (*arg_free)(void *));

/**
 * pool_set_blocking_limit() - cap the threads that run blocking jobs.
 *
 * Threads already running above a lowered limit finish their job first,
 * and no queued job starts until they have: at most @limit jobs run once
 * they are done. A job blocked in future_wait() does not count against
 * the limit while it waits, as a waiting task does not count against the
 * core threads: the pool starts another blocking thread for what is
 * queued, so a job that waits for a job queued behind it never deadlocks.
 * Errors: EINVAL (NULL @pool, or @limit == 0 or above 65536).
 */
FUTURES_API int pool_set_blocking_limit(pool_t *pool, size_t limit);

/**
 * pool_set_idle_timeout() - how long a thread beyond the pool's core (a
 * blocking thread, or a stand-in for a waiting task) stays idle before it
 * exits. It applies at once, to threads already idle too.
 * Errors: EINVAL (NULL @pool).
 */
FUTURES_API int pool_set_idle_timeout(pool_t *pool, uint64_t ns);

/* A snapshot of a pool, from pool_stats(). */
struct pool_stats {
    size_t threads;          /* threads alive or starting, of every kind */
    size_t peak_threads;     /* the most alive at once */
    size_t blocking_threads; /* of which run blocking jobs */
    size_t queued;           /* tasks and jobs waiting for a thread */
    size_t running;          /* tasks and jobs running now */
    uint64_t completed;      /* tasks and jobs that have run */
};

/**
 * pool_stats() - fill *@out with a snapshot of @pool's threads and work.
 * Errors: EINVAL (NULL @pool or @out).
 */
FUTURES_API int pool_stats(pool_t *pool, struct pool_stats *out);

/* ------------------------------------------------------------- futures -- */

/**
 * future_wait() - block until @f settles and return its outcome.
 *
 * Returns 0 and stores the value in *@value (when @value is not NULL) if @f
 * succeeded, or returns its error (ECANCELED if it was cancelled). May be
 * called any number of times from any number of threads: the outcome never
 * changes. Called inside a pool task it does not deadlock, even on a pool of
 * one thread: the pool starts a stand-in thread for the one that waits. A
 * blocking job that waits stops counting against the blocking limit.
 *
 * When no stand-in can be had (no thread can be started, or the pool has
 * 1,024 beyond its size already), the waiting task runs the pool's queued
 * tasks itself meanwhile, on its own stack, each one nested in the wait.
 * It does so only while less than half of its thread's stack is in use;
 * past that, its wait gives up with EAGAIN rather than overflow the stack
 * or hang (the future itself is untouched and still settles): a thread
 * that can run nothing must not hold the place of one that could. A task
 * run nested that way lies on top of the task whose wait runs it, so its
 * wait for that task's future (or for any task beneath it on the same
 * stack) could end only after it has returned: that wait fails with
 * EDEADLK. Its waits for anything else wait as usual.
 * Ownership: borrows @f.
 * A wait that provably could never end fails at once with EDEADLK instead
 * of hanging: when what would settle @f can only run on, or waits for, the
 * waiting thread. That is a task waiting for its own future or for a task
 * beneath it on its thread's stack (above); a loop's thread waiting for a
 * future that only that loop can run (the rule is at future_then_on());
 * and a cycle of running tasks, on any pools, each blocked in a wait for
 * the next one's future, through then/catch/handle continuations,
 * future_compose() results (before and after their step has run) and
 * when_all/when_any/timeout inputs: the wait that would close the cycle
 * fails, the others go on waiting and see its task's outcome. A future that a promise holder, a timer or a timed wait could
 * still settle is waited for as usual. The check runs only when a wait is
 * about to block. With FUTURES_DEADLOCK=abort in the environment, a
 * detected cycle through other threads or a loop is written to stderr
 * instead (each future: its kind, its function's name where dladdr() finds
 * one, how it is held up) and the program aborts; a task waiting for its
 * own future still just gets EDEADLK.
 * Errors: EINVAL for a NULL @f; EDEADLK as above; EAGAIN when a task that
 * could get no stand-in gives up its wait for lack of stack.
 */
FUTURES_API int future_wait(future_t *f, void **value);

/**
 * future_wait_for() - wait at most @timeout_ns nanoseconds for @f to settle.
 *
 * Returns true if @f has settled (then future_wait() returns at once), false
 * on timeout, for a NULL @f, or at once where future_wait() would fail with
 * EDEADLK. Where future_wait() would give up with EAGAIN, it waits
 * without helping until the timeout.
 * The timeout is measured on CLOCK_MONOTONIC; 0 only polls.
 */
FUTURES_API bool future_wait_for(future_t *f, uint64_t timeout_ns);

/**
 * future_wait_all() - wait for every one of @fs, then collect the outcomes:
 * asyncio.gather(*fs, return_exceptions=True).
 *
 * Blocks until each of the @n futures has settled, with future_wait()'s
 * guarantees inside a task (no deadlock on a pool of one thread), then
 * writes, for each i, values[i] (the value, or NULL after a failure) and
 * errors[i] (0 or the error), for whichever of @values and @errors is not
 * NULL. Returns 0 if every future succeeded, else the error of the
 * lowest-index one that failed. Every failure counts as observed.
 * Ownership: borrows @fs and the futures; the values stay the futures'.
 * Errors: EINVAL for a NULL @fs with @n > 0 or a NULL future (nothing is
 * waited for or written). EDEADLK or EAGAIN where future_wait() would fail
 * so for one of them: it returns at once with that error, written at that
 * index (value NULL); entries before and after it are left as they were.
 * @n == 0 returns 0.
 */
FUTURES_API int future_wait_all(future_t *const *fs, size_t n, void **values,
                                int *errors);

/**
 * future_is_ready() - true if @f has settled (false for NULL). Never blocks.
 */
FUTURES_API bool future_is_ready(const future_t *f);

/**
 * future_then() - run @fn on @f's value once @f has succeeded.
 *
 * Returns a new future that settles with @fn's outcome, or with @f's error if
 * @f failed or was cancelled (then @fn never runs). @fn runs where @f ran,
 * never inside this call: on the pool that ran @f, on the loop's thread if
 * a loop ran it, or on pool_default() for futures nothing ran (promises,
 * combinators, timers, future_resolved()). Any number of continuations may
 * be attached to one future, before or after it settles; chains of any
 * length never grow the stack. If the default pool is needed and cannot
 * start a single thread, the continuation fails with that error (EAGAIN)
 * without running @fn, rather than wait for ever.
 * Ownership: borrows @f; the result is a new reference, yours.
 * Errors: NULL with errno EINVAL (NULL @f or @fn) or ENOMEM; nothing was
 * registered.
 */
FUTURES_API future_t *future_then(future_t *f, then_fn fn, void *arg);

/**
 * future_catch() - run @fn on @f's error once @f has failed.
 *
 * The mirror of future_then(): @fn runs only if @f failed or was cancelled
 * (error ECANCELED) and may recover by returning 0 with a value. If @f
 * succeeded, the result succeeds with @f's value and @fn never runs.
 * Ownership, thread and errors as for future_then().
 */
FUTURES_API future_t *future_catch(future_t *f, catch_fn fn, void *arg);

/**
 * future_then_ex() - future_then(), and a destructor for @arg.
 *
 * @arg_free(@arg) runs exactly once on every path: after @fn has run,
 * when the continuation settles without running it (@f failed, or it was
 * cancelled), or, if the call fails, before it returns NULL. A NULL
 * @arg_free makes this future_then(). Errors: as future_then(); @arg has
 * been freed.
 */
FUTURES_API future_t *future_then_ex(future_t *f, then_fn fn, void *arg,
                                     void (*arg_free)(void *));

/** future_catch_ex() - future_catch(), and a destructor for @arg, as above. */
FUTURES_API future_t *future_catch_ex(future_t *f, catch_fn fn, void *arg,
                                      void (*arg_free)(void *));

/*
 * A continuation for either outcome: error == 0 and @value on success;
 * error > 0 (ECANCELED included) and a NULL @value on failure. It returns
 * as a task does: 0 with *result, or an error.
 */
typedef int (*handle_fn)(int error, void *value, void *arg, void **result);

/**
 * future_handle() - run @fn once @f settles, whatever its outcome
 * (CompletableFuture.handle, asyncio's add_done_callback, folly's thenTry).
 *
 * Returns a new future that settles with @fn's outcome. @fn runs once,
 * where future_then() would run it, never inside this call and never with
 * a library lock held, unless the result is cancelled before @fn starts:
 * then it never runs. Chains of any length never grow the stack. Handing
 * @f over counts as observing it: its failure is never reported as
 * unobserved. A handle (or catch) that returns the error it was given,
 * without a task_fail() message of its own, passes @f's message on.
 * Ownership and errors as for future_then().
 */
FUTURES_API future_t *future_handle(future_t *f, handle_fn fn, void *arg);

/* A step that starts more work: return a future (a new reference, which
 * the library takes over), or NULL with errno set. */
typedef future_t *(*compose_fn)(void *value, void *arg);

/**
 * future_compose() - flatten: chain a step that returns a future
 * (thenCompose, folly's thenValue returning a Future, Promises/A+ 2.3).
 *
 * Once @f succeeds, @fn(value, @arg) runs where future_then() would run it
 * and returns a future g; the result then settles with g's outcome, its
 * value and error message included, when g settles. No thread blocks
 * meanwhile. If @f fails, its failure passes through and @fn never runs.
 * @fn returning NULL fails the result with errno (EINVAL if errno is 0),
 * and with the message of a task_fail() it called:
 * `errno = task_fail(EIO, "..."); return NULL;`.
 * Cancelling the result before @fn runs means @fn never runs; cancelling
 * it while it waits for g cancels g.
 * A loop written as recursion, each step returning future_compose() of the
 * next, runs in constant stack and memory: a result that only waits for
 * the step's future hands its place to that future's own step, so settled
 * links are freed as the loop goes rather than kept until its end.
 * The result keeps g, and so g's value, alive for as long as it lives.
 * Ownership: borrows @f; the result is a new reference, yours.
 * Errors: as future_then().
 */
FUTURES_API future_t *future_compose(future_t *f, compose_fn fn, void *arg);

/**
 * future_then_via() - future_then(), with @fn run on one of @pool's threads
 * (folly's via(), CompletableFuture.thenApplyAsync(fn, executor)).
 *
 * If @pool no longer takes work when @f settles (pool_shutdown(), already
 * or since this call), the continuation fails with ESHUTDOWN and @fn never
 * runs (in a child of fork(), with ECHILD). Continuations of the result
 * run on @pool too, as for any future @pool ran. The continuation keeps
 * @pool's memory, not its threads: pool_destroy() may come first.
 * Ownership: borrows @f and @pool; the result is a new reference, yours.
 * Errors: NULL with errno EINVAL (NULL @f, @pool or @fn) or ENOMEM.
 */
FUTURES_API future_t *future_then_via(future_t *f, pool_t *pool, then_fn fn,
                                      void *arg);

/** future_catch_via() - future_catch() on @pool's threads, as above. */
FUTURES_API future_t *future_catch_via(future_t *f, pool_t *pool, catch_fn fn,
                                       void *arg);

/**
 * future_cancel() - ask @f to settle with ECANCELED.
 *
 * Returns true if @f was cancelled by this call: a task that had not started
 * (it will never run), a continuation or combinator still waiting for its
 * inputs (its callback will never run), or an unsettled promise's future.
 * Returns false if @f has settled already, or is a task that is running:
 * then the request is recorded, task_cancelled() turns true inside it, and
 * the task's own return decides the outcome. An unsettled future of
 * promise_create_cancellable() also returns false: its holder is told and
 * decides the outcome. Dependents see ECANCELED as an
 * ordinary failure. Never runs a callback inside the call.
 * Ownership: borrows @f. Errors: false for NULL.
 */
FUTURES_API bool future_cancel(future_t *f);

/**
 * task_cancelled() - inside a running task or callback: has its future been
 * asked to cancel? False outside a task.
 */
FUTURES_API bool task_cancelled(void);

/**
 * future_retain() - add a reference to @f and return @f (NULL for NULL).
 */
FUTURES_API future_t *future_retain(future_t *f);

/**
 * future_release() - drop one reference to @f. NULL is a harmless no-op.
 *
 * The future's memory goes once it has settled and nothing refers to it;
 * an unsettled task still runs. The value is the user's and is not freed,
 * unless future_set_result_free() gave the future its destructor. A failure
 * nobody observed is reported (futures_set_unobserved_handler()).
 */
FUTURES_API void future_release(future_t *f);

/**
 * future_set_result_free() - give @f's value a destructor.
 *
 * From now on @f owns the value it succeeds with (or has succeeded with):
 * @result_free(value) runs once, when @f's last reference goes, on
 * whichever thread drops it. A value nobody can read any more is handed to
 * it at once: one that promise_resolve() offers after the future settled
 * (the call returns EALREADY and the value is freed). NULL values and
 * failures are never passed to it. Futures that pass @f's value on without
 * making a new one (future_catch() on success, future_timeout(), a then
 * callback that returns its input, future_compose() on the future its
 * step returned) keep @f alive, so the value stays valid
 * while any of them is referenced; such a future never frees that value
 * with a destructor of its own (set for a value it might make instead).
 * A NULL @result_free removes the destructor. Call it while you hold a
 * reference, before anything could have read the value.
 * Errors: EINVAL (@f is NULL), ENOMEM (nothing changed).
 */
FUTURES_API int future_set_result_free(future_t *f, void (*result_free)(void *));

/**
 * future_resolved() - a future that has already succeeded with @value.
 * Errors: NULL with errno ENOMEM.
 */
FUTURES_API future_t *future_resolved(void *value);

/**
 * future_failed() - a future that has already failed with @error.
 * Errors: NULL with errno EINVAL if @error is not positive, or ENOMEM.
 */
FUTURES_API future_t *future_failed(int error);

/* ---------------------------------------------------- failure messages -- */

#if defined(__GNUC__)
#define FUTURES_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define FUTURES_PRINTF(fmt, args)
#endif

/**
 * task_fail() - say what went wrong: record a message for the failure the
 * running task or callback is about to return, and return @error.
 *
 *     return task_fail(EIO, "HTTP %d from %s", status, url);
 *
 * The message is printf(@fmt, ...), copied and truncated to 255 bytes. It
 * goes with the future if the task then returns a failure (any error);
 * returning success drops it; a second call replaces the first. Outside a
 * task or callback, or with a NULL @fmt, it records nothing. Never fails:
 * without memory for the message the failure simply has none.
 */
FUTURES_API int task_fail(int error, const char *fmt, ...) FUTURES_PRINTF(2, 3);

/**
 * future_error_message() - the message of @f's failure (task_fail(),
 * promise_reject_message()), or NULL when it has none, succeeded, has not
 * settled, or @f is NULL. The message passes through every future that
 * passes the failure on (future_then(), future_compose(),
 * future_timeout(), the error when_all() takes from an input).
 * Ownership: the string is @f's and lives as long as @f.
 */
FUTURES_API const char *future_error_message(const future_t *f);

/* --------------------------------------------------------- combinators -- */

/**
 * when_all() - a future that settles once every one of @futures has.
 *
 * It succeeds with value NULL if every input succeeded, and otherwise fails
 * with the error of the lowest-index input that failed; it never settles
 * before the last input. Values stay in the inputs: read them with
 * future_wait(). @n == 0 gives a future that has already succeeded.
 * Inputs may repeat and may come from different pools or promises.
 * Cancelling the result does not cancel the inputs.
 * Ownership: borrows the array and the inputs (it keeps references of its
 * own); the result is a new reference, yours.
 * Errors: NULL with errno EINVAL (NULL @futures with @n > 0, or a NULL
 * input) or ENOMEM.
 */
FUTURES_API future_t *when_all(future_t *const *futures, size_t n);

/**
 * when_any() - a future that settles as soon as one of @futures settles.
 *
 * It succeeds with the index i of the first input to settle, as
 * (void *)(uintptr_t)i, whether that input succeeded or failed: inspect
 * futures[i] for its outcome. Cancelling the result does not cancel the
 * inputs. Ownership as for when_all().
 * Errors: NULL with errno EINVAL (@n == 0, NULL @futures, or a NULL input)
 * or ENOMEM.
 */
FUTURES_API future_t *when_any(future_t *const *futures, size_t n);

/* ----------------------------------------------------------------- time -- */

/**
 * future_delay() - a future that succeeds (value NULL) after @ns nanoseconds.
 *
 * The analogue of asyncio.sleep(): nothing blocks while it runs, and one
 * timer thread for the whole process serves every delay. Cancelling it
 * removes the timer. Deadlines are on CLOCK_MONOTONIC.
 * Ownership: a new reference, yours.
 * Errors: NULL with errno ENOMEM, or EAGAIN if the timer thread cannot start.
 */
FUTURES_API future_t *future_delay(uint64_t ns);

/**
 * future_timeout() - @f's outcome, or ETIMEDOUT after @ns nanoseconds.
 *
 * The analogue of asyncio.wait_for(): the result settles with @f's outcome
 * if @f settles in time; otherwise it fails with ETIMEDOUT at the deadline
 * and asks @f to cancel (future_cancel()). Ownership: borrows @f; the
 * result is a new reference, yours.
 * Errors: NULL with errno EINVAL (@f is NULL), ENOMEM or EAGAIN.
 */
FUTURES_API future_t *future_timeout(future_t *f, uint64_t ns);

/* -------------------------------------------------------------- scopes -- */

/*
 * A scope: structured concurrency (asyncio's TaskGroup, Go's errgroup,
 * Java's StructuredTaskScope). It joins every task it started, cancels the
 * rest on the first failure, and can bound how many of its tasks run at
 * once without holding a thread for those that wait.
 */
typedef struct scope scope_t;

/**
 * scope_create() - a scope whose tasks run on @pool (NULL: pool_default()).
 *
 * Created inside a running task of another scope, it is that scope's
 * child: cancelling the parent cancels it, its tasks, and its children in
 * turn. The scope keeps @pool's memory; @pool must take work for as long
 * as the scope submits (a task refused later fails with ESHUTDOWN).
 * Ownership: yours; end it with scope_release().
 * Errors: NULL with errno ENOMEM, or what pool_default() fails with.
 */
FUTURES_API scope_t *scope_create(pool_t *pool);

/**
 * scope_submit() - pool_submit() on the scope's pool, the task belonging
 * to the scope.
 *
 * The future is yours as usual; the scope keeps its own hold on the task
 * until it settles. Past the scope's limit the task waits, in submission
 * order, holding no thread, and starts when a running one finishes. A task
 * that fails with any error but ECANCELED cancels the scope; its failure
 * is the scope's to report (scope_join()), never an unobserved one. Once the
 * scope is cancelled, the call returns a future that has already failed
 * with ECANCELED (never NULL, so a fan-out loop needs no special case).
 * Tasks may submit to their own scope, also while it is being joined.
 * Errors: NULL with errno EINVAL (NULL @s or @fn), ENOMEM, ESHUTDOWN once
 * the scope has been joined or its pool takes no work (a task waiting for
 * the limit when its pool stops taking work fails with ESHUTDOWN), ECHILD
 * for a pool made before fork() in the child; @fn will never run.
 */
FUTURES_API future_t *scope_submit(scope_t *s, task_fn fn, void *arg);

/** scope_submit_blocking() - scope_submit() as pool_submit_blocking(). */
FUTURES_API future_t *scope_submit_blocking(scope_t *s, task_fn fn, void *arg);

/**
 * scope_submit_ex() - scope_submit(), and a destructor for @arg.
 *
 * @arg_free(@arg) runs exactly once on every path, with pool_submit_ex()'s
 * rule: after the task has run (whatever it returned), when it is
 * cancelled before it could run (future_cancel(), scope_cancel() or a
 * sibling's failure, POOL_CANCEL, a task waiting for the limit when its
 * pool stops taking work), or, if the submission is not accepted, before
 * this call returns: NULL, or the future already failed with ECANCELED
 * that a cancelled scope hands back. It runs on the thread where that
 * path ends, as pool_submit_ex() says. A NULL @arg_free makes this
 * scope_submit().
 * Errors: as scope_submit(); @arg has been freed.
 */
FUTURES_API future_t *scope_submit_ex(scope_t *s, task_fn fn, void *arg,
                                      void (*arg_free)(void *));

/**
 * scope_submit_blocking_ex() - scope_submit_blocking(), and a destructor
 * for @arg, with scope_submit_ex()'s rule: @arg_free(@arg) runs exactly
 * once on every path (after the job ran, when it is cancelled before it
 * could run, or before this call returns when it is not accepted). A NULL
 * @arg_free makes this scope_submit_blocking().
 * Errors: as scope_submit(); @arg has been freed.
 */
FUTURES_API future_t *scope_submit_blocking_ex(scope_t *s, task_fn fn,
                                               void *arg,
                                               void (*arg_free)(void *));

/**
 * scope_set_limit() - let at most @max_running of the scope's tasks run at
 * once (0: no limit, the default). Raising it starts waiting tasks at
 * once; lowering it never stops a running one. A task blocked in a wait
 * still counts as running: one that waits for a sibling the limit holds
 * back waits for ever (give such work a scope of its own).
 * Errors: EINVAL (NULL @s).
 */
FUTURES_API int scope_set_limit(scope_t *s, size_t max_running);

/**
 * scope_join() - wait until every task the scope accepted has settled,
 * those submitted meanwhile included, and close it.
 *
 * Returns 0, or the error of the first task that failed (in the order they
 * settled); ECANCELED if the scope was cancelled (scope_cancel(), or its
 * parent's) and nothing failed. It has future_wait()'s guarantees inside a
 * pool task, and its errors (EDEADLK, EAGAIN). From then on scope_submit()
 * fails with ESHUTDOWN. Joining from one of the scope's own tasks waits for
 * that task: a deadlock. Errors: EINVAL (NULL @s), ENOMEM.
 */
FUTURES_API int scope_join(scope_t *s);

/**
 * scope_future() - scope_join() without blocking: a future that settles as
 * scope_join() would return, once every task accepted has settled (at once
 * if none is pending), for future_then(), when_all() or a loop. Its failure
 * carries the first failure's message. Asking for it closes the scope as a
 * join does once it settles.
 * Ownership: a new reference, yours. Errors: NULL with errno EINVAL, ENOMEM.
 */
FUTURES_API future_t *scope_future(scope_t *s);

/**
 * scope_cancel() - cancel the scope by hand: its waiting and queued tasks
 * never run and fail with ECANCELED, task_cancelled() turns true in the
 * running ones, its children are cancelled, and later scope_submit() calls
 * return a future already failed with ECANCELED. NULL is a no-op.
 */
FUTURES_API void scope_cancel(scope_t *s);

/** scope_cancelled() - has the scope been cancelled, by hand or by a
 * failure? False for NULL. */
FUTURES_API bool scope_cancelled(const scope_t *s);

/**
 * scope_release() - give up @s. One that was never joined (scope_join(),
 * scope_future()) is cancelled first. Never blocks: the tasks still settle,
 * their destructors run, and the scope's memory goes with the last of
 * them. NULL is a harmless no-op.
 */
FUTURES_API void scope_release(scope_t *s);

/* ---------------------------------------------------- completion queues -- */

/* Futures handed back in the order they settle: asyncio.as_completed(),
 * Java's ExecutorCompletionService. */
typedef struct completion completion_t;

/**
 * completion_create() - an empty completion queue.
 * Ownership: yours; end it with completion_release().
 * Errors: NULL with errno ENOMEM.
 */
FUTURES_API completion_t *completion_create(void);

/**
 * completion_add() - watch @f: completion_next() will return it once it
 * has settled. The queue takes a reference of its own; adding the same
 * future twice returns it twice. Adding counts as observing @f. O(1).
 * Errors: EINVAL (@c or @f is NULL), ENOMEM (nothing was added).
 */
FUTURES_API int completion_add(completion_t *c, future_t *f);

/**
 * completion_next() - the next added future to settle, in the order they
 * settled (futures that settle at the same moment in any order).
 *
 * A future that had settled when it was added comes in the order it was
 * added. Blocks up to @timeout_ns nanoseconds (CLOCK_MONOTONIC; 0 only
 * polls, UINT64_MAX waits for ever), with future_wait()'s guarantees inside
 * a task. Any number of threads may call it at once; each added future is
 * returned to exactly one of them. O(1) per call. ENOENT says that every
 * future added so far has been returned; a later completion_add() makes
 * more to come.
 * Ownership: the result is a new reference, yours.
 * Errors: NULL with errno EINVAL (NULL @c), ETIMEDOUT (nothing settled in
 * time), ENOENT (every added future has been returned already), or what
 * future_wait() fails with inside a task (EDEADLK, EAGAIN).
 */
FUTURES_API future_t *completion_next(completion_t *c, uint64_t timeout_ns);

/**
 * completion_release() - drop @c and the futures it has not returned;
 * those futures still run and settle. NULL is a harmless no-op. No call
 * on @c may run or follow.
 */
FUTURES_API void completion_release(completion_t *c);

/* ----------------------------------------------------------- event loops -- */

typedef struct loop loop_t; /* a single-threaded executor, as asyncio's */

/**
 * loop_create() - an event loop: callbacks scheduled on it run one at a
 * time on the thread that calls loop_run(), in the order they became ready.
 * Ownership: yours; end it with loop_destroy().
 * Errors: NULL with errno ENOMEM.
 */
FUTURES_API loop_t *loop_create(void);

/**
 * loop_run() - run @loop's callbacks on this thread until nothing is
 * pending (no queued callback, and no continuation sent to it that is
 * still waiting for its predecessor) or loop_stop() is called.
 * Errors: EINVAL (NULL @loop), EBUSY (already running on a thread).
 */
FUTURES_API int loop_run(loop_t *loop);

/**
 * loop_stop() - make loop_run() return after the callback running now.
 * Safe from any thread, and from a callback. Asked while the loop is not
 * running, it makes the next loop_run() run the callbacks queued when it
 * starts, then return. Does nothing for NULL.
 */
FUTURES_API void loop_stop(loop_t *loop);

/**
 * loop_destroy() - free @loop. Callbacks queued on it are cancelled now
 * (their futures fail with ECANCELED). Continuations sent to it that still
 * wait for their predecessor never run: when the predecessor settles, they
 * fail with ECANCELED, whatever its outcome. Must not be called while
 * loop_run() runs. The loop may be freed before this call returns, so
 * passing it to loop_submit(), future_then_on() or future_catch_on() once
 * loop_destroy() has begun, even from another thread, is undefined.
 * NULL is a no-op.
 */
FUTURES_API void loop_destroy(loop_t *loop);

/**
 * loop_submit() - queue a small, non-blocking task on @loop.
 * Ownership as for pool_submit(). Submitting to a loop that is being or
 * has been destroyed is undefined (see loop_destroy()).
 * Errors: NULL with errno EINVAL (NULL @loop or @fn) or ENOMEM.
 */
FUTURES_API future_t *loop_submit(loop_t *loop, task_fn fn, void *arg);

/**
 * future_then_on() - future_then(), with @fn run on @loop's thread.
 *
 * Futures from pools, promises and timers complete onto a loop safely from
 * any thread; this is how a program with its own main loop receives
 * results without locks.
 *
 * On a loop's thread (inside a callback that loop_run() runs), future_wait()
 * fails with EDEADLK instead of hanging when @f is unsettled and needs the
 * loop: (a) its executor is that loop (a loop task, a continuation sent
 * there, or one of a loop task, which runs where its predecessor ran); (b)
 * it is a continuation whose predecessor needs the loop; (c) it is a
 * when_all() with an unsettled input that needs the loop; (d) it is a
 * when_any() whose inputs are all unsettled and all need the loop; or (e)
 * it is a future_timeout() whose input needs the loop (the wait could only
 * end with ETIMEDOUT). The check looks at no more than 1000 futures; past
 * that it waits as if nothing needed the loop.
 * Errors: as future_then(), and EINVAL for a NULL @loop.
 */
FUTURES_API future_t *future_then_on(future_t *f, loop_t *loop, then_fn fn,
                                     void *arg);

/** future_catch_on() - future_catch(), with @fn run on @loop's thread. */
FUTURES_API future_t *future_catch_on(future_t *f, loop_t *loop, catch_fn fn,
                                      void *arg);

/* ------------------------------------------------------------ promises -- */

/**
 * promise_create() - a promise: a future that any code settles by hand.
 * Ownership: yours; end it with promise_release().
 * Errors: NULL with errno ENOMEM.
 */
FUTURES_API promise_t *promise_create(void);

/* Told that a cancellable promise's future was asked to cancel. */
typedef void (*promise_cancel_fn)(promise_t *p, void *arg);

/**
 * promise_create_cancellable() - a promise whose holder decides how a
 * cancel ends: for work that another system runs and must confirm
 * cancelled (an MPI receive, an I/O request), so that ECANCELED means
 * the work really stopped.
 *
 * future_cancel() on its unsettled future does not settle it: the call
 * records the request and returns false, as for a running task, and
 * @on_cancel(p, @arg) runs once, on pool_default(), never inside
 * future_cancel(). It is skipped if the promise has settled by then; @p
 * stays valid while it runs. The holder then settles the promise as
 * usual: promise_reject(p, ECANCELED) once the work has stopped, or with
 * the work's outcome if it finished first. Later cancels do nothing more.
 * If no task can be made for it (no memory), @on_cancel runs inside the
 * cancelling call rather than be lost. Otherwise the promise is
 * promise_create()'s: promise_release() still breaks it with EPIPE.
 * Ownership: yours; end it with promise_release(). @arg stays yours and
 * must outlive the promise.
 * Errors: NULL with errno EINVAL (NULL @on_cancel) or ENOMEM.
 */
FUTURES_API promise_t *promise_create_cancellable(promise_cancel_fn on_cancel,
                                                  void *arg);

/**
 * promise_future() - the future of @p; each call returns a new reference.
 * Errors: NULL with errno EINVAL for a NULL @p.
 */
FUTURES_API future_t *promise_future(promise_t *p);

/**
 * promise_resolve() - settle @p's future with success and @value.
 * Continuations run on pool threads, never inside this call.
 * Errors: EINVAL (NULL @p), EALREADY if the future has settled already
 * (the first settlement wins, including a cancellation); then @value goes
 * to the future's result destructor, if it has one.
 */
FUTURES_API int promise_resolve(promise_t *p, void *value);

/**
 * promise_reject() - settle @p's future with failure @error.
 * Errors: EINVAL (NULL @p, or @error not positive), EALREADY as above.
 */
FUTURES_API int promise_reject(promise_t *p, int error);

/**
 * promise_reject_message() - promise_reject() with a message, as
 * task_fail() records one (printf(@fmt, ...), truncated to 255 bytes).
 * Errors: as promise_reject().
 */
FUTURES_API int promise_reject_message(promise_t *p, int error, const char *fmt,
                                       ...) FUTURES_PRINTF(3, 4);

/**
 * promise_release() - give up @p. NULL is a harmless no-op.
 *
 * If its future has not settled, it fails with EPIPE (a broken promise), so
 * no waiter hangs forever. References to the future stay valid.
 */
FUTURES_API void promise_release(promise_t *p);

/* ------------------------------------------------- unobserved failures -- */

/* What futures_set_unobserved_handler()'s handler is told. */
struct futures_failure {
    int error;        /* the errno value the future failed with */
    const char *kind; /* "task", "then", "catch", "promise", "timeout", ... */
    void (*site)(void); /* the task or callback that failed, cast, or NULL */
    const char *message; /* its message, or NULL; valid during the call */
};

typedef void (*futures_unobserved_fn)(const struct futures_failure *failure,
                                      void *arg);

/**
 * futures_set_unobserved_handler() - be told of failures nobody looked at.
 *
 * A future that failed, and whose failure nobody observed, reports it when
 * its last reference goes: @handler(failure, @arg) runs on the thread that
 * drops that reference. Observing means future_wait() or
 * future_wait_all() returning it, or handing the future to any call that
 * takes its outcome: future_then(), future_catch(), future_handle(),
 * future_compose() and their _ex, _on and _via forms, when_all(),
 * when_any(), future_timeout() or completion_add(), even if what it was
 * handed to has given up on it (a when_any already decided, a cancelled
 * continuation). future_wait_for() and future_is_ready() do not observe.
 * Cancellations (ECANCELED) are never reported, nor is a promise whose
 * future was never handed out. A failure that a continuation passes on is
 * reported once, by the last future of the chain, with the site of the
 * first failure (once per chain when several continuations pass it on).
 * The default handler is futures_unobserved_print(); NULL turns reports
 * off. The handler must not block for long and must not call back into
 * libfutures' waits.
 */
FUTURES_API void futures_set_unobserved_handler(futures_unobserved_fn handler,
                                                void *arg);

/**
 * futures_unobserved_print() - the default handler: one line on stderr
 * with the error and, when known, the failing function's name or address.
 */
FUTURES_API void futures_unobserved_print(const struct futures_failure *failure,
                                          void *arg);

/* ---------------------------------------------------------- diagnostics -- */

/**
 * futures_dump() - write what the library is doing to @out, for a person
 * looking at a program that hangs: each pool (its core threads, those
 * blocked in a wait and their stand-ins, its blocking threads, queued tasks
 * and blocking jobs and how long the oldest has waited, what is running);
 * the delays pending and the next deadline; each thread the library knows
 * (core, blocking, the timer's, one running an event loop, your own that
 * made futures) by name and LWP, with the tasks it runs, named by dladdr()
 * where it can and with the label each gave itself with
 * futures_trace_name(), and the future it is blocked on, or whether it
 * sleeps for want of work; for each blocked thread, what its future waits
 * for, link by link; the event loops with their queues; and the count of
 * live futures. A task that started after the first dump (or after
 * FUTURES_DUMP_SIGNAL took effect) shows how long it has run, and work
 * queued since then how long it has waited: timing every task would cost
 * the programs that never dump. Safe from any thread at any time, a task's
 * included; it never waits for a running task. With
 * FUTURES_DUMP_SIGNAL=USR1 (any signal's name or number) in the
 * environment, the library writes one to stderr whenever that signal
 * arrives (the handler only hands over to a thread of the library's).
 * Returns 0, or EINVAL (NULL @out), or the errno of writing.
 */
FUTURES_API int futures_dump(FILE *out);

/**
 * futures_shutdown() - end the library's own threads, within @timeout_ns.
 *
 * The default pool drains (its queued and fire-and-forget work runs), then
 * its threads, stand-ins included, exit and are joined; the timer thread
 * ends, and the delays pending fail with ECANCELED. The library works again
 * afterwards: the default pool and the timer thread start again on first
 * use (a pointer from an earlier pool_default() is no longer valid; ask
 * again). Pools you made are yours to pool_destroy(). Call it at the end of
 * a program, or of a test that checks for leaks, when no other thread uses
 * the library.
 * Returns 0, or ETIMEDOUT with what did not end reported on stderr (the
 * default pool is then left shut down, and ends by itself).
 */
FUTURES_API int futures_shutdown(uint64_t timeout_ns);

/**
 * futures_live_count() - how many futures are alive now: made and not yet
 * freed, whoever holds them (your references, queues, continuations
 * waiting for them). Exact whenever no other thread is making or freeing
 * futures meanwhile, and cheap enough to call often: a test can check that
 * it returns to the value it had before. Futures kept for reuse
 * by the library's allocator (see FUTURES_NO_CACHE in docs/api.md) are
 * not alive and do not count.
 */
FUTURES_API size_t futures_live_count(void);

/* --------------------------------------------------------------- tracing -- */

/**
 * futures_trace_start() - record a timeline of everything that runs.
 *
 * From now on every task and callback records its pool, its thread, its
 * name and when it started and finished; so do spans marked with
 * futures_trace_begin(). futures_trace_stop() writes the record to @path as
 * Chrome trace-event JSON, which Perfetto and chrome://tracing open as a
 * timeline (tools/trace2svg.py draws it as an SVG). Setting
 * FUTURES_TRACE=path in the environment starts a trace when the program
 * starts and writes it when the program exits.
 * While no trace runs, tracing costs one relaxed atomic load per task.
 * Errors: EINVAL (NULL @path), EALREADY (a trace is running), ENOMEM.
 */
FUTURES_API int futures_trace_start(const char *path);

/**
 * futures_trace_stop() - stop recording and write the trace file.
 *
 * Tasks still running are not in it. Errors: EINVAL (no trace running), or
 * the errno of opening or writing the file (the trace is stopped anyway).
 */
FUTURES_API int futures_trace_stop(void);

/**
 * futures_trace_name() - name the running task in the trace and in reports.
 *
 * Called inside a task or callback, it names that task's event in the trace,
 * and, whether a trace runs or not, labels the task until it returns:
 * futures_dump() shows the label on the task's "running:" line, and the
 * report of FUTURES_DEADLOCK=abort beside the task, in quotes. A task nested
 * more than four deep on its thread (helped by waits) is not labelled.
 * Elsewhere it renames the thread's open span, or names the next one
 * futures_trace_begin() opens without a name. @name is copied (its first 47
 * bytes). Without it an event is named after its kind: task, then or catch.
 * Does nothing when @name is NULL, nor in a trace when none runs. Inside a
 * task it takes a lock that all threads share: it is meant for a name per
 * task, not for a loop.
 */
FUTURES_API void futures_trace_name(const char *name);

/**
 * futures_trace_begin() - open a span on the calling thread.
 *
 * For work that runs outside any pool (a sequential baseline, the main
 * thread's own waiting), so it appears on the same timeline. The span ends
 * at futures_trace_end(); spans do not nest (a second begin restarts the
 * span). @name is copied; NULL means "span". Does nothing when no trace runs.
 */
FUTURES_API void futures_trace_begin(const char *name);

/** futures_trace_end() - close the calling thread's open span, if any. */
FUTURES_API void futures_trace_end(void);

#ifdef __cplusplus
}
#endif

#endif /* FUTURES_H */
