//! Hand-written packet builders shared by the integration tests.
#![allow(dead_code, clippy::too_many_arguments)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wormsign_decode::{decode, Decoded, PacketSummary};

pub const A4: [u8; 4] = [192, 0, 2, 1];
pub const B4: [u8; 4] = [198, 51, 100, 7];
pub const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Asserts that decoding `bytes` with `link_type` gives `expected`.
#[track_caller]
pub fn check(link_type: u16, bytes: &[u8], expected: Decoded) {
    let got = decode(link_type, bytes);
    assert_eq!(
        got,
        expected,
        "link type {link_type}, {} bytes",
        bytes.len()
    );
}

/// Decodes and unwraps an IP summary.
#[track_caller]
pub fn ip(link_type: u16, bytes: &[u8]) -> PacketSummary {
    match decode(link_type, bytes) {
        Decoded::Ip(s) => s,
        other => panic!("expected Ip, got {other:?}"),
    }
}

/// A summary with the given addresses/protocol and everything else zero/None.
pub fn base(src: IpAddr, dst: IpAddr, proto: u8) -> PacketSummary {
    PacketSummary {
        src,
        dst,
        proto,
        ..PacketSummary::default()
    }
}

pub fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

pub fn v6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

/// Ethernet II header + payload.
pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// One VLAN tag (TCI with PCP bits set to check masking) + inner ethertype.
pub fn vlan_tag(tpid: u16, id: u16, inner: u16) -> Vec<u8> {
    let mut v = tpid.to_be_bytes().to_vec();
    v.extend_from_slice(&(0xa000 | id).to_be_bytes());
    v.extend_from_slice(&inner.to_be_bytes());
    v
}

/// IPv4 header with options; `total_len` None = computed; flags/offset raw.
pub fn ipv4_raw(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    options: &[u8],
    id: u16,
    frag_field: u16,
    total_len: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 5 + options.len() / 4;
    let total = total_len.unwrap_or((ihl * 4 + payload.len()) as u16);
    let mut v = vec![0x40 | ihl as u8, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag_field.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(options);
    v.extend_from_slice(payload);
    v
}

pub fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_raw(proto, A4, B4, &[], 0x1234, 0x4000, None, payload)
}

/// IPv6 header (payload length computed) + payload.
pub fn ipv6_hdr(nh: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nh, 64]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(payload);
    v
}

pub fn ipv6(nh: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_hdr(nh, A6, B6, payload)
}

/// TCP header with options (padded by caller to 4 bytes) + payload.
pub fn tcp(
    sp: u16,
    dp: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let doff = 5 + options.len() / 4;
    let mut v = Vec::new();
    v.extend_from_slice(&sp.to_be_bytes());
    v.extend_from_slice(&dp.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ack.to_be_bytes());
    v.extend_from_slice(&[(doff as u8) << 4, flags]);
    v.extend_from_slice(&win.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(options);
    v.extend_from_slice(payload);
    v
}

pub fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sp.to_be_bytes());
    v.extend_from_slice(&dp.to_be_bytes());
    v.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// Tiny xorshift64* PRNG for fuzz-style tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}
