/*
 * Tests of future_set_result_free(): a future that owns its value frees it
 * exactly once, when nobody can read it any more, and never while a
 * continuation, a pass-through or a waiter still can.
 */
#include "helpers.h"
#include "internal.h" /* fault injection */

#include <errno.h>

/* A value that knows whether it has been freed, and how often. */
struct value {
    atomic_int frees;
};

static void free_value(void *v)
{
    atomic_fetch_add(&((struct value *)v)->frees, 1);
}

static int frees(struct value *v)
{
    return atomic_load(&v->frees);
}

/* A continuation that fails with EFAULT if its value was already freed. */
static int check_alive(void *value, void *arg, void **result)
{
    (void)arg;
    *result = NULL;
    return frees(value) ? EFAULT : 0;
}

static int recover(int error, void *arg, void **result)
{
    (void)error;
    *result = arg;
    return 0;
}

CheckedTest(result_free, frees_the_value_when_the_last_reference_goes,
            .timeout = 30)
{
    struct value v = {0};
    pool_t *pool = pool_create(2);
    future_t *f = pool_submit(pool, value_task, &v);
    cr_assert_eq(future_set_result_free(f, free_value), 0);
    future_t *g = future_retain(f);
    void *out = NULL;
    cr_assert_eq(future_wait(f, &out), 0);
    cr_assert_eq(out, &v);
    future_release(f);
    pool_destroy(pool); /* its threads have let go of the task too */
    cr_assert_eq(frees(&v), 0, "freed while a reference remained");
    future_release(g);
    cr_assert_eq(frees(&v), 1);
}

CheckedTest(result_free, frees_a_value_resolved_too_late, .timeout = 30)
{
    struct value v = {0};
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_set_result_free(f, free_value);
    cr_assert(future_cancel(f));
    cr_assert_eq(promise_resolve(p, &v), EALREADY);
    cr_assert_eq(frees(&v), 1, "a value nobody can read is freed at once");
    promise_release(p);
    future_release(f);
    cr_assert_eq(frees(&v), 1);
}

static atomic_int any_calls;

static void count_call(void *v)
{
    (void)v;
    atomic_fetch_add(&any_calls, 1);
}

CheckedTest(result_free, leaves_failures_and_null_values_alone, .timeout = 30)
{
    promise_t *p = promise_create(), *q = promise_create();
    future_t *f = promise_future(p), *g = promise_future(q);
    future_set_result_free(f, count_call);
    future_set_result_free(g, count_call);
    promise_resolve(p, NULL);
    promise_reject(q, EIO);
    cr_assert_eq(future_wait(g, NULL), EIO);
    promise_release(p);
    promise_release(q);
    future_release(f);
    future_release(g);
    cr_assert_eq(atomic_load(&any_calls), 0);
}

CheckedTest(result_free, null_removes_the_destructor_and_null_future_is_einval)
{
    struct value v = {0};
    future_t *f = future_resolved(&v);
    future_set_result_free(f, free_value);
    cr_assert_eq(future_set_result_free(f, NULL), 0);
    future_release(f);
    cr_assert_eq(frees(&v), 0);
    cr_assert_eq(future_set_result_free(NULL, free_value), EINVAL);
}

/*
 * The continuations run on a loop, so they run only when the test calls
 * loop_run(): by then every handle the test had on the predecessor is
 * gone, and only the continuation keeps its value alive.
 */
CheckedTest(result_free, a_continuation_keeps_its_input_value_alive,
            .timeout = 30)
{
    struct value v = {0};
    loop_t *loop = loop_create();
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_set_result_free(f, free_value);
    future_t *g = future_then_on(f, loop, check_alive, NULL);
    future_release(f);
    cr_assert_eq(promise_resolve(p, &v), 0);
    promise_release(p);
    cr_assert_eq(frees(&v), 0);
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(future_wait(g, NULL), 0, "the value was freed before use");
    cr_assert_eq(frees(&v), 1, "freed once the callback no longer needs it");
    future_release(g);
    loop_destroy(loop);
    cr_assert_eq(frees(&v), 1);
}

CheckedTest(result_free, a_passed_on_value_lives_as_long_as_its_carrier,
            .timeout = 30)
{
    struct value v = {0};
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_set_result_free(f, free_value);
    future_t *caught = future_catch(f, recover, NULL); /* passes success on */
    future_t *timed = future_timeout(f, UINT64_C(60000000000));
    future_release(f);
    promise_resolve(p, &v);
    promise_release(p);
    void *a = NULL, *b = NULL;
    cr_assert_eq(future_wait(caught, &a), 0);
    cr_assert_eq(future_wait(timed, &b), 0);
    cr_assert_eq(a, &v);
    cr_assert_eq(b, &v);
    future_release(caught);
    cr_assert_eq(frees(&v), 0, "future_timeout's result still refers to it");
    future_release(timed);
    cr_assert_eq(frees(&v), 1);
}

/* A task asked to cancel while it runs still produces its value, which its
 * future then owns. */
static int produce_after_gate(void *arg, void **result)
{
    struct gate *g = arg;
    gate_pass(g);
    static struct value v;
    *result = &v;
    return 0;
}

CheckedTest(result_free, a_value_made_after_a_cancel_request_is_freed,
            .timeout = 30)
{
    struct gate g;
    gate_init(&g);
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, produce_after_gate, &g);
    future_set_result_free(f, free_value);
    gate_await_started(&g, 1);
    cr_assert_not(future_cancel(f), "running: only a request");
    gate_open(&g);
    void *out = NULL;
    cr_assert_eq(future_wait(f, &out), 0);
    struct value *v = out;
    pool_destroy(pool);
    future_release(f);
    cr_assert_eq(frees(v), 1);
    gate_destroy(&g);
}

static atomic_int other_calls;

static void other_free(void *v)
{
    (void)v;
    atomic_fetch_add(&other_calls, 1);
}

CheckedTest(result_free, setting_it_again_replaces_it)
{
    struct value v = {0};
    future_t *f = future_resolved(&v);
    cr_assert_eq(future_set_result_free(f, other_free), 0);
    cr_assert_eq(future_set_result_free(f, free_value), 0);
    future_release(f);
    cr_assert_eq(frees(&v), 1);
    cr_assert_eq(atomic_load(&other_calls), 0);
}

CheckedTest(result_free, without_memory_it_fails_and_changes_nothing)
{
    struct value v = {0};
    future_t *f = future_resolved(&v);
    fut__fault_set(FUT_FAULT_ALLOC, 1, false);
    cr_assert_eq(future_set_result_free(f, free_value), ENOMEM);
    cr_assert_eq(fut__fault_fired(FUT_FAULT_ALLOC), 1);
    future_release(f);
    cr_assert_eq(frees(&v), 0, "no destructor was set");
}

/* A pass-through (catch on success) hands on a value its source owns: a
 * continuation of the pass-through must keep the value alive too. */
CheckedTest(result_free, a_value_passed_on_stays_alive_down_the_chain,
            .timeout = 30)
{
    struct value v = {0};
    loop_t *loop = loop_create();
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    future_set_result_free(f, free_value);
    future_t *caught = future_catch_on(f, loop, recover, NULL);
    future_t *timed = future_timeout(caught, UINT64_C(60000000000));
    future_t *g = future_then_on(timed, loop, check_alive, NULL);
    future_release(f);
    future_release(caught);
    future_release(timed);
    cr_assert_eq(promise_resolve(p, &v), 0);
    promise_release(p);
    cr_assert_eq(loop_run(loop), 0);
    cr_assert_eq(future_wait(g, NULL), 0, "the value was freed before use");
    future_release(g);
    loop_destroy(loop);
    cr_assert_eq(frees(&v), 1);
}

static int pass_input_on(void *value, void *arg, void **result)
{
    (void)arg;
    *result = value; /* a tap: logs, then hands the value on */
    return 0;
}

/* A then callback that returns its input hands on a value its source owns:
 * the then future must keep the source, and must not free it itself. */
CheckedTest(result_free, a_callback_that_returns_its_input_keeps_it_alive,
            .timeout = 30)
{
    struct value v = {0};
    loop_t *loop = loop_create(); /* runs g here, so ours is its last ref */
    promise_t *p = promise_create();
    future_t *src = promise_future(p);
    future_set_result_free(src, free_value);
    future_t *g = future_then_on(src, loop, pass_input_on, NULL);
    future_set_result_free(g, free_value); /* not its value to free */
    promise_resolve(p, &v);
    promise_release(p);
    cr_assert_eq(loop_run(loop), 0);
    void *out = NULL;
    cr_assert_eq(future_wait(g, &out), 0);
    future_release(src);
    cr_assert_eq(out, &v);
    cr_assert_eq(frees(&v), 0, "freed while g hands it out");
    future_release(g);
    cr_assert_eq(frees(&v), 1, "freed once, by its owner");
    loop_destroy(loop);
}

/* A catch with a destructor of its own (for the value it may recover
 * with) that passes the source's value on must not free it a second time. */
CheckedTest(result_free, a_pass_through_with_its_own_destructor_frees_once,
            .timeout = 30)
{
    struct value v = {0};
    promise_t *p = promise_create();
    future_t *src = promise_future(p);
    future_set_result_free(src, free_value);
    future_t *caught = future_catch(src, recover, NULL);
    future_set_result_free(caught, free_value);
    promise_resolve(p, &v);
    promise_release(p);
    cr_assert_eq(future_wait(caught, NULL), 0);
    future_release(src);
    future_release(caught);
    cr_assert_eq(frees(&v), 1);
}

/* ------------------------------------------- long pass-through chains -- */

/*
 * Each link of a pass-through chain keeps its source alive, so releasing
 * the chain's end frees every link. That must not take a stack frame per
 * link: the chains below are built and released on a thread with a
 * 256 KiB stack, where the recursion the bug had crashed at about 2,000
 * links. Each chain's root owns its value, which must be freed once, last.
 *
 * The last reference to a link may be a pool thread's, which lets go of
 * it after the end has settled, so the root's value may be freed on that
 * thread a moment after the test's own release returns: the destructor
 * posts a semaphore, and the test waits for it before it counts.
 */
#define SMALL_STACK (256 * 1024)

static sem_t root_freed;

static void free_root_value(void *v)
{
    free_value(v);
    sem_post(&root_freed);
}

static bool root_freed_within(int seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    while (sem_timedwait(&root_freed, &deadline) != 0)
        if (errno != EINTR)
            return false;
    return true;
}

enum link_kind { CATCH_LINK, THEN_LINK, TIMEOUT_LINK };

struct chain_job {
    enum link_kind kind;
    size_t links;
    struct value v;
    int error; /* what the chain's end settled with */
};

static int return_input(void *value, void *arg, void **result)
{
    (void)arg;
    *result = value;
    return 0;
}

static future_t *add_link(future_t *f, enum link_kind kind)
{
    switch (kind) {
    case CATCH_LINK:
        return future_catch(f, recover, NULL);
    case THEN_LINK:
        return future_then(f, return_input, NULL);
    default:
        return future_timeout(f, 3600 * UINT64_C(1000000000));
    }
}

static void *build_and_release(void *arg)
{
    struct chain_job *job = arg;
    future_t *f = future_resolved(&job->v);
    cr_assert_eq(future_set_result_free(f, free_root_value), 0);
    for (size_t i = 0; i < job->links; i++) {
        future_t *next = add_link(f, job->kind);
        cr_assert_not_null(next, "link %zu: errno %d", i, errno);
        future_release(f); /* only the link keeps it now */
        f = next;
    }
    void *out = NULL;
    job->error = future_wait(f, &out);
    cr_assert_eq(out, &job->v);
    future_release(f); /* frees the whole chain */
    return NULL;
}

static void release_chain_on_small_stack(enum link_kind kind, size_t links)
{
    struct chain_job job = {.kind = kind, .links = links};
    sem_init(&root_freed, 0, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cr_assert_eq(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, &attr, build_and_release, &job), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
    cr_assert_eq(job.error, 0);
    cr_assert(root_freed_within(60), "the root's value was never freed");
    cr_assert_eq(frees(&job.v), 1, "the root's value was freed %d times",
                 frees(&job.v));
    sem_destroy(&root_freed);
}

CheckedTest(result_free, a_million_catch_links_release_in_constant_stack,
            .timeout = 120)
{
    release_chain_on_small_stack(CATCH_LINK, 1000000);
}

CheckedTest(result_free, a_then_chain_returning_its_input_releases_flat,
            .timeout = 120)
{
    release_chain_on_small_stack(THEN_LINK, 100000);
}

CheckedTest(result_free, a_chain_of_timeouts_releases_in_constant_stack,
            .timeout = 120)
{
    release_chain_on_small_stack(TIMEOUT_LINK, 100000);
}
