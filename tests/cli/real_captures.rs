//! Packet totals against capinfos (via MANIFEST.tsv) and per-conversation agreement
//! with tshark's `-z conv,tcp` / `-z conv,udp`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::common::{self, conv_key, flow_ends, ip, ConvKey};

/// Every capture in the manifest runs without a crash, and every readable,
/// undamaged capture yields exactly the packet count capinfos reported.
#[test]
fn packet_totals_match_capinfos() {
    let Some(dir) = common::captures() else {
        return;
    };
    let manifest = common::read_tsv(&dir.join("MANIFEST.tsv"));
    assert!(manifest.len() > 100, "manifest unexpectedly small");
    let mut failures = Vec::new();
    for row in &manifest {
        let path = &row["path"];
        let listed = row["packets"].trim();
        let run = common::wormsign(&[dir.join(path)], &["--threads", "2"]);
        // Never a panic (101) or a signal: 0, or 1 with exactly one error line.
        match run.code() {
            Some(0) => {}
            Some(1) => {
                let errors: Vec<&str> = run
                    .stderr
                    .lines()
                    .filter(|l| l.starts_with("wormsign: error:"))
                    .collect();
                if errors.len() != 1 {
                    failures.push(format!(
                        "{path}: exit 1 without one error line: {}",
                        run.stderr
                    ));
                }
            }
            other => {
                failures.push(format!("{path}: exit {other:?}: {}", run.stderr));
                continue;
            }
        }
        let Some(summary) = &run.summary else {
            failures.push(format!("{path}: no summary written"));
            continue;
        };
        let got = summary["packets"].as_u64().unwrap();
        let warnings = run.warnings();
        // A readable but damaged input must say where the damage is.
        if run.n("inputs_usable") == 1 {
            for w in &warnings {
                if !w["offset"].is_u64() {
                    failures.push(format!("{path}: warning without offset: {w}"));
                }
            }
        }
        let count: Option<u64> = listed
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok());
        let damaged = listed.contains("then error");
        match (count, damaged) {
            (None, _) => {
                // "unreadable": capinfos could not open it; wormsign must refuse it too.
                assert_eq!(listed, "unreadable", "{path}: unparsed manifest count");
                if run.code() != Some(1) || got != 0 {
                    failures.push(format!(
                        "{path}: unreadable input gave exit {:?}, {got} packets",
                        run.code()
                    ));
                }
            }
            (Some(n), true) => {
                if warnings.len() != 1 {
                    failures.push(format!(
                        "{path}: damaged input without one warning: {warnings:?}"
                    ));
                }
                // capinfos reads 2 records of this fuzzed file because Wireshark's
                // libpcap reader guesses the "modified" (ss991029, 24-byte record
                // header) pcap variant when the standard layout fails at the second
                // record; the header says plain pcap 2.4, so wormsign reads record 1 and
                // reports the impossible caplen of record 2 at byte 228.
                let want = if path == "malformed/suricata_fuzz_bad_reclen.pcap" {
                    assert_eq!(n, 2, "{path}: manifest changed");
                    1
                } else {
                    n
                };
                if got != want {
                    failures.push(format!(
                        "{path}: packets {got}, expected {want} (capinfos {n})"
                    ));
                }
            }
            (Some(n), false) => {
                if got != n {
                    failures.push(format!("{path}: packets {got}, capinfos {n}"));
                }
                if run.code() != Some(0) {
                    failures.push(format!("{path}: exit {:?}", run.code()));
                }
                if !path.starts_with("malformed/") && !warnings.is_empty() {
                    failures.push(format!("{path}: unexpected warnings {warnings:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What tshark says about one conversation, oriented by the key's lower endpoint.
#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
struct Dirs {
    /// Packets from the lower endpoint, from the higher one.
    pkts: [u64; 2],
    /// IP bytes (IPv4 total length; IPv6 payload length + 40) in each direction.
    ip_bytes: [u64; 2],
}

/// Parses tshark's conversation tables: per key, frames `[lo->hi, hi->lo]` summed over
/// rows (tshark can list one tuple on several rows), and the row count per protocol.
fn parse_conv_tables(text: &str) -> (BTreeMap<ConvKey, [u64; 2]>, [usize; 2]) {
    let mut out: BTreeMap<ConvKey, [u64; 2]> = BTreeMap::new();
    let mut rows = [0usize; 2];
    let mut proto = 0u8;
    for line in text.lines() {
        if line.starts_with("TCP Conversations") {
            proto = 6;
        } else if line.starts_with("UDP Conversations") {
            proto = 17;
        }
        let Some((a, rest)) = line.split_once("<->") else {
            continue;
        };
        let toks: Vec<&str> = rest.split_whitespace().collect();
        let endpoint = |s: &str| {
            let (h, p) = s.trim().rsplit_once(':').expect("addr:port");
            (ip(h), p.parse::<u16>().expect("port"))
        };
        let (a, b) = (endpoint(a), endpoint(toks[0]));
        // Columns: "<-" frames bytes "bytes", "->" frames bytes "bytes", ...; "->" is
        // A to B (A is the left endpoint).
        let b_to_a: u64 = toks[1].parse().expect("frames");
        let a_to_b: u64 = toks[4].parse().expect("frames");
        let (key, a_lo) = conv_key(proto, a, b);
        let e = out.entry(key).or_default();
        if a_lo {
            e[0] += a_to_b;
            e[1] += b_to_a;
        } else {
            e[0] += b_to_a;
            e[1] += a_to_b;
        }
        rows[usize::from(proto == 17)] += 1;
    }
    (out, rows)
}

/// What one tshark pass says of a file's TCP and UDP conversations.
struct TsharkConversations {
    /// Packets and IP bytes per key, summed from the packets.
    per_packet: BTreeMap<ConvKey, Dirs>,
    /// Frames per key, from the conversation tables.
    tables: BTreeMap<ConvKey, [u64; 2]>,
    /// The tables' rows, TCP and UDP.
    rows: [usize; 2],
    /// Each address of those packets as tshark writes it.
    address_text: BTreeMap<IpAddr, String>,
}

/// One tshark pass per file: `-T fields` per packet (for IP bytes) and the
/// conversation tables printed after the packets.
///
/// Options: `ip.defragment:FALSE` / `ipv6.defragment:FALSE` so a fragmented datagram
/// is not shown as one reassembled frame (wormsign counts every fragment as a packet).
/// The compared files carry no fragments (asserted from wormsign's summary), so the
/// option only protects against silent changes. `-E occurrence=f` takes the outer
/// header's fields; frames with ICMP/ICMPv6 are skipped because the TCP/UDP header
/// inside an ICMP error is not a packet of that conversation.
fn tshark_conversations(file: &std::path::Path) -> TsharkConversations {
    let fields = [
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "ip.len",
        "ipv6.plen",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
        "icmp.type",
        "icmpv6.type",
    ];
    let options = [
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-z",
        "conv,tcp",
        "-z",
        "conv,udp",
    ];
    let text = common::tshark_fields(file, &options, &fields);
    let (packets, tables) = text.split_once("\n====").unwrap_or((&text, ""));
    let mut per_packet: BTreeMap<ConvKey, Dirs> = BTreeMap::new();
    let mut address_text = BTreeMap::new();
    for line in packets.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        assert_eq!(c.len(), fields.len(), "tshark line {line:?}");
        if !c[10].is_empty() || !c[11].is_empty() {
            continue;
        }
        let (proto, sp, dp) = if !c[6].is_empty() {
            (6, c[6], c[7])
        } else if !c[8].is_empty() {
            (17, c[8], c[9])
        } else {
            continue;
        };
        let (src, dst, len) = if !c[0].is_empty() {
            (c[0], c[1], c[4].parse::<u64>().unwrap())
        } else {
            (c[2], c[3], c[5].parse::<u64>().unwrap() + 40)
        };
        for text in [src, dst] {
            address_text.insert(ip(text), text.to_string());
        }
        let (key, src_lo) = conv_key(
            proto,
            (ip(src), sp.parse().unwrap()),
            (ip(dst), dp.parse().unwrap()),
        );
        let d = usize::from(!src_lo);
        let e = per_packet.entry(key).or_default();
        e.pkts[d] += 1;
        e.ip_bytes[d] += len;
    }
    let (tables, rows) = parse_conv_tables(tables);
    TsharkConversations {
        per_packet,
        tables,
        rows,
        address_text,
    }
}

/// wormsign's TCP/UDP flows merged per 5-tuple (flows split by timeouts or port reuse
/// are summed), oriented like [`Dirs`].
fn wormsign_conversations(run: &common::Run) -> BTreeMap<ConvKey, Dirs> {
    let mut out: BTreeMap<ConvKey, Dirs> = BTreeMap::new();
    for r in run.flows() {
        let (proto, orig, resp) = flow_ends(&r);
        if proto != 6 && proto != 17 {
            continue;
        }
        let (key, orig_lo) = conv_key(proto, orig, resp);
        let (o, rr) = if orig_lo { (0, 1) } else { (1, 0) };
        let e = out.entry(key).or_default();
        e.pkts[o] += r["orig_pkts"].int() as u64;
        e.pkts[rr] += r["resp_pkts"].int() as u64;
        e.ip_bytes[o] += r["orig_ip_bytes"].int() as u64;
        e.ip_bytes[rr] += r["resp_ip_bytes"].int() as u64;
    }
    out
}

/// Per 5-tuple, packets per direction match tshark's conversation tables and IP bytes
/// per direction match the sum of tshark's IP length fields; the number of distinct
/// TCP and UDP tuples equals EXPECTED.tsv's tcp_conversations / udp_conversations.
/// Tunnels are not unwrapped here (`--tunnel-depth 0`), as tshark lists carriers too.
/// Each flow's addresses are written as tshark writes them (RFC 5952 for IPv6).
#[test]
fn conversations_match_tshark() {
    let Some(dir) = common::captures_and("tshark") else {
        return;
    };
    let expected = common::expected();
    let files = common::expected_files("tcp_conversations");
    assert!(
        files.len() >= 10,
        "EXPECTED.tsv lists few conversation files"
    );
    let mut failures = Vec::new();
    let mut same_text = [0usize; 2];
    for file in &files {
        let path = dir.join(file);
        // Tunnels stay whole: tshark's tables list the carrier's conversation as well as
        // the carried one, and the carried ones are checked by `tunnels.rs`.
        let run = common::wormsign(&[&path], &["--tunnel-depth", "0"]);
        run.assert_ok(file);
        assert_eq!(
            run.n("fragments"),
            0,
            "{file}: fragments would need the defragmentation rules documented above"
        );
        let want_tcp: usize = expected[&(file.clone(), "tcp_conversations".into())]
            .parse()
            .unwrap();
        let want_udp: usize = expected[&(file.clone(), "udp_conversations".into())]
            .parse()
            .unwrap();
        let TsharkConversations {
            per_packet,
            tables: conv,
            rows,
            address_text,
        } = tshark_conversations(&path);
        assert_eq!(
            rows,
            [want_tcp, want_udp],
            "{file}: tshark's own row counts differ from EXPECTED.tsv"
        );
        for r in run.flows() {
            for text in [r["orig_h"].str(), r["resp_h"].str()] {
                match address_text.get(&ip(text)) {
                    Some(theirs) if theirs == text => {
                        same_text[usize::from(text.contains(':'))] += 1
                    }
                    Some(theirs) => {
                        failures.push(format!("{file}: address {text}, tshark {theirs}"))
                    }
                    None => {}
                }
            }
        }
        let ours = wormsign_conversations(&run);
        let n_tcp = ours.keys().filter(|k| k.0 == 6).count();
        let n_udp = ours.keys().filter(|k| k.0 == 17).count();
        if (n_tcp, n_udp) != (want_tcp, want_udp) {
            failures.push(format!(
                "{file}: {n_tcp} TCP / {n_udp} UDP tuples, tshark {want_tcp} / {want_udp}"
            ));
        }
        for key in conv.keys().chain(ours.keys()) {
            let theirs = conv.get(key).copied();
            let mine = ours.get(key).map(|d| d.pkts);
            if theirs != mine {
                failures.push(format!("{file}: {key:?}: packets [lo->hi, hi->lo] tshark {theirs:?}, wormsign {mine:?}"));
            }
        }
        for key in per_packet.keys().chain(ours.keys()) {
            let theirs = per_packet.get(key).map(|d| d.ip_bytes);
            let mine = ours.get(key).map(|d| d.ip_bytes);
            if theirs != mine {
                failures.push(format!("{file}: {key:?}: IP bytes [lo->hi, hi->lo] tshark {theirs:?}, wormsign {mine:?}"));
            }
        }
    }
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let [v4, v6] = same_text;
    println!("flow addresses written as tshark writes them: {v4} IPv4, {v6} IPv6");
    assert!(
        v4 >= 1000 && v6 >= 20,
        "too few addresses compared with tshark: {v4} IPv4, {v6} IPv6"
    );
}
