# Sourced by benches/e2e.sh and benches/synflood.sh after they set ROOT and NAME:
# checks for GNU time (peak RSS and CPU time), builds the release binaries unless
# WORMSIGN_BENCH_SKIP_BUILD=1, and sets TIME, WORMSIGN, GEN and WRAP.
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "$NAME: $TIME (GNU time) is required" >&2; exit 2; }
if [ "${WORMSIGN_BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet --bin wormsign --example gen_capture --example tunnel_wrap)
fi
WORMSIGN=$TARGET/release/wormsign
GEN=$TARGET/release/examples/gen_capture
WRAP=$TARGET/release/examples/tunnel_wrap
