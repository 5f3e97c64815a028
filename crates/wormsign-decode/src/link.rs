//! Link-layer decoding: finds the network header and dispatches to IP/ARP.

use std::net::Ipv4Addr;

use crate::ip::{decode_ipv4, decode_ipv6};
use crate::{be16, ArpPacket, Decoded, SkipReason, Vlans};

/// Maximum number of stacked VLAN tags before the frame is declared malformed.
pub(crate) const MAX_VLAN_TAGS: usize = 16;
/// Maximum number of MPLS labels before the frame is declared malformed.
pub(crate) const MAX_MPLS_LABELS: usize = 16;

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_IPV6: u16 = 0x86dd;
const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

const SKIP_TRUNC: Decoded = Decoded::Skipped(SkipReason::TruncatedHeader);
const SKIP_NOT_IP: Decoded = Decoded::Skipped(SkipReason::NotIp);
const SKIP_MALFORMED: Decoded = Decoded::Skipped(SkipReason::Malformed);

pub(crate) fn decode(link_type: u16, data: &[u8]) -> Decoded {
    let none = Vlans::default();
    match link_type {
        crate::LINKTYPE_ETHERNET => match be16(data, 12) {
            Some(et) => ethertype(data, 14, et, none),
            None => SKIP_TRUNC,
        },
        crate::LINKTYPE_NULL | crate::LINKTYPE_LOOP => null(data),
        crate::LINKTYPE_RAW | crate::LINKTYPE_RAW_BSD12 | crate::LINKTYPE_RAW_BSD14 => {
            by_version(data, 0, data.len(), none)
        }
        crate::LINKTYPE_IPV4 => decode_ipv4(data, 0, data.len(), none),
        crate::LINKTYPE_IPV6 => decode_ipv6(data, 0, data.len(), none),
        crate::LINKTYPE_LINUX_SLL => match be16(data, 14) {
            Some(et) => ethertype(data, 16, et, none),
            None => SKIP_TRUNC,
        },
        crate::LINKTYPE_LINUX_SLL2 => match (be16(data, 0), data.len() >= 20) {
            (Some(et), true) => ethertype(data, 20, et, none),
            _ => SKIP_TRUNC,
        },
        crate::LINKTYPE_PPP => ppp(data),
        crate::LINKTYPE_NFLOG => nflog(data),
        _ => Decoded::Skipped(SkipReason::UnknownLinkType),
    }
}

/// An Ethernet frame starting at `off` (inside a tunnel); `data` ends where it ends.
pub(crate) fn ethernet_at(data: &[u8], off: usize) -> Decoded {
    match be16(data, off + 12) {
        Some(et) => ethertype(data, off + 14, et, Vlans::default()),
        None => SKIP_TRUNC,
    }
}

/// Dispatches on an ethertype found at `off - 2`, walking VLAN tags, MPLS labels
/// and PPPoE session headers.
#[inline]
fn ethertype(data: &[u8], mut off: usize, mut et: u16, mut vlans: Vlans) -> Decoded {
    let mut tags = 0usize;
    loop {
        match et {
            ETH_IPV4 => return decode_ipv4(data, off, data.len(), vlans),
            ETH_IPV6 => return decode_ipv6(data, off, data.len(), vlans),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return SKIP_MALFORMED;
                }
                let (Some(tci), Some(next)) = (be16(data, off), be16(data, off + 2)) else {
                    return SKIP_TRUNC;
                };
                vlans.push(tci & 0x0fff);
                et = next;
                off += 4;
            }
            ETH_ARP => return arp(data, off, vlans),
            ETH_MPLS_UC | ETH_MPLS_MC => return mpls(data, off, vlans),
            ETH_PPPOE_SESSION => {
                // ver/type, code, session id, length, then the PPP protocol.
                return ppp_protocol(data, off + 6, vlans);
            }
            _ => return SKIP_NOT_IP,
        }
    }
}

/// Walks an MPLS label stack to the bottom-of-stack label and guesses the payload
/// by the IP version nibble.
fn mpls(data: &[u8], mut off: usize, vlans: Vlans) -> Decoded {
    for _ in 0..MAX_MPLS_LABELS {
        let Some(&b) = data.get(off + 2) else {
            return SKIP_TRUNC;
        };
        // The label entry needs all 4 bytes.
        if data.len() < off + 4 {
            return SKIP_TRUNC;
        }
        off += 4;
        if b & 0x01 != 0 {
            return match data.get(off) {
                None => SKIP_TRUNC,
                Some(v) if v >> 4 == 4 => decode_ipv4(data, off, data.len(), vlans),
                Some(v) if v >> 4 == 6 => decode_ipv6(data, off, data.len(), vlans),
                // Pseudowire (Ethernet over MPLS, control word), etc.
                Some(_) => SKIP_NOT_IP,
            };
        }
    }
    SKIP_MALFORMED
}

/// Chooses IPv4 or IPv6 by the version nibble (raw IP link types).
fn by_version(data: &[u8], off: usize, end: usize, vlans: Vlans) -> Decoded {
    match data.get(off) {
        None => SKIP_TRUNC,
        Some(v) if v >> 4 == 4 => decode_ipv4(data, off, end, vlans),
        Some(v) if v >> 4 == 6 => decode_ipv6(data, off, end, vlans),
        Some(_) => SKIP_MALFORMED,
    }
}

/// BSD loopback (NULL, LOOP): 4-byte address family, host or network order.
fn null(data: &[u8]) -> Decoded {
    let Some(&[a, b, c, d]) = data.get(..4) else {
        return SKIP_TRUNC;
    };
    let le = u32::from_le_bytes([a, b, c, d]);
    let be = u32::from_be_bytes([a, b, c, d]);
    let none = Vlans::default();
    match (le, be) {
        (2, _) | (_, 2) => decode_ipv4(data, 4, data.len(), none),
        (24 | 28 | 30, _) | (_, 24 | 28 | 30) => decode_ipv6(data, 4, data.len(), none),
        _ => SKIP_NOT_IP,
    }
}

/// PPP (link type 9): optional `ff 03`, then a 2-byte (or compressed 1-byte)
/// protocol.
fn ppp(data: &[u8]) -> Decoded {
    let mut off = 0;
    if data.starts_with(&[0xff, 0x03]) {
        off = 2;
    }
    ppp_protocol(data, off, Vlans::default())
}

/// Reads a PPP protocol field at `off` (2 bytes, or 1 odd byte with protocol
/// field compression, RFC 1661 §6.5, which some PPPoE peers use despite
/// RFC 2516) and decodes IPv4/IPv6.
fn ppp_protocol(data: &[u8], mut off: usize, vlans: Vlans) -> Decoded {
    let Some(&first) = data.get(off) else {
        return SKIP_TRUNC;
    };
    let proto = if first & 1 == 1 {
        off += 1;
        u16::from(first)
    } else {
        let Some(p) = be16(data, off) else {
            return SKIP_TRUNC;
        };
        off += 2;
        p
    };
    match proto {
        PPP_IPV4 => decode_ipv4(data, off, data.len(), vlans),
        PPP_IPV6 => decode_ipv6(data, off, data.len(), vlans),
        _ => SKIP_NOT_IP,
    }
}

/// NFLOG (link type 239): 4-byte header (family, version, resource id) then TLVs
/// (length and type in host byte order, length includes the 4-byte TLV header,
/// padded to 4 bytes). The packet is the value of TLV type 9 (`NFULA_PAYLOAD`).
fn nflog(data: &[u8]) -> Decoded {
    const NFULA_PAYLOAD: u16 = 9;
    let Some(&family) = data.first() else {
        return SKIP_TRUNC;
    };
    if data.len() < 4 {
        return SKIP_TRUNC;
    }
    // Byte order of the TLV headers: the writer's host order. Decide from the
    // first TLV type, which is small (< 256, ignoring the two netlink flag bits).
    let little = match data.get(6..8) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]) & 0x3fff < 0x100,
        _ => return SKIP_TRUNC,
    };
    let rd16 = |i: usize| -> Option<u16> {
        match data.get(i..)? {
            [a, b, ..] => Some(if little {
                u16::from_le_bytes([*a, *b])
            } else {
                u16::from_be_bytes([*a, *b])
            }),
            _ => None,
        }
    };
    let mut off = 4;
    // Every TLV advances by at least 4 bytes, so this terminates.
    loop {
        let (Some(len), Some(typ)) = (rd16(off), rd16(off + 2)) else {
            return SKIP_TRUNC;
        };
        let len = usize::from(len);
        if len < 4 {
            return SKIP_MALFORMED;
        }
        if typ & 0x3fff == NFULA_PAYLOAD {
            let start = off + 4;
            let end = (off + len).min(data.len());
            if start >= end {
                return SKIP_TRUNC;
            }
            let none = Vlans::default();
            return match family {
                2 => decode_ipv4(data, start, end, none),
                10 => decode_ipv6(data, start, end, none),
                _ => SKIP_NOT_IP,
            };
        }
        off += (len + 3) & !3;
    }
}

/// ARP over Ethernet/IPv4.
fn arp(data: &[u8], off: usize, vlans: Vlans) -> Decoded {
    let Some(a) = data.get(off..off + 28) else {
        // Decide "not ours" before "truncated" when the fixed part is there.
        return match (be16(data, off), be16(data, off + 2)) {
            (Some(h), Some(p)) if h != 1 || p != 0x0800 => SKIP_NOT_IP,
            _ => SKIP_TRUNC,
        };
    };
    let htype = u16::from_be_bytes([a[0], a[1]]);
    let ptype = u16::from_be_bytes([a[2], a[3]]);
    if htype != 1 || ptype != 0x0800 {
        return SKIP_NOT_IP;
    }
    if a[4] != 6 || a[5] != 4 {
        return SKIP_MALFORMED;
    }
    let mac = |i: usize| -> [u8; 6] { [a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5]] };
    Decoded::Arp(ArpPacket {
        op: u16::from_be_bytes([a[6], a[7]]),
        sender_mac: mac(8),
        sender_ip: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
        target_mac: mac(18),
        target_ip: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
        vlan: vlans.outer,
    })
}
