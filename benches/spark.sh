#!/usr/bin/env bash
# wormsign on Spark local[2] against one process on the same capture, with the capture
# split into 1, 2, 4 and 8 streams (benches/spark.py says what is measured).
#
#   benches/spark.sh                 # the DriveLife outbreak at --scale 20 (about 100 MB)
#   WORMSIGN_SPARK_SCALE=50 WORMSIGN_SPARK_ROUNDS=5 benches/spark.sh
#
# Needs Java, pyspark and the wormsign package (python/run-tests.sh installs them), and
# editcap/capinfos (tests/install-tools.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=spark
SCALE=${WORMSIGN_SPARK_SCALE:-20}
ROUNDS=${WORMSIGN_SPARK_ROUNDS:-3}
DATA=${WORMSIGN_BENCH_DATA:-$ROOT/target/bench-data}
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
for tool in java editcap capinfos; do
    command -v $tool >/dev/null || { echo "spark: $tool is required (tests/install-tools.sh installs it)" >&2; exit 2; }
done
"${PYTHON:-python3}" -c 'import pyspark, wormsign.spark' 2>/dev/null ||
    { echo "spark: pyspark and the wormsign package are required (python/run-tests.sh installs them)" >&2; exit 2; }
capture=$DATA/drivelife-scale$SCALE/capture.pcap
if [ ! -s "$capture" ]; then
    "$WORMSIGN" synth --scenario drivelife --seed 1 --scale "$SCALE" --out "$DATA/drivelife-scale$SCALE" --quiet
fi
exec "${PYTHON:-python3}" "$ROOT/benches/spark.py" "$capture" --rounds "$ROUNDS" \
    --streams "${WORMSIGN_SPARK_STREAMS:-1,2,4,8}"
