//! NetFlow/IPFIX exports inside captures become flow rows (source = "netflow") instead
//! of being metered as UDP flows of their own.

use crate::common::{capture, captures, expected, wormsign};

/// The extra ports tshark was told to decode as cflow when EXPECTED.tsv was made.
const EXTRA_PORTS: [&str; 8] = [
    "--netflow-port",
    "9990",
    "--netflow-port",
    "9991",
    "--netflow-port",
    "9992",
    "--netflow-port",
    "2057",
];

#[test]
fn v5_records_become_flow_rows_with_exporter_and_sampling() {
    if captures().is_none() {
        return;
    }
    let expected = expected();
    for file in [
        "netflow/graylog_netgraph_nfv5_4pkts.pcap",
        "netflow/nfv5_29rec_port9990.pcap",
    ] {
        let want: u64 = expected[&(file.to_string(), "flow_records_decoded".to_string())]
            .parse()
            .unwrap();
        let run = wormsign(&[capture(file)], &EXTRA_PORTS);
        run.assert_ok(file);
        let rows = run.flows();
        assert_eq!(
            rows.len() as u64,
            want,
            "{file}: one row per exported record"
        );
        assert!(
            rows.iter().all(|r| r["source"].str() == "netflow"),
            "{file}: export packets are not metered"
        );
        assert!(rows.iter().all(|r| r["end_reason"].str() == "exported"));
        assert!(rows.iter().all(|r| !r["exporter"].str().is_empty()));
        assert_eq!(run.summary()["netflow"]["records"].as_u64(), Some(want));
        for r in &rows {
            assert_eq!(
                r["pkts_scaled"].int(),
                r["orig_pkts"].int() * r["sampling_interval"].int()
            );
            assert_eq!(r["resp_pkts"].int(), 0, "records are unidirectional");
        }
    }
}

#[test]
fn exports_to_unlisted_ports_are_ordinary_udp_flows() {
    if captures().is_none() {
        return;
    }
    // Port 9990 is not a default NetFlow port: without --netflow-port the one export
    // datagram (10.19.144.41:40000 -> 10.19.144.26:9990) is a UDP flow like any other;
    // with it, it becomes 29 records.
    let file = capture("netflow/nfv5_29rec_port9990.pcap");
    let run = wormsign(&[&file], &[]);
    run.assert_ok("no extra port");
    let rows = run.flows();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["source"].str(), rows[0]["proto"].str()),
        ("packets", "udp")
    );
    assert_eq!(rows[0]["resp_p"].int(), 9990);
    let with_port = wormsign(&[&file], &["--netflow-port", "9990"]);
    let rows = with_port.flows();
    assert_eq!(rows.len(), 29);
    assert!(rows.iter().all(|r| r["source"].str() == "netflow"));
}

#[test]
fn netflow_rows_are_identical_for_any_thread_count() {
    let Some(dir) = captures() else {
        return;
    };
    let inputs: Vec<_> = [
        "nfv9_template_plus_data.pcap",
        "pmacct_ipfix_cisco.pcap",
        "graylog_nprobe_nfv9_mixed.pcap",
    ]
    .iter()
    .map(|f| dir.join("netflow").join(f))
    .collect();
    let one = wormsign(
        &inputs,
        &[&["--threads", "1"][..], &EXTRA_PORTS[..]].concat(),
    );
    let two = wormsign(
        &inputs,
        &[&["--threads", "2"][..], &EXTRA_PORTS[..]].concat(),
    );
    one.assert_ok("1 thread");
    two.assert_ok("2 threads");
    assert!(one.flows().iter().any(|r| r["source"].str() == "netflow"));
    assert_eq!(one.flows(), two.flows());
    assert_eq!(one.summary()["netflow"], two.summary()["netflow"]);
}
