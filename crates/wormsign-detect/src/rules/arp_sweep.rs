//! `arp_sweep`: one host asking who has many distinct addresses within a window, the way
//! a worm finds its neighbours before it connects.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

use super::counting::{window_hit, Tally};
use super::finding::Finding;
use super::{BoxedRule, Events, Findings, RuleState, RunState};
use crate::config::DetectConfig;
use crate::distinct::CappedSet;
use crate::model::{ArpEvent, DnsEvent, Rule, Tier};
use crate::settings::{at_least, settings, TimeSpan};

settings! {
    /// `[arp]`: ARP sweeps.
    pub struct ArpConfig {
        /// ARP sweep window (default 60 s).
        #[serde(rename = "window_s")]
        pub window: TimeSpan = TimeSpan::from_secs(60),
        /// Distinct who-has targets of one requester within the window (default 32).
        #[serde(deserialize_with = "at_least::<1, _>")]
        pub threshold: usize = 32,
    }
}

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(ArpSweep { c })
}

/// Reads ARP requests only, at the end of the run.
struct ArpSweep<'a> {
    c: &'a DetectConfig,
}

/// One requester's who-has requests.
#[derive(Default)]
struct Requester {
    targets: CappedSet,
    /// New targets within the window.
    recent: VecDeque<i64>,
    requests: Tally,
    /// Detection time and first evidence.
    detected: Option<(i64, i64)>,
}

impl RuleState for ArpSweep<'_> {
    fn finish(self: Box<Self>, events: &Events<'_>, run: &mut RunState<'_>, found: &mut Findings) {
        let c = self.c;
        let mut requesters: HashMap<Ipv4Addr, Requester> = HashMap::new();
        for e in events.arp.iter().filter(|e| is_sweep_request(e)) {
            let r = requesters.entry(e.sender).or_default();
            r.requests.touch(e.ts_ns);
            let target = IpAddr::V4(e.target);
            if r.targets.insert(target, run.caps.exact_set, run.stats) == Some(true)
                && window_hit(&mut r.recent, e.ts_ns, c.arp.threshold, c.arp.window.ns())
                && r.detected.is_none()
            {
                r.detected = Some((e.ts_ns, r.recent.front().copied().unwrap_or(e.ts_ns)));
            }
        }
        for (&sender, r) in &requesters {
            let Some((at, first_evidence)) = r.detected else {
                continue;
            };
            let finding = Finding {
                rule: Rule::ArpSweep,
                tier: Tier::Day,
                src: IpAddr::V4(sender),
                dst: None,
                service: "arp",
                first: r.requests.first_ts,
                last: r.requests.last_ts,
                detected: at,
                attempts: r.requests.attempts,
                distinct: r.targets.len(),
                failed_ratio: 0.0,
                worm: true,
                evidence: format!(
                    "{}+ distinct who-has targets within {:.0}s; {} distinct in all",
                    c.arp.threshold,
                    c.arp.window.as_secs_f64(),
                    r.targets.len()
                ),
            };
            found.raise_since(finding.alert(c), first_evidence);
        }
    }
}

/// A who-has for another address (a gratuitous ARP announces the sender itself).
fn is_sweep_request(e: &ArpEvent) -> bool {
    e.is_request && e.sender != e.target
}
