#!/usr/bin/env bash
# Per-thread CPU time of one `wormsign analyze` run, to see whether the pipeline's
# stages are balanced:
#
#   benches/thread_cpu.sh THREADS CAPTURE [more analyze args...]
#
# Samples /proc/PID/task/*/stat every 20 ms and keeps each thread's last user+system
# time. Threads are named by crates/wormsign-engine/src/pipeline.rs (reader, decode-N,
# shard-N, and encode-N: the pipeline's own pool, one of whose threads runs the writer
# while the others encode Parquet columns); the main thread ("wormsign") waits for them,
# then runs detection.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORMSIGN=${WORMSIGN_BIN:-$TARGET/release/wormsign}
[ $# -ge 2 ] || { echo "usage: $0 THREADS CAPTURE [analyze args...]" >&2; exit 2; }
N=$1 CAPTURE=$2
shift 2
OUT=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-cpu.XXXXXX")
SAMPLES=$OUT/samples
trap 'rm -rf "$OUT"' EXIT
TICK=$(getconf CLK_TCK)

start=$(date +%s.%N)
"$WORMSIGN" analyze "$CAPTURE" --out "$OUT/out" --quiet --threads "$N" "$@" &
pid=$!
: >"$SAMPLES"
while kill -0 "$pid" 2>/dev/null; do
    for f in /proc/"$pid"/task/*/stat; do
        # Fields after the ")" of the command name: 14 utime, 15 stime (1-based).
        read -r line <"$f" 2>/dev/null || continue
        tid=${f#/proc/"$pid"/task/}
        tid=${tid%/stat}
        name=${line#*(}
        name=${name%%)*}
        rest=${line##*) }
        set -- $rest
        echo "$tid $name $((${12} + ${13}))" >>"$SAMPLES"
    done
    sleep 0.02
done
wait "$pid"
end=$(date +%s.%N)
wall=$(echo "$end - $start" | bc -l)

sort -k1,1n -k3,3n "$SAMPLES" | awk -v n="$N" -v tick="$TICK" -v wall="$wall" -v pid="$pid" '
    { last[$1] = $3; name[$1] = $2; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END {
        printf "wall %.2f s; threads %d (per-thread CPU is sampled, so slightly low)\n", wall, n
        printf "%-8s %-14s %8s %8s\n", "tid", "role", "cpu s", "% wall"
        total = 0
        for (i = 1; i <= k; i++) {
            t = order[i]
            role = name[t]
            if (t == pid) role = "main/detect"
            cpu = last[t] / tick
            total += cpu
            printf "%-8s %-14s %8.2f %7.0f%%\n", t, role, cpu, 100 * cpu / wall
        }
        printf "%-8s %-14s %8.2f %7.0f%%\n", "", "total", total, 100 * total / wall
    }'
