/*
 * pools.c - every live pool, for the reports that describe them:
 * futures_dump() and pool_destroy_timeout().
 *
 * A pool joins the list when it is made and leaves it just before its
 * memory goes (pool_exec.c), both under pools_lock, which a report holds
 * while it reads a pool: so no pool it reads can be freed meanwhile. The
 * report takes each pool's own lock briefly, after pools_lock, never the
 * other way round. A pool made before fork() is only named in the child:
 * its lock may be held by a thread the child does not have.
 */
#include "pool_internal.h"

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_t *pools;

void fut__pools_add(pool_t *p)
{
    fut__mutex_lock(&pools_lock);
    p->reg_prev = NULL;
    p->reg_next = pools;
    if (pools)
        pools->reg_prev = p;
    pools = p;
    fut__mutex_unlock(&pools_lock);
}

void fut__pools_remove(pool_t *p)
{
    fut__mutex_lock(&pools_lock);
    if (p->reg_prev)
        p->reg_prev->reg_next = p->reg_next;
    else if (pools == p)
        pools = p->reg_next;
    if (p->reg_next)
        p->reg_next->reg_prev = p->reg_prev;
    fut__mutex_unlock(&pools_lock);
}

static const char *state_name(int state)
{
    switch (state) {
    case FUT_POOL_OPEN:
        return "open";
    case FUT_POOL_DRAINING:
        return "draining";
    case FUT_POOL_CANCELLED:
        return "cancelled";
    default:
        return "stopped";
    }
}

/* "3 core threads (1 blocked in a wait, 1 stand-in)": a core thread that
 * blocks in a wait gets a stand-in, so that the pool keeps its size in
 * threads able to run tasks (worker.c); stand-ins linger idle_ns after. */
static void describe_core(FILE *out, size_t live, size_t ncore,
                          size_t waiting)
{
    size_t stand_ins = live > ncore ? live - ncore : 0;
    fprintf(out, "%zu core thread%s", live, live == 1 ? "" : "s");
    if (waiting && stand_ins)
        fprintf(out, " (%zu blocked in a wait, %zu stand-in%s)", waiting,
                stand_ins, stand_ins == 1 ? "" : "s");
    else if (waiting)
        fprintf(out, " (%zu blocked in a wait)", waiting);
    else if (stand_ins)
        fprintf(out, " (%zu stand-in%s, idle ones about to exit)", stand_ins,
                stand_ins == 1 ? "" : "s");
}

void fut__pool_describe(pool_t *p, FILE *out)
{
    if (fut__pool_is_stale(p)) {
        fprintf(out, "pool %u: made before fork(), its threads are not here\n",
                p->id);
        return;
    }
    fut__pool_lock(p);
    size_t queued, running;
    uint64_t completed;
    fut__pool_counts_locked(p, &queued, &running, &completed);
    size_t core = p->locked.nlive, ncore = p->locked.ncore,
           waiting = p->locked.nwaiting, blocking = p->blocking.live,
           idle = p->blocking.idle, jobs = p->blocking.jobs.len;
    int state = fut__pool_state(p);
    struct fut__oldest oldest = {0};
    fut__pool_oldest_locked(p, &oldest);
    fut__pool_unlock(p);
    fprintf(out, "pool %u%s (%s): ", p->id,
            p->is_default ? ", the default" : "", state_name(state));
    describe_core(out, core, ncore, waiting);
    fprintf(out,
            " and %zu blocking (%zu idle), %zu queued (%zu of them blocking "
            "jobs), %zu running, %llu completed",
            blocking, idle, queued, jobs, running,
            (unsigned long long)completed);
    fut__oldest_print(&oldest, out);
    fputc('\n', out);
}

/* Each pool's line, then what its threads run. */
void fut__pools_report(FILE *out)
{
    fut__mutex_lock(&pools_lock);
    for (pool_t *p = pools; p; p = p->reg_next) {
        fut__pool_describe(p, out);
        if (!fut__pool_is_stale(p))
            fut__thread_report(out, &p->exec);
    }
    fut__mutex_unlock(&pools_lock);
}

void fut__pools_fork(enum fut__fork_phase phase)
{
    if (phase == FUT_FORK_PREPARE)
        fut__mutex_lock(&pools_lock);
    else
        fut__mutex_unlock(&pools_lock);
}
