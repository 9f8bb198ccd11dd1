/*
 * lib/mpi/internal.h - what libfutures-mpi's files share. Never installed.
 *
 *   future.c   mpi_future(): a cancellable promise per request
 *   engine.c   the progress engine: the one thread that tests requests
 *   settle.c   turning a completed request into its future's outcome
 *
 * libfutures-mpi sits on the core's public API only (futures.h): it is a
 * user of libfutures, as any program is, so the core never knows of MPI.
 */
#ifndef FUTURES_MPI_INTERNAL_H
#define FUTURES_MPI_INTERNAL_H

#include "futures_mpi.h"

#include <stdbool.h>

/* What the engine keeps beside each pending request. */
struct fm__pending {
    promise_t *promise; /* the engine's; released once settled */
    MPI_Status *status; /* the caller's, or NULL */
    bool cancelling;    /* MPI_Cancel() was called on the request */
};

/* A request MPI has completed, collected during a poll, settled after. */
struct fm__done {
    struct fm__pending info;
    MPI_Status status;
    int error; /* MPI's error code for it, or MPI_SUCCESS */
};

/* engine.c: hand a request over (0, ESHUTDOWN, ENOMEM: nothing taken),
 * or ask the engine to cancel @p's request. */
int fm__submit(MPI_Request request, promise_t *p, MPI_Status *status);
void fm__cancel(promise_t *p);
bool fm__running(void); /* a hint: the engine may stop right after */

/* settle.c: settle a completed request's future, outside any MPI call;
 * @why is the message of a cancel MPI confirmed. */
void fm__settle(struct fm__done *d, const char *why);
/* settle.c: settle one that never completed, as futures_mpi_stop() does. */
void fm__abandon(struct fm__pending *info, const char *why);
int fm__errno(int mpi_error);

#endif /* FUTURES_MPI_INTERNAL_H */
