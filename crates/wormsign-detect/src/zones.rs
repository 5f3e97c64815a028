//! The segmentation check: did the firewall zones hold?
//!
//! Zones are named networks (`--zone branch=10.164.0.0/16`). Every worm-service flow
//! whose two ends lie in different zones is counted per (source, source zone,
//! destination zone): attempted, answered (a completed session), blocked (S0, REJ, no
//! reply) or neither (the port answered but no session followed). Once the run's hosts
//! are known, the sources that were infected or scanning are summed per ordered zone
//! pair: a pair held when none of their attempts completed, and was breached when some
//! did (the first completed sessions are listed as evidence). Flows to honeypots are left
//! out: a honeypot answers everyone by design.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use crate::config::{Caps, Cidr, DetectConfig};
use crate::model::{Alert, DetectStats, HostRow, Role};
use crate::prefixes::PrefixTable;
use crate::rules::FlowFacts;
use serde::{Deserialize, Serialize};

/// Completed sessions kept per source and zone pair, as evidence of a breach.
const SESSIONS_KEPT: usize = 5;

/// Whether a zone pair held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Infected or scanning hosts tried, and no session completed.
    Held,
    /// Sessions from infected or scanning hosts completed.
    Breached,
    /// No attempt from an infected or scanning host was seen.
    Untested,
}

impl Verdict {
    /// Name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Breached => "breached",
            Verdict::Untested => "untested",
        }
    }
}

/// A completed worm-service session across zones.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CrossingSession {
    /// Start of the session, ns since the Unix epoch.
    pub ts_ns: i64,
    /// Its `first_packet` (its flow in `flows.parquet`).
    pub first_packet: u64,
    /// The client (an infected or scanning host).
    pub src: IpAddr,
    /// The server.
    pub dst: IpAddr,
    /// The worm service.
    pub service: String,
}

/// The check of one ordered pair of zones.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneCheck {
    /// The zone the attempts came from.
    pub from_zone: String,
    /// The zone they went to.
    pub to_zone: String,
    /// Worm-service flows from infected or scanning hosts of `from_zone` to `to_zone`.
    pub attempts: u64,
    /// Those that completed a session.
    pub answered: u64,
    /// Those that failed: no reply, refused (S0, REJ, RSTOS0, RSTR without payload).
    pub blocked: u64,
    /// Those that reached the port but carried no session (neither of the above).
    pub other: u64,
    /// Distinct infected or scanning hosts that tried.
    pub sources: u64,
    /// Held, breached or untested.
    pub verdict: Verdict,
    /// The first completed sessions (at most five per source), in time order.
    pub completed: Vec<CrossingSession>,
    /// Alerts that make the sources infected or scanning (the first of each source).
    pub alert_ids: Vec<String>,
}

/// One source's worm-service flows from one zone to another.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Tally {
    attempts: u64,
    answered: u64,
    blocked: u64,
    completed: Vec<CrossingSession>,
}

/// Counts worm-service flows across zones per source during the run.
#[derive(Default)]
pub(crate) struct ZoneCrossings {
    /// (source, from zone, to zone) → counts; zones by index into the sorted zone names.
    tallies: HashMap<(IpAddr, u16, u16), Tally>,
}

impl Tally {
    /// Whether the answered and blocked attempts are among the attempts.
    pub fn adds_up(&self) -> bool {
        self.answered
            .checked_add(self.blocked)
            .is_some_and(|n| n <= self.attempts)
    }
}

impl ZoneCrossings {
    /// Adds the counts another part of the detection kept (of other sources).
    pub fn absorb(&mut self, other: ZoneCrossings) {
        self.tallies.extend(other.tallies);
    }

    /// The counts by (source, from zone, to zone), sorted.
    pub fn into_sorted(self) -> Vec<((IpAddr, u16, u16), Tally)> {
        let mut tallies: Vec<_> = self.tallies.into_iter().collect();
        tallies.sort_unstable_by_key(|(key, _)| *key);
        tallies
    }

    /// Counts from [`ZoneCrossings::into_sorted`].
    pub fn from_sorted(tallies: Vec<((IpAddr, u16, u16), Tally)>) -> ZoneCrossings {
        ZoneCrossings {
            tallies: tallies.into_iter().collect(),
        }
    }

    /// Counts `flow` if it goes to a worm service from one zone into another.
    pub fn observe(
        &mut self,
        flow: &FlowFacts<'_>,
        zones: &PrefixTable,
        c: &DetectConfig,
        caps: Caps,
        stats: &mut DetectStats,
    ) {
        let (Some(svc), false) = (flow.service, c.zones.is_empty()) else {
            return;
        };
        let f = flow.flow;
        // A honeypot answers everyone by design: its sessions breach nothing.
        if c.honeypots.contains(&f.resp_addr) {
            return;
        }
        let zone_of = |ip| zones.longest_match(ip);
        let (Some(from), Some(to)) = (zone_of(f.orig_addr), zone_of(f.resp_addr)) else {
            return;
        };
        if from == to {
            return;
        }
        let key = (f.orig_addr, from, to);
        if !self.tallies.contains_key(&key) && self.tallies.len() >= caps.pairs {
            stats.entries_refused += 1;
            return;
        }
        let t = self.tallies.entry(key).or_default();
        t.attempts += 1;
        if f.failed {
            t.blocked += 1;
        } else if f.completed {
            t.answered += 1;
            if t.completed.len() < SESSIONS_KEPT {
                t.completed.push(CrossingSession {
                    ts_ns: f.ts_first,
                    first_packet: f.first_packet,
                    src: f.orig_addr,
                    dst: f.resp_addr,
                    service: c.services[svc].name.clone(),
                });
            }
        }
    }

    /// One check per ordered pair of distinct zones, over the sources that were infected
    /// or scanning (not allowlisted), in zone-name order.
    pub fn checks(self, c: &DetectConfig, alerts: &[Alert], hosts: &[HostRow]) -> Vec<ZoneCheck> {
        let flagged = flagged_sources(alerts, hosts);
        let names: Vec<&String> = c.zones.keys().collect();
        let mut pairs: BTreeMap<(u16, u16), ZoneCheck> = BTreeMap::new();
        for (i, from) in names.iter().enumerate() {
            for (j, to) in names.iter().enumerate().filter(|&(j, _)| j != i) {
                pairs.insert((i as u16, j as u16), empty_check(from, to));
            }
        }
        let mut tallies: Vec<_> = self.tallies.into_iter().collect();
        tallies.sort_by_key(|&((src, from, to), _)| (from, to, src));
        for ((src, from, to), t) in tallies {
            let (Some(alert), Some(check)) = (flagged.get(&src), pairs.get_mut(&(from, to))) else {
                continue;
            };
            // Saturating: parts' counts come from other processes (see `wire.rs`).
            check.attempts = check.attempts.saturating_add(t.attempts);
            check.answered = check.answered.saturating_add(t.answered);
            check.blocked = check.blocked.saturating_add(t.blocked);
            let other = t.attempts - t.answered - t.blocked;
            check.other = check.other.saturating_add(other);
            check.sources += 1;
            check.completed.extend(t.completed);
            check.alert_ids.push(alert.clone());
        }
        pairs
            .into_values()
            .map(|mut check| {
                check.completed.sort();
                check.alert_ids.sort();
                check.verdict = match (check.attempts, check.answered) {
                    (0, _) => Verdict::Untested,
                    (_, 0) => Verdict::Held,
                    _ => Verdict::Breached,
                };
                check
            })
            .collect()
    }
}

fn empty_check(from: &str, to: &str) -> ZoneCheck {
    ZoneCheck {
        from_zone: from.to_string(),
        to_zone: to.to_string(),
        attempts: 0,
        answered: 0,
        blocked: 0,
        other: 0,
        sources: 0,
        verdict: Verdict::Untested,
        completed: Vec::new(),
        alert_ids: Vec::new(),
    }
}

/// Infected or scanning hosts (not allowlisted), each with its first such alert.
fn flagged_sources(alerts: &[Alert], hosts: &[HostRow]) -> HashMap<IpAddr, String> {
    let infected: HashSet<IpAddr> = hosts
        .iter()
        .filter(|h| {
            matches!(
                h.role,
                Role::PatientZero | Role::Infected | Role::ExternalAttacker
            )
        })
        .map(|h| h.ip)
        .collect();
    let mut flagged = HashMap::new();
    for a in alerts.iter().filter(|a| !a.allowlisted) {
        if a.rule.is_scan() || a.infection_sign || infected.contains(&a.src) {
            flagged.entry(a.src).or_insert_with(|| a.id.clone());
        }
    }
    flagged
}

/// The zones' networks, each with its zone as an index into the zone names in order. An
/// address's zone is the one with the longest matching prefix (so `hq-dc=10.1.0.0/16`
/// carves its part out of `hq=10.0.0.0/8`); the first zone in name order of those that
/// list that network.
pub(crate) fn zone_table(c: &DetectConfig) -> PrefixTable {
    let mut table = PrefixTable::default();
    for (zone, networks) in c.zones.values().enumerate() {
        let zone = u16::try_from(zone).unwrap_or(u16::MAX);
        networks.iter().for_each(|&n| table.insert(n, zone));
    }
    table
}

/// Parses `NAME=CIDR` (the `--zone` option, a line of a zones file).
pub fn parse_zone(s: &str) -> Result<(String, Cidr), String> {
    let (name, net) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=CIDR"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{s:?}: the zone has no name"));
    }
    let net: Cidr = net.parse().map_err(|e| format!("{e}"))?;
    Ok((name.to_string(), net))
}

/// Parses a zones file: one `NAME=CIDR` per line, `#` comments and blank lines ignored.
pub fn parse_zones_file(text: &str) -> Result<Vec<(String, Cidr)>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| parse_zone(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
