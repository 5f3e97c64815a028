//! Replays fuzz inputs through the fuzz targets' own code (`fuzz/replay.rs`): crash
//! reproducers from `tests/fuzz-regressions/<target>/` must finish quickly without a
//! panic, and the committed seeds in `fuzz/seeds/<target>/` must give their known
//! results, so the targets' paths stay exercised by `cargo test` on stable.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../fuzz/replay.rs"]
mod replay;

/// The files of `dir` (relative to the repository), sorted; none if it is missing.
fn files(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).expect("readable");
            (p, data)
        })
        .collect();
    out.sort();
    out
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let seeds = files(&format!("fuzz/seeds/{target}"));
    assert!(!seeds.is_empty(), "fuzz/seeds/{target} is missing");
    seeds
}

#[test]
fn crash_reproducers_replay_quickly() {
    type Replay = fn(&[u8]);
    let targets: [(&str, Replay); 4] = [
        ("capture", |d| {
            replay::capture(d);
        }),
        ("decode", |d| {
            replay::decode(d);
        }),
        ("dns", |d| {
            replay::dns(d);
        }),
        ("netflow", |d| {
            replay::netflow(d);
        }),
    ];
    for (target, run) in targets {
        for (path, data) in files(&format!("tests/fuzz-regressions/{target}")) {
            let start = Instant::now();
            run(&data);
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "{}: {took:?}",
                path.display()
            );
        }
    }
}

#[test]
fn capture_seeds_are_one_packet_captures() {
    for (path, data) in seeds("capture") {
        assert_eq!(replay::capture(&data), (1, false), "{}", path.display());
    }
}

#[test]
fn decode_seeds_make_one_or_two_flows_of_two_packets() {
    for (path, data) in seeds("decode") {
        let (ip, flows) = replay::decode(&data).expect("a link type and a frame");
        assert!(ip, "{}", path.display());
        // Every packet is counted: two flows if the idle timeout split them, else one.
        let packets: u64 = flows.iter().map(|r| r.orig.packets + r.resp.packets).sum();
        assert_eq!(packets, 2, "{}: {flows:?}", path.display());
    }
}

#[test]
fn dns_seeds_name_www_example_com() {
    for (path, data) in seeds("dns") {
        // Each seed is a UDP payload or (tcp_*) a TCP segment with its length prefix.
        let tcp = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tcp_");
        let (udp_name, tcp_name) = replay::dns(&data);
        let name = if tcp { tcp_name } else { udp_name };
        assert_eq!(
            name.as_deref(),
            Some("www.example.com"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn netflow_seeds_give_one_record_from_the_first_exporter() {
    for (path, data) in seeds("netflow") {
        // One record each: the v9 seed's third datagram comes from the other exporter,
        // which never announced the template, so its copy of the data stays pending.
        let out = replay::netflow(&data);
        assert_eq!(out.len(), 1, "{}: {out:?}", path.display());
        assert_eq!(out[0].src.to_string(), "10.0.0.1", "{}", path.display());
        assert_eq!(
            out[0].exporter.to_string(),
            "192.0.2.1",
            "{}",
            path.display()
        );
    }
}
