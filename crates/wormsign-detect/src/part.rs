//! Detection in parts: each part holds the state of the addresses a [`Partition`]
//! assigns to it, so the parts can run at once and their findings add up to exactly what
//! one whole detector finds.
//!
//! A rule keeps its state by one address ([`Key`]): per source (TRW walks, fan-out
//! windows, failed contacts, brute-force pairs, contacts to honeypots and C&C addresses,
//! logins, ARP sweeps), per responder (exposed services; exploits and the implant, by
//! their target) or over the whole run (C&C lookups, where a forwarding resolver is told
//! from its clients). A part sees the usable flows whose source or responder it owns,
//! in the same sorted order as a whole detector, and runs the source rules over the
//! flows whose source it owns and the responder rules over those whose responder it
//! owns; at the end each rule reads the events of the addresses the part owns. Since no
//! rule's state for one address depends on another address, each part finds what the whole detector finds about its
//! addresses, and [`Parts::finish`] adds the parts up in an order that does not depend
//! on how the addresses were split (alerts are numbered by time afterwards, kept
//! sessions sorted by time when the graph is drawn, deliveries sorted by their fields). The run-wide rules, the graph and the hosts
//! then run once over the sum ([`crate::Detector::finish`]).
//!
//! Caps (scanning sources, pair tables, kept sessions) are shared out evenly among the
//! parts, so the memory bound is the configured one for any number of parts; a detection
//! in parts equals the one-part detection whenever no part reaches a cap.
//!
//! Within a part, its ledger (what it records of each flow itself: the scanning sources,
//! the sessions kept for the graph, the zone crossings) and its rules can run on two
//! threads, the rules a block of flows behind ([`Part::observe_beside`]): on the scan
//! benchmark the rules took 44 ms after the tables were written, and 30 ms this way.

use std::net::IpAddr;
use std::sync::{mpsc, Arc};
use std::thread;

use rayon::prelude::*;

use crate::config::{Caps, DetectConfig};
use crate::model::DetectStats;
use crate::prefixes::PrefixTable;
use crate::propagation::SessionLog;
use crate::rules::{BoxedRule, Contact, Events, Findings, FlowFacts, Key, Observing, RunState};
use crate::sources::Sources;
use crate::usable::UsableFlow;
use crate::zones::{zone_table, ZoneCrossings};

/// How a detection shares its state out among parts: every address belongs to one part.
#[derive(Clone)]
pub struct Partition {
    parts: usize,
    assign: Arc<dyn Fn(IpAddr) -> usize + Send + Sync>,
}

impl Partition {
    /// `parts` parts (at least one), each address in the part a fixed hash of it picks:
    /// the same on any machine, so results never depend on where they were computed.
    pub fn hashed(parts: usize) -> Partition {
        Partition::by(parts, |ip| address_hash(ip) as usize)
    }

    /// `parts` parts (at least one), address `ip` in part `assign(ip) % parts`: for a
    /// caller that split the flows its own way (and tests that split them at random).
    pub fn by(parts: usize, assign: impl Fn(IpAddr) -> usize + Send + Sync + 'static) -> Partition {
        Partition {
            parts: parts.max(1),
            assign: Arc::new(assign),
        }
    }

    /// How many parts.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The part `ip` belongs to.
    pub fn part_of(&self, ip: IpAddr) -> usize {
        (self.assign)(ip) % self.parts
    }
}

/// A multiplicative hash of an address's bits (Fibonacci hashing): neighbouring
/// addresses, as a subnet's hosts are, land in different parts.
fn address_hash(ip: IpAddr) -> u32 {
    let bits: u64 = match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The parts of a detection this process runs (all of them, or one of many), side by
/// side on rayon's pool.
pub(crate) struct Parts<'a> {
    partition: Partition,
    parts: Vec<Part<'a>>,
    /// Where part `i` of the partition is in `parts`, if this process runs it.
    position: Vec<Option<usize>>,
    /// Flows a lone part must be given at once before its rules get a thread of their
    /// own: starting one costs about what the rules take for a few hundred flows, and
    /// a few thousand gain little. Tests set it to compare both ways.
    pub rules_beside_from: usize,
}

/// Which of a flow's addresses a part owns.
#[derive(Clone, Copy)]
struct Owned {
    source: bool,
    responder: bool,
}

/// What the parts found, added up.
pub(crate) struct PartsFound {
    pub found: Findings,
    pub sessions: SessionLog,
    pub crossings: ZoneCrossings,
    pub stats: DetectStats,
    /// The parts whose findings these are, and of how many.
    pub covers: Vec<usize>,
    pub of: usize,
}

impl<'a> Parts<'a> {
    /// Parts `indices` of `partition`, each with a fresh state of every rule `start`
    /// makes (run-wide rules excluded: they run after the merge).
    pub fn new(
        c: &'a DetectConfig,
        partition: &Partition,
        indices: impl IntoIterator<Item = usize>,
        start: impl Fn() -> Vec<BoxedRule<'a>>,
    ) -> Self {
        let caps = c.caps(partition.parts());
        let zones = Arc::new(zone_table(c));
        let parts: Vec<Part<'a>> = indices
            .into_iter()
            .map(|index| Part {
                index,
                partition: partition.clone(),
                ledger: Ledger {
                    c,
                    caps,
                    stats: DetectStats::default(),
                    sources: Sources::default(),
                    sessions: SessionLog::default(),
                    crossings: ZoneCrossings::default(),
                    zones: Arc::clone(&zones),
                },
                rules: start()
                    .into_iter()
                    .map(|rule| (rule.key(), rule))
                    .filter(|(key, _)| *key != Key::Run)
                    .collect(),
            })
            .collect();
        let mut position = vec![None; partition.parts()];
        for (at, part) in parts.iter().enumerate() {
            position[part.index] = Some(at);
        }
        Parts {
            partition: partition.clone(),
            parts,
            position,
            rules_beside_from: 16 * 1024,
        }
    }

    /// Runs flows through every part, in the order `order` gives: each part gets, in that
    /// order, the flows whose source or responder it owns (handed out once, so no part
    /// reads the records of the others' flows).
    pub fn observe(&mut self, order: &[&UsableFlow]) {
        // One part here: the only one, or one of many run in different processes. Its
        // rules get a thread of their own; several parts here already run side by side.
        let (lone, from) = (self.parts.len() == 1, self.rules_beside_from);
        let beside = move |n| lone && n >= from;
        if let ([part], 1) = (&mut self.parts[..], self.partition.parts()) {
            let both = Owned {
                source: true,
                responder: true,
            };
            part.observe_all(order.iter().map(|&f| (f, both)), beside(order.len()));
            return;
        }
        let mut shares: Vec<Vec<(&UsableFlow, Owned)>> = vec![Vec::new(); self.parts.len()];
        for &f in order {
            let s = self.partition.part_of(f.orig_addr);
            let r = self.partition.part_of(f.resp_addr);
            let owned = |source, responder| Owned { source, responder };
            if let Some(at) = self.position[s] {
                shares[at].push((f, owned(true, s == r)));
            }
            if let Some(at) = self.position[r].filter(|_| s != r) {
                shares[at].push((f, owned(false, true)));
            }
        }
        self.parts
            .par_iter_mut()
            .zip(shares)
            .for_each(|(part, share)| {
                let beside = beside(share.len());
                part.observe_all(share.into_iter(), beside);
            });
    }

    /// Every part's rules, one after the other.
    pub fn rules_mut(&mut self) -> impl Iterator<Item = &mut BoxedRule<'a>> {
        self.parts
            .iter_mut()
            .flat_map(|part| part.rules.iter_mut().map(|(_, rule)| rule))
    }

    /// Whether one of these parts owns `ip` as a source.
    pub fn owns_source(&self, ip: IpAddr) -> bool {
        self.position[self.partition.part_of(ip)].is_some()
    }

    /// Finishes every part's rules over the events of its addresses.
    pub fn finish(self, events: &Events<'_>) -> Vec<PartsFound> {
        self.parts
            .into_par_iter()
            .map(|part| part.finish(events))
            .collect()
    }
}

impl PartsFound {
    /// What `parts` found, added up in an order that does not depend on theirs.
    pub fn sum(mut parts: Vec<PartsFound>) -> PartsFound {
        if parts.len() == 1 {
            // One part is the whole detection: nothing to add up.
            return parts.pop().expect("one part");
        }
        // Zero parts add up to nothing found; more are merged below.
        let mut sum = PartsFound {
            found: Findings::default(),
            sessions: SessionLog::default(),
            crossings: ZoneCrossings::default(),
            stats: DetectStats::default(),
            covers: Vec::new(),
            of: parts.first().map_or(0, |p| p.of),
        };
        let mut sessions = Vec::with_capacity(parts.len());
        for part in parts {
            sum.covers.extend(part.covers);
            sum.found.absorb(part.found);
            sum.crossings.absorb(part.crossings);
            sum.stats.add(&part.stats);
            sessions.push(part.sessions);
        }
        // Parts finish in any order; the graph takes the first of deliveries that tie
        // (one part keeps the rules' order: exploits, then logins).
        sum.found.deliveries.sort_unstable();
        sum.covers.sort_unstable();
        sum.sessions = SessionLog::merge(sessions);
        sum
    }
}

/// One part: the state of the sources and responders the partition assigns to it.
struct Part<'a> {
    index: usize,
    partition: Partition,
    ledger: Ledger<'a>,
    rules: Vec<(Key, BoxedRule<'a>)>,
}

/// A part's own record of its flows, besides the rules' state: the flows kept for the
/// graph, the zone crossings, the scanning sources and the counters.
struct Ledger<'a> {
    c: &'a DetectConfig,
    caps: Caps,
    stats: DetectStats,
    sources: Sources,
    sessions: SessionLog,
    crossings: ZoneCrossings,
    /// The zones' networks, for the crossings (one table for all the parts).
    zones: Arc<PrefixTable>,
}

/// Flows handed to the rules' thread at a time, and how many such blocks may wait.
const BLOCK_FLOWS: usize = 1024;
const BLOCKS_AHEAD: usize = 8;

impl Part<'_> {
    /// Runs flows through the part, in order. With `beside`, the rules run on a thread
    /// of their own for as long as that gives the same result
    /// ([`Part::observe_beside`]); the rest go one at a time.
    fn observe_all<'f>(
        &mut self,
        mut flows: impl Iterator<Item = (&'f UsableFlow, Owned)>,
        beside: bool,
    ) {
        let stopped_at = beside.then(|| self.observe_beside(&mut flows)).flatten();
        for (f, owned) in stopped_at.into_iter().chain(flows) {
            self.observe(f, owned);
        }
    }

    /// One flow: the ledger's record of it (sources it evicts forgotten by every rule),
    /// then the rules of the sides the part owns, then the sources they flagged marked.
    fn observe(&mut self, f: &UsableFlow, owned: Owned) {
        let mut evicted = Vec::new();
        let flow = self.ledger.record(f, owned, &mut evicted);
        for &ip in &evicted {
            for (_, rule) in &mut self.rules {
                rule.forget_source(ip);
            }
        }
        let mut flagged = Vec::new();
        let mut run = Observing {
            caps: self.ledger.caps,
            stats: &mut self.ledger.stats,
            flagged: &mut flagged,
        };
        run_rules(&mut self.rules, &flow, owned, &mut run);
        self.ledger.mark_flagged(flagged);
    }

    /// Runs flows with the rules on a thread of their own, blocks of flows behind the
    /// ledger, until a flow's source would make the full scanning-source table evict or
    /// refuse: which it does depends on the flags the rules set, so that flow is
    /// returned, not taken, and the flows from it on go one at a time. Up to it the
    /// result equals [`Part::observe`]'s, flow by flow: the rules see the same flows
    /// with the same facts in the same order, counters add up, and the flags, which
    /// only eviction reads, are all marked before it.
    fn observe_beside<'f>(
        &mut self,
        flows: &mut impl Iterator<Item = (&'f UsableFlow, Owned)>,
    ) -> Option<(&'f UsableFlow, Owned)> {
        let Part { ledger, rules, .. } = self;
        let caps = ledger.caps;
        let (to_rules, blocks) = mpsc::sync_channel::<Vec<(FlowFacts<'f>, Owned)>>(BLOCKS_AHEAD);
        let (stopped_at, (stats, flagged)) = thread::scope(|s| {
            // The rules' counters and flags are the thread's own until it ends: on the
            // ledger's stack they shared its cache lines, and each counter written on
            // one thread cost the other a miss (a third slower on the scan benchmark).
            let rules = &mut rules[..];
            let rules_thread = s.spawn(move || {
                let (mut stats, mut flagged) = (DetectStats::default(), Vec::new());
                let mut run = Observing {
                    caps,
                    stats: &mut stats,
                    flagged: &mut flagged,
                };
                for block in blocks {
                    for (flow, owned) in &block {
                        run_rules(rules, flow, *owned, &mut run);
                    }
                }
                (stats, flagged)
            });
            let mut block = Vec::with_capacity(BLOCK_FLOWS);
            let mut stopped_at = None;
            let mut no_evictions = Vec::new();
            for (f, owned) in flows.by_ref() {
                if ledger.would_evict(f, owned) {
                    stopped_at = Some((f, owned));
                    break;
                }
                block.push((ledger.record(f, owned, &mut no_evictions), owned));
                if block.len() == BLOCK_FLOWS {
                    let full = std::mem::replace(&mut block, Vec::with_capacity(BLOCK_FLOWS));
                    // Fails only if the rules' thread panicked: its panic is raised below.
                    if to_rules.send(full).is_err() {
                        break;
                    }
                }
            }
            let _ = to_rules.send(block);
            drop(to_rules);
            let ruled = rules_thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (stopped_at, ruled)
        });
        ledger.stats.add(&stats);
        ledger.mark_flagged(flagged);
        stopped_at
    }

    /// Every rule's findings, each over the events of the addresses this part owns on
    /// the rule's side.
    fn finish(self, events: &Events<'_>) -> PartsFound {
        let Part {
            index,
            partition,
            ledger:
                Ledger {
                    caps,
                    mut stats,
                    sources,
                    sessions,
                    crossings,
                    ..
                },
            rules,
        } = self;
        let owns = |ip: IpAddr| partition.part_of(ip) == index;
        let by_source = events.owned(Key::Source, owns);
        let by_responder = events.owned(Key::Responder, owns);
        let mut found = Findings::default();
        let mut run = RunState {
            caps,
            stats: &mut stats,
            sources: &sources,
        };
        for (key, rule) in rules {
            let events = match key {
                Key::Responder => &by_responder,
                _ => &by_source,
            };
            rule.finish(events, &mut run, &mut found);
        }
        PartsFound {
            found,
            sessions,
            crossings,
            stats,
            covers: vec![index],
            of: partition.parts(),
        }
    }
}

/// Runs one flow through the rules of the sides the part owns.
fn run_rules(
    rules: &mut [(Key, BoxedRule<'_>)],
    flow: &FlowFacts<'_>,
    owned: Owned,
    run: &mut Observing<'_>,
) {
    for (key, rule) in rules {
        let owned = match key {
            Key::Source => owned.source,
            Key::Responder => owned.responder,
            Key::Run => false,
        };
        if owned {
            rule.observe(flow, run);
        }
    }
}

impl Ledger<'_> {
    /// Records `f`: if the part owns its source, it is counted, kept for the graph, and
    /// counted as the source's contact (sources evicted to make room are added to
    /// `evicted`). Returns what the rules read of it besides the flow.
    fn record<'f>(
        &mut self,
        f: &'f UsableFlow,
        owned: Owned,
        evicted: &mut Vec<IpAddr>,
    ) -> FlowFacts<'f> {
        let c = self.c;
        let mut flow = FlowFacts {
            flow: f,
            service: self.service(f),
            contact: None,
        };
        if owned.source {
            self.stats.flows_used += 1;
            self.stats.flows_without_outcome += u64::from(!f.shows_outcome);
            if let Some(service) = flow.service {
                self.sessions.keep(&flow, self.caps, &mut self.stats);
                self.crossings
                    .observe(&flow, &self.zones, c, self.caps, &mut self.stats);
                flow.contact = self.contact(f, service, evicted);
            }
        }
        flow
    }

    /// The worm service `f` went to.
    fn service(&self, f: &UsableFlow) -> Option<usize> {
        let c = self.c;
        f.has_ports
            .then(|| c.service_index(f.proto, f.resp_port))
            .flatten()
    }

    /// Whether recording `f` would make the scanning-source table evict (or refuse) a
    /// source, which depends on the flags the rules set.
    fn would_evict(&self, f: &UsableFlow, owned: Owned) -> bool {
        owned.source
            && !self.sources.has_room_for(f.orig_addr, self.caps)
            && self.service(f).is_some()
    }

    /// The worm-service flow `f` as a contact of its source, if the source table has (or
    /// makes) room for the source.
    fn contact(
        &mut self,
        f: &UsableFlow,
        service: usize,
        evicted: &mut Vec<IpAddr>,
    ) -> Option<Contact> {
        let room = self
            .sources
            .make_room_for(f.orig_addr, self.caps, &mut self.stats, evicted);
        room.then(|| Contact {
            service,
            is_first: self.sources.record(f, self.caps, &mut self.stats),
        })
    }

    /// Marks the sources the rules flagged in the table: they are never evicted.
    fn mark_flagged(&mut self, flagged: Vec<IpAddr>) {
        for src in flagged {
            self.sources.flag(src);
        }
    }
}
