//! C&C lookups seen at a resolver, as a capture on a resolver (or a link it forwards
//! over) holds them: `cargo bench -p wormsign-detect --bench cnc_lookups`.
//!
//! Each of 50 clients asks the resolver for a C&C name in turn, 10 ms apart, and the
//! resolver forwards each query upstream 1 ms later, so every forwarded query has to be
//! told from a query of the resolver's own. `cnc_lookups/N` runs detection over N such
//! lookups (2 N queries); the time per lookup should stay flat as N grows (it grew with
//! N while every forwarded query read all the lookups the resolver was asked).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wormsign_detect::{detect, DetectConfig, DnsEvent};

fn query(ts_ns: i64, client: IpAddr, server: IpAddr) -> DnsEvent {
    DnsEvent {
        ts_ns,
        client,
        server,
        qname: Some("t.awcna.com".to_string()),
        is_response: false,
        answers: Vec::new(),
    }
}

fn lookups(n: usize) -> Vec<DnsEvent> {
    let resolver = IpAddr::from([10, 0, 0, 53]);
    let upstream = IpAddr::from([8, 8, 8, 8]);
    (0..n as i64)
        .flat_map(|i| {
            let client = IpAddr::from([10, 1, 0, (i % 50) as u8]);
            let at = i * 10_000_000;
            [
                query(at, client, resolver),
                query(at + 1_000_000, resolver, upstream),
            ]
        })
        .collect()
}

fn cnc_lookups(c: &mut Criterion) {
    let config = DetectConfig::default();
    let mut group = c.benchmark_group("cnc_lookups");
    group.sample_size(10);
    for n in [5_000, 20_000, 80_000] {
        let dns = lookups(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(n.to_string(), |b| {
            b.iter(|| detect(&config, &[], black_box(&dns), &[]).alerts.len())
        });
    }
    group.finish();
}

criterion_group!(benches, cnc_lookups);
criterion_main!(benches);
