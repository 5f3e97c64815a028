//! The propagation graph: who infected whom, when, and each host's role.
//!
//! The rules leave three things for it: the alerts (infection signs give infection
//! times), the sessions the protocol shows delivering an infection ([`Delivery`]), and
//! the worm-service sessions that did not fail ([`SessionLog`]), whose timing suggests a
//! parent where the protocol shows nothing.

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use crate::config::{Caps, DetectConfig};
use crate::identity::Identity;
use crate::model::{Alert, Basis, DetectStats, Edge, HostRow, Role, Rule};
use crate::rules::{EvidenceKey, FlowFacts};
use serde::{Deserialize, Serialize};

/// A session that put a worm on `child`, as the protocol shows it. Deliveries are
/// ordered by their fields in order (time first), whatever parts of a detection found
/// them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub ts: i64,
    pub packet: u64,
    pub parent: IpAddr,
    pub child: IpAddr,
    /// The service's vector name (`eternalblue_smb`, `smb_bruteforce`, …).
    pub vector: String,
    pub seen: String,
    /// Confirmed by the child afterwards (the implant answered, or a login succeeded
    /// after guessing): infects the child even with no behaviour of its own.
    pub confirmed: bool,
}

/// A worm-service contact that did not fail, kept for the graph: completed sessions are
/// candidate infection vectors, and any answered contact from an attacker makes its peer
/// a target.
#[derive(Serialize, Deserialize)]
struct Session {
    ts: i64,
    first_packet: u64,
    src: IpAddr,
    dst: IpAddr,
    svc: usize,
    completed: bool,
}

/// The worm-service sessions that did not fail, at most the pair cap (`Caps::pairs`).
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct SessionLog {
    sessions: Vec<Session>,
}

impl SessionLog {
    /// The services (indices into the rules' list) of the kept sessions.
    pub fn services(&self) -> impl Iterator<Item = usize> + '_ {
        self.sessions.iter().map(|s| s.svc)
    }

    /// The sessions the parts of a detection kept ([`build`] sorts them by time).
    pub fn merge(parts: impl IntoIterator<Item = SessionLog>) -> SessionLog {
        let sessions = parts.into_iter().flat_map(|p| p.sessions).collect();
        SessionLog { sessions }
    }

    /// Keeps `flow` if it is a worm-service contact that did not fail (refusals counted).
    pub fn keep(&mut self, flow: &FlowFacts<'_>, caps: Caps, stats: &mut DetectStats) {
        let f = flow.flow;
        let Some(svc) = flow.service else {
            return;
        };
        if f.orig_addr == f.resp_addr || f.failed {
            return;
        }
        if self.sessions.len() >= caps.pairs {
            stats.entries_refused += 1;
            return;
        }
        self.sessions.push(Session {
            ts: f.ts_first,
            first_packet: f.first_packet,
            src: f.orig_addr,
            dst: f.resp_addr,
            svc,
            completed: f.completed,
        });
    }
}

/// What the flow rules leave for the graph.
pub(crate) struct FlowEvidence<'e> {
    /// First evidence of each threshold alert's behaviour.
    pub first_evidence: &'e HashMap<EvidenceKey, i64>,
    /// (source, destination, first_packet) of sessions that ended a brute-force run.
    pub brute_success: &'e HashSet<(IpAddr, IpAddr, u64)>,
}

/// What the alerts say before the graph is drawn.
struct Suspects<'g> {
    /// When each infected host's infection or worm behaviour was first seen: orders the
    /// graph and bounds parents.
    infected_at: HashMap<IpAddr, i64>,
    /// When a rule first detected each infected host (first_malicious_at, time to
    /// detect).
    detected_at: HashMap<IpAddr, i64>,
    /// Sources of alerts, but for allowlisted hosts and exposure or implant alerts.
    attackers: HashSet<IpAddr>,
    /// (source, destination, service) of brute-force alerts.
    brute_pairs: HashSet<(IpAddr, IpAddr, &'g str)>,
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

/// Per infected child, per candidate parent.
type Candidates = HashMap<IpAddr, HashMap<IpAddr, FlowCandidate>>;

/// The parents chosen, in infection order.
struct Parents {
    /// Infected hosts by infection time.
    order: Vec<(i64, IpAddr)>,
    edges: Vec<Edge>,
    parent_of: HashMap<IpAddr, IpAddr>,
}

/// Infection times, parents, generations and host roles.
///
/// A parent is chosen from the protocol first: the delivering session (the exploit the
/// implant then answered, or a successful login after guessing) names it, and its time
/// is the infection time. Flow timing decides only where the protocol shows nothing.
pub(crate) fn build(
    c: &DetectConfig,
    mut log: SessionLog,
    flows: &FlowEvidence<'_>,
    alerts: &[Alert],
    deliveries: &[Delivery],
) -> (Vec<Edge>, Vec<HostRow>) {
    log.sessions
        .sort_unstable_by_key(|s| (s.ts, s.first_packet, s.src, s.dst, s.svc));
    let suspects = suspects(alerts, flows.first_evidence, deliveries);
    let (cands, mut targets) = flow_candidates(c, &log.sessions, flows, &suspects);
    targets.extend(
        alerts
            .iter()
            .filter(|a| a.rule == Rule::Exploit)
            .filter_map(|a| a.dst.filter(|&d| c.is_internal(d))),
    );
    let mut parents = choose_parents(c, &suspects, &cands, deliveries);
    // A delivering session can precede the child's first behaviour: order by the edges'
    // own infection times, as propagation.parquet documents.
    parents.edges.sort_by_key(|e| (e.infected_at_ns, e.child));
    let hosts = host_rows(c, alerts, &suspects, &targets, &parents);
    (parents.edges, hosts)
}

/// Infection and detection times of the hosts with infection signs, and the attackers.
fn suspects<'g>(
    alerts: &'g [Alert],
    first_evidence: &HashMap<EvidenceKey, i64>,
    deliveries: &[Delivery],
) -> Suspects<'g> {
    let mut infected_at: HashMap<IpAddr, i64> = HashMap::new();
    let mut detected_at: HashMap<IpAddr, i64> = HashMap::new();
    for a in alerts.iter().filter(|a| a.infection_sign) {
        let ev = first_evidence
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
    Suspects {
        infected_at,
        detected_at,
        attackers: alerts
            .iter()
            .filter(|a| !a.allowlisted && a.rule != Rule::ExposedService && a.rule != Rule::Implant)
            .map(|a| a.src)
            .collect(),
        brute_pairs: alerts
            .iter()
            .filter(|a| a.rule == Rule::BruteForce)
            .filter_map(|a| Some((a.src, a.dst?, a.service.as_str())))
            .collect(),
    }
}

/// Per infected child, per candidate parent, the flow sessions that could have infected
/// it; and the hosts that infected hosts or attackers reached.
fn flow_candidates(
    c: &DetectConfig,
    sessions: &[Session],
    flows: &FlowEvidence<'_>,
    suspects: &Suspects<'_>,
) -> (Candidates, HashSet<IpAddr>) {
    let infected_at = &suspects.infected_at;
    let mut cands: Candidates = HashMap::new();
    let mut targets: HashSet<IpAddr> = HashSet::new();
    for f in sessions {
        let (p, child, svc) = (f.src, f.dst, f.svc);
        let p_bad = infected_at.contains_key(&p)
            || (suspects.attackers.contains(&p) && !c.is_allowlisted(p));
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
            && suspects
                .brute_pairs
                .contains(&(p, child, c.services[svc].name.as_str()))
        {
            e.delivered = Some(key);
        }
        e.flows.push(f.first_packet);
    }
    (cands, targets)
}

/// Infected hosts in infection order; each takes the parent the protocol names, else
/// the one flow timing suggests. A parent must have been infected by the session's time
/// and must not descend from the child. A parent chosen by flow timing is not asked
/// (it was infected before the child, but a confirmed delivery can have made the child
/// its ancestor), so the graph can hold a cycle; `Roots` and `generations` allow for it.
fn choose_parents(
    c: &DetectConfig,
    suspects: &Suspects<'_>,
    cands: &Candidates,
    deliveries: &[Delivery],
) -> Parents {
    let infected_at = &suspects.infected_at;
    let mut order: Vec<(i64, IpAddr)> = infected_at.iter().map(|(&ip, &t)| (t, ip)).collect();
    order.sort();
    let mut edges: Vec<Edge> = Vec::new();
    let mut parent_of: HashMap<IpAddr, IpAddr> = HashMap::new();
    // Each child's deliveries, in the order given: reading all of them for every child
    // was quadratic in an outbreak's exploits.
    let mut delivered_to: HashMap<IpAddr, Vec<&Delivery>> = HashMap::new();
    for d in deliveries {
        delivered_to.entry(d.child).or_default().push(d);
    }
    let mut roots = Roots::default();
    for &(tc, child) in &order {
        let mut eligible = |p: IpAddr, ts: i64| match infected_at.get(&p) {
            Some(&tp) => tp <= ts && p != child && !roots.descends(p, child),
            None => !c.is_internal(p),
        };
        let delivered = (delivered_to.get(&child).into_iter().flatten())
            .filter(|d| d.confirmed || d.ts <= tc)
            .filter(|d| eligible(d.parent, d.ts))
            .min_by_key(|d| (!d.confirmed, d.ts, d.packet, d.parent));
        let edge = match delivered {
            Some(d) => Some(delivered_edge(d, cands.get(&child))),
            None => cands
                .get(&child)
                .and_then(|m| flow_edge(c, child, tc, m, suspects)),
        };
        if let Some(e) = edge {
            parent_of.insert(child, e.parent);
            roots.attach(child, e.parent);
            edges.push(e);
        }
    }
    Parents {
        order,
        edges,
        parent_of,
    }
}

/// The root of each host's tree in the graph being drawn (union-find, paths halved as
/// they are read), to tell whether a candidate parent descends from the child. Walking
/// each candidate's ancestors instead made a chain of n infections cost n^2 steps.
#[derive(Default)]
struct Roots {
    /// A host's parent, or a host nearer its root.
    up: HashMap<IpAddr, IpAddr>,
    /// Roots of trees that a parent chosen by flow timing (which does not ask) closed
    /// into a cycle: every host of such a tree counts as descending from anyone, as the
    /// walk up their ancestors, which never ended, counted them.
    cyclic: HashSet<IpAddr>,
}

impl Roots {
    /// Whether `host` is `child` or descends from it; `child` has no parent yet.
    fn descends(&mut self, host: IpAddr, child: IpAddr) -> bool {
        let root = self.root(host);
        root == child || self.cyclic.contains(&root)
    }

    /// The root of `host`'s tree (`host` itself when it has no parent).
    fn root(&mut self, mut host: IpAddr) -> IpAddr {
        while let Some(&up) = self.up.get(&host) {
            match self.up.get(&up).copied() {
                Some(above) => {
                    self.up.insert(host, above);
                    host = above;
                }
                None => return up,
            }
        }
        host
    }

    /// Puts `child`, which had no parent, under `parent`.
    fn attach(&mut self, child: IpAddr, parent: IpAddr) {
        let root = self.root(parent);
        if root == child {
            self.cyclic.insert(child);
        } else {
            self.up.insert(child, root);
        }
    }
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
    suspects: &Suspects<'_>,
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
    let brute = suspects
        .brute_pairs
        .contains(&(p, child, svc.name.as_str()));
    let mut conf = 0.5f32;
    if brute {
        conf += 0.2;
    }
    if suspects.infected_at.contains_key(&p) || suspects.attackers.contains(&p) {
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

/// One row per host in an alert (internal destinations included), a target or a
/// parent, infected hosts first in infection order, then the others by address.
fn host_rows(
    c: &DetectConfig,
    alerts: &[Alert],
    suspects: &Suspects<'_>,
    targets: &HashSet<IpAddr>,
    parents: &Parents,
) -> Vec<HostRow> {
    let mut ips: HashSet<IpAddr> = HashSet::new();
    for a in alerts {
        ips.insert(a.src);
        if let Some(d) = a.dst.filter(|&d| c.is_internal(d)) {
            ips.insert(d);
        }
    }
    ips.extend(targets.iter().copied());
    ips.extend(parents.edges.iter().map(|e| e.parent));
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
    let parent_ips: HashSet<IpAddr> = parents.edges.iter().map(|e| e.parent).collect();
    let generation = generations(&parents.order, &parents.parent_of);
    let mut hosts: Vec<HostRow> = ips
        .into_iter()
        .map(|ip| {
            let inf = suspects.detected_at.get(&ip).copied();
            let parent = parents.parent_of.get(&ip).copied();
            let has = |r: Rule| of(ip).iter().any(|a| a.rule == r);
            let role = if inf.is_some() {
                match parent {
                    Some(p) if c.is_internal(p) => Role::Infected,
                    _ => Role::PatientZero,
                }
            } else if c.is_allowlisted(ip) && !of(ip).is_empty() {
                Role::ScannerAllowlisted
            } else if !c.is_internal(ip)
                && (parent_ips.contains(&ip) || suspects.attackers.contains(&ip))
            {
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
                // Filled in once the graph is drawn (`identity::identify`).
                identity: Identity::default(),
            }
        })
        .collect();
    hosts.sort_by_key(|h| (infected_first(h), h.ip));
    hosts
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
        // Up to the first ancestor whose generation is known, or the root. The length
        // check ends the walk on a cycle, which a parent chosen by flow timing can close
        // (see `choose_parents`).
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

/// Infected hosts first, by the time they were first detected.
fn infected_first(h: &HostRow) -> (u8, i64) {
    match h.role {
        Role::PatientZero | Role::Infected => (0, h.first_malicious_at.unwrap_or(i64::MAX)),
        _ => (1, 0),
    }
}

#[cfg(test)]
mod tests {
    use wormsign_testutil::SplitMix64;

    use super::*;

    /// Whether `host` is `ancestor` or descends from it, by walking its ancestors (the
    /// walk counts a host whose ancestors loop as descending).
    fn walk_up(host: IpAddr, ancestor: IpAddr, parent_of: &HashMap<IpAddr, IpAddr>) -> bool {
        let mut at = host;
        for _ in 0..=parent_of.len() {
            if at == ancestor {
                return true;
            }
            match parent_of.get(&at) {
                Some(&up) => at = up,
                None => return false,
            }
        }
        true
    }

    /// Hosts take parents in turn, some of them hosts not yet placed (so a later one can
    /// close a cycle, as a parent chosen by flow timing can): before each, the roots
    /// answer for every host whether it descends from the one being placed as walking
    /// its ancestors does.
    #[test]
    fn roots_answer_as_walking_up_the_ancestors_does() {
        let mut rng = SplitMix64(5);
        let (mut cycles, mut yes) = (0, 0);
        for _ in 0..200 {
            let n = 2 + rng.below(30) as u8;
            let host = |i: u8| IpAddr::from([10, 0, 0, i]);
            let (mut roots, mut parent_of) = (Roots::default(), HashMap::new());
            for child in (0..n).map(host) {
                for p in (0..n).map(host) {
                    let walked = walk_up(p, child, &parent_of);
                    assert_eq!(roots.descends(p, child), walked, "{p} from {child}");
                    yes += usize::from(walked && p != child);
                }
                if rng.below(4) > 0 {
                    let parent = host(rng.below(u64::from(n)) as u8);
                    if parent != child {
                        cycles += usize::from(walk_up(parent, child, &parent_of));
                        parent_of.insert(child, parent);
                        roots.attach(child, parent);
                    }
                }
            }
        }
        assert!(
            cycles > 20 && yes > 1_000,
            "{cycles} cycles, {yes} descendants"
        );
    }
}
