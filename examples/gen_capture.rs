//! Writes a synthetic but realistic legacy pcap (little-endian, microseconds,
//! LINKTYPE_ETHERNET) for benchmarks:
//!
//! ```text
//! cargo run --release --example gen_capture -- --packets 4000000 --out big.pcap [--seed 1] [--pps 200000]
//! ```
//!
//! Traffic: 2 000 internal clients (10.1.0.0/16, fd00::/64) talk to 300 servers
//! (198.18.0.0/15, 2001:db8::/64) through interleaved sessions:
//!
//! * TCP sessions: 3-way handshake, request/response rounds with data both ways
//!   (frames of 60–1514 bytes, consistent sequence numbers, delayed ACKs), FIN
//!   teardown; a few end with RST;
//! * rejected connections (SYN answered by RST-ACK);
//! * DNS over UDP: a query and (mostly) a response in valid wire format, with
//!   compression pointers, A/AAAA/CNAME answers;
//! * ICMP echo request/reply (ICMPv6 over IPv6);
//! * one infected internal host SYN-scanning port 445 on random addresses (a new flow
//!   per packet; a fifth of the targets answer with RST-ACK).
//!
//! About 80 % of sessions are plain Ethernet/IPv4, 10 % 802.1Q-tagged IPv4 and 10 %
//! IPv6. Packets arrive at `--pps` (default 200 000) packets per second of capture
//! time, with uniformly random gaps. IP total lengths, UDP
//! lengths and all checksums (IPv4, TCP, UDP, ICMP, ICMPv6) are correct.
//! `--shape` changes the mix, for benchmarks across traffic shapes (`benches/e2e.sh`):
//! `mix` is the above; `scan` is scan-heavy, about 40 % scan SYNs and otherwise mostly
//! rejected connections, under two packets per flow; `dns` is 95 % DNS exchanges;
//! `ipv6` is the mix with 90 % of sessions over IPv6; `ptr` is `dns` with every lookup a
//! reverse one (PTR) for one of 5 000 internal addresses, as a resolver sees loggers and
//! monitoring resolve their peers.
//! With `--synflood`, every packet is instead a SYN from a random public source address
//! and port to 10.164.1.8:445 that nobody answers: 20 M single-packet flows from
//! (almost) 20 M sources, for the memory benchmark (`benches/synflood.sh`). `--out -`
//! writes to standard output.
//! The output is a pure function of `--packets`, `--seed`, `--pps`, `--shape` and `--synflood`. Frames, checksums, the PRNG
//! and the pcap writer are `wormsign_synth::wire` (shared with `wormsign synth`).

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;

use wormsign_synth::wire::{self, Frame, PcapWriter, Rng, ACK, FIN, PSH, RST, SYN};

const N_CLIENTS: u32 = 2_000;
const N_SERVERS: u32 = 300;
const N_RESOLVERS: u32 = 4;
/// Sessions in progress at once (their packets interleave).
const POOL: usize = 4_096;
/// The traffic mix (`--shape`).
#[derive(Clone, Copy)]
struct Shape {
    /// Packets that belong to the SYN scan, per 1000.
    scan: u64,
    /// New sessions, per 1000: below `tcp` a TCP session, below `rejected` a rejected
    /// connection, below `dns` a DNS exchange, the rest ICMP echo.
    tcp: u64,
    rejected: u64,
    dns: u64,
    /// Sessions over IPv6, per 10 (the next one in 10 is 802.1Q-tagged IPv4).
    v6: u64,
    /// DNS exchanges that are reverse lookups, per 1000 (0 draws no number for it, so
    /// the other shapes' captures stay as they were).
    reverse: u64,
}

impl Shape {
    fn named(name: &str) -> Option<Shape> {
        let mix = Shape {
            scan: 40,
            tcp: 700,
            rejected: 730,
            dns: 960,
            v6: 1,
            reverse: 0,
        };
        Some(match name {
            "mix" => mix,
            "scan" => Shape {
                scan: 400,
                tcp: 0,
                rejected: 900,
                dns: 1000,
                ..mix
            },
            "dns" => Shape {
                scan: 0,
                tcp: 50,
                rejected: 50,
                dns: 1000,
                ..mix
            },
            "ipv6" => Shape { v6: 9, ..mix },
            "ptr" => Shape {
                reverse: 1000,
                ..Shape::named("dns")?
            },
            _ => return None,
        })
    }
}
/// First packet's time (2023-11-14T22:13:20Z).
const START_SEC: u64 = 1_700_000_000;
/// Largest Ethernet frame written, VLAN tag included.
const MAX_FRAME: usize = 1514;

/// How the session's packets are framed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encap {
    V4,
    V4Vlan(u16),
    V6,
}

#[derive(Clone, Copy)]
struct Host {
    /// Index in the client or server range, mapped to v4/v6 addresses and a MAC.
    v4: [u8; 4],
    v6: [u8; 16],
    mac: [u8; 6],
}

fn client(i: u32) -> Host {
    let v4 = [10, 1, (i >> 8) as u8, (i & 0xff) as u8 + 1];
    host(v4, [0xfd, 0, 0, 0, 0, 0, 0, 0], i)
}

fn server(i: u32) -> Host {
    let n = i + 1;
    let v4 = [198, 18 + (n >> 16) as u8, (n >> 8) as u8, n as u8];
    host(v4, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0], 0x10_0000 + i)
}

fn resolver(i: u32) -> Host {
    host(
        [10, 0, 0, 53 + i as u8],
        [0xfd, 0, 0, 0, 0, 0, 0, 0x53],
        0x20_0000 + i,
    )
}

fn host(v4: [u8; 4], prefix6: [u8; 8], id: u32) -> Host {
    let mut v6 = [0u8; 16];
    v6[..8].copy_from_slice(&prefix6);
    v6[8..12].copy_from_slice(&v4);
    v6[12..].copy_from_slice(&id.to_be_bytes());
    let b = id.to_be_bytes();
    Host {
        v4,
        v6,
        mac: [0x02, 0x00, b[0], b[1], b[2], b[3]],
    }
}

/// One packet of a session's script, from the client's (`0`) or server's (`1`) side.
#[derive(Clone, Copy)]
enum Step {
    Tcp { dir: u8, flags: u8, payload: u16 },
    Udp { dir: u8 },
    Echo { dir: u8, seq: u16 },
}

/// What a session is about.
#[derive(Clone, Copy)]
enum Kind {
    Tcp,
    Dns {
        id: u16,
        name: u32,
        aaaa: bool,
        reverse: bool,
    },
    Icmp {
        ident: u16,
    },
}

struct Session {
    kind: Kind,
    encap: Encap,
    hosts: [Host; 2],
    ports: [u16; 2],
    /// Next sequence number each side sends.
    seq: [u32; 2],
    steps: Vec<Step>,
    next: usize,
}

impl Session {
    fn done(&self) -> bool {
        self.next >= self.steps.len()
    }
}

/// Largest TCP payload that keeps the frame within [`MAX_FRAME`].
fn max_tcp_payload(encap: Encap) -> u64 {
    (MAX_FRAME - link_len(encap) - ip_len(encap) - 20) as u64
}

fn link_len(encap: Encap) -> usize {
    match encap {
        Encap::V4Vlan(_) => 18,
        _ => 14,
    }
}

fn ip_len(encap: Encap) -> usize {
    match encap {
        Encap::V6 => 40,
        _ => 20,
    }
}

fn new_session(rng: &mut Rng, shape: &Shape, steps: Vec<Step>) -> Session {
    let encap = match rng.below(10) {
        r if r < shape.v6 => Encap::V6,
        r if r == shape.v6 => Encap::V4Vlan([10, 20, 30][rng.below(3) as usize]),
        _ => Encap::V4,
    };
    let c = client(rng.below(u64::from(N_CLIENTS)) as u32);
    let roll = rng.below(1000);
    let mut s = Session {
        kind: Kind::Tcp,
        encap,
        hosts: [c, server(rng.below(u64::from(N_SERVERS)) as u32)],
        ports: [rng.range(32_768, 60_999) as u16, 443],
        seq: [rng.next() as u32, rng.next() as u32],
        steps,
        next: 0,
    };
    s.steps.clear();
    if roll < shape.tcp {
        tcp_script(rng, &mut s);
    } else if roll < shape.rejected {
        // Rejected connection: SYN (sometimes retried), RST-ACK.
        s.ports[1] = [23, 3389, 5900, 8443][rng.below(4) as usize];
        let tries = if rng.chance(300) { 2 } else { 1 };
        for _ in 0..tries {
            s.steps.push(Step::Tcp {
                dir: 0,
                flags: SYN,
                payload: 0,
            });
        }
        s.steps.push(Step::Tcp {
            dir: 1,
            flags: RST | ACK,
            payload: 0,
        });
    } else if roll < shape.dns {
        s.hosts[1] = resolver(rng.below(u64::from(N_RESOLVERS)) as u32);
        s.ports[1] = 53;
        s.kind = Kind::Dns {
            id: rng.next() as u16,
            name: rng.below(5_000) as u32,
            aaaa: rng.chance(200),
            reverse: shape.reverse > 0 && rng.below(1000) < shape.reverse,
        };
        s.steps.push(Step::Udp { dir: 0 });
        if !rng.chance(30) {
            s.steps.push(Step::Udp { dir: 1 });
        }
    } else {
        s.kind = Kind::Icmp {
            ident: rng.next() as u16,
        };
        s.ports = [0, 0];
        for seq in 1..=rng.range(1, 4) as u16 {
            s.steps.push(Step::Echo { dir: 0, seq });
            s.steps.push(Step::Echo { dir: 1, seq });
        }
    }
    s
}

/// A reverse lookup (PTR) for internal address 10.1.`name / 256`.`name % 256`, or its
/// answer naming it `host<name>.corp.example` (one in 37 answered NXDOMAIN).
fn reverse_message(id: u16, name: u32, response: bool) -> Vec<u8> {
    let nx = response && name % 37 == 0;
    let flags: u16 = match (response, nx) {
        (false, _) => 0x0100,
        (true, true) => 0x8183,
        (true, false) => 0x8180,
    };
    let mut msg = Vec::with_capacity(96);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&flags.to_be_bytes());
    let ancount = u16::from(response && !nx);
    for v in [1, ancount, 0, 0] {
        msg.extend_from_slice(&v.to_be_bytes());
    }
    let octets = [name % 256, name / 256 % 256, 1, 10].map(|o| o.to_string());
    let labels = octets.iter().map(String::as_str).chain(["in-addr", "arpa"]);
    push_name(&mut msg, labels);
    msg.extend_from_slice(&[0, 12, 0, 1]);
    if ancount == 1 {
        // The answer's owner is the question's name (a pointer to offset 12).
        msg.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0x0e, 0x10]);
        let mut target = Vec::new();
        push_name(
            &mut target,
            [format!("host{name}").as_str(), "corp", "example"],
        );
        msg.extend_from_slice(&(target.len() as u16).to_be_bytes());
        msg.extend_from_slice(&target);
    }
    msg
}

/// A name in DNS wire format: each label after its length, then the root.
fn push_name<'a>(msg: &mut Vec<u8>, labels: impl IntoIterator<Item = &'a str>) {
    for l in labels {
        msg.push(l.len() as u8);
        msg.extend_from_slice(l.as_bytes());
    }
    msg.push(0);
}

/// Handshake, request/response rounds, teardown.
fn tcp_script(rng: &mut Rng, s: &mut Session) {
    s.ports[1] = match rng.below(20) {
        0..=9 => 443,
        10..=14 => 80,
        15 => 22,
        16 => 445,
        17 => 25,
        18 => 8080,
        _ => 3306,
    };
    let mss = max_tcp_payload(s.encap);
    let tcp = |dir: u8, flags: u8, payload: u64| Step::Tcp {
        dir,
        flags,
        payload: payload as u16,
    };
    s.steps.push(tcp(0, SYN, 0));
    s.steps.push(tcp(1, SYN | ACK, 0));
    s.steps.push(tcp(0, ACK, 0));
    for _ in 0..rng.range(1, 4) {
        // Request: one small segment, occasionally two.
        for _ in 0..if rng.chance(100) { 2 } else { 1 } {
            s.steps.push(tcp(0, PSH | ACK, rng.range(80, 700)));
        }
        // Response: a heavy-tailed number of segments, full size but the last.
        let n = match rng.below(20) {
            0..=11 => 1,
            12..=16 => rng.range(2, 4),
            17 | 18 => rng.range(5, 12),
            _ => rng.range(13, 40),
        };
        for i in 0..n {
            let len = if i + 1 == n { rng.range(6, mss) } else { mss };
            let flags = if i + 1 == n { PSH | ACK } else { ACK };
            s.steps.push(tcp(1, flags, len));
            // Delayed ACK: every second segment and after the last one.
            if i % 2 == 1 || i + 1 == n {
                s.steps.push(tcp(0, ACK, 0));
            }
        }
    }
    if rng.chance(50) {
        s.steps.push(tcp(1, RST | ACK, 0));
    } else {
        s.steps.push(tcp(0, FIN | ACK, 0));
        s.steps.push(tcp(1, FIN | ACK, 0));
        s.steps.push(tcp(0, ACK, 0));
    }
}

/// Starts an Ethernet frame from `src` to `dst`, framed as `encap`.
fn begin_frame<'a>(buf: &'a mut Vec<u8>, encap: Encap, src: &Host, dst: &Host) -> Frame<'a> {
    let ethertype: u16 = if encap == Encap::V6 { 0x86dd } else { 0x0800 };
    let vlan = match encap {
        Encap::V4Vlan(vid) => Some(vid),
        _ => None,
    };
    wire::begin_frame(buf, &dst.mac, &src.mac, vlan, ethertype)
}

/// Writes the IP header for `l4_len` bytes of transport header + payload (ICMP becomes
/// ICMPv6 over IPv6).
fn ip(f: &mut Frame, encap: Encap, src: &Host, dst: &Host, proto: u8, l4_len: usize, id: u16) {
    if encap == Encap::V6 {
        let next = if proto == 1 { 58 } else { proto };
        f.ipv6(&src.v6, &dst.v6, next, l4_len);
    } else {
        let ttl = if src.v4[0] == 10 { 64 } else { 52 };
        f.ipv4(src.v4, dst.v4, proto, l4_len, id, ttl);
    }
}

/// Filler for payloads: printable, a little varied, never all zero.
fn payload_bytes() -> Vec<u8> {
    let text = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
    (0..4096usize)
        .map(|i| text[i % text.len()] ^ (i as u8 & 3))
        .collect()
}

struct Gen {
    rng: Rng,
    filler: Vec<u8>,
    ip_id: u16,
    scanner: Host,
    scan_pending: Option<([u8; 4], u16, u16, u32)>,
}

impl Gen {
    fn tcp_frame(&mut self, buf: &mut Vec<u8>, s: &mut Session, dir: u8, flags: u8, payload: u16) {
        let d = usize::from(dir);
        let (src, dst) = (s.hosts[d], s.hosts[1 - d]);
        let syn = flags & SYN != 0;
        let opts: &[u8] = if syn {
            &[2, 4, 0x05, 0xb4, 1, 3, 3, 7] // MSS 1460, NOP, window scale 7
        } else {
            &[]
        };
        let l4 = 20 + opts.len() + usize::from(payload);
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(buf, s.encap, &src, &dst);
        ip(&mut f, s.encap, &src, &dst, 6, l4, self.ip_id);
        let seq = s.seq[d];
        let ack = if flags & ACK != 0 { s.seq[1 - d] } else { 0 };
        let window: u16 = if d == 0 {
            502
        } else {
            1_024 + (seq as u16 & 0x3ff)
        };
        f.buf.extend_from_slice(&s.ports[d].to_be_bytes());
        f.buf.extend_from_slice(&s.ports[1 - d].to_be_bytes());
        f.buf.extend_from_slice(&seq.to_be_bytes());
        f.buf.extend_from_slice(&ack.to_be_bytes());
        f.buf.push(((20 + opts.len()) / 4) as u8 * 16);
        f.buf.push(flags);
        f.buf.extend_from_slice(&window.to_be_bytes());
        f.buf.extend_from_slice(&[0, 0, 0, 0]);
        f.buf.extend_from_slice(opts);
        let start = (seq & 0x3ff) as usize;
        f.buf
            .extend_from_slice(&self.filler[start..start + usize::from(payload)]);
        f.finish();
        let consumed = u32::from(payload) + u32::from(syn) + u32::from(flags & FIN != 0);
        s.seq[d] = seq.wrapping_add(consumed);
    }

    fn dns_frame(&mut self, buf: &mut Vec<u8>, s: &Session, dir: u8) {
        let Kind::Dns {
            id,
            name,
            aaaa,
            reverse,
        } = s.kind
        else {
            unreachable!()
        };
        if reverse {
            return self.udp_frame(buf, s, dir, &reverse_message(id, name, dir == 1));
        }
        let mut msg = Vec::with_capacity(160);
        let response = dir == 1;
        let nx = response && name % 37 == 0;
        msg.extend_from_slice(&id.to_be_bytes());
        let flags: u16 = if !response {
            0x0100
        } else if nx {
            0x8183
        } else {
            0x8180
        };
        msg.extend_from_slice(&flags.to_be_bytes());
        let cname = response && !nx && name % 5 == 0;
        let n_addr = if response && !nx {
            1 + (name % 3) as u16
        } else {
            0
        };
        let ancount = n_addr + u16::from(cname);
        for v in [1, ancount, 0, 0] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        // QNAME: host<n>.<domain>.<tld>
        let domains = [
            "example",
            "wikipedia",
            "cdn-cache",
            "mail",
            "updates",
            "corp",
        ];
        let tlds = ["com", "org", "net", "io"];
        let label = format!("host{}", name % 997);
        let domain = domains[(name / 997) as usize % domains.len()];
        let tld = tlds[name as usize % tlds.len()];
        push_name(&mut msg, [label.as_str(), domain, tld]);
        let qtype: u16 = if aaaa { 28 } else { 1 };
        msg.extend_from_slice(&qtype.to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        // The domain label starts right after the first label in the question.
        let domain_ptr = 0xc000 | (12 + 1 + label.len()) as u16;
        let mut owner = 0xc00cu16;
        if cname {
            msg.extend_from_slice(&owner.to_be_bytes());
            msg.extend_from_slice(&[0, 5, 0, 1, 0, 0, 0x0e, 0x10]);
            let target_at = msg.len() + 2;
            msg.extend_from_slice(&6u16.to_be_bytes());
            msg.extend_from_slice(&[3, b'c', b'd', b'n']);
            msg.extend_from_slice(&domain_ptr.to_be_bytes());
            owner = 0xc000 | target_at as u16;
        }
        for k in 0..n_addr {
            msg.extend_from_slice(&owner.to_be_bytes());
            msg.extend_from_slice(&qtype.to_be_bytes());
            msg.extend_from_slice(&[0, 1, 0, 0, 0x01, 0x2c]);
            if aaaa {
                msg.extend_from_slice(&16u16.to_be_bytes());
                msg.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0]);
                msg.extend_from_slice(&(name * 4 + u32::from(k)).to_be_bytes());
            } else {
                msg.extend_from_slice(&4u16.to_be_bytes());
                msg.extend_from_slice(&[203, 0, (name >> 4) as u8, (name as u8) << 2 | k as u8]);
            }
        }
        self.udp_frame(buf, s, dir, &msg);
    }

    /// A UDP datagram of `s` carrying `msg`, from side `dir`.
    fn udp_frame(&mut self, buf: &mut Vec<u8>, s: &Session, dir: u8, msg: &[u8]) {
        let d = usize::from(dir);
        let (src, dst) = (s.hosts[d], s.hosts[1 - d]);
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(buf, s.encap, &src, &dst);
        let udp_len = 8 + msg.len();
        ip(&mut f, s.encap, &src, &dst, 17, udp_len, self.ip_id);
        f.buf.extend_from_slice(&s.ports[d].to_be_bytes());
        f.buf.extend_from_slice(&s.ports[1 - d].to_be_bytes());
        f.buf.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.buf.extend_from_slice(&[0, 0]);
        f.buf.extend_from_slice(msg);
        f.finish();
    }

    fn echo_frame(&mut self, buf: &mut Vec<u8>, s: &Session, dir: u8, seq: u16) {
        let Kind::Icmp { ident } = s.kind else {
            unreachable!()
        };
        let d = usize::from(dir);
        let (src, dst) = (s.hosts[d], s.hosts[1 - d]);
        let v6 = s.encap == Encap::V6;
        let ty = match (v6, dir) {
            (false, 0) => 8,
            (false, _) => 0,
            (true, 0) => 128,
            (true, _) => 129,
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(buf, s.encap, &src, &dst);
        ip(&mut f, s.encap, &src, &dst, 1, 8 + 56, self.ip_id);
        f.buf.extend_from_slice(&[ty, 0, 0, 0]);
        f.buf.extend_from_slice(&ident.to_be_bytes());
        f.buf.extend_from_slice(&seq.to_be_bytes());
        f.buf.extend_from_slice(&self.filler[..56]);
        f.finish();
    }

    /// A flood SYN from a random public address (1.0.0.0 to 99.255.255.255, 10/8
    /// excluded) and port to the file server's SMB port.
    fn flood_frame(&mut self, buf: &mut Vec<u8>) {
        let r = self.rng.next();
        let mut src = ((r >> 32) as u32).to_be_bytes();
        src[0] = 1 + src[0] % 99;
        if src[0] == 10 {
            src[0] = 11;
        }
        let attacker = host(src, [0x20, 0x01, 0x0d, 0xb8, 0xfe, 0, 0, 0], 0);
        let victim = host([10, 164, 1, 8], [0xfd, 0, 0, 0, 0, 0, 0, 0], 8);
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(buf, Encap::V4, &attacker, &victim);
        ip(&mut f, Encap::V4, &attacker, &victim, 6, 20, self.ip_id);
        f.buf
            .extend_from_slice(&(1024 + (r as u16) % 60_000).to_be_bytes());
        f.buf.extend_from_slice(&445u16.to_be_bytes());
        f.buf.extend_from_slice(&((r >> 16) as u32).to_be_bytes());
        f.buf.extend_from_slice(&0u32.to_be_bytes());
        f.buf
            .extend_from_slice(&[0x50, SYN, 0x04, 0x00, 0, 0, 0, 0]);
        f.finish();
    }

    /// A scan SYN from the infected host, or the RST-ACK answering the previous one.
    fn scan_frame(&mut self, buf: &mut Vec<u8>) {
        let me = self.scanner;
        let (target, sport, dport, seq, reply) = match self.scan_pending.take() {
            Some((t, sp, dp, seq)) => (t, sp, dp, seq, true),
            None => {
                let r = self.rng.next();
                let t = [
                    100 + (r % 4) as u8,
                    (r >> 8) as u8,
                    (r >> 16) as u8,
                    (r >> 24) as u8,
                ];
                let sport = 40_000 + (r >> 40) as u16 % 20_000;
                let seq = (r >> 20) as u32;
                if self.rng.chance(200) {
                    self.scan_pending = Some((t, sport, 445, seq));
                }
                (t, sport, 445, seq, false)
            }
        };
        let other = host(
            target,
            [0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0],
            u32::from_be_bytes(target),
        );
        let (src, dst) = if reply { (other, me) } else { (me, other) };
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(buf, Encap::V4, &src, &dst);
        ip(&mut f, Encap::V4, &src, &dst, 6, 20, self.ip_id);
        let (sp, dp) = if reply {
            (dport, sport)
        } else {
            (sport, dport)
        };
        f.buf.extend_from_slice(&sp.to_be_bytes());
        f.buf.extend_from_slice(&dp.to_be_bytes());
        if reply {
            f.buf.extend_from_slice(&0u32.to_be_bytes());
            f.buf.extend_from_slice(&seq.wrapping_add(1).to_be_bytes());
            f.buf.extend_from_slice(&[0x50, RST | ACK, 0, 0]);
        } else {
            f.buf.extend_from_slice(&seq.to_be_bytes());
            f.buf.extend_from_slice(&0u32.to_be_bytes());
            f.buf.extend_from_slice(&[0x50, SYN, 0x04, 0x00]);
        }
        f.buf.extend_from_slice(&[0, 0, 0, 0]);
        f.finish();
    }
}

struct Args {
    packets: u64,
    out: String,
    seed: u64,
    pps: u64,
    shape: Shape,
    synflood: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut packets, mut out, mut seed, mut pps) = (None, None, 1u64, 200_000u64);
    let mut synflood = false;
    let mut shape = Shape::named("mix").expect("the default shape");
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--packets" | "-n" => {
                packets = Some(value()?.parse().map_err(|e| format!("--packets: {e}"))?)
            }
            "--out" | "-o" => out = Some(value()?),
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--pps" => pps = value()?.parse().map_err(|e| format!("--pps: {e}"))?,
            "--synflood" => synflood = true,
            "--shape" => {
                let name = value()?;
                shape = Shape::named(&name)
                    .ok_or(format!("--shape {name:?}: use mix, scan, dns, ipv6 or ptr"))?;
            }
            "-h" | "--help" => return Err(
                "usage: gen_capture --packets N --out FILE|- [--seed S] [--pps RATE] [--shape mix|scan|dns|ipv6|ptr] [--synflood]"
                    .into(),
            ),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        packets: packets.ok_or("--packets is required")?,
        out: out.ok_or("--out is required")?,
        seed,
        pps: pps.clamp(1, 1_000_000),
        shape,
        synflood,
    })
}

fn run(args: &Args) -> std::io::Result<(u64, f64)> {
    let out: Box<dyn std::io::Write> = if args.out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(&args.out)?)
    };
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, out))?;

    let mut g = Gen {
        rng: Rng::new(args.seed),
        filler: payload_bytes(),
        ip_id: 0,
        scanner: client(1_337),
        scan_pending: None,
    };
    let mut pool: Vec<Session> = (0..POOL)
        .map(|_| new_session(&mut g.rng, &args.shape, Vec::new()))
        .collect();
    let mut buf = Vec::with_capacity(2048);
    let mut ts_us = START_SEC * 1_000_000;
    let max_gap = 2_000_000 / args.pps;
    for _ in 0..args.packets {
        // Uniform gaps with the requested mean (5 µs at 200 k packets/s).
        ts_us += g.rng.below(max_gap + 1);
        if args.synflood {
            g.flood_frame(&mut buf);
        } else if g.scan_pending.is_some() || g.rng.below(1000) < args.shape.scan {
            g.scan_frame(&mut buf);
        } else {
            let i = g.rng.below(POOL as u64) as usize;
            let s = &mut pool[i];
            match s.steps[s.next] {
                Step::Tcp {
                    dir,
                    flags,
                    payload,
                } => g.tcp_frame(&mut buf, s, dir, flags, payload),
                Step::Udp { dir } => g.dns_frame(&mut buf, s, dir),
                Step::Echo { dir, seq } => g.echo_frame(&mut buf, s, dir, seq),
            }
            s.next += 1;
            if s.done() {
                let steps = std::mem::take(&mut s.steps);
                *s = new_session(&mut g.rng, &args.shape, steps);
            }
        }
        w.write(ts_us, &buf)?;
    }
    let bytes = w.bytes;
    w.finish()?;
    Ok((bytes, (ts_us - START_SEC * 1_000_000) as f64 / 1e6))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gen_capture: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    match run(&args) {
        Ok((bytes, secs)) => {
            eprintln!(
                "gen_capture: wrote {} packets, {:.1} MB ({secs:.1} s of capture time) to {} in {:.2} s",
                args.packets,
                bytes as f64 / 1e6,
                args.out,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_capture: {}: {e}", args.out);
            ExitCode::FAILURE
        }
    }
}
