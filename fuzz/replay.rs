//! The fuzz targets' bodies, one function per target. `fuzz/fuzz_targets/*.rs` hand
//! them libFuzzer's inputs; `tests/fuzz_replay.rs` replays crash reproducers and the
//! committed seeds through exactly the same calls. Each returns what a test can check.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use wormsign_capture::{CaptureReader, Chunk};
use wormsign_decode::{decode as decode_frame, dns as dns_parser, names, Decoded};
use wormsign_detect::{
    parse_zone, render_graph_dot, render_graph_svg, render_report, DetectConfig, Detector,
    PartFindings, Partition,
};
use wormsign_flow::{FlowConfig, FlowRecord, FlowTable};
use wormsign_inspect::{InspectConfig, Inspector, Segment};
use wormsign_logs::{LogRows, Opened};
use wormsign_netflow::ExportDecoder;

/// The decoder's link types (as in crates/wormsign-decode/tests/fuzz.rs), plus 127
/// (radiotap) as an unsupported one.
const LINK_TYPES: [u16; 13] = [0, 1, 9, 12, 14, 101, 108, 113, 228, 229, 239, 276, 127];

/// Container parsing: pcap, pcapng, and gzip/zstd around either (detected by magic).
/// Input: the bytes of a capture file. Returns the records read and whether reading
/// ended in an error.
pub fn capture(data: &[u8]) -> (usize, bool) {
    let Ok(mut reader) = CaptureReader::new(Box::new(Cursor::new(data.to_vec()))) else {
        return (0, true);
    };
    let mut chunk = Chunk::default();
    let mut records = 0;
    loop {
        // A small chunk target so inputs with many records cross chunk boundaries (and
        // the up-front reservation stays small).
        let more = reader.read_chunk(&mut chunk, 4096);
        records += chunk.iter().count();
        match more {
            Ok(true) => {}
            Ok(false) => return (records, false),
            Err(_) => return (records, true),
        }
    }
}

/// Frame decoding, DNS on port 53, then the flow table. Input: link type (u16
/// big-endian) then the frame; a link type outside the list is mapped into it, so no
/// run is wasted on "unknown link type". Returns `None` for inputs shorter than the
/// link type, else whether the frame decoded as IP and the flows it made.
pub fn decode(data: &[u8]) -> Option<(bool, Vec<FlowRecord>)> {
    let (head, frame) = data.split_first_chunk::<2>()?;
    let raw = u16::from_be_bytes(*head);
    let link_type = if LINK_TYPES.contains(&raw) {
        raw
    } else {
        LINK_TYPES[usize::from(raw) % LINK_TYPES.len()]
    };
    let Decoded::Ip(p) = decode_frame(link_type, frame) else {
        return Some((false, Vec::new()));
    };
    // The pipeline slices the captured payload with these fields: they must fit.
    let start = p.payload_offset as usize;
    let payload = frame
        .get(start..start + p.payload_captured as usize)
        .expect("payload_offset + payload_captured within the frame");
    if p.has_ports && (p.src_port == 53 || p.dst_port == 53) {
        let _ = if p.proto == 6 {
            dns_parser::parse_tcp(payload)
        } else {
            dns_parser::parse(payload)
        };
    }
    // Twice (a second packet of the same flow later, past the UDP idle timeout), then
    // end of input: covers creation, update, timeout and flush. A small cap: the
    // default pre-sizes the table for 65 536 flows, which would cost more than the
    // decoding under test.
    let mut table = FlowTable::new(FlowConfig {
        max_flows: 4,
        ..FlowConfig::default()
    });
    let mut out = Vec::new();
    table.observe(1_000_000_000, 0, &p, &mut out);
    table.observe(100_000_000_000, 1, &p, &mut out);
    out.extend(table.flush());
    for r in &out {
        let _ = r.community_id();
    }
    Some((true, out))
}

/// A response to `a.bc` with an A, a CNAME and an MX answer: what [`dns`] parses each
/// input into after it, so that a field the input does not set would show.
const PRIOR_RESPONSE: [u8; 68] = [
    0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0, // header: a response, 3 answers
    1, b'a', 2, b'b', b'c', 0, 0, 1, 0, 1, // question a.bc, A, IN
    0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7, // A 192.0.2.7
    0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12, // CNAME a.bc
    0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 4, 0, 10, 0xc0, 12, // MX 10 a.bc
];

/// DNS message parsing. Input: one message, parsed both as a UDP payload and as a TCP
/// segment (2-byte length prefix). Returns the query names found each way.
pub fn dns(data: &[u8]) -> (Option<String>, Option<String>) {
    let fresh = dns_parser::parse(data);
    // The decode workers parse every message into one they keep: parsing into a
    // message that still holds another must give what a fresh parse gives.
    let mut reused = dns_parser::parse(&PRIOR_RESPONSE).expect("a valid response");
    let into = dns_parser::parse_into(data, &mut reused).map(|()| reused);
    assert_eq!(
        into, fresh,
        "parse_into over an earlier message differs from parse"
    );
    let udp = fresh.ok().and_then(|m| m.qname);
    let tcp = dns_parser::parse_tcp(data).ok().and_then(|m| m.qname);
    // The other UDP naming protocols, DHCP and the NetBIOS name service, on the same
    // bytes (their seeds are in the same corpus).
    let _ = names::parse_dhcp(data);
    let _ = names::parse_nbns(data, std::net::IpAddr::from([192, 0, 2, 1]));
    (udp, tcp)
}

/// Export decoding with state kept across datagrams: NetFlow v5/v9/IPFIX (templates
/// per exporter) and sFlow v5 (samples metered into flows). Input: datagrams, each
/// preceded by a u16 big-endian header whose low 15 bits are its length and whose high
/// bit picks one of two exporters (templates are per exporter, so the two must not mix).
/// A short last datagram is taken as it is. Returns every flow row decoded.
pub fn netflow(data: &[u8]) -> Vec<FlowRecord> {
    let exporters: [SocketAddr; 2] = [
        "192.0.2.1:2055".parse().expect("address"),
        "192.0.2.2:2055".parse().expect("address"),
    ];
    let mut decoder = ExportDecoder::new(FlowConfig::default());
    let mut all = Vec::new();
    let mut rest = data;
    let mut n = 0u64;
    while let Some((head, tail)) = rest.split_first_chunk::<2>() {
        let head = u16::from_be_bytes(*head);
        let len = usize::from(head & 0x7fff).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        let from = exporters[usize::from(head >> 15)];
        // One second apart, so pending data sets age the way they do in a capture.
        let ts_ns = 1_700_000_000_000_000_000 + n as i64 * 1_000_000_000;
        decoder.decode(from, ts_ns, datagram, n, &mut all);
        n += 1;
        rest = tail;
    }
    decoder.finish(&mut all);
    all.iter().for_each(|r| {
        let _ = r.community_id();
    });
    all
}

/// Protocol inspection: SMB, TDS or RDP session bytes through reassembly and the parsers.
/// Input: a protocol selector byte (0 SMB on 445, 1 TDS on 1433, 2 RDP on 3389, the rest
/// mapped into these), then segments, each `[flags][u16 BE length][payload]`. Flags: bit 0
/// sent by the client, bit 1 FIN, bit 2 RST; bits 3-7 as k: 0 in order, 1-15 the segment
/// lands k*64 bytes beyond the next expected byte (a hole), 16-31 it starts (k-16)*16
/// bytes before it (a retransmission overlap). Returns each fact and outcome emitted.
pub fn inspect(data: &[u8]) -> Vec<(&'static str, &'static str)> {
    let Some((&selector, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    let server_port = [445, 1433, 3389][usize::from(selector % 3)];
    let (client, server) = (
        "10.0.0.1".parse().expect("ip"),
        "10.0.0.2".parse().expect("ip"),
    );
    let mut inspector = Inspector::new(InspectConfig {
        max_bytes: 1 << 16,
        ..InspectConfig::default()
    });
    let mut next = [1000u32, 9000u32];
    let (mut events, mut packet) = (Vec::new(), 0u64);
    while let Some((head, tail)) = rest.split_first_chunk::<3>() {
        let flags = head[0];
        let len = usize::from(u16::from_be_bytes([head[1], head[2]])).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        let from_client = flags & 1 != 0;
        let dir = &mut next[usize::from(!from_client)];
        let k = u32::from(flags >> 3);
        let seq = match k {
            0 => *dir,
            1..=15 => dir.wrapping_add(k * 64),
            _ => dir.wrapping_sub((k - 16) * 16),
        };
        if k == 0 || k >= 16 {
            *dir = (*dir).max(seq.wrapping_add(len as u32));
        }
        let (src, dst, src_port, dst_port) = if from_client {
            (client, server, 50_000, server_port)
        } else {
            (server, client, server_port, 50_000)
        };
        let segment = Segment {
            ts_ns: 1_700_000_000_000_000_000 + packet as i64 * 1_000_000,
            packet,
            src,
            src_port,
            dst,
            dst_port,
            seq,
            flags: (flags >> 1) & 1 | ((flags >> 2) & 1) << 2,
            payload,
        };
        inspector.observe(&segment, &mut events);
        packet += 1;
        rest = tail;
    }
    inspector.finish(&mut events);
    let _ = inspector.stats();
    events
        .iter()
        .map(|e| (e.fact.as_str(), e.outcome.as_str()))
        .collect()
}

/// Flow log reading: Zeek TSV and JSON, Suricata eve.json, gzip/zstd around any (told
/// apart by the first line). Input: the bytes of a log file. Returns the format found (or
/// `None`: not a log), the flow and DNS rows read and the lines skipped as malformed.
pub fn logs(data: &[u8]) -> Option<(&'static str, usize, usize, u64)> {
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let Ok(Opened::Log(mut reader)) =
        wormsign_logs::open(Box::new(Cursor::new(data.to_vec())), bytes)
    else {
        return None;
    };
    let (mut rows, mut ordinal) = (LogRows::default(), 0);
    let (mut flows, mut dns) = (0, 0);
    // Few lines at a time, so long inputs cross reads; the rows are dropped as they come.
    while let Ok(true) = reader.read(16, &mut ordinal, &mut rows) {
        flows += rows.flows.drain(..).count();
        dns += rows.dns.drain(..).count();
    }
    flows += rows.flows.len();
    dns += rows.dns.len();
    Some((
        reader.format().as_str(),
        flows,
        dns,
        reader.stats().malformed,
    ))
}

/// The rules the findings target reads its input under (seedgen makes its seeds under
/// the same): the defaults, two zones that split IPv4 in halves (so zone crossings are
/// checked) and a honeypot.
pub fn findings_config() -> DetectConfig {
    let mut config = DetectConfig::default();
    for zone in ["low=0.0.0.0/1", "high=128.0.0.0/1"] {
        let (name, net) = parse_zone(zone).expect("a zone");
        config.zones.entry(name).or_default().push(net);
    }
    config.honeypots.push(IpAddr::from([10, 200, 0, 99]));
    config
}

/// What each of `parts` hashed parts of a detection finds over `flows` under
/// [`findings_config`], as the bytes a Spark task sends the driver.
pub fn part_findings(flows: &[FlowRecord], parts: usize) -> Vec<Vec<u8>> {
    let config = findings_config();
    let partition = Partition::hashed(parts);
    (0..parts)
        .map(|index| {
            let mut part = Detector::one_part(&config, &[], &[], &partition, index);
            flows.iter().for_each(|f| part.push(f));
            part.finish_part().to_bytes()
        })
        .collect()
}

/// Findings framed as the findings target reads them: each as `[u32 LE length][bytes]`.
pub fn framed(findings: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in findings {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Detection parts' findings as other processes send them (`PartFindings::to_bytes`),
/// read under [`findings_config`], merged and rendered as `merge_parts` and
/// `write_detection` do. Input: one or more findings, [`framed`]. Returns the merged
/// detection's alerts and edges, or `None` when the input is refused.
pub fn findings(data: &[u8]) -> Option<(usize, usize)> {
    let config = findings_config();
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let bytes = tail.get(..u32::from_le_bytes(*length) as usize)?;
        parts.push(PartFindings::from_bytes(bytes, &config).ok()?);
        rest = &tail[bytes.len()..];
    }
    if parts.is_empty() || !rest.is_empty() {
        return None;
    }
    let detection = Detector::merging(&config, &[], &[]).finish_with(parts);
    let _ = render_report(&detection);
    let _ = render_graph_svg(&detection);
    let _ = render_graph_dot(&detection);
    Some((detection.alerts.len(), detection.edges.len()))
}
