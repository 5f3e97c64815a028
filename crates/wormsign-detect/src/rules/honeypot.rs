//! `honeypot`: any flow to a honeypot address; nothing legitimate goes there.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use super::counting::{count_contact, Tally};
use super::finding::Finding;
use super::{BoxedRule, Events, Findings, FlowFacts, Observing, RuleState, RunState, Watchlist};
use crate::config::DetectConfig;
use crate::model::{DnsEvent, Rule, Tier};
use crate::timeline::Note;

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(Honeypot {
        c,
        honeypots: c.honeypots.iter().copied().collect(),
        contacts: HashMap::new(),
        tried: HashMap::new(),
    })
}

struct Honeypot<'a> {
    c: &'a DetectConfig,
    honeypots: HashSet<IpAddr>,
    /// Flows per (source, honeypot).
    contacts: HashMap<(IpAddr, IpAddr), Tally>,
    /// What each pair tried: the worm services by name, other ports as `tcp/80`; at most
    /// [`TRIED_KEPT`] each.
    tried: HashMap<(IpAddr, IpAddr), BTreeSet<String>>,
}

/// Services listed per honeypot contact.
const TRIED_KEPT: usize = 8;

impl RuleState for Honeypot<'_> {
    fn watch(&self, watchlist: &mut Watchlist) {
        watchlist.addresses.extend(self.honeypots.iter().copied());
    }

    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut Observing<'_>) {
        let f = flow.flow;
        if !self.honeypots.contains(&f.resp_addr) {
            return;
        }
        count_contact(&mut self.contacts, f, run);
        if let Some(tried) = self.tried.get_mut(&(f.orig_addr, f.resp_addr)) {
            if tried.len() < TRIED_KEPT {
                tried.insert(service_tried(self.c, flow));
            }
        } else if self.contacts.contains_key(&(f.orig_addr, f.resp_addr)) {
            let first = BTreeSet::from([service_tried(self.c, flow)]);
            self.tried.insert((f.orig_addr, f.resp_addr), first);
        }
    }

    fn finish(self: Box<Self>, _: &Events<'_>, _: &mut RunState<'_>, found: &mut Findings) {
        let c = self.c;
        for (&(src, dst), t) in &self.contacts {
            let evidence = format!("{} flows to honeypot {dst}", t.attempts);
            // An internal host probing the honeypot is spreading (hour); an outside one is
            // unconfirmed scanning (day).
            let tier = if c.is_internal(src) {
                Tier::Hour
            } else {
                Tier::Day
            };
            let finding = Finding {
                tier,
                ..t.finding(Rule::Honeypot, src, Some(dst), evidence)
            };
            let alert = finding.alert(c);
            if let Some(tried) = self.tried.get(&(src, dst)) {
                let what = tried.iter().cloned().collect::<Vec<_>>().join(", ");
                found.note(
                    &alert,
                    Note {
                        at: t.first_ts,
                        what,
                    },
                );
            }
            found.raise(alert);
        }
    }
}

/// A honeypot contact's service: the worm service's name, else `tcp/PORT` (`udp`, or the
/// IP protocol number without ports).
fn service_tried(c: &DetectConfig, flow: &FlowFacts<'_>) -> String {
    let f = flow.flow;
    match (flow.service, f.has_ports, f.proto) {
        (Some(svc), _, _) => c.services[svc].name.clone(),
        (None, true, 6) => format!("tcp/{}", f.resp_port),
        (None, true, 17) => format!("udp/{}", f.resp_port),
        (None, _, p) => format!("ip proto {p}"),
    }
}
