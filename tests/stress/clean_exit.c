/*
 * clean_exit.c - a program that uses a pool of its own, the default pool,
 * a continuation and a delay, then ends with pool_destroy() and
 * futures_shutdown(): make valgrind runs it with no suppression file and
 * every kind of leak an error, as the header promises a user can.
 */
#include "common.h"

static int work(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static int twice(void *value, void *arg, void **result)
{
    (void)arg;
    *result = U2P(P2U(value) * 2);
    return 0;
}

int main(void)
{
    pool_t *mine = pool_create(2);
    future_t *f = pool_submit(mine, work, U2P(21));
    future_t *g = future_then(f, twice, NULL);
    future_t *d = future_delay(1000000);
    future_t *h = pool_submit(pool_default(), work, NULL);
    void *v = NULL;
    CHECK(future_wait(g, &v) == 0 && P2U(v) == 42, "then");
    CHECK(future_wait(d, NULL) == 0 && future_wait(h, NULL) == 0, "waits");
    future_release(f);
    future_release(g);
    future_release(d);
    future_release(h);
    pool_destroy(mine);
    CHECK(futures_shutdown(UINT64_C(10) * 1000000000) == 0, "shutdown");
    CHECK(futures_live_count() == 0, "%zu futures alive", futures_live_count());
    printf("clean_exit: every future and thread ended\n");
    return 0;
}
