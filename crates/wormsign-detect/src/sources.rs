//! Scanning sources: each source's first contacts on worm services, in bounded memory.
//!
//! TRW and failed contacts count first contacts (a source's first flow to a destination),
//! so the distinct destinations each source tried are kept once here for both. The table
//! holds at most [`DetectConfig::max_sources`] sources (shared out among the parts of a
//! detection, see `part.rs`); at the cap, the least recently
//! active eighth of the sources no rule has flagged is evicted, and every rule forgets
//! them ([`crate::rules::RuleState::forget_source`]).

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::config::{Caps, DetectConfig};
use crate::distinct::CappedSet;
use crate::model::{DetectStats, Rule, Tier};
use crate::rules::{ratio, Finding};
use crate::usable::UsableFlow;

/// The scanning sources (see the module doc).
#[derive(Default)]
pub(crate) struct Sources {
    by_addr: HashMap<IpAddr, Source>,
}

/// One source's first contacts on worm services.
#[derive(Default)]
pub(crate) struct Source {
    /// Destinations contacted.
    contacted: CappedSet,
    /// Time of the source's latest worm-service flow (for eviction).
    last_seen: i64,
    /// A rule fired on this source, so it is never evicted.
    flagged: bool,
    pub first_contacts: u64,
    pub failed: u64,
    pub successes: u64,
    pub first_ts: i64,
    pub last_ts: i64,
}

impl Sources {
    /// Whether `src` is (or now is) in the table. At the cap, the least recently active
    /// eighth of the unflagged sources is evicted first, and their addresses are added to
    /// `evicted`; when every source is flagged, `src` is refused (counted). Eviction
    /// follows the sorted flow order, so it is as deterministic as the rules.
    pub fn make_room_for(
        &mut self,
        src: IpAddr,
        caps: Caps,
        stats: &mut DetectStats,
        evicted: &mut Vec<IpAddr>,
    ) -> bool {
        if self.has_room_for(src, caps) {
            return true;
        }
        let mut idle: Vec<(i64, IpAddr)> = self
            .by_addr
            .iter()
            .filter(|(_, s)| !s.flagged)
            .map(|(&ip, s)| (s.last_seen, ip))
            .collect();
        if idle.is_empty() {
            stats.entries_refused += 1;
            return false;
        }
        // The oldest eighth: a unique set, as (last_seen, ip) pairs are distinct.
        let n = (self.by_addr.len() / 8).clamp(1, idle.len());
        idle.select_nth_unstable(n - 1);
        idle.truncate(n);
        for &(_, ip) in &idle {
            self.by_addr.remove(&ip);
            evicted.push(ip);
        }
        stats.sources_evicted += idle.len() as u64;
        true
    }

    /// Whether `src` is in the table or fits without evicting anyone.
    pub fn has_room_for(&self, src: IpAddr, caps: Caps) -> bool {
        // The length first: while the table has room, no flow's address is hashed twice.
        self.by_addr.len() < caps.sources || self.by_addr.contains_key(&src)
    }

    /// Counts a worm-service flow of a source the table holds: whether it is the source's
    /// first contact with the destination.
    pub fn record(&mut self, f: &UsableFlow, caps: Caps, stats: &mut DetectStats) -> bool {
        let ts = f.ts_first;
        let s = self.by_addr.entry(f.orig_addr).or_default();
        s.last_seen = ts;
        if s.contacted.insert(f.resp_addr, caps.exact_set, stats) != Some(true) {
            return false;
        }
        if s.first_contacts == 0 {
            s.first_ts = ts;
        }
        s.first_contacts += 1;
        s.last_ts = ts;
        if f.failed {
            s.failed += 1;
        } else {
            s.successes += 1;
        }
        true
    }

    /// Marks `src` as flagged by a rule: it stays until the end of the run.
    pub fn flag(&mut self, src: IpAddr) {
        if let Some(s) = self.by_addr.get_mut(&src) {
            s.flagged = true;
        }
    }

    /// The first contacts of `src`.
    pub fn get(&self, src: IpAddr) -> Option<&Source> {
        self.by_addr.get(&src)
    }
}

impl Source {
    /// Whether the set of contacted destinations saturated (counts beyond are estimates).
    pub fn saturated(&self) -> bool {
        self.contacted.saturated()
    }

    /// A finding over this source's first contacts, detected at `at`: tier hour once an
    /// internal source also got through somewhere (it is spreading), day otherwise.
    pub fn finding<'s>(
        &self,
        c: &DetectConfig,
        rule: Rule,
        src: IpAddr,
        service: &'s str,
        at: i64,
        evidence: String,
    ) -> Finding<'s> {
        let spreading = c.is_internal(src) && self.successes > 0;
        Finding {
            rule,
            tier: if spreading { Tier::Hour } else { Tier::Day },
            src,
            dst: None,
            service,
            first: self.first_ts,
            last: self.last_ts,
            detected: at,
            attempts: self.first_contacts,
            distinct: self.contacted.len(),
            failed_ratio: ratio(self.failed, self.first_contacts),
            worm: true,
            evidence,
        }
    }
}
