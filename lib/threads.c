/*
 * threads.c - starting and ending a pool's threads, core and blocking
 * alike.
 *
 * A thread runs its kind's loop (worker->main_locked: worker.c's or
 * jobs.c's), entered and left with the pool lock held, so that its exit
 * counts before anyone else looks.
 * Threads. A thread that exits puts itself on the exited list, and whoever
 * next starts a thread, or pool_destroy(), joins it. A pool destroyed from
 * one of its own threads cannot join that one: its threads then detach
 * themselves as they exit, and their references keep the pool alive.
 *
 */
#define _GNU_SOURCE /* pthread_setname_np, pthread_getattr_np */
#include "pool_internal.h"

#include <errno.h>
#include <stdio.h>

/* Notes where @w's stack is, for help_has_room() (worker.c). */
static void note_stack(struct fut__worker *w)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
        w->stack_top = (char *)lo + size;
        w->stack_size = size;
    }
    pthread_attr_destroy(&attr);
}

/* What every thread does as it ends, after its loop did its own part. */
static void exit_locked(pool_t *p, struct fut__worker *w)
{
    FUT_ASSERT_HELD(&p->lock);
    if (p->locked.detach_exits) {
        pthread_detach(pthread_self());
        fut__mem_free(w);
    } else {
        w->next = p->locked.exited;
        p->locked.exited = w;
    }
    if (p->locked.nlive + p->blocking.live == 0)
        pthread_cond_broadcast(&p->ended);
}

static void *thread_main(void *arg)
{
    struct fut__worker *w = arg;
    pool_t *p = w->pool;
    fut__self.worker = w;
    fut__self.serves = &p->exec;
    fut__self.pool_id = p->id;
    fut__thread_set_role(w->blocking ? "blocking" : "core", p->id);
    note_stack(w);

    fut__pool_lock(p);
    char name[16];
    snprintf(name, sizeof name, "futures-%u%c%u", p->id,
             w->blocking ? 'b' : '.', p->locked.next_thread++);
    pthread_setname_np(pthread_self(), name);
    w->main_locked(p, w);
    exit_locked(p, w);
    fut__pool_unlock(p);
    fut__pool_release(p); /* the thread's */
    return NULL;
}

/* A record for a new thread of @p, which will run @main_locked; NULL,
 * with errno, if there is no memory. */
struct fut__worker *
fut__worker_new(pool_t *p, void (*main_locked)(pool_t *, struct fut__worker *))
{
    struct fut__worker *w = fut__calloc(sizeof *w);
    if (w) {
        w->pool = p;
        w->main_locked = main_locked;
    }
    return w;
}

/* Starts @w's thread, which owns a reference to the pool the caller has
 * taken for it; 0 or the error of the start. */
int fut__thread_launch(struct fut__worker *w)
{
    return fut__thread_start(&w->thread, thread_main, w);
}

/* Another thread is alive: keep the peak for pool_stats(). */
void fut__note_peak_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    size_t alive = p->locked.nlive + p->blocking.live;
    if (alive > p->locked.peak)
        p->locked.peak = alive;
}

/* Joins the threads on @list, which have ended or are about to. */
void fut__join_all(struct fut__worker *list)
{
    while (list) {
        struct fut__worker *next = list->next;
        pthread_join(list->thread, NULL);
        fut__mem_free(list);
        list = next;
    }
}

struct fut__worker *fut__take_exited_locked(pool_t *p)
{
    FUT_ASSERT_HELD(&p->lock);
    struct fut__worker *list = p->locked.exited;
    p->locked.exited = NULL;
    return list;
}
