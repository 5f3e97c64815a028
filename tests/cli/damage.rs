//! Truncated captures: every cut is survived and reported precisely.

use crate::common;

/// A real pcap cut at every record boundary and at ~200 offsets inside records: exit
/// 0, the packets before the cut are all counted, a cut inside a record is reported
/// with the byte offset of that record, and all three tables stay readable.
#[test]
fn truncation_at_every_boundary_and_inside_records() {
    let Some(_) = common::captures() else {
        return;
    };
    let data = std::fs::read(common::capture("general/wikipedia_browse.pcap")).unwrap();
    let records = common::pcap_records(&data);
    assert_eq!(records.len(), 136);
    assert_eq!(records.last().unwrap().1, data.len(), "trailing bytes");
    // (cut offset, whole records before it, start of the record cut in two)
    let mut cuts: Vec<(usize, usize, Option<usize>)> = vec![(24, 0, None)];
    for (i, &(_, end)) in records.iter().enumerate() {
        cuts.push((end, i + 1, None));
    }
    // ~200 offsets inside records: in the record header, just after it, and spread
    // over the data, chosen deterministically.
    let mut inside = Vec::new();
    for (i, &(start, end)) in records.iter().enumerate() {
        let len = end - start;
        let candidates = [
            start + 1,
            start + 15,
            start + 16,
            start + 16 + (len - 16) / 2,
            end - 1,
        ];
        let pick = candidates[i % candidates.len()];
        inside.push((pick, i, Some(start)));
        if i % 2 == 0 {
            let other = candidates[(i * 7 + 3) % candidates.len()];
            if other != pick {
                inside.push((other, i, Some(start)));
            }
        }
    }
    assert!(inside.len() >= 190, "{} inside cuts", inside.len());
    cuts.extend(inside);
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (cut, whole, cut_record) in cuts {
        let path = tmp.path().join(format!("cut_{cut}.pcap"));
        std::fs::write(&path, &data[..cut]).unwrap();
        let run = common::wormsign(&[&path], &["--threads", "1"]);
        if run.code() != Some(0) {
            failures.push(format!("cut {cut}: exit {:?}: {}", run.code(), run.stderr));
            continue;
        }
        if run.n("packets") != whole as u64 {
            failures.push(format!(
                "cut {cut}: {} packets, {whole} whole records",
                run.n("packets")
            ));
        }
        let warnings = run.warnings();
        match cut_record {
            None => {
                if !warnings.is_empty() {
                    failures.push(format!("cut {cut} at a boundary: warnings {warnings:?}"));
                }
            }
            Some(start) => {
                let offsets: Vec<Option<u64>> =
                    warnings.iter().map(|w| w["offset"].as_u64()).collect();
                if offsets != [Some(start as u64)] {
                    failures.push(format!(
                        "cut {cut} inside the record at {start}: warnings {warnings:?}"
                    ));
                }
            }
        }
        // Readable, and consistent with the summary.
        let flows = run.flows().len() as u64;
        let dns = run.dns().len() as u64;
        let arp = run.arp().len() as u64;
        if (flows, dns, arp) != (run.n("flows"), run.n("dns_records"), run.n("arp_records")) {
            failures.push(format!(
                "cut {cut}: table rows {flows}/{dns}/{arp} disagree with the summary"
            ));
        }
        let _ = std::fs::remove_file(&path);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
