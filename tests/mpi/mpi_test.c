/*
 * mpi_test.c - libfutures-mpi's tests: a plain program run under mpirun
 * with an even number of ranks (make mpi-test runs -np 2 and -np 4).
 *
 * Criterion forks a process per test, which MPI does not survive, so each
 * test here is a function every rank runs in step; CHECK records a failure
 * with its rank and line and goes on. Rank r talks to its partner r ^ 1
 * on a communicator of the test's own, so no test sees another's
 * messages. Every rank prints one line per test and a verdict,
 * "rank R: N passed, M failed", which the Makefile sums.
 * Nothing waits by sleeping: receives are matched by sends the partner
 * makes after a barrier, or by nothing at all (the cancel tests).
 */
#include <futures_mpi.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* Checked before MPI_Finalize(), with every future gone and the engine
 * stopped; Open MPI's own finalisation leaks plenty, so make mpi-test
 * turns LeakSanitizer's check at exit off (tests/mpi/run.sh). */
#define LEAKS() __lsan_do_recoverable_leak_check()
#else
#define LEAKS() 0
#endif

static int rank, nranks, partner;
static int failures; /* in the running test */

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "rank %d: %s:%d: CHECK(%s) failed\n", rank,     \
                    __FILE__, __LINE__, #cond);                             \
            failures++;                                                     \
        }                                                                   \
    } while (0)

/* A fresh communicator per test, returning errors rather than aborting. */
static MPI_Comm test_comm(void)
{
    MPI_Comm c;
    MPI_Comm_dup(MPI_COMM_WORLD, &c);
    MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
    return c;
}

/* ------------------------------------------------------------- sizes -- */

/* From empty, through eager sizes, to rendezvous ones (vader's eager
 * limit is 4 KiB, its rendezvous pipeline starts at 32 KiB). */
static const size_t sizes[] = {0,     1,      8,       1024,   4096,
                               4097,  32768,  65536,   1 << 20, 8 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void sends_and_receives_every_size(void)
{
    MPI_Comm comm = test_comm();
    for (size_t s = 0; s < NSIZES; s++) {
        size_t n = sizes[s];
        unsigned char *out = malloc(n + 1), *in = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            out[i] = (unsigned char)(i * 31 + (size_t)rank);
        MPI_Request rr, sr;
        MPI_Status st;
        MPI_Irecv(in, (int)n, MPI_BYTE, partner, (int)s, comm, &rr);
        MPI_Isend(out, (int)n, MPI_BYTE, partner, (int)s, comm, &sr);
        future_t *fs[2] = {mpi_future(&rr, &st), mpi_future(&sr, NULL)};
        CHECK(fs[0] && fs[1]);
        CHECK(rr == MPI_REQUEST_NULL && sr == MPI_REQUEST_NULL);
        future_t *all = when_all(fs, 2);
        CHECK(future_wait(all, NULL) == 0);
        int count = -1;
        MPI_Get_count(&st, MPI_BYTE, &count);
        CHECK((size_t)count == n);
        CHECK(st.MPI_SOURCE == partner && st.MPI_TAG == (int)s);
        bool same = true;
        for (size_t i = 0; i < n; i++)
            same &= in[i] == (unsigned char)(i * 31 + (size_t)partner);
        CHECK(same);
        future_release(all);
        future_release(fs[0]);
        future_release(fs[1]);
        free(out);
        free(in);
    }
    MPI_Comm_free(&comm);
}

/* -------------------------------------------------------- collectives -- */

static void collectives_are_futures(void)
{
    MPI_Comm comm = test_comm();
    MPI_Request r;
    MPI_Ibarrier(comm, &r);
    future_t *b = mpi_future(&r, NULL);
    CHECK(future_wait(b, NULL) == 0);
    future_release(b);

    long mine = rank + 1, sum = 0;
    MPI_Iallreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, comm, &r);
    future_t *a = mpi_future(&r, NULL);
    CHECK(future_wait(a, NULL) == 0);
    CHECK(sum == (long)nranks * (nranks + 1) / 2);
    future_release(a);
    MPI_Comm_free(&comm);
}

/* -------------------------------------------------------------- many -- */

#define MANY 10000

/* xorshift32, so that the order differs per rank yet repeats per run. */
static unsigned next_random(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void many_receives_complete_in_random_order(void)
{
    MPI_Comm comm = test_comm();
    int *in = calloc(MANY, sizeof *in);
    future_t **fs = calloc(MANY, sizeof *fs);
    completion_t *c = completion_create();
    for (int i = 0; i < MANY; i++) {
        MPI_Request r;
        MPI_Irecv(&in[i], 1, MPI_INT, partner, i, comm, &r);
        fs[i] = mpi_future(&r, NULL);
        CHECK(fs[i] && completion_add(c, fs[i]) == 0);
    }
    MPI_Barrier(comm); /* every receive is posted on both sides */
    int *order = malloc(MANY * sizeof *order);
    unsigned seed = 12345u + (unsigned)rank;
    for (int i = 0; i < MANY; i++)
        order[i] = i;
    for (int i = MANY - 1; i > 0; i--) {
        int j = (int)(next_random(&seed) % (unsigned)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < MANY; i++) {
        int v = order[i] * 7 + rank;
        MPI_Send(&v, 1, MPI_INT, partner, order[i], comm);
    }
    int got = 0;
    future_t *f;
    while ((f = completion_next(c, UINT64_MAX))) {
        CHECK(future_wait(f, NULL) == 0);
        future_release(f);
        got++;
    }
    CHECK(errno == ENOENT && got == MANY);
    bool right = true;
    for (int i = 0; i < MANY; i++)
        right &= in[i] == i * 7 + partner;
    CHECK(right);
    for (int i = 0; i < MANY; i++)
        future_release(fs[i]);
    completion_release(c);
    free(order);
    free(fs);
    free(in);
    MPI_Comm_free(&comm);
}

/* ------------------------------------------------------------ cancel -- */

static void cancel_of_a_pending_receive(void)
{
    MPI_Comm comm = test_comm();
    int x = 0;
    MPI_Request r;
    MPI_Status st;
    MPI_Irecv(&x, 1, MPI_INT, partner, 99, comm, &r); /* nobody sends */
    future_t *f = mpi_future(&r, &st);
    CHECK(!future_cancel(f)); /* MPI decides; the future waits for it */
    CHECK(future_wait(f, NULL) == ECANCELED);
    const char *msg = future_error_message(f);
    CHECK(msg && strstr(msg, "MPI_Cancel"));
    int cancelled = 0;
    MPI_Test_cancelled(&st, &cancelled);
    CHECK(cancelled);
    future_release(f);

    /* A receive that completed first keeps its outcome. */
    MPI_Irecv(&x, 1, MPI_INT, partner, 98, comm, &r);
    f = mpi_future(&r, NULL);
    int v = 42;
    MPI_Send(&v, 1, MPI_INT, partner, 98, comm);
    CHECK(future_wait(f, NULL) == 0 && x == 42);
    CHECK(!future_cancel(f));
    future_release(f);
    MPI_Comm_free(&comm);
}

/* ------------------------------------------------------------ errors -- */

static void truncated_receive_fails(void)
{
    MPI_Comm comm = test_comm();
    long big[4] = {1, 2, 3, 4}, small = 0;
    MPI_Request r;
    MPI_Status st;
    MPI_Irecv(&small, 1, MPI_LONG, partner, 7, comm, &r);
    future_t *f = mpi_future(&r, &st);
    MPI_Send(big, 4, MPI_LONG, partner, 7, comm);
    CHECK(future_wait(f, NULL) == EMSGSIZE);
    const char *msg = future_error_message(f);
    CHECK(msg && strlen(msg) > 0);
    if (rank == 0 && msg)
        printf("rank 0: truncated receive says: %s\n", msg);
    future_release(f);

    errno = 0;
    CHECK(mpi_future(NULL, NULL) == NULL && errno == EINVAL);
    r = MPI_REQUEST_NULL;
    errno = 0;
    CHECK(mpi_future(&r, NULL) == NULL && errno == EINVAL);
    MPI_Comm_free(&comm);
}

/* ----------------------------------------------------- continuations -- */

static pthread_t main_thread;
static atomic_int then_ran_on_main;

static int double_it(void *value, void *arg, void **result)
{
    (void)value;
    if (pthread_equal(pthread_self(), main_thread))
        atomic_store(&then_ran_on_main, 1);
    *result = (void *)(intptr_t)(*(int *)arg * 2);
    return 0;
}

static int local_job(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static void continuations_and_when_all_mix_mpi_and_local(void)
{
    MPI_Comm comm = test_comm();
    int x = 0, v = 21 + rank;
    MPI_Request rr, sr;
    MPI_Irecv(&x, 1, MPI_INT, partner, 5, comm, &rr);
    future_t *recv = mpi_future(&rr, NULL);
    future_t *twice = future_then(recv, double_it, &x);
    pool_t *pool = pool_create(2);
    future_t *local = pool_submit(pool, local_job, (void *)(intptr_t)7);
    MPI_Isend(&v, 1, MPI_INT, partner, 5, comm, &sr);
    future_t *send = mpi_future(&sr, NULL);
    future_t *in[] = {twice, local, send};
    future_t *all = when_all(in, 3);
    CHECK(future_wait(all, NULL) == 0);
    void *d = NULL, *l = NULL;
    CHECK(future_wait(twice, &d) == 0 && (intptr_t)d == 2 * (21 + partner));
    CHECK(future_wait(local, &l) == 0 && (intptr_t)l == 7);
    CHECK(!atomic_load(&then_ran_on_main));
    future_release(all);
    future_release(send);
    future_release(local);
    future_release(twice);
    future_release(recv);
    pool_destroy(pool);
    MPI_Comm_free(&comm);
}

/* -------------------------------------------------------------- idle -- */

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A pending request nobody completes: the engine backs off to a poll a
 * millisecond, so 300 ms of waiting costs a few percent of a core. The
 * timed wait measures; nothing is synchronised by it. */
static void pending_request_costs_little_cpu(void)
{
    MPI_Comm comm = test_comm();
    int x;
    MPI_Request r;
    MPI_Irecv(&x, 1, MPI_INT, partner, 3, comm, &r);
    future_t *f = mpi_future(&r, NULL);
    double c0 = cpu_seconds();
    CHECK(!future_wait_for(f, 300000000));
    double used = cpu_seconds() - c0;
    if (rank == 0)
        printf("rank 0: 300 ms with one receive pending cost %.0f ms of CPU\n",
               used * 1e3);
    CHECK(used < 0.15);
    future_cancel(f);
    CHECK(future_wait(f, NULL) == ECANCELED);
    future_release(f);
    MPI_Comm_free(&comm);
}

/* -------------------------------------------------------------- stop -- */

static void stop_fails_what_is_pending(void)
{
    MPI_Comm comm = test_comm();
    int x[3];
    future_t *fs[3];
    for (int i = 0; i < 3; i++) {
        MPI_Request r;
        MPI_Irecv(&x[i], 1, MPI_INT, partner, 50 + i, comm, &r);
        fs[i] = mpi_future(&r, NULL);
    }
    CHECK(futures_mpi_stop() == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(future_wait(fs[i], NULL) == ECANCELED);
        const char *msg = future_error_message(fs[i]);
        CHECK(msg && strcmp(msg, "futures_mpi_stop") == 0);
        future_release(fs[i]);
    }
    CHECK(futures_mpi_stop() == EALREADY);
    MPI_Request r;
    MPI_Irecv(&x[0], 1, MPI_INT, partner, 60, comm, &r);
    errno = 0;
    CHECK(mpi_future(&r, NULL) == NULL && errno == ESHUTDOWN);
    CHECK(r != MPI_REQUEST_NULL); /* refused: still the caller's */
    MPI_Cancel(&r);
    MPI_Wait(&r, MPI_STATUS_IGNORE);
    CHECK(futures_mpi_start() == 0); /* and again */
    CHECK(futures_mpi_start() == EALREADY);
    MPI_Comm_free(&comm);
}

/* -------------------------------------------------------------- main -- */

struct test {
    const char *name;
    void (*run)(void);
};

static const struct test tests[] = {
    {"sends_and_receives_every_size", sends_and_receives_every_size},
    {"collectives_are_futures", collectives_are_futures},
    {"many_receives_complete_in_random_order",
     many_receives_complete_in_random_order},
    {"cancel_of_a_pending_receive", cancel_of_a_pending_receive},
    {"truncated_receive_fails", truncated_receive_fails},
    {"continuations_and_when_all_mix_mpi_and_local",
     continuations_and_when_all_mix_mpi_and_local},
    {"pending_request_costs_little_cpu", pending_request_costs_little_cpu},
    {"stop_fails_what_is_pending", stop_fails_what_is_pending},
};
#define NTESTS (sizeof tests / sizeof tests[0])

int main(int argc, char **argv)
{
    int level;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    main_thread = pthread_self();
    if (nranks % 2) {
        if (rank == 0)
            fprintf(stderr, "mpi_test: needs an even number of ranks\n");
        MPI_Finalize();
        return 2;
    }
    partner = rank ^ 1;
    int passed = 0, failed = 0;
    if (futures_mpi_start() != 0) {
        fprintf(stderr, "rank %d: futures_mpi_start failed\n", rank);
        failed = (int)NTESTS;
    } else {
        for (size_t t = 0; t < NTESTS; t++) {
            MPI_Barrier(MPI_COMM_WORLD);
            failures = 0;
            tests[t].run();
            printf("rank %d: %-46s %s\n", rank, tests[t].name,
                   failures ? "FAILED" : "ok");
            fflush(stdout);
            *(failures ? &failed : &passed) += 1;
        }
        failures = 0;
        CHECK(futures_mpi_stop() == 0);
        CHECK(LEAKS() == 0);
        printf("rank %d: %-46s %s\n", rank, "stops_and_leaks_nothing",
               failures ? "FAILED" : "ok");
        *(failures ? &failed : &passed) += 1;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    printf("rank %d: %d passed, %d failed\n", rank, passed, failed);
    fflush(stdout);
    MPI_Finalize();
    return failed ? 1 : 0;
}
