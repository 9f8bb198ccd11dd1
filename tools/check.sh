#!/usr/bin/env bash
# check.sh BUILD STAGE... - what make check prints. Each stage is a make
# target run with its output kept in BUILD/check/STAGE.log; its last line
# of the form "STAGE: N passed, M failed" is its verdict, printed here with
# how long it took. The run ends with the sum over the stages and the whole
# duration. The first stage that fails, or that prints no verdict, ends the
# run as make would, after the end of its log.
set -u
build=$1
shift
logs=$build/check
mkdir -p "$logs"
make=${MAKE:-make}

minutes() {
    local s=$1
    if [ "$s" -ge 60 ]; then printf '%d min %d s' $((s / 60)) $((s % 60)); else printf '%d s' "$s"; fi
}

start=$SECONDS
passed=0 failed=0
for stage in "$@"; do
    log=$logs/$stage.log
    t0=$SECONDS
    $make --no-print-directory B="$build" "$stage" >"$log" 2>&1
    status=$?
    verdict=$(grep -E "^$stage: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
    took=$(minutes $((SECONDS - t0)))
    if [ $status -ne 0 ] || [ -z "$verdict" ]; then
        tail -n 40 "$log"
        echo "${verdict:-$stage: no verdict}  [exit $status, $took; the whole log: $log]"
        n=$(echo "$verdict" | sed -n 's/.*, \([0-9]*\) failed.*/\1/p')
        echo "$passed passed, $((failed + ${n:-1})) failed: make check stopped at $stage after $(minutes $((SECONDS - start)))"
        exit 1
    fi
    echo "$verdict  ($took)"
    passed=$((passed + $(echo "$verdict" | sed 's/^[^:]*: \([0-9]*\) passed.*/\1/')))
done
echo "make check took $(minutes $((SECONDS - start)))"
echo "$passed passed, $failed failed"
