/*
 * thread.c - the calling thread's context.
 *
 * fut__self holds every piece of per-thread state the library keeps
 * (internal.h says which file owns which part), so "what does this thread
 * know" is answered in one place.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

_Thread_local struct fut__thread fut__self
    __attribute__((tls_model("initial-exec")));

/* The id of the pool whose thread this is, 0 elsewhere (traces, tests). */
unsigned fut__pool_id_of_thread(void)
{
    return fut__self.pool_id;
}

void fut__panic(const char *msg)
{
    fprintf(stderr, "libfutures: fatal: %s\n", msg);
    abort();
}
