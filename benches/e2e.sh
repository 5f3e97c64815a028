#!/usr/bin/env bash
# End-to-end benchmark: wormsign against cat, nfpcapd, argus and tshark on one
# synthetic capture (examples/gen_capture.rs), page cache warm.
#
#   benches/e2e.sh                                 # ~4 M packets, 3 runs each
#   WORMSIGN_BENCH_PACKETS=200000 benches/e2e.sh   # CI-sized, well under a minute
#
# Environment:
#   WORMSIGN_BENCH_PACKETS  packets in the main capture (default 4000000)
#   WORMSIGN_BENCH_REPEAT   runs per command; the median wall time is reported (default 3)
#   WORMSIGN_BENCH_PAIRS    interleaved one-core/two-thread pairs for the speed-up (default 5)
#   WORMSIGN_BENCH_SEED     generator seed (default 1)
#   WORMSIGN_BENCH_DATA     where captures are kept and reused (default target/bench-data)
#   WORMSIGN_BENCH_TSHARK   packets for the tshark run, 0 to skip (default 500000, at most
#                           WORMSIGN_BENCH_PACKETS; tshark is two orders of magnitude slower)
#   WORMSIGN_BENCH_SKIP_BUILD=1  use the binaries already built
#   WORMSIGN_BENCH_STRICT=1 exit non-zero when a goal below is MISSED. A command that fails
#                           always makes the script fail, strict or not.
#   WORMSIGN_GOAL_NFPCAPD   wormsign's packets/s over nfpcapd's, at least (default 2.5)
#   WORMSIGN_GOAL_SPEEDUP   the 1 -> 2-core speed-up, at least (default 1.8)
#   WORMSIGN_GOAL_RSS       steady-state peak RSS, twice the capture over once, at most
#                           (default 1.1). CI runs strict with goals that fit its noise and
#                           its small capture (below ~1.3 M packets the RSS ratio is the
#                           row-group warm-up): see .ci/run.
#   WORMSIGN_GOAL_RSS_DETECT  the same with detection (default 1.1; at the default size
#                           the ratio sits near it, as it does without detection, and
#                           passes or misses by its noise: see ARCHITECTURE.md)
#   WORMSIGN_BENCH_SHAPES=0 skip benches/shapes.sh, which runs afterwards (with the same
#                           WORMSIGN_BENCH_* settings) on five traffic shapes
#   CARGO_TARGET_DIR        as for cargo
#
# Peak RSS is measured on the main capture and on one a quarter of its size with
# default timeouts (20 s of capture time: flows are still live, so memory tracks them),
# and in a steady state on the main capture and one twice its size (the same traffic
# over 200 s and 400 s with 10 s timeouts), without detection and with it: the goal is
# that it stays flat as the capture grows.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKETS=${WORMSIGN_BENCH_PACKETS:-4000000}
REPEAT=${WORMSIGN_BENCH_REPEAT:-3}
SEED=${WORMSIGN_BENCH_SEED:-1}
DATA=${WORMSIGN_BENCH_DATA:-$ROOT/target/bench-data}
TSHARK_PACKETS=${WORMSIGN_BENCH_TSHARK:-500000}
NAME=e2e
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
mkdir -p "$DATA"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-e2e.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# capture PACKETS [PPS] -> path (generated once per size, rate, seed and generator version)
capture() {
    local n=$1 pps=${2:-200000} f
    f="$DATA/capture-$n-s$SEED$([ "$pps" = 200000 ] || echo "-pps$pps").pcap"
    if [ ! -s "$f" ] || [ "$ROOT/examples/gen_capture.rs" -nt "$f" ]; then
        "$GEN" --packets "$n" --seed "$SEED" --pps "$pps" --out "$f.tmp" >&2
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}

MAIN=$(capture "$PACKETS")
SMALL_PACKETS=$((PACKETS / 4))
SMALL=$(capture "$SMALL_PACKETS")
# For memory in the steady state: the same traffic stretched 10x in capture time
# (200 s for 4 M packets), analysed with 10 s timeouts, so flows end and are swept
# (every 10 s of capture time) well within the capture; and twice as much of it.
# Peak RSS climbs until the Parquet row groups being encoded (128 k rows, their
# dictionaries growing with them) first fill, so the comparison means something
# only when the smaller capture is past that: about 1.3 M packets of this traffic
# (4 M: 390 k flows, 105 k DNS rows).
STEADY=$(capture "$PACKETS" 20000)
STEADY_LARGE=$(capture "$((2 * PACKETS))" 20000)
SHORT=(--tcp-timeout 10 --udp-timeout 10 --icmp-timeout 10)
if [ "$TSHARK_PACKETS" -gt "$PACKETS" ]; then TSHARK_PACKETS=$PACKETS; fi
if [ "$TSHARK_PACKETS" -gt 0 ] && command -v tshark >/dev/null; then
    TSHARK_FILE=$(capture "$TSHARK_PACKETS")
else
    TSHARK_FILE=
fi
for f in "$MAIN" "$SMALL" "$STEADY" "$STEADY_LARGE" $TSHARK_FILE; do cat "$f" >/dev/null; done  # warm the page cache

size_of() { stat -c %s "$1"; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
max() { sort -g | tail -1; }

RESULTS=$WORK/results.tsv   # label packets bytes wall rss_kb cpu command
: >"$RESULTS"
FAILED=$WORK/failed         # labels of commands that failed: their rows would be missing
: >"$FAILED"
# Both cases pinned alike: the one-core runs to CPU 0, the two-thread runs to CPUs 0-1.
PIN2=()
if command -v taskset >/dev/null; then PIN2=(taskset -c 0,1); fi

# measure LABEL PACKETS FILE -- COMMAND... ; stdout of the command goes to /dev/null
measure() {
    local label=$1 packets=$2 file=$3
    shift 4
    local walls=() rsss=() cpus=() i out wall rss user sys
    for ((i = 0; i < REPEAT; i++)); do
        out=$WORK/out-$label
        rm -rf "$out" && mkdir -p "$out"
        # Commands refer to the output dir as @OUT.
        local cmd=("${@//@OUT/$out}")
        # GNU time gives peak RSS and CPU time; its wall clock has only 10 ms
        # resolution, so the wall time comes from bash's microsecond clock.
        local t0=$EPOCHREALTIME
        if ! "$TIME" -f '%M %U %S' -o "$WORK/time" "${cmd[@]}" >/dev/null 2>"$WORK/stderr"; then
            echo "e2e: $label failed:" >&2
            tail -5 "$WORK/stderr" >&2
            echo "$label" >>"$FAILED"
            return 0
        fi
        local t1=$EPOCHREALTIME
        read -r rss user sys <"$WORK/time"
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
        walls+=("$wall")
        rsss+=("$rss")
        cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')")
    done
    rm -rf "$WORK/out-$label"
    local rss cpu
    wall=$(printf '%s\n' "${walls[@]}" | median)
    rss=$(printf '%s\n' "${rsss[@]}" | max)
    cpu=$(printf '%s\n' "${cpus[@]}" | median)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$packets" "$(size_of "$file")" "$wall" "$rss" \
        "$cpu" "${*//$ROOT\//}" >>"$RESULTS"
    printf '  %-22s %8.3f s  (runs: %s)\n' "$label" "$wall" "${walls[*]}" >&2
}

echo "== measuring ($REPEAT runs each: median wall and CPU time, max peak RSS)" >&2
measure cat "$PACKETS" "$MAIN" -- cat "$MAIN"
# One core: the whole pipeline (reader, decode, flow shard, writer threads) on CPU 0.
if command -v taskset >/dev/null; then
    measure wormsign-1core "$PACKETS" "$MAIN" -- taskset -c 0 "$WORMSIGN" analyze "$MAIN" --out @OUT --quiet --no-detect --threads 1
fi
measure wormsign-t1 "$PACKETS" "$MAIN" -- "$WORMSIGN" analyze "$MAIN" --out @OUT --quiet --no-detect --threads 1
measure wormsign-t2 "$PACKETS" "$MAIN" -- "${PIN2[@]}" "$WORMSIGN" analyze "$MAIN" --out @OUT --quiet --no-detect --threads 2
measure wormsign-t2-detect "$PACKETS" "$MAIN" -- "${PIN2[@]}" "$WORMSIGN" analyze "$MAIN" --out @OUT --quiet --threads 2
measure wormsign-t2-small "$SMALL_PACKETS" "$SMALL" -- "${PIN2[@]}" "$WORMSIGN" analyze "$SMALL" --out @OUT --quiet --no-detect --threads 2
measure steady-t2 "$PACKETS" "$STEADY" -- "${PIN2[@]}" "$WORMSIGN" analyze "$STEADY" --out @OUT --quiet --no-detect --threads 2 "${SHORT[@]}"
measure steady-t2-large "$((2 * PACKETS))" "$STEADY_LARGE" -- "${PIN2[@]}" "$WORMSIGN" analyze "$STEADY_LARGE" --out @OUT --quiet --no-detect --threads 2 "${SHORT[@]}"
measure steady-t2-detect "$PACKETS" "$STEADY" -- "${PIN2[@]}" "$WORMSIGN" analyze "$STEADY" --out @OUT --quiet --threads 2 "${SHORT[@]}"
measure steady-t2-large-detect "$((2 * PACKETS))" "$STEADY_LARGE" -- "${PIN2[@]}" "$WORMSIGN" analyze "$STEADY_LARGE" --out @OUT --quiet --threads 2 "${SHORT[@]}"
if command -v nfpcapd >/dev/null; then
    measure nfpcapd "$PACKETS" "$MAIN" -- nfpcapd -r "$MAIN" -w @OUT
fi
if command -v argus >/dev/null; then
    measure argus "$PACKETS" "$MAIN" -- argus -X -r "$MAIN" -w @OUT/argus.out
fi
if [ -n "$TSHARK_FILE" ]; then
    measure tshark-conv "$TSHARK_PACKETS" "$TSHARK_FILE" -- tshark -r "$TSHARK_FILE" -q -z conv,tcp
fi

# The speed-up from one core to two compares two runs, and this VM's speed drifts by
# 10-30 % over minutes: measured in separate blocks of runs, the ratio moved by more
# than any change to the code. So it is also measured from interleaved pairs (one core,
# then two threads, back to back), one ratio per pair, and the median pair is reported.
PAIRS=${WORMSIGN_BENCH_PAIRS:-5}
# run_timed COMMAND... -> "wall cpu" of one run (CPU: user + system, all threads)
run_timed() {
    local t0 t1 user sys
    t0=$EPOCHREALTIME
    "$TIME" -f '%U %S' -o "$WORK/pair-time" "$@" >/dev/null 2>&1 || return 1
    t1=$EPOCHREALTIME
    read -r user sys <"$WORK/pair-time"
    awk -v a="$t0" -v b="$t1" -v u="$user" -v s="$sys" 'BEGIN { printf "%.4f %.2f\n", b - a, u + s }'
}
# The machine's own ceiling for this work: two independent one-core analyses of the
# same capture at once, one per CPU. They share nothing but the machine (memory
# bandwidth, the last-level cache, the hypervisor), so 2 x (one alone) / (both at once)
# is what a second core gives this work with no coordination at all: the reference for
# the speed-up, not a strict bound (the two runs hold two whole flow tables, where two
# shards hold one table's flows between them). On this VM it is well below 2, and it
# drifts with the neighbours: in C, two streaming copies at once gained 1.2x over one,
# and random access to a 64 MB table 1.65x.
# BOTH_CORES WORMSIGN CAPTURE OUT: the two runs, the second writing to OUT-b.
BOTH_CORES='taskset -c 0 "$0" analyze "$1" --out "$2" --quiet --no-detect --threads 1 & a=$!
    taskset -c 1 "$0" analyze "$1" --out "$2-b" --quiet --no-detect --threads 1 & b=$!
    wait $a && wait $b'
# speedup_pairs -> one line per pair (one core, two threads, then both cores running
# independent one-core analyses, back to back): the speed-up (one-core wall / two-thread
# wall), the two-thread run's CPU over the one-core run's (the cost of splitting the
# work), the cores the two-thread run kept busy (its CPU / its wall time), and the
# ceiling (2 x one-core wall / wall of both independent runs), and the speed-up as a
# share of that pair's ceiling.
speedup_pairs() {
    local i one two both out=$WORK/out-pair
    command -v taskset >/dev/null || return 0
    for ((i = 0; i < PAIRS; i++)); do
        rm -rf "$out" "$out-b" && mkdir -p "$out" "$out-b"
        one=$(run_timed taskset -c 0 "$WORMSIGN" analyze "$MAIN" --out "$out" --quiet --no-detect --threads 1) || { echo pair-one-core >>"$FAILED"; return 0; }
        two=$(run_timed taskset -c 0,1 "$WORMSIGN" analyze "$MAIN" --out "$out" --quiet --no-detect --threads 2) || { echo pair-two-threads >>"$FAILED"; return 0; }
        both=$(run_timed bash -c "$BOTH_CORES" "$WORMSIGN" "$MAIN" "$out") || { echo pair-both-cores >>"$FAILED"; return 0; }
        echo "$one $two $both" | awk '{ printf "%.3f %.3f %.2f %.3f %.2f\n", $1 / $3, $4 / $2, $4 / $3, 2 * $1 / $5, $5 / (2 * $3) }'
    done
    rm -rf "$out" "$out-b"
}
echo "== speed-up from one core to two: $PAIRS interleaved pairs" >&2
PAIR_LINES=$(speedup_pairs)
column_sorted() { echo "$PAIR_LINES" | awk -v c="$1" 'NF { print $c }' | sort -g | tr '\n' ' '; }
RATIOS=$(column_sorted 1)
echo "  ratios: $RATIOS" >&2
echo "  ceilings: $(column_sorted 4)" >&2

echo
echo "capture: $MAIN ($PACKETS packets, $(($(size_of "$MAIN") / 1000000)) MB); $(nproc) cores; $REPEAT runs, median"
echo "Mpkt/s and MB/s are per wall second; CPU s is user + system time of all threads."
echo
awk -F'\t' '
    BEGIN { printf "| %-22s | %9s | %7s | %7s | %7s | %6s | %7s | %s\n", "tool", "packets", "wall s", "CPU s", "Mpkt/s", "MB/s", "RSS MB", "command"
            printf "|%s|%s|%s|%s|%s|%s|%s|%s\n", "------------------------", "-----------", "---------", "---------", "---------", "--------", "---------", "---------" }
    { printf "| %-22s | %9d | %7.3f | %7.2f | %7.2f | %6.0f | %7.1f | `%s`\n", $1, $2, $4, $6, ($4 > 0 ? $2 / $4 / 1e6 : 0), ($4 > 0 ? $3 / $4 / 1e6 : 0), $5 / 1024, $7 }
' "$RESULTS"

echo
awk -F'\t' '
    { wall[$1] = $4; pps[$1] = ($4 > 0 ? $2 / $4 : 0); rss[$1] = $5 / 1024; n[$1] = $2 }
    function verdict(ok) { return ok ? "ok" : "MISSED" }
    END {
        if (("wormsign-t2" in wall) && ("cat" in wall) && wall["cat"] > 0) {
            r = wall["wormsign-t2"] / wall["cat"]
            printf "wormsign 2 threads vs cat, wall time:        %6.2fx  (for orientation: the <= 1.5x goal was withdrawn, Parquet output cannot reach it)\n", r
        }
        if (("wormsign-t2" in pps) && ("nfpcapd" in pps) && pps["nfpcapd"] > 0) {
            r = pps["wormsign-t2"] / pps["nfpcapd"]
            printf "wormsign 2 threads vs nfpcapd, packets/s:    %6.2fx  (goal >= %gx)  %s\n", r, goal_nfpcapd, verdict(r >= goal_nfpcapd)
        }
        if (("wormsign-t2" in pps) && ("argus" in pps) && pps["argus"] > 0)
            printf "wormsign 2 threads vs argus, packets/s:      %6.2fx  (argus idles ~1 s before it exits: compare CPU s too)\n", pps["wormsign-t2"] / pps["argus"]
        if (("wormsign-t2-detect" in wall) && ("wormsign-t2" in wall) && wall["wormsign-t2"] > 0)
            printf "detection share, 2 threads (wall):            +%3.0f%%  (on the mix alone; shapes.sh below gives it per shape, with a verdict)\n", 100 * (wall["wormsign-t2-detect"] / wall["wormsign-t2"] - 1)
        # --threads counts decode workers and flow shards; the reader and the writer are
        # threads of their own, so --threads 1 already keeps two cores busy. The speed-up
        # from one core to two is therefore measured with the run pinned to one CPU.
        if (("wormsign-1core" in wall) && ("wormsign-t2" in wall) && wall["wormsign-t2"] > 0)
            printf "speed-up 1 -> 2 cores (taskset -c 0 --threads 1 vs --threads 2), medians of the blocks above: %6.2fx\n", wall["wormsign-1core"] / wall["wormsign-t2"]
        n_ratios = split(ratios, r_sorted, " ")
        if (n_ratios > 0) {
            r = r_sorted[int((n_ratios + 1) / 2)]
            printf "speed-up 1 -> 2 cores, median of %d interleaved pairs: %6.2fx (pairs %s to %s)  (goal >= %gx)  %s\n", \
                n_ratios, r, r_sorted[1], r_sorted[n_ratios], goal_speedup, verdict(r >= goal_speedup)
            split(cpu_ratios, c_sorted, " ")
            split(busy, b_sorted, " ")
            printf "  of which: CPU at 2 threads / CPU on 1 core %.2fx, cores busy at 2 threads %.2f (medians)\n", \
                c_sorted[int((n_ratios + 1) / 2)], b_sorted[int((n_ratios + 1) / 2)]
            split(ceilings, m_sorted, " ")
            split(shares, s_sorted, " ")
            printf "  the machine'"'"'s ceiling for this work (two independent one-core runs at once): %.2fx (pairs %s to %s); the speed-up is %.0f%% of it (median)\n", \
                m_sorted[int((n_ratios + 1) / 2)], m_sorted[1], m_sorted[n_ratios], 100 * s_sorted[int((n_ratios + 1) / 2)]
        }
        if (("wormsign-t1" in wall) && ("wormsign-t2" in wall) && wall["wormsign-t2"] > 0)
            printf "--threads 1 -> 2, both on all cores:         %6.2fx\n", wall["wormsign-t1"] / wall["wormsign-t2"]
        # With default timeouts every flow of the 20 s capture is still live at the end,
        # so memory holds them all (up to --max-flows): this line is for orientation; the
        # steady-state line below is the check.
        if (("wormsign-t2" in rss) && ("wormsign-t2-small" in rss)) {
            r = rss["wormsign-t2"] / rss["wormsign-t2-small"]
            printf "peak RSS, 2 threads, default timeouts (all flows live): %.0f MB at %d packets, %.0f MB at %d: %.2fx for 4x the packets and flows\n", \
                rss["wormsign-t2-small"], n["wormsign-t2-small"], rss["wormsign-t2"], n["wormsign-t2"], r
        }
        if (("steady-t2" in rss) && ("steady-t2-large" in rss)) {
            r = rss["steady-t2-large"] / rss["steady-t2"]
            printf "peak RSS, 2 threads, steady state (10x slower capture, 10 s timeouts): %.0f MB at %d packets, %.0f MB at %d: %.2fx (goal: flat, <= %gx; below ~1.3 M packets this is row-group warm-up)  %s\n", \
                rss["steady-t2"], n["steady-t2"], rss["steady-t2-large"], n["steady-t2-large"], r, goal_rss, verdict(r <= goal_rss)
        }
        # Detection holds at most max_pending_flows (65 536) usable flows in memory, the
        # rest in files, and its rules keep state per source and per pair (bounded by
        # max_sources and 64 times that), which grows slowly with the capture: at the
        # default size 108-112 and 117-122 MB at 4 and 8 M packets, 1.04-1.11x (with a
        # cap of 2^20, under which detection held every usable flow: 1.19-1.25x).
        if (("steady-t2-detect" in rss) && ("steady-t2-large-detect" in rss)) {
            r = rss["steady-t2-large-detect"] / rss["steady-t2-detect"]
            printf "peak RSS with detection, 2 threads, steady state: %.0f MB at %d packets, %.0f MB at %d: %.2fx (goal: flat, <= %gx; below ~1.3 M packets this is row-group warm-up)  %s\n", \
                rss["steady-t2-detect"], n["steady-t2-detect"], rss["steady-t2-large-detect"], n["steady-t2-large-detect"], r, goal_rss_detect, verdict(r <= goal_rss_detect)
        }
    }
' ratios="$RATIOS" cpu_ratios="$(column_sorted 2)" busy="$(column_sorted 3)" \
    goal_nfpcapd="${WORMSIGN_GOAL_NFPCAPD:-2.5}" goal_speedup="${WORMSIGN_GOAL_SPEEDUP:-1.8}" \
    goal_rss="${WORMSIGN_GOAL_RSS:-1.1}" goal_rss_detect="${WORMSIGN_GOAL_RSS_DETECT:-1.1}" \
    ceilings="$(column_sorted 4)" shares="$(column_sorted 5)" "$RESULTS" | tee "$WORK/verdicts"

if [ -s "$FAILED" ]; then
    echo "e2e: FAILED: these commands failed, so their rows and comparisons are missing: $(tr '\n' ' ' <"$FAILED")" >&2
    exit 1
fi
if [ "${WORMSIGN_BENCH_STRICT:-0}" = 1 ] && grep -q MISSED "$WORK/verdicts"; then
    echo "e2e: FAILED (WORMSIGN_BENCH_STRICT=1): a goal above was MISSED" >&2
    exit 1
fi
if [ "${WORMSIGN_BENCH_SHAPES:-1}" != 0 ]; then
    echo
    WORMSIGN_BENCH_PACKETS=$PACKETS WORMSIGN_BENCH_DATA=$DATA WORMSIGN_BENCH_SKIP_BUILD=1 \
        "$ROOT/benches/shapes.sh"
fi
