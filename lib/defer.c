/*
 * defer.c - running users' destructors where a wait cannot block the
 * library.
 *
 * A destructor (an _ex argument's, a result's) is user code, and user code
 * may call anything, future_wait() included. Some of the places where the
 * library decides that a destructor must run are places where a wait
 * would wait for the library itself:
 *
 *   the timer thread      fires every delay and timeout; a destructor
 *                         there that waits for a delay waits for itself;
 *   a notification pass   (watch.c) tells a settled future's watchers one
 *                         after another; a destructor run inside it that
 *                         waits for a future those later notifications
 *                         settle waits for the pass it interrupted.
 *
 * So fut__run_user() runs the destructor at once only where neither holds.
 * Inside a notification pass it is kept on a per-thread list and run as
 * the outermost pass ends, on the same thread, before the call that
 * settled anything returns. On the timer thread (and any other thread
 * that forbids user code) it goes to the default pool as a task of its
 * own. Either way it runs exactly once. If that needs memory or a thread
 * and there is none, it runs where it stands: a destructor is never lost,
 * and only one that waits could then hang.
 */
#include "internal.h"

struct deferred {
    void (*fn)(void *);
    void *arg;
    struct deferred *next;
};

static _Thread_local struct {
    struct deferred *head, *tail;
    unsigned passes;  /* notification passes this thread is inside */
    bool running;     /* running the list: later ones join the same loop */
    bool forbidden;   /* the timer thread: never run user code here */
} here;

void fut__forbid_user_code(void)
{
    here.forbidden = true;
}

static int run_deferred_task(void *arg, void **result)
{
    struct deferred *d = arg;
    (void)result;
    d->fn(d->arg);
    return 0;
}

static void free_deferred(void *arg)
{
    fut__mem_free(arg);
}

/* Hands @d to the default pool; false, with @d freed, if it cannot. */
static bool send_to_pool(struct deferred *d)
{
    pool_t *pool = pool_default();
    if (!pool) {
        fut__mem_free(d);
        return false;
    }
    future_t *f = pool_submit_ex(pool, run_deferred_task, d, free_deferred);
    future_release(f); /* nobody waits for it: fire and forget */
    return f != NULL;
}

void fut__run_user(void (*fn)(void *), void *arg)
{
    if (!here.forbidden && here.passes == 0) {
        fn(arg);
        return;
    }
    struct deferred *d = fut__calloc(sizeof *d);
    if (!d) {
        fn(arg); /* never lost; see the top */
        return;
    }
    *d = (struct deferred){fn, arg, NULL};
    if (here.forbidden) {
        if (!send_to_pool(d)) /* which freed @d: fn and arg are copies */
            fn(arg);
        return;
    }
    if (here.tail)
        here.tail->next = d;
    else
        here.head = d;
    here.tail = d;
}

void fut__pass_begin(void)
{
    here.passes++;
}

/* The outermost pass is over: runs what waited for it, in order. A
 * destructor that settles something starts and ends passes of its own;
 * what those defer joins this loop rather than nesting a new one. */
void fut__pass_end(void)
{
    if (--here.passes != 0 || here.running)
        return;
    here.running = true;
    struct deferred *d;
    while ((d = here.head) != NULL) {
        here.head = d->next;
        if (!here.head)
            here.tail = NULL;
        d->fn(d->arg);
        fut__mem_free(d);
    }
    here.running = false;
}
