#!/usr/bin/env bash
# run.sh BINARY... - make mpi-test: runs each build of tests/mpi/mpi_test.c
# (plain, ASan+UBSan, TSan: named by their build directory) under
# $MPIRUN -np 2 and -np 4. Each rank prints a line per test and
# "rank R: N passed, M failed"; the last line here sums them over every
# rank of every run: "mpi-test: N passed, M failed". A run that exits
# non-zero, or one whose ranks print fewer verdicts than it has ranks (a
# crash, a sanitizer report, a hang that the timeout killed), fails.
#
# With SAMPLES set to a directory, the MPI samples in it run once each too.
#
# The sanitizers' settings, and why (docs/distributed.md says more):
#   ASan  LeakSanitizer checks inside the test, before MPI_Finalize(), with
#         tests/mpi/lsan.supp for what Open MPI's init loses; not at exit,
#         where Open MPI's finalisation leaks far more.
#   TSan  tests/mpi/tsan.supp for reports inside Open MPI, which is not
#         built for TSan.
set -u
here=$(cd "$(dirname "$0")" && pwd)
mpirun=${MPIRUN:?set MPIRUN}
passed=0 failed=0 runs=0
for bin in "$@"; do
    case $bin in
    */asan/*) kind=asan
        env=(-x "ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0"
             -x "LSAN_OPTIONS=leak_check_at_exit=0:suppressions=$here/lsan.supp") ;;
    */tsan/*) kind=tsan
        env=(-x "TSAN_OPTIONS=halt_on_error=1 suppressions=$here/tsan.supp") ;;
    *) kind=plain; env=() ;;
    esac
    for np in 2 4; do
        log=$(dirname "$bin")/mpi_test-np$np.log
        # shellcheck disable=SC2086
        $mpirun -np $np "${env[@]}" "$bin" >"$log" 2>&1
        rc=$?
        runs=$((runs + 1))
        verdicts=$(grep -cE '^rank [0-9]+: [0-9]+ passed, [0-9]+ failed' "$log")
        p=$(sed -n 's/^rank [0-9]*: \([0-9]*\) passed, [0-9]* failed$/\1/p' "$log" |
            awk '{ s += $1 } END { print s + 0 }')
        f=$(sed -n 's/^rank [0-9]*: [0-9]* passed, \([0-9]*\) failed$/\1/p' "$log" |
            awk '{ s += $1 } END { print s + 0 }')
        if [ $rc -ne 0 ] || [ "$verdicts" -ne $np ]; then
            grep -E 'FAILED|failed|ERROR|WARNING|SUMMARY' "$log" | head -n 20
            echo "== $kind -np $np: exit $rc, $verdicts of $np ranks gave a verdict (log: $log)"
            [ "$f" -gt 0 ] || f=1
        else
            echo "== $kind -np $np: $p passed, $f failed"
        fi
        passed=$((passed + p))
        failed=$((failed + f))
    done
done
# The samples, briefly: mpi_gather must finish its calls 3, 1, 2 as
# random_add's gather does, mpi_farm must collect all 1,000 replies.
if [ -n "${SAMPLES:-}" ]; then
    out=$($mpirun -np 3 "$SAMPLES/mpi_gather" --scale 0.05 2>&1)
    order=$(echo "$out" | awk -F'|' '/^ +[0-9]+ \|/ { gsub(/ /, "", $5); printf "%s", $5 }')
    if [ "$order" = 231 ]; then
        echo "== mpi_gather -np 3: calls finished 3, 1, 2"; passed=$((passed + 1))
    else
        echo "$out"; echo "== mpi_gather -np 3: FAILED"; failed=$((failed + 1))
    fi
    out=$($mpirun -np 3 "$SAMPLES/mpi_farm" --scale 0.1 2>&1)
    if echo "$out" | grep -q '^1000 items on 2 workers'; then
        echo "== mpi_farm -np 3: $(echo "$out" | grep items/s)"; passed=$((passed + 1))
    else
        echo "$out"; echo "== mpi_farm -np 3: FAILED"; failed=$((failed + 1))
    fi
fi
echo "mpi-test: $passed passed, $failed failed ($runs runs: each build under -np 2 and -np 4, counted per rank and test; then the samples)"
[ "$failed" -eq 0 ]
