//! `honeypot`: any flow to a honeypot address; nothing legitimate goes there.

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use super::counting::{count_contact, Tally};
use super::finding::Finding;
use super::{Events, Findings, FlowFacts, RuleState, RunState, Watchlist};
use crate::config::DetectConfig;
use crate::model::{DnsEvent, Rule, Tier};

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> Box<dyn RuleState + 'a> {
    Box::new(Honeypot {
        c,
        honeypots: c.honeypots.iter().copied().collect(),
        contacts: HashMap::new(),
    })
}

struct Honeypot<'a> {
    c: &'a DetectConfig,
    honeypots: HashSet<IpAddr>,
    /// Flows per (source, honeypot).
    contacts: HashMap<(IpAddr, IpAddr), Tally>,
}

impl RuleState for Honeypot<'_> {
    fn watch(&self, watchlist: &mut Watchlist) {
        watchlist.addresses.extend(self.honeypots.iter().copied());
    }

    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut RunState<'_>) {
        if self.honeypots.contains(&flow.flow.resp_addr) {
            count_contact(&mut self.contacts, flow.flow, run);
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
            found.raise(finding.alert(c));
        }
    }
}
