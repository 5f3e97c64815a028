//! `trw`: Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan 2004) over each
//! source's first contacts on worm services. Each failed first contact moves the
//! log-likelihood ratio towards "scanner", each success towards "benign"; at η1 the source
//! is a scanner, at η0 the walk restarts so a later scan is still caught.

use std::net::IpAddr;

use hashbrown::HashMap;

use super::finding::secs;
use super::{BoxedRule, Events, Findings, FlowFacts, Observing, RuleState, RunState};
use crate::config::DetectConfig;
use crate::model::{DnsEvent, Rule};
use crate::settings::{probability, settings};

settings! {
    /// `[trw]`: Threshold Random Walk parameters.
    pub struct TrwConfig {
        /// P(first contact succeeds | benign host).
        #[serde(deserialize_with = "probability")]
        pub theta0: f64 = 0.8,
        /// P(first contact succeeds | scanner).
        #[serde(deserialize_with = "probability")]
        pub theta1: f64 = 0.2,
        /// Desired detection probability.
        #[serde(deserialize_with = "probability")]
        pub pd: f64 = 0.99,
        /// Tolerated false-positive probability.
        #[serde(deserialize_with = "probability")]
        pub pf: f64 = 0.01,
    }
}

impl TrwConfig {
    /// Upper threshold η1 = Pd / Pf: at or above it, the source is a scanner.
    pub fn eta1(&self) -> f64 {
        self.pd / self.pf
    }

    /// Lower threshold η0 = (1 − Pd) / (1 − Pf): at or below it, the source is benign.
    pub fn eta0(&self) -> f64 {
        (1.0 - self.pd) / (1.0 - self.pf)
    }

    /// Whether the walk can tell scanners apart: a scanner's contacts must succeed less
    /// often than a benign host's, and detection must beat false positives.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.theta1 >= self.theta0 || self.pf >= self.pd {
            return Err("trw needs theta1 < theta0 and pf < pd".to_string());
        }
        Ok(())
    }
}

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    let trw = &c.trw;
    Box::new(Trw {
        c,
        step_failed: ((1.0 - trw.theta1) / (1.0 - trw.theta0)).ln(),
        step_succeeded: (trw.theta1 / trw.theta0).ln(),
        ln_eta1: trw.eta1().ln(),
        ln_eta0: trw.eta0().ln(),
        walks: HashMap::new(),
    })
}

struct Trw<'a> {
    c: &'a DetectConfig,
    /// Log-likelihood ratio steps of a failed and of a successful first contact.
    step_failed: f64,
    step_succeeded: f64,
    ln_eta1: f64,
    ln_eta0: f64,
    walks: HashMap<IpAddr, Walk>,
}

/// One source's walk.
#[derive(Default)]
struct Walk {
    llr: f64,
    /// First failed first contact of the current walk (reset with the walk).
    first_fail: Option<i64>,
    /// When the walk crossed η1, and on which service.
    detected: Option<(i64, usize)>,
    /// First evidence of the walk that crossed.
    evidence: i64,
}

impl RuleState for Trw<'_> {
    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut Observing<'_>) {
        let Some(contact) = flow.contact.filter(|c| c.is_first) else {
            return;
        };
        let (src, ts) = (flow.flow.orig_addr, flow.flow.ts_first);
        let w = self.walks.entry(src).or_default();
        if w.detected.is_some() {
            return;
        }
        if flow.flow.failed && w.first_fail.is_none() {
            w.first_fail = Some(ts);
        }
        w.llr += if flow.flow.failed {
            self.step_failed
        } else {
            self.step_succeeded
        };
        if w.llr >= self.ln_eta1 - 1e-9 {
            w.detected = Some((ts, contact.service));
            w.evidence = w.first_fail.unwrap_or(ts);
            run.flag(src);
        } else if w.llr <= self.ln_eta0 {
            // Benign for now; restart the walk so a later scan is still caught.
            w.llr = 0.0;
            w.first_fail = None;
        }
    }

    fn forget_source(&mut self, src: IpAddr) {
        self.walks.remove(&src);
    }

    fn finish(self: Box<Self>, _: &Events<'_>, run: &mut RunState<'_>, found: &mut Findings) {
        let c = self.c;
        for (&src, w) in &self.walks {
            let (Some((at, svc)), Some(source)) = (w.detected, run.sources.get(src)) else {
                continue;
            };
            let text = format!(
                "TRW crossed eta1={:.0} at {:.3}s; {} first contacts on worm services, {} failed{}",
                c.trw.eta1(),
                secs(at),
                source.first_contacts,
                source.failed,
                if source.saturated() {
                    " (beyond the exact set: estimated)"
                } else {
                    ""
                }
            );
            let service = &c.services[svc].name;
            let finding = source.finding(c, Rule::Trw, src, service, at, text);
            found.raise_since(finding.alert(c), w.evidence);
        }
    }
}
