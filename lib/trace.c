/*
 * trace.c - a timeline of what ran where and when, as Chrome trace events.
 *
 * While a trace runs, fut__run() brackets every task and callback with
 * fut__trace_enter() and fut__trace_leave(), which append one complete
 * event ("ph":"X") to an in-memory list: name, start, duration, the pool
 * (as the trace's process id) and the thread (a small index per thread).
 * futures_trace_stop() writes the list out, with metadata events naming
 * each pool and thread, so Perfetto draws one lane per thread.
 *
 * futures_trace_name() also labels the running task for dumps and
 * deadlock reports, trace or not (thread_report.c); the rest of this file
 * matters only while a trace runs.
 *
 * When no trace runs, the only cost is the relaxed load of `active` in
 * fut__trace_enter(). Events are appended under one mutex: tracing is for
 * looking at a run, not for the fastest one. An event that cannot be stored
 * (no memory) is counted and the count written with the trace.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 48

struct event {
    char name[NAME_MAX_LEN];
    uint64_t start_ns, end_ns;
    unsigned pool, thread;
    int error;
};

struct lane {
    unsigned pool, thread;
};

static atomic_bool active;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *out_path;
static uint64_t origin_ns;
static struct event *events;
static size_t nevents, capacity;
static size_t dropped;
static struct lane *lanes;
static size_t nlanes, lanes_capacity;
static atomic_uint next_thread = 1;

/* Per thread: its index, and the state of the run or span being timed. */
static _Thread_local unsigned thread_index;
static _Thread_local char pending_name[NAME_MAX_LEN];
static _Thread_local bool in_run; /* between enter and leave */
static _Thread_local uint64_t span_start;
static _Thread_local char span_name[NAME_MAX_LEN];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void copy_name(char *dst, const char *src)
{
    size_t n = strnlen(src, NAME_MAX_LEN - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Grows @array (of @size-byte items) to hold one more; false if it can't. */
static bool reserve(void **array, size_t *cap, size_t used, size_t size)
{
    if (used < *cap)
        return true;
    size_t want = *cap ? *cap * 2 : 1024;
    void *grown = fut__calloc(want * size);
    if (!grown)
        return false;
    if (*array)
        memcpy(grown, *array, used * size);
    fut__mem_free(*array);
    *array = grown;
    *cap = want;
    return true;
}

static void note_lane_locked(unsigned pool, unsigned thread)
{
    FUT_ASSERT_HELD(&lock);
    for (size_t i = 0; i < nlanes; i++) {
        if (lanes[i].pool == pool && lanes[i].thread == thread)
            return;
    }
    if (reserve((void **)&lanes, &lanes_capacity, nlanes, sizeof *lanes))
        lanes[nlanes++] = (struct lane){pool, thread};
}

static void record(const char *name, uint64_t start, uint64_t end, int error)
{
    if (!thread_index)
        thread_index = atomic_fetch_add(&next_thread, 1);
    struct event e = {.start_ns = start, .end_ns = end, .error = error};
    copy_name(e.name, name);
    e.pool = fut__pool_id_of_thread();
    e.thread = thread_index;

    fut__mutex_lock(&lock);
    if (atomic_load(&active) && start >= origin_ns) {
        if (reserve((void **)&events, &capacity, nevents, sizeof *events)) {
            events[nevents++] = e;
            note_lane_locked(e.pool, e.thread);
        } else {
            dropped++;
        }
    }
    fut__mutex_unlock(&lock);
}

uint64_t fut__trace_enter(void)
{
    if (!atomic_load_explicit(&active, memory_order_relaxed))
        return 0;
    pending_name[0] = '\0';
    in_run = true;
    return now_ns();
}

void fut__trace_leave(uint64_t start, const char *kind, int error)
{
    if (!start)
        return;
    record(pending_name[0] ? pending_name : kind, start, now_ns(), error);
    pending_name[0] = '\0';
    in_run = false;
}

/* ------------------------------------------------------------ the public API
 */

void futures_trace_name(const char *name)
{
    if (!name)
        return;
    fut__thread_label(name); /* for dumps and reports, traced or not */
    if (!atomic_load_explicit(&active, memory_order_relaxed))
        return;
    if (!in_run && span_start)
        copy_name(span_name, name); /* renames the open span */
    else
        copy_name(pending_name, name);
}

void futures_trace_begin(const char *name)
{
    if (!atomic_load_explicit(&active, memory_order_relaxed))
        return;
    if (name)
        copy_name(span_name, name);
    else if (pending_name[0])
        copy_name(span_name, pending_name);
    else
        copy_name(span_name, "span");
    pending_name[0] = '\0';
    span_start = now_ns();
}

void futures_trace_end(void)
{
    if (span_start)
        record(span_name, span_start, now_ns(), 0);
    span_start = 0;
}

int futures_trace_start(const char *path)
{
    if (!path)
        return EINVAL;
    char *copy = fut__calloc(strlen(path) + 1);
    if (!copy)
        return ENOMEM;
    strcpy(copy, path);

    fut__mutex_lock(&lock);
    if (atomic_load(&active)) {
        fut__mutex_unlock(&lock);
        fut__mem_free(copy);
        return EALREADY;
    }
    out_path = copy;
    origin_ns = now_ns();
    nevents = nlanes = dropped = 0;
    atomic_store(&active, true);
    fut__mutex_unlock(&lock);
    return 0;
}

/* Writes @s as a JSON string. */
static void put_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static double micros(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/*
 * Keeps in *error the errno of @out's first failed write. stdio reports a
 * failure only through the error flag, and the errno that the failed write
 * left may be overwritten by any later call, so this runs after every item
 * the trace prints: each is smaller than stdio's buffer, so at most one
 * write was tried since the last check. EIO if no errno was left at all.
 */
static bool failed(FILE *out, int *error)
{
    if (!*error && ferror(out))
        *error = errno ? errno : EIO;
    return *error != 0;
}

static void put_lane_names(FILE *out, bool *first, int *error)
{
    for (size_t i = 0; i < nlanes && !failed(out, error); i++) {
        unsigned pool = lanes[i].pool, thread = lanes[i].thread;
        char name[64];
        if (pool)
            snprintf(name, sizeof name, "pool %u", pool);
        else
            snprintf(name, sizeof name, "outside pools");
        fprintf(out,
                "%s\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%u,"
                "\"tid\":%u,\"args\":{\"name\":",
                *first ? "" : ",", pool, thread);
        put_string(out, name);
        snprintf(name, sizeof name, "thread %u", thread);
        fprintf(out,
                "}},\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%u,"
                "\"tid\":%u,\"args\":{\"name\":",
                pool, thread);
        put_string(out, name);
        fputs("}}", out);
        *first = false;
    }
}

static void put_events(FILE *out, bool *first, int *error)
{
    for (size_t i = 0; i < nevents && !failed(out, error); i++) {
        const struct event *e = &events[i];
        fprintf(out, "%s\n{\"ph\":\"X\",\"cat\":\"futures\",\"name\":",
                *first ? "" : ",");
        put_string(out, e->name);
        fprintf(out,
                ",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%u,\"tid\":%u,"
                "\"args\":{\"error\":%d}}",
                micros(e->start_ns - origin_ns),
                micros(e->end_ns - e->start_ns), e->pool, e->thread, e->error);
        *first = false;
    }
}

/* Returns 0, or the errno of the first call that failed; a write that
 * failed stops the writing. */
static int write_trace(const char *path)
{
    FILE *out = fopen(path, "w");
    if (!out)
        return errno;
    errno = 0;
    int error = 0;
    bool first = true;
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", out);
    put_lane_names(out, &first, &error);
    put_events(out, &first, &error);
    if (!failed(out, &error))
        fprintf(out, "\n],\"otherData\":{\"dropped_events\":%zu}}\n", dropped);
    if (!failed(out, &error) && fflush(out) != 0)
        error = errno ? errno : EIO;
    if (fclose(out) != 0 && !error)
        error = errno ? errno : EIO;
    return error;
}

int futures_trace_stop(void)
{
    fut__mutex_lock(&lock);
    if (!atomic_load(&active)) {
        fut__mutex_unlock(&lock);
        return EINVAL;
    }
    atomic_store(&active, false);
    int rc = write_trace(out_path);
    fut__mem_free(out_path);
    out_path = NULL;
    fut__mem_free(events);
    fut__mem_free(lanes);
    events = NULL;
    lanes = NULL;
    nevents = capacity = nlanes = lanes_capacity = 0;
    fut__mutex_unlock(&lock);
    return rc;
}

/* fork(): the child records nothing, and never writes the parent's file. */
void fut__trace_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE) {
        fut__mutex_lock(&lock);
        return;
    }
    if (phase == FUT_FORK_CHILD)
        atomic_store(&active, false);
    fut__mutex_unlock(&lock);
}

/* ---------------------------------------------------- FUTURES_TRACE=path */

static void stop_at_exit(void)
{
    int rc = futures_trace_stop();
    if (rc && rc != EINVAL)
        fprintf(stderr, "libfutures: cannot write the trace: %s\n",
                strerror(rc));
}

__attribute__((constructor)) static void start_from_environment(void)
{
    const char *path = getenv("FUTURES_TRACE");
    if (path && *path && futures_trace_start(path) == 0)
        atexit(stop_at_exit);
}
