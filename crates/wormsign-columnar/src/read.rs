//! Reading wormsign's tables back: the inverse of the schemas in this crate, for
//! detection (which must see exactly what was stored, so that `analyze` and a later
//! `wormsign detect` agree) and for callers holding the tables in memory.
//!
//! Files are read in two passes where detection keeps few rows: the columns a filter
//! needs first, then every column of the kept rows only (parquet's `RowSelection`).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, UInt16Type, UInt32Type,
    UInt8Type,
};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;
use wormsign_decode::{ArpEvent, DnsEvent, NameEvent, Tunnel, TunnelKind};
use wormsign_flow::{
    ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History, LogKind, NetflowOrigin,
    SflowOrigin,
};
use wormsign_inspect::{Fact, Outcome, Protocol, SessionEvent};

use crate::ColumnarError;

type Result<T> = std::result::Result<T, ColumnarError>;

/// `with_context` for the read-back: a failure becomes [`ColumnarError::Read`] with the
/// file, column or row it concerns in front.
trait WithContext<T> {
    fn with_context<S: std::fmt::Display>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> WithContext<T> for Option<T> {
    fn with_context<S: std::fmt::Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| ColumnarError::Read(what().to_string()))
    }
}

impl<T, E: std::fmt::Display> WithContext<T> for std::result::Result<T, E> {
    fn with_context<S: std::fmt::Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| ColumnarError::Read(format!("{}: {e}", what())))
    }
}

/// The record batches of every file of one table, in file order, each with its file.
/// Files are opened one at a time, so a dataset of thousands of partitions stays within
/// the open-file limit.
fn batches<'a>(
    files: &'a [PathBuf],
    columns: &'a [&str],
) -> impl Iterator<Item = Result<(&'a Path, RecordBatch)>> {
    type Batches<'a> = Box<dyn Iterator<Item = Result<(&'a Path, RecordBatch)>> + 'a>;
    files.iter().flat_map(move |path| -> Batches<'a> {
        match file_batches(path, columns, &[], None, None) {
            Ok(batches) => Box::new(batches),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    })
}

/// Every column of every row of `files` (one table's files, in order).
pub fn read_batches(files: &[PathBuf]) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for path in files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .with_context(|| format!("reading {}", path.display()))?;
        for batch in reader {
            out.push(batch.with_context(|| format!("reading {}", path.display()))?);
        }
    }
    Ok(out)
}

/// The columns detection reads from each table; the others (community_id and history
/// are the widest) are skipped undecoded.
const FLOW_COLUMNS: [&str; 23] = [
    "ts",
    "last_ts",
    "orig_h",
    "orig_p",
    "resp_h",
    "resp_p",
    "ip_proto",
    "conn_state",
    "vlan",
    "tunnel_type",
    "tunnel_src",
    "tunnel_dst",
    "tunnel_id",
    "tunnel_depth",
    "tunnel_chain",
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

/// The columns of flows.parquet that [`flow_batch`] reads: a reader of the table for
/// detection (Spark, say) can leave out the rest.
pub fn detection_flow_columns() -> Vec<&'static str> {
    [FLOW_COLUMNS.as_slice(), &COUNTER_COLUMNS].concat()
}

const DNS_COLUMNS: [&str; 7] = [
    "ts",
    "client_h",
    "server_h",
    "qname",
    "is_response",
    "answers",
    "answer_types",
];
const ARP_COLUMNS: [&str; 5] = ["ts", "op", "sender_ip", "target_ip", "sender_mac"];
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
/// `selection`. `Utf8` columns named in `dictionaries` come as `Int32` dictionary arrays
/// instead of one string per row: the file's own dictionary where its pages use one,
/// else one parquet builds for each batch.
fn file_batches<'a>(
    path: &'a PathBuf,
    columns: &'a [&str],
    dictionaries: &[&str],
    group: Option<usize>,
    selection: Option<RowSelection>,
) -> Result<impl Iterator<Item = Result<(&'a Path, RecordBatch)>> + 'a> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reading = || format!("reading {}", path.display());
    let mut metadata =
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).with_context(reading)?;
    if !dictionaries.is_empty() {
        // The footer as read, given the dictionary types.
        let options = ArrowReaderOptions::new()
            .with_schema(with_dictionaries(metadata.schema(), dictionaries));
        metadata = ArrowReaderMetadata::try_new(Arc::clone(metadata.metadata()), options)
            .with_context(reading)?;
    }
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata);
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

/// `schema` with its `Utf8` columns named in `dictionaries` read as dictionaries.
fn with_dictionaries(schema: &SchemaRef, dictionaries: &[&str]) -> SchemaRef {
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 if dictionaries.contains(&f.name().as_str()) => {
                Arc::new(f.as_ref().clone().with_data_type(dictionary.clone()))
            }
            _ => Arc::clone(f),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The columns the first pass of [`read_marked`] reads, and those of them it reads as
/// dictionaries.
#[derive(Clone, Copy)]
struct Marking<'a> {
    columns: &'a [&'a str],
    dictionaries: &'a [&'a str],
}

impl<'a> Marking<'a> {
    /// `columns`, each as one value per row.
    const fn rows(columns: &'a [&'a str]) -> Marking<'a> {
        Marking {
            columns,
            dictionaries: &[],
        }
    }
}

/// Reads `path` (all of it, or row group `group`) in two passes, because detection
/// keeps few rows: `mark` sees batches of the `marking` columns and says which rows to
/// keep, then `columns` are decoded for those rows only and handed to `each`. Returns
/// the number of rows the file (or group) holds.
fn read_marked(
    path: &PathBuf,
    group: Option<usize>,
    marking: Marking<'_>,
    mut mark: impl FnMut(&RecordBatch) -> Result<BooleanArray>,
    columns: &[&str],
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<u64> {
    let in_file = || path.display().to_string();
    let (mut rows, mut kept) = (0u64, Vec::new());
    for b in file_batches(path, marking.columns, marking.dictionaries, group, None)? {
        let (_, b) = b?;
        rows += b.num_rows() as u64;
        kept.push(mark(&b).with_context(in_file)?);
    }
    if kept.iter().any(|k| k.true_count() > 0) {
        let selection = RowSelection::from_filters(&kept);
        for b in file_batches(path, columns, &[], group, Some(selection))? {
            each(&b?.1).with_context(in_file)?;
        }
    }
    Ok(rows)
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .with_context(|| format!("column {name} missing"))
}

/// A string column (plain or dictionary-encoded) as one optional `&str` per row.
fn strings<'a>(b: &'a RecordBatch, name: &str) -> Result<Vec<Option<&'a str>>> {
    let a = column(b, name)?;
    string_values(a).with_context(|| format!("column {name}: not a string column"))
}

/// A string column as one optional `&str` per row: what wormsign writes (`Utf8`, or a
/// dictionary of it), and the layouts other Arrow producers use for the same data
/// (`LargeUtf8`, `Utf8View`, dictionaries with other keys: polars, DuckDB), so tables
/// that went through them read back the same.
fn string_values(a: &dyn Array) -> Option<Vec<Option<&str>>> {
    if let Some(s) = a.as_string_opt::<i32>() {
        return Some(s.iter().collect());
    }
    if let Some(s) = a.as_string_opt::<i64>() {
        return Some(s.iter().collect());
    }
    if let Some(s) = a.as_string_view_opt() {
        return Some(s.iter().collect());
    }
    let d = a.as_any_dictionary_opt()?;
    let values = string_values(d.values().as_ref())?;
    if values.is_empty() {
        // Every key is null (`normalized_keys` asserts a non-empty dictionary).
        return Some(vec![None; a.len()]);
    }
    // A key past the dictionary (which no writer produces) reads as its last value:
    // arrow's normalized keys are clamped, never out of bounds.
    let keys = d.normalized_keys();
    let row = |i: usize| values.get(keys[i]).copied().flatten();
    Some(
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| row(i)).flatten())
            .collect(),
    )
}

/// An integer or timestamp column as one optional `i64` per row.
fn ints(b: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
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
    Err(ColumnarError::Read(format!(
        "column {name}: not an integer column ({})",
        a.data_type()
    )))
}

fn bools(b: &RecordBatch, name: &str) -> Result<Vec<Option<bool>>> {
    let a = column(b, name)?;
    let x = a
        .as_any()
        .downcast_ref::<BooleanArray>()
        .with_context(|| format!("column {name}: not a boolean column"))?;
    Ok(x.iter().collect())
}

fn required<T>(v: Option<T>, name: &str, row: usize) -> Result<T> {
    v.with_context(|| format!("column {name}: null in row {row}"))
}

fn parse_ip(s: Option<&str>, name: &str, row: usize) -> Result<IpAddr> {
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

/// Every stored flow of `files`, in file and row order.
pub fn read_flows(files: &[PathBuf]) -> Result<Vec<FlowRecord>> {
    let mut out = Vec::new();
    for_each_flow(files, |_, _, _, _| true, |f| out.push(f))?;
    Ok(out)
}

/// The responder address of a stored flow, parsed only when asked for (`None` if it is
/// null or not an address).
pub type ResponderAddr<'a> = &'a dyn Fn() -> Option<IpAddr>;

/// Hands every stored flow that `keep(proto, has_ports, resp_port, resp_addr)` accepts to
/// `sink`, in file and row order (the others are not decoded further); returns the
/// number of flows read.
pub fn for_each_flow(
    files: &[PathBuf],
    keep: impl Fn(u8, bool, u16, ResponderAddr<'_>) -> bool + Sync,
    sink: impl FnMut(FlowRecord),
) -> Result<u64> {
    let marking = Marking::rows(&KEEP_COLUMNS);
    for_each_marked_flow(files, marking, |b| kept_flows(b, &keep), sink)
}

/// Hands every stored flow whose responder address `wanted` accepts to `sink`, in file
/// and row order; returns the number of flows read. Only the responder column is read to
/// find them, as a dictionary, so that each distinct address is parsed once: for the pass
/// over the flows to C&C addresses a run's DNS resolved, which looks at every flow's
/// responder and keeps a handful, building and parsing one address string per row was
/// most of the cost.
pub fn for_each_flow_to(
    files: &[PathBuf],
    wanted: impl Fn(IpAddr) -> bool + Sync,
    sink: impl FnMut(FlowRecord),
) -> Result<u64> {
    let marking = Marking {
        columns: &["resp_h"],
        dictionaries: &["resp_h"],
    };
    let mark = |b: &RecordBatch| responders(column(b, "resp_h")?, &wanted);
    for_each_marked_flow(files, marking, mark, sink)
}

/// Hands the flows `mark` keeps (it sees batches of the `marking` columns) to `sink`, in
/// file and row order; returns the number of flows read. Row groups are decoded by one
/// thread per core, a few at a time, so memory stays at a few row groups while
/// detection's reading keeps up with the pipeline.
fn for_each_marked_flow(
    files: &[PathBuf],
    marking: Marking<'_>,
    mark: impl Fn(&RecordBatch) -> Result<BooleanArray> + Sync,
    mut sink: impl FnMut(FlowRecord),
) -> Result<u64> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut read = 0u64;
    for path in files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let groups = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("reading {}", path.display()))?
            .metadata()
            .num_row_groups();
        for window in (0..groups).collect::<Vec<_>>().chunks(workers) {
            let decoded: Vec<Result<(u64, Vec<FlowRecord>)>> = std::thread::scope(|s| {
                let mark = &mark;
                let handles: Vec<_> = window
                    .iter()
                    .map(|&g| s.spawn(move || flow_row_group(path, g, marking, mark)))
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

/// The flows `mark` keeps in row group `group` of `path`, and the rows it holds.
fn flow_row_group(
    path: &PathBuf,
    group: usize,
    marking: Marking<'_>,
    mark: &impl Fn(&RecordBatch) -> Result<BooleanArray>,
) -> Result<(u64, Vec<FlowRecord>)> {
    // On the DriveLife sample detection keeps under 1 % of the flows.
    let mut out = Vec::new();
    let rows = read_marked(
        path,
        Some(group),
        marking,
        mark,
        &detection_flow_columns(),
        |b| flow_batch(b, &mut out),
    )?;
    Ok((rows, out))
}

/// Which rows of the responder column `resp_h` hold an address `wanted` accepts. Read as
/// an `Int32` dictionary of strings, each distinct address of the batch is parsed once;
/// other layouts are read row by row.
fn responders(resp_h: &ArrayRef, wanted: &impl Fn(IpAddr) -> bool) -> Result<BooleanArray> {
    let accepts = |s: &str| s.parse().is_ok_and(wanted);
    let dictionary = resp_h
        .as_dictionary_opt::<Int32Type>()
        .and_then(|d| Some((d.keys(), d.values().as_string_opt::<i32>()?)));
    let Some((keys, values)) = dictionary else {
        let rows =
            string_values(resp_h.as_ref()).with_context(|| "column resp_h: not a string column")?;
        return Ok(rows.iter().map(|s| Some(s.is_some_and(accepts))).collect());
    };
    // Parquet hands every batch the row group's whole dictionary, up to some 75 k
    // addresses when they are many: values are read only for the keys the batch holds.
    // Per value: not yet parsed, not wanted, wanted (one byte each).
    let mut verdicts = vec![None; values.len()];
    let mut verdict = |key: usize| match verdicts.get_mut(key) {
        Some(v) => *v.get_or_insert_with(|| values.is_valid(key) && accepts(values.value(key))),
        // Parquet refuses keys past the dictionary; a hand-made array might hold one.
        None => false,
    };
    Ok((0..keys.len())
        .map(|i| {
            let key = keys
                .is_valid(i)
                .then(|| usize::try_from(keys.value(i)).ok());
            Some(key.flatten().is_some_and(&mut verdict))
        })
        .collect())
}

/// The flow columns that `keep` in [`for_each_flow`] needs.
const KEEP_COLUMNS: [&str; 4] = ["ip_proto", "orig_p", "resp_p", "resp_h"];

/// A flow as storing it in the flows table and reading it back with [`flow_batch`] gives
/// it: times cut to microseconds, counters capped at `i64::MAX`, no TCP history and no
/// export version (not stored), and "has ports" as the stored columns imply it: what a
/// caller holding the records themselves sees of a later read-back, without building and
/// parsing the rows. The pipeline's flow picker applies the same `stored_*` rules to just
/// the fields detection keeps, and a test holds it to this.
pub fn as_stored(f: &FlowRecord) -> FlowRecord {
    let direction = |d: &DirCounters| DirCounters {
        packets: stored_count(d.packets),
        ip_bytes: stored_count(d.ip_bytes),
        payload_bytes: stored_count(d.payload_bytes),
        tcp_flags: d.tcp_flags,
    };
    let source = match f.source {
        FlowSource::Packets | FlowSource::Log(_) => f.source,
        FlowSource::Sflow(s) => FlowSource::Sflow(SflowOrigin {
            record_index: stored_record_index(s.record_index),
            ..s
        }),
        FlowSource::Netflow(n) => FlowSource::Netflow(NetflowOrigin {
            version: 0,
            record_index: stored_record_index(n.record_index),
            ..n
        }),
    };
    FlowRecord {
        first_packet: stored_count(f.first_packet),
        ts_first: stored_time(f.ts_first),
        ts_last: stored_time(f.ts_last),
        has_ports: stored_has_ports(f.proto, f.orig_port, f.resp_port),
        orig: direction(&f.orig),
        resp: direction(&f.resp),
        history: History::default(),
        source,
        ..f.clone()
    }
}

/// A time (ns since the epoch) as it reads back: cut to the microseconds the tables keep.
pub fn stored_time(ts_ns: i64) -> i64 {
    ns(crate::builders::micros(ts_ns))
}

/// A counter or packet ordinal as it reads back: the columns are signed, so capped at
/// `i64::MAX`.
pub fn stored_count(v: u64) -> u64 {
    v.min(i64::MAX as u64)
}

/// A record's index in its export datagram as it reads back: the `record` column is a
/// signed 32-bit integer.
pub fn stored_record_index(index: u32) -> u32 {
    index.min(i32::MAX as u32)
}

/// Whether a flow with these ports reads back with `has_ports` set. Not stored: ports
/// are 0 exactly when the protocol has none (or a fragment's first fragment was missing).
pub fn stored_has_ports(proto: u8, orig_port: u16, resp_port: u16) -> bool {
    matches!(proto, 1 | 6 | 17 | 58 | 132) && (orig_port != 0 || resp_port != 0)
}

/// Row `i`'s protocol, originator port, responder port and whether the ports are real.
fn flow_ports(
    ip_proto: &[Option<i64>],
    orig_p: &[Option<i64>],
    resp_p: &[Option<i64>],
    i: usize,
) -> Result<(u8, u16, u16, bool)> {
    let proto = u8::try_from(required(ip_proto[i], "ip_proto", i)?).unwrap_or(0);
    let orig_port = u16::try_from(orig_p[i].unwrap_or(0)).unwrap_or(0);
    let resp_port = u16::try_from(resp_p[i].unwrap_or(0)).unwrap_or(0);
    Ok((
        proto,
        orig_port,
        resp_port,
        stored_has_ports(proto, orig_port, resp_port),
    ))
}

/// The source and responder address of the flows in `rows` of `b` (the flows table).
pub fn flow_endpoints(b: &RecordBatch, rows: &[usize]) -> Result<Vec<(IpAddr, IpAddr)>> {
    let (orig_h, resp_h) = (strings(b, "orig_h")?, strings(b, "resp_h")?);
    rows.iter()
        .map(|&i| {
            Ok((
                parse_ip(orig_h[i], "orig_h", i)?,
                parse_ip(resp_h[i], "resp_h", i)?,
            ))
        })
        .collect()
}

/// Which flows of `b` (read with [`KEEP_COLUMNS`]) `keep` accepts.
fn kept_flows(
    b: &RecordBatch,
    keep: &impl Fn(u8, bool, u16, ResponderAddr<'_>) -> bool,
) -> Result<BooleanArray> {
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

/// The rows of `b` (the flows table) whose flows `keep` accepts, in order.
pub fn kept_flow_rows(
    b: &RecordBatch,
    keep: impl Fn(u8, bool, u16, ResponderAddr<'_>) -> bool,
) -> Result<Vec<usize>> {
    let kept = kept_flows(b, &keep)?;
    Ok((0..kept.len()).filter(|&i| kept.value(i)).collect())
}

/// The flows of one batch that `keep` accepts (see [`for_each_flow`]), appended to
/// `out`; the others are not decoded further, as when reading files.
pub fn kept_flow_batch(
    b: &RecordBatch,
    keep: impl Fn(u8, bool, u16, ResponderAddr<'_>) -> bool,
    out: &mut Vec<FlowRecord>,
) -> Result<()> {
    let kept = kept_flows(b, &keep)?;
    if kept.true_count() > 0 {
        flow_batch(&arrow_select::filter::filter_record_batch(b, &kept)?, out)?;
    }
    Ok(())
}

/// Converts one batch of stored flows (all the columns detection reads), appending them
/// to `out`.
pub fn flow_batch(b: &RecordBatch, out: &mut Vec<FlowRecord>) -> Result<()> {
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
        .collect::<Result<_>>()?;
    let vlan = ints(b, "vlan")?;
    let end_reason = strings(b, "end_reason")?;
    let source = strings(b, "source")?;
    let exporter = strings(b, "exporter")?;
    let sampling = ints(b, "sampling_interval")?;
    let input_if = ints(b, "input_if")?;
    let output_if = ints(b, "output_if")?;
    let first_packet = ints(b, "first_packet")?;
    let record = ints(b, "record")?;
    let tunnels = StoredTunnels::of(b)?;
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
        let source = match source[i] {
            Some("netflow") => FlowSource::Netflow(NetflowOrigin {
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
            }),
            Some("sflow") => FlowSource::Sflow(SflowOrigin {
                agent: exporter[i]
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                sampling_rate: sampling[i].and_then(|v| u32::try_from(v).ok()).unwrap_or(1),
                record_index: record[i].and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            }),
            Some("zeek") => FlowSource::Log(LogKind::Zeek),
            Some("suricata") => FlowSource::Log(LogKind::Suricata),
            _ => FlowSource::Packets,
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
            tunnel: tunnels.as_ref().map(|t| t.row(i)).transpose()?.flatten(),
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

/// The `tunnel_*` columns of a flows batch (absent from tables written before tunnels
/// were unwrapped: then every flow came bare).
struct StoredTunnels<'a> {
    kind: Vec<Option<&'a str>>,
    src: Vec<Option<&'a str>>,
    dst: Vec<Option<&'a str>>,
    id: Vec<Option<i64>>,
    depth: Vec<Option<i64>>,
    chain: Vec<Option<i64>>,
}

impl<'a> StoredTunnels<'a> {
    fn of(b: &'a RecordBatch) -> Result<Option<StoredTunnels<'a>>> {
        if b.column_by_name("tunnel_type").is_none() {
            return Ok(None);
        }
        Ok(Some(StoredTunnels {
            kind: strings(b, "tunnel_type")?,
            src: strings(b, "tunnel_src")?,
            dst: strings(b, "tunnel_dst")?,
            id: ints(b, "tunnel_id")?,
            depth: ints(b, "tunnel_depth")?,
            chain: ints(b, "tunnel_chain")?,
        }))
    }

    /// Row `i`'s tunnel; `None` for a flow that came bare.
    fn row(&self, i: usize) -> Result<Option<Tunnel>> {
        let Some(name) = self.kind[i] else {
            return Ok(None);
        };
        let kind = TunnelKind::from_name(name)
            .with_context(|| format!("column tunnel_type: unknown tunnel {name:?} in row {i}"))?;
        let small = |v: i64, column: &str| -> Result<u32> {
            u32::try_from(v).with_context(|| format!("column {column}: {v} in row {i}"))
        };
        let depth = small(required(self.depth[i], "tunnel_depth", i)?, "tunnel_depth")?;
        let chain = required(self.chain[i], "tunnel_chain", i)?;
        Ok(Some(Tunnel {
            kind,
            src: parse_ip(self.src[i], "tunnel_src", i)?,
            dst: parse_ip(self.dst[i], "tunnel_dst", i)?,
            id: self.id[i].map(|v| small(v, "tunnel_id")).transpose()?,
            depth: u8::try_from(depth).unwrap_or(u8::MAX),
            chain: small(chain, "tunnel_chain")?,
        }))
    }
}

/// A list-of-strings column, its values read once for the whole batch: slicing the list
/// for each row (an array built per row) was a third of reading a DNS message back.
struct StringLists<'a> {
    values: Vec<Option<&'a str>>,
    /// Row `i`'s values are `values[bounds[i]..bounds[i + 1]]`.
    bounds: Vec<usize>,
    list: &'a ArrayRef,
}

impl<'a> StringLists<'a> {
    /// The column's values, checked to be strings even where every row is null (a reader
    /// of rows one by one would only have failed on a row it read).
    fn new(list: &'a ArrayRef, name: &str) -> Result<Self> {
        let (values, bounds): (&ArrayRef, Vec<usize>) =
            match (list.as_list_opt::<i32>(), list.as_list_opt::<i64>()) {
                (Some(l), _) => (l.values(), bounds(l.offsets())),
                (None, Some(l)) => (l.values(), bounds(l.offsets())),
                (None, None) => {
                    return Err(ColumnarError::Read(format!(
                        "column {name}: not a list column"
                    )))
                }
            };
        let values = string_values(values.as_ref())
            .with_context(|| format!("column {name}: not a list of strings"))?;
        Ok(StringLists {
            values,
            bounds,
            list,
        })
    }

    /// Row `i` (empty for null).
    fn row(&self, i: usize) -> &[Option<&'a str>] {
        if self.list.is_null(i) {
            return &[];
        }
        &self.values[self.bounds[i]..self.bounds[i + 1]]
    }
}

/// A list's offsets as positions in its values.
fn bounds<O: arrow_array::OffsetSizeTrait>(offsets: &[O]) -> Vec<usize> {
    offsets.iter().map(|o| o.as_usize()).collect()
}

/// Reads DNS messages, adding to `out` those `keep` accepts by query name (as stored;
/// kept names are then lower-cased without the trailing dot) and whether they are
/// responses; returns the number of messages read.
pub fn read_dns(
    files: &[PathBuf],
    keep: impl Fn(&str, bool) -> bool,
    out: &mut impl Extend<DnsEvent>,
) -> Result<u64> {
    let mut read = 0u64;
    // Names first: the other columns (the answer lists are the widest) are decoded only
    // for the messages `keep` takes, typically a handful of a million.
    let wanted = |b: &RecordBatch| wanted_dns(b, &keep);
    for path in files {
        let each = |b: &RecordBatch| dns_events(b, out);
        let marking = Marking::rows(&["qname", "is_response"]);
        read += read_marked(path, None, marking, wanted, &DNS_COLUMNS, each)?;
    }
    Ok(read)
}

/// The messages of one batch that `keep` accepts by query name (as stored) and whether
/// they are responses, added to `out`, as [`read_dns`] keeps them from files.
pub fn kept_dns_events(
    b: &RecordBatch,
    keep: impl Fn(&str, bool) -> bool,
    out: &mut impl Extend<DnsEvent>,
) -> Result<()> {
    let wanted = wanted_dns(b, &keep)?;
    if wanted.true_count() > 0 {
        dns_events(&arrow_select::filter::filter_record_batch(b, &wanted)?, out)?;
    }
    Ok(())
}

/// The rows of `b` (a batch of the DNS table, or of its `qname` and `is_response`
/// columns) whose query name and response flag `keep` accepts.
fn wanted_dns(b: &RecordBatch, keep: impl Fn(&str, bool) -> bool) -> Result<BooleanArray> {
    let qname = strings(b, "qname")?;
    // A table rewritten without the flag reads as before it was asked here: every row
    // taken for a response, and an error only if one is kept (decoding it needs the flag).
    let is_response = match b.column_by_name("is_response") {
        Some(_) => bools(b, "is_response")?,
        None => vec![Some(true); b.num_rows()],
    };
    let rows = qname.iter().zip(is_response);
    Ok(rows
        .map(|(q, r)| Some(q.is_some_and(|q| keep(q, r.unwrap_or(false)))))
        .collect())
}

/// Adds the messages of `b` (rows whose `qname` is set) to `out`.
pub fn dns_events(b: &RecordBatch, out: &mut impl Extend<DnsEvent>) -> Result<()> {
    let ts = ints(b, "ts")?;
    let client = strings(b, "client_h")?;
    let server = strings(b, "server_h")?;
    let qname = strings(b, "qname")?;
    let is_response = bools(b, "is_response")?;
    let answers = StringLists::new(column(b, "answers")?, "answers")?;
    let types = StringLists::new(column(b, "answer_types")?, "answer_types")?;
    for i in 0..b.num_rows() {
        let Some(name) = qname[i] else {
            continue;
        };
        let qname = Some(name.trim_end_matches('.').to_ascii_lowercase());
        let answers = (answers.row(i).iter())
            .zip(types.row(i))
            .filter(|(_, t)| matches!(t, Some("A" | "AAAA" | "PTR")))
            .filter_map(|(a, _)| a.map(str::to_string))
            .collect();
        out.extend([DnsEvent {
            ts_ns: ns(required(ts[i], "ts", i)?),
            client: parse_ip(client[i], "client_h", i)?,
            server: parse_ip(server[i], "server_h", i)?,
            qname,
            is_response: is_response[i].unwrap_or(false),
            answers,
        }]);
    }
    Ok(())
}

/// The columns detection reads from `names.parquet`.
const NAME_COLUMNS: [&str; 7] = [
    "ts", "protocol", "message", "address", "mac", "name", "suffix",
];

/// Reads the naming facts of `names.parquet` (or its partitioned files).
pub fn read_names(files: &[PathBuf]) -> Result<Vec<NameEvent>> {
    let mut out = Vec::new();
    for b in batches(files, &NAME_COLUMNS) {
        let (path, b) = b?;
        name_events(&b, &mut out).with_context(|| path.display())?;
    }
    Ok(out)
}

/// Appends the naming facts of `b` to `out`.
pub fn name_events(b: &RecordBatch, out: &mut Vec<NameEvent>) -> Result<()> {
    let ts = ints(b, "ts")?;
    let (protocol, message) = (strings(b, "protocol")?, strings(b, "message")?);
    let (address, mac, name) = (
        strings(b, "address")?,
        strings(b, "mac")?,
        strings(b, "name")?,
    );
    let suffix = ints(b, "suffix")?;
    for i in 0..b.num_rows() {
        out.push(NameEvent {
            ts_ns: ns(required(ts[i], "ts", i)?),
            protocol: required(protocol[i], "protocol", i)?.to_string(),
            message: required(message[i], "message", i)?.to_string(),
            address: address[i].and_then(|a| a.parse().ok()),
            mac: mac[i].and_then(parse_mac),
            name: name[i].map(String::from),
            suffix: suffix[i].and_then(|s| u8::try_from(s).ok()),
        });
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Reads the protocol facts of `sessions.parquet`.
pub fn read_sessions(files: &[PathBuf]) -> Result<Vec<SessionEvent>> {
    let mut out = Vec::new();
    for b in batches(files, &SESSION_COLUMNS) {
        let (path, b) = b?;
        session_events(&b, &mut out).with_context(|| path.display().to_string())?;
    }
    Ok(out)
}

/// Appends the session facts of `b` to `out`.
pub fn session_events(b: &RecordBatch, out: &mut Vec<SessionEvent>) -> Result<()> {
    let (ts, packet, status) = (ints(b, "ts")?, ints(b, "packet")?, ints(b, "status")?);
    let (client, server) = (strings(b, "client_h")?, strings(b, "server_h")?);
    let (client_p, server_p) = (ints(b, "client_p")?, ints(b, "server_p")?);
    let (protocol, fact, outcome) = (
        strings(b, "protocol")?,
        strings(b, "fact")?,
        strings(b, "outcome")?,
    );
    let text = |name| -> Result<Vec<Option<String>>> {
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
    fn named<T>(v: Option<&str>, col: &str, i: usize, of: fn(&str) -> Option<T>) -> Result<T> {
        let name = required(v, col, i)?;
        of(name).with_context(|| format!("row {i}: unknown {col} {name:?}"))
    }
    for i in 0..b.num_rows() {
        out.push(SessionEvent {
            ts_ns: ns(required(ts[i], "ts", i)?),
            packet: u64_of(required(packet[i], "packet", i)?),
            client: parse_ip(client[i], "client_h", i)?,
            client_port: u16::try_from(required(client_p[i], "client_p", i)?)
                .with_context(|| format!("column client_p, row {i}"))?,
            server: parse_ip(server[i], "server_h", i)?,
            server_port: u16::try_from(required(server_p[i], "server_p", i)?)
                .with_context(|| format!("column server_p, row {i}"))?,
            protocol: named(protocol[i], "protocol", i, Protocol::from_name)?,
            fact: named(fact[i], "fact", i, Fact::from_name)?,
            outcome: named(outcome[i], "outcome", i, Outcome::from_name)?,
            status: status[i]
                .map(u32::try_from)
                .transpose()
                .with_context(|| format!("column status, row {i}"))?,
            user: user[i].clone(),
            domain: domain[i].clone(),
            workstation: workstation[i].clone(),
            detail: detail[i].clone(),
        });
    }
    Ok(())
}

/// Reads the ARP packets of `arp.parquet`.
pub fn read_arp(files: &[PathBuf]) -> Result<Vec<ArpEvent>> {
    let mut out = Vec::new();
    for b in batches(files, &ARP_COLUMNS) {
        let (path, b) = b?;
        arp_events(&b, &mut out).with_context(|| path.display())?;
    }
    Ok(out)
}

/// Appends the ARP packets of `b` to `out` (IPv4 by construction; anything else is
/// skipped).
pub fn arp_events(b: &RecordBatch, out: &mut Vec<ArpEvent>) -> Result<()> {
    let ts = ints(b, "ts")?;
    let op = strings(b, "op")?;
    let sender = strings(b, "sender_ip")?;
    let target = strings(b, "target_ip")?;
    let sender_mac = strings(b, "sender_mac")?;
    for i in 0..b.num_rows() {
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
            sender_mac: sender_mac[i].and_then(parse_mac).unwrap_or_default(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::types::{Int16Type, UInt32Type};
    use arrow_array::{
        DictionaryArray, Int16Array, LargeStringArray, StringArray, StringViewArray, UInt32Array,
    };

    use super::*;

    #[test]
    fn string_layouts_of_other_producers_read_the_same() {
        let want = vec![Some("a"), None, Some("b")];
        let plain: ArrayRef = Arc::new(StringArray::from(want.clone()));
        let large: ArrayRef = Arc::new(LargeStringArray::from(want.clone()));
        let view: ArrayRef = Arc::new(StringViewArray::from(want.clone()));
        let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let keys = UInt32Array::from(vec![Some(0), None, Some(1)]);
        let dict: ArrayRef =
            Arc::new(DictionaryArray::<UInt32Type>::try_new(keys, values).unwrap());
        for a in [plain, large, view, dict] {
            assert_eq!(
                string_values(a.as_ref()),
                Some(want.clone()),
                "{}",
                a.data_type()
            );
        }
    }

    /// The responder test reads a dictionary (each value parsed once) as it reads one
    /// string per row: nulls, values that are not addresses and repeated keys included.
    #[test]
    fn responders_of_a_dictionary_are_those_of_its_rows() {
        use arrow_array::Int32Array;

        let values = vec![
            Some("10.0.0.1"),
            Some("not an address"),
            None,
            Some("2001:db8::1"),
        ];
        let keys: [Option<usize>; 8] = [
            Some(0),
            None,
            Some(1),
            Some(2),
            Some(3),
            Some(0),
            Some(3),
            Some(1),
        ];
        let rows: Vec<Option<&str>> = keys.iter().map(|k| k.and_then(|k| values[k])).collect();
        let wanted = |a: IpAddr| a == "10.0.0.1".parse::<IpAddr>().unwrap() || a.is_ipv6();
        let expected = BooleanArray::from(vec![true, false, false, false, true, true, true, false]);
        let keys = Int32Array::from(keys.iter().map(|k| k.map(|k| k as i32)).collect::<Vec<_>>());
        let dict: ArrayRef = Arc::new(
            DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(values)))
                .unwrap(),
        );
        let plain: ArrayRef = Arc::new(StringArray::from(rows));
        assert_eq!(responders(&dict, &wanted).unwrap(), expected);
        assert_eq!(responders(&plain, &wanted).unwrap(), expected);
        let empty = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(vec![None, None]),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        )
        .unwrap();
        let empty: ArrayRef = Arc::new(empty);
        assert_eq!(
            responders(&empty, &wanted).unwrap(),
            BooleanArray::from(vec![false; 2])
        );
    }

    #[test]
    fn an_empty_dictionary_reads_as_nulls_without_panicking() {
        let empty: ArrayRef = Arc::new(StringArray::from(Vec::<&str>::new()));
        let all_null = Int16Array::from(vec![None, None]);
        let dict = DictionaryArray::<Int16Type>::try_new(all_null, empty.clone()).unwrap();
        assert_eq!(string_values(&dict), Some(vec![None, None]));
        let no_rows =
            DictionaryArray::<Int16Type>::try_new(Int16Array::from(Vec::<i16>::new()), empty)
                .unwrap();
        assert_eq!(string_values(&no_rows), Some(vec![]));
    }

    /// A DNS table rewritten without `is_response` (another tool's copy) reads as before
    /// the flag was asked for: fine when no message is kept, an error naming the column
    /// when one is (decoding it needs the flag).
    #[test]
    fn a_dns_table_without_the_response_flag_fails_only_when_a_row_is_kept() {
        use arrow_array::builder::{ListBuilder, StringBuilder};
        use arrow_array::Int64Array;

        let text = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let mut lists = ListBuilder::new(StringBuilder::new());
        lists.append_value([Some("a.example.corp")]);
        lists.append_null();
        let lists: ArrayRef = Arc::new(lists.finish());
        let b = RecordBatch::try_from_iter([
            ("ts", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("client_h", text(vec![Some("10.0.0.1"), Some("10.0.0.2")])),
            ("server_h", text(vec![Some("10.0.0.53"), Some("10.0.0.53")])),
            ("qname", text(vec![Some("a.example"), None])),
            ("answers", lists.clone()),
            ("answer_types", lists),
        ])
        .unwrap();
        let mut out: Vec<DnsEvent> = Vec::new();
        kept_dns_events(&b, |q, _| q == "other.example", &mut out).unwrap();
        assert!(out.is_empty());
        let kept = kept_dns_events(&b, |q, response| q == "a.example" && response, &mut out);
        assert!(kept.unwrap_err().to_string().contains("is_response"));
    }
}
