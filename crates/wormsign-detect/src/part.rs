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

use std::net::IpAddr;
use std::sync::Arc;

use rayon::prelude::*;

use crate::config::{Caps, DetectConfig};
use crate::model::DetectStats;
use crate::propagation::SessionLog;
use crate::rules::{BoxedRule, Contact, Events, Findings, FlowFacts, Key, RunState};
use crate::sources::Sources;
use crate::usable::UsableFlow;
use crate::zones::ZoneCrossings;

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
        let parts: Vec<Part<'a>> = indices
            .into_iter()
            .map(|index| Part {
                index,
                partition: partition.clone(),
                c,
                caps,
                stats: DetectStats::default(),
                sources: Sources::default(),
                sessions: SessionLog::default(),
                crossings: ZoneCrossings::default(),
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
        }
    }

    /// Runs flows through every part, in the order `order` gives: each part gets, in that
    /// order, the flows whose source or responder it owns (handed out once, so no part
    /// reads the records of the others' flows).
    pub fn observe(&mut self, order: &[&UsableFlow]) {
        if let ([part], 1) = (&mut self.parts[..], self.partition.parts()) {
            let both = Owned {
                source: true,
                responder: true,
            };
            order.iter().for_each(|f| part.observe(f, both));
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
                share
                    .into_iter()
                    .for_each(|(f, owned)| part.observe(f, owned));
            });
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
    c: &'a DetectConfig,
    caps: Caps,
    stats: DetectStats,
    sources: Sources,
    sessions: SessionLog,
    crossings: ZoneCrossings,
    rules: Vec<(Key, BoxedRule<'a>)>,
}

impl Part<'_> {
    /// One flow: if the part owns its source, kept for the graph, counted as the
    /// source's contact and run through the source rules; if it owns its responder,
    /// through the responder rules.
    fn observe(&mut self, f: &UsableFlow, owned: Owned) {
        let (by_source, by_responder) = (owned.source, owned.responder);
        let c = self.c;
        let mut flow = FlowFacts {
            flow: f,
            service: f
                .has_ports
                .then(|| c.service_index(f.proto, f.resp_port))
                .flatten(),
            contact: None,
        };
        if by_source {
            self.stats.flows_used += 1;
            self.stats.flows_without_outcome += u64::from(!f.shows_outcome);
            if let Some(service) = flow.service {
                self.sessions.keep(&flow, self.caps, &mut self.stats);
                self.crossings.observe(&flow, c, self.caps, &mut self.stats);
                flow.contact = self.contact(f, service);
            }
        }
        let mut run = RunState {
            caps: self.caps,
            stats: &mut self.stats,
            sources: &mut self.sources,
        };
        for (key, rule) in &mut self.rules {
            let owned = match key {
                Key::Source => by_source,
                Key::Responder => by_responder,
                Key::Run => false,
            };
            if owned {
                rule.observe(&flow, &mut run);
            }
        }
    }

    /// The worm-service flow `f` as a contact of its source, if the source table has (or
    /// makes) room for the source; evicted sources are forgotten by every rule.
    fn contact(&mut self, f: &UsableFlow, service: usize) -> Option<Contact> {
        let mut evicted = Vec::new();
        let room =
            self.sources
                .make_room_for(f.orig_addr, self.caps, &mut self.stats, &mut evicted);
        for &ip in &evicted {
            for (_, rule) in &mut self.rules {
                rule.forget_source(ip);
            }
        }
        room.then(|| Contact {
            service,
            is_first: self.sources.record(f, self.caps, &mut self.stats),
        })
    }

    /// Every rule's findings, each over the events of the addresses this part owns on
    /// the rule's side.
    fn finish(self, events: &Events<'_>) -> PartsFound {
        let Part {
            index,
            partition,
            c: _,
            caps,
            mut stats,
            mut sources,
            sessions,
            crossings,
            rules,
        } = self;
        let owns = |ip: IpAddr| partition.part_of(ip) == index;
        let by_source = events.owned(Key::Source, owns);
        let by_responder = events.owned(Key::Responder, owns);
        let mut found = Findings::default();
        let mut run = RunState {
            caps,
            stats: &mut stats,
            sources: &mut sources,
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
