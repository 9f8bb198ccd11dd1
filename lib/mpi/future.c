/*
 * future.c - mpi_future(): an MPI request seen as a future.
 *
 * Each request gets a cancellable promise (futures.h): future_cancel() on
 * its future does not settle it, but tells on_cancel(), which asks the
 * engine to MPI_Cancel() the request; the future settles only when MPI
 * says how the operation ended (settle.c). The engine owns the promise
 * from the moment fm__submit() accepts it.
 */
#include "internal.h"

#include <errno.h>

static void on_cancel(promise_t *p, void *arg)
{
    (void)arg;
    fm__cancel(p);
}

future_t *mpi_future(MPI_Request *request, MPI_Status *status)
{
    if (!request || *request == MPI_REQUEST_NULL) {
        errno = EINVAL;
        return NULL;
    }
    promise_t *p = promise_create_cancellable(on_cancel, NULL);
    if (!p)
        return NULL;
    future_t *f = promise_future(p);
    int error = fm__submit(*request, p, status);
    if (error) {
        /* Settled quietly: a refused call reports no failure. */
        promise_resolve(p, NULL);
        promise_release(p);
        future_release(f);
        errno = error;
        return NULL;
    }
    *request = MPI_REQUEST_NULL;
    return f;
}
