//! `cnc_ip`: flows to a C&C address, listed (`[cnc] ips`, indicator files) or resolved
//! from a C&C name in the run's DNS answers.

use std::net::IpAddr;

use hashbrown::HashMap;

use super::counting::{count_contact, Tally};
use super::{BoxedRule, Events, Findings, FlowFacts, Observing, RuleState, RunState, Watchlist};
use crate::config::DetectConfig;
use crate::model::{DnsEvent, Rule};
use crate::timeline::Note;

pub(super) fn start<'a>(c: &'a DetectConfig, dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(CncIp {
        c,
        addresses: cnc_addresses(c, dns),
        contacts: HashMap::new(),
    })
}

struct CncIp<'a> {
    c: &'a DetectConfig,
    /// C&C addresses, each with why it is one ("listed", "resolved from NAME").
    addresses: HashMap<IpAddr, String>,
    /// Flows per (source, C&C address).
    contacts: HashMap<(IpAddr, IpAddr), Tally>,
}

/// C&C addresses: listed, plus the A/AAAA answers to C&C names.
fn cnc_addresses(c: &DetectConfig, dns: &[&DnsEvent]) -> HashMap<IpAddr, String> {
    let mut addresses: HashMap<IpAddr, String> = c
        .cnc
        .ips
        .iter()
        .map(|&ip| (ip, "listed".to_string()))
        .collect();
    for e in dns.iter().filter(|e| e.is_response) {
        let Some(name) = e.qname.as_deref() else {
            continue;
        };
        if c.cnc_domain_match(name).is_some() {
            for ip in e.answers.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                addresses
                    .entry(ip)
                    .or_insert_with(|| format!("resolved from {name}"));
            }
        }
    }
    addresses
}

impl RuleState for CncIp<'_> {
    fn watch(&self, watchlist: &mut Watchlist) {
        watchlist.addresses.extend(self.addresses.keys().copied());
    }

    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut Observing<'_>) {
        if self.addresses.contains_key(&flow.flow.resp_addr) {
            count_contact(&mut self.contacts, flow.flow, run);
        }
    }

    fn learn_resolved(&mut self, resolved: &[IpAddr]) {
        for &ip in resolved {
            // Why it is one comes with the run's DNS (`settle_dns`).
            self.addresses.entry(ip).or_default();
        }
    }

    fn settle_dns(&mut self, dns: &[&DnsEvent]) -> bool {
        let settled = cnc_addresses(self.c, dns);
        let kept = self.addresses.keys().all(|a| settled.contains_key(a));
        self.addresses = settled;
        kept
    }

    fn finish(self: Box<Self>, _: &Events<'_>, _: &mut RunState<'_>, found: &mut Findings) {
        for (&(src, dst), t) in &self.contacts {
            let why = &self.addresses[&dst];
            let evidence = format!("{} flows to C&C address {dst} ({why})", t.attempts);
            let alert = t
                .finding(Rule::CncIp, src, Some(dst), evidence)
                .alert(self.c);
            found.note(
                &alert,
                Note {
                    at: t.first_ts,
                    what: why.clone(),
                },
            );
            found.raise(alert);
        }
    }
}
