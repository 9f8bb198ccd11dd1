/*
 * walk.c - what a future needs before it can settle: the walk behind
 * wait-cycle detection and the dumps' "which waits for".
 *
 * It answers, for a loop's thread about to wait, whether a future can
 * settle only once that loop runs more of its queue (fut__needs_exec): the
 * future's own executor is the loop, or its inputs need the loop the way
 * its ops say they decide (every one, any one, the first); and for any
 * thread, whether it waits, through running tasks on threads blocked for
 * good, for itself (fut__needs_this_thread). The walk reads a set's
 * targets only with a pin (fut__inputs_pin, watch.c), so inputs that
 * settle and go meanwhile stay valid until it is dropped. It looks at a
 * bounded number of futures and recurses no deeper, so a wait on a chain
 * of any length costs a bounded stack; past the bound it answers no, and
 * the wait blocks as if the walk had never run.
 */
#include "walk.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------ what a future needs -- */

/* The walk's answer for one future: it can settle without the executor
 * (FREE), only once the executor runs (NEEDS), or the budget ran out. */
enum need { FREE, NEEDS, UNKNOWN };

/* Futures the walk looks at, at most; also the deepest it recurses. */
#define NEED_BUDGET 1000

struct walk {
    const struct fut__exec *exec; /* this thread's loop, or NULL */
    bool threads; /* follow running tasks to the threads that run them */
    unsigned budget;
    FILE *report; /* where to say what was looked at, or NULL */
};

/* Out of line, so that its buffers stay off the frames of the walk's
 * recursion, which reports only when it aborts: a deadlock report's line
 * about @f, its label, then the threads that run it and wait for it. */
static __attribute__((noinline)) void report_line(FILE *out, const future_t *f,
                                                  const char *what)
{
    struct fut__involved it;
    fut__thread_involved(f, &it);
    fprintf(out, "  %s%s %s\n", it.name, it.label, what);
    if (*it.who)
        fprintf(out, "    (%s)\n", it.who);
}

static void report(const struct walk *wk, const future_t *f, const char *what)
{
    if (wk->report)
        report_line(wk->report, f, what);
}

static enum need needs(future_t *f, struct walk *wk);

/* What the targets of @in, pinned, say about its owner, decided @how. A
 * when_all needs the executor as soon as one input does, a when_any only
 * if every input does. */
static enum need inputs_need(struct fut__inputs *in, enum fut__decides how,
                             struct walk *wk)
{
    if (in->n == 0)
        return FREE;
    if (how == FUT_DECIDES_FIRST)
        return needs(in->w[0].target, wk);
    enum need decisive = how == FUT_DECIDES_EVERY ? NEEDS : FREE;
    for (size_t i = 0; i < in->n; i++) {
        enum need v = needs(in->w[i].target, wk);
        if (v == decisive || v == UNKNOWN)
            return v;
    }
    return decisive == NEEDS ? FREE : NEEDS;
}

/* @f runs on a thread: on this one (NEEDS), on one blocked for good on
 * a future (what that future needs), or on one that moves on (FREE). */
static enum need running_needs(future_t *f, struct walk *wk)
{
    bool self;
    future_t *g = fut__blocked_behind(f, &self);
    if (self) {
        report(wk, f, "runs on this thread, beneath its wait");
        return NEEDS;
    }
    if (!g)
        return FREE;
    report(wk, f, "runs on a thread that is blocked waiting for");
    enum need v = needs(g, wk);
    future_release(g);
    return v;
}

/*
 * What the future @f will take its outcome from needs (a compose relay:
 * its step, then the future the step gave it). Only a cycle walk reads
 * it: those run one at a time (fut__cycle_check_begin), odd walk_epoch
 * while one runs, and whoever takes the future out of @f's slot waits
 * out a walk that may have read it before releasing it.
 */
static atomic_uint walk_epoch;

static enum need follows_need(future_t *f, struct walk *wk)
{
    future_t *g = wk->threads ? f->ops->follows(f) : NULL;
    if (!g)
        return FREE;
    enum need v = needs(g, wk);
    if (v == NEEDS)
        report(wk, f, "takes the outcome of");
    return v;
}

void fut__walk_quiesce(void)
{
    unsigned e = atomic_load(&walk_epoch);
    if (!(e & 1) || fut__self.checking_cycle)
        return; /* no walk, or this thread's own: it reads no more */
    unsigned spins = 0;
    while (atomic_load(&walk_epoch) == e) {
        if (++spins % 64 == 0)
            sched_yield();
        else
            fut__cpu_relax();
    }
}

static enum need needs(future_t *f, struct walk *wk)
{
    if (wk->budget == 0)
        return UNKNOWN;
    wk->budget--;
    if (fut__is_settled(f))
        return FREE;
    if (wk->exec && f->exec == wk->exec) {
        report(wk, f, "can run only on this thread's loop");
        return NEEDS;
    }
    if (wk->threads && fut__state(f) == FUT_RUNNING)
        return running_needs(f, wk);
    if (f->ops->follows)
        return follows_need(f, wk);
    if (!f->ops->inputs)
        return FREE; /* a task elsewhere, a promise, a delay */
    struct fut__inputs *in = f->ops->inputs(f);
    if (!fut__inputs_pin(in))
        return FREE; /* its inputs have all settled */
    enum need v = inputs_need(in, f->ops->decides, wk);
    fut__inputs_unpin(in);
    if (v == NEEDS)
        report(wk, f, "waits for its inputs");
    return v;
}

/*
 * Can @f, unsettled, settle only once @exec runs more of its queue? Only a
 * definite yes counts: a walk that ran out of budget says no, and so does
 * one that finds @f settled meanwhile (a loop task cancelled from another
 * thread settles what waited for it).
 */
bool fut__needs_exec(future_t *f, const struct fut__exec *exec)
{
    struct walk wk = {exec, false, NEED_BUDGET, NULL};
    return needs(f, &wk) == NEEDS && !fut__is_settled(f);
}

/*
 * Can @f, unsettled, settle only once this thread moves on: through its
 * loop (fut__needs_exec), or through tasks running on threads blocked for
 * good, each on the next one's future, the last on this thread's? With
 * @report, says on it what the walk looked at.
 */
bool fut__needs_this_thread(future_t *f, FILE *report)
{
    struct walk wk = {fut__self.loop, true, NEED_BUDGET, report};
    atomic_fetch_add(&walk_epoch, 1); /* odd: a walk reads relays */
    bool needed = needs(f, &wk) == NEEDS && !fut__is_settled(f);
    atomic_fetch_add(&walk_epoch, 1);
    return needed;
}

/* ---------------------------------------------- what a wait waits for -- */

/*
 * For futures_dump(): what a future a thread is blocked on waits for, one
 * line a link: the task that would settle it and the thread that runs it
 * (and, if that thread is blocked too, what it waits for in turn), the
 * inputs a continuation or combinator waits for, the future a compose
 * takes its outcome from. It follows the links the cycle walk follows,
 * under the same rules (pins; one walk at a time, with walk_epoch odd),
 * and decides nothing. Bounded in depth and lines: a dump is for a person.
 */
#define EXPLAIN_DEPTH 6
#define EXPLAIN_LINES 24
#define EXPLAIN_INPUTS 4 /* unsettled inputs shown, of one future */

struct explain {
    FILE *out;
    unsigned lines;
};

static __attribute__((noinline)) void say(struct explain *ex, unsigned depth,
                                          const future_t *f, const char *what)
{
    struct fut__involved it;
    fut__thread_involved(f, &it);
    /* The first link's waiter is the thread the dump just named; who
     * runs it is news. */
    bool threads = *it.who && (depth || fut__state(f) == FUT_RUNNING);
    fprintf(ex->out, "%*s%s%s%s%s%s %s\n", (int)(4 + 2 * depth), "", it.name,
            it.label, threads ? " (" : "", threads ? it.who : "",
            threads ? ")" : "", what);
    ex->lines++;
}

/* The last link: a future nothing in the library will settle by itself. */
static const char *why_pending(const future_t *f)
{
    if (fut__state(f) == FUT_QUEUED)
        return "is queued, waiting for a thread of its pool";
    if (strcmp(f->ops->kind, "promise") == 0)
        return "is not settled yet: whoever holds its promise settles it";
    if (strcmp(f->ops->kind, "delay") == 0)
        return "is not due yet: the timer thread settles it";
    return "has not started";
}

static void explain(future_t *f, struct explain *ex, unsigned depth);

/* The inputs of @f that have not settled, each explained below it. */
static void explain_inputs(future_t *f, struct fut__inputs *in,
                           struct explain *ex, unsigned depth)
{
    size_t open = 0;
    for (size_t i = 0; i < in->n; i++)
        open += !fut__is_settled(in->w[i].target);
    char what[64];
    if (in->n == 1)
        snprintf(what, sizeof what, "waits for its input:");
    else
        snprintf(what, sizeof what, "waits for %zu of its %zu inputs:", open,
                 in->n);
    say(ex, depth, f, what);
    size_t shown = 0;
    for (size_t i = 0; i < in->n && shown < EXPLAIN_INPUTS; i++) {
        if (!fut__is_settled(in->w[i].target)) {
            explain(in->w[i].target, ex, depth + 1);
            shown++;
        }
    }
    if (open > shown)
        fprintf(ex->out, "%*s(and %zu more)\n", (int)(6 + 2 * depth), "",
                open - shown);
}

static void explain(future_t *f, struct explain *ex, unsigned depth)
{
    if (depth >= EXPLAIN_DEPTH || ex->lines >= EXPLAIN_LINES) {
        if (ex->lines++ == EXPLAIN_LINES || depth >= EXPLAIN_DEPTH)
            fprintf(ex->out, "%*s...\n", (int)(4 + 2 * depth), "");
        return;
    }
    if (fut__is_settled(f)) {
        say(ex, depth, f, "has settled: its waiter is waking up");
        return;
    }
    if (fut__state(f) == FUT_RUNNING) {
        bool self;
        future_t *g = fut__blocked_behind(f, &self);
        say(ex, depth, f, self ? "runs on this thread"
                          : g  ? "runs on a thread blocked waiting for"
                               : "is running, and waits for nothing the "
                                 "library knows of");
        if (g) {
            explain(g, ex, depth + 1);
            future_release(g);
        }
        return;
    }
    future_t *g = f->ops->follows ? f->ops->follows(f) : NULL;
    if (g) {
        say(ex, depth, f, "takes the outcome of");
        explain(g, ex, depth + 1);
        return;
    }
    struct fut__inputs *in = f->ops->inputs ? f->ops->inputs(f) : NULL;
    if (in && fut__inputs_pin(in)) {
        explain_inputs(f, in, ex, depth);
        fut__inputs_unpin(in);
        return;
    }
    say(ex, depth, f, in ? "has all its inputs: it is settling"
                         : why_pending(f));
}

void fut__explain_wait(future_t *f, const char *heading, FILE *out)
{
    if (!fut__cycle_check_begin())
        return; /* a walk of this thread's is under way */
    fprintf(out, "%s\n", heading);
    struct explain ex = {out, 0};
    atomic_fetch_add(&walk_epoch, 1); /* odd: a walk reads relays */
    explain(f, &ex, 0);
    atomic_fetch_add(&walk_epoch, 1);
    fut__cycle_check_end();
}
