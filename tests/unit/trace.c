/*
 * Tests of lib/trace.c and tools/trace2svg.py. The trace and the SVG are
 * checked by Python's own JSON and XML parsers, not by anything of ours.
 */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void temp_path(char *buf, size_t size, const char *suffix)
{
    snprintf(buf, size, "/tmp/futures-trace-%d%s", (int)getpid(), suffix);
}

/* Runs a shell command and returns the first number it prints, or -1. */
static long run_for_number(const char *command)
{
    FILE *p = popen(command, "r");
    cr_assert_not_null(p);
    long n = -1;
    if (fscanf(p, "%ld", &n) != 1)
        n = -1;
    int status = pclose(p);
    cr_assert_eq(status, 0, "command failed: %s", command);
    return n;
}

/* Counts the trace's complete events, optionally only those named @name. */
static long count_events(const char *path, const char *name)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
             "print(sum(1 for e in d[\"traceEvents\"] if e[\"ph\"]==\"X\" and "
             "(sys.argv[2]==\"*\" or e[\"name\"]==sys.argv[2])))' %s '%s'",
             path, name);
    return run_for_number(cmd);
}

static int named_task(void *arg, void **result)
{
    futures_trace_name(arg);
    *result = NULL;
    return 0;
}

static int then_step(void *value, void *arg, void **result)
{
    (void)arg;
    *result = value;
    return 0;
}

CheckedTest(trace, records_one_complete_event_per_task, .timeout = 60)
{
    char json[128];
    temp_path(json, sizeof json, ".json");
    cr_assert_eq(futures_trace_start(json), 0);
    pool_t *a = pool_create(2), *b = pool_create(1);
    future_t *fs[30];
    for (int i = 0; i < 20; i++)
        fs[i] = pool_submit(a, named_task, "job");
    for (int i = 20; i < 25; i++)
        fs[i] = pool_submit(b, value_task, NULL);
    for (int i = 25; i < 30; i++)
        fs[i] = future_then(fs[i - 25], then_step, NULL);
    future_t *all = when_all(fs, 30);
    cr_assert_eq(future_wait(all, NULL), 0);
    pool_destroy(a); /* every callback has finished and been recorded */
    pool_destroy(b);
    futures_trace_begin("main span");
    futures_trace_end();
    cr_assert_eq(futures_trace_stop(), 0);

    cr_assert_eq(count_events(json, "*"), 31);
    cr_assert_eq(count_events(json, "job"), 20);
    cr_assert_eq(count_events(json, "task"), 5);
    cr_assert_eq(count_events(json, "then"), 5);
    cr_assert_eq(count_events(json, "main span"), 1);
    for (int i = 0; i < 30; i++)
        future_release(fs[i]);
    future_release(all);
    unlink(json);
}

CheckedTest(trace, lanes_separate_pools_and_threads, .timeout = 60)
{
    char json[128], cmd[512];
    temp_path(json, sizeof json, ".json");
    cr_assert_eq(futures_trace_start(json), 0);
    pool_t *a = pool_create(1), *b = pool_create(1);
    future_t *fa = pool_submit(a, value_task, NULL);
    future_t *fb = pool_submit(b, value_task, NULL);
    future_wait(fa, NULL);
    future_wait(fb, NULL);
    pool_destroy(a);
    pool_destroy(b);
    cr_assert_eq(futures_trace_stop(), 0);
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
             "print(len({(e[\"pid\"],e[\"tid\"]) for e in d[\"traceEvents\"] "
             "if e[\"ph\"]==\"X\"}))' %s",
             json);
    cr_assert_eq(run_for_number(cmd), 2, "one lane per pool thread");
    future_release(fa);
    future_release(fb);
    unlink(json);
}

CheckedTest(trace, records_nothing_unless_started, .timeout = 30)
{
    char json[128];
    temp_path(json, sizeof json, ".json");
    pool_t *pool = pool_create(1);
    future_t *before = pool_submit(pool, value_task, NULL);
    future_wait(before, NULL);
    futures_trace_begin("not recorded");
    futures_trace_end();
    cr_assert_eq(futures_trace_start(json), 0);
    future_t *during = pool_submit(pool, value_task, NULL);
    future_wait(during, NULL);
    pool_destroy(pool);
    cr_assert_eq(futures_trace_stop(), 0);
    cr_assert_eq(count_events(json, "*"), 1);
    future_release(before);
    future_release(during);
    unlink(json);
}

CheckedTest(trace, start_and_stop_report_misuse)
{
    char json[128];
    temp_path(json, sizeof json, ".json");
    cr_assert_eq(futures_trace_start(NULL), EINVAL);
    cr_assert_eq(futures_trace_stop(), EINVAL, "nothing to stop");
    cr_assert_eq(futures_trace_start(json), 0);
    cr_assert_eq(futures_trace_start(json), EALREADY);
    cr_assert_eq(futures_trace_stop(), 0);
    cr_assert_eq(futures_trace_start("/nonexistent-dir/trace.json"), 0);
    cr_assert_eq(futures_trace_stop(), ENOENT, "the file cannot be written");
    cr_assert_eq(futures_trace_stop(), EINVAL, "stopped anyway");
    futures_trace_name(NULL);
    unlink(json);
    expect_no_leaks();
}

/*
 * More events than stdio's buffer holds, so the write fails with ENOSPC
 * while the events are printed, not only at fclose(); the calls after it
 * may set errno to something else, and the first failure's is reported.
 */
#define FULL_DISK_TASKS 200

CheckedTest(trace, stop_reports_enospc_when_the_disk_is_full, .timeout = 30)
{
    cr_assert_eq(futures_trace_start("/dev/full"), 0);
    pool_t *pool = pool_create(1);
    future_t *fs[FULL_DISK_TASKS];
    for (int i = 0; i < FULL_DISK_TASKS; i++)
        fs[i] = pool_submit(pool, named_task, "a task on a full disk");
    future_t *all = when_all(fs, FULL_DISK_TASKS);
    cr_assert_eq(future_wait(all, NULL), 0);
    pool_destroy(pool); /* every event is recorded */
    int rc = futures_trace_stop();
    cr_assert_eq(rc, ENOSPC, "the errno of the write, not %d (%s)", rc,
                 strerror(rc));
    for (int i = 0; i < FULL_DISK_TASKS; i++)
        future_release(fs[i]);
    future_release(all);
    expect_no_leaks();
}

CheckedTest(trace, names_are_escaped_into_valid_json, .timeout = 30)
{
    char json[128];
    temp_path(json, sizeof json, ".json");
    cr_assert_eq(futures_trace_start(json), 0);
    futures_trace_begin("quote \" backslash \\ tab \t end");
    futures_trace_end();
    cr_assert_eq(futures_trace_stop(), 0);
    cr_assert_eq(count_events(json, "*"), 1, "parsed by Python's json");
    unlink(json);
}

CheckedTest(trace, svg_tool_draws_one_bar_per_task, .timeout = 60)
{
    char json[128], svg[128], cmd[768];
    temp_path(json, sizeof json, ".json");
    temp_path(svg, sizeof svg, ".svg");
    cr_assert_eq(futures_trace_start(json), 0);
    pool_t *pool = pool_create(2);
    future_t *fs[12];
    for (int i = 0; i < 12; i++)
        fs[i] = pool_submit(pool, named_task, i % 2 ? "odd" : "even");
    future_t *all = when_all(fs, 12);
    future_wait(all, NULL);
    pool_destroy(pool);
    futures_trace_begin("sequential");
    futures_trace_end();
    cr_assert_eq(futures_trace_stop(), 0);

    snprintf(cmd, sizeof cmd, "python3 tools/trace2svg.py %s %s --scale 0.5",
             json, svg);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, xml.etree.ElementTree as E; "
             "r=E.parse(sys.argv[1]).getroot(); "
             "print(sum(1 for e in r.iter(\"{http://www.w3.org/2000/svg}rect\")"
             " if e.get(\"class\")==\"bar\"))' %s",
             svg);
    cr_assert_eq(run_for_number(cmd), 13, "one bar per task and span");
    for (int i = 0; i < 12; i++)
        future_release(fs[i]);
    future_release(all);
    unlink(json);
    unlink(svg);
}
