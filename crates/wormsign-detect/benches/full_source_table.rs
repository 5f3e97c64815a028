//! A scanning-source table full of flagged sources: `cargo bench -p wormsign-detect
//! --bench full_source_table`.
//!
//! 16 383 sources each make 4 failed first contacts on port 445 (so `failed_contacts`
//! flags them, and they are never evicted), in a table of 16 384; then N new sources
//! send one flow each, and each evicts the one unflagged source before it.
//! `full_source_table/N` runs detection over all of it; the time should grow with N by
//! a small constant (it grew by a read of the whole table per new source).
//!
//! `full_source_table/flood/N`: N sources send one SYN each, as in a SYN flood from
//! spoofed addresses, so every flow brings a new source and, once the table is full,
//! the least recently active eighth is evicted each time it fills again: what each rule
//! keeps of a source, and forgets, for a single flow.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wormsign_detect::{detect, DetectConfig};
use wormsign_flow::{ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History};

const TABLE: usize = 16_384;

/// An unanswered SYN of `src` to port 445 of `dst`, the `n`th flow.
fn syn(n: u64, src: IpAddr, dst: IpAddr) -> FlowRecord {
    let side = |packets| DirCounters {
        packets,
        ip_bytes: packets * 40,
        payload_bytes: 0,
        tcp_flags: 0x02,
    };
    FlowRecord {
        first_packet: n,
        ts_first: n as i64 * 1_000,
        ts_last: n as i64 * 1_000,
        orig_addr: src,
        orig_port: 49_152,
        resp_addr: dst,
        resp_port: 445,
        has_ports: true,
        proto: 6,
        vlan: None,
        tunnel: None,
        orig: side(1),
        resp: side(0),
        conn_state: ConnState::S0,
        history: History::default(),
        end_reason: EndReason::Idle,
        source: FlowSource::Packets,
    }
}

fn flows(newcomers: u32) -> Vec<FlowRecord> {
    let address = |net: u32, host: u32| IpAddr::from((net << 24 | host).to_be_bytes());
    let mut flows = Vec::new();
    for s in 0..TABLE as u32 - 1 {
        for d in 0..4 {
            let n = flows.len() as u64;
            flows.push(syn(n, address(10, s), address(172, d)));
        }
    }
    for s in 0..newcomers {
        let n = flows.len() as u64;
        flows.push(syn(n, address(11, s), address(172, 0)));
    }
    flows
}

/// One SYN from each of `sources` addresses to one server.
fn flood_flows(sources: u32) -> Vec<FlowRecord> {
    let server = IpAddr::from([172, 16, 0, 1]);
    let source = |s: u32| IpAddr::from((11 << 24 | s).to_be_bytes());
    (0..sources)
        .map(|s| syn(u64::from(s), source(s), server))
        .collect()
}

/// How a case makes its flows.
type MakeFlows = fn() -> Vec<FlowRecord>;

fn full_source_table(c: &mut Criterion) {
    let config = DetectConfig {
        max_sources: TABLE,
        ..DetectConfig::default()
    };
    let mut group = c.benchmark_group("full_source_table");
    group.sample_size(10);
    // Each case's flows are made when it runs, so that only one case's are held.
    let cases: [(&str, MakeFlows); 4] = [
        ("0", || flows(0)),
        ("20000", || flows(20_000)),
        ("40000", || flows(40_000)),
        ("flood/100000", || flood_flows(100_000)),
    ];
    for (name, make) in cases {
        let flows = make();
        group.throughput(Throughput::Elements(flows.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                detect(&config, black_box(&flows), &[], &[])
                    .stats
                    .sources_evicted
            })
        });
    }
    group.finish();
}

criterion_group!(benches, full_source_table);
criterion_main!(benches);
