//! The protocols that name hosts on a LAN: DHCP (RFC 2131/2132: a client's MAC, its host
//! name, the address it asks for or is given) and the NetBIOS name service (RFC 1002:
//! name registrations, positive query answers, node status). Responders find machines by
//! these names; detection puts them in `hosts.parquet`.
//!
//! Hand-written like the DNS parser: no allocation but the names kept, every walk
//! bounded, no panic on any bytes.

use std::net::{IpAddr, Ipv4Addr};

/// UDP ports of DHCP (server, client).
pub const DHCP_PORTS: [u16; 2] = [67, 68];
/// UDP port of the NetBIOS name service.
pub const NBNS_PORT: u16 = 137;

/// Names a node status answer lists at the most (its count is one byte).
const MAX_NODE_NAMES: usize = 32;
/// Resource records of an NBNS message read at the most.
const MAX_RECORDS: usize = 16;

/// One naming fact: `name` (and `mac`) belong to `address`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameFact {
    /// `dhcp` or `nbns`.
    pub protocol: &'static str,
    /// The message: DHCP `discover`, `offer`, `request`, `decline`, `ack`, `nak`,
    /// `release`, `inform`; NBNS `registration`, `release`, `refresh`, `query_answer`,
    /// `node_status`.
    pub message: &'static str,
    /// The address named (DHCP: given, asked for or in use; NBNS: the name's address).
    pub address: Option<Ipv4Addr>,
    /// DHCP: the client hardware address; NBNS node status: the unit id.
    pub mac: Option<[u8; 6]>,
    /// DHCP: host name (option 12) or FQDN (option 81); NBNS: the NetBIOS name, padding
    /// removed.
    pub name: Option<String>,
    /// NBNS: the name's 16th byte (00 workstation, 20 file server, 03 messenger/user,
    /// 1c domain controllers, …).
    pub suffix: Option<u8>,
}

/// The facts of a DHCP message (a UDP payload), or `None` when it is not one.
pub fn parse_dhcp(p: &[u8]) -> Option<NameFact> {
    const COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
    if p.len() < 240 || p[236..240] != COOKIE || !matches!(p[0], 1 | 2) {
        return None;
    }
    let ip_at = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
    let (ciaddr, yiaddr) = (ip_at(12), ip_at(16));
    let mac = (p[1] == 1 && p[2] == 6).then(|| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&p[28..34]);
        m
    });
    let (mut message, mut name, mut requested) = (None, None, None);
    let mut at = 240;
    while let Some(&code) = p.get(at) {
        match code {
            0 => {
                at += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        // A cut option ends the walk; what was read before it stays.
        let Some(value) = p
            .get(at + 1)
            .and_then(|&len| p.get(at + 2..at + 2 + usize::from(len)))
        else {
            break;
        };
        let len = value.len();
        match (code, value) {
            (53, [t, ..]) => message = dhcp_message(*t),
            (12, _) => name = text(value).or(name),
            (81, [flags, _, _, rest @ ..]) if name.is_none() => name = fqdn(*flags, rest),
            (50, [a, b, c, d]) => requested = Some(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => {}
        }
        at += 2 + len;
    }
    let message = message?;
    let address = [yiaddr, requested.unwrap_or(Ipv4Addr::UNSPECIFIED), ciaddr]
        .into_iter()
        .find(|a| !a.is_unspecified());
    Some(NameFact {
        protocol: "dhcp",
        message,
        address,
        mac,
        name,
        suffix: None,
    })
}

fn dhcp_message(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "discover",
        2 => "offer",
        3 => "request",
        4 => "decline",
        5 => "ack",
        6 => "nak",
        7 => "release",
        8 => "inform",
        _ => return None,
    })
}

/// Printable ASCII, trimmed; `None` when empty or not printable.
fn text(v: &[u8]) -> Option<String> {
    let v = v.strip_suffix(&[0]).unwrap_or(v);
    let s = std::str::from_utf8(v).ok()?.trim();
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')).then(|| s.to_string())
}

/// Option 81's domain name: DNS wire labels when the E flag (0x04) is set, else ASCII.
fn fqdn(flags: u8, v: &[u8]) -> Option<String> {
    if flags & 0x04 == 0 {
        return text(v);
    }
    let mut labels = Vec::new();
    let mut rest = v;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 || labels.len() >= 32 {
            break;
        }
        let label = tail.get(..usize::from(len))?;
        labels.push(text(label)?);
        rest = &tail[usize::from(len)..];
    }
    (!labels.is_empty()).then(|| labels.join("."))
}

/// The facts of a NetBIOS name service message (a UDP payload to or from port 137) sent
/// by `src`: a registration, release or refresh names the address it registers; a
/// positive query answer the address it gives; a node status answer every name of its
/// sender, with the sender's unit id. Queries (no address yet) and group names (a
/// workgroup or domain, not a host) give nothing.
pub fn parse_nbns(p: &[u8], src: IpAddr) -> Vec<NameFact> {
    parse_nbns_message(p, src).unwrap_or_default()
}

fn parse_nbns_message(p: &[u8], src: IpAddr) -> Option<Vec<NameFact>> {
    let header = p.get(..12)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let (response, opcode, rcode) = (flags & 0x8000 != 0, (flags >> 11) & 0xf, flags & 0xf);
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (questions, records) = (count(4), count(6) + count(8) + count(10));
    let mut at = 12;
    let mut question = None;
    for _ in 0..questions.min(1) {
        let (name, next) = netbios_name(p, at)?;
        question = Some(name);
        at = next.checked_add(4)?;
    }
    let message = match (response, opcode) {
        (false, 5 | 15) => "registration",
        (false, 6) => "release",
        (false, 8 | 9) => "refresh",
        (true, 0) if rcode == 0 => "query_answer",
        _ => return Some(Vec::new()),
    };
    let mut facts = Vec::new();
    for _ in 0..records.min(MAX_RECORDS) {
        let (owner, next) = netbios_name(p, at)?;
        let fixed = p.get(next..next + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = p.get(next + 10..next + 10 + rdlength)?;
        at = next + 10 + rdlength;
        let (name, suffix) = owner.or_else(|| question.clone().flatten())?;
        match rtype {
            0x20 => {
                // NB: (flags, IPv4) entries; group names (the G bit) name a workgroup
                // or domain, not a host.
                for entry in rdata.chunks_exact(6).take(MAX_RECORDS) {
                    if entry[0] & 0x80 != 0 {
                        continue;
                    }
                    facts.push(NameFact {
                        protocol: "nbns",
                        message,
                        address: Some(Ipv4Addr::new(entry[2], entry[3], entry[4], entry[5])),
                        mac: None,
                        name: Some(name.clone()),
                        suffix: Some(suffix),
                    });
                }
            }
            0x21 if response => facts.extend(node_status(rdata, src)),
            _ => {}
        }
    }
    Some(facts)
}

/// A node status answer: every name of the sender, and its unit id (MAC).
fn node_status(rdata: &[u8], src: IpAddr) -> Vec<NameFact> {
    let IpAddr::V4(address) = src else {
        return Vec::new();
    };
    let Some((&n, rest)) = rdata.split_first() else {
        return Vec::new();
    };
    let n = usize::from(n).min(MAX_NODE_NAMES);
    let mac = rest.get(n * 18..n * 18 + 6).and_then(|m| {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(m);
        (mac != [0; 6]).then_some(mac)
    });
    rest.chunks_exact(18)
        .take(n)
        .filter(|entry| entry[16] & 0x80 == 0)
        .filter_map(|entry| {
            Some(NameFact {
                protocol: "nbns",
                message: "node_status",
                address: Some(address),
                mac,
                name: Some(text(&entry[..15])?),
                suffix: Some(entry[15]),
            })
        })
        .collect()
}

/// A NetBIOS name at `at` (first-level encoded, then scope labels), or a compression
/// pointer (`None`: the question's name): (name without padding, suffix), and where the
/// bytes after it start.
#[allow(clippy::type_complexity)]
fn netbios_name(p: &[u8], at: usize) -> Option<(Option<(String, u8)>, usize)> {
    let &len = p.get(at)?;
    if len & 0xc0 == 0xc0 {
        p.get(at + 1)?;
        return Some((None, at + 2));
    }
    if len != 32 {
        return None;
    }
    let encoded = p.get(at + 1..at + 33)?;
    let mut raw = [0u8; 16];
    for (byte, pair) in raw.iter_mut().zip(encoded.chunks_exact(2)) {
        let nibble = |c: u8| c.checked_sub(b'A').filter(|&n| n < 16);
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    // Scope labels, up to the terminating zero.
    let mut next = at + 33;
    for _ in 0..64 {
        match *p.get(next)? {
            0 => return Some((text(&raw[..15]).map(|n| (n, raw[15])), next + 1)),
            l if l & 0xc0 == 0 => next += 1 + usize::from(l),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dhcp(message: u8, yiaddr: [u8; 4], options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = if matches!(message, 2 | 5 | 6) { 2 } else { 1 };
        (p[1], p[2]) = (1, 6);
        p[16..20].copy_from_slice(&yiaddr);
        p[28..34].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x07]);
        p[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        p.extend_from_slice(&[53, 1, message]);
        p.extend_from_slice(options);
        p.push(255);
        p
    }

    #[test]
    fn dhcp_request_and_ack() {
        let request = dhcp(
            3,
            [0; 4],
            &[50, 4, 10, 0, 0, 7, 0, 12, 5, b'W', b'K', b'S', b'-', b'7'],
        );
        let f = parse_dhcp(&request).unwrap();
        assert_eq!((f.protocol, f.message), ("dhcp", "request"));
        assert_eq!(f.address, Some(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(f.mac, Some([2, 0, 0, 0, 0, 7]));
        assert_eq!(f.name.as_deref(), Some("WKS-7"));
        let ack = dhcp(
            5,
            [10, 0, 0, 8],
            &[81, 9, 0x04, 0, 0, 3, b'w', b'k', b's', 0],
        );
        let f = parse_dhcp(&ack).unwrap();
        assert_eq!(
            (f.message, f.address),
            ("ack", Some(Ipv4Addr::new(10, 0, 0, 8)))
        );
        assert_eq!(f.name.as_deref(), Some("wks"));
        assert_eq!(parse_dhcp(&ack[..239]), None);
        // A cut option ends the walk: the message type read before it stays.
        let cut = dhcp(1, [0; 4], &[12, 200, b'x']);
        assert_eq!(parse_dhcp(&cut).map(|f| f.message), Some("discover"));
    }

    /// `WKS-7` first-level encoded, suffix 0x00.
    fn encoded(name: &str, suffix: u8) -> Vec<u8> {
        let mut raw = [b' '; 16];
        raw[..name.len()].copy_from_slice(name.as_bytes());
        raw[15] = suffix;
        let mut out = vec![32];
        for b in raw {
            out.extend_from_slice(&[b'A' + (b >> 4), b'A' + (b & 0xf)]);
        }
        out.push(0);
        out
    }

    #[test]
    fn nbns_registration_and_node_status() {
        let src: IpAddr = "10.0.0.7".parse().unwrap();
        let mut reg = vec![0x12, 0x34, 0x29, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        reg.extend(encoded("WKS-7", 0));
        reg.extend_from_slice(&[0, 0x20, 0, 1]);
        reg.extend_from_slice(&[
            0xc0, 0x0c, 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 6, 0, 0, 10, 0, 0, 7,
        ]);
        let facts = parse_nbns(&reg, src);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].message, "registration");
        assert_eq!(facts[0].name.as_deref(), Some("WKS-7"));
        assert_eq!(facts[0].address, Some(Ipv4Addr::new(10, 0, 0, 7)));

        let mut status = vec![0, 1, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        status.extend(encoded("*", 0));
        let mut rdata = vec![2];
        rdata[0] = 3;
        for (n, s, group) in [("WKS-7", 0u8, 0u8), ("ALICE", 3, 0), ("WORKGROUP", 0, 0x80)] {
            let mut e = [b' '; 18];
            e[..n.len()].copy_from_slice(n.as_bytes());
            (e[15], e[16], e[17]) = (s, 4 | group, 0);
            rdata.extend_from_slice(&e);
        }
        rdata.extend_from_slice(&[2, 0, 0, 0, 0, 7]);
        status.extend_from_slice(&[0, 0x21, 0, 1, 0, 0, 0, 0]);
        status.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        status.extend(rdata);
        let facts = parse_nbns(&status, src);
        let names: Vec<_> = facts
            .iter()
            .map(|f| (f.name.as_deref().unwrap(), f.suffix))
            .collect();
        assert_eq!(names, [("WKS-7", Some(0)), ("ALICE", Some(3))]);
        assert!(facts.iter().all(|f| f.mac == Some([2, 0, 0, 0, 0, 7])));
        for cut in 0..status.len() {
            let _ = parse_nbns(&status[..cut], src);
        }
    }
}
