//! Decode micro-benchmarks: `cargo bench -p wormsign-decode --bench decode`.
//!
//! `decode/*` decodes one typical frame per iteration (throughput in packets/s and
//! bytes/s); `decode/mix` decodes all six frames per iteration; `dns/*` parses a
//! typical DNS response (CNAME + two A records, compressed names) and a query;
//! `ip_text/*` writes 256 addresses as text, by [`IpText`] and by `Display`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wormsign_decode::{decode, dns, Decoded, IpText, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = [MAC_B, MAC_A].concat();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn vlan_eth(vid: u16, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut inner = vid.to_be_bytes().to_vec();
    inner.extend_from_slice(&ethertype.to_be_bytes());
    inner.extend_from_slice(payload);
    eth(0x8100, &inner)
}

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x1c, 0x46, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&[10, 1, 2, 3, 198, 18, 0, 7]);
    h.extend_from_slice(l4);
    h
}

fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend_from_slice(l4);
    h
}

fn tcp(sport: u16, dport: u16, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    t.extend_from_slice(&0x9abc_def0u32.to_be_bytes());
    t.push(((20 + options.len()) / 4 * 16) as u8);
    t.push(flags);
    t.extend_from_slice(&[0x01, 0xf5, 0, 0, 0, 0]);
    t.extend_from_slice(options);
    t.extend_from_slice(payload);
    t
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn dns_query() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    m
}

/// `www.example.com` CNAME `example.com`, which has two A records.
fn dns_response() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
    m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10, 0, 2, 0xc0, 16]);
    m.extend_from_slice(&[0xc0, 16, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
    m.extend_from_slice(&[0xc0, 16, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 35]);
    m
}

/// (name, link type, frame)
fn typical_frames() -> Vec<(&'static str, u16, Vec<u8>)> {
    // An ACK with the timestamp option, as most ACKs on the wire carry.
    let ts_opt = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let ack = tcp(443, 51_234, 0x10, &ts_opt, &[]);
    let data = tcp(51_234, 443, 0x18, &[], &[0x17; 1400]);
    let dnsq = udp(40_000, 53, &dns_query());
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend(ipv4(6, &ack));
    vec![
        (
            "eth_ipv4_tcp_ack",
            LINKTYPE_ETHERNET,
            eth(0x0800, &ipv4(6, &ack)),
        ),
        (
            "eth_ipv4_tcp_1400",
            LINKTYPE_ETHERNET,
            eth(0x0800, &ipv4(6, &data)),
        ),
        (
            "eth_ipv4_udp_dns",
            LINKTYPE_ETHERNET,
            eth(0x0800, &ipv4(17, &dnsq)),
        ),
        (
            "eth_ipv6_tcp_1400",
            LINKTYPE_ETHERNET,
            eth(0x86dd, &ipv6(6, &data)),
        ),
        (
            "vlan_ipv4_tcp_ack",
            LINKTYPE_ETHERNET,
            vlan_eth(42, 0x0800, &ipv4(6, &ack)),
        ),
        ("sll_ipv4_tcp_ack", LINKTYPE_LINUX_SLL, sll),
    ]
}

fn bench_decode(c: &mut Criterion) {
    let frames = typical_frames();
    for (name, lt, f) in &frames {
        assert!(
            matches!(decode(*lt, f), Decoded::Ip(_)),
            "{name} must decode as IP"
        );
    }
    let mut g = c.benchmark_group("decode");
    for (name, lt, f) in &frames {
        g.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: f.len() as u64,
        });
        g.bench_function(*name, |b| b.iter(|| decode(black_box(*lt), black_box(f))));
    }
    g.throughput(Throughput::ElementsAndBytes {
        elements: frames.len() as u64,
        bytes: frames.iter().map(|(_, _, f)| f.len() as u64).sum(),
    });
    g.bench_function("mix", |b| {
        b.iter(|| {
            for (_, lt, f) in &frames {
                black_box(decode(black_box(*lt), black_box(f)));
            }
        })
    });
    g.finish();
}

fn bench_dns(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns");
    for (name, msg) in [
        ("parse_response", dns_response()),
        ("parse_query", dns_query()),
    ] {
        let parsed = dns::parse(&msg).expect("valid DNS message");
        assert_eq!(parsed.qname.as_deref(), Some("www.example.com"));
        g.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: msg.len() as u64,
        });
        g.bench_function(name, |b| b.iter(|| dns::parse(black_box(&msg))));
        // As the pipeline's decoders parse: into one message whose buffers are reused.
        let mut reused = dns::DnsMessage::default();
        g.bench_function(format!("{name}/reused"), |b| {
            b.iter(|| dns::parse_into(black_box(&msg), &mut reused))
        });
    }
    g.finish();
}

/// Addresses as the tables write them: dotted quads of every width, and IPv6 with and
/// without a `::` run, each against `Display`.
fn bench_ip_text(c: &mut Criterion) {
    let mut g = c.benchmark_group("ip_text");
    let v4: Vec<IpAddr> = (0..256u32)
        .map(|i| IpAddr::from(Ipv4Addr::from((i * 0x0101_0101) ^ 0x0a00_7f00)))
        .collect();
    let v6: Vec<IpAddr> = (0..256u128)
        .map(|i| {
            IpAddr::from(Ipv6Addr::from(
                (0x2001_0db8u128 << 96) | (i << (i % 7 * 16)) | i,
            ))
        })
        .collect();
    for (name, addresses) in [("v4", &v4), ("v6", &v6)] {
        g.throughput(Throughput::Elements(addresses.len() as u64));
        g.bench_function(format!("{name}/ip_text"), |b| {
            b.iter(|| {
                for &ip in addresses {
                    black_box(IpText::new(black_box(ip)).as_str().len());
                }
            })
        });
        g.bench_function(format!("{name}/display"), |b| {
            let mut text = String::new();
            b.iter(|| {
                for &ip in addresses {
                    text.clear();
                    let _ = write!(text, "{}", black_box(ip));
                    black_box(text.len());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_dns, bench_ip_text);
criterion_main!(benches);
