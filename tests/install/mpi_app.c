/* Built against an installed libfutures-mpi, through pkg-config and CMake
 * (make install-test, tests/install/run.sh), and run on two ranks: rank 1
 * sends 0, 1, 4, 9; rank 0 receives them as futures, joins them with
 * when_all() and prints the sum that run.sh checks.
 */
#include <futures_mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int level, rank, rc = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (futures_mpi_start() != 0)
        MPI_Abort(MPI_COMM_WORLD, 1);
    int v[4];
    if (rank == 0) {
        future_t *fs[4];
        for (int i = 0; i < 4; i++) {
            MPI_Request r;
            MPI_Irecv(&v[i], 1, MPI_INT, 1, i, MPI_COMM_WORLD, &r);
            fs[i] = mpi_future(&r, NULL);
        }
        future_t *all = when_all(fs, 4);
        rc = future_wait(all, NULL);
        future_release(all);
        for (int i = 0; i < 4; i++)
            future_release(fs[i]);
        printf("installed libfutures-mpi: 0+1+4+9 = %d\n",
               v[0] + v[1] + v[2] + v[3]);
    } else if (rank == 1) {
        for (int i = 0; i < 4; i++) {
            v[i] = i * i;
            MPI_Send(&v[i], 1, MPI_INT, 0, i, MPI_COMM_WORLD);
        }
    }
    futures_mpi_stop();
    MPI_Finalize();
    return rc;
}
