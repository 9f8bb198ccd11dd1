/*
 * lifecycle.c - pools created, fed from many threads, shut down while
 * submissions race the shutdown, and destroyed; every submission either
 * runs, is cancelled, or is refused with ESHUTDOWN, and nothing hangs.
 */
#include "common.h"

#include <errno.h>
#include <sched.h>

struct feeder {
    pool_t *pool;
    atomic_long *ran;
    long accepted, refused, cancelled, completed;
};

static atomic_long owned, freed; /* pool_submit_ex arguments */

static void count_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&freed, 1);
}

static int count(void *arg, void **result)
{
    atomic_fetch_add((atomic_long *)arg, 1);
    *result = NULL;
    return 0;
}

static int wait_inside(void *arg, void **result)
{
    /* Waiting inside a task while the pool shuts down. */
    future_t *f = future_resolved(arg);
    int rc = future_wait(f, result);
    future_release(f);
    return rc;
}

static void *feed(void *arg)
{
    struct feeder *fd = arg;
    for (int i = 0; i < 300; i++) {
        if (i % 3 == 0)
            atomic_fetch_add(&owned, 1);
        /* Every third submission owns its argument: its destructor must
         * run once whether the task runs, is cancelled or is refused. */
        future_t *f =
            i % 3 ? pool_submit(fd->pool, i % 7 ? count : wait_inside, fd->ran)
                  : pool_submit_ex(fd->pool, count, fd->ran, count_free);
        if (!f) {
            CHECK(errno == ESHUTDOWN, "errno %d", errno);
            fd->refused++;
            continue;
        }
        fd->accepted++;
        int rc = future_wait(f, NULL);
        CHECK(rc == 0 || rc == ECANCELED, "rc %d", rc);
        if (rc == 0)
            fd->completed++;
        else
            fd->cancelled++;
        future_release(f);
    }
    return NULL;
}

struct stopper {
    pool_t *pool;
    int mode;
    atomic_long *ran;
    long after; /* shut down once this many tasks have run */
};

static void *stop(void *arg)
{
    struct stopper *s = arg;
    while (atomic_load(s->ran) < s->after)
        sched_yield();
    pool_shutdown(s->pool, s->mode);
    return NULL;
}

int main(void)
{
    long n = rounds(40);
    long accepted = 0, refused = 0, cancelled = 0, completed = 0;
    for (long round = 0; round < n; round++) {
        atomic_long ran = 0;
        pool_t *pool = pool_create(1 + round % 3);
        CHECK(pool, "pool_create");
        struct feeder fd[4];
        pthread_t t[4], s;
        for (int i = 0; i < 4; i++) {
            fd[i] = (struct feeder){pool, &ran, 0, 0, 0, 0};
            pthread_create(&t[i], NULL, feed, &fd[i]);
        }
        struct stopper st = {pool, round % 2 ? POOL_CANCEL : POOL_DRAIN, &ran,
                             round * 17 % 600};
        pthread_create(&s, NULL, stop, &st);
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            accepted += fd[i].accepted;
            refused += fd[i].refused;
            cancelled += fd[i].cancelled;
            completed += fd[i].completed;
        }
        pthread_join(s, NULL);
        pool_destroy(pool);
        CHECK(accepted == completed + cancelled, "lost: %ld != %ld + %ld",
              accepted, completed, cancelled);
    }
    CHECK(atomic_load(&freed) == atomic_load(&owned),
          "%ld arguments freed for %ld owned", atomic_load(&freed),
          atomic_load(&owned));
    printf("lifecycle: %ld owned arguments, %ld destructor calls\n",
           atomic_load(&owned), atomic_load(&freed));
    printf("lifecycle: %ld pools, %ld accepted = %ld ran + %ld cancelled, %ld "
           "refused\n",
           n, accepted, completed, cancelled, refused);
    return 0;
}
