"""`wormsign analyze --partition-by day|hour`: Hive-partitioned flows.

Layout: `OUT/flows/day=YYYY-MM-DD/part-<16 hex>-<n>.parquet` (day) or
`OUT/flows/day=YYYY-MM-DD/hour=HH/part-<16 hex>-<n>.parquet` (hour), by the flow's `ts`
in UTC, and no `OUT/flows.parquet`. Runs over different inputs into the same OUT add
files to one table. The detection tables stay single files. dns and arp may be either
single files or partitioned the same way (the binary's help says it partitions them too);
when partitioned they get the same checks as flows.

Skipped while the binary's `analyze --help` does not list `--partition-by`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import BENIGN, DRIVELIFE, README_ARGS, run_analyze
from pcapgen import write_spanning_pcap

MODES = ["day", "hour"]
PART_TABLES = ["flows", "dns", "arp"]
PART_RE = {
    "day": re.compile(r"^day=(\d{4}-\d{2}-\d{2})/part-[0-9a-f]{16}-\d+\.parquet$"),
    "hour": re.compile(r"^day=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/part-[0-9a-f]{16}-\d+\.parquet$"),
}
UTC = dt.timezone.utc


@pytest.fixture(scope="session")
def spanning_pcap(tmp_path_factory) -> Path:
    """Flows on both sides of hour and midnight boundaries, over three days."""
    p = tmp_path_factory.mktemp("spanning") / "spanning.pcap"
    write_spanning_pcap(p)
    return p


@pytest.fixture(scope="session")
def inputs(spanning_pcap):
    return {"drivelife": DRIVELIFE, "benign": BENIGN, "spanning": spanning_pcap}


@pytest.fixture(scope="session")
def baseline(baseline_all):
    """Unpartitioned flows of each input: name -> pyarrow Table (dns, arp: name -> table ->
    Table in `baseline_all`)."""
    return {name: t["flows"] for name, t in baseline_all.items()}


@pytest.fixture(scope="session")
def baseline_all(partition_support, wormsign_bin, inputs, tmp_path_factory):
    tables = {}
    for name, inp in inputs.items():
        out = tmp_path_factory.mktemp(f"flat-{name}")
        run_analyze(wormsign_bin, [inp], out, "--no-detect")
        assert not (out / "flows").exists()
        tables[name] = {t: pq.read_table(out / f"{t}.parquet") for t in PART_TABLES}
    return tables


@pytest.fixture(scope="session")
def run_partitioned(partition_support, wormsign_bin, inputs, tmp_path_factory):
    """(mode, names) -> OUT: each named input analysed in turn into the same OUT."""
    cache = {}

    def run(mode: str, names: tuple[str, ...]) -> Path:
        key = (mode, names)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"part-{mode}-{'-'.join(names)}")
            for name in names:
                extra = README_ARGS if name == "drivelife" else ["--no-detect"]
                run_analyze(wormsign_bin, [inputs[name]], out, "--partition-by", mode, *extra)
            cache[key] = out
        return cache[key]

    return run


def layout(out: Path, table: str) -> str | None:
    """'hive' (OUT/table/ directory), 'flat' (OUT/table.parquet) or None; never both."""
    hive, flat = (out / table).is_dir(), (out / f"{table}.parquet").exists()
    assert not (hive and flat), f"both {table}/ and {table}.parquet in {out}"
    return "hive" if hive else "flat" if flat else None


def part_files(out: Path, mode: str, table: str = "flows") -> list[tuple[Path, str, int | None]]:
    """Every file under OUT/table: (path, day, hour), checking the layout."""
    root = out / table
    assert root.is_dir(), f"{root} missing"
    found = []
    for p in sorted(root.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(root).as_posix()
        m = PART_RE[mode].match(rel)
        assert m, f"unexpected file in the {mode} layout: {table}/{rel}"
        found.append((p, m.group(1), int(m.group(2)) if mode == "hour" else None))
    assert found, "no partition files"
    return found


def glob(out: Path, table: str = "flows") -> str:
    return (out / table / "**" / "*.parquet").as_posix()


def duck():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def expected_partitions(table: pa.Table, mode: str) -> set:
    ts = [t.astimezone(UTC) for t in table["ts"].to_pylist()]
    if mode == "day":
        return {(t.strftime("%Y-%m-%d"), None) for t in ts}
    return {(t.strftime("%Y-%m-%d"), t.hour) for t in ts}


def check_rows_in_partitions(out: Path, mode: str, table: str = "flows") -> int:
    """Every row's ts (UTC) lies in the day/hour its file's path names; returns rows."""
    n = 0
    for p, day, hour in part_files(out, mode, table):
        t = pq.read_table(p)
        assert t.schema.field("ts").type == pa.timestamp("us", tz="UTC"), p
        for ts in t["ts"].to_pylist():
            ts = ts.astimezone(UTC)
            assert ts.strftime("%Y-%m-%d") == day, (p, ts)
            if hour is not None:
                assert ts.hour == hour, (p, ts)
        n += t.num_rows
    return n


# ------------------------------------------------------------------ layout


@pytest.mark.parametrize("mode", MODES)
def test_layout_and_other_tables(run_partitioned, sample_out, mode):
    out = run_partitioned(mode, ("drivelife",))
    assert not (out / "flows.parquet").exists(), "flows.parquet written beside flows/"
    files = part_files(out, mode)
    assert {d for _, d, _ in files} == {"2024-03-04"}
    if mode == "hour":
        assert {h for _, _, h in files} == {9}
    # the detection tables are unchanged: same files, same rows as the unpartitioned run
    for t in ["alerts", "hosts", "propagation"]:
        got = pq.read_table(out / f"{t}.parquet")
        want = pq.read_table(sample_out / f"{t}.parquet")
        assert got.schema.remove_metadata() == want.schema.remove_metadata(), t
        assert got.num_rows == want.num_rows, t
    hosts = pl.read_parquet(out / "hosts.parquet").filter(pl.col("role") == "patient_zero")
    assert hosts["ip"].to_list() == ["10.164.1.8"]


@pytest.mark.parametrize("mode", MODES)
def test_partition_files_have_flows_schema(run_partitioned, baseline, mode):
    out = run_partitioned(mode, ("drivelife",))
    want = baseline["drivelife"].schema.remove_metadata()
    for p, _, _ in part_files(out, mode):
        got = pq.read_schema(p).remove_metadata()
        assert got == want, p


# ------------------------------------------------------------------ row counts


@pytest.mark.parametrize("mode", MODES)
def test_duckdb_hive_reads_all_rows(run_partitioned, baseline, mode):
    out = run_partitioned(mode, ("drivelife",))
    con = duck()
    rel = f"read_parquet('{glob(out)}', hive_partitioning=true)"
    n = con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
    assert n == baseline["drivelife"].num_rows
    cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
    assert cols["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert "day" in cols and (mode == "day" or "hour" in cols)
    # partition pruning works on the hive column
    n_day = con.execute(f"SELECT count(*) FROM {rel} WHERE day = '2024-03-04'").fetchone()[0]
    assert n_day == n
    # the same answer as the flat file
    flat = baseline["drivelife"]
    got = con.execute(f"SELECT count(DISTINCT resp_h) FROM {rel} WHERE orig_h = '10.164.1.8' AND resp_p = 445").fetchone()[0]
    want = len({r for o, r, p in zip(flat["orig_h"].to_pylist(), flat["resp_h"].to_pylist(),
                                      flat["resp_p"].to_pylist()) if o == "10.164.1.8" and p == 445})
    assert got == want > 0


@pytest.mark.parametrize("mode", MODES)
def test_pyarrow_dataset_reads_all_rows(run_partitioned, baseline, mode):
    out = run_partitioned(mode, ("drivelife",))
    d = ds.dataset(out / "flows", format="parquet", partitioning="hive")
    t = d.to_table()
    assert t.num_rows == baseline["drivelife"].num_rows
    assert t.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert "day" in t.schema.names and (mode == "day" or "hour" in t.schema.names)


@pytest.mark.parametrize("mode", MODES)
def test_polars_hive_reads_all_rows(run_partitioned, baseline, mode):
    out = run_partitioned(mode, ("drivelife",))
    lf = pl.scan_parquet(glob(out), hive_partitioning=True)
    assert lf.select(pl.len()).collect().item() == baseline["drivelife"].num_rows
    assert lf.collect_schema()["ts"] == pl.Datetime("us", "UTC")


# ------------------------------------------------------------------ ts in its partition


@pytest.mark.parametrize("mode", MODES)
def test_rows_in_their_partition_drivelife(run_partitioned, baseline, mode):
    out = run_partitioned(mode, ("drivelife",))
    assert check_rows_in_partitions(out, mode) == baseline["drivelife"].num_rows


@pytest.mark.parametrize("mode", MODES)
def test_rows_in_their_partition_across_boundaries(run_partitioned, baseline, mode):
    out = run_partitioned(mode, ("spanning",))
    flat = baseline["spanning"]
    assert check_rows_in_partitions(out, mode) == flat.num_rows
    got = {(d, h) for _, d, h in part_files(out, mode)}
    want = expected_partitions(flat, mode)
    assert got == want
    assert len(want) >= (3 if mode == "day" else 6)
    # the same check through the readers' hive columns
    con = duck()
    rel = f"read_parquet('{glob(out)}', hive_partitioning=true)"
    cond = "strftime(ts, '%Y-%m-%d') <> CAST(day AS VARCHAR)"
    if mode == "hour":
        cond += " OR hour(ts) <> CAST(hour AS INTEGER)"
    assert con.execute(f"SELECT count(*) FROM {rel} WHERE {cond}").fetchone()[0] == 0
    t = ds.dataset(out / "flows", format="parquet", partitioning="hive").to_table()
    for i, ts in enumerate(t["ts"].to_pylist()):
        ts = ts.astimezone(UTC)
        assert str(t["day"][i].as_py()) == ts.strftime("%Y-%m-%d")
        if mode == "hour":
            assert int(t["hour"][i].as_py()) == ts.hour


# ------------------------------------------------------------------ several runs, one table


@pytest.mark.parametrize("mode", MODES)
def test_two_runs_form_one_table(run_partitioned, baseline, mode):
    names = ("drivelife", "benign")
    out = run_partitioned(mode, names)
    total = sum(baseline[n].num_rows for n in names)
    files = part_files(out, mode)
    assert len({p.name for p, _, _ in files}) == len(files), "file names must not repeat"
    con = duck()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{glob(out)}', hive_partitioning=true)").fetchone()[0] == total
    assert ds.dataset(out / "flows", format="parquet", partitioning="hive").count_rows() == total
    assert check_rows_in_partitions(out, mode) == total


@pytest.mark.parametrize("mode", MODES)
def test_three_runs_over_several_days(run_partitioned, baseline, mode):
    names = ("drivelife", "benign", "spanning")
    out = run_partitioned(mode, names)
    total = sum(baseline[n].num_rows for n in names)
    assert ds.dataset(out / "flows", format="parquet", partitioning="hive").count_rows() == total
    assert check_rows_in_partitions(out, mode) == total
    con = duck()
    per_day = dict(con.execute(
        f"SELECT CAST(day AS VARCHAR), count(*) FROM read_parquet('{glob(out)}', hive_partitioning=true) GROUP BY 1").fetchall())
    want: dict[str, int] = {}
    for n in names:
        for ts in baseline[n]["ts"].to_pylist():
            k = ts.astimezone(UTC).strftime("%Y-%m-%d")
            want[k] = want.get(k, 0) + 1
    assert per_day == want


# ------------------------------------------------------------------ dns and arp


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("table", ["dns", "arp"])
def test_dns_arp_flat_or_partitioned(run_partitioned, baseline_all, sample_out, mode, table):
    out = run_partitioned(mode, ("drivelife",))
    want = baseline_all["drivelife"][table]
    kind = layout(out, table)
    assert kind is not None, f"neither {table}.parquet nor {table}/ written"
    if kind == "flat":
        assert pq.read_table(out / f"{table}.parquet").num_rows == want.num_rows
        return
    assert check_rows_in_partitions(out, mode, table) == want.num_rows
    con = duck()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{glob(out, table)}', hive_partitioning=true)").fetchone()[0]
    assert n == want.num_rows
    t = ds.dataset(out / table, format="parquet", partitioning="hive").to_table()
    assert t.num_rows == want.num_rows
    assert t.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    for p, _, _ in part_files(out, mode, table):
        assert pq.read_schema(p).remove_metadata() == want.schema.remove_metadata(), p


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("table", ["dns", "arp"])
def test_dns_arp_two_runs(run_partitioned, baseline_all, mode, table):
    names = ("drivelife", "benign")
    out = run_partitioned(mode, names)
    kind = layout(out, table)
    # README: --partition-by writes flows, dns and arp as Hive-partitioned directories, so
    # a second run adds its rows; a flat file would have been replaced by the second run.
    assert kind == "hive", f"{table}: {kind} layout under --partition-by {mode}, want hive"
    total = sum(baseline_all[n][table].num_rows for n in names)
    assert ds.dataset(out / table, format="parquet", partitioning="hive").count_rows() == total
    assert check_rows_in_partitions(out, mode, table) == total


# ------------------------------------------------------------------ re-runs into the same OUT


@pytest.mark.parametrize("mode", MODES)
def test_rerun_of_same_input_replaces_its_files(wormsign_bin, baseline, inputs, tmp_path, mode):
    # docs/schema.md: the run id hashes version, inputs and options, so re-running the same
    # analysis replaces its own files instead of adding a second copy of the rows.
    out = tmp_path / "out"
    for _ in range(2):
        run_analyze(wormsign_bin, [inputs["benign"]], out, "--partition-by", mode, "--no-detect")
    assert ds.dataset(out / "flows", format="parquet", partitioning="hive").count_rows() == baseline["benign"].num_rows
    assert check_rows_in_partitions(out, mode) == baseline["benign"].num_rows


def test_partitioned_run_removes_stale_flat_file(wormsign_bin, baseline, inputs, tmp_path):
    # docs/schema.md: a completed partitioned run removes flows.parquet (dns, arp) left by
    # an earlier unpartitioned run, so a directory never holds the same rows twice.
    out = tmp_path / "out"
    run_analyze(wormsign_bin, [inputs["benign"]], out, "--no-detect")
    assert (out / "flows.parquet").exists()
    run_analyze(wormsign_bin, [inputs["benign"]], out, "--partition-by", "day", "--no-detect")
    for t in PART_TABLES:
        assert layout(out, t) in ("hive", None), f"{t}.parquet left beside {t}/"
    assert ds.dataset(out / "flows", format="parquet", partitioning="hive").count_rows() == baseline["benign"].num_rows
