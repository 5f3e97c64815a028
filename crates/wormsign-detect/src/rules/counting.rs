//! Counting the rules share: events in a sliding window, and a tally of attempts.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

use super::finding::Finding;
use super::Observing;
use crate::model::{Rule, Tier};
use crate::usable::UsableFlow;

/// Sliding count of events within a window, keeping at most `need` timestamps: true once
/// `need` events fall within `window` ns.
pub(crate) fn window_hit(q: &mut VecDeque<i64>, ts: i64, need: usize, window: i64) -> bool {
    q.push_back(ts);
    while q.len() > need.max(1) {
        q.pop_front();
    }
    while q.front().is_some_and(|&t| ts - t > window) {
        q.pop_front();
    }
    q.len() >= need
}

/// How many attempts, and when the first and last were.
#[derive(Default)]
pub(crate) struct Tally {
    pub attempts: u64,
    pub first_ts: i64,
    pub last_ts: i64,
}

impl Tally {
    /// Counts one attempt at `ts`.
    pub fn touch(&mut self, ts: i64) {
        if self.attempts == 0 {
            self.first_ts = ts;
        }
        self.attempts += 1;
        self.last_ts = self.last_ts.max(ts);
    }

    /// A worm-behaviour finding of `rule` from `src` (to `dst`) that this tally
    /// summarises: tier hour, any service, one target, detected at the first attempt.
    pub fn finding(
        &self,
        rule: Rule,
        src: IpAddr,
        dst: Option<IpAddr>,
        evidence: String,
    ) -> Finding<'static> {
        Finding {
            rule,
            tier: Tier::Hour,
            src,
            dst,
            service: "any",
            first: self.first_ts,
            last: self.last_ts,
            detected: self.first_ts,
            attempts: self.attempts,
            distinct: 1,
            failed_ratio: 0.0,
            worm: true,
            evidence,
        }
    }
}

/// Counts `f` under its (source, responder) pair in `table` (if the pair cap leaves room):
/// flows to a watched address, such as a honeypot or a C&C address.
pub(crate) fn count_contact(
    table: &mut HashMap<(IpAddr, IpAddr), Tally>,
    f: &UsableFlow,
    run: &mut Observing<'_>,
) {
    if let Some(t) = run.pair_entry(table, (f.orig_addr, f.resp_addr)) {
        t.touch(f.ts_first);
    }
}
