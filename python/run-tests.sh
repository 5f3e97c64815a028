#!/usr/bin/env bash
# The Python side of wormsign: installs python/requirements.txt into the current python,
# builds the release binary (unless WORMSIGN_BIN names one) and installs the `wormsign`
# package from python/ (`pip install ./python`, built by maturin), then runs python/tests:
# the package's tables against the CLI's files, the Parquet outputs read through
# pyarrow/pandas/polars/DuckDB, Hive partitioning, docs/cookbook.md and
# notebooks/investigate.ipynb, all against datasets/drivelife.
#
#   python/run-tests.sh            # from anywhere; extra arguments go to pytest
#   PYTHON=python3.12 python/run-tests.sh -k cookbook
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PY" -m pip install -q -r python/requirements.txt

if [ -z "${WORMSIGN_BIN:-}" ]; then
    bin="${CARGO_TARGET_DIR:-target}/release/wormsign"
    if command -v cargo >/dev/null 2>&1; then
        cargo build --release --quiet   # a no-op when the binary is up to date
    elif [ ! -x "$bin" ]; then
        echo "run-tests.sh: $bin missing and no cargo to build it (or set WORMSIGN_BIN)" >&2
        exit 1
    fi
fi

# The package, from this checkout (maturin comes pinned from requirements.txt; cargo
# rebuilds only what changed). Skipped with WORMSIGN_BIN and no cargo: nothing to build with.
if command -v cargo >/dev/null 2>&1; then
    PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$PY" -m pip install -q --no-build-isolation --force-reinstall --no-deps ./python
fi

export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the work tree
exec "$PY" -m pytest python/tests -q -p no:cacheprovider "$@"
