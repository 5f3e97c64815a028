//! `brute_force` by flow shapes: many short completed sessions from one host to one
//! host's worm service within a window, and a long or large session afterwards as a
//! likely success. Where the protocol shows the pair's logins, `login_brute_force`
//! judges it instead and this rule stays silent.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use super::counting::window_hit;
use super::finding::{direction, Finding};
use super::{BoxedRule, Events, Findings, FlowFacts, Observing, RuleState, RunState};
use crate::config::DetectConfig;
use crate::model::{DnsEvent, Rule, Tier};
use crate::settings::{at_least, settings, TimeSpan};
use crate::timeline::Note;

settings! {
    /// `[brute_force]`: brute force, by flow shapes and (window and threshold) by logins.
    pub struct BruteForceConfig {
        /// Brute-force window (default 300 s).
        #[serde(rename = "window_s")]
        pub window: TimeSpan = TimeSpan::from_secs(300),
        /// Short completed sessions (or failed logins) of one (source, destination,
        /// service) within the window (default 10).
        #[serde(deserialize_with = "at_least::<1, _>")]
        pub threshold: usize = 10,
        /// A session lasting at most this long is short (default 30 s).
        #[serde(rename = "max_session_s")]
        pub max_session: TimeSpan = TimeSpan::from_secs(30),
        /// A session of the pair carrying at least this many payload bytes (both
        /// directions), or lasting longer than `max_session_s`, after brute-forcing began
        /// counts as a successful login (default 64 KiB).
        pub success_bytes: u64 = 64 * 1024,
    }
}

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(BruteForce {
        c,
        runs: HashMap::new(),
        successes: HashSet::new(),
    })
}

struct BruteForce<'a> {
    c: &'a DetectConfig,
    /// Per (source, destination, service index).
    runs: HashMap<(IpAddr, IpAddr, usize), Run>,
    /// (source, destination, first_packet) of the session that ended a run successfully.
    successes: HashSet<(IpAddr, IpAddr, u64)>,
}

/// One pair's sessions on one service.
#[derive(Default)]
struct Run {
    /// Short sessions within the window.
    recent: VecDeque<i64>,
    short_sessions: u64,
    first_ts: i64,
    last_ts: i64,
    detected: Option<i64>,
    /// `first_packet` of the session that looks like the guessed password used.
    success: Option<(u64, i64)>,
    /// Oldest short session in the window that crossed the threshold.
    evidence: i64,
}

impl RuleState for BruteForce<'_> {
    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut Observing<'_>) {
        let (Some(svc), true) = (flow.service, flow.flow.completed) else {
            return;
        };
        let f = flow.flow;
        let (src, dst, ts) = (f.orig_addr, f.resp_addr, f.ts_first);
        let Some(b) = run.pair_entry(&mut self.runs, (src, dst, svc)) else {
            return;
        };
        let cfg = &self.c.brute_force;
        let short = f.ts_last - f.ts_first <= cfg.max_session.ns();
        let bytes = f.payload_bytes;
        if b.short_sessions > 0 && b.success.is_none() && (!short || bytes >= cfg.success_bytes) {
            b.success = Some((f.first_packet, ts));
            self.successes.insert((src, dst, f.first_packet));
        }
        if !short {
            return;
        }
        if b.short_sessions == 0 {
            b.first_ts = ts;
        }
        b.short_sessions += 1;
        b.last_ts = ts;
        if window_hit(&mut b.recent, ts, cfg.threshold, cfg.window.ns()) && b.detected.is_none() {
            b.detected = Some(ts);
            b.evidence = b.recent.front().copied().unwrap_or(ts);
        }
    }

    fn finish(self: Box<Self>, _: &Events<'_>, _: &mut RunState<'_>, found: &mut Findings) {
        let c = self.c;
        for (&(src, dst, svc), b) in &self.runs {
            let Some(at) = b.detected else {
                continue;
            };
            // Where the protocol shows the logins, they decide (see `login_brute_force`).
            let service = &c.services[svc].name;
            if found.login_pairs.contains(&(src, dst, service.clone())) {
                continue;
            }
            let alert = self.finding(src, dst, service, b, at).alert(c);
            if let Some((_, ts)) = b.success {
                let what = format!("{service}, account not shown (flow shapes)");
                found.note(&alert, Note { at: ts, what });
            }
            found.raise_since(alert, b.evidence);
        }
        found.brute_success.extend(self.successes);
    }
}

impl BruteForce<'_> {
    fn finding<'s>(
        &self,
        src: IpAddr,
        dst: IpAddr,
        service: &'s str,
        b: &Run,
        at: i64,
    ) -> Finding<'s> {
        let c = self.c;
        let outcome = match b.success {
            Some((p, _)) => format!("; likely success: long/large session at packet {p}"),
            None => "; no sign of success".to_string(),
        };
        Finding {
            rule: Rule::BruteForce,
            tier: if b.success.is_some() {
                Tier::Hour
            } else {
                Tier::Week
            },
            src,
            dst: Some(dst),
            service,
            first: b.first_ts,
            last: b.last_ts,
            detected: at,
            attempts: b.short_sessions,
            distinct: 1,
            failed_ratio: 0.0,
            worm: true,
            evidence: format!(
                "{}+ short {service} sessions within {:.0}s ({} in all, {}){outcome}",
                c.brute_force.threshold,
                c.brute_force.window.as_secs_f64(),
                b.short_sessions,
                direction(c, src, dst),
            ),
        }
    }
}
