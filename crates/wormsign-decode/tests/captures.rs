//! Decoding of the shared real captures (skipped with a message if they are absent; a
//! failure under CI, see `wormsign-testutil`).
//!
//! A tiny test-only reader for legacy pcap (both byte orders, usec/nsec) and the
//! common pcapng blocks (SHB, IDB, EPB, SPB) lives here because the capture crate
//! is written separately.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use wormsign_decode::{decode, decode_with, dns, Decoded, PacketSummary, SkipReason, TunnelConfig};
use wormsign_testutil::shared_captures;

/// (link type, frame bytes) for every readable record; stops at the first
/// corrupt record.
fn read_capture(bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(magic) = bytes.get(..4) else {
        return out;
    };
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => read_pcap(bytes, true, &mut out),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => read_pcap(bytes, false, &mut out),
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(bytes, &mut out),
        _ => {}
    }
    out
}

fn rd32(b: &[u8], i: usize, le: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    })
}

fn read_pcap(b: &[u8], le: bool, out: &mut Vec<(u16, Vec<u8>)>) {
    // Low 16 bits: link type; upper bits may hold FCS information.
    let Some(lt) = rd32(b, 20, le).map(|v| v as u16) else {
        return;
    };
    let mut off = 24;
    while let Some(caplen) = rd32(b, off + 8, le) {
        let start = off + 16;
        let Some(data) = b.get(start..start + caplen as usize) else {
            return;
        };
        if caplen > 0x0400_0000 {
            return;
        }
        out.push((lt, data.to_vec()));
        off = start + caplen as usize;
    }
}

fn read_pcapng(b: &[u8], out: &mut Vec<(u16, Vec<u8>)>) {
    let mut le = true;
    let mut ifaces: Vec<u16> = Vec::new();
    let mut off = 0;
    while off + 12 <= b.len() {
        if b[off..off + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            le = b[off + 8..off + 12] == [0x4d, 0x3c, 0x2b, 0x1a];
            ifaces.clear();
        }
        let (Some(typ), Some(len)) = (rd32(b, off, le), rd32(b, off + 4, le)) else {
            return;
        };
        let len = len as usize;
        if len < 12 || len % 4 != 0 || off + len > b.len() {
            return;
        }
        let body = &b[off + 8..off + len - 4];
        match typ {
            1 => {
                let lt = body.get(..2).map_or(0, |b| {
                    let b = [b[0], b[1]];
                    if le {
                        u16::from_le_bytes(b)
                    } else {
                        u16::from_be_bytes(b)
                    }
                });
                ifaces.push(lt);
            }
            6 => {
                let (Some(iface), Some(caplen)) = (rd32(body, 0, le), rd32(body, 12, le)) else {
                    return;
                };
                let Some(data) = body.get(20..20 + caplen as usize) else {
                    return;
                };
                let lt = ifaces.get(iface as usize).copied().unwrap_or(1);
                out.push((lt, data.to_vec()));
            }
            3 => {
                let lt = ifaces.first().copied().unwrap_or(1);
                out.push((lt, body.get(4..).unwrap_or(&[]).to_vec()));
            }
            _ => {}
        }
        off += len;
    }
}

fn all_capture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng" | "cap" | "bin")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn load(rel: &str) -> Option<Vec<(u16, Vec<u8>)>> {
    let dir = shared_captures()?;
    let bytes = std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let pkts = read_capture(&bytes);
    assert!(!pkts.is_empty(), "{rel}: no packets read");
    Some(pkts)
}

fn summaries(pkts: &[(u16, Vec<u8>)]) -> Vec<Decoded> {
    pkts.iter().map(|(lt, p)| decode(*lt, p)).collect()
}

fn ips(decoded: &[Decoded]) -> Vec<PacketSummary> {
    decoded
        .iter()
        .filter_map(|d| match d {
            Decoded::Ip(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn payload<'a>(p: &'a [u8], s: &PacketSummary) -> &'a [u8] {
    &p[s.payload_offset as usize..][..s.payload_captured as usize]
}

#[test]
fn every_capture_decodes_without_panic() {
    let Some(dir) = shared_captures() else {
        return;
    };
    let mut total = 0usize;
    for f in all_capture_files(&dir) {
        let bytes = std::fs::read(&f).unwrap();
        let pkts = read_capture(&bytes);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut truncated = 0;
        let mut dns_ok = 0;
        let mut dns_err = 0;
        for (lt, p) in &pkts {
            let d = decode(*lt, p);
            let key = match &d {
                Decoded::Ip(s) => {
                    let end = s.payload_offset as usize + s.payload_captured as usize;
                    assert!(end <= p.len(), "{}: {s:?}", f.display());
                    assert!(s.payload_captured <= s.payload_len);
                    truncated += usize::from(s.truncated);
                    if s.has_ports && matches!(s.proto, 6 | 17) {
                        let ports = [s.src_port, s.dst_port];
                        if ports.contains(&53) || ports.contains(&5353) {
                            let body = payload(p, s);
                            let r = if s.proto == 6 {
                                dns::parse_tcp(body)
                            } else {
                                dns::parse(body)
                            };
                            if !body.is_empty() {
                                if r.is_ok() {
                                    dns_ok += 1
                                } else {
                                    dns_err += 1
                                }
                            }
                        }
                    }
                    "ip".to_string()
                }
                Decoded::Arp(_) => "arp".to_string(),
                Decoded::Skipped(r) => r.as_str().to_string(),
            };
            *counts.entry(key).or_default() += 1;
        }
        total += pkts.len();
        println!(
            "{:<60} {:>6} pkts {:?} truncated={} dns ok/err={}/{}",
            f.strip_prefix(&dir).unwrap().display(),
            pkts.len(),
            counts,
            truncated,
            dns_ok,
            dns_err
        );
    }
    println!("total packets: {total}");
    assert!(total > 1000);
}

#[test]
fn sll2_icmp() {
    let Some(pkts) = load("linktype/sll2_icmp.pcap") else {
        return;
    };
    let d = summaries(&pkts);
    let s = ips(&d);
    // 4 echo packets, then an ARP request and a RARP (0x8035) frame.
    assert_eq!(s.len(), 4, "{d:?}");
    assert!(matches!(d[4], Decoded::Arp(a) if a.op == 1));
    assert_eq!(d[5], Decoded::Skipped(SkipReason::NotIp));
    let protos: HashSet<u8> = s.iter().map(|s| s.proto).collect();
    assert_eq!(protos, HashSet::from([1, 58]));
    // Echo request/reply types in src_port.
    assert!(s
        .iter()
        .all(|s| s.has_ports && [0, 8, 128, 129].contains(&s.src_port)));
}

#[test]
fn vlan_stacks() {
    for (file, depth) in [
        ("linktype/vlan_8021q_http.pcap", 1),
        ("linktype/qinq_http.pcap", 2),
        ("linktype/vlan_qinqinq_http.pcap", 3),
    ] {
        let Some(pkts) = load(file) else {
            return;
        };
        let s = ips(&summaries(&pkts));
        assert_eq!(s.len(), pkts.len(), "{file}");
        for s in &s {
            assert_eq!(s.proto, 6, "{file}");
            assert!(s.src_port == 80 || s.dst_port == 80, "{file} {s:?}");
            assert!(s.vlan.is_some(), "{file}");
            assert_eq!(s.inner_vlan.is_some(), depth >= 2, "{file}");
        }
    }
}

#[test]
fn qinq_arp() {
    let Some(pkts) = load("linktype/qinq_8021ad_arp.pcap") else {
        return;
    };
    for d in summaries(&pkts) {
        let Decoded::Arp(a) = d else { panic!("{d:?}") };
        assert!(a.vlan.is_some() && matches!(a.op, 1 | 2));
    }
}

#[test]
fn null_smb2_single_conversation() {
    let Some(pkts) = load("linktype/null_smb2.pcap") else {
        return;
    };
    let s = ips(&summaries(&pkts));
    assert_eq!(s.len(), 689);
    assert!(s
        .iter()
        .all(|s| s.proto == 6 && (s.src_port == 445 || s.dst_port == 445)));
    assert_eq!(tcp_conversations(&s), 1);
}

#[test]
fn other_link_types_are_all_ip() {
    for (file, proto) in [
        ("linktype/null_rdp.pcap", 6),
        ("linktype/null_socks.pcap", 6),
        ("linktype/sll_smb1_eicar.pcap", 6),
        ("linktype/sll2_suricata.pcap", 6),
        ("linktype/raw101_tls_tcp.pcap", 6),
        ("linktype/raw101_ipv4_dns.pcap", 17),
        ("linktype/raw101_ipv6_dns.pcap", 17),
        ("linktype/ipv4_228_dcerpc.pcap", 6),
        ("linktype/ipv6_229_dns.pcap", 17),
        ("linktype/nflog_http.pcap", 6),
        ("linktype/pppoe_session_http.pcap", 6),
        ("linktype/mixed_vlan_mpls.pcap", 6),
        ("linktype/ppp_dlt_nDPI.pcap", 17),
    ] {
        let Some(pkts) = load(file) else {
            return;
        };
        let d = summaries(&pkts);
        let s = ips(&d);
        assert_eq!(s.len(), pkts.len(), "{file}: {d:?}");
        assert!(s.iter().all(|s| s.proto == proto), "{file}");
    }
}

#[test]
fn ppp_mixed_and_fragments() {
    let Some(pkts) = load("linktype/ppp_quic_ipv4_ipv6.pcap") else {
        return;
    };
    let s = ips(&summaries(&pkts));
    assert_eq!(s.len(), pkts.len());
    assert!(s.iter().any(|s| s.src.is_ipv6() && s.proto == 58));
    assert!(s.iter().any(|s| s.src.is_ipv4() && s.proto == 17));

    let Some(pkts) = load("linktype/ppp_frag_ipv4_syn.pcap") else {
        return;
    };
    let s = ips(&summaries(&pkts));
    assert_eq!(s.len(), pkts.len());
    let frags: Vec<_> = s.iter().filter_map(|s| s.fragment).collect();
    assert!(!frags.is_empty());
    assert!(frags.iter().all(|f| f.id == frags[0].id));
    for s in &s {
        let later = s.fragment.is_some_and(|f| f.offset > 0);
        assert_eq!(s.has_ports, !later, "{s:?}");
    }
}

#[test]
fn unsupported_link_type() {
    let Some(pkts) = load("linktype/radiotap_dns.pcap") else {
        return;
    };
    for d in summaries(&pkts) {
        assert_eq!(d, Decoded::Skipped(SkipReason::UnknownLinkType));
    }
}

fn conv_key(s: &PacketSummary) -> (IpAddr, u16, IpAddr, u16) {
    let a = (s.src, s.src_port);
    let b = (s.dst, s.dst_port);
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (x.0, x.1, y.0, y.1)
}

fn tcp_conversations(s: &[PacketSummary]) -> usize {
    s.iter()
        .filter(|s| s.proto == 6 && s.has_ports)
        .map(conv_key)
        .collect::<HashSet<_>>()
        .len()
}

/// Rows of EXPECTED.tsv this test checks, at least: every decode metric row of the corpus
/// when this was written (130 conversation, SYN and DNS rows, plus the 9
/// `tcp_conversations_port_*` rows). Fewer means rows stopped being checked.
const MIN_CHECKED: usize = 139;

/// Compare simple counts with the tshark-derived values in EXPECTED.tsv. Every row is
/// either checked here, or its metric is listed in [`NOT_DECODE_METRICS`]; a missing file,
/// an unknown metric or a value that is not a count fails the test.
#[test]
fn matches_tshark_counts() {
    let Some(dir) = shared_captures() else {
        return;
    };
    let tsv = dir.join("EXPECTED.tsv");
    let expected = std::fs::read_to_string(&tsv)
        .unwrap_or_else(|e| panic!("{}: {e} (the corpus is incomplete)", tsv.display()));
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut known_rows = Vec::new();
    for (n, line) in expected.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, metric, value, ..] = cols[..] else {
            failures.push(format!("EXPECTED.tsv line {}: fewer than 3 columns", n + 1));
            continue;
        };
        if NOT_DECODE_METRICS.iter().any(|(m, _)| *m == metric) {
            continue;
        }
        // A listed difference must show exactly its two values; any other value, or a
        // row that now agrees with tshark, fails (then update or remove the entry).
        let known = KNOWN_DIFFS
            .iter()
            .find(|k| k.file == file && k.metric == metric);
        if known.is_some() {
            known_rows.push((file, metric));
        }
        let port_filter = match metric.strip_prefix("tcp_conversations_port_") {
            Some(p) => match p.parse::<u16>() {
                Ok(p) => Some(p),
                Err(_) => {
                    failures.push(format!("{file}: unknown metric {metric}"));
                    continue;
                }
            },
            None => None,
        };
        let Ok(value) = value.parse::<usize>() else {
            failures.push(format!("{file} {metric}: value {value:?} is not a count"));
            continue;
        };
        let bytes = match std::fs::read(dir.join(file)) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{file} {metric}: {e} (listed in EXPECTED.tsv)"));
                continue;
            }
        };
        let pkts = read_capture(&bytes);
        let decoded: Vec<(PacketSummary, &[u8])> = pkts
            .iter()
            .filter_map(|(lt, p)| match decode(*lt, p) {
                Decoded::Ip(s) => Some((s, p.as_slice())),
                _ => None,
            })
            .collect();
        // tshark counts a conversation at every layer: a tunnelled packet counts as its
        // outer packet too.
        let outer_of_tunnelled = pkts.iter().filter_map(|(lt, p)| {
            match (decode(*lt, p), decode_with(*lt, p, &TunnelConfig::off())) {
                (Decoded::Ip(inner), Decoded::Ip(outer)) if inner.tunnel.is_some() => Some(outer),
                _ => None,
            }
        });
        let s: Vec<PacketSummary> = decoded
            .iter()
            .map(|d| d.0)
            .chain(outer_of_tunnelled)
            .collect();
        let syn_only = || {
            s.iter()
                .filter(|s| s.proto == 6 && s.tcp_flags & 0x12 == 0x02)
        };
        let dns_msgs = || {
            decoded.iter().filter_map(|(s, p)| {
                let ports = [s.src_port, s.dst_port];
                // DNS, mDNS and LLMNR (tshark counts all three as DNS).
                if !s.has_ports || ![53, 5353, 5355].iter().any(|p| ports.contains(p)) {
                    return None;
                }
                let body = payload(p, s);
                match s.proto {
                    17 => dns::parse(body).ok(),
                    6 if !body.is_empty() => dns::parse_tcp(body).ok(),
                    _ => None,
                }
            })
        };
        let got = match metric {
            "tcp_conversations" => tcp_conversations(&s),
            // `tshark -z conv,tcp,tcp.port==N`: conversations with a packet to or from port N.
            _ if port_filter.is_some() => {
                let port = port_filter.unwrap_or_default();
                let on_port: Vec<PacketSummary> = s
                    .iter()
                    .filter(|s| s.src_port == port || s.dst_port == port)
                    .copied()
                    .collect();
                tcp_conversations(&on_port)
            }
            "udp_conversations" => s
                .iter()
                .filter(|s| s.proto == 17 && s.has_ports)
                .map(conv_key)
                .collect::<HashSet<_>>()
                .len(),
            "ip_conversations" | "ipv6_conversations" => {
                let v6 = metric.starts_with("ipv6");
                s.iter()
                    .filter(|s| s.src.is_ipv6() == v6)
                    .map(|s| (s.src.min(s.dst), s.src.max(s.dst)))
                    .collect::<HashSet<_>>()
                    .len()
            }
            "tcp_syn_only_packets" => syn_only().count(),
            "tcp_syn_distinct_dst_ports" => {
                syn_only().map(|s| s.dst_port).collect::<HashSet<_>>().len()
            }
            "tcp_syn_distinct_dst_hosts" => syn_only().map(|s| s.dst).collect::<HashSet<_>>().len(),
            "tcp_syn_distinct_src_hosts" => syn_only().map(|s| s.src).collect::<HashSet<_>>().len(),
            "dns_query_messages" => dns_msgs().filter(|m| !m.is_response).count(),
            "dns_response_messages" => dns_msgs().filter(|m| m.is_response).count(),
            "dns_distinct_query_names" => dns_msgs()
                .filter(|m| !m.is_response)
                .filter_map(|m| m.qname)
                .filter(|n| !n.is_empty())
                .collect::<HashSet<_>>()
                .len(),
            _ => {
                failures.push(format!(
                    "{file}: unknown metric {metric} (check it here or list it in NOT_DECODE_METRICS)"
                ));
                continue;
            }
        };
        checked += 1;
        let mark = match known {
            None if got == value => "ok ",
            None => {
                failures.push(format!("{file} {metric}: tshark={value} ours={got}"));
                "DIFF"
            }
            Some(k) if (k.tshark, k.ours) == (value, got) => "known",
            Some(k) => {
                failures.push(format!(
                    "{file} {metric}: tshark={value} ours={got}, but the known difference is \
                     tshark={} ours={} ({})",
                    k.tshark, k.ours, k.why
                ));
                "DIFF"
            }
        };
        println!("{mark} {file:<55} {metric:<28} tshark={value:<6} ours={got}");
    }
    for k in KNOWN_DIFFS {
        if !known_rows.contains(&(k.file, k.metric)) {
            failures.push(format!(
                "known difference {} {}: no such row in EXPECTED.tsv",
                k.file, k.metric
            ));
        }
    }
    println!("checked {checked}, {} failures", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        checked >= MIN_CHECKED,
        "only {checked} EXPECTED.tsv rows checked, want at least {MIN_CHECKED}"
    );
}

/// EXPECTED.tsv metrics that are not about decoding single packets, and where each is
/// checked.
const NOT_DECODE_METRICS: &[(&str, &str)] = &[
    (
        "cflow_export_packets",
        "crates/wormsign-netflow/tests/captures.rs",
    ),
    (
        "flow_records_decoded",
        "crates/wormsign-netflow/tests/captures.rs, tests/cli/netflow.rs",
    ),
    (
        "template_records",
        "crates/wormsign-netflow/tests/captures.rs",
    ),
    (
        "options_template_records",
        "crates/wormsign-netflow/tests/captures.rs",
    ),
    (
        "data_sets_without_template",
        "crates/wormsign-netflow/tests/captures.rs",
    ),
    (
        "cflow_versions",
        "not checked: the version is a field of NetflowRecord, not counted",
    ),
    (
        "cflow_header_count_sum_v5_v9",
        "not checked: header counts are not kept",
    ),
    ("sflow_datagrams", "not checked: sFlow is not decoded"),
    ("sflow_samples_sum", "not checked: sFlow is not decoded"),
];

/// A difference from tshark that is expected, pinned to both values: tshark reassembles
/// and follows streams; this crate summarises single packets.
struct KnownDiff {
    file: &'static str,
    metric: &'static str,
    tshark: usize,
    ours: usize,
    why: &'static str,
}

const KNOWN_DIFFS: &[KnownDiff] = &[
    KnownDiff {
        file: "dns/dns_badpackets_ndpi.pcap",
        metric: "dns_response_messages",
        tshark: 91,
        ours: 83,
        why: "8 responses (frames 4, 11, 12, 21, 25, 28, 38, 74) are first IP fragments cut \
              by the snap length (46-72 bytes captured of ~1500): tshark counts the partial \
              message, `dns::parse` says Truncated",
    },
    KnownDiff {
        file: "dns/mdns_zeek.pcap",
        metric: "dns_distinct_query_names",
        tshark: 6,
        ours: 2,
        why: "the mDNS queries carry 2 to 4 questions each; only the first question's name is \
              parsed (_ipp._tcp.local and one ip6.arpa name), tshark counts all 6",
    },
];

#[test]
#[ignore]
fn debug_dns_file() {
    let Ok(file) = std::env::var("DNS_DEBUG_FILE") else {
        return;
    };
    let Some(pkts) = load(&file) else { return };
    for (i, (lt, p)) in pkts.iter().enumerate() {
        if let Decoded::Ip(s) = decode(*lt, p) {
            let body = payload(p, &s);
            let r = if s.proto == 6 {
                dns::parse_tcp(body)
            } else {
                dns::parse(body)
            };
            println!(
                "{} {:?} {}:{} -> {:?} frag={:?} trunc={}",
                i + 1,
                s.proto,
                s.src_port,
                s.dst_port,
                r.as_ref()
                    .map(|m| (m.is_response, m.qname.clone(), m.qtype, m.answers.len())),
                s.fragment,
                s.truncated
            );
        }
    }
}

/// Dumps one line per frame (for manual comparison with tshark):
/// `DUMP_FILE=linktype/x.pcap cargo test --test captures dump -- --ignored`.
#[test]
#[ignore]
fn dump_summaries() {
    let Ok(file) = std::env::var("DUMP_FILE") else {
        return;
    };
    let Some(pkts) = load(&file) else { return };
    for (i, (lt, p)) in pkts.iter().enumerate() {
        match decode(*lt, p) {
            Decoded::Ip(s) => println!(
                "DUMP\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                i + 1,
                s.src,
                s.dst,
                s.proto,
                if s.has_ports {
                    s.src_port.to_string()
                } else {
                    String::new()
                },
                if s.has_ports {
                    s.dst_port.to_string()
                } else {
                    String::new()
                },
                s.ip_len,
                s.tcp_flags,
                s.payload_len
            ),
            other => println!("DUMP\t{}\t{other:?}", i + 1),
        }
    }
}

/// Tunnelled packets in real captures of VXLAN (Zeek), GRE/ERSPAN type II and Teredo
/// (Suricata) decode, frame by frame, to what tshark shows as the innermost layer: the
/// inner addresses, or ARP, or a non-IP frame; and the outermost tunnel's kind,
/// endpoints and VNI or ERSPAN session.
#[test]
fn tunnels_match_tshark() {
    let Some(dir) = shared_captures() else {
        return;
    };
    if !wormsign_testutil::require_tool("tshark", "--version") {
        return;
    }
    let mut tunnelled = 0;
    for file in [
        "linktype/vxlan.pcap",
        "linktype/gre_erspan2.pcap",
        "linktype/teredo.pcap",
    ] {
        let path = dir.join(file);
        let pkts = read_capture(&std::fs::read(&path).expect("corpus file"));
        let rows = tshark_layers(&path);
        assert_eq!(rows.len(), pkts.len(), "{file}: frame count");
        for (n, ((lt, frame), row)) in pkts.iter().zip(&rows).enumerate() {
            let at = format!("{file} frame {}", n + 1);
            tunnelled += usize::from(check_layers(&at, decode(*lt, frame), row));
        }
    }
    // 8 VXLAN, 4 ERSPAN and 4 Teredo frames carry IP.
    assert_eq!(tunnelled, 16, "tunnelled IP packets");
}

/// tshark's fields for one frame, split at tshark's `,` between layers.
struct Layers {
    protocols: Vec<String>,
    fields: BTreeMap<&'static str, Vec<String>>,
}

const LAYER_FIELDS: [&str; 7] = [
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "vxlan.vni",
    "erspan.spanid",
    "arp.src.proto_ipv4",
];

fn tshark_layers(path: &Path) -> Vec<Layers> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(["-T", "fields", "-e", "frame.protocols"]);
    for f in LAYER_FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = |s: &str, sep: char| -> Vec<String> {
        s.split(sep)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Layers {
                protocols: split(cols[0], ':'),
                fields: LAYER_FIELDS
                    .iter()
                    .zip(&cols[1..])
                    .map(|(f, v)| (*f, split(v, ',')))
                    .collect(),
            }
        })
        .collect()
}

/// Checks one decoded frame against tshark's layers; true if it was a tunnelled IP packet.
fn check_layers(at: &str, decoded: Decoded, t: &Layers) -> bool {
    let field = |name: &str| t.fields.get(name).cloned().unwrap_or_default();
    let innermost = t
        .protocols
        .iter()
        .rposition(|p| ["ip", "ipv6", "arp"].contains(&p.as_str()));
    let is_tunnel = |p: &String| ["vxlan", "erspan", "teredo", "gre"].contains(&p.as_str());
    // The most specific tunnel name (`gre:erspan` is ERSPAN) before the innermost layer,
    // or after it when the tunnel carries no IP.
    let tunnel_at = match t.protocols[..innermost.unwrap_or(0)]
        .iter()
        .rposition(is_tunnel)
    {
        Some(i) => Some(i),
        None => t.protocols.iter().position(is_tunnel),
    };
    match (innermost.map(|i| t.protocols[i].as_str()), tunnel_at) {
        (Some("arp"), _) => {
            let Decoded::Arp(a) = decoded else {
                panic!("{at}: tshark shows ARP, decoded {decoded:?}")
            };
            assert_eq!(
                a.sender_ip.to_string(),
                field("arp.src.proto_ipv4")[0],
                "{at}"
            );
            false
        }
        (Some(ip), _) if tunnel_at.is_none_or(|t| innermost.unwrap() > t) => {
            let Decoded::Ip(s) = decoded else {
                panic!("{at}: tshark shows {ip}, decoded {decoded:?}")
            };
            let (src, dst) = if ip == "ip" {
                ("ip.src", "ip.dst")
            } else {
                ("ipv6.src", "ipv6.dst")
            };
            let last = |f: &str| field(f).last().cloned().unwrap_or_default();
            assert_eq!(
                (s.src.to_string(), s.dst.to_string()),
                (last(src), last(dst)),
                "{at}"
            );
            let Some(kind) = tunnel_at.map(|i| t.protocols[i].as_str()) else {
                assert_eq!(s.tunnel, None, "{at}: no tunnel in tshark");
                return false;
            };
            let tunnel = s
                .tunnel
                .unwrap_or_else(|| panic!("{at}: tshark decodes {kind}"));
            let id = match kind {
                "vxlan" => field("vxlan.vni")
                    .first()
                    .map(|v| v.parse::<u32>().unwrap()),
                "erspan" => field("erspan.spanid")
                    .first()
                    .map(|v| v.parse::<u32>().unwrap()),
                _ => None,
            };
            assert!(
                tunnel.kind.as_str().starts_with(kind),
                "{at}: {tunnel:?} vs {kind}"
            );
            assert_eq!(tunnel.id, id, "{at}");
            assert_eq!(tunnel.depth, 1, "{at}");
            let outer = (tunnel.src.to_string(), tunnel.dst.to_string());
            assert_eq!(
                outer,
                (field("ip.src")[0].clone(), field("ip.dst")[0].clone()),
                "{at}"
            );
            true
        }
        // The innermost IP layer is the carrier: the tunnel holds something else (CDP).
        _ => {
            assert_eq!(
                decoded,
                Decoded::Skipped(SkipReason::NotIp),
                "{at}: {:?}",
                t.protocols
            );
            false
        }
    }
}
