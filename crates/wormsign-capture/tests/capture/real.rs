//! Real captures from ../shared/captures, checked against MANIFEST.tsv.

use crate::build::drain;
use std::collections::BTreeSet;
use wormsign_capture::{CaptureReader, Container};
use wormsign_testutil::shared_captures;

/// Malformed files where this crate and capinfos legitimately disagree:
/// path, records read here, why.
const KNOWN_DIFFERENT: &[(&str, usize, &str)] = &[(
    "malformed/suricata_fuzz_bad_reclen.pcap",
    1,
    "record 2 has caplen 1409179648; Wireshark then guesses another pcap \
     flavour with longer record headers and reads one more bogus record, \
     this crate follows the magic and reports Corrupt",
)];

struct Row {
    path: String,
    link_type: String,
    packets: String,
}

fn manifest(dir: &std::path::Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (p, lt, n) = (col("path"), col("link_type"), col("packets"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                path: f[p].to_string(),
                link_type: f[lt].to_string(),
                packets: f[n].to_string(),
            }
        })
        .collect()
}

/// Link-type numbers named in the manifest's link_type column, e.g.
/// "NULL(0)+ETHERNET(1); tshark ..." → {0, 1}. Raw fields in brackets are ignored.
fn manifest_link_types(col: &str) -> BTreeSet<u16> {
    let head = col.split(';').next().unwrap_or("");
    let head = head.split('[').next().unwrap_or("");
    head.split('+')
        .filter_map(|t| {
            t.rsplit_once('(')
                .and_then(|(_, n)| n.trim_end_matches(')').trim().parse().ok())
        })
        .collect()
}

struct Seen {
    n_records: usize,
    link_types: BTreeSet<u16>,
    outcome: String,
    container: Option<Container>,
}

fn read(path: &std::path::Path) -> Seen {
    match CaptureReader::open(path) {
        Err(e) => Seen {
            n_records: 0,
            link_types: BTreeSet::new(),
            outcome: format!("open: {e}"),
            container: None,
        },
        Ok(r) => {
            let container = Some(r.container());
            let o = drain(r, 64 << 10, 1_000_000);
            Seen {
                n_records: o.records.len(),
                link_types: o.records.iter().map(|(m, _)| m.link_type).collect(),
                outcome: o.error.map_or("clean end".to_string(), |e| e.to_string()),
                container,
            }
        }
    }
}

#[test]
fn real_captures_match_manifest_counts() {
    let Some(dir) = shared_captures() else { return };
    let rows = manifest(&dir);
    assert!(rows.len() >= 150, "manifest has only {} rows", rows.len());
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for row in &rows {
        let seen = read(&dir.join(&row.path));
        let want: Option<usize> = row
            .packets
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok());
        let malformed = row.path.starts_with("malformed/");
        if Some(seen.n_records) != want || (malformed && seen.outcome != "clean end") {
            table.push(format!(
                "{}\t{}\t{}\t{}",
                row.path, row.packets, seen.n_records, seen.outcome
            ));
        }
        if malformed {
            let expected_diff = KNOWN_DIFFERENT.iter().find(|(p, _, _)| *p == row.path);
            match (want, expected_diff) {
                (_, Some(&(_, n, _))) if seen.n_records != n => {
                    failures.push(format!(
                        "{}: {} records, expected {n}",
                        row.path, seen.n_records
                    ));
                }
                (Some(n), None) if n != seen.n_records => {
                    failures.push(format!(
                        "{}: {} records ({}), manifest says {}",
                        row.path, seen.n_records, seen.outcome, row.packets
                    ));
                }
                (None, None) if seen.container.is_some() => {
                    failures.push(format!(
                        "{}: opened, manifest says {}",
                        row.path, row.packets
                    ));
                }
                _ => {}
            }
            if row.packets.contains("then error") && seen.outcome == "clean end" {
                failures.push(format!("{}: clean end, capinfos reports damage", row.path));
            }
            continue;
        }
        if Some(seen.n_records) != want || seen.outcome != "clean end" {
            failures.push(format!(
                "{}: {} records ({}), manifest says {}",
                row.path, seen.n_records, seen.outcome, row.packets
            ));
        }
        let listed = manifest_link_types(&row.link_type);
        if !seen.link_types.is_subset(&listed) {
            failures.push(format!(
                "{}: link types {:?} not within manifest {:?}",
                row.path, seen.link_types, listed
            ));
        }
        if seen.container.is_none() {
            failures.push(format!("{}: did not open", row.path));
        }
    }
    println!("path\tmanifest packets\trecords read\toutcome");
    for line in &table {
        println!("{line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn format_pcapng_link_types_are_per_interface() {
    let Some(dir) = shared_captures() else { return };
    for (file, want) in [
        // Every packet is on interface 48 (Ethernet) of 126 mixing 1, 113 and
        // 274; interfaces 9 and 14 are SLL, so an off-by-one lookup shows.
        ("format/pcapng_126_idbs_ldap.pcapng", vec![1u16]),
        // Interface 1 of these is NULL, interface 0 Ethernet.
        (
            "format/pcapng_gen_test202_3sections_mixed_endian.pcapng",
            vec![0, 1],
        ),
        ("format/pcapng_gen_test201_3sections_be.pcapng", vec![0, 1]),
    ] {
        let seen = read(&dir.join(file));
        assert_eq!(seen.container, Some(Container::PcapNg), "{file}");
        assert_eq!(seen.link_types, want.into_iter().collect(), "{file}");
    }
}
