//! Tunnel decapsulation: the packet a tunnel carries, summarised as if captured bare.
//!
//! After the link layer and the outer IP header are decoded, [`decapsulate`] asks
//! whether the packet carries another one: VXLAN, Geneve, GTP-U and Teredo by UDP port
//! (configurable, [`TunnelConfig`]), GRE (with its key and sequence number, and ERSPAN
//! types I, II and III inside it) and IP-in-IP (IPv4 or IPv6 inside IPv4 or IPv6) by IP
//! protocol. If it does, the inner packet is decoded in place, in the same frame, so its
//! payload offsets stay offsets into the captured bytes, and the walk repeats on it, at
//! most [`TunnelConfig::max_depth`] times.
//!
//! What is kept of the tunnels is a [`Tunnel`]: the outermost one's kind, endpoints and
//! identifier (VNI, GRE key, ERSPAN session, TEID), how many are nested, and a
//! direction-free hash of the whole chain, which flow keys carry so that two tenants'
//! overlapping address spaces never meet in one flow.
//!
//! A packet that only looks like a carrier (a UDP datagram to port 4789 whose header is
//! not VXLAN's, or whose inner headers are damaged) stays the outer packet: nothing is
//! lost by guessing wrong. Fragmented carriers are left whole too, since the inner
//! packet spans the fragments and IP reassembly is not done here.

use std::net::IpAddr;

use crate::ip::{decode_ipv4, decode_ipv6};
use crate::link::ethernet_at;
use crate::{be16, be32, Decoded, PacketSummary, SkipReason, Vlans};

/// The kinds of tunnel that are decapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelKind {
    /// VXLAN (RFC 7348), Ethernet in UDP, default port 4789.
    Vxlan,
    /// Geneve (RFC 8926), Ethernet or IP in UDP, default port 6081.
    Geneve,
    /// GTP-U version 1 (3GPP TS 29.281), IP in UDP, default port 2152.
    GtpU,
    /// Teredo (RFC 4380), IPv6 in UDP, default port 3544.
    Teredo,
    /// GRE (RFC 2784, 2890): IPv4, IPv6 or Ethernet (transparent bridging).
    Gre,
    /// ERSPAN type I: Ethernet directly after a GRE header without a sequence number.
    Erspan1,
    /// ERSPAN type II: an 8-byte header in GRE, protocol 0x88BE.
    Erspan2,
    /// ERSPAN type III: a 12-byte header (and an optional 8-byte platform subheader) in
    /// GRE, protocol 0x22EB.
    Erspan3,
    /// IPv4 in IPv4 (IP protocol 4).
    Ip4in4,
    /// IPv6 in IPv4 (IP protocol 41, "6in4", SIT).
    Ip6in4,
    /// IPv4 in IPv6 (next header 4).
    Ip4in6,
    /// IPv6 in IPv6 (next header 41).
    Ip6in6,
}

impl TunnelKind {
    /// All kinds, in declaration order (handy for counters).
    pub const ALL: [TunnelKind; 12] = [
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::GtpU,
        TunnelKind::Teredo,
        TunnelKind::Gre,
        TunnelKind::Erspan1,
        TunnelKind::Erspan2,
        TunnelKind::Erspan3,
        TunnelKind::Ip4in4,
        TunnelKind::Ip6in4,
        TunnelKind::Ip4in6,
        TunnelKind::Ip6in6,
    ];

    /// The stable name used in tables and summaries, e.g. `"vxlan"`, `"erspan2"`, `"6in4"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::GtpU => "gtpu",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan1 => "erspan1",
            TunnelKind::Erspan2 => "erspan2",
            TunnelKind::Erspan3 => "erspan3",
            TunnelKind::Ip4in4 => "ipip",
            TunnelKind::Ip6in4 => "6in4",
            TunnelKind::Ip4in6 => "4in6",
            TunnelKind::Ip6in6 => "6in6",
        }
    }

    /// The kind named `name` (as [`TunnelKind::as_str`] gives it).
    pub fn from_name(name: &str) -> Option<TunnelKind> {
        TunnelKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the kind is found by UDP port (and so can be given more ports).
    pub fn is_udp(self) -> bool {
        matches!(
            self,
            TunnelKind::Vxlan | TunnelKind::Geneve | TunnelKind::GtpU | TunnelKind::Teredo
        )
    }
}

/// The tunnels a packet arrived in, as far as flows need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// The outermost tunnel's kind.
    pub kind: TunnelKind,
    /// The outermost tunnel's source address (of this packet's direction).
    pub src: IpAddr,
    /// The outermost tunnel's destination address.
    pub dst: IpAddr,
    /// The outermost tunnel's identifier: VNI (VXLAN, Geneve), key (GRE, when present),
    /// session id (ERSPAN II and III) or TEID (GTP-U).
    pub id: Option<u32>,
    /// How many tunnels are nested around the packet (1 for one).
    pub depth: u8,
    /// A hash of every level's kind, endpoints (as an unordered pair), identifier and
    /// outer VLAN: equal for both directions of one tunnel, different (but for a 2^-32
    /// chance) for two tunnels. GTP-U's TEID is left out of it, because each direction
    /// of a GTP-U tunnel has its own; its endpoints still are in. Never 0.
    pub chain: u32,
}

/// Which UDP ports carry which tunnel, and how deep to unwrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    /// UDP ports (source or destination) and the tunnel found on them.
    pub udp_ports: Vec<(u16, TunnelKind)>,
    /// Most tunnels unwrapped around one packet; deeper ones stay as they are. 0 turns
    /// decapsulation off.
    pub max_depth: u8,
}

impl Default for TunnelConfig {
    /// The IANA ports (VXLAN 4789, Geneve 6081, GTP-U 2152, Teredo 3544) and a depth of
    /// 4 (Zeek stops at 2 by default; mirrored traffic inside a tenant's own tunnel needs
    /// 2 already).
    fn default() -> TunnelConfig {
        TunnelConfig {
            udp_ports: vec![
                (4789, TunnelKind::Vxlan),
                (6081, TunnelKind::Geneve),
                (2152, TunnelKind::GtpU),
                (3544, TunnelKind::Teredo),
            ],
            max_depth: 4,
        }
    }
}

impl TunnelConfig {
    /// No decapsulation: every packet is summarised as its outer headers.
    pub fn off() -> TunnelConfig {
        TunnelConfig {
            udp_ports: Vec::new(),
            max_depth: 0,
        }
    }

    fn udp_kind(&self, s: &PacketSummary) -> Option<TunnelKind> {
        self.udp_ports
            .iter()
            .find(|(port, _)| *port == s.dst_port || *port == s.src_port)
            .map(|&(_, kind)| kind)
    }
}

const IP_IN_IP: u8 = 4;
const IPV6_IN_IP: u8 = 41;
const GRE: u8 = 47;
const UDP: u8 = 17;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_BRIDGED: u16 = 0x6558;
const ETH_ERSPAN_1_2: u16 = 0x88be;
const ETH_ERSPAN_3: u16 = 0x22eb;

/// What a tunnel header says it carries.
#[derive(Clone, Copy, Debug)]
enum Inner {
    Ethernet,
    Ipv4,
    Ipv6,
    /// Either IP version, by the version nibble.
    Ip,
}

/// One tunnel level: its kind, identifier, and where its inner packet starts.
#[derive(Clone, Copy, Debug)]
struct Level {
    kind: TunnelKind,
    id: Option<u32>,
    inner: Inner,
    /// Offset of the inner packet in the frame.
    start: usize,
}

/// Unwraps the tunnels around `decoded`, a packet decoded from `data`, in place.
#[inline]
pub(crate) fn decapsulate(data: &[u8], decoded: &mut Decoded, config: &TunnelConfig) {
    // The common case, a packet in no tunnel, costs a protocol and port test.
    if let Decoded::Ip(packet) = decoded {
        if config.max_depth > 0 && may_carry(packet, config) {
            if let Some(inner) = unwrap(data, packet, config) {
                *decoded = inner;
            }
        }
    }
}

/// Whether `packet` is of a protocol, or on a port, that carries tunnels.
#[inline]
fn may_carry(packet: &PacketSummary, config: &TunnelConfig) -> bool {
    match packet.proto {
        IP_IN_IP | IPV6_IN_IP | GRE => true,
        UDP => packet.has_ports && config.udp_kind(packet).is_some(),
        _ => false,
    }
}

/// The innermost packet inside `outer`, if `outer` is a tunnel whose inner headers check
/// out (or a non-IP frame inside one).
#[cold]
fn unwrap(data: &[u8], outer: &PacketSummary, config: &TunnelConfig) -> Option<Decoded> {
    let mut packet = *outer;
    let mut tunnel: Option<Tunnel> = None;
    for _ in 0..config.max_depth {
        let Some(level) = carried(data, &packet, config) else {
            break;
        };
        // The inner packet ends where the carrier's captured payload ends.
        let end = packet.payload_offset as usize + packet.payload_captured as usize;
        let frame = &data[..end.min(data.len())];
        let inner = match level.inner {
            Inner::Ethernet => ethernet_at(frame, level.start),
            Inner::Ipv4 => decode_ipv4(frame, level.start, end, Vlans::default()),
            Inner::Ipv6 => decode_ipv6(frame, level.start, end, Vlans::default()),
            Inner::Ip => by_version(frame, level.start, end),
        };
        match inner {
            Decoded::Ip(mut s) => {
                let wrapped = wrap(tunnel, &packet, level);
                s.tunnel = Some(wrapped);
                tunnel = Some(wrapped);
                packet = s;
            }
            // ARP in a bridged tunnel, or a non-IP frame (STP, LLDP) mirrored as any
            // link would carry it.
            Decoded::Arp(_) | Decoded::Skipped(SkipReason::NotIp) => return Some(inner),
            // Damaged or cut inner headers: the carrier stays what was seen.
            Decoded::Skipped(_) => break,
        }
    }
    tunnel.map(|_| Decoded::Ip(packet))
}

fn by_version(data: &[u8], start: usize, end: usize) -> Decoded {
    match data.get(start).map(|v| v >> 4) {
        Some(4) => decode_ipv4(data, start, end, Vlans::default()),
        Some(6) => decode_ipv6(data, start, end, Vlans::default()),
        _ => Decoded::Skipped(SkipReason::Malformed),
    }
}

/// The tunnel `carrier` is, if it is one whose header checks out.
#[inline]
fn carried(data: &[u8], carrier: &PacketSummary, config: &TunnelConfig) -> Option<Level> {
    if carrier.fragment.is_some() {
        return None;
    }
    let start = carrier.payload_offset as usize;
    let payload = data.get(start..start + carrier.payload_captured as usize)?;
    let v6 = carrier.src.is_ipv6();
    let (kind, id, inner, len) = match (carrier.proto, v6) {
        (UDP, _) if carrier.has_ports => {
            let kind = config.udp_kind(carrier)?;
            let (id, inner, len) = match kind {
                TunnelKind::Vxlan => vxlan(payload)?,
                TunnelKind::Geneve => geneve(payload)?,
                TunnelKind::GtpU => gtpu(payload)?,
                TunnelKind::Teredo => teredo(payload, carrier.payload_len as usize)?,
                _ => return None,
            };
            (kind, id, inner, len)
        }
        (GRE, _) => gre(payload)?,
        (IP_IN_IP, false) => (TunnelKind::Ip4in4, None, Inner::Ipv4, 0),
        (IP_IN_IP, true) => (TunnelKind::Ip4in6, None, Inner::Ipv4, 0),
        (IPV6_IN_IP, false) => (TunnelKind::Ip6in4, None, Inner::Ipv6, 0),
        (IPV6_IN_IP, true) => (TunnelKind::Ip6in6, None, Inner::Ipv6, 0),
        _ => return None,
    };
    Some(Level {
        kind,
        id,
        inner,
        start: start + len,
    })
}

/// A 24-bit big-endian value at `i`.
fn be24(d: &[u8], i: usize) -> Option<u32> {
    be32(d, i.checked_sub(1)?).map(|v| v & 0x00ff_ffff)
}

/// VXLAN: flags (the I bit says the VNI is valid), 3 reserved, VNI, 1 reserved.
fn vxlan(p: &[u8]) -> Option<(Option<u32>, Inner, usize)> {
    let flags = *p.first()?;
    if flags & 0x08 == 0 || p.len() < 8 {
        return None;
    }
    Some((be24(p, 4), Inner::Ethernet, 8))
}

/// Geneve: version 0, option length in 4-byte words, protocol type, VNI.
fn geneve(p: &[u8]) -> Option<(Option<u32>, Inner, usize)> {
    let first = *p.first()?;
    if first >> 6 != 0 || p.len() < 8 {
        return None;
    }
    let len = 8 + usize::from(first & 0x3f) * 4;
    let inner = match be16(p, 2)? {
        ETH_BRIDGED => Inner::Ethernet,
        ETH_IPV4 => Inner::Ipv4,
        ETH_IPV6 => Inner::Ipv6,
        _ => return None,
    };
    Some((be24(p, 4), inner, len))
}

/// Most GTP-U extension headers walked.
const MAX_GTP_EXTENSIONS: usize = 16;

/// GTP-U: version 1, protocol type GTP, message type G-PDU (255) carrying user IP
/// packets; the optional sequence number, N-PDU number and extension headers follow
/// the 8 mandatory bytes when any of the E, S or PN flags is set.
fn gtpu(p: &[u8]) -> Option<(Option<u32>, Inner, usize)> {
    const G_PDU: u8 = 255;
    let flags = *p.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *p.get(1)? != G_PDU {
        return None;
    }
    let teid = be32(p, 4)?;
    let mut len = 8;
    if flags & 0x07 != 0 {
        len = 12;
        let mut next = *p.get(11)?;
        for _ in 0..MAX_GTP_EXTENSIONS {
            if next == 0 {
                return Some((Some(teid), Inner::Ip, len));
            }
            // Length in 4-byte units, counting the length and next-type bytes.
            let ext = usize::from(*p.get(len)?) * 4;
            if ext == 0 {
                return None;
            }
            len += ext;
            next = *p.get(len - 1)?;
        }
        return None;
    }
    Some((Some(teid), Inner::Ip, len))
}

/// Teredo: an IPv6 packet, possibly after an authentication indicator and an origin
/// indication. The IPv6 header's length must fill the datagram exactly, since port 3544
/// alone says little.
fn teredo(p: &[u8], announced: usize) -> Option<(Option<u32>, Inner, usize)> {
    let mut off = 0;
    if be16(p, 0)? == 1 {
        // Authentication: client id and authentication value lengths, then an 8-byte
        // nonce and a confirmation byte.
        let id_len = usize::from(*p.get(2)?);
        let auth_len = usize::from(*p.get(3)?);
        off = 4 + id_len + auth_len + 9;
    }
    if be16(p, off)? == 0 {
        // Origin indication: 0x0000, the obfuscated port and address.
        off += 8;
    }
    let version = *p.get(off)? >> 4;
    let ipv6_len = 40 + usize::from(be16(p, off + 4)?);
    (version == 6 && off + ipv6_len == announced).then_some((None, Inner::Ipv6, off))
}

/// GRE version 0: flags (checksum, key, sequence number; routing is refused), the
/// protocol type, then the optional fields; ERSPAN's headers follow for its types.
fn gre(p: &[u8]) -> Option<(TunnelKind, Option<u32>, Inner, usize)> {
    const CHECKSUM: u16 = 0x8000;
    const ROUTING: u16 = 0x4000;
    const KEY: u16 = 0x2000;
    const SEQUENCE: u16 = 0x1000;
    let flags = be16(p, 0)?;
    if flags & 0x0007 != 0 || flags & ROUTING != 0 {
        return None;
    }
    let protocol = be16(p, 2)?;
    let mut len = 4;
    if flags & CHECKSUM != 0 {
        len += 4;
    }
    let mut key = None;
    if flags & KEY != 0 {
        key = Some(be32(p, len)?);
        len += 4;
    }
    let sequenced = flags & SEQUENCE != 0;
    if sequenced {
        len += 4;
    }
    let (kind, id, inner, extra) = match protocol {
        ETH_IPV4 => (TunnelKind::Gre, key, Inner::Ipv4, 0),
        ETH_IPV6 => (TunnelKind::Gre, key, Inner::Ipv6, 0),
        ETH_BRIDGED => (TunnelKind::Gre, key, Inner::Ethernet, 0),
        ETH_ERSPAN_1_2 if !sequenced => (TunnelKind::Erspan1, None, Inner::Ethernet, 0),
        ETH_ERSPAN_1_2 => {
            // Version 1, VLAN, then COS, encapsulation, truncation and the session id.
            let h = p.get(len..len + 8)?;
            if h[0] >> 4 != 1 {
                return None;
            }
            let session = u32::from(u16::from_be_bytes([h[2], h[3]]) & 0x03ff);
            (TunnelKind::Erspan2, Some(session), Inner::Ethernet, 8)
        }
        ETH_ERSPAN_3 => {
            // Version 2, VLAN, session id, timestamp, SGT, then P, the frame type, the
            // hardware id, D, granularity and O (an 8-byte platform subheader follows).
            let h = p.get(len..len + 12)?;
            if h[0] >> 4 != 2 {
                return None;
            }
            let session = u32::from(u16::from_be_bytes([h[2], h[3]]) & 0x03ff);
            let inner = match (h[10] >> 2) & 0x1f {
                0 => Inner::Ethernet,
                2 => Inner::Ip,
                _ => return None,
            };
            let subheader = if h[11] & 0x01 != 0 { 8 } else { 0 };
            (TunnelKind::Erspan3, Some(session), inner, 12 + subheader)
        }
        _ => return None,
    };
    Some((kind, id, inner, len + extra))
}

/// The tunnel record after adding the level `carrier` belongs to.
fn wrap(outer: Option<Tunnel>, carrier: &PacketSummary, level: Level) -> Tunnel {
    let chain_id = if level.kind == TunnelKind::GtpU {
        None
    } else {
        level.id
    };
    let (a, b) = ordered(carrier.src, carrier.dst);
    let mut h = outer.map_or(0x243f_6a88_85a3_08d3, |t| u64::from(t.chain));
    for word in [
        level.kind as u64,
        a.0,
        a.1,
        b.0,
        b.1,
        chain_id.map_or(u64::MAX, u64::from),
        u64::from(carrier.vlan.unwrap_or(u16::MAX)),
    ] {
        h = mix(h ^ word);
    }
    let chain = ((h >> 32) as u32 ^ h as u32).max(1);
    match outer {
        Some(t) => Tunnel {
            depth: t.depth.saturating_add(1),
            chain,
            ..t
        },
        None => Tunnel {
            kind: level.kind,
            src: carrier.src,
            dst: carrier.dst,
            id: level.id,
            depth: 1,
            chain,
        },
    }
}

/// The two addresses as 128-bit halves, lower first, so both directions hash alike.
fn ordered(x: IpAddr, y: IpAddr) -> ((u64, u64), (u64, u64)) {
    let bits = |a: IpAddr| -> (u64, u64) {
        let v = match a {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        ((v >> 64) as u64, v as u64)
    };
    let (x, y) = (bits(x), bits(y));
    (x.min(y), x.max(y))
}

/// splitmix64's finaliser.
fn mix(mut h: u64) -> u64 {
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
