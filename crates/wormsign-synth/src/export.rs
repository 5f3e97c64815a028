//! The generated traffic as a router would export it: NetFlow v5, NetFlow v9 or IPFIX
//! datagrams (UDP from [`EXPORTER`] to [`COLLECTOR`], over Ethernet/IPv4 with valid
//! lengths and checksums) in a second pcap.
//!
//! Metering is [`wormsign_flow::FlowTable`] run over the generated frames with a
//! router's timeouts ([`meter_config`]: idle 15 s, active 60 s), expired once per
//! second of capture time. Every finished bidirectional flow becomes one
//! unidirectional record per direction that carried packets (IPv4 only: the
//! generator makes no IPv6). A record's export time is the capture time at which the
//! table let its flow go; records are packed into datagrams in export order (at most
//! [`MAX_RECORDS`] each, a datagram leaves when full or when its oldest record has
//! waited one second), and a datagram's capture timestamp is the export time of its
//! newest record.
//!
//! Per-direction start and end times are the flow's (the table keeps them per flow).

use std::io::{self, Write};
use std::net::IpAddr;

use wormsign_decode::{decode, Decoded};
use wormsign_flow::{FlowConfig, FlowRecord, FlowTable};

use crate::wire::{begin_frame, PcapWriter};

/// The exporting router.
pub const EXPORTER: [u8; 4] = [10, 164, 1, 254];
/// The exporter's UDP source port.
pub const EXPORTER_PORT: u16 = 50_000;
/// The collector.
pub const COLLECTOR: [u8; 4] = [10, 164, 1, 250];
/// Records per export datagram at most.
pub const MAX_RECORDS: usize = 30;
/// v9 source id / IPFIX observation domain.
pub const DOMAIN: u32 = 1;
/// How long a record waits in the export buffer at most.
const FLUSH_US: u64 = 1_000_000;
/// v9 / IPFIX: the template is sent in the first datagram and then every this many.
const TEMPLATE_EVERY: u64 = 20;
/// The data template id.
const TEMPLATE_ID: u16 = 256;

/// Which export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetflowVersion {
    /// NetFlow v5 (fixed 48-byte records).
    V5,
    /// NetFlow v9 (RFC 3954).
    V9,
    /// IPFIX (RFC 7011).
    Ipfix,
}

impl NetflowVersion {
    /// `v5`, `v9` or `ipfix`.
    pub fn name(self) -> &'static str {
        match self {
            NetflowVersion::V5 => "v5",
            NetflowVersion::V9 => "v9",
            NetflowVersion::Ipfix => "ipfix",
        }
    }

    /// The collector's UDP port: 2055 for NetFlow, 4739 for IPFIX.
    pub fn collector_port(self) -> u16 {
        match self {
            NetflowVersion::Ipfix => 4739,
            _ => 2055,
        }
    }
}

impl std::str::FromStr for NetflowVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "v5" | "5" => Ok(NetflowVersion::V5),
            "v9" | "9" => Ok(NetflowVersion::V9),
            "ipfix" | "v10" | "10" => Ok(NetflowVersion::Ipfix),
            _ => Err(format!("unknown NetFlow version {s:?} (v5, v9 or ipfix)")),
        }
    }
}

/// One unidirectional flow record to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportRecord {
    /// When the meter let the flow go (µs since the epoch).
    pub export_us: u64,
    /// First packet of the flow (µs since the epoch).
    pub first_us: u64,
    /// Last packet of the flow (µs since the epoch).
    pub last_us: u64,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Source port (0 for ICMP).
    pub src_port: u16,
    /// Destination port (ICMP: type << 8 | code).
    pub dst_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// Cumulative TCP flags of this direction.
    pub tcp_flags: u8,
    /// Packets of this direction.
    pub packets: u64,
    /// IP bytes (total length) of this direction.
    pub bytes: u64,
}

/// The flow table's configuration used for metering: idle 15 s for every protocol,
/// active 60 s, like a router's NetFlow cache.
pub fn meter_config() -> FlowConfig {
    const S: i64 = 1_000_000_000;
    FlowConfig {
        tcp_idle_ns: 15 * S,
        udp_idle_ns: 15 * S,
        other_idle_ns: 15 * S,
        active_ns: 60 * S,
        ..FlowConfig::default()
    }
}

/// Meters frames (Ethernet, in capture order) into [`ExportRecord`]s.
pub struct Meter {
    table: FlowTable,
    done: Vec<FlowRecord>,
    records: Vec<ExportRecord>,
    packets: u64,
    next_tick_us: u64,
    last_us: u64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

impl Meter {
    /// A meter with [`meter_config`].
    pub fn new() -> Meter {
        Meter {
            table: FlowTable::new(meter_config()),
            done: Vec::new(),
            records: Vec::new(),
            packets: 0,
            next_tick_us: 0,
            last_us: 0,
        }
    }

    /// Accounts one frame captured at `ts_us`.
    pub fn observe(&mut self, ts_us: u64, frame: &[u8]) {
        while self.next_tick_us != 0 && ts_us >= self.next_tick_us {
            let tick = self.next_tick_us;
            self.table.expire(ns(tick), &mut self.done);
            self.drain(tick);
            self.next_tick_us += 1_000_000;
        }
        if self.next_tick_us == 0 {
            self.next_tick_us = (ts_us / 1_000_000 + 1) * 1_000_000;
        }
        self.last_us = self.last_us.max(ts_us);
        if let Decoded::Ip(p) = decode(1, frame) {
            self.table
                .observe(ns(ts_us), self.packets, &p, &mut self.done);
            self.drain(ts_us);
        }
        self.packets += 1;
    }

    fn drain(&mut self, export_us: u64) {
        for f in self.done.drain(..) {
            split(&f, export_us, &mut self.records);
        }
    }

    /// Ends every live flow at the last packet's time and returns the records in export
    /// order.
    pub fn finish(mut self) -> Vec<ExportRecord> {
        self.done.extend(self.table.flush());
        let end = self.last_us;
        self.drain(end);
        // Export time first (the field order of `ExportRecord`), then the rest of the
        // record: the table's hash order is not reproducible.
        self.records.sort_unstable();
        self.records
    }
}

fn ns(us: u64) -> i64 {
    us as i64 * 1000
}

fn v4(a: IpAddr) -> Option<[u8; 4]> {
    match a {
        IpAddr::V4(a) => Some(a.octets()),
        IpAddr::V6(_) => None,
    }
}

/// One record per direction of `f` that carried packets.
fn split(f: &FlowRecord, export_us: u64, out: &mut Vec<ExportRecord>) {
    let (Some(a), Some(b)) = (v4(f.orig_addr), v4(f.resp_addr)) else {
        return;
    };
    let first_us = (f.ts_first / 1000) as u64;
    let last_us = (f.ts_last / 1000) as u64;
    let icmp = f.proto == 1;
    for (src, dst, sp, dp, d) in [
        (a, b, f.orig_port, f.resp_port, &f.orig),
        (b, a, f.resp_port, f.orig_port, &f.resp),
    ] {
        if d.packets == 0 {
            continue;
        }
        let (src_port, dst_port) = match (icmp, f.has_ports) {
            (true, _) => (0, sp << 8 | (dp & 0xff)),
            (false, true) => (sp, dp),
            (false, false) => (0, 0),
        };
        out.push(ExportRecord {
            export_us: export_us.max(last_us),
            first_us,
            last_us,
            src,
            dst,
            src_port,
            dst_port,
            proto: f.proto,
            tcp_flags: if f.proto == 6 { d.tcp_flags } else { 0 },
            packets: d.packets,
            bytes: d.ip_bytes,
        });
    }
}

/// What [`write_export`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Export datagrams (pcap records).
    pub datagrams: u64,
    /// Flow records.
    pub records: u64,
    /// Packets counted in the records.
    pub packets: u64,
    /// IP bytes counted in the records.
    pub bytes: u64,
    /// Bytes of the pcap file.
    pub file_bytes: u64,
}

/// Writes `records` (in export order) as export datagrams of `version` into a pcap.
pub fn write_export<W: Write>(
    version: NetflowVersion,
    records: &[ExportRecord],
    w: W,
) -> io::Result<ExportSummary> {
    let mut out = PcapWriter::new(io::BufWriter::with_capacity(1 << 20, w))?;
    let mut enc = Encoder {
        version,
        // The router booted ten minutes before the first flow started, on a ms boundary.
        boot_ms: records
            .iter()
            .map(|r| r.first_us / 1000)
            .min()
            .unwrap_or(600_000)
            .saturating_sub(600_000),
        datagrams: 0,
        flows: 0,
        ip_id: 0,
        frame: Vec::with_capacity(2048),
    };
    let mut sum = ExportSummary::default();
    let mut start = 0;
    while start < records.len() {
        let oldest = records[start].export_us;
        let mut end = start + 1;
        while end < records.len()
            && end - start < MAX_RECORDS
            && records[end].export_us < oldest + FLUSH_US
        {
            end += 1;
        }
        let batch = &records[start..end];
        let ts = batch.iter().map(|r| r.export_us).max().unwrap_or(oldest);
        enc.datagram(ts, batch);
        out.write(ts, &enc.frame)?;
        sum.records += batch.len() as u64;
        sum.packets += batch.iter().map(|r| r.packets).sum::<u64>();
        sum.bytes += batch.iter().map(|r| r.bytes).sum::<u64>();
        start = end;
    }
    sum.datagrams = out.packets;
    sum.file_bytes = out.bytes;
    out.finish()?.flush()?;
    Ok(sum)
}

struct Encoder {
    version: NetflowVersion,
    boot_ms: u64,
    datagrams: u64,
    flows: u64,
    ip_id: u16,
    frame: Vec<u8>,
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

/// v9 data template: (field type, length).
const V9_FIELDS: [(u16, u16); 10] = [
    (8, 4),  // IPV4_SRC_ADDR
    (12, 4), // IPV4_DST_ADDR
    (7, 2),  // L4_SRC_PORT
    (11, 2), // L4_DST_PORT
    (4, 1),  // PROTOCOL
    (6, 1),  // TCP_FLAGS
    (2, 4),  // IN_PKTS
    (1, 4),  // IN_BYTES
    (22, 4), // FIRST_SWITCHED
    (21, 4), // LAST_SWITCHED
];

/// IPFIX data template: (information element, length).
const IPFIX_FIELDS: [(u16, u16); 10] = [
    (8, 4),   // sourceIPv4Address
    (12, 4),  // destinationIPv4Address
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (4, 1),   // protocolIdentifier
    (6, 2),   // tcpControlBits (RFC 7125)
    (2, 8),   // packetDeltaCount
    (1, 8),   // octetDeltaCount
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
];

fn template_set(b: &mut Vec<u8>, set_id: u16, fields: &[(u16, u16)]) {
    put16(b, set_id);
    put16(b, (8 + 4 * fields.len()) as u16);
    put16(b, TEMPLATE_ID);
    put16(b, fields.len() as u16);
    for &(t, l) in fields {
        put16(b, t);
        put16(b, l);
    }
}

/// Appends a data set of `TEMPLATE_ID` holding what `records` writes, padded to a
/// multiple of 4 bytes when `pad` (v9 recommends it; IPFIX needs none), with its length
/// filled in.
fn data_set(b: &mut Vec<u8>, pad: bool, records: impl FnOnce(&mut Vec<u8>)) {
    let at = b.len();
    put16(b, TEMPLATE_ID);
    put16(b, 0);
    records(b);
    while pad && (b.len() - at) % 4 != 0 {
        b.push(0);
    }
    let len = (b.len() - at) as u16;
    b[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// The fields every template starts with: addresses, ports and protocol.
fn put_endpoints(b: &mut Vec<u8>, r: &ExportRecord) {
    b.extend_from_slice(&r.src);
    b.extend_from_slice(&r.dst);
    put16(b, r.src_port);
    put16(b, r.dst_port);
    b.push(r.proto);
}

impl Encoder {
    /// Uptime in ms at `us` (u32 wraps after 49.7 days, as on a router).
    fn uptime(&self, us: u64) -> u32 {
        (us / 1000).saturating_sub(self.boot_ms) as u32
    }

    /// Builds the export datagram of `batch` (sent at `ts_us`) into `self.frame`.
    fn datagram(&mut self, ts_us: u64, batch: &[ExportRecord]) {
        let mut p = Vec::with_capacity(1500);
        let secs = (ts_us / 1_000_000) as u32;
        match self.version {
            NetflowVersion::V5 => {
                // Header time on a ms boundary so that First/Last decode exactly.
                let ms = ts_us / 1000;
                put16(&mut p, 5);
                put16(&mut p, batch.len() as u16);
                put32(&mut p, self.uptime(ms * 1000));
                put32(&mut p, (ms / 1000) as u32);
                put32(&mut p, (ms % 1000) as u32 * 1_000_000);
                put32(&mut p, self.flows as u32);
                p.extend_from_slice(&[0, 0]); // engine type, id
                put16(&mut p, 0); // not sampled
                for r in batch {
                    p.extend_from_slice(&r.src);
                    p.extend_from_slice(&r.dst);
                    p.extend_from_slice(&[0; 4]); // next hop
                    put16(&mut p, 0); // input ifIndex
                    put16(&mut p, 0); // output ifIndex
                    put32(&mut p, r.packets.min(u64::from(u32::MAX)) as u32);
                    put32(&mut p, r.bytes.min(u64::from(u32::MAX)) as u32);
                    put32(&mut p, self.uptime(r.first_us));
                    put32(&mut p, self.uptime(r.last_us));
                    put16(&mut p, r.src_port);
                    put16(&mut p, r.dst_port);
                    p.push(0);
                    p.push(r.tcp_flags);
                    p.push(r.proto);
                    p.push(0); // ToS
                    put16(&mut p, 0); // src AS
                    put16(&mut p, 0); // dst AS
                    p.extend_from_slice(&[0, 0, 0, 0]); // masks, pad
                }
            }
            NetflowVersion::V9 => {
                let template = self.datagrams % TEMPLATE_EVERY == 0;
                put16(&mut p, 9);
                put16(&mut p, (batch.len() + usize::from(template)) as u16);
                // sysUptime at the header's (whole) unix seconds.
                put32(&mut p, self.uptime(u64::from(secs) * 1_000_000));
                put32(&mut p, secs);
                put32(&mut p, self.datagrams as u32);
                put32(&mut p, DOMAIN);
                if template {
                    template_set(&mut p, 0, &V9_FIELDS);
                }
                data_set(&mut p, true, |p| {
                    for r in batch {
                        put_endpoints(p, r);
                        p.push(r.tcp_flags);
                        put32(p, r.packets.min(u64::from(u32::MAX)) as u32);
                        put32(p, r.bytes.min(u64::from(u32::MAX)) as u32);
                        put32(p, self.uptime(r.first_us));
                        put32(p, self.uptime(r.last_us));
                    }
                });
            }
            NetflowVersion::Ipfix => {
                let template = self.datagrams % TEMPLATE_EVERY == 0;
                put16(&mut p, 10);
                put16(&mut p, 0); // length, below
                put32(&mut p, secs);
                put32(&mut p, self.flows as u32);
                put32(&mut p, DOMAIN);
                if template {
                    template_set(&mut p, 2, &IPFIX_FIELDS);
                }
                data_set(&mut p, false, |p| {
                    for r in batch {
                        put_endpoints(p, r);
                        put16(p, u16::from(r.tcp_flags));
                        put64(p, r.packets);
                        put64(p, r.bytes);
                        put64(p, r.first_us / 1000);
                        put64(p, r.last_us / 1000);
                    }
                });
                let total = p.len() as u16;
                p[2..4].copy_from_slice(&total.to_be_bytes());
            }
        }
        self.datagrams += 1;
        self.flows += batch.len() as u64;
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(
            &mut self.frame,
            &[0x02, 0x00, 0x0a, 0xa4, 0x01, 0xfa],
            &[0x02, 0x00, 0x0a, 0xa4, 0x01, 0xfe],
            None,
            0x0800,
        );
        f.ipv4(EXPORTER, COLLECTOR, 17, 8 + p.len(), self.ip_id, 64);
        put16(f.buf, EXPORTER_PORT);
        put16(f.buf, self.version.collector_port());
        put16(f.buf, (8 + p.len()) as u16);
        put16(f.buf, 0); // checksum, filled by finish
        f.buf.extend_from_slice(&p);
        f.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(export_us: u64, n: u8) -> ExportRecord {
        ExportRecord {
            export_us,
            first_us: export_us - 20_000_000,
            last_us: export_us - 15_000_000,
            src: [10, 164, 1, n],
            dst: [10, 164, 2, n],
            src_port: 40_000 + u16::from(n),
            dst_port: 445,
            proto: 6,
            tcp_flags: 0x02,
            packets: 3,
            bytes: 180,
        }
    }

    fn datagrams(pcap: &[u8]) -> Vec<(u64, &[u8])> {
        let mut out = Vec::new();
        let mut at = 24;
        while at < pcap.len() {
            let h = &pcap[at..at + 16];
            let le = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
            let ts = u64::from(le(0)) * 1_000_000 + u64::from(le(4));
            let len = le(8) as usize;
            out.push((ts, &pcap[at + 16 + 42..at + 16 + len]));
            at += 16 + len;
        }
        out
    }

    #[test]
    fn v5_batches_by_count_and_age_with_sequence_and_times() {
        let t0 = 1_700_000_000_000_000;
        let mut recs: Vec<ExportRecord> = (0..35).map(|i| rec(t0 + i * 1000, i as u8)).collect();
        recs.push(rec(t0 + 5_000_000, 99));
        let mut pcap = Vec::new();
        let s = write_export(NetflowVersion::V5, &recs, &mut pcap).unwrap();
        assert_eq!((s.datagrams, s.records, s.packets), (3, 36, 108));
        let d = datagrams(&pcap);
        let be16 = |p: &[u8], i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
        let be32 = |p: &[u8], i: usize| u32::from_be_bytes(p[i..i + 4].try_into().unwrap());
        assert_eq!(
            d.iter().map(|(_, p)| be16(p, 2)).collect::<Vec<_>>(),
            [30, 5, 1]
        );
        assert_eq!(
            d.iter().map(|(_, p)| be32(p, 16)).collect::<Vec<_>>(),
            [0, 30, 35]
        );
        assert_eq!(d[0].0, t0 + 29_000);
        assert_eq!(d[2].0, t0 + 5_000_000);
        // First switched = uptime - 20 s.
        let p = d[0].1;
        assert_eq!(be32(p, 4) - be32(p, 24 + 24), 20_029);
        assert_eq!(be32(p, 8) as u64, (t0 + 29_000) / 1_000_000);
    }

    #[test]
    fn v9_and_ipfix_sequence_numbers() {
        let t0 = 1_700_000_000_000_000;
        let recs: Vec<ExportRecord> = (0..65).map(|i| rec(t0 + i * 1000, i as u8)).collect();
        for (v, want) in [
            (NetflowVersion::V9, [0u32, 1, 2]),
            (NetflowVersion::Ipfix, [0, 30, 60]),
        ] {
            let mut pcap = Vec::new();
            write_export(v, &recs, &mut pcap).unwrap();
            let d = datagrams(&pcap);
            let seq: Vec<u32> = d
                .iter()
                .map(|(_, p)| {
                    let at = if v == NetflowVersion::V9 { 12 } else { 8 };
                    u32::from_be_bytes(p[at..at + 4].try_into().unwrap())
                })
                .collect();
            assert_eq!(seq, want, "{v:?}");
        }
    }
}
