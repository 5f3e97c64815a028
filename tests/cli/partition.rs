//! `analyze --partition-by hour|day`: Hive-partitioned tables that hold exactly the
//! rows of the single-file layout, each in the partition of its `ts`, and runs over
//! different inputs into one directory that add up to one table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, Row};

/// 2019-01-01T22:30:00Z
const START: u32 = 1_546_381_800;

/// A pcap of single-packet UDP flows from 10.0.0.`src` at `START + offset` seconds.
fn udp_capture(flows: &[(u32, u8)]) -> Vec<u8> {
    // pcap 2.4, microseconds, snaplen 65535, Ethernet
    let mut out = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    out.extend([2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    for &(offset, src) in flows {
        let mut ip = vec![0x45, 0, 0, 28 + 4, 0, 1, 0, 0, 64, 17, 0, 0];
        ip.extend([10, 0, 0, src, 10, 0, 1, 1]);
        ip.extend([0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0]); // 12345 -> 53
        ip.extend(b"ping");
        let mut frame = vec![0; 12];
        frame.extend([0x08, 0x00]);
        frame.extend(ip);
        out.extend((START + offset).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend(frame);
    }
    out
}

/// Flows on both sides of hour and day boundaries (22:30 to 02:00 UTC).
const FIRST: [(u32, u8); 5] = [(0, 1), (1799, 2), (1801, 3), (5400, 4), (12600, 5)];
const SECOND: [(u32, u8); 2] = [(60, 6), (9000, 7)];

/// Every flow goes to 10.0.1.1: as a honeypot, each source gets an alert, so the alerts
/// tell which flow rows detection read.
const HONEYPOT: [&str; 2] = ["--honeypot", "10.0.1.1"];

/// The sources of the honeypot alerts in `dir/alerts.jsonl`, sorted.
fn honeypot_sources(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("alerts.jsonl")).expect("alerts.jsonl");
    let mut srcs: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|a| a["rule"] == "honeypot")
        .map(|a| a["src_ip"].as_str().expect("src_ip").to_string())
        .collect();
    srcs.sort();
    srcs
}

/// `10.0.0.N` for the sources of `flows`, sorted.
fn sources(flows: &[&[(u32, u8)]]) -> Vec<String> {
    let mut v: Vec<String> = flows
        .iter()
        .flat_map(|f| f.iter().map(|&(_, src)| format!("10.0.0.{src}")))
        .collect();
    v.sort();
    v
}

fn analyze(input: &Path, out: &Path, extra: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .arg("analyze")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["-q", "--threads", "2"])
        .args(extra)
        .status()
        .expect("run wormsign");
    assert!(status.success(), "analyze {extra:?}: {status}");
}

/// Every `.parquet` file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The rows of a partitioned table, checking each against its partition directory.
fn partitioned_rows(table: &Path, hour: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for file in files(table) {
        let parts: Vec<String> = file
            .parent()
            .unwrap()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        for row in common::read_rows(&table.join(&file)) {
            // The partition of the row's time as GNU date computes it (not wormsign's own
            // calendar code, which wrote the directories).
            let secs = row["ts"].int().div_euclid(1_000_000);
            let out = common::tool("date", &["-u", &format!("-d@{secs}"), "+day=%F hour=%H"]);
            let mut expect: Vec<String> = out.split_whitespace().map(String::from).collect();
            if !hour {
                expect.truncate(1);
            }
            assert_eq!(parts, expect, "{}: row at {secs} s", file.display());
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| (r["ts"].int(), r["orig_h"].str().to_string()));
    rows
}

fn single_rows(path: &Path) -> Vec<Row> {
    let mut rows = common::read_rows(path);
    rows.sort_by_key(|r| (r["ts"].int(), r["orig_h"].str().to_string()));
    rows
}

#[test]
fn partitions_hold_the_single_file_rows_by_utc_hour_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("first.pcap");
    std::fs::write(&input, udp_capture(&FIRST)).unwrap();
    let single = dir.path().join("single");
    analyze(&input, &single, &HONEYPOT);
    let expected = single_rows(&single.join("flows.parquet"));
    assert_eq!(expected.len(), FIRST.len());
    assert_eq!(honeypot_sources(&single), sources(&[&FIRST]));

    for (period, hour) in [("hour", true), ("day", false)] {
        let out = dir.path().join(period);
        analyze(
            &input,
            &out,
            &[&["--partition-by", period][..], &HONEYPOT].concat(),
        );
        assert!(!out.join("flows.parquet").exists());
        let rows = partitioned_rows(&out.join("flows"), hour);
        assert_eq!(rows, expected, "--partition-by {period}");
        let dirs: BTreeSet<PathBuf> = files(&out.join("flows"))
            .iter()
            .map(|f| f.parent().unwrap().to_path_buf())
            .collect();
        let want: Vec<&str> = if hour {
            vec![
                "day=2019-01-01/hour=22",
                "day=2019-01-01/hour=23",
                "day=2019-01-02/hour=00",
                "day=2019-01-02/hour=02",
            ]
        } else {
            vec!["day=2019-01-01", "day=2019-01-02"]
        };
        assert_eq!(dirs, want.iter().map(PathBuf::from).collect());
        // Detection reads the partitioned tables as it reads the single files: every
        // partition's flows (one honeypot alert per source), and the same alerts.
        assert_eq!(
            honeypot_sources(&out),
            sources(&[&FIRST]),
            "--partition-by {period}: alerts for every partition's flows"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("alerts.jsonl")).unwrap(),
            std::fs::read_to_string(single.join("alerts.jsonl")).unwrap(),
            "--partition-by {period}: alerts.jsonl differs from the single-file run's"
        );
    }
}

#[test]
fn runs_into_one_directory_form_one_table_and_reruns_replace_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (
        dir.path().join("first.pcap"),
        dir.path().join("second.pcap"),
    );
    std::fs::write(&first, udp_capture(&FIRST)).unwrap();
    std::fs::write(&second, udp_capture(&SECOND)).unwrap();
    let out = dir.path().join("out");
    // An earlier unpartitioned run's file is replaced by the partitioned layout.
    analyze(&first, &out, &["--no-detect"]);
    assert!(out.join("flows.parquet").is_file());

    let hour = ["--partition-by", "hour", "--no-detect"];
    analyze(&first, &out, &hour);
    assert!(!out.join("flows.parquet").exists());
    let after_first = files(&out.join("flows"));
    analyze(&second, &out, &hour);
    let both = partitioned_rows(&out.join("flows"), true);
    assert_eq!(both.len(), FIRST.len() + SECOND.len());
    // Same inputs and options again: the same files, rewritten, not duplicated.
    analyze(&first, &out, &hour);
    assert_eq!(partitioned_rows(&out.join("flows"), true), both);
    let all = files(&out.join("flows"));
    assert!(after_first.iter().all(|f| all.contains(f)));
    assert_eq!(all.len(), after_first.len() + SECOND.len());
    // Detection over the directory reads every run's rows: a honeypot alert for each
    // source of both runs.
    let status = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .args(["detect", "-q"])
        .args(HONEYPOT)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(honeypot_sources(&out), sources(&[&FIRST, &SECOND]));
}
