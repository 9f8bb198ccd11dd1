/*
 * pool_internal.h - what a pool's files share, and nobody else sees:
 * pool.c (the public face), runq.c (where work waits), worker.c (a core
 * thread's loop), idle.c (sleeping and waking), threads.c (starting and
 * ending threads), jobs.c (blocking jobs) and ring.c (a core thread's own
 * queue). The rest of the library knows a pool only as a struct fut__exec
 * (internal.h); docs/internals.md walks a task through these files.
 *
 * The pool's fields are grouped by what guards them, as Tokio's scheduler
 * groups its Shared, Synced and Core state: a field's lock is read off its
 * path (p->locked.nlive, p->inject.queue, p->shared.state). Lock order:
 * p->lock, then p->inject.lock; both are leaves apart from that, and no
 * thread holds either while it runs a future.
 */
#ifndef FUTURES_POOL_INTERNAL_H
#define FUTURES_POOL_INTERNAL_H

#include "internal.h"

#include <stdio.h>

/* -------------------------------------------------------- queued since -- */

/*
 * When queued work was queued (age.c): stamps in ms, 0 for not known, and
 * a log of them for a FIFO queue that numbers its pushes.
 */
#define FUT_AGE_LOG 16

struct fut__age_log {
    unsigned n;
    struct {
        uint32_t seq, ms; /* work number seq and on was queued at ms */
    } e[FUT_AGE_LOG];
};

uint32_t fut__queued_stamp(void); /* now, or 0 while ages are not kept */
/* Notes work number @seq, stamped @ms; @oldest is the oldest still queued. */
void fut__age_note(struct fut__age_log *log, uint32_t seq, uint32_t ms,
                   uint32_t oldest);
uint32_t fut__age_at(const struct fut__age_log *log, uint32_t seq);
/* Work handed back in front of work number @head, renumbered from @front;
 * @end is the number the next push takes. */
void fut__age_hand_back(struct fut__age_log *log, uint32_t front,
                        uint32_t head, uint32_t end, uint32_t ms);

/* The oldest of some stamps, for a report. */
struct fut__oldest {
    bool known, unknown; /* some stamp was known, some was not */
    uint32_t stamp;      /* the oldest known */
};
void fut__oldest_add(struct fut__oldest *o, uint32_t stamp);
/* The stamps @log holds of the queued work numbered @head up to @end. */
void fut__age_oldest(const struct fut__age_log *log, uint32_t head,
                     uint32_t end, struct fut__oldest *o);
void fut__oldest_print(const struct fut__oldest *o, FILE *out);

/* ------------------------------------------------------------ the ring -- */

/*
 * A core thread's own run queue (ring.c): one thread appends, any thread
 * takes from the front, without locks. The rest of the struct belongs to
 * the pool and outlives the threads that own it in turn.
 */
#define FUT_RING_SIZE 256

struct fut__ring {
    _Alignas(64) atomic_uint head; /* taken up to here: compare-and-swap */
    _Alignas(64) atomic_uint tail; /* filled up to here: owner only */
    atomic_uint executing;         /* owner only: futures it is running */
    atomic_ulong completed;        /* owner only: futures it ran */
    /* Pool lock. A live core thread owns the ring (a new thread reuses one
     * nobody owns); `busy` says its owner holds or looks for work, which a
     * draining pool must wait out before it stops (idle.c). */
    bool owned;
    bool busy;
    _Alignas(64) _Atomic(future_t *) slot[FUT_RING_SIZE];
    atomic_uint stamp[FUT_RING_SIZE]; /* when each slot's was queued */
};

void fut__ring_init(struct fut__ring *r);
/* Appends @f, queued at @stamp (age.c); false if the ring is full. */
bool fut__ring_push(struct fut__ring *r, future_t *f, uint32_t stamp);
future_t *fut__ring_pop(struct fut__ring *r);
future_t *fut__ring_steal(struct fut__ring *from, struct fut__ring *to);
size_t fut__ring_len(const struct fut__ring *r);
void fut__ring_oldest(struct fut__ring *r, struct fut__oldest *o);

/* ------------------------------------------------------------ the pool -- */

enum fut__pool_state {
    FUT_POOL_OPEN,      /* accepts submissions and continuations */
    FUT_POOL_DRAINING,  /* accepts continuations, runs what is queued */
    FUT_POOL_CANCELLED, /* queue cancelled; running work finishes */
    FUT_POOL_STOPPED    /* drained; threads exit */
};

/* A pool's thread, core or blocking (threads.c). */
struct fut__worker {
    pthread_t thread;
    pool_t *pool;
    /* Its loop, entered and left with the pool lock held: the core loop
     * (worker.c) or the blocking one (jobs.c). */
    void (*main_locked)(pool_t *p, struct fut__worker *w);
    bool blocking;
    bool searching;           /* counted in shared.nsearching (idle.c) */
    unsigned turns;           /* find_work's count: INJECT_EVERY, steal order */
    struct fut__ring *ring;   /* core threads only */
    char *stack_top;          /* where its stack starts (it grows down) */
    size_t stack_size;        /* for help_has_room() (worker.c) */
    unsigned helping;         /* tasks it runs nested in its own waits */
    bool finishing;           /* a blocking thread settling its job: it
                                 will take the next one itself (jobs.c) */
    struct fut__worker *next; /* on the pool's exited list */
};

struct pool {
    /* Set when the pool is made and read everywhere after. */
    struct fut__exec exec;
    unsigned id;         /* for thread names and traces */
    unsigned generation; /* fut__fork_generation() when it was made */
    bool is_default;
    pool_t *reg_prev, *reg_next; /* every live pool (pools.c), its lock */
    /* Thieves read rings[i] below shared.nrings; a slot, once filled
     * under the lock, never changes. */
    struct fut__ring **rings;
    size_t rings_cap;

    /* Read without a lock; written as each says. Read on every submission
     * and search, so the counters that change all the time (and refs,
     * below) sit on cache lines of their own. */
    struct {
        atomic_int state;      /* enum fut__pool_state; under both locks */
        atomic_size_t nrings;  /* rings in use, for thieves */
        atomic_bool jobs_hint; /* jobs the core threads should take */
        _Alignas(64) atomic_uint nsearching; /* awake with no work */
        atomic_uint nsleeping; /* core threads asleep; under lock */
    } shared;

    /* Creator, live threads, futures it runs (pool_exec.c). */
    _Alignas(64) atomic_uint refs;

    /* What other threads submit, for the core threads (runq.c). */
    struct {
        _Alignas(64) pthread_mutex_t lock;
        struct fut__queue queue;
        atomic_size_t len; /* queue.len, for a look without the lock */
        uint32_t pushed;   /* work ever queued here: numbers it (age.c) */
        struct fut__age_log ages;
    } inject;

    /* Under `lock`. */
    _Alignas(64) pthread_mutex_t lock;
    pthread_cond_t work;  /* idle core threads wait here */
    pthread_cond_t ended; /* pool_destroy() waits for the last thread */
    struct {
        size_t ncore;    /* core threads the pool keeps able to run tasks */
        size_t nlive;    /* core threads alive, stand-ins included */
        size_t nwaiting; /* core threads blocked in future_wait() */
        unsigned wake_tokens; /* wake-ups sent, not yet taken (idle.c) */
        unsigned next_thread; /* for thread names */
        size_t peak;          /* most threads alive at once */
        uint64_t idle_ns;     /* how long a thread beyond the core lingers */
        bool detach_exits;    /* destroyed from inside: nobody will join */
        struct fut__worker *exited; /* ended, not joined yet */
    } locked;

    /* Blocking jobs and their threads (jobs.c), under `lock` too. */
    struct {
        pthread_cond_t work; /* idle blocking threads wait here */
        struct fut__queue jobs;
        size_t live, idle, limit;
        size_t waiting;    /* of the live, those whose job waits */
        size_t starting;   /* threads on their way */
        bool start_failed; /* the last thread start failed */
        unsigned failures; /* thread starts that failed */
        size_t running;    /* jobs running (tasks count in the rings) */
        atomic_size_t finishing; /* of those, settling (jobs.c) */
        uint64_t completed;
        uint32_t pushed; /* jobs ever queued: numbers them (age.c) */
        struct fut__age_log ages;
    } blocking;
};

static inline int fut__pool_state(const pool_t *p)
{
    return atomic_load_explicit(&((pool_t *)p)->shared.state,
                                memory_order_acquire);
}

/* Does @p still run what reaches it: queued work, continuations? */
static inline bool fut__pool_runs_work(const pool_t *p)
{
    int state = fut__pool_state(p);
    return state == FUT_POOL_OPEN || state == FUT_POOL_DRAINING;
}

static inline bool fut__pool_winding_down(const pool_t *p)
{
    return !fut__pool_runs_work(p);
}

/* Made before a fork(), in the parent: its threads do not exist here. */
static inline bool fut__pool_is_stale(const pool_t *p)
{
    return p->generation != fut__fork_generation();
}

static inline void fut__pool_lock(pool_t *p)
{
    fut__mutex_lock(&p->lock);
}

static inline void fut__pool_unlock(pool_t *p)
{
    fut__mutex_unlock(&p->lock);
}

/* References go through the executor interface, so that the files below
 * pool.c never name the function that frees a pool. */
static inline void fut__pool_retain(pool_t *p)
{
    p->exec.ops->retain(&p->exec);
}

static inline void fut__pool_release(pool_t *p)
{
    p->exec.ops->release(&p->exec);
}

/* Every live pool, for reports (pools.c). */
void fut__pools_add(pool_t *p);
void fut__pools_remove(pool_t *p);
void fut__pools_report(FILE *out);
void fut__pools_fork(enum fut__fork_phase phase);
pool_t *fut__default_pool_take(void); /* pool.c */
/* One line on @p's threads and queues (pools.c). */
void fut__pool_describe(pool_t *p, FILE *out);

static inline size_t fut__pool_nrings(pool_t *p)
{
    return atomic_load_explicit(&p->shared.nrings, memory_order_acquire);
}

/* The pool whose thread this is, or NULL. */
static inline struct fut__worker *fut__current_worker(void)
{
    return fut__self.worker;
}

static inline bool fut__on_pool_thread(const pool_t *p)
{
    struct fut__worker *w = fut__current_worker();
    return w && w->pool == p;
}

/* pool_exec.c: the executor operations, and freeing. */
extern const struct fut__exec_ops fut__pool_exec_ops;
void fut__pool_free(pool_t *p);

/* runq.c: where core work waits, and how it gets there. */
bool fut__submit(pool_t *p, future_t *f, bool blocking);
bool fut__queue_on(pool_t *p, future_t *f);
void fut__pool_schedule(pool_t *p, future_t *f); /* the executor's door */
future_t *fut__take_injected(pool_t *p, struct fut__worker *w, bool take);
future_t *fut__steal(pool_t *p, struct fut__worker *w);
void fut__cancel_queued(pool_t *p); /* after POOL_CANCEL */
void fut__dispose(future_t *f);
void fut__pool_counts_locked(pool_t *p, size_t *queued, size_t *running,
                             uint64_t *completed);
void fut__pool_oldest_locked(pool_t *p, struct fut__oldest *o);

/* idle.c: searching, sleeping, waking, stopping. */
bool fut__core_work_visible(pool_t *p);
void fut__wake_one_locked(pool_t *p);
void fut__wake_if_needed(pool_t *p);
void fut__start_searching(pool_t *p, struct fut__worker *w);
void fut__stop_searching(pool_t *p, struct fut__worker *w, bool found);
bool fut__spin_for_work(pool_t *p);
bool fut__park_locked(pool_t *p, struct fut__worker *w);
bool fut__idle_wait_locked(pool_t *p, pthread_cond_t *cond, bool timed);
void fut__maybe_stop_locked(pool_t *p);

/* threads.c: one start and one end for every kind of thread. */
struct fut__worker *
fut__worker_new(pool_t *p, void (*main_locked)(pool_t *, struct fut__worker *));
int fut__thread_launch(struct fut__worker *w);
void fut__note_peak_locked(pool_t *p);
struct fut__worker *fut__take_exited_locked(pool_t *p);
void fut__join_all(struct fut__worker *list);

/* worker.c: core threads. */
int fut__start_core_locked(pool_t *p);
enum fut__block fut__block_begin(void);
bool fut__block_retry(void); /* from FUT_BLOCK_HELP to COMPENSATED? */
void fut__block_end(enum fut__block how);
enum fut__help fut__help_one(void);

/* jobs.c: blocking jobs; the pool lock is held where it says _locked. */
void fut__push_job_locked(pool_t *p, future_t *f, uint32_t stamp);
future_t *fut__take_job_for_core(pool_t *p);
void fut__job_wait_begin(pool_t *p); /* a blocking job waits: lock free */
void fut__job_wait_end(pool_t *p);
void fut__update_jobs_hint_locked(pool_t *p);

#endif /* FUTURES_POOL_INTERNAL_H */
