//! Flow-table behaviour on hand-built packet sequences, one `check`-style helper.

use std::net::IpAddr;

use wormsign_decode::{Fragment, PacketSummary, Tunnel, TunnelKind};
use wormsign_flow::{
    shard_of, ConnState, EndReason, FlowConfig, FlowRecord, FlowSource, FlowTable, NetflowOrigin,
    TimedPacket,
};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const A: &str = "10.164.1.8";
const B: &str = "10.164.1.77";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP segment from `src` to `dst` at `t` seconds.
fn tcp(
    t: f64,
    src: (&str, u16),
    dst: (&str, u16),
    flags: u8,
    seq: u32,
    payload: u32,
) -> (i64, PacketSummary) {
    let p = PacketSummary {
        src: ip(src.0),
        dst: ip(dst.0),
        proto: 6,
        src_port: src.1,
        dst_port: dst.1,
        has_ports: true,
        ip_len: 40 + payload,
        payload_len: payload,
        tcp_flags: flags,
        tcp_seq: seq,
        tcp_ack: 0,
        tcp_window: 8192,
        vlan: None,
        inner_vlan: None,
        fragment: None,
        truncated: false,
        payload_offset: 54,
        payload_captured: payload,
        tunnel: None,
    };
    ((t * 1e9) as i64, p)
}

fn udp(t: f64, src: (&str, u16), dst: (&str, u16), payload: u32) -> (i64, PacketSummary) {
    let (ts, mut p) = tcp(t, src, dst, 0, 0, payload);
    p.proto = 17;
    p.ip_len = 28 + payload;
    (ts, p)
}

fn icmp(t: f64, src: &str, dst: &str, icmp_type: u16) -> (i64, PacketSummary) {
    let (ts, mut p) = tcp(t, (src, icmp_type), (dst, 0), 0, 0, 56);
    p.proto = 1;
    (ts, p)
}

fn run(config: FlowConfig, packets: &[(i64, PacketSummary)]) -> (Vec<FlowRecord>, FlowTable) {
    let mut table = FlowTable::new(config);
    let mut out = Vec::new();
    for (i, (ts, p)) in packets.iter().enumerate() {
        table.observe(*ts, i as u64, p, &mut out);
    }
    out.extend(table.flush());
    out.sort_by_key(|r| r.first_packet);
    (out, table)
}

/// Runs one TCP conversation and checks its single flow's state and history.
fn check(packets: &[(i64, PacketSummary)], state: ConnState, history: &str) -> FlowRecord {
    let (flows, _) = run(FlowConfig::default(), packets);
    assert_eq!(flows.len(), 1, "{flows:#?}");
    let f = flows.into_iter().next().unwrap();
    assert_eq!(
        (f.conn_state, f.history.as_str()),
        (state, history),
        "{f:#?}"
    );
    f
}

const C: (&str, u16) = (A, 49152);
const S: (&str, u16) = (B, 445);

#[test]
fn complete_session_is_sf() {
    let f = check(
        &[
            tcp(0.0, C, S, SYN, 100, 0),
            tcp(0.01, S, C, SYN | ACK, 500, 0),
            tcp(0.02, C, S, ACK, 101, 0),
            tcp(0.03, C, S, PSH | ACK, 101, 200),
            tcp(0.04, S, C, PSH | ACK, 501, 300),
            tcp(0.05, C, S, FIN | ACK, 301, 0),
            tcp(0.06, S, C, FIN | ACK, 801, 0),
            tcp(0.07, C, S, ACK, 302, 0),
        ],
        ConnState::SF,
        "ShADdFf",
    );
    assert_eq!(f.orig_addr, ip(A));
    assert_eq!((f.orig_port, f.resp_port), (49152, 445));
    assert_eq!((f.orig.packets, f.resp.packets), (5, 3));
    assert_eq!((f.orig.payload_bytes, f.resp.payload_bytes), (200, 300));
    assert_eq!(
        (f.orig.ip_bytes, f.resp.ip_bytes),
        (5 * 40 + 200, 3 * 40 + 300)
    );
    assert_eq!(f.orig.tcp_flags, SYN | ACK | PSH | FIN);
    assert_eq!(f.ts_last - f.ts_first, 70_000_000);
}

#[test]
fn unanswered_syn_is_s0() {
    check(
        &[tcp(0.0, C, S, SYN, 1, 0), tcp(3.0, C, S, SYN, 1, 0)],
        ConnState::S0,
        "S",
    );
}

#[test]
fn syn_answered_by_rst_is_rej() {
    check(
        &[tcp(0.0, C, S, SYN, 1, 0), tcp(0.001, S, C, RST | ACK, 0, 0)],
        ConnState::REJ,
        "Sr",
    );
}

#[test]
fn handshake_without_close_is_s1() {
    check(
        &[tcp(0.0, C, S, SYN, 1, 0), tcp(0.001, S, C, SYN | ACK, 9, 0)],
        ConnState::S1,
        "Sh",
    );
}

#[test]
fn first_seen_syn_ack_flips_direction() {
    let f = check(
        &[tcp(0.0, S, C, SYN | ACK, 9, 0), tcp(0.001, C, S, ACK, 2, 0)],
        ConnState::OTH,
        "^hA",
    );
    assert_eq!((f.orig_addr, f.orig_port, f.resp_port), (ip(A), 49152, 445));
    assert_eq!((f.orig.packets, f.resp.packets), (1, 1));
}

#[test]
fn responder_reset_after_syn_ack_without_syn_is_rstrh() {
    check(
        &[
            tcp(0.0, S, C, SYN | ACK, 9, 0),
            tcp(0.001, S, C, RST, 10, 0),
        ],
        ConnState::RSTRH,
        "^hr",
    );
}

#[test]
fn originator_abort_is_rsto() {
    check(
        &[
            tcp(0.0, C, S, SYN, 1, 0),
            tcp(0.001, S, C, SYN | ACK, 9, 0),
            tcp(0.002, C, S, ACK, 2, 0),
            tcp(0.003, C, S, RST, 2, 0),
        ],
        ConnState::RSTO,
        "ShAR",
    );
}

#[test]
fn responder_reset_after_established_is_rstr() {
    check(
        &[
            tcp(0.0, C, S, SYN, 1, 0),
            tcp(0.001, S, C, SYN | ACK, 9, 0),
            tcp(0.002, C, S, ACK | PSH, 2, 10),
            tcp(0.003, S, C, RST, 10, 0),
        ],
        ConnState::RSTR,
        "ShDr",
    );
}

#[test]
fn syn_then_own_rst_is_rstos0() {
    check(
        &[tcp(0.0, C, S, SYN, 1, 0), tcp(0.5, C, S, RST, 2, 0)],
        ConnState::RSTOS0,
        "SR",
    );
}

#[test]
fn syn_then_fin_without_answer_is_sh() {
    check(
        &[tcp(0.0, C, S, SYN, 1, 0), tcp(0.5, C, S, FIN, 2, 0)],
        ConnState::SH,
        "SF",
    );
}

#[test]
fn midstream_traffic_is_oth() {
    check(
        &[
            tcp(0.0, C, S, ACK | PSH, 1, 100),
            tcp(0.001, S, C, ACK, 9, 0),
        ],
        ConnState::OTH,
        "Da",
    );
}

#[test]
fn close_by_originator_only_is_s2_and_by_responder_only_s3() {
    let open = [
        tcp(0.0, C, S, SYN, 1, 0),
        tcp(0.001, S, C, SYN | ACK, 9, 0),
        tcp(0.002, C, S, ACK, 2, 0),
    ];
    let mut s2 = open.to_vec();
    s2.push(tcp(0.003, C, S, FIN | ACK, 2, 0));
    check(&s2, ConnState::S2, "ShAF");
    let mut s3 = open.to_vec();
    s3.push(tcp(0.003, S, C, FIN | ACK, 10, 0));
    check(&s3, ConnState::S3, "ShAf");
}

#[test]
fn retransmitted_payload_is_marked_t() {
    check(
        &[
            tcp(0.0, C, S, ACK | PSH, 1000, 100),
            tcp(0.2, C, S, ACK | PSH, 1000, 100),
        ],
        ConnState::OTH,
        "DT",
    );
}

#[test]
fn udp_states_follow_who_spoke() {
    let (flows, _) = run(
        FlowConfig::default(),
        &[
            udp(0.0, (A, 5000), (B, 53), 30),
            udp(0.01, (B, 53), (A, 5000), 60),
            udp(0.02, (A, 5001), (B, 53), 30),
        ],
    );
    let states: Vec<_> = flows
        .iter()
        .map(|f| (f.conn_state, f.history.as_str()))
        .collect();
    assert_eq!(states, [(ConnState::SF, "Dd"), (ConnState::S0, "D")]);
}

#[test]
fn icmp_echo_request_and_reply_form_one_flow() {
    let (flows, _) = run(
        FlowConfig::default(),
        &[
            icmp(0.0, A, B, 8),
            icmp(0.001, B, A, 0),
            icmp(1.0, A, B, 8),
            icmp(1.001, B, A, 0),
        ],
    );
    assert_eq!(flows.len(), 1, "{flows:#?}");
    let f = &flows[0];
    assert_eq!((f.orig_addr, f.orig_port, f.resp_port), (ip(A), 8, 0));
    assert_eq!(
        (f.orig.packets, f.resp.packets, f.conn_state),
        (2, 2, ConnState::OTH)
    );
    assert_eq!(
        f.community_id(),
        wormsign_flow::community_id(ip(A), 8, ip(B), 0, 1, true)
    );
}

#[test]
fn idle_timeout_splits_a_flow() {
    let (flows, _) = run(
        FlowConfig::default(),
        &[
            udp(0.0, (A, 5000), (B, 53), 30),
            udp(61.0, (A, 5000), (B, 53), 30),
        ],
    );
    let reasons: Vec<_> = flows.iter().map(|f| f.end_reason).collect();
    assert_eq!(reasons, [EndReason::Idle, EndReason::EndOfInput]);
    // Exactly at the timeout the flow still continues (Zeek: "longer than").
    let (flows, _) = run(
        FlowConfig::default(),
        &[
            udp(0.0, (A, 5000), (B, 53), 30),
            udp(60.0, (A, 5000), (B, 53), 30),
        ],
    );
    assert_eq!(flows.len(), 1);
}

#[test]
fn active_timeout_splits_long_flows() {
    let packets: Vec<_> = (0..200)
        .map(|i| udp(f64::from(i) * 10.0, (A, 5000), (B, 1434), 10))
        .collect();
    let (flows, _) = run(FlowConfig::default(), &packets);
    // 1990 s of traffic with a 1800 s active timeout: one cut.
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[0].end_reason, EndReason::Active);
    assert_eq!(flows[0].orig.packets + flows[1].orig.packets, 200);
}

#[test]
fn new_syn_after_close_starts_a_new_flow() {
    let session = [
        tcp(0.0, C, S, SYN, 1, 0),
        tcp(0.001, S, C, SYN | ACK, 9, 0),
        tcp(0.002, C, S, FIN | ACK, 2, 0),
        tcp(0.003, S, C, FIN | ACK, 10, 0),
    ];
    let mut packets = session.to_vec();
    packets.push(tcp(0.5, C, S, SYN, 7000, 0));
    let (flows, _) = run(FlowConfig::default(), &packets);
    assert_eq!(flows.len(), 2);
    assert_eq!(
        (flows[0].conn_state, flows[0].end_reason),
        (ConnState::SF, EndReason::Closed)
    );
    assert_eq!(flows[1].conn_state, ConnState::S0);
}

#[test]
fn later_fragments_join_the_first_fragments_flow() {
    let (ts, mut first) = udp(0.0, (A, 5000), (B, 53), 1472);
    first.fragment = Some(Fragment {
        id: 77,
        offset: 0,
        more: true,
    });
    let (ts2, mut later) = udp(0.0001, (A, 0), (B, 0), 500);
    later.has_ports = false;
    later.fragment = Some(Fragment {
        id: 77,
        offset: 1480,
        more: false,
    });
    let (ts3, mut orphan) = udp(0.0002, (A, 0), (B, 0), 500);
    orphan.has_ports = false;
    orphan.fragment = Some(Fragment {
        id: 78,
        offset: 1480,
        more: false,
    });
    let (flows, table) = run(
        FlowConfig::default(),
        &[(ts, first), (ts2, later), (ts3, orphan)],
    );
    assert_eq!(flows.len(), 2, "{flows:#?}");
    assert_eq!((flows[0].resp_port, flows[0].orig.packets), (53, 2));
    assert!(!flows[1].has_ports);
    let stats = table.stats();
    assert_eq!((stats.fragments, stats.fragments_unmatched), (3, 1));
}

#[test]
fn full_table_evicts_least_recent_and_counts() {
    let config = FlowConfig {
        max_flows: 4,
        ..FlowConfig::default()
    };
    let packets: Vec<_> = (0..10u16)
        .map(|i| udp(f64::from(i), (A, 1000 + i), (B, 53), 10))
        .collect();
    let (flows, table) = run(config, &packets);
    assert_eq!(flows.len(), 10, "no flow is lost, evicted ones are emitted");
    let evicted = flows
        .iter()
        .filter(|f| f.end_reason == EndReason::Evicted)
        .count() as u64;
    assert_eq!(table.stats().evicted, evicted);
    assert!(evicted >= 6);
    assert!(table.stats().peak_flows <= 4);
    // The oldest go first.
    assert_eq!(flows[0].end_reason, EndReason::Evicted);
    assert_eq!(flows[9].end_reason, EndReason::EndOfInput);
}

/// `observe_all` looks flows up in groups before updating them; whatever the group
/// boundaries, it must give the same records, in the same order, as `observe` one
/// packet at a time. The mix has flows created and reused within a group, evictions in
/// mid-group (cap 64), idle splits, TCP reuse after close, and fragments.
#[test]
fn observe_all_matches_observe_packet_by_packet() {
    let mut rng = 0x853c_49e6_748f_ea9bu64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let packets: Vec<TimedPacket> = (0..20_000u64)
        .map(|i| {
            let r = next();
            let t = i as f64 * 0.02;
            let client = (
                format!("10.0.{}.{}", r % 3, r >> 8 & 127),
                40000 + (r >> 16 & 7) as u16,
            );
            let client = (client.0.as_str(), client.1);
            let flags = [SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST][(r >> 24) as usize % 6];
            let (ts_ns, mut packet) = match r >> 32 & 3 {
                0 => udp(t, client, (B, 53), 40),
                1 => icmp(t, client.0, B, [0, 8][(r >> 40) as usize & 1]),
                _ if r >> 36 & 1 == 0 => tcp(t, client, S, flags, r as u32, 0),
                _ => tcp(t, S, client, flags, r as u32, (r >> 44 & 3) as u32 * 100),
            };
            if r >> 50 & 15 == 0 {
                packet.fragment = Some(Fragment {
                    id: (r >> 54 & 3) as u32,
                    offset: (r >> 56 & 1) as u16 * 1480,
                    more: r >> 57 & 1 == 0,
                });
            }
            TimedPacket {
                ts_ns,
                idx: i,
                packet,
            }
        })
        .collect();
    let config = FlowConfig {
        max_flows: 64,
        udp_idle_ns: 5_000_000_000,
        ..FlowConfig::default()
    };
    let mut one_by_one = FlowTable::new(config);
    let mut expected = Vec::new();
    for tp in &packets {
        one_by_one.observe(tp.ts_ns, tp.idx, &tp.packet, &mut expected);
    }
    expected.extend(one_by_one.flush());
    assert!(
        one_by_one.stats().evicted > 1000,
        "{:?}",
        one_by_one.stats()
    );
    for split in [1, 7, 16, 100, packets.len()] {
        let mut grouped = FlowTable::new(config);
        let mut got = Vec::new();
        for part in packets.chunks(split) {
            grouped.observe_all(part, &mut got);
        }
        got.extend(grouped.flush());
        assert_eq!(grouped.stats(), one_by_one.stats(), "split {split}");
        assert!(got == expected, "split {split}: records differ");
    }
}

/// A sweep ends the idle flows and says when the earliest of the others started (what
/// detection's bound on flows still to come rests on), whatever the order of the table.
#[test]
fn expire_ends_idle_flows_only_and_tells_the_earliest_live_start() {
    let mut table = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    let (t0, p0) = udp(0.0, (A, 5000), (B, 53), 30);
    let (t1, p1) = tcp(10.0, C, S, SYN, 1, 0);
    let (t2, p2) = tcp(2.5, (A, 6000), S, SYN, 1, 0);
    table.observe(t0, 0, &p0, &mut out);
    table.observe(t1, 1, &p1, &mut out);
    table.observe(t2, 2, &p2, &mut out);
    assert_eq!(table.expire(30_000_000_000, &mut out), 0, "all live");
    let earliest = table.expire(100_000_000_000, &mut out);
    assert_eq!(out.len(), 1, "UDP idles out after 60 s, TCP after 300 s");
    assert_eq!(out[0].proto, 17);
    assert_eq!((table.len(), earliest), (2, 2_500_000_000));
    assert_eq!(
        table.expire(400_000_000_000, &mut out),
        i64::MAX,
        "none live"
    );
}

#[test]
fn shard_is_symmetric_and_ignores_ports() {
    let (_, p) = tcp(0.0, C, S, SYN, 1, 0);
    let (_, q) = tcp(0.0, S, (A, 1), ACK, 1, 0);
    for n in [2, 3, 8] {
        assert_eq!(shard_of(&p, n), shard_of(&q, n));
    }
    let spread: std::collections::HashSet<_> = (0..64u8)
        .map(|i| {
            let (_, mut r) = tcp(0.0, C, S, SYN, 1, 0);
            r.dst = IpAddr::from([10, 0, 0, i]);
            shard_of(&r, 8)
        })
        .collect();
    assert_eq!(spread.len(), 8, "neighbouring hosts spread over all shards");
}

/// Two tenants' tunnels carry the same inner addresses and ports: two flows, each with
/// its tunnel; both directions of one tunnel (the same chain) meet in one flow.
#[test]
fn tunnels_keep_overlapping_address_spaces_apart() {
    let tunnel = |id: u32, chain: u32| Tunnel {
        kind: TunnelKind::Vxlan,
        src: ip("192.0.2.1"),
        dst: ip("192.0.2.2"),
        id: Some(id),
        depth: 1,
        chain,
    };
    let inside = |t: f64, src, dst, tunnel| {
        let (ts, mut p) = udp(t, src, dst, 10);
        p.tunnel = Some(tunnel);
        (ts, p)
    };
    let (a, b) = (("10.0.0.1", 5000), ("10.0.0.2", 53));
    let packets = [
        inside(0.0, a, b, tunnel(1, 11)),
        inside(0.1, a, b, tunnel(2, 22)),
        inside(0.2, b, a, tunnel(1, 11)),
        udp(0.3, a, b, 10),
    ];
    let (flows, _) = run(FlowConfig::default(), &packets);
    let seen: Vec<(Option<u32>, u64, u64)> = flows
        .iter()
        .map(|f| (f.tunnel.and_then(|t| t.id), f.orig.packets, f.resp.packets))
        .collect();
    assert_eq!(seen, [(Some(1), 1, 1), (Some(2), 1, 0), (None, 1, 0)]);
}

/// Detection's order: start time, then `first_packet` and the record index (NetFlow
/// records of one datagram share its ordinal), then, for flows of different runs that
/// share all three, the addresses.
#[test]
fn detection_order_breaks_every_tie_of_distinct_flows() {
    let (flows, _) = run(
        FlowConfig::default(),
        &[
            udp(1.0, ("10.0.0.2", 5000), ("10.0.0.9", 53), 40),
            udp(1.0, ("10.0.0.1", 5000), ("10.0.0.9", 53), 40),
        ],
    );
    let (mut a, mut b) = (flows[0].clone(), flows[1].clone());
    assert!(a.detection_cmp(&b).is_lt(), "earlier first packet first");
    // The same first packet (another run's ordinals): the addresses decide.
    b.first_packet = a.first_packet;
    assert!(b.detection_cmp(&a).is_lt() && a.detection_cmp(&b).is_gt());
    // NetFlow records of one datagram: the record index decides before the addresses.
    let origin = |record_index| {
        FlowSource::Netflow(NetflowOrigin {
            exporter: ip("10.255.0.1"),
            version: 9,
            sampling_interval: 1,
            record_index,
            input_if: 0,
            output_if: 0,
        })
    };
    (a.source, b.source) = (origin(0), origin(1));
    assert!(a.detection_cmp(&b).is_lt());
    assert_eq!(a.detection_cmp(&a.clone()), std::cmp::Ordering::Equal);
}
