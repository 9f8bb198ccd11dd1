#!/usr/bin/env bash
# run.sh - libfutures next to GLib (GThreadPool), libuv (uv_queue_work) and
# oneTBB (task_arena + task_group) on the workloads of bench/tasks.c.
#
#   bench/peers/run.sh            RUNS=5 rounds, build dir ./build
#   RUNS=3 BUILD=/tmp/b bench/peers/run.sh
#
# Installs the peers' Debian packages if missing (needs root), builds the
# three peer programs into $BUILD/bench/peers/ and, if missing, libfutures'
# $BUILD/bench/tasks, which it runs from a copy ($BUILD/bench/peers/libfutures).
# Then, for each round, runs every workload once (BENCH_RUNS=1) for
# libfutures, glib, libuv and tbb in turn, each in its own process, so that
# drifts in machine load hit all of them alike. Prints one
# table per figure - median over the rounds and the ratio libfutures/peer
# (every figure is lower-is-better: a ratio < 1 means libfutures is better) -
# and writes the same as CSV to $BUILD/bench/peers.csv.
set -euo pipefail

cd "$(dirname "$0")/../.." # the repository root
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
OUT=$BUILD/bench/peers
CSV=$BUILD/bench/peers.csv
PEERS=(libfutures glib libuv tbb)
WORKLOADS=(w1 w1s w3 w4 w5)
# The figures, in table order: name|unit. W4 gives three per run.
FIGURES=("W1|ns/task" "W1s|ns/task" "W3|ns/hop" "W4 idle median|us"
         "W4 idle p99|us" "W4 hot median|us" "W5|bytes")

# ---- packages ---------------------------------------------------------------
PKGS=(libglib2.0-dev libuv1-dev libtbb-dev g++ pkg-config)
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q 'install ok installed'; then
        echo "run.sh: installing ${PKGS[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PKGS[@]}" >&2
        break
    fi
done

# ---- build --------------------------------------------------------------------
mkdir -p "$OUT"
CFLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -O2 -Iinclude -pthread"
# shellcheck disable=SC2046,SC2086
cc $CFLAGS bench/peers/glib.c $(pkg-config --cflags --libs glib-2.0) \
    -o "$OUT/glib"
# shellcheck disable=SC2046,SC2086
cc $CFLAGS bench/peers/libuv.c $(pkg-config --cflags --libs libuv) \
    -o "$OUT/libuv"
g++ -std=c++17 -Wall -Wextra -O2 -Iinclude -pthread bench/peers/tbb.cpp \
    -ltbb -o "$OUT/tbb"
[ -x "$BUILD/bench/tasks" ] || make B="$BUILD" "$BUILD/bench/tasks" >&2
# Runs a snapshot of it: others may rebuild $BUILD/bench/tasks meanwhile.
cp "$BUILD/bench/tasks" "$OUT/libfutures"

# ---- machine --------------------------------------------------------------------
echo "machine: $(nproc) CPUs, $(awk -F': *' '/^model name/ {print $2; exit}' \
    /proc/cpuinfo), kernel $(uname -r)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "libfutures: $BUILD/bench/tasks of $(date -r "$BUILD/bench/tasks" "+%F %T")," \
    "tree $(git describe --always --dirty 2>/dev/null || echo "?")"
echo "peers: glib $(pkg-config --modversion glib-2.0)," \
    "libuv $(pkg-config --modversion libuv)," \
    "oneTBB $(dpkg-query -W -f='${Version}' libtbb-dev 2>/dev/null || echo '?')"
echo "rounds: $RUNS (each program runs each workload once per round)"
echo

# ---- runs -----------------------------------------------------------------------
# Reads one output line of a program; prints "figure<TAB>value" per figure.
# Keys on the units, so the labels around the numbers may differ.
parse() {
    awk -v OFS='\t' '
        { tag = $1 }
        {
            for (i = 2; i <= NF; i++) {
                if ($i == "ns/task" || $i == "ns/hop" || $i == "bytes")
                    print tag, $(i - 1)
                else if ($i == "us" && $(i + 1) ~ /^median,/)
                    print "W4 idle median", $(i - 1)
                else if ($i == "us" && $(i + 1) ~ /^p99/)
                    print "W4 idle p99", $(i - 1)
                else if ($i == "hot:")
                    print "W4 hot median", $(i + 1)
            }
        }'
}

RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT
for r in $(seq 1 "$RUNS"); do
    for w in "${WORKLOADS[@]}"; do
        printf 'round %d/%d %-4s' "$r" "$RUNS" "$w" >&2
        for p in "${PEERS[@]}"; do
            printf ' %s' "$p" >&2
            out=$(BENCH_RUNS=1 "$OUT/$p" "$w") || {
                echo " ($p $w failed: exit $?)" >&2
                continue
            }
            { grep "^W" <<<"$out" || true; } | parse |
                awk -F"\t" -v OFS="\t" -v p="$p" -v r="$r" \
                    '$2 ~ /^[0-9.]+$/ {print $1, p, r, $2}' >>"$RAW"
        done
        echo >&2
    done
done
echo >&2

# ---- tables -----------------------------------------------------------------------
median() { # of the numbers on stdin, one a line; empty if none
    sort -g | awk 'NF { v[++n] = $1 }
        END { if (n) printf "%.2f", n % 2 ? v[(n + 1) / 2] \
                                          : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

echo "figure,unit,peer,median,ratio_libfutures_over_peer,runs" >"$CSV"
for f in "${FIGURES[@]}"; do
    name=${f%|*} unit=${f#*|}
    printf '%s (%s)' "$name" "$unit"
    case $name in
    W3) printf ' - libfutures: future_then hops; peers: a task submits its successor'
        printf ' (libuv: from after_work, a loop-thread round trip per hop)' ;;
    W1*) printf ' - tbb: the caller runs tasks too (arena(2) = caller + 1 worker)' ;;
    W4*) printf ' - tbb: arena.enqueue, caller waits on a condvar' ;;
    W5) printf ' - fresh process each' ;;
    esac
    printf '\n  %-11s %10s %12s   %s\n' peer median "lf/peer" runs
    base=$(awk -F'\t' -v f="$name" '$1 == f && $2 == "libfutures" {print $4}' "$RAW" | median)
    for p in "${PEERS[@]}"; do
        vals=$(awk -F'\t' -v f="$name" -v p="$p" '$1 == f && $2 == p {print $4}' "$RAW")
        med=$(median <<<"$vals")
        ratio=n/a
        if [ -n "$med" ] && [ -n "$base" ]; then
            ratio=$(awk -v a="$base" -v b="$med" 'BEGIN { if (b <= 0) print "n/a"; else printf(a / b >= 0.1 ? "%.2f" : "%.2g", a / b) }')
        fi
        runs=$(tr '\n' ' ' <<<"$vals" | sed 's/ *$//')
        printf '  %-11s %10s %12s   %s\n' "$p" "${med:-n/a}" "$ratio" "${runs:-none}"
        echo "$name,$unit,$p,${med:-n/a},$ratio,$runs" >>"$CSV"
    done
    echo
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "csv: $CSV"
