//! `wormsign bench-rules`: rule sets and sweeps scored against the checked-in labelled
//! datasets.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use wormsign_detect::parse_rfc3339;

use crate::common::{read_rows, wormsign};

fn dataset(name: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("datasets")
        .join(name);
    (dir.join("capture.pcap.gz"), dir.join("labels.json"))
}

/// The outcome of one `wormsign bench-rules` run.
pub struct Bench {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The `--json` file, when written.
    pub json: Option<Value>,
}

impl Bench {
    pub fn rows(&self) -> &[Value] {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON; stderr: {}", self.stderr))["rows"]
            .as_array()
            .expect("rows")
    }

    fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "bench-rules failed: {}", self.stderr);
    }
}

/// Runs `wormsign bench-rules INPUT --labels LABELS --json FILE -q EXTRA...`.
pub fn bench(input: &Path, labels: &Path, extra: &[&str]) -> Bench {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .arg("bench-rules")
        .arg(input)
        .arg("--labels")
        .arg(labels)
        .arg("--json")
        .arg(&json)
        .arg("-q")
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running wormsign bench-rules");
    Bench {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: std::fs::read(&json)
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("--json parses")),
    }
}

/// The table's data lines (after the header).
fn table_rows(stdout: &str) -> Vec<&str> {
    let mut lines = stdout.lines();
    let header = lines.next().expect("a header line");
    assert!(header.starts_with("rules"), "{header}");
    lines.collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `Score::ttd_secs` worked out from `wormsign analyze`'s outputs instead of the scorer:
/// for each labelled infected host that hosts.parquet calls infected or patient zero, in
/// address order, its `first_malicious_at` (detection time) minus the label's
/// `compromised_at` (else `infected_at`), in seconds. The labels' honeypots and authorized scanners are passed as
/// bench-rules applies them.
fn ttd_secs_from_outputs(pcap: &Path, labels: &Path) -> Vec<f64> {
    let truth: Value = serde_json::from_slice(&std::fs::read(labels).expect("labels")).unwrap();
    let mut args: Vec<String> = Vec::new();
    for (list, flag) in [
        ("honeypots", "--honeypot"),
        ("authorized_scanners", "--allowlist"),
    ] {
        for ip in truth[list].as_array().expect(list) {
            args.extend([
                flag.to_string(),
                ip.as_str().expect("an address").to_string(),
            ]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = wormsign(&[pcap], &args);
    run.assert_ok("drivelife");
    let infected_at: BTreeMap<IpAddr, i64> = truth["infected"]
        .as_array()
        .expect("infected")
        .iter()
        .map(|h| {
            let ip = h["ip"].as_str().expect("ip").parse().expect("an address");
            let at = h["compromised_at"].as_str().or(h["infected_at"].as_str());
            let at = at.expect("compromised_at or infected_at");
            (ip, parse_rfc3339(at).expect("RFC 3339 time"))
        })
        .collect();
    let mut ttd: BTreeMap<IpAddr, f64> = BTreeMap::new();
    for h in read_rows(&run.out().join("hosts.parquet")) {
        if !matches!(h["role"].str(), "patient_zero" | "infected") {
            continue;
        }
        let ip: IpAddr = h["ip"].str().parse().expect("an address");
        if let Some(t0) = infected_at.get(&ip) {
            let detected_ns = h["first_malicious_at"].int() * 1000;
            ttd.insert(ip, (detected_ns - t0) as f64 / 1e9);
        }
    }
    ttd.into_values().collect()
}

#[test]
fn default_rules_score_drivelife_perfectly() {
    let (pcap, labels) = dataset("drivelife");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let started = std::time::Instant::now();
    let b = bench(&pcap, &labels, &["--out", out.to_str().unwrap()]);
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    b.assert_ok();
    assert_eq!(table_rows(&b.stdout).len(), 1, "{}", b.stdout);
    let rows = b.rows();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["rules"], "default");
    assert_eq!(f(&r["recall"]), 1.0, "{r}");
    assert_eq!(f(&r["precision"]), 1.0, "{r}");
    assert_eq!(f(&r["f1"]), 1.0, "{r}");
    assert_eq!(r["patient_zero_ok"], true);
    assert_eq!(r["false_alarms"], 0);
    assert!(
        f(&r["edge_precision"]) >= 0.95 && f(&r["edge_recall"]) >= 0.95,
        "{r}"
    );
    assert!(r["ttd_failed_median"].as_u64().expect("median") <= 4, "{r}");
    // Time to detect in seconds, recomputed here from what detection wrote and the labels.
    let want = ttd_secs_from_outputs(&pcap, &labels);
    let got: Vec<f64> = r["ttd_secs"]
        .as_array()
        .expect("ttd_secs")
        .iter()
        .map(f)
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "ttd_secs {got:?}, recomputed {want:?}"
    );
    assert!(
        got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-6),
        "ttd_secs {got:?}, recomputed {want:?}"
    );
    let mut sorted = want.clone();
    sorted.sort_by(f64::total_cmp);
    let lower_median = sorted[(sorted.len() - 1) / 2];
    let p90 = sorted[(sorted.len() * 9).div_ceil(10) - 1];
    assert!(
        (f(&r["ttd_secs_median"]) - lower_median).abs() < 1e-6,
        "{r}"
    );
    assert!((f(&r["ttd_secs_p90"]) - p90).abs() < 1e-6, "{r}");
    // detect_ms is a measured time: positive, and within the whole command's wall time.
    let detect_ms = f(&r["detect_ms"]);
    assert!(
        detect_ms > 0.0 && detect_ms < wall_ms,
        "detect_ms {detect_ms} not in (0, {wall_ms:.1}) (the command's wall time)"
    );
    // The Parquet file has the same row.
    let pq = read_rows(&out.join("bench_rules.parquet"));
    assert_eq!(pq.len(), 1);
    assert_eq!(pq[0]["rules"].str(), "default");
    assert_eq!(pq[0]["recall"].float(), 1.0);
    assert!(pq[0]["patient_zero_ok"].bool());
    assert_eq!(pq[0]["labelled"].int(), r["labelled"].as_i64().unwrap());
}

#[test]
fn benign_has_no_false_alarms() {
    let (pcap, labels) = dataset("benign");
    let b = bench(&pcap, &labels, &[]);
    b.assert_ok();
    let r = &b.rows()[0];
    assert_eq!(r["labelled"], 0);
    assert_eq!(r["detected"], 0, "{r}");
    assert_eq!(r["false_alarms"], 0, "{r}");
    assert_eq!(r["detected_edges"], 0, "{r}");
    assert!(
        r["scanner_roles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x == "scanner_allowlisted"),
        "{r}"
    );
}

#[test]
fn sweep_prints_one_row_per_point() {
    let (pcap, labels) = dataset("drivelife");
    let b = bench(
        &pcap,
        &labels,
        &["--sweep", "scan.fanout_threshold=5..15:5"],
    );
    b.assert_ok();
    let lines = table_rows(&b.stdout);
    assert_eq!(lines.len(), 3, "{}", b.stdout);
    for (line, v) in lines.iter().zip([5, 10, 15]) {
        assert!(
            line.contains(&format!("scan.fanout_threshold={v} ")),
            "{line}"
        );
    }
    let swept: Vec<&Value> = b
        .rows()
        .iter()
        .map(|r| &r["sweep"]["scan.fanout_threshold"])
        .collect();
    assert_eq!(swept, [5, 10, 15]);
    // A float sweep, printed as generated.
    let b = bench(&pcap, &labels, &["--sweep", "trw.pd=0.9..0.99:0.03"]);
    b.assert_ok();
    let swept: Vec<f64> = b.rows().iter().map(|r| f(&r["sweep"]["trw.pd"])).collect();
    assert_eq!(swept, [0.9, 0.93, 0.96, 0.99]);
    assert!(table_rows(&b.stdout)[1].contains("trw.pd=0.93"));
}

/// `wormsign analyze PCAP --no-detect --inspect-bytes 0` into a temporary directory:
/// tables with no protocol facts, so detection rests on flow shapes alone (as on NetFlow
/// or TLS). bench-rules reads such a directory as its input.
fn flow_only_tables(pcap: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .arg("analyze")
        .arg(pcap)
        .arg("--out")
        .arg(dir.path())
        .args(["--no-detect", "--inspect-bytes", "0", "-q"])
        .stdin(Stdio::null())
        .status()
        .expect("running wormsign analyze");
    assert!(status.success());
    dir
}

/// On the flow rules: weakened, they detect less or later. (The protocol rules catch the
/// EternalBlue hosts at their implant whatever the flow rules say, so this runs on tables
/// without protocol facts.)
#[test]
fn weakened_rules_detect_less_or_later() {
    let (pcap, labels) = dataset("drivelife");
    let tables = flow_only_tables(&pcap);
    let pcap = tables.path().to_path_buf();
    let tmp = tempfile::tempdir().expect("tempdir");
    // No C&C indicators, fan-out never reached, TRW needing overwhelming evidence.
    let weak = tmp.path().join("weak.toml");
    std::fs::write(
        &weak,
        "[cnc]\ndomains = []\n[scan]\nfanout_threshold = 1000000\n\
         [trw]\npd = 0.999999\npf = 0.000001\n",
    )
    .unwrap();
    let strict = tmp.path().join("default.toml");
    std::fs::write(&strict, "").unwrap();
    let b = bench(
        &pcap,
        &labels,
        &["--rules", strict.to_str().unwrap(), weak.to_str().unwrap()],
    );
    b.assert_ok();
    let rows = b.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(table_rows(&b.stdout).len(), 2);
    let (d, w) = (&rows[0], &rows[1]);
    assert_eq!(f(&d["recall"]), 1.0);
    let later = |k: &str| f(&w[k]) > f(&d[k]);
    assert!(
        f(&w["recall"]) < f(&d["recall"]) || later("ttd_secs_median") || later("ttd_failed_median"),
        "weakened rules did no worse:\ndefault {d}\nweak {w}"
    );
}

/// Everything but the detection wall time is a function of the inputs.
#[test]
fn output_is_deterministic_and_reads_analyze_output() {
    let (pcap, labels) = dataset("drivelife");
    let args = [
        "--sweep",
        "trw.pd=0.95,0.99",
        "--sweep",
        "arp.threshold=16,32",
    ];
    let strip = |b: &Bench| {
        let mut j = b.json.clone().expect("json");
        for r in j["rows"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("detect_ms");
        }
        j["inputs"] = Value::Null;
        let table: Vec<String> = b
            .stdout
            .lines()
            .map(|l| {
                l.rsplit_once(" ")
                    .map_or(l, |(a, _)| a)
                    .trim_end()
                    .to_string()
            })
            .collect();
        (j, table)
    };
    let a = bench(&pcap, &labels, &args);
    a.assert_ok();
    let b = bench(&pcap, &labels, &args);
    b.assert_ok();
    assert_eq!(a.rows().len(), 4);
    assert_eq!(strip(&a), strip(&b));
    // An existing `wormsign analyze` directory gives the same scores.
    let run = wormsign(&[&pcap], &["--no-detect"]);
    run.assert_ok("analyze");
    let c = bench(&run.out(), &labels, &args);
    c.assert_ok();
    assert_eq!(strip(&a), strip(&c));
}

#[test]
fn bad_arguments_are_errors() {
    let (pcap, labels) = dataset("benign");
    let b = bench(&pcap, &labels, &["--sweep", "trw.nope=1..2:1"]);
    assert_eq!(b.code, Some(2), "{}", b.stderr);
    assert!(b.stderr.contains("nope"), "{}", b.stderr);
    let b = bench(&pcap, &labels, &["--sweep", "trw.pd=0.9"]);
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    let b = bench(&pcap, &labels, &["--sweep", "trw.pd=0.99..0.9:0.01"]);
    assert_eq!(b.code, Some(2), "{}", b.stderr);
    let b = bench(&pcap, Path::new("/nonexistent/labels.json"), &[]);
    assert_eq!(b.code, Some(2), "{}", b.stderr);
    assert!(b.stderr.contains("labels.json"), "{}", b.stderr);
}

/// Issue 22: on DriveLife the generator's C&C names are the detector's built-in
/// indicators and the labels date each infection by that lookup, so "every host found,
/// 0 failed contacts to detect" holds by construction. With the indicator list emptied,
/// the other rules must still find every infected host, the right patient zero and the
/// edges, with the protocol visible (the implant answers before a host scans).
/// On flow shapes alone (as from NetFlow or TLS) every infected host is still found, after
/// a few failed first contacts, but the application server's pooled, successful database
/// logins look like password guessing: that false alarm is the flow fallback's known limit,
/// and the only one allowed.
#[test]
fn drivelife_without_the_cnc_shortcut_still_finds_every_host_and_edge() {
    let (pcap, labels) = dataset("drivelife");
    let tmp = tempfile::tempdir().expect("tempdir");
    let no_cnc = tmp.path().join("no_cnc.toml");
    std::fs::write(&no_cnc, "[cnc]\ndomains = []\nips = []\n").expect("rules file");
    let rules = ["--rules", no_cnc.to_str().unwrap()];

    let b = bench(&pcap, &labels, &rules);
    b.assert_ok();
    let r = &b.rows()[0];
    assert_eq!((f(&r["recall"]), f(&r["precision"])), (1.0, 1.0), "{r}");
    assert_eq!(r["patient_zero_ok"], true, "{r}");
    assert_eq!(r["false_alarms"], 0, "{r}");
    assert!(
        f(&r["edge_precision"]) >= 0.95 && f(&r["edge_recall"]) >= 0.95,
        "{r}"
    );
    let protocol = r["ttd_failed_median"].as_u64().expect("median");

    let flow_only = flow_only_tables(&pcap);
    let b = bench(flow_only.path(), &labels, &rules);
    b.assert_ok();
    let r = &b.rows()[0];
    assert_eq!(f(&r["recall"]), 1.0, "{r}");
    assert!(f(&r["edge_recall"]) >= 0.95, "{r}");
    let truth: Value = serde_json::from_slice(&std::fs::read(&labels).expect("labels")).unwrap();
    let heavy_hitters = truth["benign_heavy_hitters"]
        .as_array()
        .expect("heavy hitters");
    for fp in r["false_positives"].as_array().expect("false positives") {
        assert!(
            heavy_hitters.contains(fp),
            "flow-only false alarm {fp} beyond the app server: {r}"
        );
    }
    let flows = r["ttd_failed_median"].as_u64().expect("median");
    // Flow shapes alone wait for scanning evidence; the protocol does not.
    assert!(
        (1..=8).contains(&flows),
        "flow-only median failed first contacts: {flows}"
    );
    assert!(
        protocol <= flows,
        "protocol {protocol} vs flow-only {flows}"
    );
}
