//! Decode micro-benchmarks: `cargo bench -p wormsign-netflow --bench decode`.
//!
//! Each iteration decodes one typical export datagram (templates already
//! known); throughput is in records/s.
//! - `v5`: 30 records (the v5 maximum, 1 464 bytes);
//! - `v9`: 40 records of a 12-field template (34 bytes each);
//! - `ipfix`: 30 records of a 10-field template (45 bytes: 64-bit counters, ms times);
//! - `ipfix_varlen`: 30 records with a variable-length and an enterprise field.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wormsign_netflow::{NetflowDecoder, NetflowRecord};

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

/// (name, records per datagram, data datagram, template datagram sent first)
type Case = (&'static str, usize, Vec<u8>, Option<Vec<u8>>);

fn bench(c: &mut Criterion) {
    let from: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let mut g = c.benchmark_group("decode");

    let mut cases: Vec<Case> = Vec::new();
    let recs: Vec<Rec5> = (0..30).map(Rec5::new).collect();
    cases.push(("v5", 30, v5(0, 0, 3_600_000, 1_700_000_000, 0, &recs), None));

    let data: Vec<u8> = (0..40).flat_map(|i| v9_rec(i, 1000, 2000)).collect();
    cases.push((
        "v9",
        40,
        v9(1, 1, 3_600_000, 1_700_000_000, &[set(256, &data, 0)]),
        Some(v9(
            0,
            1,
            3_600_000,
            1_700_000_000,
            &[set(0, &tpl(256, &V9_FIELDS), 0)],
        )),
    ));

    let t0 = 1_700_000_000_000u64;
    let data: Vec<u8> = (0..30).flat_map(|i| ipfix_rec(i, t0, t0 + 5)).collect();
    cases.push((
        "ipfix",
        30,
        ipfix(0, 1, 1_700_000_000, &[set(300, &data, 0)]),
        Some(ipfix(
            0,
            1,
            1_700_000_000,
            &[set(2, &tpl(300, &IPFIX_FIELDS), 0)],
        )),
    ));

    let mut fields: Vec<(u16, u16, Option<u32>)> =
        IPFIX_FIELDS.iter().map(|&(i, l)| (i, l, None)).collect();
    fields.insert(2, (82, 65535, None));
    fields.insert(5, (1, 4, Some(9)));
    let data: Vec<u8> = (0..30)
        .flat_map(|i| {
            let r = ipfix_rec(i, t0, t0 + 5);
            let mut v = r[..8].to_vec();
            v.extend_from_slice(&[4, b'e', b't', b'h', b'0']);
            v.extend_from_slice(&r[8..12]);
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(&r[12..]);
            v
        })
        .collect();
    cases.push((
        "ipfix_varlen",
        30,
        ipfix(0, 2, 1_700_000_000, &[set(301, &data, 0)]),
        Some(ipfix(
            0,
            2,
            1_700_000_000,
            &[set(2, &tpl_ipfix(301, &fields), 0)],
        )),
    ));

    for (name, n, datagram, template) in &cases {
        let mut dec = NetflowDecoder::default();
        let mut out: Vec<NetflowRecord> = Vec::with_capacity(64);
        if let Some(t) = template {
            dec.decode(from, 0, t, &mut out);
        }
        dec.decode(from, 0, datagram, &mut out);
        assert_eq!(out.len(), *n, "{name}: {:?}", dec.stats());
        g.throughput(Throughput::Elements(*n as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                out.clear();
                dec.decode(from, 0, black_box(datagram), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
