//! Flow output micro-benchmarks: `cargo bench -p wormsign-columnar --bench flow_output`.
//!
//! What every finished flow costs on its way to `flows.parquet`, in flows per second,
//! over one row group (131 072 flows) of mixed traffic made by a real [`FlowTable`]:
//! 60 % TCP sessions (handshake, data both ways, FIN), 25 % unanswered SYNs (a scan),
//! 15 % UDP request/response, from 5 000 clients to 50 000 servers.
//!
//! * `build`: `FlowBatchBuilder::append` for every flow and `finish` every 8 192 rows, as
//!   a flow shard does (addresses as text, Community ID, labels);
//! * `write_1_thread`: `ParquetSink` encoding those batches into one row group and
//!   finishing the file (dictionaries, statistics, zstd), with its column tasks on a
//!   one-thread rayon pool, so the figure is CPU cost, not parallel speed.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use arrow_array::RecordBatch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wormsign_columnar::{FlowBatchBuilder, ParquetSink, RowBuilder, ROW_GROUP_ROWS};
use wormsign_decode::PacketSummary;
use wormsign_flow::tcp_flags::{ACK, FIN, SYN};
use wormsign_flow::{FlowConfig, FlowRecord, FlowTable};

/// Rows per batch, as the pipeline's shards send them.
const BATCH_ROWS: usize = 8_192;
const T0: i64 = 1_700_000_000 * 1_000_000_000;

/// xorshift64*: reproducible traffic without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u32 {
        (self.next() % n) as u32
    }
}

/// A packet of `payload` bytes (sequence numbers do not matter to the outputs).
fn packet(ends: (IpAddr, u16, IpAddr, u16), proto: u8, flags: u8, payload: u32) -> PacketSummary {
    let (src, src_port, dst, dst_port) = ends;
    PacketSummary {
        src,
        src_port,
        dst,
        dst_port,
        has_ports: true,
        proto,
        tcp_flags: flags,
        ip_len: 40 + payload,
        payload_len: payload,
        ..PacketSummary::default()
    }
}

/// One row group of finished flows, in the order a shard would emit them.
fn flows() -> Vec<FlowRecord> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut table = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    let (mut ts, mut idx) = (T0, 0u64);
    for _ in 0..ROW_GROUP_ROWS {
        let c = IpAddr::V4(Ipv4Addr::from(0x0aa4_0000 | rng.below(5_000)));
        let s = IpAddr::V4(Ipv4Addr::from(0xc612_0000 | rng.below(50_000)));
        let cp = 1_024 + rng.below(60_000) as u16;
        let kind = rng.below(100);
        let exchange: Vec<PacketSummary> = if kind < 60 {
            let (out, back) = ((c, cp, s, 443), (s, 443, c, cp));
            let mut p = vec![
                packet(out, 6, SYN, 0),
                packet(back, 6, SYN | ACK, 0),
                packet(out, 6, ACK, 0),
            ];
            for _ in 0..1 + rng.below(6) {
                p.push(packet(out, 6, ACK, 200 + rng.below(1_000)));
                p.push(packet(back, 6, ACK, 200 + rng.below(10_000)));
            }
            p.push(packet(out, 6, FIN | ACK, 0));
            p.push(packet(back, 6, FIN | ACK, 0));
            p
        } else if kind < 85 {
            vec![packet((c, cp, s, 445), 6, SYN, 0)]
        } else {
            let payload = 30 + rng.below(60);
            vec![
                packet((c, cp, s, 53), 17, 0, payload),
                packet((s, 53, c, cp), 17, 0, 2 * payload),
            ]
        };
        for p in &exchange {
            table.observe(ts, idx, p, &mut out);
            ts += 5_000 + i64::from(rng.below(100_000));
            idx += 1;
        }
    }
    out.extend(table.flush());
    out.truncate(ROW_GROUP_ROWS);
    out
}

fn batches(records: &[FlowRecord]) -> Vec<RecordBatch> {
    let mut builder = FlowBatchBuilder::with_capacity(BATCH_ROWS);
    records
        .chunks(BATCH_ROWS)
        .map(|rows| {
            rows.iter().for_each(|r| builder.append(r));
            builder.finish()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let records = flows();
    let prebuilt = batches(&records);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("flows.parquet");
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("rayon pool");
    let mut group = c.benchmark_group("flows");
    group.sample_size(10);
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("build", |b| b.iter(|| black_box(batches(&records))));
    group.bench_function("write_1_thread", |b| {
        b.iter(|| {
            one_thread.install(|| {
                let mut sink = ParquetSink::create(&path, FlowBatchBuilder::schema(), &[])
                    .expect("create the file");
                prebuilt
                    .iter()
                    .for_each(|batch| sink.write(batch).expect("write"));
                sink.finish().expect("finish the file");
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
