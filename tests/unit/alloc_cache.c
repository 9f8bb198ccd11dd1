/*
 * The futures' allocator (lib/slab.c): memory comes back zeroed, moves
 * between threads through the depot, never serves one slot twice, loses
 * nothing when a thread ends, and fails at the same fault site as before.
 *
 * Under ASan, TSan and valgrind, or with FUTURES_NO_CACHE, the allocator is
 * plain calloc()/free(): the tests about behaviour still run, the ones
 * about the depot's books check only that nothing was carved.
 */
#include "helpers.h"
#include "internal.h" /* the allocator and its test hook */

#include <errno.h>
#include <string.h>

static const size_t sizes[] = {56, 72, 128, 208, 40, 100, 300};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static struct fut__slab_stats stats(void)
{
    struct fut__slab_stats s;
    fut__slab_stats(&s);
    return s;
}

/* Nothing free was lost: every slot ever carved is in the depot or in this
 * thread's caches, when no object is live. */
static void expect_all_slots_back(void)
{
    struct fut__slab_stats s = stats();
    if (!fut__slab_caching()) {
        cr_assert_eq(s.carved, 0, "carved %zu slots with the cache off",
                     s.carved);
        return;
    }
    cr_assert_eq(s.in_depot + s.in_cache, s.carved,
                 "%zu in the depot + %zu cached != %zu carved", s.in_depot,
                 s.in_cache, s.carved);
}

CheckedTest(alloc_cache, memory_comes_back_zeroed)
{
    for (size_t i = 0; i < NSIZES; i++) {
        for (int round = 0; round < 3; round++) {
            unsigned cls;
            unsigned char *p = fut__slab_alloc(sizes[i], &cls);
            cr_assert_not_null(p);
            for (size_t b = 0; b < sizes[i]; b++)
                cr_assert_eq(p[b], 0, "size %zu, byte %zu not zero", sizes[i],
                             b);
            memset(p, 0xa5, sizes[i]); /* the next round reuses it */
            fut__slab_free(p, cls);
        }
    }
    expect_all_slots_back();
}

CheckedTest(alloc_cache, futures_are_zeroed_when_reused)
{
    /* A settled future is made and freed on this thread: the second one
     * reuses the first's slot, and must not see its value. */
    future_t *f = future_resolved(U2P(42));
    cr_assert_not_null(f);
    future_release(f);
    future_t *g = future_failed(EIO);
    cr_assert_not_null(g);
    cr_assert_eq(future_wait(g, NULL), EIO);
    future_release(g);
    expect_all_slots_back();
}

/* ------------------------------------------------- freed on another thread */

#define HANDED 1000

struct handoff {
    void *objs[HANDED];
    unsigned cls[HANDED];
};

static void *free_all(void *arg)
{
    struct handoff *h = arg;
    for (int i = 0; i < HANDED; i++)
        fut__slab_free(h->objs[i], h->cls[i]);
    return NULL;
}

CheckedTest(alloc_cache, objects_freed_on_one_thread_are_reused_on_another)
{
    static struct handoff h;
    for (int i = 0; i < HANDED; i++) {
        h.objs[i] = fut__slab_alloc(56, &h.cls[i]);
        cr_assert_not_null(h.objs[i]);
    }
    size_t carved = stats().carved;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_all, &h), 0);
    pthread_join(t, NULL);
    expect_all_slots_back();

    /* All HANDED came back through the depot: none needs a new slot. */
    for (int i = 0; i < HANDED; i++) {
        h.objs[i] = fut__slab_alloc(56, &h.cls[i]);
        cr_assert_not_null(h.objs[i]);
    }
    cr_assert_eq(stats().carved, carved, "carved again instead of reusing");
    for (int i = 0; i < HANDED; i++)
        fut__slab_free(h.objs[i], h.cls[i]);
    expect_all_slots_back();
}

CheckedTest(alloc_cache, tasks_made_here_and_freed_by_workers_come_back)
{
    pool_t *pool = pool_create(2);
    cr_assert_not_null(pool);
    atomic_int runs = 0;
    for (int round = 0; round < 20; round++) {
        future_t *fs[500];
        for (int i = 0; i < 500; i++) {
            fs[i] = pool_submit(pool, count_task, &runs);
            cr_assert_not_null(fs[i]);
        }
        for (int i = 0; i < 500; i++) {
            cr_assert_eq(future_wait(fs[i], NULL), 0);
            future_release(fs[i]);
        }
    }
    pool_destroy(pool); /* its threads end: their caches go to the depot */
    cr_assert_eq(atomic_load(&runs), 20 * 500);
    expect_no_live_futures();
    expect_all_slots_back();
    /* 10,000 tasks, at most about 1,000 at once: slots were reused. */
    cr_assert_lt(stats().carved, 4000, "carved %zu slots", stats().carved);
}

/* --------------------------------------------------- concurrent traffic -- */

#define NTHREADS 4
#define ROUNDS   20000
#define KEEP     48   /* objects each thread holds at a time */
#define SHARED   256  /* objects passed between threads */

struct obj {
    void *p;
    unsigned cls;
    size_t size;
    uint64_t stamp; /* unique among all objects ever made here */
};

static struct {
    pthread_mutex_t lock;
    struct obj objs[SHARED];
    int n;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Counted, not asserted: Criterion's assertions belong to the test's
 * own thread. */
static atomic_long damaged, failed;

/* Fills an object with a stamp no other object has, then bytes from it,
 * so an object served twice shows up as a changed stamp or filling. */
static struct obj make(unsigned id, unsigned seq)
{
    struct obj o = {.size = sizes[(id + seq) % NSIZES]};
    o.stamp = (uint64_t)id << 32 | seq;
    o.p = fut__slab_alloc(o.size, &o.cls);
    if (!o.p) {
        atomic_fetch_add(&failed, 1);
        abort();
    }
    memcpy(o.p, &o.stamp, sizeof o.stamp);
    memset((char *)o.p + sizeof o.stamp, (int)(o.stamp % 251),
           o.size - sizeof o.stamp);
    return o;
}

static void check_and_free(struct obj o)
{
    const unsigned char *b = o.p;
    uint64_t stamp;
    memcpy(&stamp, b, sizeof stamp);
    bool ok = stamp == o.stamp;
    for (size_t i = sizeof stamp; ok && i < o.size; i++)
        ok = b[i] == o.stamp % 251;
    if (!ok)
        atomic_fetch_add(&damaged, 1);
    fut__slab_free(o.p, o.cls);
}

/* Trades @o for an object another thread made, if the pile has one. */
static struct obj trade(struct obj o)
{
    pthread_mutex_lock(&shared.lock);
    if (shared.n == SHARED) {
        struct obj other = shared.objs[--shared.n];
        shared.objs[shared.n++] = o;
        o = other;
    } else {
        shared.objs[shared.n++] = o;
        o.p = NULL;
    }
    pthread_mutex_unlock(&shared.lock);
    return o;
}

static void *churn(void *arg)
{
    unsigned id = (unsigned)P2U(arg);
    struct obj keep[KEEP];
    for (int i = 0; i < KEEP; i++)
        keep[i] = make(id, (unsigned)i);
    for (unsigned seq = 0; seq < ROUNDS; seq++) {
        unsigned i = (seq * 7 + id) % KEEP;
        struct obj old = keep[i];
        keep[i] = make(id, seq);
        if (seq % 3 == 0)
            old = trade(old);
        if (old.p)
            check_and_free(old);
    }
    for (int i = 0; i < KEEP; i++)
        check_and_free(keep[i]);
    return NULL;
}

CheckedTest(alloc_cache, concurrent_threads_never_share_a_live_object,
            .timeout = 120)
{
    pthread_t t[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, churn, U2P(i + 1)), 0);
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    while (shared.n > 0)
        check_and_free(shared.objs[--shared.n]);
    cr_assert_eq(atomic_load(&failed), 0);
    cr_assert_eq(atomic_load(&damaged), 0, "%ld objects were overwritten",
                 atomic_load(&damaged));
    expect_all_slots_back();
}

/* ----------------------------------------------------------- thread exit */

#define FREED_LATE 100

static pthread_key_t late_key;
static struct handoff late;

/* Runs after slab.c's own destructor (its key was made first): what the
 * thread frees and allocates now must go straight to the depot. */
static void free_late(void *arg)
{
    (void)arg;
    for (int i = 0; i < FREED_LATE; i++)
        fut__slab_free(late.objs[i], late.cls[i]);
    unsigned cls;
    void *p = fut__slab_alloc(72, &cls);
    if (!p)
        atomic_fetch_add(&failed, 1);
    else
        fut__slab_free(p, cls);
}

/* Allocates and frees 1,000 objects of each class, then ends with full
 * caches; with @late, frees FREED_LATE more once slab.c's destructor ran. */
static void *fill_cache_and_exit(void *late_too)
{
    void *objs[1000];
    unsigned cls[1000];
    for (int i = 0; i < 1000; i++)
        objs[i] = fut__slab_alloc(sizes[i % 4], &cls[i]);
    for (int i = 0; late_too && i < FREED_LATE; i++)
        late.objs[i] = fut__slab_alloc(128, &late.cls[i]);
    /* slab.c's key exists now; this one comes after it. */
    if (late_too && (pthread_key_create(&late_key, free_late) != 0 ||
                     pthread_setspecific(late_key, &late) != 0))
        atomic_fetch_add(&failed, 1);
    for (int i = 0; i < 1000; i++)
        fut__slab_free(objs[i], cls[i]);
    return NULL;
}

static void end_a_thread_with_full_caches(bool late_too)
{
    pthread_t t;
    cr_assert_eq(
        pthread_create(&t, NULL, fill_cache_and_exit, late_too ? &late : NULL),
        0);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&failed), 0);
    struct fut__slab_stats s = stats();
    if (fut__slab_caching())
        cr_assert_gt(s.carved, 1000);
    cr_assert_eq(s.in_cache, 0);
    expect_all_slots_back();
}

CheckedTest(alloc_cache, a_thread_ending_with_full_caches_loses_nothing)
{
    end_a_thread_with_full_caches(false);
}

CheckedTest(alloc_cache, what_an_ending_thread_frees_late_goes_to_the_depot)
{
    end_a_thread_with_full_caches(true);
}

/* ------------------------------------------------------ fault injection */

CheckedTest(alloc_cache, fault_injection_fires_on_a_cache_hit)
{
    future_release(future_resolved(NULL)); /* leaves its slot cached */
    size_t cached = stats().in_cache;
    if (fut__slab_caching())
        cr_assert_gt(cached, 0);

    long fired = fut__fault_fired(FUT_FAULT_ALLOC);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    errno = 0;
    cr_assert_null(future_resolved(NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(fut__fault_fired(FUT_FAULT_ALLOC), fired + 1);
    cr_assert_eq(stats().in_cache, cached, "the failed call took a slot");

    future_t *f = future_resolved(NULL); /* the countdown is spent */
    cr_assert_not_null(f);
    if (fut__slab_caching())
        cr_assert_eq(stats().in_cache, cached - 1);
    future_release(f);
    expect_all_slots_back();
}

CheckedTest(alloc_cache, futures_no_cache_means_plain_calloc)
{
    /* Read once, at the first allocation: this process has made none. */
    setenv("FUTURES_NO_CACHE", "1", 1);
    cr_assert_not(fut__slab_caching());
    future_t *f = future_resolved(U2P(7));
    cr_assert_not_null(f);
    future_release(f);
    cr_assert_eq(stats().carved, 0);
    cr_assert_eq(stats().blocks, 0);
}

/* ------------------------------------------------------ bounded memory -- */

static int pass(void *value, void *arg, void **result)
{
    (void)arg;
    *result = value;
    return 0;
}

CheckedTest(alloc_cache, cancelled_continuations_reuse_one_slot, .timeout = 60)
{
    /* memory.c checks the same with plain calloc(); here each cancelled
     * continuation's slot is the next one's. */
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    size_t carved = 0;
    for (int i = 0; i < 100000; i++) {
        future_t *g = future_then(f, pass, NULL);
        cr_assert(g && future_cancel(g));
        future_release(g);
        if (i == 0)
            carved = stats().carved;
    }
    cr_assert_eq(stats().carved, carved, "cancelled continuations carved %zu",
                 stats().carved - carved);
    future_release(f);
    promise_release(p);
    expect_all_slots_back();
}

#define MANY 100000

/* Attaches MANY continuations to one promise's future, settles it, waits
 * for each and releases them all. */
static void fan_out(future_t **gs)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    for (int i = 0; i < MANY; i++) {
        gs[i] = future_then(f, pass, NULL);
        cr_assert_not_null(gs[i]);
    }
    cr_assert_eq(promise_resolve(p, U2P(1)), 0);
    for (int i = 0; i < MANY; i++) {
        cr_assert_eq(future_wait(gs[i], NULL), 0);
        future_release(gs[i]);
    }
    future_release(f);
    promise_release(p);
}

CheckedTest(alloc_cache, memory_stays_at_the_peak, .timeout = 120)
{
    /* The second fan-out of the same size finds every slot it needs free:
     * the allocator's memory is bounded by the most futures alive at once,
     * whichever threads freed them. */
    future_t **gs = malloc(MANY * sizeof *gs);
    cr_assert_not_null(gs);
    fan_out(gs);
    expect_no_live_futures();
    size_t carved = stats().carved;
    if (fut__slab_caching())
        cr_assert_geq(carved, MANY);
    fan_out(gs);
    expect_no_live_futures();
    /* Worker threads may keep a few in their caches (CACHE_MAX each). */
    cr_assert_lt(stats().carved - carved, MANY / 100, "carved %zu more slots",
                 stats().carved - carved);
    free(gs);
}
