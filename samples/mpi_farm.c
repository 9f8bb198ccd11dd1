/*
 * mpi_farm.c - a task farm across ranks: rank 0 hands out work items, the
 * other ranks run them on their own libfutures pools, and rank 0 takes the
 * replies in the order they arrive from a completion queue.
 *
 *   mpirun -np 4 build/samples/mpi_farm [--scale F]
 *
 * An item is a range of numbers whose Collatz stopping times the worker
 * adds up (a few hundred microseconds of arithmetic, times F). Rank 0
 * posts, for every item, a receive for its reply and turns it into a
 * future that goes into one completion_t; the sends go out as futures
 * too. completion_next() then hands back each reply as it lands, whichever
 * worker sent it: no polling loop, no MPI_Waitany over a request array of
 * our own. Workers take items with a blocking MPI_Recv, submit each to
 * their pool, and a pool thread sends the reply (MPI_THREAD_MULTIPLE).
 * Rank 0 prints the items per second and how the work spread.
 */
#include <futures_mpi.h>

#include "sample.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NITEMS   1000
#define SPAN     2000 /* numbers per item, before scaling */
#define TAG_WORK 1
#define TAG_STOP 2
#define TAG_REPLY_BASE 100 /* reply to item i: tag 100 + i */

struct item {
    int index;
    long first, count;
};

struct reply {
    int index, rank;
    long steps; /* the sum of stopping times over the item's range */
};

static double scale = 1.0;

static long stopping_time(long n)
{
    long steps = 0;
    while (n != 1) {
        n = n % 2 ? 3 * n + 1 : n / 2;
        steps++;
    }
    return steps;
}

/* ---------------------------------------------------------- a worker -- */

struct job {
    struct item item;
    int rank;
};

/* Runs on a worker's pool thread: compute, then reply to rank 0. The
 * pool frees @arg after (pool_submit_ex). */
static int run_item(void *arg, void **result)
{
    struct job *j = arg;
    struct reply r = {j->item.index, j->rank, 0};
    for (long n = j->item.first; n < j->item.first + j->item.count; n++)
        r.steps += stopping_time(n);
    int rc = MPI_Send(&r, (int)sizeof r, MPI_BYTE, 0,
                      TAG_REPLY_BASE + r.index, MPI_COMM_WORLD);
    *result = NULL;
    return rc == MPI_SUCCESS ? 0 : EIO;
}

static int worker(int rank)
{
    pool_t *pool = pool_create(0);
    if (!pool)
        return errno;
    int err = 0;
    for (;;) {
        struct item it;
        MPI_Status st;
        MPI_Recv(&it, (int)sizeof it, MPI_BYTE, 0, MPI_ANY_TAG,
                 MPI_COMM_WORLD, &st);
        if (st.MPI_TAG == TAG_STOP)
            break; /* MPI keeps one sender's messages in order */
        struct job *j = malloc(sizeof *j);
        if (j)
            *j = (struct job){it, rank};
        future_t *f = j ? pool_submit_ex(pool, run_item, j, free) : NULL;
        if (!f) {
            err = errno;
            break;
        }
        future_release(f);
    }
    pool_destroy(pool); /* runs what is queued: every reply goes out */
    return err;
}

/* ------------------------------------------------------------ rank 0 -- */

static int hand_out(int nworkers, struct item *items, future_t **sends)
{
    long span = (long)(SPAN * scale) > 0 ? (long)(SPAN * scale) : 1;
    for (int i = 0; i < NITEMS; i++) {
        items[i] = (struct item){i, 1 + (long)i * span, span};
        MPI_Request r;
        MPI_Isend(&items[i], (int)sizeof items[i], MPI_BYTE, 1 + i % nworkers,
                  TAG_WORK, MPI_COMM_WORLD, &r);
        if (!(sends[i] = mpi_future(&r, NULL)))
            return errno;
    }
    return 0;
}

static int collect(completion_t *c, const struct reply *replies, int nworkers,
                   double t0)
{
    int *per_rank = calloc((size_t)nworkers + 1, sizeof *per_rank);
    long total = 0;
    int got = 0, err = 0;
    future_t *f;
    while (!err && (f = completion_next(c, UINT64_MAX))) {
        err = future_wait(f, NULL);
        future_release(f);
        got++;
    }
    double took = sample_now() - t0;
    for (int i = 0; i < NITEMS && !err; i++) {
        per_rank[replies[i].rank]++;
        total += replies[i].steps;
    }
    if (!err) {
        printf("%d items on %d workers in %.3f s: %.0f items/s\n", got,
               nworkers, took, got / took);
        printf("sum of stopping times: %ld\n", total);
        for (int w = 1; w <= nworkers; w++)
            printf("rank %d ran %d items\n", w, per_rank[w]);
    }
    free(per_rank);
    return err;
}

static int farm(int size)
{
    int nworkers = size - 1;
    struct item *items = calloc(NITEMS, sizeof *items);
    struct reply *replies = calloc(NITEMS, sizeof *replies);
    future_t **sends = calloc(NITEMS, sizeof *sends);
    completion_t *c = completion_create();
    if (!items || !replies || !sends || !c)
        return ENOMEM;
    double t0 = sample_now();
    int err = 0;
    for (int i = 0; i < NITEMS && !err; i++) { /* the replies, first */
        MPI_Request r;
        MPI_Irecv(&replies[i], (int)sizeof replies[i], MPI_BYTE, MPI_ANY_SOURCE,
                  TAG_REPLY_BASE + i, MPI_COMM_WORLD, &r);
        future_t *f = mpi_future(&r, NULL);
        err = f ? completion_add(c, f) : errno;
        future_release(f);
    }
    err = err ? err : hand_out(nworkers, items, sends);
    err = err ? err : collect(c, replies, nworkers, t0);
    future_t *sent = err ? NULL : when_all(sends, NITEMS);
    err = err ? err : future_wait(sent, NULL);
    future_release(sent);
    for (int i = 0; i < NITEMS; i++)
        future_release(sends[i]);
    for (int w = 1; w <= nworkers; w++)
        MPI_Send(NULL, 0, MPI_BYTE, w, TAG_STOP, MPI_COMM_WORLD);
    completion_release(c);
    free(sends);
    free(replies);
    free(items);
    return err;
}

int main(int argc, char **argv)
{
    int level, rank, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]") ||
        size < 2) {
        if (rank == 0 && size < 2)
            fprintf(stderr, "mpi_farm: run with mpirun -np 2 or more\n");
        MPI_Finalize();
        return 2;
    }
    int err = futures_mpi_start();
    if (err) {
        fprintf(stderr, "futures_mpi_start: %s\n", strerror(err));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0)
        printf("mpi_farm: %d items from rank 0 to %d worker ranks\n", NITEMS,
               size - 1);
    err = rank == 0 ? farm(size) : worker(rank);
    if (err)
        fprintf(stderr, "rank %d: %s\n", rank, strerror(err));
    futures_mpi_stop();
    MPI_Finalize();
    return err ? 1 : 0;
}
