/*
 * Tests of samples/: each sample is run as a user would run it, with its
 * delays scaled down, and what it printed is checked against what it exists
 * to show.
 *
 * The samples live in SAMPLES_DIR (`make samples` builds them); the tests
 * run from the repository's root. Timing is judged by ratios (count_async
 * against count_sync, gather against sync), never by absolute times, with
 * margins wide enough for a loaded two-core machine; yet every bound fails
 * if the jobs that should overlap ran one by one (a ratio of 1 instead of
 * 1/3 or 8/15). Nothing sleeps: each test waits for its programs to exit.
 */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifndef SAMPLES_DIR
#define SAMPLES_DIR "build/samples"
#endif

/*
 * random_add's calls take 5, 8 and 2 s, so at 0.01 its shortest time is
 * 20 ms, well above the 5 ms its two decimals can show. count and pipeline
 * print one total each, of 1 s or so: at 0.01 that would read 0.01 or 0.02
 * for a few milliseconds of start-up, too coarse for a ratio, so they run
 * at 0.05.
 */
#define RANDOM_ADD_SCALE 0.01
#define COUNT_SCALE      0.05
#define PIPELINE_SCALE   0.05

#define OUT_MAX   16384
#define LINES_MAX 128

struct run {
    char out[OUT_MAX];
    char *line[LINES_MAX]; /* into out, split at newlines */
    int nlines;
    int status; /* the exit code, or -1 if it did not exit */
};

/* Runs SAMPLES_DIR/@name with @args and keeps its standard output. */
static void run_sample(struct run *r, const char *name, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/%s %s", SAMPLES_DIR, name, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen(%s): %s", cmd, strerror(errno));
    size_t len = fread(r->out, 1, OUT_MAX - 1, p);
    char rest[256];
    while (fread(rest, 1, sizeof rest, p) > 0) /* never leave it blocked */
        len = OUT_MAX;
    int ws = pclose(p);
    cr_assert_lt(len, OUT_MAX, "%s: output too long", cmd);
    r->out[len] = '\0';
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    r->nlines = 0;
    for (char *s = r->out; *s && r->nlines < LINES_MAX;) {
        char *nl = strchr(s, '\n');
        r->line[r->nlines++] = s;
        if (!nl)
            break;
        *nl = '\0';
        s = nl + 1;
    }
}

static void run_ok(struct run *r, const char *name, const char *args)
{
    run_sample(r, name, args);
    cr_assert_eq(r->status, 0,
                 "%s %s exited with %d (is it built? make samples)", name, args,
                 r->status);
}

/* The first @n lines are @want. */
static void expect_lines(const struct run *r, const char *const *want, int n)
{
    cr_assert_geq(r->nlines, n, "%d lines:\n%s", r->nlines, r->out);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(r->line[i], want[i], "line %d", i + 1);
}

/* ---------------------------------------------------------------- count -- */

/* The last line, "<program> executed in N.NN seconds.", and its N.NN. */
static double executed_in(const struct run *r, const char *program)
{
    double secs = -1;
    char again[128];
    const char *last = r->line[r->nlines - 1];
    cr_assert_eq(sscanf(last, "%*s executed in %lf", &secs), 1, "%s", last);
    snprintf(again, sizeof again, "%s executed in %.2f seconds.", program,
             secs);
    cr_assert_str_eq(last, again);
    return secs;
}

static double run_count(const char *program, const char *const *order)
{
    struct run r;
    char args[64];
    snprintf(args, sizeof args, "--scale %g", COUNT_SCALE);
    run_ok(&r, program, args);
    cr_assert_eq(r.nlines, 7, "%s printed:\n%s", program, r.out);
    expect_lines(&r, order, 6);
    return executed_in(&r, program);
}

static const char *const one_two_in_turn[] = {"One", "Two", "One",
                                              "Two", "One", "Two"};
static const char *const ones_then_twos[] = {"One", "One", "One",
                                             "Two", "Two", "Two"};

CheckedTest(samples, count_sync_prints_one_two_three_times_in_turn,
            .timeout = 60)
{
    double secs = run_count("count_sync", one_two_in_turn);
    cr_assert_geq(secs, 3 * COUNT_SCALE - 0.005, "took %.2f s", secs);
    expect_no_leaks();
}

CheckedTest(samples, count_async_prints_three_ones_then_three_twos,
            .timeout = 60)
{
    double secs = run_count("count_async", ones_then_twos);
    cr_assert_geq(secs, COUNT_SCALE - 0.005, "took %.2f s", secs);
    expect_no_leaks();
}

/* One by one would be 1. */
CheckedTest(samples, count_async_takes_about_a_third_of_count_sync,
            .timeout = 60)
{
    double sync = run_count("count_sync", one_two_in_turn);
    double async = run_count("count_async", ones_then_twos);
    double ratio = async / sync;
    cr_assert(ratio >= 0.15 && ratio <= 0.7,
              "async %.2f s / sync %.2f s = %.2f, want about 1/3", async, sync,
              ratio);
    expect_no_leaks();
}

/* ----------------------------------------------------------- random_add -- */

#define NCALLS 3
#define NWAYS  4

static const char *const way_names[NWAYS] = {"sync", "pitfall", "tasks",
                                             "gather"};

struct way {
    bool seen;
    bool note;
    int nsums;
    long sums[NCALLS]; /* in the order printed */
    int nrows;
    double start[NCALLS], finish[NCALLS]; /* by call, 1 to 3 */
    int order[NCALLS];
    double total;
};

struct ways {
    struct way way[NWAYS];
    int seen_order[NWAYS]; /* indices into way_names, as printed */
    int nseen;
};

/* "Sum([a, b, c]) = S": checks the arithmetic, returns S. */
static long parse_sum(const char *line)
{
    const char *s = line + strlen("Sum([");
    long sum = 0, printed;
    char *end;
    do {
        sum += strtol(s, &end, 10);
        cr_assert_neq(end, s, "%s", line);
        s = end + (*end == ',' ? 2 : 0);
    } while (*end == ',');
    cr_assert_eq(sscanf(end, "]) = %ld", &printed), 1, "%s", line);
    cr_assert_eq(printed, sum, "%s", line);
    return printed;
}

static void parse_row(struct way *w, const char *line)
{
    int call, order;
    double start, finish;
    cr_assert_eq(
        sscanf(line, "%d | %lf | %lf | %d", &call, &start, &finish, &order), 4,
        "%s", line);
    cr_assert(call >= 1 && call <= NCALLS, "%s", line);
    cr_assert_eq(call, ++w->nrows, "rows out of order: %s", line);
    w->start[call - 1] = start;
    w->finish[call - 1] = finish;
    w->order[call - 1] = order;
}

/* The heading "<way>: ... (delays scaled by F)" starts a way's section. */
static int heading(const char *line)
{
    for (int i = 0; i < NWAYS; i++) {
        size_t n = strlen(way_names[i]);
        if (strncmp(line, way_names[i], n) == 0 && line[n] == ':') {
            char scaled[64];
            snprintf(scaled, sizeof scaled, "(delays scaled by %g)",
                     RANDOM_ADD_SCALE);
            cr_assert(strstr(line, scaled), "heading without its scale: %s",
                      line);
            return i;
        }
    }
    return -1;
}

static void parse_line(struct way *w, const char *line)
{
    if (strncmp(line, "Sum([", 5) == 0) {
        cr_assert_lt(w->nsums, NCALLS, "too many sums: %s", line);
        w->sums[w->nsums++] = parse_sum(line);
    } else if (strncmp(line, "total: ", 7) == 0) {
        cr_assert_eq(sscanf(line, "total: %lf s", &w->total), 1, "%s", line);
    } else if (strncmp(line, "note: ", 6) == 0) {
        w->note = true;
    } else if (strncmp(line, "call | start", 12) != 0 && line[0] != '\0') {
        parse_row(w, line);
    }
}

static void run_random_add(struct ways *ws, const char *mode)
{
    struct run r;
    char args[64];
    snprintf(args, sizeof args, "--scale %g%s%s", RANDOM_ADD_SCALE,
             mode ? " --mode " : "", mode ? mode : "");
    run_ok(&r, "random_add", args);
    memset(ws, 0, sizeof *ws);
    struct way *w = NULL;
    for (int i = 0; i < r.nlines; i++) {
        int k = heading(r.line[i]);
        if (k >= 0) {
            cr_assert(!ws->way[k].seen, "%s twice", way_names[k]);
            ws->seen_order[ws->nseen++] = k;
            w = &ws->way[k];
            w->seen = true;
        } else {
            cr_assert_not_null(w, "before any heading: %s", r.line[i]);
            parse_line(w, r.line[i]);
        }
    }
    for (int k = 0; k < NWAYS; k++) {
        struct way *v = &ws->way[k];
        if (v->seen)
            cr_assert(v->nsums == NCALLS && v->nrows == NCALLS && v->total > 0,
                      "%s: %d sums, %d rows, total %.2f:\n%s", way_names[k],
                      v->nsums, v->nrows, v->total, r.out);
    }
}

static void expect_order(const struct way *w, int a, int b, int c,
                         const char *name)
{
    cr_assert(w->order[0] == a && w->order[1] == b && w->order[2] == c,
              "%s: finish order %d, %d, %d; want %d, %d, %d", name, w->order[0],
              w->order[1], w->order[2], a, b, c);
}

/* Started together: every start close to 0 against the whole run. */
static void expect_started_together(const struct way *w, const char *name)
{
    for (int i = 0; i < NCALLS; i++)
        cr_assert_lt(w->start[i], 0.3 * w->total,
                     "%s: call %d started at %.2f of %.2f s", name, i + 1,
                     w->start[i], w->total);
}

/* Back to back: the calls start at 0, 5 and 13 of 15. */
static void expect_back_to_back(const struct way *w, const char *name)
{
    static const double at[NCALLS] = {0, 5.0 / 15, 13.0 / 15};
    for (int i = 0; i < NCALLS; i++) {
        double share = w->start[i] / w->total;
        cr_assert(share > at[i] - 0.1 && share < at[i] + 0.1,
                  "%s: call %d started at %.2f of %.2f s, want %.2f of it",
                  name, i + 1, w->start[i], w->total, at[i]);
    }
    expect_order(w, 1, 2, 3, name);
}

static void expect_ratio(double a, double b, double lo, double hi,
                         const char *what)
{
    cr_assert(a / b >= lo && a / b <= hi, "%s: %.2f / %.2f = %.2f, want %g-%g",
              what, a, b, a / b, lo, hi);
}

CheckedTest(samples, random_add_runs_all_four_ways_in_order_on_the_same_lists,
            .timeout = 60)
{
    struct ways ws;
    run_random_add(&ws, NULL); /* the default is all */
    cr_assert_eq(ws.nseen, NWAYS);
    for (int k = 0; k < NWAYS; k++)
        cr_assert_eq(ws.seen_order[k], k, "way %d is %s", k + 1,
                     way_names[ws.seen_order[k]]);
    /* Each job prints its sum as it finishes: the calls in turn one by
     * one, and 3, 1, 2 when they run together. */
    static const int printed[NWAYS][NCALLS] = {
        {0, 1, 2}, {0, 1, 2}, {2, 0, 1}, {2, 0, 1}};
    const long *by_call = ws.way[0].sums;
    for (int k = 1; k < NWAYS; k++) {
        const long *got = ws.way[k].sums;
        for (int j = 0; j < NCALLS; j++)
            cr_assert_eq(got[j], by_call[printed[k][j]],
                         "%s: sum %d is %ld, want call %d's %ld", way_names[k],
                         j + 1, got[j], printed[k][j] + 1,
                         by_call[printed[k][j]]);
    }
    expect_no_leaks();
}

CheckedTest(samples, random_add_sync_runs_the_calls_back_to_back, .timeout = 60)
{
    struct ways ws;
    run_random_add(&ws, "sync");
    cr_assert_eq(ws.nseen, 1);
    const struct way *sync = &ws.way[0];
    expect_back_to_back(sync, "sync");
    cr_assert_geq(sync->total, 15 * RANDOM_ADD_SCALE - 0.005);
    expect_no_leaks();
}

/* Waiting for each job before submitting the next gains nothing. */
CheckedTest(samples, random_add_pitfall_is_no_faster_than_sync, .timeout = 60)
{
    struct ways ws;
    run_random_add(&ws, "all");
    const struct way *pitfall = &ws.way[1];
    expect_back_to_back(pitfall, "pitfall");
    cr_assert(pitfall->note, "pitfall printed no note on why");
    cr_assert_geq(pitfall->total, 0.85 * ws.way[0].total,
                  "pitfall %.2f s, sync %.2f s", pitfall->total,
                  ws.way[0].total);
    expect_no_leaks();
}

CheckedTest(samples, random_add_gather_overlaps_the_calls, .timeout = 60)
{
    struct ways ws;
    run_random_add(&ws, "all");
    const struct way *gather = &ws.way[3];
    expect_started_together(gather, "gather");
    expect_order(gather, 2, 3, 1, "gather");
    /* 8 s of 15; one by one would be 1. */
    expect_ratio(gather->total, ws.way[0].total, 0.35, 0.8, "gather / sync");
    expect_no_leaks();
}

/* Waiting for call 1 first costs nothing: the others run meanwhile. */
CheckedTest(samples, random_add_tasks_are_about_as_fast_as_gather,
            .timeout = 60)
{
    struct ways ws;
    run_random_add(&ws, "all");
    const struct way *tasks = &ws.way[2], *gather = &ws.way[3];
    expect_started_together(tasks, "tasks");
    expect_order(tasks, 2, 3, 1, "tasks");
    expect_ratio(tasks->total, ws.way[0].total, 0.35, 0.8, "tasks / sync");
    expect_ratio(tasks->total, gather->total, 0.7, 1.4, "tasks / gather");
    expect_no_leaks();
}

CheckedTest(samples, random_add_runs_only_the_mode_asked_for, .timeout = 60)
{
    for (int k = 0; k < NWAYS; k++) {
        struct ways ws;
        run_random_add(&ws, way_names[k]);
        cr_assert(ws.nseen == 1 && ws.seen_order[0] == k,
                  "--mode %s ran %d ways", way_names[k], ws.nseen);
    }
    expect_no_leaks();
}

/* ------------------------------------------------------------- pipeline -- */

CheckedTest(samples, pipeline_recovers_each_failure_and_overlaps_the_requests,
            .timeout = 60)
{
    /* Requests 3 and 5 fail; request 6 answers with a body that is not a
     * number. Every other request parses to its number. */
    char fail[3][64];
    const char *want[8] = {
        "request 1: ok -> 17",
        "request 2: ok -> 42",
        fail[0],
        "request 4: ok -> 256",
        fail[1],
        fail[2],
        "request 7: ok -> 1000",
        "request 8: ok -> 8",
    };
    snprintf(fail[0], sizeof fail[0], "request 3: failed (%s) -> fallback -1",
             strerror(ETIMEDOUT));
    snprintf(fail[1], sizeof fail[1], "request 5: failed (%s) -> fallback -1",
             strerror(ECONNREFUSED));
    snprintf(fail[2], sizeof fail[2], "request 6: failed (%s) -> fallback -1",
             strerror(EBADMSG));
    struct run r;
    char args[64];
    snprintf(args, sizeof args, "--scale %g", PIPELINE_SCALE);
    run_ok(&r, "pipeline", args);
    cr_assert_eq(r.nlines, 9, "pipeline printed:\n%s", r.out);
    expect_lines(&r, want, 8);
    double total, latencies;
    cr_assert_eq(sscanf(r.line[8], "total: %lf s, sum of latencies: %lf s",
                        &total, &latencies),
                 2, "%s", r.line[8]);
    /* 0.2 + 0.3 + ... + 1.0 = 4.5 s of requests, 1 s the longest. */
    cr_assert_geq(latencies, 4.5 * PIPELINE_SCALE - 0.005, "%s", r.line[8]);
    expect_ratio(total, latencies, 0.1, 0.5, "total / sum of latencies");
    expect_no_leaks();
}

/* ---------------------------------------------------------------- crawl -- */

#define CRAWL_SCALE 2.0 /* arrivals 100 ms apart: loaded machines keep the order */

/* Does a line of @r's output contain @text? */
static bool printed_line_with(const struct run *r, const char *text)
{
    for (int i = 0; i < r->nlines; i++) {
        if (strstr(r->line[i], text))
            return true;
    }
    return false;
}

CheckedTest(samples, crawl_handles_pages_as_they_arrive_and_reports_the_404,
            .timeout = 60)
{
    struct run r;
    char args[64];
    snprintf(args, sizeof args, "--scale %g", CRAWL_SCALE);
    run_ok(&r, "crawl", args);
    /* Nine pages in the order the server's delays make them arrive, each
     * taken from the completion queue as it came. */
    static const char *const arrived[] = {
        "/index.html", "/blog.html", "/drafts.html", "/post-2.html",
        "/shop.html",  "/post-1.html", "/about.html", "/cart.html",
        "/team.html"};
    int seen = 0;
    for (int i = 0; i < r.nlines && seen < 9; i++) {
        char want[32];
        snprintf(want, sizeof want, "#%d %s", seen + 1, arrived[seen]);
        if (strstr(r.line[i], want))
            seen++;
    }
    cr_assert_eq(seen, 9, "pages out of order");
    cr_assert(printed_line_with(&r, "failed: HTTP 404 from /drafts.html"));
    char finished[160];
    snprintf(finished, sizeof finished,
             "crawl finished: %s (HTTP 404 from /drafts.html)",
             strerror(ENOENT));
    cr_assert(printed_line_with(&r, finished), "no line: %s", finished);
    cr_assert(printed_line_with(&r, "9 pages, 8 fetched, 1 failed"));
}

/* ---------------------------------------------------------------- limit -- */

/*
 * At 0.2 a job blocks 10 ms, so the 20 rounds take 0.2 s. The first run
 * proves the limit from both sides: the peak, counted inside the jobs, is
 * exactly 10, and the run takes no less than 20 rounds (without the limit
 * it would be one round, 10 ms), on a handful of threads, not one per
 * job. The second checks what the failure did, leaving room for a loaded
 * machine where a job of the first round starts late: the join reports
 * job 5, most jobs never ran, and every job is accounted for.
 */
#define LIMIT_SCALE 0.2

CheckedTest(samples, limit_keeps_ten_running_and_a_failure_cancels_the_rest,
            .timeout = 60)
{
    struct run r;
    char args[64];
    snprintf(args, sizeof args, "--scale %g", LIMIT_SCALE);
    run_ok(&r, "limit", args);
    cr_assert_eq(r.nlines, 13, "limit printed:\n%s", r.out);
    char heading[2][96], join_failed[128];
    snprintf(heading[0], sizeof heading[0],
             "200 jobs of 50 ms, at most 10 at once (delays scaled by %g)",
             LIMIT_SCALE);
    snprintf(heading[1], sizeof heading[1],
             "the same, but job 5 fails after 25 ms (delays scaled by %g)",
             LIMIT_SCALE);
    snprintf(join_failed, sizeof join_failed,
             "join: %s: job 5: the disk went away", strerror(EIO));
    const char *const want[] = {heading[0], "join: ok"};
    expect_lines(&r, want, 2);
    double wall, ideal;
    cr_assert_eq(
        sscanf(r.line[2], "wall time: %lf s (ideal %lf s", &wall, &ideal), 2,
        "%s", r.line[2]);
    cr_assert(ideal > 0.19 && ideal < 0.21, "%s", r.line[2]);
    cr_assert_geq(wall, ideal - 0.005, "faster than the limit allows: %s",
                  r.line[2]);
    expect_ratio(wall, ideal, 0.95, 3.0, "wall / ideal");
    cr_assert_str_eq(r.line[3], "peak running at once: 10 (limit 10)");
    cr_assert_str_eq(r.line[4], "jobs: 200 ran, 200 succeeded");
    int threads;
    cr_assert_eq(sscanf(r.line[5], "threads at peak: %d (", &threads), 1, "%s",
                 r.line[5]);
    cr_assert(threads >= 12 && threads <= 20, "%s", r.line[5]);
    cr_assert_str_eq(r.line[7], heading[1]);
    cr_assert_str_eq(r.line[8], join_failed);
    int peak, ran, failed, stopped, never, ok, bad, cancelled;
    cr_assert_eq(
        sscanf(r.line[10], "peak running at once: %d (limit 10)", &peak), 1,
        "%s", r.line[10]);
    cr_assert(peak >= 1 && peak <= 10, "%s", r.line[10]);
    cr_assert_eq(sscanf(r.line[11],
                        "jobs: %d ran (%d failed, %d stopped early on "
                        "task_cancelled()), %d never ran",
                        &ran, &failed, &stopped, &never),
                 4, "%s", r.line[11]);
    cr_assert_eq(sscanf(r.line[12],
                        "futures: %d succeeded, %d failed, %d cancelled", &ok,
                        &bad, &cancelled),
                 3, "%s", r.line[12]);
    cr_assert(failed == 1 && bad == 1, "%s\n%s", r.line[11], r.line[12]);
    cr_assert_eq(ran + never, 200, "%s", r.line[11]);
    cr_assert_eq(ok + bad + cancelled, 200, "%s", r.line[12]);
    cr_assert_geq(never, 100, "the failure cancelled too little: %s",
                  r.line[11]);
    cr_assert_eq(cancelled, never + stopped, "%s\n%s", r.line[11], r.line[12]);
    expect_no_leaks();
}

/* ----------------------------------------------------------------- hang -- */

/*
 * hang deadlocks on purpose: each wait that could never end says EDEADLK
 * (which task of the cycle closes it depends on which blocked last), the
 * stuck pool's dump and report name the job, the task waiting for it and
 * the job queued behind it, with their times; the pool then ends once the
 * job can, and FUTURES_DEADLOCK=abort aborts a child with the cycle on its
 * stderr. At 0.5 the deadline is 100 ms.
 */
#define HANG_SCALE 0.5

CheckedTest(samples, hang_reports_each_deadlock_and_the_stuck_pool,
            .timeout = 60)
{
    struct run r;
    char args[64];
    snprintf(args, sizeof args, "--scale %g", HANG_SCALE);
    run_ok(&r, "hang", args);
    char deadlk[96], closed[2][160], outcome[2][160];
    snprintf(deadlk, sizeof deadlk, "EDEADLK (%s)", strerror(EDEADLK));
    for (int i = 0; i < 2; i++) {
        const char *me = i ? "b" : "a", *other = i ? "a" : "b";
        snprintf(closed[i], sizeof closed[i],
                 "   task %s's wait for task %s: %s: it closed the cycle", me,
                 other, deadlk);
        snprintf(outcome[i], sizeof outcome[i],
                 "   task %s's wait for task %s: %s: task %s's outcome", other,
                 me, deadlk, me);
    }
    int closer = strcmp(r.line[1], closed[0]) == 0 ? 0 : 1;
    cr_assert_str_eq(r.line[1], closed[closer], "%s", r.out);
    cr_assert(strncmp(r.line[2], outcome[closer], strlen(outcome[closer])) ==
                  0,
              "%s", r.line[2]);
    char loop_wait[128];
    snprintf(loop_wait, sizeof loop_wait, "   its wait: %s", deadlk);
    cr_assert(printed_line_with(&r, loop_wait), "%s", r.out);
    cr_assert(printed_line_with(&r, " did not end within 0.100 s"), "%s",
              r.out);
    cr_assert(printed_line_with(&r, "running: a task (read_pipe)"), "%s",
              r.out);
    /* The dump of the stuck pool: the queued job's age, the task's label,
     * and what its wait waits for. */
    const char *dumped[] = {
        "   futures_dump(stdout) writes:",
        "1 queued (1 of them blocking jobs), 2 running, 0 completed, the "
        "oldest queued for 0.",
        "running: a task (await_reply) 0x",
        "\"await the reply\" for 0.",
        "what LWP ",
        "is running, and waits for nothing the library knows of",
    };
    for (size_t i = 0; i < sizeof dumped / sizeof dumped[0]; i++)
        cr_assert(printed_line_with(&r, dumped[i]), "%s:\n%s", dumped[i],
                  r.out);
    char timed_out[96];
    snprintf(timed_out, sizeof timed_out, "   and returns ETIMEDOUT (%s)",
             strerror(ETIMEDOUT));
    cr_assert(printed_line_with(&r, timed_out), "%s", r.out);
    cr_assert(printed_line_with(&r, "after a write to the pipe, it returns 0"),
              "%s", r.out);
    cr_assert(printed_line_with(&r, "| libfutures: deadlock: this thread, "
                                    "futures-"),
              "%s", r.out);
    cr_assert(printed_line_with(&r, "would wait for ever for a task (cycle_"),
              "%s", r.out);
    cr_assert(printed_line_with(&r, "\"side a\""), "%s", r.out);
    cr_assert(printed_line_with(&r, "\"side b\""), "%s", r.out);
    cr_assert(printed_line_with(&r, "|     (run by futures-"), "%s", r.out);
    cr_assert(printed_line_with(&r, "the child was killed by SIGABRT"), "%s",
              r.out);
    cr_assert_str_eq(r.line[r.nlines - 1], "futures alive at the end: 0");
    expect_no_leaks();
}

/* ------------------------------------------------------------ arguments -- */

CheckedTest(samples, bad_arguments_make_every_sample_fail, .timeout = 60)
{
    static const char *const samples[] = {"count_sync", "count_async",
                                          "random_add", "pipeline",
                                          "crawl",      "limit",
                                          "hang"};
    static const char *const bad[] = {
        "--scale -1",
        "--scale abc",
        "--scale 0",
        "--scale 1x",
        "--scale",
        "--bogus",
        "extra",
        "--scale inf",
        "--mode gather" /* only random_add has modes */,
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        size_t nbad = sizeof bad / sizeof bad[0];
        if (strcmp(samples[i], "random_add") == 0)
            nbad--; /* the last is good there */
        for (size_t j = 0; j < nbad; j++) {
            struct run r;
            char args[64];
            snprintf(args, sizeof args, "%s 2>/dev/null", bad[j]);
            run_sample(&r, samples[i], args);
            cr_assert(r.status > 0 && r.status != 127, "%s %s exited with %d",
                      samples[i], bad[j], r.status);
            cr_assert_str_empty(r.out, "%s %s ran anyway", samples[i], bad[j]);
        }
    }
    struct run r;
    run_sample(&r, "random_add", "--mode nope 2>/dev/null");
    cr_assert(r.status > 0 && r.status != 127, "--mode nope: %d", r.status);
    cr_assert_str_empty(r.out, "--mode nope ran anyway");
    expect_no_leaks();
}

/* ----------------------------------------------------------- count_loop -- */

CheckedTest(samples, count_loop_prints_three_ones_then_three_twos,
            .timeout = 60)
{
    double secs = run_count("count_loop", ones_then_twos);
    cr_assert_geq(secs, COUNT_SCALE - 0.005, "took %.2f s", secs);
    expect_no_leaks();
}

/* One thread and three timers: as fast as three threads, a third of sync. */
CheckedTest(samples, count_loop_takes_about_as_long_as_count_async,
            .timeout = 60)
{
    double sync = run_count("count_sync", one_two_in_turn);
    double async = run_count("count_async", ones_then_twos);
    double loop = run_count("count_loop", ones_then_twos);
    double ratio = loop / sync;
    cr_assert(ratio >= 0.15 && ratio <= 0.7,
              "loop %.2f s / sync %.2f s = %.2f, want about 1/3", loop, sync,
              ratio);
    cr_assert(loop / async >= 0.5 && loop / async <= 2.0,
              "loop %.2f s, async %.2f s: want about the same", loop, async);
    expect_no_leaks();
}

CheckedTest(samples, count_loop_refuses_bad_arguments, .timeout = 60)
{
    static const char *const bad[] = {
        "--scale -1", "--scale abc", "--scale 0",     "--scale",
        "--bogus",    "extra",       "--mode gather",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct run r;
        char args[64];
        snprintf(args, sizeof args, "%s 2>/dev/null", bad[i]);
        run_sample(&r, "count_loop", args);
        cr_assert(r.status > 0 && r.status != 127,
                  "count_loop %s exited with %d", bad[i], r.status);
        cr_assert_str_empty(r.out, "count_loop %s ran anyway", bad[i]);
    }
    expect_no_leaks();
}
