//! Zeek semantics spot checks, verified packet by packet with tshark, and Community ID.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::common::{self, conv_key, flow_ends, ip, ConvKey, Endpoint, Row};

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const RST: u16 = 0x04;
const ACK: u16 = 0x10;

/// TCP packets per tuple from tshark: (frame number, sender endpoint, flags).
fn tshark_tcp(path: &std::path::Path) -> BTreeMap<ConvKey, Vec<(i64, Endpoint, u16)>> {
    let text = common::tshark_fields(
        path,
        &["-Y", "tcp && !icmp && !icmpv6"],
        &[
            "frame.number",
            "ip.src",
            "ip.dst",
            "ipv6.src",
            "ipv6.dst",
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags",
        ],
    );
    let mut out: BTreeMap<ConvKey, Vec<(i64, Endpoint, u16)>> = BTreeMap::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        let (src, dst) = if c[1].is_empty() {
            (c[3], c[4])
        } else {
            (c[1], c[2])
        };
        let s = (ip(src), c[5].parse().unwrap());
        let d = (ip(dst), c[6].parse().unwrap());
        let flags = u16::from_str_radix(c[7].trim_start_matches("0x"), 16).unwrap();
        out.entry(conv_key(6, s, d).0)
            .or_default()
            .push((c[0].parse().unwrap(), s, flags));
    }
    out
}

/// What the packets of one tuple say the Zeek state must be, if they form one of
/// the spot-checked patterns: (orig, expected conn_state, letters the history holds).
fn classify(packets: &[(i64, Endpoint, u16)]) -> Option<(Endpoint, &'static str, &'static str)> {
    let (_, orig, first_flags) = packets[0];
    let main = |f: u16| f & (SYN | ACK | RST | FIN);
    if main(first_flags) != SYN {
        return None;
    }
    let from_orig: Vec<u16> = packets
        .iter()
        .filter(|p| p.1 == orig)
        .map(|p| p.2)
        .collect();
    let from_resp: Vec<u16> = packets
        .iter()
        .filter(|p| p.1 != orig)
        .map(|p| p.2)
        .collect();
    let only_syns = from_orig.iter().all(|f| main(*f) == SYN);
    if only_syns && from_resp.is_empty() {
        return Some((orig, "S0", "S"));
    }
    if only_syns && from_resp.iter().all(|f| f & RST != 0) {
        return Some((orig, "REJ", "Sr"));
    }
    let any = |v: &[u16], m: u16| v.iter().any(|f| f & m == m);
    let no_rst = !packets.iter().any(|p| p.2 & RST != 0);
    if no_rst && any(&from_resp, SYN | ACK) && any(&from_orig, FIN) && any(&from_resp, FIN) {
        return Some((orig, "SF", "ShFf"));
    }
    None
}

/// SF for complete sessions (SYN, SYN-ACK, FIN both ways, no RST), REJ for a SYN
/// answered by RST, S0 for unanswered SYNs: the flow starting at the tuple's first
/// packet has that state, the SYN sender as originator, and the history letters.
#[test]
fn tcp_states_match_packets() {
    let Some(dir) = common::captures_and("tshark") else {
        return;
    };
    let files = [
        "scan/ndpi_synscan_1000ports.pcap",
        "scan/tcp_scan_ndpi.pcap",
        "scan/nmap_version_scan_zeek.pcap",
        "linktype/vlan_8021q_http.pcap",
        "smb/smb2_file_read_zeek.pcap",
        "general/workshop_2011_browse.pcap",
        "smb/eternalblue_failed_patched_win7.pcap",
    ];
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in files {
        let path = dir.join(file);
        let run = common::wormsign(&[&path], &[]);
        run.assert_ok(file);
        let flows: BTreeMap<i64, Row> = run
            .flows()
            .into_iter()
            .map(|r| (r["first_packet"].int(), r))
            .collect();
        for (key, packets) in tshark_tcp(&path) {
            let Some((orig, state, letters)) = classify(&packets) else {
                continue;
            };
            *seen.entry(state).or_default() += 1;
            let first = packets[0].0 - 1;
            let Some(flow) = flows.get(&first) else {
                failures.push(format!("{file}: {key:?}: no flow starts at packet {first}"));
                continue;
            };
            let (_, o, _) = flow_ends(flow);
            let history = flow["history"].str();
            if o != orig
                || flow["conn_state"].str() != state
                || !letters.chars().all(|l| history.contains(l))
            {
                failures.push(format!(
                    "{file}: {key:?}: want orig {orig:?} {state} with {letters}, got orig {o:?} {} {history}",
                    flow["conn_state"].str()
                ));
            }
        }
    }
    for state in ["S0", "REJ", "SF"] {
        assert!(
            seen.get(state).copied().unwrap_or(0) > 0,
            "no {state} pattern found: {seen:?}"
        );
    }
    println!("checked patterns: {seen:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ICMP echo request and reply form one flow: orig_p = request type (8 / 128),
/// resp_p = 0, the requester is the originator, and the packets per side match tshark.
#[test]
fn icmp_echo_is_one_flow() {
    let Some(dir) = common::captures_and("tshark") else {
        return;
    };
    let mut checked = 0;
    for file in [
        "smb/eternalblue_failed_patched_win7.pcap",
        "linktype/sll2_icmp.pcap",
    ] {
        let path = dir.join(file);
        let text = common::tshark_fields(
            &path,
            &[
                "-Y",
                "icmp.type==8 || icmp.type==0 || icmpv6.type==128 || icmpv6.type==129",
            ],
            &[
                "frame.number",
                "ip.src",
                "ip.dst",
                "ipv6.src",
                "ipv6.dst",
                "icmp.type",
                "icmpv6.type",
            ],
        );
        // Per (proto, requester, responder): first frame, requests, replies.
        let mut pairs: BTreeMap<(u8, IpAddr, IpAddr), (i64, i64, i64)> = BTreeMap::new();
        for line in text.lines() {
            let c: Vec<&str> = line.split('\t').collect();
            let frame: i64 = c[0].parse().unwrap();
            let (proto, src, dst, t) = if c[1].is_empty() {
                (58u8, ip(c[3]), ip(c[4]), c[6])
            } else {
                (1u8, ip(c[1]), ip(c[2]), c[5])
            };
            let request = t == "8" || t == "128";
            let key = if request {
                (proto, src, dst)
            } else {
                (proto, dst, src)
            };
            let e = pairs.entry(key).or_insert((frame, 0, 0));
            if request {
                e.1 += 1
            } else {
                e.2 += 1
            }
        }
        let run = common::wormsign(&[&path], &[]);
        run.assert_ok(file);
        let flows = run.flows();
        for ((proto, req, resp), (first, n_req, n_rep)) in pairs {
            assert!(n_req > 0 && n_rep > 0, "{file}: not an echo exchange");
            let flow = flows
                .iter()
                .find(|r| r["first_packet"].int() == first - 1)
                .unwrap_or_else(|| panic!("{file}: no flow at packet {}", first - 1));
            let want_type = if proto == 1 { 8 } else { 128 };
            let (p, o, r) = flow_ends(flow);
            assert_eq!((p, o, r), (proto, (req, want_type), (resp, 0)), "{file}");
            assert_eq!(
                (flow["orig_pkts"].int(), flow["resp_pkts"].int()),
                (n_req, n_rep),
                "{file}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

/// SHA-1 (FIPS 180-4), small and slow, for the Community ID check.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// Community ID v1, seed 0, written from the specification
/// (github.com/corelight/community-id-spec): ICMP types map to their counterpart
/// as the "destination port", one-way ICMP messages keep their code and are not
/// reordered.
fn community_id(proto: u8, orig: Endpoint, resp: Endpoint) -> String {
    let (mut s, mut d) = (orig, resp);
    let mut one_way = false;
    let counterpart = |t: u16| -> Option<u16> {
        let pairs: &[(u16, u16)] = if proto == 1 {
            &[
                (8, 0),
                (0, 8),
                (13, 14),
                (14, 13),
                (15, 16),
                (16, 15),
                (10, 9),
                (9, 10),
                (17, 18),
                (18, 17),
            ]
        } else {
            &[
                (128, 129),
                (129, 128),
                (133, 134),
                (134, 133),
                (135, 136),
                (136, 135),
                (130, 131),
                (131, 130),
                (144, 145),
                (145, 144),
            ]
        };
        pairs.iter().find(|p| p.0 == t).map(|p| p.1)
    };
    let ports = matches!(proto, 1 | 6 | 17 | 58 | 132);
    if proto == 1 || proto == 58 {
        match counterpart(s.1) {
            Some(c) => d.1 = c,
            None => one_way = true,
        }
    }
    let lower = (addr_bytes(s.0), s.1) <= (addr_bytes(d.0), d.1);
    if !one_way && !lower {
        std::mem::swap(&mut s, &mut d);
    }
    let mut buf = vec![0u8, 0u8];
    buf.extend(addr_bytes(s.0));
    buf.extend(addr_bytes(d.0));
    buf.push(proto);
    buf.push(0);
    if ports {
        buf.extend(s.1.to_be_bytes());
        buf.extend(d.1.to_be_bytes());
    }
    format!("1:{}", base64(&sha1(&buf)))
}

/// Every flow's community_id equals an independent implementation of the spec.
///
/// tshark 4.0 has no Community ID support (`-o communityid.do_calculation:TRUE` is
/// an unknown preference; the dissector arrived in Wireshark 4.2), so the reference
/// is the spec itself, checked first against SHA-1 and the spec's published example.
#[test]
fn community_id_matches_spec() {
    assert_eq!(base64(&sha1(b"abc")), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    // Published example of the spec's README (TCP, seed 0).
    assert_eq!(
        community_id(6, (ip("128.232.110.120"), 34855), (ip("66.35.250.204"), 80)),
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    );
    let Some(dir) = common::captures() else {
        return;
    };
    let mut checked = 0;
    for file in [
        "ip/ipv6_community_id.pcap",
        "general/wikipedia_browse.pcap",
        "linktype/sll2_icmp.pcap",
        "smb/eternalblue_failed_patched_win7.pcap",
        "scan/ndpi_synscan_1000ports.pcap",
        "linktype/ppp_quic_ipv4_ipv6.pcap",
    ] {
        let run = common::wormsign(&[dir.join(file)], &[]);
        run.assert_ok(file);
        assert_eq!(
            run.n("fragments"),
            0,
            "{file}: port-less fragments are not modelled here"
        );
        for r in run.flows() {
            let (proto, o, resp) = flow_ends(&r);
            let want = community_id(proto, o, resp);
            assert_eq!(r["community_id"].str(), want, "{file}: {r:?}");
            checked += 1;
        }
    }
    assert!(checked > 2000, "{checked}");
}
