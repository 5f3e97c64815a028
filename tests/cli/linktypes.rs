//! Every link type and container variant in the corpus that wormsign supports.

use crate::common;

/// Files under linktype/ and format/ with packets produce flows (ARP-only captures:
/// ARP rows) and no unknown link types; captures with link types wormsign does not
/// decode count them per type and still exit 0.
#[test]
fn link_types_and_container_variants() {
    let Some(dir) = common::captures() else {
        return;
    };
    // Radiotap (127): 802.11 is out of scope. DSA tag link type 284: unsupported.
    let unsupported = [
        ("linktype/radiotap_dns.pcap", "127", 3),
        ("malformed/tcpdump_dsa_unknown_linktype.pcap", "284", 8),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for sub in ["linktype", "format"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for path in files {
            let rel = format!("{sub}/{}", path.file_name().unwrap().to_string_lossy());
            if unsupported.iter().any(|u| u.0 == rel) {
                continue;
            }
            let run = common::wormsign(&[&path], &[]);
            if run.code() != Some(0) {
                failures.push(format!("{rel}: exit {:?}: {}", run.code(), run.stderr));
                continue;
            }
            let s = run.summary();
            if s["skipped"]["unknown_link_type"].as_u64() != Some(0) {
                failures.push(format!(
                    "{rel}: unknown link type {}",
                    s["unknown_link_types"]
                ));
            }
            if run.n("packets") == 0 {
                continue; // header-only / no-packet pcapng sections
            }
            checked += 1;
            let rows = if rel == "linktype/qinq_8021ad_arp.pcap" {
                run.arp().len()
            } else {
                run.flows().len()
            };
            if rows == 0 {
                failures.push(format!("{rel}: no rows from {} packets", run.n("packets")));
            }
        }
    }
    assert!(checked >= 35, "only {checked} files checked");
    for (rel, link_type, n) in unsupported {
        let run = common::wormsign(&[dir.join(rel)], &[]);
        run.assert_ok(rel);
        let s = run.summary();
        assert_eq!(
            s["unknown_link_types"][link_type].as_u64(),
            Some(n),
            "{rel}: {s}"
        );
        assert_eq!(s["skipped"]["unknown_link_type"].as_u64(), Some(n), "{rel}");
        assert_eq!(run.n("flows"), 0, "{rel}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
