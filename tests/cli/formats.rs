//! Container formats, compression, stdin, directories and non-capture inputs.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::common::{self, Row};

const SAMPLE: &str = "general/wikipedia_browse.pcap";

fn compress(tool: &str, src: &Path, dst: &Path) {
    let out = Command::new(tool)
        .arg("-c")
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} failed");
    std::fs::write(dst, out.stdout).unwrap();
}

fn flows_of(path: &Path) -> Vec<Row> {
    let run = common::wormsign(&[path], &[]);
    run.assert_ok(&path.display().to_string());
    assert_eq!(run.n("packets"), 136, "{}", path.display());
    assert!(
        run.warnings().is_empty(),
        "{}: {}",
        path.display(),
        run.stderr
    );
    run.flows()
}

/// The same capture as pcap, pcap.gz, pcap.zst and pcapng (editcap) gives identical
/// flows, every column.
#[test]
fn pcap_gzip_zstd_pcapng_give_identical_flows() {
    let Some(_) = common::captures() else {
        return;
    };
    let src = common::capture(SAMPLE);
    let base = flows_of(&src);
    assert_eq!(base.len(), 34);
    let tmp = tempfile::tempdir().unwrap();
    let mut variants = Vec::new();
    if common::have_tool("gzip") {
        let p = tmp.path().join("c.pcap.gz");
        compress("gzip", &src, &p);
        variants.push(p);
    }
    if common::have_tool("zstd") {
        let p = tmp.path().join("c.pcap.zst");
        compress("zstd", &src, &p);
        variants.push(p);
    }
    if common::have_tool("editcap") {
        let p = tmp.path().join("c.pcapng");
        common::tool(
            "editcap",
            &[
                OsString::from("-F"),
                "pcapng".into(),
                src.clone().into(),
                p.clone().into(),
            ],
        );
        let z = tmp.path().join("c.pcapng.zst");
        if common::have_tool("zstd") {
            compress("zstd", &p, &z);
            variants.push(z);
        }
        variants.push(p);
    }
    for v in variants {
        assert_eq!(flows_of(&v), base, "{}", v.display());
    }
}

/// `-` reads standard input (plain and gzip-compressed).
#[test]
fn stdin_input() {
    let Some(_) = common::captures() else {
        return;
    };
    let src = common::capture(SAMPLE);
    let base = flows_of(&src);
    let data = std::fs::read(&src).unwrap();
    let run = common::wormsign_with_stdin(&["-"], &[], Some(&data));
    run.assert_ok("stdin");
    assert_eq!(run.n("packets"), 136);
    assert_eq!(run.flows(), base);
    if common::have_tool("gzip") {
        let tmp = tempfile::tempdir().unwrap();
        let gz = tmp.path().join("s.gz");
        compress("gzip", &src, &gz);
        let run = common::wormsign_with_stdin(&["-"], &[], Some(&std::fs::read(gz).unwrap()));
        run.assert_ok("gzip stdin");
        assert_eq!(run.flows(), base);
    }
}

/// A named pipe is read once from its start: telling a log from a capture must not
/// consume bytes it cannot read again (a capture and a Zeek log, each through a FIFO).
#[test]
fn named_pipes_are_read_from_their_first_byte() {
    let Some(_) = common::captures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let logs =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logs/zat/conn.log");
    for (src, packets, flows) in [
        (
            common::capture(SAMPLE),
            136,
            flows_of(&common::capture(SAMPLE)).len(),
        ),
        (logs, 0, 360),
    ] {
        let fifo = tmp.path().join("input.fifo");
        let _ = std::fs::remove_file(&fifo);
        common::tool("mkfifo", &[&fifo]);
        let data = std::fs::read(&src).unwrap();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, data))
        };
        let run = common::wormsign(&[&fifo], &[]);
        writer.join().unwrap().unwrap();
        run.assert_ok("fifo");
        assert_eq!(run.n("packets"), packets, "{}", src.display());
        assert_eq!(run.flows().len(), flows, "{}", src.display());
    }
}

/// A directory is expanded recursively in sorted order: same result, input list and
/// packet ordinals as naming the files in that order.
#[test]
fn directory_input_is_recursive_and_sorted() {
    let Some(_) = common::captures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("caps");
    std::fs::create_dir_all(root.join("b/inner")).unwrap();
    std::fs::create_dir_all(root.join("a")).unwrap();
    let layout = [
        ("b/inner/1.pcap", "dns/dns_udp.pcap"),
        ("a/z.pcap", "general/workshop_2011_browse.pcap"),
        ("c.pcap", "scan/tcp_scan_ndpi.pcap"),
        ("b/0.pcap", SAMPLE),
    ];
    for (dst, src) in layout {
        std::fs::copy(common::capture(src), root.join(dst)).unwrap();
    }
    let sorted = ["a/z.pcap", "b/0.pcap", "b/inner/1.pcap", "c.pcap"];
    let explicit: Vec<OsString> = sorted.iter().map(|p| root.join(p).into()).collect();
    let by_dir = common::wormsign(&[&root], &[]);
    by_dir.assert_ok("directory");
    let by_list = common::wormsign(&explicit, &[]);
    by_list.assert_ok("list");
    assert_eq!(by_dir.n("inputs"), 4);
    assert_eq!(by_dir.n("packets"), 121 + 136 + 2 + 30);
    let names: Vec<String> = serde_json::from_str(
        &common::parquet_metadata(&by_dir.out().join("flows.parquet"))["wormsign.inputs"],
    )
    .unwrap();
    let want: Vec<String> = sorted
        .iter()
        .map(|p| root.join(p).display().to_string())
        .collect();
    assert_eq!(names, want);
    assert_eq!(by_dir.flows(), by_list.flows());
    assert_eq!(by_dir.dns(), by_list.dns());
    assert_eq!(by_dir.arp(), by_list.arp());
}

/// A text file alone: exit 1 with one error line. With a good capture: exit 0, one
/// warning naming the text file, and the good capture's outputs.
#[test]
fn non_capture_inputs() {
    let Some(_) = common::captures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "this is not a capture\n".repeat(10)).unwrap();
    let alone = common::wormsign(&[&text], &[]);
    assert_eq!(alone.code(), Some(1), "{}", alone.stderr);
    let errors: Vec<&str> = alone
        .stderr
        .lines()
        .filter(|l| l.starts_with("wormsign: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", alone.stderr);
    assert!(
        alone.stderr.lines().all(|l| l.starts_with("wormsign: ")),
        "unexpected stderr {}",
        alone.stderr
    );

    let good = common::capture(SAMPLE);
    let base = common::wormsign(&[&good], &[]);
    let mixed = common::wormsign(&[&text, &good], &[]);
    mixed.assert_ok("text + capture");
    let warnings = mixed.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["input"].as_str(), Some(text.to_str().unwrap()));
    assert!(mixed.stderr.contains("warning"), "{}", mixed.stderr);
    assert_eq!(mixed.n("inputs"), 2);
    assert_eq!(mixed.n("inputs_usable"), 1);
    assert_eq!(mixed.n("packets"), 136);
    assert_eq!(mixed.flows(), base.flows());
    assert_eq!(mixed.dns(), base.dns());
    assert_eq!(mixed.arp(), base.arp());
}
