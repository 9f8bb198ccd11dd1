/*
 * name.c - naming a future in a report: its kind, the function it runs
 * (by dladdr(), where the symbol is exported), its address.
 *
 * Used by the deadlock report (wait.c, deadlock.c) and by the reports of
 * what a thread runs (thread.c). Reads only what a future keeps while it
 * is alive; callers make sure it is.
 */
#define _GNU_SOURCE /* dladdr() */
#include "internal.h"

#include <dlfcn.h>
#include <string.h>

void fut__name_function(fut__fn site, char *buf, size_t size)
{
    Dl_info info;
    void *address;
    memcpy(&address, &site, sizeof address); /* a function's address */
    if (!site)
        snprintf(buf, size, "%s", "");
    else if (dladdr(address, &info) && info.dli_sname)
        snprintf(buf, size, " (%s)", info.dli_sname);
    else
        snprintf(buf, size, " (function %p)", address);
}

void fut__describe(const future_t *f, char *buf, size_t size)
{
    /* A task's function is known until it settles; a callback's always. */
    fut__fn site = f->ops->site && fut__state(f) != FUT_SETTLED
                       ? f->ops->site(f)
                       : NULL;
    char name[128];
    fut__name_function(site, name, sizeof name);
    snprintf(buf, size, "a %s%s %p", f->ops->kind, name, (void *)f);
}

/* "a task 0x...": what may be read of a future that another thread may be
 * settling this very moment (its kind never changes; its fields do). */
void fut__describe_kind(const future_t *f, char *buf, size_t size)
{
    snprintf(buf, size, "a %s %p", f->ops->kind, (void *)f);
}
