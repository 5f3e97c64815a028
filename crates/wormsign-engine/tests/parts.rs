//! Detection in parts adds up to the whole: the flows and events split by address into
//! k random parts, each part run on its own and the parts merged, give exactly the
//! detection of one part, which is what `wormsign detect` gives, on every scenario of
//! `datasets/` and on the real WannaCry trace. This is what running the detection on
//! many machines (or cores) rests on; see `crates/wormsign-detect/src/part.rs`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use wormsign_detect::{Cidr, DetectConfig, Detection, Detector, PartFindings, Partition};
use wormsign_engine::{
    flow_files, merge_parts, Control, DetectInputs, PartRunner, PipelineConfig, RunEvents,
    PART_COLUMN,
};
use wormsign_testutil::random_part;

/// The rules the README runs on the sample, with the honeypots and authorized scanners
/// the scenario's labels name: every rule, the graph and the segmentation check have
/// something to do.
fn config_for(labels: &Path) -> DetectConfig {
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(labels).unwrap()).unwrap();
    let addresses = |key: &str| -> Vec<IpAddr> {
        labels[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    let cidr = |s: &str| s.parse::<Cidr>().unwrap();
    let mut c = DetectConfig {
        honeypots: addresses("honeypots"),
        allowlist: addresses("authorized_scanners")
            .iter()
            .map(|ip| cidr(&ip.to_string()))
            .collect(),
        ..DetectConfig::default()
    };
    c.zones.insert("branch".into(), vec![cidr("10.164.0.0/16")]);
    c.zones.insert("hq-dc".into(), vec![cidr("10.210.0.0/16")]);
    c
}

/// The detection `wormsign detect` runs (one part), or split as `partition` says.
fn detect(inputs: &DetectInputs, c: &DetectConfig, partition: Option<&Partition>) -> Detection {
    let detector = match partition {
        Some(p) => Detector::in_parts(c, &inputs.dns, &inputs.arp, p),
        None => Detector::new(c, &inputs.dns, &inputs.arp),
    };
    let mut detector = detector
        .with_sessions(&inputs.sessions)
        .with_names(&inputs.names);
    inputs.flows.iter().for_each(|f| detector.push(f));
    detector.finish()
}

/// The first difference between two detections, table by table, for the failure message.
fn first_difference(whole: &Detection, parts: &Detection) -> String {
    fn diff<T: PartialEq + std::fmt::Debug>(name: &str, a: &[T], b: &[T]) -> Option<String> {
        if a.len() != b.len() {
            return Some(format!("{name}: {} rows, in parts {}", a.len(), b.len()));
        }
        let (x, y) = a.iter().zip(b).find(|(x, y)| x != y)?;
        Some(format!("{name}: {x:?}\nin parts: {y:?}"))
    }
    diff("alerts", &whole.alerts, &parts.alerts)
        .or_else(|| diff("edges", &whole.edges, &parts.edges))
        .or_else(|| diff("hosts", &whole.hosts, &parts.hosts))
        .or_else(|| diff("timeline", &whole.timeline, &parts.timeline))
        .or_else(|| diff("zones", &whole.zones, &parts.zones))
        .unwrap_or_else(|| format!("stats: {:?}\nin parts: {:?}", whole.stats, parts.stats))
}

fn assert_parts_add_up(what: &str, inputs: &DetectInputs, c: &DetectConfig) {
    let whole = detect(inputs, c, None);
    let s = whole.stats;
    assert_eq!(
        (
            s.sources_evicted,
            s.entries_refused,
            s.cap_hits,
            s.late_flows
        ),
        (0, 0, 0, 0),
        "{what}: a cap was reached, so parts may rightly differ"
    );
    assert!(
        !whole.alerts.is_empty(),
        "{what}: no alert, nothing compared"
    );
    let random = |k: usize, seed: u64| Partition::by(k, move |ip| random_part(ip, seed));
    let splits = [
        ("4 hashed parts", Partition::hashed(4)),
        ("2 random parts", random(2, 1)),
        ("3 random parts", random(3, 2)),
        ("5 random parts", random(5, 3)),
        ("16 random parts", random(16, 4)),
    ];
    for (how, split) in &splits {
        let parts = detect(inputs, c, Some(split));
        assert!(
            parts == whole,
            "{what}: {how} differ from the whole: {}",
            first_difference(&whole, &parts)
        );
    }
}

/// Each part run by a detector of its own over only the flows it owns (as a Spark task
/// gets them after the shuffle), its findings sent as bytes, and one more detector
/// finishing with all of them: the whole detection again.
fn assert_parts_apart_add_up(what: &str, inputs: &DetectInputs, c: &DetectConfig) {
    let whole = detect(inputs, c, None);
    let k = 3;
    let partition = Partition::hashed(k);
    let sent: Vec<Vec<u8>> = (0..k)
        .map(|index| {
            let mut part = Detector::one_part(c, &inputs.dns, &inputs.arp, &partition, index)
                .with_sessions(&inputs.sessions)
                .with_names(&inputs.names);
            let owns = |ip| partition.part_of(ip) == index;
            (inputs.flows.iter())
                .filter(|f| owns(f.orig_addr) || owns(f.resp_addr))
                .for_each(|f| part.push(f));
            part.finish_part().to_bytes()
        })
        .collect();
    let received: Vec<PartFindings> = sent
        .iter()
        .map(|b| PartFindings::from_bytes(b, c).unwrap())
        .collect();
    let mut merged = Detector::merging(c, &inputs.dns, &inputs.arp)
        .with_sessions(&inputs.sessions)
        .with_names(&inputs.names)
        .finish_with(received);
    assert_eq!(
        merged.stats.flows, 0,
        "{what}: the merging detector read no flow"
    );
    merged.stats.flows = whole.stats.flows;
    assert!(
        merged == whole,
        "{what}: {k} parts run apart differ from the whole: {}",
        first_difference(&whole, &merged)
    );
    // Damaged bytes are an error, not a panic.
    let bytes = &sent[0];
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            PartFindings::from_bytes(&bytes[..cut], c).is_err(),
            "{what}: {cut} of {} bytes read as findings",
            bytes.len()
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(
        PartFindings::from_bytes(&longer, c).is_err(),
        "{what}: a byte after the end"
    );
}

fn load(capture: &Path) -> DetectInputs {
    let config = PipelineConfig {
        threads: 2,
        ..PipelineConfig::default()
    };
    DetectInputs::load(&[capture], &config, &Control::default())
        .unwrap()
        .inputs
}

fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets")
        .join(name)
}

#[test]
fn parts_add_up_to_the_whole_on_every_dataset_scenario() {
    for name in ["drivelife", "wannacry", "stealthy", "benign"] {
        let dir = dataset(name);
        let inputs = load(&dir.join("capture.pcap.gz"));
        let c = config_for(&dir.join("labels.json"));
        assert_parts_add_up(name, &inputs, &c);
        assert_parts_apart_add_up(name, &inputs, &c);
    }
}

/// The real WannaCry trace: exploits, the implant and brute force from the protocol,
/// not from a generator.
#[test]
fn parts_add_up_to_the_whole_on_the_real_wannacry_trace() {
    let Some(capture) = wormsign_testutil::shared_capture("smb/wannacry_lateral.pcap") else {
        return;
    };
    let inputs = load(&capture);
    assert!(
        !inputs.sessions.is_empty(),
        "the trace yields session facts"
    );
    assert_parts_add_up(
        "smb/wannacry_lateral.pcap",
        &inputs,
        &DetectConfig::default(),
    );
}

/// What Spark does with `wormsign.spark.detect`, without Spark: flows read from the
/// stored tables, tagged with their parts, dealt to two "tasks" by part (one task gets
/// two parts, in one stream of batches), each task's runner sending its parts'
/// findings as bytes, and the merge: `wormsign detect DIR` again.
#[test]
fn tagged_flows_run_by_part_and_merged_are_detect_dir() {
    let out = tempfile::tempdir().unwrap();
    let dir = dataset("drivelife");
    let c = config_for(&dir.join("labels.json"));
    let inputs = wormsign_engine::expand_inputs(&[dir.join("capture.pcap.gz")]).unwrap();
    let config = PipelineConfig {
        threads: 2,
        ..PipelineConfig::default()
    };
    let stored = out.path().join("run");
    wormsign_engine::analyze(
        &inputs,
        &config,
        &Control::default(),
        &wormsign_engine::Output::Parquet(stored.clone()),
    )
    .unwrap();
    let whole = wormsign_engine::detect_dir(&stored, &c).unwrap().detection;

    let dirs = vec![stored];
    let events = std::sync::Arc::new(RunEvents::read(&dirs, &c).unwrap());
    let batches = wormsign_columnar::read_batches(&flow_files(&dirs)).unwrap();
    let flows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    // Many parts for a small capture: some get no usable flow, so no task runs them, and
    // the merge runs them over their events alone (their addresses may have sent session
    // facts or ARP sweeps).
    let parts = 512;
    let tagger = PartRunner::new(c.clone(), events.clone(), parts);
    let tagged: Vec<_> = batches.iter().map(|b| tagger.tag(b).unwrap()).collect();
    let tagged_rows: usize = tagged.iter().map(|b| b.num_rows()).sum();
    let usable = whole.stats.flows_used as usize;
    assert!(
        tagged_rows > usable && tagged_rows <= 2 * usable,
        "{tagged_rows} tagged rows for {usable} usable flows: each once or twice"
    );
    // Tasks hold more flows than the detector keeps in memory, and get them in the
    // reverse of file order, as a shuffle may deal them: the detector must sort them,
    // through its sorted batches in temporary files.
    const SMALL_RUNS: usize = 64;
    let small_runs = DetectConfig {
        max_pending_flows: SMALL_RUNS,
        ..c.clone()
    };
    let part_of = |b: &arrow_array::RecordBatch| {
        let part = b.column_by_name(PART_COLUMN).unwrap();
        let part = part.as_any().downcast_ref::<arrow_array::Int32Array>();
        part.unwrap().clone()
    };
    let task = |wanted: &[i32]| {
        let mut runner = PartRunner::new(small_runs.clone(), events.clone(), parts);
        for b in tagged.iter().rev() {
            let part = part_of(b);
            let mask = arrow_array::BooleanArray::from_iter(
                part.iter().map(|p| Some(wanted.contains(&p.unwrap()))),
            );
            let rows = arrow_select::filter::filter_record_batch(b, &mask).unwrap();
            runner.push(&rows).unwrap();
        }
        runner.finish()
    };
    let even: Vec<i32> = (0..512).filter(|p| p % 2 == 0).collect();
    let odd: Vec<i32> = (0..512).filter(|p| p % 2 == 1).collect();
    let mut found: Vec<(usize, Vec<u8>)> = task(&even);
    found.extend(task(&odd));
    assert!(
        found.len() < parts && found.len() > parts / 8,
        "{} of {parts} parts got flows",
        found.len()
    );
    let bytes: Vec<Vec<u8>> = found.into_iter().rev().map(|(_, b)| b).collect();
    let mut merged = merge_parts(&c, &events, &bytes, parts, flows).unwrap();
    // Each part's detector held every full batch of its flows but the last in files.
    let mut per_part = std::collections::BTreeMap::<i32, u64>::new();
    for b in &tagged {
        let part = part_of(b);
        part.iter()
            .for_each(|p| *per_part.entry(p.unwrap()).or_default() += 1);
    }
    let held = |&n: &u64| wormsign_testutil::held_in_files(n, SMALL_RUNS as u64);
    let held_in_parts: u64 = per_part.values().map(held).sum();
    let in_files = std::mem::take(&mut merged.stats.flows_in_files);
    assert_eq!(in_files, held_in_parts, "held in the parts' files");
    assert!(in_files > 0 && whole.stats.flows_in_files == 0);
    assert!(
        merged == whole,
        "tagged parts differ from detect_dir: {}",
        first_difference(&whole, &merged)
    );
    // No task got a flow (none was usable): every part runs on the driver, over its
    // events alone, and their alerts (exploits, logins, ARP sweeps) are not lost.
    let events_only = merge_parts(&c, &events, &[], parts, 0).unwrap();
    let mut alone = events.whole(&c).finish();
    alone.stats.dns_events = events.dns_read();
    assert!(alone.alerts.len() > 10, "the events alone raise alerts");
    assert!(
        events_only == alone,
        "parts over events alone differ: {}",
        first_difference(&alone, &events_only)
    );
    // Findings of one part twice, or of a detection in other parts, are refused.
    let twice = [bytes.clone(), vec![bytes[0].clone()]].concat();
    assert!(merge_parts(&c, &events, &twice, parts, flows).is_err());
    assert!(merge_parts(&c, &events, &bytes, parts + 1, flows).is_err());
}
