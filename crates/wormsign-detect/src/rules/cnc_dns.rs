//! `cnc_dns`: DNS queries for C&C names. A resolver forwarding a client's lookup
//! upstream is not the infected host: a query for the same name that its client asked it
//! moments before is attributed to that client.

use std::net::IpAddr;

use hashbrown::HashMap;

use super::counting::Tally;
use super::finding::Finding;
use super::{BoxedRule, Events, Findings, Key, RuleState, RunState};
use crate::config::{parse_indicator_list, DetectConfig};
use crate::model::{DnsEvent, Rule};
use crate::settings::{addresses, indicator_list, settings, TimeSpan};
use crate::suffixes::DomainSuffixes;
use crate::timeline::Note;

/// The DriveLife / Lemon Duck indicator file shipped with the crate.
pub const DRIVELIFE_INDICATORS: &str = include_str!("../../indicators/drivelife.txt");

settings! {
    /// `[cnc]`: C&C indicators (read by `cnc_dns` and `cnc_ip`) and lookups.
    pub struct CncConfig {
        /// A resolver's upstream query for a C&C name this soon after a client asked it
        /// the same name is attributed to the client (default 1 s).
        #[serde(rename = "forward_window_s")]
        pub forward_window: TimeSpan = TimeSpan::from_secs(1),
        /// C&C domain suffixes, lower case, no trailing dot (default: the DriveLife list).
        #[serde(deserialize_with = "indicator_list")]
        pub domains: DomainSuffixes = parse_indicator_list(DRIVELIFE_INDICATORS).into(),
        /// Rules files only: suffixes [`crate::DetectConfig::from_toml`] adds to `domains`,
        /// so a file can extend the built-in list instead of replacing it. Never printed,
        /// and empty once the file is read.
        #[serde(skip_serializing, deserialize_with = "indicator_list")]
        pub extra_domains: Vec<String> = Vec::new(),
        /// C&C addresses.
        #[serde(deserialize_with = "addresses")]
        pub ips: Vec<IpAddr> = Vec::new(),
    }
}

impl CncConfig {
    /// Moves `extra_domains` to the end of `domains`.
    pub(crate) fn add_extra_domains(&mut self) {
        let extra = std::mem::take(&mut self.extra_domains);
        self.domains.extend(extra);
    }
}

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(CncDns { c })
}

/// Reads DNS queries only, at the end of the run.
struct CncDns<'a> {
    c: &'a DetectConfig,
}

/// One client's queries for C&C names.
struct Querier {
    queries: Tally,
    /// The resolver of its first query.
    server: IpAddr,
    /// The first five distinct names asked.
    names: Vec<String>,
}

impl RuleState for CncDns<'_> {
    // A resolver forwarding a client's lookup is told apart by the other clients' lookups.
    fn key(&self) -> Key {
        Key::Run
    }

    fn finish(self: Box<Self>, events: &Events<'_>, _: &mut RunState<'_>, found: &mut Findings) {
        let c = self.c;
        // (query, its name) for every query of a C&C name.
        let queries: Vec<(&DnsEvent, &str)> = events
            .dns
            .iter()
            .filter(|e| !e.is_response)
            .filter_map(|e| {
                let q = e.qname.as_deref()?;
                c.cnc_domain_match(q)?;
                Some((*e, q))
            })
            .collect();
        let mut by_resolver: HashMap<(IpAddr, &str), Vec<(i64, IpAddr)>> = HashMap::new();
        for &(e, q) in &queries {
            by_resolver
                .entry((e.server, q))
                .or_default()
                .push((e.ts_ns, e.client));
        }
        let asked: Asked<'_> = (by_resolver.into_iter())
            .map(|((resolver, q), lookups)| ((resolver, q), Lookups::new(resolver, lookups)))
            .collect();
        let mut queriers: HashMap<IpAddr, Querier> = HashMap::new();
        let mut forwarded: HashMap<IpAddr, u64> = HashMap::new();
        for &(e, q) in &queries {
            if self.is_forwarded(&asked, e, q) {
                *forwarded.entry(e.client).or_default() += 1;
                continue;
            }
            let s = queriers.entry(e.client).or_insert_with(|| Querier {
                queries: Tally::default(),
                server: e.server,
                names: Vec::new(),
            });
            s.queries.touch(e.ts_ns);
            if s.names.len() < 5 && !s.names.iter().any(|n| n == q) {
                s.names.push(q.to_string());
            }
        }
        for (&client, s) in &queriers {
            let mut evidence = format!(
                "{} queries for C&C names: {}",
                s.queries.attempts,
                s.names.join(", ")
            );
            if let Some(n) = forwarded.get(&client) {
                evidence.push_str(&format!("; also forwarded {n} such lookups for clients"));
            }
            let finding = Finding {
                service: "dns",
                distinct: s.names.len() as u64,
                ..s.queries
                    .finding(Rule::CncDns, client, Some(s.server), evidence)
            };
            let alert = finding.alert(c);
            let what = s.names[0].clone();
            found.note(
                &alert,
                Note {
                    at: s.queries.first_ts,
                    what,
                },
            );
            found.raise(alert);
        }
    }
}

impl CncDns<'_> {
    /// Whether `e`, sent by a resolver, forwards a query for `qname` that one of its
    /// clients asked it within the forward window.
    fn is_forwarded(&self, asked: &Asked<'_>, e: &DnsEvent, qname: &str) -> bool {
        let window = self.c.cnc.forward_window.ns();
        asked
            .get(&(e.client, qname))
            .is_some_and(|lookups| lookups.by_others_within(e.ts_ns, window))
    }
}

/// The C&C lookups each resolver was asked, by (resolver, name).
type Asked<'e> = HashMap<(IpAddr, &'e str), Lookups>;

/// The lookups one resolver was asked for one name, so that a forwarded query finds
/// whether another client asked within its window in two binary searches. Reading every
/// lookup made a resolver's capture quadratic in its C&C lookups (analyze took 3.1 s on
/// 80 000 forwarded ones); reading the window alone still was, for lookups the resolver
/// sent itself.
struct Lookups {
    /// (time, client), in time order.
    when: Vec<(i64, IpAddr)>,
    /// `own[i]`: how many of the first `i` the resolver itself sent.
    own: Vec<u32>,
}

impl Lookups {
    fn new(resolver: IpAddr, mut when: Vec<(i64, IpAddr)>) -> Lookups {
        when.sort_unstable();
        let mut own = Vec::with_capacity(when.len() + 1);
        own.push(0u32);
        for &(_, client) in &when {
            own.push(own[own.len() - 1] + u32::from(client == resolver));
        }
        Lookups { when, own }
    }

    /// Whether a client other than the resolver asked within `window` ns up to `ts`.
    fn by_others_within(&self, ts: i64, window: i64) -> bool {
        let from = (self.when).partition_point(|&(t, _)| t < ts.saturating_sub(window));
        let to = self.when.partition_point(|&(t, _)| t <= ts);
        let own = self.own[to.max(from)] - self.own[from];
        to.saturating_sub(from) > own as usize
    }
}

#[cfg(test)]
mod tests {
    use wormsign_testutil::SplitMix64;

    use super::*;

    /// The window search answers as reading every lookup does, for lookups at, inside
    /// and just outside both ends of the window, and sent by the resolver itself.
    #[test]
    fn lookups_by_others_within_the_window_are_found_as_a_full_scan_finds_them() {
        let by = IpAddr::from([10, 0, 0, 53]);
        let clients = [
            by,
            IpAddr::from([10, 0, 0, 20]),
            IpAddr::from([10, 0, 0, 21]),
        ];
        let window = 1_000;
        let mut rng = SplitMix64(7);
        let (mut hits, mut misses) = (0, 0);
        for _ in 0..2_000 {
            let n = rng.below(12) as usize;
            let mut lookups: Vec<(i64, IpAddr)> = (0..n)
                .map(|_| (rng.below(4_000) as i64, clients[rng.below(3) as usize]))
                .collect();
            lookups.sort_unstable();
            let ts = match rng.below(4) {
                // Exactly a window after a lookup, or at one: both ends count.
                0 if n > 0 => lookups[rng.below(n as u64) as usize].0 + window,
                1 if n > 0 => lookups[rng.below(n as u64) as usize].0,
                _ => rng.below(5_000) as i64,
            };
            let full_scan = lookups
                .iter()
                .any(|&(t, client)| client != by && t <= ts && ts - t <= window);
            // Given in reverse: the lookups sort themselves.
            let asked = Lookups::new(by, lookups.iter().rev().copied().collect());
            assert_eq!(
                asked.by_others_within(ts, window),
                full_scan,
                "{lookups:?} at {ts}"
            );
            if full_scan {
                hits += 1;
            } else {
                misses += 1;
            }
        }
        assert!(hits > 200 && misses > 200, "{hits} hits, {misses} misses");
        // A lookup at the start of time is far outside the window (the scan that read
        // every lookup wrapped around computing `ts - t` here, and counted it).
        let other = clients[1];
        let dawn = Lookups::new(by, vec![(i64::MIN, other)]);
        assert!(!dawn.by_others_within(1_000, window));
        assert!(dawn.by_others_within(i64::MIN, window));
    }
}
