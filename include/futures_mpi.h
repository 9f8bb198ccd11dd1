/*
 * futures_mpi.h - libfutures-mpi: MPI requests as futures, so that
 * when_all(), future_then() and completion queues span ranks.
 *
 * MPI moves the data; libfutures composes the completions. Start any
 * nonblocking MPI operation as usual (MPI_Isend, MPI_Irecv, MPI_Ibarrier,
 * MPI_Iallreduce, ...), then hand its request to mpi_future(): the future
 * settles when MPI completes the operation. One progress engine per
 * process, a thread started by futures_mpi_start(), tests every pending
 * request in batches (MPI_Testsome) and settles the futures.
 *
 * Link with -lfutures-mpi -lfutures (pkg-config futures-mpi), building
 * with mpicc. The engine calls MPI from its own thread while the program
 * calls MPI from its threads, so MPI must be initialised with
 * MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) and provide that level;
 * futures_mpi_start() refuses anything less (EPROTONOSUPPORT).
 * Conventions: those of futures.h (0 or an errno value; NULL and errno).
 */
#ifndef FUTURES_MPI_H
#define FUTURES_MPI_H

#include <futures.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * futures_mpi_start() - start the progress engine, after
 * MPI_Init_thread() provided MPI_THREAD_MULTIPLE.
 *
 * Starts the one thread that tests the process's pending requests. While
 * nothing is pending it sleeps; while requests are pending and none
 * completes it polls less and less often, down to once a millisecond, and
 * a new request wakes it at once.
 * Thread safety: any thread; once per process until futures_mpi_stop().
 * Errors: EINVAL (MPI not initialised, or finalised already),
 * EPROTONOSUPPORT (MPI provides less than MPI_THREAD_MULTIPLE: under
 * MPI_THREAD_SERIALIZED the engine's calls could overlap the program's),
 * EALREADY (started already), ENOMEM or EAGAIN (nothing was started).
 */
FUTURES_API int futures_mpi_start(void);

/**
 * futures_mpi_stop() - stop the progress engine, before MPI_Finalize().
 *
 * Requests still pending are cancelled with MPI_Cancel() where MPI allows
 * it and given a short while to finish; their futures fail with ECANCELED
 * (message "futures_mpi_stop"), except those that MPI completes in that
 * while, which settle with their outcome. A request that neither
 * completes nor cancels (a send nobody receives, a collective other ranks
 * never join) is freed with MPI_Request_free(): its buffer belongs to MPI
 * until the operation ends. Meanwhile MPI_COMM_WORLD's error handler is
 * MPI_ERRORS_RETURN, so that MPI_Cancel() on a collective, which MPI
 * calls erroneous, cannot abort the program; then it is restored.
 * After this call mpi_future() fails with
 * ESHUTDOWN until futures_mpi_start() is called again.
 * Thread safety: any thread but a callback of an mpi_future() (it waits
 * for the engine thread, which settles those futures).
 * Errors: EALREADY (not running).
 */
FUTURES_API int futures_mpi_stop(void);

/**
 * mpi_future() - a future that settles when MPI completes *@request.
 *
 * Takes over *@request and sets it to MPI_REQUEST_NULL: from now on only
 * the engine tests, waits or frees it. The future succeeds with value
 * NULL once the operation completes, after writing its status to *@status
 * when @status is not NULL (the caller keeps *@status alive until the
 * future settles). It fails when MPI reports an error for the operation
 * (set MPI_ERRORS_RETURN on the communicator, or MPI aborts first): with
 * an errno value (EMSGSIZE for MPI_ERR_TRUNCATE, EINVAL for a bad
 * argument, ENOMEM, EIO for the rest) and MPI_Error_string()'s text as
 * its message (future_error_message()); *@status is written then too.
 * future_cancel() on it calls MPI_Cancel() (for a receive; MPI cannot
 * cancel sends and collectives, which then complete as usual) and returns
 * false; the future fails with ECANCELED once MPI confirms the cancel
 * (MPI_Test_cancelled()), or settles with the operation's outcome if it
 * completed first. Continuations run on pool threads, never inside an MPI
 * call and never inside this call. O(1): one MPI_Test() here, so that an
 * operation complete already (an eager send) comes back settled without
 * a trip through the engine.
 * Thread safety: any thread (MPI_THREAD_MULTIPLE).
 * Ownership: the result is a new reference, yours; the buffer stays
 * MPI's until the future settles.
 * Errors: NULL with errno EINVAL (NULL @request, or *@request is
 * MPI_REQUEST_NULL), ESHUTDOWN (the engine is not running) or ENOMEM;
 * *@request is then left as it was.
 */
FUTURES_API future_t *mpi_future(MPI_Request *request, MPI_Status *status);

#ifdef __cplusplus
}
#endif

#endif /* FUTURES_MPI_H */
