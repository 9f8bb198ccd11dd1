/*
 * deadlock.c - how a wait that would never end describes itself.
 *
 * wait.c asks watch.c whether the future it is about to block on can
 * settle only once the waiting thread moves on (fut__needs_this_thread):
 * then it fails with EDEADLK instead. With FUTURES_DEADLOCK=abort in the
 * environment, it writes what the walk found to stderr first, one line a
 * future (its kind, the function it runs where dladdr() names one, and how
 * it is held up), and aborts, for a debugger or a CI log. This file only
 * names futures and reads the setting; it calls nothing above it.
 */
#include "internal.h"
#include "walk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* FUTURES_DEADLOCK=abort: a detected cycle is reported, then aborts. */
bool fut__deadlock_aborts(void)
{
    const char *v = getenv("FUTURES_DEADLOCK");
    return v && strcmp(v, "abort") == 0;
}

/* The head of the report: what this thread would wait for, and runs. */
void fut__deadlock_report_head(const future_t *f)
{
    char name[160], me[128];
    struct fut__involved it;
    fut__thread_describe_self(me, sizeof me);
    fut__thread_involved(f, &it);
    fprintf(stderr,
            "libfutures: deadlock: this thread, %s, would wait for ever for "
            "%s%s:\n",
            me, it.name, it.label);
    for (const struct fut__frame *fr = fut__self.running; fr; fr = fr->outer) {
        const char *own = fut__frame_label(fr);
        fut__describe(fr->f, name, sizeof name);
        fprintf(stderr, "  this thread runs %s%s%s%s\n", name, own ? " \"" : "",
                own ? own : "", own ? "\"" : "");
    }
}
