"""Runs every code block of docs/cookbook.md against a fresh DriveLife analysis and checks
the answers against datasets/drivelife/labels.json, so the page and the tool cannot drift.

The page has numbered sections (`## N. Question`), each with one ```sql block (DuckDB) and
one ```python block (polars) that leaves its answer in `result`. Both read
`out/drivelife/...` relative to the current directory; the test runs them in a temporary
directory where `out/drivelife` links to the analysis.
"""

from __future__ import annotations

import datetime as dt
import os
import re

import duckdb
import polars as pl
import pytest

from conftest import DRIVELIFE, README_ARGS, REPO, run_analyze

COOKBOOK = REPO / "docs" / "cookbook.md"
SECTION_RE = re.compile(r"^## (\d+)\. (.+)$", re.M)
BLOCK_RE = re.compile(r"^```(sql|python)\n(.*?)^```\s*$", re.M | re.S)


def sections() -> dict[int, dict]:
    text = COOKBOOK.read_text()
    heads = list(SECTION_RE.finditer(text))
    out = {}
    for i, h in enumerate(heads):
        body = text[h.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        blocks: dict[str, list[str]] = {}
        for m in BLOCK_RE.finditer(body):
            blocks.setdefault(m.group(1), []).append(m.group(2))
        out[int(h.group(1))] = {"title": h.group(2), **blocks}
    return out


SECTIONS = sections()
QUESTIONS = {
    1: "scanned port 445",
    2: "patient zero",
    3: "infected whom",
    4: "C&C",
    5: "exposed services",
    6: "host by host",
    7: "first ask for the c&c",
    8: "zone hold",
}


def rfc3339(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def workdir(sample_out, tmp_path_factory):
    d = tmp_path_factory.mktemp("cookbook")
    (d / "out").mkdir()
    (d / "out" / "drivelife").symlink_to(sample_out, target_is_directory=True)
    return d


@pytest.fixture
def in_workdir(workdir):
    old = os.getcwd()
    os.chdir(workdir)
    try:
        yield workdir
    finally:
        os.chdir(old)


def run_sql(sql: str) -> pl.DataFrame:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # a block may hold several statements (a macro, then the query): the last one answers
    return con.sql(sql).pl()


def run_python(code: str) -> tuple[pl.DataFrame, dict]:
    ns: dict = {"__name__": "__cookbook__"}
    exec(compile(code, str(COOKBOOK), "exec"), ns)
    assert isinstance(ns.get("result"), pl.DataFrame), "the block must leave a polars DataFrame in `result`"
    return ns["result"], ns


def test_page_has_every_question():
    assert sorted(SECTIONS) == sorted(QUESTIONS)
    for n, key in QUESTIONS.items():
        s = SECTIONS[n]
        assert key.lower() in s["title"].lower(), (n, s["title"])
        assert len(s.get("sql", [])) == 1, f"section {n}: one ```sql block"
        assert len(s.get("python", [])) == 1, f"section {n}: one ```python block"


# ----------------------------------------------------------------- checks per question


def check_1(df: pl.DataFrame, labels):
    hosts = set(df["host"].to_list())
    want = {h["ip"] for h in labels["infected"] if h["first_scan_at"]} | set(labels["authorized_scanners"])
    assert hosts == want, (sorted(hosts - want), sorted(want - hosts))
    assert not hosts & set(labels["benign_heavy_hitters"])
    assert (df["failed_targets"] >= 5).all() and (df["targets"] >= df["failed_targets"]).all()
    # ordered by first attempt: patient zero scans first among the infected
    infected_order = [h for h in df["host"].to_list() if h not in labels["authorized_scanners"]]
    assert infected_order[0] == labels["patient_zero"][0]


def check_2(df: pl.DataFrame, labels):
    assert df["patient_zero"].to_list() == labels["patient_zero"]
    pz = next(h for h in labels["infected"] if h["ip"] == labels["patient_zero"][0])
    row = df.row(0, named=True)
    assert row["first_malicious_at"] == rfc3339(pz["infected_at"])
    assert row["first_cnc_at"] == rfc3339(pz["first_cnc_at"])
    assert row["first_scan_at"] >= rfc3339(pz["first_scan_at"])
    assert row["entered_from"] == pz["parent"] and pz["parent"] in labels["external_attackers"]
    assert row["entered_by"] == pz["vector"]


def check_3(df: pl.DataFrame, labels):
    truth = {h["ip"]: h for h in labels["infected"]}
    assert set(df["child_ip"].to_list()) == set(truth), "every infected host, and only those"
    assert df.height == len(truth)
    rows = df.to_dicts()
    parent_ok = [r for r in rows if r["parent_ip"] == truth[r["child_ip"]]["parent"]]
    # Detection attributes a parent from the sessions it sees; on DriveLife it matches the
    # ground truth for all but one host (10.164.1.104, brute-forced over SMB by two infected
    # hosts). The cookbook only reads what detection wrote: allow that one.
    assert len(parent_ok) >= len(rows) - 1, [r for r in rows if r not in parent_ok]
    for r in parent_ok:
        t = truth[r["child_ip"]]
        assert r["vector"] == t["vector"], r
        if r["basis"] == "protocol":
            # Dated by the delivering session: the exploit, shortly before the payload
            # arrived (the label's compromised_at, the DoublePulsar upload).
            compromised = rfc3339(t["compromised_at"])
            assert compromised - dt.timedelta(seconds=60) <= r["infected_at"] <= compromised, r
        else:
            assert r["infected_at"] == rfc3339(t["infected_at"]), r
    assert {r["basis"] for r in rows} == {"protocol", "flow"}, "DriveLife has both kinds"
    gen_ok = [r for r in rows if r["generation"] == truth[r["child_ip"]]["generation"]]
    assert len(gen_ok) >= len(rows) - 1
    pz = labels["patient_zero"][0]
    for r in rows:
        assert r["chain"].split(" > ")[0] == pz and r["chain"].split(" > ")[-1] == r["child_ip"]
        assert len(r["chain"].split(" > ")) == r["generation"] + 1
    assert df["infected_at"].is_sorted()


def check_4(df: pl.DataFrame, labels):
    truth = {h["ip"]: h for h in labels["infected"] if h["first_cnc_at"]}
    assert set(df["host"].to_list()) == set(truth), "C&C contacts are exactly the infected hosts"
    for r in df.to_dicts():
        assert r["first_lookup"] == rfc3339(truth[r["host"]]["first_cnc_at"]), r
        assert set(r["names"]) == {"t.awcna.com", "down.ackng.com"}, r
        assert r["first_connection"] is not None and r["first_connection"] > r["first_lookup"], r
        assert set(r["cnc_ips"]) <= {"45.76.102.17", "104.168.44.120"}, r
    assert "10.164.1.2" not in df["host"].to_list(), "the forwarding resolver is not a C&C client"


def check_5(df: pl.DataFrame, labels):
    pz = labels["patient_zero"][0]
    rows = df.to_dicts()
    assert [(r["server"], r["port"]) for r in rows] == [(pz, 3389)]
    assert set(rows[0]["peers"]) == set(labels["external_attackers"])
    assert rows[0]["outside_peers"] == 1 and rows[0]["sessions"] >= 10
    # the exposure precedes the infection
    pz_label = next(h for h in labels["infected"] if h["ip"] == pz)
    assert rows[0]["first_session"] < rfc3339(pz_label["infected_at"])


def check_6(df: pl.DataFrame, labels):
    rows = df.to_dicts()
    isolate = {r["host"] for r in rows if r["action"] == "isolate"}
    assert isolate == {h["ip"] for h in labels["infected"]}
    assert all(r["tier"] == "hour" for r in rows if r["action"] == "isolate")
    reset = {r["host"]: r["detail"] for r in rows if r["action"] == "reset_password"}
    accounts = {"smb_bruteforce": "administrator", "mssql_bruteforce": "sa"}
    for h in labels["infected"]:
        if h["vector"] in accounts:
            assert reset[h["ip"]].endswith("as " + accounts[h["vector"]]), (h, reset.get(h["ip"]))
    # the page's order: tier first
    order = {"hour": 0, "day": 1, "week": 2, "month": 3}
    tiers = [order[r["tier"]] for r in rows]
    assert tiers == sorted(tiers)


def check_7(df: pl.DataFrame, labels):
    rows = df.to_dicts()
    # one lookup per host: the labelled first C&C contact of every infected host
    want = {h["ip"]: rfc3339(h["first_cnc_at"]) for h in labels["infected"]}
    got = {r["host"]: r["ts"] for r in rows}
    assert len(got) == len(rows)
    assert {ip: got.get(ip) for ip in want} == want
    assert rows[0]["host"] == labels["patient_zero"][0]
    assert all(r["alert_id"] for r in rows)


def check_8(df: pl.DataFrame, labels):
    rows = {(r["from_zone"], r["to_zone"]): r for r in df.to_dicts()}
    assert set(rows) == {("branch", "hq-dc"), ("hq-dc", "branch")}
    dc = rows[("branch", "hq-dc")]
    assert dc["verdict"] == "held" and dc["attempts"] > 0 and dc["answered"] == 0
    assert dc["blocked"] == dc["attempts"]
    assert rows[("hq-dc", "branch")]["verdict"] == "untested"


CHECKS = {
    1: check_1, 2: check_2, 3: check_3, 4: check_4, 5: check_5, 6: check_6, 7: check_7,
    8: check_8,
}


# ----------------------------------------------------------------- running the blocks


@pytest.mark.parametrize("n", sorted(QUESTIONS))
def test_sql(in_workdir, labels, n):
    df = run_sql(SECTIONS[n]["sql"][0])
    assert df.height > 0
    CHECKS[n](df, labels)


@pytest.mark.parametrize("n", sorted(QUESTIONS))
def test_polars(in_workdir, labels, n, capsys):
    df, _ = run_python(SECTIONS[n]["python"][0])
    assert df.height > 0
    CHECKS[n](df, labels)


@pytest.mark.parametrize("n", sorted(QUESTIONS))
def test_sql_and_polars_agree(in_workdir, n, capsys):
    sql = run_sql(SECTIONS[n]["sql"][0])
    py, _ = run_python(SECTIONS[n]["python"][0])
    assert sql.columns == py.columns
    # same rows, whatever the engines' types for lists and categoricals
    def norm(df):
        rows = []
        for r in df.to_dicts():
            rows.append(tuple(tuple(sorted(v)) if isinstance(v, list) else
                              round(v, 6) if isinstance(v, float) else v for v in r.values()))
        return sorted(rows, key=repr)
    assert norm(sql) == norm(py)


def test_cnc_suffixes_come_from_the_shipped_indicators(in_workdir, indicators, capsys):
    _, ns = run_python(SECTIONS[4]["python"][0])
    suffixes = ns["CNC_SUFFIXES"]
    assert set(suffixes) <= set(indicators)
    # every entry of the indicator list is covered by a suffix of the page
    for entry in indicators:
        if re.fullmatch(r"[0-9.]+|[0-9a-f:]+", entry):
            continue  # addresses, not names
        assert any(entry == s or entry.endswith("." + s) for s in suffixes), entry
    sql = SECTIONS[4]["sql"][0]
    for s in suffixes:
        assert f"('{s}')" in sql, f"{s} missing from the SQL's list"


# ----------------------------------------------------------------- the partitioned layout


def to_partitioned(code: str) -> str:
    """The page's recipe for `--partition-by`: point flows and dns at the Hive directories."""
    for t in ["flows", "dns", "arp"]:
        code = code.replace(f"'out/drivelife/{t}.parquet'",
                            f"read_parquet('out/drivelife/{t}/**/*.parquet', hive_partitioning = true)")
        for fn in ["scan_parquet", "read_parquet"]:
            code = code.replace(f'pl.{fn}("out/drivelife/{t}.parquet")',
                                f'pl.{fn}("out/drivelife/{t}/**/*.parquet", hive_partitioning=True)')
    return code


def test_partitioned_recipe_is_on_the_page():
    text = COOKBOOK.read_text()
    assert "read_parquet('out/drivelife/flows/**/*.parquet', hive_partitioning = true)" in text
    assert 'pl.scan_parquet("out/drivelife/flows/**/*.parquet", hive_partitioning=True)' in text


@pytest.fixture(scope="module")
def partitioned_workdir(partition_support, wormsign_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("cookbook-partitioned")
    run_analyze(wormsign_bin, [DRIVELIFE], d / "out" / "drivelife", "--partition-by", "day", *README_ARGS)
    return d


@pytest.mark.parametrize("n", sorted(QUESTIONS))
def test_same_answers_on_partitioned_output(workdir, partitioned_workdir, labels, n, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    flat_sql = run_sql(SECTIONS[n]["sql"][0])
    monkeypatch.chdir(partitioned_workdir)
    sql = to_partitioned(SECTIONS[n]["sql"][0])
    py = to_partitioned(SECTIONS[n]["python"][0])
    part_sql = run_sql(sql)
    part_py, _ = run_python(py)
    CHECKS[n](part_sql, labels)
    CHECKS[n](part_py, labels)
    assert part_sql.columns == flat_sql.columns
    assert part_sql.sort(part_sql.columns[:2]).equals(flat_sql.sort(flat_sql.columns[:2]))
