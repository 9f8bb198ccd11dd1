/*
 * restart_race.c - futures_shutdown() and the library coming back, round
 * after round, for TSan and valgrind: two threads use the default pool and
 * delays and leave fire-and-forget work behind; once they are done (the
 * header asks that no thread use the library meanwhile) the shutdown
 * drains that work, cancels what delays remain, and ends the threads; the
 * next round starts them again.
 */
#include "common.h"

#include <errno.h>

static atomic_int ran;

static int count(void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    *result = NULL;
    return 0;
}

static void *user(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        future_t *f = pool_submit(pool_default(), count, NULL);
        future_t *d = future_delay(100000);
        CHECK(f && d, "submit");
        CHECK(future_wait(f, NULL) == 0, "task");
        CHECK(future_wait(d, NULL) == 0, "delay");
        future_release(f);
        future_release(d);
    }
    return NULL;
}

static int forgotten(void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    *result = NULL;
    return 0;
}

int main(void)
{
    bool light = getenv("STRESS_LIGHT") != NULL;
    int n = (int)rounds(light ? 50 : 300), rounds_n = light ? 5 : 20;
    for (int r = 0; r < rounds_n; r++) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, user, &n);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 100; i++) /* left behind, still to run */
            future_release(pool_submit(pool_default(), forgotten, NULL));
        future_t *late = future_delay(UINT64_C(60) * 1000000000);
        int before = atomic_load(&ran);
        CHECK(futures_shutdown(UINT64_C(30) * 1000000000) == 0, "round %d", r);
        CHECK(atomic_load(&ran) >= before, "round %d", r);
        CHECK(future_wait(late, NULL) == ECANCELED, "round %d", r);
        future_release(late);
    }
    CHECK(atomic_load(&ran) == rounds_n * (2 * n + 100), "ran %d",
          atomic_load(&ran));
    printf("restart_race: %d rounds of 2 x %d tasks and 100 left behind, "
           "each ended by futures_shutdown\n",
           rounds_n, n);
    return 0;
}
