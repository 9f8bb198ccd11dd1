/*
 * fork_tsan.c - fork() while other threads use every lock of the library,
 * under ThreadSanitizer and valgrind with their default checks.
 *
 * Worker threads run tasks, continuations, promises and futures that own
 * their values (future_set_result_free, so owned.c's table is in use) on a
 * pool of their own and on the default pool, while the main thread forks.
 * Each child uses the library afresh (the default pool, a task, a
 * continuation, future_wait) and reports through its exit status; the
 * parent checks it and goes on working. At the end every task ran once and
 * every owned value was freed once.
 *
 * What it guards: the fork handlers must not hold more locks at once than
 * TSan's deadlock detector tracks (64), or TSan aborts in the prepare
 * handler; and the child must find no lock held by a thread it lacks.
 *
 * TSan kills a child of a multi-threaded process that starts a thread,
 * unless told otherwise; the library's child starts its pools' threads, so
 * this program sets die_after_fork=0 as its default. TSAN_OPTIONS, as make
 * tsan sets it, still applies on top, and leaves the deadlock detector on.
 * GCC's AddressSanitizer allocator is not fork-safe (tests/unit/fork.c):
 * built with ASan, the program does not fork. Under valgrind, each child
 * skips the exit-time leak check (see child_uses_the_library).
 */
#include "common.h"

#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef VALGRIND_CLO_CHANGE
#define VALGRIND_CLO_CHANGE(option) ((void)0)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MAY_FORK 0
#else
#define MAY_FORK 1
#endif

static atomic_long ran, owned, freed;

static int count(void *arg, void **result)
{
    atomic_fetch_add(&ran, 1);
    *result = arg;
    return 0;
}

static int plus_one(void *value, void *arg, void **result)
{
    (void)arg;
    *result = U2P(P2U(value) + 1);
    return 0;
}

static void count_free(void *value)
{
    atomic_fetch_add(&freed, 1);
    free(value);
}

/* A promise's future that owns a heap value: owned.c's buckets in use. */
static void owned_value_round(void)
{
    promise_t *p = promise_create();
    future_t *f = promise_future(p);
    CHECK(p && f, "promise");
    CHECK(future_set_result_free(f, count_free) == 0, "result_free");
    atomic_fetch_add(&owned, 1);
    CHECK(promise_resolve(p, calloc(1, 16)) == 0, "resolve");
    CHECK(future_wait(f, NULL) == 0, "wait");
    future_release(f);
    promise_release(p);
}

/* Tasks on two pools and a continuation, waited for together. */
static void task_round(pool_t *pool, long i)
{
    future_t *a = pool_submit(pool, count, U2P(i));
    future_t *b = pool_submit(pool_default(), count, U2P(i));
    CHECK(a && b, "submit");
    future_t *c = future_then(a, plus_one, NULL);
    CHECK(c, "then");
    future_t *all[] = {b, c};
    future_t *w = when_all(all, 2);
    void *v = NULL;
    CHECK(w && future_wait(w, NULL) == 0, "when_all");
    CHECK(future_wait(c, &v) == 0 && v == U2P(i + 1), "then's value");
    future_release(w);
    future_release(a);
    future_release(b);
    future_release(c);
}

struct worker {
    pool_t *pool;
    atomic_bool *stop;
    long rounds; /* task rounds done: two tasks each */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(w->stop)) {
        task_round(w->pool, w->rounds++);
        owned_value_round();
    }
    return NULL;
}

/* ---------------------------------------------------------- the child -- */

#define CHILD_CHECK(cond)              \
    do {                               \
        if (!(cond))                   \
            _exit(__LINE__ % 250 + 1); \
    } while (0)

static void child_uses_the_library(void)
{
    alarm(60); /* a hang kills the child: a signal, not exit 0 */
    pool_t *pool = pool_default();
    CHILD_CHECK(pool);
    future_t *f = pool_submit(pool, count, U2P(41));
    CHILD_CHECK(f);
    future_t *g = future_then(f, plus_one, NULL);
    void *v = NULL;
    CHILD_CHECK(g && future_wait(g, &v) == 0 && v == U2P(42));
    future_release(f);
    future_release(g);
    /* Memcheck would count as leaks what the parent's threads, absent here,
     * still refer to; errors of any other kind still fail the child. */
    VALGRIND_CLO_CHANGE("--leak-check=no");
    _exit(0);
}

static void fork_and_check(int round)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid != -1, "fork");
    if (pid == 0)
        child_uses_the_library();
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status), "child %d killed by signal %d", round,
          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    CHECK(WEXITSTATUS(status) == 0, "child %d failed at line ~%d (mod 250)",
          round, WEXITSTATUS(status) - 1);
}

int main(void)
{
    int forks = MAY_FORK ? (int)rounds(getenv("STRESS_LIGHT") ? 3 : 8) : 0;
    atomic_bool stop = false;
    pool_t *pool = pool_create(2);
    CHECK(pool, "pool_create");
    struct worker w[2] = {{pool, &stop, 0}, {pool, &stop, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0, "thread");
    for (int i = 0; i < forks; i++) {
        fork_and_check(i);
        task_round(pool, i); /* the parent's library still works */
        owned_value_round();
    }
    atomic_store(&stop, true);
    long rounds_done = forks;
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        rounds_done += w[i].rounds;
    }
    pool_destroy(pool);
    CHECK(atomic_load(&ran) == 2 * rounds_done, "%ld tasks ran for %ld",
          atomic_load(&ran), 2 * rounds_done);
    CHECK(atomic_load(&freed) == atomic_load(&owned), "%ld of %ld freed",
          atomic_load(&freed), atomic_load(&owned));
    printf("fork_tsan: %d forks, %ld tasks, %ld owned values freed\n", forks,
           atomic_load(&ran), atomic_load(&freed));
    return 0;
}
