/*
 * pingpong.c - what an MPI future costs over raw MPI, on two ranks
 * (make bench-mpi runs it with mpirun -np 2).
 *
 * Latency: 8-byte messages bounced between the ranks ROUNDS times, each
 * round timed on rank 0 (half the round trip, in microseconds; median and
 * p99), three ways:
 *   raw     MPI_Send / MPI_Recv
 *   wait    MPI_Isend / MPI_Irecv, each an mpi_future(), future_wait()
 *   then    the same, but the next round is started from a future_then()
 *           continuation of the receive, on a pool thread; the main
 *           thread only waits for the last
 * Throughput: BURST 8-byte messages from rank 0 to rank 1, rank 1 timing
 * from a barrier until all have arrived: raw MPI_Irecv + MPI_Waitall
 * against mpi_future() of each receive + when_all() + future_wait();
 * the median of BURSTS bursts, in messages per second.
 */
#include <futures_mpi.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 20000
#define WARMUP 1000
#define BURST  1000
#define BURSTS 30

static int rank, peer;
static double samples[ROUNDS];

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[(int)(p * (n - 1))];
}

/* ---------------------------------------------------------- latency -- */

static void raw_round(long *msg)
{
    if (rank == 0) {
        MPI_Send(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD);
        MPI_Recv(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        MPI_Recv(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD);
    }
}

static void wait_for(MPI_Request *r)
{
    future_t *f = mpi_future(r, NULL);
    if (!f || future_wait(f, NULL) != 0)
        MPI_Abort(MPI_COMM_WORLD, 1);
    future_release(f);
}

static void wait_round(long *msg)
{
    MPI_Request r;
    if (rank == 0) {
        MPI_Isend(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD, &r);
        wait_for(&r);
        MPI_Irecv(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD, &r);
        wait_for(&r);
    } else {
        MPI_Irecv(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD, &r);
        wait_for(&r);
        MPI_Isend(msg, 1, MPI_LONG, peer, 0, MPI_COMM_WORLD, &r);
        wait_for(&r);
    }
}

static double timed(void (*round)(long *))
{
    long msg = 0;
    for (int i = 0; i < WARMUP; i++)
        round(&msg);
    for (int i = 0; i < ROUNDS; i++) {
        double t = now_us();
        round(&msg);
        samples[i] = (now_us() - t) / 2;
    }
    return 0;
}

/* The continuation-driven ping-pong: each received message's then
 * callback sends the reply and posts the next receive. */
struct chain {
    long msg;
    int left;
    double t;
    promise_t *done;
    int n; /* rounds timed so far */
};

static int bounce(void *value, void *arg, void **result);

static void post_round(struct chain *c)
{
    MPI_Request s, r;
    if (rank == 0)
        c->t = now_us();
    MPI_Irecv(&c->msg, 1, MPI_LONG, peer, 1, MPI_COMM_WORLD, &r);
    if (rank == 0) {
        MPI_Isend(&c->msg, 1, MPI_LONG, peer, 1, MPI_COMM_WORLD, &s);
        future_release(mpi_future(&s, NULL));
    }
    future_t *got = mpi_future(&r, NULL);
    future_release(future_then(got, bounce, c));
    future_release(got);
}

static int bounce(void *value, void *arg, void **result)
{
    (void)value;
    (void)result;
    struct chain *c = arg;
    if (rank == 0) {
        int i = c->n++ - WARMUP;
        if (i >= 0)
            samples[i] = (now_us() - c->t) / 2;
    } else {
        MPI_Request s;
        MPI_Isend(&c->msg, 1, MPI_LONG, peer, 1, MPI_COMM_WORLD, &s);
        future_release(mpi_future(&s, NULL));
    }
    if (--c->left > 0)
        post_round(c);
    else
        promise_resolve(c->done, NULL);
    return 0;
}

static void then_rounds(void)
{
    struct chain c = {.left = WARMUP + ROUNDS, .done = promise_create()};
    future_t *done = promise_future(c.done);
    post_round(&c);
    future_wait(done, NULL);
    future_release(done);
    promise_release(c.done);
}

/* ------------------------------------------------------- throughput -- */

static double burst(bool futures)
{
    static long in[BURST], out[BURST];
    static MPI_Request r[BURST];
    static future_t *fs[BURST];
    double t = 0;
    if (rank == 1) {
        for (int i = 0; i < BURST; i++)
            MPI_Irecv(&in[i], 1, MPI_LONG, peer, 2, MPI_COMM_WORLD, &r[i]);
        if (futures)
            for (int i = 0; i < BURST; i++)
                fs[i] = mpi_future(&r[i], NULL);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        for (int i = 0; i < BURST; i++)
            MPI_Isend(&out[i], 1, MPI_LONG, peer, 2, MPI_COMM_WORLD, &r[i]);
        MPI_Waitall(BURST, r, MPI_STATUSES_IGNORE);
    } else {
        t = now_us();
        if (futures) {
            future_t *all = when_all(fs, BURST);
            future_wait(all, NULL);
            future_release(all);
            for (int i = 0; i < BURST; i++)
                future_release(fs[i]);
        } else {
            MPI_Waitall(BURST, r, MPI_STATUSES_IGNORE);
        }
        t = now_us() - t;
    }
    return BURST / (t / 1e6);
}

static double median_burst(bool futures)
{
    double v[BURSTS];
    for (int i = 0; i < BURSTS; i++)
        v[i] = burst(futures);
    return pct(v, BURSTS, 0.5);
}

int main(int argc, char **argv)
{
    int level, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0)
            fprintf(stderr, "pingpong: run with mpirun -np 2\n");
        MPI_Finalize();
        return 2;
    }
    peer = 1 - rank;
    if (futures_mpi_start() != 0)
        MPI_Abort(MPI_COMM_WORLD, 1);
    double med[3], p99[3];
    void (*rounds[2])(long *) = {raw_round, wait_round};
    for (int k = 0; k < 3; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        if (k < 2)
            timed(rounds[k]);
        else
            then_rounds();
        med[k] = pct(samples, ROUNDS, 0.5);
        p99[k] = pct(samples, ROUNDS, 0.99);
    }
    double raw = median_burst(false), fut = median_burst(true);
    if (rank == 0) {
        const char *name[] = {"raw MPI_Send/MPI_Recv", "mpi_future + future_wait",
                              "mpi_future + future_then"};
        printf("ping-pong, 8-byte messages, %d rounds (one-way latency, us):\n",
               ROUNDS);
        for (int k = 0; k < 3; k++)
            printf("  %-26s median %6.2f  p99 %7.2f  (%.2fx raw median)\n",
                   name[k], med[k], p99[k], med[k] / med[0]);
    }
    /* Rank 1 timed the bursts: it prints them. */
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 1) {
        printf("burst of %d 8-byte messages, median of %d (messages/s):\n",
               BURST, BURSTS);
        printf("  raw MPI_Irecv + MPI_Waitall        %10.0f\n", raw);
        printf("  mpi_future + when_all + future_wait %9.0f  (%.2fx raw)\n",
               fut, raw / fut);
    }
    futures_mpi_stop();
    MPI_Finalize();
    return 0;
}
