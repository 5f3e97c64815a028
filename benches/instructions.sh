#!/usr/bin/env bash
# Instructions that `wormsign analyze` executes, counted by valgrind's callgrind on the
# first packets of each capture given: a measure that does not drift with this VM's
# speed. Wall and CPU time move by 10-30 % from one minute to the next here, more than
# most single changes gain; the instruction count of a run on one thread is the same
# from run to run, so a change of 1 % shows. It is not time (a cache miss costs more
# than an add, and callgrind runs SHA-1 without the CPU's SHA extensions), so confirm a
# gain it shows with interleaved timed runs, e.g. benches/shapes.sh.
#
#   benches/instructions.sh target/bench-data/shape-dns-1000000.pcap
#   WORMSIGN_INSN_BASE=/tmp/wormsign-before benches/instructions.sh target/bench-data/*.pcap
#
# benches/shapes.sh makes the shapes' captures in target/bench-data.
#
# Environment:
#   WORMSIGN_INSN_PACKETS   packets taken from the start of each capture (default 100000)
#   WORMSIGN_INSN_BASE      another wormsign binary to count beside this checkout's, for
#                           the change between them
#   WORMSIGN_INSN_DETECT=1  run detection too (default: --no-detect)
#   WORMSIGN_INSN_DETECT=share  count this checkout's binary both ways and add two
#                           columns: M instructions with detection, and detection's
#                           share (% over the --no-detect count). benches/shapes.sh
#                           reports detection's share of wall time on two threads, the
#                           difference of two noisy medians (the ipv6 shape's was 6.3 %
#                           in one run, 10.4 % in the next); this counts the work.
#                           Writing detection's outputs costs about the same for a slice
#                           as for the whole capture, so a slice overstates the share:
#                           23 % on the scan shape's first 100 000 packets, 14.7 % on
#                           all of its 1 000 000
#   WORMSIGN_BENCH_SKIP_BUILD=1  use the binary already built
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKETS=${WORMSIGN_INSN_PACKETS:-100000}
BASE=${WORMSIGN_INSN_BASE:-}
NAME=instructions
[ $# -gt 0 ] || { echo "usage: benches/instructions.sh CAPTURE..." >&2; exit 2; }
for tool in valgrind tcpdump capinfos; do
    command -v $tool >/dev/null || { echo "instructions: $tool is required (apt-get install valgrind; tests/install-tools.sh installs the others)" >&2; exit 2; }
done
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
MODE=${WORMSIGN_INSN_DETECT:-0}
SHARE=
case $MODE in
    0) DETECT=(--no-detect) ;;
    share) DETECT=(--no-detect) SHARE=1 ;;
    1) DETECT=() ;;
    *) echo "instructions: WORMSIGN_INSN_DETECT is 0, 1 or share, not '$MODE'" >&2; exit 2 ;;
esac
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormsign-instructions.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# count BINARY CAPTURE [ANALYZE OPTION...] -> instructions (one pipeline thread, so
# the count hardly depends on how the threads were scheduled: detection still sorts and
# runs its parts on rayon's pool, yet repeated counts agree to 0.1 %)
count() {
    local binary=$1 capture=$2
    shift 2
    rm -rf "$WORK/out"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
        "$binary" analyze "$capture" --out "$WORK/out" --quiet --threads 1 "$@" \
        2>"$WORK/valgrind.log" >/dev/null ||
        { echo "instructions: $binary failed on $capture" >&2; tail -5 "$WORK/valgrind.log" >&2; exit 1; }
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/valgrind.log"
}

# change NEW OLD -> "+1.2 %"
change() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f %%", 100 * (a - b) / b }'
}

echo "| capture | packets | instructions/packet | M instructions |${BASE:+ base M instructions | change |}${SHARE:+ with detection M | detection share |}"
echo "|---|---|---|---|${BASE:+---|---|}${SHARE:+---|---|}"
for capture in "$@"; do
    slice=$WORK/slice.pcap
    tcpdump -r "$capture" -c "$PACKETS" -w "$slice" 2>/dev/null
    packets=$(capinfos -M -c "$slice" | awk '/Number of packets/ { print $NF }')
    this=$(count "$WORMSIGN" "$slice" "${DETECT[@]}")
    row="| $(basename "$capture") | $packets | $((this / packets)) | $((this / 1000000)) |"
    if [ -n "$BASE" ]; then
        base=$(count "$BASE" "$slice" "${DETECT[@]}")
        row+=" $((base / 1000000)) | $(change "$this" "$base") |"
    fi
    if [ -n "$SHARE" ]; then
        detected=$(count "$WORMSIGN" "$slice")
        row+=" $((detected / 1000000)) | $(change "$detected" "$this") |"
    fi
    echo "$row"
done
