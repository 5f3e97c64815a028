//! `brute_force` by logins: failed logins counted one by one (one SMB session can carry
//! many), and "N failed, then success as X", a delivery the propagation graph prefers
//! over flow timing. A pair whose logins the protocol shows is judged by them alone:
//! pooled, successful database logins are ordinary use, however short their sessions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use wormsign_inspect::{Fact, Outcome, SessionEvent};

use super::counting::window_hit;
use super::finding::Finding;
use super::session_facts::{protocol_alert, service_name, vector_of};
use super::{BoxedRule, Events, Findings, RuleState, RunState};
use crate::config::DetectConfig;
use crate::model::{DnsEvent, Rule, Tier};
use crate::propagation::Delivery;
use crate::timeline::Note;

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(LoginBruteForce { c })
}

/// Reads session facts only, at the end of the run.
struct LoginBruteForce<'a> {
    c: &'a DetectConfig,
}

/// (client, server, service name).
type LoginPair = (IpAddr, IpAddr, String);

impl RuleState for LoginBruteForce<'_> {
    fn finish(self: Box<Self>, events: &Events<'_>, _: &mut RunState<'_>, found: &mut Findings) {
        for (pair, attempts) in self.logins_by_pair(&events.sessions) {
            found.login_pairs.insert(pair.clone());
            self.judge(pair, &attempts, found);
        }
    }
}

impl LoginBruteForce<'_> {
    /// Logins with a known outcome, per pair, in time order.
    fn logins_by_pair<'e>(
        &self,
        events: &[&'e SessionEvent],
    ) -> BTreeMap<LoginPair, Vec<&'e SessionEvent>> {
        let mut pairs: BTreeMap<LoginPair, Vec<&SessionEvent>> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.fact == Fact::Login && e.outcome != Outcome::Unknown)
        {
            pairs
                .entry((e.client, e.server, service_name(self.c, e)))
                .or_default()
                .push(e);
        }
        pairs
    }

    /// An alert when the failures of one pair cross the threshold within the window, and
    /// the delivery of the first success after failures.
    fn judge(&self, pair: LoginPair, attempts: &[&SessionEvent], found: &mut Findings) {
        let c = self.c;
        let (src, dst, service) = pair;
        let mut recent = VecDeque::new();
        let (mut failed, mut detected, mut success) = (0u64, None, None);
        let mut accounts: BTreeSet<&str> = BTreeSet::new();
        for e in attempts {
            match e.outcome {
                Outcome::Failure => {
                    failed += 1;
                    if let Some(u) = e.user.as_deref() {
                        accounts.insert(u);
                    }
                    let (threshold, window) = (c.brute_force.threshold, c.brute_force.window);
                    if window_hit(&mut recent, e.ts_ns, threshold, window.ns())
                        && detected.is_none()
                    {
                        detected = Some(e.ts_ns);
                    }
                }
                // An anonymous (null session) or Kerberos login names no account: it
                // is not a guessed password coming right.
                _ if failed > 0 && success.is_none() && e.user.is_some() => {
                    success = Some((*e, failed));
                }
                _ => {}
            }
        }
        let Some(at) = detected else {
            return;
        };
        let first_failure = attempts
            .iter()
            .find(|e| e.outcome == Outcome::Failure)
            .map_or(at, |e| e.ts_ns);
        let shown: Vec<&str> = accounts.iter().take(5).copied().collect();
        let mut evidence = format!(
            "{failed} failed {service} logins from {src} to {dst} (accounts: {}{})",
            if shown.is_empty() {
                "not shown".to_string()
            } else {
                shown.join(", ")
            },
            if accounts.len() > 5 { ", …" } else { "" }
        );
        let mut note = None;
        let tier = match success {
            Some((e, before)) => {
                let user = e.user.as_deref().unwrap_or("an account not shown");
                evidence = format!("{evidence}; then success as {user}");
                let what = format!("{service} as {user}");
                note = Some(Note { at: e.ts_ns, what });
                found.deliveries.push(Delivery {
                    ts: e.ts_ns,
                    packet: e.packet,
                    parent: src,
                    child: dst,
                    vector: vector_of(c, e, true),
                    seen: format!("{before} failed {service} logins then success as {user}"),
                    confirmed: false,
                });
                Tier::Hour
            }
            None => Tier::Week,
        };
        let finding = Finding {
            rule: Rule::BruteForce,
            tier,
            src,
            dst: Some(dst),
            service: &service,
            first: first_failure,
            last: attempts[attempts.len() - 1].ts_ns,
            detected: at,
            attempts: attempts.len() as u64,
            distinct: 1,
            failed_ratio: failed as f64 / attempts.len() as f64,
            worm: true,
            evidence,
        };
        let alert = protocol_alert(c, finding);
        if let Some(note) = note {
            found.note(&alert, note);
        }
        found.raise(alert);
    }
}
