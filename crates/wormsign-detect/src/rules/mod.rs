//! The detection rules, one module each, and [`RULES`], the list the detector runs.
//!
//! A rule is a [`RuleState`]: state that grows as the usable flows go by in time order
//! ([`RuleState::observe`]), and the alerts that state adds up to once they have all gone
//! by ([`RuleState::finish`]). Rules over DNS, ARP or session facts read those events
//! in `finish`. Its settings are a section declared beside it with
//! [`crate::settings::settings!`] and named by one field of [`crate::DetectConfig`].

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use wormsign_decode::NameEvent;
use wormsign_inspect::SessionEvent;

use crate::config::{Caps, DetectConfig};
use crate::distinct::CappedSet;
use crate::model::{ArpEvent, DetectStats, DnsEvent};
use crate::sources::Sources;
use crate::usable::UsableFlow;

mod arp_sweep;
mod brute_force;
mod cnc_dns;
mod cnc_ip;
mod counting;
mod exploit;
mod exposed_service;
mod failed_contacts;
mod finding;
mod honeypot;
mod login_brute_force;
mod scan_fanout;
mod session_facts;
mod trw;

pub use arp_sweep::ArpConfig;
pub use brute_force::BruteForceConfig;
pub use cnc_dns::{CncConfig, DRIVELIFE_INDICATORS};
pub use exploit::ExploitConfig;
pub use scan_fanout::ScanConfig;
pub use trw::TrwConfig;

pub(crate) use finding::{number_in_time_order, ratio, EvidenceKey, Finding, Findings};

/// Starts one rule for a run: its empty state, from the rule set and the run's DNS
/// messages (C&C addresses are the answers to C&C names).
pub(crate) type StartRule = for<'a> fn(&'a DetectConfig, &[&'a DnsEvent]) -> BoxedRule<'a>;

/// A rule's state, sendable to the thread that runs its part of the detection.
pub(crate) type BoxedRule<'a> = Box<dyn RuleState + Send + 'a>;

/// The rules the detector runs, in this order. Alerts are numbered in time order
/// afterwards, so the order matters only where a rule reads what an earlier one left in
/// [`Findings`] (the flow-shape `brute_force` stays silent on the pairs whose logins
/// `login_brute_force` saw, so it comes after it) and, in a one-part detection, for the
/// order of deliveries (exploits before logins) the graph breaks exact ties in (the sum
/// of several parts sorts deliveries by their fields instead).
pub(crate) const RULES: &[StartRule] = &[
    exploit::start,
    login_brute_force::start,
    trw::start,
    failed_contacts::start,
    scan_fanout::start,
    brute_force::start,
    cnc_ip::start,
    honeypot::start,
    exposed_service::start,
    arp_sweep::start,
    cnc_dns::start,
];

/// Which address a rule keeps its state by. A partitioned detection gives each part the
/// flows and events of the addresses it owns (see `part.rs`), so a rule's state for one
/// address must never depend on what another address did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// A flow's originator; the client of a session fact, the querier of a DNS message,
    /// the sender of an ARP request.
    Source,
    /// A flow's responder; the server of a session fact, of a DNS message, the target of
    /// an ARP request.
    Responder,
    /// The whole run: the rule observes no flow and finishes once, over every event,
    /// after the parts are merged.
    Run,
}

/// One rule's state over a run.
pub(crate) trait RuleState {
    /// The address its state is kept by (see [`Key`]).
    fn key(&self) -> Key {
        Key::Source
    }

    /// Flows the rule needs besides those to worm services, which the detector would
    /// otherwise drop unread (see [`crate::FlowFilter`]).
    fn watch(&self, _watchlist: &mut Watchlist) {}

    /// One usable flow; flows come in [`UsableFlow::detection_cmp`] order. It may run on
    /// another thread than the part's bookkeeping of the same flows (see `part.rs`), so
    /// all it reads is the flow, its facts and its own state.
    fn observe(&mut self, _flow: &FlowFacts<'_>, _run: &mut Observing<'_>) {}

    /// Forgets `src`, evicted from the scanning sources (see [`Sources`]): a rule that
    /// keeps state per scanning source drops it here.
    fn forget_source(&mut self, _src: IpAddr) {}

    /// C&C addresses resolved while the run goes on, for a detector started before the
    /// run's DNS was complete ([`crate::Detector::watch_resolved`]): a rule that reads
    /// flows to C&C addresses reads those to `resolved` from now on.
    fn learn_resolved(&mut self, _resolved: &[IpAddr]) {}

    /// The run's DNS in full, for a detector started before it was complete
    /// ([`crate::Detector::settle_dns`]): the rule takes from it what its start would
    /// have. False when what it learned before is not all there.
    fn settle_dns(&mut self, _dns: &[&DnsEvent]) -> bool {
        true
    }

    /// The alerts (and what the graph and later rules need) once every flow went by.
    fn finish(self: Box<Self>, events: &Events<'_>, run: &mut RunState<'_>, found: &mut Findings);
}

/// Flows that are no worm service's but that some rule reads.
#[derive(Clone, Default)]
pub(crate) struct Watchlist {
    /// Responder addresses (honeypots, C&C addresses).
    pub addresses: HashSet<IpAddr>,
    /// Responder ports, any IP protocol (exposed services).
    pub ports: HashSet<u16>,
}

/// The run's events besides flows, each list sorted.
#[derive(Default)]
pub(crate) struct Events<'a> {
    pub dns: Vec<&'a DnsEvent>,
    pub arp: Vec<&'a ArpEvent>,
    pub sessions: Vec<&'a SessionEvent>,
    pub names: Vec<&'a NameEvent>,
}

/// `events` in order, by reference.
pub(crate) fn sorted<T: Ord>(events: &[T]) -> Vec<&T> {
    let mut sorted: Vec<&T> = events.iter().collect();
    sorted.sort();
    sorted
}

impl<'a> Events<'a> {
    /// The events of a run, each list sorted.
    pub fn sorted(
        dns: &'a [DnsEvent],
        arp: &'a [ArpEvent],
        sessions: &'a [SessionEvent],
        names: &'a [NameEvent],
    ) -> Self {
        Events {
            dns: sorted(dns),
            arp: sorted(arp),
            sessions: sorted(sessions),
            names: sorted(names),
        }
    }

    /// The events whose address on the `key` side `owns` keeps: the client of a DNS
    /// message or session fact and the sender of an ARP packet for [`Key::Source`], the
    /// server or target for [`Key::Responder`]. Naming facts (which no rule reads) are
    /// left out.
    pub fn owned(&self, key: Key, owns: impl Fn(IpAddr) -> bool) -> Events<'a> {
        let side = |source: IpAddr, responder: IpAddr| {
            owns(if key == Key::Responder {
                responder
            } else {
                source
            })
        };
        Events {
            dns: self
                .dns
                .iter()
                .copied()
                .filter(|e| side(e.client, e.server))
                .collect(),
            arp: (self.arp.iter().copied())
                .filter(|e| side(IpAddr::V4(e.sender), IpAddr::V4(e.target)))
                .collect(),
            sessions: (self.sessions.iter().copied())
                .filter(|e| side(e.client, e.server))
                .collect(),
            names: Vec::new(),
        }
    }
}

/// What a rule's [`RuleState::observe`] shares with the others: the caps, the counters,
/// and the scanning sources it flagged (the part marks them in its table, where they
/// are never evicted).
pub(crate) struct Observing<'r> {
    pub caps: Caps,
    pub stats: &'r mut DetectStats,
    pub flagged: &'r mut Vec<IpAddr>,
}

impl Observing<'_> {
    /// The state of a pair (or any other key) in `table`, created if the pair cap leaves
    /// room for one more; `None` (counted) when the table is full.
    pub fn pair_entry<'m, K, V>(
        &mut self,
        table: &'m mut HashMap<K, V>,
        key: K,
    ) -> Option<&'m mut V>
    where
        K: std::hash::Hash + Eq,
        V: Default,
    {
        if !table.contains_key(&key) && table.len() >= self.caps.pairs {
            self.stats.entries_refused += 1;
            return None;
        }
        Some(table.entry(key).or_default())
    }

    /// Adds `ip` to a distinct-address set (see [`CappedSet::insert`]).
    pub fn insert_distinct(&mut self, set: &mut CappedSet, ip: IpAddr) -> Option<bool> {
        set.insert(ip, self.caps.exact_set, self.stats)
    }

    /// Marks the scanning source `src` as flagged by a rule: it stays until the end of
    /// the run.
    pub fn flag(&mut self, src: IpAddr) {
        self.flagged.push(src);
    }
}

/// What a rule's [`RuleState::finish`] reads besides the events: the caps, the counters,
/// and the scanning sources as the flows left them.
pub(crate) struct RunState<'r> {
    pub caps: Caps,
    pub stats: &'r mut DetectStats,
    pub sources: &'r Sources,
}

/// One usable flow with what several rules would otherwise each work out again.
pub(crate) struct FlowFacts<'f> {
    pub flow: &'f UsableFlow,
    /// The worm service it went to (an index into [`DetectConfig::services`]).
    pub service: Option<usize>,
    /// A worm-service contact by a source the scanning-source table holds.
    pub contact: Option<Contact>,
}

/// A worm-service flow of a tracked scanning source.
#[derive(Clone, Copy)]
pub(crate) struct Contact {
    /// The worm service.
    pub service: usize,
    /// The source's first contact with this destination (the unit TRW and failed
    /// contacts count; `false` as well when the source's set is saturated and cannot
    /// tell).
    pub is_first: bool,
}
