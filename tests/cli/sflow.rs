//! sFlow v5 inside captures: flow samples' packet headers metered into flows
//! (source = "sflow"), counter samples counted and skipped, checked against tshark's
//! reading of the same datagrams on the shared corpus's four sFlow captures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{self, capture, captures, tool, wormsign};

const SFLOW_CAPTURES: [&str; 4] = [
    "netflow/ndpi_sflow.pcap",
    "netflow/sflow_qinq_sample.pcap",
    "netflow/sflow_v5_raw_samples.pcap",
    "netflow/tcpdump_sflow_counters.pcap",
];

/// An unordered address pair.
fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// tshark's `fields` of a capture's sFlow datagrams, a line each, every occurrence of a
/// field (comma-separated): a datagram holds several samples and headers.
fn sflow_fields(path: &Path, fields: &[&str]) -> String {
    let path = path.display().to_string();
    let mut args = vec![
        "-r",
        &path,
        "-Y",
        "sflow",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
    ];
    for field in fields {
        args.extend(["-e", field]);
    }
    tool("tshark", &args)
}

/// What tshark reads in a capture's sFlow datagrams: flow samples, counter samples, and
/// the address pairs of the sampled packets (each IP header after the datagram's own),
/// with how many samples each has.
fn tshark_sflow(file: &str) -> (u64, u64, BTreeMap<(String, String), u64>) {
    let fields = [
        "sflow_245.sampletype",
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
    ];
    let text = sflow_fields(&capture(file), &fields);
    let (mut flow, mut counters, mut pairs) = (0, 0, BTreeMap::new());
    for line in text.lines() {
        let c: Vec<Vec<&str>> = line
            .split('\t')
            .map(|f| f.split(',').filter(|v| !v.is_empty()).collect())
            .collect();
        for t in &c[0] {
            match *t {
                "1" | "3" => flow += 1,
                "2" | "4" => counters += 1,
                _ => {}
            }
        }
        // The datagram's own header is the first IPv4 one (these exports go over IPv4).
        let v4 = c[1].iter().zip(&c[2]).skip(1);
        for (a, b) in v4.chain(c[3].iter().zip(&c[4])) {
            *pairs.entry(pair(a, b)).or_default() += 1;
        }
    }
    (flow, counters, pairs)
}

#[test]
fn sampled_headers_become_flows_that_tshark_agrees_with() {
    if captures().is_none() {
        return;
    }
    for file in SFLOW_CAPTURES {
        let run = wormsign(&[capture(file)], &[]);
        run.assert_ok(file);
        let (flow_samples, counter_samples, want) = tshark_sflow(file);
        let sflow = &run.summary()["sflow"];
        assert_eq!(sflow["flow_samples"], flow_samples, "{file}");
        assert_eq!(sflow["counter_samples"], counter_samples, "{file}");
        let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
        for r in run.flows().iter().filter(|r| r["source"].str() == "sflow") {
            let packets = r["orig_pkts"].int() + r["resp_pkts"].int();
            *got.entry(pair(r["orig_h"].str(), r["resp_h"].str()))
                .or_default() += packets as u64;
            let rate = r["sampling_interval"].int();
            assert!(rate > 1, "{file}: sampling rate {rate}");
            assert_eq!(r["pkts_scaled"].int(), packets * rate, "{file}");
        }
        assert_eq!(got, want, "{file}: sampled packets per address pair");
        // The export datagrams themselves are not metered as UDP flows.
        assert!(
            run.flows().iter().all(|r| r["resp_p"].int() != 6343),
            "{file}"
        );
    }
}

/// The sources of scan alerts (fan-out, TRW, failed contacts) and of every alert.
fn alerted(out: &std::path::Path) -> (BTreeSet<String>, BTreeMap<String, usize>) {
    let rows = common::read_rows(&out.join("alerts.parquet"));
    let scans = rows
        .iter()
        .filter(|r| matches!(r["rule"].str(), "scan_fanout" | "trw" | "failed_contacts"))
        .map(|r| r["src_ip"].str().to_string())
        .collect();
    let mut rules = BTreeMap::new();
    for r in &rows {
        *rules.entry(r["rule"].str().to_string()).or_default() += 1;
    }
    (scans, rules)
}

#[test]
fn fan_out_holds_on_a_sampled_scenario_and_outcome_rules_stay_silent() {
    let capture = common::dataset("drivelife").join("capture.pcap.gz");
    let labels: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::dataset("drivelife").join("labels.json")).unwrap(),
    )
    .unwrap();
    let names = |key: &str| -> BTreeSet<String> {
        let host = |h: &serde_json::Value| h.as_str().or(h["ip"].as_str()).unwrap().to_string();
        labels[key].as_array().unwrap().iter().map(host).collect()
    };
    let infected = names("infected");
    let noisy: BTreeSet<String> = &names("authorized_scanners") | &names("benign_heavy_hitters");
    let dir = tempfile::tempdir().unwrap();
    let sampled = dir.path().join("sflow-8.pcap");
    let made = wormsign_synth::sflow::sample_capture(&capture, 8, 7, &sampled).unwrap();
    // tshark reads every sample the sampler wrote.
    let types = sflow_fields(&sampled, &["sflow_245.sampletype"]);
    let samples: usize = types.lines().map(|l| l.split(',').count()).sum();
    assert_eq!(samples as u64, made.samples);
    // Fan-out at 1 in 8 needs its threshold scaled: of a scanner's ten contacts in a
    // minute, with two or three packets each, about a quarter are sampled at all.
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[scan]\nfanout_threshold = 2\n").unwrap();
    // At the default threshold only a few infected hosts fan out in the samples (2 of 65
    // when this was written): the scaling is what finds them.
    let scaled = vec!["--rules", rules.to_str().unwrap()];
    for (extra, expected) in [(vec![], 0..=10), (scaled, 60..=65)] {
        let run = wormsign(&[&sampled], &extra);
        run.assert_ok("sampled drivelife");
        assert_eq!(run.summary()["sflow"]["flow_samples"], made.samples);
        let (scanning, rules_seen) = alerted(&run.out());
        let found = scanning.intersection(&infected).count();
        eprintln!(
            "1 in 8 {extra:?}: {found} of {} infected hosts raise scan alerts",
            infected.len()
        );
        assert!(expected.contains(&found), "{found} of {}", infected.len());
        // The report says what sampled flows cannot show, instead of guessing.
        let report = std::fs::read_to_string(run.out().join("report.md")).unwrap();
        let blind = run.summary()["detection"]["flows_without_outcome"]
            .as_u64()
            .unwrap();
        assert!(blind > 1000, "{blind}");
        assert!(report.contains(&format!(
            "> {blind} of the flows the rules read show no connection outcome"
        )));
        // Outcomes cannot be read from samples: no TRW, failed-contact or brute-force alert.
        assert!(
            rules_seen.keys().all(|r| r == "scan_fanout"),
            "{rules_seen:?}"
        );
        let others: Vec<_> = scanning.difference(&infected).collect();
        // Beyond the worm: the allowlisted scanner, and at the lowered threshold a busy
        // server (10.164.1.10, one of the labelled benign heavy hitters).
        assert!(others.iter().all(|h| noisy.contains(*h)), "{others:?}");
    }
}

#[test]
fn synth_writes_the_same_sampled_capture_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let synth = |name: &str| {
        let out = dir.path().join(name);
        let args = [
            "synth",
            "--scenario",
            "wannacry",
            "--sflow",
            "4",
            "-q",
            "-o",
        ];
        let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        argv.push(out.as_os_str());
        common::wormsign_ok(&argv);
        out.join("sflow.pcap")
    };
    let (a, b) = (synth("a"), synth("b"));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let types = sflow_fields(&a, &["sflow_245.sampletype"]);
    let samples: u64 = types.lines().map(|l| l.split(',').count() as u64).sum();
    let run = wormsign(&[&a], &[]);
    run.assert_ok("sflow.pcap");
    assert_eq!(run.summary()["sflow"]["flow_samples"], samples);
    // About a quarter of the frames; the sampler's seed makes it exact run to run.
    let frames = run.n("packets");
    let capture_frames =
        wormsign(&[dir.path().join("a/capture.pcap")], &["--no-detect"]).n("packets");
    assert!(
        samples * 5 > capture_frames && samples * 3 < capture_frames,
        "{samples} of {capture_frames}"
    );
    assert!(frames < samples, "datagrams carry several samples");
}

/// On traffic nobody here made (the real WannaCry trace), every frame sampled: the
/// sampled flows are the trace's flows, packet for packet, and the outcome-based rules
/// that the trace's flows alone trigger (flow-shape brute force) stay silent on them.
#[test]
fn every_frame_of_a_real_trace_sampled_meters_its_flows_and_reads_no_outcome() {
    if captures().is_none() {
        return;
    }
    let trace = capture("smb/wannacry_lateral.pcap");
    let dir = tempfile::tempdir().unwrap();
    let sampled = dir.path().join("sflow-1.pcap");
    let made = wormsign_synth::sflow::sample_capture(&trace, 1, 7, &sampled).unwrap();
    let types = sflow_fields(&sampled, &["sflow_245.sampletype"]);
    let samples: u64 = types.lines().map(|l| l.split(',').count() as u64).sum();
    assert_eq!(
        (made.samples, samples),
        (made.frames, made.frames),
        "tshark reads every sample"
    );
    let key = |r: &common::Row| {
        let ends = pair(r["orig_h"].str(), r["resp_h"].str());
        let ports = pair(
            &r["orig_p"].int().to_string(),
            &r["resp_p"].int().to_string(),
        );
        (
            ends,
            ports,
            r["proto"].str().to_string(),
            r["orig_pkts"].int() + r["resp_pkts"].int(),
        )
    };
    let mut plain: Vec<_> = wormsign(&[&trace], &[]).flows().iter().map(key).collect();
    let run = wormsign(&[&sampled], &[]);
    run.assert_ok("sampled trace");
    let mut metered: Vec<_> = run
        .flows()
        .iter()
        .filter(|r| r["source"].str() == "sflow")
        .map(key)
        .collect();
    plain.sort();
    metered.sort();
    assert_eq!(metered, plain);
    // The trace's flows without their session facts raise flow-shape brute force
    // (tests/cli/logs.rs); sampled flows show no outcome, so nothing is raised from them.
    let (_, rules) = alerted(&run.out());
    assert!(rules.is_empty(), "{rules:?}");
    assert!(
        run.summary()["detection"]["flows_without_outcome"]
            .as_u64()
            .unwrap()
            > 50
    );
}
