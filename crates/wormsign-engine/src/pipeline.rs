//! The multi-threaded analyze pipeline:
//!
//! ```text
//! reader ──chunks──▶ decode workers ──per-shard packets──▶ flow shards ──batches──▶ writer
//!   (1)      (bounded)      (N)           (bounded)            (N)      (bounded)    (1)
//!                             └────────────  DNS batches, ARP and name rows ────────────────▲
//! ```
//!
//! Zeek and Suricata logs skip the middle: the reader reads their lines into batches and
//! sends them to the writer (`logs.rs`).
//!
//! The reader cuts captures into chunks of whole records and numbers them (`seq`); decode
//! workers take chunks in any order and split the packets by [`shard_of`]; each flow
//! shard puts the pieces back in `seq` order before touching its table, so every table
//! sees its packets in capture order whatever the thread count. Flow shards also build
//! the Arrow batches for their flows, and decode workers those of the DNS messages, so
//! the writer mostly encodes Parquet. With detection fed (`feed.rs`), each picks out what
//! the detector will need from what it builds.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use arrow_array::RecordBatch;
use crossbeam_channel::{bounded, Receiver, Sender};
use wormsign_capture::{CaptureReader, Chunk};
use wormsign_columnar::{
    stored_time, ArpBatchBuilder, ArpRow, DnsBatchBuilder, DnsRow, FlowBatchBuilder,
    NameBatchBuilder, NameRow, RowBuilder, SessionBatchBuilder, TableSink, TableWriter,
};
use wormsign_decode::dns::{self, DnsMessage};
use wormsign_decode::names::{self, DHCP_PORTS, NBNS_PORT};
use wormsign_decode::{decode_with, Decoded, PacketSummary, SkipReason, TunnelConfig};
use wormsign_detect::{DetectConfig, KeptDns, UsableFlow};
use wormsign_flow::{shard_of, FlowConfig, FlowRecord, FlowStats, FlowTable, TimedPacket};
use wormsign_inspect::{
    InspectConfig, InspectStats, InspectedPorts, Inspector, Segment, SessionEvent,
};
use wormsign_logs::LogStats;
use wormsign_netflow::{ExportDecoder, NetflowStats, SflowStats};

mod logs;

use crate::feed::{wanted_dns_events, Feed};
use crate::input::Opened;
use crate::memory::return_free_pages;
use crate::resolved::{ResolvedCnc, UsablePicker};
use crate::summary::{DecodeStats, RunSummary, Warning};
use crate::{Control, Error, Input, Output, PipelineConfig, Tables};
use logs::{read_log, LogOutput};

/// Captured bytes per chunk handed to a decode worker.
const CHUNK_BYTES: usize = 1 << 20;
/// Flow tables sweep expired flows whenever the capture clock has advanced this much.
const SWEEP_INTERVAL_NS: i64 = 10_000_000_000;
/// DNS messages a decode worker gathers before it sends them as a batch: the writer
/// encodes batches; building their rows is the workers' part, done in parallel.
const DNS_BATCH_ROWS: usize = 8 * 1024;
/// Flows per Arrow batch built by a shard: about 2.5 MB of Arrow buffers, so the batches
/// queued for the writer stay small when it falls behind (as under a SYN flood, where
/// every packet is a row).
const FLOW_BATCH_ROWS: usize = 8 * 1024;

/// What `analyze` returns.
#[derive(Debug)]
pub struct Analysis {
    /// Counters of every stage, warnings and timing.
    pub summary: RunSummary,
    /// The tables, for [`Output::Memory`] and [`Output::ParquetAndMemory`]; empty for
    /// [`Output::Parquet`].
    pub tables: Tables,
}

struct Job {
    seq: u64,
    first_packet: u64,
    watermark: i64,
    chunk: Chunk,
}

/// A NetFlow/IPFIX export datagram found in the capture.
struct ExportPacket {
    ts_ns: i64,
    idx: u64,
    exporter: SocketAddr,
    payload: Vec<u8>,
}

/// A TCP segment on an inspected port: `packets[packet]` of its message, with its
/// payload at `payloads[start..end]`.
struct InspectedSegment {
    packet: usize,
    start: usize,
    end: usize,
}

struct ShardMsg {
    seq: u64,
    watermark: i64,
    packets: Vec<TimedPacket>,
    exports: Vec<ExportPacket>,
    /// Segments for the shard's protocol inspector, and their payload bytes (copied: the
    /// chunk goes back to the reader).
    segments: Vec<InspectedSegment>,
    payloads: Vec<u8>,
}

/// What the workers send the writer.
enum ToWriter {
    /// A batch of flows, and those of its flows detection can use (when it is fed), as
    /// reading them back would give them.
    Flows(RecordBatch, Vec<UsableFlow>),
    /// A batch of DNS messages, and those detection reads (when it is fed).
    Dns(RecordBatch, Result<KeptDns, Error>),
    Arp(Vec<ArpRow>),
    Names(Vec<NameRow>),
    Sessions(Vec<SessionEvent>),
    DecodeDone(DecodeStats),
    /// Shard `shard` of `of` will send no usable flow that starts before `before` (ns),
    /// unless its input comes out of time order (see [`Shard::bound`]).
    Bound {
        shard: usize,
        of: usize,
        before: i64,
    },
    ShardDone {
        stats: FlowStats,
        netflow: NetflowStats,
        sflow: SflowStats,
        inspect: InspectStats,
        flows: u64,
    },
}

impl ToWriter {
    /// A DNS batch, with the messages detection reads picked out when it is fed (`cnc`).
    fn dns(batch: RecordBatch, cnc: Option<&DetectConfig>) -> ToWriter {
        let events = cnc.map_or(Ok(KeptDns::default()), |c| wanted_dns_events(&batch, c));
        ToWriter::Dns(batch, events)
    }
}

/// Runs the whole pipeline over `inputs`: reads, decodes, meters flows, inspects
/// sessions and writes the flows, dns, arp and sessions tables to `output`.
///
/// A damaged or unreadable input is a warning in the summary, not an error; check
/// [`RunSummary::inputs_usable`] for "nothing could be read". Setting `control.stop`
/// ends the run early with complete tables of what was read.
pub fn analyze(
    inputs: &[Input],
    config: &PipelineConfig,
    control: &Control,
    output: &Output,
) -> Result<Analysis, Error> {
    run(inputs, config, control, output, None)
}

/// [`analyze`], handing what it stores to `feed` too.
pub(crate) fn run(
    inputs: &[Input],
    config: &PipelineConfig,
    control: &Control,
    output: &Output,
    feed: Option<&mut Feed<'_>>,
) -> Result<Analysis, Error> {
    let started = Instant::now();
    let n = config.threads.max(1);
    // The writer runs on this pool and the Parquet sinks encode columns on it: one thread
    // for the writer and `n` for encoding, as the CLI had with rayon's global pool and
    // its main thread. Its own pool, so a caller's rayon work is never shared or resized.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n + 1)
        .thread_name(|i| format!("encode-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the encoding pool: {e}")))?;
    // One chunk waiting per decoder: a chunk read further ahead is more often out of the
    // caches by the time it is decoded (the flow tables sweep them), and interleaved runs
    // were 2-4 % faster with N than with 2N.
    let (job_tx, job_rx) = bounded::<Job>(n);
    // Decoded chunks go back to the reader, so buffers are reused instead of freshly
    // allocated (and page-faulted) for every megabyte of input.
    let (recycle_tx, recycle_rx) = bounded::<Chunk>(4 * n);
    // So do the shards' packet vectors, to the decode workers: freshly allocated for
    // every chunk, their pages were 13 % of the page faults of a run on the scan
    // benchmark shape. As many as the shard queues and the workers hold at once.
    let (spare_tx, spare_rx) = bounded::<Vec<TimedPacket>>(5 * n * n);
    let (shard_txs, shard_rxs): (Vec<_>, Vec<_>) =
        (0..n).map(|_| bounded::<ShardMsg>(4 * n)).unzip();
    // At most 8 messages per shard queue for the single writer (batches of
    // FLOW_BATCH_ROWS rows): its back-pressure bounds memory when encoding is the
    // bottleneck.
    let (out_tx, out_rx) = bounded::<ToWriter>(8 * n);
    let mut shard_config = config.flow;
    shard_config.max_flows = config.flow.max_flows.div_ceil(n).max(1);
    let sinks = TableSinks::create(output, config, inputs)?;

    let inspected_ports = InspectedPorts::new(&config.inspect);
    let cnc = feed.as_deref().map(Feed::config);
    let resolved = feed.as_deref().map(Feed::resolved);
    // The rules, and where the decode workers publish C&C addresses for the pickers.
    let watch = cnc.zip(resolved.as_deref());
    // Every picker (the log reader's, then one per shard) starts here, before any
    // thread runs (see `ResolvedCnc`).
    let mut pickers = (0..=n)
        .map(|_| watch.map(|(config, resolved)| UsablePicker::new(config, resolved)))
        .collect::<Vec<_>>()
        .into_iter();
    let (mut summary, tables) = thread::scope(|s| {
        let log_output = LogOutput {
            picker: pickers.next().flatten().map(RefCell::new),
            out_tx: out_tx.clone(),
            cnc,
            control,
        };
        let reader = spawn_named(s, "reader".into(), move || {
            read_inputs(inputs, job_tx, recycle_rx, log_output)
        });
        for i in 0..n {
            let (job_rx, shard_txs, out_tx) = (job_rx.clone(), shard_txs.clone(), out_tx.clone());
            let recycle = Recycling {
                chunks: recycle_tx.clone(),
                spare_packets: spare_rx.clone(),
            };
            let settings = DecodeSettings {
                tunnels: &config.tunnels,
                netflow_ports: &config.netflow_ports,
                inspect: &inspected_ports,
            };
            spawn_named(s, format!("decode-{i}"), move || {
                decode_worker(job_rx, shard_txs, out_tx, recycle, settings, watch)
            });
        }
        drop(recycle_tx);
        drop(spare_rx);
        drop(shard_txs);
        let f = &config.flow;
        let disorder_ns = f.tcp_idle_ns.max(f.udp_idle_ns).max(f.other_idle_ns);
        for (i, rx) in shard_rxs.into_iter().enumerate() {
            let (out_tx, inspect) = (out_tx.clone(), config.inspect.clone());
            let (picker, spare_tx) = (pickers.next().flatten(), spare_tx.clone());
            let shard = Shard {
                index: i,
                of: n,
                disorder_ns,
            };
            spawn_named(s, format!("shard-{i}"), move || {
                flow_shard(rx, shard_config, inspect, picker, out_tx, spare_tx, shard)
            });
        }
        drop(spare_tx);
        drop(out_tx);
        let written =
            pool.install(|| write_outputs(sinks, out_rx, n, feed, started, &control.stop));
        let read = reader.join().expect("reader thread panicked");
        let (mut summary, tables) = written?;
        summary.warnings = read.warnings;
        summary.inputs_usable = read.n_usable;
        summary.flows += read.logs.flows;
        summary.logs = read.logs;
        Ok::<_, Error>((summary, tables))
    })?;
    summary.inputs = inputs.len() as u64;
    summary.input_bytes = control.bytes.load(Ordering::Relaxed);
    summary.threads = n;
    Ok(Analysis { summary, tables })
}

/// Spawns a scoped thread with a name, so that `top -H`, `perf` and panic messages say
/// which stage a thread runs.
fn spawn_named<'scope, 'env, T: Send + 'scope>(
    s: &'scope thread::Scope<'scope, 'env>,
    name: String,
    f: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    thread::Builder::new()
        .name(name)
        .spawn_scoped(s, f)
        .expect("cannot spawn a pipeline thread")
}

/// What the reader thread found.
struct ReadOutcome {
    warnings: Vec<Warning>,
    /// Inputs that could be read at all.
    n_usable: u64,
    /// What the flow logs among the inputs held.
    logs: LogStats,
}

/// The reader thread's place in the run: numbering and progress across inputs.
#[derive(Default)]
struct ReadPosition {
    /// Next chunk number.
    seq: u64,
    /// Records (packets, log rows) read so far: the next record's ordinal.
    n_records: u64,
    /// Latest capture time seen.
    watermark: i64,
    /// Source bytes of the inputs before the current one.
    bytes_before: u64,
}

/// Reads every input in order: captures cut into numbered chunks for the decoders, logs
/// read into rows for the writer (`logs.rs`). Records of both take ordinals from one
/// count, so `first_packet` stays unique across a run.
fn read_inputs(
    inputs: &[Input],
    job_tx: Sender<Job>,
    recycled: Receiver<Chunk>,
    log_output: LogOutput<'_>,
) -> ReadOutcome {
    let control = log_output.control;
    let mut at = ReadPosition {
        watermark: i64::MIN,
        ..ReadPosition::default()
    };
    let mut outcome = ReadOutcome {
        warnings: Vec::new(),
        n_usable: 0,
        logs: LogStats::default(),
    };
    for input in inputs {
        if control.stop.load(Ordering::Relaxed) {
            break;
        }
        let go_on = match input.open() {
            Ok(Opened::Capture(reader)) => {
                outcome.n_usable += 1;
                let capture = CaptureInput {
                    input,
                    job_tx: &job_tx,
                    recycled: &recycled,
                    control,
                };
                capture.read(reader, &mut at, &mut outcome.warnings)
            }
            Ok(Opened::Log(log, raw_bytes)) => {
                outcome.n_usable += 1;
                let read = read_log(
                    input,
                    log,
                    &raw_bytes,
                    at.bytes_before,
                    &mut at.n_records,
                    &log_output,
                );
                at.bytes_before += raw_bytes.load(Ordering::Relaxed);
                outcome.warnings.extend(read.warnings);
                outcome.logs.merge(&read.stats);
                read.go_on
            }
            Err(e) => {
                outcome
                    .warnings
                    .push(Warning::new(input, None, e.to_string()));
                true
            }
        };
        if !go_on {
            break;
        }
    }
    outcome
}

/// One capture being cut into chunks.
struct CaptureInput<'a> {
    input: &'a Input,
    job_tx: &'a Sender<Job>,
    recycled: &'a Receiver<Chunk>,
    control: &'a Control,
}

impl CaptureInput<'_> {
    /// Reads the capture to its end, a damage or the stop flag. False when the decoders
    /// are gone (the run is failing).
    fn read(
        &self,
        mut reader: CaptureReader,
        at: &mut ReadPosition,
        warnings: &mut Vec<Warning>,
    ) -> bool {
        let (input, control) = (self.input, self.control);
        loop {
            if control.stop.load(Ordering::Relaxed) {
                let read = at.bytes_before + reader.source_bytes_read();
                let message = format!("interrupted: stopped reading after {read} input bytes; the outputs hold everything read before");
                warnings.push(Warning::new(input, None, message));
                break;
            }
            let mut chunk = self.recycled.try_recv().unwrap_or_default();
            let result = reader.read_chunk(&mut chunk, CHUNK_BYTES);
            control.bytes.store(
                at.bytes_before + reader.source_bytes_read(),
                Ordering::Relaxed,
            );
            if !chunk.is_empty() {
                let n = chunk.len() as u64;
                at.watermark = chunk
                    .records
                    .iter()
                    .fold(at.watermark, |w, r| w.max(r.ts_ns));
                let job = Job {
                    seq: at.seq,
                    first_packet: at.n_records,
                    watermark: at.watermark,
                    chunk,
                };
                if self.job_tx.send(job).is_err() {
                    return false;
                }
                at.seq += 1;
                at.n_records += n;
                control.packets.store(at.n_records, Ordering::Relaxed);
            }
            match result {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    warnings.push(Warning::new(input, e.offset(), e.to_string()));
                    break;
                }
            }
        }
        at.bytes_before += reader.source_bytes_read();
        true
    }
}

/// Frames whose headers [`warm_headers`] loads ahead of decoding them.
const WARM_FRAMES: usize = 16;

/// Loads the first 64 bytes (the headers the decoder reads) of each frame in one tight
/// loop, so that their cache misses overlap instead of stalling the decoder one frame
/// at a time: the reader thread's `read()` copied them on another core, and frames are
/// too far apart for the hardware prefetcher. Plain loads: safe Rust has no prefetch.
fn warm_headers<'a>(frames: impl Iterator<Item = &'a [u8]>) {
    let mut sink = 0u8;
    for frame in frames {
        let last = frame.get(63).or(frame.last());
        sink ^= frame.first().unwrap_or(&0) ^ last.unwrap_or(&0);
    }
    std::hint::black_box(sink);
}

/// What a decode worker needs of the configuration.
#[derive(Clone, Copy)]
struct DecodeSettings<'a> {
    tunnels: &'a TunnelConfig,
    netflow_ports: &'a [u16],
    inspect: &'a InspectedPorts,
}

/// Where a decode worker returns the reader's chunks, and takes the packet vectors the
/// shards returned.
struct Recycling {
    chunks: Sender<Chunk>,
    spare_packets: Receiver<Vec<TimedPacket>>,
}

impl Recycling {
    /// A vector for about `per_shard` packets: a spare one if it fits, else a new one
    /// with a quarter more room, so that it fits the next chunks too (their packet
    /// counts vary a little). A spare far larger (grown by a shard's share of long
    /// flows) is let go, so that the vectors in circulation do not all end up that large.
    fn packet_vector(&self, per_shard: usize) -> Vec<TimedPacket> {
        match self.spare_packets.try_recv() {
            Ok(spare) if (per_shard..=4 * per_shard).contains(&spare.capacity()) => spare,
            _ => Vec::with_capacity(per_shard + per_shard / 4),
        }
    }
}

impl Drop for Recycling {
    /// Frees the spare vectors when the worker ends: otherwise they stayed queued
    /// through the shards' end-of-input flush and detection. After the last worker, a
    /// shard's `try_send` fails and it drops its vectors itself; one sent in between is
    /// freed when the shards let their senders go, at the end of their input.
    fn drop(&mut self) {
        while self.spare_packets.try_recv().is_ok() {}
    }
}

fn decode_worker(
    jobs: Receiver<Job>,
    shard_txs: Vec<Sender<ShardMsg>>,
    out_tx: Sender<ToWriter>,
    recycle: Recycling,
    settings: DecodeSettings<'_>,
    cnc: Option<(&DetectConfig, &ResolvedCnc)>,
) {
    let DecodeSettings {
        tunnels,
        netflow_ports,
        inspect,
    } = settings;
    let n_shards = shard_txs.len();
    let mut stats = DecodeStats::default();
    let mut dns = DnsBatchBuilder::with_capacity(DNS_BATCH_ROWS);
    // Every DNS message is parsed into this one, which keeps its buffers (the question
    // name's, the answer list's) from one message to the next.
    let mut dns_message = DnsMessage::default();
    let send_dns = |batch: RecordBatch| {
        let msg = ToWriter::dns(batch, cnc.map(|(config, _)| config));
        out_tx.send(msg).is_ok()
    };
    for job in jobs {
        // Packets go to shards by a hash of their flow. Where flows are short (a scan), a
        // shard's share varies by a few of its square roots: an eighth more than the
        // share, and 64, covers that, where 16 more had half the scan's chunks copy a
        // shard's packets into a vector twice as large (1.7 % of the CPU). Long flows
        // spread shares wider; a vector then grows, as any would. Most vectors are
        // spares a shard returned, at least this large.
        let share = job.chunk.len() / n_shards;
        let per_shard = share + share / 8 + 64;
        let mut parts: Vec<Vec<TimedPacket>> = (0..n_shards)
            .map(|_| recycle.packet_vector(per_shard))
            .collect();
        let mut exports: Vec<Vec<ExportPacket>> = (0..n_shards).map(|_| Vec::new()).collect();
        let mut inspected: Vec<(Vec<InspectedSegment>, Vec<u8>)> =
            (0..n_shards).map(|_| Default::default()).collect();
        let mut arp_rows = Vec::new();
        let mut name_rows = Vec::new();
        let mut dns_batches = Vec::new();
        let mut ahead = job.chunk.iter();
        for (i, (meta, data)) in job.chunk.iter().enumerate() {
            if i % WARM_FRAMES == 0 {
                warm_headers(ahead.by_ref().take(WARM_FRAMES).map(|(_, d)| d));
            }
            let idx = job.first_packet + i as u64;
            stats.packets += 1;
            stats.wire_bytes += u64::from(meta.orig_len);
            stats.captured_bytes += data.len() as u64;
            match decode_with(meta.link_type, data, tunnels) {
                Decoded::Ip(packet) => {
                    stats.ip_packets += 1;
                    stats.truncated += u64::from(packet.truncated);
                    if let Some(tunnel) = &packet.tunnel {
                        stats.tunnelled[tunnel.kind as usize] += 1;
                    }
                    if let Some(payload) = netflow_payload(&packet, data, netflow_ports) {
                        // Routed like the packet itself, so every datagram of one
                        // exporter reaches the same decoder in capture order.
                        exports[shard_of(&packet, n_shards)].push(ExportPacket {
                            ts_ns: meta.ts_ns,
                            idx,
                            exporter: SocketAddr::new(packet.src, packet.src_port),
                            payload: payload.to_vec(),
                        });
                        continue;
                    }
                    if let Some(row) =
                        dns_row(meta.ts_ns, idx, &packet, data, &mut dns_message, &mut stats)
                    {
                        if let Some((config, resolved)) = cnc {
                            resolved.publish(config, &row.message);
                        }
                        dns.append(&row);
                        // Its buffers, for the next message.
                        dns_message = row.message;
                        // Finished at the rows the builder was made for, so its
                        // row-indexed buffers never grow; sent after the shards'
                        // messages, so a shard never waits for a chunk that was dropped.
                        if dns.len() >= DNS_BATCH_ROWS {
                            dns_batches.push(dns.finish());
                        }
                    }
                    name_rows.extend(name_rows_of(meta.ts_ns, idx, &packet, data));
                    let shard = shard_of(&packet, n_shards);
                    if let Some(payload) = inspected_payload(&packet, data, inspect) {
                        let (segments, bytes) = &mut inspected[shard];
                        let start = bytes.len();
                        bytes.extend_from_slice(payload);
                        let (packet, end) = (parts[shard].len(), bytes.len());
                        segments.push(InspectedSegment { packet, start, end });
                    }
                    parts[shard].push(TimedPacket {
                        ts_ns: meta.ts_ns,
                        idx,
                        packet,
                    });
                }
                Decoded::Arp(arp) => arp_rows.push(ArpRow {
                    ts_ns: meta.ts_ns,
                    packet: idx,
                    arp,
                }),
                Decoded::Skipped(reason) => {
                    stats.count_skip(reason);
                    if reason == SkipReason::UnknownLinkType {
                        *stats.unknown_link_types.entry(meta.link_type).or_default() += 1;
                    }
                }
            }
        }
        drop(ahead); // it borrows the chunk, which goes back to the reader now
        stats.arp_packets += arp_rows.len() as u64;
        stats.name_facts += name_rows.len() as u64;
        // A full recycle queue just means the reader has enough buffers.
        let _ = recycle.chunks.try_send(job.chunk);
        let per_shard = parts.into_iter().zip(exports).zip(inspected);
        for (tx, ((packets, exports), (segments, payloads))) in shard_txs.iter().zip(per_shard) {
            let msg = ShardMsg {
                seq: job.seq,
                watermark: job.watermark,
                packets,
                exports,
                segments,
                payloads,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
        if !dns_batches.into_iter().all(send_dns) {
            return;
        }
        if !arp_rows.is_empty() && out_tx.send(ToWriter::Arp(arp_rows)).is_err() {
            return;
        }
        if !name_rows.is_empty() && out_tx.send(ToWriter::Names(name_rows)).is_err() {
            return;
        }
    }
    if !dns.is_empty() && !send_dns(dns.finish()) {
        return;
    }
    let _ = out_tx.send(ToWriter::DecodeDone(stats));
}

/// The UDP payload of a NetFlow/IPFIX export datagram: sent to one of `ports`, not a
/// fragment (a fragment's payload would be only part of the datagram), and captured.
fn netflow_payload<'a>(p: &PacketSummary, data: &'a [u8], ports: &[u16]) -> Option<&'a [u8]> {
    const UDP: u8 = 17;
    if p.proto != UDP || !p.has_ports || p.fragment.is_some() || !ports.contains(&p.dst_port) {
        return None;
    }
    let start = p.payload_offset as usize;
    data.get(start..start + p.payload_captured as usize)
        .filter(|payload| !payload.is_empty())
}

/// The payload of a TCP segment the protocol inspector reads: on an inspected port, not
/// a fragment, and carrying data or ending the session (FIN, RST).
fn inspected_payload<'a>(
    p: &PacketSummary,
    data: &'a [u8],
    inspect: &InspectedPorts,
) -> Option<&'a [u8]> {
    const TCP: u8 = 6;
    const FIN_OR_RST: u8 = 0x05;
    if p.proto != TCP || !p.has_ports || p.fragment.is_some() {
        return None;
    }
    if !inspect.wants(p.src_port, p.dst_port) {
        return None;
    }
    let start = p.payload_offset as usize;
    let payload = data.get(start..start + p.payload_captured as usize)?;
    (!payload.is_empty() || p.tcp_flags & FIN_OR_RST != 0).then_some(payload)
}

/// Feeds a message's inspected segments to the shard's inspector.
fn inspect_segments(msg: &ShardMsg, inspector: &mut Inspector, out: &mut Vec<SessionEvent>) {
    for s in &msg.segments {
        let TimedPacket {
            ts_ns,
            idx,
            packet: p,
        } = &msg.packets[s.packet];
        let segment = Segment {
            ts_ns: *ts_ns,
            packet: *idx,
            src: p.src,
            src_port: p.src_port,
            dst: p.dst,
            dst_port: p.dst_port,
            seq: p.tcp_seq,
            flags: p.tcp_flags,
            payload: &msg.payloads[s.start..s.end],
        };
        inspector.observe(&segment, out);
    }
}

/// Parses DNS carried on port 53 (UDP, or one length-prefixed message per TCP segment).
/// The naming facts of a DHCP or NetBIOS name service datagram.
fn name_rows_of(ts_ns: i64, idx: u64, p: &PacketSummary, data: &[u8]) -> Vec<NameRow> {
    let on = |port: u16| p.src_port == port || p.dst_port == port;
    if p.proto != 17 || !p.has_ports || !(DHCP_PORTS.iter().any(|&d| on(d)) || on(NBNS_PORT)) {
        return Vec::new();
    }
    let start = p.payload_offset as usize;
    let Some(payload) = data.get(start..start + p.payload_captured as usize) else {
        return Vec::new();
    };
    let facts = if on(NBNS_PORT) {
        names::parse_nbns(payload, p.src)
    } else {
        names::parse_dhcp(payload).into_iter().collect()
    };
    facts
        .into_iter()
        .map(|fact| NameRow {
            ts_ns,
            packet: idx,
            src: p.src,
            dst: p.dst,
            fact,
        })
        .collect()
}

/// The DNS row of a packet to or from port 53 whose payload parses. The message is
/// parsed into `message` (reusing its buffers) and taken from it for the row.
fn dns_row(
    ts_ns: i64,
    idx: u64,
    p: &PacketSummary,
    data: &[u8],
    message: &mut DnsMessage,
    stats: &mut DecodeStats,
) -> Option<DnsRow> {
    const DNS_PORT: u16 = 53;
    let tcp = match p.proto {
        6 => true,
        17 => false,
        _ => return None,
    };
    if !p.has_ports || (p.src_port != DNS_PORT && p.dst_port != DNS_PORT) {
        return None;
    }
    let start = p.payload_offset as usize;
    let payload = data.get(start..start + p.payload_captured as usize)?;
    if payload.is_empty() {
        return None;
    }
    let parsed = if tcp {
        dns::parse_tcp_into(payload, message)
    } else {
        dns::parse_into(payload, message)
    };
    if parsed.is_err() {
        stats.dns_errors += 1;
        return None;
    }
    stats.dns_messages += 1;
    let (client, client_port, server, server_port) = if message.is_response {
        (p.dst, p.dst_port, p.src, p.src_port)
    } else {
        (p.src, p.src_port, p.dst, p.dst_port)
    };
    Some(DnsRow {
        ts_ns,
        packet: idx,
        client,
        client_port,
        server,
        server_port,
        tcp,
        message: std::mem::take(message),
    })
}

/// Flows a shard has ended, built into batches for the writer, with the usable flows of
/// each batch picked out for detection.
struct ShardOutput<'p, 'c> {
    builder: FlowBatchBuilder,
    picker: Option<UsablePicker<'p>>,
    /// The usable flows of the batch being built, and the earliest start among them.
    usable: Vec<UsableFlow>,
    unsent_from: i64,
    out_tx: &'c Sender<ToWriter>,
    flows: u64,
}

impl ShardOutput<'_, '_> {
    /// Appends `records`, sending every batch as soon as it is full (the end-of-input
    /// flush finishes all live flows together, and the writer should encode the first
    /// batches while later ones are built), and the partial last batch when `force`d.
    /// False once the writer is gone.
    fn emit(&mut self, records: &mut dyn Iterator<Item = FlowRecord>, force: bool) -> bool {
        for r in records {
            self.builder.append(&r);
            self.flows += 1;
            if let Some(f) = self.picker.as_mut().and_then(|p| p.pick(&r)) {
                self.unsent_from = self.unsent_from.min(f.start());
                self.usable.push(f);
            }
            if self.builder.len() >= FLOW_BATCH_ROWS && !self.send() {
                return false;
            }
        }
        !force || self.builder.is_empty() || self.send()
    }

    fn send(&mut self) -> bool {
        // The next batch likely has as many usable flows: a vector grown from empty for
        // each batch was 1.5 % of the CPU on a scan, whose flows are all usable.
        let sized = Vec::with_capacity(self.usable.len());
        let usable = std::mem::replace(&mut self.usable, sized);
        self.unsent_from = i64::MAX;
        let msg = ToWriter::Flows(self.builder.finish(), usable);
        self.out_tx.send(msg).is_ok()
    }
}

fn flow_shard(
    rx: Receiver<ShardMsg>,
    config: FlowConfig,
    inspect: InspectConfig,
    picker: Option<UsablePicker<'_>>,
    out_tx: Sender<ToWriter>,
    spare: Sender<Vec<TimedPacket>>,
    shard: Shard,
) {
    let mut table = FlowTable::new(config);
    let mut inspector = Inspector::new(inspect);
    let mut sessions = Vec::new();
    let mut exports = ExportDecoder::new(config);
    let mut pending: BTreeMap<u64, ShardMsg> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut last_sweep: Option<i64> = None;
    let mut last_watermark: Option<i64> = None;
    let mut done: Vec<FlowRecord> = Vec::new();
    // Whether the shard can tell detection how early its later flows can start: not once
    // it decoded exported flow records, which carry their exporters' times (its last
    // bound then stands, and detection releases nothing beyond it).
    let mut bounded = true;
    let mut output = ShardOutput {
        builder: FlowBatchBuilder::with_capacity(FLOW_BATCH_ROWS),
        // The flows of the batch being built that detection can use, picked out here, in
        // parallel, rather than by the single writer.
        picker,
        usable: Vec::new(),
        unsent_from: i64::MAX,
        out_tx: &out_tx,
        flows: 0,
    };
    for msg in rx {
        pending.insert(msg.seq, msg);
        while let Some(msg) = pending.remove(&next_seq) {
            next_seq += 1;
            table.observe_all(&msg.packets, &mut done);
            inspect_segments(&msg, &mut inspector, &mut sessions);
            for export in &msg.exports {
                let (from, ts, payload) = (export.exporter, export.ts_ns, &export.payload);
                exports.decode(from, ts, payload, export.idx, &mut done);
            }
            bounded &= msg.exports.is_empty();
            last_watermark = Some(msg.watermark);
            let since = msg
                .watermark
                .saturating_sub(*last_sweep.get_or_insert(msg.watermark));
            let mut earliest_live = None;
            if since >= SWEEP_INTERVAL_NS {
                earliest_live = Some(table.expire(msg.watermark, &mut done));
                exports.expire(msg.watermark, &mut done);
                inspector.expire(msg.watermark, &mut sessions);
                last_sweep = Some(msg.watermark);
            }
            if !output.emit(&mut done.drain(..), false) {
                return;
            }
            // After a sweep, every flow the table holds is in `earliest_live`'s reach.
            if let Some(live) = earliest_live.filter(|_| bounded && output.picker.is_some()) {
                let before = shard.bound(live, output.unsent_from, msg.watermark);
                if out_tx
                    .send(ToWriter::Bound {
                        shard: shard.index,
                        of: shard.of,
                        before,
                    })
                    .is_err()
                {
                    return;
                }
            }
            let found = std::mem::take(&mut sessions);
            if !found.is_empty() && out_tx.send(ToWriter::Sessions(found)).is_err() {
                return;
            }
            let mut packets = msg.packets;
            packets.clear();
            // A full queue means the workers have enough spares; a closed one, that
            // they are gone.
            let _ = spare.try_send(packets);
        }
    }
    // No more spares: the workers are gone or going, and the vectors still queued are
    // freed once every shard has let its sender go.
    drop(spare);
    // A last sweep at the capture's end: a flow idle by then is reported idle whether or
    // not a sweep fell after its timeout, so the result does not hang on where the
    // chunks (a byte count) happened to end.
    if let Some(end) = last_watermark {
        table.expire(end, &mut done);
        exports.expire(end, &mut done);
    }
    exports.finish(&mut done);
    if !output.emit(&mut done.drain(..), false) {
        return;
    }
    inspector.finish(&mut sessions);
    if !sessions.is_empty() && out_tx.send(ToWriter::Sessions(sessions)).is_err() {
        return;
    }
    let flushed = output.emit(&mut table.flush(), true);
    let flows = output.flows;
    // Its notes are in before the writer counts this shard done (see `ResolvedCnc`).
    drop(output);
    if flushed {
        let _ = out_tx.send(ToWriter::ShardDone {
            stats: table.stats(),
            netflow: exports.netflow_stats(),
            sflow: exports.sflow_stats(),
            inspect: inspector.stats(),
            flows,
        });
    }
}

/// Which of the run's flow shards this is, and how late its packets may come.
#[derive(Clone, Copy)]
struct Shard {
    index: usize,
    of: usize,
    /// How far behind the newest packet read so far a later packet may be and still
    /// start a flow: the longest idle timeout. (A packet later than that is already
    /// outside the flow table's own assumptions: the flow it belonged to has expired.)
    disorder_ns: i64,
}

impl Shard {
    /// The earliest start of any usable flow this shard has yet to send, right after a
    /// sweep left flows starting from `earliest_live` in its table, with usable flows
    /// starting from `unsent_from` in the batch being built, at `watermark`, the newest
    /// packet time read: a packet still to come starts a flow no earlier than the
    /// watermark less the disorder a capture may have. Detection is told, and runs the
    /// flows before the earliest such bound of every shard (`feed.rs`).
    fn bound(&self, earliest_live: i64, unsent_from: i64, watermark: i64) -> i64 {
        let to_come = watermark.saturating_sub(self.disorder_ns);
        // In the unit the tables store, as detection reads starts (whole microseconds):
        // a flow that starts after the bound, within its microsecond, reads back at it.
        stored_time(earliest_live.min(unsent_from).min(to_come))
    }
}

/// The five tables' sinks: Parquet files or batches in memory.
struct TableSinks {
    flows: TableSink,
    dns: TableSink,
    arp: TableWriter<ArpBatchBuilder>,
    names: TableWriter<NameBatchBuilder>,
    sessions: TableWriter<SessionBatchBuilder>,
}

impl TableSinks {
    fn create(output: &Output, config: &PipelineConfig, inputs: &[Input]) -> Result<Self, Error> {
        let metadata = config.provenance(inputs);
        let files = |dir: &Path, name, schema| {
            TableSink::create(dir, name, schema, &metadata, config.partitioning)
        };
        let sink = |name, schema| -> Result<TableSink, Error> {
            Ok(match output {
                Output::Memory => TableSink::memory(),
                Output::Parquet(dir) => files(dir, name, schema)?,
                Output::ParquetAndMemory(dir) => files(dir, name, schema)?.and_keep(),
            })
        };
        if let Output::Parquet(dir) | Output::ParquetAndMemory(dir) = output {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
        Ok(TableSinks {
            flows: sink("flows", FlowBatchBuilder::schema())?,
            dns: sink("dns", DnsBatchBuilder::schema())?,
            arp: TableWriter::with_sink(sink("arp", ArpBatchBuilder::schema())?),
            names: TableWriter::with_sink(sink("names", NameBatchBuilder::schema())?),
            sessions: TableWriter::with_sink(sink("sessions", SessionBatchBuilder::schema())?),
        })
    }
}

impl TableSinks {
    /// Ends the five tables together: one file's footer and fsync overlap the others'
    /// last encoding instead of following it on an otherwise idle core. Returns the
    /// tables (batches a memory sink kept) and the rows of arp, names and sessions.
    fn finish(self) -> Result<(Tables, [u64; 3]), Error> {
        let TableSinks {
            flows,
            dns,
            arp,
            names,
            sessions,
        } = self;
        let (flows, ((dns, arp), (names, sessions))) = rayon::join(
            || flows.finish(),
            || {
                rayon::join(
                    || rayon::join(|| dns.finish(), || arp.finish()),
                    || rayon::join(|| names.finish(), || sessions.finish()),
                )
            },
        );
        let (arp, names, sessions) = (arp?, names?, sessions?);
        let rows = [arp.rows, names.rows, sessions.rows];
        let tables = Tables {
            flows: flows?,
            dns: dns?,
            arp: arp.batches,
            names: names.batches,
            sessions: sessions.batches,
        };
        Ok((tables, rows))
    }
}

/// Stores `rows` in `table`, handing each batch it writes to `stored`.
fn store<B: RowBuilder>(
    table: &mut TableWriter<B>,
    rows: &[B::Row],
    mut stored: impl FnMut(&RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    for r in rows {
        if let Some(batch) = table.push(r)? {
            stored(&batch)?;
        }
    }
    Ok(())
}

/// `step` on the feed, if there is one.
fn fed(
    feed: &mut Option<&mut Feed<'_>>,
    step: impl FnOnce(&mut Feed<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    feed.as_deref_mut().map_or(Ok(()), step)
}

/// The single writer: encodes batches into the five tables, hands each stored batch to
/// `feed`, and gathers the workers' counters. Files appear only when complete (see
/// [`TableSink`]).
fn write_outputs(
    mut sinks: TableSinks,
    rx: Receiver<ToWriter>,
    n_workers: usize,
    mut feed: Option<&mut Feed<'_>>,
    started: Instant,
    stop: &AtomicBool,
) -> Result<(RunSummary, Tables), Error> {
    let mut summary = RunSummary::default();
    let (mut n_decoders_done, mut n_shards_done) = (0, 0);
    for msg in rx {
        match msg {
            ToWriter::Flows(batch, usable) => {
                sinks.flows.write(&batch)?;
                if let Some(feed) = feed.as_deref_mut() {
                    feed.flows(batch.num_rows(), usable);
                }
            }
            ToWriter::Dns(batch, events) => {
                sinks.dns.write(&batch)?;
                summary.dns_records += batch.num_rows() as u64;
                if let Some(feed) = feed.as_deref_mut() {
                    feed.dns(batch.num_rows(), events?);
                }
            }
            ToWriter::Arp(rows) => {
                store(&mut sinks.arp, &rows, |b| fed(&mut feed, |f| f.arp(b)))?;
            }
            ToWriter::Names(rows) => {
                store(&mut sinks.names, &rows, |b| fed(&mut feed, |f| f.names(b)))?;
            }
            ToWriter::Sessions(rows) => {
                store(&mut sinks.sessions, &rows, |b| {
                    fed(&mut feed, |f| f.sessions(b))
                })?;
            }
            ToWriter::Bound { shard, of, before } => {
                if let Some(feed) = feed.as_deref_mut() {
                    feed.bound(shard, of, before);
                }
            }
            ToWriter::DecodeDone(stats) => {
                summary.decode.merge(&stats);
                n_decoders_done += 1;
            }
            ToWriter::ShardDone {
                stats,
                netflow,
                sflow,
                inspect,
                flows,
            } => {
                summary.flow.merge(&stats);
                summary.netflow.merge(&netflow);
                summary.sflow.merge(&sflow);
                summary.inspect.merge(&inspect);
                summary.flows += flows;
                n_shards_done += 1;
            }
        }
    }
    // A worker that died without reporting leaves the temporary files to be deleted
    // (the sinks' Drop) rather than renaming incomplete tables into place.
    if n_decoders_done != n_workers || n_shards_done != n_workers {
        return Err(Error::Internal(
            "a pipeline worker stopped early; no output written".into(),
        ));
    }
    let fed_tails = feed_tails(&mut sinks, &mut feed);
    let detect = fed_tails.is_ok() && !stop.load(Ordering::Relaxed);
    // Detection runs while the files end, when it needs nothing from them
    // (`Feed::detect_early`): the flows file's last row group, footer and fsync took
    // 15-20 ms that detection used to wait for. On a thread of its own (and rayon's
    // global pool, as before), not this pool: a rayon join could run it inline while the
    // sinks wait.
    let tables = thread::scope(|s| {
        let detecting = feed.filter(|_| detect).map(|feed| {
            s.spawn(|| {
                // The channel closed once every shard had returned, its flow table
                // freed: detection's memory should not come on top of the pages the
                // allocator kept of them.
                return_free_pages();
                feed.detect_early()
            })
        });
        let tables = sinks.finish();
        summary.wall = started.elapsed();
        if let Some(detecting) = detecting {
            detecting.join().expect("detection panicked");
        }
        tables
    });
    fed_tails?;
    let (tables, [arp_rows, name_rows, session_rows]) = tables?;
    summary.arp_records = arp_rows;
    summary.name_records = name_rows;
    summary.session_records = session_rows;
    Ok((summary, tables))
}

/// Hands `feed` the last batches of the small tables (sealed, written when the files
/// end): after this it has all it gets before the files end.
fn feed_tails(sinks: &mut TableSinks, feed: &mut Option<&mut Feed<'_>>) -> Result<(), Error> {
    if let Some(b) = sinks.arp.seal() {
        fed(feed, |f| f.arp(&b))?;
    }
    if let Some(b) = sinks.names.seal() {
        fed(feed, |f| f.names(&b))?;
    }
    if let Some(b) = sinks.sessions.seal() {
        fed(feed, |f| f.sessions(&b))?;
    }
    Ok(())
}
