/*
 * message.c - failures that say what went wrong: task_fail(),
 * future_error_message().
 *
 * A message is a struct fut__why: reference-counted, because a failure
 * passed down a chain (then, compose, timeout, when_all) shares its text
 * with every future that passes it on, and immutable once a future holds
 * it. task_fail() leaves it in the running future's frame (settle.c,
 * fut__start), which hands it to the settle if the work then fails. A
 * failure without a message costs nothing: the future stores its site, as
 * before, and has_why stays false.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A message of printf(@fmt, @ap), cut at FUT_MESSAGE_MAX bytes; NULL for
 * a NULL @fmt, or without memory. */
struct fut__why *fut__why_format(const char *fmt, va_list ap)
{
    if (!fmt)
        return NULL;
    char text[FUT_MESSAGE_MAX + 1];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    size_t len = n < 0 ? 0 : strlen(text); /* truncated at the maximum */
    struct fut__why *why = fut__calloc(sizeof *why + len + 1);
    if (!why)
        return NULL;
    atomic_init(&why->refs, 1);
    memcpy(why->text, text, len + 1);
    return why;
}

struct fut__why *fut__why_retain(struct fut__why *why)
{
    if (why)
        atomic_fetch_add_explicit(&why->refs, 1, memory_order_relaxed);
    return why;
}

void fut__why_release(struct fut__why *why)
{
    if (why &&
        atomic_fetch_sub_explicit(&why->refs, 1, memory_order_acq_rel) == 1)
        fut__mem_free(why);
}

int task_fail(int error, const char *fmt, ...)
{
    struct fut__frame *frame = fut__self.running;
    if (!frame)
        return error; /* not inside a task: nothing to attach it to */
    va_list ap;
    va_start(ap, fmt);
    struct fut__why *why = fut__why_format(fmt, ap);
    va_end(ap);
    if (why) { /* without memory, the failure goes without its message */
        fut__why_release(frame->why);
        frame->why = why;
    }
    return error;
}

const char *future_error_message(const future_t *f)
{
    if (!f || !fut__is_settled(f) || f->error == 0)
        return NULL;
    return fut__failure_message(f);
}
