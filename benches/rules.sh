#!/usr/bin/env bash
# Benchmarks on a labelled synthetic outbreak: analyze throughput on a --scale'd DriveLife
# capture (with and without detection), then a rule-benchmark run with a small sweep.
#
#   benches/rules.sh                           # --scale 100: ~1.9 M packets, ~520 MB
#   WORMSIGN_BENCH_SCALE=5 benches/rules.sh    # CI-sized
#
# Environment: WORMSIGN_BENCH_SCALE (default 100), WORMSIGN_BENCH_REPEAT (runs of each
# analyze, interleaved; default 5), WORMSIGN_BENCH_DATA (default
# target/bench-data), WORMSIGN_BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR as for cargo.
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

# run LABEL -- COMMAND...: wall seconds and peak RSS of one run
run() {
    local label=$1; shift 2
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" > /dev/null
    read -r wall rss < "$WORK/time"
    echo "$label $wall $rss"
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
        printf "| %s | %.2f | %.0f | %.1f | %.0f |\n", l, w, p / w, b / w / 1e6, r / 1024 }'
done < "$WORK/runs"
awk '$1 == "analyze-no-detect" { base = $2 } $1 == "analyze-detect" { d = $2 }
     END { if (base > 0) printf "\ndetection adds %.0f%% to analyze wall time (issue 4 goal <= 15%%)\n", 100 * (d / base - 1) }' "$WORK/runs"
echo
echo "bench-rules (DriveLife labels, flows built once, 3 sweep points):"
"$WORMSIGN" bench-rules "$WORK/a" --labels "$LABELS" --sweep scan.fanout_threshold=5..15:5 --quiet
