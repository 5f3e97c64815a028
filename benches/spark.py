"""Spark local[2] against one process on the same capture, and how the work divides when
the capture is split into 1, 2, 4 and 8 streams (benches/spark.sh runs it).

    python3 benches/spark.py CAPTURE [--rounds N] [--streams 1,2,4,8]

For each stream count the capture is cut into that many files by packet count (editcap
-c: each stream is a contiguous stretch of time, as one sensor's rotation of files would
be), then, in interleaved rounds:
  - one process: `wormsign.analyze(files, out=...)` with detection (the CLI's work);
  - Spark local[2]: `wormsign.spark.extract` (one task per stream) then
    `wormsign.spark.detect` (parts = 2 x cores).
Prints medians of wall seconds for each, Spark's overhead over one process, the split
between extraction and detection, and the alert counts (cutting one capture into
streams cuts the flows that span the cut, so they can differ from one stream's).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import wormsign
from wormsign import spark as ws

OPTIONS = dict(honeypot=["10.200.0.99"], allowlist=["10.164.1.13"])


def split(capture: str, n: int, into: str) -> list[str]:
    """The capture as `n` pcap files of about equal packet counts, in time order."""
    os.makedirs(into, exist_ok=True)
    pcap = os.path.join(into, "whole.pcap")
    if capture.endswith(".gz"):
        with gzip.open(capture) as src, open(pcap, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        shutil.copyfile(capture, pcap)
    if n == 1:
        return [pcap]
    out = subprocess.run(["capinfos", "-c", "-M", "-T", pcap], capture_output=True,
                         text=True, check=True).stdout
    packets = int(out.splitlines()[-1].split("\t")[1])
    subprocess.run(["editcap", "-c", str(-(-packets // n)), pcap, os.path.join(into, "s.pcap")],
                   check=True)
    os.remove(pcap)
    return sorted(os.path.join(into, f) for f in os.listdir(into) if f.startswith("s_"))


def timed(f):
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", default="1,2,4,8")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from pyspark.sql import SparkSession

    cores = os.cpu_count() or 2
    spark = (SparkSession.builder.master("local[2]").appName("wormsign-bench")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    work = tempfile.mkdtemp(prefix="wormsign-spark-bench.")
    try:
        counts = [int(s) for s in args.streams.split(",")]
        files = {n: split(args.capture, n, os.path.join(work, f"in-{n}")) for n in counts}
        size = sum(os.path.getsize(f) for f in files[1])
        rows = []
        for n in counts:
            single, extract, detect, alerts = [], [], [], None
            for r in range(args.rounds):
                out = os.path.join(work, f"one-{n}-{r}")
                t, run = timed(lambda: wormsign.analyze(files[n], out=out, progress=False, **OPTIONS))
                single.append(t)
                runs_dir = os.path.join(work, f"spark-{n}-{r}")
                t, runs = timed(lambda: ws.extract(spark, [[f] for f in files[n]], runs_dir))
                extract.append(t)
                t, d = timed(lambda: ws.detect(spark, [x["out"] for x in runs],
                                               parts=2 * cores, **OPTIONS))
                detect.append(t)
                alerts = (run.alerts.num_rows, d.alerts.count())
                shutil.rmtree(out)
                shutil.rmtree(runs_dir)
            m = statistics.median
            total = [e + d for e, d in zip(extract, detect)]
            rows.append((n, m(single), m(extract), m(detect), m(total), alerts))
        print(f"capture {args.capture}: {size / 1e6:.1f} MB, {args.rounds} rounds, medians, "
              f"Spark local[2] on {cores} cores")
        print("| streams | one process s | Spark extract s | Spark detect s | Spark total s "
              "| Spark / one process | MB/s on Spark | alerts one process, Spark |")
        print("|---|---|---|---|---|---|---|---|")
        for n, one, e, d, t, (a1, a2) in rows:
            print(f"| {n} | {one:.2f} | {e:.2f} | {d:.2f} | {t:.2f} | {t / one:.2f}x "
                  f"| {size / 1e6 / t:.0f} | {a1}, {a2} |")
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
