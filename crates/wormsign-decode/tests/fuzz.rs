//! Fuzz-style robustness tests: random and mutated inputs must never panic or
//! hang, and summaries must stay self-consistent.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wormsign_decode::{decode, dns, Decoded, LINKTYPE_ETHERNET};

const LINK_TYPES: [u16; 13] = [0, 1, 9, 12, 14, 101, 108, 113, 228, 229, 239, 276, 127];

fn seeds() -> Vec<(u16, Vec<u8>)> {
    let tcp4 = ipv4(6, &tcp(1, 2, 3, 4, 0x18, 5, &[2, 4, 5, 0xb4], b"payload"));
    let udp4 = ipv4(17, &udp(53, 53, &dns_response()));
    let mut ext6 = vec![43, 0, 0, 0, 0, 0, 0, 0, 44, 0, 0, 0, 0, 0, 0, 0];
    ext6.extend([6, 0, 0, 1, 0, 0, 0, 7]);
    ext6.extend(tcp(80, 1000, 9, 9, 0x12, 1, &[], b"x"));
    let tcp6 = ipv6(0, &ext6);
    let frag4 = ipv4_raw(
        17,
        A4,
        B4,
        &[1, 1, 1, 0],
        5,
        0x2000,
        None,
        &udp(1, 2, &[0; 16]),
    );
    let icmp = ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    let mut out = Vec::new();
    for p in [&tcp4, &udp4, &tcp6, &frag4, &icmp] {
        let et = if p[0] >> 4 == 4 { 0x0800u16 } else { 0x86dd };
        out.push((LINKTYPE_ETHERNET, eth(et, p)));
        let mut vl = vec![0x20, 0x05];
        vl.extend(et.to_be_bytes());
        vl.extend_from_slice(p);
        out.push((LINKTYPE_ETHERNET, eth(0x8100, &vl)));
        let mut mpls = vec![0, 0x01, 0x01, 0x40];
        mpls.extend_from_slice(p);
        out.push((LINKTYPE_ETHERNET, eth(0x8847, &mpls)));
        let mut pppoe = vec![0x11, 0, 0, 1, 0, 0];
        pppoe.extend(if et == 0x0800 { [0, 0x21] } else { [0, 0x57] });
        pppoe.extend_from_slice(p);
        out.push((LINKTYPE_ETHERNET, eth(0x8864, &pppoe)));
        out.push((101, p.to_vec()));
        let mut null = vec![if et == 0x0800 { 2 } else { 24 }, 0, 0, 0];
        null.extend_from_slice(p);
        out.push((0, null));
        let mut sll2 = et.to_be_bytes().to_vec();
        sll2.extend([0; 18]);
        sll2.extend_from_slice(p);
        out.push((276, sll2));
        let mut nf = vec![if et == 0x0800 { 2 } else { 10 }, 0, 0, 0];
        nf.extend(((p.len() + 4) as u16).to_le_bytes());
        nf.extend(9u16.to_le_bytes());
        nf.extend_from_slice(p);
        out.push((239, nf));
    }
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend([1; 20]);
    out.push((LINKTYPE_ETHERNET, eth(0x0806, &arp)));
    out
}

fn dns_response() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
    m.extend(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 16]);
    m.extend([0xc0, 16, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    m.extend([
        0xc0, 16, 0, 16, 0, 1, 0, 0, 0, 60, 0, 4, 3, b'a', b'b', b'c',
    ]);
    m
}

fn mutate(rng: &mut Rng, p: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        match rng.below(7) {
            0 | 1 if !p.is_empty() => {
                let i = rng.below(p.len());
                p[i] ^= 1 << rng.below(8);
            }
            2 if !p.is_empty() => {
                let i = rng.below(p.len());
                p[i] = [0, 0xff, 0x7f, 0x80, 1, 0xc0, 0x3f][rng.below(7)];
            }
            3 => {
                let n = rng.below(p.len() + 1);
                p.truncate(n);
            }
            4 => {
                let i = rng.below(p.len() + 1);
                let b = rng.byte();
                p.insert(i, b);
            }
            5 if p.len() > 1 => {
                let i = rng.below(p.len());
                p.remove(i);
            }
            _ if !p.is_empty() => {
                let i = rng.below(p.len());
                p[i] = rng.byte();
            }
            _ => {}
        }
    }
}

#[track_caller]
fn decode_checked(lt: u16, data: &[u8]) -> Decoded {
    let d = decode(lt, data);
    if let Decoded::Ip(s) = &d {
        let end = s.payload_offset as usize + s.payload_captured as usize;
        assert!(end <= data.len(), "{s:?} {data:?}");
        assert!(s.payload_captured <= s.payload_len, "{s:?} {data:?}");
        if !s.has_ports {
            assert_eq!((s.src_port, s.dst_port), (0, 0), "{s:?}");
        }
        if s.proto != 6 {
            assert_eq!((s.tcp_flags, s.tcp_seq, s.tcp_ack), (0, 0, 0));
        }
        assert!(s.ip_len >= 20, "{s:?}");
        if s.src.is_ipv6() {
            assert!(s.ip_len >= 40, "{s:?}");
        }
        // The payload slice is usable for DNS parsing.
        let payload = &data[s.payload_offset as usize..end];
        let _ = dns::parse(payload);
        let _ = dns::parse_tcp(payload);
    }
    d
}

#[test]
fn seeds_decode_to_ip_or_arp() {
    for (lt, p) in seeds() {
        let d = decode_checked(lt, &p);
        assert!(
            matches!(d, Decoded::Ip(_) | Decoded::Arp(_)),
            "{lt} {p:?} {d:?}"
        );
    }
}

#[test]
fn mutated_packets_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut kinds = [0usize; 3];
    let start = Instant::now();
    for _ in 0..200_000 {
        let (lt, seed) = &seeds[rng.below(seeds.len())];
        let mut p = seed.clone();
        mutate(&mut rng, &mut p);
        let lt = if rng.below(10) == 0 {
            LINK_TYPES[rng.below(LINK_TYPES.len())]
        } else {
            *lt
        };
        match decode_checked(lt, &p) {
            Decoded::Ip(_) => kinds[0] += 1,
            Decoded::Arp(_) => kinds[1] += 1,
            Decoded::Skipped(_) => kinds[2] += 1,
        }
    }
    // The mutations must exercise both success and failure paths.
    assert!(kinds[0] > 10_000 && kinds[2] > 10_000, "{kinds:?}");
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for i in 0..100_000 {
        let len = rng.below(if i % 10 == 0 { 2000 } else { 120 });
        let mut p: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Make the interesting prefixes more likely.
        if i % 3 == 0 && p.len() > 20 {
            p[0] = [0x45, 0x46, 0x4f, 0x60, 0x02][rng.below(5)];
            p[12] = 0x08;
            p[13] = [0x00, 0x06][rng.below(2)];
        }
        let lt = if i % 4 == 0 {
            rng.next() as u16
        } else {
            LINK_TYPES[rng.below(LINK_TYPES.len())]
        };
        decode_checked(lt, &p);
    }
}

/// Also: parsing into one reused message (as the pipeline's decoders do) gives what a
/// fresh parse gives, whatever the message before it left behind, errors included.
#[test]
fn dns_random_and_mutated_never_panic() {
    let mut rng = Rng(7);
    let seed = dns_response();
    let mut ok = 0;
    let (mut reused, mut reused_tcp) = (dns::DnsMessage::default(), dns::DnsMessage::default());
    let start = Instant::now();
    for i in 0..200_000 {
        let p: Vec<u8> = if i % 4 == 0 {
            let len = rng.below(600);
            let mut p: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            // Bias towards pointers and small label lengths.
            for b in p.iter_mut().skip(12) {
                if rng.below(4) == 0 {
                    *b = [0xc0, 0, 1, 3, 0x0c][rng.below(5)];
                }
            }
            p
        } else {
            let mut p = seed.clone();
            mutate(&mut rng, &mut p);
            p
        };
        let fresh = dns::parse(&p);
        ok += usize::from(fresh.is_ok());
        let into = dns::parse_into(&p, &mut reused).map(|()| &reused);
        assert_eq!(into, fresh.as_ref().map_err(|e| *e), "message {i}");
        let fresh = dns::parse_tcp(&p);
        let into = dns::parse_tcp_into(&p, &mut reused_tcp).map(|()| &reused_tcp);
        assert_eq!(into, fresh.as_ref().map_err(|e| *e), "TCP message {i}");
    }
    assert!(ok > 10_000, "{ok}");
    assert!(start.elapsed() < Duration::from_secs(60));
}

/// Worst case for the name decoder: a long chain of pointers.
#[test]
fn dns_pointer_chains_are_bounded() {
    // Question (a pointer to `head`) at 12, the label "a" at 18, then a chain of
    // 300 pointers each pointing to the previous one.
    let build = |head_index: usize| {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        let head = 21 + 2 * head_index as u16;
        m.extend((0xc000 | head).to_be_bytes());
        m.extend([0, 1, 0, 1]);
        m.extend([1, b'a', 0]);
        let mut prev = 18u16;
        for _ in 0..300 {
            let here = m.len() as u16;
            m.extend((0xc000 | prev).to_be_bytes());
            prev = here;
        }
        m
    };
    assert_eq!(dns::parse(&build(299)), Err(dns::DnsError::PointerLoop));
    let ok = dns::parse(&build(99)).unwrap();
    assert_eq!((ok.qname.as_deref(), ok.qtype), (Some("a"), 1));
    // The limit is exactly MAX_POINTER_JUMPS (question pointer + chain).
    assert!(dns::parse(&build(dns::MAX_POINTER_JUMPS - 2)).is_ok());
    assert!(dns::parse(&build(dns::MAX_POINTER_JUMPS - 1)).is_err());
}
