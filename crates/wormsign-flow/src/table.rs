//! The flow table: one per shard, no locks.

use std::net::IpAddr;

use wormsign_decode::{PacketSummary, Tunnel};

use crate::fragments::{FragKey, Fragments};
use crate::key::{icmp_key_ports, is_icmp, Endpoints, FlowKey};
use crate::state::{tcp_flags, tcp_history_letters, tcp_transition, ConnState, Endpoint, History};
use crate::store::{FlowStore, Touch, MAX_ENTRIES};

const TCP: u8 = 6;
const UDP: u8 = 17;
const NS_PER_SEC: i64 = 1_000_000_000;

/// Timeouts and caps of a [`FlowTable`]. Times are in nanoseconds of capture time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// A TCP flow with no packet for this long ends (Zeek: `tcp_inactivity_timeout`, 5 min).
    pub tcp_idle_ns: i64,
    /// Idle timeout of UDP flows (Zeek: `udp_inactivity_timeout`, 1 min).
    pub udp_idle_ns: i64,
    /// Idle timeout of ICMP and other protocols (Zeek: `icmp_inactivity_timeout`, 1 min).
    pub other_idle_ns: i64,
    /// A flow older than this is cut and continues as a new flow (NetFlow's active timeout).
    pub active_ns: i64,
    /// How long a closed or reset TCP flow lingers for trailing ACKs and RSTs (Zeek's
    /// `tcp_close_delay`); a new SYN on the same tuple starts a new flow at once.
    pub tcp_close_ns: i64,
    /// At most this many live flows; beyond it the least recently active are evicted.
    /// 0 counts as 1, and values above 2^31 − 1 as 2^31 − 1.
    pub max_flows: usize,
    /// At most this many IPv4/IPv6 datagrams whose first fragment awaits its followers.
    pub max_fragments: usize,
    /// How long a first fragment's ports are kept for later fragments.
    pub fragment_timeout_ns: i64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle_ns: 300 * NS_PER_SEC,
            udp_idle_ns: 60 * NS_PER_SEC,
            other_idle_ns: 60 * NS_PER_SEC,
            active_ns: 1800 * NS_PER_SEC,
            tcp_close_ns: 5 * NS_PER_SEC,
            max_flows: 4_000_000,
            max_fragments: 65_536,
            fragment_timeout_ns: 30 * NS_PER_SEC,
        }
    }
}

/// Why a flow record was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    /// No packet for the protocol's idle timeout.
    Idle,
    /// The active timeout cut a long flow; the rest continues in a new record.
    Active,
    /// TCP closed or reset, and the tuple was reused or the close delay passed.
    Closed,
    /// Evicted because the table reached `max_flows`.
    Evicted,
    /// Still open when the input ended.
    EndOfInput,
    /// Taken from a NetFlow/IPFIX export or another tool's flow log: the exporter or
    /// the tool decided when the flow ended.
    Exported,
}

impl EndReason {
    /// Every value, in declaration order (the Parquet dictionary order).
    pub const ALL: [EndReason; 6] = [
        EndReason::Idle,
        EndReason::Active,
        EndReason::Closed,
        EndReason::Evicted,
        EndReason::EndOfInput,
        EndReason::Exported,
    ];

    /// Lower-case name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Active => "active_timeout",
            EndReason::Closed => "closed",
            EndReason::Evicted => "evicted",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Exported => "exported",
        }
    }
}

/// Counters of one direction of a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCounters {
    /// Packets sent by this side (IP fragments count one each).
    pub packets: u64,
    /// Sum of the IP total-length fields (Zeek's `*_ip_bytes`).
    pub ip_bytes: u64,
    /// Sum of transport payload lengths from header length fields (Zeek's `*_bytes`,
    /// which Zeek takes from sequence numbers instead).
    pub payload_bytes: u64,
    /// OR of every TCP flag byte this side sent.
    pub tcp_flags: u8,
}

/// Where a [`FlowRecord`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowSource {
    /// Metered by a [`FlowTable`] from captured packets.
    Packets,
    /// One record of a NetFlow v5/v9 or IPFIX export (unidirectional: the responder
    /// side is empty).
    Netflow(NetflowOrigin),
    /// One connection record of another tool's flow log (bidirectional, with the
    /// tool's own connection state).
    Log(LogKind),
    /// Metered from the packet headers an sFlow agent sampled (1 in `sampling_rate`).
    Sflow(SflowOrigin),
}

/// Provenance of a flow metered from sFlow samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SflowOrigin {
    /// The agent's address (from the datagram header).
    pub agent: IpAddr,
    /// 1-in-N packet sampling of the agent's data source, as its latest sample before
    /// the flow was written said.
    pub sampling_rate: u32,
    /// Index of the flow's first sample within its datagram; with `first_packet` (the
    /// datagram's ordinal) it makes the sort key unique.
    pub record_index: u32,
}

/// Which tool wrote the flow log a [`FlowSource::Log`] record was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// Zeek's `conn.log`.
    Zeek,
    /// Suricata's `eve.json` flow events.
    Suricata,
}

impl LogKind {
    /// The tool's name as `flows.source` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Zeek => "zeek",
            LogKind::Suricata => "suricata",
        }
    }
}

/// Provenance of a flow record taken from a NetFlow/IPFIX export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetflowOrigin {
    /// The exporter's address.
    pub exporter: IpAddr,
    /// Export version: 5, 9 or 10 (IPFIX).
    pub version: u16,
    /// 1-in-N packet sampling of the record (1 when unsampled).
    pub sampling_interval: u32,
    /// Index of the record within its export datagram; with `first_packet` it makes
    /// the sort key unique.
    pub record_index: u32,
    /// Input interface (SNMP index), 0 when not exported.
    pub input_if: u32,
    /// Output interface (SNMP index), 0 when not exported.
    pub output_if: u32,
}

/// A finished flow, ready for the columnar stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Global ordinal of the flow's first packet in the input; unique per record, the
    /// documented sort key of `flows.parquet`.
    pub first_packet: u64,
    /// Time of the first packet, ns since the Unix epoch.
    pub ts_first: i64,
    /// Time of the last packet, ns since the Unix epoch.
    pub ts_last: i64,
    /// Originator address.
    pub orig_addr: IpAddr,
    /// Originator port (ICMP: type of the first packet).
    pub orig_port: u16,
    /// Responder address.
    pub resp_addr: IpAddr,
    /// Responder port (ICMP: code of the first packet).
    pub resp_port: u16,
    /// Whether the ports are real (false for port-less protocols and unmatched fragments).
    pub has_ports: bool,
    /// IP protocol number.
    pub proto: u8,
    /// Outermost VLAN id (of the innermost packet, when tunnelled).
    pub vlan: Option<u16>,
    /// The tunnels the flow's first packet arrived in; `None` when it came bare.
    pub tunnel: Option<Tunnel>,
    /// What the originator sent.
    pub orig: DirCounters,
    /// What the responder sent.
    pub resp: DirCounters,
    /// Zeek's `conn_state`.
    pub conn_state: ConnState,
    /// Zeek's `history`.
    pub history: History,
    /// Why the record was emitted.
    pub end_reason: EndReason,
    /// Packets or a NetFlow export.
    pub source: FlowSource,
}

impl FlowSource {
    /// Index of the record within its export datagram (NetFlow, IPFIX) or of its first
    /// sample within its datagram (sFlow); 0 for flows metered from packets or read from
    /// logs (their `first_packet` alone is unique). The flows table's `record` column.
    pub fn record_index(&self) -> u32 {
        match self {
            FlowSource::Netflow(n) => n.record_index,
            FlowSource::Sflow(s) => s.record_index,
            FlowSource::Packets | FlowSource::Log(_) => 0,
        }
    }
}

impl FlowRecord {
    /// The order detection reads flows in, first key: by start time, then by the flows
    /// table's sort key (`first_packet`, `record`), which no two flows of one run share.
    /// [`FlowRecord::detection_cmp`] breaks the ties flows of different runs (detected
    /// together, as on Spark) can have.
    pub fn detection_order(&self) -> (i64, u64, u32) {
        (self.ts_first, self.first_packet, self.source.record_index())
    }

    /// The order detection reads flows in: [`FlowRecord::detection_order`], then the
    /// flow's addresses, ports and protocol. Within one run it is total, so a detection
    /// does not depend on how the flows arrived.
    pub fn detection_cmp(&self, other: &FlowRecord) -> std::cmp::Ordering {
        let key = |f: &FlowRecord| (f.orig_addr, f.orig_port, f.resp_addr, f.resp_port, f.proto);
        self.detection_order()
            .cmp(&other.detection_order())
            .then_with(|| key(self).cmp(&key(other)))
    }

    /// The flow's Community ID v1.
    pub fn community_id(&self) -> crate::CommunityId {
        crate::community_id(
            self.orig_addr,
            self.orig_port,
            self.resp_addr,
            self.resp_port,
            self.proto,
            self.has_ports,
        )
    }
}

/// Counters a table keeps about itself, for the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Flows created.
    pub flows_created: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// IP fragments seen.
    pub fragments: u64,
    /// Non-first fragments whose first fragment was never seen (counted as port-less).
    pub fragments_unmatched: u64,
    /// First fragments dropped from the fragment table because it was full.
    pub fragments_evicted: u64,
    /// Largest number of live flows at once.
    pub peak_flows: u64,
}

impl FlowStats {
    /// Adds another table's counters (peak flows add up: shards are concurrent).
    pub fn merge(&mut self, other: &FlowStats) {
        self.flows_created += other.flows_created;
        self.evicted += other.evicted;
        self.fragments += other.fragments;
        self.fragments_unmatched += other.fragments_unmatched;
        self.fragments_evicted += other.fragments_evicted;
        self.peak_flows += other.peak_flows;
    }
}

#[derive(Clone, Debug)]
struct FlowState {
    first_packet: u64,
    ts_first: i64,
    ts_last: i64,
    /// Whether the originator is the key's lower endpoint.
    orig_is_lo: bool,
    orig_port: u16,
    resp_port: u16,
    has_ports: bool,
    dirs: [DirCounters; 2],
    tcp: [Endpoint; 2],
    /// End of the highest sequence number carrying payload, per direction, for 'T'.
    seq_end: [Option<u32>; 2],
    orig_sent_syn: bool,
    history: History,
    /// Boxed: most flows come bare, and an inline `Tunnel` would grow every entry by a
    /// fifth.
    tunnel: Option<Box<Tunnel>>,
}

impl Touch for FlowState {
    fn touch(&self) -> u64 {
        let [o, r] = self.dirs;
        self.first_packet
            ^ o.packets
            ^ r.ip_bytes
            ^ u64::from(self.history.len())
            ^ u64::from(self.has_ports)
    }
}

impl FlowState {
    fn tcp_done(&self) -> bool {
        let [o, r] = self.tcp;
        o == Endpoint::Reset
            || r == Endpoint::Reset
            || (o == Endpoint::Closed && r == Endpoint::Closed)
    }
}

/// How many packets [`FlowTable::observe_all`] looks up ahead of updating them. On the
/// e2e capture eight left misses exposed (CPU 3.49 s against 3.23 s for sixteen);
/// thirty-two gained nothing more.
const LOOKAHEAD: usize = 16;

/// A decoded packet with its capture time and position in the input, as
/// [`FlowTable::observe_all`] takes it.
#[derive(Clone, Debug)]
pub struct TimedPacket {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: i64,
    /// Global ordinal of the packet in the input.
    pub idx: u64,
    /// The decoded packet.
    pub packet: PacketSummary,
}

/// A packet's flow key as [`FlowTable::key_of`] works it out.
#[derive(Clone, Copy)]
struct PacketKey {
    key: FlowKey,
    hash: u64,
    /// Whether the packet's source is the key's lower endpoint.
    src_is_lo: bool,
    /// The packet's directed ports, if it has any.
    ports: Option<(u16, u16)>,
}

/// A bidirectional flow table with Zeek's direction model, idle/active timeouts, and a
/// cap with least-recently-active eviction.
///
/// Feed packets in capture order with [`FlowTable::observe`] (or, faster,
/// [`FlowTable::observe_all`]); call [`FlowTable::expire`] now and then with the capture
/// clock, and [`FlowTable::flush`] at the end. Flows finished while observing or
/// expiring are appended to the caller's `Vec`; `flush` yields the rest.
pub struct FlowTable {
    config: FlowConfig,
    flows: FlowStore<FlowState>,
    fragments: Fragments,
    stats: FlowStats,
}

impl FlowTable {
    /// An empty table.
    pub fn new(config: FlowConfig) -> FlowTable {
        // Start large enough that small captures do not grow the index on the way up;
        // big ones grow it a few times, never beyond the cap. (A sweep that leaves few
        // flows gives the room up: `FlowStore::reindex`.)
        FlowTable::starting_at(config, 1 << 16)
    }

    /// An empty table with room for `capacity` flows before it first grows: small, for
    /// the many tables of which most stay small (one per sFlow data source).
    pub fn starting_at(mut config: FlowConfig, capacity: usize) -> FlowTable {
        config.max_flows = config.max_flows.clamp(1, MAX_ENTRIES);
        FlowTable {
            config,
            flows: FlowStore::with_capacity(config.max_flows.min(capacity.max(1))),
            fragments: Fragments::default(),
            stats: FlowStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    /// Number of live flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is live.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Accounts one packet captured at `ts_ns`; `packet_idx` is its global ordinal.
    pub fn observe(
        &mut self,
        ts_ns: i64,
        packet_idx: u64,
        p: &PacketSummary,
        out: &mut Vec<FlowRecord>,
    ) {
        let at = self.key_of(ts_ns, p);
        self.apply(ts_ns, packet_idx, p, at, out);
    }

    /// Accounts packets in order, exactly as [`FlowTable::observe`] on each would, but
    /// faster with many live flows: the flows of 16 packets are brought into
    /// the cache together (see `FlowStore::warm`) before any is looked up.
    pub fn observe_all(&mut self, packets: &[TimedPacket], out: &mut Vec<FlowRecord>) {
        let mut keys = [None; LOOKAHEAD];
        let mut hashes = [0; LOOKAHEAD];
        for group in packets.chunks(LOOKAHEAD) {
            for ((slot, hash), tp) in keys.iter_mut().zip(&mut hashes).zip(group) {
                let key = self.key_of(tp.ts_ns, &tp.packet);
                *hash = key.hash;
                *slot = Some(key);
            }
            self.flows.warm(&hashes[..group.len()]);
            for (slot, tp) in keys.iter_mut().zip(group) {
                if let Some(key) = slot.take() {
                    self.apply(tp.ts_ns, tp.idx, &tp.packet, key, out);
                }
            }
        }
    }

    /// The packet's flow key, hashed, and its directed ports.
    fn key_of(&mut self, ts_ns: i64, p: &PacketSummary) -> PacketKey {
        let (sport, dport, has_ports) = self.directed_ports(ts_ns, p);
        let (key_sport, key_dport) = if has_ports && is_icmp(p.proto) {
            icmp_key_ports(p.proto, sport, dport)
        } else {
            (sport, dport)
        };
        let ends = Endpoints {
            src: p.src,
            src_port: key_sport,
            dst: p.dst,
            dst_port: key_dport,
        };
        let (key, src_is_lo) = FlowKey::new(ends, p.proto, p.vlan, tunnel_chain(p));
        let hash = self.flows.hash(&key);
        PacketKey {
            key,
            hash,
            src_is_lo,
            ports: has_ports.then_some((sport, dport)),
        }
    }

    /// Accounts the packet to its flow, starting a new one when there is none or the
    /// live one has ended.
    fn apply(
        &mut self,
        ts_ns: i64,
        packet_idx: u64,
        p: &PacketSummary,
        at: PacketKey,
        out: &mut Vec<FlowRecord>,
    ) {
        let fresh = || new_state(ts_ns, packet_idx, p, at.src_is_lo, at.ports);
        let pos = match self.flows.find(at.hash, &at.key) {
            Some(pos) => {
                let (key, state) = self.flows.entry_mut(pos);
                if let Some(reason) = ends_before(&self.config, state, key, ts_ns, p) {
                    out.push(finish(key, state, reason));
                    *state = fresh();
                    self.stats.flows_created += 1;
                }
                pos
            }
            None => {
                if self.flows.len() >= self.config.max_flows {
                    self.evict(out);
                }
                self.stats.flows_created += 1;
                self.flows.insert(at.hash, at.key, fresh())
            }
        };
        let (_, state) = self.flows.entry_mut(pos);
        update(state, ts_ns, p, at.src_is_lo == state.orig_is_lo);
        self.stats.peak_flows = self.stats.peak_flows.max(self.flows.len() as u64);
    }

    /// Ends every flow whose timeout has passed at capture time `now_ns`, and forgets
    /// stale first fragments. Calling it is optional for correctness (timeouts are also
    /// checked when a flow's next packet arrives) but bounds memory.
    ///
    /// Returns the earliest start of the flows still live (`i64::MAX` when there are
    /// none): with the time of the packets still to come, a bound on the start of every
    /// flow the table will still report (the pass reads every flow anyway).
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<FlowRecord>) -> i64 {
        let config = self.config;
        let mut earliest_live = i64::MAX;
        self.flows.retain(
            |key, state| match idle_reason(&config, key, state, now_ns) {
                Some(reason) => {
                    out.push(finish(key, state, reason));
                    false
                }
                None => {
                    earliest_live = earliest_live.min(state.ts_first);
                    true
                }
            },
        );
        let horizon = now_ns.saturating_sub(config.fragment_timeout_ns);
        self.fragments.forget_before(horizon);
        earliest_live
    }

    /// Ends every live flow (end of input). The records come one at a time in
    /// first-packet order, so a caller can encode them without holding them all.
    pub fn flush(&mut self) -> impl Iterator<Item = FlowRecord> {
        let entries = self.flows.take_all();
        let mut order: Vec<(u64, usize)> = entries
            .iter()
            .enumerate()
            .map(|(pos, (_, state))| (state.first_packet, pos))
            .collect();
        order.sort_unstable();
        self.fragments.clear();
        order.into_iter().map(move |(_, pos)| {
            let (key, state) = &entries[pos];
            finish(key, state, EndReason::EndOfInput)
        })
    }

    /// Ports of a packet as seen from its sender, resolving later IP fragments through
    /// their first fragment.
    fn directed_ports(&mut self, ts_ns: i64, p: &PacketSummary) -> (u16, u16, bool) {
        let (mut sport, mut dport, mut has_ports) = (p.src_port, p.dst_port, p.has_ports);
        if let Some(frag) = p.fragment {
            self.stats.fragments += 1;
            let fk = FragKey {
                src: p.src,
                dst: p.dst,
                proto: p.proto,
                id: frag.id,
                tunnel: tunnel_chain(p),
            };
            if frag.offset == 0 {
                if p.has_ports {
                    let c = &self.config;
                    let (max, timeout) = (c.max_fragments.max(1), c.fragment_timeout_ns);
                    let forgotten =
                        self.fragments
                            .remember(fk, (sport, dport), ts_ns, max, timeout);
                    self.stats.fragments_evicted += forgotten as u64;
                }
            } else if let Some((s, d)) = self.fragments.get(&fk) {
                (sport, dport, has_ports) = (s, d, true);
                if !frag.more {
                    self.fragments.remove(&fk);
                }
            } else {
                self.stats.fragments_unmatched += 1;
                (sport, dport, has_ports) = (0, 0, false);
            }
        }
        if !has_ports {
            return (0, 0, false);
        }
        (sport, dport, true)
    }

    /// Evicts the least recently active eighth of the table, so eviction costs O(1)
    /// amortised per new flow and the choice depends only on the table's contents.
    fn evict(&mut self, out: &mut Vec<FlowRecord>) {
        let mut ages: Vec<(i64, u64)> = self
            .flows
            .iter()
            .map(|(_, s)| (s.ts_last, s.first_packet))
            .collect();
        let n_evict = (ages.len() / 8).max(1);
        let (_, &mut threshold, _) = ages.select_nth_unstable(n_evict - 1);
        let start = out.len();
        self.flows.retain(|key, state| {
            if (state.ts_last, state.first_packet) <= threshold {
                out.push(finish(key, state, EndReason::Evicted));
                false
            } else {
                true
            }
        });
        out[start..].sort_unstable_by_key(|r| r.first_packet);
        self.stats.evicted += (out.len() - start) as u64;
    }
}

/// Whether the packet at `ts_ns` must start a new flow instead of joining `state`.
fn ends_before(
    config: &FlowConfig,
    state: &FlowState,
    key: &FlowKey,
    ts_ns: i64,
    p: &PacketSummary,
) -> Option<EndReason> {
    if let Some(reason) = idle_reason(config, key, state, ts_ns) {
        return Some(reason);
    }
    if ts_ns.saturating_sub(state.ts_first) > config.active_ns {
        return Some(EndReason::Active);
    }
    let new_syn = p.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
    if key.proto() == TCP && state.tcp_done() && new_syn {
        return Some(EndReason::Closed);
    }
    None
}

fn idle_reason(
    config: &FlowConfig,
    key: &FlowKey,
    state: &FlowState,
    now_ns: i64,
) -> Option<EndReason> {
    let idle = now_ns.saturating_sub(state.ts_last);
    if key.proto() == TCP && state.tcp_done() && idle > config.tcp_close_ns {
        return Some(EndReason::Closed);
    }
    let timeout = match key.proto() {
        TCP => config.tcp_idle_ns,
        UDP => config.udp_idle_ns,
        _ => config.other_idle_ns,
    };
    (idle > timeout).then_some(EndReason::Idle)
}

fn new_state(
    ts_ns: i64,
    packet_idx: u64,
    p: &PacketSummary,
    src_is_lo: bool,
    ports: Option<(u16, u16)>,
) -> FlowState {
    // Zeek's rule: a first-seen SYN-ACK comes from the responder, so flip.
    let syn_ack = tcp_flags::SYN | tcp_flags::ACK;
    let flip = p.proto == TCP && p.tcp_flags & (syn_ack | tcp_flags::RST) == syn_ack;
    let mut history = History::default();
    if flip {
        history.add(b'^', true);
    }
    let (sport, dport) = ports.unwrap_or((0, 0));
    let (orig_port, resp_port) = if flip { (dport, sport) } else { (sport, dport) };
    FlowState {
        first_packet: packet_idx,
        ts_first: ts_ns,
        ts_last: ts_ns,
        orig_is_lo: src_is_lo != flip,
        orig_port,
        resp_port,
        has_ports: ports.is_some(),
        dirs: [DirCounters::default(); 2],
        tcp: [Endpoint::Inactive; 2],
        seq_end: [None; 2],
        orig_sent_syn: false,
        history,
        tunnel: p.tunnel.map(Box::new),
    }
}

/// The packet's tunnel chain, 0 when it came bare.
fn tunnel_chain(p: &PacketSummary) -> u32 {
    p.tunnel.map_or(0, |t| t.chain)
}

fn update(state: &mut FlowState, ts_ns: i64, p: &PacketSummary, from_orig: bool) {
    let d = usize::from(!from_orig);
    state.ts_last = state.ts_last.max(ts_ns);
    let dir = &mut state.dirs[d];
    dir.packets += 1;
    dir.ip_bytes += u64::from(p.ip_len);
    dir.payload_bytes += u64::from(p.payload_len);
    let has_payload = p.payload_len > 0;
    if p.proto != TCP || p.fragment.is_some_and(|f| f.offset > 0) {
        if has_payload {
            state.history.add(b'D', from_orig);
        }
        return;
    }
    dir.tcp_flags |= p.tcp_flags;
    if from_orig && p.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN {
        state.orig_sent_syn = true;
    }
    let zero_window = p.tcp_window == 0;
    for letter in tcp_history_letters(p.tcp_flags, has_payload, zero_window) {
        if letter != 0 {
            state.history.add(letter, from_orig);
        }
    }
    if has_payload {
        let end = p.tcp_seq.wrapping_add(p.payload_len);
        match state.seq_end[d] {
            // Serial-number arithmetic: the segment ends at or before data already seen.
            Some(seen) if (end.wrapping_sub(seen) as i32) <= 0 => {
                state.history.add(b'T', from_orig)
            }
            _ => state.seq_end[d] = Some(end),
        }
    }
    let [o, r] = &mut state.tcp;
    if from_orig {
        tcp_transition(o, r, p.tcp_flags);
    } else {
        tcp_transition(r, o, p.tcp_flags);
    }
}

fn finish(key: &FlowKey, state: &FlowState, end_reason: EndReason) -> FlowRecord {
    let (orig_addr, resp_addr) = if state.orig_is_lo {
        (key.lo_addr(), key.hi_addr())
    } else {
        (key.hi_addr(), key.lo_addr())
    };
    let [orig, resp] = state.dirs;
    let conn_state = match key.proto() {
        TCP => ConnState::from_tcp(
            state.tcp[0],
            state.tcp[1],
            state.orig_sent_syn,
            orig.payload_bytes == 0 && resp.payload_bytes == 0,
        ),
        UDP => ConnState::from_datagram(orig.packets, resp.packets),
        _ => ConnState::OTH,
    };
    FlowRecord {
        first_packet: state.first_packet,
        ts_first: state.ts_first,
        ts_last: state.ts_last,
        orig_addr,
        orig_port: state.orig_port,
        resp_addr,
        resp_port: state.resp_port,
        has_ports: state.has_ports,
        proto: key.proto(),
        vlan: key.vlan(),
        tunnel: state.tunnel.as_deref().copied(),
        orig,
        resp,
        conn_state,
        history: state.history,
        end_reason,
        source: FlowSource::Packets,
    }
}
