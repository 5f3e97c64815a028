//! Labelled synthetic worm-outbreak captures: `wormsign synth`.
//!
//! [`generate`] writes a pcap of an office network (Ethernet, IPv4) with benign
//! background traffic, benign heavy hitters (backup server, admin workstation, pooled
//! MSSQL, an authorized vulnerability scanner, a NAT gateway) and, except in the `benign`
//! [`Scenario`], a worm outbreak, and returns the ground truth as [`Labels`];
//! [`generate_labelled`] also writes what each flow is ([`FlowLabel`], `flow_labels.csv`).
//!
//! The worm services speak their protocols (modules `smb`, `tds`): EternalBlue and
//! DoublePulsar messages on infection, the MS17-010 probe, NTLMSSP and LOGIN7 password
//! guessing that fails until it works, pooled application logins that succeed, ordinary
//! SMB 3 file sessions; RDP shows its X.224 negotiation, then TLS.
//!
//! Packets are valid: correct IP/TCP/UDP lengths and checksums, three-way handshakes and
//! FIN teardowns for sessions, RST-ACK from closed ports, silence (a SYN and one
//! retransmission) from filtered ports and infected hosts that firewalled 445, ARP
//! who-has for probes of dead local addresses, DNS in wire format (the internal resolver
//! forwards lookups upstream). The output is a pure function of the scenario, seed and
//! scale; `scale` multiplies only the background (more clients), never the worm part.
//!
//! # Design decision: a discrete-event worm simulation rendered to packets
//!
//! The outbreak is simulated as events in capture-time order (probe, brute-force
//! campaign, infection): the response to a probe depends on the target's state *at that
//! time* (vulnerable, already infected and firewalled, closed, filtered, dead), so the
//! labels (who infected whom, when, how) are exactly what the packets show. Packets of
//! the fixed part go into a min-heap; background traffic is generated in 10-second slices
//! (each from its own seeded stream) and merged, so `--scale`d multi-GB captures stream
//! with bounded memory.

#![deny(missing_docs)]

mod bytes;
mod dataset;
pub mod export;
mod flow_labels;
pub mod sflow;
mod smb;
mod tds;
pub mod tunnel;
pub mod wire;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use wormsign_capture::time::UtcTime;

pub use dataset::{write_dataset, Dataset};
pub use flow_labels::{FlowLabel, HEADER as FLOW_LABELS_HEADER};
use flow_labels::{FlowLabelWriter, FlowMeta};
use smb::{Account, Guess, Ms17};
use wire::{arp_frame, begin_frame, dns_message, PcapWriter, Rng, ACK, FIN, PSH, RST, SYN};

/// An IPv4 address as bytes.
pub type Ip = [u8; 4];
/// Microseconds since the Unix epoch.
pub type Us = i64;

const SEC: Us = 1_000_000;
const MS: Us = 1_000;
/// Capture start: 2024-03-04T09:00:00Z.
const T0: Us = 1_709_542_800 * SEC;
/// Capture length.
const SPAN: Us = 45 * 60 * SEC;
const LAN: [u8; 3] = [10, 164, 1];
const ROUTER: Ip = [10, 164, 1, 1];
const RESOLVER: Ip = [10, 164, 1, 2];
const NAT_GW: Ip = [10, 164, 1, 3];
const FILE_SERVER: Ip = [10, 164, 1, 8];
const SQL_SERVER: Ip = [10, 164, 1, 9];
const BACKUP: Ip = [10, 164, 1, 10];
const ADMIN: Ip = [10, 164, 1, 11];
const APP_SERVER: Ip = [10, 164, 1, 12];
const VULN_SCANNER: Ip = [10, 164, 1, 13];
const UPSTREAM_DNS: Ip = [9, 9, 9, 9];
const HONEYPOT: Ip = [10, 200, 0, 99];
const EXTERNAL_ATTACKER: Ip = [185, 220, 101, 47];
const CNC: [(&str, Ip); 2] = [
    ("t.awcna.com", [45, 76, 102, 17]),
    ("down.ackng.com", [104, 168, 44, 120]),
];
const KILLSWITCH: &str = "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com";
const N_PCS: u8 = 100;
const FIRST_PC: u8 = 101;

/// The scenario to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// RDP brute force from the internet, C&C lookups, spreading over SMB/RDP/MSSQL.
    Drivelife,
    /// A fast 445 scanner over random internal and external addresses.
    Wannacry,
    /// A slow scanner under naive rate thresholds, mixing in successful contacts.
    Stealthy,
    /// Benign confounders only.
    Benign,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 4] = [
        Scenario::Drivelife,
        Scenario::Wannacry,
        Scenario::Stealthy,
        Scenario::Benign,
    ];

    /// The scenario's name on the command line and in the labels.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Drivelife => "drivelife",
            Scenario::Wannacry => "wannacry",
            Scenario::Stealthy => "stealthy",
            Scenario::Benign => "benign",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!("unknown scenario {s:?} (drivelife, wannacry, stealthy, benign)")
            })
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct SynthConfig {
    /// The scenario.
    pub scenario: Scenario,
    /// Seed: the same seed (and scale) gives byte-identical output.
    pub seed: u64,
    /// Background-traffic multiplier (> 0; 1 = about 100 clients).
    pub scale: f64,
    /// Seconds into the scenario at which the capture starts: packets before it are not
    /// written, so sessions in flight then appear without their handshake (0: from the
    /// start).
    pub capture_start: u64,
}

impl SynthConfig {
    /// The latest `capture_start`: the scenarios' worm activity is over by then.
    pub const MAX_CAPTURE_START: u64 = 2700;

    /// Why these settings cannot be generated, if they cannot: `scale` must be positive
    /// and finite, `capture_start` at most [`Self::MAX_CAPTURE_START`].
    pub fn check(&self) -> Result<(), String> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!(
                "scale must be a positive number, not {}",
                self.scale
            ));
        }
        if self.capture_start > Self::MAX_CAPTURE_START {
            return Err(format!(
                "capture start must be at most {} s, not {}",
                Self::MAX_CAPTURE_START,
                self.capture_start
            ));
        }
        Ok(())
    }
}

/// One infected host of the ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct InfectedHost {
    /// The host.
    pub ip: Ip,
    /// First worm behaviour on the wire (first C&C lookup or first scan packet).
    pub infected_at: Us,
    /// When the infecting session delivered the payload.
    pub compromised_at: Us,
    /// The infecting host (`None`: infected outside the capture, e.g. by phishing).
    pub parent: Option<Ip>,
    /// `eternalblue_smb`, `smb_bruteforce`, `rdp_bruteforce`, `mssql_bruteforce`, or
    /// `initial_access` without a network parent.
    pub vector: &'static str,
    /// First scan packet (SYN or ARP who-has of a probe).
    pub first_scan_at: Option<Us>,
    /// First C&C DNS lookup.
    pub first_cnc_at: Option<Us>,
    /// 0 for patient zero.
    pub generation: u32,
}

/// The ground truth of a generated capture.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Scale.
    pub scale: f64,
    /// Internal networks.
    pub internal: Vec<String>,
    /// Honeypot addresses.
    pub honeypots: Vec<Ip>,
    /// Internal hosts infected first (their parent is outside or unknown).
    pub patient_zero: Vec<Ip>,
    /// Every infected host, in infection order.
    pub infected: Vec<InfectedHost>,
    /// External attackers.
    pub external_attackers: Vec<Ip>,
    /// Authorized scanners (pass to `--allowlist`).
    pub authorized_scanners: Vec<Ip>,
    /// Benign hosts with scanner-like or heavy traffic.
    pub benign_heavy_hitters: Vec<Ip>,
    /// Internal hosts that completed a worm-service session with an attacker but were
    /// never infected.
    pub targets_not_infected: Vec<Ip>,
    /// When the capture starts (the scenario's start, or later with
    /// [`SynthConfig::capture_start`]).
    pub capture_start: Us,
}

/// Dotted-quad text of an address.
pub fn ip_str(ip: Ip) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

/// RFC 3339 UTC with microseconds.
pub fn rfc3339(us: Us) -> String {
    UtcTime::from_unix_ns(us.saturating_mul(1000)).rfc3339_micros()
}

impl Labels {
    /// The labels as pretty-printed JSON (keys sorted).
    pub fn to_json(&self) -> String {
        use serde_json::{json, Value};
        let ips = |v: &[Ip]| Value::from(v.iter().map(|&i| ip_str(i)).collect::<Vec<_>>());
        let t = |u: Option<Us>| u.map_or(Value::Null, |u| rfc3339(u).into());
        let infected: Vec<Value> = self
            .infected
            .iter()
            .map(|h| {
                json!({
                    "ip": ip_str(h.ip),
                    "infected_at": rfc3339(h.infected_at),
                    "compromised_at": rfc3339(h.compromised_at),
                    "parent": h.parent.map_or(Value::Null, |p| ip_str(p).into()),
                    "vector": h.vector,
                    "first_scan_at": t(h.first_scan_at),
                    "first_cnc_at": t(h.first_cnc_at),
                    "generation": h.generation,
                })
            })
            .collect();
        let v = json!({
            "scenario": self.scenario,
            "seed": self.seed,
            "scale": self.scale,
            "capture_start": rfc3339(self.capture_start),
            "internal": self.internal,
            "honeypots": ips(&self.honeypots),
            "patient_zero": ips(&self.patient_zero),
            "infected": infected,
            "external_attackers": ips(&self.external_attackers),
            "authorized_scanners": ips(&self.authorized_scanners),
            "benign_heavy_hitters": ips(&self.benign_heavy_hitters),
            "targets_not_infected": ips(&self.targets_not_infected),
        });
        let mut s = serde_json::to_string_pretty(&v).expect("labels serialize");
        s.push('\n');
        s
    }
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub struct Output {
    /// The ground truth.
    pub labels: Labels,
    /// Packets written.
    pub packets: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Flows labelled, per label in [`FlowLabel::ALL`] order.
    pub flow_labels: [u64; 6],
}

// ---------------------------------------------------------------------------------------
// Packets.

struct Pkt {
    ts: Us,
    seq: u64,
    /// The flow the packet belongs to (0: none, as ARP).
    flow: u64,
    data: Vec<u8>,
}

impl PartialEq for Pkt {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Pkt {}
impl PartialOrd for Pkt {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pkt {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

fn in_lan(ip: Ip) -> bool {
    ip[..3] == LAN
}

fn mac(ip: Ip) -> [u8; 6] {
    if in_lan(ip) {
        [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]]
    } else {
        [0x02, 0x00, ROUTER[0], ROUTER[1], ROUTER[2], ROUTER[3]]
    }
}

/// Application data of one direction of a session round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum App {
    Http,
    Smb,
    Rdp,
    Tds,
    Raw,
}

fn app_of(port: u16) -> App {
    match port {
        80 | 8080 => App::Http,
        445 | 139 => App::Smb,
        3389 => App::Rdp,
        1433 => App::Tds,
        _ => App::Raw,
    }
}

/// Opaque (encrypted-looking) bytes: a 256-byte pseudo-random block per `salt`, repeated,
/// so the checked-in samples stay small after gzip.
fn filler(n: usize, salt: u32) -> Vec<u8> {
    let mut x = salt.wrapping_mul(0x9E37_79B9) | 1;
    let block: Vec<u8> = (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect();
    block.iter().copied().cycle().take(n).collect()
}

/// The bytes one side sends in round `round` of a session, about `n` long.
fn app_message(app: App, client: bool, round: usize, n: usize, salt: u32) -> Vec<u8> {
    match app {
        App::Http => {
            if client {
                format!(
                    "GET /content/{salt:08x}/{round}.bin HTTP/1.1\r\nHost: cdn{}.example.net\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n",
                    salt % 97
                )
                .into_bytes()
            } else {
                let body: Vec<u8> = (0..n)
                    .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[i % 37])
                    .collect();
                let mut m = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                m.extend_from_slice(&body);
                m
            }
        }
        App::Smb => smb::encrypted(
            n.clamp(16, 0xff_0000),
            u64::from(salt) | 1,
            salt ^ (round as u32) << 1 ^ u32::from(client),
        ),
        App::Rdp if round == 0 => {
            if client {
                // TPKT + X.224 Connection Request with an RDP negotiation request (TLS).
                vec![3, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 1, 0, 0, 0]
            } else {
                // TPKT + X.224 Connection Confirm selecting TLS.
                vec![
                    3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 1, 0, 0, 0,
                ]
            }
        }
        App::Rdp | App::Raw => tls_records(n, salt ^ (round as u32) << 1 ^ u32::from(client)),
        App::Tds if client => tds::sql_batch(n, salt.wrapping_add(round as u32)),
        App::Tds => tds::result_rows(n, salt.wrapping_add(round as u32)),
    }
}

/// TLS 1.2 application-data records totalling about `n` bytes.
fn tls_records(n: usize, salt: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(n + 16);
    let mut left = n.max(24);
    let mut k = 0u32;
    while left > 0 {
        let len = left.min(16_000);
        m.extend_from_slice(&[0x17, 3, 3]);
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.extend_from_slice(&filler(len, salt.wrapping_add(k)));
        left -= len;
        k += 1;
    }
    m
}

/// One request and the reply to it; an empty reply is a bare acknowledgement.
pub(crate) struct Turn {
    pub request: Vec<u8>,
    pub reply: Vec<u8>,
}

impl Turn {
    /// A request the server only acknowledges.
    pub(crate) fn unanswered(request: Vec<u8>) -> Turn {
        Turn {
            request,
            reply: Vec::new(),
        }
    }
}

/// The turns of a session of `rounds` (request bytes, reply bytes) of `app` data.
fn app_turns(app: App, rounds: &[(usize, usize)], salt: u32) -> Vec<Turn> {
    rounds
        .iter()
        .enumerate()
        .map(|(i, &(up, down))| Turn {
            request: app_message(app, true, i, up, salt),
            reply: if down == 0 {
                Vec::new()
            } else {
                app_message(app, false, i, down, salt)
            },
        })
        .collect()
}

/// A connection to open: who talks to whom on which service, and what the flow is.
#[derive(Clone, Copy, Debug)]
struct Conn {
    client: Ip,
    server: Ip,
    port: u16,
    label: FlowLabel,
}

impl Conn {
    fn new(client: Ip, server: Ip, port: u16, label: FlowLabel) -> Conn {
        Conn {
            client,
            server,
            port,
            label,
        }
    }
}

/// When a session's turns began (each request's first segment), and its last packet.
struct Timeline {
    turns: Vec<Us>,
    end: Us,
}

/// Packet emitter: builds frames and keeps them in capture-time order.
struct Tx {
    rng: Rng,
    ip_id: u16,
    seq: u64,
    heap: BinaryHeap<Reverse<Pkt>>,
    buf: Vec<u8>,
    /// The flow the next packets belong to.
    flow: u64,
    /// Flows opened and not yet handed to the label writer.
    opened: Vec<(u64, FlowMeta)>,
}

impl Tx {
    fn new(seed: u64) -> Tx {
        Tx {
            rng: Rng::new(seed),
            ip_id: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            buf: Vec::with_capacity(2048),
            flow: 0,
            opened: Vec::new(),
        }
    }

    fn push(&mut self, ts: Us) {
        self.seq += 1;
        let data = self.buf.clone();
        self.heap.push(Reverse(Pkt {
            ts,
            seq: self.seq,
            flow: self.flow,
            data,
        }));
    }

    /// Starts a flow: the packets pushed from now on belong to it. Returns its id.
    fn open_flow(&mut self, proto: u8, orig: (Ip, u16), resp: (Ip, u16), label: FlowLabel) -> u64 {
        self.flow = self.seq + 1;
        let meta = FlowMeta {
            label,
            proto,
            orig,
            resp,
        };
        self.opened.push((self.flow, meta));
        self.flow
    }

    /// A TCP flow of `conn` from client port `sport`.
    fn open_tcp(&mut self, conn: Conn, sport: u16) {
        self.open_flow(
            6,
            (conn.client, sport),
            (conn.server, conn.port),
            conn.label,
        );
    }

    fn rtt(a: Ip, b: Ip) -> Us {
        if in_lan(a) && in_lan(b) {
            400
        } else if a[0] == 10 && b[0] == 10 {
            4 * MS
        } else {
            38 * MS
        }
    }

    fn ttl(ip: Ip) -> u8 {
        if ip[0] == 10 {
            128
        } else {
            52
        }
    }

    fn port(&mut self) -> u16 {
        self.rng.range(49_152, 65_535) as u16
    }

    #[allow(clippy::too_many_arguments)]
    fn seg(
        &mut self,
        ts: Us,
        src: Ip,
        dst: Ip,
        sp: u16,
        dp: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        let opts: &[u8] = if flags & SYN != 0 {
            &[2, 4, 0x05, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2]
        } else {
            &[]
        };
        let l4 = 20 + opts.len() + payload.len();
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(&mut self.buf, &mac(dst), &mac(src), None, 0x0800);
        f.ipv4(src, dst, 6, l4, self.ip_id, Tx::ttl(src));
        f.buf.extend_from_slice(&sp.to_be_bytes());
        f.buf.extend_from_slice(&dp.to_be_bytes());
        f.buf.extend_from_slice(&seq.to_be_bytes());
        f.buf
            .extend_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
        f.buf.push(((20 + opts.len()) / 4) as u8 * 16);
        f.buf.push(flags);
        f.buf
            .extend_from_slice(&(if flags & RST != 0 { 0u16 } else { 64_240 }).to_be_bytes());
        f.buf.extend_from_slice(&[0, 0, 0, 0]);
        f.buf.extend_from_slice(opts);
        f.buf.extend_from_slice(payload);
        f.finish();
        self.push(ts);
    }

    fn udp(&mut self, ts: Us, src: Ip, dst: Ip, sp: u16, dp: u16, payload: &[u8]) {
        let l4 = 8 + payload.len();
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut f = begin_frame(&mut self.buf, &mac(dst), &mac(src), None, 0x0800);
        f.ipv4(src, dst, 17, l4, self.ip_id, Tx::ttl(src));
        f.buf.extend_from_slice(&sp.to_be_bytes());
        f.buf.extend_from_slice(&dp.to_be_bytes());
        f.buf.extend_from_slice(&(l4 as u16).to_be_bytes());
        f.buf.extend_from_slice(&[0, 0]);
        f.buf.extend_from_slice(payload);
        f.finish();
        self.push(ts);
    }

    fn arp_who_has(&mut self, ts: Us, sender: Ip, target: Ip) {
        self.flow = 0;
        arp_frame(&mut self.buf, true, &mac(sender), sender, &[0; 6], target);
        self.push(ts);
    }

    /// A complete TCP session of `rounds` (client bytes, server bytes) of the service's
    /// usual data, spread over `duration` (see [`Tx::converse`]). Returns the last
    /// packet's time.
    fn session(&mut self, t: Us, conn: Conn, rounds: &[(usize, usize)], duration: Us) -> Us {
        let salt = self.rng.next() as u32;
        let turns = app_turns(app_of(conn.port), rounds, salt);
        self.converse(t, conn, &turns, duration).end
    }

    /// A complete TCP session carrying `turns`: handshake, the turns spread over
    /// `duration`, FIN teardown by the client.
    fn converse(&mut self, t: Us, conn: Conn, turns: &[Turn], duration: Us) -> Timeline {
        let (c, s, dport) = (conn.client, conn.server, conn.port);
        let rtt = Tx::rtt(c, s);
        let sport = self.port();
        self.open_tcp(conn, sport);
        let (mut cs, mut ss) = (self.rng.next() as u32, self.rng.next() as u32);
        self.seg(t, c, s, sport, dport, cs, 0, SYN, &[]);
        cs = cs.wrapping_add(1);
        self.seg(t + rtt, s, c, dport, sport, ss, cs, SYN | ACK, &[]);
        ss = ss.wrapping_add(1);
        let mut now = t + rtt + 60;
        self.seg(now, c, s, sport, dport, cs, ss, ACK, &[]);
        let n = turns.len().max(1) as Us;
        let gap = ((duration - 3 * rtt) / n).max(rtt + 2 * MS);
        let mut started = Vec::with_capacity(turns.len());
        for (i, turn) in turns.iter().enumerate() {
            now = (t + rtt + 200 + gap * i as Us).max(now + 200);
            started.push(now);
            now = self.send_message(now, (c, sport), (s, dport), &mut cs, ss, &turn.request, 30);
            now += rtt / 2 + 300;
            if turn.reply.is_empty() {
                self.seg(now, s, c, dport, sport, ss, cs, ACK, &[]);
                continue;
            }
            now = self.send_message(now, (s, dport), (c, sport), &mut ss, cs, &turn.reply, 25);
            now += rtt / 2 + 40;
            self.seg(now, c, s, sport, dport, cs, ss, ACK, &[]);
        }
        let end = (t + duration).max(now + 500);
        self.seg(end, c, s, sport, dport, cs, ss, FIN | ACK, &[]);
        cs = cs.wrapping_add(1);
        self.seg(end + rtt, s, c, dport, sport, ss, cs, FIN | ACK, &[]);
        ss = ss.wrapping_add(1);
        self.seg(end + rtt + 50, c, s, sport, dport, cs, ss, ACK, &[]);
        Timeline {
            turns: started,
            end: end + rtt + 50,
        }
    }

    /// Sends `msg` from `from` to `to` in segments of at most 1460 bytes, `spacing` µs
    /// apart, PSH on the last; advances the sender's sequence number `seq`. Returns the
    /// time after the last segment.
    #[allow(clippy::too_many_arguments)]
    fn send_message(
        &mut self,
        mut now: Us,
        from: (Ip, u16),
        to: (Ip, u16),
        seq: &mut u32,
        ack: u32,
        msg: &[u8],
        spacing: Us,
    ) -> Us {
        for (k, chunk) in msg.chunks(1460).enumerate() {
            let last = (k + 1) * 1460 >= msg.len();
            let flags = ACK | if last { PSH } else { 0 };
            self.seg(now, from.0, to.0, from.1, to.1, *seq, ack, flags, chunk);
            *seq = seq.wrapping_add(chunk.len() as u32);
            now += spacing;
        }
        now
    }

    /// SYN answered by RST-ACK (closed port).
    fn reject(&mut self, t: Us, conn: Conn) {
        let (c, s, dport) = (conn.client, conn.server, conn.port);
        let sport = self.port();
        self.open_tcp(conn, sport);
        let isn = self.rng.next() as u32;
        self.seg(t, c, s, sport, dport, isn, 0, SYN, &[]);
        self.seg(
            t + Tx::rtt(c, s),
            s,
            c,
            dport,
            sport,
            0,
            isn.wrapping_add(1),
            RST | ACK,
            &[],
        );
    }

    /// SYN (and `retries` retransmissions) that nobody answers.
    fn silent(&mut self, t: Us, conn: Conn, retries: u32) {
        let (c, s, dport) = (conn.client, conn.server, conn.port);
        let sport = self.port();
        self.open_tcp(conn, sport);
        let isn = self.rng.next() as u32;
        for k in 0..=retries {
            self.seg(t + Us::from(k) * SEC, c, s, sport, dport, isn, 0, SYN, &[]);
        }
    }

    /// A lookup through the resolver: client query, optionally the resolver's upstream
    /// query and its answer, the answer to the client (NXDOMAIN without `answer`). Both
    /// exchanges are flows labelled `label`. Returns when the client has its answer.
    fn dns(
        &mut self,
        t: Us,
        client: Ip,
        forward: bool,
        qname: &str,
        answer: Option<Ip>,
        label: FlowLabel,
    ) -> Us {
        let sport = self.port();
        let id = self.rng.next() as u16;
        let answers: Vec<Ip> = answer.into_iter().collect();
        let rcode = if answer.is_some() { 0 } else { 3 };
        let lookup = self.open_flow(17, (client, sport), (RESOLVER, 53), label);
        self.udp(
            t,
            client,
            RESOLVER,
            sport,
            53,
            &dns_message(id, false, 0, qname, 1, &[], 0),
        );
        let mut now = t + Tx::rtt(client, RESOLVER) / 2 + 150;
        if forward {
            let up_port = self.port();
            let up_id = self.rng.next() as u16;
            self.open_flow(17, (RESOLVER, up_port), (UPSTREAM_DNS, 53), label);
            self.udp(
                now,
                RESOLVER,
                UPSTREAM_DNS,
                up_port,
                53,
                &dns_message(up_id, false, 0, qname, 1, &[], 0),
            );
            now += Tx::rtt(RESOLVER, UPSTREAM_DNS) + self.rng.irange(0, 20 * MS);
            self.udp(
                now,
                UPSTREAM_DNS,
                RESOLVER,
                53,
                up_port,
                &dns_message(up_id, true, rcode, qname, 1, &answers, 300),
            );
            now += 120;
        }
        self.flow = lookup;
        self.udp(
            now,
            RESOLVER,
            client,
            53,
            sport,
            &dns_message(id, true, rcode, qname, 1, &answers, 300),
        );
        now + Tx::rtt(client, RESOLVER) / 2
    }
}

// ---------------------------------------------------------------------------------------
// The network.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Port {
    /// Open and exploitable (EternalBlue; for SMB only).
    Vulnerable,
    Open,
    Closed,
    Filtered,
}

#[derive(Clone, Copy, Debug)]
struct HostInfo {
    /// 445, 3389, 1433.
    ports: [Port; 3],
    /// Weak password on the service of the same index.
    weak: [bool; 3],
}

const SVC_PORTS: [u16; 3] = [445, 3389, 1433];

fn svc_index(port: u16) -> Option<usize> {
    SVC_PORTS.iter().position(|&p| p == port)
}

fn lan(last: u8) -> Ip {
    [LAN[0], LAN[1], LAN[2], last]
}

fn pcs() -> impl Iterator<Item = Ip> {
    (FIRST_PC..FIRST_PC + N_PCS).map(lan)
}

fn build_net(rng: &mut Rng, vulnerable_pm: u64, open_pm: u64) -> BTreeMap<Ip, HostInfo> {
    use Port::*;
    // Infrastructure and servers: fixed services, no weak password.
    let strong = |ports| HostInfo {
        ports,
        weak: [false; 3],
    };
    let mut net = BTreeMap::new();
    for (ip, ports) in [
        (ROUTER, [Filtered; 3]),
        (RESOLVER, [Closed; 3]),
        (NAT_GW, [Filtered; 3]),
        (FILE_SERVER, [Open, Open, Closed]),
        (BACKUP, [Open, Open, Closed]),
        (APP_SERVER, [Open, Open, Closed]),
        (lan(20), [Open, Open, Closed]),
        (lan(21), [Open, Open, Closed]),
        (lan(22), [Open, Open, Closed]),
        (lan(23), [Open, Open, Closed]),
        (SQL_SERVER, [Open; 3]),
        (ADMIN, [Filtered; 3]),
        (VULN_SCANNER, [Filtered; 3]),
    ] {
        net.insert(ip, strong(ports));
    }
    for ip in pcs() {
        let r = rng.below(1000);
        let smb = if r < vulnerable_pm {
            Vulnerable
        } else if r < vulnerable_pm + open_pm {
            Open
        } else if r < vulnerable_pm + open_pm + 150 {
            Closed
        } else {
            Filtered
        };
        let rdp = if rng.chance(150) { Open } else { Filtered };
        let sql = if rng.chance(80) { Open } else { Filtered };
        let weak = [rng.chance(300), rng.chance(500), rng.chance(500)];
        net.insert(
            ip,
            HostInfo {
                ports: [smb, rdp, sql],
                weak,
            },
        );
    }
    net
}

// ---------------------------------------------------------------------------------------
// The worm simulation.

#[derive(Clone, Copy)]
struct Style {
    cnc: bool,
    killswitch: bool,
    block_445: bool,
    /// Random LAN addresses probed (None: every address, in random order).
    lan_targets: Option<(u64, u64)>,
    gap: (Us, Us),
    /// Also probe 3389/1433 of a live host that did not fall to 445, per mille.
    extra_ports_pm: u64,
    /// Start a brute-force campaign on an open RDP/MSSQL/SMB port found, per mille.
    brute_pm: u64,
    /// Send EternalBlue to a patched SMB host without probing first, per mille (the
    /// others are probed, found patched and left alone).
    blind_exploit_pm: u64,
    honeypot_pm: u64,
    dc_pm: u64,
    /// Random external addresses probed after the LAN.
    external: u64,
    /// Successful contacts to known servers mixed in, one per this many probes.
    mix_servers: Option<u64>,
    /// Delay from compromise to first behaviour, seconds.
    delay: (Us, Us),
    /// Delay from the C&C download to the first scan, seconds.
    scan_after: (Us, Us),
}

enum Ev {
    Infect {
        host: Ip,
        parent: Option<Ip>,
        vector: &'static str,
    },
    Probe {
        src: Ip,
        dst: Ip,
        port: u16,
        follow: bool,
    },
    Brute {
        src: Ip,
        dst: Ip,
        svc: usize,
    },
}

struct Sim {
    rng: Rng,
    tx: Tx,
    net: BTreeMap<Ip, HostInfo>,
    style: Style,
    events: BinaryHeap<Reverse<(Us, u64)>>,
    pending: BTreeMap<u64, Ev>,
    n_ev: u64,
    infected: BTreeMap<Ip, InfectedHost>,
    order: Vec<Ip>,
    touched: BTreeSet<Ip>,
}

fn vector_of(svc: usize, brute: bool) -> &'static str {
    match (svc, brute) {
        (0, false) => "eternalblue_smb",
        (0, true) => "smb_bruteforce",
        (1, _) => "rdp_bruteforce",
        _ => "mssql_bruteforce",
    }
}

impl Sim {
    fn schedule(&mut self, t: Us, ev: Ev) {
        self.n_ev += 1;
        self.events.push(Reverse((t, self.n_ev)));
        self.pending.insert(self.n_ev, ev);
    }

    fn blocked(&self, ip: Ip, t: Us) -> bool {
        self.style.block_445
            && self
                .infected
                .get(&ip)
                .is_some_and(|h| t >= h.compromised_at + SEC)
    }

    fn run(&mut self) {
        while let Some(Reverse((t, id))) = self.events.pop() {
            let ev = self.pending.remove(&id).expect("event");
            match ev {
                Ev::Infect {
                    host,
                    parent,
                    vector,
                } => self.infect(t, host, parent, vector),
                Ev::Probe {
                    src,
                    dst,
                    port,
                    follow,
                } => self.probe(t, src, dst, port, follow),
                Ev::Brute { src, dst, svc } => self.brute(t, src, dst, svc),
            }
        }
    }

    fn infect(&mut self, t: Us, host: Ip, parent: Option<Ip>, vector: &'static str) {
        if self.infected.contains_key(&host) {
            return;
        }
        let generation = parent
            .and_then(|p| self.infected.get(&p))
            .map_or(0, |p| p.generation + 1);
        let st = self.style;
        let mut now = t + self.rng.irange(st.delay.0 * SEC, st.delay.1 * SEC);
        let mut first_cnc = None;
        if st.cnc {
            first_cnc = Some(now);
            for (name, addr) in CNC {
                let answered = self
                    .tx
                    .dns(now, host, true, name, Some(addr), FlowLabel::Cnc);
                now = answered + self.rng.irange(300 * MS, 2 * SEC);
            }
            // The payload download from the C&C address.
            let download = Conn::new(host, CNC[1].1, 80, FlowLabel::Cnc);
            let end = self.tx.session(now, download, &[(200, 6000)], 2 * SEC);
            // The scanner module is fetched and started later.
            now = end
                + self
                    .rng
                    .irange(st.scan_after.0 * SEC, st.scan_after.1 * SEC);
        }
        if st.killswitch {
            let answered = self
                .tx
                .dns(now, host, true, KILLSWITCH, None, FlowLabel::Cnc);
            now = answered + self.rng.irange(50 * MS, 300 * MS);
        }
        let first_scan = now;
        self.infected.insert(
            host,
            InfectedHost {
                ip: host,
                infected_at: first_cnc.unwrap_or(first_scan).min(first_scan),
                compromised_at: t,
                parent,
                vector,
                first_scan_at: Some(first_scan),
                first_cnc_at: first_cnc,
                generation,
            },
        );
        self.order.push(host);
        // The probe list.
        let mut targets: Vec<Ip> = (3..=254u8).map(lan).filter(|&a| a != host).collect();
        self.rng.shuffle(&mut targets);
        if let Some((lo, hi)) = st.lan_targets {
            targets.truncate(self.rng.range(lo, hi) as usize);
        }
        if self.rng.chance(st.honeypot_pm) {
            let at = self.rng.below(targets.len() as u64 + 1) as usize;
            targets.insert(at, HONEYPOT);
        }
        if self.rng.chance(st.dc_pm) {
            for _ in 0..self.rng.range(4, 8) {
                let at = self.rng.below(targets.len() as u64 + 1) as usize;
                targets.insert(at, [10, 210, 0, self.rng.range(1, 254) as u8]);
            }
        }
        let servers = [FILE_SERVER, lan(20), lan(21), lan(22), lan(23)];
        let mut k = 0u64;
        for (i, dst) in targets.into_iter().enumerate() {
            if let Some(every) = st.mix_servers {
                if i as u64 % every == every - 1 {
                    let s = servers[(k % servers.len() as u64) as usize];
                    k += 1;
                    let turns = smb::file_session(
                        s,
                        "share",
                        &user_account(host),
                        &[(300, 500), (600, 3000)],
                        &mut self.rng,
                    );
                    let conn = Conn::new(host, s, 445, FlowLabel::ScanProbe);
                    let end = self.tx.converse(now, conn, &turns, 3 * SEC).end;
                    now = end + self.rng.irange(st.gap.0, st.gap.1);
                }
            }
            self.schedule(
                now,
                Ev::Probe {
                    src: host,
                    dst,
                    port: 445,
                    follow: true,
                },
            );
            now += self.rng.irange(st.gap.0, st.gap.1);
        }
        for _ in 0..st.external {
            let dst = loop {
                let r = self.rng.next();
                let a = [
                    (r >> 8) as u8,
                    (r >> 16) as u8,
                    (r >> 24) as u8,
                    (r >> 32) as u8,
                ];
                if !matches!(a[0], 0 | 10 | 127 | 172 | 192 | 224..=255) {
                    break a;
                }
            };
            self.schedule(
                now,
                Ev::Probe {
                    src: host,
                    dst,
                    port: 445,
                    follow: false,
                },
            );
            now += self.rng.irange(st.gap.0, st.gap.1);
        }
    }

    fn probe(&mut self, t: Us, src: Ip, dst: Ip, port: u16, follow: bool) {
        let svc = svc_index(port).expect("worm port");
        let probe = Conn::new(src, dst, port, FlowLabel::ScanProbe);
        if dst == HONEYPOT {
            let turns = self.first_look(svc);
            self.tx.converse(t, probe, &turns, 600 * MS);
            self.touched.insert(dst);
            return;
        }
        if !in_lan(dst) {
            // Routed: a data centre behind a firewall that drops, or the internet.
            if dst[0] != 10 && self.rng.chance(30) {
                self.tx.reject(t, probe);
            } else {
                self.tx.silent(t, probe, if dst[0] == 10 { 1 } else { 0 });
            }
            return;
        }
        let Some(info) = self.net.get(&dst).copied() else {
            // Dead local address: ARP who-has, unanswered, no SYN on the wire.
            self.tx.arp_who_has(t, src, dst);
            self.tx.arp_who_has(t + SEC, src, dst);
            return;
        };
        let state = if svc == 0 && self.blocked(dst, t) {
            Port::Filtered
        } else {
            info.ports[svc]
        };
        let mut fell = false;
        match state {
            Port::Filtered => self.tx.silent(t, probe, 1),
            Port::Closed => self.tx.reject(t, probe),
            Port::Vulnerable if svc == 0 => {
                self.touched.insert(dst);
                fell = self.ms17_010(t, src, dst);
            }
            Port::Vulnerable | Port::Open => {
                // Open but patched: the session completes, the exploit fails.
                self.touched.insert(dst);
                if svc == 0 {
                    self.patched_smb(t, src, dst);
                } else {
                    let turns = self.first_look(svc);
                    self.tx.converse(t, probe, &turns, SEC / 2);
                }
                if self.rng.chance(self.style.brute_pm) {
                    let at = t + self.rng.irange(2 * SEC, 10 * SEC);
                    self.schedule(at, Ev::Brute { src, dst, svc });
                    return;
                }
            }
        }
        if follow && !fell && self.rng.chance(self.style.extra_ports_pm) {
            let next = if self.rng.chance(500) { 3389 } else { 1433 };
            let gap = self.rng.irange(30 * MS, 200 * MS);
            self.schedule(
                t + gap,
                Ev::Probe {
                    src,
                    dst,
                    port: next,
                    follow: false,
                },
            );
        }
    }

    /// What a worm sends an open service it is not exploiting: the SMB negotiation, the
    /// RDP connection request (then TLS), the TDS PRELOGIN.
    fn first_look(&mut self, svc: usize) -> Vec<Turn> {
        match svc {
            0 => smb::negotiate_only(),
            1 => app_turns(App::Rdp, &[(20, 20), (300, 1100)], self.rng.next() as u32),
            _ => tds::probe(),
        }
    }

    /// EternalBlue against a vulnerable host, or only the DoublePulsar check when its
    /// implant is already there. Returns whether the host falls now.
    fn ms17_010(&mut self, t: Us, src: Ip, dst: Ip) -> bool {
        if self.infected.contains_key(&dst) {
            let turns = smb::ms17_010_session(Ms17::ImplantCheck, dst, &mut self.rng);
            let check = Conn::new(src, dst, 445, FlowLabel::ImplantPing);
            self.tx.converse(t, check, &turns, SEC);
            return false;
        }
        let turns = smb::ms17_010_session(Ms17::Infect, dst, &mut self.rng);
        let exploit = Conn::new(src, dst, 445, FlowLabel::Exploit);
        let len = 2 * SEC + self.rng.irange(0, SEC);
        let timeline = self.tx.converse(t, exploit, &turns, len);
        // The host falls with the payload upload, the session's last turn.
        let delivered = *timeline.turns.last().expect("an exploit session has turns");
        self.schedule(
            delivered,
            Ev::Infect {
                host: dst,
                parent: Some(src),
                vector: vector_of(0, false),
            },
        );
        true
    }

    /// A patched SMB host: the worm's probe says so, or an exploit sent without probing
    /// finds no implant afterwards.
    fn patched_smb(&mut self, t: Us, src: Ip, dst: Ip) {
        let (kind, label, len) = if self.rng.chance(self.style.blind_exploit_pm) {
            (Ms17::BlindExploit, FlowLabel::Exploit, SEC)
        } else {
            (
                Ms17::Probe { vulnerable: false },
                FlowLabel::ScanProbe,
                SEC / 2,
            )
        };
        let turns = smb::ms17_010_session(kind, dst, &mut self.rng);
        self.tx
            .converse(t, Conn::new(src, dst, 445, label), &turns, len);
    }

    fn brute(&mut self, t: Us, src: Ip, dst: Ip, svc: usize) {
        let conn = Conn::new(src, dst, SVC_PORTS[svc], FlowLabel::BruteForceAttempt);
        let info = self.net.get(&dst).copied();
        let attempts = self.rng.range(12, 18);
        let mut now = t;
        for _ in 0..attempts {
            if svc == 0 && self.blocked(dst, now) {
                self.tx.silent(now, conn, 1);
            } else {
                let turns = self.wrong_passwords(src, dst, svc);
                let len = self.rng.irange(800 * MS, 2 * SEC);
                self.tx.converse(now, conn, &turns, len);
            }
            now += self.rng.irange(6 * SEC, 14 * SEC);
        }
        self.touched.insert(dst);
        let weak = info.is_some_and(|h| h.weak[svc] && h.ports[svc] != Port::Closed);
        if weak && !(svc == 0 && self.blocked(dst, now)) {
            // The password worked: a long session that drops the payload, which runs
            // a little later.
            let (turns, drop) = self.right_password(src, dst, svc);
            let len = self.rng.irange(60 * SEC, 120 * SEC);
            let timeline = self.tx.converse(now, conn, &turns, len);
            let run_at = timeline.turns[drop] + self.rng.irange(10 * SEC, 20 * SEC);
            self.schedule(
                run_at,
                Ev::Infect {
                    host: dst,
                    parent: Some(src),
                    vector: vector_of(svc, true),
                },
            );
        }
    }

    /// One session of wrong guesses: one to three SMB logins, one MSSQL login, or an
    /// RDP connection (whose login TLS hides).
    fn wrong_passwords(&mut self, src: Ip, dst: Ip, svc: usize) -> Vec<Turn> {
        let salt = self.rng.next() as u32;
        match svc {
            0 => {
                let guesses: Vec<Guess<'_>> = (0..self.rng.range(1, 3))
                    .map(|_| Guess {
                        user: self.guessed_account(),
                        accepted: false,
                    })
                    .collect();
                smb::password_guesses(dst, &host_name(src), &guesses, 0, &mut self.rng)
            }
            1 => app_turns(App::Rdp, &[(20, 20), (500, 1400), (300, 60)], salt),
            _ => {
                let password = self.guessed_password();
                mssql_login(src, dst, password, false, &[], salt)
            }
        }
    }

    /// The session whose password works, and what the worm does with it: writes its
    /// payload to `ADMIN$` (after one more wrong guess), works over RDP, or runs it
    /// through SQL batches; with the index of the turn that drops the payload.
    fn right_password(&mut self, src: Ip, dst: Ip, svc: usize) -> (Vec<Turn>, usize) {
        let salt = self.rng.next() as u32;
        let rounds = payload_rounds();
        match svc {
            0 => {
                let guesses = [
                    Guess {
                        user: self.guessed_account(),
                        accepted: false,
                    },
                    Guess {
                        user: "administrator",
                        accepted: true,
                    },
                ];
                let turns =
                    smb::password_guesses(dst, &host_name(src), &guesses, 9000, &mut self.rng);
                let last_write = turns.len() - 1;
                (turns, last_write)
            }
            1 => (app_turns(App::Rdp, &rounds, salt), DROP_ROUND),
            _ => (
                mssql_login(src, dst, "P@ssw0rd", true, &rounds, salt),
                tds::LOGIN_TURNS + DROP_ROUND,
            ),
        }
    }

    /// An account a password guesser tries (mostly the administrator's).
    fn guessed_account(&mut self) -> &'static str {
        ["administrator", "administrator", "admin", "test"][self.rng.below(4) as usize]
    }

    fn guessed_password(&mut self) -> &'static str {
        [
            "123456", "password", "sa", "1qaz@WSX", "admin123", "sql2019",
        ][self.rng.below(6) as usize]
    }
}

/// The round of a session that drops a worm's payload.
const DROP_ROUND: usize = 2;

/// Eight rounds of (client bytes, server bytes) of a worm at work after logging in, the
/// payload in round [`DROP_ROUND`].
fn payload_rounds() -> Vec<(usize, usize)> {
    (0..8)
        .map(|i| {
            if i == DROP_ROUND {
                (9000, 200)
            } else {
                (400, 900)
            }
        })
        .collect()
}

/// A TDS session from `src` logging in to `dst` as `sa`, as a worm's MSSQL brute force
/// does.
fn mssql_login(
    src: Ip,
    dst: Ip,
    password: &str,
    accepted: bool,
    rounds: &[(usize, usize)],
    salt: u32,
) -> Vec<Turn> {
    let (host, server) = (host_name(src), ip_str(dst));
    let login = tds::Login {
        host: &host,
        user: "sa",
        password,
        app: "",
        server: &server,
        database: "master",
    };
    tds::login_session(&login, accepted, rounds, salt)
}

/// A host's NetBIOS name.
fn host_name(ip: Ip) -> String {
    format!("WKS-{}", ip[3])
}

/// The domain account of the user logged on at `ip`.
fn user_account(ip: Ip) -> Account {
    Account {
        user: format!("user{}", ip[3]),
        domain: "CORP".into(),
        workstation: host_name(ip),
    }
}

// ---------------------------------------------------------------------------------------
// Benign confounders and background.

fn confounders(tx: &mut Tx, rng: &mut Rng, net: &BTreeMap<Ip, HostInfo>) {
    backup_sessions(tx, rng, net);
    admin_rdp(tx, rng);
    application_sql(tx, rng);
    branch_office(tx, rng);
    vulnerability_scan(tx, rng, net);
}

/// Backup server: one long SMB session to each of 40 hosts, four at a time, logged in
/// as its service account.
fn backup_sessions(tx: &mut Tx, rng: &mut Rng, net: &BTreeMap<Ip, HostInfo>) {
    let reachable: Vec<Ip> = net
        .iter()
        .filter(|(ip, h)| matches!(h.ports[0], Port::Open | Port::Vulnerable) && **ip != BACKUP)
        .map(|(&ip, _)| ip)
        .collect();
    let account = Account {
        user: "svc_backup".into(),
        domain: "CORP".into(),
        workstation: "BACKUP01".into(),
    };
    for (i, &ip) in reachable.iter().take(40).enumerate() {
        let t = T0 + 60 * SEC + i as Us * 10 * SEC + rng.irange(0, 2 * SEC);
        let rounds: Vec<(usize, usize)> = (0..6).map(|_| (300, 4000)).collect();
        let turns = smb::file_session(ip, "C$", &account, &rounds, rng);
        let conn = Conn::new(BACKUP, ip, 445, FlowLabel::Benign);
        tx.converse(t, conn, &turns, rng.irange(40 * SEC, 90 * SEC));
    }
}

/// Admin workstation: RDP into the servers.
fn admin_rdp(tx: &mut Tx, rng: &mut Rng) {
    let servers = [
        FILE_SERVER,
        SQL_SERVER,
        APP_SERVER,
        lan(20),
        lan(21),
        lan(22),
        lan(23),
    ];
    for (k, s) in servers.into_iter().enumerate() {
        let t = T0 + 3 * 60 * SEC + k as Us * 5 * 60 * SEC + rng.irange(0, 60 * SEC);
        let rounds: Vec<(usize, usize)> = (0..12).map(|_| (300, 1500)).collect();
        let conn = Conn::new(ADMIN, s, 3389, FlowLabel::Benign);
        tx.session(t, conn, &rounds, rng.irange(120 * SEC, 300 * SEC));
    }
}

/// The application server's database logins: four pooled connections recycled every
/// 10–15 minutes, and a reporting job that opens a short connection per query every
/// 5–15 s (hundreds of successful logins, no failure).
fn application_sql(tx: &mut Tx, rng: &mut Rng) {
    let login = tds::Login {
        host: "APP01",
        user: "app_svc",
        password: "Orders!2024",
        app: "OrdersService",
        server: "SQL01",
        database: "orders",
    };
    let conn = Conn::new(APP_SERVER, SQL_SERVER, 1433, FlowLabel::Benign);
    for _ in 0..4 {
        let mut t = T0 + rng.irange(0, 30 * SEC);
        while t < T0 + SPAN - 60 * SEC {
            let len = rng.irange(600 * SEC, 900 * SEC).min(T0 + SPAN - t);
            let n = (len / (30 * SEC)).max(1) as usize;
            let rounds: Vec<(usize, usize)> = (0..n)
                .map(|_| (rng.range(150, 900) as usize, rng.range(200, 3000) as usize))
                .collect();
            let turns = tds::login_session(&login, true, &rounds, rng.next() as u32);
            tx.converse(t, conn, &turns, len);
            t += len + rng.irange(SEC, 5 * SEC);
        }
    }
    let mut t = T0 + rng.irange(0, 10 * SEC);
    while t < T0 + SPAN - 10 * SEC {
        let rounds: Vec<(usize, usize)> = (0..rng.range(1, 2))
            .map(|_| (rng.range(150, 400) as usize, rng.range(200, 1200) as usize))
            .collect();
        let turns = tds::login_session(&login, true, &rounds, rng.next() as u32);
        tx.converse(t, conn, &turns, rng.irange(200 * MS, 900 * MS));
        t += rng.irange(5 * SEC, 15 * SEC);
    }
}

/// NAT gateway of a branch office: a long SMB session, and web to many servers.
fn branch_office(tx: &mut Tx, rng: &mut Rng) {
    let account = Account {
        user: "branch01".into(),
        domain: "CORP".into(),
        workstation: "BRANCH-GW".into(),
    };
    let rounds = [(300, 8000), (300, 8000), (300, 8000)];
    let turns = smb::file_session(FILE_SERVER, "share", &account, &rounds, rng);
    let smb = Conn::new(NAT_GW, FILE_SERVER, 445, FlowLabel::Benign);
    tx.converse(T0 + 20 * SEC, smb, &turns, 200 * SEC);
    for _ in 0..600 {
        let t = T0 + rng.irange(0, SPAN - 10 * SEC);
        let srv = [151, 101, rng.range(0, 3) as u8, rng.range(1, 200) as u8];
        tx.session(
            t,
            Conn::new(NAT_GW, srv, 80, FlowLabel::Benign),
            &[(200, rng.range(300, 3000) as usize)],
            rng.irange(100 * MS, 800 * MS),
        );
    }
}

/// Authorized vulnerability scanner: many hosts and ports, many failures; on SMB it runs
/// the MS17-010 check, on MSSQL the PRELOGIN.
fn vulnerability_scan(tx: &mut Tx, rng: &mut Rng, net: &BTreeMap<Ip, HostInfo>) {
    let mut t = T0 + 30 * 60 * SEC;
    let mut addrs: Vec<Ip> = (3..=254u8)
        .map(lan)
        .filter(|&a| a != VULN_SCANNER)
        .collect();
    rng.shuffle(&mut addrs);
    for a in addrs.into_iter().take(80) {
        let Some(h) = net.get(&a).copied() else {
            tx.arp_who_has(t, VULN_SCANNER, a);
            t += rng.irange(20 * MS, 60 * MS);
            continue;
        };
        for port in [22u16, 80, 135, 443, 445, 1433, 3389, 8080] {
            let state = match svc_index(port) {
                Some(i) => h.ports[i],
                None if h.ports[0] == Port::Open && (port == 135 || port == 80) => Port::Open,
                None if h.ports[0] == Port::Filtered => Port::Filtered,
                None => Port::Closed,
            };
            let conn = Conn::new(VULN_SCANNER, a, port, FlowLabel::ScanProbe);
            match state {
                Port::Filtered => tx.silent(t, conn, 0),
                Port::Closed => tx.reject(t, conn),
                open => {
                    let turns = match port {
                        445 => {
                            let vulnerable = open == Port::Vulnerable;
                            smb::ms17_010_session(Ms17::Probe { vulnerable }, a, rng)
                        }
                        1433 => tds::probe(),
                        _ => Vec::new(),
                    };
                    let len = if turns.is_empty() { 50 * MS } else { 200 * MS };
                    tx.converse(t, conn, &turns, len);
                }
            }
            t += rng.irange(20 * MS, 60 * MS);
        }
    }
}

/// Background web browsing (DNS through the resolver, then HTTP) starting within
/// `[from, to)`, by `clients` clients.
fn background(tx: &mut Tx, rng: &mut Rng, from: Us, to: Us, clients: u64) {
    // About 12 visits per client over the 45 minutes.
    let expected = 12.0 * clients as f64 * (to - from) as f64 / SPAN as f64;
    let n = expected.floor() as u64 + u64::from(rng.unit() < expected.fract());
    for _ in 0..n {
        let t = from + rng.irange(0, to - from - 1);
        let i = rng.below(clients);
        let client = if i < u64::from(N_PCS) {
            lan(FIRST_PC + i as u8)
        } else {
            let j = i - u64::from(N_PCS);
            [10, 165 + (j >> 16) as u8, (j >> 8) as u8, j as u8]
        };
        let site = rng.below(400) as u32;
        let server = [93, 184, (site >> 8) as u8 + 1, site as u8];
        let name = format!("www{}.site{}.com", site % 7, site);
        let forward = rng.chance(300);
        let answered = tx.dns(t, client, forward, &name, Some(server), FlowLabel::Benign);
        let rounds: Vec<(usize, usize)> = (0..rng.range(1, 3))
            .map(|_| (200, rng.range(200, 2500) as usize))
            .collect();
        tx.session(
            answered + rng.irange(MS, 20 * MS),
            Conn::new(client, server, 80, FlowLabel::Benign),
            &rounds,
            rng.irange(150 * MS, 1500 * MS),
        );
    }
}

/// Generates the scenario into `w` (a pcap) and returns the ground truth.
pub fn generate<W: Write>(cfg: &SynthConfig, w: W) -> io::Result<Output> {
    generate_labelled(cfg, w, io::sink(), |_, _| {})
}

/// [`generate`], also writing the per-flow labels (`flow_labels.csv`: the
/// [`FLOW_LABELS_HEADER`] line, then one row per flow with a packet in the capture, in
/// the order of its first packet) to `flow_labels`, and handing every frame written, in
/// capture order, to `observe` (capture time in microseconds since the epoch, frame
/// bytes).
pub fn generate_labelled<W: Write, L: Write>(
    cfg: &SynthConfig,
    w: W,
    flow_labels: L,
    observe: impl FnMut(u64, &[u8]),
) -> io::Result<Output> {
    let scale = if cfg.scale.is_finite() && cfg.scale > 0.0 {
        cfg.scale
    } else {
        1.0
    };
    let mut rng = Rng::new(cfg.seed ^ 0x5EED_0000_0000_0000);
    // Workstations: SMB unpatched and reachable, reachable (patched), closed, or
    // filtered by the host firewall (the rest). The DriveLife office is the badly managed
    // one of the incident; the others have the usual filtered workstations.
    let (vulnerable_pm, open_pm) = match cfg.scenario {
        Scenario::Drivelife | Scenario::Benign => (600, 100),
        Scenario::Wannacry => (50, 150),
        Scenario::Stealthy => (60, 150),
    };
    let mut net = build_net(&mut rng, vulnerable_pm, open_pm);
    let mut tx = Tx::new(rng.next());
    let mut crng = Rng::new(rng.next());
    confounders(&mut tx, &mut crng, &net);

    let mut labels = Labels {
        scenario: cfg.scenario.name().into(),
        seed: cfg.seed,
        scale,
        internal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .map(String::from)
            .to_vec(),
        honeypots: vec![HONEYPOT],
        authorized_scanners: vec![VULN_SCANNER],
        benign_heavy_hitters: vec![RESOLVER, NAT_GW, BACKUP, ADMIN, APP_SERVER],
        capture_start: T0 + cfg.capture_start.min(SPAN as u64 / SEC as u64) as Us * SEC,
        ..Labels::default()
    };
    let style = match cfg.scenario {
        Scenario::Drivelife => Some(Style {
            cnc: true,
            killswitch: false,
            block_445: true,
            lan_targets: Some((28, 40)),
            gap: (500 * MS, 3 * SEC),
            extra_ports_pm: 300,
            brute_pm: 250,
            blind_exploit_pm: 300,
            honeypot_pm: 300,
            dc_pm: 300,
            external: 0,
            mix_servers: None,
            delay: (3, 15),
            scan_after: (120, 480),
        }),
        Scenario::Wannacry => Some(Style {
            cnc: false,
            killswitch: true,
            block_445: false,
            lan_targets: None,
            gap: (2 * MS, 5 * MS),
            extra_ports_pm: 0,
            brute_pm: 0,
            blind_exploit_pm: 0,
            honeypot_pm: 0,
            dc_pm: 0,
            external: 1500,
            mix_servers: None,
            delay: (1, 5),
            scan_after: (0, 0),
        }),
        Scenario::Stealthy => Some(Style {
            cnc: false,
            killswitch: false,
            block_445: false,
            lan_targets: Some((40, 50)),
            gap: (20 * SEC, 40 * SEC),
            extra_ports_pm: 0,
            brute_pm: 0,
            blind_exploit_pm: 0,
            honeypot_pm: 0,
            dc_pm: 0,
            external: 0,
            mix_servers: Some(3),
            delay: (30, 120),
            scan_after: (0, 0),
        }),
        Scenario::Benign => None,
    };
    if let Some(style) = style {
        let mut sim = Sim {
            rng: Rng::new(rng.next()),
            tx,
            net: net.clone(),
            style,
            events: BinaryHeap::new(),
            pending: BTreeMap::new(),
            n_ev: 0,
            infected: BTreeMap::new(),
            order: Vec::new(),
            touched: BTreeSet::new(),
        };
        match cfg.scenario {
            Scenario::Drivelife => {
                // The internet brute-forces the exposed RDP of the file server.
                let mut t = T0 + 120 * SEC;
                let guess = Conn::new(
                    EXTERNAL_ATTACKER,
                    FILE_SERVER,
                    3389,
                    FlowLabel::BruteForceAttempt,
                );
                for _ in 0..24 {
                    let len = sim.rng.irange(SEC, 3 * SEC);
                    sim.tx
                        .session(t, guess, &[(20, 20), (500, 1400), (300, 60)], len);
                    t += sim.rng.irange(8 * SEC, 12 * SEC);
                }
                // The password works: the attacker drops its tools in the fourth round.
                const DROP: usize = 3;
                let rounds: Vec<(usize, usize)> = (0..40)
                    .map(|i| {
                        if i == DROP {
                            (12_000, 300)
                        } else {
                            (300, 1200)
                        }
                    })
                    .collect();
                let turns = app_turns(App::Rdp, &rounds, sim.rng.next() as u32);
                let timeline = sim.tx.converse(t, guess, &turns, 13 * 60 * SEC);
                labels.external_attackers.push(EXTERNAL_ATTACKER);
                sim.schedule(
                    timeline.turns[DROP] + 30 * SEC,
                    Ev::Infect {
                        host: FILE_SERVER,
                        parent: Some(EXTERNAL_ATTACKER),
                        vector: "rdp_bruteforce",
                    },
                );
                // Patient zero's own brute-force campaigns: SMB, RDP and MSSQL.
                let pick = |net: &mut BTreeMap<Ip, HostInfo>, svc: usize, skip: &[Ip]| {
                    let ip = pcs().find(|ip| {
                        net[ip].ports[svc] == Port::Open
                            && !net[ip].ports.contains(&Port::Vulnerable)
                            && !skip.contains(ip)
                    })?;
                    let h = net.get_mut(&ip).expect("pc");
                    h.weak[svc] = true;
                    Some(ip)
                };
                let smb = pick(&mut sim.net, 0, &[]);
                let rdp = pick(&mut sim.net, 1, &smb.into_iter().collect::<Vec<_>>());
                sim.net.get_mut(&SQL_SERVER).expect("sql").weak[2] = true;
                net.clone_from(&sim.net);
                let base = t + 5 * 60 * SEC;
                for (k, (dst, svc)) in [(smb, 0), (rdp, 1), (Some(SQL_SERVER), 2)]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(dst) = dst {
                        sim.schedule(
                            base + k as Us * 45 * SEC,
                            Ev::Brute {
                                src: FILE_SERVER,
                                dst,
                                svc,
                            },
                        );
                    }
                }
            }
            Scenario::Wannacry | Scenario::Stealthy => {
                let start = if cfg.scenario == Scenario::Wannacry {
                    10 * 60
                } else {
                    5 * 60
                };
                // Patient zero: a PC that opened the wrong attachment.
                let p0 = pcs()
                    .find(|ip| net[ip].ports[0] == Port::Filtered)
                    .unwrap_or(lan(150));
                sim.schedule(
                    T0 + start * SEC,
                    Ev::Infect {
                        host: p0,
                        parent: None,
                        vector: "initial_access",
                    },
                );
            }
            Scenario::Benign => {}
        }
        sim.run();
        labels.infected = sim
            .order
            .iter()
            .map(|ip| sim.infected[ip].clone())
            .collect();
        labels.infected.sort_by_key(|h| (h.infected_at, h.ip));
        labels.patient_zero = labels
            .infected
            .iter()
            .filter(|h| h.parent.is_none_or(|p| !in_lan(p)))
            .map(|h| h.ip)
            .collect();
        labels.targets_not_infected = sim
            .touched
            .iter()
            .filter(|ip| !sim.infected.contains_key(*ip))
            .copied()
            .collect();
        tx = sim.tx;
    }

    // Merge the fixed part with the background, slice by slice.
    let clients = ((f64::from(N_PCS) * scale).round() as u64).max(1);
    let mut cap = Capture {
        pcap: PcapWriter::new(io::BufWriter::with_capacity(1 << 20, w))?,
        flows: FlowLabelWriter::new(io::BufWriter::new(flow_labels))?,
        start: labels.capture_start,
        observe,
    };
    let slice = 10 * SEC;
    let mut from = T0;
    let mut k = 0u64;
    while from < T0 + SPAN {
        let to = (from + slice).min(T0 + SPAN);
        let mut brng = Rng::new(
            cfg.seed.wrapping_mul(0x100_0000_01B3) ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xB6,
        );
        background(&mut tx, &mut brng, from, to, clients);
        cap.flows.open(tx.opened.drain(..));
        while tx.heap.peek().is_some_and(|p| p.0.ts < to) {
            let Reverse(p) = tx.heap.pop().expect("peeked");
            cap.write(&p)?;
        }
        from = to;
        k += 1;
    }
    while let Some(Reverse(p)) = tx.heap.pop() {
        cap.write(&p)?;
    }
    let (packets, bytes) = (cap.pcap.packets, cap.pcap.bytes);
    cap.pcap.finish()?.flush()?;
    let flow_labels = cap.flows.finish()?;
    Ok(Output {
        labels,
        packets,
        bytes,
        flow_labels,
    })
}

/// Where generated packets go: the pcap (from the capture start on), the observer, and
/// the label row of each flow at its first packet written.
struct Capture<W: Write, L: Write, F: FnMut(u64, &[u8])> {
    pcap: PcapWriter<io::BufWriter<W>>,
    flows: FlowLabelWriter<io::BufWriter<L>>,
    start: Us,
    observe: F,
}

impl<W: Write, L: Write, F: FnMut(u64, &[u8])> Capture<W, L, F> {
    fn write(&mut self, p: &Pkt) -> io::Result<()> {
        if p.ts < self.start {
            return Ok(());
        }
        self.pcap.write(p.ts as u64, &p.data)?;
        (self.observe)(p.ts as u64, &p.data);
        self.flows.packet(p.flow, p.ts)
    }
}
