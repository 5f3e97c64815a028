#!/usr/bin/env bash
# Where the time goes in one `wormsign analyze` run: a perf profile of every thread,
# self time grouped by pipeline stage.
#
#   benches/profile.sh CAPTURE [more analyze args...]      # e.g. --no-detect --threads 1
#
# Stages, by the symbol a sample landed in (the first pattern that matches wins):
#   read        the capture reader and the kernel copying file pages to it
#   decode      frame decoding and DNS parsing (wormsign-decode, inlined into decode_worker)
#   flow table  flow metering (wormsign-flow)
#   inspect     SMB/TDS/RDP session inspection (wormsign-inspect)
#   netflow     NetFlow/IPFIX export decoding (wormsign-netflow)
#   rows        Arrow row building (wormsign-columnar builders, arrow arrays and buffers,
#               the Community ID hash)
#   parquet     Parquet encoding and compression (parquet, zstd)
#   detection   the detector, its feed and filters (wormsign-detect, engine feed, read-back)
#   memory      allocation, copies and page faults anywhere (with the kernel's page
#               lists' lock, which faulting in fresh pages takes)
#   threads     channels, futexes, scheduling
#   other       the rest (the percentage of the top unmatched symbols is listed)
# Needs perf (apt-get install linux-perf) and symbols in the release binary (the
# workspace's release profile keeps line tables).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORMSIGN=${WORMSIGN_BIN:-$TARGET/release/wormsign}
[ $# -ge 1 ] || { echo "usage: $0 CAPTURE [analyze args...]" >&2; exit 2; }
command -v perf >/dev/null || { echo "profile: perf is required" >&2; exit 2; }
CAPTURE=$1
shift
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-profile.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cat "$CAPTURE" >/dev/null
perf record -q -F 4999 -o "$WORK/perf.data" -- \
    "$WORMSIGN" analyze "$CAPTURE" --out "$WORK/out" --quiet "$@" 2>/dev/null
perf report -i "$WORK/perf.data" --no-children --sort sym --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ { pct = $1; sub("%", "", pct); $1 = ""; $2 = ""; print pct "\t" $0 }' |
    python3 -c '
import re, sys
stages = [
    ("read", r"wormsign_capture|copy_user|_copy_to_iter|filemap|ksys_read|vfs_read|xas_|folio|page_cache|workingset"),
    ("decode", r"wormsign_decode|pipeline::decode_worker"),
    ("flow table", r"wormsign_flow"),
    ("inspect", r"wormsign_inspect|memchr|memmem"),
    ("netflow", r"wormsign_netflow"),
    ("detection", r"wormsign_detect|wormsign_engine::feed|kept_flow|wormsign_columnar::read"),
    ("rows", r"wormsign_columnar|arrow_array|arrow_buffer|arrow_data|arrow_select|arrow_schema|community_id|sha1"),
    ("parquet", r"parquet::|ZSTD|zstd|HUF_|FSE_"),
    ("memory", r"malloc|free|memmove|memcpy|memset|realloc|page_fault|mm_fault|clear_page|do_anonymous|mmap|munmap|brk|_int_|alloc::|_raw_spin_unlock_irqrestore"),
    ("threads", r"crossbeam|futex|schedule|switch|rayon|syscall|entry_SYSCALL|pthread|sched_|try_to_wake"),
]
totals, other = {}, {}
for line in sys.stdin:
    pct, sym = line.rstrip("\n").split("\t", 1)
    sym = sym.strip()
    for name, pattern in stages:
        if re.search(pattern, sym):
            totals[name] = totals.get(name, 0) + float(pct)
            break
    else:
        totals["other"] = totals.get("other", 0) + float(pct)
        other[sym] = other.get(sym, 0) + float(pct)
for name in [s for s, _ in stages] + ["other"]:
    print(f"{name:<11} {totals.get(name, 0):5.1f} %")
top = sorted(other.items(), key=lambda kv: -kv[1])[:5]
print("other, largest:", "; ".join(f"{s[:60]} {p:.1f} %" for s, p in top))
'
