//! The detector loop: which flows the rules can use, sorted batches of them through every
//! rule of [`crate::rules::RULES`], the capped scanning-source table, and the end of the
//! run (alerts numbered, the propagation graph drawn).

use std::collections::HashSet;
use std::net::IpAddr;

use wormsign_decode::NameEvent;
use wormsign_flow::FlowRecord;
use wormsign_inspect::SessionEvent;

use crate::config::DetectConfig;
use crate::model::{ArpEvent, DetectStats, Detection, DnsEvent};
use crate::part::{Partition, Parts, PartsFound};
use crate::propagation::{self, FlowEvidence};
use crate::rules::{
    number_in_time_order, sorted, BoxedRule, Events, Key, RunState, Watchlist, RULES,
};
use crate::sources::Sources;
use crate::spill::PendingFlows;
use crate::usable::UsableFlow;
use crate::wire::PartFindings;
use crate::{identity, timeline};

/// Runs every rule over the inputs and builds the propagation graph.
///
/// The inputs may come in any order: they are sorted internally (flows by
/// [`FlowRecord::detection_cmp`], DNS and ARP events by all their fields), so the result
/// depends only on the set of inputs, never on how many threads produced them (however
/// many usable flows there are, as long as batches beyond
/// [`DetectConfig::max_pending_flows`] can be written to temporary files, or held in
/// memory up to 16 times that many; see [`Detector`]).
pub fn detect(
    config: &DetectConfig,
    flows: &[FlowRecord],
    dns: &[DnsEvent],
    arp: &[ArpEvent],
) -> Detection {
    let mut detector = Detector::new(config, dns, arp);
    for f in flows {
        detector.push(f);
    }
    detector.finish()
}

/// Which flows any rule (or the propagation graph) can use: to a worm service, or to an
/// address or port a rule watches (honeypots, C&C addresses, exposed ports).
/// [`Detector::push`] drops the others.
#[derive(Clone)]
pub struct FlowFilter<'a> {
    c: &'a DetectConfig,
    watched: Watchlist,
}

impl FlowFilter<'_> {
    /// Whether a flow of IP protocol `proto` to port `resp_port` of the address
    /// `resp_addr` returns is usable. The address is asked for only when the port does
    /// not decide and some address is watched, so a caller reading stored flows parses
    /// it only then.
    pub fn wants(
        &self,
        proto: u8,
        has_ports: bool,
        resp_port: u16,
        resp_addr: impl FnOnce() -> Option<IpAddr>,
    ) -> bool {
        let port_of_interest = has_ports
            && (self.c.service_index(proto, resp_port).is_some()
                || self.watched.ports.contains(&resp_port));
        let addresses = &self.watched.addresses;
        port_of_interest
            || (!addresses.is_empty() && resp_addr().is_some_and(|a| addresses.contains(&a)))
    }

    /// Whether any rule (or the graph) can use `f`.
    pub fn wants_flow(&self, f: &FlowRecord) -> bool {
        self.wants(f.proto, f.has_ports, f.resp_port, || Some(f.resp_addr))
    }

    /// [`FlowFilter::wants_flow`], for a flow already made usable.
    pub fn wants_usable(&self, f: &UsableFlow) -> bool {
        self.wants(f.proto, f.has_ports, f.resp_port, || Some(f.resp_addr))
    }

    /// Whether this filter keeps flows to an address `other` does not watch: a C&C address
    /// resolved from the run's DNS answers, when `other` was made before they were known.
    pub fn watches_addresses_beyond(&self, other: &FlowFilter<'_>) -> bool {
        !self.watched.addresses.is_subset(&other.watched.addresses)
    }

    /// The addresses this filter watches and `other` does not, when they are all the two
    /// differ in (one configuration, the same ports watched): a flow this filter keeps
    /// and `other` does not then goes to one of them. `None` otherwise. Today's rules
    /// watch ports from the configuration alone, so a filter made before the run's DNS
    /// was known differs from one made after only in C&C addresses.
    pub fn addresses_beyond(&self, other: &FlowFilter<'_>) -> Option<HashSet<IpAddr>> {
        let alike = std::ptr::eq(self.c, other.c) && self.watched.ports == other.watched.ports;
        alike.then(|| {
            let beyond = self.watched.addresses.difference(&other.watched.addresses);
            beyond.copied().collect()
        })
    }
}

/// Detection over a stream of flows, with bounded memory.
///
/// DNS and ARP events are given up front (they name the C&C addresses the flow rules
/// look for), or, to a detector started before they are complete, at the end
/// ([`Detector::finish_given`]; the C&C addresses as they become known,
/// [`Detector::watch_resolved`], then [`Detector::settle_dns`]). Flows are
/// [`pushed`](Detector::push) in any order; those no rule can use are counted and
/// dropped at once, the others gathered (as [`UsableFlow`]s) up to
/// [`DetectConfig::max_pending_flows`] and sorted by [`UsableFlow::detection_cmp`]; each
/// full batch is written to a temporary file (if none can be written, up to 16 times the
/// cap are held in memory instead, and beyond that the flows held go through the rules
/// at once), and at the end all are merged into one stream in that order and run through
/// the rules, whose state per source and per pair is capped
/// ([`DetectConfig::max_sources`]). Only worm-service contacts that did not fail are
/// kept for the graph. [`Detector::finish`] turns the state into alerts, edges and hosts.
pub struct Detector<'a> {
    c: &'a DetectConfig,
    events: Events<'a>,
    stats: DetectStats,
    filter: FlowFilter<'a>,
    /// Usable flows not yet run through the rules: up to the cap in memory, full
    /// batches beyond it in temporary files (or held in memory when none can be
    /// written), merged at the end.
    pending: PendingFlows,
    /// The latest [`UsableFlow::detection_order`] run through the rules so far.
    last_key: Option<(i64, u64, u32)>,
    /// The rules' state, in parts run side by side.
    parts: Parts<'a>,
    /// The rules that run once over the whole run, after the parts.
    run_rules: Vec<BoxedRule<'a>>,
}

impl<'a> Detector<'a> {
    /// A detector for `config`, with the run's DNS and ARP events, its state in one part.
    pub fn new(config: &'a DetectConfig, dns: &'a [DnsEvent], arp: &'a [ArpEvent]) -> Self {
        Detector::in_parts(config, dns, arp, &Partition::hashed(1))
    }

    /// A detector whose state is split as `partition` says, the parts run side by side.
    /// Its result equals [`Detector::new`]'s whenever no part reaches a cap (see
    /// [`Partition`]).
    pub fn in_parts(
        config: &'a DetectConfig,
        dns: &'a [DnsEvent],
        arp: &'a [ArpEvent],
        partition: &Partition,
    ) -> Self {
        Detector::with_parts(config, dns, arp, partition, 0..partition.parts())
    }

    /// A detector that runs part `index` of `partition` only (it panics when there is no
    /// such part): pushed flows of addresses other parts own are left to them.
    /// [`Detector::finish_part`] ends it, and a [`Detector::merging`] given every part's
    /// findings ([`Detector::finish_with`]) finishes the detection, wherever the parts
    /// ran. It needs the run's DNS and ARP events (and, with
    /// [`Detector::with_sessions`], session facts) in full: it picks out those of its own
    /// addresses itself.
    pub fn one_part(
        config: &'a DetectConfig,
        dns: &'a [DnsEvent],
        arp: &'a [ArpEvent],
        partition: &Partition,
        index: usize,
    ) -> Self {
        assert!(
            index < partition.parts(),
            "part {index} of a partition in {}",
            partition.parts()
        );
        Detector::with_parts(config, dns, arp, partition, [index])
    }

    /// A detector that runs no part itself: it only finishes the detection with what the
    /// parts found elsewhere ([`Detector::finish_with`]), given the run's events in full.
    pub fn merging(config: &'a DetectConfig, dns: &'a [DnsEvent], arp: &'a [ArpEvent]) -> Self {
        Detector::with_parts(config, dns, arp, &Partition::hashed(1), [])
    }

    fn with_parts(
        config: &'a DetectConfig,
        dns: &'a [DnsEvent],
        arp: &'a [ArpEvent],
        partition: &Partition,
        indices: impl IntoIterator<Item = usize>,
    ) -> Self {
        let events = Events::sorted(dns, arp, &[], &[]);
        let start = || -> Vec<BoxedRule<'a>> {
            RULES
                .iter()
                .map(|start| start(config, &events.dns))
                .collect()
        };
        let mut watched = Watchlist::default();
        let mut run_rules = Vec::new();
        for rule in start() {
            rule.watch(&mut watched);
            if rule.key() == Key::Run {
                run_rules.push(rule);
            }
        }
        let parts = Parts::new(config, partition, indices, start);
        Detector {
            c: config,
            stats: DetectStats {
                dns_events: events.dns.len() as u64,
                arp_events: events.arp.len() as u64,
                ..DetectStats::default()
            },
            events,
            filter: FlowFilter { c: config, watched },
            pending: PendingFlows::new(config.max_pending_flows),
            last_key: None,
            parts,
            run_rules,
        }
    }

    /// Adds the protocol facts of the run's sessions (`sessions.parquet`): exploit and
    /// implant alerts, brute force counted in logins, and the sessions that delivered an
    /// infection. Without them every rule reads flow shapes only.
    pub fn with_sessions(mut self, sessions: &'a [SessionEvent]) -> Self {
        self.events.sessions = sorted(sessions);
        self.stats.session_events = self.events.sessions.len() as u64;
        self
    }

    /// Adds the naming facts of DHCP and the NetBIOS name service (`names.parquet`):
    /// host names, MACs and address changes for the hosts table.
    pub fn with_names(mut self, names: &'a [NameEvent]) -> Self {
        self.events.names = sorted(names);
        self
    }

    /// C&C addresses resolved while the run goes on, for a detector made before the run's
    /// DNS was complete (with no DNS events): flows to them are watched, and the rules
    /// read them as flows to C&C addresses from now on. [`Detector::settle_dns`] gives
    /// the run's DNS in full before the last flows.
    pub fn watch_resolved(&mut self, resolved: &[IpAddr]) {
        self.filter.watched.addresses.extend(resolved);
        for rule in self.parts.rules_mut().chain(&mut self.run_rules) {
            rule.learn_resolved(resolved);
        }
    }

    /// The run's DNS in full, for a detector made before it was complete: the rules take
    /// what [`Detector::new`] would have started them with (the C&C addresses its answers
    /// give, each with why it is one), and the filter watches what they watch then.
    /// False when an address given to [`Detector::watch_resolved`] is not among them: the
    /// flows already read would then not be those a detector made with this DNS reads.
    pub fn settle_dns(&mut self, dns: &[DnsEvent]) -> bool {
        let dns = sorted(dns);
        let mut settled = true;
        for rule in self.parts.rules_mut().chain(&mut self.run_rules) {
            settled &= rule.settle_dns(&dns);
            rule.watch(&mut self.filter.watched);
        }
        settled
    }

    /// Takes one flow (a usable one is kept as a [`UsableFlow`]).
    pub fn push(&mut self, f: &FlowRecord) {
        self.stats.flows += 1;
        if !self.filter.wants_flow(f) {
            return;
        }
        if self.pending.push(UsableFlow::from(f)).is_err() {
            self.run_pending();
        }
    }

    /// Takes many flows at once, keeping the usable ones in the vector they came in: the
    /// same as pushing their records one by one (while temporary files can be written or
    /// the flows held without them are within their limit: beyond it, every flow of
    /// `flows` goes through the rules with the batch),
    /// without moving tens of megabytes of flows into a vector of the detector's own.
    pub fn push_all(&mut self, mut flows: Vec<UsableFlow>) {
        self.stats.flows += flows.len() as u64;
        flows.retain(|f| self.filter.wants_usable(f));
        if self.pending.push_all(flows).is_err() {
            self.run_pending();
        }
    }

    /// Runs `flows`, already in [`UsableFlow::detection_cmp`] order (as
    /// [`PendingFlows::drain`] hands them over), through the rules at once, dropping those
    /// no rule can use. Flows pushed before and not yet run are not waited for: use this
    /// for a detector's flows from one source only. A flow older than one run before
    /// counts as late.
    pub fn push_in_order(&mut self, flows: &[&UsableFlow]) {
        self.stats.flows += flows.len() as u64;
        let filter = &self.filter;
        if flows.iter().all(|f| filter.wants_usable(f)) {
            return self.observe_sorted(flows);
        }
        let usable: Vec<&UsableFlow> = flows
            .iter()
            .copied()
            .filter(|f| filter.wants_usable(f))
            .collect();
        self.observe_sorted(&usable);
    }

    /// The test [`Detector::push`] applies first, for callers that can skip building
    /// flows no rule would use.
    pub fn flow_filter(&self) -> FlowFilter<'a> {
        self.filter.clone()
    }

    /// Runs every pending flow through the rules, in one order: at the end, or when no
    /// file could be written and the flows held in memory reached their limit (then
    /// later batches can be late).
    fn run_pending(&mut self) {
        let empty = PendingFlows::like(&self.pending);
        let mut pending = std::mem::replace(&mut self.pending, empty);
        pending
            .drain(|b| self.observe_sorted(b))
            .count_in(&mut self.stats);
    }

    /// Runs flows in detection order through the rules, counting those older than the
    /// newest flow the rules saw before.
    fn observe_sorted(&mut self, order: &[&UsableFlow]) {
        if let Some(last) = self.last_key {
            let late = order.partition_point(|f| f.detection_order() < last);
            // Counted by the part owning the flow's source, as `flows_used` is.
            let owned = order[..late]
                .iter()
                .filter(|f| self.parts.owns_source(f.orig_addr));
            self.stats.late_flows += owned.count() as u64;
        }
        self.parts.observe(order);
        if let Some(f) = order.last() {
            let key = f.detection_order();
            self.last_key = Some(self.last_key.map_or(key, |k| k.max(key)));
        }
    }

    /// Runs the last gathered flows, adds up what the parts found, runs the run-wide
    /// rules, numbers the alerts and builds the propagation graph and host roles.
    pub fn finish(self) -> Detection {
        self.finish_with(Vec::new())
    }

    /// What this detector's parts found, for another detector to finish with
    /// ([`Detector::finish_with`]); the run-wide rules and the graph are left to it.
    pub fn finish_part(mut self) -> PartFindings {
        self.run_pending();
        let mut found = PartsFound::sum(self.parts.finish(&self.events));
        found.stats.add_pending(&self.stats);
        PartFindings(found)
    }

    /// [`Detector::finish`], adding what other detectors' parts found (each from
    /// [`Detector::finish_part`], possibly in another process): the detection of every
    /// flow pushed to any of them. Its `flows` counter counts only the flows pushed to
    /// this detector, which may be none.
    pub fn finish_with(mut self, others: Vec<PartFindings>) -> Detection {
        let events = std::mem::take(&mut self.events);
        self.finish_over(&events, others)
    }

    /// [`Detector::finish`] for a detector made before the run's events were complete
    /// (see [`Detector::settle_dns`]), given them now: its result is that of a detector
    /// made with them.
    pub fn finish_given(
        mut self,
        dns: &[DnsEvent],
        arp: &[ArpEvent],
        sessions: &[SessionEvent],
        names: &[NameEvent],
    ) -> Detection {
        let events = Events::sorted(dns, arp, sessions, names);
        self.stats.dns_events = events.dns.len() as u64;
        self.stats.arp_events = events.arp.len() as u64;
        self.stats.session_events = events.sessions.len() as u64;
        self.finish_over(&events, Vec::new())
    }

    fn finish_over(mut self, events: &Events<'_>, others: Vec<PartFindings>) -> Detection {
        self.run_pending();
        let Detector {
            c,
            mut stats,
            parts,
            run_rules,
            ..
        } = self;
        let mut all = parts.finish(events);
        all.extend(others.into_iter().map(|p| p.0));
        let PartsFound {
            mut found,
            sessions,
            crossings,
            stats: part_stats,
            ..
        } = PartsFound::sum(all);
        stats.add(&part_stats);
        let mut run = RunState {
            caps: c.caps(1),
            stats: &mut stats,
            sources: &Sources::default(),
        };
        for rule in run_rules {
            rule.finish(events, &mut run, &mut found);
        }
        number_in_time_order(&mut found.alerts);
        let evidence = FlowEvidence {
            first_evidence: &found.first_evidence,
            brute_success: &found.brute_success,
        };
        let (edges, mut hosts) =
            propagation::build(c, sessions, &evidence, &found.alerts, &found.deliveries);
        identity::identify(&mut hosts, events);
        Detection {
            timeline: timeline::build(&found.alerts, &edges, &hosts, &found.notes),
            zones: crossings.checks(c, &found.alerts, &hosts),
            alerts: found.alerts,
            edges,
            hosts,
            stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use wormsign_flow::{ConnState, DirCounters, EndReason, FlowSource, History};

    use super::*;
    use crate::model::Rule;

    const TCP: u8 = 6;

    /// A TCP flow of `src` to port 445 of `dst` at `ts` seconds, unanswered (`S0`) or a
    /// session with payload both ways.
    fn smb(ts: f64, src: [u8; 4], dst: [u8; 4], answered: bool) -> FlowRecord {
        let side = |packets, payload_bytes| DirCounters {
            packets,
            ip_bytes: packets * 40 + payload_bytes,
            payload_bytes,
            tcp_flags: 0x1a,
        };
        let ts_first = (ts * 1e9) as i64;
        FlowRecord {
            first_packet: ts_first as u64,
            ts_first,
            ts_last: ts_first + 1_000_000,
            orig_addr: IpAddr::from(src),
            orig_port: 49_152,
            resp_addr: IpAddr::from(dst),
            resp_port: 445,
            has_ports: true,
            proto: TCP,
            vlan: None,
            tunnel: None,
            orig: side(if answered { 6 } else { 2 }, if answered { 900 } else { 0 }),
            resp: side(if answered { 5 } else { 0 }, if answered { 700 } else { 0 }),
            conn_state: if answered {
                ConnState::SF
            } else {
                ConnState::S0
            },
            history: History::default(),
            end_reason: EndReason::Idle,
            source: FlowSource::Packets,
        }
    }

    /// Six scanners, then (once they are flagged) a few hosts with ordinary sessions, then
    /// twelve newcomers that fill the eight-source table, one of them scanning: evictions
    /// follow, and which sources they spare depends on the scanners' flags.
    fn scanners_then_newcomers() -> Vec<FlowRecord> {
        let mut flows = Vec::new();
        for s in 0..6u8 {
            for d in 0..600u16 {
                let dst = [10, 1, (d >> 8) as u8, d as u8];
                let ts = f64::from(s) + f64::from(d) * 0.01;
                flows.push(smb(ts, [10, 0, 0, 10 + s], dst, d % 50 == 0));
            }
        }
        for h in 0..2u8 {
            flows.push(smb(
                100.0 + f64::from(h),
                [10, 0, 0, 30 + h],
                [10, 2, 0, 1],
                true,
            ));
        }
        for n in 0..12u8 {
            let targets = if n == 5 { 300 } else { 3 };
            for d in 0..targets {
                let ts = 200.0 + f64::from(n) + f64::from(d) * 0.001;
                flows.push(smb(
                    ts,
                    [10, 0, 1, n],
                    [10, 3, (d >> 8) as u8, d as u8],
                    false,
                ));
            }
        }
        flows
    }

    /// The rules on a thread of their own find exactly what they find on the ledger's
    /// thread, across block boundaries and up to the flow that first makes the full
    /// source table evict, where the flows go one at a time again; the scanners flagged
    /// on the rules' thread are spared by those evictions.
    #[test]
    fn rules_beside_the_ledger_find_what_they_find_inline() {
        let flows = scanners_then_newcomers();
        let config = DetectConfig {
            max_sources: 8,
            // The scanners' sets fill, so the rules count on their thread too.
            max_tracked: 100,
            ..DetectConfig::default()
        };
        let run = |rules_beside_from| {
            let mut detector = Detector::new(&config, &[], &[]);
            detector.parts.rules_beside_from = rules_beside_from;
            flows.iter().for_each(|f| detector.push(f));
            detector.finish()
        };
        let (inline, beside) = (run(usize::MAX), run(0));
        let stats = &inline.stats;
        assert!(stats.sources_evicted > 0 && stats.cap_hits > 0, "{stats:?}");
        let scan_alerts = |src| beside.alerts_for(src, Rule::ScanFanout).count();
        for s in 0..6u8 {
            let scanner = IpAddr::from([10, 0, 0, 10 + s]);
            assert_eq!(scan_alerts(scanner), 1, "{scanner} is kept to the end");
        }
        assert_eq!(
            scan_alerts(IpAddr::from([10, 0, 1, 5])),
            1,
            "the newcomer scans"
        );
        assert_eq!(beside, inline);
    }

    /// `d` with its counts of flows held in files and held in memory without files taken
    /// out, and those counts.
    fn apart_from_files(mut d: Detection) -> (Detection, u64, u64) {
        let in_files = std::mem::take(&mut d.stats.flows_in_files);
        let held = std::mem::take(&mut d.stats.flows_held_without_files);
        (d, in_files, held)
    }

    /// Beyond `max_pending_flows` every batch but the last is written to a temporary
    /// file and all are merged at the end: flows in time order, or reversed, give the
    /// one-batch result, and the summary counts the flows held in files. When files can
    /// no longer be written, up to 16 times the cap are held in memory (the result is
    /// still the one-batch result, and the summary counts them); beyond, they go through
    /// with the batches written before, so flows in time order are never late, and every
    /// flow is still used once.
    #[test]
    fn batches_beyond_the_cap_are_merged_in_time_order() {
        let mut flows = scanners_then_newcomers();
        flows.sort_by(FlowRecord::detection_cmp);
        let config = DetectConfig {
            max_sources: 8,
            max_tracked: 100,
            ..DetectConfig::default()
        };
        let small = DetectConfig {
            max_pending_flows: 500,
            ..config.clone()
        };
        let whole = detect(&config, &flows, &[], &[]);
        assert_eq!(whole.stats.flows_in_files, 0);
        let reversed: Vec<FlowRecord> = flows.iter().rev().cloned().collect();
        let in_files = wormsign_testutil::held_in_files(flows.len() as u64, 500);
        assert_eq!(
            apart_from_files(detect(&small, &reversed, &[], &[])),
            (whole.clone(), in_files, 0)
        );
        // Reversed, so that a batch going through before the end would make flows late.
        let n = flows.len() as u64;
        for files in [0, 3] {
            let d = detect_with_files(&small, &reversed, files);
            let batches_written = files as u64 * 500;
            let held = n - batches_written - 500;
            assert_eq!(
                apart_from_files(d),
                (whole.clone(), batches_written, held),
                "{files} files"
            );
        }
        // At a cap of 100, 1 600 are held: the first 1 601 flows go through (1 501 held
        // beyond the cap), then the next 1 601, then the last 733.
        let tiny = DetectConfig {
            max_pending_flows: 100,
            ..config.clone()
        };
        let held = wormsign_testutil::held_without_files(n, 100);
        assert_eq!((n, held), (3935, 2 * 1501 + 633));
        let d = detect_with_files(&tiny, &flows, 0);
        assert_eq!(apart_from_files(d), (whole.clone(), 0, held), "cap 100");
    }

    /// A distributed part is dealt its flows as one vector (`PartRunner::finish` in
    /// wormsign-engine pushes them so): without files it holds them all, far beyond 16
    /// times the cap, and runs them in one order, so two parts each dealt all the flows
    /// in reverse give the whole detection, each counting what it held beyond the cap
    /// (docs/distributed.md).
    #[test]
    fn a_part_without_files_holds_all_it_was_dealt() {
        let flows = scanners_then_newcomers();
        let config = DetectConfig::default();
        let whole = detect(&config, &flows, &[], &[]);
        let tiny = DetectConfig {
            max_pending_flows: 10,
            ..config.clone()
        };
        let partition = Partition::hashed(2);
        let mut dealt: Vec<UsableFlow> = flows.iter().map(UsableFlow::from).collect();
        dealt.sort_by(|a, b| b.detection_cmp(a));
        crate::spill::test_files::allow(0);
        let found: Vec<PartFindings> = (0..partition.parts())
            .map(|index| {
                let mut part = Detector::one_part(&tiny, &[], &[], &partition, index);
                part.pending.set_files(crate::spill::test_files::limited);
                part.push_all(dealt.clone());
                part.finish_part()
            })
            .collect();
        crate::spill::test_files::allow(usize::MAX);
        let mut merged = Detector::merging(&tiny, &[], &[]).finish_with(found);
        merged.stats.flows = whole.stats.flows;
        let n = dealt.len() as u64;
        assert!(n > 16 * 10, "{n} flows");
        assert_eq!(merged.stats.late_flows, 0);
        assert_eq!(
            apart_from_files(merged),
            (apart_from_files(whole).0, 0, 2 * (n - 10))
        );
    }

    /// The detection of `flows` pushed one by one when only `files` temporary files can
    /// be written; no flow may come late.
    fn detect_with_files(config: &DetectConfig, flows: &[FlowRecord], files: usize) -> Detection {
        let mut detector = Detector::new(config, &[], &[]);
        detector
            .pending
            .set_files(crate::spill::test_files::limited);
        crate::spill::test_files::allow(files);
        flows.iter().for_each(|f| detector.push(f));
        let d = detector.finish();
        crate::spill::test_files::allow(usize::MAX);
        assert_eq!(d.stats.late_flows, 0, "{files} files");
        d
    }

    /// The filter asks for the responder address only when the port leaves the answer
    /// open, and then answers by it: `wormsign detect` relies on this to skip parsing
    /// the address of most stored flows.
    #[test]
    fn flow_filter_asks_for_the_address_only_when_the_port_does_not_decide() {
        let honeypot: IpAddr = "10.0.0.99".parse().unwrap();
        let other: IpAddr = "10.0.0.7".parse().unwrap();
        let config = DetectConfig {
            honeypots: vec![honeypot],
            ..DetectConfig::default()
        };
        let filter = Detector::new(&config, &[], &[]).flow_filter();
        let asked = &Cell::new(0);
        let ask = move |a: IpAddr| {
            move || {
                asked.set(asked.get() + 1);
                Some(a)
            }
        };
        assert!(filter.wants(TCP, true, 445, ask(other)));
        assert_eq!(asked.get(), 0, "a worm-service port decides alone");
        assert!(filter.wants(TCP, true, 3389, ask(other)));
        assert!(
            filter.wants(17, true, 1433, ask(other)),
            "exposed port, any protocol"
        );
        assert_eq!(asked.get(), 0, "an exposed port decides alone");
        assert!(!filter.wants(TCP, true, 80, ask(other)));
        assert!(filter.wants(TCP, true, 80, ask(honeypot)));
        assert!(!filter.wants(TCP, true, 80, || None));
        assert_eq!(asked.get(), 2);

        let no_addresses = DetectConfig::default();
        let filter = Detector::new(&no_addresses, &[], &[]).flow_filter();
        assert!(!filter.wants(TCP, true, 80, ask(honeypot)));
        assert_eq!(asked.get(), 2, "no address of interest: never asked");
    }
}
