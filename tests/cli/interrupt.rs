//! SIGINT/SIGTERM during `analyze`: the run stops reading, finishes the tables with what
//! it read, and exits 130; there is never a half-written output file.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{pcap_records, read_table};

#[test]
fn sigint_mid_stream_leaves_complete_outputs() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample.pcap.gz");
    let pcap = Command::new("gzip")
        .args(["-dc", sample])
        .output()
        .expect("gzip")
        .stdout;
    let records = pcap_records(&pcap);
    // Send the first half of the records, then interrupt while the reader waits for more.
    let half = records.len() / 2;
    let (cut, _) = records[half];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let summary = dir.path().join("summary.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .args(["analyze", "-", "--quiet", "--out"])
        .arg(&out)
        .arg("--summary-json")
        .arg(&summary)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&pcap[..cut]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    std::thread::sleep(Duration::from_millis(200));
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "analyze did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "interrupted runs exit 130");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "no temporary files left: {names:?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(
        report["packets"].as_u64(),
        Some(half as u64),
        "everything sent before the signal is kept"
    );
    let flows = read_table(&out.join("flows.parquet"), "first_packet");
    assert_eq!(flows.len() as u64, report["flows"].as_u64().unwrap());
    let packets: i64 = flows
        .iter()
        .map(|r| r["orig_pkts"].int() + r["resp_pkts"].int())
        .sum();
    assert_eq!(packets as u64, report["ip_packets"].as_u64().unwrap());
    read_table(&out.join("dns.parquet"), "packet");
    read_table(&out.join("arp.parquet"), "packet");
}
