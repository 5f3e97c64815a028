//! Tunnelled traffic. A `datasets/` scenario is wrapped in each tunnel kind
//! (`wormsign_synth::tunnel`, built to the specifications and checked by tshark here).
//! The wrapped capture must give the plain capture's flows (with the tunnel recorded on
//! each) and the same detection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wormsign_synth::tunnel::{wrap_capture, Wrap};

use crate::common::{self, conv_key, flow_ends, ip, Cell, ConvKey, Row};

/// The bundled scenario every test here wraps.
fn wannacry() -> PathBuf {
    common::dataset("wannacry").join("capture.pcap.gz")
}

/// What each wrapping must show in the flows table: the outermost kind, and its id for
/// a packet sent from the lower inner address (GTP-U's TEID differs per direction).
fn expected_tunnel(wrap: Wrap) -> (&'static str, Option<i64>) {
    match wrap {
        Wrap::Vxlan => ("vxlan", Some(5001)),
        Wrap::Geneve => ("geneve", Some(7001)),
        Wrap::GtpU => ("gtpu", Some(0x1001)),
        Wrap::Gre => ("gre", Some(42)),
        Wrap::GreEthernet => ("gre", Some(43)),
        Wrap::Erspan1 => ("erspan1", None),
        Wrap::Erspan2 => ("erspan2", Some(100)),
        Wrap::Erspan3 => ("erspan3", Some(200)),
        Wrap::IpInIpv4 => ("ipip", None),
        Wrap::IpInIpv6 => ("4in6", None),
    }
}

/// A flow row without its tunnel columns.
fn bare(row: &Row) -> Row {
    let mut row = row.clone();
    row.retain(|k, _| !k.starts_with("tunnel_"));
    row
}

/// Every wrapping of the WannaCry scenario: the same flows column for column (frames map
/// one to one, so even the packet ordinals agree), the tunnel on every flow, the
/// tunnelled packets counted by kind, and alerts, hosts and propagation equal to the
/// plain run's.
#[test]
fn wrapped_scenario_gives_the_plain_flows_and_detection() {
    wrapping_changes_nothing(&wannacry(), 1000);
}

/// The same on traffic nobody here generated: the real WannaCry lateral-movement trace
/// (EternalBlue and DoublePulsar read from the SMB sessions inside the tunnels).
#[test]
fn wrapped_real_wannacry_gives_the_plain_flows_and_detection() {
    if let Some(trace) = wormsign_testutil::shared_capture("smb/wannacry_lateral.pcap") {
        wrapping_changes_nothing(&trace, 50);
    }
}

/// Wraps `capture` in every tunnel and compares each run with the plain one; the plain
/// run must have at least `min_flows` flows and an alert, or the comparison says little.
fn wrapping_changes_nothing(capture: &Path, min_flows: usize) {
    let plain = common::wormsign(&[capture], &[]);
    plain.assert_ok("plain");
    let plain_flows = plain.flows();
    assert!(plain_flows.len() >= min_flows, "the capture has flows");
    let alerts = |run: &common::Run| common::read_rows(&run.out().join("alerts.parquet"));
    assert!(!alerts(&plain).is_empty(), "the plain run raises alerts");
    let tmp = tempfile::tempdir().expect("tempdir");
    for wrap in Wrap::ALL {
        let name = wrap.name();
        let wrapped = tmp.path().join(format!("{name}.pcap"));
        wrap_capture(capture, wrap, &wrapped).expect("wrap");
        let run = common::wormsign(&[&wrapped], &[]);
        run.assert_ok(name);
        let (kind, id) = expected_tunnel(wrap);
        let tunnelled = &run.summary()["tunnelled_packets"];
        assert_eq!(
            *tunnelled,
            serde_json::json!({ kind: run.n("ip_packets") }),
            "{name}"
        );
        assert_eq!(run.n("ip_packets"), plain.n("ip_packets"), "{name}");
        let flows = run.flows();
        assert_eq!(flows.len(), plain_flows.len(), "{name}: flow count");
        for (w, p) in flows.iter().zip(&plain_flows) {
            assert_eq!(bare(w), bare(p), "{name}: flow differs");
            assert_eq!(w["tunnel_type"], Cell::Str(kind.into()), "{name}");
            assert_eq!(w["tunnel_depth"], Cell::Int(1), "{name}");
            check_tunnel_id(name, w, id);
        }
        for table in ["alerts.parquet", "hosts.parquet", "propagation.parquet"] {
            let read = |run: &common::Run| common::read_rows(&run.out().join(table));
            assert_eq!(read(&run), read(&plain), "{name}: {table} differs");
        }
    }
}

/// The id of the first packet's direction: GTP-U has one TEID per direction.
fn check_tunnel_id(name: &str, flow: &Row, id: Option<i64>) {
    let got = &flow["tunnel_id"];
    match id {
        None => assert_eq!(*got, Cell::Null, "{name}"),
        Some(0x1001) => assert!(
            [Cell::Int(0x1001), Cell::Int(0x2002)].contains(got),
            "{name}: {got:?}"
        ),
        Some(v) => assert_eq!(*got, Cell::Int(v), "{name}"),
    }
}

/// tshark decodes each wrapped capture: its innermost TCP conversations, with packets
/// per direction, are exactly wormsign's TCP flows (merged per 5-tuple).
#[test]
fn wrapped_tcp_conversations_match_tshark() {
    if !common::have_tool("tshark") {
        return;
    }
    let plain_capture = wannacry();
    let tmp = tempfile::tempdir().expect("tempdir");
    for wrap in Wrap::ALL {
        let wrapped = tmp.path().join(format!("{}.pcap", wrap.name()));
        wrap_capture(&plain_capture, wrap, &wrapped).expect("wrap");
        let run = common::wormsign(&[&wrapped], &["--no-detect"]);
        run.assert_ok(wrap.name());
        let theirs = tshark_inner_tcp(&wrapped);
        let mut ours: BTreeMap<ConvKey, [i64; 2]> = BTreeMap::new();
        for r in run.flows().iter().filter(|r| r["ip_proto"].int() == 6) {
            let (_, orig, resp) = flow_ends(r);
            let (key, orig_lo) = conv_key(6, orig, resp);
            let (o, p) = if orig_lo { (0, 1) } else { (1, 0) };
            let e = ours.entry(key).or_default();
            e[o] += r["orig_pkts"].int();
            e[p] += r["resp_pkts"].int();
        }
        assert!(theirs.len() > 100, "{}: tshark saw TCP inside", wrap.name());
        assert_eq!(ours, theirs, "{}", wrap.name());
    }
}

/// tshark's innermost TCP conversations (the last IP and TCP layer of each frame),
/// packets per direction; ICMP errors quoting TCP are left out.
fn tshark_inner_tcp(path: &Path) -> BTreeMap<ConvKey, [i64; 2]> {
    let mut args: Vec<String> = ["-r", &path.display().to_string()].map(String::from).into();
    args.extend(
        [
            "-Y",
            "tcp && !icmp && !icmpv6",
            "-E",
            "occurrence=l",
            "-T",
            "fields",
        ]
        .map(String::from),
    );
    for f in ["ip.src", "ip.dst", "tcp.srcport", "tcp.dstport"] {
        args.extend(["-e".to_string(), f.to_string()]);
    }
    let mut out: BTreeMap<ConvKey, [i64; 2]> = BTreeMap::new();
    for line in common::tool("tshark", &args).lines() {
        let c: Vec<&str> = line.split('\t').collect();
        let port = |s: &str| s.parse::<u16>().expect("port");
        let (key, src_lo) = conv_key(6, (ip(c[0]), port(c[2])), (ip(c[1]), port(c[3])));
        out.entry(key).or_default()[usize::from(!src_lo)] += 1;
    }
    out
}

/// `wormsign carve` on a tunnelled run writes the frames behind a flow, tunnel headers
/// and all: tshark counts the flow's packets in the carved file, and they are the plain
/// run's frames wrapped (the same times). Run twice: on the IANA port, and on another
/// port the run was given with `--tunnel-port` (carve decodes as the run decoded).
#[test]
fn carve_takes_the_tunnelled_frames_of_a_flow() {
    if !common::have_tool("tshark") {
        return;
    }
    let plain_capture = wannacry();
    let plain = common::wormsign(&[&plain_capture], &[]);
    let flows = plain.flows();
    let busiest = flows
        .iter()
        .filter(|f| f["ip_proto"].int() == 6)
        .max_by_key(|f| {
            (
                f["orig_pkts"].int() + f["resp_pkts"].int(),
                f["first_packet"].int(),
            )
        })
        .expect("a TCP flow");
    let id = busiest["community_id"].str().to_string();
    let packets = (busiest["orig_pkts"].int() + busiest["resp_pkts"].int()) as usize;
    let from_plain = common::carve(&plain, &["--flow", &id], "plain.pcap");
    assert_eq!(from_plain.len(), packets);
    let tmp = tempfile::tempdir().expect("tempdir");
    let wrapped = tmp.path().join("gre.pcap");
    wrap_capture(&plain_capture, Wrap::Gre, &wrapped).expect("wrap");
    let run = common::wormsign(&[&wrapped], &[]);
    let carved = common::carve(&run, &["--flow", &id], "gre-flow.pcap");
    let times = |frames: &[String]| -> Vec<String> {
        frames
            .iter()
            .map(|f| f.split('\t').next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        times(&carved),
        times(&from_plain),
        "the same frames, wrapped"
    );
    let gre = common::frames(&run.dir.path().join("gre-flow.pcap"), &["-Y", "gre"]);
    assert_eq!(gre.len(), packets, "every carved frame is the GRE carrier");

    // VXLAN moved to Linux's old port 8472 (the UDP checksum is 0, so only the port
    // changes): the run is told, and carve reads the port from the run's metadata.
    let vxlan = tmp.path().join("vxlan-8472.pcap");
    wrap_capture(&plain_capture, Wrap::Vxlan, &vxlan).expect("wrap");
    let mut bytes = std::fs::read(&vxlan).expect("read");
    for (start, _) in common::pcap_records(&bytes) {
        // The record header 16, Ethernet 14, IPv4 20, then the UDP destination port.
        let port = start + 16 + 14 + 20 + 2;
        bytes[port..port + 2].copy_from_slice(&8472u16.to_be_bytes());
    }
    std::fs::write(&vxlan, bytes).expect("write");
    let run = common::wormsign(&[&vxlan], &["--tunnel-port", "vxlan=8472"]);
    assert_eq!(
        run.summary()["tunnelled_packets"]["vxlan"],
        run.n("ip_packets")
    );
    let carved = common::carve(&run, &["--flow", &id], "vxlan-flow.pcap");
    assert_eq!(
        times(&carved),
        times(&from_plain),
        "the same frames, on port 8472"
    );
}
