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

struct fut__deferred {
    void (*fn)(void *);
    void *arg;
    struct fut__deferred *next;
};

void fut__forbid_user_code(void)
{
    fut__self.user_code_forbidden = true;
}

/* How a destructor leaves a thread that forbids user code: as a task of
 * the default pool, which pool.c's side registers (the core names no
 * pool). Returns false, with @fn not run, if it cannot. */
static bool (*offload)(void (*fn)(void *), void *arg);

void fut__set_offload(bool (*fn)(void (*)(void *), void *))
{
    offload = fn;
}

void fut__run_user(void (*fn)(void *), void *arg)
{
    if (!fut__self.user_code_forbidden && fut__self.passes == 0) {
        fn(arg);
        return;
    }
    if (fut__self.user_code_forbidden) {
        if (!offload || !offload(fn, arg))
            fn(arg); /* never lost; see the top */
        return;
    }
    struct fut__deferred *d = fut__calloc(sizeof *d);
    if (!d) {
        fn(arg); /* never lost; see the top */
        return;
    }
    *d = (struct fut__deferred){fn, arg, NULL};
    if (fut__self.deferred_tail)
        fut__self.deferred_tail->next = d;
    else
        fut__self.deferred_head = d;
    fut__self.deferred_tail = d;
}

void fut__pass_begin(void)
{
    fut__self.passes++;
}

/* The outermost pass is over: runs what waited for it, in order. A
 * destructor that settles something starts and ends passes of its own;
 * what those defer joins this loop rather than nesting a new one. */
void fut__pass_end(void)
{
    if (--fut__self.passes != 0 || fut__self.deferred_running)
        return;
    fut__self.deferred_running = true;
    struct fut__deferred *d;
    while ((d = fut__self.deferred_head) != NULL) {
        fut__self.deferred_head = d->next;
        if (!fut__self.deferred_head)
            fut__self.deferred_tail = NULL;
        d->fn(d->arg);
        fut__mem_free(d);
    }
    fut__self.deferred_running = false;
}
