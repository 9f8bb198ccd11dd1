/*
 * hang.c - three programs that would hang, and what libfutures says about
 * each instead.
 *
 *  1. Two tasks on two pools, each waiting for the other's future. Neither
 *     can return before the other does, so no amount of waiting ends it.
 *     The wait that would close the cycle fails at once with EDEADLK; the
 *     other task goes on waiting and sees that task's outcome.
 *  2. An event loop's task that waits for another task queued on the same
 *     loop. The loop runs one callback at a time on one thread, and that
 *     thread is the one waiting, so the queued task could never start.
 *     The wait fails with EDEADLK.
 *  3. A program that is really stuck: a blocking job reads a pipe that
 *     nobody writes, a task waits for that job, and a second job waits for
 *     a blocking thread (the pool may have one). No cycle, nothing the
 *     library can prove: someone could still write. futures_dump() shows
 *     who waits for what, and for how long; pool_destroy_timeout() gives
 *     up after 200 ms with ETIMEDOUT and writes what the pool is doing;
 *     once the sample writes to the pipe, the jobs end and the same call
 *     returns 0.
 *  4. The cycle of 1 again, in a child process with FUTURES_DEADLOCK=abort
 *     in its environment: the library writes the cycle to stderr, with the
 *     label each task gave itself (futures_trace_name()) and the threads
 *     involved, and aborts. The sample prints what the child wrote and how
 *     it ended.
 *
 * Last, futures_live_count() shows that nothing was leaked on the way.
 *
 * The tasks are not static, and the Makefile links the samples with
 * -rdynamic, so that dladdr() can name them in the reports.
 *
 *   usage: hang [--scale F]   (F multiplies the 200 ms deadline; default 1.0)
 */
#include <futures.h>

#include "sample.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEADLINE 0.200 /* seconds pool_destroy_timeout() waits, unscaled */

static double scale = 1.0;

/*
 * "0", or an error's macro name and its strerror() text, as
 * "EDEADLK (Resource deadlock avoided)". Each call has its own buffer of
 * @buf's, so that one printf() can show several.
 */
static const char *error_name(int err, char buf[96])
{
    const char *macro = err == EDEADLK     ? "EDEADLK"
                        : err == ETIMEDOUT ? "ETIMEDOUT"
                                           : "error";
    if (err == 0)
        return "0";
    snprintf(buf, 96, "%s (%s)", macro, strerror(err));
    return buf;
}

/* ---------------------------------------------------------------- cycle -- */

/*
 * Each side of the cycle waits first for @go, a promise the main thread
 * resolves once both futures exist (a promise can always be settled from
 * outside, so waiting for it is never a deadlock), then for the other
 * side's future.
 */
struct side {
    const char *name;   /* "a" or "b" */
    future_t *go;       /* resolved once both futures below are set */
    future_t **other;   /* the other side's future */
    int wait_error;     /* what this side's own future_wait() returned */
};

int cycle_a(void *arg, void **result)
{
    struct side *s = arg;
    futures_trace_name("side a"); /* the deadlock report shows it */
    future_wait(s->go, NULL);
    s->wait_error = future_wait(*s->other, result);
    return s->wait_error;
}

/* The same as cycle_a(): two functions, so that a report names each. */
int cycle_b(void *arg, void **result)
{
    struct side *s = arg;
    futures_trace_name("side b");
    future_wait(s->go, NULL);
    s->wait_error = future_wait(*s->other, result);
    return s->wait_error;
}

/*
 * Runs the cycle on two pools of one thread each; fills @side with what
 * each wait saw. Returns 0, or -1 if something could not be set up.
 */
static int run_cycle(struct side side[2], int *outcome)
{
    pool_t *p1 = pool_create(1), *p2 = pool_create(1);
    promise_t *go = promise_create();
    future_t *fa = NULL, *fb = NULL;
    if (!p1 || !p2 || !go) {
        perror("pool_create");
        pool_destroy(p1);
        pool_destroy(p2);
        promise_release(go);
        return -1;
    }
    side[0] = (struct side){"a", promise_future(go), &fb, 0};
    side[1] = (struct side){"b", promise_future(go), &fa, 0};
    fa = pool_submit(p1, cycle_a, &side[0]);
    fb = pool_submit(p2, cycle_b, &side[1]);
    promise_resolve(go, NULL); /* both futures are in place: start */
    outcome[0] = future_wait(fa, NULL);
    outcome[1] = future_wait(fb, NULL);
    future_release(fa);
    future_release(fb);
    future_release(side[0].go);
    future_release(side[1].go);
    promise_release(go);
    pool_destroy(p1);
    pool_destroy(p2);
    return fa && fb ? 0 : -1;
}

static int show_cycle(void)
{
    printf("1. task a (pool 1) waits for task b (pool 2), which waits for a\n");
    struct side side[2];
    int outcome[2];
    if (run_cycle(side, outcome) != 0)
        return 1;
    /* Which side closes the cycle depends on which blocks last. */
    int closer = side[0].wait_error == EDEADLK ? 0 : 1;
    int other = 1 - closer;
    char b1[96], b2[96];
    printf("   task %s's wait for task %s: %s: it closed the cycle\n",
           side[closer].name, side[other].name,
           error_name(side[closer].wait_error, b1));
    printf("   task %s's wait for task %s: %s: task %s's outcome, once it "
           "returned\n",
           side[other].name, side[closer].name,
           error_name(side[other].wait_error, b1), side[closer].name);
    printf("   main's waits: task a %s, task b %s\n",
           error_name(outcome[0], b1), error_name(outcome[1], b2));
    return side[closer].wait_error != EDEADLK ||
           side[other].wait_error != EDEADLK;
}

/* ----------------------------------------------------------------- loop -- */

struct on_loop {
    loop_t *loop;
    int wait_error; /* what the outer task's wait returned */
};

int loop_inner(void *arg, void **result)
{
    (void)arg;
    *result = "inner ran";
    return 0;
}

/* Queues loop_inner on its own loop and waits for it: it cannot start
 * until this callback returns, on this very thread. */
int loop_outer(void *arg, void **result)
{
    struct on_loop *l = arg;
    future_t *inner = loop_submit(l->loop, loop_inner, NULL);
    l->wait_error = future_wait(inner, result);
    future_release(inner); /* it still runs, after this callback */
    return 0;
}

static int show_loop(void)
{
    printf("2. a loop task waits for a task queued on the same loop\n");
    struct on_loop l = {loop_create(), 0};
    future_t *outer = l.loop ? loop_submit(l.loop, loop_outer, &l) : NULL;
    if (!outer) {
        perror("loop_submit");
        loop_destroy(l.loop);
        return 1;
    }
    loop_run(l.loop); /* runs loop_outer, then loop_inner */
    char b[96];
    printf("   its wait: %s\n", error_name(l.wait_error, b));
    future_release(outer);
    loop_destroy(l.loop);
    return l.wait_error != EDEADLK;
}

/* ---------------------------------------------------------------- stuck -- */

struct reader {
    int fd;           /* the pipe's reading end */
    promise_t *began; /* resolved as the job starts reading */
};

/* A blocking job: reads one byte from a pipe, however long that takes. */
int read_pipe(void *arg, void **result)
{
    struct reader *r = arg;
    char byte;
    promise_resolve(r->began, NULL);
    ssize_t n;
    while ((n = read(r->fd, &byte, 1)) == -1 && errno == EINTR)
        ;
    *result = n == 1 ? "read a byte" : "end of file";
    return n == -1 ? errno : 0;
}

/* A task that waits for the job: the report shows what it is blocked on. */
int await_reply(void *arg, void **result)
{
    futures_trace_name("await the reply"); /* a label for the dump */
    return future_wait(arg, result);
}

/* A job queued behind read_pipe, for want of a blocking thread. */
int log_reply(void *arg, void **result)
{
    *result = arg;
    return 0;
}

/* A dump times what starts after it (FUTURES_DUMP_SIGNAL does from the
 * start): a watchdog's first look, so that the dump below can say for how
 * long each task has run or waited. */
static void first_look(void)
{
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        futures_dump(null);
        fclose(null);
    }
}

static int show_stuck(void)
{
    printf("3. a job reads a pipe nobody writes; a task waits for the job\n");
    int fds[2];
    promise_t *began = promise_create();
    pool_t *pool = pool_create(1);
    if (!began || !pool || pipe(fds) != 0) {
        perror("setup");
        promise_release(began);
        pool_destroy(pool);
        return 1;
    }
    first_look();
    pool_set_blocking_limit(pool, 1);
    struct reader r = {fds[0], began};
    future_t *job = pool_submit_blocking(pool, read_pipe, &r);
    future_t *task = job ? pool_submit(pool, await_reply, job) : NULL;
    future_t *queued = pool_submit_blocking(pool, log_reply, "logged");
    future_t *started = promise_future(began);
    int failed = !task || !queued || future_wait(started, NULL) != 0;
    future_release(started);
    /* The job has started and is about to block in read(). Give the task
     * a moment to reach its wait too: a timed wait for its future cannot
     * make it end, and lets the dump show what it is blocked on. */
    future_wait_for(task, (uint64_t)(0.1 * scale * 1e9));
    printf("   futures_dump(stdout) writes:\n");
    fflush(stdout);
    failed |= futures_dump(stdout) != 0;
    uint64_t ns = (uint64_t)(DEADLINE * scale * 1e9);
    char b[96];
    printf("   pool_destroy_timeout(pool, %.0f ms, stdout) writes:\n",
           (double)ns / 1e6);
    fflush(stdout); /* the report goes to stdout too, after this */
    int err = pool_destroy_timeout(pool, ns, stdout);
    printf("   and returns %s\n", error_name(err, b));
    failed |= err != ETIMEDOUT;
    if (write(fds[1], "x", 1) != 1) /* the reply, at last */
        failed = 1;
    err = pool_destroy_timeout(pool, 10 * ns, stdout);
    printf("   after a write to the pipe, it returns %s\n",
           error_name(err, b));
    failed |= err != 0;
    if (err)
        pool_destroy(pool);
    void *value = NULL;
    if (task && future_wait(task, &value) == 0)
        printf("   the task's outcome: \"%s\"\n", (const char *)value);
    failed |= future_wait(queued, NULL) != 0;
    future_release(queued);
    future_release(task);
    future_release(job);
    promise_release(began);
    close(fds[0]);
    close(fds[1]);
    return failed;
}

/* ---------------------------------------------------------------- abort -- */

/* In the child: the cycle again, with FUTURES_DEADLOCK=abort. */
static void child(int err_fd)
{
    setenv("FUTURES_DEADLOCK", "abort", 1);
    dup2(err_fd, STDERR_FILENO);
    close(err_fd);
    struct side side[2];
    int outcome[2];
    run_cycle(side, outcome);
    _exit(0); /* not reached if the library aborted */
}

static int show_abort(void)
{
    printf("4. the cycle of 1 again, in a child with FUTURES_DEADLOCK=abort\n");
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    fflush(stdout); /* so the child does not print it again */
    pid_t pid = fork();
    if (pid == -1) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        child(fds[1]);
    }
    close(fds[1]);
    printf("   the child's stderr:\n");
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0 ||
           (n == -1 && errno == EINTR))
        len += n > 0 ? (size_t)n : 0;
    close(fds[0]);
    buf[len] = '\0';
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        printf("   | %s\n", line);
    int status;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
        ;
    bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    if (aborted)
        printf("   the child was killed by SIGABRT (abort())\n");
    else
        printf("   the child ended with status %d\n", status);
    return !aborted;
}

int main(int argc, char **argv)
{
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]"))
        return 2;
    int failed = show_cycle();
    printf("\n");
    failed |= show_loop();
    printf("\n");
    failed |= show_stuck();
    printf("\n");
    failed |= show_abort();
    /* Every future made above has been released, and each one's work has
     * ended, so none is left alive: a check a test suite can make too. */
    size_t live = futures_live_count();
    printf("\nfutures alive at the end: %zu\n", live);
    failed |= live != 0;
    return failed || fflush(stdout) != 0 ? 1 : 0;
}
