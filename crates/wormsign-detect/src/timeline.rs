//! The incident timeline: one event per host and milestone, in time order, as an
//! incident report tells it ("04:57 the file server asks for t.awcna.com; 05:01 a second
//! host asks for t.awcna.com; …").
//!
//! Built after the alerts are numbered and the graph is drawn, from the alerts, the
//! edges and the notes rules leave on alerts whose event is not their first evidence
//! (the account a guessed login succeeded as, and when).

use std::cmp::Ordering;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use crate::lookup::ByAddress;
use crate::model::{Alert, Edge, HostRow, Rule};
use crate::rules::EvidenceKey;
use serde::{Deserialize, Serialize};

/// What happened to (or was done by) a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Completed sessions from outside reached an internal server on a worm service.
    Exposure,
    /// The host's first lookup of a C&C name.
    CncLookup,
    /// The host's first connection to a C&C address.
    CncContact,
    /// The host's first scan alert.
    FirstScan,
    /// A guessed login succeeded (the account, where the protocol shows it).
    LoginSuccess,
    /// The host was infected (by its parent in the graph, or with no visible parent).
    Infection,
    /// The host contacted a honeypot.
    Honeypot,
}

impl EventKind {
    /// Name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Exposure => "exposure",
            EventKind::CncLookup => "cnc_lookup",
            EventKind::CncContact => "cnc_contact",
            EventKind::FirstScan => "first_scan",
            EventKind::LoginSuccess => "login_success",
            EventKind::Infection => "infection",
            EventKind::Honeypot => "honeypot",
        }
    }
}

/// One timeline event.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEvent {
    /// When it happened, ns since the Unix epoch.
    pub ts_ns: i64,
    /// What happened.
    pub kind: EventKind,
    /// The host it is about: the querier, scanner, infected child, guessing client,
    /// honeypot visitor, or exposed server.
    pub host: IpAddr,
    /// The other side: the C&C address, the parent, the server logged into, the
    /// honeypot.
    pub peer: Option<IpAddr>,
    /// What: the C&C name, the service scanned, the vector, the account, what was tried
    /// on the honeypot.
    pub what: String,
    /// The alert the event rests on (none for an infection whose only evidence is a
    /// propagation edge, which cannot happen for an internal host: its infection signs
    /// are alerts).
    pub alert_id: Option<String>,
}

/// What a rule knows of an alert's timeline event that the alert itself does not say.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Note {
    /// When the event happened.
    pub at: i64,
    /// What it names.
    pub what: String,
}

/// The timeline of a run, ordered by `(ts_ns, kind, host, peer, what)`.
pub(crate) fn build(
    alerts: &[Alert],
    edges: &[Edge],
    hosts: &[HostRow],
    notes: &HashMap<EvidenceKey, Note>,
) -> Vec<TimelineEvent> {
    let note = |a: &Alert| notes.get(&(a.rule, a.src, a.dst, a.service.clone()));
    let by = ByAddress::new(alerts, edges, hosts);
    let mut out = Vec::new();
    let mut first_of: HashSet<(EventKind, IpAddr)> = HashSet::new();
    // Alerts are in time order, so the first alert of a kind per host is the host's first.
    for a in alerts {
        let event = |kind, peer, what: String, ts| TimelineEvent {
            ts_ns: ts,
            kind,
            host: a.src,
            peer,
            what,
            alert_id: Some(a.id.clone()),
        };
        let (kind, once) = match a.rule {
            Rule::CncDns => (EventKind::CncLookup, true),
            Rule::CncIp => (EventKind::CncContact, true),
            r if r.is_scan() => (EventKind::FirstScan, true),
            Rule::ExposedService => (EventKind::Exposure, false),
            Rule::Honeypot => (EventKind::Honeypot, false),
            Rule::BruteForce if note(a).is_some() => (EventKind::LoginSuccess, false),
            _ => continue,
        };
        if once && !first_of.insert((kind, a.src)) {
            continue;
        }
        let (ts, mut what) = match (kind, note(a)) {
            (_, Some(n)) => (n.at, n.what.clone()),
            (EventKind::FirstScan, None) => (
                a.first_seen_ns,
                format!("{} ({})", a.service, a.rule.as_str()),
            ),
            _ => (a.first_seen_ns, a.service.clone()),
        };
        if kind == EventKind::Honeypot && exploited(a, &by) {
            what.push_str("; MS17-010 exploit");
        }
        let peer = match kind {
            EventKind::CncLookup | EventKind::FirstScan | EventKind::Exposure => None,
            _ => a.dst,
        };
        out.push(event(kind, peer, what, ts));
    }
    out.extend(infections(hosts, &by));
    out.sort_by(in_timeline_order);
    out
}

/// The timeline's order: by `(ts_ns, kind, host, peer, what)`, kinds in their declared
/// order, addresses by value and a missing peer first. Compared by reference: a key
/// function (`sort_by_key`) would clone `what` twice per comparison.
fn in_timeline_order(a: &TimelineEvent, b: &TimelineEvent) -> Ordering {
    (a.ts_ns, a.kind, a.host, a.peer, &a.what).cmp(&(b.ts_ns, b.kind, b.host, b.peer, &b.what))
}

/// Whether the protocol shows an MS17-010 exploit along the alert's pair (a honeypot
/// contact that tried EternalBlue).
fn exploited(a: &Alert, by: &ByAddress<'_>) -> bool {
    by.alerts_from(a.src)
        .any(|e| e.rule == Rule::Exploit && e.dst == a.dst)
}

/// One infection event per infected host: the edge that infected it (its alert: the
/// exploit or brute force from the parent, else the child's first infection sign), or, for a patient
/// zero with no visible parent, its first infection sign.
fn infections<'a>(
    hosts: &'a [HostRow],
    by: &'a ByAddress<'a>,
) -> impl Iterator<Item = TimelineEvent> + 'a {
    let first_sign = |ip: IpAddr| by.alerts_from(ip).find(|a| a.infection_sign);
    hosts
        .iter()
        .filter(|h| h.role.is_infected())
        .filter_map(move |h| {
            let edge = by.edge_to(h.ip);
            // The host's incoming alerts, not all of the parent's: a spreader can have
            // many children and many alerts, and reading them per child was quadratic.
            let alert = edge
                .and_then(|e| {
                    by.alerts_to(h.ip).find(|a| {
                        matches!(a.rule, Rule::Exploit | Rule::BruteForce) && a.src == e.parent
                    })
                })
                .or_else(|| first_sign(h.ip));
            let (ts, peer, what) = match edge {
                Some(e) => (e.infected_at_ns, Some(e.parent), e.vector.clone()),
                None => (
                    alert.map(|a| a.first_seen_ns).or(h.first_malicious_at)?,
                    None,
                    "first worm behaviour; entry point not visible".to_string(),
                ),
            };
            Some(TimelineEvent {
                ts_ns: ts,
                kind: EventKind::Infection,
                host: h.ip,
                peer,
                what,
                alert_id: alert.map(|a| a.id.clone()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events handed over in reverse come out in the order below, where each follows the
    /// one before it by the first key in which they differ. Where two differ in `peer`,
    /// their `what` runs the other way, and the last two differ in `what` alone: a key
    /// dropped, swapped with another or reversed misplaces an event. 10.0.0.9 comes
    /// before 10.0.0.10 (by value, not as text).
    #[test]
    fn events_sort_by_time_kind_host_peer_then_what() {
        let event = |ts_ns, kind, host: [u8; 4], peer: Option<[u8; 4]>, what: &str| TimelineEvent {
            ts_ns,
            kind,
            host: IpAddr::from(host),
            peer: peer.map(IpAddr::from),
            what: what.to_string(),
            alert_id: None,
        };
        let (a, b) = ([10, 0, 0, 9], [10, 0, 0, 10]);
        let ordered = vec![
            event(1, EventKind::Honeypot, b, Some(b), "z"),
            event(2, EventKind::Exposure, b, Some(b), "z"),
            event(2, EventKind::CncLookup, a, Some(b), "z"),
            event(2, EventKind::CncLookup, b, None, "z"),
            event(2, EventKind::CncLookup, b, Some(a), "z"),
            event(2, EventKind::CncLookup, b, Some(b), "a"),
            event(2, EventKind::CncLookup, b, Some(b), "b"),
        ];
        let mut sorted: Vec<_> = ordered.iter().rev().cloned().collect();
        sorted.sort_by(in_timeline_order);
        assert_eq!(sorted, ordered);
    }
}
