#!/usr/bin/env bash
# Sustained NetFlow collector rate on loopback: wormsign collect against nfcapd.
#
#   benches/collector.sh                    # 200 000 v5 datagrams (6 M records) per rate
#   WORMSIGN_COLLECT_DATAGRAMS=20000 benches/collector.sh
#
# A Python sender replays NetFlow v5 datagrams of 30 records each, with correct
# sequence numbers, to 127.0.0.1 at several target rates (datagrams/s); each collector's
# own count of received records (and, for wormsign, of records lost by sequence) shows
# whether it kept up. The receive buffer is raised to 8 MiB for both.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${WORMSIGN_COLLECT_DATAGRAMS:-200000}
RATES=${WORMSIGN_COLLECT_RATES:-"20000 50000 100000 0"}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${WORMSIGN_BENCH_SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release --quiet --bin wormsign)
WORMSIGN=$TARGET/release/wormsign
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-collect.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
sysctl -qw net.core.rmem_max=8388608 net.core.rmem_default=8388608 2>/dev/null || true

cat > "$WORK/send.py" <<'PY'
import socket, struct, sys, time
port, n, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def datagram(seq):
    hdr = struct.pack("!HHIIIIBBH", 5, 30, 1000, 1_700_000_000, 0, seq, 0, 0, 0)
    recs = b"".join(struct.pack("!IIIHHIIIIHHBBBBHHBBH", 0x0a000001 + i, 0x0a000101, 0, 0, 0,
                                10, 1000, 500, 900, 40000 + i, 445, 0, 0x12, 6, 0, 0, 0, 0, 0, 0)
                    for i in range(30))
    return hdr + recs
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.perf_counter()
for k in range(n):
    s.sendto(datagram(k * 30), ("127.0.0.1", port))
    if rate > 0:
        ahead = (k + 1) / rate - (time.perf_counter() - start)
        if ahead > 0.0005:
            time.sleep(ahead)
elapsed = time.perf_counter() - start
print(f"{n / elapsed:.0f}")
PY

printf '%-10s %12s %12s %14s %14s\n' collector "target dg/s" "sent dg/s" "records sent" "records kept"
for rate in $RATES; do
    # wormsign collect
    out=$WORK/w-$rate; port=$((30000 + RANDOM % 20000))
    "$WORMSIGN" collect --listen 127.0.0.1:$port --out "$out" --summary-json "$out.json" 2>/dev/null &
    pid=$!; sleep 0.5
    sent=$(python3 "$WORK/send.py" $port "$N" "$rate")
    sleep 1; kill -TERM $pid; wait $pid || true
    kept=$(python3 -c "import json;print(json.load(open('$out.json'))['netflow']['records'])")
    printf '%-10s %12s %12s %14s %14s\n' wormsign "${rate/#0/max}" "$sent" $((N * 30)) "$kept"
    # nfcapd
    if command -v nfcapd >/dev/null; then
        out=$WORK/n-$rate; mkdir -p "$out"; port=$((30000 + RANDOM % 20000))
        nfcapd -w "$out" -p $port -b 127.0.0.1 -B 8388608 >/dev/null 2>&1 &
        pid=$!; sleep 0.5
        sent=$(python3 "$WORK/send.py" $port "$N" "$rate")
        sleep 1; kill -TERM $pid; wait $pid || true
        kept=$(nfdump -R "$out" -q -o "fmt:%pkt" 2>/dev/null | wc -l)
        printf '%-10s %12s %12s %14s %14s\n' nfcapd "${rate/#0/max}" "$sent" $((N * 30)) "$kept"
    fi
done
