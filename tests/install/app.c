/* Built against an installed libfutures, through pkg-config and through
 * CMake (make install-test, tests/install/run.sh). It prints the sum that
 * run.sh checks.
 */
#include <futures.h>
#include <stdint.h>
#include <stdio.h>

static int square(void *arg, void **result)
{
    uintptr_t n = (uintptr_t)arg;
    *result = (void *)(n * n);
    return 0;
}

int main(void)
{
    pool_t *pool = pool_create(2);
    future_t *fs[4];
    for (uintptr_t i = 0; i < 4; i++)
        fs[i] = pool_submit(pool, square, (void *)i);
    future_t *all = when_all(fs, 4);
    int rc = future_wait(all, NULL);
    uintptr_t sum = 0;
    for (int i = 0; i < 4; i++) {
        void *v;
        rc |= future_wait(fs[i], &v);
        sum += (uintptr_t)v;
        future_release(fs[i]);
    }
    future_release(all);
    pool_destroy(pool);
    printf("installed libfutures: 0+1+4+9 = %u\n", (unsigned)sum);
    return rc != 0 || sum != 14;
}
