//! Packet decoding for wormsign: one captured frame in, one compact summary out.
//!
//! This crate turns a captured frame (a pcap `LINKTYPE_*` value plus the captured
//! bytes) into a [`Decoded`] value:
//!
//! * [`Decoded::Ip`] with a [`PacketSummary`]: addresses, IP protocol, ports (or
//!   ICMP type/code), IP and payload lengths, TCP flags/sequence numbers, VLAN ids,
//!   IP fragment information ([`Fragment`]) and where the L4 payload lies in the
//!   frame;
//! * [`Decoded::Arp`] with an [`ArpPacket`] for Ethernet/IPv4 ARP;
//! * [`Decoded::Skipped`] with a [`SkipReason`] for everything else.
//!
//! The [`dns`] module parses DNS messages (UDP payloads, or TCP payloads with the
//! two-byte length prefix) into a [`dns::DnsMessage`]; [`names`] reads DHCP and the
//! NetBIOS name service into [`names::NameFact`]s (which name belongs to which address
//! and MAC).
//!
//! Supported link types: Ethernet (1, with 802.1Q/802.1ad VLAN stacks, MPLS and
//! PPPoE sessions), BSD loopback NULL (0) and LOOP (108), raw IP (101, 12, 14, 228,
//! 229), Linux cooked capture SLL (113) and SLL2 (276), PPP (9) and NFLOG (239).
//!
//! Tunnels are unwrapped ([`tunnel`] says which and how): the summary is the innermost
//! packet's, with [`PacketSummary::tunnel`] saying what it arrived in. [`decode`] uses
//! the IANA ports for the UDP tunnels; [`decode_with`] takes other ports, or none.
//!
//! # Design
//!
//! [`decode`] is on the hot path (millions of packets per second), so it is
//! hand-written, never allocates and never panics on any input. The summary is an
//! owned, `Copy` value that records the *offset* and captured length of the L4
//! payload (`payload_offset`, `payload_captured`) instead of borrowing slices of
//! the frame: summaries carry no lifetime, so they can be queued and sent across
//! thread boundaries cheaply (a plain memcpy), while a consumer that still holds the
//! frame (for example to parse DNS) can re-slice the payload in O(1).
//!
//! # Example
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use wormsign_decode::{decode, Decoded, LINKTYPE_ETHERNET};
//!
//! // Ethernet / IPv4 / UDP 5353 -> 53 with a 4-byte payload.
//! let mut frame = vec![0u8; 12];
//! frame.extend_from_slice(&[0x08, 0x00]); // ethertype IPv4
//! frame.extend_from_slice(&[
//!     0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, // v4, IHL 5, total length 32, UDP
//!     10, 0, 0, 1, 10, 0, 0, 2, // 10.0.0.1 -> 10.0.0.2
//!     0x14, 0xe9, 0, 53, 0, 12, 0, 0, // UDP 5353 -> 53, length 12
//!     1, 2, 3, 4, // payload
//! ]);
//! let Decoded::Ip(s) = decode(LINKTYPE_ETHERNET, &frame) else { panic!() };
//! assert_eq!(s.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
//! assert_eq!((s.proto, s.src_port, s.dst_port), (17, 5353, 53));
//! assert_eq!((s.ip_len, s.payload_len), (32, 4));
//! let payload = &frame[s.payload_offset as usize..][..s.payload_captured as usize];
//! assert_eq!(payload, &[1, 2, 3, 4]);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};

pub mod dns;
mod events;
mod ip;
mod ip_text;
mod link;
pub mod names;
pub mod tunnel;

pub use events::{ArpEvent, DnsEvent, NameEvent};
pub use ip_text::IpText;
pub use tunnel::{Tunnel, TunnelConfig, TunnelKind};

/// `LINKTYPE_NULL` (0): BSD loopback, 4-byte address family in host byte order.
pub const LINKTYPE_NULL: u16 = 0;
/// `LINKTYPE_ETHERNET` (1): Ethernet II / 802.3.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// `LINKTYPE_PPP` (9): PPP, optionally with the `ff 03` HDLC address/control bytes.
pub const LINKTYPE_PPP: u16 = 9;
/// `DLT_RAW` as defined on some BSDs (12): raw IPv4 or IPv6.
pub const LINKTYPE_RAW_BSD12: u16 = 12;
/// `DLT_RAW` as defined on OpenBSD (14): raw IPv4 or IPv6.
pub const LINKTYPE_RAW_BSD14: u16 = 14;
/// `LINKTYPE_RAW` (101): raw IPv4 or IPv6, chosen by the version nibble.
pub const LINKTYPE_RAW: u16 = 101;
/// `LINKTYPE_LOOP` (108): OpenBSD loopback, 4-byte address family in network byte order.
pub const LINKTYPE_LOOP: u16 = 108;
/// `LINKTYPE_LINUX_SLL` (113): Linux cooked capture v1 (16-byte header).
pub const LINKTYPE_LINUX_SLL: u16 = 113;
/// `LINKTYPE_IPV4` (228): raw IPv4.
pub const LINKTYPE_IPV4: u16 = 228;
/// `LINKTYPE_IPV6` (229): raw IPv6.
pub const LINKTYPE_IPV6: u16 = 229;
/// `LINKTYPE_NFLOG` (239): Linux netfilter NFLOG (TLV encapsulation).
pub const LINKTYPE_NFLOG: u16 = 239;
/// `LINKTYPE_LINUX_SLL2` (276): Linux cooked capture v2 (20-byte header).
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

/// Result of decoding one frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// An IPv4 or IPv6 packet.
    Ip(PacketSummary),
    /// An Ethernet/IPv4 ARP packet.
    Arp(ArpPacket),
    /// The frame was not summarised.
    Skipped(SkipReason),
}

/// Why a frame was not summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The link type is not supported.
    UnknownLinkType,
    /// The frame carries something other than IP or ARP (LLDP, STP, IPX, …), or an
    /// address family / PPP protocol other than IPv4/IPv6.
    NotIp,
    /// Headers are inconsistent or unparseable (bad version, IHL < 5, total length
    /// smaller than the header, TCP data offset < 5, too many VLAN tags or IPv6
    /// extension headers, an extension header chain running past the packet, …).
    Malformed,
    /// The captured bytes end before the IP (or ARP) header is complete.
    TruncatedHeader,
}

impl SkipReason {
    /// All reasons, in declaration order (handy for counters).
    pub const ALL: [SkipReason; 4] = [
        SkipReason::UnknownLinkType,
        SkipReason::NotIp,
        SkipReason::Malformed,
        SkipReason::TruncatedHeader,
    ];

    /// A stable snake_case name, e.g. `"truncated_header"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnknownLinkType => "unknown_link_type",
            SkipReason::NotIp => "not_ip",
            SkipReason::Malformed => "malformed",
            SkipReason::TruncatedHeader => "truncated_header",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compact, owned summary of one IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketSummary {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number. For IPv6 this is the upper-layer protocol after the
    /// extension headers (50 for ESP, 59 for "no next header"). If the snaplen cuts
    /// the extension header chain, it is the type of the first header that was not
    /// captured.
    pub proto: u8,
    /// TCP/UDP/SCTP source port; ICMP/ICMPv6 type. 0 when `has_ports` is false.
    pub src_port: u16,
    /// TCP/UDP/SCTP destination port; ICMP/ICMPv6 code. 0 when `has_ports` is false.
    pub dst_port: u16,
    /// Whether `src_port`/`dst_port` are meaningful: false for non-first fragments,
    /// protocols without ports, or when the L4 header was not captured.
    pub has_ports: bool,
    /// IP total length from the header (IPv6: 40 + payload length), the unit of
    /// Zeek's `*_ip_bytes`. If the length field is 0 (TCP segmentation offload, IPv6
    /// jumbogram) the captured length is used instead.
    pub ip_len: u32,
    /// L4 payload length computed from header length fields (IP length − IP
    /// headers − L4 header; for UDP the UDP length field is used when it is
    /// consistent), not from the captured length. For non-first fragments and
    /// other protocols: the IP payload length after all IP headers. If the TCP
    /// data offset was not captured, a 20-byte TCP header is assumed.
    pub payload_len: u32,
    /// TCP flags: FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40
    /// CWR=0x80; 0 if not TCP (or not captured).
    pub tcp_flags: u8,
    /// TCP sequence number (0 if not TCP or not captured).
    pub tcp_seq: u32,
    /// TCP acknowledgement number (0 if not TCP or not captured).
    pub tcp_ack: u32,
    /// TCP window (unscaled; 0 if not TCP or not captured).
    pub tcp_window: u16,
    /// Outermost 802.1Q/802.1ad VLAN id.
    pub vlan: Option<u16>,
    /// Second VLAN id, if any.
    pub inner_vlan: Option<u16>,
    /// Set when the packet is an IP fragment (IPv4 MF or offset > 0; any IPv6
    /// Fragment header).
    pub fragment: Option<Fragment>,
    /// The captured bytes end before what the headers announce (snaplen).
    pub truncated: bool,
    /// Offset in the frame where the captured L4 payload starts (for protocols
    /// without a known L4 header: where the IP payload starts).
    pub payload_offset: u32,
    /// How many bytes of the L4 payload were captured (bounded by `payload_len`).
    pub payload_captured: u32,
    /// The tunnels the packet was unwrapped from, if any; every other field describes
    /// the innermost packet.
    pub tunnel: Option<Tunnel>,
}

/// A port-less packet between unspecified IPv4 addresses with every field zero or empty:
/// a base for summaries built by hand (`PacketSummary { src, dst, ..Default::default() }`).
impl Default for PacketSummary {
    fn default() -> PacketSummary {
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        PacketSummary {
            src: unspecified,
            dst: unspecified,
            proto: 0,
            src_port: 0,
            dst_port: 0,
            has_ports: false,
            ip_len: 0,
            payload_len: 0,
            tcp_flags: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            tcp_window: 0,
            vlan: None,
            inner_vlan: None,
            fragment: None,
            truncated: false,
            payload_offset: 0,
            payload_captured: 0,
            tunnel: None,
        }
    }
}

/// IP fragmentation information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Identification (IPv4: 16 bits; IPv6: 32 bits).
    pub id: u32,
    /// Fragment offset in bytes.
    pub offset: u16,
    /// "More fragments" flag.
    pub more: bool,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// Operation: 1 request, 2 reply (other values passed through).
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
    /// Outermost VLAN id, if the frame was tagged.
    pub vlan: Option<u16>,
}

/// Decodes one captured frame.
///
/// `link_type` is the pcap `LINKTYPE_*` value (the low 16 bits of the pcap header
/// field / pcapng IDB link type; mask off the FCS bits). Never panics, never
/// allocates, and runs in time linear in the frame size with small constant bounds
/// (at most 16 VLAN tags, 16 MPLS labels, 32 IPv6 extension headers, and per tunnel
/// level the same again). Tunnels on their IANA ports are unwrapped.
pub fn decode(link_type: u16, data: &[u8]) -> Decoded {
    static DEFAULT: std::sync::OnceLock<TunnelConfig> = std::sync::OnceLock::new();
    decode_with(link_type, data, DEFAULT.get_or_init(TunnelConfig::default))
}

/// [`decode`], unwrapping the tunnels `tunnels` names.
#[inline]
pub fn decode_with(link_type: u16, data: &[u8], tunnels: &TunnelConfig) -> Decoded {
    let mut decoded = link::decode(link_type, data);
    tunnel::decapsulate(data, &mut decoded, tunnels);
    decoded
}

/// VLAN ids collected while walking the link layer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Vlans {
    pub(crate) outer: Option<u16>,
    pub(crate) inner: Option<u16>,
}

impl Vlans {
    #[inline]
    pub(crate) fn push(&mut self, id: u16) {
        if self.outer.is_none() {
            self.outer = Some(id);
        } else if self.inner.is_none() {
            self.inner = Some(id);
        }
    }
}

/// Reads a big-endian u16 at `i`, or `None` if out of bounds.
#[inline(always)]
pub(crate) fn be16(d: &[u8], i: usize) -> Option<u16> {
    match d.get(i..)? {
        [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

/// Reads a big-endian u32 at `i`, or `None` if out of bounds.
#[inline(always)]
pub(crate) fn be32(d: &[u8], i: usize) -> Option<u32> {
    match d.get(i..)? {
        [a, b, c, e, ..] => Some(u32::from_be_bytes([*a, *b, *c, *e])),
        _ => None,
    }
}

/// Converts an in-frame offset/length to u32, saturating.
#[inline(always)]
pub(crate) fn sat32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
