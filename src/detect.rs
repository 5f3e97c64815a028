//! Worm-propagation detection from the command line: `wormsign detect DIR`, the detection
//! step at the end of `wormsign analyze`, and `wormsign rules`.
//!
//! Both entry points read the stored `flows.parquet`, `dns.parquet` and `arp.parquet`
//! back (so `analyze` and a later `detect` over the same directory see exactly the same
//! input and write identical results), run [`wormsign_detect::detect`], and write
//! `alerts.parquet`, `alerts.jsonl`, `hosts.parquet`, `propagation.parquet`, `report.md`
//! and `report.html`, each under a temporary name renamed into place when complete.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wormsign_capture::time::UtcTime;

use anyhow::Context as _;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, UInt16Type, UInt32Type,
    UInt8Type,
};
use arrow_array::{Array, ArrayRef, BooleanArray, ListArray, RecordBatch, StringArray};
use clap::Args;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use parquet::arrow::ProjectionMask;
use wormsign_columnar::{
    table_files, AlertBatchBuilder, HostBatchBuilder, PropagationBatchBuilder, RowBuilder,
    TableWriter,
};
use wormsign_detect::{
    render_report, ArpEvent, Cidr, DetectConfig, Detection, Detector, DnsEvent, Role, SessionEvent,
    Tier,
};
use wormsign_flow::{
    ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History, NetflowOrigin,
};
use wormsign_inspect::{Fact, Outcome, Protocol};

/// Detection options shared by `wormsign analyze` and `wormsign detect`.
#[derive(Args, Debug, Clone, Default)]
pub struct DetectOptions {
    /// Rules file (TOML, the format `wormsign rules` prints); settings it has replace the
    /// defaults.
    #[arg(long, value_name = "FILE.toml")]
    rules: Option<PathBuf>,
    /// Indicator file: one C&C domain suffix or IP address per line, `#` comments
    /// (repeatable; adds to the built-in DriveLife / Lemon Duck list).
    #[arg(long = "indicators", value_name = "FILE")]
    indicators: Vec<PathBuf>,
    /// Internal network (repeatable); replaces the default RFC 1918 + ULA networks.
    #[arg(long = "internal", value_name = "CIDR")]
    internal: Vec<Cidr>,
    /// Honeypot address: any connection to it is an alert (repeatable).
    #[arg(long = "honeypot", value_name = "IP")]
    honeypots: Vec<IpAddr>,
    /// Allowlisted network (authorized scanners, backup servers): still reported, marked
    /// allowlisted, never infected (repeatable).
    #[arg(long = "allowlist", value_name = "CIDR")]
    allowlist: Vec<Cidr>,
}

impl DetectOptions {
    /// The rule set: defaults, then the rules file, then the command-line options.
    pub fn config(&self) -> anyhow::Result<DetectConfig> {
        let mut c = match &self.rules {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                DetectConfig::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?
            }
            None => DetectConfig::default(),
        };
        for path in &self.indicators {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            c.add_indicators(&text);
        }
        if !self.internal.is_empty() {
            c.internal.clone_from(&self.internal);
        }
        c.honeypots.extend(self.honeypots.iter().copied());
        c.allowlist.extend(self.allowlist.iter().copied());
        Ok(c)
    }
}

/// `wormsign detect`.
#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Directory holding flows.parquet (and dns.parquet, arp.parquet), or their
    /// partitioned directories flows/, dns/, arp/, as written by `wormsign analyze`.
    dir: PathBuf,
    /// Output directory for the alerts, hosts, propagation tables and the report
    /// (default: DIR).
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    options: DetectOptions,
    /// No summary on stderr (warnings are still printed).
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `wormsign detect`.
pub fn detect_cmd(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let config = args.options.config()?;
    let out = args.out.as_deref().unwrap_or(&args.dir);
    run(&args.dir, out, &config, args.quiet)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `wormsign rules`: the built-in rule set as TOML on stdout.
pub fn rules_cmd() -> anyhow::Result<ExitCode> {
    let text = DetectConfig::default().to_toml();
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Reads the tables in `in_dir`, detects, writes every detection output into `out_dir`
/// and (unless `quiet`) prints a short summary on stderr.
pub fn run(
    in_dir: &Path,
    out_dir: &Path,
    config: &DetectConfig,
    quiet: bool,
) -> anyhow::Result<Detection> {
    let flow_files = flow_files(in_dir)?;
    // Only C&C names matter to the rules: other messages are counted, not kept.
    let (dns, dns_read) = read_dns(&optional(in_dir, "dns"), |q| {
        config.cnc_domain_match(q).is_some()
    })?;
    let arp = read_arp(&optional(in_dir, "arp"))?;
    let sessions = read_sessions(&optional(in_dir, "sessions"))?;
    // Flows stream through the detector: only those a rule can use are held.
    let mut detector = Detector::new(config, &dns, &arp).with_sessions(&sessions);
    let filter = detector.flow_filter();
    let flows_read = for_each_flow(
        &flow_files,
        |proto, has_ports, port, addr| filter.wants(proto, has_ports, port, addr),
        |f| detector.push(&f),
    )?;
    let mut d = detector.finish();
    (d.stats.flows, d.stats.dns_events) = (flows_read, dns_read);

    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let metadata = output_metadata(&flow_files[0], config);
    write_outputs(out_dir, &d, &metadata)?;
    if !quiet {
        eprint!("{}", summary(&d, out_dir));
    }
    Ok(d)
}

/// Every table detection reads, in memory.
pub struct Tables {
    pub flows: Vec<FlowRecord>,
    pub dns: Vec<DnsEvent>,
    pub arp: Vec<ArpEvent>,
    pub sessions: Vec<SessionEvent>,
}

/// Reads `flows.parquet`, `dns.parquet`, `arp.parquet` and `sessions.parquet` (all but
/// the first optional, with a warning) from a directory written by `wormsign analyze`.
pub fn read_tables(in_dir: &Path) -> anyhow::Result<Tables> {
    Ok(Tables {
        flows: read_flows(&flow_files(in_dir)?)?,
        dns: read_dns(&optional(in_dir, "dns"), |_| true)?.0,
        arp: read_arp(&optional(in_dir, "arp"))?,
        sessions: read_sessions(&optional(in_dir, "sessions"))?,
    })
}

/// Detection over tables in memory: what `run` does with the files.
pub fn detect_tables(config: &DetectConfig, t: &Tables) -> Detection {
    let mut detector = Detector::new(config, &t.dns, &t.arp).with_sessions(&t.sessions);
    for f in &t.flows {
        detector.push(f);
    }
    detector.finish()
}

/// The files of the flows table, at least one.
fn flow_files(in_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let files = table_files(in_dir, "flows");
    anyhow::ensure!(
        !files.is_empty(),
        "{}: no flows.parquet or flows/ directory (write one with `wormsign analyze`)",
        in_dir.display()
    );
    Ok(files)
}

/// The files of table `name`; when the table is missing (not merely empty, as a
/// partitioned table without rows is), a warning: detection goes on without it.
fn optional(dir: &Path, name: &str) -> Vec<PathBuf> {
    let files = table_files(dir, name);
    if files.is_empty() && !dir.join(name).is_dir() {
        eprintln!(
            "wormsign: warning: {name}.parquet not found in {}; detecting without it",
            dir.display()
        );
    }
    files
}

fn output_metadata(flows_path: &Path, config: &DetectConfig) -> Vec<(String, String)> {
    let mut kv = vec![(
        "wormsign.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    // Provenance of the flows the detection ran on.
    if let Some(inputs) = File::open(flows_path)
        .ok()
        .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).ok())
        .and_then(|b| {
            b.metadata()
                .file_metadata()
                .key_value_metadata()
                .and_then(|kvs| {
                    kvs.iter()
                        .find(|kv| kv.key == "wormsign.inputs")
                        .and_then(|kv| kv.value.clone())
                })
        })
    {
        kv.push(("wormsign.inputs".into(), inputs));
    }
    kv.push(("wormsign.rules".into(), config.to_toml()));
    kv
}

// ---------------------------------------------------------------------------------------
// Reading the stored tables back.

/// The record batches of every file of one table, in file order, each with its file.
/// Files are opened one at a time, so a dataset of thousands of partitions stays within
/// the open-file limit.
fn batches<'a>(
    files: &'a [PathBuf],
    columns: &'a [&str],
) -> impl Iterator<Item = anyhow::Result<(&'a Path, RecordBatch)>> {
    type Batches<'a> = Box<dyn Iterator<Item = anyhow::Result<(&'a Path, RecordBatch)>> + 'a>;
    files.iter().flat_map(move |path| -> Batches<'a> {
        match file_batches(path, columns, None, None) {
            Ok(batches) => Box::new(batches),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    })
}

/// The columns detection reads from each table; the others (community_id and history
/// are the widest) are skipped undecoded.
const FLOW_COLUMNS: [&str; 17] = [
    "ts",
    "last_ts",
    "orig_h",
    "orig_p",
    "resp_h",
    "resp_p",
    "ip_proto",
    "conn_state",
    "vlan",
    "end_reason",
    "source",
    "exporter",
    "sampling_interval",
    "input_if",
    "output_if",
    "first_packet",
    "record",
];
/// The per-direction counters of flows.parquet, in `DirCounters` order (originator,
/// then responder: packets, IP bytes, payload bytes, TCP flags).
const COUNTER_COLUMNS: [&str; 8] = [
    "orig_pkts",
    "orig_ip_bytes",
    "orig_bytes",
    "orig_tcp_flags",
    "resp_pkts",
    "resp_ip_bytes",
    "resp_bytes",
    "resp_tcp_flags",
];
const DNS_COLUMNS: [&str; 7] = [
    "ts",
    "client_h",
    "server_h",
    "qname",
    "is_response",
    "answers",
    "answer_types",
];
const ARP_COLUMNS: [&str; 4] = ["ts", "op", "sender_ip", "target_ip"];
const SESSION_COLUMNS: [&str; 14] = [
    "ts",
    "client_h",
    "client_p",
    "server_h",
    "server_p",
    "protocol",
    "fact",
    "outcome",
    "status",
    "user",
    "domain",
    "workstation",
    "detail",
    "packet",
];

/// The `columns` of `path`: all rows, or row group `group`'s, and of those only the
/// `selection`.
fn file_batches<'a>(
    path: &'a PathBuf,
    columns: &'a [&str],
    group: Option<usize>,
    selection: Option<RowSelection>,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<(&'a Path, RecordBatch)>> + 'a> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("reading {}", path.display()))?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    let builder = match group {
        Some(g) => builder.with_row_groups(vec![g]),
        None => builder,
    };
    let builder = match selection {
        Some(selection) => builder.with_row_selection(selection),
        None => builder,
    };
    let reader = builder
        .with_projection(mask)
        // Small batches: the per-column vectors built from each batch stay below
        // malloc's mmap threshold, so they are reused instead of page-faulted anew.
        .with_batch_size(4096)
        .build()
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(reader.map(move |b| {
        b.map(|b| (path.as_path(), b))
            .with_context(|| format!("reading {}", path.display()))
    }))
}

/// Reads `path` (all of it, or row group `group`) in two passes, because detection
/// keeps few rows: `mark` sees batches of `mark_columns` and says which rows to keep,
/// then `columns` are decoded for those rows only and handed to `each`. Returns the
/// number of rows the file (or group) holds.
fn read_marked(
    path: &PathBuf,
    group: Option<usize>,
    mark_columns: &[&str],
    mut mark: impl FnMut(&RecordBatch) -> anyhow::Result<BooleanArray>,
    columns: &[&str],
    mut each: impl FnMut(&RecordBatch) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let in_file = || path.display().to_string();
    let (mut rows, mut kept) = (0u64, Vec::new());
    for b in file_batches(path, mark_columns, group, None)? {
        let (_, b) = b?;
        rows += b.num_rows() as u64;
        kept.push(mark(&b).with_context(in_file)?);
    }
    if kept.iter().any(|k| k.true_count() > 0) {
        let selection = RowSelection::from_filters(&kept);
        for b in file_batches(path, columns, group, Some(selection))? {
            each(&b?.1).with_context(in_file)?;
        }
    }
    Ok(rows)
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> anyhow::Result<&'a ArrayRef> {
    b.column_by_name(name)
        .with_context(|| format!("column {name} missing"))
}

/// A string column (plain or dictionary-encoded) as one optional `&str` per row.
fn strings<'a>(b: &'a RecordBatch, name: &str) -> anyhow::Result<Vec<Option<&'a str>>> {
    let a = column(b, name)?;
    string_values(a).with_context(|| format!("column {name}: not a string column"))
}

fn string_values(a: &ArrayRef) -> Option<Vec<Option<&str>>> {
    fn get(s: &StringArray, i: usize) -> Option<&str> {
        (!s.is_null(i)).then(|| s.value(i))
    }
    if let Some(s) = a.as_any().downcast_ref::<StringArray>() {
        return Some((0..s.len()).map(|i| get(s, i)).collect());
    }
    let d = a.as_dictionary_opt::<Int16Type>()?;
    let values = d.values().as_any().downcast_ref::<StringArray>()?;
    Some(
        d.keys()
            .iter()
            .map(|k| k.and_then(|k| get(values, usize::try_from(k).ok()?)))
            .collect(),
    )
}

/// An integer or timestamp column as one optional `i64` per row.
fn ints(b: &RecordBatch, name: &str) -> anyhow::Result<Vec<Option<i64>>> {
    let a = column(b, name)?;
    macro_rules! try_type {
        ($t:ty) => {
            if let Some(x) = a.as_primitive_opt::<$t>() {
                return Ok(x.iter().map(|v| v.map(i64::from)).collect());
            }
        };
    }
    try_type!(Int64Type);
    try_type!(Int32Type);
    try_type!(Int16Type);
    try_type!(Int8Type);
    try_type!(UInt32Type);
    try_type!(UInt16Type);
    try_type!(UInt8Type);
    try_type!(TimestampMicrosecondType);
    anyhow::bail!("column {name}: not an integer column ({})", a.data_type())
}

fn bools(b: &RecordBatch, name: &str) -> anyhow::Result<Vec<Option<bool>>> {
    let a = column(b, name)?;
    let x = a
        .as_any()
        .downcast_ref::<BooleanArray>()
        .with_context(|| format!("column {name}: not a boolean column"))?;
    Ok(x.iter().collect())
}

fn required<T>(v: Option<T>, name: &str, row: usize) -> anyhow::Result<T> {
    v.with_context(|| format!("column {name}: null in row {row}"))
}

fn parse_ip(s: Option<&str>, name: &str, row: usize) -> anyhow::Result<IpAddr> {
    let s = required(s, name, row)?;
    s.parse()
        .with_context(|| format!("column {name}: bad address {s:?} in row {row}"))
}

fn ns(us: i64) -> i64 {
    us.saturating_mul(1000)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn read_flows(files: &[PathBuf]) -> anyhow::Result<Vec<FlowRecord>> {
    let mut out = Vec::new();
    for_each_flow(files, |_, _, _, _| true, |f| out.push(f))?;
    Ok(out)
}

/// The responder address of a stored flow, parsed only when asked for (`None` if it is
/// null or not an address).
type ResponderAddr<'a> = &'a dyn Fn() -> Option<IpAddr>;

/// Hands every stored flow that `keep(proto, has_ports, resp_port, resp_addr)` accepts to
/// `sink`, in file and row order (the others are not decoded further); returns the
/// number of flows read. Row groups are decoded by one thread per core, a few at a time,
/// so memory stays at a few row groups while detection's reading keeps up with the
/// pipeline.
fn for_each_flow(
    files: &[PathBuf],
    keep: impl Fn(u8, bool, u16, ResponderAddr<'_>) -> bool + Sync,
    mut sink: impl FnMut(FlowRecord),
) -> anyhow::Result<u64> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut read = 0u64;
    for path in files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let groups = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("reading {}", path.display()))?
            .metadata()
            .num_row_groups();
        for window in (0..groups).collect::<Vec<_>>().chunks(workers) {
            let decoded: Vec<anyhow::Result<(u64, Vec<FlowRecord>)>> = std::thread::scope(|s| {
                let keep = &keep;
                let handles: Vec<_> = window
                    .iter()
                    .map(|&g| s.spawn(move || flow_row_group(path, g, keep)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("row-group reader panicked"))
                    .collect()
            });
            for result in decoded {
                let (rows, flows) = result?;
                read += rows;
                flows.into_iter().for_each(&mut sink);
            }
        }
    }
    Ok(read)
}

/// The flows `keep` accepts in row group `group` of `path`, and the rows it holds.
fn flow_row_group(
    path: &PathBuf,
    group: usize,
    keep: &impl Fn(u8, bool, u16, ResponderAddr<'_>) -> bool,
) -> anyhow::Result<(u64, Vec<FlowRecord>)> {
    // On the DriveLife sample `keep` takes under 1 % of the flows.
    let mut out = Vec::new();
    let columns = [FLOW_COLUMNS.as_slice(), &COUNTER_COLUMNS].concat();
    let rows = read_marked(
        path,
        Some(group),
        &KEEP_COLUMNS,
        |b| kept_flows(b, keep),
        &columns,
        |b| flow_batch(b, &mut out),
    )?;
    Ok((rows, out))
}

/// The flow columns that `keep` in [`for_each_flow`] needs.
const KEEP_COLUMNS: [&str; 4] = ["ip_proto", "orig_p", "resp_p", "resp_h"];

/// Row `i`'s protocol, originator port, responder port and whether the ports are real.
fn flow_ports(
    ip_proto: &[Option<i64>],
    orig_p: &[Option<i64>],
    resp_p: &[Option<i64>],
    i: usize,
) -> anyhow::Result<(u8, u16, u16, bool)> {
    let proto = u8::try_from(required(ip_proto[i], "ip_proto", i)?).unwrap_or(0);
    let orig_port = u16::try_from(orig_p[i].unwrap_or(0)).unwrap_or(0);
    let resp_port = u16::try_from(resp_p[i].unwrap_or(0)).unwrap_or(0);
    // Not stored: ports are 0 exactly when the protocol has none (or a fragment's first
    // fragment was missing).
    let has_ports = matches!(proto, 1 | 6 | 17 | 58 | 132) && (orig_port != 0 || resp_port != 0);
    Ok((proto, orig_port, resp_port, has_ports))
}

/// Which flows of `b` (read with [`KEEP_COLUMNS`]) `keep` accepts.
fn kept_flows(
    b: &RecordBatch,
    keep: &impl Fn(u8, bool, u16, ResponderAddr<'_>) -> bool,
) -> anyhow::Result<BooleanArray> {
    let (ip_proto, orig_p, resp_p) = (ints(b, "ip_proto")?, ints(b, "orig_p")?, ints(b, "resp_p")?);
    let resp_h = strings(b, "resp_h")?;
    (0..b.num_rows())
        .map(|i| {
            let (proto, _, resp_port, has_ports) = flow_ports(&ip_proto, &orig_p, &resp_p, i)?;
            let resp_addr = || resp_h[i].and_then(|s| s.parse().ok());
            Ok(Some(keep(proto, has_ports, resp_port, &resp_addr)))
        })
        .collect()
}

/// Converts one batch of stored flows, appending them to `out`.
fn flow_batch(b: &RecordBatch, out: &mut Vec<FlowRecord>) -> anyhow::Result<()> {
    let ts = ints(b, "ts")?;
    let last_ts = ints(b, "last_ts")?;
    let orig_h = strings(b, "orig_h")?;
    let orig_p = ints(b, "orig_p")?;
    let resp_h = strings(b, "resp_h")?;
    let resp_p = ints(b, "resp_p")?;
    let ip_proto = ints(b, "ip_proto")?;
    let conn_state = strings(b, "conn_state")?;
    let counters: Vec<Vec<Option<i64>>> = COUNTER_COLUMNS
        .iter()
        .map(|n| ints(b, n))
        .collect::<Result<_, _>>()?;
    let vlan = ints(b, "vlan")?;
    let end_reason = strings(b, "end_reason")?;
    let source = strings(b, "source")?;
    let exporter = strings(b, "exporter")?;
    let sampling = ints(b, "sampling_interval")?;
    let input_if = ints(b, "input_if")?;
    let output_if = ints(b, "output_if")?;
    let first_packet = ints(b, "first_packet")?;
    let record = ints(b, "record")?;
    for i in 0..b.num_rows() {
        let c = |k: usize| u64_of(counters[k][i].unwrap_or(0));
        // One direction's four counters, from COUNTER_COLUMNS[first..first + 4].
        let direction = |first: usize| DirCounters {
            packets: c(first),
            ip_bytes: c(first + 1),
            payload_bytes: c(first + 2),
            tcp_flags: u8::try_from(c(first + 3)).unwrap_or(0),
        };
        let (proto, orig_port, resp_port, has_ports) = flow_ports(&ip_proto, &orig_p, &resp_p, i)?;
        let resp_addr = parse_ip(resp_h[i], "resp_h", i)?;
        let state = required(conn_state[i], "conn_state", i)?;
        let source = if source[i] == Some("netflow") {
            FlowSource::Netflow(NetflowOrigin {
                exporter: exporter[i]
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                // The export version is not stored; detection does not use it.
                version: 0,
                sampling_interval: sampling[i].and_then(|v| u32::try_from(v).ok()).unwrap_or(1),
                record_index: record[i].and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                input_if: input_if[i].and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                output_if: output_if[i]
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
            })
        } else {
            FlowSource::Packets
        };
        out.push(FlowRecord {
            first_packet: u64_of(required(first_packet[i], "first_packet", i)?),
            ts_first: ns(required(ts[i], "ts", i)?),
            ts_last: ns(required(last_ts[i], "last_ts", i)?),
            orig_addr: parse_ip(orig_h[i], "orig_h", i)?,
            orig_port,
            resp_addr,
            resp_port,
            has_ports,
            proto,
            vlan: vlan[i].and_then(|v| u16::try_from(v).ok()),
            orig: direction(0),
            resp: direction(4),
            conn_state: ConnState::from_name(state).unwrap_or(ConnState::OTH),
            // Not used by detection.
            history: History::default(),
            end_reason: EndReason::ALL
                .into_iter()
                .find(|r| Some(r.as_str()) == end_reason[i])
                .unwrap_or(EndReason::EndOfInput),
            source,
        });
    }
    Ok(())
}

/// Row `i` of a list-of-strings column (an empty list for null).
fn list_row(a: &ArrayRef, name: &str, i: usize) -> anyhow::Result<Vec<Option<String>>> {
    let l = a
        .as_any()
        .downcast_ref::<ListArray>()
        .with_context(|| format!("column {name}: not a list column"))?;
    if l.is_null(i) {
        return Ok(Vec::new());
    }
    let v = l.value(i);
    let s = string_values(&v).with_context(|| format!("column {name}: not a list of strings"))?;
    Ok(s.into_iter().map(|x| x.map(str::to_string)).collect())
}

/// Reads DNS messages, keeping those whose query name `keep` accepts (as stored; kept
/// names are then lower-cased without the trailing dot); returns them and the number of
/// messages read.
fn read_dns(
    files: &[PathBuf],
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<(Vec<DnsEvent>, u64)> {
    let (mut out, mut read) = (Vec::new(), 0u64);
    // Names first: the other columns (the answer lists are the widest) are decoded only
    // for the messages `keep` takes, typically a handful of a million.
    let wanted = |b: &RecordBatch| -> anyhow::Result<BooleanArray> {
        let qname = strings(b, "qname")?;
        Ok(qname.iter().map(|q| Some(q.is_some_and(&keep))).collect())
    };
    for path in files {
        let each = |b: &RecordBatch| dns_events(b, &mut out);
        read += read_marked(path, None, &["qname"], wanted, &DNS_COLUMNS, each)?;
    }
    Ok((out, read))
}

/// Appends the messages of `b` (rows whose `qname` is set) to `out`.
fn dns_events(b: &RecordBatch, out: &mut Vec<DnsEvent>) -> anyhow::Result<()> {
    let ts = ints(b, "ts")?;
    let client = strings(b, "client_h")?;
    let server = strings(b, "server_h")?;
    let qname = strings(b, "qname")?;
    let is_response = bools(b, "is_response")?;
    let (answers, types) = (column(b, "answers")?, column(b, "answer_types")?);
    for i in 0..b.num_rows() {
        let Some(name) = qname[i] else {
            continue;
        };
        let qname = Some(name.trim_end_matches('.').to_ascii_lowercase());
        let answers = list_row(answers, "answers", i)?
            .into_iter()
            .zip(list_row(types, "answer_types", i)?)
            .filter(|(_, t)| matches!(t.as_deref(), Some("A" | "AAAA")))
            .filter_map(|(a, _)| a)
            .collect();
        out.push(DnsEvent {
            ts_ns: ns(required(ts[i], "ts", i)?),
            client: parse_ip(client[i], "client_h", i)?,
            server: parse_ip(server[i], "server_h", i)?,
            qname,
            is_response: is_response[i].unwrap_or(false),
            answers,
        });
    }
    Ok(())
}

/// Reads the protocol facts of `sessions.parquet`.
fn read_sessions(files: &[PathBuf]) -> anyhow::Result<Vec<SessionEvent>> {
    let mut out = Vec::new();
    for b in batches(files, &SESSION_COLUMNS) {
        let (path, b) = b?;
        session_events(&b, &mut out).with_context(|| path.display().to_string())?;
    }
    Ok(out)
}

fn session_events(b: &RecordBatch, out: &mut Vec<SessionEvent>) -> anyhow::Result<()> {
    let (ts, packet, status) = (ints(b, "ts")?, ints(b, "packet")?, ints(b, "status")?);
    let (client, server) = (strings(b, "client_h")?, strings(b, "server_h")?);
    let (client_p, server_p) = (ints(b, "client_p")?, ints(b, "server_p")?);
    let (protocol, fact, outcome) = (
        strings(b, "protocol")?,
        strings(b, "fact")?,
        strings(b, "outcome")?,
    );
    let text = |name| -> anyhow::Result<Vec<Option<String>>> {
        Ok(strings(b, name)?
            .into_iter()
            .map(|s| s.map(str::to_string))
            .collect())
    };
    let (user, domain, workstation, detail) = (
        text("user")?,
        text("domain")?,
        text("workstation")?,
        text("detail")?,
    );
    // Names back to their enums, without copying the names.
    fn named<T>(
        v: Option<&str>,
        col: &str,
        i: usize,
        of: fn(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let name = required(v, col, i)?;
        of(name).with_context(|| format!("row {i}: unknown {col} {name:?}"))
    }
    for i in 0..b.num_rows() {
        out.push(SessionEvent {
            ts_ns: ns(required(ts[i], "ts", i)?),
            packet: u64_of(required(packet[i], "packet", i)?),
            client: parse_ip(client[i], "client_h", i)?,
            client_port: u16::try_from(required(client_p[i], "client_p", i)?)?,
            server: parse_ip(server[i], "server_h", i)?,
            server_port: u16::try_from(required(server_p[i], "server_p", i)?)?,
            protocol: named(protocol[i], "protocol", i, Protocol::from_name)?,
            fact: named(fact[i], "fact", i, Fact::from_name)?,
            outcome: named(outcome[i], "outcome", i, Outcome::from_name)?,
            status: status[i].map(u32::try_from).transpose()?,
            user: user[i].clone(),
            domain: domain[i].clone(),
            workstation: workstation[i].clone(),
            detail: detail[i].clone(),
        });
    }
    Ok(())
}

fn read_arp(files: &[PathBuf]) -> anyhow::Result<Vec<ArpEvent>> {
    let mut out = Vec::new();
    for b in batches(files, &ARP_COLUMNS) {
        let (path, b) = b?;
        let rows = (|| -> anyhow::Result<()> {
            let ts = ints(&b, "ts")?;
            let op = strings(&b, "op")?;
            let sender = strings(&b, "sender_ip")?;
            let target = strings(&b, "target_ip")?;
            for i in 0..b.num_rows() {
                // ARP rows are IPv4 by construction; anything else is skipped.
                let (Some(Ok(sender)), Some(Ok(target))) = (
                    sender[i].map(str::parse::<Ipv4Addr>),
                    target[i].map(str::parse::<Ipv4Addr>),
                ) else {
                    continue;
                };
                out.push(ArpEvent {
                    ts_ns: ns(required(ts[i], "ts", i)?),
                    sender,
                    target,
                    is_request: op[i] == Some("request"),
                });
            }
            Ok(())
        })();
        rows.with_context(|| path.display().to_string())?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Writing the outputs.

fn write_table<B: RowBuilder>(
    path: &Path,
    metadata: &[(String, String)],
    rows: &[B::Row],
) -> anyhow::Result<()> {
    let mut w = TableWriter::<B>::create(path, metadata)?;
    for r in rows {
        w.push(r)?;
    }
    w.finish()?;
    Ok(())
}

/// Writes `text` to `path` under a temporary name, then renames it into place.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

fn write_outputs(dir: &Path, d: &Detection, metadata: &[(String, String)]) -> anyhow::Result<()> {
    write_table::<AlertBatchBuilder>(&dir.join("alerts.parquet"), metadata, &d.alerts)?;
    write_table::<HostBatchBuilder>(&dir.join("hosts.parquet"), metadata, &d.hosts)?;
    write_table::<PropagationBatchBuilder>(&dir.join("propagation.parquet"), metadata, &d.edges)?;
    write_atomic(&dir.join("alerts.jsonl"), &alerts_jsonl(d))?;
    let report = render_report(d);
    write_atomic(&dir.join("report.html"), &markdown_to_html(&report))?;
    write_atomic(&dir.join("report.md"), &report)?;
    Ok(())
}

/// RFC 3339 UTC time with microseconds (the precision of the Parquet timestamps).
fn rfc3339(ns: i64) -> String {
    UtcTime::from_unix_ns(ns).rfc3339_micros()
}

/// One JSON object per alert, keys in the column order of `alerts.parquet`.
fn alerts_jsonl(d: &Detection) -> String {
    use serde_json::Value;
    let mut o = String::new();
    for a in &d.alerts {
        let fields: [(&str, Value); 16] = [
            ("alert_id", a.id.as_str().into()),
            ("rule", a.rule.as_str().into()),
            ("tier", a.tier.as_str().into()),
            ("src_ip", a.src.to_string().into()),
            (
                "dst_ip",
                a.dst.map_or(Value::Null, |ip| ip.to_string().into()),
            ),
            ("service", a.service.as_str().into()),
            ("first_seen", rfc3339(a.first_seen_ns).into()),
            ("last_seen", rfc3339(a.last_seen_ns).into()),
            ("detected_at", rfc3339(a.detected_ns).into()),
            ("attempts", a.attempts.into()),
            ("distinct_targets", a.distinct_targets.into()),
            ("failed_ratio", a.failed_ratio.into()),
            ("allowlisted", a.allowlisted.into()),
            ("infection_sign", a.infection_sign.into()),
            ("evidence", a.evidence.as_str().into()),
            ("basis", a.basis.as_str().into()),
        ];
        o.push('{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{}:{}", Value::from(*k), v);
        }
        o.push_str("}\n");
    }
    o
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
        "dns_events": s.dns_events,
        "arp_events": s.arp_events,
        "session_events": s.session_events,
        "sources_evicted": s.sources_evicted,
        "entries_refused": s.entries_refused,
        "cap_hits": s.cap_hits,
        "saturated_sets": s.saturated_sets,
    })
}

fn summary(d: &Detection, out_dir: &Path) -> String {
    let count = |t: Tier| d.alerts.iter().filter(|a| a.tier == t).count();
    let infected = d
        .hosts
        .iter()
        .filter(|h| matches!(h.role, Role::PatientZero | Role::Infected))
        .count();
    let zeros: Vec<String> = d.patient_zeros().iter().map(ToString::to_string).collect();
    let st = &d.stats;
    format!(
        "detection: {} alerts (hour {}, day {}, week {}, month {}), {} infected hosts, \
         {} propagation edges, patient zero: {}\n  flows {} (used {}, late {}), \
         sources evicted {}, entries refused {}, saturated sets {}\n  written to {}\n",
        d.alerts.len(),
        count(Tier::Hour),
        count(Tier::Day),
        count(Tier::Week),
        count(Tier::Month),
        infected,
        d.edges.len(),
        if zeros.is_empty() {
            "none".to_string()
        } else {
            zeros.join(", ")
        },
        st.flows,
        st.flows_used,
        st.late_flows,
        st.sources_evicted,
        st.entries_refused,
        st.saturated_sets,
        out_dir.display()
    )
}

// ---------------------------------------------------------------------------------------
// The report as HTML.

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Inline Markdown: `code` and **bold**, everything escaped.
fn inline(s: &str) -> String {
    let mut o = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            if let Some(end) = after.find('`') {
                let _ = write!(o, "<code>{}</code>", escape(&after[..end]));
                rest = &after[end + 1..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("**") {
            if let Some(end) = after.find("**") {
                let _ = write!(o, "<strong>{}</strong>", inline(&after[..end]));
                rest = &after[end + 2..];
                continue;
            }
        }
        let first = rest.chars().next().map_or(1, char::len_utf8);
        let next = rest[first..]
            .find(['`', '*'])
            .map_or(rest.len(), |p| p + first);
        o.push_str(&escape(&rest[..next]));
        rest = &rest[next..];
    }
    o
}

/// Table cells of a `| a | b |` line; `\|` is a literal bar.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("non-empty").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("non-empty").push(c),
        }
    }
    out.iter().map(|c| c.trim().to_string()).collect()
}

/// A minimal, self-contained HTML rendering of the report's Markdown (headings, lists,
/// nested lists, ordered lists, tables, paragraphs; `code` and **bold**).
fn markdown_to_html(md: &str) -> String {
    #[derive(PartialEq)]
    enum Block {
        None,
        Para,
        Ul(usize),
        Ol,
        Table,
    }
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Worm outbreak report</title>\n<style>\n\
         body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.4}\n\
         table{border-collapse:collapse;font-size:90%}\n\
         th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}\n\
         th{background:#eee}\ncode{background:#f4f4f4;padding:0 .2em}\n\
         </style>\n</head>\n<body>\n",
    );
    let mut block = Block::None;
    let close = |o: &mut String, block: &mut Block| {
        match block {
            Block::None => {}
            Block::Para => o.push_str("</p>\n"),
            Block::Ul(depth) => {
                for _ in 0..*depth {
                    o.push_str("</li>\n</ul>\n");
                }
            }
            Block::Ol => o.push_str("</li>\n</ol>\n"),
            Block::Table => o.push_str("</tbody>\n</table>\n"),
        }
        *block = Block::None;
    };
    for line in md.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            close(&mut o, &mut block);
        } else if let Some(h) = trimmed.strip_prefix('#').filter(|_| indent == 0) {
            close(&mut o, &mut block);
            let level = 1 + h.chars().take_while(|&c| c == '#').count().min(5);
            let _ = writeln!(
                o,
                "<h{level}>{}</h{level}>",
                inline(h.trim_start_matches('#').trim())
            );
        } else if trimmed.starts_with('|') {
            let row = cells(trimmed);
            if row
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if block != Block::Table {
                close(&mut o, &mut block);
                o.push_str("<table>\n<thead>\n<tr>");
                for c in &row {
                    let _ = write!(o, "<th>{}</th>", inline(c));
                }
                o.push_str("</tr>\n</thead>\n<tbody>\n");
                block = Block::Table;
            } else {
                o.push_str("<tr>");
                for c in &row {
                    let _ = write!(o, "<td>{}</td>", inline(c));
                }
                o.push_str("</tr>\n");
            }
        } else if let Some(item) = trimmed.strip_prefix("- ") {
            let depth = indent / 2 + 1;
            match block {
                Block::Ul(d) if d == depth => o.push_str("</li>\n"),
                Block::Ul(d) if d < depth => {
                    for _ in d..depth {
                        o.push_str("\n<ul>\n");
                    }
                }
                Block::Ul(d) => {
                    for _ in depth..d {
                        o.push_str("</li>\n</ul>\n");
                    }
                    o.push_str("</li>\n");
                }
                _ => {
                    close(&mut o, &mut block);
                    for _ in 0..depth {
                        o.push_str("<ul>\n");
                    }
                }
            }
            let _ = write!(o, "<li>{}", inline(item));
            block = Block::Ul(depth);
        } else if let Some(item) = trimmed
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map(|(_, item)| item)
        {
            if block == Block::Ol {
                o.push_str("</li>\n");
            } else {
                close(&mut o, &mut block);
                o.push_str("<ol>\n");
            }
            let _ = write!(o, "<li>{}", inline(item));
            block = Block::Ol;
        } else {
            if block == Block::Para {
                o.push('\n');
            } else {
                close(&mut o, &mut block);
                o.push_str("<p>");
            }
            o.push_str(&inline(trimmed));
            block = Block::Para;
        }
    }
    close(&mut o, &mut block);
    o.push_str("</body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_microseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_495_094_773_281_123_456),
            "2017-05-18T08:06:13.281123Z"
        );
    }

    #[test]
    fn html_escapes_and_structures() {
        let md = "# Title <x>\n\nSome `a<b>` and **bold & co**.\n\n- one\n  - nested\n- two\n\n\
                  1. first\n2. second\n\n| a | b |\n|---|---|\n| x \\| y | <z> |\n";
        let html = markdown_to_html(md);
        assert!(html.contains("<h1>Title &lt;x&gt;</h1>"));
        assert!(html.contains("<code>a&lt;b&gt;</code>"));
        assert!(html.contains("<strong>bold &amp; co</strong>"));
        assert!(html.contains("<li>nested</li>\n</ul>\n</li>\n<li>two</li>\n</ul>"));
        assert!(html.contains("<ol>\n<li>first</li>\n<li>second</li>\n</ol>"));
        assert!(html.contains("<td>x | y</td><td>&lt;z&gt;</td>"));
        assert!(!html.contains("<x>") && !html.contains("<z>"));
    }
}
