//! `scan_fanout`: one source reaching many distinct destinations on one worm service
//! within a window. Mostly failed first contacts make it worm scanning (an infection
//! sign); mostly successful ones a heavy hitter (reported, not an infection).

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;

use hashbrown::HashMap;

use super::counting::window_hit;
use super::finding::{direction, ratio, Finding};
use super::{BoxedRule, Events, Findings, FlowFacts, Observing, RuleState, RunState};
use crate::config::DetectConfig;
use crate::distinct::CappedSet;
use crate::model::{DnsEvent, Rule, Tier};
use crate::settings::{at_least, settings, TimeSpan};

settings! {
    /// `[scan]`: scan fan-out, and failed first contacts (`failed_*`, read by the
    /// `failed_contacts` rule).
    pub struct ScanConfig {
        /// Fan-out window (default 60 s).
        #[serde(rename = "window_s")]
        pub window: TimeSpan = TimeSpan::from_secs(60),
        /// Distinct destinations of one source on one service within the window that raise
        /// `scan_fanout` (default 10).
        #[serde(deserialize_with = "at_least::<1, _>")]
        pub fanout_threshold: usize = 10,
        /// Failed share of first contacts at or above which a fan-out is worm scanning (an
        /// infection sign) rather than a heavy hitter (default 0.5).
        pub fanout_min_failed_ratio: f64 = 0.5,
        /// Failed first contacts (to distinct addresses, on any worm service) of one source
        /// within `failed_window_s` that raise `failed_contacts`; 0 disables (default 4).
        /// Unlike TRW, successes in between do not offset failures: a worm that also
        /// reaches open ports (a LAN sweep) is flagged on its 4th miss.
        pub failed_threshold: usize = 4,
        /// Window of `failed_contacts` (default 600 s, so slow scanners are caught too).
        #[serde(rename = "failed_window_s")]
        pub failed_window: TimeSpan = TimeSpan::from_secs(600),
    }
}

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(ScanFanout {
        c,
        fans: HashMap::new(),
    })
}

struct ScanFanout<'a> {
    c: &'a DetectConfig,
    /// Per (source, service index).
    fans: HashMap<(IpAddr, usize), Fan>,
}

/// One source's contacts on one service.
#[derive(Default)]
struct Fan {
    dsts: CappedSet,
    /// First contacts within the window.
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

impl RuleState for ScanFanout<'_> {
    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut Observing<'_>) {
        let Some(contact) = flow.contact else {
            return;
        };
        let (src, dst, ts) = (flow.flow.orig_addr, flow.flow.resp_addr, flow.flow.ts_first);
        let s = self.fans.entry((src, contact.service)).or_default();
        if s.attempts == 0 {
            s.first_ts = ts;
        }
        s.attempts += 1;
        s.last_ts = ts;
        if run.insert_distinct(&mut s.dsts, dst) != Some(true) {
            return;
        }
        s.first_contacts += 1;
        if flow.flow.failed {
            s.failed += 1;
        } else {
            s.successes += 1;
        }
        let scan = &self.c.scan;
        if window_hit(&mut s.recent, ts, scan.fanout_threshold, scan.window.ns())
            && s.detected.is_none()
        {
            s.detected = Some(ts);
            s.evidence = s.recent.front().copied().unwrap_or(ts);
            run.flag(src);
        }
    }

    fn forget_source(&mut self, src: IpAddr) {
        for svc in 0..self.c.services.len() {
            self.fans.remove(&(src, svc));
        }
    }

    fn finish(self: Box<Self>, _: &Events<'_>, _: &mut RunState<'_>, found: &mut Findings) {
        for (&(src, svc), s) in &self.fans {
            if let Some(at) = s.detected {
                found.raise_since(self.finding(src, svc, s, at).alert(self.c), s.evidence);
            }
        }
    }
}

impl ScanFanout<'_> {
    fn finding(&self, src: IpAddr, svc: usize, s: &Fan, at: i64) -> Finding<'_> {
        let c = self.c;
        let service = &c.services[svc].name;
        let failed_ratio = ratio(s.failed, s.first_contacts);
        let worm = failed_ratio >= c.scan.fanout_min_failed_ratio;
        let tier = if worm && c.is_internal(src) && s.successes > 0 {
            Tier::Hour
        } else {
            Tier::Day
        };
        let directions: BTreeSet<&str> = s.dsts.exact().map(|d| direction(c, src, d)).collect();
        let evidence = format!(
            "{}+ distinct {service} destinations ({}) within {:.0}s; {} distinct in all, \
             {} of {} first contacts failed{}",
            c.scan.fanout_threshold,
            directions.into_iter().collect::<Vec<_>>().join("+"),
            c.scan.window.as_secs_f64(),
            s.dsts.len(),
            s.failed,
            s.first_contacts,
            if worm {
                ""
            } else {
                " (mostly successful: heavy hitter or unconfirmed)"
            }
        );
        Finding {
            rule: Rule::ScanFanout,
            tier,
            src,
            dst: None,
            service,
            first: s.first_ts,
            last: s.last_ts,
            detected: at,
            attempts: s.attempts,
            distinct: s.dsts.len(),
            failed_ratio,
            worm,
            evidence,
        }
    }
}
