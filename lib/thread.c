/*
 * thread.c - the calling thread's context.
 *
 * fut__self holds every piece of per-thread state the library keeps
 * (internal.h says which file owns which part), so "what does this thread
 * know" is answered in one place.
 */
#define _GNU_SOURCE /* syscall() */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

_Thread_local struct fut__thread fut__self
    __attribute__((tls_model("initial-exec")));

/*
 * Live futures, counted exactly and without a shared counter on the hot
 * path: each thread keeps its own difference of futures made and freed
 * (fut__count_future), and futures_live_count() adds them up over the
 * threads that ever counted, plus what threads that have ended left
 * behind. A thread joins the list on its first count; a key's destructor
 * takes it out as it ends.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
/* One cycle check at a time: of threads closing a cycle together, the
 * last to look sees it whole, and only it fails (wait.c). */
static pthread_mutex_t cycle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fut__thread *registry;
static long ended_live; /* left by threads that ended */
static pthread_key_t thread_end_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* The registry's lock is a leaf that thread.c takes directly: sync.c's
 * checked wrapper sits above this file (it reports through fut__panic). */
static void registry_lock_take(void)
{
    if (pthread_mutex_lock(&registry_lock))
        fut__panic("thread registry lock failed");
}

static void registry_lock_drop(void)
{
    pthread_mutex_unlock(&registry_lock);
}

static void thread_ended(void *arg)
{
    struct fut__thread *me = arg;
    registry_lock_take();
    ended_live += atomic_load_explicit(&me->live, memory_order_relaxed);
    atomic_store_explicit(&me->live, 0, memory_order_relaxed);
    if (me->reg_prev)
        me->reg_prev->reg_next = me->reg_next;
    else
        registry = me->reg_next;
    if (me->reg_next)
        me->reg_next->reg_prev = me->reg_prev;
    me->registered = false;
    registry_lock_drop();
}

static void make_key(void)
{
    if (pthread_key_create(&thread_end_key, thread_ended))
        fut__panic("cannot create the thread registry's key");
}

/* The calling thread's kernel id, as gdb and /proc/<pid>/task show it
 * (glibc has gettid() only since 2.30). */
static int kernel_tid(void)
{
    return (int)syscall(SYS_gettid);
}

void fut__thread_register(struct fut__thread *me)
{
    pthread_once(&key_once, make_key);
    me->handle = pthread_self();
    me->lwp = kernel_tid();
    registry_lock_take();
    me->registered = true;
    me->reg_prev = NULL;
    me->reg_next = registry;
    if (registry)
        registry->reg_prev = me;
    registry = me;
    registry_lock_drop();
    if (pthread_setspecific(thread_end_key, me))
        fut__panic("cannot register a thread");
}

/* The registry, for the reports thread_report.c writes: its first
 * thread, with the lock held until fut__registry_drop(). While it is
 * held, no thread leaves the list (its end waits for the lock), and what
 * a thread blocks on stays alive (see fut__thread_block). */
struct fut__thread *fut__registry_take(void)
{
    registry_lock_take();
    return registry;
}

void fut__registry_drop(void)
{
    registry_lock_drop();
}

/*
 * Wait cycles. A thread about to block asks, link by link, what would
 * settle the future it waits for; where that is a task running on another
 * thread, it needs to know whether that thread is itself blocked, and on
 * what. Threads say so here: the futures whose work they run (published
 * by fut__start) and the one they block on (set and cleared under the
 * registry's lock, so a future read here stays alive while the lock is
 * held: its waiter cannot return meanwhile).
 */
void fut__thread_block(future_t *f, bool timed, struct fut__blocked *saved)
{
    struct fut__thread *me = &fut__self;
    if (!me->registered)
        fut__thread_register(me);
    registry_lock_take();
    *saved = (struct fut__blocked){me->blocked_on, me->blocked_timed,
                                   me->blocked_depth};
    me->blocked_on = f;
    me->blocked_timed = timed;
    me->blocked_depth =
        atomic_load_explicit(&me->nframes, memory_order_relaxed);
    registry_lock_drop();
}

void fut__thread_unblock(const struct fut__blocked *saved)
{
    struct fut__thread *me = &fut__self;
    registry_lock_take();
    me->blocked_on = saved->on;
    me->blocked_timed = saved->timed;
    me->blocked_depth = saved->depth;
    registry_lock_drop();
}

/* The frame of @t that runs @f (among those it shows), or -1. */
static int frame_of(struct fut__thread *t, const future_t *f)
{
    unsigned n = atomic_load_explicit(&t->nframes, memory_order_acquire);
    for (unsigned i = 0; i < n && i < 4; i++) {
        if (atomic_load_explicit(&t->runs[i], memory_order_acquire) == f)
            return (int)i;
    }
    return -1;
}

/*
 * @f is running. If the thread running it is the caller, sets *@self.
 * Otherwise, if that thread is blocked for good (an untimed wait) on a
 * future beneath @f's frame, returns that future with a reference the
 * caller drops; NULL if it is not blocked, if @f runs on top of its wait
 * (a task the waiter helps with: it is running, not blocked), or if no
 * thread shows @f (too deep to tell).
 */
future_t *fut__blocked_behind(future_t *f, bool *self)
{
    struct fut__thread *me = &fut__self;
    *self = frame_of(me, f) >= 0;
    if (*self)
        return NULL;
    future_t *g = NULL;
    registry_lock_take();
    for (struct fut__thread *t = registry; t; t = t->reg_next) {
        int frame = t != me ? frame_of(t, f) : -1;
        if (frame < 0)
            continue;
        if (t->blocked_on && !t->blocked_timed &&
            (unsigned)frame < t->blocked_depth) {
            g = t->blocked_on; /* held by its waiter's caller */
            atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
        }
        break;
    }
    registry_lock_drop();
    return g;
}

/*
 * Brackets a thread's look for a wait cycle and its saying what it blocks
 * on. False when this thread is looking already (a destructor that the
 * look ran waits in turn): that wait goes unchecked.
 */
bool fut__cycle_check_begin(void)
{
    if (fut__self.checking_cycle)
        return false;
    if (pthread_mutex_lock(&cycle_lock))
        fut__panic("cycle check lock failed");
    fut__self.checking_cycle = true;
    return true;
}

void fut__cycle_check_end(void)
{
    fut__self.checking_cycle = false;
    pthread_mutex_unlock(&cycle_lock);
}

atomic_bool fut__timing_tasks;

uint64_t fut__coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void fut__thread_set_role(const char *role, unsigned pool_id)
{
    struct fut__thread *me = &fut__self;
    if (!me->registered)
        fut__thread_register(me);
    atomic_store_explicit(&me->role_pool, pool_id, memory_order_relaxed);
    atomic_store_explicit(&me->role, role, memory_order_release);
}

size_t futures_live_count(void)
{
    registry_lock_take();
    long n = ended_live;
    for (struct fut__thread *t = registry; t; t = t->reg_next)
        n += atomic_load_explicit(&t->live, memory_order_relaxed);
    registry_lock_drop();
    return n > 0 ? (size_t)n : 0;
}

/* fork(): the child keeps the counts of threads it does not have (their
 * futures were copied too) and gets the lock back unheld. */
/*
 * fork(): the child has one thread, this one. The others' entries go, with
 * what they ran and waited for (nothing of theirs will ever run or wait in
 * the child, and a wait-cycle check must not follow them), but their
 * counts of live futures stay: the futures were copied too.
 */
void fut__thread_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        registry_lock_take();
        return;
    }
    if (phase == FUT_FORK_CHILD) {
        struct fut__thread *me = &fut__self;
        for (struct fut__thread *t = registry; t; t = t->reg_next) {
            if (t != me)
                ended_live += atomic_load_explicit(&t->live,
                                                   memory_order_relaxed);
        }
        registry = me->registered ? me : NULL;
        if (registry)
            me->reg_prev = me->reg_next = NULL;
        me->lwp = kernel_tid(); /* the child's thread is a new one */
    }
    registry_lock_drop();
}

/* fork() takes the cycle lock before any other: a wait-cycle check holds
 * it while it may free futures, which takes locks that fork() takes (and
 * gates) after it. */
void fut__cycle_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE)
        pthread_mutex_lock(&cycle_lock);
    else
        pthread_mutex_unlock(&cycle_lock);
}

/* The id of the pool whose thread this is, 0 elsewhere (traces, tests). */
unsigned fut__pool_id_of_thread(void)
{
    return fut__self.pool_id;
}

void fut__panic(const char *msg)
{
    fprintf(stderr, "libfutures: fatal: %s\n", msg);
    abort();
}
