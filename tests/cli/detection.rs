//! Worm-propagation detection from the command line: `wormsign rules`, detection at the
//! end of `wormsign analyze`, and `wormsign detect DIR` over stored tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{self, read_rows, wormsign, wormsign_ok, Row, Run};

const DETECTION_FILES: [&str; 12] = [
    "alerts.parquet",
    "alerts.jsonl",
    "hosts.parquet",
    "propagation.parquet",
    "propagation.svg",
    "propagation.dot",
    "timeline.parquet",
    "segmentation.parquet",
    "remediation.parquet",
    "remediation.csv",
    "report.md",
    "report.html",
];

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap.gz")
}

/// The detection outputs of a directory: alerts.jsonl bytes and the three tables' rows.
struct Outputs {
    jsonl: String,
    alerts: Vec<Row>,
    hosts: Vec<Row>,
    propagation: Vec<Row>,
    timeline: Vec<Row>,
    remediation: Vec<Row>,
    report: String,
}

fn outputs(dir: &Path) -> Outputs {
    for f in DETECTION_FILES {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    Outputs {
        jsonl: std::fs::read_to_string(dir.join("alerts.jsonl")).expect("alerts.jsonl"),
        alerts: read_rows(&dir.join("alerts.parquet")),
        hosts: read_rows(&dir.join("hosts.parquet")),
        propagation: read_rows(&dir.join("propagation.parquet")),
        timeline: read_rows(&dir.join("timeline.parquet")),
        remediation: read_rows(&dir.join("remediation.parquet")),
        report: std::fs::read_to_string(dir.join("report.md")).expect("report.md"),
    }
}

fn assert_same(a: &Outputs, b: &Outputs, what: &str) {
    assert!(a.jsonl == b.jsonl, "{what}: alerts.jsonl differs");
    assert_eq!(a.alerts, b.alerts, "{what}: alerts.parquet rows differ");
    assert_eq!(a.hosts, b.hosts, "{what}: hosts.parquet rows differ");
    assert_eq!(
        a.propagation, b.propagation,
        "{what}: propagation.parquet rows differ"
    );
    assert_eq!(
        a.timeline, b.timeline,
        "{what}: timeline.parquet rows differ"
    );
    assert_eq!(
        a.remediation, b.remediation,
        "{what}: remediation.parquet rows differ"
    );
    assert!(a.report == b.report, "{what}: report.md differs");
}

/// Every alerts.jsonl line parses as a JSON object, and the lines match the Parquet rows.
fn check_jsonl(o: &Outputs) {
    let lines: Vec<Value> = o
        .jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    assert_eq!(
        lines.len(),
        o.alerts.len(),
        "alerts.jsonl vs alerts.parquet"
    );
    for (j, r) in lines.iter().zip(&o.alerts) {
        assert_eq!(j["alert_id"].as_str(), Some(r["alert_id"].str()));
        assert_eq!(j["rule"].as_str(), Some(r["rule"].str()));
        assert_eq!(j["tier"].as_str(), Some(r["tier"].str()));
        assert_eq!(j["src_ip"].as_str(), Some(r["src_ip"].str()));
        assert_eq!(j["attempts"].as_i64(), Some(r["attempts"].int()));
        assert_eq!(j["failed_ratio"].as_f64(), Some(r["failed_ratio"].float()));
    }
}

fn host_role(o: &Outputs, ip: &str) -> Option<String> {
    o.hosts
        .iter()
        .find(|h| h["ip"].str() == ip)
        .map(|h| h["role"].str().to_string())
}

/// Runs `wormsign detect DIR --out DIR2 EXTRA...` and returns DIR2's outputs.
fn detect_into(run: &Run, name: &str, extra: &[&str]) -> Outputs {
    let in_dir = run.out();
    let out2 = run.dir.path().join(name);
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "detect".as_ref(),
        in_dir.as_os_str(),
        "--out".as_ref(),
        out2.as_os_str(),
        "-q".as_ref(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    wormsign_ok(&args);
    outputs(&out2)
}

#[test]
fn rules_output_parses_back() {
    let out = wormsign_ok(&["rules".as_ref()]);
    let text = String::from_utf8(out.stdout).expect("utf-8 rules");
    assert!(text.contains("internal"), "rules output: {text}");
    let run = wormsign(&[sample()], &[]);
    run.assert_ok("sample");
    let rules = run.dir.path().join("rules.toml");
    std::fs::write(&rules, &text).expect("writing rules.toml");
    // The printed defaults read back as the defaults: the same results.
    let with_rules = detect_into(&run, "with_rules", &["--rules", rules.to_str().unwrap()]);
    assert_same(&outputs(&run.out()), &with_rules, "--rules defaults");
}

#[test]
fn wannacry_lateral_end_to_end() {
    let Some(pcap) = wormsign_testutil::shared_capture("smb/wannacry_lateral.pcap") else {
        return;
    };
    let run = wormsign(&[pcap], &[]);
    run.assert_ok("wannacry_lateral");
    let o = outputs(&run.out());
    check_jsonl(&o);
    let role = host_role(&o, "192.168.116.149");
    assert!(
        matches!(role.as_deref(), Some("patient_zero" | "infected")),
        "192.168.116.149 role {role:?}; hosts {:?}",
        o.hosts
    );
    let report = std::fs::read_to_string(run.out().join("report.md")).unwrap();
    assert!(report.contains("192.168.116.149"));
    // Its isolate row says once how it was infected, though three alerts rest on it (the
    // patient zero text holds a "; " itself, which the row's details used to be split on,
    // so it was listed three times).
    let isolate = o
        .remediation
        .iter()
        .find(|r| r["host"].str() == "192.168.116.149" && r["action"].str() == "isolate")
        .expect("an isolate row for the worm host");
    let detail = isolate["detail"].str();
    assert!(
        detail == "patient zero; entry point not visible"
            || (detail.starts_with("infected by ") && !detail.contains("; ")),
        "{detail}"
    );
    let html = std::fs::read_to_string(run.out().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("192.168.116.149"));

    // analyze detected from what its pipeline stored, with the pass for the C&C
    // addresses the capture's DNS resolved only if there were any; detect read the files.
    let input = &run.summary()["detection"]["input"];
    assert!(
        input.as_str().is_some_and(|i| i.starts_with("pipeline")),
        "{input}"
    );
    let again = detect_into(&run, "again", &[]);
    assert_same(&o, &again, "analyze (fed from the pipeline) vs detect DIR");
}

/// More usable flows than `max_pending_flows` (the WannaCry trace's 75, with a cap of 4):
/// every batch of four is sorted and written to a temporary file, and the batches merged
/// at the end, so with 1, 2 and 8 threads no flow reaches the rules late and every output
/// is that of one sorted run, in `analyze` (still fed from the pipeline) and in `detect
/// DIR`; the summary counts the flows held in files. Where no temporary file can be
/// made, up to 16 times the cap are held in memory: at a cap of 8 every output is still
/// that of one sorted run, warned of and counted. At a cap of 4 `analyze` reads the tables
/// back and the batches beyond the held flows go through as they come: the run still
/// succeeds, writes every output, says why, and counts the flows held and those that
/// came late.
#[test]
fn detection_beyond_its_cap_merges_sorted_batches_for_any_thread_count() {
    let Some(pcap) = wormsign_testutil::shared_capture("smb/wannacry_lateral.pcap") else {
        return;
    };
    let whole = wormsign(std::slice::from_ref(&pcap), &["--threads", "2"]);
    whole.assert_ok("default cap");
    let reference = outputs(&whole.out());
    let used = whole.summary()["detection"]["flows_used"].as_u64();
    // Cap 8 without files must hold them all (16 × 8), cap 4 must let a batch go (16 × 4).
    assert!(
        used.is_some_and(|n| n > 16 * 4 + 1 && n <= 16 * 8),
        "{used:?} usable flows"
    );
    let in_files = whole.summary()["detection"]["flows_in_files"].as_u64();
    assert_eq!(in_files, Some(0), "all in memory by default");
    let rules = whole.dir.path().join("cap4.toml");
    std::fs::write(&rules, "max_pending_flows = 4\n").expect("writing cap4.toml");
    let rules = rules.to_str().expect("a UTF-8 temporary path");
    for threads in ["1", "2", "8"] {
        let run = wormsign(
            std::slice::from_ref(&pcap),
            &["--threads", threads, "--rules", rules],
        );
        run.assert_ok(threads);
        let d = &run.summary()["detection"];
        assert_eq!(
            (d["input"].as_str(), d["flows_used"].as_u64()),
            (Some("pipeline"), used),
            "{threads} threads"
        );
        assert_eq!(d["late_flows"].as_u64(), Some(0), "{threads} threads");
        let held = used.map(|n| wormsign_testutil::held_in_files(n, 4));
        assert_eq!(d["flows_in_files"].as_u64(), held, "{d}");
        let what = format!("cap 4, {threads} threads");
        assert_same(&reference, &outputs(&run.out()), &what);
    }
    let again = detect_into(&whole, "cap4", &["--rules", rules]);
    assert_same(&reference, &again, "detect DIR, cap 4");

    let held_note = "usable flows beyond max_pending_flows (see TMPDIR): ";
    let cap8 = whole.dir.path().join("cap8.toml");
    std::fs::write(&cap8, "max_pending_flows = 8\n").expect("writing cap8.toml");
    let (stderr, d, out) = analyze_without_tmpdir(&pcap, &cap8);
    let held = used.map(|n| n - 8);
    assert_eq!(
        (d["input"].as_str(), d["late_flows"].as_u64()),
        (Some("pipeline"), Some(0)),
        "{d}"
    );
    assert_eq!(d["flows_held_without_files"].as_u64(), held, "{d}");
    let printed: Vec<&str> = stderr.lines().collect();
    let want = format!("{held_note}{} more were held in memory", held.unwrap_or(0));
    assert!(
        printed.len() == 1 && printed[0].ends_with(&want),
        "{stderr}"
    );
    assert_same(&reference, &out, "no temporary directory, cap 8");

    let (stderr, d, _) = analyze_without_tmpdir(&pcap, Path::new(rules));
    assert!(
        stderr.contains(
            "warning: detection: no temporary file for the usable flows beyond max_pending_flows ("
        ) && stderr.contains(
            "usable flows are held in memory without files): the stored tables were read back"
        ),
        "{stderr}"
    );
    assert_eq!(
        (d["input"].as_str(), d["flows_used"].as_u64()),
        (Some("tables"), used),
        "without a temporary directory"
    );
    let held = used.map(|n| wormsign_testutil::held_without_files(n, 4));
    assert_eq!(d["flows_held_without_files"].as_u64(), held, "{d}");
    assert!(stderr.contains(held_note), "{stderr}");
    // How many came late depends on the order the shards stored them in; any are
    // warned of.
    assert_eq!(d["flows_unread"].as_u64(), Some(0), "{d}");
    assert_eq!(
        d["flows_in_files"].as_u64(),
        Some(0),
        "no file, none in files: {d}"
    );
    assert_eq!(
        d["late_flows"].as_u64().is_some_and(|n| n > 0),
        stderr.contains("usable flows reached the rules after newer ones"),
        "{d} {stderr}"
    );
    let warned = d["warnings"].as_array().expect("detection warnings");
    let printed = stderr
        .lines()
        .filter(|l| l.contains("warning: detection: "));
    assert_eq!(warned.len(), printed.count(), "{d} {stderr}");
}

/// On a capture longer than its flows, `analyze` runs the rules over the held flows that
/// started before every flow still to come while the input is read (beyond a cap of
/// 100, with 5 s timeouts, most of a synthetic outbreak's 45 minutes at one thread), and
/// for any thread count finds what `wormsign detect` finds over the tables, C&C contacts
/// included.
/// Given the capture's second half first, flows come out of time order after the rules
/// read later ones: it says so, reads the tables back, and finds the same again.
#[test]
fn detection_during_the_run_is_the_detection_over_the_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (whole, late_half) = (dir.path().join("whole"), dir.path().join("late"));
    crate::synth::synth("drivelife", 1, 10.0, &whole);
    crate::synth::synth_with(
        "drivelife",
        1,
        10.0,
        &["--capture-start", "1500"],
        &late_half,
    );
    let rules = dir.path().join("cap100.toml");
    std::fs::write(&rules, "max_pending_flows = 100\n").expect("writing cap100.toml");
    let rules = rules.to_str().expect("a UTF-8 temporary path");
    let short = [
        "--rules",
        rules,
        "--tcp-timeout",
        "5",
        "--udp-timeout",
        "5",
        "--icmp-timeout",
        "5",
    ];
    let capture = whole.join("capture.pcap");
    for threads in ["1", "2", "3"] {
        let run = wormsign(
            std::slice::from_ref(&capture),
            &[&short[..], &["--threads", threads]].concat(),
        );
        run.assert_ok(threads);
        let d = &run.summary()["detection"];
        let (used, streamed) = (d["flows_used"].as_u64(), d["flows_streamed"].as_u64());
        // One shard's bounds come in its own order: how much goes early is fixed. With
        // more, it depends on how far the slowest shard has got (under a loaded CI
        // machine, 17 of 3 460 at 3 threads), so only the result is held there.
        let early_enough = threads != "1" || streamed > used.map(|n| n / 2);
        assert!(
            d["input"] == "pipeline" && used > Some(3000) && early_enough,
            "{threads} threads: {d}"
        );
        let ours = outputs(&run.out());
        let cnc = ours.alerts.iter().filter(|a| a["rule"].str() == "cnc_ip");
        assert!(cnc.count() > 10, "{threads} threads: C&C contacts");
        let over_tables = detect_into(&run, "detected", &["--rules", rules]);
        assert_same(&ours, &over_tables, &format!("{threads} threads"));
    }
    let inputs = [late_half.join("capture.pcap"), capture];
    let run = wormsign(&inputs, &[&short[..], &["--threads", "1"]].concat());
    run.assert_ok("second half first");
    let d = &run.summary()["detection"];
    assert_eq!(
        (d["input"].as_str(), d["flows_streamed"].as_u64()),
        (Some("tables"), Some(0)),
        "{d}"
    );
    assert!(
        run.stderr.contains("usable flows came out of time order")
            && run.stderr.contains("the stored tables were read back"),
        "{}",
        run.stderr
    );
    let over_tables = detect_into(&run, "detected", &["--rules", rules]);
    assert_same(&outputs(&run.out()), &over_tables, "second half first");
}

/// `analyze --threads 8 --rules RULES` of `pcap` with `TMPDIR` naming a missing
/// directory (beside `rules`): its stderr (it must succeed), the summary's detection
/// counters and its outputs.
fn analyze_without_tmpdir(pcap: &Path, rules: &Path) -> (String, Value, Outputs) {
    let missing = rules.with_file_name("missing");
    let rules = rules.to_str().expect("a UTF-8 rules path");
    let env = [("TMPDIR", missing.as_os_str())];
    let run = common::wormsign_with_env(&[pcap], &["--threads", "8", "--rules", rules], &env);
    run.assert_ok("without a temporary directory");
    let detection = run.summary()["detection"].clone();
    (run.stderr.clone(), detection, outputs(&run.out()))
}

#[test]
fn sample_smb_scanner_is_alerted_and_infected() {
    let run = wormsign(&[sample()], &[]);
    run.assert_ok("sample");
    // The source with by far the most distinct 445 destinations.
    let mut targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in run.flows() {
        if f["resp_p"].int() == 445 && f["ip_proto"].int() == 6 {
            targets
                .entry(f["orig_h"].str().to_string())
                .or_default()
                .insert(f["resp_h"].str().to_string());
        }
    }
    let mut counts: Vec<(usize, String)> = targets.into_iter().map(|(k, v)| (v.len(), k)).collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let (n, scanner) = counts.first().cloned().expect("a 445 source");
    let second = counts.get(1).map_or(0, |c| c.0);
    assert!(
        n >= 10 && n > 4 * second,
        "no clear 445 scanner: {counts:?}"
    );

    let o = outputs(&run.out());
    check_jsonl(&o);
    for rule in ["trw", "scan_fanout"] {
        let alert = o
            .alerts
            .iter()
            .find(|a| a["src_ip"].str() == scanner && a["rule"].str() == rule)
            .unwrap_or_else(|| panic!("no {rule} alert for {scanner}: {:?}", o.alerts));
        let tier = alert["tier"].str();
        assert!(matches!(tier, "hour" | "day"), "{rule} tier {tier}");
        assert_eq!(alert["service"].str(), "smb");
    }
    let role = host_role(&o, &scanner);
    assert!(
        matches!(role.as_deref(), Some("patient_zero" | "infected")),
        "{scanner} role {role:?}"
    );
}

#[test]
fn detection_is_identical_for_any_thread_count() {
    let one = wormsign(&[sample()], &["--threads", "1"]);
    one.assert_ok("threads 1");
    let two = wormsign(&[sample()], &["--threads", "2"]);
    two.assert_ok("threads 2");
    assert_eq!(two.n("flows_evicted"), 0);
    assert_same(
        &outputs(&one.out()),
        &outputs(&two.out()),
        "--threads 1 vs 2",
    );
    // Fed from the pipeline, and the same as reading the stored tables back.
    assert_eq!(two.summary()["detection"]["input"], "pipeline");
    assert_same(
        &outputs(&two.out()),
        &detect_into(&two, "again", &[]),
        "analyze (fed from the pipeline) vs detect DIR",
    );
}

#[test]
fn propagation_rows_are_in_infection_time_order() {
    // docs/schema.md: propagation.parquet holds "one row per infection edge, in
    // infection-time order". DriveLife (README's first command) has 65 edges; the small
    // sample has none, so it could not show an order.
    let drivelife =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/drivelife/capture.pcap.gz");
    let run = wormsign(
        &[drivelife],
        &["--honeypot", "10.200.0.99", "--allowlist", "10.164.1.13"],
    );
    run.assert_ok("drivelife");
    let stored: Vec<i64> = read_rows(&run.out().join("propagation.parquet"))
        .iter()
        .map(|r| r["infected_at"].int())
        .collect();
    assert!(
        stored.len() >= 2,
        "too few edges to check their order: {stored:?}"
    );
    assert!(
        stored.windows(2).all(|w| w[0] <= w[1]),
        "propagation.parquet rows not in infected_at order: {stored:?}"
    );
}

#[test]
fn no_detect_writes_no_detection_files() {
    let run = wormsign(&[sample()], &["--no-detect"]);
    run.assert_ok("--no-detect");
    assert!(run.out().join("flows.parquet").is_file());
    for f in DETECTION_FILES {
        assert!(!run.out().join(f).exists(), "{f} written with --no-detect");
    }
}

/// 5 000 `decoyN.com` and 5 000 `xN.updates.org` suffixes: an indicator file the size of
/// a threat-intelligence feed, sharing labels with the names it must not match.
fn decoys() -> String {
    (0..5_000)
        .map(|i| format!("decoy{i}.com\nx{i}.updates.org\n"))
        .collect()
}

/// Whether `name` is under one of `suffixes` (lower case), as C&C names are matched.
fn under_any(name: &str, suffixes: &[&str]) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let under = |s: &&str| name == *s || name.ends_with(&format!(".{s}"));
    suffixes.iter().any(under)
}

/// The sources of `cnc_dns` alerts when `wormsign detect` reads `run`'s tables with the
/// built-in C&C list emptied and `indicators` (an indicator file's text) the only one.
fn cnc_dns_sources(run: &Run, name: &str, indicators: &str) -> BTreeSet<String> {
    let rules = run.dir.path().join("no-builtin-cnc.toml");
    std::fs::write(&rules, "[cnc]\ndomains = []\n").expect("rules file");
    let feed = run.dir.path().join(format!("{name}.txt"));
    std::fs::write(&feed, indicators).expect("indicator file");
    let args = [
        "--rules",
        rules.to_str().unwrap(),
        "--indicators",
        feed.to_str().unwrap(),
    ];
    let o = detect_into(run, name, &args);
    let cnc = o.alerts.iter().filter(|a| a["rule"].str() == "cnc_dns");
    cnc.map(|a| a["src_ip"].str().to_string()).collect()
}

/// A suffix listed after 10 000 others, many sharing its labels ([`decoys`], beside the
/// sample's `hostN.updates.org` names), is matched like a built-in one: every client that
/// asked a name under it (read from dns.parquet) gets a `cnc_dns` alert, and no other
/// client does; the decoys alone raise none.
#[test]
fn a_suffix_at_the_end_of_a_long_indicator_feed_is_matched() {
    let run = wormsign(&[sample()], &["--no-detect"]);
    run.assert_ok("--no-detect");
    let askers: BTreeSet<String> = run
        .dns()
        .iter()
        .filter(|r| !r["is_response"].bool() && under_any(r["qname"].str(), &["updates.com"]))
        .map(|r| r["client_h"].str().to_string())
        .collect();
    assert!(askers.len() >= 10, "too few clients asked: {askers:?}");
    let feed = format!("{}updates.com\n", decoys());
    assert_eq!(cnc_dns_sources(&run, "feed", &feed), askers);
    assert_eq!(cnc_dns_sources(&run, "decoys", &decoys()), BTreeSet::new());
}

/// The same on traffic nobody here made, against tshark's view of who asked what: nDPI's
/// iodine tunnel (every query under `pirate.sea`) and Zeek's hour of ticks, whose names
/// are in mixed case (`QfhHbbMvRk.de`; three of them are listed). Listed in upper case
/// after the decoys, each alerts exactly the clients tshark shows asking a name under
/// it.
#[test]
fn indicator_feeds_alert_the_askers_tshark_sees_in_real_captures() {
    let Some(dir) = common::captures_and("tshark") else {
        return;
    };
    for capture in ["dns/dns_tunnel_iodine.pcap", "dns/dns_ticks_1hr.pcap"] {
        let path = dir.join(capture);
        let queries = common::tshark_fields(
            &path,
            &["-Y", "dns.flags.response == 0"],
            &["ip.src", "dns.qry.name"],
        );
        let queries: Vec<(&str, &str)> =
            queries.lines().filter_map(|l| l.split_once('\t')).collect();
        let mut names: Vec<String> = queries.iter().map(|q| q.1.to_ascii_lowercase()).collect();
        names.sort();
        let listed: Vec<&str> = match capture {
            "dns/dns_tunnel_iodine.pcap" => vec!["pirate.sea"],
            _ => names.iter().take(3).map(String::as_str).collect(),
        };
        let askers: BTreeSet<String> = queries
            .iter()
            .filter(|(_, name)| under_any(name, &listed))
            .map(|(src, _)| src.to_string())
            .collect();
        assert!(!askers.is_empty(), "{capture}: nobody asked {listed:?}");
        let run = wormsign(&[&path], &["--no-detect"]);
        run.assert_ok(capture);
        let feed = format!("{}{}\n", decoys(), listed.join("\n").to_uppercase());
        assert_eq!(cnc_dns_sources(&run, "feed", &feed), askers, "{capture}");
    }
}
