//! `wormsign synth`: determinism, packet validity (tshark), the checked-in datasets, and
//! detection scored against the generator's ground truth (issue 4's acceptance figures:
//! infected-host recall and precision >= 0.99, patient zero correct, infection-edge
//! precision and recall >= 0.95, median time to detect <= 4 failed first contacts, the
//! authorized scanner and benign heavy hitters never infected).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::bench_rules::bench;
use crate::common::{have_tool, read_rows, tool, wormsign, Run};

/// Runs `wormsign synth` into `dir`; returns the capture's bytes and the labels.
pub(crate) fn synth(scenario: &str, seed: u64, scale: f64, dir: &Path) -> (Vec<u8>, Value) {
    synth_with(scenario, seed, scale, &[], dir)
}

/// [`synth`] with `extra` options.
pub(crate) fn synth_with(
    scenario: &str,
    seed: u64,
    scale: f64,
    extra: &[&str],
    dir: &Path,
) -> (Vec<u8>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .args(["synth", "--scenario", scenario, "--seed", &seed.to_string()])
        .args(["--scale", &scale.to_string(), "-q"])
        .args(extra)
        .arg("--out")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("running wormsign synth");
    assert!(
        out.status.success(),
        "wormsign synth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcap = std::fs::read(dir.join("capture.pcap")).expect("capture.pcap");
    let labels = std::fs::read(dir.join("labels.json")).expect("labels.json");
    (
        pcap,
        serde_json::from_slice(&labels).expect("labels.json parses"),
    )
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn synth_is_deterministic_per_seed_and_scale() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, la) = synth("drivelife", 7, 1.0, &tmp.path().join("a"));
    let (b, lb) = synth("drivelife", 7, 1.0, &tmp.path().join("b"));
    assert!(a == b, "same seed, different captures");
    assert_eq!(
        std::fs::read(tmp.path().join("a/labels.json")).unwrap(),
        std::fs::read(tmp.path().join("b/labels.json")).unwrap()
    );
    assert_eq!(la, lb);
    let (c, lc) = synth("drivelife", 8, 1.0, &tmp.path().join("c"));
    assert!(a != c, "another seed gave the same capture");
    assert_ne!(la["infected"], lc["infected"]);
    // --scale grows the background only: more packets, the same outbreak.
    let (d, ld) = synth("drivelife", 7, 2.0, &tmp.path().join("d"));
    assert!(d.len() > a.len() * 5 / 4, "{} vs {}", d.len(), a.len());
    assert_eq!(la["infected"], ld["infected"]);
    // The drivelife outbreak as the issue describes it.
    let infected = la["infected"].as_array().unwrap();
    let gens = infected
        .iter()
        .map(|h| h["generation"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(gens >= 3, "only {gens} generations after patient zero");
    assert!(
        (40..=90).contains(&infected.len()),
        "{} infected",
        infected.len()
    );
    let vectors: BTreeSet<&str> = infected
        .iter()
        .map(|h| h["vector"].as_str().unwrap())
        .collect();
    for v in [
        "rdp_bruteforce",
        "eternalblue_smb",
        "smb_bruteforce",
        "mssql_bruteforce",
    ] {
        assert!(vectors.contains(v), "no {v} infection: {vectors:?}");
    }
}

#[test]
fn synth_packets_are_valid() {
    if !have_tool("tshark") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for scenario in ["drivelife", "wannacry"] {
        let dir = tmp.path().join(scenario);
        synth(scenario, 1, 1.0, &dir);
        let pcap = dir.join("capture.pcap");
        let bad = tool(
            "tshark",
            &[
                "-n",
                "-r",
                pcap.to_str().unwrap(),
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
                "-Y",
                "_ws.malformed || _ws.expert.severity >= error || tcp.checksum.status == 0 \
                 || udp.checksum.status == 0 || ip.checksum.status == 0",
            ],
        );
        assert!(bad.is_empty(), "{scenario}: tshark flags packets:\n{bad}");
        // Every packet was read (no truncation), and DNS answers are real A records.
        let count = tool(
            "tshark",
            &[
                "-n",
                "-r",
                pcap.to_str().unwrap(),
                "-T",
                "fields",
                "-e",
                "frame.number",
            ],
        );
        assert!(
            count.lines().count() > 10_000,
            "{scenario}: {} packets",
            count.lines().count()
        );
        if scenario == "drivelife" {
            let cnc = tool(
                "tshark",
                &[
                    "-n",
                    "-r",
                    pcap.to_str().unwrap(),
                    "-Y",
                    "dns.flags.response == 1 && dns.qry.name == \"t.awcna.com\"",
                    "-T",
                    "fields",
                    "-e",
                    "dns.a",
                ],
            );
            assert!(cnc.lines().any(|l| l == "45.76.102.17"), "{cnc}");
        }
    }
}

/// The checked-in datasets are exactly what the generator makes for their seed.
#[test]
fn datasets_match_the_generator() {
    if !have_tool("gzip") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let tmp = tempfile::tempdir().expect("tempdir");
    for scenario in ["drivelife", "wannacry", "stealthy", "benign"] {
        let dir = root.join(scenario);
        let labels: Value =
            serde_json::from_slice(&std::fs::read(dir.join("labels.json")).expect("labels"))
                .expect("labels parse");
        let seed = labels["seed"].as_u64().expect("seed");
        let fresh = tmp.path().join(scenario);
        let (pcap, _) = synth(scenario, seed, 1.0, &fresh);
        assert_eq!(
            std::fs::read(fresh.join("labels.json")).unwrap(),
            std::fs::read(dir.join("labels.json")).unwrap(),
            "datasets/{scenario}/labels.json is stale (see datasets/README.md)"
        );
        assert!(
            gunzip(&dir.join("capture.pcap.gz")) == pcap,
            "datasets/{scenario}/capture.pcap.gz is stale (see datasets/README.md)"
        );
        assert!(
            gunzip(&dir.join("flow_labels.csv.gz"))
                == std::fs::read(fresh.join("flow_labels.csv")).unwrap(),
            "datasets/{scenario}/flow_labels.csv.gz is stale (see datasets/README.md)"
        );
    }
}

fn gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("gzip");
    assert!(out.status.success(), "gzip -dc {}", path.display());
    out.stdout
}

/// Detection scored against the labels by `wormsign bench-rules` (one row of its JSON:
/// the fields of `wormsign_detect::Score`), over the output of an `analyze` run that got
/// the labels' honeypots and authorized scanners as `--honeypot` and `--allowlist`.
type Score = Value;

fn f(s: &Score, k: &str) -> f64 {
    s[k].as_f64()
        .unwrap_or_else(|| panic!("score field {k} missing: {s}"))
}

fn score(scenario: &str, seed: u64) -> (Score, Run) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, labels) = synth(scenario, seed, 1.0, tmp.path());
    let mut extra: Vec<String> = Vec::new();
    for h in strs(&labels["honeypots"]) {
        extra.extend(["--honeypot".to_string(), h]);
    }
    for s in strs(&labels["authorized_scanners"]) {
        extra.extend(["--allowlist".to_string(), s]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = wormsign(&[tmp.path().join("capture.pcap")], &extra);
    run.assert_ok(scenario);
    let b = bench(&run.out(), &tmp.path().join("labels.json"), &[]);
    assert_eq!(
        b.code,
        Some(0),
        "{scenario}: bench-rules failed: {}",
        b.stderr
    );
    let s = b.rows()[0].clone();
    println!(
        "{scenario} seed {seed}: {} labelled, {} detected, recall {:.3}, precision {:.3}, \
         patient zero {}, edges {} labelled / {} detected: precision {:.3}, recall {:.3}, \
         vectors agree {:.3}; time to detect median {} failed first contacts (all {}), \
         median {} s",
        s["labelled"],
        s["detected"],
        f(&s, "recall"),
        f(&s, "precision"),
        if s["patient_zero_ok"] == true {
            "correct"
        } else {
            "WRONG"
        },
        s["labelled_edges"],
        s["detected_edges"],
        f(&s, "edge_precision"),
        f(&s, "edge_recall"),
        f(&s, "vector_agreement"),
        s["ttd_failed_median"],
        s["ttd_failed"],
        s["ttd_secs_median"],
    );
    for d in strs(&s["edge_diffs"]) {
        println!("  {d}");
    }
    (s, run)
}

/// Host-level acceptance: who is infected, and no benign host is.
fn assert_hosts(s: &Score, what: &str) {
    assert!(
        f(s, "labelled") > 0.0,
        "{what}: the scenario infected nobody"
    );
    assert!(
        f(s, "recall") >= 0.99,
        "{what}: recall {:.3}, missed {}",
        f(s, "recall"),
        s["missed"]
    );
    assert!(
        f(s, "precision") >= 0.99,
        "{what}: precision {:.3}, false positives {}",
        f(s, "precision"),
        s["false_positives"]
    );
    assert!(
        strs(&s["benign_infected"]).is_empty(),
        "{what}: benign hosts infected: {}",
        s["benign_infected"]
    );
    assert!(
        strs(&s["scanner_roles"])
            .iter()
            .all(|r| r == "scanner_allowlisted"),
        "{what}: authorized scanner roles {}",
        s["scanner_roles"]
    );
}

fn assert_patient_zero(s: &Score, what: &str) {
    assert!(
        s["patient_zero_ok"] == true,
        "{what}: wrong patient zero {}",
        s["patient_zero"]
    );
}

fn assert_time_to_detect(s: &Score, what: &str) {
    let m = f(s, "ttd_failed_median");
    assert!(
        m <= 4.0,
        "{what}: median time to detect {m} failed first contacts ({})",
        s["ttd_failed"]
    );
}

fn assert_edges(s: &Score, what: &str) {
    assert!(
        f(s, "edge_precision") >= 0.95 && f(s, "edge_recall") >= 0.95,
        "{what}: edge precision {:.3}, recall {:.3}:\n{}",
        f(s, "edge_precision"),
        f(s, "edge_recall"),
        strs(&s["edge_diffs"]).join("\n")
    );
    assert!(
        f(s, "vector_agreement") >= 0.95,
        "{what}: vectors agree {:.3}",
        f(s, "vector_agreement")
    );
}

/// Scores every seed first (so a failure still prints every seed's figures), then checks.
fn check(scenario: &str, seeds: &[u64], checks: &[fn(&Score, &str)]) {
    let scores: Vec<(u64, Score)> = seeds
        .iter()
        .map(|&seed| (seed, score(scenario, seed).0))
        .collect();
    for (seed, s) in &scores {
        for c in checks {
            c(s, &format!("{scenario} seed {seed}"));
        }
    }
}

#[test]
fn drivelife_detection_matches_ground_truth() {
    check(
        "drivelife",
        &[1, 2, 3],
        &[
            assert_hosts,
            assert_patient_zero,
            assert_time_to_detect,
            assert_edges,
        ],
    );
}

#[test]
fn wannacry_infected_hosts_and_patient_zero() {
    check("wannacry", &[1, 2], &[assert_hosts, assert_patient_zero]);
}

#[test]
fn wannacry_time_to_detect() {
    check("wannacry", &[1, 2], &[assert_time_to_detect]);
}

#[test]
fn wannacry_infection_edges() {
    check("wannacry", &[1, 2], &[assert_edges]);
}

#[test]
fn stealthy_infected_hosts() {
    check("stealthy", &[1, 2], &[assert_hosts]);
}

#[test]
fn stealthy_patient_zero_and_edges() {
    check("stealthy", &[1, 2], &[assert_patient_zero, assert_edges]);
}

#[test]
fn stealthy_time_to_detect() {
    check("stealthy", &[1, 2], &[assert_time_to_detect]);
}

#[test]
fn benign_scenario_has_no_infected_host() {
    for seed in [1, 2] {
        let (s, run) = score("benign", seed);
        assert_eq!(s["labelled"], 0);
        assert!(
            strs(&s["false_positives"]).is_empty(),
            "benign seed {seed}: infected {}",
            s["false_positives"]
        );
        assert_eq!(
            s["detected_edges"], 0,
            "benign seed {seed}: propagation edges"
        );
        assert!(strs(&s["benign_infected"]).is_empty());
        assert!(
            strs(&s["scanner_roles"])
                .iter()
                .all(|r| r == "scanner_allowlisted"),
            "{}",
            s["scanner_roles"]
        );
        // The confounders do raise alerts (so this test can fail), never infections.
        let alerts = read_rows(&run.out().join("alerts.parquet"));
        assert!(
            alerts.iter().any(|a| a["allowlisted"].bool()),
            "benign seed {seed}: the authorized scanner raised no alert"
        );
    }
}
