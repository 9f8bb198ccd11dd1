/*
 * mpi_gather.c - random_add's gather across processes: the three slow
 * additions (5, 8 and 2 s) run one per rank, and rank 0 joins them with
 * when_all() over futures of MPI receives and of its own local job.
 *
 * Run with three ranks:
 *
 *   mpirun -np 3 build/samples/mpi_gather [--scale F]
 *
 * Rank 0 runs call 1 itself, as a blocking job on its pool; ranks 1 and 2
 * run calls 2 and 3 and send back what they found. Rank 0 posts a receive
 * for each, turns each into a future (mpi_future), chains a continuation
 * that prints the sum as it arrives, and waits once for when_all() of the
 * three: 8 s in all, and the calls finish 3, 1, 2, as in random_add's
 * gather. The table is random_add's: start and finish in seconds since the
 * ranks left a common barrier (CLOCK_MONOTONIC, which every process of one
 * machine shares), and the order the results reached rank 0.
 */
#include <futures_mpi.h>

#include "sample.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NCALLS   3
#define NNUMBERS 3
#define SEED     2024u
#define TAG      1

/* What a rank sends back: plain doubles and ints, sent as bytes (every
 * rank is this same program on this same machine). */
struct call {
    int id;
    double delay; /* seconds, before scaling */
    int numbers[NNUMBERS];
    long sum;
    double start, finish; /* seconds since the barrier, on the rank */
    int order;            /* on rank 0: 1 for the first result in */
};

static struct call calls[NCALLS] = {
    {.id = 1, .delay = 5.0}, {.id = 2, .delay = 8.0}, {.id = 3, .delay = 2.0}};
static double scale = 1.0;
static double t0; /* when this rank left the barrier */
static atomic_int arrived;

/* random_add's xorshift32 and lists, so the sums match its output. */
static unsigned next_random(unsigned *state)
{
    unsigned x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static void make_lists(void)
{
    unsigned state = SEED;
    for (int i = 0; i < NCALLS; i++)
        for (int j = 0; j < NNUMBERS; j++)
            calls[i].numbers[j] = (int)(next_random(&state) % 100) + 1;
}

/* The job: wait (standing in for I/O), then add. Runs on the call's rank. */
static int add(void *arg, void **result)
{
    struct call *c = arg;
    c->start = sample_now() - t0;
    sample_sleep(c->delay * scale);
    c->sum = 0;
    for (int j = 0; j < NNUMBERS; j++)
        c->sum += c->numbers[j];
    c->finish = sample_now() - t0;
    *result = c;
    return 0;
}

/* On rank 0, as each result arrives: a pool thread, never inside MPI. */
static int arrive(void *value, void *arg, void **result)
{
    (void)value;
    struct call *c = arg;
    c->order = atomic_fetch_add(&arrived, 1) + 1;
    printf("Sum([%d, %d, %d]) = %ld   (call %d, from rank %d)\n",
           c->numbers[0], c->numbers[1], c->numbers[2], c->sum, c->id,
           c->id - 1);
    fflush(stdout);
    *result = c;
    return 0;
}

static void print_table(double total)
{
    printf("call | rank | start | finish | finish order\n");
    for (int i = 0; i < NCALLS; i++)
        printf("%4d | %4d | %5.2f | %6.2f | %d\n", calls[i].id, i,
               calls[i].start, calls[i].finish, calls[i].order);
    printf("total: %.2f s\n", total);
}

static int gather(void)
{
    pool_t *pool = pool_create(2);
    if (!pool)
        return errno;
    future_t *arrivals[NCALLS], *sources[NCALLS];
    for (int i = 1; i < NCALLS; i++) { /* the other ranks' results */
        MPI_Request r;
        MPI_Irecv(&calls[i], (int)sizeof calls[i], MPI_BYTE, i, TAG,
                  MPI_COMM_WORLD, &r);
        sources[i] = mpi_future(&r, NULL);
    }
    sources[0] = pool_submit_blocking(pool, add, &calls[0]); /* ours */
    for (int i = 0; i < NCALLS; i++)
        arrivals[i] = sources[i] ? future_then(sources[i], arrive, &calls[i])
                                 : NULL;
    int err = 0;
    for (int i = 0; i < NCALLS; i++)
        err = err ? err : (arrivals[i] ? 0 : errno);
    future_t *all = err ? NULL : when_all(arrivals, NCALLS);
    err = all ? future_wait(all, NULL) : (err ? err : errno);
    double total = sample_now() - t0;
    if (!err)
        print_table(total);
    else
        fprintf(stderr, "mpi_gather: %s\n", strerror(err));
    future_release(all);
    for (int i = 0; i < NCALLS; i++) {
        future_release(arrivals[i]);
        future_release(sources[i]);
    }
    pool_destroy(pool);
    return err;
}

/* Ranks 1 and 2: run the call, send it back. */
static int work(int rank)
{
    void *unused;
    add(&calls[rank], &unused);
    return MPI_Send(&calls[rank], (int)sizeof calls[rank], MPI_BYTE, 0, TAG,
                    MPI_COMM_WORLD) == MPI_SUCCESS
               ? 0
               : EIO;
}

int main(int argc, char **argv)
{
    int level, rank, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]") ||
        size != NCALLS) {
        if (rank == 0 && size != NCALLS)
            fprintf(stderr, "mpi_gather: run with mpirun -np %d\n", NCALLS);
        MPI_Finalize();
        return 2;
    }
    int err = futures_mpi_start();
    if (err) {
        fprintf(stderr, "futures_mpi_start: %s\n", strerror(err));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    make_lists();
    if (rank == 0) {
        printf("mpi_gather: calls 1, 2, 3 on ranks 0, 1, 2, joined with "
               "when_all()");
        if (scale != 1.0)
            printf(" (delays scaled by %g)", scale);
        printf("\n");
        fflush(stdout);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = sample_now();
    err = rank == 0 ? gather() : work(rank);
    futures_mpi_stop();
    MPI_Finalize();
    return err ? 1 : 0;
}
