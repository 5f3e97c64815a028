//! What a rule found, the alert it becomes, and what the run's rules found together.

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use crate::config::DetectConfig;
use crate::model::{Alert, Basis, Rule, Tier};
use crate::propagation::Delivery;
use crate::timeline::Note;

/// An alert's identity: rule, source, destination, service (unique per alert).
pub(crate) type EvidenceKey = (Rule, IpAddr, Option<IpAddr>, String);

/// What a rule found, before the allowlist and tier policy of [`Finding::alert`] apply.
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

impl Finding<'_> {
    /// The alert of this finding, resting on flow shapes (protocol rules set
    /// [`Basis::Protocol`] themselves).
    pub fn alert(self, c: &DetectConfig) -> Alert {
        let allowlisted = c.is_allowlisted(self.src);
        // Scanning and password guessing by an authorized scanner or known heavy hitter
        // is expected: a hygiene item (is it still authorized, is the list current?), not
        // an incident. Its C&C or honeypot contacts keep their urgency.
        let tier = if allowlisted && (self.rule.is_scan() || self.rule == Rule::BruteForce) {
            Tier::Month
        } else {
            self.tier
        };
        Alert {
            id: String::new(),
            rule: self.rule,
            tier,
            src: self.src,
            dst: self.dst,
            service: self.service.to_string(),
            first_seen_ns: self.first,
            last_seen_ns: self.last,
            detected_ns: self.detected,
            attempts: self.attempts,
            distinct_targets: self.distinct,
            failed_ratio: self.failed_ratio,
            allowlisted,
            infection_sign: self.worm && !allowlisted && c.is_internal(self.src),
            evidence: self.evidence,
            basis: Basis::Flow,
        }
    }
}

/// What the rules found, gathered as each finishes.
#[derive(Default)]
pub(crate) struct Findings {
    pub alerts: Vec<Alert>,
    /// First evidence of the behaviour each threshold alert detected, when it is later
    /// than the alert's `first_seen_ns` (the walk, window or sweep that crossed): the
    /// graph's infection time.
    pub first_evidence: HashMap<EvidenceKey, i64>,
    /// (client, server, service) pairs whose logins the protocol shows: the flow-shape
    /// brute-force rule stays silent on them.
    pub login_pairs: HashSet<(IpAddr, IpAddr, String)>,
    /// Sessions the protocol shows delivering an infection.
    pub deliveries: Vec<Delivery>,
    /// (source, destination, first_packet) of the sessions that ended a brute-force run
    /// successfully, as flow shapes show it.
    pub brute_success: HashSet<(IpAddr, IpAddr, u64)>,
    /// What the timeline says of an alert's event, where the alert does not say it.
    pub notes: HashMap<EvidenceKey, Note>,
}

impl Findings {
    /// Adds what another part of the detection found: its alerts, evidence, pairs and
    /// deliveries are about other addresses than this part's (see `part.rs`).
    pub fn absorb(&mut self, other: Findings) {
        self.alerts.extend(other.alerts);
        self.first_evidence.extend(other.first_evidence);
        self.login_pairs.extend(other.login_pairs);
        self.deliveries.extend(other.deliveries);
        self.brute_success.extend(other.brute_success);
        self.notes.extend(other.notes);
    }

    /// Adds an alert.
    pub fn raise(&mut self, alert: Alert) {
        self.alerts.push(alert);
    }

    /// Leaves `note` on `alert` for the timeline.
    pub fn note(&mut self, alert: &Alert, note: Note) {
        let key = (alert.rule, alert.src, alert.dst, alert.service.clone());
        self.notes.insert(key, note);
    }

    /// Adds a threshold alert whose behaviour was first seen at `first_evidence`.
    pub fn raise_since(&mut self, alert: Alert, first_evidence: i64) {
        let key = (alert.rule, alert.src, alert.dst, alert.service.clone());
        self.first_evidence.insert(key, first_evidence);
        self.alerts.push(alert);
    }
}

/// Sorts alerts by first evidence (then rule, source, destination, service, detection)
/// and numbers them `A0001`, `A0002`, … in that order.
pub(crate) fn number_in_time_order(alerts: &mut [Alert]) {
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
}

/// Where a contact goes relative to the internal networks, for evidence text.
pub(crate) fn direction(c: &DetectConfig, src: IpAddr, dst: IpAddr) -> &'static str {
    match (c.is_internal(src), c.is_internal(dst)) {
        (true, true) => "lateral",
        (false, true) => "inbound",
        (true, false) => "outbound",
        (false, false) => "external",
    }
}

/// `num / den`, 0 when there is nothing to divide.
pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// A capture timestamp or span in seconds, for evidence text.
pub(crate) fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}
