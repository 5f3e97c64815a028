//! `failed_contacts`: several failed first contacts of one source on worm services within
//! a window. Unlike TRW, successes in between do not offset failures: a worm that also
//! reaches open ports (a LAN sweep) is flagged on its `[scan] failed_threshold`th miss.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

use super::counting::window_hit;
use super::finding::secs;
use super::{BoxedRule, Events, Findings, FlowFacts, Observing, RuleState, RunState};
use crate::config::DetectConfig;
use crate::model::{DnsEvent, Rule};

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(FailedContacts {
        c,
        misses: HashMap::new(),
    })
}

struct FailedContacts<'a> {
    c: &'a DetectConfig,
    misses: HashMap<IpAddr, Misses>,
}

/// One source's recent failed first contacts.
#[derive(Default)]
struct Misses {
    recent: VecDeque<i64>,
    /// When the rule fired (time, service) and its window's first failure.
    detected: Option<(i64, usize, i64)>,
}

impl RuleState for FailedContacts<'_> {
    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut Observing<'_>) {
        let scan = &self.c.scan;
        let Some(contact) = flow.contact.filter(|c| c.is_first) else {
            return;
        };
        if !flow.flow.failed || scan.failed_threshold == 0 {
            return;
        }
        let (src, ts) = (flow.flow.orig_addr, flow.flow.ts_first);
        let m = self.misses.entry(src).or_default();
        let window = scan.failed_window.ns();
        if window_hit(&mut m.recent, ts, scan.failed_threshold, window) && m.detected.is_none() {
            let first = m.recent.front().copied().unwrap_or(ts);
            m.detected = Some((ts, contact.service, first));
            run.flag(src);
        }
    }

    fn forget_source(&mut self, src: IpAddr) {
        self.misses.remove(&src);
    }

    fn finish(self: Box<Self>, _: &Events<'_>, run: &mut RunState<'_>, found: &mut Findings) {
        let c = self.c;
        for (&src, m) in &self.misses {
            let (Some((at, svc, first)), Some(source)) = (m.detected, run.sources.get(src)) else {
                continue;
            };
            let text = format!(
                "{} failed first contacts on worm services within {:.0}s (from {:.3}s); \
                 {} first contacts in all, {} failed",
                c.scan.failed_threshold,
                c.scan.failed_window.as_secs_f64(),
                secs(first),
                source.first_contacts,
                source.failed
            );
            let service = &c.services[svc].name;
            let finding = source.finding(c, Rule::FailedContacts, src, service, at, text);
            found.raise_since(finding.alert(c), first);
        }
    }
}
