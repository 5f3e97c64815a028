#!/usr/bin/env bash
# The Python side of wormsign: installs python/requirements.txt into the current python,
# builds the release binary (unless WORMSIGN_BIN names one), then runs python/tests:
# the Parquet outputs read through pyarrow/pandas/polars/DuckDB, Hive partitioning,
# docs/cookbook.md and notebooks/investigate.ipynb, all against datasets/drivelife.
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

export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the work tree
exec "$PY" -m pytest python/tests -q -p no:cacheprovider "$@"
