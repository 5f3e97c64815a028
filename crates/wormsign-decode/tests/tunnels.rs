//! Tunnel decapsulation on frames laid out by hand from the specifications: what the
//! real captures (`captures.rs`, against tshark) and the wrapped scenarios (`tests/cli`)
//! do not show: nesting and its bound, the chain's symmetry, configured ports, and
//! carriers that must stay whole.

mod common;

use common::{eth, ip, ipv4_raw, ipv6_hdr, tcp, udp, v4, v6, A4, A6, B4, B6};
use wormsign_decode::{
    decode, decode_with, Decoded, PacketSummary, SkipReason, TunnelConfig, TunnelKind,
    LINKTYPE_ETHERNET, LINKTYPE_RAW,
};

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_raw(proto, src, dst, &[], 1, 0x4000, None, payload)
}

/// The inner packet every test carries: 10.0.0.1:40000 -> 10.0.0.2:445, a SYN.
fn inner_ip() -> Vec<u8> {
    ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, &syn(40000, 445))
}

fn syn(sport: u16, dport: u16) -> Vec<u8> {
    tcp(sport, dport, 1, 0, 0x02, 1024, &[], &[])
}

fn vxlan(vni: u32, frame: &[u8]) -> Vec<u8> {
    let mut h = vec![0x08, 0, 0, 0];
    h.extend_from_slice(&(vni << 8).to_be_bytes());
    h.extend_from_slice(frame);
    h
}

/// Ethernet / IPv4 `src -> dst` / UDP 4789 / VXLAN `vni` / the inner Ethernet frame.
fn vxlan_frame(src: [u8; 4], dst: [u8; 4], vni: u32) -> Vec<u8> {
    let inner = eth(0x0800, &inner_ip());
    eth(
        0x0800,
        &ipv4(src, dst, 17, &udp(50000, 4789, &vxlan(vni, &inner))),
    )
}

/// The IP summary `decode_with` gave.
fn summary(d: Decoded) -> PacketSummary {
    match d {
        Decoded::Ip(s) => s,
        other => panic!("not IP: {other:?}"),
    }
}

fn addr(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn vxlan_inner_packet_with_its_tunnel() {
    let s = ip(LINKTYPE_ETHERNET, &vxlan_frame(A4, B4, 5001));
    assert_eq!(
        (s.src, s.dst, s.proto),
        (addr("10.0.0.1"), addr("10.0.0.2"), 6)
    );
    assert_eq!((s.src_port, s.dst_port, s.tcp_flags), (40000, 445, 0x02));
    let t = s.tunnel.expect("tunnel");
    assert_eq!((t.kind, t.id, t.depth), (TunnelKind::Vxlan, Some(5001), 1));
    assert_eq!((t.src, t.dst), (v4(A4), v4(B4)));
}

#[test]
fn the_chain_tells_tunnels_apart_but_not_directions() {
    let chain = |f: Vec<u8>| ip(LINKTYPE_ETHERNET, &f).tunnel.unwrap().chain;
    let forward = chain(vxlan_frame(A4, B4, 5001));
    assert_eq!(forward, chain(vxlan_frame(B4, A4, 5001)), "both directions");
    assert_ne!(forward, chain(vxlan_frame(A4, B4, 5002)), "another VNI");
    assert_ne!(
        forward,
        chain(vxlan_frame(A4, [192, 0, 2, 3], 5001)),
        "another VTEP"
    );
    assert_ne!(forward, 0);
}

/// GTP-U (TS 29.281): one TEID per direction, so the TEID is recorded but the chain
/// keys on the endpoints; extension headers are walked.
#[test]
fn gtpu_teids_per_direction_share_a_chain() {
    let gtp = |teid: u32, extension: bool| {
        let inner = inner_ip();
        let mut h = vec![if extension { 0x34 } else { 0x30 }, 0xff];
        let extra = if extension { 8 } else { 0 };
        h.extend_from_slice(&((inner.len() + extra) as u16).to_be_bytes());
        h.extend_from_slice(&teid.to_be_bytes());
        if extension {
            // Sequence, N-PDU, next type: PDU session container (one 4-byte unit).
            h.extend_from_slice(&[0, 0, 0, 0x85, 0x01, 0x10, 0x09, 0x00]);
        }
        h.extend_from_slice(&inner);
        h
    };
    let frame = |src, dst, teid, ext| {
        eth(
            0x0800,
            &ipv4(src, dst, 17, &udp(2152, 2152, &gtp(teid, ext))),
        )
    };
    let up = ip(LINKTYPE_ETHERNET, &frame(A4, B4, 0x1001, true));
    let down = ip(LINKTYPE_ETHERNET, &frame(B4, A4, 0x2002, false));
    let (u, d) = (up.tunnel.unwrap(), down.tunnel.unwrap());
    assert_eq!(
        (u.kind, u.id, d.id),
        (TunnelKind::GtpU, Some(0x1001), Some(0x2002))
    );
    assert_eq!(u.chain, d.chain);
    assert_eq!((up.dst_port, down.dst_port), (445, 445));
}

/// VXLAN inside GRE: two levels, the outermost one described, both in the chain; with
/// `max_depth` 1 the walk stops at the VXLAN carrier.
#[test]
fn nested_tunnels_and_the_depth_bound() {
    let vxlan_packet = ipv4(
        [172, 16, 0, 1],
        [172, 16, 0, 2],
        17,
        &udp(50000, 4789, &vxlan(7, &eth(0x0800, &inner_ip()))),
    );
    let mut gre = vec![0x20, 0x00, 0x08, 0x00];
    gre.extend_from_slice(&99u32.to_be_bytes()); // key
    gre.extend_from_slice(&vxlan_packet);
    let frame = eth(0x0800, &ipv4(A4, B4, 47, &gre));
    let s = ip(LINKTYPE_ETHERNET, &frame);
    let t = s.tunnel.unwrap();
    assert_eq!((s.src, s.dst_port), (addr("10.0.0.1"), 445));
    assert_eq!((t.kind, t.id, t.depth), (TunnelKind::Gre, Some(99), 2));
    assert_eq!(t.src, v4(A4));
    let shallow = TunnelConfig {
        max_depth: 1,
        ..TunnelConfig::default()
    };
    let s1 = summary(decode_with(LINKTYPE_ETHERNET, &frame, &shallow));
    assert_eq!((s1.src, s1.dst_port), (addr("172.16.0.1"), 4789));
    assert_eq!(s1.tunnel.unwrap().depth, 1);
    assert_ne!(s1.tunnel.unwrap().chain, t.chain);
    let off = summary(decode_with(LINKTYPE_ETHERNET, &frame, &TunnelConfig::off()));
    assert_eq!((off.proto, off.tunnel), (47, None));
}

/// A datagram on a tunnel port whose header is not the tunnel's, or whose inner headers
/// are damaged, stays the datagram; a non-IP frame inside is skipped as on a bare link.
#[test]
fn carriers_that_stay_whole() {
    let on_4789 = |payload: &[u8]| eth(0x0800, &ipv4(A4, B4, 17, &udp(50000, 4789, payload)));
    let mut no_i_flag = vxlan(1, &eth(0x0800, &inner_ip()));
    no_i_flag[0] = 0;
    let mut cut = vxlan(1, &eth(0x0800, &inner_ip()));
    cut[8 + 14] = 0x44; // IHL 4: a damaged inner header
    for (what, payload) in [("no I flag", no_i_flag), ("damaged inner", cut)] {
        let s = ip(LINKTYPE_ETHERNET, &on_4789(&payload));
        assert_eq!((s.dst_port, s.tunnel), (4789, None), "{what}");
    }
    let lldp = vxlan(1, &eth(0x88cc, &[0; 30]));
    assert_eq!(
        decode(LINKTYPE_ETHERNET, &on_4789(&lldp)),
        Decoded::Skipped(SkipReason::NotIp)
    );
    // A fragment carries only part of the inner packet: not unwrapped.
    let first_fragment = ipv4_raw(4, A4, B4, &[], 1, 0x2000, None, &inner_ip());
    let s = ip(LINKTYPE_RAW, &first_fragment);
    assert_eq!((s.proto, s.tunnel), (4, None));
}

#[test]
fn configured_udp_ports() {
    let inner = eth(0x0800, &inner_ip());
    let frame = eth(
        0x0800,
        &ipv4(A4, B4, 17, &udp(50000, 8472, &vxlan(3, &inner))),
    );
    assert_eq!(ip(LINKTYPE_ETHERNET, &frame).dst_port, 8472);
    let mut linux = TunnelConfig::default();
    linux.udp_ports.push((8472, TunnelKind::Vxlan));
    let s = summary(decode_with(LINKTYPE_ETHERNET, &frame, &linux));
    assert_eq!((s.dst_port, s.tunnel.unwrap().id), (445, Some(3)));
}

/// IPv6 in IPv4 (6in4), IPv4 in IPv6 (4in6), IPv6 in IPv6.
#[test]
fn ip_in_ip_kinds() {
    let inner6 = ipv6_hdr(6, A6, B6, &syn(1, 80));
    let cases = [
        (ipv4(A4, B4, 41, &inner6), TunnelKind::Ip6in4, v6(A6)),
        (
            ipv6_hdr(4, B6, A6, &inner_ip()),
            TunnelKind::Ip4in6,
            addr("10.0.0.1"),
        ),
        (ipv6_hdr(41, B6, A6, &inner6), TunnelKind::Ip6in6, v6(A6)),
        (
            ipv4(A4, B4, 4, &inner_ip()),
            TunnelKind::Ip4in4,
            addr("10.0.0.1"),
        ),
    ];
    for (packet, kind, src) in cases {
        let s = ip(LINKTYPE_RAW, &packet);
        assert_eq!((s.tunnel.unwrap().kind, s.src, s.proto), (kind, src, 6));
    }
}

/// Teredo (RFC 4380): the IPv6 packet, after an origin indication here; a datagram on
/// 3544 whose IPv6 length does not fill it is not Teredo.
#[test]
fn teredo_with_origin_indication() {
    let inner6 = ipv6_hdr(58, A6, B6, &[128, 0, 0, 0, 0, 0, 0, 0]);
    let mut payload = vec![0, 0, 0x12, 0x34, 1, 2, 3, 4];
    payload.extend_from_slice(&inner6);
    let frame = eth(0x0800, &ipv4(A4, B4, 17, &udp(3544, 40000, &payload)));
    let s = ip(LINKTYPE_ETHERNET, &frame);
    assert_eq!((s.tunnel.unwrap().kind, s.proto), (TunnelKind::Teredo, 58));
    payload.push(0);
    let frame = eth(0x0800, &ipv4(A4, B4, 17, &udp(3544, 40000, &payload)));
    assert_eq!(ip(LINKTYPE_ETHERNET, &frame).tunnel, None);
}

/// GRE's optional fields shift the payload; routing and version 1 (PPTP) are not
/// unwrapped; ERSPAN III may carry IP (frame type 2) and a platform subheader.
#[test]
fn gre_fields_and_erspan_variants() {
    let gre = |flags: u16, proto: u16, optional: &[u8], payload: &[u8]| {
        let mut h = flags.to_be_bytes().to_vec();
        h.extend_from_slice(&proto.to_be_bytes());
        h.extend_from_slice(optional);
        h.extend_from_slice(payload);
        ipv4(A4, B4, 47, &h)
    };
    // Checksum, key 0x0a0b0c0d and sequence number.
    let all = [0, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 5];
    let s = ip(LINKTYPE_RAW, &gre(0xb000, 0x0800, &all, &inner_ip()));
    assert_eq!(s.tunnel.unwrap().id, Some(0x0a0b_0c0d));
    assert_eq!(s.dst_port, 445);
    for flags in [0x4000u16, 0x0001] {
        let s = ip(LINKTYPE_RAW, &gre(flags, 0x0800, &[0; 8], &inner_ip()));
        assert_eq!((s.proto, s.tunnel), (47, None), "flags {flags:#x}");
    }
    // ERSPAN III, session 513, frame type 2 (IP), O set: an 8-byte subheader.
    let mut erspan = vec![0x20, 0x00, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0x08, 0x01];
    erspan.extend_from_slice(&[0; 8]);
    erspan.extend_from_slice(&inner_ip());
    let s = ip(LINKTYPE_RAW, &gre(0x1000, 0x22eb, &[0, 0, 0, 1], &erspan));
    let t = s.tunnel.unwrap();
    assert_eq!(
        (t.kind, t.id, s.dst_port),
        (TunnelKind::Erspan3, Some(513), 445)
    );
}
