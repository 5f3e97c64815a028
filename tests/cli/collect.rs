//! `wormsign collect` receives the same export datagrams that `analyze` finds in a
//! capture and writes the same flow rows, and finishes its file on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wormsign_capture::{CaptureReader, Chunk};
use wormsign_decode::{decode, Decoded};

use crate::common::{capture, captures, read_table, wormsign, Row};

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

#[test]
fn collector_writes_what_analyze_finds_and_stops_on_sigterm() {
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
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .args(["collect", "--listen", &listen, "--out"])
        .arg(dir.path().join("out"))
        .arg("--summary-json")
        .arg(dir.path().join("summary.json"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("collector starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("collecting on udp://127.0.0.1"), "{first}");

    let mut expected = Vec::new();
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
    let port = 40_000 + (std::process::id() % 20_000) as u16;
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .args(["collect", "--rotate", "1s", "--listen", &listen, "--out"])
        .arg(dir.path().join("out"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("collector starts");
    // Keep the pipe open until the collector exits: it prints its counts at the end.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let payloads = export_payloads(&capture("netflow/graylog_netgraph_nfv5_4pkts.pcap"), 2055);
    let socket = UdpSocket::bind(("127.0.0.4", 0)).unwrap();
    // One datagram before the first rotation, the rest after it.
    socket.send_to(&payloads[0], &listen).unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    for p in &payloads[1..] {
        socket.send_to(p, &listen).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1000));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "collector: {status}: {rest}");
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
