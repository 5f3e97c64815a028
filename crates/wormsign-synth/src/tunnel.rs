//! Wraps the frames of a capture in a tunnel, so decapsulation can be tested and measured
//! on traffic whose plain form is known: detection on the wrapped capture must equal
//! detection on the plain one, and tshark must see the plain packets inside.
//!
//! The tunnels are built as their specifications lay them out (RFC 7348 VXLAN, RFC 8926
//! Geneve with one option, 3GPP TS 29.281 GTP-U with a PDU session container, RFC 2890
//! GRE with key and sequence number, ERSPAN types I, II and III with a platform
//! subheader, IP in IPv4 and IPv6). Router-to-router tunnels (all but ERSPAN) run in
//! both directions between their endpoints, each direction from its own end (and GTP-U
//! with a TEID per direction, as bearers have); ERSPAN, being a mirror, always flows from
//! the switch to the sensor. Layer-3 tunnels carry IP only: other frames (ARP) are
//! written as they are.

use std::io::{self, Write};
use std::path::Path;

use wormsign_capture::{CaptureReader, Chunk};

use crate::wire::{begin_frame, PcapWriter};

/// How to wrap each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// VXLAN, VNI 5001, UDP 4789.
    Vxlan,
    /// Geneve, VNI 7001, one 4-byte option, Ethernet payload, UDP 6081.
    Geneve,
    /// GTP-U G-PDU on UDP 2152, TEID 0x1001 one way and 0x2002 the other, with a PDU
    /// session container extension header.
    GtpU,
    /// GRE with key 42 and a sequence number, carrying IP.
    Gre,
    /// GRE with key 43 and a sequence number, carrying Ethernet (transparent bridging).
    GreEthernet,
    /// ERSPAN type I (GRE without sequence number).
    Erspan1,
    /// ERSPAN type II, session 100.
    Erspan2,
    /// ERSPAN type III, session 200, with an 8-byte platform subheader.
    Erspan3,
    /// IP in IPv4 (protocol 4 or 41 by the inner version).
    IpInIpv4,
    /// IP in IPv6 (next header 4 or 41).
    IpInIpv6,
}

impl Wrap {
    /// All wrappings.
    pub const ALL: [Wrap; 10] = [
        Wrap::Vxlan,
        Wrap::Geneve,
        Wrap::GtpU,
        Wrap::Gre,
        Wrap::GreEthernet,
        Wrap::Erspan1,
        Wrap::Erspan2,
        Wrap::Erspan3,
        Wrap::IpInIpv4,
        Wrap::IpInIpv6,
    ];

    /// The name `--tunnel` takes.
    pub fn name(self) -> &'static str {
        match self {
            Wrap::Vxlan => "vxlan",
            Wrap::Geneve => "geneve",
            Wrap::GtpU => "gtpu",
            Wrap::Gre => "gre",
            Wrap::GreEthernet => "gre-ethernet",
            Wrap::Erspan1 => "erspan1",
            Wrap::Erspan2 => "erspan2",
            Wrap::Erspan3 => "erspan3",
            Wrap::IpInIpv4 => "ip-in-ipv4",
            Wrap::IpInIpv6 => "ip-in-ipv6",
        }
    }

    /// Whether the tunnel is a switch's mirror (ERSPAN), always sent one way.
    fn is_mirror(self) -> bool {
        matches!(self, Wrap::Erspan1 | Wrap::Erspan2 | Wrap::Erspan3)
    }

    /// Whether the tunnel carries whole Ethernet frames (else IP packets).
    fn carries_ethernet(self) -> bool {
        matches!(
            self,
            Wrap::Vxlan
                | Wrap::Geneve
                | Wrap::GreEthernet
                | Wrap::Erspan1
                | Wrap::Erspan2
                | Wrap::Erspan3
        )
    }
}

impl std::str::FromStr for Wrap {
    type Err = String;
    fn from_str(s: &str) -> Result<Wrap, String> {
        Wrap::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Wrap::ALL.iter().map(|w| w.name()).collect();
                format!("unknown tunnel {s:?}: one of {}", names.join(", "))
            })
    }
}

/// Reads the Ethernet capture `input` and writes `output` (pcap), every frame wrapped
/// as `wrap` says, timestamps kept. Returns the records written.
pub fn wrap_capture(input: &Path, wrap: Wrap, output: &Path) -> io::Result<u64> {
    let mut reader = CaptureReader::open(input).map_err(io::Error::other)?;
    let file = std::fs::File::create(output)?;
    let mut out = PcapWriter::new(io::BufWriter::with_capacity(1 << 20, file))?;
    let mut wrapper = Wrapper::new(wrap);
    let mut chunk = Chunk::default();
    let mut frame = Vec::new();
    loop {
        let more = reader
            .read_chunk(&mut chunk, 4 << 20)
            .map_err(io::Error::other)?;
        for (meta, data) in chunk.iter() {
            if meta.link_type != 1 {
                return Err(io::Error::other(format!(
                    "{}: link type {} is not Ethernet",
                    input.display(),
                    meta.link_type
                )));
            }
            wrapper.wrap(data, &mut frame);
            let ts_us = u64::try_from(meta.ts_ns / 1_000).unwrap_or(0);
            out.write(ts_us, &frame)?;
        }
        if !more {
            break;
        }
    }
    let packets = out.packets;
    out.finish()?.flush()?;
    Ok(packets)
}

/// Wraps frames one after another (GRE and ERSPAN number them).
pub struct Wrapper {
    wrap: Wrap,
    sequence: u32,
}

const END_A4: [u8; 4] = [192, 0, 2, 1];
const END_B4: [u8; 4] = [192, 0, 2, 2];
const END_A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const END_B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

impl Wrapper {
    /// A wrapper starting at sequence number 0.
    pub fn new(wrap: Wrap) -> Wrapper {
        Wrapper { wrap, sequence: 0 }
    }

    /// Writes `frame` (Ethernet) wrapped into `out` (cleared); a frame a layer-3 tunnel
    /// cannot carry is copied as it is.
    pub fn wrap(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        let ip = ip_packet(frame);
        let payload = match ip {
            _ if self.wrap.carries_ethernet() => frame,
            Some((packet, _)) => packet,
            None => {
                out.clear();
                out.extend_from_slice(frame);
                return;
            }
        };
        // Which end sends: the inner packet's direction decides, so each direction of a
        // conversation leaves from its own end. A mirror always sends from A.
        let forward = self.wrap.is_mirror() || ip.is_none_or(|(_, forward)| forward);
        let mut header = Vec::with_capacity(32);
        let proto = self.header(payload, forward, &mut header);
        let l4_len = header.len() + payload.len();
        let (src, dst) = if forward { (0, 1) } else { (1, 0) };
        let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let f = if self.wrap == Wrap::IpInIpv6 {
            let ends = [END_A6, END_B6];
            let mut f = begin_frame(out, &mac_b, &mac_a, None, 0x86dd);
            f.ipv6(&ends[src], &ends[dst], proto, l4_len);
            f
        } else {
            let ends = [END_A4, END_B4];
            let mut f = begin_frame(out, &mac_b, &mac_a, None, 0x0800);
            f.ipv4(
                ends[src],
                ends[dst],
                proto,
                l4_len,
                self.sequence as u16,
                64,
            );
            f
        };
        // Not `Frame::finish`: its transport checksum and padding are for TCP and UDP
        // frames, and the tunnel headers carry their own (UDP's is 0, as VTEPs send it).
        f.buf.extend_from_slice(&header);
        f.buf.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
    }

    /// Appends the tunnel's headers (UDP included) to `h`; returns the outer IP protocol.
    fn header(&self, payload: &[u8], forward: bool, h: &mut Vec<u8>) -> u8 {
        let inner_v6 = payload.first().is_some_and(|b| b >> 4 == 6);
        let ip_proto = if inner_v6 { 0x86dd_u16 } else { 0x0800 };
        match self.wrap {
            Wrap::Vxlan => {
                udp(h, entropy(payload), 4789, 8 + payload.len());
                h.extend_from_slice(&[0x08, 0, 0, 0]);
                h.extend_from_slice(&(5001u32 << 8).to_be_bytes());
                17
            }
            Wrap::Geneve => {
                udp(h, entropy(payload), 6081, 16 + payload.len());
                h.extend_from_slice(&[0x02, 0x00, 0x65, 0x58]);
                h.extend_from_slice(&(7001u32 << 8).to_be_bytes());
                // One option: class 0x0101, type 1, 4 bytes of data.
                h.extend_from_slice(&[0x01, 0x01, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef]);
                17
            }
            Wrap::GtpU => {
                udp(h, 2152, 2152, 16 + 8 + payload.len());
                let teid: u32 = if forward { 0x1001 } else { 0x2002 };
                // Version 1, GTP, E flag; G-PDU; length after the 8 mandatory bytes.
                h.extend_from_slice(&[0x34, 0xff]);
                h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                h.extend_from_slice(&teid.to_be_bytes());
                // Sequence number, N-PDU number, next extension: PDU session container.
                h.extend_from_slice(&[0, 0, 0, 0x85]);
                // One 4-byte unit: QFI 9, then no further extension.
                h.extend_from_slice(&[0x01, 0x10, 0x09, 0x00]);
                17
            }
            Wrap::Gre | Wrap::GreEthernet => {
                let (key, proto) = match self.wrap {
                    Wrap::Gre => (42u32, ip_proto),
                    _ => (43, 0x6558),
                };
                h.extend_from_slice(&0x3000u16.to_be_bytes());
                h.extend_from_slice(&proto.to_be_bytes());
                h.extend_from_slice(&key.to_be_bytes());
                h.extend_from_slice(&self.sequence.to_be_bytes());
                47
            }
            Wrap::Erspan1 => {
                h.extend_from_slice(&[0, 0, 0x88, 0xbe]);
                47
            }
            Wrap::Erspan2 => {
                gre_sequenced(h, 0x88be, self.sequence);
                // Version 1, VLAN 0; COS 0, En 3 (tags kept), T 0, session 100; index 0.
                let session = 100u16 | (3 << 11);
                h.extend_from_slice(&[0x10, 0x00]);
                h.extend_from_slice(&session.to_be_bytes());
                h.extend_from_slice(&[0, 0, 0, 0]);
                47
            }
            Wrap::Erspan3 => {
                gre_sequenced(h, 0x22eb, self.sequence);
                // Version 2, VLAN 0; COS 0, BSO 0, T 0, session 200; timestamp; SGT 0;
                // P 0, FT 0 (Ethernet), hardware id 0, D 0, granularity 0, O 1.
                h.extend_from_slice(&[0x20, 0x00]);
                h.extend_from_slice(&200u16.to_be_bytes());
                h.extend_from_slice(&self.sequence.to_be_bytes());
                h.extend_from_slice(&[0, 0, 0x00, 0x01]);
                // Platform subheader type 3: port index and seconds of the timestamp.
                h.extend_from_slice(&[0x18, 0, 0, 0x01, 0, 0, 0, 0]);
                47
            }
            Wrap::IpInIpv4 | Wrap::IpInIpv6 => {
                if inner_v6 {
                    41
                } else {
                    4
                }
            }
        }
    }
}

/// The IP packet inside an Ethernet frame (after VLAN tags, without the Ethernet padding
/// after it), and whether its source address sorts below its destination.
fn ip_packet(frame: &[u8]) -> Option<(&[u8], bool)> {
    let mut off = 12;
    loop {
        let et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        let ip = frame.get(off + 2..)?;
        match et {
            0x8100 | 0x88a8 => off += 4,
            0x0800 => {
                let len = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
                let forward = ip.get(12..16)? < ip.get(16..20)?;
                return Some((ip.get(..len).unwrap_or(ip), forward));
            }
            0x86dd => {
                let len = 40 + usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
                let forward = ip.get(8..24)? < ip.get(24..40)?;
                return Some((ip.get(..len).unwrap_or(ip), forward));
            }
            _ => return None,
        }
    }
}

/// A UDP source port from the payload, as VTEPs spread flows over ports.
fn entropy(payload: &[u8]) -> u16 {
    let sum = payload
        .iter()
        .take(40)
        .fold(0u32, |a, &b| a.wrapping_mul(31) ^ u32::from(b));
    49152 + (sum % 16384) as u16
}

/// A UDP header without checksum (allowed over IPv4, RFC 768; VXLAN and Geneve send 0).
fn udp(h: &mut Vec<u8>, src: u16, dst: u16, payload_len: usize) {
    h.extend_from_slice(&src.to_be_bytes());
    h.extend_from_slice(&dst.to_be_bytes());
    h.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
}

/// A GRE header with only the sequence number present.
fn gre_sequenced(h: &mut Vec<u8>, proto: u16, sequence: u32) {
    h.extend_from_slice(&0x1000u16.to_be_bytes());
    h.extend_from_slice(&proto.to_be_bytes());
    h.extend_from_slice(&sequence.to_be_bytes());
}
