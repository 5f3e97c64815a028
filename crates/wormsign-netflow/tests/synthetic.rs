//! Hand-built datagrams: every feature and every hostile shape, with exact expectations.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use wormsign_netflow::{
    conn_state_from_flags, NetflowConfig, NetflowDecoder, NetflowRecord, NetflowStats,
};

const SECS: u32 = 1_700_000_000;
const UPTIME: u32 = 3_600_000;

fn exporter(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(172, 16, 0, last)), 50000)
}

fn run(dec: &mut NetflowDecoder, from: SocketAddr, p: &[u8]) -> Vec<NetflowRecord> {
    let mut out = Vec::new();
    dec.decode(from, 42, p, &mut out);
    out
}

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

const S: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

#[test]
fn v5_records_sampling_times_and_sequence() {
    let mut dec = NetflowDecoder::default();
    let recs: Vec<Rec5> = (0..30).map(Rec5::new).collect();
    // Sampling field: mode 1 (top two bits), interval 100.
    let p = v5(1000, 0x4000 | 100, UPTIME, SECS, 5000, &recs);
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out.len(), 30);
    let r = &out[7];
    assert_eq!(r.version, 5);
    assert_eq!(r.exporter, ip([172, 16, 0, 1]));
    assert_eq!(r.observation_domain, 0x0102);
    assert_eq!(r.src, ip([10, 0, 0, 7]));
    assert_eq!(r.dst, ip([192, 168, 1, 1]));
    assert_eq!(
        (r.src_port, r.dst_port, r.proto, r.tcp_flags),
        (40007, 80, 6, 0x1b)
    );
    assert_eq!((r.packets, r.bytes, r.sampling_interval), (17, 1007, 100));
    assert_eq!(
        (r.input_if, r.output_if, r.src_as, r.dst_as),
        (1, 2, 65001, 65002)
    );
    // first switched 1000 ms of uptime, header at 3 600 000 ms.
    let export = i64::from(SECS) * S + 5000;
    assert_eq!(r.first_ns, export - (3_600_000 - 1000) * MS);
    assert_eq!(r.last_ns, export - (3_600_000 - 2000) * MS);
    assert_eq!(r.received_ns, 42);

    // Next packet should carry flow_sequence 1030; 1040 means 10 records lost.
    let p = v5(1040, 0, UPTIME, SECS, 0, &recs[..2]);
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out[0].sampling_interval, 1, "interval 0 means unsampled");
    // A different exporter has its own counter.
    run(
        &mut dec,
        exporter(2),
        &v5(5, 0, UPTIME, SECS, 0, &recs[..1]),
    );
    let st = dec.stats();
    assert_eq!(st.packets, 3);
    assert_eq!(st.records, 33);
    assert_eq!(st.sequence_lost, 10);
    assert_eq!(st.malformed, 0);
}

#[test]
fn v5_count_larger_than_datagram_is_malformed_but_decodes_what_is_there() {
    let mut dec = NetflowDecoder::default();
    let recs: Vec<Rec5> = (0..3).map(Rec5::new).collect();
    let mut p = v5(0, 0, UPTIME, SECS, 0, &recs);
    p[3] = 30; // claims 30 records
    p.truncate(24 + 2 * 48 + 10);
    assert_eq!(run(&mut dec, exporter(1), &p).len(), 2);
    assert_eq!(dec.stats().malformed, 1);
}

#[test]
fn icmp_type_code_from_v5_destination_port() {
    let mut dec = NetflowDecoder::default();
    let mut r = Rec5::new(1);
    (r.proto, r.sport, r.dport) = (1, 0, 0x0800);
    let out = run(&mut dec, exporter(1), &v5(0, 0, UPTIME, SECS, 0, &[r]));
    assert_eq!((out[0].src_port, out[0].dst_port), (8, 0));
}

#[test]
fn v9_template_then_data_in_several_flowsets_with_padding() {
    let mut dec = NetflowDecoder::default();
    let data1: Vec<u8> = (0..3).flat_map(|i| v9_rec(i, 1000, 2000)).collect();
    let data2: Vec<u8> = (3..5).flat_map(|i| v9_rec(i, 1000, 2000)).collect();
    let p = v9(
        7,
        33,
        UPTIME,
        SECS,
        &[
            // template set padded to a multiple of 4 (2 bytes)
            set(0, &tpl(256, &V9_FIELDS), 2),
            // 3 records of 34 bytes = 102, padded by 2
            set(256, &data1, 2),
            // 2 records, padded by 3 (still fewer than 34 bytes: padding)
            set(256, &data2, 3),
        ],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out.len(), 5);
    let r = &out[4];
    assert_eq!(r.version, 9);
    assert_eq!(r.observation_domain, 33);
    assert_eq!(r.src, ip([10, 0, 0, 4]));
    assert_eq!((r.src_port, r.dst_port, r.proto), (40004, 80, 6));
    assert_eq!((r.packets, r.bytes, r.sampling_interval), (14, 1004, 1));
    assert_eq!(r.first_ns, i64::from(SECS) * S - (3_600_000 - 1000) * MS);
    assert_eq!(r.last_ns, i64::from(SECS) * S - (3_600_000 - 2000) * MS);
    assert_eq!((r.input_if, r.output_if), (1, 2));
    let st = dec.stats();
    assert_eq!(
        (st.packets, st.records, st.templates, st.malformed),
        (1, 5, 1, 0)
    );
}

#[test]
fn v9_first_switched_across_uptime_wrap() {
    let mut dec = NetflowDecoder::default();
    // Header uptime just wrapped to 500 ms; the flow started at u32::MAX - 499.
    let p = v9(
        0,
        0,
        500,
        SECS,
        &[
            set(0, &tpl(256, &V9_FIELDS), 0),
            set(256, &v9_rec(0, u32::MAX - 499, 400), 0),
        ],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out[0].first_ns, i64::from(SECS) * S - 1000 * MS);
    assert_eq!(out[0].last_ns, i64::from(SECS) * S - 100 * MS);
}

#[test]
fn v9_data_before_template_is_buffered_then_decoded() {
    let mut dec = NetflowDecoder::default();
    let data: Vec<u8> = (0..4).flat_map(|i| v9_rec(i, 1000, 2000)).collect();
    let out = run(
        &mut dec,
        exporter(1),
        &v9(0, 1, UPTIME, SECS, &[set(256, &data, 0)]),
    );
    assert!(out.is_empty());
    assert_eq!(dec.pending_data_sets(), 1);
    assert_eq!(dec.stats().data_sets_buffered, 1);
    // Another exporter's template 256 must not release it.
    run(
        &mut dec,
        exporter(2),
        &v9(0, 1, UPTIME, SECS, &[set(0, &tpl(256, &V9_FIELDS), 0)]),
    );
    assert_eq!(dec.pending_data_sets(), 1);
    // Nor a different source id of the same exporter.
    run(
        &mut dec,
        exporter(1),
        &v9(0, 2, UPTIME, SECS, &[set(0, &tpl(256, &V9_FIELDS), 0)]),
    );
    assert_eq!(dec.pending_data_sets(), 1);
    let out = run(
        &mut dec,
        exporter(1),
        &v9(
            1,
            1,
            UPTIME + 10,
            SECS + 10,
            &[set(0, &tpl(256, &V9_FIELDS), 0)],
        ),
    );
    assert_eq!(out.len(), 4);
    // Times use the header of the datagram that carried the data.
    assert_eq!(
        out[0].first_ns,
        i64::from(SECS) * S - (3_600_000 - 1000) * MS
    );
    let st = dec.stats();
    assert_eq!(st.records, 4);
    assert_eq!(st.records_from_pending, 4);
    assert_eq!(st.data_sets_without_template, 0);
    assert_eq!(dec.pending_data_sets(), 0);
    assert_eq!(st.sequence_lost, 0);
}

#[test]
fn data_that_never_gets_a_template_is_counted() {
    let cfg = NetflowConfig {
        max_pending_sets: 4,
        ..NetflowConfig::default()
    };
    let mut dec = NetflowDecoder::new(cfg);
    for i in 0..10u16 {
        let data = v9_rec(0, 0, 0);
        run(
            &mut dec,
            exporter(1),
            &v9(u32::from(i), 1, UPTIME, SECS, &[set(300 + i, &data, 0)]),
        );
    }
    assert_eq!(dec.pending_data_sets(), 4);
    assert_eq!(dec.stats().data_sets_without_template, 6);
    dec.finish();
    assert_eq!(dec.pending_data_sets(), 0);
    assert_eq!(dec.stats().data_sets_without_template, 10);
    assert_eq!(dec.stats().data_sets_buffered, 10);
}

#[test]
fn pending_data_expires_after_the_timeout() {
    let cfg = NetflowConfig {
        pending_timeout_ns: 10 * S,
        ..NetflowConfig::default()
    };
    let mut dec = NetflowDecoder::new(cfg);
    let mut out = Vec::new();
    dec.decode(
        exporter(1),
        0,
        &v9(0, 1, UPTIME, SECS, &[set(256, &v9_rec(0, 0, 0), 0)]),
        &mut out,
    );
    dec.decode(
        exporter(1),
        11 * S,
        &v9(1, 1, UPTIME, SECS, &[set(0, &tpl(256, &V9_FIELDS), 0)]),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(dec.stats().data_sets_without_template, 1);
}

#[test]
fn v9_options_give_the_sampling_interval() {
    let mut dec = NetflowDecoder::default();
    // Options template: scope System (type 1 = not IN_BYTES here!), options
    // SAMPLING_INTERVAL (34) and SAMPLING_ALGORITHM (35).
    let otpl = opt_tpl_v9(260, &[(1, 4)], &[(34, 4), (35, 1)]);
    let mut odata = vec![0, 0, 0, 9];
    odata.extend_from_slice(&512u32.to_be_bytes());
    odata.push(2);
    let flows: Vec<u8> = (0..2).flat_map(|i| v9_rec(i, 1000, 2000)).collect();
    let p = v9(
        0,
        1,
        UPTIME,
        SECS,
        &[
            set(1, &otpl, 2),
            set(260, &odata, 3),
            set(0, &tpl(256, &V9_FIELDS), 0),
            set(256, &flows, 0),
        ],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r.sampling_interval == 512));
    let st = dec.stats();
    assert_eq!(
        (st.options_templates, st.options_records, st.templates),
        (1, 1, 1)
    );
    // Another exporter is unsampled.
    let p = v9(
        0,
        1,
        UPTIME,
        SECS,
        &[set(0, &tpl(256, &V9_FIELDS), 0), set(256, &flows, 0)],
    );
    assert!(run(&mut dec, exporter(2), &p)
        .iter()
        .all(|r| r.sampling_interval == 1));
}

#[test]
fn v9_sampler_ids_map_records_to_their_interval() {
    let mut dec = NetflowDecoder::default();
    // FLOW_SAMPLER_ID (48) scope-like option + FLOW_SAMPLER_RANDOM_INTERVAL (50).
    let otpl = opt_tpl_v9(261, &[(1, 4)], &[(48, 1), (49, 1), (50, 4)]);
    let mut odata = Vec::new();
    for (id, n) in [(1u8, 100u32), (2, 1000)] {
        odata.extend_from_slice(&[0, 0, 0, 0, id, 2]);
        odata.extend_from_slice(&n.to_be_bytes());
    }
    let mut fields = V9_FIELDS.to_vec();
    fields.push((48, 1));
    let mut flows = Vec::new();
    for id in [1u8, 2, 1] {
        flows.extend(v9_rec(0, 0, 0));
        flows.push(id);
    }
    let p = v9(
        0,
        1,
        UPTIME,
        SECS,
        &[
            set(1, &otpl, 0),
            set(261, &odata, 0),
            set(0, &tpl(257, &fields), 0),
            set(257, &flows, 0),
        ],
    );
    let out = run(&mut dec, exporter(1), &p);
    let got: Vec<u32> = out.iter().map(|r| r.sampling_interval).collect();
    assert_eq!(got, [100, 1000, 100]);
}

#[test]
fn v9_sequence_counts_lost_packets_and_resets() {
    let mut dec = NetflowDecoder::default();
    for seq in [10, 11, 14, 15, 3, 4] {
        run(&mut dec, exporter(1), &v9(seq, 1, UPTIME, SECS, &[]));
    }
    let st = dec.stats();
    assert_eq!(st.sequence_lost, 2, "12 and 13 missing");
    assert_eq!(st.sequence_resets, 1, "15 -> 3 went backwards");
}

#[test]
fn ipfix_template_data_times_and_sequence() {
    let mut dec = NetflowDecoder::default();
    let t0 = u64::from(SECS) * 1000;
    let data: Vec<u8> = (0..3).flat_map(|i| ipfix_rec(i, t0 + 1, t0 + 5)).collect();
    let p = ipfix(
        100,
        7,
        SECS,
        &[set(2, &tpl(300, &IPFIX_FIELDS), 0), set(300, &data, 0)],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out.len(), 3);
    let r = &out[2];
    assert_eq!((r.version, r.observation_domain), (10, 7));
    assert_eq!((r.packets, r.bytes), (12, 1002));
    assert_eq!(r.first_ns, i64::from(SECS) * S + MS);
    assert_eq!(r.last_ns, i64::from(SECS) * S + 5 * MS);
    // Sequence counts data records: next expected is 103; 110 loses 7.
    run(
        &mut dec,
        exporter(1),
        &ipfix(103, 7, SECS, &[set(300, &data, 0)]),
    );
    run(&mut dec, exporter(1), &ipfix(110, 7, SECS, &[]));
    assert_eq!(dec.stats().sequence_lost, 4);
}

#[test]
fn ipfix_time_encodings() {
    let mut dec = NetflowDecoder::default();
    let fields = [(150u16, 4u16), (151, 4), (160, 8), (22, 4), (21, 4)];
    // flowStartSeconds wins over flowStartSysUpTime; end from sysUpTime + init.
    let mut rec = Vec::new();
    rec.extend_from_slice(&(SECS - 10).to_be_bytes());
    let mut rec2 = rec.clone();
    rec.extend_from_slice(&(SECS - 5).to_be_bytes());
    rec.extend_from_slice(&(u64::from(SECS) * 1000).to_be_bytes());
    rec.extend_from_slice(&0u32.to_be_bytes());
    rec.extend_from_slice(&0u32.to_be_bytes());
    let p = ipfix(
        0,
        1,
        SECS,
        &[set(2, &tpl(256, &fields), 0), set(256, &rec, 0)],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out[0].first_ns, i64::from(SECS - 10) * S);
    assert_eq!(out[0].last_ns, i64::from(SECS - 5) * S);

    // sysUpTime with systemInitTimeMilliseconds; delta microseconds; NTP.
    let fields = [(160u16, 8u16), (22, 4), (159, 4)];
    rec2.clear();
    rec2.extend_from_slice(&(u64::from(SECS) * 1000).to_be_bytes());
    rec2.extend_from_slice(&2500u32.to_be_bytes());
    rec2.extend_from_slice(&1_000_000u32.to_be_bytes());
    let p = ipfix(
        0,
        2,
        SECS + 100,
        &[set(2, &tpl(256, &fields), 0), set(256, &rec2, 0)],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out[0].first_ns, i64::from(SECS) * S + 2500 * MS);
    assert_eq!(out[0].last_ns, i64::from(SECS + 99) * S);

    let fields = [(156u16, 8u16), (157, 8)];
    let ntp =
        |secs: u64, half: bool| ((secs + 2_208_988_800) << 32) | if half { 1 << 31 } else { 0 };
    let mut rec3 = Vec::new();
    rec3.extend_from_slice(&ntp(u64::from(SECS), true).to_be_bytes());
    rec3.extend_from_slice(&ntp(u64::from(SECS) + 1, false).to_be_bytes());
    let p = ipfix(
        0,
        3,
        SECS,
        &[set(2, &tpl(256, &fields), 0), set(256, &rec3, 0)],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out[0].first_ns, i64::from(SECS) * S + S / 2);
    assert_eq!(out[0].last_ns, i64::from(SECS + 1) * S);
}

#[test]
fn ipfix_variable_length_and_enterprise_fields() {
    let mut dec = NetflowDecoder::default();
    // interfaceName (82) variable length, an enterprise field of 6 bytes,
    // applicationName (96) variable length, then the ports.
    let fields = [
        (8u16, 4u16, None),
        (82, 65535, None),
        (1, 6, Some(9u32)),
        (96, 65535, None),
        (7, 2, None),
        (11, 2, None),
        (2, 4, None),
    ];
    let mut data = Vec::new();
    // record 1: short form (length 3), then the 3-byte form with 300 bytes.
    data.extend_from_slice(&[10, 0, 0, 1, 3, b'e', b't', b'h']);
    data.extend_from_slice(&[0xff; 6]); // enterprise: must not be read as octetDeltaCount
    data.extend_from_slice(&[255, 0x01, 0x2c]);
    data.extend(std::iter::repeat_n(b'x', 300));
    data.extend_from_slice(&[0x1f, 0x90, 0x00, 0x35, 0, 0, 0, 7]);
    // record 2: length 255 in the long form, empty short form.
    data.extend_from_slice(&[10, 0, 0, 2, 255, 0, 255]);
    data.extend(std::iter::repeat_n(b'y', 255));
    data.extend_from_slice(&[0; 6]);
    data.extend_from_slice(&[0]);
    data.extend_from_slice(&[0x00, 0x16, 0x01, 0xbb, 0, 0, 0, 9]);
    // 2 bytes padding: fewer than the minimum record length (4+1+6+1+2+2+4 = 20).
    let p = ipfix(
        0,
        1,
        SECS,
        &[set(2, &tpl_ipfix(400, &fields), 0), set(400, &data, 2)],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out.len(), 2, "{:?}", dec.stats());
    assert_eq!(
        (out[0].src, out[0].src_port, out[0].dst_port),
        (ip([10, 0, 0, 1]), 8080, 53)
    );
    assert_eq!((out[0].packets, out[0].bytes), (7, 0));
    assert_eq!(
        (out[1].src, out[1].src_port, out[1].dst_port),
        (ip([10, 0, 0, 2]), 22, 443)
    );
    assert_eq!(out[1].packets, 9);
    assert_eq!(dec.stats().malformed, 0);
}

#[test]
fn ipfix_record_running_past_its_set_is_malformed() {
    let mut dec = NetflowDecoder::default();
    let fields = [(8u16, 4u16, None), (82, 65535, None)];
    let data = [10, 0, 0, 1, 200, b'a']; // announces 200 bytes, has 1
    let p = ipfix(
        0,
        1,
        SECS,
        &[set(2, &tpl_ipfix(400, &fields), 0), set(400, &data, 0)],
    );
    assert!(run(&mut dec, exporter(1), &p).is_empty());
    assert_eq!(dec.stats().malformed, 1);
}

#[test]
fn ipfix_template_withdrawal() {
    let mut dec = NetflowDecoder::default();
    let data = ipfix_rec(0, 1, 2);
    let tset = set(2, &tpl(300, &IPFIX_FIELDS), 0);
    assert_eq!(
        run(
            &mut dec,
            exporter(1),
            &ipfix(0, 1, SECS, &[tset.clone(), set(300, &data, 0)])
        )
        .len(),
        1
    );
    // Withdrawal: template 300 with field count 0.
    let withdraw = set(2, &[0x01, 0x2c, 0, 0], 0);
    let out = run(
        &mut dec,
        exporter(1),
        &ipfix(1, 1, SECS, &[withdraw, set(300, &data, 0)]),
    );
    assert!(
        out.is_empty(),
        "data after withdrawal must wait for a new template"
    );
    assert_eq!(dec.stats().template_withdrawals, 1);
    assert_eq!(dec.pending_data_sets(), 1);
    // Re-announced: the waiting data is decoded.
    assert_eq!(
        run(
            &mut dec,
            exporter(1),
            &ipfix(1, 1, SECS, std::slice::from_ref(&tset))
        )
        .len(),
        1
    );
    // Withdraw all data templates (template id 2 = the set id, count 0).
    let all = set(2, &[0, 2, 0, 0], 0);
    run(&mut dec, exporter(1), &ipfix(2, 1, SECS, &[all]));
    assert!(run(
        &mut dec,
        exporter(1),
        &ipfix(2, 1, SECS, &[set(300, &data, 0)])
    )
    .is_empty());
    dec.finish();
    let st = dec.stats();
    assert_eq!(
        (st.template_withdrawals, st.data_sets_without_template),
        (2, 1)
    );
}

#[test]
fn ipfix_options_sampling_with_selector() {
    let mut dec = NetflowDecoder::default();
    // Scope selectorId (302), samplingPacketInterval (305) = 1, samplingPacketSpace (306) = 99.
    let otpl = opt_tpl_ipfix(500, 1, &[(302, 2), (305, 4), (306, 4)]);
    let odata = [0, 5, 0, 0, 0, 1, 0, 0, 0, 99];
    let mut fields = IPFIX_FIELDS.to_vec();
    fields.push((302, 2));
    let mut rec = ipfix_rec(0, 1, 2);
    rec.extend_from_slice(&[0, 5]);
    let p = ipfix(
        0,
        1,
        SECS,
        &[
            set(3, &otpl, 0),
            set(500, &odata, 0),
            set(2, &tpl(256, &fields), 0),
            set(256, &rec, 0),
        ],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out[0].sampling_interval, 100);
    let st = dec.stats();
    assert_eq!(
        (st.options_templates, st.options_records, st.records),
        (1, 1, 1)
    );
}

#[test]
fn two_exporters_same_template_id_different_layouts_do_not_mix() {
    let mut dec = NetflowDecoder::default();
    // Exporter A: IPFIX_FIELDS. Exporter B: ports first, then addresses.
    let b_fields = [(7u16, 2u16), (11, 2), (8, 4), (12, 4), (2, 4)];
    let mut b_rec = vec![0x00, 0x35, 0x01, 0xbb];
    b_rec.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 3]);
    let a = exporter(1);
    let b = exporter(2);
    run(
        &mut dec,
        a,
        &ipfix(0, 1, SECS, &[set(2, &tpl(256, &IPFIX_FIELDS), 0)]),
    );
    run(
        &mut dec,
        b,
        &ipfix(0, 1, SECS, &[set(2, &tpl(256, &b_fields), 0)]),
    );
    // Same address, other observation domain: a third layout space (no template).
    let c = ipfix(0, 2, SECS, &[set(256, &b_rec, 0)]);
    assert!(run(&mut dec, a, &c).is_empty());
    let oa = run(
        &mut dec,
        a,
        &ipfix(0, 1, SECS, &[set(256, &ipfix_rec(3, 1, 2), 0)]),
    );
    let ob = run(&mut dec, b, &ipfix(0, 1, SECS, &[set(256, &b_rec, 0)]));
    assert_eq!(
        (oa[0].src, oa[0].src_port, oa[0].packets),
        (ip([10, 0, 0, 3]), 40003, 13)
    );
    assert_eq!(
        (ob[0].src, ob[0].src_port, ob[0].dst_port, ob[0].packets),
        (ip([1, 1, 1, 1]), 53, 443, 3)
    );
    assert_eq!((oa[0].exporter, ob[0].exporter), (a.ip(), b.ip()));
}

#[test]
fn v5_and_v9_from_the_same_exporter_are_separate_streams() {
    let mut dec = NetflowDecoder::default();
    run(
        &mut dec,
        exporter(1),
        &v5(0, 0, UPTIME, SECS, 0, &[Rec5::new(0)]),
    );
    run(&mut dec, exporter(1), &v9(0, 0x0102, UPTIME, SECS, &[]));
    run(
        &mut dec,
        exporter(1),
        &v5(1, 0, UPTIME, SECS, 0, &[Rec5::new(0)]),
    );
    run(&mut dec, exporter(1), &v9(1, 0x0102, UPTIME, SECS, &[]));
    assert_eq!(dec.stats().sequence_lost, 0);
    assert_eq!(dec.stats().sequence_resets, 0);
}

// ---------------------------------------------------------------- hostile input

fn assert_fast(start: Instant) {
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn zero_length_fields_cannot_loop() {
    let start = Instant::now();
    let mut dec = NetflowDecoder::default();
    // Every field of length 0: rejected, its data never decodes.
    let p = v9(
        0,
        1,
        UPTIME,
        SECS,
        &[
            set(0, &tpl(256, &[(8, 0), (12, 0)]), 0),
            set(256, &[0; 64], 0),
        ],
    );
    assert!(run(&mut dec, exporter(1), &p).is_empty());
    let p = ipfix(
        0,
        1,
        SECS,
        &[set(2, &tpl(256, &[(8, 0)]), 0), set(256, &[0; 64], 0)],
    );
    assert!(run(&mut dec, exporter(1), &p).is_empty());
    let st = dec.stats();
    assert_eq!(st.templates_rejected, 2);
    assert_eq!(st.data_sets_buffered, 2);
    // Some zero-length fields among real ones: ignored, records decode.
    let mut fields = vec![(999u16, 0u16); 5];
    fields.extend_from_slice(&V9_FIELDS);
    fields.push((8, 0));
    let p = v9(
        0,
        2,
        UPTIME,
        SECS,
        &[set(0, &tpl(256, &fields), 0), set(256, &v9_rec(1, 0, 0), 0)],
    );
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].src, ip([10, 0, 0, 1]));
    assert_fast(start);
}

#[test]
fn ten_thousand_field_template_is_bounded() {
    let start = Instant::now();
    let mut dec = NetflowDecoder::default();
    // 10 000 fields: 9 999 zero-length ones and one 1-byte protocol field.
    let mut fields = vec![(999u16, 0u16); 9_999];
    fields.push((4, 1));
    let tset = set(0, &tpl(256, &fields), 0);
    assert!(tset.len() > 40_000);
    let p = v9(0, 1, UPTIME, SECS, &[tset]);
    run(&mut dec, exporter(1), &p);
    assert_eq!(dec.stats().templates, 1);
    // 20 000 one-byte records: the walk must not cost 10 000 steps each.
    let p = v9(1, 1, UPTIME, SECS, &[set(256, &[17u8; 20_000], 0)]);
    let out = run(&mut dec, exporter(1), &p);
    assert_eq!(out.len(), 20_000);
    assert!(out.iter().all(|r| r.proto == 17));
    // Same in IPFIX, with enterprise fields of length 0 as the filler.
    let mut f = vec![(5u16, 0u16, Some(1u32)); 6_000];
    f.push((4, 1, None));
    let p = ipfix(
        0,
        1,
        SECS,
        &[set(2, &tpl_ipfix(256, &f), 0), set(256, &[6u8; 10_000], 0)],
    );
    assert_eq!(run(&mut dec, exporter(1), &p).len(), 10_000);
    // A field count far beyond the set: malformed, nothing stored.
    let mut bad = tpl(257, &[(8, 4)]);
    bad[2..4].copy_from_slice(&10_000u16.to_be_bytes());
    run(
        &mut dec,
        exporter(1),
        &v9(2, 1, UPTIME, SECS, &[set(0, &bad, 0)]),
    );
    assert_eq!(dec.stats().malformed, 1);
    assert_fast(start);
}

#[test]
fn set_length_zero_or_past_the_end() {
    let mut dec = NetflowDecoder::default();
    let good = set(0, &tpl(256, &V9_FIELDS), 0);
    for bad_len in [0u16, 1, 3, 5000] {
        let mut p = v9(
            0,
            1,
            UPTIME,
            SECS,
            &[good.clone(), set(256, &v9_rec(0, 0, 0), 0)],
        );
        let at = 20 + good.len() + 2;
        p[at..at + 2].copy_from_slice(&bad_len.to_be_bytes());
        assert!(run(&mut dec, exporter(1), &p).is_empty());
        let mut p = ipfix(0, 1, SECS, &[set(2, &tpl(256, &IPFIX_FIELDS), 0)]);
        p[18..20].copy_from_slice(&bad_len.to_be_bytes());
        run(&mut dec, exporter(1), &p);
    }
    assert_eq!(dec.stats().malformed, 8);
}

#[test]
fn truncated_headers_and_unknown_versions() {
    let mut dec = NetflowDecoder::default();
    let v5p = v5(0, 0, UPTIME, SECS, 0, &[Rec5::new(0)]);
    let v9p = v9(0, 1, UPTIME, SECS, &[]);
    let ipx = ipfix(0, 1, SECS, &[]);
    run(&mut dec, exporter(1), &v5p[..23]);
    run(&mut dec, exporter(1), &v9p[..19]);
    run(&mut dec, exporter(1), &ipx[..15]);
    let mut short_len = ipx.clone();
    short_len[2..4].copy_from_slice(&8u16.to_be_bytes()); // IPFIX length below the header
    run(&mut dec, exporter(1), &short_len);
    assert_eq!(dec.stats().malformed, 4);
    assert_eq!(dec.stats().packets, 0);
    for p in [
        &[][..],
        &[0][..],
        &[0, 7, 0, 0][..],
        &[0xff, 0xff][..],
        &[0, 1][..],
    ] {
        run(&mut dec, exporter(1), p);
    }
    let st: NetflowStats = dec.stats();
    assert_eq!(st.unknown_version, 5);
    assert_eq!(st.records, 0);
}

#[test]
fn limits_on_templates_and_streams() {
    let cfg = NetflowConfig {
        max_templates: 2,
        max_streams: 2,
        ..NetflowConfig::default()
    };
    let mut dec = NetflowDecoder::new(cfg);
    let sets: Vec<Vec<u8>> = (256..260).map(|t| set(0, &tpl(t, &V9_FIELDS), 0)).collect();
    run(&mut dec, exporter(1), &v9(0, 1, UPTIME, SECS, &sets));
    assert_eq!(dec.stats().templates_rejected, 2);
    // Refreshing a stored template is always accepted.
    run(&mut dec, exporter(1), &v9(1, 1, UPTIME, SECS, &sets[..1]));
    assert_eq!(dec.stats().templates_rejected, 2);
    run(&mut dec, exporter(2), &v9(0, 1, UPTIME, SECS, &[]));
    run(&mut dec, exporter(3), &v9(0, 1, UPTIME, SECS, &[]));
    assert_eq!(dec.stats().streams_rejected, 1);
}

/// xorshift: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_and_random_datagrams_never_panic_or_hang() {
    let start = Instant::now();
    let mut dec = NetflowDecoder::default();
    let mut out = Vec::new();
    let mut varfields = IPFIX_FIELDS
        .iter()
        .map(|&(i, l)| (i, l, None))
        .collect::<Vec<_>>();
    varfields.push((82, 65535, None));
    varfields.push((1, 4, Some(9)));
    let seeds: Vec<Vec<u8>> = vec![
        v5(
            0,
            0,
            UPTIME,
            SECS,
            0,
            &(0..5).map(Rec5::new).collect::<Vec<_>>(),
        ),
        v9(
            0,
            1,
            UPTIME,
            SECS,
            &[
                set(0, &tpl(256, &V9_FIELDS), 0),
                set(1, &opt_tpl_v9(260, &[(1, 4)], &[(34, 4)]), 2),
                set(256, &[v9_rec(0, 0, 0), v9_rec(1, 0, 0)].concat(), 1),
            ],
        ),
        ipfix(
            0,
            1,
            SECS,
            &[
                set(2, &tpl_ipfix(256, &varfields), 0),
                set(3, &opt_tpl_ipfix(257, 1, &[(302, 2), (305, 4)]), 0),
                set(
                    256,
                    &[ipfix_rec(0, 1, 2), vec![3, b'a', b'b', b'c', 0, 0, 0, 1]].concat(),
                    0,
                ),
            ],
        ),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in &seeds {
        // Every truncation.
        for n in 0..=seed.len() {
            dec.decode(exporter(1), 0, &seed[..n], &mut out);
        }
        // Random byte flips.
        for _ in 0..3000 {
            let mut p = seed.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % p.len();
                p[i] = rng.next() as u8;
            }
            let from = exporter((rng.next() % 4) as u8);
            dec.decode(from, 0, &p, &mut out);
            out.clear();
        }
    }
    // Pure noise with a valid version.
    for _ in 0..2000 {
        let len = (rng.next() % 1500) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if p.len() >= 2 {
            p[0] = 0;
            p[1] = [5, 9, 10][(rng.next() % 3) as usize];
        }
        dec.decode(exporter(9), 0, &p, &mut out);
        out.clear();
    }
    dec.finish();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn conn_state_approximation() {
    let cases = [
        (6, 0x02, "S0"),
        (6, 0x06, "REJ"),
        (6, 0x03, "SH"),
        (6, 0x12, "S1"),
        (6, 0x1a, "S1"),
        (6, 0x13, "SF"),
        (6, 0x1b, "SF"),
        (6, 0x16, "RSTO"),
        (6, 0x14, "OTH"),
        (6, 0x10, "OTH"),
        (6, 0x00, "OTH"),
        (17, 0, "S0"),
        (1, 0, "OTH"),
        (58, 0, "OTH"),
    ];
    for (proto, flags, want) in cases {
        assert_eq!(
            conn_state_from_flags(proto, flags),
            want,
            "proto {proto} flags {flags:#x}"
        );
    }
}
