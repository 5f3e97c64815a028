#!/usr/bin/env bash
# Fuzzes wormsign's parsers with libFuzzer (cargo-fuzz) and fails on any crash,
# timeout or out-of-memory.
#
#   fuzz/run.sh                              # every target, 60 s each
#   WORMSIGN_FUZZ_SECONDS=600 fuzz/run.sh decode
#
# Environment:
#   WORMSIGN_FUZZ_SECONDS    seconds per target (default 60)
#   WORMSIGN_FUZZ_TOOLCHAIN  "nightly" or "stable"; default: nightly when rustup has
#                            one, else stable with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs
#                            -Z flags; CI may have no nightly)
#   WORMSIGN_FUZZ_ARGS       extra libFuzzer flags, after ours (e.g. -jobs=2)
#
# Seeds come from the repo's datasets and, when present, ../shared/captures; they and
# everything the fuzzer adds live in fuzz/corpus/<target> (not committed). The small
# committed seeds in fuzz/seeds/<target> are read too. Crashing inputs are written to
# fuzz/artifacts/<target>/; logs to fuzz/artifacts/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${WORMSIGN_FUZZ_SECONDS:-60}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(capture decode dns netflow inspect logs findings)

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

toolchain=${WORMSIGN_FUZZ_TOOLCHAIN:-}
if [[ -z $toolchain ]]; then
  if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
    toolchain=nightly
  else
    toolchain=stable
  fi
fi
case $toolchain in
  nightly) fuzz=(cargo +nightly fuzz) ;;
  # Lets stable rustc accept the -Z sanitizer/coverage flags cargo-fuzz passes.
  stable) fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz) ;;
  *) echo "WORMSIGN_FUZZ_TOOLCHAIN must be nightly or stable, not '$toolchain'" >&2; exit 2 ;;
esac
echo "fuzz: $toolchain toolchain, $(if [[ $toolchain == nightly ]]; then rustc +nightly --version; else rustc --version; fi)"

mkdir -p fuzz/artifacts/logs
# Optimised, with debug assertions and overflow checks (cargo-fuzz's default) and ASan.
# The same flags for build and run, so `run` does not rebuild.
build_flags=(--release --debug-assertions)
for t in "${targets[@]}"; do
  if ! "${fuzz[@]}" build "${build_flags[@]}" "$t" >fuzz/artifacts/logs/build.log 2>&1; then
    tail -n 40 fuzz/artifacts/logs/build.log >&2
    echo "fuzz: building $t failed" >&2
    exit 1
  fi
done

# Seed corpora (seedgen names seeds by content hash, so reruns add nothing twice).
cargo build --release --quiet --manifest-path fuzz/Cargo.toml -p wormsign-fuzz-seedgen
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path fuzz/Cargo.toml |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
inputs=(datasets/*/capture.pcap.gz datasets/sample.pcap.gz)
if [[ -d ../shared/captures ]]; then
  inputs+=(../shared/captures)
else
  echo "fuzz: ../shared/captures absent; seeding from datasets/ and fuzz/seeds only"
fi
"$target_dir/release/wormsign-fuzz-seedgen" fuzz/corpus "${inputs[@]}"

# Largest input per target: a capture or a NetFlow sequence needs room for several
# records; a frame up to a 64 KiB jumbo (room for 10 000 VLAN tags).
max_len() {
  case $1 in
    capture | netflow) echo 131072 ;;
    *) echo 65536 ;;
  esac
}

failed=0
rows=()
for t in "${targets[@]}"; do
  log=fuzz/artifacts/logs/$t.log
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
  echo "fuzz: $t for ${seconds}s (log: $log)"
  status=ok
  "${fuzz[@]}" run "${build_flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")" \
    -print_final_stats=1 ${WORMSIGN_FUZZ_ARGS:-} >"$log" 2>&1 || status=FAILED
  # libFuzzer's final stats; a crash may end the run before them, then its last status line.
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' ||
    grep -oE '^Done [0-9]+ runs' "$log" | tail -n 1 | grep -oE '[0-9]+' ||
    grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || echo '?')
  if [[ $status != ok ]]; then
    failed=1
    grep -E 'ERROR: libFuzzer|==ERROR|panicked at|Test unit written to' "$log" | head -n 5 >&2 || true
  fi
  rows+=("$(printf '%-8s %-7s %14s %8s' "$t" "$status" "$execs" "$(find "fuzz/corpus/$t" -type f | wc -l)")")
done

echo
printf '%-8s %-7s %14s %8s\n' target result executions corpus
printf '%s\n' "${rows[@]}"
if [[ $failed != 0 ]]; then
  echo "fuzz: failures; crashing inputs are in fuzz/artifacts/<target>/ (reproduce with: cargo +nightly fuzz run <target> <file>)" >&2
  exit 1
fi
