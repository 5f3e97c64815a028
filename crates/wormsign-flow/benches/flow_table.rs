//! Flow-table micro-benchmarks: `cargo bench -p wormsign-flow --bench flow_table`.
//!
//! * `observe/60k_live`: 60 000 established TCP flows, each packet hits a random one
//!   (no flow is created or ended in the measured loop);
//! * `observe/1M_live_scan`: a table capped at 1 000 000 live flows and full, every
//!   packet a SYN to a new address (a new flow per packet, plus the amortised cost of
//!   evicting an eighth of the table whenever the cap is hit);
//! * `observe/steady_sessions`: 8 192 concurrent TCP sessions opening (SYN, SYN-ACK,
//!   ACK), exchanging 14 data/ACK segments and closing (FIN, FIN, ACK), a new session
//!   replacing each finished one, with `expire` every 10 s of capture time as the
//!   pipeline does (so closed flows are emitted as records);
//! * `lookahead/{observe,observe_all}`: 400 000 established flows (a table far larger
//!   than the caches, as in a busy capture), each packet hits a random one; the same
//!   packets one at a time and in `observe_all`'s groups, which warm the cache lines of
//!   a group's flows together;
//! * `expire/*`: one sweep over 60 k / 1 M live flows when nothing is due (the common
//!   case), and when every flow is due (records emitted).
//!
//! Capture time advances 5 µs per packet (200 k packets/s). Throughput is in packets
//! (observe) or flows swept (expire).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use wormsign_decode::PacketSummary;
use wormsign_flow::{FlowConfig, FlowRecord, FlowTable, TimedPacket};

/// Packets per measured iteration of the `observe` benchmarks.
const BATCH: u64 = 4_096;
/// Capture-clock step per packet.
const STEP_NS: i64 = 5_000;
const T0: i64 = 1_700_000_000 * 1_000_000_000;
const SWEEP_INTERVAL_NS: i64 = 10_000_000_000;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}

/// Client `i`: 10.x.y.z.
fn client(i: u32) -> IpAddr {
    v4(0x0a00_0000 | (i & 0x00ff_ffff))
}

/// Server `i`: 198.18.x.y.
fn server(i: u32) -> IpAddr {
    v4(0xc612_0000 | (i & 0xffff))
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: u32,
) -> PacketSummary {
    PacketSummary {
        src,
        dst,
        proto: 6,
        src_port: sport,
        dst_port: dport,
        has_ports: true,
        ip_len: 40 + payload,
        payload_len: payload,
        tcp_flags: flags,
        tcp_seq: seq,
        tcp_ack: ack,
        tcp_window: 1024,
        vlan: None,
        inner_vlan: None,
        fragment: None,
        truncated: false,
        payload_offset: 54,
        payload_captured: payload,
        tunnel: None,
    }
}

/// Endpoints of live flow `i` of `n`: 2 000 clients × 300 servers, distinct ports.
fn flow_endpoints(i: u32) -> (IpAddr, u16, IpAddr, u16) {
    let c = client(i % 2_000);
    let s = server(i % 300);
    let cport = 1_024 + (i / 2_000) as u16;
    (c, cport, s, 443)
}

/// A table with `n` established flows (handshake done), and the time after it.
fn established(config: FlowConfig, n: u32) -> (FlowTable, i64) {
    let mut table = FlowTable::new(config);
    let mut out = Vec::new();
    let mut ts = T0;
    for i in 0..n {
        let (c, cp, s, sp) = flow_endpoints(i);
        for p in [
            tcp(c, cp, s, sp, SYN, 100, 0, 0),
            tcp(s, sp, c, cp, SYN | ACK, 500, 101, 0),
            tcp(c, cp, s, sp, ACK, 101, 501, 0),
        ] {
            table.observe(ts, u64::from(i), &p, &mut out);
            ts += STEP_NS;
        }
    }
    assert_eq!(table.len(), n as usize);
    (table, ts)
}

/// Scan SYN number `k`: from one host to a new address each time.
fn scan_syn(k: u64) -> PacketSummary {
    let target = 0x6400_0000u32.wrapping_add((k as u32).wrapping_mul(0x9E37_79B1));
    tcp(
        client(1337),
        40_000 + (k % 20_000) as u16,
        v4(target),
        445,
        SYN,
        k as u32,
        0,
        0,
    )
}

fn observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("observe");
    g.throughput(Throughput::Elements(BATCH));

    // (a) 60 k live flows, random access, no flow created or ended.
    {
        const N: u32 = 60_000;
        let config = FlowConfig {
            active_ns: i64::MAX,
            ..FlowConfig::default()
        };
        let (mut table, mut ts) = established(config, N);
        let mut out: Vec<FlowRecord> = Vec::new();
        let mut k = 0u64;
        g.bench_function("60k_live", |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    // A large odd stride visits the flows in a scattered order.
                    let i = ((k.wrapping_mul(40_503)) % u64::from(N)) as u32;
                    let (c, cp, s, sp) = flow_endpoints(i);
                    let p = if k & 1 == 0 {
                        tcp(s, sp, c, cp, ACK, 501 + k as u32, 101, 1_400)
                    } else {
                        tcp(c, cp, s, sp, ACK, 101, 501 + k as u32, 0)
                    };
                    table.observe(ts, k, black_box(&p), &mut out);
                    ts += STEP_NS;
                    k += 1;
                }
                out.clear();
            })
        });
        assert_eq!(table.len(), N as usize, "no flow may start or end");
    }

    // (b) 1 M live flows, scan-like: a new flow per packet, eviction at the cap.
    {
        const N: usize = 1_000_000;
        let config = FlowConfig {
            max_flows: N,
            ..FlowConfig::default()
        };
        let mut table = FlowTable::new(config);
        let mut out: Vec<FlowRecord> = Vec::new();
        let mut ts = T0;
        let mut k = 0u64;
        while table.len() < N {
            table.observe(ts, k, &scan_syn(k), &mut out);
            ts += STEP_NS;
            k += 1;
        }
        g.sample_size(30);
        g.bench_function("1M_live_scan", |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let p = scan_syn(k);
                    table.observe(ts, k, black_box(&p), &mut out);
                    ts += STEP_NS;
                    k += 1;
                }
                out.clear();
            })
        });
        assert!(table.len() > N / 2 && table.len() <= N);
        g.sample_size(100);
    }

    // (c) Steady sessions: open, exchange, close; expire every 10 s of capture time.
    {
        let mut sim = Sessions::new(8_192);
        let mut table = FlowTable::new(FlowConfig::default());
        let mut out: Vec<FlowRecord> = Vec::new();
        let mut ts = T0;
        let mut last_sweep = ts;
        let mut k = 0u64;
        // Warm up to the steady state (closed flows waiting for the sweep).
        for _ in 0..4_000_000 {
            let p = sim.next_packet();
            table.observe(ts, k, &p, &mut out);
            ts += STEP_NS;
            k += 1;
            if ts - last_sweep >= SWEEP_INTERVAL_NS {
                table.expire(ts, &mut out);
                last_sweep = ts;
            }
            out.clear();
        }
        g.bench_function("steady_sessions", |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let p = sim.next_packet();
                    table.observe(ts, k, black_box(&p), &mut out);
                    ts += STEP_NS;
                    k += 1;
                    if ts - last_sweep >= SWEEP_INTERVAL_NS {
                        table.expire(ts, &mut out);
                        last_sweep = ts;
                    }
                }
                out.clear();
            })
        });
    }
    g.finish();
}

/// The script of one session, as (from client?, flags, payload).
const SCRIPT: [(bool, u8, u32); 20] = [
    (true, SYN, 0),
    (false, SYN | ACK, 0),
    (true, ACK, 0),
    (true, PSH | ACK, 300),
    (false, ACK, 1_448),
    (false, ACK, 1_448),
    (true, ACK, 0),
    (false, ACK, 1_448),
    (false, ACK, 1_448),
    (true, ACK, 0),
    (false, ACK, 1_448),
    (false, ACK, 1_448),
    (true, ACK, 0),
    (false, ACK, 1_448),
    (false, PSH | ACK, 700),
    (true, ACK, 0),
    (true, PSH | ACK, 120),
    (true, FIN | ACK, 0),
    (false, FIN | ACK, 0),
    (true, ACK, 0),
];

/// Concurrent sessions following [`SCRIPT`], interleaved pseudo-randomly.
struct Sessions {
    /// (client index, client port, step, seq of client, seq of server)
    slots: Vec<(u32, u16, usize, u32, u32)>,
    rng: u64,
    next_port: u32,
}

impl Sessions {
    fn new(n: usize) -> Sessions {
        let mut s = Sessions {
            slots: Vec::with_capacity(n),
            rng: 0x1234_5678_9abc_def1,
            next_port: 0,
        };
        for i in 0..n {
            // Spread the slots over the script so sessions do not start in lockstep.
            let port = s.port();
            s.slots
                .push((i as u32 % 2_000, port, i % SCRIPT.len(), 1, 1));
        }
        s
    }

    fn port(&mut self) -> u16 {
        self.next_port = self.next_port.wrapping_add(1);
        1_024 + (self.next_port % 64_000) as u16
    }

    fn next_packet(&mut self) -> PacketSummary {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let i = (self.rng % self.slots.len() as u64) as usize;
        let (ci, cport, step, cseq, sseq) = self.slots[i];
        let (from_client, flags, payload) = SCRIPT[step];
        let (c, s) = (client(ci), server(ci.wrapping_mul(7) % 300));
        let p = if from_client {
            tcp(c, cport, s, 443, flags, cseq, sseq, payload)
        } else {
            tcp(s, 443, c, cport, flags, sseq, cseq, payload)
        };
        let used = payload + u32::from(flags & (SYN | FIN) != 0);
        let slot = &mut self.slots[i];
        if from_client {
            slot.3 = cseq.wrapping_add(used);
        } else {
            slot.4 = sseq.wrapping_add(used);
        }
        slot.2 += 1;
        if slot.2 == SCRIPT.len() {
            let port = self.port();
            let ci = (self.rng >> 20) as u32 % 2_000;
            self.slots[i] = (ci, port, 0, 1, 1);
        }
        debug_assert!(flags & RST == 0);
        p
    }
}

fn lookahead(c: &mut Criterion) {
    const N: u32 = 400_000;
    let config = FlowConfig {
        active_ns: i64::MAX,
        ..FlowConfig::default()
    };
    let (mut table, ts) = established(config, N);
    let packets: Vec<TimedPacket> = (0..1u64 << 20)
        .map(|k| {
            let i = ((k.wrapping_mul(0x9E37_79B9)) % u64::from(N)) as u32;
            let (c, cp, s, sp) = flow_endpoints(i);
            TimedPacket {
                ts_ns: ts + k as i64 * STEP_NS,
                idx: k,
                packet: tcp(c, cp, s, sp, ACK, 101, 501 + k as u32, 100),
            }
        })
        .collect();
    let mut out: Vec<FlowRecord> = Vec::new();
    let mut g = c.benchmark_group("lookahead");
    g.throughput(Throughput::Elements(BATCH));
    let mut batches = packets.chunks(BATCH as usize).cycle();
    g.bench_function("observe", |b| {
        b.iter(|| {
            for tp in batches.next().unwrap() {
                table.observe(tp.ts_ns, tp.idx, black_box(&tp.packet), &mut out);
            }
        })
    });
    g.bench_function("observe_all", |b| {
        b.iter(|| table.observe_all(black_box(batches.next().unwrap()), &mut out))
    });
    g.finish();
    assert!(
        out.is_empty() && table.len() == N as usize,
        "no flow may start or end"
    );
}

fn expire(c: &mut Criterion) {
    let mut g = c.benchmark_group("expire");
    // Flat sampling: the all-due case rebuilds its table before every iteration.
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for n in [60_000u32, 1_000_000] {
        let label = if n == 60_000 { "60k" } else { "1M" };
        g.throughput(Throughput::Elements(u64::from(n)));
        let (mut table, ts) = established(FlowConfig::default(), n);
        let mut out = Vec::new();
        g.bench_function(format!("{label}_none_due"), |b| {
            b.iter(|| {
                table.expire(black_box(ts), &mut out);
                assert!(out.is_empty());
            })
        });
        drop(table);
        // Every flow idle for longer than the TCP timeout: all are emitted.
        let due = ts + FlowConfig::default().tcp_idle_ns + 1;
        g.bench_function(format!("{label}_all_due"), |b| {
            b.iter_batched(
                || (established(FlowConfig::default(), n).0, Vec::new()),
                |(mut table, mut out)| {
                    table.expire(due, &mut out);
                    assert_eq!(out.len(), n as usize);
                    (table, out)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, observe, lookahead, expire);
criterion_main!(benches);
