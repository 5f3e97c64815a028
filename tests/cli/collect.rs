//! `wormsign collect` receives the same export datagrams that `analyze` finds in a
//! capture and writes the same flow rows, and finishes its file on SIGTERM. The row
//! comparison is a consistency check between two wormsign paths (the collector and
//! `analyze` share the NetFlow decoder), not an independent reference; the record count
//! is also checked against tshark's.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wormsign_capture::{CaptureReader, Chunk};
use wormsign_decode::{decode, Decoded};

use crate::common::{capture, captures, have_tool, read_table, tool, wormsign, Row};

/// The UDP payloads of every datagram to `port` in a capture.
fn export_payloads(file: &std::path::Path, port: u16) -> Vec<Vec<u8>> {
    let mut reader = CaptureReader::open(file).expect("capture");
    let mut chunk = Chunk::default();
    let mut out = Vec::new();
    loop {
        let more = reader.read_chunk(&mut chunk, 1 << 20).expect("readable");
        for (meta, data) in chunk.iter() {
            if let Decoded::Ip(p) = decode(meta.link_type, data) {
                if p.proto == 17 && p.dst_port == port {
                    let start = p.payload_offset as usize;
                    out.push(data[start..start + p.payload_captured as usize].to_vec());
                }
            }
        }
        if !more {
            return out;
        }
    }
}

/// Flow records tshark decodes in a capture's export datagrams to `port`: one per v5
/// "pdu" plus the "(N flows)" of each v9/IPFIX data set, leaving out those of options
/// templates (options data is not a flow row; EXPECTED.tsv's `flow_records_decoded`
/// counts both).
fn tshark_flows(rel: &str, port: u16) -> usize {
    let text = tool(
        "tshark",
        &[
            "-r".to_string(),
            capture(rel).display().to_string(),
            "-d".to_string(),
            format!("udp.port=={port},cflow"),
            "-V".to_string(),
        ],
    );
    // "pdu 3/30"; "FlowSet 2 [id=1] (Options Template): 259"; "FlowSet 1 [id=257] (15 flows)"
    let mut options = std::collections::BTreeSet::new();
    let mut sets = Vec::new();
    let mut pdus = 0;
    for line in text.lines().map(str::trim) {
        if line.starts_with("pdu ") {
            pdus += 1;
        }
        let Some((_, rest)) = line.split_once(" [id=") else {
            continue;
        };
        let Some((id, tail)) = rest.split_once("] (") else {
            continue;
        };
        if let Some(ids) = tail.strip_prefix("Options Template): ") {
            options.extend(ids.split(',').map(|i| i.trim().to_string()));
        } else if let Some(n) = tail.strip_suffix(" flows)") {
            sets.push((id.to_string(), n.parse::<usize>().expect("a flow count")));
        }
    }
    let n = pdus
        + sets
            .iter()
            .filter(|(id, _)| !options.contains(id))
            .map(|s| s.1)
            .sum::<usize>();
    assert!(n > 0, "{rel}: tshark decoded no flow records");
    n
}

/// The columns a collector row shares with the analyze row of the same record.
fn record_key(r: &Row) -> (String, i64, String, i64, String, i64, i64, String) {
    (
        r["orig_h"].str().to_string(),
        r["orig_p"].int(),
        r["resp_h"].str().to_string(),
        r["resp_p"].int(),
        r["proto"].str().to_string(),
        r["orig_pkts"].int(),
        r["orig_ip_bytes"].int(),
        r["conn_state"].str().to_string(),
    )
}

/// Consistency between `collect` and `analyze` (same decoder), row for row, plus one
/// independent number: as many rows as tshark decodes records in the two captures.
#[test]
fn collector_rows_equal_analyze_rows_and_tshark_record_count_and_stop_on_sigterm() {
    if captures().is_none() {
        return;
    }
    let files = [
        (
            "netflow/graylog_netgraph_nfv5_4pkts.pcap",
            2055,
            "127.0.0.2",
        ),
        ("netflow/graylog_nprobe_nfv9_72pkts.pcap", 2055, "127.0.0.3"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let Collector {
        mut child,
        stderr: _stderr,
        listen,
    } = start_collector(dir.path(), &[]);

    let mut expected = Vec::new();
    let files_sent: Vec<(&str, u16)> = files.iter().map(|f| (f.0, f.1)).collect();
    for (file, port_in_capture, sender) in files {
        // Each capture's exporter gets its own loopback address, as distinct exporters
        // would: their template ids must not mix.
        let socket = UdpSocket::bind((sender, 0)).unwrap();
        for payload in export_payloads(&capture(file), port_in_capture) {
            socket.send_to(&payload, &listen).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let run = wormsign(&[capture(file)], &[]);
        expected.extend(run.flows().iter().map(record_key));
    }
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "collector did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "collector exit status {status}");

    let files: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "parquet")),
        "only complete files: {files:?}"
    );
    let mut got: Vec<_> = files
        .iter()
        .flat_map(|f| read_table(f, "first_packet"))
        .map(|r| record_key(&r))
        .collect();
    got.sort();
    expected.sort();
    assert!(!expected.is_empty());
    // Independent: tshark's count of flow records (not options data) in the captures.
    if have_tool("tshark") {
        let tshark_records: usize = files_sent.iter().map(|&(f, p)| tshark_flows(f, p)).sum();
        assert_eq!(
            got.len(),
            tshark_records,
            "collector rows vs tshark flow records"
        );
    }
    assert_eq!(got, expected);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["netflow"]["records"].as_u64(),
        Some(expected.len() as u64)
    );
}

#[test]
fn rotation_completes_each_file() {
    if captures().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Collector {
        mut child,
        mut stderr,
        listen,
    } = start_collector(dir.path(), &["--rotate", "1s"]);
    let payloads = export_payloads(&capture("netflow/graylog_netgraph_nfv5_4pkts.pcap"), 2055);
    let socket = UdpSocket::bind(("127.0.0.4", 0)).unwrap();
    // One datagram before the first rotation, the rest after it.
    socket.send_to(&payloads[0], &listen).unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    for p in &payloads[1..] {
        socket.send_to(p, &listen).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1000));
    stop_collector(&mut child, "-INT", &mut stderr);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files.len() >= 3,
        "a file per second plus the last: {files:?}"
    );
    let rows: usize = files
        .iter()
        .map(|f| read_table(f, "first_packet").len())
        .sum();
    assert_eq!(
        rows, 120,
        "every record of the 4 datagrams, across the files"
    );
    assert!(
        files
            .iter()
            .filter(|f| !read_table(f, "first_packet").is_empty())
            .count()
            >= 2
    );
}

/// A NetFlow v5 datagram with one TCP record `src:sport → 192.0.2.2:445` of `packets`.
/// A running `wormsign collect`, writing into DIR/out with DIR/summary.json.
struct Collector {
    child: std::process::Child,
    /// Kept open until the collector exits: it prints its counts at the end.
    stderr: BufReader<std::process::ChildStderr>,
    listen: String,
}

/// Starts the collector on a loopback port that was free a moment ago, with `extra`
/// options, and waits for its first line, which must name that address.
fn start_collector(dir: &std::path::Path, extra: &[&str]) -> Collector {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .args(["collect", "--listen", &listen, "--out"])
        .arg(dir.join("out"))
        .arg("--summary-json")
        .arg(dir.join("summary.json"))
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("collector starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(
        first.contains(&format!("collecting on udp://{listen}")),
        "{first}"
    );
    Collector {
        child,
        stderr,
        listen,
    }
}

/// Sends `signal` to the collector, waits for it and checks it exited cleanly; returns
/// the rest of its stderr.
fn stop_collector(
    child: &mut std::process::Child,
    signal: &str,
    stderr: &mut impl std::io::Read,
) -> String {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "collector: {status}: {rest}");
    rest
}

fn v5_datagram(seq: u32, src: [u8; 4], sport: u16, packets: u32) -> Vec<u8> {
    let mut p = Vec::new();
    for half in [5u16, 1] {
        p.extend(half.to_be_bytes()); // version, count
    }
    for word in [60_000u32, 1_700_000_000, 0, seq] {
        p.extend(word.to_be_bytes()); // uptime ms, secs, nsecs, sequence
    }
    p.extend([0, 0, 0, 0]); // engine type and id, sampling
    p.extend(src);
    p.extend([192, 0, 2, 2, 0, 0, 0, 0, 0, 1, 0, 2]); // dst, next hop, in/out if
    for word in [packets, packets * 60, 50_000, 59_000] {
        p.extend(word.to_be_bytes()); // packets, bytes, first, last
    }
    p.extend(sport.to_be_bytes());
    p.extend(445u16.to_be_bytes());
    p.extend([0, 0x1b, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // pad, flags, proto, tos, AS, masks
    p
}

#[test]
fn collector_survives_a_flood_of_malformed_datagrams() {
    let bin = env!("CARGO_BIN_EXE_wormsign");
    // Only loopback unless told otherwise: a collector must not open a port to the
    // network by default.
    let help = Command::new(bin)
        .args(["collect", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 127.0.0.1:2055]"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let Collector {
        mut child,
        mut stderr,
        listen,
    } = start_collector(dir.path(), &[]);

    // 50 000 datagrams at full rate: random bytes, and v5/v9/IPFIX headers with their
    // counts, lengths and sets mangled (truncated, bytes overwritten, junk appended).
    let mut v9 = vec![
        0, 9, 0, 1, 0, 0, 0, 1, 0x65, 0x53, 0xf1, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    v9.extend([0, 0, 0, 12, 1, 0, 0, 1, 0, 8, 0, 4]); // template 256: one IPv4 source
    v9.extend([1, 0, 0, 8, 10, 0, 0, 1]); // its data
    let mut ipfix = vec![0, 10, 0, 36, 0x65, 0x53, 0xf1, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    ipfix.extend([0, 2, 0, 12, 1, 0, 0, 1, 0, 8, 0, 4]); // the same template and data
    ipfix.extend(&v9[32..]);
    let bases = [v5_datagram(0, [10, 0, 0, 1], 1000, 1), v9, ipfix];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng as usize
    };
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    for i in 0..50_000 {
        let mut d = bases[i % bases.len()].clone();
        match next() % 4 {
            0 => d = (0..next() % 300).map(|_| next() as u8).collect(),
            1 => d.truncate(next() % d.len()),
            2 => {
                for _ in 0..1 + next() % 4 {
                    let at = 2 + next() % (d.len() - 2);
                    d[at] = next() as u8;
                }
            }
            _ => d.extend((0..next() % 64).map(|_| next() as u8)),
        }
        // The kernel may drop some when the collector falls behind; that is allowed.
        let _ = flood.send_to(&d, &listen);
    }
    let flood_time = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "collector died during the flood"
    );

    // Then one valid datagram, from an exporter of its own.
    let good = UdpSocket::bind(("127.0.0.5", 0)).unwrap();
    good.send_to(&v5_datagram(0, [198, 51, 100, 77], 31337, 7), &listen)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "collector died");
    let rest = stop_collector(&mut child, "-TERM", &mut stderr);

    let rows: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flat_map(|f| read_table(&f.unwrap().path(), "first_packet"))
        .collect();
    let good_rows: Vec<_> = rows
        .iter()
        .filter(|r| r["orig_h"].str() == "198.51.100.77")
        .collect();
    assert_eq!(good_rows.len(), 1, "{rest}");
    let r = good_rows[0];
    assert_eq!(
        (r["orig_p"].int(), r["resp_h"].str(), r["resp_p"].int()),
        (31337, "192.0.2.2", 445)
    );
    assert_eq!((r["proto"].str(), r["orig_pkts"].int()), ("tcp", 7));

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let received = summary["datagrams"].as_u64().unwrap();
    let malformed = summary["netflow"]["malformed"].as_u64().unwrap();
    eprintln!("flood: sent 50000 in {flood_time:?}, received {received}, malformed {malformed}");
    // Loopback rarely drops, but a loaded machine may: require a fair share, not all.
    assert!(
        (1_000..=50_001).contains(&received) && malformed >= 500 && malformed <= received,
        "received {received}, malformed {malformed} (flood sent in {flood_time:?}): {rest}"
    );
    assert!(
        rest.contains(&format!("{malformed} malformed")),
        "the summary line counts them: {rest}"
    );
}

/// sFlow datagrams sent to the collector are metered into the same flows `analyze` finds
/// in the captures they came from (sampled packets per tuple; samples counted as tshark
/// counts them).
#[test]
fn collector_meters_sflow_samples_as_analyze_does() {
    if captures().is_none() {
        return;
    }
    let files = [
        "netflow/sflow_v5_raw_samples.pcap",
        "netflow/ndpi_sflow.pcap",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut collector = start_collector(dir.path(), &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut expected = Vec::new();
    for file in files {
        for payload in export_payloads(&capture(file), 6343) {
            socket.send_to(&payload, &collector.listen).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let run = wormsign(&[capture(file)], &[]);
        let sampled = run
            .flows()
            .into_iter()
            .filter(|r| r["source"].str() == "sflow");
        expected.extend(sampled.map(|r| record_key(&r)));
    }
    std::thread::sleep(Duration::from_millis(500));
    let said = stop_collector(&mut collector.child, "-INT", &mut collector.stderr);
    assert!(
        said.contains("sflow: 10 datagrams, 6 flow samples"),
        "{said}"
    );
    let mut got: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flat_map(|e| read_table(&e.unwrap().path(), "first_packet"))
        .map(|r| record_key(&r))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(expected.len(), 5);
    assert_eq!(got, expected);
}

/// nfdump's capture files reach wormsign through nfdump's own replay: nfpcapd meters a
/// trace into an nfcapd file, nfreplay sends that file as NetFlow v9 to `wormsign
/// collect`, and the rows equal the records `nfdump -o csv` lists from the file.
#[test]
fn nfcapd_files_replayed_by_nfreplay_become_the_records_nfdump_lists() {
    if !have_tool("nfpcapd") || !have_tool("nfreplay") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("nfcapd");
    std::fs::create_dir(&files).unwrap();
    let trace =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logs/zeek/ftp-ipv4.pcap");
    tool(
        "nfpcapd",
        &[
            "-r".as_ref(),
            trace.as_os_str(),
            "-w".as_ref(),
            files.as_os_str(),
        ],
    );
    let file = std::fs::read_dir(&files)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = file.to_str().unwrap();
    // nfdump's CSV: sa, da, sp, dp, pr, ipkt, ibyt in fields 4-8, 12, 13.
    let mut want: Vec<[String; 7]> = tool("nfdump", &["-r", file, "-q", "-o", "csv"])
        .lines()
        .filter(|l| l.contains(','))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [f[3], f[4], f[5], f[6], &f[7].to_lowercase(), f[11], f[12]]
                .map(|s| s.trim().to_string())
        })
        .collect();
    let mut collector = start_collector(dir.path(), &[]);
    let port = collector.listen.rsplit(':').next().unwrap().to_string();
    tool(
        "nfreplay",
        &["-r", file, "-H", "127.0.0.1", "-p", &port, "-v", "9"],
    );
    std::thread::sleep(Duration::from_millis(500));
    stop_collector(&mut collector.child, "-INT", &mut collector.stderr);
    let mut got: Vec<[String; 7]> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flat_map(|e| read_table(&e.unwrap().path(), "first_packet"))
        .map(|r| {
            let text = |c: &str| match &r[c] {
                crate::common::Cell::Int(v) => v.to_string(),
                other => other.str().to_string(),
            };
            [
                "orig_h",
                "resp_h",
                "orig_p",
                "resp_p",
                "proto",
                "orig_pkts",
                "orig_ip_bytes",
            ]
            .map(text)
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(want.len(), 10, "nfpcapd's records of the trace: {want:?}");
    assert_eq!(got, want);
}
