#!/usr/bin/env bash
# Sustained NetFlow collector rate on loopback: wormsign collect against nfcapd, with a
# verdict on loss.
#
#   benches/collector.sh                                  # 10 s per rate
#   WORMSIGN_COLLECT_SECONDS=2 benches/collector.sh       # CI-sized
#
# Environment:
#   WORMSIGN_COLLECT_SECONDS    how long each rate is sent (default 10)
#   WORMSIGN_COLLECT_RATES      records/s to send, 0 for as fast as the sender can
#                               (default "100000 250000 500000 0")
#   WORMSIGN_COLLECT_BUFFER     the socket receive buffer both collectors ask for, in
#                               bytes (default 8388608: nfcapd -B, wormsign --recv-buffer)
#   WORMSIGN_COLLECT_TOLERANCE  percentage points of loss wormsign may have above nfcapd's
#                               at a paced rate before the verdict is MISSED (default 1)
#   WORMSIGN_BENCH_STRICT=1     exit non-zero when a verdict is MISSED
#   WORMSIGN_BENCH_SKIP_BUILD=1 use the binaries already built
#
# The sender is examples/netflow_send.rs: one Rust thread sending prebuilt NetFlow v5
# datagrams of 30 records, with correct sequence numbers, paced by the clock. It reaches
# millions of records/s on loopback, so the collectors, not the sender, set the limit
# (its achieved rate is printed). Both collectors get the same receive buffer request;
# Linux caps it at net.core.rmem_max for both, and this script does not change sysctls.
# Loss is records sent minus records each collector wrote to its files.
#
# Verdict, per paced rate: wormsign loses at most the tolerance more than nfcapd does.
# The as-fast-as-possible row is for orientation only: both collectors fall behind there.
# A command that fails (a collector that does not start or exits with an error, a sender
# that fails) makes the script fail, strict or not.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_RATE=${WORMSIGN_COLLECT_SECONDS:-10}
RATES=${WORMSIGN_COLLECT_RATES:-"100000 250000 500000 0"}
BUFFER=${WORMSIGN_COLLECT_BUFFER:-8388608}
TOLERANCE=${WORMSIGN_COLLECT_TOLERANCE:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
for tool in nfcapd nfdump; do
    command -v $tool >/dev/null || { echo "collector: $tool is required (apt-get install nfdump)" >&2; exit 2; }
done
if [ "${WORMSIGN_BENCH_SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin wormsign --example netflow_send)
fi
WORMSIGN=$TARGET/release/wormsign
SEND=$TARGET/release/examples/netflow_send
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-collect.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# port_taken PORT: whether a UDP socket is bound to 127.0.0.1:PORT.
port_taken() { ! python3 -c 'import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }

# wait_listening PID PORT LOG: until the collector has bound its port (or died).
wait_listening() {
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || { echo "collector: the collector exited before listening; its log:" >&2; cat "$3" >&2; return 1; }
        port_taken "$2" && return 0
        sleep 0.05
    done
    echo "collector: nothing listens on port $2 after 5 s" >&2
    return 1
}

# run_one NAME RATE: start collector NAME, send at RATE, stop it; prints
# "sent_records seconds achieved_rate kept_records".
run_one() {
    local name=$1 rate=$2 out=$WORK/$1-$2 port pid sent
    port=$(free_port)
    mkdir -p "$out"
    case $name in
        wormsign) "$WORMSIGN" collect --listen 127.0.0.1:"$port" --out "$out" \
                      --recv-buffer "$BUFFER" --summary-json "$out.json" 2>"$out.log" & ;;
        nfcapd) nfcapd -w "$out" -p "$port" -b 127.0.0.1 -B "$BUFFER" >"$out.log" 2>&1 & ;;
    esac
    pid=$!
    wait_listening $pid "$port" "$out.log"
    read -r sent seconds achieved < <("$SEND" 127.0.0.1:"$port" "$rate" "$SECONDS_PER_RATE")
    sleep 1 # let the collector drain its socket
    kill -TERM $pid
    wait $pid || { echo "collector: $name failed (exit $?); its log:" >&2; cat "$out.log" >&2; return 1; }
    local kept
    case $name in
        wormsign) kept=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['netflow']['records'])" "$out.json") ;;
        nfcapd) kept=$(nfdump -R "$out" -q -o "fmt:%pkt" | wc -l) ;;
    esac
    echo "$sent $seconds $achieved $kept"
}

echo "== loopback, ${SECONDS_PER_RATE} s per rate, receive buffer $BUFFER bytes asked for by both (net.core.rmem_max $(cat /proc/sys/net/core/rmem_max))"
printf '%-9s %14s %14s %12s %12s %14s %8s\n' collector "target rec/s" "sent rec/s" "sent" "kept" "kept rec/s" "loss %"
: > "$WORK/rows"
for rate in $RATES; do
    for name in wormsign nfcapd; do
        read -r sent seconds achieved kept < <(run_one $name "$rate")
        [ -n "${kept:-}" ] || { echo "collector: the $name run at $rate records/s failed" >&2; exit 1; }
        read -r kept_rate loss < <(python3 -c "import sys; s, t, k = map(float, sys.argv[1:]); print(f'{k / t:.0f} {100 * (s - k) / s:.2f}')" "$sent" "$seconds" "$kept")
        printf '%-9s %14s %14s %12s %12s %14s %8s\n' $name "${rate/#0/max}" "$achieved" "$sent" "$kept" "$kept_rate" "$loss"
        echo "$name $rate $loss" >> "$WORK/rows"
    done
done

echo
python3 - "$WORK/rows" "$TOLERANCE" <<'EOF' | tee "$WORK/verdicts"
import sys
rows = [line.split() for line in open(sys.argv[1])]
tolerance = float(sys.argv[2])
loss = {(name, int(rate)): float(pct) for name, rate, pct in rows}
for rate in sorted({r for _, r in loss if r > 0}):
    w, n = loss[("wormsign", rate)], loss[("nfcapd", rate)]
    verdict = "ok" if w <= n + tolerance else "MISSED"
    print(f"at {rate} records/s: wormsign loses {w:.2f} %, nfcapd {n:.2f} % "
          f"(goal: at most nfcapd's + {tolerance:g} points)  {verdict}")
EOF
if [ "${WORMSIGN_BENCH_STRICT:-0}" = 1 ] && grep -q MISSED "$WORK/verdicts"; then
    echo "collector: FAILED (WORMSIGN_BENCH_STRICT=1): a verdict above was MISSED" >&2
    exit 1
fi
