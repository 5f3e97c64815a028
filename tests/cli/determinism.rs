//! The outputs do not depend on the thread count.

use std::ffi::OsString;

use crate::common::{self, Row};

fn tables(inputs: &[OsString], threads: &str) -> [Vec<Row>; 5] {
    let run = common::wormsign(inputs, &["--threads", threads]);
    run.assert_ok(&format!("--threads {threads}"));
    // Sessions sort by `packet`; facts of one packet keep their (per-session) order.
    let sessions = common::read_table(&run.out().join("sessions.parquet"), "packet");
    let names = common::read_table(&run.out().join("names.parquet"), "packet");
    [run.flows(), run.dns(), run.arp(), sessions, names]
}

fn assert_same_for_all_thread_counts(what: &str, inputs: &[OsString]) {
    let base = tables(inputs, "1");
    assert!(!base[0].is_empty(), "{what}: no flows");
    for threads in ["2", "8"] {
        let other = tables(inputs, threads);
        let names = ["flows", "dns", "arp", "sessions", "names"];
        for (name, (a, b)) in names.iter().zip(base.iter().zip(&other)) {
            assert_eq!(
                a.len(),
                b.len(),
                "{what}: {name} rows, threads 1 vs {threads}"
            );
            for (x, y) in a.iter().zip(b) {
                assert_eq!(x, y, "{what}: {name} row differs, threads 1 vs {threads}");
            }
        }
    }
}

/// A large SMB capture, and a fragment-heavy one (fragments of one datagram must meet
/// on one shard), each with 1, 2 and 8 threads: all rows of all five tables equal.
#[test]
fn same_rows_for_1_2_8_threads() {
    let Some(_) = common::captures() else {
        return;
    };
    let wannacry = tables(&[common::capture("smb/wannacry_lateral.pcap").into()], "2");
    assert!(
        wannacry[3].len() > 100,
        "the WannaCry trace yields session facts"
    );
    for file in [
        "smb/wannacry_lateral.pcap",
        "ip/ipv4_frag_spray_af_confusion.pcap",
    ] {
        assert_same_for_all_thread_counts(file, &[common::capture(file).into()]);
    }
}

/// Several captures on one command line, and the same captures concatenated with
/// `mergecap -a` into one pcapng: deterministic across thread counts.
#[test]
fn same_rows_for_several_inputs_and_merged_capture() {
    let Some(_) = common::captures() else {
        return;
    };
    let files = [
        "general/wikipedia_browse.pcap",
        "general/workshop_2011_browse.pcap",
        "dns/dns_tunnel_iodine.pcap",
        "linktype/sll_tcp_multi.pcap",
        "scan/ndpi_synscan_1000ports.pcap",
    ];
    let inputs: Vec<OsString> = files.iter().map(|f| common::capture(f).into()).collect();
    assert_same_for_all_thread_counts("several inputs", &inputs);
    if !common::have_tool("mergecap") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let merged = tmp.path().join("merged.pcapng");
    let mut args: Vec<OsString> = vec![
        "-a".into(),
        "-F".into(),
        "pcapng".into(),
        "-w".into(),
        merged.clone().into(),
    ];
    args.extend(inputs.iter().cloned());
    common::tool("mergecap", &args);
    assert_same_for_all_thread_counts("mergecap -a", &[merged.into()]);
}
