/*
 * timer.c - future_delay() and future_timeout(), with no thread per timer.
 *
 * One timer thread for the process, started on first use, sleeps on a
 * CLOCK_MONOTONIC condition variable until the earliest deadline in a
 * binary min-heap, then settles every timer that is due. A timer is a
 * future with its deadline and its place in the heap; the heap holds a
 * reference to each timer in it. Cancelling a timer removes it from the
 * heap at once (its detach operation), so cancelled timers cost nothing.
 *
 * Settling runs only internal notifications on the timer thread: the
 * continuations of a timer run on pools or loops as usual, so a slow
 * callback never delays other timers.
 *
 * future_timeout() is a small combinator over its input and a delay: the
 * first of the two to settle decides, and the loser is cancelled.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

#define NOT_IN_HEAP SIZE_MAX

struct timer {
    future_t base;
    uint64_t deadline; /* CLOCK_MONOTONIC, ns */
    size_t slot;       /* index in the heap, or NOT_IN_HEAP; under lock */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake; /* CLOCK_MONOTONIC; set up with the thread */
static bool thread_running;
static bool stopping;              /* fut__timer_stop() asks it to end */
static pthread_cond_t stopped;     /* it has ended; set up with wake */
static struct timer **heap;
static size_t heap_len, heap_cap;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* For futures_dump(): the delays pending, and the next one due. */
void fut__timer_report(FILE *out)
{
    fut__mutex_lock(&lock);
    size_t n = heap_len;
    uint64_t next = n ? heap[0]->deadline : 0;
    bool running = thread_running;
    fut__mutex_unlock(&lock);
    if (!n) {
        fprintf(out, "timers: none pending%s\n",
                running ? "" : " (no timer thread)");
        return;
    }
    uint64_t now = now_ns();
    fprintf(out, "timers: %zu pending, the next due in %.3f ms\n", n,
            next > now ? (double)(next - now) / 1e6 : 0.0);
}

/* ------------------------------------------------------------ the heap -- */

static void place(struct timer *t, size_t i)
{
    heap[i] = t;
    t->slot = i;
}

static void sift_up(size_t i)
{
    struct timer *t = heap[i];
    while (i > 0 && heap[(i - 1) / 2]->deadline > t->deadline) {
        place(heap[(i - 1) / 2], i);
        i = (i - 1) / 2;
    }
    place(t, i);
}

static void sift_down(size_t i)
{
    struct timer *t = heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= heap_len)
            break;
        if (child + 1 < heap_len &&
            heap[child + 1]->deadline < heap[child]->deadline)
            child++;
        if (heap[child]->deadline >= t->deadline)
            break;
        place(heap[child], i);
        i = child;
    }
    place(t, i);
}

static bool heap_push(struct timer *t)
{
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 256;
        struct timer **grown = fut__calloc(cap * sizeof *grown);
        if (!grown)
            return false;
        for (size_t i = 0; i < heap_len; i++)
            grown[i] = heap[i];
        fut__mem_free(heap);
        heap = grown;
        heap_cap = cap;
    }
    place(t, heap_len++);
    sift_up(t->slot);
    return true;
}

static void heap_remove(struct timer *t)
{
    size_t i = t->slot;
    struct timer *last = heap[--heap_len];
    t->slot = NOT_IN_HEAP;
    if (i == heap_len)
        return;
    place(last, i);
    sift_up(i);
    sift_down(last->slot);
}

/* ---------------------------------------------------------- the thread -- */

/* Takes every timer that is due off the heap, as a list through next in
 * deadline order, so they settle in the order they were due. */
static future_t *take_due_locked(uint64_t now)
{
    FUT_ASSERT_HELD(&lock);
    future_t *due = NULL, **tail = &due;
    while (heap_len && heap[0]->deadline <= now) {
        struct timer *t = heap[0];
        heap_remove(t);
        t->base.next = NULL;
        *tail = &t->base;
        tail = &t->base.next;
    }
    return due;
}

static void *timer_main(void *arg)
{
    (void)arg;
    fut__forbid_user_code(); /* a destructor here could wait for a delay */
    fut__thread_set_role("the timer thread", 0);
    fut__mutex_lock(&lock);
    for (;;) {
        if (stopping) { /* fut__timer_stop(): the heap is empty */
            thread_running = false;
            pthread_cond_broadcast(&stopped);
            fut__mutex_unlock(&lock);
            return NULL;
        }
        future_t *due = take_due_locked(now_ns());
        if (due) {
            fut__mutex_unlock(&lock);
            while (due) {
                future_t *next = due->next;
                fut__settle(due, 0, NULL);
                future_release(due); /* the heap's reference */
                due = next;
            }
            fut__mutex_lock(&lock);
        } else if (heap_len) {
            struct timespec at = {(time_t)(heap[0]->deadline / 1000000000u),
                                  (long)(heap[0]->deadline % 1000000000u)};
            fut__thread_sleeps(true);
            pthread_cond_timedwait(&wake, &lock, &at);
            fut__thread_sleeps(false);
        } else {
            fut__thread_sleeps(true);
            pthread_cond_wait(&wake, &lock);
            fut__thread_sleeps(false);
        }
    }
    return NULL;
}

/* Starts the timer thread if it is not running; the lock is held. */
static int ensure_thread_locked(void)
{
    FUT_ASSERT_HELD(&lock);
    if (thread_running)
        return 0;
    static bool cond_ready;
    if (!cond_ready &&
        (fut__cond_init(&wake) != 0 || fut__cond_init(&stopped) != 0))
        return ENOMEM;
    cond_ready = true;
    pthread_t thread;
    int rc = fut__thread_start(&thread, timer_main, NULL);
    if (rc)
        return rc;
    pthread_detach(thread); /* lives as long as the process */
    thread_running = true;
    return 0;
}

/*
 * fork(): the child inherits the heap but not the thread. It starts its
 * own, so the delays it inherited still fire (and their waiters wake).
 */
void fut__timer_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        fut__mutex_lock(&lock);
        return;
    }
    if (phase == FUT_FORK_CHILD && thread_running) {
        thread_running = false; /* restarted by fut__timer_after_fork() */
        if (fut__cond_init(&wake) != 0 || fut__cond_init(&stopped) != 0)
            fut__panic("cannot initialise the timer after fork()");
        stopping = false;
    }
    fut__mutex_unlock(&lock);
}

/* In the child, once every module has started afresh (so that what the
 * timers settle goes to the child's own pools): restart the thread for the
 * delays it inherited. If it cannot start, the next future_delay() or
 * future_timeout() tries again. */
void fut__timer_after_fork(void)
{
    fut__mutex_lock(&lock);
    if (heap_len)
        ensure_thread_locked();
    fut__mutex_unlock(&lock);
}

/*
 * futures_shutdown(): ends the timer thread by @deadline, cancelling every
 * delay pending (ECANCELED). The next delay starts a new thread. Returns 0
 * or ETIMEDOUT (a settle it was in the middle of has not returned).
 */
int fut__timer_stop(const struct timespec *deadline)
{
    fut__mutex_lock(&lock);
    future_t *pending = NULL;
    while (heap_len) {
        struct timer *t = heap[0];
        heap_remove(t);
        t->base.next = pending;
        pending = &t->base;
    }
    int rc = 0;
    if (thread_running) {
        stopping = true;
        pthread_cond_signal(&wake);
        while (thread_running && rc == 0)
            rc = pthread_cond_timedwait(&stopped, &lock, deadline);
        if (!thread_running)
            rc = 0;
        stopping = thread_running; /* a late one still ends */
    }
    if (!thread_running) { /* nothing left: nothing kept */
        fut__mem_free(heap);
        heap = NULL;
        heap_cap = 0;
    }
    fut__mutex_unlock(&lock);
    while (pending) {
        future_t *next = pending->next;
        fut__settle(pending, ECANCELED, NULL);
        future_release(pending); /* the heap's reference */
        pending = next;
    }
    return rc ? ETIMEDOUT : 0;
}

/* -------------------------------------------------------------- delays -- */

static void detach_timer(future_t *f)
{
    struct timer *t = fut__container_of(f, struct timer, base);
    fut__mutex_lock(&lock);
    bool queued = t->slot != NOT_IN_HEAP;
    if (queued)
        heap_remove(t);
    fut__mutex_unlock(&lock);
    if (queued)
        future_release(f); /* the heap's reference */
}

static const struct fut__ops timer_ops = {.kind = "delay",
                                          .detach = detach_timer};

future_t *future_delay(uint64_t ns)
{
    struct timer *t =
        (struct timer *)fut__new(sizeof *t, &timer_ops, FUT_PENDING, 2);
    if (!t)
        return NULL;
    uint64_t now = now_ns();
    t->deadline = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
    fut__mutex_lock(&lock);
    int rc = ensure_thread_locked();
    if (!rc && !heap_push(t))
        rc = ENOMEM;
    if (!rc && t->slot == 0)
        pthread_cond_signal(&wake); /* a new earliest deadline */
    fut__mutex_unlock(&lock);
    if (rc) {
        fut__free(&t->base);
        errno = rc;
        return NULL;
    }
    return &t->base;
}

/* ------------------------------------------------------------ timeouts -- */

struct timeout {
    future_t base;
    future_t *delay;  /* a reference of its own, to cancel it */
    future_t *source; /* the input, once its value is passed on */
    struct fut__inputs in;
    struct fut__watch watches[2]; /* the input, and the delay */
};

static struct timeout *timeout_of(future_t *f)
{
    return fut__container_of(f, struct timeout, base);
}

/* Cancelled: stop watching, and take the delay out of the heap now rather
 * than leave it there until its deadline. */
static void detach_timeout(future_t *f)
{
    fut__inputs_detach(&timeout_of(f)->in);
    future_cancel(timeout_of(f)->delay);
}

static void destroy_timeout(future_t *f)
{
    future_release(timeout_of(f)->source);
    future_release(timeout_of(f)->delay);
}

/* What a timeout waits for: its input first, whatever the delay does,
 * since a delay that fires only turns the wait into ETIMEDOUT. */
static struct fut__inputs *timeout_inputs(future_t *f)
{
    return &timeout_of(f)->in;
}

static const struct fut__ops timeout_ops = {.kind = "timeout",
                                            .detach = detach_timeout,
                                            .destroy = destroy_timeout,
                                            .inputs = timeout_inputs,
                                            .decides = FUT_DECIDES_FIRST};

static void timeout_input_settled(struct fut__inputs *in, size_t index)
{
    future_t *input = in->w[0].target, *delay = in->w[1].target;
    if (index == 0) {
        struct timeout *t = timeout_of(in->owner);
        if (input->error == 0 && input->value && fut__value_needs_f(input)) {
            t->source = future_retain(input); /* its value is passed on */
            atomic_fetch_or(&t->base.flags, FUT_KEEPS_SOURCE);
        }
        if (fut__pass_on(in->owner, input))
            future_cancel(delay); /* the timer is not needed any more */
    } else if (delay->error == 0) {
        if (fut__settle(in->owner, ETIMEDOUT, NULL))
            future_cancel(input);
    }
}

future_t *future_timeout(future_t *f, uint64_t ns)
{
    if (!f) {
        errno = EINVAL;
        return NULL;
    }
    struct timeout *t =
        (struct timeout *)fut__new(sizeof *t, &timeout_ops, FUT_PENDING, 1);
    if (!t)
        return NULL;
    future_t *delay = future_delay(ns);
    if (!delay) {
        int saved = errno;
        fut__free(&t->base);
        errno = saved;
        return NULL;
    }
    t->delay = delay; /* our reference: released in destroy_timeout() */
    future_t *inputs[2] = {f, delay};
    fut__inputs_init(&t->in, &t->base, t->watches, inputs, 2,
                     timeout_input_settled);
    fut__inputs_arm(&t->in);
    return &t->base;
}
