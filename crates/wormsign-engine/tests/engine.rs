//! The engine's two outputs and two detection paths agree: tables kept in memory are the
//! rows the Parquet files hold, and detection over either gives the same results, on a
//! labelled synthetic outbreak. One thread, so row order is fixed and batches compare
//! as they are.

use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use wormsign_engine::{
    analyze, detect_dir, detect_tables, expand_inputs, Control, DetectionTables, Input, Output,
    PipelineConfig, Tables,
};
use wormsign_synth::{write_dataset, Scenario, SynthConfig};

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// The batches as one, so files (cut into row groups) and memory (cut into the shards'
/// batches) compare row for row.
fn concat(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches[0].schema();
    arrow_select::concat::concat_batches(&schema, batches).unwrap()
}

fn assert_same(name: &str, memory: &[RecordBatch], stored: &[RecordBatch]) {
    assert_eq!(rows(memory), rows(stored), "{name}: row counts");
    assert!(rows(memory) > 0, "{name}: no rows, nothing compared");
    assert_eq!(concat(memory), concat(stored), "{name}: rows differ");
}

/// A small labelled DriveLife outbreak written into `dir`, as the engine's inputs.
fn drivelife(dir: &std::path::Path, seed: u64) -> Vec<Input> {
    let cfg = SynthConfig {
        scenario: Scenario::Drivelife,
        seed,
        scale: 0.2,
        capture_start: 0,
    };
    write_dataset(dir, &cfg, None).unwrap();
    expand_inputs(&[dir.join("capture.pcap")]).unwrap()
}

/// `analyze_and_detect` of `inputs` into `out` on `threads` threads, and `detect_dir`
/// over the tables it stored: the run, its detection and the read-back one.
fn fed_and_read(
    inputs: &[Input],
    threads: usize,
    rules: &wormsign_detect::DetectConfig,
    out: &std::path::Path,
) -> (
    wormsign_engine::Analysis,
    wormsign_engine::Detected,
    wormsign_engine::Detected,
) {
    let config = PipelineConfig {
        threads,
        ..PipelineConfig::default()
    };
    let output = Output::Parquet(out.to_path_buf());
    let control = Control::default();
    let (run, fed) =
        wormsign_engine::analyze_and_detect(inputs, &config, rules, &control, &output).unwrap();
    let fed = fed.expect("a complete run detects");
    let read = detect_dir(out, rules).unwrap();
    (run, fed, read)
}

#[test]
fn memory_tables_are_the_stored_rows_and_detect_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = drivelife(dir.path(), 3);
    let config = PipelineConfig {
        threads: 1,
        ..PipelineConfig::default()
    };
    let control = Control::default();
    let memory = analyze(&inputs, &config, &control, &Output::Memory).unwrap();
    let out = dir.path().join("out");
    let stored = analyze(&inputs, &config, &control, &Output::Parquet(out.clone())).unwrap();
    assert!(
        stored.tables.flows.is_empty(),
        "Parquet output keeps nothing in memory"
    );
    assert_eq!(memory.summary.flows, stored.summary.flows);
    assert_eq!(
        memory.summary.session_records,
        stored.summary.session_records
    );
    let read = Tables::read(&out).unwrap();
    let m = &memory.tables;
    assert_same("flows", &m.flows, &read.flows);
    assert_same("dns", &m.dns, &read.dns);
    assert_same("arp", &m.arp, &read.arp);
    assert_same("sessions", &m.sessions, &read.sessions);
    assert_eq!(rows(&m.flows) as u64, memory.summary.flows);

    let rules = Default::default();
    let from_memory = detect_tables(m, &rules).unwrap();
    let from_files = detect_dir(&out, &rules).unwrap();
    assert!(from_files.warnings.is_empty(), "{:?}", from_files.warnings);
    assert!(!from_memory.alerts.is_empty() && !from_memory.edges.is_empty());
    let (a, b) = (
        DetectionTables::new(&from_memory),
        DetectionTables::new(&from_files.detection),
    );
    assert_eq!(a.alerts, b.alerts);
    assert_eq!(a.hosts, b.hosts);
    assert_eq!(a.propagation, b.propagation);
    assert_eq!(from_memory.stats.flows, from_files.detection.stats.flows);
}

#[test]
fn a_run_stopped_before_it_starts_writes_complete_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        scenario: Scenario::Benign,
        seed: 1,
        scale: 0.1,
        capture_start: 0,
    };
    write_dataset(dir.path(), &cfg, None).unwrap();
    let inputs = expand_inputs(&[dir.path().join("capture.pcap")]).unwrap();
    let control = Control::default();
    control.stop.store(true, Ordering::Relaxed);
    let out = dir.path().join("out");
    let run = analyze(
        &inputs,
        &PipelineConfig::default(),
        &control,
        &Output::Parquet(out.clone()),
    )
    .unwrap();
    assert_eq!(run.summary.decode.packets, 0);
    assert!(
        run.summary.warnings.is_empty(),
        "stopped before the first input"
    );
    let tables = ["flows", "dns", "arp", "sessions", "names"];
    for table in tables {
        assert!(out.join(format!("{table}.parquet")).is_file(), "{table}");
    }
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        tables.len(),
        "no temporary files left: {names:?}"
    );
}

#[test]
fn bad_settings_and_missing_inputs_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    let e = expand_inputs(&[missing]).unwrap_err();
    assert!(e.to_string().contains("missing.pcap"), "{e}");
    for secs in [-1.0, f64::NAN] {
        let options = wormsign_engine::PipelineOptions {
            tcp_timeout: Some(secs),
            ..Default::default()
        };
        assert!(options.config().is_err(), "tcp timeout {secs} accepted");
    }
    let e = detect_dir(dir.path(), &Default::default()).unwrap_err();
    assert!(e.to_string().contains("no flows.parquet"), "{e}");
}

#[test]
fn a_stop_mid_run_cuts_the_input_short_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        scenario: Scenario::Drivelife,
        seed: 5,
        scale: 1.0,
        capture_start: 0,
    };
    let written = write_dataset(dir.path(), &cfg, None).unwrap();
    let inputs = expand_inputs(&[dir.path().join("capture.pcap")]).unwrap();
    let config = PipelineConfig {
        threads: 1,
        ..PipelineConfig::default()
    };
    let control = Control::default();
    // Stops as soon as the first chunk is read; the channels hold back the reader, so it
    // cannot have read the whole capture by then.
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            while control.packets.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            control.stop.store(true, Ordering::Relaxed);
        });
        analyze(&inputs, &config, &control, &Output::Memory).unwrap()
    });
    let read = run.summary.decode.packets;
    assert!(
        read > 0 && read < written.output.packets,
        "read {read} of {}",
        written.output.packets
    );
    assert_eq!(rows(&run.tables.dns) as u64, run.summary.dns_records);
    let warning = &run.summary.warnings[..];
    assert!(
        warning.len() == 1 && warning[0].message.starts_with("interrupted"),
        "{warning:?}"
    );
}

/// Detection fed from the pipeline is `wormsign detect DIR` over the tables the run
/// stored, for any thread count. DriveLife resolves its C&C names before it contacts
/// them: the decode workers publish each address as they parse the answer, before the
/// shards see any flow to it end, so the shards keep those flows and no pass over the
/// stored flows is needed. Beyond `max_pending_flows` usable flows, the feed sorts each
/// batch of that many into a temporary file and merges them all at the end, instead of
/// letting go and reading the tables back: the same result for any thread count, no
/// flow late, and every full batch but the last counted as held in files.
#[test]
fn detection_fed_from_the_pipeline_equals_detect_dir() {
    use wormsign_detect::{DetectConfig, Rule};
    use wormsign_engine::{analyze_and_detect, DetectionInput};

    let dir = tempfile::tempdir().unwrap();
    let inputs = drivelife(dir.path(), 5);
    let control = Control::default();
    const SMALL_CAP: usize = 10;
    let small_cap = DetectConfig {
        max_pending_flows: SMALL_CAP,
        ..DetectConfig::default()
    };
    let mut reference = None;
    for (threads, rules, want_input) in [
        (
            1,
            DetectConfig::default(),
            DetectionInput::Pipeline { cnc_pass: false },
        ),
        (
            2,
            DetectConfig::default(),
            DetectionInput::Pipeline { cnc_pass: false },
        ),
        (
            4,
            DetectConfig::default(),
            DetectionInput::Pipeline { cnc_pass: false },
        ),
        (
            2,
            small_cap.clone(),
            DetectionInput::Pipeline { cnc_pass: false },
        ),
        (4, small_cap, DetectionInput::Pipeline { cnc_pass: false }),
    ] {
        let out = dir
            .path()
            .join(format!("out-{threads}-{}", rules.max_pending_flows));
        let (_, fed, read) = fed_and_read(&inputs, threads, &rules, &out);
        assert_eq!(fed.input, want_input, "{threads} threads");
        assert_eq!(fed.detection, read.detection, "{threads} threads");
        assert_eq!(fed.metadata, read.metadata, "{threads} threads");
        let d = &fed.detection;
        assert!(
            d.alerts.iter().any(|a| a.rule == Rule::CncIp),
            "the shards kept the flows to resolved addresses"
        );
        assert!(!d.edges.is_empty() && d.stats.flows > 0);
        assert_eq!(d.stats.late_flows, 0, "{threads} threads");
        let cap = rules.max_pending_flows as u64;
        let mut detection = fed.detection;
        let in_files = std::mem::take(&mut detection.stats.flows_in_files);
        let used = detection.stats.flows_used;
        assert!(
            used > 2 * SMALL_CAP as u64,
            "{used} usable flows: more than two batches of the small cap"
        );
        let held = wormsign_testutil::held_in_files(used, cap);
        assert_eq!(in_files, held, "{threads} threads, cap {cap}");
        let first = reference.get_or_insert_with(|| detection.clone());
        assert_eq!(first, &detection, "{threads} threads vs 1");
    }

    // Tables in memory: the same as detect_tables over them.
    let config = PipelineConfig {
        threads: 2,
        ..PipelineConfig::default()
    };
    let rules = DetectConfig::default();
    let (run, fed) =
        analyze_and_detect(&inputs, &config, &rules, &control, &Output::Memory).unwrap();
    let fed = fed.unwrap();
    assert_eq!(fed.input, DetectionInput::Pipeline { cnc_pass: false });
    assert_eq!(fed.detection, detect_tables(&run.tables, &rules).unwrap());
    assert_eq!(Some(&fed.detection), reference.as_ref());
}

/// The C&C pass on logs Zeek wrote (zat's `conn.log` and `dns.log`), with
/// `guyspy.com` taken as a C&C name. Addresses are published as the decode workers parse
/// DNS packets; a log's DNS rows are not, so the log reader turns down the plain-HTTP
/// flows to the address its `dns.log` resolves, and only the pass after the run finds
/// them. `conn.log` itself says how many connections each host made to that address:
/// the C&C-by-IP alerts must count the same, and equal detection over the stored tables.
/// With HTTP(S) exposed ports the reader keeps those flows, no pass runs, and the count
/// is the same. With one usable flow held in memory and DNS and NTP taken as exposed
/// ports (so the reader keeps flows besides those to C&C addresses), the flows gathered
/// wait in temporary files, are rewritten for the pass, and the count is the same again.
#[test]
fn the_cnc_pass_finds_what_was_turned_down_and_counts_it_once() {
    use std::collections::BTreeMap;

    use wormsign_detect::{CncConfig, DetectConfig, Rule};
    use wormsign_engine::DetectionInput;

    let logs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/logs/zat");
    let address = "54.245.228.191"; // www.guyspy.com in dns.log
                                    // Connections per source in conn.log (Zeek's TSV: id.orig_h and id.resp_h are the
                                    // third and fifth fields).
    let conn = std::fs::read_to_string(logs.join("conn.log")).unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for fields in conn
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
    {
        if fields[4] == address {
            *want.entry(fields[2].to_string()).or_default() += 1;
        }
    }
    assert!(!want.is_empty(), "conn.log has connections to {address}");
    let inputs = expand_inputs(&[logs.join("conn.log"), logs.join("dns.log")]).unwrap();
    let runs = [
        (DetectConfig::default().exposed_ports, true, 1 << 20),
        (vec![53, 123], true, 1),
        // guyspy.com names resolve to a second address, contacted over HTTPS.
        (vec![80, 443, 445, 3389, 1433], false, 1 << 20),
    ];
    for (exposed_ports, cnc_pass, max_pending_flows) in runs {
        let rules = DetectConfig {
            cnc: CncConfig {
                domains: vec!["guyspy.com".to_string()].into(),
                ..CncConfig::default()
            },
            exposed_ports,
            max_pending_flows,
            ..DetectConfig::default()
        };
        let out = tempfile::tempdir().unwrap();
        let (_, fed, read) = fed_and_read(&inputs, 2, &rules, out.path());
        assert_eq!(fed.input, DetectionInput::Pipeline { cnc_pass });
        assert_eq!(fed.detection, read.detection);
        let got: BTreeMap<String, u64> = fed
            .detection
            .alerts
            .iter()
            .filter(|a| {
                a.rule == Rule::CncIp && a.dst.map(|d| d.to_string()).as_deref() == Some(address)
            })
            .map(|a| (a.src.to_string(), a.attempts))
            .collect();
        assert_eq!(
            got, want,
            "C&C-by-IP alerts against conn.log ({:?} exposed)",
            rules.exposed_ports
        );
    }
}

/// Without C&C names, nothing waits for the finished flows file, so detection runs while
/// the files end (`Feed::detect_early`): still `wormsign detect DIR` over the stored
/// tables (and `detect_tables` over the tables in memory), for any thread count.
#[test]
fn detection_while_the_files_end_equals_detect_dir() {
    use wormsign_detect::{CncConfig, DetectConfig};
    use wormsign_engine::{analyze_and_detect, DetectionInput};

    let dir = tempfile::tempdir().unwrap();
    let inputs = drivelife(dir.path(), 5);
    let control = Control::default();
    let rules = DetectConfig {
        cnc: CncConfig {
            domains: Default::default(),
            ..CncConfig::default()
        },
        ..DetectConfig::default()
    };
    let early = DetectionInput::Pipeline { cnc_pass: false };
    let mut reference = None;
    for threads in [1, 2, 3] {
        let out = dir.path().join(format!("out-{threads}"));
        let (run, fed, read) = fed_and_read(&inputs, threads, &rules, &out);
        assert_eq!(fed.input, early, "{threads} threads");
        assert_eq!(fed.detection, read.detection, "{threads} threads");
        let d = &fed.detection;
        assert!(!d.edges.is_empty() && d.stats.flows == run.summary.flows);
        let first = reference.get_or_insert_with(|| fed.detection.clone());
        assert_eq!(first, &fed.detection, "{threads} threads vs 1");
    }
    let config = PipelineConfig {
        threads: 2,
        ..PipelineConfig::default()
    };
    let (run, fed) =
        analyze_and_detect(&inputs, &config, &rules, &control, &Output::Memory).unwrap();
    let fed = fed.unwrap();
    assert_eq!(fed.input, early);
    assert_eq!(fed.detection, detect_tables(&run.tables, &rules).unwrap());
    assert_eq!(Some(&fed.detection), reference.as_ref());
}

/// With files as its output, `analyze_and_detect` writes the detection outputs beside the
/// tables: on DriveLife detection ends before the tables do, so they are written
/// meanwhile and renamed into place after them. They are the files `write_detection`
/// writes for the same detection, and no temporary file is left.
#[test]
fn the_early_detection_outputs_are_written_beside_the_tables() {
    use wormsign_engine::{write_detection, DetectionInput};

    let dir = tempfile::tempdir().unwrap();
    let inputs = drivelife(dir.path(), 7);
    let out = dir.path().join("out");
    let (_, fed, _) = fed_and_read(&inputs, 2, &Default::default(), &out);
    assert_eq!(fed.input, DetectionInput::Pipeline { cnc_pass: false });
    let again = dir.path().join("again");
    write_detection(&again, &fed.detection, &fed.metadata).unwrap();
    let names = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let outputs = names(&again);
    assert_eq!(outputs.len(), 12, "{outputs:?}");
    let tables = ["arp", "dns", "flows", "names", "sessions"].map(|t| format!("{t}.parquet"));
    let mut expected = [&outputs[..], &tables[..]].concat();
    expected.sort();
    assert_eq!(
        names(&out),
        expected,
        "the tables and the outputs, nothing else"
    );
    for name in &outputs {
        let (a, b) = (
            std::fs::read(out.join(name)),
            std::fs::read(again.join(name)),
        );
        assert_eq!(a.unwrap(), b.unwrap(), "{name}");
    }
}

/// On every capture of the shared corpus (traffic nobody here made: SMB, RDP, TDS,
/// NetFlow exports, tunnels, scans, damaged files), detection fed from the pipeline is
/// detection over the stored tables: the same alerts, hosts, edges, counters and
/// metadata. NetFlow is decoded on the ports the corpus's exports use.
#[test]
fn fed_detection_equals_detect_dir_on_the_shared_corpus() {
    use wormsign_detect::DetectConfig;
    use wormsign_engine::{analyze_and_detect, DetectionInput};

    let Some(corpus) = wormsign_testutil::shared_captures() else {
        return;
    };
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).unwrap();
    let config = PipelineConfig {
        threads: 2,
        netflow_ports: vec![2055, 4739, 9990, 9995, 9996],
        ..PipelineConfig::default()
    };
    let rules = DetectConfig::default();
    let control = Control::default();
    let (mut compared, mut with_alerts, mut cnc_passes) = (0, 0, 0);
    for rel in manifest.lines().filter_map(|l| l.split('\t').next()) {
        let path = corpus.join(rel);
        if rel.starts_with('#') || !path.is_file() {
            continue;
        }
        let inputs = expand_inputs(&[&path]).unwrap();
        let out = tempfile::tempdir().unwrap();
        let output = Output::Parquet(out.path().to_path_buf());
        let (_, fed) = analyze_and_detect(&inputs, &config, &rules, &control, &output).unwrap();
        let Some(fed) = fed else {
            continue; // nothing readable: no tables to compare
        };
        let read = detect_dir(out.path(), &rules).unwrap();
        assert_eq!(fed.detection, read.detection, "{rel}");
        assert_eq!(fed.metadata, read.metadata, "{rel}");
        assert!(
            matches!(fed.input, DetectionInput::Pipeline { .. }),
            "{rel}"
        );
        compared += 1;
        with_alerts += usize::from(!fed.detection.alerts.is_empty());
        cnc_passes += usize::from(fed.input == DetectionInput::Pipeline { cnc_pass: true });
    }
    assert!(compared >= 150, "only {compared} captures compared");
    assert!(
        with_alerts >= 8,
        "only {with_alerts} captures raised alerts"
    );
    eprintln!("{compared} captures, {with_alerts} with alerts, {cnc_passes} C&C passes");
}

/// Flows to a resolved C&C address on traffic nobody here made: a Wikipedia browsing
/// capture, with `upload.wikimedia.org` taken as a C&C name. Its address comes only from
/// the capture's DNS answer and its flows are plain HTTP, which the configured filter
/// does not keep: the shards keep them because the decode workers published the address
/// from the answer, which comes before them in the capture, so no pass runs. tshark counts the
/// connections to that address; the C&C-by-IP alert must count the same, and equal
/// detection over the stored tables. With HTTP an exposed port the shards keep those
/// flows anyway, and the count must not double.
#[test]
fn cnc_flows_are_the_connections_tshark_counts_on_a_real_capture() {
    use std::collections::BTreeMap;

    use wormsign_detect::{CncConfig, DetectConfig, Rule};
    use wormsign_engine::{analyze_and_detect, DetectionInput};

    let Some(pcap) = wormsign_testutil::shared_capture("general/wikipedia_browse.pcap") else {
        return;
    };
    if !wormsign_testutil::require_tool("tshark", "--version") {
        return;
    }
    let name = "upload.wikimedia.org";
    let tshark = |filter: &str, fields: &[&str]| -> Vec<String> {
        let mut cmd = std::process::Command::new("tshark");
        cmd.arg("-r")
            .arg(&pcap)
            .args(["-Y", filter, "-T", "fields"]);
        fields.iter().for_each(|f| {
            cmd.args(["-e", f]);
        });
        let out = cmd.output().expect("running tshark");
        let text = String::from_utf8(out.stdout).expect("tshark prints UTF-8");
        text.lines().map(str::to_string).collect()
    };
    let answers = tshark(
        &format!("dns.flags.response == 1 && dns.qry.name == \"{name}\" && dns.a"),
        &["frame.number", "dns.a"],
    );
    let (answer_frame, address) = answers
        .iter()
        .filter_map(|l| l.split_once('\t'))
        .find_map(|(frame, a)| Some((frame.parse::<u64>().ok()?, a.split(',').next()?)))
        .expect("tshark finds an A answer for the name");
    let address = address.to_string();
    // Connections (TCP streams opened by a SYN) to the address, per source.
    let mut want: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let syn = format!("ip.dst == {address} && tcp.flags.syn == 1 && tcp.flags.ack == 0");
    let mut first_syn = u64::MAX;
    for line in tshark(&syn, &["frame.number", "ip.src", "tcp.stream"]) {
        let [frame, src, stream] = line.split('\t').collect::<Vec<_>>()[..] else {
            panic!("three fields in {line:?}");
        };
        first_syn = first_syn.min(frame.parse().expect("a frame number"));
        want.entry(src.to_string())
            .or_default()
            .insert(stream.to_string());
    }
    assert!(!want.is_empty(), "tshark sees no connection to {address}");
    // The answer comes before every connection in the capture, so the shards check each
    // of those flows after the decode workers published the address: no pass.
    assert!(answer_frame < first_syn, "{answer_frame} {first_syn}");

    let want: BTreeMap<String, u64> = want.into_iter().map(|(k, v)| (k, v.len() as u64)).collect();
    // Then with HTTP(S) exposed, so that the shards keep those flows themselves and the
    // pass must not add them a second time.
    let exposed = [
        DetectConfig::default().exposed_ports,
        vec![80, 443, 445, 3389, 1433],
    ];
    for exposed_ports in exposed {
        let rules = DetectConfig {
            cnc: CncConfig {
                domains: vec![name.to_string()].into(),
                ..CncConfig::default()
            },
            exposed_ports,
            ..DetectConfig::default()
        };
        let inputs = expand_inputs(&[&pcap]).unwrap();
        let out = tempfile::tempdir().unwrap();
        let output = Output::Parquet(out.path().to_path_buf());
        let config = PipelineConfig::default();
        let (_, fed) =
            analyze_and_detect(&inputs, &config, &rules, &Control::default(), &output).unwrap();
        let fed = fed.expect("the capture is readable");
        assert_eq!(fed.input, DetectionInput::Pipeline { cnc_pass: false });
        assert_eq!(
            fed.detection,
            detect_dir(out.path(), &rules).unwrap().detection
        );
        let got: BTreeMap<String, u64> = fed
            .detection
            .alerts
            .iter()
            .filter(|a| {
                a.rule == Rule::CncIp && a.dst.map(|d| d.to_string()) == Some(address.clone())
            })
            .map(|a| (a.src.to_string(), a.attempts))
            .collect();
        assert_eq!(
            got, want,
            "C&C-by-IP alerts to {address} against tshark's connections ({:?} exposed)",
            rules.exposed_ports
        );
    }
}
