/*
 * thread_report.c - what the library's threads are doing, in words: the
 * lines futures_dump() and pool_destroy_timeout() write about each thread
 * the registry knows (thread.c), and the task each one runs, with the
 * label futures_trace_name() gave it; and a thread's name, role and LWP.
 *
 * Everything here reads the registry with its lock held
 * (fut__registry_take), and reads only what a thread publishes for that
 * (struct fut__thread: runs, runs_kind, runs_site, blocked_on...), never
 * a future another thread could free meanwhile. It takes no other lock of
 * the library's while it holds that one.
 */
#define _GNU_SOURCE /* pthread_getname_np() */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Labels. futures_trace_name() names the innermost frame this thread runs,
 * whether or not a trace runs: the name goes into that frame's struct
 * fut__frame, on this thread's stack, and labels[] points to it. Other
 * threads read it only with the registry's lock held, so the labelling
 * and the end of a labelled frame take the lock; the end of any other
 * frame tests label_top, and that is all (fut__thread_leave).
 */
void fut__thread_label(const char *name)
{
    struct fut__thread *me = &fut__self;
    struct fut__frame *fr = me->running;
    unsigned n = atomic_load_explicit(&me->nframes, memory_order_relaxed);
    if (!fr || n == 0 || n > 4)
        return; /* no task here, or one deeper than reports show */
    fut__registry_take();
    size_t i = 0;
    for (; i < FUT_LABEL_SIZE - 1 && name[i]; i++) {
        unsigned char c = (unsigned char)name[i];
        fr->label[i] = c < 0x20 || c == 0x7f ? '?' : (char)c; /* one line */
    }
    fr->label[i] = '\0';
    me->labels[n - 1] = fr->label;
    me->label_top = n;
    fut__registry_drop();
}

void fut__thread_unlabel(unsigned frame)
{
    struct fut__thread *me = &fut__self;
    fut__registry_take();
    me->labels[frame] = NULL;
    while (frame > 0 && !me->labels[frame - 1])
        frame--;
    me->label_top = frame; /* an outer frame's label, or none */
    fut__registry_drop();
}

/* " for 3.21 s" if the frame's start was timed, else nothing. */
static void print_running_for(FILE *out, uint64_t since)
{
    if (since == 0)
        return;
    uint64_t now = fut__coarse_ms();
    uint64_t ms = now > since ? now - since : 0;
    fprintf(out, " for %llu.%02llu s", (unsigned long long)(ms / 1000),
            (unsigned long long)(ms % 1000 / 10));
}

/* "  running: a task (fetch) 0x... "page 3" for 1.20 s": frame @i of
 * @t, with the registry's lock held; false if it has just ended. */
static bool print_frame_locked(FILE *out, const struct fut__thread *t,
                               unsigned i)
{
    future_t *f = atomic_load_explicit(&t->runs[i], memory_order_acquire);
    if (!f)
        return false;
    char name[128];
    fut__name_function(
        atomic_load_explicit(&t->runs_site[i], memory_order_relaxed), name,
        sizeof name);
    fprintf(out, "  running: a %s%s %p",
            atomic_load_explicit(&t->runs_kind[i], memory_order_relaxed), name,
            (void *)f);
    if (t->labels[i])
        fprintf(out, " \"%s\"", t->labels[i]);
    print_running_for(
        out, atomic_load_explicit(&t->runs_since[i], memory_order_relaxed));
    fputc('\n', out);
    return true;
}

void fut__thread_report(FILE *out, const struct fut__exec *exec)
{
    for (struct fut__thread *t = fut__registry_take(); t; t = t->reg_next) {
        unsigned n = atomic_load_explicit(&t->nframes, memory_order_acquire);
        bool shown = false;
        for (unsigned i = 0; i < n && i < 4; i++) {
            if (!exec || atomic_load_explicit(&t->runs_exec[i],
                                              memory_order_relaxed) == exec)
                shown |= print_frame_locked(out, t, i);
        }
        if (shown && t->blocked_on) {
            char name[160];
            fut__describe_kind(t->blocked_on, name, sizeof name); /* held */
            fprintf(out, "    its thread is blocked%s waiting for %s\n",
                    t->blocked_timed ? " (timed)" : "", name);
        }
        if (shown && n > 4)
            fprintf(out, "    (and %u more frames on that thread)\n", n - 4);
    }
    fut__registry_drop();
}

/* "core thread of pool 1", "the timer thread": what fut__thread_set_role
 * said @t is; a thread that said nothing is the program's own. */
static void role_of(const struct fut__thread *t, char *buf, size_t size)
{
    const char *role = atomic_load_explicit(&t->role, memory_order_acquire);
    unsigned pool = atomic_load_explicit(&t->role_pool, memory_order_relaxed);
    if (role && pool)
        snprintf(buf, size, "%s thread of pool %u", role, pool);
    else
        snprintf(buf, size, "%s", role ? role : "a thread of the program's");
}

/*
 * "futures-1.0 (core thread of pool 1, LWP 4243)": @t's name (the pool's
 * pthread_setname_np(), or the program's), its role and its kernel id, as
 * gdb's "info threads" shows it. With the registry's lock held, or for
 * the calling thread: @t has not ended, so its handle is valid (for
 * another thread, glibc reads /proc/self/task/<lwp>/comm).
 */
static void describe_thread(const struct fut__thread *t, char *buf, size_t size)
{
    char name[16], role[64];
    if (pthread_getname_np(t->handle, name, sizeof name) != 0)
        snprintf(name, sizeof name, "%s", "?");
    role_of(t, role, sizeof role);
    snprintf(buf, size, "%s (%s, LWP %d)", name, role, t->lwp);
}

void fut__thread_describe_self(char *buf, size_t size)
{
    struct fut__thread *me = &fut__self;
    if (!me->registered)
        fut__thread_register(me);
    describe_thread(me, buf, size);
}

/* The label of @fr, a frame of the calling thread's, or NULL. */
const char *fut__frame_label(const struct fut__frame *fr)
{
    for (unsigned i = 0; i < 4; i++) {
        if (fut__self.labels[i] == fr->label)
            return fr->label; /* only this thread writes labels[] */
    }
    return NULL;
}

/* Appends @t's description to @buf, after a comma if it has one. */
static void append_thread(char *buf, size_t size, const struct fut__thread *t)
{
    size_t len = strlen(buf);
    if (len + 3 >= size)
        return;
    if (len)
        len += (size_t)snprintf(buf + len, size - len, ", ");
    describe_thread(t, buf + len, size - len);
}

/*
 * For a report's line about @f: its name; the label of the frame that runs
 * it, as ` "fetch page 3"` (or ""); and the threads that run it and those
 * blocked waiting for it, "run by ...; waited for by ..." (or ""). It
 * compares @f with what the threads publish. A task's function is taken
 * from the frame that runs it, never from @f: the field that holds it
 * holds the task's outcome once it settles, which may be happening now.
 */
void fut__thread_involved(const future_t *f, struct fut__involved *out)
{
    char runs[256] = "", waits[256] = "";
    fut__fn_ptr site = NULL;
    out->label[0] = '\0';
    for (struct fut__thread *t = fut__registry_take(); t; t = t->reg_next) {
        unsigned n = atomic_load_explicit(&t->nframes, memory_order_acquire);
        for (unsigned i = 0; i < n && i < 4; i++) {
            if (atomic_load_explicit(&t->runs[i], memory_order_acquire) != f)
                continue;
            append_thread(runs, sizeof runs, t);
            site = atomic_load_explicit(&t->runs_site[i], memory_order_relaxed);
            if (t->labels[i] && !out->label[0])
                snprintf(out->label, sizeof out->label, " \"%s\"",
                         t->labels[i]);
            break;
        }
        if (t->blocked_on == f)
            append_thread(waits, sizeof waits, t);
    }
    fut__registry_drop();
    if (f->ops->is_task) {
        char fn[128];
        fut__name_function(site, fn, sizeof fn);
        snprintf(out->name, sizeof out->name, "a %s%s %p", f->ops->kind, fn,
                 (void *)f);
    } else {
        fut__describe(f, out->name, sizeof out->name); /* a callback's */
    }
    snprintf(out->who, sizeof out->who, "%s%s%s%s%s", *runs ? "run by " : "",
             runs, *runs && *waits ? "; " : "", *waits ? "waited for by " : "",
             waits);
}

/* One thread's lines: what it is, what it runs, what it is blocked on. */
static void dump_thread_locked(FILE *out, struct fut__thread *t)
{
    char who[128];
    describe_thread(t, who, sizeof who);
    fprintf(out, "thread %s", who);
    unsigned n = atomic_load_explicit(&t->nframes, memory_order_acquire);
    if (n == 0 && !t->blocked_on)
        fprintf(out, "%s",
                atomic_load_explicit(&t->asleep, memory_order_relaxed)
                    ? ": asleep until there is work"
                : atomic_load_explicit(&t->role, memory_order_relaxed)
                    ? ": awake, with no task (looking for work)"
                          : ": in no task or wait of the library's");
    fputc('\n', out);
    for (unsigned i = 0; i < n && i < 4; i++)
        print_frame_locked(out, t, i);
    if (n > 4)
        fprintf(out, "  (and %u more frames)\n", n - 4);
    if (t->blocked_on) {
        char name[160];
        fut__describe_kind(t->blocked_on, name, sizeof name); /* held */
        fprintf(out, "  blocked%s waiting for %s\n",
                t->blocked_timed ? " (timed)" : "", name);
    }
}

/*
 * Every thread's lines, and the futures threads are blocked on, for the
 * dump to say what each waits for (walk.c) once the registry's lock is
 * free. A waiter's future is alive while the lock is held (it cannot
 * return meanwhile), and the reference taken then keeps it.
 */
size_t fut__threads_dump(FILE *out, struct fut__waiting *blocked, size_t max)
{
    size_t n = 0;
    for (struct fut__thread *t = fut__registry_take(); t; t = t->reg_next) {
        dump_thread_locked(out, t);
        if (t->blocked_on && n < max) {
            blocked[n].lwp = t->lwp;
            blocked[n].on = t->blocked_on;
            atomic_fetch_add_explicit(&t->blocked_on->refs, 1,
                                      memory_order_relaxed);
            n++;
        }
    }
    fut__registry_drop();
    return n;
}

FILE *fut__report_begin(struct fut__report *r, FILE *out)
{
    *r = (struct fut__report){.out = out};
    r->to = open_memstream(&r->text, &r->len);
    if (!r->to)
        r->to = out; /* no memory: straight to @out, locks or not */
    return r->to;
}

int fut__report_end(struct fut__report *r)
{
    if (r->to != r->out) {
        bool ok = fclose(r->to) == 0;
        ok = ok && fwrite(r->text, 1, r->len, r->out) == r->len;
        free(r->text);
        if (!ok && !ferror(r->out))
            return ENOMEM; /* the memory stream failed */
    }
    return fflush(r->out) == 0 && !ferror(r->out) ? 0 : errno ? errno : EIO;
}
