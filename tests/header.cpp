// The public header compiles as C++ and links with C linkage.
#include <futures.h>

static int task(void *arg, void **result)
{
    *result = arg;
    return 0;
}

int main()
{
    pool_t *pool = pool_create(1);
    future_t *f = pool_submit(pool, task, nullptr);
    int rc = future_wait(f, nullptr);
    future_release(f);
    pool_destroy(pool);
    return rc;
}
