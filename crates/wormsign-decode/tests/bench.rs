//! Throughput measurement (ignored by default):
//! `cargo test --release -p wormsign-decode --test bench -- --ignored --nocapture`.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::*;
use wormsign_decode::{decode, dns, Decoded, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL};

fn typical_packets() -> Vec<(u16, Vec<u8>)> {
    let ack = tcp(
        443,
        51234,
        1,
        2,
        0x10,
        501,
        &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        &[],
    );
    let data = tcp(51234, 443, 3, 4, 0x18, 501, &[], &[0x17; 1400]);
    let dnsq = udp(40000, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    let mut v = vec![
        (LINKTYPE_ETHERNET, eth(0x0800, &ipv4(6, &ack))),
        (LINKTYPE_ETHERNET, eth(0x0800, &ipv4(6, &data))),
        (LINKTYPE_ETHERNET, eth(0x0800, &ipv4(17, &dnsq))),
        (LINKTYPE_ETHERNET, eth(0x86dd, &ipv6(6, &data))),
    ];
    let mut tagged = vlan_tag(0x8100, 42, 0x0800)[2..].to_vec();
    tagged.extend(ipv4(6, &ack));
    v.push((LINKTYPE_ETHERNET, eth(0x8100, &tagged)));
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend(ipv4(6, &ack));
    v.push((LINKTYPE_LINUX_SLL, sll));
    v
}

#[test]
#[ignore]
fn decode_throughput() {
    let pkts = typical_packets();
    let rounds = 2_000_000;
    // Warm-up.
    for (lt, p) in &pkts {
        assert!(matches!(decode(*lt, p), Decoded::Ip(_)));
    }
    let start = Instant::now();
    let mut acc = 0u64;
    for _ in 0..rounds {
        for (lt, p) in &pkts {
            if let Decoded::Ip(s) = decode(black_box(*lt), black_box(p)) {
                acc = acc.wrapping_add(u64::from(s.payload_len));
            }
        }
    }
    let n = rounds * pkts.len();
    let secs = start.elapsed().as_secs_f64();
    black_box(acc);
    println!(
        "decode: {n} packets in {secs:.3} s = {:.1} M packets/s ({:.1} ns/packet)",
        n as f64 / secs / 1e6,
        secs * 1e9 / n as f64
    );
}

#[test]
#[ignore]
fn dns_throughput() {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 16]);
    m.extend([0xc0, 16, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
    let rounds = 1_000_000;
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(dns::parse(black_box(&m)).unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "dns::parse: {:.2} M messages/s ({:.0} ns/message)",
        rounds as f64 / secs / 1e6,
        secs * 1e9 / rounds as f64
    );
}
