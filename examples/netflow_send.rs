//! Sends NetFlow v5 export datagrams to a UDP collector at a steady rate of records per
//! second, for `benches/collector.sh`.
//!
//! ```text
//! netflow_send ADDR RECORDS_PER_SECOND SECONDS
//! ```
//!
//! A rate of 0 sends as fast as the socket takes them. Each datagram carries 30 records
//! (a v5 datagram's maximum) and the header's `flow_sequence` counts the records sent
//! before it, as a router's does, so a collector can count what it lost. The datagrams
//! are built once; only the sequence number changes, so the sender spends its time in
//! `send`, not in building bytes. Pacing is by the clock: after each datagram the sender
//! checks how far ahead of the schedule it is and sleeps only when that exceeds a
//! millisecond, so short stalls are caught up instead of lowering the rate.
//!
//! Prints one line: `records_sent seconds records_per_second`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const RECORDS: usize = 30;
const HEADER_LEN: usize = 24;
const RECORD_LEN: usize = 48;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, rate, seconds] = args.as_slice() else {
        eprintln!("usage: netflow_send ADDR RECORDS_PER_SECOND SECONDS");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("ADDR: host:port");
    let rate: f64 = rate.parse().expect("RECORDS_PER_SECOND: a number");
    let seconds: f64 = seconds.parse().expect("SECONDS: a number");
    let socket = UdpSocket::bind(if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .expect("binding the sending socket");
    let mut datagram = datagram();
    let total = (rate.max(1.0) * seconds) as u64 / RECORDS as u64;
    let deadline = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut sent = 0u64;
    while if rate > 0.0 {
        sent < total
    } else {
        start.elapsed() < deadline
    } {
        let sequence = (sent * RECORDS as u64) as u32;
        datagram[16..20].copy_from_slice(&sequence.to_be_bytes());
        socket.send_to(&datagram, addr).expect("sending a datagram");
        sent += 1;
        if rate > 0.0 {
            let due = Duration::from_secs_f64((sent * RECORDS as u64) as f64 / rate);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                if ahead > Duration::from_millis(1) {
                    std::thread::sleep(ahead);
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let records = sent * RECORDS as u64;
    println!("{records} {elapsed:.3} {:.0}", records as f64 / elapsed);
}

/// A v5 datagram of [`RECORDS`] TCP flows from 10.0.0.x to 10.0.1.1:445.
fn datagram() -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + RECORDS * RECORD_LEN);
    b.extend_from_slice(&5u16.to_be_bytes()); // version
    b.extend_from_slice(&(RECORDS as u16).to_be_bytes()); // count
    b.extend_from_slice(&1_000u32.to_be_bytes()); // sys_uptime ms
    b.extend_from_slice(&1_700_000_000u32.to_be_bytes()); // unix_secs
    b.extend_from_slice(&0u32.to_be_bytes()); // unix_nsecs
    b.extend_from_slice(&0u32.to_be_bytes()); // flow_sequence, set per datagram
    b.extend_from_slice(&[0, 0, 0, 0]); // engine type, engine id, sampling
    for i in 0..RECORDS as u32 {
        b.extend_from_slice(&(0x0a00_0001 + i).to_be_bytes()); // srcaddr
        b.extend_from_slice(&0x0a00_0101u32.to_be_bytes()); // dstaddr
        b.extend_from_slice(&0u32.to_be_bytes()); // nexthop
        b.extend_from_slice(&[0, 0, 0, 0]); // input, output
        b.extend_from_slice(&10u32.to_be_bytes()); // dPkts
        b.extend_from_slice(&1_000u32.to_be_bytes()); // dOctets
        b.extend_from_slice(&500u32.to_be_bytes()); // first
        b.extend_from_slice(&900u32.to_be_bytes()); // last
        b.extend_from_slice(&(40_000 + i as u16).to_be_bytes()); // srcport
        b.extend_from_slice(&445u16.to_be_bytes()); // dstport
        b.extend_from_slice(&[0, 0x12, 6, 0]); // pad, tcp_flags, prot, tos
        b.extend_from_slice(&[0; 8]); // src_as, dst_as, masks, pad
    }
    debug_assert_eq!(b.len(), HEADER_LEN + RECORDS * RECORD_LEN);
    b
}
