/*
 * dump.c - futures_dump(): what the library is doing, for a person
 * looking at a program that hangs; and FUTURES_DUMP_SIGNAL, which writes
 * one to stderr when a signal arrives.
 *
 * A dump reads each layer's own report: the pools and what their threads
 * run (pools.c), every thread the library knows (thread_report.c), what
 * each blocked thread's future waits for (walk.c), the timers (timer.c),
 * the live futures, into memory, and writes that to the stream only once
 * it holds no lock (the stream may block). Each takes its own lock
 * briefly and reads
 * no future that another thread could free meanwhile, so a dump is safe
 * from any thread, a task's included, and never waits for a task.
 *
 * The signal handler only writes a byte to a pipe (async-signal-safe);
 * a thread of the library's reads it and writes the dump. Signals that
 * come faster than dumps are written are merged.
 */
#include "pool_internal.h"
#include "walk.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Threads whose wait a dump explains, link by link (walk.c), at most. */
#define EXPLAINED_MAX 16

int futures_dump(FILE *out)
{
    if (!out)
        return EINVAL;
    /* A program that dumps once may dump again: time task starts. */
    atomic_store_explicit(&fut__timing_tasks, true, memory_order_relaxed);
    struct fut__report r;
    FILE *to = fut__report_begin(&r, out);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(to, "libfutures dump at %lld.%03ld: %zu futures alive\n",
            (long long)now.tv_sec, now.tv_nsec / 1000000,
            futures_live_count());
    fut__pools_report(to);
    fut__loops_report(to);
    fut__timer_report(to);
    struct fut__waiting blocked[EXPLAINED_MAX];
    size_t n = fut__threads_dump(to, blocked, EXPLAINED_MAX);
    for (size_t i = 0; i < n; i++) {
        char heading[64];
        snprintf(heading, sizeof heading, "what LWP %d waits for:",
                 blocked[i].lwp);
        fut__explain_wait(blocked[i].on, heading, to);
        future_release(blocked[i].on);
    }
    fprintf(to, "end of dump\n");
    return fut__report_end(&r);
}

/* ------------------------------------------------- FUTURES_DUMP_SIGNAL -- */

static int dump_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    char byte = 1;
    ssize_t rc = write(dump_pipe[1], &byte, 1); /* full: one is pending */
    (void)rc;
    errno = saved;
}

static void *dump_main(void *arg)
{
    (void)arg;
    fut__thread_set_role("the dump thread", 0);
    char bytes[64];
    for (;;) {
        ssize_t n = read(dump_pipe[0], bytes, sizeof bytes);
        if (n > 0)
            futures_dump(stderr);
        else if (n == 0 || errno != EINTR)
            return NULL;
    }
}

/* "USR1", "SIGUSR1" or a number: the signal, or 0. */
static int signal_named(const char *name)
{
    static const struct {
        const char *name;
        int sig;
    } known[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT},
                 {"HUP", SIGHUP},   {"INT", SIGINT},   {"TERM", SIGTERM},
                 {"PWR", SIGPWR},   {"URG", SIGURG}};
    if (strncmp(name, "SIG", 3) == 0)
        name += 3;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(name, known[i].name) == 0)
            return known[i].sig;
    }
    char *end;
    long n = strtol(name, &end, 10);
    return *name && !*end && n > 0 && n < 65 ? (int)n : 0; /* 64 signals on Linux */
}

/* Sets up the signal named @name to write a dump; 0 or an errno. */
int fut__dump_on_signal(const char *name)
{
    int sig = signal_named(name);
    if (!sig)
        return EINVAL;
    atomic_store_explicit(&fut__timing_tasks, true, memory_order_relaxed);
    if (dump_pipe[0] < 0) {
        if (pipe(dump_pipe))
            return errno;
        fcntl(dump_pipe[1], F_SETFL, O_NONBLOCK);
        fcntl(dump_pipe[0], F_SETFD, FD_CLOEXEC);
        fcntl(dump_pipe[1], F_SETFD, FD_CLOEXEC);
        pthread_t t;
        int rc = fut__thread_start(&t, dump_main, NULL);
        if (rc)
            return rc;
        pthread_detach(t);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL) ? errno : 0;
}

__attribute__((constructor)) static void dump_signal_from_environment(void)
{
    const char *name = getenv("FUTURES_DUMP_SIGNAL");
    if (name && *name && fut__dump_on_signal(name))
        fprintf(stderr, "libfutures: FUTURES_DUMP_SIGNAL=%s: not set up\n",
                name);
}
