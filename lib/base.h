/*
 * base.h - the bottom layer (L0) that every file uses: the calling
 * thread's context, locks and clocks, the stripes, allocation and thread
 * starts with their fault injection, the fork hooks and gate, the run-queue
 * FIFO, users' destructors, and tracing. Included through internal.h.
 */
#ifndef FUTURES_BASE_H
#define FUTURES_BASE_H

#include "futures.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef FUT_DEBUG
#define FUT_DEBUG 0
#endif

struct fut__watch;
struct fut__exec;

/* ------------------------------------------------------ this thread -- */

struct fut__why; /* a failure's message (message.c) */
typedef void (*fut__fn_ptr)(void); /* any function, as internal.h's fut__fn */

/* The longest label futures_trace_name() gives a task, with its NUL. */
#define FUT_LABEL_SIZE 48

/* A future whose work runs on this thread (settle.c, fut__start), and the
 * message task_fail() recorded for the failure it is about to return. */
struct fut__frame {
    future_t *f;
    struct fut__frame *outer;
    struct fut__why *why;
    /* Left uninitialised, written by futures_trace_name() (then the
     * thread's labels[] point to it: thread_report.c). */
    char label[FUT_LABEL_SIZE];
};

struct fut__deferred; /* defer.c */
struct fut__worker;   /* the pool's record of one of its threads */

/*
 * What the library knows about the calling thread, in one thread-local
 * (thread.c) rather than a dozen spread over the files: each part names
 * the file that owns it, and a debugger prints it whole (p fut__self).
 */
struct fut__thread {
    /* Set by the executor a thread serves (pool.c's threads, loop_run). */
    struct fut__exec *serves;   /* the pool this thread is one of, or NULL */
    struct fut__worker *worker; /* the pool's record of this thread */
    struct fut__exec *loop;     /* the loop running here, or NULL */
    unsigned pool_id;           /* for traces; 0 off pool threads */
    /* future.c: the futures whose work runs here, innermost first (more
     * than one only while a waiter helps), and those being freed. */
    struct fut__frame *running;
    future_t *freeing;
    bool freeing_active;
    /* watch.c: the notification queue. */
    bool notifying;
    struct fut__watch *notify_head, *notify_tail;
    /* defer.c: destructors waiting for the notification pass to end. */
    unsigned passes;
    bool deferred_running, user_code_forbidden;
    struct fut__deferred *deferred_head, *deferred_tail;
    /* thread.c: futures made minus futures freed on this thread (only it
     * writes; futures_live_count() sums every thread's), and its place in
     * the list of threads that ever made or freed one. */
    atomic_long live;
    bool registered;
    struct fut__thread *reg_prev, *reg_next;
    /* thread.c, as it registers (and again in a fork()'s child): who the
     * thread is, for reports that name it as gdb's "info threads" does,
     * by its kernel thread id (LWP) and its name. */
    pthread_t handle;
    int lwp;
    /* Published for other threads' wait-cycle checks (thread.c): the
     * futures whose work runs here, outermost first (deeper ones are
     * not shown: nframes says how many there are), and the future this
     * thread is blocked on, set and cleared under the registry's lock. */
    _Atomic(future_t *) runs[4];
    /* ... and, for reports that must not touch a future another thread
     * may free, what each one is: its kind, function and executor. */
    _Atomic(const char *) runs_kind[4];
    _Atomic(fut__fn_ptr) runs_site[4];
    _Atomic(const struct fut__exec *) runs_exec[4];
    /* ... and when it started, in ms of CLOCK_MONOTONIC_COARSE, once
     * fut__timing_tasks is on (0 before). */
    atomic_uint_least64_t runs_since[4];
    atomic_uint nframes;
    future_t *blocked_on;
    bool blocked_timed; /* a timed wait: it ends by itself */
    unsigned blocked_depth; /* nframes when it blocked: frames at or
                               above it run on top of the wait (helped) */
    bool checking_cycle; /* inside fut__cycle_check_begin/end */
    atomic_bool asleep;  /* a library thread waiting for work: dumps */
    _Atomic(const char *) role; /* "core", "blocking", "timer", "loop" */
    atomic_uint role_pool;      /* the pool it is a thread of, or 0 */
    /* thread_report.c: the labels futures_trace_name() gave the frames
     * shown, each pointing into its struct fut__frame, set and cleared
     * under the registry's lock; and the depth (index + 1) of the
     * innermost labelled one, 0 if none, which only this thread reads,
     * so that a frame's end tests one thread-local to know it has one. */
    const char *labels[4];
    unsigned label_top;
    /* The pool's chaining slot (runq.c, worker.c). */
    bool chaining;
    unsigned chain_len;
    future_t *chained;
#if FUT_DEBUG
    pthread_mutex_t *held[8]; /* library locks held: fut__mutex_held() */
    unsigned nheld;
#endif
};

/* initial-exec: one %fs-relative access, no __tls_get_addr() call from
 * the shared library. It needs the library loaded with the program (or
 * dlopen()ed while static TLS space is left, which glibc keeps some of). */
extern _Thread_local struct fut__thread fut__self
    __attribute__((tls_model("initial-exec")));

void fut__thread_register(struct fut__thread *me);

/*
 * Whether task starts read the clock, for futures_dump()'s "for 3.2 s".
 * A clock read costs more than a whole trivial task on some machines
 * (40-250 ns in a VM), so it is off until a program shows it wants dumps:
 * FUTURES_DUMP_SIGNAL, or a first futures_dump() call (thread.c).
 */
extern atomic_bool fut__timing_tasks;
uint64_t fut__coarse_ms(void);

/* The wait-cycle registry (thread.c). */
/* Says this thread blocks on @f until fut__thread_unblock(@saved), which
 * puts back what a wait beneath this one had said (a helped task's wait
 * nests inside the wait that runs it). */
struct fut__blocked {
    future_t *on;
    bool timed;
    unsigned depth;
};
void fut__thread_block(future_t *f, bool timed, struct fut__blocked *saved);
void fut__thread_unblock(const struct fut__blocked *saved);
future_t *fut__blocked_behind(future_t *f, bool *self);
bool fut__cycle_check_begin(void);
void fut__cycle_check_end(void);
/* Says what this thread is, for futures_dump (a static string). */
void fut__thread_set_role(const char *role, unsigned pool_id);
/* Every registered thread, the first with the registry's lock held until
 * fut__registry_drop(): for the reports of thread_report.c. */
struct fut__thread *fut__registry_take(void);
void fut__registry_drop(void);
/* thread_report.c: "futures-1.0 (core thread of pool 1, LWP 4243)", the
 * calling thread's name, role and kernel thread id, for reports. */
void fut__thread_describe_self(char *buf, size_t size);
/* thread_report.c, for the deadlock report: the label of @fr, one of
 * this thread's frames, or NULL; and, for a line about @f, a live future
 * another thread may be running and settling meanwhile, its name, its
 * label and the threads that run it or wait for it
 * (fut__thread_involved says how they read). */
const char *fut__frame_label(const struct fut__frame *fr);
struct fut__involved {
    char name[160];                 /* "a task (fetch) 0x..." */
    char label[FUT_LABEL_SIZE + 3]; /* ` "page 3"`, or "" */
    char who[544];                  /* "run by ...; waited for by ..." */
};
void fut__thread_involved(const future_t *f, struct fut__involved *out);
/* thread_report.c: a line for each frame of each thread that runs work
 * of @exec (NULL: of any executor), and what that thread is blocked on. */
void fut__thread_report(FILE *out, const struct fut__exec *exec);
/* A report (futures_dump, pool_destroy_timeout) is made with locks held
 * and @out may block (a pipe nobody reads, a reader that waits for the
 * library), so it is written to memory first and copied to @out once no
 * lock is held: write to fut__report_begin()'s stream (@out itself if
 * there is no memory), then fut__report_end() returns 0 or an errno. */
struct fut__report {
    FILE *to, *out;
    char *text;
    size_t len;
};
FILE *fut__report_begin(struct fut__report *r, FILE *out);
int fut__report_end(struct fut__report *r);
/* Every thread the library knows: its role and what it does. */
/* ... and of each thread blocked on a future, at most @max: its LWP and
 * that future, with a reference the caller drops (thread_report.c). */
struct fut__waiting {
    int lwp;
    future_t *on;
};
size_t fut__threads_dump(FILE *out, struct fut__waiting *blocked, size_t max);
/* " (name)" of a function for reports, or " (function 0x...)" (name.c). */
void fut__name_function(fut__fn_ptr site, char *buf, size_t size);
/* "a task (fetch) 0x...": a live future's kind and function (name.c). */
void fut__describe(const future_t *f, char *buf, size_t size);
void fut__describe_kind(const future_t *f, char *buf, size_t size);
static inline void fut__thread_enter(future_t *f, const char *kind,
                                     fut__fn_ptr site,
                                     const struct fut__exec *exec)
{
    struct fut__thread *me = &fut__self;
    if (!me->registered)
        fut__thread_register(me);
    unsigned n = atomic_load_explicit(&me->nframes, memory_order_relaxed);
    if (n < 4) {
        atomic_store_explicit(&me->runs_kind[n], kind, memory_order_relaxed);
        atomic_store_explicit(&me->runs_site[n], site, memory_order_relaxed);
        atomic_store_explicit(&me->runs_exec[n], exec, memory_order_relaxed);
        uint64_t since =
            atomic_load_explicit(&fut__timing_tasks, memory_order_relaxed)
                ? fut__coarse_ms()
                : 0;
        atomic_store_explicit(&me->runs_since[n], since, memory_order_relaxed);
        atomic_store_explicit(&me->runs[n], f, memory_order_release);
    }
    atomic_store_explicit(&me->nframes, n + 1, memory_order_release);
}
/* Says whether this thread, one of the library's, sleeps until there is
 * work (idle.c, timer.c, loop.c), for futures_dump. */
static inline void fut__thread_sleeps(bool asleep)
{
    atomic_store_explicit(&fut__self.asleep, asleep, memory_order_relaxed);
}
/* Labels the innermost frame this thread runs, for reports; forgets the
 * label of @frame, which ends (thread_report.c). */
void fut__thread_label(const char *name);
void fut__thread_unlabel(unsigned frame);
static inline void fut__thread_leave(void)
{
    struct fut__thread *me = &fut__self;
    unsigned n = atomic_load_explicit(&me->nframes, memory_order_relaxed) - 1;
    if (__builtin_expect(me->label_top > n, 0))
        fut__thread_unlabel(n); /* frames end innermost first */
    if (n < 4)
        atomic_store_explicit(&me->runs[n], NULL, memory_order_release);
    atomic_store_explicit(&me->nframes, n, memory_order_release);
}

/* Counts a future made (+1) or freed (-1) on this thread (thread.c). */
static inline void fut__count_future(long delta)
{
    struct fut__thread *me = &fut__self;
    if (!me->registered)
        fut__thread_register(me);
    atomic_store_explicit(
        &me->live,
        atomic_load_explicit(&me->live, memory_order_relaxed) + delta,
        memory_order_relaxed);
}

/*
 * Every library mutex is taken and released through these: a failure is a
 * bug (an uninitialised or corrupted lock) and stops the program, as in
 * libuv. In debug builds (make DEBUG=1) they also track the locks this
 * thread holds, so a function whose name ends in _locked asserts that its
 * caller holds the lock (FUT_ASSERT_HELD), as SQLite's mutexHeld() does.
 */
void fut__mutex_lock(pthread_mutex_t *m);
void fut__mutex_unlock(pthread_mutex_t *m);
#if FUT_DEBUG
bool fut__mutex_held(const pthread_mutex_t *m);
#define FUT_ASSERT_HELD(m)                            \
    do {                                              \
        if (!fut__mutex_held(m))                      \
            fut__panic("lock not held in " __FILE__); \
    } while (0)
#else
#define FUT_ASSERT_HELD(m) ((void)0)
#endif

/* ------------------------------------------------------------- stripes -- */

/* A future's lock and condition variable, shared with others by hashing. */
struct fut__stripe {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
};

struct fut__stripe *fut__lock(const future_t *f);
void fut__unlock(struct fut__stripe *s);
int fut__mutex_init(pthread_mutex_t *m);
int fut__cond_init(pthread_cond_t *c);
void fut__deadline(struct timespec *ts, uint64_t ns_from_now);
bool fut__passed(const struct timespec *deadline);
uint64_t fut__now_ns(void);

/*
 * How long a thread that ran out of work, or a waiter, spins before it
 * sleeps: about what a wake-up costs on a virtual machine. Spinning a
 * little saves both sides a futex call when work or an outcome is near.
 */
#ifndef FUT_SPIN_NS
#define FUT_SPIN_NS 30000
#endif

static inline void fut__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ----------------------------------------------------------- the fork -- */

/* How many fork()s made this process (sync.c; fork.c counts them). */
extern atomic_uint fut__generation;

static inline unsigned fut__fork_generation(void)
{
    return atomic_load_explicit(&fut__generation, memory_order_relaxed);
}

/* ------------------------------------------------- allocation, threads -- */

void *fut__calloc(size_t size);
void fut__mem_free(void *p);
/* A future's memory, zeroed; *cls says how to free it (slab.c). */
void *fut__future_calloc(size_t size, unsigned *cls);
void *fut__slab_alloc(size_t size, unsigned *cls); /* no fault injection */
void fut__slab_free(void *p, unsigned cls);
bool fut__slab_caching(void); /* false: every future is calloc()ed */
struct fut__slab_stats {
    size_t carved;   /* slots ever carved from blocks */
    size_t in_depot; /* free slots in the depot */
    size_t in_cache; /* free slots in the calling thread's caches */
    size_t blocks;
};
void fut__slab_stats(struct fut__slab_stats *out); /* for tests */
int fut__thread_start(pthread_t *tid, void *(*fn)(void *), void *arg);
_Noreturn void fut__panic(const char *msg);

/*
 * Fault injection for tests: the @nth call from now (1 = the next one) of the
 * site fails, and when @persistent every call after it too. 0 turns it off.
 */
enum fut__fault_site { FUT_FAULT_ALLOC, FUT_FAULT_THREAD, FUT_FAULT_NSITES };
void fut__fault_set(enum fut__fault_site site, long nth, bool persistent);
long fut__fault_fired(enum fut__fault_site site);

/*
 * Users' destructors (defer.c): run now, or, inside a notification pass or
 * on a thread that forbids user code (the timer's), where a wait in them
 * cannot hold the library up.
 */
void fut__run_user(void (*fn)(void *), void *arg);
void fut__pass_begin(void);
void fut__pass_end(void);
void fut__forbid_user_code(void);

/* Unobserved failures (unobserved.c): @f failed and nobody looked. */
void fut__report_unobserved(const future_t *f);

/* ---------------------------------------------------------------- fork() */

/* Each module's part in fork(): take its locks before, then let go of them
 * in the parent, or start afresh in the child (fork.c). */
enum fut__fork_phase { FUT_FORK_PREPARE, FUT_FORK_PARENT, FUT_FORK_CHILD };
void fut__thread_fork(enum fut__fork_phase phase); /* thread.c, last */
void fut__cycle_fork(enum fut__fork_phase phase);  /* thread.c, first */
void fut__loop_fork(enum fut__fork_phase phase);   /* loop.c */
void fut__pool_fork(enum fut__fork_phase phase);
void fut__timer_fork(enum fut__fork_phase phase);
void fut__timer_after_fork(void);
void fut__trace_fork(enum fut__fork_phase phase);
void fut__unobserved_fork(enum fut__fork_phase phase);
void fut__stripe_fork(enum fut__fork_phase phase);
void fut__owned_fork(enum fut__fork_phase phase);
void fut__slab_fork(enum fut__fork_phase phase);
void fut__gate_fork(enum fut__fork_phase phase);

/*
 * The fork gate (sync.c). The stripes and the result-destructor buckets
 * are too many to hold across fork() (ThreadSanitizer tracks 64 locks per
 * thread), so they are gated locks instead: while a fork() is under way
 * (fut__forking), a thread that takes one lets go at once and waits at the
 * gate until the fork is over. Gated locks are leaves: no code takes
 * another library lock, but the allocator's depot, while it holds one.
 */
extern atomic_bool fut__forking;
void fut__fork_wait(pthread_mutex_t *held); /* unlocks @held, waits */
void fut__gated_fork(pthread_mutex_t *m, enum fut__fork_phase phase);

/* Locks @m, a gated lock; returns pthread_mutex_lock()'s error. One
 * relaxed load after the lock: sync.c explains why that is enough. */
static inline int fut__gated_lock(pthread_mutex_t *m)
{
    for (;;) {
        int rc = pthread_mutex_lock(m);
        if (rc || !atomic_load_explicit(&fut__forking, memory_order_relaxed))
            return rc;
        fut__fork_wait(m);
    }
}

/* ---------------------------------------------------------------- tracing */

/* Brackets one run: enter returns 0 when no trace runs, else a start time
 * that leave needs. */
uint64_t fut__trace_enter(void);
void fut__trace_leave(uint64_t start, const char *kind, int error);
unsigned fut__pool_id_of_thread(void); /* 0 outside pools (thread.c) */

#endif /* FUTURES_BASE_H */
