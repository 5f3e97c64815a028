//! Detection over stored runs whose flows another engine moves between machines (Spark,
//! `python/wormsign/spark.py`): each usable flow is tagged with the parts of the
//! detection that own it ([`PartRunner::tag`]), the flows of each part are run by a [`PartRunner`]
//! wherever they land, and [`merge_parts`] finishes the detection from every part's
//! findings. The result is [`crate::detect_dir`]'s over the same tables as long as no
//! part reaches a cap (see `wormsign_detect::Partition`). `docs/distributed.md` says how
//! it is run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, Int32Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use wormsign_columnar::{
    flow_batch, flow_endpoints, kept_flow_rows, read_arp, read_dns, read_names, read_sessions,
    table_files, ResponderAddr,
};
use wormsign_detect::{
    ArpEvent, DetectConfig, Detection, Detector, DnsEvent, KeptDns, NameEvent, PartFindings,
    Partition, SessionEvent, UsableFlow,
};

use crate::detection::optional_table;
use crate::Error;

/// The column [`PartRunner::tag`] adds: the part a row of the flows table is for.
pub const PART_COLUMN: &str = "part";

/// What detection reads of stored runs besides their flows: the DNS messages naming C&C
/// domains (and reverse lookups naming hosts, [`KeptDns`]), ARP, session facts and naming
/// facts. Every part needs them in full: it picks out those of its own addresses.
#[derive(Debug, Default)]
pub struct RunEvents {
    dns: Vec<DnsEvent>,
    dns_read: u64,
    arp: Vec<ArpEvent>,
    sessions: Vec<SessionEvent>,
    names: Vec<NameEvent>,
    /// Tables that were missing (detection went on without them).
    pub warnings: Vec<String>,
}

impl RunEvents {
    /// The events of the runs stored in `dirs` (as `analyze` wrote them).
    pub fn read(dirs: &[PathBuf], config: &DetectConfig) -> Result<RunEvents, Error> {
        let mut e = RunEvents::default();
        let mut files = |name: &str| -> Vec<PathBuf> {
            let warnings = &mut e.warnings;
            dirs.iter()
                .flat_map(|d| optional_table(d, name, warnings))
                .collect()
        };
        let (dns_files, arp_files) = (files("dns"), files("arp"));
        let (session_files, name_files) = (files("sessions"), files("names"));
        let mut dns = KeptDns::default();
        e.dns_read = read_dns(
            &dns_files,
            |q, r| config.wants_dns(q, r),
            &mut dns.keeping(config),
        )?;
        e.dns = dns.into_vec();
        e.arp = read_arp(&arp_files)?;
        e.sessions = read_sessions(&session_files)?;
        e.names = read_names(&name_files)?;
        Ok(e)
    }

    /// Only the DNS messages naming C&C domains of the runs in `dirs`: all that deciding
    /// which flows some rule can use needs (the addresses those names resolved to).
    pub fn read_dns(dirs: &[PathBuf], config: &DetectConfig) -> Result<RunEvents, Error> {
        let (mut dns, files) = (KeptDns::default(), run_files(dirs, "dns"));
        let cnc = |qname: &str, _| config.cnc_domain_match(qname).is_some();
        let dns_read = read_dns(&files, cnc, &mut dns.keeping(config))?;
        Ok(RunEvents {
            dns: dns.into_vec(),
            dns_read,
            ..RunEvents::default()
        })
    }

    /// A detector over these events, in one part (as `wormsign detect` runs).
    pub fn whole<'a>(&'a self, config: &'a DetectConfig) -> Detector<'a> {
        self.detector(Detector::new(config, &self.dns, &self.arp))
    }

    /// How many DNS messages the runs hold (only those detection reads are kept).
    pub fn dns_read(&self) -> u64 {
        self.dns_read
    }

    fn detector<'a>(&'a self, d: Detector<'a>) -> Detector<'a> {
        d.with_sessions(&self.sessions).with_names(&self.names)
    }
}

/// The flow files of the runs stored in `dirs`.
pub fn flow_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    run_files(dirs, "flows")
}

/// The files of table `name` of the runs stored in `dirs`.
fn run_files(dirs: &[PathBuf], name: &str) -> Vec<PathBuf> {
    dirs.iter().flat_map(|d| table_files(d, name)).collect()
}

/// Rows `rows` of `batch`, with a [`PART_COLUMN`] of `part`.
fn with_parts(
    batch: &RecordBatch,
    rows: &UInt32Array,
    part: Vec<i32>,
) -> Result<RecordBatch, Error> {
    let mut columns = batch
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c.as_ref(), rows, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(wormsign_columnar::ColumnarError::from)?;
    columns.push(Arc::new(Int32Array::from(part)));
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(PART_COLUMN, DataType::Int32, false));
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        batch.schema().metadata().clone(),
    ));
    Ok(RecordBatch::try_new(schema, columns).map_err(wormsign_columnar::ColumnarError::from)?)
}

/// The parts of a detection, in the steps of a distributed run: [`PartRunner::tag`]
/// tags the usable flows of a batch with their parts (before the shuffle, so only those
/// move); [`PartRunner::push`] takes tagged batches of any mix of parts in any order,
/// keeping the flows by part; [`PartRunner::finish`] runs each part's detector over its
/// flows.
pub struct PartRunner {
    config: DetectConfig,
    events: Arc<RunEvents>,
    partition: Partition,
    flows: BTreeMap<usize, Vec<UsableFlow>>,
}

impl PartRunner {
    /// A runner for a detection in `parts` parts, over runs with `events`.
    pub fn new(config: DetectConfig, events: Arc<RunEvents>, parts: usize) -> PartRunner {
        PartRunner {
            config,
            events,
            partition: Partition::hashed(parts),
            flows: BTreeMap::new(),
        }
    }

    /// The usable flows of `batch` (the flows table, in any Arrow layout) with a
    /// [`PART_COLUMN`]: each once for the part that owns its source and, when another
    /// part owns its responder, once more for that one.
    pub fn tag(&self, batch: &RecordBatch) -> Result<RecordBatch, Error> {
        let kept = self.with_usable(|usable| kept_flow_rows(batch, usable))?;
        let endpoints = flow_endpoints(batch, &kept)?;
        let (mut keep_rows, mut part) = (Vec::new(), Vec::new());
        for (row, (src, dst)) in kept.into_iter().zip(endpoints) {
            let (s, r) = (self.partition.part_of(src), self.partition.part_of(dst));
            keep_rows.push(row as u32);
            part.push(s as i32);
            if r != s {
                keep_rows.push(row as u32);
                part.push(r as i32);
            }
        }
        with_parts(batch, &UInt32Array::from(keep_rows), part)
    }

    /// Takes one tagged batch.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let part = batch
            .column_by_name(PART_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
            .ok_or_else(|| {
                Error::Parts(format!(
                    "flow batch without an int32 `{PART_COLUMN}` column"
                ))
            })?;
        let mut values: Vec<i32> = part.values().to_vec();
        values.sort_unstable();
        values.dedup();
        for value in values {
            let index = usize::try_from(value)
                .ok()
                .filter(|&i| i < self.partition.parts())
                .ok_or_else(|| {
                    Error::Parts(format!("part {value} of {}", self.partition.parts()))
                })?;
            let mask =
                arrow_array::BooleanArray::from_iter(part.iter().map(|p| Some(p == Some(value))));
            let rows = arrow_select::filter::filter_record_batch(batch, &mask)
                .map_err(wormsign_columnar::ColumnarError::from)?;
            // Tagged rows are usable flows already.
            let mut records = Vec::new();
            flow_batch(&rows, &mut records)?;
            let flows = self.flows.entry(index).or_default();
            flows.extend(records.iter().map(UsableFlow::from));
        }
        Ok(())
    }

    /// Calls `f` with the test of which flows some rule can use.
    fn with_usable<T>(
        &self,
        f: impl FnOnce(&dyn Fn(u8, bool, u16, ResponderAddr<'_>) -> bool) -> T,
    ) -> T {
        let e = &self.events;
        let filter = Detector::merging(&self.config, &e.dns, &e.arp).flow_filter();
        f(&|proto, has_ports, port, addr| filter.wants(proto, has_ports, port, addr))
    }

    /// Each part's findings, as bytes for [`merge_parts`].
    pub fn finish(self) -> Vec<(usize, Vec<u8>)> {
        let e = &self.events;
        self.flows
            .into_iter()
            .map(|(index, flows)| {
                // A shuffle delivers them in any order: the detector sorts them (beyond
                // `max_pending_flows`, in sorted batches merged from temporary files).
                let part = Detector::one_part(&self.config, &e.dns, &e.arp, &self.partition, index);
                let mut part = e.detector(part);
                part.push_all(flows);
                (index, part.finish_part().to_bytes())
            })
            .collect()
    }
}

/// The detection in `parts` parts, finished from the parts' findings (from
/// [`PartRunner::finish`], in any order); `flows` is how many flows the runs hold, for
/// the counters. A part no task was dealt flows for (none of its addresses sent a usable
/// flow) is run here, over its events alone.
pub fn merge_parts(
    config: &DetectConfig,
    events: &RunEvents,
    found: &[Vec<u8>],
    parts: usize,
    flows: u64,
) -> Result<Detection, Error> {
    let mut found = found
        .iter()
        .map(|b| PartFindings::from_bytes(b, config).map_err(|e| Error::Parts(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = vec![false; parts];
    for f in &found {
        for &p in f.parts() {
            if f.of() != parts || std::mem::replace(&mut seen[p], true) {
                return Err(Error::Parts(format!(
                    "findings of part {p} of {} in a detection in {parts} parts{}",
                    f.of(),
                    if f.of() == parts { ", twice" } else { "" }
                )));
            }
        }
    }
    let partition = Partition::hashed(parts);
    for missing in (0..parts).filter(|&p| !seen[p]) {
        let part = Detector::one_part(config, &events.dns, &events.arp, &partition, missing);
        found.push(events.detector(part).finish_part());
    }
    let merging = events.detector(Detector::merging(config, &events.dns, &events.arp));
    let mut d = merging.finish_with(found);
    (d.stats.flows, d.stats.dns_events) = (flows, events.dns_read);
    Ok(d)
}
