//! `wormsign carve`: the packets behind a claim, written to a pcap that Wireshark opens.
//!
//! A claim (an alert, a host, a propagation edge, a flow's Community ID) names flows in
//! a run's `flows.parquet`. Each flow is its two endpoints, protocol, VLAN and tunnel
//! chain (packets are decoded with the tunnels the run unwrapped) from its
//! `first_packet` ordinal to its `last_ts`; the run's inputs (its `wormsign.inputs`
//! metadata, or paths given instead) are read again in order, counting records as the
//! pipeline did, and the records of those flows are copied out unchanged. Records before
//! the first flow's ordinal are counted, not decoded; reading stops once it is past every
//! flow's end by [`LATE_RECORDS`] of capture time (captures are written in time order,
//! give or take a little).
//!
//! Not carved: non-first IP fragments (they carry no ports), NetFlow records (there are
//! no packets), ARP sweeps (no flows: their requests are in `arp.parquet`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wormsign_capture::{CaptureReader, Chunk};
use wormsign_columnar::{for_each_flow, read_batches, table_files, StagedFile};
use wormsign_decode::{decode_with, Decoded, Tunnel, TunnelConfig};
use wormsign_detect::DetectConfig;
use wormsign_flow::{FlowRecord, FlowSource};

use crate::config::recorded_tunnels;
use crate::Error;

/// How far past the last selected flow's end (capture time) reading goes on.
pub const LATE_RECORDS: i64 = 60_000_000_000;

/// What to carve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CarveTarget {
    /// The flows an alert counted: its hosts, service and time span.
    Alert(String),
    /// Every flow of a host.
    Host(IpAddr),
    /// The sessions a propagation edge rests on (`evidence_flows`).
    Edge(IpAddr, IpAddr),
    /// The flows with this Community ID.
    Flow(String),
}

/// What a carve wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carved {
    /// Flows selected.
    pub flows: u64,
    /// Packets those flows counted (`orig_pkts + resp_pkts`).
    pub expected_packets: u64,
    /// Records written.
    pub packets: u64,
    /// Inputs read (all of them, or up to where reading could stop).
    pub inputs_read: Vec<String>,
    /// What did not go as planned (inputs that could not be read, packets not found).
    pub warnings: Vec<String>,
}

/// Carves the packets behind `target` from the run in `dir` into the pcap `out` (written
/// under a temporary name, renamed when complete). `inputs` replaces the run's recorded
/// inputs (when the captures moved).
pub fn carve(
    dir: &Path,
    target: &CarveTarget,
    inputs: Option<&[PathBuf]>,
    out: &Path,
) -> Result<Carved, Error> {
    let flows = selected_flows(dir, target)?;
    if flows.is_empty() {
        return Err(Error::Config(format!(
            "{target:?}: no flow in {} to carve",
            dir.display()
        )));
    }
    let inputs = match inputs {
        Some(paths) => paths.to_vec(),
        None => recorded_inputs(dir)?,
    };
    let mut carved = Carved {
        flows: flows.len() as u64,
        expected_packets: flows.iter().map(|f| f.orig.packets + f.resp.packets).sum(),
        ..Carved::default()
    };
    let plan = Plan::new(&flows, run_tunnels(dir)?);
    write_pcap(out, |pcap| plan.copy(&inputs, pcap, &mut carved))?;
    if carved.packets != carved.expected_packets {
        carved.warnings.push(format!(
            "wrote {} packets, the flows counted {} (fragments without ports are not carved; \
             were the inputs changed?)",
            carved.packets, carved.expected_packets
        ));
    }
    Ok(carved)
}

/// Whether a flow is one a claim names.
type FlowTest<'a> = Box<dyn Fn(&FlowRecord) -> bool + 'a>;

/// The flows of `dir` that `target` names (packet flows only).
fn selected_flows(dir: &Path, target: &CarveTarget) -> Result<Vec<FlowRecord>, Error> {
    let wanted: FlowTest<'_> = match target {
        CarveTarget::Host(ip) => {
            let ip = *ip;
            Box::new(move |f| f.orig_addr == ip || f.resp_addr == ip)
        }
        CarveTarget::Flow(id) => Box::new(move |f| f.community_id().as_str() == id),
        CarveTarget::Edge(parent, child) => {
            let packets = edge_flows(dir, *parent, *child)?;
            let ends = [*parent, *child];
            Box::new(move |f| {
                packets.contains(&f.first_packet)
                    && ends.contains(&f.orig_addr)
                    && ends.contains(&f.resp_addr)
            })
        }
        CarveTarget::Alert(id) => alert_filter(dir, id)?,
    };
    let mut flows = Vec::new();
    for_each_flow(
        &table_files(dir, "flows"),
        |_, _, _, _| true,
        |f| {
            if matches!(f.source, FlowSource::Packets) && wanted(&f) {
                flows.push(f);
            }
        },
    )?;
    flows.sort_by_key(|f| f.first_packet);
    Ok(flows)
}

/// The `evidence_flows` of the edge `parent → child` in `propagation.parquet`.
fn edge_flows(dir: &Path, parent: IpAddr, child: IpAddr) -> Result<HashSet<u64>, Error> {
    for batch in read_batches(&[dir.join("propagation.parquet")])? {
        for row in 0..batch.num_rows() {
            if ip_at(&batch, "parent_ip", row) != Some(parent)
                || ip_at(&batch, "child_ip", row) != Some(child)
            {
                continue;
            }
            let list = batch
                .column_by_name("evidence_flows")
                .map(|c| c.as_list::<i32>());
            let values = list
                .map(|l| l.value(row))
                .ok_or_else(|| missing("evidence_flows"))?;
            let values = values.as_primitive::<Int64Type>();
            return Ok(values.values().iter().map(|&p| p as u64).collect());
        }
    }
    Err(Error::Config(format!(
        "no propagation edge {parent}-{child} in {}",
        dir.display()
    )))
}

/// Which flows an alert counted: flows between its two hosts (or of its one host) that
/// started within its first and last evidence, on its service.
fn alert_filter(dir: &Path, id: &str) -> Result<FlowTest<'static>, Error> {
    let path = dir.join("alerts.parquet");
    let config = stored_rules(&path)?;
    for batch in read_batches(&[path])? {
        for row in 0..batch.num_rows() {
            if str_at(&batch, "alert_id", row) != Some(id) {
                continue;
            }
            let src = ip_at(&batch, "src_ip", row).ok_or_else(|| missing("src_ip"))?;
            let dst = ip_at(&batch, "dst_ip", row);
            let service = str_at(&batch, "service", row).unwrap_or("any");
            if service == "arp" {
                return Err(Error::Config(format!(
                    "{id} is an ARP sweep: ARP requests are not flows (see arp.parquet)"
                )));
            }
            let port = service_port(&config, service);
            let first =
                micros_at(&batch, "first_seen", row).ok_or_else(|| missing("first_seen"))?;
            let last = micros_at(&batch, "last_seen", row).ok_or_else(|| missing("last_seen"))?;
            return Ok(Box::new(move |f: &FlowRecord| {
                let between = match dst {
                    Some(d) => {
                        [src, d] == [f.orig_addr, f.resp_addr]
                            || [d, src] == [f.orig_addr, f.resp_addr]
                    }
                    None => f.orig_addr == src || f.resp_addr == src,
                };
                let ts = f.ts_first.div_euclid(1000);
                between
                    && (first..=last).contains(&ts)
                    && port.is_none_or(|(proto, port)| f.proto == proto && f.resp_port == port)
            }));
        }
    }
    Err(Error::Config(format!("no alert {id} in {}", dir.display())))
}

/// The (protocol, port) of an alert's service: a worm service of the run's rules,
/// `tcp/PORT`, or DNS; `None` (any) for `any`.
fn service_port(config: &DetectConfig, service: &str) -> Option<(u8, u16)> {
    if service == "dns" {
        return Some((17, 53));
    }
    if let Some(s) = config.services.iter().find(|s| s.name == service) {
        return Some((s.proto, s.port));
    }
    let (proto, port) = service.split_once('/')?;
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        _ => return None,
    };
    Some((proto, port.parse().ok()?))
}

/// The rule set a detection output was written with (its `wormsign.rules` metadata).
fn stored_rules(path: &Path) -> Result<DetectConfig, Error> {
    let text = metadata_value(path, "wormsign.rules")?.unwrap_or_default();
    DetectConfig::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// The run's inputs, from `flows.parquet`'s `wormsign.inputs` metadata.
fn recorded_inputs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let files = table_files(dir, "flows");
    let first = files.first().ok_or_else(|| missing("flows.parquet"))?;
    let names = metadata_value(first, "wormsign.inputs")?.unwrap_or_default();
    let names: Vec<String> = serde_json::from_str(&names).map_err(|_| {
        Error::Config(format!(
            "{}: no wormsign.inputs metadata: give --input",
            first.display()
        ))
    })?;
    if names.iter().any(|n| n == "-") {
        return Err(Error::Config(
            "the run read standard input: give the capture with --input".into(),
        ));
    }
    names
        .iter()
        .map(|name| locate(dir, Path::new(name)))
        .collect()
}

/// The tunnels the run unwrapped, from `flows.parquet`'s `wormsign.options` metadata.
fn run_tunnels(dir: &Path) -> Result<TunnelConfig, Error> {
    let files = table_files(dir, "flows");
    let first = files.first().ok_or_else(|| missing("flows.parquet"))?;
    let options = metadata_value(first, "wormsign.options")?.unwrap_or_default();
    recorded_tunnels(&serde_json::from_str(&options).unwrap_or_default())
}

/// Where a recorded input is now: as recorded (absolute, or relative to the current
/// directory), else relative to the run's directory or one of its ancestors (`analyze`
/// ran from there: `out/drivelife` two levels under the directory it was run in).
fn locate(dir: &Path, input: &Path) -> Result<PathBuf, Error> {
    if input.exists() || input.is_absolute() {
        return Ok(input.to_path_buf());
    }
    dir.ancestors()
        .map(|a| a.join(input))
        .find(|p| p.exists())
        .ok_or_else(|| {
            Error::Config(format!(
                "the run's input {} is not there any more: give the captures with --input",
                input.display()
            ))
        })
}

fn metadata_value(path: &Path, key: &str) -> Result<Option<String>, Error> {
    let file = File::open(path).map_err(Error::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let kvs = builder.metadata().file_metadata().key_value_metadata();
    Ok(kvs
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
        .and_then(|kv| kv.value.clone()))
}

fn missing(what: &str) -> Error {
    Error::Config(format!("{what} is missing"))
}

fn str_at<'b>(batch: &'b RecordBatch, column: &str, row: usize) -> Option<&'b str> {
    let c = batch.column_by_name(column)?;
    if c.is_null(row) {
        return None;
    }
    match c.as_string_opt::<i32>() {
        Some(s) => Some(s.value(row)),
        None => {
            let d = c.as_any_dictionary_opt()?;
            let key = d.normalized_keys()[row];
            Some(d.values().as_string_opt::<i32>()?.value(key))
        }
    }
}

fn ip_at(batch: &RecordBatch, column: &str, row: usize) -> Option<IpAddr> {
    str_at(batch, column, row)?.parse().ok()
}

fn micros_at(batch: &RecordBatch, column: &str, row: usize) -> Option<i64> {
    let c = batch.column_by_name(column)?;
    Some(c.as_primitive_opt::<TimestampMicrosecondType>()?.value(row))
}

/// A flow's direction-free identity as a packet shows it: protocol, VLAN, tunnel chain
/// (0 when bare) and the two endpoints.
type Ends = (u8, Option<u16>, u32, (IpAddr, u16), (IpAddr, u16));

fn ends(
    proto: u8,
    vlan: Option<u16>,
    tunnel: Option<&Tunnel>,
    a: (IpAddr, u16),
    b: (IpAddr, u16),
) -> Ends {
    (
        proto,
        vlan,
        tunnel.map_or(0, |t| t.chain),
        a.min(b),
        a.max(b),
    )
}

/// The selected flows by identity.
struct Plan {
    flows: HashMap<Ends, Spans>,
    /// The tunnels the run unwrapped, so packets decode as the run decoded them.
    tunnels: TunnelConfig,
    first_packet: u64,
    /// Capture time (ns) past which nothing more can match.
    stop_after: i64,
}

/// The selected flows of one identity: from which packet to which time each runs, for
/// a packet to ask whether one of them covers it in a binary search. Reading every flow
/// per packet was quadratic when many flows share an identity (a port reused).
struct Spans {
    /// First packet ordinals, in order.
    first: Vec<u64>,
    /// `last[i]`: the latest end (µs) of flows `0..=i` in that order.
    last: Vec<i64>,
}

impl Spans {
    /// Spans of the flows given as (first packet, last time µs).
    fn new(mut flows: Vec<(u64, i64)>) -> Spans {
        flows.sort_unstable();
        let first = flows.iter().map(|&(first, _)| first).collect();
        let last = (flows.iter())
            .scan(i64::MIN, |latest, &(_, last)| {
                *latest = (*latest).max(last);
                Some(*latest)
            })
            .collect();
        Spans { first, last }
    }

    /// Whether a flow starting at or before packet `ordinal` ends at or after `ts` µs.
    fn cover(&self, ordinal: u64, ts: i64) -> bool {
        let started = self.first.partition_point(|&first| first <= ordinal);
        started > 0 && self.last[started - 1] >= ts
    }
}

impl Plan {
    fn new(flows: &[FlowRecord], tunnels: TunnelConfig) -> Plan {
        let mut by_ends: HashMap<Ends, Vec<(u64, i64)>> = HashMap::new();
        for f in flows {
            let key = ends(
                f.proto,
                f.vlan,
                f.tunnel.as_ref(),
                (f.orig_addr, f.orig_port),
                (f.resp_addr, f.resp_port),
            );
            by_ends
                .entry(key)
                .or_default()
                .push((f.first_packet, f.ts_last.div_euclid(1000)));
        }
        Plan {
            flows: by_ends
                .into_iter()
                .map(|(k, v)| (k, Spans::new(v)))
                .collect(),
            tunnels,
            first_packet: flows.iter().map(|f| f.first_packet).min().unwrap_or(0),
            stop_after: flows
                .iter()
                .map(|f| f.ts_last)
                .max()
                .unwrap_or(0)
                .saturating_add(LATE_RECORDS),
        }
    }

    /// Whether record `ordinal` of link type `link` belongs to a selected flow.
    fn wants(&self, ordinal: u64, ts_ns: i64, link: u16, data: &[u8]) -> bool {
        if ordinal < self.first_packet {
            return false;
        }
        let Decoded::Ip(p) = decode_with(link, data, &self.tunnels) else {
            return false;
        };
        if !p.has_ports && (p.proto == 6 || p.proto == 17) {
            return false;
        }
        let key = ends(
            p.proto,
            p.vlan,
            p.tunnel.as_ref(),
            (p.src, p.src_port),
            (p.dst, p.dst_port),
        );
        let ts = ts_ns.div_euclid(1000);
        self.flows
            .get(&key)
            .is_some_and(|spans| spans.cover(ordinal, ts))
    }

    /// Reads `inputs` in order, counting records, and writes those of the selected flows.
    fn copy(
        &self,
        inputs: &[PathBuf],
        pcap: &mut PcapWriter,
        carved: &mut Carved,
    ) -> Result<(), Error> {
        let mut ordinal = 0u64;
        let mut chunk = Chunk::default();
        for path in inputs {
            let mut reader = match CaptureReader::open(path) {
                Ok(r) => r,
                Err(e) => {
                    carved.warnings.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            carved.inputs_read.push(path.display().to_string());
            loop {
                let more = reader.read_chunk(&mut chunk, 1 << 20);
                for (meta, data) in chunk.iter() {
                    if ordinal > self.first_packet && meta.ts_ns > self.stop_after {
                        return Ok(());
                    }
                    if self.wants(ordinal, meta.ts_ns, meta.link_type, data) {
                        pcap.write(meta.ts_ns, meta.link_type, meta.orig_len, data)?;
                        carved.packets += 1;
                    }
                    ordinal += 1;
                }
                match more {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        carved.warnings.push(format!("{}: {e}", path.display()));
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A pcap (nanosecond timestamps) being written under a temporary name.
struct PcapWriter {
    out: BufWriter<File>,
    path: PathBuf,
    link_type: Option<u16>,
}

impl PcapWriter {
    fn header(&mut self, link_type: u16) -> Result<(), Error> {
        self.link_type = Some(link_type);
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&262_144u32.to_le_bytes());
        header.extend_from_slice(&u32::from(link_type).to_le_bytes());
        self.out.write_all(&header).map_err(Error::io(&self.path))
    }

    fn write(
        &mut self,
        ts_ns: i64,
        link_type: u16,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), Error> {
        match self.link_type {
            None => self.header(link_type)?,
            Some(l) if l != link_type => {
                return Err(Error::Config(format!(
                    "the packets have link types {l} and {link_type}: carve each input alone (--input)"
                )));
            }
            Some(_) => {}
        }
        let secs = ts_ns.div_euclid(1_000_000_000) as u32;
        let nanos = ts_ns.rem_euclid(1_000_000_000) as u32;
        let mut record = Vec::with_capacity(16 + data.len());
        for v in [secs, nanos, data.len() as u32, orig_len] {
            record.extend_from_slice(&v.to_le_bytes());
        }
        record.extend_from_slice(data);
        self.out.write_all(&record).map_err(Error::io(&self.path))
    }
}

/// Writes a pcap to `path` through `fill`, under a temporary name renamed into place
/// when complete; nothing is left on failure.
fn write_pcap(
    path: &Path,
    fill: impl FnOnce(&mut PcapWriter) -> Result<(), Error>,
) -> Result<(), Error> {
    let (staged, file) = StagedFile::create(path)?;
    let tmp = staged.temporary_path().to_path_buf();
    let mut pcap = PcapWriter {
        out: BufWriter::new(file),
        path: tmp.clone(),
        link_type: None,
    };
    fill(&mut pcap)?;
    if pcap.link_type.is_none() {
        // No packet: a valid, empty capture (Ethernet).
        pcap.header(1)?;
    }
    let file = pcap
        .out
        .into_inner()
        .map_err(|e| Error::io(&tmp)(e.into_error()))?;
    staged.sync(&file)?;
    Ok(staged.commit()?)
}

#[cfg(test)]
mod tests {
    use wormsign_testutil::SplitMix64;

    use super::*;

    /// Several flows of one identity, in any order, overlapping or not: a packet is
    /// covered exactly when one of them started at or before it and ends at or after it.
    #[test]
    fn spans_cover_a_packet_as_reading_every_flow_does() {
        let mut rng = SplitMix64(9);
        let (mut covered, mut not) = (0, 0);
        for _ in 0..2_000 {
            let flows: Vec<(u64, i64)> = (0..rng.below(6))
                .map(|_| (rng.below(100), rng.below(100) as i64))
                .collect();
            let spans = Spans::new(flows.clone());
            let (ordinal, ts) = (rng.below(110), rng.below(110) as i64);
            let any = (flows.iter()).any(|&(first, last)| first <= ordinal && ts <= last);
            assert_eq!(
                spans.cover(ordinal, ts),
                any,
                "{flows:?} at {ordinal}, {ts}"
            );
            if any {
                covered += 1;
            } else {
                not += 1;
            }
        }
        assert!(covered > 300 && not > 300, "{covered} covered, {not} not");
    }
}
