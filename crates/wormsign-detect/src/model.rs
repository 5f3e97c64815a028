//! Inputs besides flows, and every output type.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
// Defined where DNS and ARP are decoded; detection's other inputs and outputs are here.
pub(crate) use wormsign_decode::{ArpEvent, DnsEvent, NameEvent};

use crate::identity::Identity;
use crate::timeline::TimelineEvent;
use crate::zones::ZoneCheck;

/// The rule that raised an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rule {
    /// Many distinct destinations on one worm service within the scan window.
    ScanFanout,
    /// Threshold Random Walk over first-contact outcomes crossed η1.
    Trw,
    /// Several failed first contacts on worm services within the failed-contact window.
    FailedContacts,
    /// Many distinct ARP who-has targets within the ARP window.
    ArpSweep,
    /// Many short completed sessions to one host and service.
    BruteForce,
    /// A DNS query for a C&C domain.
    CncDns,
    /// A flow to a C&C address (listed, or resolved from a C&C name).
    CncIp,
    /// A flow to a honeypot.
    Honeypot,
    /// Completed inbound sessions from outside to an internal RDP/SMB/MSSQL server.
    ExposedService,
    /// MS17-010 exploit or DoublePulsar messages from one host to another (protocol).
    Exploit,
    /// A DoublePulsar implant answered on this host (protocol): it is infected.
    Implant,
}

impl Rule {
    /// Name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ScanFanout => "scan_fanout",
            Rule::Trw => "trw",
            Rule::FailedContacts => "failed_contacts",
            Rule::ArpSweep => "arp_sweep",
            Rule::BruteForce => "brute_force",
            Rule::CncDns => "cnc_dns",
            Rule::CncIp => "cnc_ip",
            Rule::Honeypot => "honeypot",
            Rule::ExposedService => "exposed_service",
            Rule::Exploit => "exploit",
            Rule::Implant => "implant",
        }
    }

    /// Scan evidence (fan-out, TRW, failed contacts, ARP sweep).
    pub fn is_scan(self) -> bool {
        matches!(
            self,
            Rule::ScanFanout | Rule::Trw | Rule::FailedContacts | Rule::ArpSweep
        )
    }

    /// C&C evidence.
    pub fn is_cnc(self) -> bool {
        matches!(self, Rule::CncDns | Rule::CncIp)
    }
}

/// What an alert rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Basis {
    /// What the sessions said: logins and their status, exploit messages, implant replies.
    Protocol,
    /// Flow shapes only (sizes, durations, connection states): the protocol was opaque
    /// (TLS, cut by snaplen, NetFlow) or the rule has no protocol to read (scans, DNS).
    Flow,
}

impl Basis {
    /// Name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Protocol => "protocol",
            Basis::Flow => "flow",
        }
    }
}

/// Urgency of an alert, following the incident's response process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tier {
    /// Act within the hour: active spreading, C&C contact, honeypot contact.
    Hour,
    /// Within the day: exposure, unconfirmed scanning.
    Day,
    /// Within the week: brute force against one host without success.
    Week,
    /// Within the month: hygiene (scanning or brute force by allowlisted hosts).
    Month,
}

impl Tier {
    /// Name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hour => "hour",
            Tier::Day => "day",
            Tier::Week => "week",
            Tier::Month => "month",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `A0001`, `A0002`, … in order of `first_seen_ns` (then rule, source, destination).
    pub id: String,
    /// The rule.
    pub rule: Rule,
    /// Urgency.
    pub tier: Tier,
    /// The host the alert is about (the scanner, the querier, the exposed server).
    pub src: IpAddr,
    /// The other side, when there is one (brute-forced host, C&C address, resolver asked).
    pub dst: Option<IpAddr>,
    /// Service name (`smb`, `rdp`, …), `arp`, `dns`, or `any`.
    pub service: String,
    /// First evidence, ns since the Unix epoch.
    pub first_seen_ns: i64,
    /// Last evidence.
    pub last_seen_ns: i64,
    /// When the rule's threshold was crossed (the detection time).
    pub detected_ns: i64,
    /// Flows, queries or requests counted.
    pub attempts: u64,
    /// Distinct targets (a lower bound when the exact set saturated).
    pub distinct_targets: u64,
    /// Failed share of first contacts / attempts (0 when not applicable).
    pub failed_ratio: f64,
    /// The source is allowlisted.
    pub allowlisted: bool,
    /// Whether this alert is a sign of infection of `src` (worm behaviour by an internal,
    /// non-allowlisted host).
    pub infection_sign: bool,
    /// Short human-readable evidence.
    pub evidence: String,
    /// Whether the evidence is what the protocol said or flow shapes.
    pub basis: Basis,
}

/// One propagation edge: `parent` infected `child`.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// The infecting host (internal infected host, or external attacker).
    pub parent: IpAddr,
    /// The infected host.
    pub child: IpAddr,
    /// The child's infection time: the delivering session (an exploit the implant then
    /// answered, a successful login after guessing) when the protocol shows one, else
    /// the child's first worm behaviour.
    pub infected_at_ns: i64,
    /// `eternalblue_smb`, `smb_bruteforce`, `rdp`, `rdp_bruteforce`, `mssql`, `ssh`, …
    pub vector: String,
    /// What was seen, for the report: "EternalBlue exploit, then the DoublePulsar implant
    /// answered", "212 failed smb logins then success as administrator", or the flow
    /// evidence.
    pub seen: String,
    /// Whether the edge rests on protocol evidence or on flow timing.
    pub basis: Basis,
    /// 0..1.
    pub confidence: f32,
    /// `first_packet` of the parent's sessions to the child that support the edge, the
    /// chosen one (the infecting session) first, then the rest in capture order.
    pub evidence_flows: Vec<u64>,
}

/// What a host was in the outbreak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Infected with no internal parent: a root of the propagation graph.
    PatientZero,
    /// Infected by another internal host.
    Infected,
    /// Attacked (by an infected host or an alerted attacker) but never showed worm
    /// behaviour.
    Target,
    /// Allowlisted and raised alerts.
    ScannerAllowlisted,
    /// Internal server with completed inbound sessions from outside on a risky port.
    Exposed,
    /// External host that infected an internal host.
    ExternalAttacker,
    /// Appears in alerts, nothing of the above.
    Clean,
}

impl Role {
    /// Patient zero or infected.
    pub fn is_infected(self) -> bool {
        matches!(self, Role::PatientZero | Role::Infected)
    }

    /// Name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PatientZero => "patient_zero",
            Role::Infected => "infected",
            Role::Target => "target",
            Role::ScannerAllowlisted => "scanner_allowlisted",
            Role::Exposed => "exposed",
            Role::ExternalAttacker => "external_attacker",
            Role::Clean => "clean",
        }
    }
}

/// One row per host that appears in an alert, an edge or as a target.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRow {
    /// The address.
    pub ip: IpAddr,
    /// Its role.
    pub role: Role,
    /// When the host was first detected as infected: the earliest detection time of its
    /// infection signs (allowlisted hosts: their first alert's detection time). The
    /// infection time itself (first evidence) is the `infected_at_ns` of its edge.
    pub first_malicious_at: Option<i64>,
    /// First C&C alert detection time.
    pub first_cnc_at: Option<i64>,
    /// First scan alert detection time.
    pub first_scan_at: Option<i64>,
    /// Who infected it.
    pub parent: Option<IpAddr>,
    /// Generation in the propagation graph (0 for patient zero), for infected hosts.
    pub generation: Option<u32>,
    /// MAC address, names and users, where the traffic shows them.
    pub identity: Identity,
}

/// Counters about a detection run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectStats {
    /// Flows read.
    pub flows: u64,
    /// DNS events read.
    pub dns_events: u64,
    /// ARP events read.
    pub arp_events: u64,
    /// Session facts read (`sessions.parquet`).
    pub session_events: u64,
    /// Times an exact distinct-destination set was full and an address was not added
    /// (the set is then saturated and its count is a lower bound).
    pub cap_hits: u64,
    /// Sets that saturated.
    pub saturated_sets: u64,
    /// Flows gathered for the rules (the rest could not match any).
    pub flows_used: u64,
    /// Flows that reached the rules after a later flow had: only when no temporary file
    /// could be written and more than 16 times
    /// [`crate::DetectConfig::max_pending_flows`] were pending; 0 means the rules saw
    /// every flow in time order and results do not depend on input order.
    pub late_flows: u64,
    /// Usable flows written to a temporary file beyond
    /// [`crate::DetectConfig::max_pending_flows`] that could not be read back (an I/O
    /// error on the file); 0 unless the disk failed. A part of a distributed detection
    /// counts every flow it was handed, so a flow between two parts' addresses counts
    /// twice.
    pub flows_unread: u64,
    /// Usable flows held in temporary files beyond
    /// [`crate::DetectConfig::max_pending_flows`] when the rules read them (74 bytes
    /// each in `TMPDIR`): while files can be written, every full batch of that many but
    /// the last, so the same for any thread count and input order; after a write fails,
    /// only the batches written before. 0 when all fit in memory. A part of a
    /// distributed detection counts its own, so a flow between two parts' addresses
    /// counts twice.
    pub flows_in_files: u64,
    /// Usable flows held in memory beyond [`crate::DetectConfig::max_pending_flows`]
    /// because no temporary file could be written: up to 16 times that many, or all of
    /// a vector pushed across that limit (a distributed part's flows come as one); beyond,
    /// the flows held go through the rules at once (see [`DetectStats::late_flows`]), and
    /// each time counts. 0 while files can be written. A part of a distributed detection
    /// counts its own, so this depends on the number of parts.
    pub flows_held_without_files: u64,
    /// Unflagged scanning sources evicted to stay within
    /// [`crate::DetectConfig::max_sources`].
    pub sources_evicted: u64,
    /// Flows not tracked because a capped table was full of flagged entries.
    pub entries_refused: u64,
    /// Flows the rules saw whose source shows no connection outcome (sFlow samples,
    /// one-way NetFlow UDP records): never counted as failed or completed.
    pub flows_without_outcome: u64,
    /// Usable flows the rules read while `analyze` still ran, before the input ended: in
    /// time order up to the flow shards' bounds, instead of gathered (and beyond
    /// [`crate::DetectConfig::max_pending_flows`] written to temporary files) until the
    /// end. 0 for `wormsign detect` and whenever every flow fits the cap.
    #[serde(default)]
    pub flows_streamed: u64,
}

impl DetectStats {
    /// Adds the counters of another part of the same run, saturating (a part's counters
    /// may come from another process: see `wire.rs`).
    pub(crate) fn add(&mut self, other: &DetectStats) {
        let DetectStats {
            flows,
            dns_events,
            arp_events,
            session_events,
            cap_hits,
            saturated_sets,
            flows_used,
            late_flows,
            flows_unread,
            flows_in_files,
            flows_held_without_files,
            sources_evicted,
            entries_refused,
            flows_without_outcome,
            flows_streamed,
        } = *other;
        self.flows = self.flows.saturating_add(flows);
        self.dns_events = self.dns_events.saturating_add(dns_events);
        self.arp_events = self.arp_events.saturating_add(arp_events);
        self.session_events = self.session_events.saturating_add(session_events);
        self.cap_hits = self.cap_hits.saturating_add(cap_hits);
        self.saturated_sets = self.saturated_sets.saturating_add(saturated_sets);
        self.flows_used = self.flows_used.saturating_add(flows_used);
        self.late_flows = self.late_flows.saturating_add(late_flows);
        self.flows_unread = self.flows_unread.saturating_add(flows_unread);
        self.flows_in_files = self.flows_in_files.saturating_add(flows_in_files);
        self.flows_held_without_files = self
            .flows_held_without_files
            .saturating_add(flows_held_without_files);
        self.sources_evicted = self.sources_evicted.saturating_add(sources_evicted);
        self.entries_refused = self.entries_refused.saturating_add(entries_refused);
        self.flows_without_outcome = self
            .flows_without_outcome
            .saturating_add(flows_without_outcome);
        self.flows_streamed = self.flows_streamed.saturating_add(flows_streamed);
    }

    /// Adds the counters a detector keeps of its own pending flows (how they reached the
    /// rules), not those its parts keep nor those of the events it was given: what a
    /// part's findings carry besides its parts' counters
    /// ([`crate::Detector::finish_part`]). Every counter is named below, so a new one
    /// has to say which it is.
    pub(crate) fn add_pending(&mut self, own: &DetectStats) {
        let DetectStats {
            late_flows,
            flows_unread,
            flows_in_files,
            flows_held_without_files,
            // The merging detector counts the events and the flows it reads itself.
            flows: _,
            dns_events: _,
            arp_events: _,
            session_events: _,
            // The parts count these (`Ledger`, the rules).
            cap_hits: _,
            saturated_sets: _,
            flows_used: _,
            sources_evicted: _,
            entries_refused: _,
            flows_without_outcome: _,
            // Counted by the feed of `analyze`, which runs no parts elsewhere.
            flows_streamed: _,
        } = *own;
        self.add(&DetectStats {
            late_flows,
            flows_unread,
            flows_in_files,
            flows_held_without_files,
            ..DetectStats::default()
        });
    }
}

/// Everything a detection run finds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detection {
    /// Alerts, sorted by id.
    pub alerts: Vec<Alert>,
    /// Propagation edges, by infection time.
    pub edges: Vec<Edge>,
    /// Hosts, infected first (by infection time), then the others by address.
    pub hosts: Vec<HostRow>,
    /// The incident timeline, by `(ts_ns, kind, host, peer, what)`.
    pub timeline: Vec<TimelineEvent>,
    /// The segmentation check, one per ordered pair of configured zones, in zone-name
    /// order (empty without zones).
    pub zones: Vec<ZoneCheck>,
    /// Counters.
    pub stats: DetectStats,
}

impl Detection {
    /// The row of `ip`, if it has one.
    pub fn host(&self, ip: IpAddr) -> Option<&HostRow> {
        self.hosts.iter().find(|h| h.ip == ip)
    }

    /// Whether `ip` is infected (patient zero included).
    pub fn is_infected(&self, ip: IpAddr) -> bool {
        self.host(ip).is_some_and(|h| h.role.is_infected())
    }

    /// Patient zero(s): infected roots.
    pub fn patient_zeros(&self) -> Vec<IpAddr> {
        self.hosts
            .iter()
            .filter(|h| h.role == Role::PatientZero)
            .map(|h| h.ip)
            .collect()
    }

    /// Alerts about `src` raised by `rule`.
    pub fn alerts_for(&self, src: IpAddr, rule: Rule) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(move |a| a.src == src && a.rule == rule)
    }
}
