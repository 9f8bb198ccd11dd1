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
#include <stdbool.h>

static void on_cancel(promise_t *p, void *arg)
{
    (void)arg;
    fm__cancel(p);
}

/*
 * The fast path: an eager send, or a receive whose message is here, has
 * completed by the time its request is handed over. One MPI_Test() says
 * so, and the future settles here, once the test has returned, without
 * a trip through the engine. No continuation can have been attached yet,
 * and settling never runs one inside the call anyway. An MPI_Test() that
 * fails frees the request (it is MPI_REQUEST_NULL then): that is a
 * completion too, with that error. Only while the engine runs, so that a
 * stopped engine still refuses every request.
 */
static bool completed_already(MPI_Request *request, promise_t *p,
                              MPI_Status *status)
{
    if (!fm__running())
        return false;
    struct fm__done d = {.info = {p, status, false}};
    int flag = 0;
    d.error = MPI_Test(request, &flag, &d.status);
    if (d.error == MPI_SUCCESS ? !flag : *request != MPI_REQUEST_NULL)
        return false;
    if (d.error != MPI_SUCCESS)
        d.status.MPI_ERROR = d.error;
    *request = MPI_REQUEST_NULL;
    fm__settle(&d, "");
    return true;
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
    if (completed_already(request, p, status))
        return f;
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
