"""Shared fixtures: the wormsign binary and one sample analysis per test session.

The binary is `$WORMSIGN_BIN`, else `$CARGO_TARGET_DIR/release/wormsign`, else
`target/release/wormsign` in the repository; when it is missing it is built with
`cargo build --release`. The sample analysis is the README's first command (the DriveLife
outbreak, with its honeypot and authorized scanner), run once into a temporary directory.

Under CI (the `CI` environment variable set, as `.ci/run` does) a skipped test or module
fails instead: a skip there means a check did not run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"
DRIVELIFE = DATASETS / "drivelife" / "capture.pcap.gz"
DRIVELIFE_LABELS = DATASETS / "drivelife" / "labels.json"
BENIGN = DATASETS / "benign" / "capture.pcap.gz"
README_ARGS = [
    "--honeypot", "10.200.0.99", "--allowlist", "10.164.1.13",
    "--zone", "branch=10.164.0.0/16", "--zone", "hq-dc=10.210.0.0/16",
]
INDICATORS = REPO / "crates" / "wormsign-detect" / "indicators" / "drivelife.txt"

TABLES = ["flows", "dns", "arp", "alerts", "hosts", "propagation"]


def binary_path() -> Path:
    if os.environ.get("WORMSIGN_BIN"):
        return Path(os.environ["WORMSIGN_BIN"]).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "release" / "wormsign"


def run_analyze(binary: Path, inputs, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(binary), "analyze", *[str(i) for i in inputs], "--out", str(out), "--quiet", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def wormsign_bin() -> Path:
    path = binary_path()
    if not path.exists():
        if os.environ.get("WORMSIGN_BIN"):
            pytest.fail(f"WORMSIGN_BIN={path} does not exist")
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    assert path.exists(), f"{path} missing after cargo build --release"
    return path


@pytest.fixture(scope="session")
def sample_out(wormsign_bin, tmp_path_factory) -> Path:
    """The README's first command, run once: out/drivelife in a temporary directory."""
    out = tmp_path_factory.mktemp("drivelife")
    run_analyze(wormsign_bin, [DRIVELIFE], out, *README_ARGS)
    for t in TABLES:
        assert (out / f"{t}.parquet").is_file(), f"{t}.parquet not written"
    return out


@pytest.fixture(scope="session")
def labels() -> dict:
    return json.loads(DRIVELIFE_LABELS.read_text())


@pytest.fixture(scope="session")
def indicators() -> list[str]:
    """The shipped C&C domain list (crates/wormsign-detect/indicators/drivelife.txt)."""
    lines = [l.strip() for l in INDICATORS.read_text().splitlines()]
    return [l for l in lines if l and not l.startswith("#")]


def analyze_help(binary: Path) -> str:
    proc = subprocess.run([str(binary), "analyze", "--help"], capture_output=True, text=True)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def partition_support(wormsign_bin) -> None:
    """Fails unless this binary's `analyze --help` lists `--partition-by` (README documents
    it: a binary without it is out of date or broken, not a reason to skip)."""
    assert re.search(r"--partition-by\b", analyze_help(wormsign_bin)), (
        f"{wormsign_bin} analyze --help does not list --partition-by: rebuild it "
        "(cargo build --release) or point WORMSIGN_BIN at a current binary")


def _under_ci() -> bool:
    return bool(os.environ.get("CI"))


def _skip_reason(longrepr) -> str:
    # A skip's longrepr is (file, line, "Skipped: reason").
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skipped test (skip, skipif, importorskip, a skipping fixture) fails."""
    rep = yield
    if _under_ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = (f"{item.nodeid} was skipped, and CI is set, so it fails: "
                        f"{_skip_reason(rep.longrepr)}")
    return rep


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Under CI, a module that skips itself at import (e.g. importorskip) fails."""
    rep = yield
    if _under_ci() and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = (f"{collector.nodeid} was skipped at collection, and CI is set, "
                        f"so it fails: {_skip_reason(rep.longrepr)}")
    return rep
