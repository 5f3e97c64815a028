//! Frame decoding tests with hand-built packets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wormsign_decode::*;

const ETH: u16 = LINKTYPE_ETHERNET;
const MAL: Decoded = Decoded::Skipped(SkipReason::Malformed);
const TRUNC: Decoded = Decoded::Skipped(SkipReason::TruncatedHeader);
const NOT_IP: Decoded = Decoded::Skipped(SkipReason::NotIp);

/// Standard IPv4/UDP 1234 -> 53 packet with a 5-byte payload, and its summary
/// when the IP header starts at `off`.
fn udp4() -> Vec<u8> {
    ipv4(17, &udp(1234, 53, b"hello"))
}

fn udp4_summary(off: u32) -> PacketSummary {
    PacketSummary {
        src_port: 1234,
        dst_port: 53,
        has_ports: true,
        ip_len: 33,
        payload_len: 5,
        payload_offset: off + 28,
        payload_captured: 5,
        ..base(v4(A4), v4(B4), 17)
    }
}

fn udp6() -> Vec<u8> {
    ipv6(17, &udp(5353, 5353, b"abc"))
}

fn udp6_summary(off: u32) -> PacketSummary {
    PacketSummary {
        src_port: 5353,
        dst_port: 5353,
        has_ports: true,
        ip_len: 51,
        payload_len: 3,
        payload_offset: off + 48,
        payload_captured: 3,
        ..base(v6(A6), v6(B6), 17)
    }
}

#[test]
fn ethernet_ipv4_tcp_with_ip_and_tcp_options() {
    let ip_opts = [0x01, 0x01, 0x01, 0x00]; // NOP NOP NOP EOL
    let tcp_opts = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1]; // MSS, NOP, WS, SACK-perm
    let seg = tcp(
        49152,
        80,
        0xdead_beef,
        0x0102_0304,
        0x18,
        29200,
        &tcp_opts,
        b"GET / HTTP",
    );
    let pkt = eth(
        0x0800,
        &ipv4_raw(6, A4, B4, &ip_opts, 7, 0x4000, None, &seg),
    );
    let expected = PacketSummary {
        src_port: 49152,
        dst_port: 80,
        has_ports: true,
        ip_len: 24 + 32 + 10,
        payload_len: 10,
        tcp_flags: 0x18,
        tcp_seq: 0xdead_beef,
        tcp_ack: 0x0102_0304,
        tcp_window: 29200,
        payload_offset: 14 + 24 + 32,
        payload_captured: 10,
        ..base(v4(A4), v4(B4), 6)
    };
    check(ETH, &pkt, Decoded::Ip(expected));
    let off = expected.payload_offset as usize;
    assert_eq!(&pkt[off..off + 10], b"GET / HTTP");
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut pkt = eth(0x0800, &udp4());
    pkt.resize(60, 0); // minimum Ethernet frame
    pkt.extend_from_slice(&[0xaa; 4]); // FCS / vendor trailer
    check(ETH, &pkt, Decoded::Ip(udp4_summary(14)));
}

#[test]
fn ethernet_ipv6_udp() {
    check(ETH, &eth(0x86dd, &udp6()), Decoded::Ip(udp6_summary(14)));
}

#[test]
fn vlan_single_double_triple() {
    let mut one = vlan_tag(0x8100, 100, 0x0800)[2..].to_vec();
    one.extend(udp4());
    let pkt = eth(0x8100, &one);
    check(
        ETH,
        &pkt,
        Decoded::Ip(PacketSummary {
            vlan: Some(100),
            ..udp4_summary(18)
        }),
    );

    // 802.1ad S-tag + 802.1Q C-tag.
    let mut two = vlan_tag(0x88a8, 200, 0x8100)[2..].to_vec();
    two.extend(&vlan_tag(0x8100, 300, 0x0800)[2..]);
    two.extend(udp4());
    check(
        ETH,
        &eth(0x88a8, &two),
        Decoded::Ip(PacketSummary {
            vlan: Some(200),
            inner_vlan: Some(300),
            ..udp4_summary(22)
        }),
    );

    // Three tags (0x9100, 0x88a8, 0x8100): outer two are reported.
    let mut three = vlan_tag(0x9100, 1, 0x88a8)[2..].to_vec();
    three.extend(&vlan_tag(0x88a8, 2, 0x8100)[2..]);
    three.extend(&vlan_tag(0x8100, 4095, 0x86dd)[2..]);
    three.extend(udp6());
    check(
        ETH,
        &eth(0x9100, &three),
        Decoded::Ip(PacketSummary {
            vlan: Some(1),
            inner_vlan: Some(2),
            ..udp6_summary(26)
        }),
    );
}

fn stacked_vlans(n: usize, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n * 4 + payload.len());
    for i in 0..n {
        let inner = if i + 1 == n { 0x0800 } else { 0x8100 };
        body.extend(&vlan_tag(0x8100, (i % 4096) as u16, inner)[2..]);
    }
    body.extend_from_slice(payload);
    eth(0x8100, &body)
}

#[test]
fn vlan_depth_limit() {
    let s = ip(ETH, &stacked_vlans(16, &udp4()));
    assert_eq!((s.vlan, s.inner_vlan, s.dst_port), (Some(0), Some(1), 53));
    check(ETH, &stacked_vlans(17, &udp4()), MAL);
}

#[test]
fn ten_thousand_vlan_tags_is_malformed_and_fast() {
    let pkt = stacked_vlans(10_000, &udp4());
    let t = Instant::now();
    for _ in 0..1000 {
        check(ETH, &pkt, MAL);
    }
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn vlan_truncated() {
    let mut pkt = eth(0x8100, &[0x00, 0x64]);
    check(ETH, &pkt, TRUNC);
    pkt.extend_from_slice(&[0x08, 0x00]);
    check(ETH, &pkt, TRUNC); // no IP header at all
}

fn mpls_label(label: u32, bos: bool) -> [u8; 4] {
    (label << 12 | u32::from(bos) << 8 | 64).to_be_bytes()
}

#[test]
fn mpls_stacks() {
    let mut body = Vec::new();
    body.extend(mpls_label(100, false));
    body.extend(mpls_label(200, true));
    body.extend(udp4());
    check(ETH, &eth(0x8847, &body), Decoded::Ip(udp4_summary(22)));

    let mut body = mpls_label(16, true).to_vec();
    body.extend(udp6());
    check(ETH, &eth(0x8848, &body), Decoded::Ip(udp6_summary(18)));

    // VLAN then MPLS.
    let mut body = vlan_tag(0x8100, 7, 0x8847)[2..].to_vec();
    body.extend(mpls_label(1, true));
    body.extend(udp4());
    check(
        ETH,
        &eth(0x8100, &body),
        Decoded::Ip(PacketSummary {
            vlan: Some(7),
            ..udp4_summary(22)
        }),
    );

    // Ethernet pseudowire with control word: not IP.
    let mut body = mpls_label(1, true).to_vec();
    body.extend([0, 0, 0, 0]);
    body.extend(eth(0x0800, &udp4()));
    check(ETH, &eth(0x8847, &body), NOT_IP);

    // Never reaching bottom of stack.
    let mut body = Vec::new();
    for i in 0..40 {
        body.extend(mpls_label(i, false));
    }
    check(ETH, &eth(0x8847, &body), MAL);
    check(ETH, &eth(0x8847, &body[..8]), TRUNC);
}

#[test]
fn pppoe_session() {
    let pppoe = |proto: u16, payload: &[u8]| {
        let mut v = vec![0x11, 0x00, 0x12, 0x34];
        v.extend(((payload.len() + 2) as u16).to_be_bytes());
        v.extend(proto.to_be_bytes());
        v.extend_from_slice(payload);
        eth(0x8864, &v)
    };
    check(ETH, &pppoe(0x0021, &udp4()), Decoded::Ip(udp4_summary(22)));
    check(ETH, &pppoe(0x0057, &udp6()), Decoded::Ip(udp6_summary(22)));
    check(ETH, &pppoe(0xc021, &[1, 1, 0, 4]), NOT_IP); // LCP
                                                       // Protocol field compression (seen in real captures): a single 0x21 byte.
    let mut pfc = vec![0x11, 0x00, 0x12, 0x34, 0x00, 34, 0x21];
    pfc.extend(udp4());
    check(ETH, &eth(0x8864, &pfc), Decoded::Ip(udp4_summary(21)));
    check(ETH, &pppoe(0x0021, &[])[..20], TRUNC);
}

#[test]
fn linux_sll_and_sll2() {
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend(udp4());
    check(LINKTYPE_LINUX_SLL, &sll, Decoded::Ip(udp4_summary(16)));

    let mut sll6 = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd];
    sll6.extend(udp6());
    check(LINKTYPE_LINUX_SLL, &sll6, Decoded::Ip(udp6_summary(16)));

    // SLL2: protocol, reserved, ifindex, hatype, pkttype, halen, addr[8].
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend(udp4());
    check(LINKTYPE_LINUX_SLL2, &sll2, Decoded::Ip(udp4_summary(20)));
    check(LINKTYPE_LINUX_SLL2, &sll2[..19], TRUNC);

    // SLL with a non-IP protocol (0x0004 = 802.2 LLC).
    let mut llc = sll.clone();
    llc[14..16].copy_from_slice(&[0x00, 0x04]);
    check(LINKTYPE_LINUX_SLL, &llc, NOT_IP);
}

#[test]
fn null_and_loop_both_byte_orders() {
    for (lt, fam) in [
        (LINKTYPE_NULL, [2, 0, 0, 0]),
        (LINKTYPE_NULL, [0, 0, 0, 2]),
        (LINKTYPE_LOOP, [0, 0, 0, 2]),
    ] {
        let mut p = fam.to_vec();
        p.extend(udp4());
        check(lt, &p, Decoded::Ip(udp4_summary(4)));
    }
    for fam in [24u32, 28, 30] {
        for bytes in [fam.to_le_bytes(), fam.to_be_bytes()] {
            let mut p = bytes.to_vec();
            p.extend(udp6());
            check(LINKTYPE_NULL, &p, Decoded::Ip(udp6_summary(4)));
            check(LINKTYPE_LOOP, &p, Decoded::Ip(udp6_summary(4)));
        }
    }
    let mut p = vec![7, 0, 0, 0];
    p.extend(udp4());
    check(LINKTYPE_NULL, &p, NOT_IP);
    check(LINKTYPE_NULL, &[2, 0, 0], TRUNC);
    check(LINKTYPE_NULL, &[2, 0, 0, 0], TRUNC);
}

#[test]
fn raw_ip_link_types() {
    for lt in [LINKTYPE_RAW, LINKTYPE_RAW_BSD12, LINKTYPE_RAW_BSD14] {
        check(lt, &udp4(), Decoded::Ip(udp4_summary(0)));
        check(lt, &udp6(), Decoded::Ip(udp6_summary(0)));
        check(lt, &[0x50; 40], MAL);
        check(lt, &[], TRUNC);
    }
    check(LINKTYPE_IPV4, &udp4(), Decoded::Ip(udp4_summary(0)));
    check(LINKTYPE_IPV6, &udp6(), Decoded::Ip(udp6_summary(0)));
    // The link type promises a version; the other one is inconsistent.
    check(LINKTYPE_IPV4, &udp6(), MAL);
    check(LINKTYPE_IPV6, &udp4(), MAL);
    check(LINKTYPE_IPV4, &udp4()[..19], TRUNC);
    check(LINKTYPE_IPV6, &udp6()[..39], TRUNC);
}

#[test]
fn ppp_with_and_without_address_control() {
    let mut p = vec![0xff, 0x03, 0x00, 0x21];
    p.extend(udp4());
    check(LINKTYPE_PPP, &p, Decoded::Ip(udp4_summary(4)));

    let mut p = vec![0x00, 0x57];
    p.extend(udp6());
    check(LINKTYPE_PPP, &p, Decoded::Ip(udp6_summary(2)));

    // Protocol field compression.
    let mut p = vec![0xff, 0x03, 0x21];
    p.extend(udp4());
    check(LINKTYPE_PPP, &p, Decoded::Ip(udp4_summary(3)));

    check(LINKTYPE_PPP, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4], NOT_IP);
    check(LINKTYPE_PPP, &[0xff, 0x03], TRUNC);
}

fn nflog(family: u8, little: bool, ip: &[u8]) -> Vec<u8> {
    let tlv = |v: &mut Vec<u8>, typ: u16, value: &[u8]| {
        let len = (value.len() + 4) as u16;
        if little {
            v.extend(len.to_le_bytes());
            v.extend(typ.to_le_bytes());
        } else {
            v.extend(len.to_be_bytes());
            v.extend(typ.to_be_bytes());
        }
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
    };
    let mut v = vec![family, 0, 0, 1];
    tlv(&mut v, 1, &[0x08, 0x00, 3, 0]); // NFULA_PACKET_HDR
    tlv(&mut v, 10, b"abc"); // NFULA_PREFIX, needs padding
    tlv(&mut v, 9, ip); // NFULA_PAYLOAD
    tlv(&mut v, 11, &[0, 0, 0, 0]); // NFULA_UID after the payload
    v
}

#[test]
fn nflog_tlvs() {
    // Header 4 + HDR TLV 8 + PREFIX TLV 8 + payload TLV header 4.
    for little in [true, false] {
        check(
            LINKTYPE_NFLOG,
            &nflog(2, little, &udp4()),
            Decoded::Ip(udp4_summary(24)),
        );
        check(
            LINKTYPE_NFLOG,
            &nflog(10, little, &udp6()),
            Decoded::Ip(udp6_summary(24)),
        );
    }
    check(LINKTYPE_NFLOG, &nflog(7, true, &udp4()), NOT_IP);
    // The TLV after the payload must not be taken for the IP packet's tail: the
    // summary is the same as without it, and a payload cut by the snaplen is
    // truncated.
    let p = nflog(2, true, &udp4());
    let s = ip(LINKTYPE_NFLOG, &p[..24 + 30]);
    assert!(s.truncated && s.has_ports);
    assert_eq!(s.payload_captured, 2);
    check(LINKTYPE_NFLOG, &p[..20], TRUNC);
    // A TLV with length < 4 would never advance.
    let mut bad = vec![2, 0, 0, 1];
    bad.extend([2, 0, 1, 0]);
    bad.extend([0; 40]);
    check(LINKTYPE_NFLOG, &bad, MAL);
}

#[test]
fn ipv4_fragments() {
    // First fragment of a UDP datagram: 8 UDP header + 16 payload bytes here,
    // more to come; UDP length announces the whole datagram (8 + 40).
    let mut first_l4 = udp(4000, 53, &[0x55; 40]);
    first_l4.truncate(24);
    let first = ipv4_raw(17, A4, B4, &[], 0xbeef, 0x2000, None, &first_l4);
    let s = ip(LINKTYPE_RAW, &first);
    assert_eq!(
        s,
        PacketSummary {
            src_port: 4000,
            dst_port: 53,
            has_ports: true,
            ip_len: 44,
            payload_len: 16,
            fragment: Some(Fragment {
                id: 0xbeef,
                offset: 0,
                more: true
            }),
            payload_offset: 28,
            payload_captured: 16,
            ..base(v4(A4), v4(B4), 17)
        }
    );
    // Second (last) fragment at byte offset 24 (3 * 8).
    let second = ipv4_raw(17, A4, B4, &[], 0xbeef, 3, None, &[0x55; 24]);
    check(
        LINKTYPE_RAW,
        &second,
        Decoded::Ip(PacketSummary {
            ip_len: 44,
            payload_len: 24,
            fragment: Some(Fragment {
                id: 0xbeef,
                offset: 24,
                more: false,
            }),
            payload_offset: 20,
            payload_captured: 24,
            ..base(v4(A4), v4(B4), 17)
        }),
    );
    // A first TCP fragment that carries only 8 bytes of the TCP header still
    // yields ports (and is not malformed).
    let syn = tcp(1025, 445, 1, 0, 0x02, 8192, &[], &[]);
    let tiny = ipv4_raw(6, A4, B4, &[], 9, 0x2000, None, &syn[..8]);
    let s = ip(LINKTYPE_RAW, &tiny);
    assert_eq!((s.has_ports, s.src_port, s.dst_port), (true, 1025, 445));
    assert_eq!(
        s.fragment.map(|f| (f.id, f.offset, f.more)),
        Some((9, 0, true))
    );
    assert!(!s.truncated);
    // A first fragment with a garbage TCP data offset is kept (it is judged after
    // reassembly), unlike an unfragmented packet.
    let mut bad = syn.clone();
    bad[12] = 0x10;
    let first = ipv4_raw(6, A4, B4, &[], 9, 0x2000, None, &bad[..16]);
    assert!(ip(LINKTYPE_RAW, &first).has_ports);
    let whole = ipv4_raw(6, A4, B4, &[], 9, 0x4000, None, &bad);
    check(LINKTYPE_RAW, &whole, MAL);
}

/// IPv6 extension header with the generic (len + 1) * 8 layout.
fn ext(nh: u8, units: u8) -> Vec<u8> {
    let mut v = vec![nh, units];
    v.resize((usize::from(units) + 1) * 8, 0);
    v
}

fn frag6(nh: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut v = vec![nh, 0];
    v.extend((offset | u16::from(more)).to_be_bytes());
    v.extend(id.to_be_bytes());
    v
}

#[test]
fn ipv6_extension_headers() {
    // HBH (8) -> Routing (24) -> Fragment (8, first, more) -> UDP.
    let mut chain = ext(43, 0);
    chain.extend(ext(44, 2));
    chain.extend(frag6(17, 0, true, 0xabcd_0001));
    chain.extend(udp(1000, 2000, &[7; 12]));
    let pkt = eth(0x86dd, &ipv6(0, &chain));
    check(
        ETH,
        &pkt,
        Decoded::Ip(PacketSummary {
            src_port: 1000,
            dst_port: 2000,
            has_ports: true,
            ip_len: 40 + 40 + 20,
            payload_len: 12,
            fragment: Some(Fragment {
                id: 0xabcd_0001,
                offset: 0,
                more: true,
            }),
            payload_offset: 14 + 40 + 40 + 8,
            payload_captured: 12,
            ..base(v6(A6), v6(B6), 17)
        }),
    );

    // Later fragment: no ports, proto from the fragment header.
    let mut later = frag6(17, 1448, false, 0xabcd_0001);
    later.extend([9; 100]);
    check(
        LINKTYPE_RAW,
        &ipv6(44, &later),
        Decoded::Ip(PacketSummary {
            ip_len: 148,
            payload_len: 100,
            fragment: Some(Fragment {
                id: 0xabcd_0001,
                offset: 1448,
                more: false,
            }),
            payload_offset: 48,
            payload_captured: 100,
            ..base(v6(A6), v6(B6), 17)
        }),
    );

    // Destination options -> AH (len field 4 => 24 bytes) -> TCP.
    let mut chain = ext(51, 0);
    let mut ah = vec![6, 4];
    ah.resize(24, 0);
    chain.extend(ah);
    chain.extend(tcp(22, 50000, 5, 6, 0x10, 100, &[], b"x"));
    let s = ip(LINKTYPE_RAW, &ipv6(60, &chain));
    assert_eq!((s.proto, s.src_port, s.dst_port), (6, 22, 50000));
    assert_eq!((s.payload_len, s.payload_offset), (1, 40 + 8 + 24 + 20));

    // ESP ends the walk.
    let s = ip(LINKTYPE_RAW, &ipv6(50, &[1; 32]));
    assert_eq!((s.proto, s.has_ports, s.payload_len), (50, false, 32));
    // No next header.
    let s = ip(LINKTYPE_RAW, &ipv6(0, &ext(59, 0)));
    assert_eq!((s.proto, s.has_ports, s.payload_len), (59, false, 0));
}

#[test]
fn ipv6_extension_chain_loops_and_overruns() {
    // Hop-by-hop pointing to hop-by-hop, forever (within a large packet).
    let mut chain = Vec::new();
    for _ in 0..200 {
        chain.extend(ext(0, 0));
    }
    check(LINKTYPE_RAW, &ipv6(0, &chain), MAL);
    // A chain of 8 headers then UDP is fine.
    let mut chain = Vec::new();
    for _ in 0..7 {
        chain.extend(ext(60, 0));
    }
    chain.extend(ext(17, 0));
    chain.extend(udp(1, 2, &[]));
    assert_eq!(ip(LINKTYPE_RAW, &ipv6(0, &chain)).dst_port, 2);
    // A header whose length runs past the announced end.
    check(LINKTYPE_RAW, &ipv6(0, &ext(6, 0)[..2]), MAL);
    let mut long = ext(6, 20);
    long.truncate(16);
    check(LINKTYPE_RAW, &ipv6(60, &long), MAL);
    // Announced fine but cut by the snaplen: truncated summary, no ports.
    let mut chain = ext(44, 0);
    chain.extend(frag6(6, 0, true, 1));
    chain.extend(tcp(1, 2, 0, 0, 2, 0, &[], &[]));
    let pkt = ipv6(0, &chain);
    let s = ip(LINKTYPE_RAW, &pkt[..40 + 8 + 4]);
    assert!(s.truncated && !s.has_ports);
    assert_eq!((s.proto, s.ip_len), (44, pkt.len() as u32));
    let s = ip(LINKTYPE_RAW, &pkt[..40 + 16 + 2]);
    assert!(s.truncated && !s.has_ports);
    assert_eq!(s.proto, 6);
    let s = ip(LINKTYPE_RAW, &pkt[..40 + 16 + 4]);
    assert!(s.truncated && s.has_ports);
}

#[test]
fn icmp_and_icmpv6_type_code_as_ports() {
    let echo = [8, 0, 0xf7, 0xff, 0, 1, 0, 1, b'p', b'i', b'n', b'g'];
    check(
        LINKTYPE_RAW,
        &ipv4(1, &echo),
        Decoded::Ip(PacketSummary {
            src_port: 8,
            dst_port: 0,
            has_ports: true,
            ip_len: 32,
            payload_len: 4,
            payload_offset: 28,
            payload_captured: 4,
            ..base(v4(A4), v4(B4), 1)
        }),
    );
    let unreach = [3, 3, 0, 0, 0, 0, 0, 0];
    let s = ip(LINKTYPE_RAW, &ipv4(1, &unreach));
    assert_eq!((s.src_port, s.dst_port, s.payload_len), (3, 3, 0));
    let echo6 = [128, 0, 0, 0, 0, 1, 0, 1];
    let s = ip(LINKTYPE_RAW, &ipv6(58, &echo6));
    assert_eq!(
        (s.proto, s.src_port, s.dst_port, s.has_ports),
        (58, 128, 0, true)
    );
}

#[test]
fn sctp_ports_and_portless_protocols() {
    let mut sctp = vec![0x0b, 0x59, 0x0b, 0x59, 0, 0, 0, 1, 0, 0, 0, 0];
    sctp.extend([0; 16]);
    let s = ip(LINKTYPE_RAW, &ipv4(132, &sctp));
    assert_eq!(
        (s.src_port, s.dst_port, s.has_ports, s.payload_len),
        (2905, 2905, true, 16)
    );
    // GRE: outer packet only.
    let gre = [0, 0, 0x08, 0x00, 0x45, 0, 0, 20];
    let s = ip(LINKTYPE_RAW, &ipv4(47, &gre));
    assert_eq!(
        (
            s.proto,
            s.has_ports,
            s.payload_len,
            s.payload_offset,
            s.payload_captured
        ),
        (47, false, 8, 20, 8)
    );
}

#[test]
fn snaplen_truncated_tcp() {
    let seg = tcp(40000, 443, 100, 200, 0x10, 512, &[1, 1, 1, 0], &[0xee; 100]);
    let full = eth(0x0800, &ipv4(6, &seg));
    // Headers plus 10 payload bytes captured.
    let s = ip(ETH, &full[..14 + 20 + 24 + 10]);
    assert_eq!(
        s,
        PacketSummary {
            src_port: 40000,
            dst_port: 443,
            has_ports: true,
            ip_len: 144,
            payload_len: 100,
            tcp_flags: 0x10,
            tcp_seq: 100,
            tcp_ack: 200,
            tcp_window: 512,
            truncated: true,
            payload_offset: 58,
            payload_captured: 10,
            ..base(v4(A4), v4(B4), 6)
        }
    );
    // Only the ports captured.
    let s = ip(ETH, &full[..14 + 20 + 4]);
    assert!(s.truncated && s.has_ports);
    assert_eq!((s.src_port, s.tcp_flags, s.payload_captured), (40000, 0, 0));
    // Not even the ports; the data offset is unknown, so a 20-byte header is
    // assumed (the real one has 4 bytes of options).
    let s = ip(ETH, &full[..14 + 20 + 3]);
    assert!(s.truncated && !s.has_ports);
    assert_eq!((s.src_port, s.dst_port, s.payload_len), (0, 0, 104));
    // IPv4 options cut.
    let opt = eth(0x0800, &ipv4_raw(6, A4, B4, &[1; 8], 1, 0, None, &seg));
    let s = ip(ETH, &opt[..14 + 24]);
    assert!(s.truncated && !s.has_ports);
    assert_eq!(s.proto, 6);
}

#[test]
fn truncated_before_ip_header() {
    let full = eth(0x0800, &udp4());
    for n in 0..14 + 20 {
        check(ETH, &full[..n], TRUNC);
    }
    for lt in [
        LINKTYPE_NULL,
        LINKTYPE_LOOP,
        LINKTYPE_RAW,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_LINUX_SLL2,
        LINKTYPE_PPP,
        LINKTYPE_NFLOG,
    ] {
        check(lt, &[], TRUNC);
    }
}

#[test]
fn malformed_headers() {
    // IHL < 5.
    let mut p = udp4();
    p[0] = 0x44;
    check(LINKTYPE_RAW, &p, MAL);
    // Total length < header length.
    let p = ipv4_raw(17, A4, B4, &[1, 1, 1, 1], 1, 0, Some(22), &udp(1, 2, &[]));
    check(LINKTYPE_RAW, &p, MAL);
    // TCP data offset < 5.
    let mut seg = tcp(1, 2, 0, 0, 2, 0, &[], &[]);
    seg[12] = 0x40;
    check(LINKTYPE_RAW, &ipv4(6, &seg), MAL);
    // TCP data offset beyond the segment.
    let mut seg = tcp(1, 2, 0, 0, 2, 0, &[], &[]);
    seg[12] = 0xf0;
    check(LINKTYPE_RAW, &ipv4(6, &seg), MAL);
    // Segment too short for a TCP / UDP header.
    check(LINKTYPE_RAW, &ipv4(6, &[0; 12]), MAL);
    check(LINKTYPE_RAW, &ipv4(17, &[0; 4]), MAL);
    // Ethertype says IPv4, version nibble says 6.
    check(ETH, &eth(0x0800, &udp6()), MAL);
    check(ETH, &eth(0x86dd, &udp4()), MAL);
}

#[test]
fn zero_total_length_uses_captured_length() {
    // TSO: IPv4 total length 0 in a captured outgoing super-segment.
    let seg = tcp(1, 2, 3, 4, 0x18, 5, &[], &[0; 3000]);
    let p = ipv4_raw(6, A4, B4, &[], 1, 0x4000, Some(0), &seg);
    let s = ip(LINKTYPE_RAW, &p);
    assert_eq!((s.ip_len, s.payload_len, s.truncated), (3040, 3000, false));
}

#[test]
fn udp_length_field_bounds_the_payload() {
    // UDP length 8 (no payload) but the IP packet carries 35 more bytes.
    let mut l4 = udp(1, 53, &[0xab; 35]);
    l4[4..6].copy_from_slice(&8u16.to_be_bytes());
    let s = ip(LINKTYPE_RAW, &ipv4(17, &l4));
    assert_eq!((s.payload_len, s.payload_captured), (0, 0));
    // UDP length larger than the IP payload: the IP length wins.
    let mut l4 = udp(1, 53, &[0xab; 10]);
    l4[4..6].copy_from_slice(&500u16.to_be_bytes());
    let s = ip(LINKTYPE_RAW, &ipv4(17, &l4));
    assert_eq!((s.payload_len, s.payload_captured), (10, 10));
}

fn arp_body(op: u16, htype: u16) -> Vec<u8> {
    let mut v = htype.to_be_bytes().to_vec();
    v.extend([0x08, 0x00, 6, 4]);
    v.extend(op.to_be_bytes());
    v.extend([0x02, 0, 0, 0, 0, 0xaa]);
    v.extend([10, 0, 0, 1]);
    v.extend([0; 6]);
    v.extend([10, 0, 0, 2]);
    v
}

#[test]
fn arp_request_and_reply() {
    let expected = |op, vlan| {
        Decoded::Arp(ArpPacket {
            op,
            sender_mac: [0x02, 0, 0, 0, 0, 0xaa],
            sender_ip: [10, 0, 0, 1].into(),
            target_mac: [0; 6],
            target_ip: [10, 0, 0, 2].into(),
            vlan,
        })
    };
    let mut req = eth(0x0806, &arp_body(1, 1));
    req.resize(60, 0);
    check(ETH, &req, expected(1, None));
    let mut tagged = vlan_tag(0x88a8, 10, 0x8100)[2..].to_vec();
    tagged.extend(&vlan_tag(0x8100, 20, 0x0806)[2..]);
    tagged.extend(arp_body(2, 1));
    check(ETH, &eth(0x88a8, &tagged), expected(2, Some(10)));
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x06];
    sll.extend(arp_body(1, 1));
    check(LINKTYPE_LINUX_SLL, &sll, expected(1, None));
    // Other hardware, truncated, inconsistent address lengths.
    check(ETH, &eth(0x0806, &arp_body(1, 6)), NOT_IP);
    check(ETH, &eth(0x0806, &arp_body(1, 1)[..27]), TRUNC);
    let mut bad = arp_body(1, 1);
    bad[4] = 8;
    check(ETH, &eth(0x0806, &bad), MAL);
}

#[test]
fn other_ethertypes_and_unknown_link_types() {
    check(ETH, &eth(0x88cc, &[0; 40]), NOT_IP); // LLDP
    check(ETH, &eth(0x0026, &[0x42, 0x42, 0x03, 0, 0]), NOT_IP); // 802.3 + STP
    check(ETH, &eth(0x8137, &[0xff; 30]), NOT_IP); // IPX
    for lt in [2u16, 105, 127, 147, 1000, u16::MAX] {
        check(lt, &udp4(), Decoded::Skipped(SkipReason::UnknownLinkType));
    }
}

#[test]
fn skip_reason_names() {
    let names: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "unknown_link_type",
            "not_ip",
            "malformed",
            "truncated_header"
        ]
    );
    assert_eq!(SkipReason::NotIp.to_string(), "not_ip");
    let mut sorted = SkipReason::ALL;
    sorted.sort();
    assert_eq!(sorted, SkipReason::ALL);
}

/// Cross-check against etherparse on packets it builds.
#[test]
fn agrees_with_etherparse_packet_builder() {
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..2000 {
        let payload: Vec<u8> = (0..rng.below(300)).map(|_| rng.byte()).collect();
        let (sp, dp) = (rng.next() as u16, rng.next() as u16);
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        let mut out = Vec::new();
        let v6 = i % 2 == 0;
        let tcp = i % 3 == 0;
        let vid = (rng.next() % 4095) as u16;
        macro_rules! finish {
            ($ip:expr) => {
                if tcp {
                    $ip.tcp(sp, dp, rng.next() as u32, rng.next() as u16)
                        .syn()
                        .ack(7)
                        .write(&mut out, &payload)
                        .unwrap()
                } else {
                    $ip.udp(sp, dp).write(&mut out, &payload).unwrap()
                }
            };
        }
        match (v6, i % 4 < 2) {
            (false, false) => finish!(b.ipv4(A4, B4, 64)),
            (true, false) => finish!(b.ipv6(A6, B6, 64)),
            (false, true) => finish!(b.single_vlan(vid.try_into().unwrap()).ipv4(A4, B4, 64)),
            (true, true) => finish!(b.single_vlan(vid.try_into().unwrap()).ipv6(A6, B6, 64)),
        }
        let s = ip(ETH, &out);
        let sliced = SlicedPacket::from_ethernet(&out).unwrap();
        let (esp, edp, epl) = match sliced.transport.unwrap() {
            TransportSlice::Tcp(t) => (t.source_port(), t.destination_port(), t.payload()),
            TransportSlice::Udp(u) => (u.source_port(), u.destination_port(), u.payload()),
            other => panic!("{other:?}"),
        };
        assert_eq!((s.src_port, s.dst_port), (esp, edp));
        assert_eq!(s.payload_len as usize, epl.len());
        let off = s.payload_offset as usize;
        assert_eq!(&out[off..off + s.payload_captured as usize], epl);
        assert_eq!(s.proto, if tcp { 6 } else { 17 });
        assert_eq!(s.vlan, (i % 4 < 2).then_some(vid));
        if tcp {
            assert_eq!(s.tcp_flags, 0x12);
            assert_eq!(s.tcp_ack, 7);
        }
    }
}
