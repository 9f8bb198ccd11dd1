/*
 * engine.c - the progress engine: one thread per process that tests every
 * pending MPI request and settles the futures of those that complete.
 *
 * Requests live in dense arrays the engine thread alone owns: reqs[] (what
 * MPI_Testsome() takes), info[] beside it, and Testsome's outputs. A poll
 * is one MPI_Testsome() over all n requests; each completion is removed
 * by moving the last request into its slot, highest index first so that
 * no slot still to be removed moves. The engine's own work is O(1) per
 * completion and per new request, however many are pending; the scan
 * inside Testsome is MPI's.
 *
 * Other threads hand requests over through the inbox, under lock, and
 * wake the engine if it sleeps. The engine swaps the inbox with an empty
 * spare in O(1), then appends outside the lock. Cancel requests come the
 * same way (a promise, kept alive by a reference to its future); finding
 * the request is a scan, O(n) per cancel, as cancels are rare.
 *
 * The engine's loop, written out:
 *
 *   take the inbox and the cancels --> nothing pending --> sleep until woken
 *          ^                           |
 *          |                           +--> poll: Testsome, then settle
 *          |                                   |
 *          +--- completions: poll again at once+
 *          +--- none: for SPIN_NS after the last activity (LINGER_NS
 *               with nothing pending) poll again,
 *               yielding the core between polls; then wait a quarter of
 *               the idle time, 10 us to 1 ms (a new request or cancel
 *               ends a wait at once); nothing pending: sleep until woken
 *
 * Futures are settled after Testsome returns, never inside an MPI call,
 * and with no lock of ours held; their continuations go to pool threads.
 * Lock order: start_lock, then E.lock.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef SPIN_NS
#define SPIN_NS 1000000      /* poll without sleeping after activity */
#endif
#ifndef LINGER_NS
#define LINGER_NS 50000      /* the same with nothing pending: less */
#endif
#ifndef WAIT_MIN_NS
#define WAIT_MIN_NS 10000    /* the shortest wait once idle */
#endif
#define WAIT_MAX_NS 1000000  /* the longest: 1 ms */
#define STOP_GRACE_NS 200000000 /* futures_mpi_stop(): 200 ms to finish */

/* Requests handed over, not yet taken by the engine. */
struct inbox {
    MPI_Request *reqs;
    struct fm__pending *info;
    size_t n, cap;
};

struct cancel {
    promise_t *promise;
    future_t *ref; /* keeps the promise's memory alive */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool running;  /* mpi_future() may submit */
    bool stopping; /* the engine thread should end */
    bool sleeping; /* the engine waits on wake: signal it */
    pthread_t thread;
    struct inbox in;
    struct cancel *cancels;
    size_t ncancels, cancels_cap;
} E = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Serialises futures_mpi_start() and futures_mpi_stop(). */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

/* The engine thread's own state. */
static struct {
    MPI_Request *reqs;
    struct fm__pending *info;
    int *idx;
    MPI_Status *st;
    struct fm__done *done;
    size_t n, cap;
    struct inbox spare; /* swapped with E.in */
} T;

/* ------------------------------------------------------------- growth -- */

static bool grow(void **p, size_t cap, size_t size)
{
    void *q = realloc(*p, cap * size);
    if (!q)
        return false;
    *p = q;
    return true;
}

static bool inbox_reserve(struct inbox *in, size_t want)
{
    if (want <= in->cap)
        return true;
    size_t cap = in->cap ? 2 * in->cap : 64;
    if (!grow((void **)&in->reqs, cap, sizeof *in->reqs) ||
        !grow((void **)&in->info, cap, sizeof *in->info))
        return false;
    in->cap = cap;
    return true;
}

/* Room for @want requests in the engine's arrays; one failed realloc
 * leaves the others bigger, which is harmless. */
static bool engine_reserve(size_t want)
{
    if (want <= T.cap)
        return true;
    size_t cap = T.cap ? 2 * T.cap : 64;
    while (cap < want)
        cap *= 2;
    if (!grow((void **)&T.reqs, cap, sizeof *T.reqs) ||
        !grow((void **)&T.info, cap, sizeof *T.info) ||
        !grow((void **)&T.idx, cap, sizeof *T.idx) ||
        !grow((void **)&T.st, cap, sizeof *T.st) ||
        !grow((void **)&T.done, cap, sizeof *T.done))
        return false;
    T.cap = cap;
    return true;
}

/* ------------------------------------------------- the submitting side -- */

static void wake_locked(void)
{
    if (E.sleeping)
        pthread_cond_signal(&E.wake);
}

int fm__submit(MPI_Request request, promise_t *p, MPI_Status *status)
{
    pthread_mutex_lock(&E.lock);
    int error = 0;
    if (!E.running)
        error = ESHUTDOWN;
    else if (!inbox_reserve(&E.in, E.in.n + 1))
        error = ENOMEM;
    if (!error) {
        E.in.reqs[E.in.n] = request;
        E.in.info[E.in.n] = (struct fm__pending){p, status, false};
        E.in.n++;
        wake_locked();
    }
    pthread_mutex_unlock(&E.lock);
    return error;
}

bool fm__running(void)
{
    pthread_mutex_lock(&E.lock);
    bool running = E.running;
    pthread_mutex_unlock(&E.lock);
    return running;
}

void fm__cancel(promise_t *p)
{
    future_t *ref = promise_future(p);
    pthread_mutex_lock(&E.lock);
    bool queued = false;
    if (E.running && E.ncancels == E.cancels_cap) {
        size_t cap = E.cancels_cap ? 2 * E.cancels_cap : 16;
        if (grow((void **)&E.cancels, cap, sizeof *E.cancels))
            E.cancels_cap = cap;
    }
    if (E.running && E.ncancels < E.cancels_cap) {
        E.cancels[E.ncancels++] = (struct cancel){p, ref};
        queued = true;
        wake_locked();
    }
    pthread_mutex_unlock(&E.lock);
    /* Not running: futures_mpi_stop() cancels every request anyway. Out
     * of memory: the request simply completes as if never cancelled. */
    if (!queued)
        future_release(ref);
}

/* ------------------------------------------------------ the engine side -- */

/* Appends the spare inbox (just swapped out) to the engine's arrays; on
 * failure keeps it, to try again on a later round. */
static bool take_requests(void)
{
    struct inbox *in = &T.spare;
    if (in->n == 0)
        return false;
    if (!engine_reserve(T.n + in->n))
        return false;
    memcpy(T.reqs + T.n, in->reqs, in->n * sizeof *T.reqs);
    memcpy(T.info + T.n, in->info, in->n * sizeof *T.info);
    T.n += in->n;
    in->n = 0;
    return true;
}

/* Calls MPI_Cancel() on each request whose future was asked to cancel.
 * One already completed is not found: its outcome stands. */
static void do_cancels(struct cancel *c, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < T.n; i++) {
            if (T.info[i].promise == c[k].promise && !T.info[i].cancelling) {
                T.info[i].cancelling = true;
                MPI_Cancel(&T.reqs[i]);
                break;
            }
        }
        future_release(c[k].ref);
    }
}

/* Takes what other threads handed over, with E.lock held on entry and on
 * return; returns whether anything new came. */
static bool take_inbox_locked(void)
{
    if (T.spare.n == 0) {
        struct inbox t = E.in;
        E.in = T.spare;
        T.spare = t;
    }
    struct cancel *c = E.cancels;
    size_t nc = E.ncancels;
    bool news = T.spare.n > 0 || nc > 0;
    if (!news)
        return false;
    E.cancels = NULL;
    E.ncancels = E.cancels_cap = 0;
    pthread_mutex_unlock(&E.lock);
    take_requests();
    do_cancels(c, nc);
    free(c);
    pthread_mutex_lock(&E.lock);
    return true;
}

static int by_index_descending(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

/* Moves the last request into slot @i. */
static void remove_at(size_t i)
{
    T.n--;
    T.reqs[i] = T.reqs[T.n];
    T.info[i] = T.info[T.n];
}

/* One MPI_Testsome() over every pending request; settles what completed,
 * after it returns, with @why as the message of a confirmed cancel.
 * Returns how many completed. */
static size_t poll_once(const char *why)
{
    int count = 0;
    int rc = MPI_Testsome((int)T.n, T.reqs, &count, T.idx, T.st);
    if ((rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) ||
        count == MPI_UNDEFINED || count <= 0)
        return 0;
    /* What each completion needs, read before any slot moves. */
    for (int k = 0; k < count; k++) {
        T.done[k].info = T.info[T.idx[k]];
        T.done[k].status = T.st[k];
        T.done[k].error =
            rc == MPI_ERR_IN_STATUS ? T.st[k].MPI_ERROR : MPI_SUCCESS;
    }
    /* Highest index first, so that no slot still to go moves. */
    qsort(T.idx, (size_t)count, sizeof *T.idx, by_index_descending);
    for (int k = 0; k < count; k++)
        remove_at((size_t)T.idx[k]);
    for (int k = 0; k < count; k++)
        fm__settle(&T.done[k], why);
    return (size_t)count;
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Sleeps on E.wake for @ns at most, or for ever for a negative @ns; a
 * new request or cancel ends it at once. E.lock held. */
static void sleep_locked(long ns)
{
    E.sleeping = true;
    if (ns < 0) {
        pthread_cond_wait(&E.wake, &E.lock);
    } else {
        long at = now_ns() + ns;
        struct timespec t = {at / 1000000000L, at % 1000000000L};
        pthread_cond_timedwait(&E.wake, &E.lock, &t);
    }
    E.sleeping = false;
}

/* Gives the core away for a moment: on a machine with fewer cores than
 * threads, the waiter a completion just woke may need this one. */
static void yield_locked(void)
{
    pthread_mutex_unlock(&E.lock);
    sched_yield();
    pthread_mutex_lock(&E.lock);
}

/*
 * After a round that found nothing to do, @idle_ns after the last
 * activity: for SPIN_NS keep polling (yielding between polls), since a
 * reply or the next request tends to come soon, and waking from a timed
 * wait costs 50 us and more (timer slack); with nothing pending, only
 * for LINGER_NS, since the next request will signal; after that, wait a
 * quarter of the idle time so far, from WAIT_MIN_NS up to WAIT_MAX_NS,
 * so that an idle program costs no CPU. With nothing pending, sleep
 * until woken. E.lock held.
 */
static void back_off_locked(long idle_ns)
{
    if (idle_ns < (T.n > 0 ? SPIN_NS : LINGER_NS)) {
        yield_locked();
        return;
    }
    if (T.n == 0) {
        sleep_locked(-1);
        return;
    }
    long ns = idle_ns / 4;
    sleep_locked(ns < WAIT_MIN_NS ? WAIT_MIN_NS
                                  : ns > WAIT_MAX_NS ? WAIT_MAX_NS : ns);
}

/* futures_mpi_stop(): cancel what is pending, let MPI finish what it can
 * for a while, free the rest. Errors on MPI_Cancel() (a collective cannot
 * be cancelled) must not abort: MPI_COMM_WORLD returns them meanwhile. */
static void drain(void)
{
    MPI_Errhandler saved;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &saved);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    for (size_t i = 0; i < T.n; i++) {
        T.info[i].cancelling = true;
        MPI_Cancel(&T.reqs[i]);
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (T.n > 0) {
        if (poll_once("futures_mpi_stop") == 0)
            sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec >
            STOP_GRACE_NS)
            break;
    }
    while (T.n > 0) {
        MPI_Request_free(&T.reqs[T.n - 1]);
        fm__abandon(&T.info[T.n - 1], "futures_mpi_stop");
        T.n--;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, saved);
    MPI_Errhandler_free(&saved);
}

static void *engine_main(void *unused)
{
    (void)unused;
    long last = now_ns(); /* the last request, cancel or completion */
    pthread_mutex_lock(&E.lock);
    for (;;) {
        if (take_inbox_locked())
            last = now_ns();
        if (E.stopping)
            break;
        if (T.n > 0) {
            pthread_mutex_unlock(&E.lock);
            size_t done = poll_once("MPI_Cancel: cancelled");
            pthread_mutex_lock(&E.lock);
            if (done) {
                last = now_ns();
                continue;
            }
        }
        if (E.in.n == 0 && E.ncancels == 0)
            back_off_locked(now_ns() - last);
    }
    /* running is false: nothing more comes in. */
    take_inbox_locked();
    pthread_mutex_unlock(&E.lock);
    take_requests(); /* a spare kept for want of memory: last chance */
    drain();
    return NULL;
}

/* ---------------------------------------------------------- start, stop -- */

static int check_mpi(void)
{
    int init = 0, fini = 0, level = MPI_THREAD_SINGLE;
    MPI_Initialized(&init);
    MPI_Finalized(&fini);
    if (!init || fini)
        return EINVAL;
    MPI_Query_thread(&level);
    return level < MPI_THREAD_MULTIPLE ? EPROTONOSUPPORT : 0;
}

static int init_wake(void)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr))
        return ENOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int error = pthread_cond_init(&E.wake, &attr);
    pthread_condattr_destroy(&attr);
    return error;
}

int futures_mpi_start(void)
{
    pthread_mutex_lock(&start_lock);
    int error = E.running ? EALREADY : check_mpi();
    if (!error)
        error = init_wake();
    if (!error) {
        E.running = true;
        E.stopping = false;
        error = pthread_create(&E.thread, NULL, engine_main, NULL);
        if (error) {
            E.running = false;
            pthread_cond_destroy(&E.wake);
        }
    }
    pthread_mutex_unlock(&start_lock);
    return error;
}

/* The engine's memory, once its thread has ended: nothing is pending. */
static void free_arrays(void)
{
    free(T.reqs);
    free(T.info);
    free(T.idx);
    free(T.st);
    free(T.done);
    free(T.spare.reqs);
    free(T.spare.info);
    free(E.in.reqs);
    free(E.in.info);
    free(E.cancels);
    memset(&T, 0, sizeof T);
    memset(&E.in, 0, sizeof E.in);
    E.cancels = NULL;
    E.ncancels = E.cancels_cap = 0;
}

int futures_mpi_stop(void)
{
    pthread_mutex_lock(&start_lock);
    pthread_mutex_lock(&E.lock);
    bool was = E.running;
    E.running = false;
    E.stopping = true;
    if (was)
        pthread_cond_signal(&E.wake);
    pthread_mutex_unlock(&E.lock);
    if (was) {
        pthread_join(E.thread, NULL);
        pthread_cond_destroy(&E.wake);
        free_arrays();
    }
    pthread_mutex_unlock(&start_lock);
    return was ? 0 : EALREADY;
}
