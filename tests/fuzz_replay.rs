//! Replays fuzz inputs through the fuzz targets' own code (`fuzz/replay.rs`): crash
//! reproducers and hand-made hostile inputs from `tests/fuzz-regressions/<target>/` must
//! finish quickly without a panic (the hostile ones with a known outcome), and the
//! committed seeds in `fuzz/seeds/<target>/` must give their known results, so the
//! targets' paths stay exercised by `cargo test` on stable.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use wormsign_capture::{CaptureReader, Chunk};
use wormsign_decode::{decode, Decoded};
use wormsign_flow::{FlowConfig, FlowRecord, FlowSource, FlowTable};

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

/// Replays `data` through `run` on a thread of its own: its outcome (`Debug`), or a
/// failure when it panics or is still running after 2 s (so a hang fails instead of
/// blocking the test).
fn replay_bounded(path: &Path, data: Vec<u8>, run: fn(&[u8]) -> String) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(&data));
    });
    match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(outcome) => outcome,
        Err(RecvTimeoutError::Timeout) => panic!("{}: still running after 2 s", path.display()),
        Err(RecvTimeoutError::Disconnected) => panic!("{}: the replay panicked", path.display()),
    }
}

/// The hand-made hostile inputs (`hostile_*`, one per bound the invariants promise) and
/// what replaying each must give.
const HOSTILE: [(&str, &str, &str); 9] = [
    // An EPB claiming ~4 GiB: an error, no record, no 4 GiB buffer.
    ("capture", "hostile_pcapng_block_length_4gib", "(0, true)"),
    // 200 stacked VLAN tags (the walk stops at 16): not decoded as IP, no flow.
    ("decode", "hostile_vlan_tags_x200", "Some((false, []))"),
    // A name that is a compression pointer to itself: no name either way.
    ("dns", "hostile_name_pointer_loop", "(None, None)"),
    // A v9 template claiming 65535 fields in a 16-byte body: rejected, no record.
    ("netflow", "hostile_v9_template_65535_fields", "[]"),
    // An SMB message claiming 16 MiB, then 300 segments each beyond a hole: counted off
    // and given up as gaps, nothing read as SMB.
    ("inspect", "hostile_smb_16mib_message_and_300_holes", "[]"),
    // A gzip'd Zeek log whose one data line is 4 MiB long: skipped as malformed, not kept.
    (
        "logs",
        "hostile_zeek_line_of_4mib",
        "Some((\"zeek-tsv\", 0, 0, 1))",
    ),
    // Findings (each framed as `[u32 LE length][bytes]`) of a layout this version does
    // not read (2): refused.
    ("findings", "hostile_layout_2", "None"),
    // Layout 1 claiming 2^32-1 parts covered, then nothing: refused, no 4 G vector.
    ("findings", "hostile_covers_4g_parts", "None"),
    // Found by the fuzzer with the rules check left out: a part's kept session of service
    // 6 where the rules have 6 (0 to 5) panicked in the propagation graph. Refused.
    ("findings", "session_of_service_6_of_6", "None"),
];

#[test]
fn crash_reproducers_replay_quickly() {
    type Replay = fn(&[u8]) -> String;
    let targets: [(&str, Replay); 7] = [
        ("capture", |d| format!("{:?}", replay::capture(d))),
        ("decode", |d| format!("{:?}", replay::decode(d))),
        ("dns", |d| format!("{:?}", replay::dns(d))),
        ("netflow", |d| format!("{:?}", replay::netflow(d))),
        ("inspect", |d| format!("{:?}", replay::inspect(d))),
        ("logs", |d| format!("{:?}", replay::logs(d))),
        ("findings", |d| format!("{:?}", replay::findings(d))),
    ];
    for (target, run) in targets {
        let inputs = files(&format!("tests/fuzz-regressions/{target}"));
        // At least the hostile inputs: an empty directory would check nothing.
        assert!(
            !inputs.is_empty(),
            "tests/fuzz-regressions/{target} holds no input to replay"
        );
        let mut hostile_seen = 0;
        for (path, data) in inputs {
            let outcome = replay_bounded(&path, data, run);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some((_, _, want)) = HOSTILE.iter().find(|h| h.0 == target && h.1 == name) {
                assert_eq!(outcome, *want, "{}", path.display());
                hostile_seen += 1;
            }
        }
        assert_eq!(
            hostile_seen,
            HOSTILE.iter().filter(|h| h.0 == target).count(),
            "tests/fuzz-regressions/{target}: a hostile input is missing"
        );
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
        // The tunnel seeds reach their inner packet (and so the tunnel decoders).
        let tunnelled = path.to_string_lossy().contains("tunnel_");
        assert!(
            flows.iter().all(|r| r.tunnel.is_some() == tunnelled),
            "{}: {flows:?}",
            path.display()
        );
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
fn netflow_seeds_give_one_flow_from_the_first_exporter() {
    for (path, data) in seeds("netflow") {
        // One record each: the v9 seed's third datagram comes from the other exporter,
        // which never announced the template, so its copy of the data stays pending.
        // The sFlow seed's one sample is metered into one flow, its agent 192.0.2.1.
        let out = replay::netflow(&data);
        assert_eq!(out.len(), 1, "{}: {out:?}", path.display());
        assert_eq!(
            out[0].orig_addr.to_string(),
            "10.0.0.1",
            "{}",
            path.display()
        );
        let exporter = match out[0].source {
            FlowSource::Netflow(n) => n.exporter,
            FlowSource::Sflow(s) => s.agent,
            other => panic!("{}: {other:?}", path.display()),
        };
        assert_eq!(exporter.to_string(), "192.0.2.1", "{}", path.display());
    }
}

#[test]
fn inspect_seeds_give_their_protocol_facts() {
    // Real sessions from the shared corpus (doublepulsar_backdoor_connect_win7's 445
    // session and its NTLMSSP session to 139, rdp_proprietary_encryption's refused TLS
    // request) and a hand-made TDS exchange; what tshark shows of each.
    let want: [(&str, &[(&str, &str)]); 4] = [
        ("rdp_cookie_negotiation", &[("rdp_negotiation", "failure")]),
        (
            "smb1_doublepulsar_ping_implant_present",
            &[
                ("dialect", "success"),
                ("login", "success"),
                ("tree_connect", "success"),
                ("doublepulsar", "present"),
            ],
        ),
        (
            "smb_ntlmssp_login_then_ipc",
            &[
                ("dialect", "success"),
                ("login", "success"),
                ("tree_connect", "success"),
            ],
        ),
        // A connection logs in once: after the answer the rest is not read (the second
        // LOGIN7 and LOGINACK in the seed are not reported).
        (
            "tds_login_failed_then_no_more_reading",
            &[("login", "failure")],
        ),
    ];
    let seeds = seeds("inspect");
    assert_eq!(seeds.len(), want.len());
    for (path, data) in seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (_, facts) = want
            .iter()
            .find(|w| w.0 == name)
            .expect("a seed with known facts");
        assert_eq!(replay::inspect(&data), facts.to_vec(), "{name}");
    }
}

#[test]
fn log_seeds_read_every_line_as_a_row_or_a_skipped_event() {
    // (format, flow rows, DNS rows): the Zeek seeds are the first lines of the shipped
    // logs, the Suricata seed a flow, a v3 DNS response and an alert (skipped).
    let expected = [
        ("suricata_eve.json", ("suricata-eve", 1, 1)),
        ("zeek_conn.json", ("zeek-json", 3, 0)),
        ("zeek_conn.tsv", ("zeek-tsv", 4, 0)),
        ("zeek_conn.tsv.gz", ("zeek-tsv", 4, 0)),
        ("zeek_dns.json", ("zeek-json", 0, 6)),
        ("zeek_dns.tsv", ("zeek-tsv", 0, 4)),
    ];
    let seeds = seeds("logs");
    assert_eq!(seeds.len(), expected.len());
    for ((path, data), (name, (format, flows, dns))) in seeds.iter().zip(expected) {
        assert!(path.ends_with(name), "{}", path.display());
        let got = replay::logs(data).expect("a log");
        assert_eq!(got, (format, flows, dns, 0), "{}", path.display());
    }
}

/// The flows of a repository capture, as a flow table makes them.
fn flows_of(capture: &str) -> Vec<FlowRecord> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(capture);
    let file = std::fs::File::open(&path).expect("the capture");
    let mut reader = CaptureReader::new(Box::new(file)).expect("a capture");
    let mut table = FlowTable::new(FlowConfig::default());
    let (mut flows, mut chunk, mut packets) = (Vec::new(), Chunk::default(), 0);
    while reader.read_chunk(&mut chunk, 1 << 20).expect("readable") {
        for (meta, frame) in chunk.iter() {
            packets += 1;
            if let Decoded::Ip(p) = decode(meta.link_type, frame) {
                table.observe(meta.ts_ns, packets, &p, &mut flows);
            }
        }
    }
    flows.extend(table.flush());
    flows
}

/// The findings of each half of the WannaCry sample's detection, as a Spark task sends
/// them: read back whole they merge into the part's alerts; cut anywhere they are
/// refused; with any one byte changed they are refused or merged, never a panic. Both
/// halves together merge into the whole detection's alerts.
#[test]
fn findings_cut_or_changed_anywhere_are_refused_or_merged() {
    let flows = flows_of("datasets/wannacry/capture.pcap.gz");
    let halves = replay::part_findings(&flows, 2);
    let mut alerts = 0;
    for bytes in &halves {
        let (part_alerts, _) =
            replay::findings(&replay::framed(&[bytes])).expect("a part's own findings");
        alerts += part_alerts;
        for len in 0..bytes.len() {
            let cut = replay::framed(&[&bytes[..len]]);
            assert_eq!(replay::findings(&cut), None, "cut at {len}");
        }
        let mut changed = bytes.clone();
        for at in 0..bytes.len() {
            for delta in [1, 0x80] {
                changed[at] = bytes[at].wrapping_add(delta);
                let _ = replay::findings(&replay::framed(&[&changed]));
            }
            changed[at] = bytes[at];
        }
    }
    // The sample's worm is found, so the bytes carry alerts to cut and change.
    assert!(alerts >= 2, "{alerts} alerts");
    let both = replay::framed(&[&halves[0], &halves[1]]);
    let whole = replay::part_findings(&flows, 1);
    assert_eq!(
        replay::findings(&both),
        replay::findings(&replay::framed(&[&whole[0]]))
    );
}
