"""wormsign from Python: worm-outbreak flow analysis with tables as ``pyarrow.Table``.

>>> import wormsign
>>> run = wormsign.analyze("capture.pcap", honeypot=["10.200.0.99"])   # doctest: +SKIP
>>> run.flows.num_rows, run.alerts.num_rows                            # doctest: +SKIP
>>> import polars as pl; pl.from_arrow(run.hosts)                      # doctest: +SKIP
>>> alerts = run.alerts                                              # doctest: +SKIP
>>> import duckdb; duckdb.sql("SELECT * FROM alerts WHERE tier = 'hour'")  # doctest: +SKIP

The tables are the ones ``wormsign analyze`` writes as Parquet (``docs/schema.md``
describes every column), handed over through the Arrow C data interface: polars, DuckDB
and pandas take them without a copy or a conversion step. The engine runs without the
GIL; Ctrl-C (KeyboardInterrupt) stops a long run cleanly, leaving with ``out=`` the same
complete files of what was read that the command line leaves.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Union

import pyarrow as pa

from wormsign import _native
from wormsign._native import InputError, WormsignError

__all__ = [
    "Analysis",
    "Detection",
    "InputError",
    "WormsignError",
    "WormsignWarning",
    "analyze",
    "bench_rules",
    "detect",
    "rules",
    "synth",
]

PathLike = Union[str, "os.PathLike[str]"]
#: ``progress=``: None picks a tqdm bar when tqdm is installed and the run is interactive
#: (a terminal or a notebook), False shows nothing, True requires tqdm, and a callable is
#: called as ``progress(bytes_read, bytes_total, packets)`` about ten times a second.
Progress = Union[None, bool, Callable[[int, int, int], Any]]


class WormsignWarning(UserWarning):
    """A damaged input, a table missing for detection, or temporary files detection
    could not write or read back: the run went on without them."""


@dataclass(frozen=True)
class Detection:
    """Worm-propagation detection: the tables ``alerts``, ``hosts``, ``propagation``,
    ``timeline``, ``segmentation`` and ``remediation`` (the columns of the files of the
    same names), the responder's report as Markdown, and the detector's counters."""

    alerts: pa.Table
    hosts: pa.Table
    propagation: pa.Table
    timeline: pa.Table
    segmentation: pa.Table
    remediation: pa.Table
    report_md: str
    stats: dict

    @classmethod
    def _from(cls, d: dict) -> "Detection":
        for w in d.get("detect_warnings", []):
            warnings.warn(w, WormsignWarning, stacklevel=3)
        return cls(
            alerts=d["alerts"],
            hosts=d["hosts"],
            propagation=d["propagation"],
            timeline=d["timeline"],
            segmentation=d["segmentation"],
            remediation=d["remediation"],
            report_md=d["report_md"],
            stats=json.loads(d["detection_json"]),
        )


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyze` returns: the capture tables, the run summary (the
    ``--summary-json`` document), the warnings, and the detection unless it was turned
    off (then ``alerts``, ``hosts``, ``propagation`` and ``report_md`` are None)."""

    flows: pa.Table
    dns: pa.Table
    arp: pa.Table
    sessions: pa.Table
    names: pa.Table
    summary: dict
    warnings: list = field(default_factory=list)
    detection: Detection | None = None

    @property
    def alerts(self) -> pa.Table | None:
        return self.detection.alerts if self.detection else None

    @property
    def hosts(self) -> pa.Table | None:
        return self.detection.hosts if self.detection else None

    @property
    def propagation(self) -> pa.Table | None:
        return self.detection.propagation if self.detection else None

    @property
    def report_md(self) -> str | None:
        return self.detection.report_md if self.detection else None

    def tables(self) -> dict[str, pa.Table]:
        """Every table by name (the file names without ``.parquet``)."""
        out = {
            "flows": self.flows,
            "dns": self.dns,
            "arp": self.arp,
            "sessions": self.sessions,
            "names": self.names,
        }
        if self.detection:
            d = self.detection
            out.update(
                alerts=d.alerts,
                hosts=d.hosts,
                propagation=d.propagation,
                timeline=d.timeline,
                segmentation=d.segmentation,
                remediation=d.remediation,
            )
        return out


def _paths(paths: PathLike | Iterable[PathLike]) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _strings(values: Iterable[Any]) -> list[str]:
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values]


def _zones(zone) -> list[str]:
    """``zone`` as ``NAME=CIDR`` strings: a mapping of name to one network or a list of
    them, or ``NAME=CIDR`` strings already."""
    if isinstance(zone, Mapping):
        return [
            f"{name}={net}"
            for name, nets in zone.items()
            for net in _strings(nets)
        ]
    return _strings(zone)


def _detect_options(rules, indicators, internal, honeypot, allowlist, zone) -> dict:
    rules_file = rules_json = None
    if isinstance(rules, Mapping):
        rules_json = json.dumps(rules)
    elif rules is not None:
        rules_file = os.fspath(rules)
    return {
        "rules_file": rules_file,
        "rules_json": rules_json,
        "indicators": _paths(indicators) if indicators else [],
        "internal": _strings(internal),
        "honeypot": _strings(honeypot),
        "allowlist": _strings(allowlist),
        "zone": _zones(zone),
    }


def _interactive() -> bool:
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _progress_callback(progress: Progress):
    """The callback for the engine, and a function to close what it opened."""
    if callable(progress) and not isinstance(progress, bool):
        return progress, lambda: None
    if progress is False or (progress is None and not _interactive()):
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress is True:
            raise
        return None, lambda: None
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="wormsign")

    def update(done: int, total: int, packets: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.set_postfix(packets=packets, refresh=False)
        bar.refresh()

    return update, bar.close


def analyze(
    paths: PathLike | Iterable[PathLike],
    out: PathLike | None = None,
    *,
    threads: int | None = None,
    detect: bool = True,
    honeypot: Iterable[str] = (),
    allowlist: Iterable[str] = (),
    internal: Iterable[str] = (),
    indicators: Iterable[PathLike] = (),
    rules: PathLike | Mapping[str, Any] | None = None,
    zone: Iterable[str] | Mapping[str, Any] = (),
    max_flows: int | None = None,
    tcp_timeout: float | None = None,
    udp_timeout: float | None = None,
    icmp_timeout: float | None = None,
    active_timeout: float | None = None,
    tunnel_port: Iterable[str] = (),
    tunnel_depth: int | None = None,
    netflow_ports: Iterable[int] = (),
    inspect_port: Iterable[str] = (),
    inspect_bytes: int | None = None,
    partition_by: str | None = None,
    progress: Progress = None,
) -> Analysis:
    """Analyse captures (pcap or pcapng, gzip or zstd; directories are searched) and
    Zeek or Suricata logs (``conn.log``, ``dns.log``, ``eve.json``) as ``wormsign
    analyze`` does, and detect worm propagation unless ``detect=False``.

    Without ``out`` the tables stay in memory; with ``out`` the same files as the command
    line are written there too (``partition_by`` needs ``out``), and detection reads the
    whole directory as ``wormsign analyze`` does. Options left as None take the command
    line's defaults; ``inspect_port`` takes ``"tds=14330"``-style extra ports and
    ``tunnel_port`` ``"vxlan=8472"``-style ones (``tunnel_depth=0`` unwraps no tunnel); ``rules`` is
    a rules file or a dict shaped like :func:`rules`; ``zone`` names networks for the
    segmentation check (``{"branch": "10.164.0.0/16"}`` or ``["branch=10.164.0.0/16"]``).

    A damaged input is a :class:`WormsignWarning` and its readable part is analysed; if
    no input can be read at all, :class:`InputError` names each file and the byte offset
    of the damage.
    """
    options = {
        "threads": threads,
        "max_flows": max_flows,
        "tcp_timeout": tcp_timeout,
        "udp_timeout": udp_timeout,
        "icmp_timeout": icmp_timeout,
        "active_timeout": active_timeout,
        "tunnel_ports": _strings(tunnel_port),
        "tunnel_depth": tunnel_depth,
        "netflow_ports": [int(p) for p in netflow_ports],
        "inspect_ports": _strings(inspect_port),
        "inspect_bytes": inspect_bytes,
        "partition_by": partition_by,
    }
    detect_options = (
        _detect_options(rules, indicators, internal, honeypot, allowlist, zone) if detect else None
    )
    callback, close = _progress_callback(progress)
    try:
        r = _native.analyze_paths(
            _paths(paths),
            None if out is None else os.fspath(out),
            options,
            detect_options,
            callback,
        )
    finally:
        close()
    for input_name, offset, message in r["warnings"]:
        warnings.warn(f"{input_name}: {message}", WormsignWarning, stacklevel=2)
    return Analysis(
        flows=r["flows"],
        dns=r["dns"],
        arp=r["arp"],
        sessions=r["sessions"],
        names=r["names"],
        summary=json.loads(r["summary_json"]),
        warnings=list(r["warnings"]),
        detection=Detection._from(r) if detect else None,
    )


def detect(
    source: PathLike | Analysis | Mapping[str, Any],
    out: PathLike | None = None,
    *,
    honeypot: Iterable[str] = (),
    allowlist: Iterable[str] = (),
    internal: Iterable[str] = (),
    indicators: Iterable[PathLike] = (),
    rules: PathLike | Mapping[str, Any] | None = None,
    zone: Iterable[str] | Mapping[str, Any] = (),
) -> Detection:
    """Detect worm propagation over stored tables (a directory written by
    ``wormsign analyze`` or :func:`analyze` with ``out``), an :class:`Analysis`, or
    tables by name (``flows`` required; pyarrow, polars or anything with
    ``__arrow_c_stream__``). With ``out``, also write the detection files there.
    """
    options = _detect_options(rules, indicators, internal, honeypot, allowlist, zone)
    out = None if out is None else os.fspath(out)
    if isinstance(source, (str, os.PathLike)):
        return Detection._from(_native.detect_stored(os.fspath(source), out, options))
    tables = source.tables() if isinstance(source, Analysis) else dict(source)
    return Detection._from(_native.detect_in_memory(tables, out, options))


def synth(
    scenario: str,
    out: PathLike,
    *,
    seed: int = 1,
    scale: float = 1.0,
    capture_start: int = 0,
    netflow: str | None = None,
) -> dict:
    """Write a labelled synthetic outbreak (``drivelife``, ``wannacry``, ``stealthy`` or
    ``benign``) into ``out``: ``capture.pcap``, ``labels.json``, ``flow_labels.csv``, and
    with ``netflow`` (``v5``, ``v9`` or ``ipfix``) ``netflow.pcap``. The same seed and
    scale give byte-identical files. Returns the counts and the file paths."""
    counts = _native.synth(scenario, seed, os.fspath(out), scale, capture_start, netflow)
    base = Path(out)
    counts["capture"] = base / "capture.pcap"
    counts["labels"] = base / "labels.json"
    counts["flow_labels"] = base / "flow_labels.csv"
    return counts


def bench_rules(
    paths: PathLike | Iterable[PathLike],
    labels: PathLike,
    *,
    rules: Iterable[PathLike] = (),
    sweep: Iterable[str] = (),
    threads: int | None = None,
) -> pa.Table:
    """Score detection rule sets against labelled ground truth, as
    ``wormsign bench-rules`` does: ``paths`` are captures (analysed once, in memory) or one
    directory ``analyze`` wrote; ``labels`` the ``labels.json`` of :func:`synth`; ``rules``
    rules files to compare (none: the built-in rules); ``sweep`` settings to vary,
    ``"SECTION.KEY=FROM..TO:STEP"`` or ``"SECTION.KEY=A,B,C"`` (several: every
    combination). One row per rule set and sweep point, the columns of
    ``bench_rules.parquet`` (precision, recall, F1, patient zero, edges, time to
    detection, false alarms, detection time)."""
    return _native.bench_rules(
        _paths(paths), os.fspath(labels), _paths(rules) if rules else [], list(sweep), threads
    )


def rules() -> dict:
    """The built-in detection rules as a dict (what ``wormsign rules`` prints as TOML):
    change a value and pass it back as ``rules=``."""
    return tomllib.loads(_native.rules_toml())
