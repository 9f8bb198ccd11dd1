/*
 * settle.c - a completed MPI request becomes its future's outcome.
 *
 * The engine collects what MPI_Testsome() completed, then calls
 * fm__settle() for each once Testsome has returned, so that no
 * continuation is ever started from inside an MPI call. The few MPI calls
 * made here (MPI_Test_cancelled, MPI_Error_string, MPI_Error_class) are
 * local and return before the promise is settled.
 */
#include "internal.h"

#include <errno.h>

/* The errno value closest to what MPI said, by its error class. */
int fm__errno(int mpi_error)
{
    int cls = MPI_ERR_OTHER;
    MPI_Error_class(mpi_error, &cls);
    switch (cls) {
    case MPI_ERR_TRUNCATE:
        return EMSGSIZE;
    case MPI_ERR_NO_MEM:
        return ENOMEM;
    case MPI_ERR_BUFFER:
    case MPI_ERR_COUNT:
    case MPI_ERR_TYPE:
    case MPI_ERR_TAG:
    case MPI_ERR_COMM:
    case MPI_ERR_RANK:
    case MPI_ERR_ROOT:
    case MPI_ERR_GROUP:
    case MPI_ERR_OP:
    case MPI_ERR_ARG:
    case MPI_ERR_REQUEST:
        return EINVAL;
    default:
        return EIO;
    }
}

void fm__settle(struct fm__done *d, const char *why)
{
    promise_t *p = d->info.promise;
    int cancelled = 0;
    if (d->info.cancelling)
        MPI_Test_cancelled(&d->status, &cancelled);
    /* Written before settling: whoever sees the future settled sees it. */
    if (d->info.status)
        *d->info.status = d->status;
    if (cancelled) {
        promise_reject_message(p, ECANCELED, "%s", why);
    } else if (d->error != MPI_SUCCESS) {
        char text[MPI_MAX_ERROR_STRING];
        int len = 0;
        if (MPI_Error_string(d->error, text, &len) != MPI_SUCCESS)
            len = 0;
        text[len] = '\0';
        promise_reject_message(p, fm__errno(d->error), "%s", text);
    } else {
        promise_resolve(p, NULL);
    }
    promise_release(p);
}

void fm__abandon(struct fm__pending *info, const char *why)
{
    promise_reject_message(info->promise, ECANCELED, "%s", why);
    promise_release(info->promise);
}
