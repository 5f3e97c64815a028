"""The `wormsign` Python package (python/wormsign, built by maturin) against the CLI.

The CLI's Parquet files are the reference: the package's tables must hold the same rows
(after sorting, as docs/schema.md says rows are compared) for the bundled sample and for
a real capture nobody here wrote. Then: the tables reach polars and DuckDB without
pandas or a copy, Ctrl-C leaves complete files of what was read, and bad input raises
an exception that names the file and the byte offset.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import wormsign
from conftest import DRIVELIFE, README_ARGS, REPO, run_analyze

SHARED = REPO.parent / "shared" / "captures"
WANNACRY = SHARED / "smb" / "wannacry_lateral.pcap"
CAPTURE_TABLES = ["flows", "dns", "arp", "sessions", "names"]
DETECTION_TABLES = ["alerts", "hosts", "propagation", "timeline", "segmentation", "remediation"]


def sorted_rows(table: pa.Table) -> list[tuple]:
    """Every row as a tuple of its values, sorted: the order rows were produced in is not
    part of the contract, their content is."""
    rows = table.to_pylist()
    return sorted((tuple(r.items()) for r in rows), key=repr)


def assert_same_table(name: str, got: pa.Table, stored: Path) -> None:
    want = pq.read_table(stored)
    assert got.schema.names == want.schema.names, name
    assert got.schema.types == want.schema.types, f"{name}: {got.schema} vs {want.schema}"
    assert got.num_rows == want.num_rows, f"{name}: {got.num_rows} rows, CLI {want.num_rows}"
    assert sorted_rows(got) == sorted_rows(want), f"{name}: rows differ from the CLI's"


def readme_options() -> dict:
    """README_ARGS (--honeypot IP --allowlist CIDR --zone NAME=CIDR ...) as keyword
    arguments."""
    options: dict = {"honeypot": [], "allowlist": [], "zone": []}
    for flag, value in zip(README_ARGS[::2], README_ARGS[1::2]):
        options[flag.removeprefix("--")].append(value)
    return options


@pytest.fixture(scope="module")
def sample_run() -> wormsign.Analysis:
    return wormsign.analyze(DRIVELIFE, progress=False, **readme_options())


def test_sample_tables_equal_the_cli_files(sample_run, sample_out):
    assert sample_run.flows.num_rows > 1000 and sample_run.alerts.num_rows > 10
    for name in CAPTURE_TABLES + DETECTION_TABLES:
        assert_same_table(name, sample_run.tables()[name], sample_out / f"{name}.parquet")
    assert sample_run.report_md == (sample_out / "report.md").read_text()


def test_real_capture_tables_equal_the_cli_files(wormsign_bin, tmp_path):
    if not WANNACRY.exists():
        pytest.skip(f"{WANNACRY} absent: the shared capture corpus is not beside the repo")
    out = tmp_path / "cli"
    run_analyze(wormsign_bin, [WANNACRY], out)
    run = wormsign.analyze(WANNACRY, progress=False)
    # The real WannaCry trace: its SMB sessions must be read, or this compares nothing.
    assert run.sessions.num_rows > 0 and run.flows.num_rows > 0
    for name in CAPTURE_TABLES + DETECTION_TABLES:
        assert_same_table(name, run.tables()[name], out / f"{name}.parquet")
    # With out=, the package writes what the CLI writes and returns the same tables.
    written = tmp_path / "py"
    again = wormsign.analyze(WANNACRY, out=written, progress=False)
    for name in CAPTURE_TABLES + DETECTION_TABLES:
        assert_same_table(name, again.tables()[name], out / f"{name}.parquet")
        assert_same_table(name, pq.read_table(written / f"{name}.parquet"), out / f"{name}.parquet")
    assert (written / "report.md").read_text() == (out / "report.md").read_text()


def test_summary_and_detection_counters(sample_run, wormsign_bin, tmp_path):
    summary = tmp_path / "summary.json"
    run_analyze(wormsign_bin, [DRIVELIFE], tmp_path / "out", *README_ARGS,
                "--summary-json", str(summary))
    cli = json.loads(summary.read_text())
    timing = {"wall_seconds", "packets_per_second", "megabytes_per_second", "threads",
              "input_bytes"}
    for key, value in cli.items():
        if key not in timing:
            assert sample_run.summary[key] == value, key
    # Both fed detection from the pipeline (DriveLife resolves its C&C names before it
    # contacts them, so the shards kept those flows and no pass ran); the detector's own
    # counters are the same.
    assert cli["detection"]["input"] == "pipeline"
    counters = {k: v for k, v in cli["detection"].items() if k not in ("input", "warnings")}
    assert cli["detection"]["warnings"] == []
    assert sample_run.detection.stats == counters


ZERO_COPY = textwrap.dedent("""
    import sys
    import duckdb, polars as pl, pyarrow as pa
    import wormsign
    before = pa.total_allocated_bytes()
    run = wormsign.analyze(sys.argv[1], progress=False, honeypot=["10.200.0.99"])
    # The tables' buffers are the engine's: pyarrow allocated none of them.
    assert pa.total_allocated_bytes() == before, pa.total_allocated_bytes() - before
    flows = run.flows
    n = duckdb.sql("SELECT count(*) FROM flows WHERE resp_p = 445").fetchall()[0][0]
    df = pl.from_arrow(run.flows)
    assert n == df.filter(pl.col("resp_p") == 445).height > 0
    # polars took the integer column's buffer as it is.
    col = run.flows.column("orig_pkts").chunk(0)
    series = pl.from_arrow(pa.chunked_array([col]))
    assert series.to_arrow().buffers()[1].address == col.buffers()[1].address
    assert "pandas" not in sys.modules, "a pandas conversion crept in"
    print(n)
""")


def test_tables_reach_polars_and_duckdb_without_a_copy():
    proc = subprocess.run([sys.executable, "-c", ZERO_COPY, str(DRIVELIFE)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 100


INTERRUPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    import wormsign
    fifo, out, capture, cut = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    data = open(capture, "rb").read()

    def feed():
        # The first part of the records, Ctrl-C, then the rest slowly: an engine that
        # ignored the stop would read it all before the pipe closes.
        with open(fifo, "wb") as w:
            w.write(data[:cut])
            w.flush()
            time.sleep(0.8)
            os.kill(os.getpid(), signal.SIGINT)
            for at in range(cut, len(data), 1 << 16):
                try:
                    w.write(data[at:at + (1 << 16)])
                    w.flush()
                except BrokenPipeError:
                    return
                time.sleep(0.05)

    threading.Thread(target=feed, daemon=True).start()
    ticks = []
    started = time.monotonic()
    try:
        wormsign.analyze(fifo, out=out, progress=lambda *a: ticks.append(a))
    except KeyboardInterrupt:
        print("interrupted", len(ticks) > 0, round(time.monotonic() - started, 1))
        sys.exit(0)
    print("not interrupted")
    sys.exit(1)
""")


def pcap_records(pcap: bytes) -> list[int]:
    """The byte offset of every record of a little-endian µs pcap."""
    offsets, at = [], 24
    while at + 16 <= len(pcap):
        offsets.append(at)
        at += 16 + int.from_bytes(pcap[at + 8:at + 12], "little")
    return offsets


def test_ctrl_c_leaves_complete_files_of_what_was_read(tmp_path):
    pcap = gzip.decompress(DRIVELIFE.read_bytes())
    assert pcap[:4] == b"\xd4\xc3\xb2\xa1", "expected a little-endian µs pcap"
    records = pcap_records(pcap)
    cut = records[len(records) // 3]
    capture = tmp_path / "capture.pcap"
    capture.write_bytes(pcap)
    first_part = tmp_path / "first.pcap"
    first_part.write_bytes(pcap[:cut])
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPT, str(fifo), str(out), str(capture), str(cut)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    word, ticked, seconds = proc.stdout.split()
    assert (word, ticked) == ("interrupted", "True"), proc.stdout
    # What the CLI leaves on SIGINT: the capture tables, complete, no detection, no
    # temporary file; holding the records fed before Ctrl-C, and not the rest.
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{t}.parquet" for t in CAPTURE_TABLES), names
    before = wormsign.analyze(first_part, detect=False, progress=False)
    whole = wormsign.analyze(capture, detect=False, progress=False)
    got = pq.read_table(out / "dns.parquet").num_rows
    assert before.dns.num_rows <= got < whole.dns.num_rows, (before.dns.num_rows, got)
    assert float(seconds) < 10, "the stop was not prompt"


def test_unreadable_input_raises_naming_the_file(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("these are not packets\n" * 10)
    with pytest.raises(wormsign.InputError, match=str(junk)):
        wormsign.analyze(junk, progress=False)
    with pytest.raises(FileNotFoundError, match="missing.pcap"):
        wormsign.analyze(tmp_path / "missing.pcap", progress=False)


def test_damaged_input_warns_with_the_offset_and_keeps_what_came_before(tmp_path):
    pcap = gzip.decompress(DRIVELIFE.read_bytes())
    records = pcap_records(pcap)
    cut = records[len(records) // 3]
    damaged = tmp_path / "damaged.pcap"
    # A record header claiming 1 GB: nothing after it can be read.
    damaged.write_bytes(pcap[:cut] + pcap[cut:cut + 8] + (1 << 30).to_bytes(4, "little") * 2
                        + pcap[cut + 16:])
    with pytest.warns(wormsign.WormsignWarning, match=rf"{damaged}.*\b{cut}\b"):
        run = wormsign.analyze(damaged, progress=False, detect=False)
    assert run.summary["packets"] == len(records) // 3
    assert run.warnings and run.warnings[0][1] == cut


def test_detect_over_a_directory_and_over_tables_agree(sample_run, sample_out, tmp_path):
    opts = readme_options()
    stored = wormsign.detect(sample_out, **opts)
    again = wormsign.detect(sample_run, out=tmp_path, **opts)
    from_polars = wormsign.detect({t: pl.from_arrow(getattr(sample_run, t))
                                   for t in CAPTURE_TABLES}, **opts)
    for name in DETECTION_TABLES:
        want = sample_out / f"{name}.parquet"
        assert_same_table(name, getattr(stored, name), want)
        assert_same_table(name, getattr(again, name), want)
        assert_same_table(name, pq.read_table(tmp_path / f"{name}.parquet"), want)
        assert sorted_rows(getattr(from_polars, name)) == sorted_rows(pq.read_table(want))


def test_detection_beyond_its_cap_is_the_same_and_warns_when_files_fail(
        sample_run, monkeypatch, recwarn):
    """Flows in reverse order, four usable flows held in memory: the batches beyond the
    cap are sorted into temporary files and merged, so detection is that of the tables in
    order, and the stats count the flows held in files. Without a temporary directory up
    to 16 times the cap are held in memory: with a cap that holds them all detection is
    still the same, and warned of; with four, the batches beyond go through as they come:
    later ones are late, and the library warns of both as the command line does."""
    opts = readme_options()
    tables = sample_run.tables()
    flows = tables["flows"]
    tables["flows"] = flows.take(pa.array(range(flows.num_rows - 1, -1, -1)))
    rules = wormsign.rules()
    rules["max_pending_flows"] = 4
    merged = wormsign.detect(tables, rules=rules, **opts)
    assert merged.stats["late_flows"] == 0
    used = merged.stats["flows_used"]
    assert used > 16 * 4 + 1, "too few usable flows for a batch to go through without files"
    assert merged.stats["flows_in_files"] == (used - 1) // 4 * 4
    assert sample_run.detection.stats["flows_in_files"] == 0
    for name in DETECTION_TABLES:
        assert sorted_rows(getattr(merged, name)) == sorted_rows(getattr(sample_run.detection, name))
    assert not [w for w in recwarn if issubclass(w.category, wormsign.WormsignWarning)]
    monkeypatch.setenv("TMPDIR", str(REPO / "no-such-directory"))
    held_all = dict(rules, max_pending_flows=(used + 15) // 16)
    with pytest.warns(wormsign.WormsignWarning, match=r": \d+ more were held in memory$"):
        held = wormsign.detect(tables, rules=held_all, **opts)
    assert held.stats["late_flows"] == 0
    assert held.stats["flows_held_without_files"] == used - held_all["max_pending_flows"]
    for name in DETECTION_TABLES:
        assert sorted_rows(getattr(held, name)) == sorted_rows(getattr(merged, name))
    with pytest.warns(wormsign.WormsignWarning, match="reached the rules after newer ones"):
        late = wormsign.detect(tables, rules=rules, **opts)
    assert late.stats["late_flows"] > 0
    assert late.stats["flows_in_files"] == 0
    # wormsign_testutil::held_without_files: 16 times the cap are held, one flow more
    # lets them all go through, and the next start again.
    cap = rules["max_pending_flows"]
    at_once = 16 * cap + 1
    let_go, rest = divmod(used, at_once)
    assert late.stats["flows_held_without_files"] == let_go * (at_once - cap) + max(rest - cap, 0)


@pytest.mark.parametrize("writer", ["pyarrow-snappy", "pyarrow-gzip", "pyarrow-lz4", "duckdb"])
def test_tables_rewritten_by_other_tools_are_detected_alike(sample_out, writer, tmp_path):
    """A notebook rewrites the capture tables with another tool's default or chosen codec
    (pyarrow and pandas write snappy, DuckDB snappy): `wormsign detect` reads them and
    finds the same as on its own files."""
    for t in CAPTURE_TABLES:
        src, dst = sample_out / f"{t}.parquet", tmp_path / f"{t}.parquet"
        if writer == "duckdb":
            duckdb.sql(f"COPY (SELECT * FROM '{src}') TO '{dst}' (FORMAT parquet)")
        else:
            pq.write_table(pq.read_table(src), dst, compression=writer.split("-")[1])
        meta = pq.ParquetFile(dst).metadata
        assert meta.num_rows == pq.ParquetFile(src).metadata.num_rows
        if meta.num_row_groups:  # DuckDB writes none for an empty table
            codec = meta.row_group(0).column(0).compression
            assert codec != "ZSTD", f"{writer} wrote {t} with {codec}: nothing new is read"
    opts = readme_options()
    rewritten = wormsign.detect(tmp_path, **opts)
    for name in DETECTION_TABLES:
        assert_same_table(name, getattr(rewritten, name), sample_out / f"{name}.parquet")


def test_rules_round_trip_and_change_the_outcome(sample_run, wormsign_bin):
    rules = wormsign.rules()
    cli = subprocess.run([str(wormsign_bin), "rules"], capture_output=True, text=True,
                         check=True).stdout
    import tomllib
    assert rules == tomllib.loads(cli)
    opts = readme_options()
    scans = lambda d: d.alerts.column("rule").to_pylist().count("scan_fanout")
    same = wormsign.detect(sample_run, rules=rules, **opts)
    assert scans(same) == scans(sample_run.detection) > 0
    # A rule set given as a dict is the one used: a far higher fan-out threshold, fewer
    # scan alerts.
    rules["scan"]["fanout_threshold"] *= 5
    strict = wormsign.detect(sample_run, rules=rules, **opts)
    assert scans(strict) < scans(sample_run.detection)
    with pytest.raises(ValueError, match="rules"):
        wormsign.detect(sample_run, rules={"scan": {"no_such_key": 1}})


def test_options_reach_the_engine(tmp_path):
    # No inspection: no session facts; an extra inspected port is taken; bad ones are not.
    assert wormsign.analyze(DRIVELIFE, inspect_bytes=0, detect=False,
                            progress=False).sessions.num_rows == 0
    wormsign.analyze(DRIVELIFE, out=tmp_path / "tds", inspect_port=["tds=14330"],
                     detect=False, progress=False)
    options = json.loads(pq.read_metadata(tmp_path / "tds" / "flows.parquet")
                         .metadata[b"wormsign.options"])
    assert options["inspect_ports"]["tds"] == [1433, 14330], options
    wormsign.analyze(DRIVELIFE, out=tmp_path / "vxlan", tunnel_port=["vxlan=8472"],
                     tunnel_depth=2, detect=False, progress=False)
    options = json.loads(pq.read_metadata(tmp_path / "vxlan" / "flows.parquet")
                         .metadata[b"wormsign.options"])
    assert "vxlan=8472" in options["tunnel_ports"], options
    assert options["tunnel_depth"] == 2, options
    with pytest.raises(ValueError, match="not a UDP tunnel"):
        wormsign.analyze(DRIVELIFE, tunnel_port=["gre=47"], progress=False)
    with pytest.raises(ValueError, match="unknown protocol"):
        wormsign.analyze(DRIVELIFE, inspect_port=["ftp=21"], progress=False)
    with pytest.raises(ValueError, match="tcp timeout"):
        wormsign.analyze(DRIVELIFE, tcp_timeout=-1, progress=False)
    with pytest.raises(ValueError, match="partition_by needs out"):
        wormsign.analyze(DRIVELIFE, partition_by="hour", progress=False)
    parted = wormsign.analyze(DRIVELIFE, out=tmp_path, partition_by="hour", detect=False,
                              progress=False)
    assert list((tmp_path / "flows").glob("day=*/hour=*/*.parquet"))
    assert parted.flows.num_rows == parted.summary["flows"]


def test_synth_writes_what_the_cli_writes(wormsign_bin, tmp_path):
    counts = wormsign.synth("wannacry", tmp_path / "py", seed=7, scale=0.2)
    subprocess.run([str(wormsign_bin), "synth", "--scenario", "wannacry", "--seed", "7",
                    "--scale", "0.2", "--quiet", "--out", str(tmp_path / "cli")], check=True)
    for name in ["capture.pcap", "labels.json", "flow_labels.csv"]:
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    assert counts["packets"] > 0 and counts["capture"].exists()


def test_bench_rules_equals_the_cli_parquet(wormsign_bin, sample_out, tmp_path):
    from conftest import DRIVELIFE_LABELS
    sweep = ["scan.fanout_threshold=5..15:5"]
    subprocess.run([str(wormsign_bin), "bench-rules", str(sample_out), "--labels",
                    str(DRIVELIFE_LABELS), "--sweep", sweep[0], "--quiet", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    cli = pq.read_table(tmp_path / "bench_rules.parquet")
    for source in [sample_out, DRIVELIFE]:
        got = wormsign.bench_rules(source, DRIVELIFE_LABELS, sweep=sweep)
        # Every column but the detection time, which is a measurement.
        assert got.drop(["detect_ms"]).equals(cli.drop(["detect_ms"])), source
    assert got.num_rows == 3
    assert got.column("recall").to_pylist()[0] > 0.5
    with pytest.raises(ValueError, match="sweep"):
        wormsign.bench_rules(sample_out, DRIVELIFE_LABELS, sweep=["scan.fanout_threshold"])


def test_bench_rules_warns_of_missing_tables(sample_out, tmp_path):
    from conftest import DRIVELIFE_LABELS
    flows_only = tmp_path / "flows_only"
    flows_only.mkdir()
    (flows_only / "flows.parquet").symlink_to(sample_out / "flows.parquet")
    with pytest.warns(wormsign.WormsignWarning) as caught:
        wormsign.bench_rules(flows_only, DRIVELIFE_LABELS)
    missing = sorted(str(w.message).split(".parquet")[0] for w in caught)
    assert missing == ["arp", "dns", "names", "sessions"], missing


ZEEK_LOGS = REPO / "tests" / "data" / "logs" / "zat"
CONN_COLUMNS = ["orig_h", "orig_p", "resp_h", "resp_p", "conn_state", "orig_pkts",
                "orig_ip_bytes", "orig_bytes", "resp_pkts", "resp_ip_bytes", "resp_bytes"]


def zeek_columns(path: Path) -> list[str]:
    """The column names of a Zeek TSV log's #fields line."""
    for line in path.read_text().splitlines():
        if line.startswith("#fields\t"):
            return line.split("\t")[1:]
    raise AssertionError(f"{path}: no #fields line")


def zeek_as_duckdb_reads_it(con, source: str) -> list[tuple]:
    """The conn.log rows as DuckDB reads them (another reader than wormsign's), in
    wormsign's column names, unset counters as 0."""
    select = ", ".join(
        f'"id.{c}"' if c in ("orig_h", "orig_p", "resp_h", "resp_p")
        else f'coalesce(TRY_CAST("{c}" AS BIGINT), 0)' if c.endswith(("pkts", "bytes"))
        else f'"{c}"'
        for c in CONN_COLUMNS
    )
    rows = con.sql(f"SELECT {select} FROM {source}").fetchall()
    return sorted(tuple(str(v) for v in r) for r in rows)


def wormsign_rows(flows: pa.Table) -> list[tuple]:
    return sorted(tuple(str(v) for v in r.values())
                  for r in flows.select(CONN_COLUMNS).to_pylist())


def test_zeek_logs_give_the_rows_duckdb_reads_from_them(tmp_path):
    """Zeek's own logs (shipped by zat on PyPI) in TSV, JSON and gzip'd TSV: wormsign's
    flows hold exactly the connections DuckDB's CSV and JSON readers see in the files, and
    its DNS table a query per dns.log line."""
    con = duckdb.connect()
    tsv, js = ZEEK_LOGS / "conn.log", ZEEK_LOGS / "conn.json.log"
    names = zeek_columns(tsv)
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    from_tsv = zeek_as_duckdb_reads_it(
        con, f"read_csv('{tsv}', delim='\\t', comment='#', header=false, quote='', auto_detect=false, columns={columns})")
    from_json = zeek_as_duckdb_reads_it(con, f"read_json('{js}', format='newline_delimited')")
    gz = tmp_path / "conn.log.gz"
    gz.write_bytes(gzip.compress(tsv.read_bytes()))
    for path, want in [(tsv, from_tsv), (gz, from_tsv), (js, from_json)]:
        flows = wormsign.analyze(path, detect=False).flows
        assert flows.num_rows == len(want) > 0, path
        assert set(flows.column("source").to_pylist()) == {"zeek"}
        assert wormsign_rows(flows) == want, path
    dns = wormsign.analyze(ZEEK_LOGS / "dns.log", detect=False).dns
    lines = [l for l in (ZEEK_LOGS / "dns.log").read_text().splitlines() if not l.startswith("#")]
    queries = [r for r in dns.to_pylist() if not r["is_response"]]
    assert len(queries) == len(lines)
