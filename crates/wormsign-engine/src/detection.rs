//! Worm-propagation detection over the five tables, wherever they are: stored by a run
//! (read back column by column, keeping only what a rule can use) or held in memory;
//! and the detection outputs (`alerts.parquet`, `alerts.jsonl`, `hosts.parquet`,
//! `propagation.parquet` with `propagation.svg` and `.dot`, `timeline.parquet`,
//! `segmentation.parquet`, `remediation.parquet` and `.csv`, `report.md`,
//! `report.html`), each under a temporary name renamed into place when complete.
//!
//! `analyze` then `detect DIR` see exactly the same input, so both write identical
//! results; tables in memory are the batches that would have been stored, so they give
//! the same detection too.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wormsign_capture::time::UtcTime;
use wormsign_columnar::{
    arp_events, dns_events, flow_batch, for_each_flow, kept_flow_batch, name_events, read_arp,
    read_dns, read_flows, read_names, read_sessions, session_events, table_files, ResponderAddr,
    RowBuilder, StagedFile, TableWriter,
};
use wormsign_decode::IpText;
use wormsign_detect::{
    remediation, render_graph_dot, render_graph_svg, render_report_with, ArpEvent, DetectConfig,
    DetectStats, Detection, Detector, DnsEvent, KeptDns, NameEvent, SessionEvent, Tier,
};
use wormsign_flow::FlowRecord;

use crate::config::input_names;
use crate::detect_tables::{AlertBatchBuilder, HostBatchBuilder, PropagationBatchBuilder};
use crate::distributed::RunEvents;
use crate::feed::{wanted_dns_events, Feed, FeedOutcome, StoredFlows};
use crate::html::markdown_to_html;
use crate::memory::return_free_pages;
use crate::pipeline::run;
use crate::responder_tables::{
    remediation_csv, RemediationBatchBuilder, SegmentationBatchBuilder, TimelineBatchBuilder,
};
use crate::{
    analyze, expand_inputs, Analysis, Control, Error, Input, Output, PipelineConfig, RunSummary,
    Tables,
};

/// A detection and what the reading of its inputs had to say.
#[derive(Debug)]
pub struct Detected {
    /// Alerts, hosts, the propagation graph and the detector's counters.
    pub detection: Detection,
    /// Tables that were missing (detection went on without them), and temporary files
    /// for the usable flows beyond `max_pending_flows` that could not be written or read
    /// back (what that cost: flows held in memory, late or unread).
    pub warnings: Vec<String>,
    /// Provenance for the outputs' metadata: the version, the inputs of the flows, the
    /// rules.
    pub metadata: Vec<(String, String)>,
    /// Where detection read its inputs.
    pub input: DetectionInput,
}

impl Detected {
    /// `detection` with `warnings` (about its inputs), then what its temporary files
    /// cost ([`spill_warnings`]), so that no caller forgets those.
    fn new(
        detection: Detection,
        mut warnings: Vec<String>,
        metadata: Vec<(String, String)>,
        input: DetectionInput,
    ) -> Self {
        warnings.extend(spill_warnings(&detection));
        Detected {
            detection,
            warnings,
            metadata,
            input,
        }
    }
}

/// Where a detection read its inputs; the results are the same either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectionInput {
    /// Gathered from the pipeline as it stored the tables ([`analyze_and_detect`]);
    /// `cnc_pass` when the run's DNS named C&C addresses beyond the configured ones, so
    /// the flows to them were read from the flows table afterwards.
    Pipeline {
        /// Whether the pass over the flows table for resolved C&C addresses ran.
        cnc_pass: bool,
    },
    /// Read back from the stored tables (or decoded from the tables in memory).
    Tables,
}

impl DetectionInput {
    /// `pipeline`, `pipeline+cnc_pass` or `tables`, as the run summary's
    /// `detection.input` says it.
    pub fn name(self) -> &'static str {
        match self {
            DetectionInput::Pipeline { cnc_pass: false } => "pipeline",
            DetectionInput::Pipeline { cnc_pass: true } => "pipeline+cnc_pass",
            DetectionInput::Tables => "tables",
        }
    }
}

/// [`analyze`], then detection over the tables it stored: the same [`Detected`] as
/// [`detect_dir`] over `output` (or [`detect_tables`] over the tables in memory), fed
/// from the pipeline as it stores them instead of read back (see `feed.rs`). Nothing is
/// detected (`None`) when the run was stopped or no input could be read.
///
/// With files as `output`, the detection outputs are written into the same directory,
/// as [`write_detection`] writes them; when detection ends before the tables do, they are
/// written meanwhile and put in place after the tables.
///
/// Partitioned output is read back: its directory may hold earlier runs' partitions,
/// which detection reads too.
pub fn analyze_and_detect(
    inputs: &[Input],
    config: &PipelineConfig,
    detect: &DetectConfig,
    control: &Control,
    output: &Output,
) -> Result<(Analysis, Option<Detected>), Error> {
    let stored_dir = match output {
        Output::Memory => None,
        Output::Parquet(dir) | Output::ParquetAndMemory(dir) => Some(dir.as_path()),
    };
    let metadata = output_metadata(Some(input_names(inputs)), detect);
    let outputs = stored_dir.map(|dir| (dir, &metadata[..]));
    let mut feed =
        (stored_dir.is_none() || config.partitioning.is_none()).then(|| Feed::new(detect, outputs));
    let analysis = run(inputs, config, control, output, feed.as_mut())?;
    if analysis.summary.inputs_usable == 0 || control.stop.load(Ordering::Relaxed) {
        return Ok((analysis, None));
    }
    let stored = match stored_dir {
        Some(dir) => StoredFlows::Files(table_files(dir, "flows")),
        None => StoredFlows::Memory(&analysis.tables.flows),
    };
    // The feed is moved whole, so that it is gone before its borrow of the metadata is.
    let outcome = feed.map(|feed| feed.finish(stored)).transpose()?;
    let outcome = outcome.unwrap_or(FeedOutcome::ReadBack { cause: None });
    let (detected, staged) = match (outcome, stored_dir) {
        (
            FeedOutcome::Detected {
                detection,
                cnc_pass,
                staged,
            },
            _,
        ) => {
            let input = DetectionInput::Pipeline { cnc_pass };
            (
                Detected::new(*detection, Vec::new(), metadata, input),
                staged,
            )
        }
        (FeedOutcome::ReadBack { cause }, stored_dir) => {
            // The pipeline is over: what detection reads back should not come on top of
            // the pages the allocator kept of it.
            return_free_pages();
            let mut detected = match stored_dir {
                Some(dir) => detect_dir(dir, detect)?,
                None => {
                    let detection = detect_tables(&analysis.tables, detect)?;
                    let metadata = output_metadata(None, detect);
                    Detected::new(detection, Vec::new(), metadata, DetectionInput::Tables)
                }
            };
            // Why the tables were read back comes before what reading them cost.
            if let Some(why) = cause {
                let why = format!("detection: {why}: the stored tables were read back");
                detected.warnings.insert(0, why);
            }
            (detected, None)
        }
    };

    // Stopped while detection ran after the tables: no outputs (the staged ones are
    // deleted as they drop), as for a stop before.
    if control.stop.load(Ordering::Relaxed) {
        return Ok((analysis, None));
    }
    match (staged, stored_dir) {
        (Some(staged), _) => staged.commit()?,
        (None, Some(dir)) => write_detection(dir, &detected.detection, &detected.metadata)?,
        (None, None) => {}
    }
    Ok((analysis, Some(detected)))
}

/// Detects over the tables stored in `in_dir` by `analyze` (single files or
/// partitioned directories). Only `flows` is required.
pub fn detect_dir(in_dir: &Path, config: &DetectConfig) -> Result<Detected, Error> {
    let flow_files = table_files(in_dir, "flows");
    if flow_files.is_empty() {
        return Err(Error::Config(format!(
            "{}: no flows.parquet or flows/ directory (write one with `wormsign analyze`)",
            in_dir.display()
        )));
    }
    // Only C&C names and reverse lookups naming hosts matter to detection: other DNS
    // messages are counted, not kept.
    let events = RunEvents::read(&[in_dir.to_path_buf()], config)?;
    // Flows stream through the detector: only those a rule can use are held.
    let mut detector = events.whole(config);
    let filter = detector.flow_filter();
    let flows_read = for_each_flow(
        &flow_files,
        |proto, has_ports, port, addr| filter.wants(proto, has_ports, port, addr),
        |f| detector.push(&f),
    )?;
    let mut detection = detector.finish();
    (detection.stats.flows, detection.stats.dns_events) = (flows_read, events.dns_read());
    let metadata = output_metadata(stored_inputs(&flow_files[0]), config);
    let input = DetectionInput::Tables;
    Ok(Detected::new(detection, events.warnings, metadata, input))
}

/// What the temporary files of the usable flows beyond `max_pending_flows` cost
/// `detection`, from its counters (flows held in memory without files, late and unread
/// flows): nothing unless the disk failed. [`Detected`] carries them; callers of
/// [`detect_tables`] and [`merge_parts`](crate::merge_parts), which return a bare
/// [`Detection`], ask here.
pub fn spill_warnings(detection: &Detection) -> Vec<String> {
    let DetectStats {
        late_flows,
        flows_unread,
        flows_held_without_files: held,
        ..
    } = detection.stats;
    let held = (held > 0).then(|| {
        format!(
            "detection: no temporary file could be written for the usable flows beyond \
             max_pending_flows (see TMPDIR): {held} more were held in memory"
        )
    });
    let late = (late_flows > 0).then(|| {
        format!(
            "detection: {late_flows} usable flows reached the rules after newer ones, \
             because no temporary file could be written for the flows beyond \
             max_pending_flows (see TMPDIR): alerts may depend on input order"
        )
    });
    let unread = (flows_unread > 0).then(|| {
        format!(
            "detection: {flows_unread} usable flows written to temporary files (see \
             TMPDIR) could not be read back: the rules did not see them"
        )
    });
    held.into_iter().chain(late).chain(unread).collect()
}

/// Detection's inputs, decoded from the tables once: for running many rule sets over the
/// same traffic (`bench-rules`, parameter sweeps).
#[derive(Clone, Debug, Default)]
pub struct DetectInputs {
    /// Every flow record.
    pub flows: Vec<FlowRecord>,
    /// Every DNS message with a query name.
    pub dns: Vec<DnsEvent>,
    /// Every ARP packet.
    pub arp: Vec<ArpEvent>,
    /// Every session fact.
    pub sessions: Vec<SessionEvent>,
    /// Every naming fact (DHCP, NetBIOS name service).
    pub names: Vec<NameEvent>,
}

impl DetectInputs {
    /// Decodes tables held in memory.
    pub fn from_tables(tables: &Tables) -> Result<DetectInputs, Error> {
        let mut d = DetectInputs::default();
        tables
            .flows
            .iter()
            .try_for_each(|b| flow_batch(b, &mut d.flows))?;
        tables
            .dns
            .iter()
            .try_for_each(|b| dns_events(b, &mut d.dns))?;
        tables
            .arp
            .iter()
            .try_for_each(|b| arp_events(b, &mut d.arp))?;
        tables
            .sessions
            .iter()
            .try_for_each(|b| session_events(b, &mut d.sessions))?;
        tables
            .names
            .iter()
            .try_for_each(|b| name_events(b, &mut d.names))?;
        Ok(d)
    }

    /// Reads the tables `analyze` stored in `dir`; a missing table but flows is empty,
    /// with a warning pushed to `warnings`.
    pub fn read(dir: &Path, warnings: &mut Vec<String>) -> Result<DetectInputs, Error> {
        Ok(DetectInputs {
            flows: read_flows(&table_files(dir, "flows"))?,
            dns: {
                let mut dns = Vec::new();
                read_dns(&optional_table(dir, "dns", warnings), |_, _| true, &mut dns)?;
                dns
            },
            arp: read_arp(&optional_table(dir, "arp", warnings))?,
            sessions: read_sessions(&optional_table(dir, "sessions", warnings))?,
            names: read_names(&optional_table(dir, "names", warnings))?,
        })
    }

    /// What `paths` hold: one directory `analyze` wrote (read back), or captures, analysed
    /// in memory with `config` (no files written; their run summary comes too, and has
    /// `inputs_usable == 0` when nothing could be read).
    pub fn load<P: AsRef<Path>>(
        paths: &[P],
        config: &PipelineConfig,
        control: &Control,
    ) -> Result<Loaded, Error> {
        if let [dir] = paths {
            let dir = dir.as_ref();
            if !table_files(dir, "flows").is_empty() {
                let mut warnings = Vec::new();
                let inputs = DetectInputs::read(dir, &mut warnings)?;
                return Ok(Loaded {
                    inputs,
                    summary: None,
                    warnings,
                });
            }
        }
        let inputs = expand_inputs(paths)?;
        let run = analyze(&inputs, config, control, &Output::Memory)?;
        let decoded = if run.summary.inputs_usable > 0 {
            DetectInputs::from_tables(&run.tables)?
        } else {
            DetectInputs::default()
        };
        Ok(Loaded {
            inputs: decoded,
            summary: Some(run.summary),
            warnings: Vec::new(),
        })
    }

    /// Runs detection with `config`.
    pub fn detect(&self, config: &DetectConfig) -> Detection {
        let mut detector = Detector::new(config, &self.dns, &self.arp)
            .with_sessions(&self.sessions)
            .with_names(&self.names);
        self.flows.iter().for_each(|f| detector.push(f));
        let mut detection = detector.finish();
        detection.stats.flows = self.flows.len() as u64;
        detection
    }
}

/// What [`DetectInputs::load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// Detection's inputs.
    pub inputs: DetectInputs,
    /// The run summary, when captures were analysed.
    pub summary: Option<RunSummary>,
    /// Tables missing from a stored directory.
    pub warnings: Vec<String>,
}

/// Detects over tables held in memory (as `analyze` returns them with
/// [`crate::Output::Memory`]): the same detection as over the same tables stored.
///
/// It reads as [`detect_dir`] does: only the DNS messages detection reads are kept, and
/// flows are decoded a batch at a time, only those a rule can use, so memory stays
/// within the detector's caps beyond the tables themselves.
pub fn detect_tables(tables: &Tables, config: &DetectConfig) -> Result<Detection, Error> {
    let (mut dns, mut arp, mut sessions, mut names) =
        (KeptDns::default(), Vec::new(), Vec::new(), Vec::new());
    for b in &tables.dns {
        dns.merge(wanted_dns_events(b, config)?);
    }
    let dns = dns.into_vec();
    tables
        .arp
        .iter()
        .try_for_each(|b| arp_events(b, &mut arp))?;
    tables
        .sessions
        .iter()
        .try_for_each(|b| session_events(b, &mut sessions))?;
    tables
        .names
        .iter()
        .try_for_each(|b| name_events(b, &mut names))?;
    let mut detector = Detector::new(config, &dns, &arp)
        .with_sessions(&sessions)
        .with_names(&names);
    let filter = detector.flow_filter();
    let mut flows = Vec::new();
    for b in &tables.flows {
        let keep = |proto, has_ports, port, addr: ResponderAddr<'_>| {
            filter.wants(proto, has_ports, port, addr)
        };
        kept_flow_batch(b, keep, &mut flows)?;
        flows.drain(..).for_each(|f| detector.push(&f));
    }
    let mut detection = detector.finish();
    detection.stats.flows = rows(&tables.flows);
    detection.stats.dns_events = rows(&tables.dns);
    Ok(detection)
}

/// The files of table `name`; when the table is missing (not merely empty, as a
/// partitioned table without rows is), a warning: detection goes on without it.
pub(crate) fn optional_table(dir: &Path, name: &str, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let files = table_files(dir, name);
    if files.is_empty() && !dir.join(name).is_dir() {
        warnings.push(format!(
            "{name}.parquet not found in {}; detecting without it",
            dir.display()
        ));
    }
    files
}

fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// The `wormsign.inputs` metadata of a stored flows file: what the detection ran on.
fn stored_inputs(flows_path: &Path) -> Option<String> {
    let file = File::open(flows_path).ok()?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
    let kvs = builder.metadata().file_metadata().key_value_metadata()?;
    kvs.iter()
        .find(|kv| kv.key == "wormsign.inputs")
        .and_then(|kv| kv.value.clone())
}

/// Provenance of detection outputs: the version, the inputs (when known), the rules.
pub fn output_metadata(inputs: Option<String>, config: &DetectConfig) -> Vec<(String, String)> {
    let mut kv = vec![(
        "wormsign.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    if let Some(inputs) = inputs {
        kv.push(("wormsign.inputs".into(), inputs));
    }
    kv.push(("wormsign.rules".into(), config.to_toml()));
    kv
}

/// The detection tables as Arrow batches, with the columns of the files
/// [`write_detection`] writes.
#[derive(Clone, Debug)]
pub struct DetectionTables {
    /// `alerts`: one row per alert, in alert id order.
    pub alerts: RecordBatch,
    /// `hosts`: one row per host with a role.
    pub hosts: RecordBatch,
    /// `propagation`: one row per edge of the propagation graph.
    pub propagation: RecordBatch,
    /// `timeline`: one row per event, in time order.
    pub timeline: RecordBatch,
    /// `segmentation`: one row per ordered pair of zones.
    pub segmentation: RecordBatch,
    /// `remediation`: one row per host and action, by tier.
    pub remediation: RecordBatch,
}

impl DetectionTables {
    /// Builds the detection tables from `d`.
    pub fn new(d: &Detection) -> DetectionTables {
        DetectionTables {
            alerts: build::<AlertBatchBuilder>(&d.alerts),
            hosts: build::<HostBatchBuilder>(&d.hosts),
            propagation: build::<PropagationBatchBuilder>(&d.edges),
            timeline: build::<TimelineBatchBuilder>(&d.timeline),
            segmentation: build::<SegmentationBatchBuilder>(&d.zones),
            remediation: build::<RemediationBatchBuilder>(&remediation(d)),
        }
    }
}

fn build<B: RowBuilder>(rows: &[B::Row]) -> RecordBatch {
    let mut b = B::default();
    rows.iter().for_each(|r| b.append(r));
    b.finish()
}

/// Writes `rows` as the table `NAME.parquet` in `dir`, not yet in place.
fn table<B: RowBuilder>(
    dir: &Path,
    name: &str,
    metadata: &[(String, String)],
    rows: &[B::Row],
) -> Result<Vec<StagedFile>, Error> {
    let path = dir.join(format!("{name}.parquet"));
    Ok(vec![TableWriter::<B>::stage_rows(&path, metadata, rows)?])
}

/// Writes every detection output into `dir` (created if missing).
pub fn write_detection(
    dir: &Path,
    d: &Detection,
    metadata: &[(String, String)],
) -> Result<(), Error> {
    stage_detection(dir, d, metadata)?.commit()
}

/// Every detection output, written into its directory and synced, not yet in place.
#[derive(Debug)]
pub(crate) struct StagedDetection(Vec<StagedFile>);

impl StagedDetection {
    /// Renames every output into place.
    pub(crate) fn commit(self) -> Result<(), Error> {
        self.0.into_iter().try_for_each(StagedFile::commit)?;
        Ok(())
    }
}

/// Writes every detection output into `dir` (created if missing) under temporary names,
/// for [`StagedDetection::commit`] to put in place.
pub(crate) fn stage_detection(
    dir: &Path,
    d: &Detection,
    metadata: &[(String, String)],
) -> Result<StagedDetection, Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let text = |name: &str, text: &str| StagedFile::write(&dir.join(name), text.as_bytes());
    // Gathered by whichever of the two writers that need it asks first, while the
    // others run (the second waits for it): 4-6 ms on a scan-heavy capture.
    let fixes = std::sync::OnceLock::new();
    let fixes = || fixes.get_or_init(|| remediation(d));
    let writers: [&Writer<'_>; 8] = [
        &|| table::<AlertBatchBuilder>(dir, "alerts", metadata, &d.alerts),
        &|| table::<HostBatchBuilder>(dir, "hosts", metadata, &d.hosts),
        &|| table::<PropagationBatchBuilder>(dir, "propagation", metadata, &d.edges),
        &|| table::<TimelineBatchBuilder>(dir, "timeline", metadata, &d.timeline),
        &|| table::<SegmentationBatchBuilder>(dir, "segmentation", metadata, &d.zones),
        &|| {
            let mut files =
                table::<RemediationBatchBuilder>(dir, "remediation", metadata, fixes())?;
            files.push(text("remediation.csv", &remediation_csv(fixes()))?);
            Ok(files)
        },
        &|| Ok(vec![text("alerts.jsonl", &alerts_jsonl(d))?]),
        &|| {
            // The report page embeds both; neither needs the other.
            let (report, svg) =
                rayon::join(|| render_report_with(d, fixes()), || render_graph_svg(d));
            let html = markdown_to_html(&report, &[("propagation.svg", &svg)]);
            Ok(vec![
                text("propagation.svg", &svg)?,
                text("propagation.dot", &render_graph_dot(d))?,
                text("report.html", &html)?,
                text("report.md", &report)?,
            ])
        },
    ];
    // Each writer on a thread of its own: every file ends in an fsync, and building the
    // report and the JSON lines of thousands of alerts overlaps with the others.
    let staged = std::thread::scope(|s| {
        let running: Vec<_> = writers.iter().map(|w| s.spawn(w)).collect();
        let written = running
            .into_iter()
            .map(|r| r.join().expect("a detection output writer panicked"));
        written.collect::<Result<Vec<_>, Error>>()
    })?;
    Ok(StagedDetection(staged.into_iter().flatten().collect()))
}

/// One of [`stage_detection`]'s writers: the files it wrote.
type Writer<'w> = dyn Fn() -> Result<Vec<StagedFile>, Error> + Sync + 'w;

/// RFC 3339 UTC time with microseconds (the precision of the Parquet timestamps).
fn rfc3339(ns: i64) -> String {
    UtcTime::from_unix_ns(ns).rfc3339_micros()
}

/// One line of `alerts.jsonl`: the fields of `alerts.parquet`, in its column order,
/// serialized straight from the alert. Building a `serde_json::Value` per field (and
/// formatting it through `Display`) cost 2.5 µs an alert, the longest of the output
/// writers when a scan-heavy capture makes thousands of alerts.
#[derive(serde::Serialize)]
struct AlertLine<'a> {
    alert_id: &'a str,
    rule: &'a str,
    tier: &'a str,
    src_ip: &'a str,
    dst_ip: Option<&'a str>,
    service: &'a str,
    first_seen: &'a str,
    last_seen: &'a str,
    detected_at: &'a str,
    attempts: u64,
    distinct_targets: u64,
    /// Not finite would be written `null`, as JSON has no NaN.
    failed_ratio: f64,
    allowlisted: bool,
    infection_sign: bool,
    evidence: &'a str,
    basis: &'a str,
}

/// One JSON object per alert, keys in the column order of `alerts.parquet`.
fn alerts_jsonl(d: &Detection) -> String {
    let mut o = Vec::with_capacity(d.alerts.len() * 512);
    for a in &d.alerts {
        let (src, dst) = (IpText::new(a.src), a.dst.map(IpText::new));
        let times = [a.first_seen_ns, a.last_seen_ns, a.detected_ns].map(rfc3339);
        let line = AlertLine {
            alert_id: &a.id,
            rule: a.rule.as_str(),
            tier: a.tier.as_str(),
            src_ip: src.as_str(),
            dst_ip: dst.as_ref().map(IpText::as_str),
            service: &a.service,
            first_seen: &times[0],
            last_seen: &times[1],
            detected_at: &times[2],
            attempts: a.attempts,
            distinct_targets: a.distinct_targets,
            failed_ratio: a.failed_ratio,
            allowlisted: a.allowlisted,
            infection_sign: a.infection_sign,
            evidence: &a.evidence,
            basis: a.basis.as_str(),
        };
        serde_json::to_writer(&mut o, &line).expect("an alert serializes to a vector");
        o.push(b'\n');
    }
    String::from_utf8(o).expect("serde_json writes UTF-8")
}

/// The detection counters for the run summary JSON.
pub fn stats_json(d: &Detection) -> serde_json::Value {
    let s = &d.stats;
    serde_json::json!({
        "alerts": d.alerts.len(),
        "edges": d.edges.len(),
        "flows": s.flows,
        "flows_used": s.flows_used,
        "late_flows": s.late_flows,
        "flows_unread": s.flows_unread,
        "flows_in_files": s.flows_in_files,
        "flows_held_without_files": s.flows_held_without_files,
        "flows_without_outcome": s.flows_without_outcome,
        "flows_streamed": s.flows_streamed,
        "dns_events": s.dns_events,
        "arp_events": s.arp_events,
        "session_events": s.session_events,
        "sources_evicted": s.sources_evicted,
        "entries_refused": s.entries_refused,
        "cap_hits": s.cap_hits,
        "saturated_sets": s.saturated_sets,
    })
}

/// At most five names, then how many more: a summary line stays a line when a
/// scan-heavy capture makes thousands of patient zeros (`hosts.parquet` has them all).
fn listed(names: &[String]) -> String {
    const LISTED: usize = 5;
    match names.len() {
        0 => "none".to_string(),
        n if n <= LISTED => names.join(", "),
        n => format!(
            "{} and {} more (hosts.parquet lists them)",
            names[..LISTED].join(", "),
            n - LISTED
        ),
    }
}

/// A few lines for the terminal: alerts by tier, infected hosts, patient zero, the
/// detector's counters and where the outputs are.
pub fn detection_summary(d: &Detection, out_dir: &Path) -> String {
    let count = |t: Tier| d.alerts.iter().filter(|a| a.tier == t).count();
    let infected = d.hosts.iter().filter(|h| h.role.is_infected()).count();
    let zeros: Vec<String> = d.patient_zeros().iter().map(ToString::to_string).collect();
    let st = &d.stats;
    format!(
        "detection: {} alerts (hour {}, day {}, week {}, month {}), {} infected hosts, \
         {} propagation edges, patient zero: {}\n  flows {} (used {}, during the run {}, late \
         {}), sources evicted {}, entries refused {}, saturated sets {}\n  written to {}\n",
        d.alerts.len(),
        count(Tier::Hour),
        count(Tier::Day),
        count(Tier::Week),
        count(Tier::Month),
        infected,
        d.edges.len(),
        listed(&zeros),
        st.flows,
        st.flows_used,
        st.flows_streamed,
        st.late_flows,
        st.sources_evicted,
        st.entries_refused,
        st.saturated_sets,
        out_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flows held without files, late and unread flows are each warned of with their
    /// count; a detection with none has no warning.
    #[test]
    fn temporary_files_that_failed_are_warned_of() {
        let mut d = Detection::default();
        assert!(spill_warnings(&d).is_empty());
        (d.stats.late_flows, d.stats.flows_unread) = (7, 0);
        let late = spill_warnings(&d);
        let want = "detection: 7 usable flows reached the rules after newer ones";
        assert!(late.len() == 1 && late[0].starts_with(want), "{late:?}");
        (d.stats.late_flows, d.stats.flows_unread) = (0, 3);
        let unread = spill_warnings(&d);
        assert!(
            unread.len() == 1
                && unread[0].starts_with("detection: 3 usable flows written to temporary files"),
            "{unread:?}"
        );
        (d.stats.late_flows, d.stats.flows_unread) = (1, 1);
        assert_eq!(spill_warnings(&d).len(), 2);
        (d.stats.late_flows, d.stats.flows_unread) = (0, 0);
        d.stats.flows_held_without_files = 5;
        let held = spill_warnings(&d);
        assert!(
            held.len() == 1 && held[0].ends_with(": 5 more were held in memory"),
            "{held:?}"
        );
    }

    #[test]
    fn rfc3339_formats_microseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_495_094_773_281_123_456),
            "2017-05-18T08:06:13.281123Z"
        );
    }

    #[test]
    fn the_summary_lists_five_names_then_counts_the_rest() {
        let names = |n: usize| (1..=n).map(|i| format!("10.0.0.{i}")).collect::<Vec<_>>();
        assert_eq!(listed(&[]), "none");
        assert_eq!(
            listed(&names(5)),
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5"
        );
        assert_eq!(
            listed(&names(2608)),
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5 and 2603 more (hosts.parquet lists them)"
        );
    }
}
