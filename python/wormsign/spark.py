"""wormsign on Apache Spark: extraction per sensor stream, detection in parts.

>>> from pyspark.sql import SparkSession                                   # doctest: +SKIP
>>> from wormsign import spark as ws                                       # doctest: +SKIP
>>> spark = SparkSession.builder.master("local[2]").getOrCreate()          # doctest: +SKIP
>>> runs = ws.extract(spark, [["a1.pcap", "a2.pcap"], ["b.pcap"]], "/data/runs")  # doctest: +SKIP
>>> d = ws.detect(spark, [r["out"] for r in runs], honeypot=["10.200.0.99"])     # doctest: +SKIP
>>> d.alerts.where("tier = 'hour'").show()                                # doctest: +SKIP

Extraction runs :func:`wormsign.analyze` once per stream (a list of capture files read in
order, as one sensor wrote them), in one Spark task each, into ``out/stream-NNNN``:
file names depend only on the stream's position, and every file is written under a
temporary name and renamed when complete, so a retried or speculative task leaves the
same files. NetFlow directories written by ``wormsign collect`` need no extraction.

Detection reads the runs' flows with Spark, tags each flow some rule can use (usually
well under 1 % of them) with the parts of the detection that own it (its source's part,
and its responder's when that is another), shuffles only those by part, runs each part
in Rust where it lands, and finishes on the driver from every part's findings (run-wide rules, alert numbering, the propagation graph,
patient zero). Flows cross between Spark and Rust only as Arrow batches, and no task
holds more than the flows any rule can use of the parts it was dealt. The result equals
``wormsign detect`` over the same runs while no part reaches a cap
(``stats["sources_evicted"]`` and ``stats["entries_refused"]`` stay 0);
``docs/distributed.md`` says how to run it on a cluster.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

import wormsign
from wormsign import _native

__all__ = ["SparkDetection", "detect", "extract"]


def extract(
    spark, streams: Iterable[Iterable[wormsign.PathLike]], out: wormsign.PathLike, **options: Any
) -> list[dict]:
    """Analyse each stream (a list of captures read in order) in a Spark task of its own,
    into ``out/stream-NNNN`` (Parquet, as ``wormsign analyze --no-detect`` writes).
    ``options`` are :func:`wormsign.analyze`'s (``detect`` excepted). Returns, per
    stream in order, ``{"stream", "out", "summary", "warnings"}``; a damaged file is a
    warning there, as on one machine."""
    if "detect" in options:
        raise TypeError("extract(): detection runs in detect(), not per stream")
    streams = [[os.fspath(p) for p in s] for s in streams]
    out = os.path.abspath(os.fspath(out))

    def run(item: tuple[int, list[str]]) -> str:
        import warnings as w

        i, paths = item
        target = os.path.join(out, f"stream-{i:04d}")
        with w.catch_warnings():
            w.simplefilter("ignore", wormsign.WormsignWarning)
            a = wormsign.analyze(paths, out=target, detect=False, progress=False, **options)
        found = [f"{name}: {message}" for name, _, message in a.warnings]
        return json.dumps({"stream": i, "out": target, "summary": a.summary, "warnings": found})

    tasks = spark.sparkContext.parallelize(list(enumerate(streams)), max(len(streams), 1))
    return [json.loads(r) for r in tasks.map(run).collect()]


@dataclass(frozen=True)
class SparkDetection:
    """What :func:`detect` returns: the detection tables as Spark DataFrames (``alerts``,
    ``hosts``, ``propagation``, ``timeline``, ``segmentation``, ``remediation``), the
    same as ``pyarrow.Table`` in ``tables``, the report, the counters and warnings."""

    alerts: Any
    hosts: Any
    propagation: Any
    timeline: Any
    segmentation: Any
    remediation: Any
    tables: dict[str, pa.Table]
    report_md: str
    stats: dict
    warnings: list[str]


_TABLES = ("alerts", "hosts", "propagation", "timeline", "segmentation", "remediation")


def detect(
    spark,
    runs: Iterable[wormsign.PathLike],
    out: wormsign.PathLike | None = None,
    *,
    parts: int | None = None,
    honeypot: Iterable[str] = (),
    allowlist: Iterable[str] = (),
    internal: Iterable[str] = (),
    indicators: Iterable[wormsign.PathLike] = (),
    rules: wormsign.PathLike | Any = None,
    zone: Iterable[str] | Any = (),
) -> SparkDetection:
    """Detect worm propagation over stored runs (directories ``wormsign analyze``,
    :func:`wormsign.analyze` with ``out``, :func:`extract` or ``wormsign collect`` wrote)
    on Spark, in ``parts`` parts (default: the session's default parallelism). The
    options are :func:`wormsign.detect`'s; with ``out``, the detection files are written
    there too (on the driver)."""
    dirs = [os.path.abspath(os.fspath(r)) for r in runs]
    options = wormsign._detect_options(rules, indicators, internal, honeypot, allowlist, zone)
    k = int(parts or spark.sparkContext.defaultParallelism)
    files = [os.fspath(f) for f in _native.flow_files(dirs)]
    if not files:
        raise FileNotFoundError(f"no flows.parquet or flows/ directory in {dirs}")
    # Only the columns detection reads: the widest (community_id) is never decoded. Those
    # a table lacks are left out as the Rust reader leaves them (tables written before
    # tunnels were unwrapped have no tunnel columns).
    flows = spark.read.parquet(*files)
    flows = flows.select(*[c for c in _native.detection_flow_columns() if c in flows.columns])
    from pyspark.sql.types import IntegerType, StructField, StructType

    # A new schema: StructType.add would change the DataFrame's own.
    tagged_schema = StructType(flows.schema.fields + [StructField("part", IntegerType(), False)])

    def tag(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        tagger = _native.PartRunner(k, dirs, options, tagging=True)
        for b in batches:
            yield tagger.tag(b)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        runner = _native.PartRunner(k, dirs, options)
        for b in batches:
            runner.push(b)
        found = runner.finish()
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([p for p, _ in found], pa.int32()),
                pa.array([bytes(f) for _, f in found], pa.binary()),
            ],
            names=["part", "found"],
        )

    # By range, not by hash: k part numbers hashed into k partitions collide, leaving
    # some tasks two parts and others none.
    found = (
        flows.mapInArrow(tag, tagged_schema)
        .repartitionByRange(k, "part")
        .mapInArrow(run, "part int, found binary")
        .collect()
    )
    found = [bytes(row.found) for row in sorted(found, key=lambda r: r.part)]
    n_flows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    r = _native.merge_parts(
        found, dirs, options, k, n_flows, None if out is None else os.fspath(out)
    )
    d = wormsign.Detection._from(r)
    tables = {name: getattr(d, name) for name in _TABLES}
    frames = {name: _frame(spark, t) for name, t in tables.items()}
    return SparkDetection(
        **frames,
        tables=tables,
        report_md=d.report_md,
        stats=d.stats,
        warnings=list(r.get("detect_warnings", [])),
    )


def _frame(spark, table: pa.Table):
    """A Spark DataFrame of a detection table (dictionary columns as plain strings)."""
    plain = table.cast(
        pa.schema(
            [
                pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                for f in table.schema
            ]
        )
    )
    return spark.createDataFrame(plain)
