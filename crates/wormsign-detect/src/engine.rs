//! The rules and the propagation graph.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use wormsign_flow::{ConnState, FlowRecord, FlowSource};

use crate::config::DetectConfig;
use crate::distinct::CappedSet;
use crate::model::{
    Alert, ArpEvent, Basis, DetectStats, Detection, DnsEvent, Edge, HostRow, Role, Rule, Tier,
};
use crate::protocol::{self, Delivery};
use wormsign_inspect::SessionEvent;

const TCP: u8 = 6;
const UDP: u8 = 17;

fn is_netflow(f: &FlowRecord) -> bool {
    matches!(f.source, FlowSource::Netflow(_))
}

/// Whether a flow is a failed first contact: TCP S0, REJ, RSTOS0, or RSTR with no
/// payload either way; UDP S0. For NetFlow records (one direction only, state from the
/// source's TCP flags) a UDP record is never counted as failed: the reply, if any, is a
/// separate record, so an unanswered datagram cannot be told from an answered one.
pub fn is_failed(f: &FlowRecord) -> bool {
    if is_netflow(f) && f.proto == UDP {
        return false;
    }
    match f.proto {
        TCP => match f.conn_state {
            ConnState::S0 | ConnState::REJ | ConnState::RSTOS0 => true,
            ConnState::RSTR => f.orig.payload_bytes == 0 && f.resp.payload_bytes == 0,
            _ => false,
        },
        UDP => f.conn_state == ConnState::S0,
        _ => false,
    }
}

/// Whether a flow is a completed session: payload both ways, and TCP state SF, S1, S2, S3,
/// RSTO, RSTR or OTH (OTH: the handshake was not captured, as in captures filtered to
/// data packets); any UDP state. A NetFlow record (source side only) is completed when
/// its TCP flags show an established connection (SF, S1, S2, S3, RSTO, RSTR) and it
/// carried at least three packets (handshake ACK plus data); UDP NetFlow records never
/// are.
pub fn is_completed(f: &FlowRecord) -> bool {
    if is_netflow(f) {
        return f.proto == TCP
            && f.orig.packets >= 3
            && matches!(
                f.conn_state,
                ConnState::SF
                    | ConnState::S1
                    | ConnState::S2
                    | ConnState::S3
                    | ConnState::RSTO
                    | ConnState::RSTR
            );
    }
    let payload = f.orig.payload_bytes > 0 && f.resp.payload_bytes > 0;
    payload
        && match f.proto {
            TCP => matches!(
                f.conn_state,
                ConnState::SF
                    | ConnState::S1
                    | ConnState::S2
                    | ConnState::S3
                    | ConnState::RSTO
                    | ConnState::RSTR
                    | ConnState::OTH
            ),
            _ => true,
        }
}

/// Sliding count of events within a window, keeping at most `need` timestamps: true once
/// `need` events fall within `window`.
pub(crate) fn window_hit(q: &mut VecDeque<i64>, ts: i64, need: usize, window: i64) -> bool {
    q.push_back(ts);
    while q.len() > need.max(1) {
        q.pop_front();
    }
    while q.front().is_some_and(|&t| ts - t > window) {
        q.pop_front();
    }
    q.len() >= need
}

/// An alert's identity: rule, source, destination, service (unique per alert).
type EvidenceKey = (Rule, IpAddr, Option<IpAddr>, String);

#[derive(Default)]
struct TrwState {
    contacted: CappedSet,
    /// Time of the source's latest worm-service flow (for eviction).
    last_seen: i64,
    llr: f64,
    first_contacts: u64,
    failed: u64,
    successes: u64,
    first_ts: i64,
    last_ts: i64,
    detected: Option<(i64, usize)>,
    /// First failed first contact of the current walk (reset with the walk).
    walk_first_fail: Option<i64>,
    /// First evidence of the walk that crossed the threshold.
    evidence: i64,
    /// Recent failed first contacts, for `failed_contacts`.
    failures: VecDeque<i64>,
    /// When `failed_contacts` fired (time, service) and its window's first failure.
    failed_detected: Option<(i64, usize, i64)>,
    /// A fan-out of this source fired (so it is never evicted).
    fan_detected: bool,
}

impl TrwState {
    /// Whether any rule over this source's first contacts fired.
    fn flagged(&self) -> bool {
        self.detected.is_some() || self.failed_detected.is_some() || self.fan_detected
    }

    /// A finding over this source's first contacts, detected at `at`: tier hour once an
    /// internal source also got through somewhere (it is spreading), day otherwise.
    fn finding<'s>(
        &self,
        c: &DetectConfig,
        rule: Rule,
        src: IpAddr,
        service: &'s str,
        at: i64,
        evidence: String,
    ) -> Finding<'s> {
        let spreading = c.is_internal(src) && self.successes > 0;
        Finding {
            rule,
            tier: if spreading { Tier::Hour } else { Tier::Day },
            src,
            dst: None,
            service,
            first: self.first_ts,
            last: self.last_ts,
            detected: at,
            attempts: self.first_contacts,
            distinct: self.contacted.len(),
            failed_ratio: ratio(self.failed, self.first_contacts),
            worm: true,
            evidence,
        }
    }
}

#[derive(Default)]
struct FanState {
    dsts: CappedSet,
    recent: VecDeque<i64>,
    first_contacts: u64,
    failed: u64,
    successes: u64,
    attempts: u64,
    first_ts: i64,
    last_ts: i64,
    detected: Option<i64>,
    /// Oldest first contact in the window that crossed the threshold.
    evidence: i64,
}

#[derive(Default)]
struct BruteState {
    recent: VecDeque<i64>,
    short_sessions: u64,
    first_ts: i64,
    last_ts: i64,
    detected: Option<i64>,
    success: Option<u64>,
    /// Oldest short session in the window that crossed the threshold.
    evidence: i64,
}

#[derive(Default)]
struct CountState {
    attempts: u64,
    first_ts: i64,
    last_ts: i64,
    peers: CappedSet,
    notes: Vec<String>,
}

impl CountState {
    /// A worm-behaviour finding of `rule` from `src` (to `dst`) that these counts
    /// summarise: tier hour, any service, one target, detected at the first contact.
    fn finding<'s>(
        &self,
        rule: Rule,
        src: IpAddr,
        dst: Option<IpAddr>,
        evidence: String,
    ) -> Finding<'s> {
        Finding {
            rule,
            tier: Tier::Hour,
            src,
            dst,
            service: "any",
            first: self.first_ts,
            last: self.last_ts,
            detected: self.first_ts,
            attempts: self.attempts,
            distinct: 1,
            failed_ratio: 0.0,
            worm: true,
            evidence,
        }
    }

    fn touch(&mut self, ts: i64) {
        if self.attempts == 0 {
            self.first_ts = ts;
        }
        self.attempts += 1;
        self.last_ts = self.last_ts.max(ts);
    }
}

fn direction(c: &DetectConfig, src: IpAddr, dst: IpAddr) -> &'static str {
    match (c.is_internal(src), c.is_internal(dst)) {
        (true, true) => "lateral",
        (false, true) => "inbound",
        (true, false) => "outbound",
        (false, false) => "external",
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// What a rule found, before the allowlist and tier policy of [`alert`] apply.
pub(crate) struct Finding<'s> {
    pub rule: Rule,
    pub tier: Tier,
    pub src: IpAddr,
    pub dst: Option<IpAddr>,
    pub service: &'s str,
    pub first: i64,
    pub last: i64,
    pub detected: i64,
    pub attempts: u64,
    pub distinct: u64,
    pub failed_ratio: f64,
    /// Worm behaviour: an infection sign when the source is internal and not allowlisted.
    pub worm: bool,
    pub evidence: String,
}

/// The alert of a flow-shape finding (protocol rules set their own [`Basis`]).
pub(crate) fn alert(c: &DetectConfig, f: Finding) -> Alert {
    let Finding {
        rule,
        tier,
        src,
        dst,
        service,
        first,
        last,
        detected,
        attempts,
        distinct,
        failed_ratio,
        worm,
        evidence,
    } = f;
    let allowlisted = c.is_allowlisted(src);
    // Scanning and password guessing by an authorized scanner or known heavy hitter is
    // expected: a hygiene item (is it still authorized, is the list current?), not an
    // incident. Its C&C or honeypot contacts keep their urgency.
    let tier = if allowlisted && (rule.is_scan() || rule == Rule::BruteForce) {
        Tier::Month
    } else {
        tier
    };
    Alert {
        id: String::new(),
        rule,
        tier,
        src,
        dst,
        service: service.to_string(),
        first_seen_ns: first,
        last_seen_ns: last,
        detected_ns: detected,
        attempts,
        distinct_targets: distinct,
        failed_ratio,
        allowlisted,
        infection_sign: worm && !allowlisted && c.is_internal(src),
        evidence,
        basis: Basis::Flow,
    }
}

/// Runs every rule over the inputs and builds the propagation graph.
///
/// The inputs may come in any order: they are sorted internally (flows by
/// `(ts_first, first_packet)`, DNS and ARP events by all their fields), so the result
/// depends only on the set of inputs, never on how many threads produced them (as long
/// as there are at most [`DetectConfig::max_pending_flows`] usable flows; see
/// [`Detector`] for more).
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

/// Which flows any rule (or the propagation graph) can use: to a worm service or an
/// exposed port, or to a honeypot or C&C address. [`Detector::push`] drops the others.
#[derive(Clone)]
pub struct FlowFilter<'a> {
    c: &'a DetectConfig,
    addresses: HashSet<IpAddr>,
}

impl FlowFilter<'_> {
    /// Whether a flow of IP protocol `proto` to port `resp_port` of the address
    /// `resp_addr` returns is usable. The address is asked for only when the port does
    /// not decide and some honeypot or C&C address is known, so a caller reading stored
    /// flows parses it only then.
    pub fn wants(
        &self,
        proto: u8,
        has_ports: bool,
        resp_port: u16,
        resp_addr: impl FnOnce() -> Option<IpAddr>,
    ) -> bool {
        let port_of_interest = has_ports
            && (self.c.service_index(proto, resp_port).is_some()
                || self.c.exposed_ports.contains(&resp_port));
        port_of_interest
            || (!self.addresses.is_empty()
                && resp_addr().is_some_and(|a| self.addresses.contains(&a)))
    }
}

/// A worm-service contact that did not fail, kept for the propagation graph: completed
/// sessions are candidate infection vectors, and any answered contact from an attacker
/// makes its peer a target.
struct Session {
    ts: i64,
    first_packet: u64,
    src: IpAddr,
    dst: IpAddr,
    svc: usize,
    completed: bool,
}

/// Detection over a stream of flows, with bounded memory.
///
/// DNS and ARP events are given up front (they name the C&C addresses the flow rules
/// look for). Flows are [`pushed`](Detector::push) in any order; those no rule can use
/// are counted and dropped at once, the others gathered up to
/// [`DetectConfig::max_pending_flows`], sorted by `(ts_first, first_packet)` and run
/// through the rules, whose state per source and per pair is capped
/// ([`DetectConfig::max_sources`]). Only worm-service contacts that did not fail are
/// kept for the graph. [`Detector::finish`] turns the state into alerts, edges and hosts.
pub struct Detector<'a> {
    c: &'a DetectConfig,
    dns: Vec<&'a DnsEvent>,
    arp: Vec<&'a ArpEvent>,
    /// Protocol facts of the run's sessions, sorted.
    session_events: Vec<&'a SessionEvent>,
    stats: DetectStats,
    cnc_ips: HashMap<IpAddr, String>,
    honeypots: HashSet<IpAddr>,
    filter: FlowFilter<'a>,
    ln_fail: f64,
    ln_succ: f64,
    pending: Vec<FlowRecord>,
    last_key: Option<(i64, u64)>,
    trw: HashMap<IpAddr, TrwState>,
    fan: HashMap<(IpAddr, usize), FanState>,
    brute: HashMap<(IpAddr, IpAddr, usize), BruteState>,
    /// (source, destination, first_packet) of the session that ended a brute-force run
    /// successfully.
    brute_success: HashSet<(IpAddr, IpAddr, u64)>,
    cnc_flows: HashMap<(IpAddr, IpAddr), CountState>,
    honey: HashMap<(IpAddr, IpAddr), CountState>,
    exposed: HashMap<(IpAddr, u16), CountState>,
    sessions: Vec<Session>,
}

impl<'a> Detector<'a> {
    /// A detector for `config`, with the run's DNS and ARP events.
    pub fn new(config: &'a DetectConfig, dns: &'a [DnsEvent], arp: &'a [ArpEvent]) -> Self {
        let c = config;
        let mut dns: Vec<&DnsEvent> = dns.iter().collect();
        dns.sort();
        let mut arp: Vec<&ArpEvent> = arp.iter().collect();
        arp.sort();
        let cnc_ips = cnc_addresses(c, &dns);
        Detector {
            c,
            stats: DetectStats {
                dns_events: dns.len() as u64,
                arp_events: arp.len() as u64,
                ..DetectStats::default()
            },
            filter: FlowFilter {
                c,
                addresses: (c.honeypots.iter().chain(cnc_ips.keys()).copied()).collect(),
            },
            cnc_ips,
            dns,
            arp,
            session_events: Vec::new(),
            honeypots: c.honeypots.iter().copied().collect(),
            ln_fail: ((1.0 - c.trw.theta1) / (1.0 - c.trw.theta0)).ln(),
            ln_succ: (c.trw.theta1 / c.trw.theta0).ln(),
            pending: Vec::new(),
            last_key: None,
            trw: HashMap::new(),
            fan: HashMap::new(),
            brute: HashMap::new(),
            brute_success: HashSet::new(),
            cnc_flows: HashMap::new(),
            honey: HashMap::new(),
            exposed: HashMap::new(),
            sessions: Vec::new(),
        }
    }

    /// Adds the protocol facts of the run's sessions (`sessions.parquet`): exploit and
    /// implant alerts, brute force counted in logins, and the sessions that delivered an
    /// infection. Without them every rule reads flow shapes only.
    pub fn with_sessions(mut self, sessions: &'a [SessionEvent]) -> Self {
        self.session_events = sessions.iter().collect();
        self.session_events.sort();
        self.stats.session_events = self.session_events.len() as u64;
        self
    }

    /// Takes one flow.
    pub fn push(&mut self, f: &FlowRecord) {
        self.stats.flows += 1;
        if !self.usable(f) {
            return;
        }
        self.stats.flows_used += 1;
        self.pending.push(f.clone());
        if self.pending.len() >= self.c.max_pending_flows.max(1) {
            self.run_pending();
        }
    }

    /// Whether any rule (or the graph) can use `f`.
    fn usable(&self, f: &FlowRecord) -> bool {
        self.filter
            .wants(f.proto, f.has_ports, f.resp_port, || Some(f.resp_addr))
    }

    /// The test [`Detector::push`] applies first, for callers that can skip building
    /// flows no rule would use.
    pub fn flow_filter(&self) -> FlowFilter<'a> {
        self.filter.clone()
    }

    /// Sorts the gathered flows and runs them through the rules.
    fn run_pending(&mut self) {
        let mut flows = std::mem::take(&mut self.pending);
        // Sort 24-byte (time, packet, position) entries rather than the ~200-byte records
        // themselves; the rest of the flow key only breaks ties.
        let tie_break =
            |f: &FlowRecord| (f.orig_addr, f.orig_port, f.resp_addr, f.resp_port, f.proto);
        let mut order: Vec<(i64, u64, usize)> = flows
            .iter()
            .enumerate()
            .map(|(i, f)| (f.ts_first, f.first_packet, i))
            .collect();
        order.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| tie_break(&flows[a.2]).cmp(&tie_break(&flows[b.2])))
        });
        if let Some(last) = self.last_key {
            let late = order.partition_point(|&(ts, packet, _)| (ts, packet) < last);
            self.stats.late_flows += late as u64;
        }
        for &(_, _, i) in &order {
            self.observe(&flows[i]);
        }
        if let Some(&(ts, packet, _)) = order.last() {
            let key = (ts, packet);
            self.last_key = Some(self.last_key.map_or(key, |k| k.max(key)));
        }
        flows.clear();
        self.pending = flows;
    }

    /// One flow through every flow rule: TRW, fan-out, brute force, C&C IP, honeypot,
    /// exposure.
    fn observe(&mut self, f: &FlowRecord) {
        self.observe_contacts(f);
        let Some(svc) = f
            .has_ports
            .then(|| self.c.service_index(f.proto, f.resp_port))
            .flatten()
        else {
            return;
        };
        let failed = is_failed(f);
        if f.orig_addr != f.resp_addr && !failed {
            self.keep_session(f, svc);
        }
        if self.make_room_for(f.orig_addr) {
            self.observe_first_contact(f, svc, failed);
        }
        if is_completed(f) {
            self.observe_session(f, svc);
        }
    }

    fn pair_cap(&self) -> usize {
        self.c.max_sources.max(8).saturating_mul(64)
    }

    fn observe_contacts(&mut self, f: &FlowRecord) {
        let (src, dst, ts) = (f.orig_addr, f.resp_addr, f.ts_first);
        let (c, cap, pair_cap) = (self.c, self.c.max_tracked.max(1), self.pair_cap());
        let stats = &mut self.stats;
        if self.honeypots.contains(&dst) {
            if let Some(s) = capped_entry(&mut self.honey, (src, dst), pair_cap, stats) {
                s.touch(ts);
            }
        }
        if let Some(why) = self.cnc_ips.get(&dst) {
            if let Some(s) = capped_entry(&mut self.cnc_flows, (src, dst), pair_cap, stats) {
                s.touch(ts);
                if s.notes.is_empty() {
                    s.notes.push(why.clone());
                }
            }
        }
        if f.has_ports
            && c.exposed_ports.contains(&f.resp_port)
            && !c.is_internal(src)
            && c.is_internal(dst)
            && is_completed(f)
        {
            let key = (dst, f.resp_port);
            if let Some(s) = capped_entry(&mut self.exposed, key, pair_cap, stats) {
                s.touch(ts);
                s.peers.insert(src, cap, stats);
            }
        }
    }

    fn keep_session(&mut self, f: &FlowRecord, svc: usize) {
        if self.sessions.len() >= self.pair_cap() {
            self.stats.entries_refused += 1;
            return;
        }
        self.sessions.push(Session {
            ts: f.ts_first,
            first_packet: f.first_packet,
            src: f.orig_addr,
            dst: f.resp_addr,
            svc,
            completed: is_completed(f),
        });
    }

    /// Whether `src` has (or now got) a TRW walk: at `max_sources`, the least recently
    /// active eighth of the unflagged sources is evicted first. Eviction follows the
    /// sorted flow order, so it is as deterministic as the rules.
    fn make_room_for(&mut self, src: IpAddr) -> bool {
        if self.trw.contains_key(&src) || self.trw.len() < self.c.max_sources.max(8) {
            return true;
        }
        let n_svc = self.c.services.len();
        let mut idle: Vec<(i64, IpAddr)> = self
            .trw
            .iter()
            .filter(|(_, t)| !t.flagged())
            .map(|(&ip, t)| (t.last_seen, ip))
            .collect();
        if idle.is_empty() {
            self.stats.entries_refused += 1;
            return false;
        }
        // The oldest eighth: a unique set, as (last_seen, ip) pairs are distinct.
        let n = (self.trw.len() / 8).clamp(1, idle.len());
        idle.select_nth_unstable(n - 1);
        idle.truncate(n);
        for &(_, ip) in &idle {
            self.trw.remove(&ip);
            for s in 0..n_svc {
                self.fan.remove(&(ip, s));
            }
        }
        self.stats.sources_evicted += idle.len() as u64;
        true
    }

    /// TRW over first contacts of this source (any worm service), and fan-out per
    /// (source, service).
    fn observe_first_contact(&mut self, f: &FlowRecord, svc: usize, failed: bool) {
        let (c, cap) = (self.c, self.c.max_tracked.max(1));
        let (src, dst, ts) = (f.orig_addr, f.resp_addr, f.ts_first);
        let (ln_eta1, ln_eta0) = (c.trw.eta1().ln(), c.trw.eta0().ln());
        let t = self.trw.entry(src).or_default();
        t.last_seen = ts;
        if t.contacted.insert(dst, cap, &mut self.stats) == Some(true) {
            if t.first_contacts == 0 {
                t.first_ts = ts;
            }
            t.first_contacts += 1;
            t.last_ts = ts;
            if failed {
                t.failed += 1;
            } else {
                t.successes += 1;
            }
            let fail_hit = failed
                && c.failed_threshold > 0
                && window_hit(&mut t.failures, ts, c.failed_threshold, c.failed_window_ns);
            if fail_hit && t.failed_detected.is_none() {
                let first = t.failures.front().copied().unwrap_or(ts);
                t.failed_detected = Some((ts, svc, first));
            }
            if t.detected.is_none() {
                if failed && t.walk_first_fail.is_none() {
                    t.walk_first_fail = Some(ts);
                }
                t.llr += if failed { self.ln_fail } else { self.ln_succ };
                if t.llr >= ln_eta1 - 1e-9 {
                    t.detected = Some((ts, svc));
                    t.evidence = t.walk_first_fail.unwrap_or(ts);
                } else if t.llr <= ln_eta0 {
                    // Benign for now; restart the walk so a later scan is still caught.
                    t.llr = 0.0;
                    t.walk_first_fail = None;
                }
            }
        }

        let s = self.fan.entry((src, svc)).or_default();
        if s.attempts == 0 {
            s.first_ts = ts;
        }
        s.attempts += 1;
        s.last_ts = ts;
        if s.dsts.insert(dst, cap, &mut self.stats) == Some(true) {
            s.first_contacts += 1;
            if failed {
                s.failed += 1;
            } else {
                s.successes += 1;
            }
            if window_hit(&mut s.recent, ts, c.fanout_threshold, c.scan_window_ns)
                && s.detected.is_none()
            {
                s.detected = Some(ts);
                s.evidence = s.recent.front().copied().unwrap_or(ts);
                if let Some(t) = self.trw.get_mut(&src) {
                    t.fan_detected = true;
                }
            }
        }
    }

    /// Brute force per (source, destination, service), over completed sessions.
    fn observe_session(&mut self, f: &FlowRecord, svc: usize) {
        let c = self.c;
        let (src, dst, ts) = (f.orig_addr, f.resp_addr, f.ts_first);
        let short = f.ts_last - f.ts_first <= c.brute_max_session_ns;
        let pair_cap = self.pair_cap();
        let Some(b) = capped_entry(&mut self.brute, (src, dst, svc), pair_cap, &mut self.stats)
        else {
            return;
        };
        let bytes = f.orig.payload_bytes + f.resp.payload_bytes;
        if b.short_sessions > 0 && b.success.is_none() && (!short || bytes >= c.brute_success_bytes)
        {
            b.success = Some(f.first_packet);
            self.brute_success.insert((src, dst, f.first_packet));
        }
        if short {
            if b.short_sessions == 0 {
                b.first_ts = ts;
            }
            b.short_sessions += 1;
            b.last_ts = ts;
            if window_hit(&mut b.recent, ts, c.brute_threshold, c.brute_window_ns)
                && b.detected.is_none()
            {
                b.detected = Some(ts);
                b.evidence = b.recent.front().copied().unwrap_or(ts);
            }
        }
    }

    /// Runs the last gathered flows, then the DNS and ARP rules, and builds alerts, the
    /// propagation graph and host roles.
    pub fn finish(mut self) -> Detection {
        self.run_pending();
        let Detector {
            c,
            dns,
            arp,
            session_events,
            mut stats,
            trw,
            fan,
            brute,
            brute_success,
            cnc_flows,
            honey,
            exposed,
            mut sessions,
            ..
        } = self;
        let cap = c.max_tracked.max(1);
        let found = protocol::run(c, &session_events);
        let mut alerts = found.alerts;

        // ---- Alerts from flow state.
        // First evidence of the behaviour each threshold alert detected, when it is later
        // than the alert's `first_seen_ns` (the walk, window or sweep that crossed).
        let mut evidence: HashMap<EvidenceKey, i64> = HashMap::new();
        for (&src, t) in &trw {
            let Some((at, svc)) = t.detected else {
                continue;
            };
            evidence.insert(
                (Rule::Trw, src, None, c.services[svc].name.clone()),
                t.evidence,
            );
            let text = format!(
                "TRW crossed eta1={:.0} at {:.3}s; {} first contacts on worm services, {} failed{}",
                c.trw.eta1(),
                secs(at),
                t.first_contacts,
                t.failed,
                if t.contacted.saturated() {
                    " (beyond the exact set: estimated)"
                } else {
                    ""
                }
            );
            let service = &c.services[svc].name;
            alerts.push(alert(c, t.finding(c, Rule::Trw, src, service, at, text)));
        }
        for (&src, t) in &trw {
            let Some((at, svc, first)) = t.failed_detected else {
                continue;
            };
            let service = c.services[svc].name.clone();
            evidence.insert((Rule::FailedContacts, src, None, service.clone()), first);
            let text = format!(
                "{} failed first contacts on worm services within {:.0}s (from {:.3}s); \
                 {} first contacts in all, {} failed",
                c.failed_threshold,
                secs(c.failed_window_ns),
                secs(first),
                t.first_contacts,
                t.failed
            );
            let finding = t.finding(c, Rule::FailedContacts, src, &service, at, text);
            alerts.push(alert(c, finding));
        }
        for (&(src, svc), s) in &fan {
            let Some(at) = s.detected else {
                continue;
            };
            evidence.insert(
                (Rule::ScanFanout, src, None, c.services[svc].name.clone()),
                s.evidence,
            );
            let fr = ratio(s.failed, s.first_contacts);
            let worm = fr >= c.fanout_min_failed_ratio;
            let internal = c.is_internal(src);
            let tier = if worm && internal && s.successes > 0 {
                Tier::Hour
            } else {
                Tier::Day
            };
            let dir = s
                .dsts
                .set
                .iter()
                .map(|&d| direction(c, src, d))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join("+");
            let evidence = format!(
                "{}+ distinct {} destinations ({}) within {:.0}s; {} distinct in all, \
                 {} of {} first contacts failed{}",
                c.fanout_threshold,
                c.services[svc].name,
                dir,
                secs(c.scan_window_ns),
                s.dsts.len(),
                s.failed,
                s.first_contacts,
                if worm {
                    ""
                } else {
                    " (mostly successful: heavy hitter or unconfirmed)"
                }
            );
            alerts.push(alert(
                c,
                Finding {
                    rule: Rule::ScanFanout,
                    tier,
                    src,
                    dst: None,
                    service: &c.services[svc].name,
                    first: s.first_ts,
                    last: s.last_ts,
                    detected: at,
                    attempts: s.attempts,
                    distinct: s.dsts.len(),
                    failed_ratio: fr,
                    worm,
                    evidence,
                },
            ));
        }
        for (&(src, dst, svc), b) in &brute {
            let Some(at) = b.detected else {
                continue;
            };
            // Where the protocol shows the logins, they decide (see `protocol`).
            if found
                .login_pairs
                .contains(&(src, dst, c.services[svc].name.clone()))
            {
                continue;
            }
            evidence.insert(
                (
                    Rule::BruteForce,
                    src,
                    Some(dst),
                    c.services[svc].name.clone(),
                ),
                b.evidence,
            );
            let tier = if b.success.is_some() {
                Tier::Hour
            } else {
                Tier::Week
            };
            alerts.push(alert(
                c,
                Finding {
                    rule: Rule::BruteForce,
                    tier,
                    src,
                    dst: Some(dst),
                    service: &c.services[svc].name,
                    first: b.first_ts,
                    last: b.last_ts,
                    detected: at,
                    attempts: b.short_sessions,
                    distinct: 1,
                    failed_ratio: 0.0,
                    worm: true,
                    evidence: format!(
                        "{}+ short {} sessions within {:.0}s ({} in all, {}){}",
                        c.brute_threshold,
                        c.services[svc].name,
                        secs(c.brute_window_ns),
                        b.short_sessions,
                        direction(c, src, dst),
                        match b.success {
                            Some(p) =>
                                format!("; likely success: long/large session at packet {p}"),
                            None => "; no sign of success".to_string(),
                        }
                    ),
                },
            ));
        }
        for (&(src, dst), s) in &cnc_flows {
            let notes = s.notes.join(", ");
            let evidence = format!("{} flows to C&C address {dst} ({notes})", s.attempts);
            alerts.push(alert(c, s.finding(Rule::CncIp, src, Some(dst), evidence)));
        }
        for (&(src, dst), s) in &honey {
            let evidence = format!("{} flows to honeypot {dst}", s.attempts);
            // An internal host probing the honeypot is spreading (hour); an outside one is
            // unconfirmed scanning (day).
            let tier = if c.is_internal(src) {
                Tier::Hour
            } else {
                Tier::Day
            };
            let finding = Finding {
                tier,
                ..s.finding(Rule::Honeypot, src, Some(dst), evidence)
            };
            alerts.push(alert(c, finding));
        }
        for (&(server, port), s) in &exposed {
            let svc = c
                .services
                .iter()
                .find(|x| x.port == port && x.proto == TCP)
                .map(|x| x.name.clone())
                .unwrap_or_else(|| format!("tcp/{port}"));
            let mut peers: Vec<IpAddr> = s.peers.set.iter().copied().collect();
            peers.sort();
            let shown: Vec<String> = peers.iter().take(5).map(|p| p.to_string()).collect();
            let evidence = format!(
                "{} completed inbound {svc} sessions from {} external hosts ({}{})",
                s.attempts,
                s.peers.len(),
                shown.join(", "),
                if peers.len() > 5 { ", …" } else { "" }
            );
            let finding = Finding {
                tier: Tier::Day,
                service: &svc,
                distinct: s.peers.len(),
                worm: false,
                ..s.finding(Rule::ExposedService, server, None, evidence)
            };
            alerts.push(alert(c, finding));
        }

        // ---- ARP sweeps.
        // Per requester: targets, window, counts, and (detection time, first evidence).
        type ArpState = (CappedSet, VecDeque<i64>, CountState, Option<(i64, i64)>);
        let mut arp_state: HashMap<std::net::Ipv4Addr, ArpState> = HashMap::new();
        for e in arp.iter().filter(|e| e.is_request && e.sender != e.target) {
            let (set, q, count, det) = arp_state.entry(e.sender).or_default();
            count.touch(e.ts_ns);
            if set.insert(IpAddr::V4(e.target), cap, &mut stats) == Some(true)
                && window_hit(q, e.ts_ns, c.arp_threshold, c.arp_window_ns)
                && det.is_none()
            {
                *det = Some((e.ts_ns, q.front().copied().unwrap_or(e.ts_ns)));
            }
        }
        for (&sender, (set, _, count, det)) in &arp_state {
            let Some((at, ev)) = *det else {
                continue;
            };
            evidence.insert((Rule::ArpSweep, IpAddr::V4(sender), None, "arp".into()), ev);
            alerts.push(alert(
                c,
                Finding {
                    rule: Rule::ArpSweep,
                    tier: Tier::Day,
                    src: IpAddr::V4(sender),
                    dst: None,
                    service: "arp",
                    first: count.first_ts,
                    last: count.last_ts,
                    detected: at,
                    attempts: count.attempts,
                    distinct: set.len(),
                    failed_ratio: 0.0,
                    worm: true,
                    evidence: format!(
                        "{}+ distinct who-has targets within {:.0}s; {} distinct in all",
                        c.arp_threshold,
                        secs(c.arp_window_ns),
                        set.len()
                    ),
                },
            ));
        }

        // ---- C&C DNS, attributing forwarded lookups to the client that asked.
        let queries: Vec<(&DnsEvent, &str, &str)> = dns
            .iter()
            .filter(|e| !e.is_response)
            .filter_map(|e| {
                let q = e.qname.as_deref()?;
                Some((*e, q, c.cnc_domain_match(q)?))
            })
            .collect();
        let mut asked: HashMap<(IpAddr, &str), Vec<(i64, IpAddr)>> = HashMap::new();
        for &(e, q, _) in &queries {
            asked
                .entry((e.server, q))
                .or_default()
                .push((e.ts_ns, e.client));
        }
        let mut cnc_dns: HashMap<IpAddr, (CountState, IpAddr, Vec<String>)> = HashMap::new();
        let mut forwarded: HashMap<IpAddr, u64> = HashMap::new();
        for &(e, q, _) in &queries {
            let fwd = asked.get(&(e.client, q)).is_some_and(|v| {
                v.iter().any(|&(t, cl)| {
                    cl != e.client && t <= e.ts_ns && e.ts_ns - t <= c.dns_forward_window_ns
                })
            });
            if fwd {
                *forwarded.entry(e.client).or_default() += 1;
                continue;
            }
            let (s, _, names) = cnc_dns
                .entry(e.client)
                .or_insert_with(|| (CountState::default(), e.server, Vec::new()));
            s.touch(e.ts_ns);
            if names.len() < 5 && !names.iter().any(|n| n == q) {
                names.push(q.to_string());
            }
        }
        for (&client, (s, server, names)) in &cnc_dns {
            alerts.push(alert(
                c,
                Finding {
                    rule: Rule::CncDns,
                    tier: Tier::Hour,
                    src: client,
                    dst: Some(*server),
                    service: "dns",
                    first: s.first_ts,
                    last: s.last_ts,
                    detected: s.first_ts,
                    attempts: s.attempts,
                    distinct: names.len() as u64,
                    failed_ratio: 0.0,
                    worm: true,
                    evidence: format!("{} queries for C&C names: {}", s.attempts, names.join(", ")),
                },
            ));
        }
        for a in alerts.iter_mut().filter(|a| a.rule == Rule::CncDns) {
            if let Some(n) = forwarded.get(&a.src) {
                a.evidence
                    .push_str(&format!("; also forwarded {n} such lookups for clients"));
            }
        }

        // ---- Ids in time order.
        alerts.sort_by(|a, b| {
            (
                a.first_seen_ns,
                a.rule,
                a.src,
                a.dst,
                &a.service,
                a.detected_ns,
            )
                .cmp(&(
                    b.first_seen_ns,
                    b.rule,
                    b.src,
                    b.dst,
                    &b.service,
                    b.detected_ns,
                ))
        });
        for (i, a) in alerts.iter_mut().enumerate() {
            a.id = format!("A{:04}", i + 1);
        }

        sessions.sort_unstable_by_key(|s| (s.ts, s.first_packet, s.src, s.dst, s.svc));
        let flow_evidence = FlowEvidence {
            sessions: &sessions,
            evidence: &evidence,
            brute_success: &brute_success,
        };
        let (edges, hosts) = build_graph(c, &flow_evidence, &alerts, &found.deliveries);
        Detection {
            alerts,
            edges,
            hosts,
            stats,
        }
    }
}

/// C&C addresses: listed, plus the A/AAAA answers to C&C names.
fn cnc_addresses(c: &DetectConfig, dns: &[&DnsEvent]) -> HashMap<IpAddr, String> {
    let mut cnc_ips: HashMap<IpAddr, String> = c
        .cnc_ips
        .iter()
        .map(|&ip| (ip, "listed".to_string()))
        .collect();
    for e in dns.iter().filter(|e| e.is_response) {
        let Some(name) = e.qname.as_deref() else {
            continue;
        };
        if c.cnc_domain_match(name).is_some() {
            for ip in e.answers.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                cnc_ips
                    .entry(ip)
                    .or_insert_with(|| format!("resolved from {name}"));
            }
        }
    }
    cnc_ips
}

/// The state of `key`, created if there is room for one more of at most `cap` entries;
/// `None` (counted) when the table is full.
fn capped_entry<'m, K: std::hash::Hash + Eq, V: Default>(
    map: &'m mut HashMap<K, V>,
    key: K,
    cap: usize,
    stats: &mut DetectStats,
) -> Option<&'m mut V> {
    if !map.contains_key(&key) && map.len() >= cap {
        stats.entries_refused += 1;
        return None;
    }
    Some(map.entry(key).or_default())
}

/// What the flow rules leave for the propagation graph.
struct FlowEvidence<'e> {
    /// Worm-service sessions that did not fail, in (ts, first_packet) order.
    sessions: &'e [Session],
    /// First evidence of each threshold alert's behaviour.
    evidence: &'e HashMap<EvidenceKey, i64>,
    /// (source, destination, first_packet) of sessions that ended a brute-force run.
    brute_success: &'e HashSet<(IpAddr, IpAddr, u64)>,
}

/// A child's candidate parent from flow timing: its sessions on a worm service after the
/// parent's infection and before the child's.
struct FlowCandidate {
    /// First completed session: (ts_first, first_packet, service).
    first: (i64, u64, usize),
    /// First brute-force success session, same layout.
    delivered: Option<(i64, u64, usize)>,
    /// `first_packet` of every supporting session.
    flows: Vec<u64>,
}

/// Infection times, parents, generations and host roles.
///
/// A parent is chosen from the protocol first: the delivering session (the exploit the
/// implant then answered, or a successful login after guessing) names it, and its time
/// is the infection time. Flow timing decides only where the protocol shows nothing.
fn build_graph(
    c: &DetectConfig,
    flows: &FlowEvidence<'_>,
    alerts: &[Alert],
    deliveries: &[Delivery],
) -> (Vec<Edge>, Vec<HostRow>) {
    // Two times per infected host: when its infection or worm behaviour was first seen,
    // which orders the graph and bounds parents, and when a rule first detected it
    // (first_malicious_at, time to detect).
    let mut infected_at: HashMap<IpAddr, i64> = HashMap::new();
    let mut detected_at: HashMap<IpAddr, i64> = HashMap::new();
    for a in alerts.iter().filter(|a| a.infection_sign) {
        let ev = flows
            .evidence
            .get(&(a.rule, a.src, a.dst, a.service.clone()))
            .copied()
            .unwrap_or(a.first_seen_ns)
            .min(a.detected_ns);
        let t = infected_at.entry(a.src).or_insert(ev);
        *t = (*t).min(ev);
        let d = detected_at.entry(a.src).or_insert(a.detected_ns);
        *d = (*d).min(a.detected_ns);
    }
    // An exploit the implant then answered infected its target when it was sent.
    for d in deliveries.iter().filter(|d| d.confirmed) {
        if let Some(t) = infected_at.get_mut(&d.child) {
            *t = (*t).min(d.ts);
        }
    }
    let brute_pairs: HashSet<(IpAddr, IpAddr, &str)> = alerts
        .iter()
        .filter(|a| a.rule == Rule::BruteForce)
        .filter_map(|a| Some((a.src, a.dst?, a.service.as_str())))
        .collect();
    let attackers: HashSet<IpAddr> = alerts
        .iter()
        .filter(|a| !a.allowlisted && a.rule != Rule::ExposedService && a.rule != Rule::Implant)
        .map(|a| a.src)
        .collect();
    let (cands, mut targets) = flow_candidates(c, flows, &infected_at, &attackers, &brute_pairs);
    targets.extend(
        alerts
            .iter()
            .filter(|a| a.rule == Rule::Exploit)
            .filter_map(|a| a.dst.filter(|&d| c.is_internal(d))),
    );

    // Infected hosts in infection order; each takes the parent the protocol names, else
    // the one flow timing suggests. A parent must have been infected by the session's
    // time and must not descend from the child, so the graph has no cycles.
    let mut order: Vec<(i64, IpAddr)> = infected_at.iter().map(|(&ip, &t)| (t, ip)).collect();
    order.sort();
    let mut edges: Vec<Edge> = Vec::new();
    let mut parent_of: HashMap<IpAddr, IpAddr> = HashMap::new();
    for &(tc, child) in &order {
        let descends = |p: IpAddr, parent_of: &HashMap<IpAddr, IpAddr>| {
            let mut at = p;
            // A chain is at most as long as the hosts in it.
            for _ in 0..=parent_of.len() {
                if at == child {
                    return true;
                }
                match parent_of.get(&at) {
                    Some(&up) => at = up,
                    None => return false,
                }
            }
            true
        };
        let eligible = |p: IpAddr, ts: i64| match infected_at.get(&p) {
            Some(&tp) => tp <= ts && p != child && !descends(p, &parent_of),
            None => !c.is_internal(p),
        };
        let delivered = deliveries
            .iter()
            .filter(|d| d.child == child && (d.confirmed || d.ts <= tc))
            .filter(|d| eligible(d.parent, d.ts))
            .min_by_key(|d| (!d.confirmed, d.ts, d.packet, d.parent));
        let edge = match delivered {
            Some(d) => Some(delivered_edge(d, cands.get(&child))),
            None => cands
                .get(&child)
                .and_then(|m| flow_edge(c, child, tc, m, &infected_at, &attackers, &brute_pairs)),
        };
        if let Some(e) = edge {
            parent_of.insert(child, e.parent);
            edges.push(e);
        }
    }
    // A delivering session can precede the child's first behaviour: order by the edges'
    // own infection times, as propagation.parquet documents.
    edges.sort_by_key(|e| (e.infected_at_ns, e.child));
    let generation = generations(&order, &parent_of);

    // Host rows.
    let mut ips: HashSet<IpAddr> = HashSet::new();
    for a in alerts {
        ips.insert(a.src);
        if let Some(d) = a.dst.filter(|&d| c.is_internal(d)) {
            ips.insert(d);
        }
    }
    ips.extend(targets.iter().copied());
    ips.extend(edges.iter().map(|e| e.parent));
    let mut by_src: HashMap<IpAddr, Vec<&Alert>> = HashMap::new();
    for a in alerts {
        by_src.entry(a.src).or_default().push(a);
    }
    let of = |ip: IpAddr| by_src.get(&ip).map_or(&[][..], Vec::as_slice);
    let first_of = |ip: IpAddr, pred: &dyn Fn(Rule) -> bool| {
        of(ip)
            .iter()
            .filter(|a| pred(a.rule))
            .map(|a| a.detected_ns)
            .min()
    };
    let parents: HashSet<IpAddr> = edges.iter().map(|e| e.parent).collect();
    let mut hosts: Vec<HostRow> = ips
        .into_iter()
        .map(|ip| {
            let inf = detected_at.get(&ip).copied();
            let parent = parent_of.get(&ip).copied();
            let has = |r: Rule| of(ip).iter().any(|a| a.rule == r);
            let role = if inf.is_some() {
                match parent {
                    Some(p) if c.is_internal(p) => Role::Infected,
                    _ => Role::PatientZero,
                }
            } else if c.is_allowlisted(ip) && !of(ip).is_empty() {
                Role::ScannerAllowlisted
            } else if !c.is_internal(ip) && (parents.contains(&ip) || attackers.contains(&ip)) {
                Role::ExternalAttacker
            } else if has(Rule::ExposedService) {
                Role::Exposed
            } else if targets.contains(&ip) {
                Role::Target
            } else {
                Role::Clean
            };
            let first_malicious_at = inf.or_else(|| {
                (role == Role::ScannerAllowlisted)
                    .then(|| first_of(ip, &|_| true))
                    .flatten()
            });
            HostRow {
                ip,
                role,
                first_malicious_at,
                first_cnc_at: first_of(ip, &|r| r.is_cnc()),
                first_scan_at: first_of(ip, &|r| r.is_scan()),
                parent,
                generation: inf.and(generation.get(&ip).copied()),
            }
        })
        .collect();
    hosts.sort_by_key(|h| (inf_key(h), h.ip));
    (edges, hosts)
}

/// Per infected child, per candidate parent, the flow sessions that could have infected
/// it; and the hosts that infected hosts or attackers reached.
fn flow_candidates(
    c: &DetectConfig,
    flows: &FlowEvidence<'_>,
    infected_at: &HashMap<IpAddr, i64>,
    attackers: &HashSet<IpAddr>,
    brute_pairs: &HashSet<(IpAddr, IpAddr, &str)>,
) -> (
    HashMap<IpAddr, HashMap<IpAddr, FlowCandidate>>,
    HashSet<IpAddr>,
) {
    let mut cands: HashMap<IpAddr, HashMap<IpAddr, FlowCandidate>> = HashMap::new();
    let mut targets: HashSet<IpAddr> = HashSet::new();
    for f in flows.sessions {
        let (p, child, svc) = (f.src, f.dst, f.svc);
        let p_bad =
            infected_at.contains_key(&p) || (attackers.contains(&p) && !c.is_allowlisted(p));
        if p_bad && c.is_internal(child) {
            targets.insert(child);
        }
        let Some(&tc) = infected_at.get(&child) else {
            continue;
        };
        if f.ts > tc || !f.completed {
            continue;
        }
        // The parent must itself have been infected (first evidence) by the time of the
        // session, or be an outside attacker.
        let p_ok = match infected_at.get(&p) {
            Some(&tp) => tp <= f.ts && tp < tc,
            None => !c.is_internal(p),
        };
        if !p_ok {
            continue;
        }
        // Sessions are in (ts, first_packet) order: the first seen is the earliest.
        let key = (f.ts, f.first_packet, svc);
        let e = cands
            .entry(child)
            .or_default()
            .entry(p)
            .or_insert(FlowCandidate {
                first: key,
                delivered: None,
                flows: Vec::new(),
            });
        // Only runs the brute-force rule flagged count: one short session followed by a
        // long one is ordinary use, not a guessed password.
        if e.delivered.is_none()
            && flows.brute_success.contains(&(p, child, f.first_packet))
            && brute_pairs.contains(&(p, child, c.services[svc].name.as_str()))
        {
            e.delivered = Some(key);
        }
        e.flows.push(f.first_packet);
    }
    (cands, targets)
}

/// The edge of a session the protocol shows delivering the infection. Its evidence
/// flows are the parent's sessions to the child, the one holding the delivering packet
/// first.
fn delivered_edge(d: &Delivery, cands: Option<&HashMap<IpAddr, FlowCandidate>>) -> Edge {
    let mut ev: Vec<u64> = cands
        .and_then(|m| m.get(&d.parent))
        .map(|e| e.flows.clone())
        .unwrap_or_default();
    ev.sort_unstable();
    if let Some(i) = ev.iter().rposition(|&f| f <= d.packet) {
        let holding = ev.remove(i);
        ev.insert(0, holding);
    }
    ev.truncate(8);
    Edge {
        parent: d.parent,
        child: d.child,
        infected_at_ns: d.ts,
        vector: d.vector.clone(),
        seen: d.seen.clone(),
        basis: Basis::Protocol,
        confidence: if d.confirmed { 0.95 } else { 0.85 },
        evidence_flows: ev,
    }
}

/// The edge flow timing suggests: the session that ended a brute-force run
/// successfully when there is one, else the first completed session. Later sessions
/// before the child shows behaviour are re-exploitations (a fast worm's siblings hit the
/// just-infected host again before it starts scanning), not the infection.
fn flow_edge(
    c: &DetectConfig,
    child: IpAddr,
    tc: i64,
    cands: &HashMap<IpAddr, FlowCandidate>,
    infected_at: &HashMap<IpAddr, i64>,
    attackers: &HashSet<IpAddr>,
    brute_pairs: &HashSet<(IpAddr, IpAddr, &str)>,
) -> Option<Edge> {
    let ((ts, pkt, svc), p, e) = cands
        .iter()
        .filter_map(|(&p, e)| Some((e.delivered?, p, e)))
        .min_by_key(|&(k, p, _)| (k, p))
        .or_else(|| {
            cands
                .iter()
                .map(|(&p, e)| (e.first, p, e))
                .min_by_key(|&(k, p, _)| (k, p))
        })?;
    let svc = &c.services[svc];
    let brute = brute_pairs.contains(&(p, child, svc.name.as_str()));
    let mut conf = 0.5f32;
    if brute {
        conf += 0.2;
    }
    if infected_at.contains_key(&p) || attackers.contains(&p) {
        conf += 0.2;
    }
    if tc - ts <= 60_000_000_000 {
        conf += 0.1;
    }
    let mut ev = e.flows.clone();
    ev.sort_unstable();
    ev.retain(|&x| x != pkt);
    ev.insert(0, pkt);
    ev.truncate(8);
    let seen = if brute {
        format!(
            "short {} sessions, then a long or large one (flow shapes)",
            svc.name
        )
    } else {
        format!(
            "a completed {} session before the host's own worm behaviour (flow timing)",
            svc.name
        )
    };
    Some(Edge {
        parent: p,
        child,
        infected_at_ns: tc,
        vector: if brute {
            svc.bruteforce_vector.clone()
        } else {
            svc.vector.clone()
        },
        seen,
        basis: Basis::Flow,
        confidence: conf.min(1.0),
        evidence_flows: ev,
    })
}

/// Each infected host's generation: 0 for a root (also one infected from outside), else
/// its infected parent's plus one.
fn generations(
    order: &[(i64, IpAddr)],
    parent_of: &HashMap<IpAddr, IpAddr>,
) -> HashMap<IpAddr, u32> {
    let infected: HashSet<IpAddr> = order.iter().map(|&(_, ip)| ip).collect();
    let mut generation: HashMap<IpAddr, u32> = HashMap::new();
    for &(_, ip) in order {
        // Up to the first ancestor whose generation is known, or the root. The graph has
        // no cycles (see `build_graph`); the length check only bounds the walk.
        let mut chain = vec![ip];
        while let Some(&up) = chain.last().and_then(|h| parent_of.get(h)) {
            if !infected.contains(&up) || generation.contains_key(&up) || chain.len() > order.len()
            {
                break;
            }
            chain.push(up);
        }
        let top = chain[chain.len() - 1];
        let base = parent_of
            .get(&top)
            .and_then(|p| generation.get(p))
            .map_or(0, |g| g + 1);
        for (g, &h) in (base..).zip(chain.iter().rev()) {
            generation.insert(h, g);
        }
    }
    generation
}

fn inf_key(h: &HostRow) -> (u8, i64) {
    match h.role {
        Role::PatientZero | Role::Infected => (0, h.first_malicious_at.unwrap_or(i64::MAX)),
        _ => (1, 0),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

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
