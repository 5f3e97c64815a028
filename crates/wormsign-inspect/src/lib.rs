//! Protocol facts from the worm services: what SMB, TDS and RDP sessions *say*, not just
//! their shapes.
//!
//! Flow shapes cannot tell a pooled, successful database login from a guessed password,
//! or an EternalBlue exploit from a file copy. Zeek (with the EternalSafety package),
//! Suricata's MS17-010 rules and a honeypot all read the protocol; this crate does the
//! same for the first bytes of each direction of each TCP session on the worm services:
//!
//! * **SMB1/2/3** (445 and 139, direct or over NetBIOS): the negotiated dialect, every
//!   session setup's NT status with the NTLMSSP user, domain and workstation, tree
//!   connects, and the MS17-010 markers: a `TRANS2_SECONDARY` continuing an
//!   `NT_TRANSACT` (EternalBlue's type confusion), `NT_TRANSACT_RENAME` (EternalChampion),
//!   a `WRITE_ANDX` on an open transaction's ids (EternalRomance/Synergy), the
//!   `PeekNamedPipe` on FID 0 that scanners use to test for the bug, and DoublePulsar's
//!   `TRANS2 SESSION_SETUP` with whether the reply says the implant is there. Each
//!   exploit marker is reported once per session, as Zeek's EternalSafety does.
//! * **TDS** (1433): the LOGIN7 user and whether the server answered LOGINACK or an
//!   error (18456: login failed). A PRELOGIN that turns on TLS hides the login.
//! * **RDP** (3389): the X.224 Connection Request's `mstshash` cookie, the security
//!   protocols asked for and the one selected, or the negotiation failure. Everything
//!   after that is TLS or RDP's own encryption, so logins stay invisible.
//!
//! # Main types
//!
//! [`Inspector`] takes TCP [`Segment`]s in capture order (one inspector per flow shard, so
//! both directions of a session meet in one place) and appends [`SessionEvent`]s. Each
//! direction is reassembled in sequence order ([`stream`]) up to
//! [`InspectConfig::max_bytes`] of stream (1 MiB by default: an exploit sends tens of kilobytes before DoublePulsar
//! answers on the same connection); the facts above all sit at
//! the start of a session. Only message headers are kept in memory, at most
//! [`MAX_MESSAGE`] bytes of each message, so a long exploit payload costs no buffer.
//!
//! # Design decisions
//!
//! * Hand-written, bounded parsers that never panic and never loop on any bytes, as in
//!   `wormsign-decode`: every length is checked, every walk has a bound.
//! * The service port decides the client: traffic *to* 445/139/1433/3389 is the
//!   client's. A capture that starts mid-session (no SYN, as the real WannaCry trace)
//!   still yields facts: the SMB reader finds the next message header by its
//!   `\xffSMB`/`\xfeSMB` magic.
//! * State is capped: at most [`InspectConfig::max_streams`] sessions at once (new ones
//!   refused, counted), dropped on RST, after both FINs or when idle.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

mod ntlmssp;
mod rdp;
mod smb;
pub mod stream;
mod tds;

pub use stream::MAX_MESSAGE;

/// An application protocol this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// SMB1, SMB2 or SMB3, over TCP directly or over the NetBIOS session service.
    Smb,
    /// Tabular Data Stream (Microsoft SQL Server).
    Tds,
    /// Remote Desktop Protocol's X.224 connection setup.
    Rdp,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 3] = [Protocol::Smb, Protocol::Tds, Protocol::Rdp];

    /// The protocol named `name` (as [`Protocol::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<Protocol> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The name in `sessions.parquet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Smb => "smb",
            Protocol::Tds => "tds",
            Protocol::Rdp => "rdp",
        }
    }
}

/// What a [`SessionEvent`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// The dialect the server chose (`detail`: `NT LM 0.12`, `SMB 3.1.1`, `TDS 7.4`).
    Dialect,
    /// A login attempt and its result (`user`, `domain`, `workstation`, `status`).
    Login,
    /// An SMB tree connect (`detail`: the share path) and its status.
    TreeConnect,
    /// The MS17-010 vulnerability test: `PeekNamedPipe` on FID 0 (outcome
    /// `vulnerable` for STATUS_INSUFF_SERVER_RESOURCES, else `not_vulnerable`).
    Ms17Probe,
    /// EternalBlue: a `TRANS2_SECONDARY` continuing an unfinished `NT_TRANSACT`.
    EternalBlue,
    /// EternalChampion: `NT_TRANSACT_RENAME`, which no client sends.
    EternalChampion,
    /// EternalRomance/EternalSynergy: a `WRITE_ANDX` that reuses an open transaction's
    /// ids (PID, MID, TID, UID), the type confusion both rest on.
    EternalSynergy,
    /// DoublePulsar: `TRANS2 SESSION_SETUP` (`detail`: `ping` or `exec` when it carries
    /// a payload; outcome `present` when the reply's multiplex id says the implant
    /// answered, `absent` otherwise).
    DoublePulsar,
    /// RDP connection negotiation (`user`: the cookie; `detail`: requested and selected
    /// protocols).
    RdpNegotiation,
    /// Part of the session could not be read: SMB3 encrypted messages (`detail`), TLS,
    /// or bytes that are not the protocol (then nothing more of the session is read).
    Opaque,
}

impl Fact {
    /// Every fact.
    pub const ALL: [Fact; 10] = [
        Fact::Dialect,
        Fact::Login,
        Fact::TreeConnect,
        Fact::Ms17Probe,
        Fact::EternalBlue,
        Fact::EternalChampion,
        Fact::EternalSynergy,
        Fact::DoublePulsar,
        Fact::RdpNegotiation,
        Fact::Opaque,
    ];

    /// The fact named `name` (as [`Fact::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<Fact> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The name in `sessions.parquet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Dialect => "dialect",
            Fact::Login => "login",
            Fact::TreeConnect => "tree_connect",
            Fact::Ms17Probe => "ms17_010_probe",
            Fact::EternalBlue => "eternalblue",
            Fact::EternalChampion => "eternalchampion",
            Fact::EternalSynergy => "eternalsynergy",
            Fact::DoublePulsar => "doublepulsar",
            Fact::RdpNegotiation => "rdp_negotiation",
            Fact::Opaque => "opaque",
        }
    }

    /// Whether the fact is an MS17-010 exploit or DoublePulsar message.
    pub fn is_exploit(self) -> bool {
        self.is_ms17_010_exploit() || self == Fact::DoublePulsar
    }

    /// Whether the fact is one of the MS17-010 exploits themselves (not the backdoor).
    pub fn is_ms17_010_exploit(self) -> bool {
        matches!(
            self,
            Fact::EternalBlue | Fact::EternalChampion | Fact::EternalSynergy
        )
    }
}

/// How a [`SessionEvent`] turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The server accepted (STATUS_SUCCESS, LOGINACK, an RDP protocol selected).
    Success,
    /// The server refused (an error status, TDS ERROR, RDP negotiation failure).
    Failure,
    /// DoublePulsar answered: the implant is there.
    Present,
    /// DoublePulsar did not answer.
    Absent,
    /// MS17-010 probe: the server has the bug.
    Vulnerable,
    /// MS17-010 probe: the server does not have the bug.
    NotVulnerable,
    /// No reply was seen (the capture ended, or the reply fell beyond the inspected bytes).
    Unknown,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Present,
        Outcome::Absent,
        Outcome::Vulnerable,
        Outcome::NotVulnerable,
        Outcome::Unknown,
    ];

    /// The outcome named `name` (as [`Outcome::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<Outcome> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The name in `sessions.parquet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Present => "present",
            Outcome::Absent => "absent",
            Outcome::Vulnerable => "vulnerable",
            Outcome::NotVulnerable => "not_vulnerable",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One protocol fact of one TCP session: a `sessions.parquet` row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionEvent {
    /// Capture time of the packet that completed the fact (usually the server's reply),
    /// ns since the Unix epoch.
    pub ts_ns: i64,
    /// Ordinal of that packet in the input.
    pub packet: u64,
    /// The side that talks to the service port.
    pub client: IpAddr,
    /// The client's port.
    pub client_port: u16,
    /// The side on the service port.
    pub server: IpAddr,
    /// The service port.
    pub server_port: u16,
    /// Which protocol.
    pub protocol: Protocol,
    /// What happened.
    pub fact: Fact,
    /// How it turned out.
    pub outcome: Outcome,
    /// The protocol's own status: an NT status for SMB, an error number for TDS, the
    /// negotiation failure code for RDP.
    pub status: Option<u32>,
    /// The account (NTLMSSP user, TDS login name, RDP cookie).
    pub user: Option<String>,
    /// The NTLMSSP domain.
    pub domain: Option<String>,
    /// The NTLMSSP workstation name.
    pub workstation: Option<String>,
    /// Fact-specific text: dialect, share path, DoublePulsar command, RDP protocols.
    pub detail: Option<String>,
}

/// The name of a well-known `status` of a fact: NT statuses for SMB, login error
/// numbers for TDS, negotiation failure codes for RDP.
pub fn status_name(protocol: Protocol, fact: Fact, status: u32) -> Option<&'static str> {
    match protocol {
        Protocol::Smb => NT_STATUS_NAMES
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, n)| *n),
        Protocol::Tds if fact == Fact::Login => match status {
            18456 => Some("login failed"),
            18452 => Some("untrusted domain"),
            18470 => Some("account disabled"),
            18486 => Some("account locked out"),
            18488 => Some("password must change"),
            4060 => Some("cannot open database"),
            _ => None,
        },
        Protocol::Rdp => match status {
            1 => Some("SSL_REQUIRED_BY_SERVER"),
            2 => Some("SSL_NOT_ALLOWED_BY_SERVER"),
            3 => Some("SSL_CERT_NOT_ON_SERVER"),
            4 => Some("INCONSISTENT_FLAGS"),
            5 => Some("HYBRID_REQUIRED_BY_SERVER"),
            6 => Some("SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"),
            _ => None,
        },
        Protocol::Tds => None,
    }
}

/// NT statuses an SMB server answers logins, tree connects and the MS17-010 markers with.
const NT_STATUS_NAMES: [(u32, &str); 20] = [
    (0x0000_0000, "STATUS_SUCCESS"),
    (0x8000_0005, "STATUS_BUFFER_OVERFLOW"),
    (0xC000_0002, "STATUS_NOT_IMPLEMENTED"),
    (0xC000_0008, "STATUS_INVALID_HANDLE"),
    (0xC000_000D, "STATUS_INVALID_PARAMETER"),
    (0xC000_0016, "STATUS_MORE_PROCESSING_REQUIRED"),
    (0xC000_0022, "STATUS_ACCESS_DENIED"),
    (0xC000_0064, "STATUS_NO_SUCH_USER"),
    (0xC000_006A, "STATUS_WRONG_PASSWORD"),
    (0xC000_006D, "STATUS_LOGON_FAILURE"),
    (0xC000_006E, "STATUS_ACCOUNT_RESTRICTION"),
    (0xC000_0071, "STATUS_PASSWORD_EXPIRED"),
    (0xC000_0072, "STATUS_ACCOUNT_DISABLED"),
    (0xC000_00CC, "STATUS_BAD_NETWORK_NAME"),
    (0xC000_015B, "STATUS_LOGON_TYPE_NOT_GRANTED"),
    (0xC000_0193, "STATUS_ACCOUNT_EXPIRED"),
    (0xC000_0205, "STATUS_INSUFF_SERVER_RESOURCES"),
    (0xC000_0224, "STATUS_PASSWORD_MUST_CHANGE"),
    (0xC000_0234, "STATUS_ACCOUNT_LOCKED_OUT"),
    (0xC000_0203, "STATUS_USER_SESSION_DELETED"),
];

/// Which ports carry which protocol, and the bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectConfig {
    /// TCP ports read as SMB (445 direct, 139 NetBIOS session service).
    pub smb_ports: Vec<u16>,
    /// TCP ports read as TDS.
    pub tds_ports: Vec<u16>,
    /// TCP ports read as RDP.
    pub rdp_ports: Vec<u16>,
    /// Bytes of each direction of a session read at most.
    pub max_bytes: u32,
    /// Sessions inspected at once (per inspector); beyond it new ones are refused.
    pub max_streams: usize,
    /// A session idle this long (capture time) is forgotten.
    pub idle_timeout_ns: i64,
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            smb_ports: vec![445, 139],
            tds_ports: vec![1433],
            rdp_ports: vec![3389],
            max_bytes: 1 << 20,
            max_streams: 65_536,
            idle_timeout_ns: 300_000_000_000,
        }
    }
}

impl InspectConfig {
    /// The protocol on `port`, if it is inspected.
    pub fn protocol_of(&self, port: u16) -> Option<Protocol> {
        if self.smb_ports.contains(&port) {
            Some(Protocol::Smb)
        } else if self.tds_ports.contains(&port) {
            Some(Protocol::Tds)
        } else if self.rdp_ports.contains(&port) {
            Some(Protocol::Rdp)
        } else {
            None
        }
    }
}

/// The inspected ports as a bitmap: whether a packet may be inspected is asked of every
/// TCP packet, so it must not search the port lists.
#[derive(Clone)]
pub struct InspectedPorts(Box<[u64; 1024]>);

impl InspectedPorts {
    /// The ports of `config` (none when `max_bytes` is 0).
    pub fn new(config: &InspectConfig) -> InspectedPorts {
        let mut bits = Box::new([0u64; 1024]);
        let lists = [&config.smb_ports, &config.tds_ports, &config.rdp_ports];
        for &port in lists.into_iter().flatten().filter(|_| config.max_bytes > 0) {
            bits[usize::from(port / 64)] |= 1 << (port % 64);
        }
        InspectedPorts(bits)
    }

    /// Whether a TCP packet between these ports may carry an inspected protocol.
    pub fn wants(&self, src_port: u16, dst_port: u16) -> bool {
        let has = |p: u16| self.0[usize::from(p / 64)] & (1 << (p % 64)) != 0;
        has(dst_port) || has(src_port)
    }
}

impl fmt::Debug for InspectedPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports: Vec<u16> = (0..=u16::MAX).filter(|&p| self.wants(p, p)).collect();
        f.debug_tuple("InspectedPorts").field(&ports).finish()
    }
}

/// Counters for the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InspectStats {
    /// Sessions whose bytes were read.
    pub streams: u64,
    /// Sessions not read because [`InspectConfig::max_streams`] were open.
    pub streams_refused: u64,
    /// Sessions that reached [`InspectConfig::max_bytes`] in a direction.
    pub streams_truncated: u64,
    /// Gaps in a direction's sequence numbers (lost or uncaptured segments).
    pub gaps: u64,
    /// Events emitted.
    pub events: u64,
}

impl InspectStats {
    /// Adds another inspector's counters.
    pub fn merge(&mut self, o: &InspectStats) {
        self.streams += o.streams;
        self.streams_refused += o.streams_refused;
        self.streams_truncated += o.streams_truncated;
        self.gaps += o.gaps;
        self.events += o.events;
    }
}

/// One TCP segment, as [`Inspector::observe`] takes it.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Capture time, ns.
    pub ts_ns: i64,
    /// Ordinal of the packet in the input.
    pub packet: u64,
    /// Sender.
    pub src: IpAddr,
    /// Sender's port.
    pub src_port: u16,
    /// Receiver.
    pub dst: IpAddr,
    /// Receiver's port.
    pub dst_port: u16,
    /// TCP sequence number of the first payload byte.
    pub seq: u32,
    /// TCP flags (FIN 0x01, SYN 0x02, RST 0x04).
    pub flags: u8,
    /// The captured TCP payload.
    pub payload: &'a [u8],
}

/// (client, client port, server, server port).
type StreamKey = (IpAddr, u16, IpAddr, u16);

/// Where a parser puts what it found: the session's endpoints are filled in by the
/// inspector.
pub(crate) struct Found {
    pub fact: Fact,
    pub outcome: Outcome,
    pub status: Option<u32>,
    pub user: Option<String>,
    pub domain: Option<String>,
    pub workstation: Option<String>,
    pub detail: Option<String>,
}

impl Found {
    pub(crate) fn new(fact: Fact, outcome: Outcome) -> Found {
        Found {
            fact,
            outcome,
            status: None,
            user: None,
            domain: None,
            workstation: None,
            detail: None,
        }
    }
}

/// A protocol reader for one session: fed whole messages (or their first
/// [`MAX_MESSAGE`] bytes) of either direction, in order.
pub(crate) trait SessionParser {
    /// Cuts the next message off the front of `buf` (a direction's contiguous bytes):
    /// `Framing::Message(len)` when `buf` starts with a message of `len` bytes (possibly
    /// longer than `buf`), `Skip(n)` to drop `n` bytes of garbage, `NeedMore`.
    fn frame(&self, buf: &[u8], from_client: bool) -> Framing;
    /// Reads one message (`msg` is its first up to [`MAX_MESSAGE`] bytes, `len` its full
    /// length) and appends facts.
    fn message(&mut self, msg: &[u8], len: usize, from_client: bool, out: &mut Vec<Found>);
    /// Facts still pending when the session ends (requests never answered).
    fn finish(&mut self, _out: &mut Vec<Found>) {}
    /// Whether a direction whose first bytes are `first` is clearly another protocol, so
    /// it is not searched for a message boundary.
    fn foreign(&self, _first: &[u8]) -> bool {
        false
    }
    /// Whether the rest of the session can tell nothing more (RDP after the connection
    /// confirm, TDS after the login's answer): its bytes are then not even buffered.
    fn done(&self) -> bool {
        false
    }
}

/// How [`SessionParser::frame`] sees the front of a direction's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A message of this many bytes starts here.
    Message(usize),
    /// Drop this many bytes: not a message boundary (garbage, or a capture that began
    /// mid-message).
    Skip(usize),
    /// Drop this many bytes: a well-formed unit the parser has no use for (a NetBIOS
    /// keepalive or session request).
    Ignore(usize),
    /// Wait for more bytes.
    NeedMore,
    /// Not this protocol: stop reading the session.
    Opaque,
}

struct Session {
    protocol: Protocol,
    parser: Box<dyn SessionParser + Send>,
    dirs: [stream::Direction; 2],
    fins: u8,
    last_ts: i64,
    /// No more bytes are read: the parser is done, or the bytes are not its protocol.
    stopped: bool,
}

/// Reads the worm services' sessions out of TCP segments; see the crate docs.
pub struct Inspector {
    config: InspectConfig,
    sessions: HashMap<StreamKey, Session>,
    stats: InspectStats,
    found: Vec<Found>,
}

impl fmt::Debug for Inspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspector")
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Inspector {
    /// An inspector with `config`.
    pub fn new(config: InspectConfig) -> Inspector {
        Inspector {
            config,
            sessions: HashMap::new(),
            stats: InspectStats::default(),
            found: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &InspectConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> InspectStats {
        self.stats
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Takes one TCP segment of any session (others are ignored) and appends the facts
    /// it completes to `out`.
    pub fn observe(&mut self, seg: &Segment<'_>, out: &mut Vec<SessionEvent>) {
        let (key, from_client, protocol) = match (
            self.config.protocol_of(seg.dst_port),
            self.config.protocol_of(seg.src_port),
        ) {
            (Some(p), _) => ((seg.src, seg.src_port, seg.dst, seg.dst_port), true, p),
            (None, Some(p)) => ((seg.dst, seg.dst_port, seg.src, seg.src_port), false, p),
            (None, None) => return,
        };
        const FIN: u8 = 0x01;
        const RST: u8 = 0x04;
        let full = self.sessions.len() >= self.config.max_streams;
        let session = match self.sessions.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            // A session starts with its first data; a bare SYN, ACK or FIN starts none.
            Entry::Vacant(_) if seg.payload.is_empty() => return,
            Entry::Vacant(_) if full => {
                self.stats.streams_refused += 1;
                return;
            }
            Entry::Vacant(e) => {
                self.stats.streams += 1;
                e.insert(Session::new(protocol))
            }
        };
        session.last_ts = seg.ts_ns;
        if !session.stopped && !seg.payload.is_empty() {
            session.take(
                seg,
                from_client,
                &self.config,
                &mut self.stats,
                &mut self.found,
            );
        }
        let mut done = seg.flags & RST != 0;
        if seg.flags & FIN != 0 {
            session.fins |= if from_client { 1 } else { 2 };
            done |= session.fins == 3;
        }
        if done {
            session.parser.finish(&mut self.found);
        }
        self.emit(key, protocol, seg, out);
        if done {
            self.sessions.remove(&key);
        }
    }

    /// Forgets sessions idle since before `now_ns - idle_timeout`, emitting what they
    /// still held.
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<SessionEvent>) {
        let limit = now_ns.saturating_sub(self.config.idle_timeout_ns);
        let mut idle: Vec<(StreamKey, i64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.last_ts < limit)
            .map(|(k, s)| (*k, s.last_ts))
            .collect();
        // Sorted, so the events come out in the same order whatever the hash seed.
        idle.sort_unstable_by_key(|&(k, ts)| (ts, k));
        for (key, _) in idle {
            self.close(key, out);
        }
    }

    /// Ends every session (at the end of input), emitting what they still held.
    pub fn finish(&mut self, out: &mut Vec<SessionEvent>) {
        let mut keys: Vec<(i64, StreamKey)> =
            self.sessions.iter().map(|(k, s)| (s.last_ts, *k)).collect();
        keys.sort_unstable();
        for (_, key) in keys {
            self.close(key, out);
        }
    }

    fn close(&mut self, key: StreamKey, out: &mut Vec<SessionEvent>) {
        let Some(mut s) = self.sessions.remove(&key) else {
            return;
        };
        s.parser.finish(&mut self.found);
        let seg = Segment {
            ts_ns: s.last_ts,
            packet: s.dirs.iter().map(|d| d.last_packet).max().unwrap_or(0),
            src: key.0,
            src_port: key.1,
            dst: key.2,
            dst_port: key.3,
            seq: 0,
            flags: 0,
            payload: &[],
        };
        self.emit(key, s.protocol, &seg, out);
    }

    fn emit(
        &mut self,
        key: StreamKey,
        protocol: Protocol,
        seg: &Segment<'_>,
        out: &mut Vec<SessionEvent>,
    ) {
        self.stats.events += self.found.len() as u64;
        out.extend(self.found.drain(..).map(|f| SessionEvent {
            ts_ns: seg.ts_ns,
            packet: seg.packet,
            client: key.0,
            client_port: key.1,
            server: key.2,
            server_port: key.3,
            protocol,
            fact: f.fact,
            outcome: f.outcome,
            status: f.status,
            user: f.user,
            domain: f.domain,
            workstation: f.workstation,
            detail: f.detail,
        }));
    }
}

impl Session {
    fn new(protocol: Protocol) -> Session {
        let parser: Box<dyn SessionParser + Send> = match protocol {
            Protocol::Smb => Box::<smb::SmbParser>::default(),
            Protocol::Tds => Box::<tds::TdsParser>::default(),
            Protocol::Rdp => Box::<rdp::RdpParser>::default(),
        };
        Session {
            protocol,
            parser,
            dirs: Default::default(),
            fins: 0,
            last_ts: i64::MIN,
            stopped: false,
        }
    }

    /// Adds a segment's bytes to its direction and reads every message they complete.
    fn take(
        &mut self,
        seg: &Segment<'_>,
        from_client: bool,
        config: &InspectConfig,
        stats: &mut InspectStats,
        found: &mut Vec<Found>,
    ) {
        let dir = &mut self.dirs[usize::from(!from_client)];
        let was_full = dir.full(config.max_bytes);
        dir.last_packet = seg.packet;
        dir.push(seg.seq, seg.payload, config.max_bytes, stats);
        if !was_full && dir.full(config.max_bytes) {
            stats.streams_truncated += 1;
        }
        let opaque = dir.drain_messages(self.parser.as_mut(), from_client, found);
        if opaque {
            found.push(Found::new(Fact::Opaque, Outcome::Unknown));
        }
        if opaque || self.parser.done() {
            self.stopped = true;
            self.dirs = Default::default();
        }
    }
}

/// Reads a little-endian `u16` at `at`, if there.
pub(crate) fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Reads a little-endian `u32` at `at`, if there.
pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a big-endian `u16` at `at`, if there.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// UTF-16LE text (lossy; odd trailing byte dropped; stops at a NUL), at most 256 units.
pub(crate) fn utf16(b: &[u8]) -> String {
    let units = b
        .chunks_exact(2)
        .take(256)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// 8-bit text (lossy; stops at a NUL), at most 256 bytes.
pub(crate) fn ascii(b: &[u8]) -> String {
    let end = b
        .iter()
        .take(256)
        .position(|&c| c == 0)
        .unwrap_or(b.len().min(256));
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// `Some(s)` unless `s` is empty.
pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Feeds whole messages to a parser as the inspector would (each must frame as itself),
/// then ends the session: what the parsers' unit tests read facts from.
#[cfg(test)]
pub(crate) fn parse_messages(
    parser: &mut dyn SessionParser,
    messages: &[(bool, Vec<u8>)],
) -> Vec<Found> {
    let mut out = Vec::new();
    for (from_client, m) in messages {
        assert_eq!(parser.frame(m, *from_client), Framing::Message(m.len()));
        parser.message(m, m.len(), *from_client, &mut out);
    }
    parser.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspected_ports_are_the_configured_ones_and_none_at_zero_bytes() {
        let config = InspectConfig {
            tds_ports: vec![1433, 65535],
            ..InspectConfig::default()
        };
        let ports = InspectedPorts::new(&config);
        for p in [445, 139, 1433, 65535, 3389] {
            assert!(ports.wants(p, 50_000) && ports.wants(50_000, p), "{p}");
        }
        assert!(!ports.wants(0, 80) && !ports.wants(1434, 443));
        let off = InspectedPorts::new(&InspectConfig {
            max_bytes: 0,
            ..config
        });
        assert!(!off.wants(445, 445));
    }
}
