#!/usr/bin/env bash
# Benchmarks on a labelled synthetic outbreak: analyze throughput on a --scale'd DriveLife
# capture (with and without detection), then a rule-benchmark run with a small sweep.
#
#   benches/rules.sh                           # --scale 100: ~1.9 M packets, ~520 MB
#   WORMSIGN_BENCH_SCALE=5 benches/rules.sh    # CI-sized
#
# Environment: WORMSIGN_BENCH_SCALE (default 100), WORMSIGN_BENCH_REPEAT (runs of each
# analyze, interleaved; default 5), WORMSIGN_BENCH_DATA (default
# target/bench-data), WORMSIGN_BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR as for cargo,
# WORMSIGN_BENCH_STRICT=1 to exit non-zero when the detection-share goal is MISSED,
# WORMSIGN_GOAL_DETECT the goal in % (default 15, the detection issue's; at small scales
# the fixed cost of detection's report dominates runs of a tenth of a second, so CI's
# scale-5 run is strict with a guard above what it measures).
#
# Wall times are taken with nanosecond clocks (GNU time's %e has 10 ms steps, too coarse
# for 0.05 s runs); the detection share is the median over the interleaved pairs of
# (with detection / without), so drift between pairs cancels.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=${WORMSIGN_BENCH_SCALE:-100}
REPEAT=${WORMSIGN_BENCH_REPEAT:-5}
DATA=${WORMSIGN_BENCH_DATA:-$ROOT/target/bench-data}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${WORMSIGN_BENCH_SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release --quiet --bin wormsign)
WORMSIGN=$TARGET/release/wormsign
SCENARIO=$DATA/drivelife-scale$SCALE
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-rules.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ ! -s "$SCENARIO/capture.pcap" ] || [ "$WORMSIGN" -nt "$SCENARIO/capture.pcap" ]; then
    "$WORMSIGN" synth --scenario drivelife --seed 1 --scale "$SCALE" --out "$SCENARIO" --quiet
fi
CAPTURE=$SCENARIO/capture.pcap
LABELS=$SCENARIO/labels.json
BYTES=$(stat -c %s "$CAPTURE")
cat "$CAPTURE" > /dev/null
FLAGS=(--honeypot 10.200.0.99 --allowlist 10.164.1.13 --quiet)

# run LABEL -- COMMAND...: wall seconds (ns clock) and peak RSS of one run; a failing
# command fails the script (set -e).
run() {
    local label=$1; shift 2
    local start end
    start=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$WORK/time" "$@" > /dev/null
    end=$(date +%s%N)
    read -r rss < "$WORK/time"
    echo "$label $(( (end - start) / 1000 ))e-6 $rss"
}

echo "capture: $CAPTURE ($BYTES bytes, scale $SCALE)"
"$WORMSIGN" analyze "$CAPTURE" --out "$WORK/a" --no-detect "${FLAGS[@]}" --summary-json "$WORK/s.json"
PACKETS=$(python3 -c "import json;print(json.load(open('$WORK/s.json'))['packets'])")
# With and without detection interleaved, REPEAT times each: the machine's drift hits
# both alike, and the median of each is compared.
{
    for _ in $(seq "$REPEAT"); do
        run analyze-no-detect -- "$WORMSIGN" analyze "$CAPTURE" --out "$WORK/b" --no-detect "${FLAGS[@]}"
        run analyze-detect -- "$WORMSIGN" analyze "$CAPTURE" --out "$WORK/c" "${FLAGS[@]}"
    done
    run bench-rules-3-points -- "$WORMSIGN" bench-rules "$WORK/a" --labels "$LABELS" \
        --sweep scan.fanout_threshold=5..15:5 --json "$WORK/rules.json" --quiet
} > "$WORK/all"
# Per run label, in order: median wall seconds and largest peak RSS.
python3 - "$WORK/all" > "$WORK/runs" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, wall, rss = line.split()
    runs.setdefault(label, []).append((float(wall), int(rss)))
for label, v in runs.items():
    print(label, statistics.median(w for w, _ in v), max(r for _, r in v))
EOF
printf '\n| run (median of %s) | wall s | packets/s | MB/s | peak RSS MB |\n|---|---|---|---|---|\n' "$REPEAT"
while read -r label wall rss; do
    awk -v l="$label" -v w="$wall" -v r="$rss" -v p="$PACKETS" -v b="$BYTES" 'BEGIN {
        w = (w > 0) ? w : 0.001
        printf "| %s | %.3f | %.0f | %.1f | %.0f |\n", l, w, p / w, b / w / 1e6, r / 1024 }'
done < "$WORK/runs"
# The detection share: per interleaved pair, then the median of the pairs.
python3 - "$WORK/all" "${WORMSIGN_GOAL_DETECT:-15}" > "$WORK/verdict" <<'EOF'
import statistics, sys
goal = float(sys.argv[2])
base, detect = [], []
for line in open(sys.argv[1]):
    label, wall, _ = line.split()
    {"analyze-no-detect": base, "analyze-detect": detect}.get(label, []).append(float(wall))
shares = sorted(d / b - 1 for b, d in zip(base, detect))
share = statistics.median(shares)
verdict = "ok" if 100 * share <= goal else "MISSED"
print(f"\ndetection adds {100 * share:.0f}% to analyze wall time, median of {len(shares)} "
      f"interleaved pairs ({100 * shares[0]:.0f}% to {100 * shares[-1]:.0f}%)  "
      f"(goal <= {goal:g}%)  {verdict}")
EOF
cat "$WORK/verdict"
echo
echo "bench-rules (DriveLife labels, flows built once, 3 sweep points):"
"$WORMSIGN" bench-rules "$WORK/a" --labels "$LABELS" --sweep scan.fanout_threshold=5..15:5 --quiet
if [ "${WORMSIGN_BENCH_STRICT:-0}" = 1 ] && grep -q MISSED "$WORK/verdict"; then
    echo "rules: FAILED (WORMSIGN_BENCH_STRICT=1): the detection-share goal was MISSED" >&2
    exit 1
fi
