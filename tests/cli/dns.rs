//! dns.parquet against tshark's DNS dissector, message by message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{self, Cell, Row};

/// For every file of EXPECTED.tsv with DNS counts: tshark's totals (the
/// `dns.flags.response==0/1` frame counts, as in column how_computed) are reproduced
/// from a single tshark pass, and each port-53 message tshark sees is a dns.parquet
/// row with the same QR bit at the same packet. Documented, exact exceptions:
///
/// * mDNS (5353) and LLMNR (5355) use tshark's DNS flags fields, so they are in
///   EXPECTED.tsv's counts, but wormsign only parses port 53: they are counted apart
///   and must not appear in dns.parquet.
/// * IP fragments: tshark reassembles and reports the message at the frame that
///   completes the datagram; wormsign parses the first fragment, which begins with the
///   DNS header. The expected packet is the first of tshark's `ip.fragment` /
///   `ipv6.fragment` frames.
/// * Snap-length-cut payloads: when tshark itself shows no question name although
///   the header does not say zero questions, the question section is cut off;
///   wormsign rejects such messages (counted in `dns_parse_errors`) instead of
///   emitting a row. Every such frame, and only those, is missing.
#[test]
fn dns_messages_match_tshark() {
    let Some(dir) = common::captures_and("tshark") else {
        return;
    };
    let expected = common::expected();
    let files = common::expected_files("dns_query_messages");
    assert!(files.len() >= 10);
    let mut failures = Vec::new();
    for file in &files {
        let path = dir.join(file);
        let fields = [
            "frame.number",
            "udp.srcport",
            "udp.dstport",
            "tcp.srcport",
            "tcp.dstport",
            "dns.flags.response",
            "dns.qry.name",
            "dns.count.queries",
            "ip.fragment",
            "ipv6.fragment",
        ];
        let text = common::tshark_all_fields(&path, &["-Y", "dns.flags"], &fields);
        let first = |s: &str| s.split(',').next().unwrap_or("").to_string();
        let (mut queries, mut responses, mut other_port) = (0u64, 0u64, 0u64);
        let mut want: BTreeMap<i64, bool> = BTreeMap::new();
        let mut cut: BTreeSet<i64> = BTreeSet::new();
        for line in text.lines() {
            let c: Vec<&str> = line.split('\t').collect();
            assert_eq!(c.len(), fields.len(), "{file}: tshark line {line:?}");
            let flags: Vec<&str> = c[5].split(',').filter(|s| !s.is_empty()).collect();
            queries += u64::from(flags.contains(&"0"));
            responses += u64::from(flags.contains(&"1"));
            let ports = [1, 2, 3, 4].map(|i| first(c[i]));
            if !ports.iter().any(|p| p == "53") {
                other_port += 1;
                continue;
            }
            let frame: i64 = c[0].parse().unwrap();
            let frags: Vec<i64> = c[8]
                .split(',')
                .chain(c[9].split(','))
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let packet = frags.iter().min().copied().unwrap_or(frame) - 1;
            want.insert(packet, first(c[5]) == "1");
            if c[6].is_empty() && first(c[7]) != "0" {
                cut.insert(packet);
            }
        }
        let want_q: u64 = expected[&(file.clone(), "dns_query_messages".into())]
            .parse()
            .unwrap();
        let want_r: u64 = expected[&(file.clone(), "dns_response_messages".into())]
            .parse()
            .unwrap();
        assert_eq!(
            (queries, responses),
            (want_q, want_r),
            "{file}: tshark disagrees with EXPECTED.tsv"
        );

        let run = common::wormsign(&[&path], &[]);
        run.assert_ok(file);
        let rows = run.dns();
        let got: BTreeMap<i64, bool> = rows
            .iter()
            .map(|r| (r["packet"].int(), r["is_response"].bool()))
            .collect();
        assert_eq!(got.len(), rows.len(), "{file}: two rows for one packet");
        for r in &rows {
            if r["server_p"].int() != 53 && r["client_p"].int() != 53 {
                failures.push(format!("{file}: row not on port 53: {r:?}"));
            }
        }
        let missing: BTreeSet<i64> = want
            .keys()
            .filter(|k| !got.contains_key(k))
            .copied()
            .collect();
        if missing != cut {
            failures.push(format!(
                "{file}: packets missing from dns.parquet {missing:?}, expected exactly the cut ones {cut:?}"
            ));
        }
        if run.n("dns_parse_errors") < cut.len() as u64 {
            failures.push(format!(
                "{file}: {} cut messages but dns_parse_errors {}",
                cut.len(),
                run.n("dns_parse_errors")
            ));
        }
        for (packet, is_response) in &got {
            match want.get(packet) {
                None => failures.push(format!(
                    "{file}: packet {packet} (frame {}) in dns.parquet, not DNS for tshark",
                    packet + 1
                )),
                Some(w) if w != is_response => failures.push(format!(
                    "{file}: packet {packet}: is_response {is_response}, tshark {w}"
                )),
                _ => {}
            }
        }
        let q = got.values().filter(|r| !**r).count() as u64;
        let r = got.values().filter(|r| **r).count() as u64;
        let cut_q = cut.iter().filter(|p| !want[p]).count() as u64;
        let cut_r = cut.len() as u64 - cut_q;
        let other = if other_port > 0 {
            format!(" ({other_port} mDNS/LLMNR frames not on port 53)")
        } else {
            String::new()
        };
        println!(
            "{file}: queries {q}/{want_q}, responses {r}/{want_r}, cut {cut_q}/{cut_r}{other}"
        );
        if file == "dns/mdns_zeek.pcap" && (q, r, other_port) != (0, 0, 18) {
            failures.push(format!(
                "{file}: mDNS-only capture gave {q}/{r} rows, {other_port} mDNS frames"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Question names and A/AAAA answers against tshark's, for every port-53 message that
/// both read (which messages those are is `dns_messages_match_tshark`'s test).
#[test]
fn dns_names_and_answer_addresses_match_tshark() {
    let Some(dir) = common::captures_and("tshark") else {
        return;
    };
    let mut failures = Vec::new();
    let mut compared = [0usize; 3]; // names, A, AAAA
    let mut skipped = 0;
    for file in common::expected_files("dns_query_messages") {
        let path = dir.join(&file);
        let tshark = tshark_messages(&path);
        let run = common::wormsign(&[&path], &[]);
        run.assert_ok(&file);
        for row in run.dns() {
            let packet = row["packet"].int();
            // Several messages in one frame (TCP): wormsign reads only the first. A
            // fragmented message: tshark shows it at the last fragment.
            let Some(theirs) = tshark.get(&(packet + 1)).filter(|m| m.ancount.len() == 1) else {
                skipped += 1;
                continue;
            };
            let checks = [
                same_name(&row, theirs),
                same_addresses(&row, theirs, "A", 1, &theirs.a),
                same_addresses(&row, theirs, "AAAA", 28, &theirs.aaaa),
            ];
            for (n, check) in compared.iter_mut().zip(checks) {
                match check {
                    Ok(k) => *n += k,
                    Err(e) => failures.push(format!("{file}: packet {packet}: {e}")),
                }
            }
        }
    }
    failures.dedup(); // an answer count failing both the A and the AAAA check
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let [names, a, aaaa] = compared;
    println!(
        "compared with tshark: {names} names, {a} A answers, {aaaa} AAAA answers \
         ({skipped} messages not compared)"
    );
    assert!(
        names >= 800 && a >= 80 && aaaa >= 20,
        "too little compared with tshark: {names} names, {a} A, {aaaa} AAAA answers"
    );
}

/// What tshark shows of one frame's DNS messages, each field's occurrences in order.
struct TsharkDns {
    names: Vec<String>,
    ancount: Vec<usize>,
    /// The type of every record, answers first, then authority and additional records.
    types: Vec<usize>,
    /// The A and AAAA records' addresses, of every section.
    a: Vec<String>,
    aaaa: Vec<String>,
    /// tshark found the frame malformed.
    malformed: bool,
}

/// tshark's reading of the port-53 DNS messages of a capture, by frame number.
fn tshark_messages(path: &Path) -> BTreeMap<i64, TsharkDns> {
    let fields = [
        "frame.number",
        "dns.qry.name",
        "dns.count.answers",
        "dns.resp.type",
        "dns.a",
        "dns.aaaa",
        "_ws.malformed",
    ];
    let port_53 = "dns.flags && (udp.port == 53 || tcp.port == 53)";
    let text = common::tshark_all_fields(path, &["-Y", port_53], &fields);
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    };
    let numbers = |s: &str| list(s).iter().map(|v| v.parse().unwrap()).collect();
    text.lines()
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            assert_eq!(c.len(), fields.len(), "tshark line {line:?}");
            let message = TsharkDns {
                names: list(c[1]),
                ancount: numbers(c[2]),
                types: numbers(c[3]),
                a: list(c[4]),
                aaaa: list(c[5]),
                malformed: !c[6].is_empty(),
            };
            (c[0].parse().unwrap(), message)
        })
        .collect()
}

/// The question name, where tshark shows it in letters, digits, `-`, `_` and dots (the
/// two escape other bytes differently; wormsign lower-cases): 1 if compared.
fn same_name(row: &Row, theirs: &TsharkDns) -> Result<usize, String> {
    let ours = match &row["qname"] {
        Cell::Str(s) => s.as_str(),
        _ => "",
    };
    let plain = |n: &str| {
        n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match theirs.names.first().map(String::as_str) {
        Some("<Root>") if ours.is_empty() => Ok(1),
        Some(name) if plain(name) && name.to_ascii_lowercase() == ours => Ok(1),
        Some(name) if plain(name) => Err(format!("name {ours:?}, tshark {name:?}")),
        _ => Ok(0),
    }
}

/// The addresses of the answers of type `rtype` (`name`): tshark lists those of every
/// section in message order, so those of the answers wormsign read are the first ones,
/// as many as the types of those answers show. wormsign reads at most 64 answers, and
/// fewer than tshark only where tshark finds the message malformed. The count compared.
fn same_addresses(
    row: &Row,
    theirs: &TsharkDns,
    name: &str,
    rtype: usize,
    addresses: &[String],
) -> Result<usize, String> {
    let (Cell::List(answers), Cell::List(types)) = (&row["answers"], &row["answer_types"]) else {
        return Err("answers are not lists".into());
    };
    // Where tshark stops inside the answer section, it shows fewer types than answers.
    let tshark_read = theirs.types.len().min(theirs.ancount[0]).min(64);
    if answers.len() < tshark_read && !theirs.malformed {
        return Err(format!(
            "{} answers read, tshark reads {tshark_read}",
            answers.len()
        ));
    }
    let Some(read_types) = theirs.types.get(..answers.len()) else {
        return Err(format!("{} answers, tshark shows fewer", answers.len()));
    };
    // Data of another length than an address is written in the generic form (`\# 0`
    // for none), and tshark shows no address for it.
    let (ours, generic): (Vec<&str>, Vec<&str>) = answers
        .iter()
        .zip(types)
        .filter(|(_, t)| t.str() == name)
        .map(|(v, _)| v.str())
        .partition(|v| !v.starts_with("\\# "));
    let n = read_types.iter().filter(|&&t| t == rtype).count();
    let Some(n) = n.checked_sub(generic.len()) else {
        return Err(format!(
            "{name} answers {answers:?}, tshark's types {read_types:?}"
        ));
    };
    let theirs: Vec<&str> = addresses.iter().take(n).map(String::as_str).collect();
    if ours == theirs {
        Ok(ours.len())
    } else {
        Err(format!("{name} answers {ours:?}, tshark {theirs:?}"))
    }
}
