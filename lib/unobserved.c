/*
 * unobserved.c - failures nobody looked at.
 *
 * A task that fails while its caller has moved on is a bug that would
 * otherwise be silent. future_release() asks here, as a failed future's last
 * reference goes, whether anyone waited for it or handed it on
 * (FUT_OBSERVED); if not, the handler hears of it. Cancellations are asked
 * for, so they are never reported.
 */
#define _GNU_SOURCE /* dladdr(), strerrorname_np() */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static futures_unobserved_fn handler = futures_unobserved_print;
static void *handler_arg;

void futures_set_unobserved_handler(futures_unobserved_fn fn, void *arg)
{
    fut__mutex_lock(&handler_lock);
    handler = fn;
    handler_arg = arg;
    fut__mutex_unlock(&handler_lock);
}

void fut__report_unobserved(const future_t *f)
{
    if (!fut__is_settled(f) || f->error == 0 || f->error == ECANCELED ||
        (atomic_load_explicit(&((future_t *)f)->flags, memory_order_relaxed) &
         FUT_OBSERVED))
        return;
    fut__mutex_lock(&handler_lock);
    futures_unobserved_fn fn = handler;
    void *arg = handler_arg;
    fut__mutex_unlock(&handler_lock);
    if (fn) {
        struct futures_failure failure = {f->error, f->ops->kind,
                                          fut__failure_site(f),
                                          fut__failure_message(f)};
        fn(&failure, arg);
    }
}

void fut__unobserved_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE)
        fut__mutex_lock(&handler_lock);
    else
        fut__mutex_unlock(&handler_lock);
}

void futures_unobserved_print(const struct futures_failure *failure, void *arg)
{
    (void)arg;
    if (!failure)
        return;
    const char *name = strerrorname_np(failure->error);
    char site[160] = "";
    Dl_info info;
    void *address;
    memcpy(&address, &failure->site, sizeof address); /* a function's address */
    if (failure->site && dladdr(address, &info) && info.dli_sname)
        snprintf(site, sizeof site, " in %s()", info.dli_sname);
    else if (failure->site)
        snprintf(site, sizeof site, " in the function at %p", address);
    fprintf(stderr,
            "libfutures: a %s failed with %s (%s)%s%s%s, and nothing waited "
            "for it or handed it on\n",
            failure->kind ? failure->kind : "future", name ? name : "an error",
            strerror(failure->error), site, failure->message ? ": " : "",
            failure->message ? failure->message : "");
}
