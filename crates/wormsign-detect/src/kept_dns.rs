//! The DNS messages detection keeps of a run, in memory that grows with what the rules
//! read rather than with the messages.
//!
//! - Every message asking for a C&C name: `cnc_dns` counts each query and tells a
//!   forwarding resolver by their times, and `cnc_ip` reads the answers.
//! - Of reverse lookups, only what the hosts table shows: a response that names a host
//!   (an answer that is not an address) for a name [`reverse_name_ip`] reads, once per
//!   name and answer list. The copy kept is the least in detection's order (that of
//!   [`DnsEvent`]'s `Ord`, the order the identity of hosts reads them in), so
//!   every name reaches a host's list at the same place, and the result is the same as
//!   with every message, whatever order they come in.
//!
//! Reverse lookups are frequent (mail servers, loggers and monitoring resolve every peer).
//! A capture of a million of them, for 65 536 addresses, peaked at 715 MB with detection
//! and 415 MB without, as every message was held to name the few hosts the alerts
//! involve; holding one answer per name and answers, 477 MB (two million lookups: 1 339
//! to 738 MB).

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::OnceLock;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::config::DetectConfig;
use crate::identity::reverse_name_ip;
use crate::model::DnsEvent;

/// The DNS messages of a run that detection reads (see the module doc). Messages can be
/// added in any order, from the pipeline or read back, and sets picked out apart (by
/// each decode worker) merged; [`KeptDns::into_vec`] gives them.
#[derive(Debug, Default)]
pub struct KeptDns {
    cnc: Vec<DnsEvent>,
    /// Each reverse-lookup response that names a host, one per name and answers, with
    /// the [`naming_hash`] of those.
    naming: HashTable<(u64, DnsEvent)>,
    /// Such responses picked out but not yet compared with `naming`.
    unmerged: Vec<(u64, DnsEvent)>,
}

/// What detection reads a kept message for.
enum Use {
    /// A C&C lookup, every one counted.
    Cnc,
    /// A reverse lookup naming a host, with its [`naming_hash`].
    Naming(u64),
}

impl KeptDns {
    /// Keeps `event` if the rules of `config` read it.
    fn push(&mut self, config: &DetectConfig, event: DnsEvent) {
        match used(config, &event) {
            Some(Use::Cnc) => self.cnc.push(event),
            Some(Use::Naming(hash)) => self.keep_naming(hash, event),
            None => {}
        }
    }

    /// The messages of `events` the rules of `config` read, picked out but not yet
    /// compared with each other: the parallel half of keeping them, where each decode
    /// worker picks out its batches and the writer [`KeptDns::merge`]s them into one.
    pub fn picked(config: &DetectConfig, events: impl IntoIterator<Item = DnsEvent>) -> Self {
        let mut kept = KeptDns::default();
        for event in events {
            match used(config, &event) {
                Some(Use::Cnc) => kept.cnc.push(event),
                Some(Use::Naming(hash)) => kept.unmerged.push((hash, event)),
                None => {}
            }
        }
        kept
    }

    /// Adds what `other` kept (for the same rules).
    pub fn merge(&mut self, other: KeptDns) {
        self.cnc.extend(other.cnc);
        let naming = other.naming.into_iter().chain(other.unmerged);
        naming.for_each(|(hash, e)| self.keep_naming(hash, e));
    }

    /// `self` as a collection that keeps, of what it is given, what the rules of `config`
    /// read (as [`KeptDns::picked`] then [`KeptDns::merge`] would).
    pub fn keeping<'s>(&'s mut self, config: &'s DetectConfig) -> Keeping<'s> {
        Keeping { kept: self, config }
    }

    /// The kept messages, in no particular order (the detector sorts them).
    pub fn into_vec(mut self) -> Vec<DnsEvent> {
        let unmerged = std::mem::take(&mut self.unmerged);
        unmerged
            .into_iter()
            .for_each(|(hash, e)| self.keep_naming(hash, e));
        let mut all = self.cnc;
        all.extend(self.naming.into_iter().map(|(_, e)| e));
        all
    }

    /// Keeps `event` unless one with its name and answers comes before it.
    fn keep_naming(&mut self, hash: u64, event: DnsEvent) {
        let same = |(h, kept): &(u64, DnsEvent)| {
            *h == hash && (&kept.qname, &kept.answers) == (&event.qname, &event.answers)
        };
        match self.naming.entry(hash, same, |(h, _)| *h) {
            Entry::Occupied(mut kept) => {
                if event < kept.get().1 {
                    kept.get_mut().1 = event;
                }
            }
            Entry::Vacant(slot) => {
                slot.insert((hash, event));
            }
        }
    }
}

/// What the rules of `config` read `e` for, if anything.
fn used(config: &DetectConfig, e: &DnsEvent) -> Option<Use> {
    let qname = e.qname.as_deref()?;
    if config.cnc_domain_match(qname).is_some() {
        Some(Use::Cnc)
    } else {
        names_a_host(e).then(|| Use::Naming(naming_hash(e)))
    }
}

/// A hash of a message's name and answers, the same in every [`KeptDns`] of the process,
/// so that those the decode workers compute serve the writer's table. Its seed is random
/// (one per process), as the answers come from whoever sends DNS on the wire: a fixed,
/// public key would let crafted responses collide and slow the writer down.
fn naming_hash(e: &DnsEvent) -> u64 {
    static SEEDED: OnceLock<DefaultHashBuilder> = OnceLock::new();
    SEEDED
        .get_or_init(DefaultHashBuilder::default)
        .hash_one((&e.qname, &e.answers))
}

/// A [`KeptDns`] taking messages for the rules of a configuration, as readers of DNS
/// rows add them ([`KeptDns::keeping`]).
pub struct Keeping<'s> {
    kept: &'s mut KeptDns,
    config: &'s DetectConfig,
}

impl Extend<DnsEvent> for Keeping<'_> {
    fn extend<I: IntoIterator<Item = DnsEvent>>(&mut self, events: I) {
        events
            .into_iter()
            .for_each(|e| self.kept.push(self.config, e));
    }
}

/// Whether `e` answers a reverse lookup with a host name (what the hosts table lists).
fn names_a_host(e: &DnsEvent) -> bool {
    e.is_response
        && e.qname.as_deref().and_then(reverse_name_ip).is_some()
        && e.answers.iter().any(|a| a.parse::<IpAddr>().is_err())
}

#[cfg(test)]
mod tests {
    use wormsign_flow::{ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History};

    use super::*;

    fn event(ts_ns: i64, client: u8, qname: &str, is_response: bool, answers: &[&str]) -> DnsEvent {
        DnsEvent {
            ts_ns,
            client: IpAddr::from([10, 0, 0, client]),
            server: IpAddr::from([10, 0, 0, 53]),
            qname: Some(qname.to_string()),
            is_response,
            answers: answers.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The messages `config` keeps of `events`, added in two halves kept apart and merged.
    fn kept(config: &DetectConfig, events: &[DnsEvent]) -> Vec<DnsEvent> {
        let (first, second) = events.split_at(events.len() / 2);
        let mut k = KeptDns::default();
        k.keeping(config).extend(first.iter().cloned());
        let mut other = KeptDns::default();
        other.keeping(config).extend(second.iter().cloned());
        k.merge(other);
        let mut v = k.into_vec();
        v.sort();
        v
    }

    /// Every C&C message stays, repeats included; of reverse lookups only the first
    /// response naming a host per name and answers, whatever the order.
    #[test]
    fn keeps_cnc_lookups_and_the_first_naming_of_each_reverse_answer() {
        let c = DetectConfig::default();
        let ptr = "8.1.164.10.in-addr.arpa";
        let events = vec![
            event(5, 1, "t.awcna.com", false, &[]),
            event(5, 1, "t.awcna.com", false, &[]),
            event(6, 1, "t.awcna.com", true, &["192.0.2.7"]),
            event(1, 2, ptr, false, &[]),
            event(9, 3, ptr, true, &["fs1.corp"]),
            event(3, 4, ptr, true, &["fs1.corp"]),
            event(3, 2, ptr, true, &["fs1.corp"]),
            event(4, 2, ptr, true, &["fs1.corp", "alias.corp"]),
            event(2, 2, ptr, true, &[]),
            event(2, 2, ptr, true, &["10.164.1.8"]),
            event(2, 2, "1.164.10.in-addr.arpa", true, &["net.corp"]),
            event(2, 2, "example.org", true, &["host.example.org"]),
        ];
        let expected = vec![
            event(3, 2, ptr, true, &["fs1.corp"]),
            event(4, 2, ptr, true, &["fs1.corp", "alias.corp"]),
            event(5, 1, "t.awcna.com", false, &[]),
            event(5, 1, "t.awcna.com", false, &[]),
            event(6, 1, "t.awcna.com", true, &["192.0.2.7"]),
        ];
        assert_eq!(kept(&c, &events), expected);
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(kept(&c, &reversed), expected);
        for start in 0..events.len() {
            let mut rotated = events.clone();
            rotated.rotate_left(start);
            assert_eq!(kept(&c, &rotated), expected, "rotated by {start}");
        }
    }

    /// A flow from 10.0.0.`src` to the honeypot, so the source is a host of the result.
    fn to_honeypot(n: u64, src: u8) -> FlowRecord {
        let side = DirCounters {
            packets: 1,
            ip_bytes: 60,
            payload_bytes: 0,
            tcp_flags: 0x02,
        };
        FlowRecord {
            first_packet: n,
            ts_first: 100 + n as i64,
            ts_last: 100 + n as i64,
            orig_addr: IpAddr::from([10, 0, 0, src]),
            orig_port: 40_000,
            resp_addr: IpAddr::from([10, 9, 9, 9]),
            resp_port: 445,
            has_ports: true,
            proto: 6,
            vlan: None,
            tunnel: None,
            orig: side,
            resp: DirCounters::default(),
            conn_state: ConnState::S0,
            history: History::default(),
            end_reason: EndReason::Idle,
            source: FlowSource::Packets,
        }
    }

    /// Detection over the kept messages is detection over all of them: the hosts'
    /// names (more than a host lists, repeated by many clients at many times, in any
    /// order) and the C&C alerts.
    #[test]
    fn detection_over_the_kept_messages_is_detection_over_all() {
        let c = DetectConfig::from_toml("honeypots = [\"10.9.9.9\"]").unwrap();
        let flows: Vec<FlowRecord> = (1..=3).map(|h| to_honeypot(u64::from(h), h)).collect();
        let mut all = Vec::new();
        for i in 0..400u32 {
            let host = (i % 3 + 1) as u8;
            let ptr = format!("{host}.0.0.10.in-addr.arpa");
            let name = format!("name{}.corp", (i * 7) % 11);
            let ts = i64::from((i * 37) % 101);
            let client = (i % 5) as u8 + 20;
            all.push(event(ts, client, &ptr, i % 4 != 0, &[name.as_str()]));
            all.push(event(
                ts,
                client,
                "down.ackng.com",
                i % 2 == 0,
                &["192.0.2.9"],
            ));
        }
        let kept = kept(&c, &all);
        let reverse = kept
            .iter()
            .filter(|e| e.qname.as_ref().unwrap().ends_with(".arpa"));
        assert!(
            reverse.count() <= 3 * 11,
            "at most each host's 11 names once"
        );
        let whole = crate::detect(&c, &flows, &all, &[]);
        assert!(whole.hosts.iter().any(|h| h.identity.names.len() == 8));
        assert!(whole.alerts.iter().any(|a| a.rule == crate::Rule::CncDns));
        let mut from_kept = crate::detect(&c, &flows, &kept, &[]);
        // The messages given, which callers replace with those read (`Feed`, `detect_dir`).
        assert_eq!(from_kept.stats.dns_events, kept.len() as u64);
        from_kept.stats.dns_events = whole.stats.dns_events;
        assert_eq!(from_kept, whole);
    }
}
