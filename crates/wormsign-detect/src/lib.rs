//! Worm-propagation detection over finished flows, DNS messages and ARP requests.
//!
//! `wormsign-detect` answers "is a worm moving through this network, who was first, who
//! infected whom". It runs after the flow stage (`wormsign analyze`) or over stored tables
//! (`wormsign detect`), and knows nothing of Arrow or Parquet: the caller converts rows.
//!
//! # Main types
//!
//! - Inputs: [`wormsign_flow::FlowRecord`], [`DnsEvent`], [`ArpEvent`], [`SessionEvent`],
//!   and the rule set [`DetectConfig`] (defaults built in: RFC 1918 + ULA internal
//!   networks, SMB/RDP/MSSQL/SSH services, TRW θ0 0.8 / θ1 0.2 / Pd 0.99 / Pf 0.01, the
//!   DriveLife / Lemon Duck indicator list [`DRIVELIFE_INDICATORS`]).
//! - [`detect`] (or a streaming [`Detector`]) runs every rule and returns a [`Detection`]:
//!   [`Alert`]s (each with a [`Rule`] and an urgency [`Tier`]), propagation [`Edge`]s and
//!   one [`HostRow`] per host of interest with its [`Role`].
//! - [`render_report`] turns a [`Detection`] into the responder's Markdown summary.
//! - [`score`] compares a [`Detection`] with ground-truth [`Labels`] (`labels.json` from
//!   `wormsign synth`): host and edge precision/recall, patient zero, time to detect.
//! - [`DetectConfig::to_toml`] prints the rule set (`wormsign rules`),
//!   [`DetectConfig::from_toml`] reads a rules file over the defaults, and
//!   [`DetectConfig::add_indicators`] adds a user indicator file.
//!
//! # Where things are
//!
//! - `detector.rs`: [`Detector`] and [`FlowFilter`], the loop: which flows any rule can
//!   use, sorted batches of them through every rule, the end of the run.
//! - `rules/`: one module per rule (its state, what it does with each flow or event, the
//!   alerts it raises, its settings section) and `RULES`, the list the detector runs.
//!   Flow rules: `trw`, `failed_contacts`, `scan_fanout`, `brute_force` (flow shapes),
//!   `cnc_ip`, `honeypot`, `exposed_service`; event rules: `arp_sweep`, `cnc_dns`,
//!   `exploit` (with `implant`), `login_brute_force`.
//! - `spill.rs`: [`PendingFlows`], usable flows waiting for the rules: beyond
//!   `max_pending_flows`, sorted runs in temporary files, merged into one stream in time
//!   order at the end (the detector's, and the pipeline's feed before the rules start).
//! - `sources.rs`: scanning sources' first contacts, shared by TRW and failed contacts,
//!   capped by evicting unflagged sources.
//! - `part.rs`: the rules' state split by address into [`Partition`] parts that run side
//!   by side and add up to the one-part detection (each rule's `rules::Key` says which
//!   address it keeps state by).
//! - `propagation.rs`: infection times, parents, generations and host roles.
//! - `timeline.rs`, `zones.rs`, `remediation.rs`, `identity.rs`, `graph.rs`: the
//!   responder's view ([`TimelineEvent`]s, the segmentation check's [`ZoneCheck`]s,
//!   [`remediation`] rows, each host's [`Identity`], the graph as SVG and DOT), with
//!   `lookup.rs`, a detection's alerts, edges and hosts by address.
//! - `suffixes.rs`: [`DomainSuffixes`], the C&C domain indicators, matched against every
//!   DNS message of a run in at most one hash lookup per label of its name, however many
//!   are listed.
//! - `prefixes.rs`: longest-prefix matching of addresses (a zone's networks), one hash
//!   lookup per prefix length in use, however many networks are listed.
//! - `config.rs` and `settings.rs`: the rule set, and how a setting is declared once
//!   (doc, key, default) so that serde both reads and prints it.
//!
//! # Adding a rule
//!
//! A rule is one file in `rules/` and one line in `rules::RULES`. The file holds a
//! `start` function and the rule's state, a type implementing `rules::RuleState`:
//! `observe` sees each usable flow in time order (its worm service, failed or completed
//! state and first-contact facts already worked out), `finish` reads the DNS, ARP or
//! session events the rule needs and raises its alerts into `Findings`; `watch` asks for
//! flows to other addresses or ports, `forget_source` drops per-source state when the
//! source table evicts a source, and `key` says which address the state is kept by (the
//! source unless said otherwise: a part of the detection sees only the flows and events
//! of the addresses it owns, so a rule must not carry state from one address into
//! another's alerts). Settings are a section declared in the same file with
//! `settings!` (doc, key, default, once) and named by one field of [`DetectConfig`]:
//! rules files, `wormsign rules` and `bench-rules --sweep` follow from it. New kinds of
//! alert also need a [`Rule`] variant, the `alerts.rule` vocabulary.
//!
//! # Design decision: sorted batches of usable flows, bounded state
//!
//! The rules are order-dependent (windows, TRW walks), and flow shards finish flows in an
//! order that depends on the thread count. A [`Detector`] therefore drops at once every
//! flow no rule can use (not a worm service, honeypot, C&C address or exposed port),
//! gathers the rest up to [`DetectConfig::max_pending_flows`], sorts them by
//! `(ts_first, first_packet, record)` (unique within a run; flows of different runs
//! detected together are told apart by their addresses and ports) and runs them through
//! the rules. Beyond one batch, each batch is sorted and written to a temporary file, and
//! the batches are merged at the end (an external merge sort, `spill.rs`; the flows held
//! in files counted in [`DetectStats::flows_in_files`]), so every result (alert ids
//! included) is a function of the input set alone, the project's "identical for any
//! `--threads`" invariant, however many flows there are. If no temporary file can be
//! written, up to 16 times the batch are held in memory instead (counted in
//! [`DetectStats::flows_held_without_files`]); only beyond that does a batch go through
//! at once (merged with those written before it), flows of later batches older than its
//! newest counted ([`DetectStats::late_flows`]). State is capped: scanning sources at
//! [`DetectConfig::max_sources`] (the least recently active eighth of the unflagged ones
//! evicted, [`DetectStats::sources_evicted`]), pairs and kept sessions at 64 times that
//! (new ones refused, [`DetectStats::entries_refused`]), and distinct-destination sets
//! exact up to [`DetectConfig::max_tracked`] addresses, then *saturated* (counted in
//! [`DetectStats::cap_hits`]): a HyperLogLog sketch (1 KiB, ±3 %) estimates the distinct
//! count beyond the cap, while first-contact counts become lower bounds; a saturated
//! source has long crossed every threshold. [`detect`] is the one-call form over slices.
//!
//! # Example
//!
//! ```
//! use std::net::IpAddr;
//! use wormsign_detect::{detect, render_report, DetectConfig, Rule};
//! use wormsign_flow::{ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History};
//!
//! // An internal host sends SYNs to 445 on 12 addresses; nobody answers.
//! let scanner: IpAddr = "10.0.0.5".parse().unwrap();
//! let flows: Vec<FlowRecord> = (0..12u8)
//!     .map(|i| FlowRecord {
//!         first_packet: u64::from(i),
//!         ts_first: i64::from(i) * 1_000_000_000,
//!         ts_last: i64::from(i) * 1_000_000_000,
//!         orig_addr: scanner,
//!         orig_port: 40_000 + u16::from(i),
//!         resp_addr: IpAddr::from([10, 0, 1, i]),
//!         resp_port: 445,
//!         has_ports: true,
//!         proto: 6,
//!         vlan: None,
//!         tunnel: None,
//!         orig: DirCounters { packets: 1, ip_bytes: 52, payload_bytes: 0, tcp_flags: 2 },
//!         resp: DirCounters::default(),
//!         conn_state: ConnState::S0,
//!         history: History::default(),
//!         end_reason: EndReason::Idle,
//!         source: FlowSource::Packets,
//!     })
//!     .collect();
//! let d = detect(&DetectConfig::default(), &flows, &[], &[]);
//! assert!(d.alerts_for(scanner, Rule::Trw).next().is_some());
//! assert!(d.is_infected(scanner));
//! assert!(render_report(&d).contains("10.0.0.5"));
//! ```
#![deny(missing_docs)]

mod config;
mod detector;
mod distinct;
mod graph;
mod identity;
mod kept_dns;
mod lookup;
mod model;
mod outcome;
mod part;
mod prefixes;
mod propagation;
mod remediation;
mod report;
mod rules;
mod score;
mod settings;
mod sources;
mod spill;
mod suffixes;
mod timeline;
mod usable;
mod wire;
mod zones;

pub use config::{parse_indicator_list, Cidr, CidrError, DetectConfig, RulesError, Service};
pub use detector::{detect, Detector, FlowFilter};
pub use graph::{render_graph_dot, render_graph_svg};
pub use identity::Identity;
pub use kept_dns::{Keeping, KeptDns};
pub use model::{Alert, Basis, DetectStats, Detection, Edge, HostRow, Role, Rule, Tier};
pub use outcome::{is_completed, is_failed};
pub use part::Partition;
pub use remediation::{remediation, Action, Remediation};
pub use report::{format_ts, render_report, render_report_with};
pub use rules::{
    ArpConfig, BruteForceConfig, CncConfig, ExploitConfig, ScanConfig, TrwConfig,
    DRIVELIFE_INDICATORS,
};
pub use score::{
    median, parse_rfc3339, percentile, score, LabelledHost, Labels, Score, WORM_TCP_PORTS,
};
pub use settings::TimeSpan;
pub use spill::{Drained, PendingFlows};
pub use suffixes::DomainSuffixes;
pub use timeline::{EventKind, TimelineEvent};
pub use usable::{StoredFields, UsableFlow};
pub use wire::{PartFindings, PartFindingsError};
pub use wormsign_decode::{ArpEvent, DnsEvent, NameEvent};
pub use wormsign_inspect::SessionEvent;
pub use zones::{parse_zone, parse_zones_file, CrossingSession, Verdict, ZoneCheck};
