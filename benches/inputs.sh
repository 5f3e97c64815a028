#!/usr/bin/env bash
# Records per second for the inputs that are not captures: Zeek conn.log and dns.log,
# Suricata eve.json, and sFlow (every frame sampled, and 1 in 8), each made from the
# benchmark capture of benches/e2e.sh, against `cat` of the same file, in interleaved
# rounds (page cache warm). Zeek and Suricata logs are written from wormsign's own flows
# and DNS rows by benches/flows_to_logs.py (needs pyarrow); sFlow datagrams by
# examples/sflow_sample.rs. Detection off: this measures reading and row building.
#
#   benches/inputs.sh                        # 1 M packets, 3 rounds
#   WORMSIGN_BENCH_PACKETS=200000 benches/inputs.sh
#
# Environment: WORMSIGN_BENCH_PACKETS (default 1000000), WORMSIGN_BENCH_ROUNDS (3),
# WORMSIGN_BENCH_DATA (default target/bench-data), WORMSIGN_BENCH_SKIP_BUILD=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=inputs
PACKETS=${WORMSIGN_BENCH_PACKETS:-1000000}
ROUNDS=${WORMSIGN_BENCH_ROUNDS:-3}
DATA=${WORMSIGN_BENCH_DATA:-$ROOT/target/bench-data}
. "$ROOT/benches/common.sh"
(cd "$ROOT" && cargo build --release --quiet --example sflow_sample)
SAMPLE=$TARGET/release/examples/sflow_sample
mkdir -p "$DATA"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-inputs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

MAIN=$DATA/capture-$PACKETS-s1.pcap
if [ ! -s "$MAIN" ]; then
    "$GEN" --packets "$PACKETS" --seed 1 --out "$MAIN.tmp" >&2 && mv "$MAIN.tmp" "$MAIN"
fi
LOGS=$DATA/logs-$PACKETS
if [ ! -s "$LOGS/eve.json" ] || [ "$MAIN" -nt "$LOGS/eve.json" ]; then
    echo "== writing the capture's flows as Zeek and Suricata logs" >&2
    "$WORMSIGN" analyze "$MAIN" --out "$WORK/run" --quiet --no-detect
    python3 "$ROOT/benches/flows_to_logs.py" "$WORK/run" "$LOGS"
fi
for rate in 1 8; do
    if [ ! -s "$LOGS/sflow-$rate.pcap" ] || [ "$MAIN" -nt "$LOGS/sflow-$rate.pcap" ]; then
        "$SAMPLE" "$rate" "$MAIN" "$LOGS/sflow-$rate.pcap"
    fi
done

# records LABEL SUMMARY_JSON -> the records the input held, from the run summary
records() {
    python3 -c 'import json,sys; s=json.load(open(sys.argv[2])); k=sys.argv[1]
print(s["sflow"]["flow_samples"] if k.startswith("sflow") else s["logs"]["flow_records"] + s["logs"]["dns_records"])' "$1" "$2"
}

INPUTS=(zeek-conn:"$LOGS/conn.log" zeek-dns:"$LOGS/dns.log" suricata-eve:"$LOGS/eve.json"
    sflow-1in1:"$LOGS/sflow-1.pcap" sflow-1in8:"$LOGS/sflow-8.pcap")
RESULTS=$WORK/results
for ((round = 0; round < ROUNDS; round++)); do
    for entry in "${INPUTS[@]}"; do
        label=${entry%%:*} file=${entry#*:}
        t0=$EPOCHREALTIME; cat "$file" >/dev/null; t1=$EPOCHREALTIME
        cat_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        rm -rf "$WORK/out"
        t0=$EPOCHREALTIME
        "$TIME" -f '%U %S %M' -o "$WORK/time" "$WORMSIGN" analyze "$file" --out "$WORK/out" \
            --quiet --no-detect --summary-json "$WORK/summary.json"
        t1=$EPOCHREALTIME
        read -r user sys rss <"$WORK/time"
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$(records "$label" "$WORK/summary.json")" \
            "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$cat_wall" "$rss" >>"$RESULTS"
    done
done

echo "inputs made from $MAIN ($PACKETS packets); $ROUNDS interleaved rounds, medians; $(nproc) cores"
printf '%-13s %10s %10s %9s %12s %13s %9s %8s\n' input records MB wall_s records/s cpu_us/record cat_s rss_MB
for entry in "${INPUTS[@]}"; do
    label=${entry%%:*} file=${entry#*:}
    awk -F'\t' -v l="$label" -v mb="$(stat -c %s "$file")" '$1 == l {
        n++; rec = $2; wall[n] = $3; cpu[n] = $4; cat[n] = $5; if ($6 > rss) rss = $6 }
      function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
          if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
      END { w = med(wall, n); c = med(cpu, n); k = med(cat, n)
        printf "%-13s %10d %10.1f %9.3f %12.0f %13.2f %9.3f %8.0f\n", l, rec, mb / 1e6, w, rec / w, c / rec * 1e6, k, rss / 1024 }' "$RESULTS"
done
