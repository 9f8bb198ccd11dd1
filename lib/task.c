/*
 * task.c - tasks: the futures pool_submit() and loop_submit() make.
 *
 * A task is a bare future: its function and argument live in its task
 * fields until it runs, where its outcome goes after (internal.h), so a
 * task and its future are one 56-byte allocation.
 */
#include "internal.h"

#include <errno.h>

static int run_task(future_t *f, void **result)
{
    return f->task.fn(f->task.arg, result);
}

/* What failed, for reports: the task's function, which its fields still
 * hold between running and settling. */
static fut__fn task_site(const future_t *f)
{
    return (fut__fn)f->task.fn;
}

static const struct fut__ops task_ops = {
    .kind = "task", .is_task = true, .run = run_task, .site = task_site};

/*
 * A task with a destructor for its argument (pool_submit_ex). The argument
 * is kept outside the union, which the outcome overwrites, and the
 * destructor is taken with an atomic exchange wherever the task's fate is
 * decided, so it runs exactly once: after the task ran, when it is
 * cancelled before it could run (detach), or when the future goes without
 * ever having been run, as a refused submission does (destroy).
 */
struct owned_task {
    future_t base;
    void *arg;
    _Atomic(void (*)(void *)) arg_free;
};

static void free_arg_once(future_t *f)
{
    struct owned_task *t = fut__container_of(f, struct owned_task, base);
    void (*arg_free)(void *) = atomic_exchange(&t->arg_free, NULL);
    if (arg_free)
        fut__run_user(arg_free, t->arg);
}

static int run_owned_task(future_t *f, void **result)
{
    int error = f->task.fn(f->task.arg, result);
    free_arg_once(f);
    return error;
}

static const struct fut__ops owned_task_ops = {.kind = "task",
                                               .is_task = true,
                                               .run = run_owned_task,
                                               .detach = free_arg_once,
                                               .destroy = free_arg_once,
                                               .site = task_site};

/* A QUEUED task for @exec, with the caller's and the run queue's refs. */
future_t *fut__task_new(task_fn fn, void *arg, struct fut__exec *exec)
{
    future_t *f = fut__new(sizeof *f, &task_ops, FUT_QUEUED, 2);
    if (!f)
        return NULL;
    f->task.fn = fn;
    f->task.arg = arg;
    fut__set_exec(f, exec);
    return f;
}

/* A QUEUED task whose argument @arg_free frees once its fate is decided. */
future_t *fut__owned_task_new(task_fn fn, void *arg, void (*arg_free)(void *),
                              struct fut__exec *exec)
{
    struct owned_task *t = (struct owned_task *)fut__new(
        sizeof *t, &owned_task_ops, FUT_QUEUED, 2);
    if (!t) {
        int error = errno;
        arg_free(arg); /* not accepted: the argument is done with */
        errno = error;
        return NULL;
    }
    t->base.task.fn = fn;
    t->base.task.arg = t->arg = arg;
    atomic_init(&t->arg_free, arg_free);
    fut__set_exec(&t->base, exec);
    return &t->base;
}
