/*
 * Tests of futures_dump() and FUTURES_DUMP_SIGNAL: the facts a dump must
 * contain while tasks run, wait and queue, a dump from inside a task, and
 * dumps asked for by a storm of signals.
 */
#include "helpers.h"
#include "internal.h" /* fut__dump_on_signal */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not static: the dump names it through dladdr() (linked -rdynamic). */
int dumped_waiter(void *arg, void **result)
{
    struct waiter *w = arg;
    sem_post(&w->started);
    future_t *f = promise_future(w->p);
    int e = future_wait(f, result);
    future_release(f);
    return e;
}

CheckedTest(dump, names_pools_running_and_blocked_tasks_timers_and_threads)
{
    pool_t *pool = pool_create(1);
    struct gate g;
    gate_init(&g);
    struct waiter w = {.p = promise_create()};
    sem_init(&w.started, 0, 0);
    future_t *waiting = pool_submit_blocking(pool, dumped_waiter, &w);
    sem_wait(&w.started);
    future_t *busy = pool_submit(pool, gated_task, &g);
    gate_await_started(&g, 1);
    future_t *queued = pool_submit(pool, value_task, NULL);
    future_t *delay = future_delay(UINT64_C(60) * 1000000000);
    /* The waiter blocks soon after it posted: dump until it says so. */
    char *text = NULL;
    uint64_t deadline = monotonic_ns() + UINT64_C(10000000000);
    do {
        free(text);
        text = dump_text();
    } while (!(strstr(text, "blocked waiting for a promise") &&
               strstr(text, "the timer thread")) && /* both on their way */
             monotonic_ns() < deadline);
    cr_assert(strstr(text, "libfutures dump at"), "%s", text);
    cr_assert(strstr(text, "futures alive"), "%s", text);
    cr_assert(strstr(text, "(open): "), "the pool's line:\n%s", text);
    cr_assert(strstr(text, "1 queued"), "the queued task:\n%s", text);
    cr_assert(strstr(text, "running: a task (dumped_waiter)"), "%s", text);
    cr_assert(strstr(text, "blocked waiting for a promise"), "%s", text);
    cr_assert(strstr(text, "running: a task (gated_task)") ||
                  strstr(text, "running: a task (function"),
              "%s", text);
    cr_assert(strstr(text, "timers: 1 pending"), "%s", text);
    cr_assert(strstr(text, "core thread of pool"), "%s", text);
    cr_assert(strstr(text, "blocking thread of pool"), "%s", text);
    cr_assert(strstr(text, "the timer thread"), "%s", text);
    cr_assert(strstr(text, "end of dump"), "%s", text);
    free(text);
    gate_open(&g);
    promise_resolve(w.p, NULL);
    future_cancel(delay);
    future_t *all[3] = {waiting, busy, queued};
    cr_assert_eq(future_wait_all(all, 3, NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        future_release(all[i]);
    future_release(delay);
    promise_release(w.p);
    sem_destroy(&w.started);
    pool_destroy(pool);
    gate_destroy(&g);
}

static int dump_inside(void *arg, void **result)
{
    (void)arg;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int e = futures_dump(out);
    fclose(out);
    *result = text;
    return e;
}

CheckedTest(dump, from_inside_a_task_it_shows_that_task)
{
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, dump_inside, NULL);
    void *text = NULL;
    cr_assert_eq(future_wait(f, &text), 0);
    cr_assert(strstr(text, "running: a task"), "%s", (char *)text);
    free(text);
    future_release(f);
    pool_destroy(pool);
    cr_assert_eq(futures_dump(NULL), EINVAL);
}

static void *settle_and_submit(void *arg)
{
    pool_t *pool = arg;
    for (int i = 0; i < 2000; i++) {
        future_t *f = pool_submit(pool, value_task, NULL);
        future_wait(f, NULL);
        future_release(f);
    }
    return NULL;
}

CheckedTest(dump, while_other_threads_submit_and_settle)
{
    pool_t *pool = pool_create(2);
    pthread_t t;
    pthread_create(&t, NULL, settle_and_submit, pool);
    for (int i = 0; i < 200; i++)
        free(dump_text());
    pthread_join(t, NULL);
    pool_destroy(pool);
}

CheckedTest(dump, a_storm_of_signals_writes_dumps_to_stderr)
{
    cr_assert_eq(fut__dump_on_signal("NOSUCHSIG"), EINVAL);
    char path[] = "/tmp/futures-dump-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    dup2(fd, 2);
    cr_assert_eq(fut__dump_on_signal("USR1"), 0);
    for (int i = 0; i < 500; i++)
        raise(SIGUSR1);
    /* The dump thread writes at least one; wait for its last line. */
    bool seen = false;
    uint64_t deadline = monotonic_ns() + UINT64_C(10000000000);
    while (!seen && monotonic_ns() < deadline) {
        char buf[8192] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        seen = n > 0 && strstr(buf, "end of dump");
        if (!seen)
            sched_yield();
    }
    /* Signals already taken may still be turned into dumps; they go on
     * into the file, which stays this process's stderr to its end. */
    signal(SIGUSR1, SIG_IGN); /* later signals: nothing */
    close(fd);
    unlink(path);
    cr_assert(seen, "no dump after 500 signals");
}

CheckedTest(dump, names_event_loops_and_their_queues)
{
    loop_t *loop = loop_create();
    future_t *a = loop_submit(loop, value_task, NULL);
    future_t *b = loop_submit(loop, value_task, NULL);
    char *text = dump_text();
    char want[64];
    snprintf(want, sizeof want, "loop %p: not running, 2 queued", (void *)loop);
    cr_assert(strstr(text, want), "%s in:\n%s", want, text);
    free(text);
    cr_assert_eq(loop_run(loop), 0);
    text = dump_text();
    snprintf(want, sizeof want, "loop %p: not running, 0 queued", (void *)loop);
    cr_assert(strstr(text, want), "%s in:\n%s", want, text);
    free(text);
    future_release(a);
    future_release(b);
    loop_destroy(loop);
    text = dump_text();
    snprintf(want, sizeof want, "loop %p:", (void *)loop);
    cr_assert_null(strstr(text, want), "a destroyed loop is gone:\n%s", text);
    free(text);
}

/* A task that started before any dump was asked for is shown without a
 * duration (task starts are timed from the first dump on), one started
 * after it with how long it has run. */
CheckedTest(dump, says_how_long_tasks_timed_since_the_first_dump_have_run)
{
    pool_t *pool = pool_create(2);
    struct gate early, late;
    gate_init(&early);
    gate_init(&late);
    future_t *a = pool_submit(pool, gated_task, &early);
    gate_await_started(&early, 1);
    char *text = dump_text(); /* the first: timing starts now */
    cr_assert_null(strstr(text, " s\n"), "a duration before timing:\n%s",
                   text);
    free(text);
    future_t *b = pool_submit(pool, gated_task, &late);
    gate_await_started(&late, 1);
    text = dump_text();
    char addr[32];
    snprintf(addr, sizeof addr, "%p for ", (void *)a);
    cr_assert_null(strstr(text, addr), "timed before timing:\n%s", text);
    snprintf(addr, sizeof addr, "%p for ", (void *)b);
    char *at = strstr(text, addr);
    double secs = -1;
    cr_assert(at && sscanf(at + strlen(addr), "%lf s", &secs) == 1,
              "no duration for %p:\n%s", (void *)b, text);
    cr_assert(secs >= 0 && secs < 60, "%f s:\n%s", secs, text);
    free(text);
    gate_open(&early);
    gate_open(&late);
    cr_assert_eq(future_wait(a, NULL), 0);
    cr_assert_eq(future_wait(b, NULL), 0);
    future_release(a);
    future_release(b);
    pool_destroy(pool);
    gate_destroy(&early);
    gate_destroy(&late);
}

/* ------------------------------------------------------------- labels -- */

struct labelled {
    struct gate gate;
    const char *label; /* given with futures_trace_name(), or NULL */
    pthread_t thread;  /* the thread the task ran on */
};

/* Not static: the dump names it through dladdr() (linked -rdynamic). */
int labelled_task(void *arg, void **result);
int labelled_task(void *arg, void **result)
{
    struct labelled *l = arg;
    if (l->label)
        futures_trace_name(l->label);
    l->thread = pthread_self();
    gate_pass(&l->gate); /* a gate, not a library wait: no stand-in */
    *result = NULL;
    return 0;
}

/* Runs labelled_task on @pool with @label, dumps while it waits at its
 * gate, and returns the dump (to free) once the task has returned. */
static char *dump_while_running(pool_t *pool, const char *label,
                                pthread_t *thread, future_t **task)
{
    struct labelled l = {.label = label};
    gate_init(&l.gate);
    future_t *f = pool_submit(pool, labelled_task, &l);
    gate_await_started(&l.gate, 1);
    char *text = dump_text();
    gate_open(&l.gate);
    cr_assert_eq(future_wait(f, NULL), 0);
    gate_destroy(&l.gate);
    *thread = l.thread;
    *task = f; /* released by the caller: its address stays unique */
    return text;
}

CheckedTest(dump, shows_a_task_label_until_the_task_returns)
{
    pool_t *pool = pool_create(1);
    pthread_t first, second;
    future_t *a, *b;
    char *text = dump_while_running(pool, "labelled", &first, &a);
    char want[64];
    snprintf(want, sizeof want, "(labelled_task) %p \"labelled\"", (void *)a);
    cr_assert(strstr(text, want), "%s in:\n%s", want, text);
    free(text);
    text = dump_while_running(pool, NULL, &second, &b);
    cr_assert(pthread_equal(first, second), "one thread ran both");
    snprintf(want, sizeof want, "(labelled_task) %p", (void *)b);
    cr_assert(strstr(text, want), "%s in:\n%s", want, text);
    cr_assert_null(strstr(text, "\"labelled\""), "the label stayed:\n%s", text);
    free(text);
    future_release(a);
    future_release(b);
    pool_destroy(pool);
}

CheckedTest(dump, a_label_is_cut_to_47_bytes_on_one_line)
{
    pool_t *pool = pool_create(1);
    pthread_t thread;
    future_t *f;
    /* 60 bytes, a line break among the first 47. */
    const char *label =
        "line one\nline two, and then a label far longer than 47 bytes";
    char *text = dump_while_running(pool, label, &thread, &f);
    char want[64];
    snprintf(want, sizeof want, "\"%.47s\"", label);
    *strchr(want, '\n') = '?'; /* one line a task */
    cr_assert(strstr(text, want), "%s in:\n%s", want, text);
    free(text);
    future_release(f);
    pool_destroy(pool);
}

/* Outside any task and with no trace running, a name goes nowhere: no
 * dump shows it, and the next task on this thread is not labelled. */
CheckedTest(dump, a_name_given_outside_any_task_labels_nothing)
{
    futures_trace_name("outside");
    futures_trace_name(NULL);
    char *text = dump_text();
    cr_assert_null(strstr(text, "outside"), "%s", text);
    free(text);
    loop_t *loop = loop_create();
    struct labelled l = {.label = NULL};
    gate_init(&l.gate);
    gate_open(&l.gate);
    future_t *f = loop_submit(loop, labelled_task, &l);
    cr_assert_eq(loop_run(loop), 0); /* runs it on this thread */
    cr_assert(pthread_equal(l.thread, pthread_self()));
    cr_assert_eq(future_wait(f, NULL), 0);
    text = dump_text();
    cr_assert_null(strstr(text, "outside"), "%s", text);
    free(text);
    future_release(f);
    loop_destroy(loop);
    gate_destroy(&l.gate);
}

/* A task that runs another on its own thread (here through a loop run
 * inside it; a waiting pool thread that helps does the same) keeps its
 * label while the inner one has its own, and after it returns. */
struct nested {
    char *during, *after;
};

static int inner_labelled(void *arg, void **result)
{
    futures_trace_name("inner");
    ((struct nested *)arg)->during = dump_text();
    *result = NULL;
    return 0;
}

static int outer_labelled(void *arg, void **result)
{
    struct nested *n = arg;
    futures_trace_name("outer");
    loop_t *inner = loop_create();
    future_t *f = loop_submit(inner, inner_labelled, n);
    int e = loop_run(inner);
    future_release(f);
    loop_destroy(inner);
    n->after = dump_text();
    *result = NULL;
    return e;
}

CheckedTest(dump, a_nested_task_has_its_own_label_and_the_outer_keeps_its)
{
    struct nested n = {NULL, NULL};
    loop_t *loop = loop_create();
    future_t *f = loop_submit(loop, outer_labelled, &n);
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(future_wait(f, NULL), 0);
    cr_assert(strstr(n.during, "\"outer\"") && strstr(n.during, "\"inner\""),
              "%s", n.during);
    cr_assert(strstr(n.after, "\"outer\""), "%s", n.after);
    cr_assert_null(strstr(n.after, "\"inner\""), "%s", n.after);
    free(n.during);
    free(n.after);
    future_release(f);
    loop_destroy(loop);
}

/* ------------------------------------------------- what a wait waits for */

struct chain {
    struct waiter w; /* the task at the end of the chain waits here */
    future_t *tail;  /* what the blocking job waits for */
};

/* Not static: the dump names them through dladdr(). */
int chain_end(void *arg, void **result);
int chain_end(void *arg, void **result)
{
    futures_trace_name("the chain's end");
    return dumped_waiter(arg, result);
}

int chain_head(void *arg, void **result);
int chain_head(void *arg, void **result)
{
    return future_wait(((struct chain *)arg)->tail, result);
}

int pass_value(void *value, void *arg, void **result);
int pass_value(void *value, void *arg, void **result)
{
    (void)arg;
    *result = value;
    return 0;
}

future_t *compose_step(void *value, void *arg);
future_t *compose_step(void *value, void *arg)
{
    (void)value;
    (void)arg;
    return future_delay(1000);
}

/* A blocking job waits for a compose of a when_all of a continuation of a
 * task blocked on a promise, and of a delay: the dump follows each link,
 * says which thread runs the task, and stops at the promise and the delay,
 * which nothing in the library will settle before their time. */
CheckedTest(dump, says_what_a_blocked_wait_waits_for_link_by_link)
{
    pool_t *pool = pool_create(1);
    struct chain c = {.w = {.p = promise_create()}};
    sem_init(&c.w.started, 0, 0);
    future_t *end = pool_submit(pool, chain_end, &c.w);
    sem_wait(&c.w.started);
    future_t *then = future_then(end, pass_value, NULL);
    future_t *delay = future_delay(UINT64_C(60) * 1000000000);
    future_t *both[2] = {then, delay};
    future_t *all = when_all(both, 2);
    c.tail = future_compose(all, compose_step, NULL);
    future_t *head = pool_submit_blocking(pool, chain_head, &c);
    const char *want[] = {
        "takes the outcome of",
        "a compose (compose_step) 0x",
        "a combinator 0x",
        "waits for 2 of its 2 inputs:",
        "a then (pass_value)",
        "waits for its input:",
        "a task (chain_end) ",
        "\"the chain's end\" (run by futures-",
        "runs on a thread blocked waiting for",
        "is not settled yet: whoever holds its promise settles it",
        "is not due yet: the timer thread settles it",
    };
    /* Both waits begin soon after the tasks started: dump until they
     * show. */
    char *text = NULL;
    bool all_there = false;
    uint64_t deadline = monotonic_ns() + UINT64_C(10000000000);
    while (!all_there && monotonic_ns() < deadline) {
        free(text);
        text = dump_text();
        all_there = true;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            all_there &= strstr(text, want[i]) != NULL;
    }
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(text, want[i]), "no \"%s\" in:\n%s", want[i], text);
    cr_assert(strstr(text, "what LWP "), "%s", text);
    free(text);
    promise_resolve(c.w.p, NULL);
    future_cancel(delay);
    cr_assert_eq(future_wait(head, NULL), ECANCELED);
    future_t *fs[] = {end, then, delay, all, c.tail, head};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        future_release(fs[i]);
    promise_release(c.w.p);
    sem_destroy(&c.w.started);
    pool_destroy(pool);
}

/* Does the line of pool 1's core thread in @text say @what? */
static bool core_line_says(const char *text, const char *what)
{
    const char *line = strstr(text, "(core thread of pool 1, LWP ");
    const char *eol = line ? strchr(line, '\n') : NULL;
    const char *at = line ? strstr(line, what) : NULL;
    return at && eol && at < eol;
}

/* Threads with no task say whether they sleep until there is work. */
CheckedTest(dump, says_which_threads_sleep_for_lack_of_work)
{
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, value_task, NULL);
    cr_assert_eq(future_wait(f, NULL), 0);
    future_release(f);
    const char *asleep = ": asleep until there is work";
    char *text = NULL;
    uint64_t deadline = monotonic_ns() + UINT64_C(10000000000);
    do { /* the thread goes to sleep soon after its task */
        free(text);
        text = dump_text();
    } while (!core_line_says(text, asleep) && monotonic_ns() < deadline);
    cr_assert(core_line_says(text, asleep), "%s", text);
    cr_assert(strstr(text, "(a thread of the program's, LWP "), "%s", text);
    free(text);
    pool_destroy(pool);
}

/* ------------------------------------------------- a stream that blocks */

/* An unbuffered stream whose writes block, once they reach the threads'
 * lines, until the test opens its gate: stderr behind a full pipe. */
struct stuck_stream {
    struct gate gate;
};

static ssize_t stuck_write(void *cookie, const char *buf, size_t size)
{
    struct stuck_stream *s = cookie;
    if (memmem(buf, size, "thread ", 7))
        gate_pass(&s->gate);
    return (ssize_t)size;
}

static void *dump_to_stuck(void *arg)
{
    struct stuck_stream *s = arg;
    FILE *out = fopencookie(s, "w", (cookie_io_functions_t){.write = stuck_write});
    cr_assert_not_null(out);
    setvbuf(out, NULL, _IONBF, 0);
    intptr_t rc = futures_dump(out);
    fclose(out);
    return (void *)rc;
}

int labelled_quickly(void *arg, void **result);
int labelled_quickly(void *arg, void **result)
{
    futures_trace_name("quick");
    *result = arg;
    return 0;
}

/* A dump holds locks while it looks (the threads' registry, the walk's),
 * but writes only once it holds none: a stream that blocks stops that
 * dump and nothing else, not another dump, nor a task that labels
 * itself, nor a wait. */
CheckedTest(dump, a_stream_that_blocks_stops_only_its_own_dump, .timeout = 60)
{
    pool_t *pool = pool_create(1);
    struct waiter w = {.p = promise_create()};
    sem_init(&w.started, 0, 0);
    future_t *blocked = pool_submit(pool, dumped_waiter, &w);
    sem_wait(&w.started); /* a thread whose wait the dump will explain */
    struct stuck_stream s;
    gate_init(&s.gate);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, dump_to_stuck, &s), 0);
    gate_await_started(&s.gate, 1); /* its write is stuck */
    future_t *f = pool_submit(pool, labelled_quickly, NULL);
    cr_assert(future_wait_for(f, UINT64_C(10000000000)),
              "a task that labels itself waits for a stuck dump");
    future_release(f);
    free(dump_text()); /* (a dump that wrote with locks held: a hang, and
                        * the time-out fails the test) */
    gate_open(&s.gate);
    void *rc;
    pthread_join(t, &rc);
    cr_assert_eq((intptr_t)rc, 0);
    promise_resolve(w.p, NULL);
    cr_assert_eq(future_wait(blocked, NULL), 0);
    future_release(blocked);
    promise_release(w.p);
    sem_destroy(&w.started);
    gate_destroy(&s.gate);
    pool_destroy(pool);
}
