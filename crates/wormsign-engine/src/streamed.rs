//! Detection while the pipeline runs: the rules read the usable flows in time order as
//! far as every flow shard has said how early the flows it has yet to send can start,
//! instead of all of them once the input has ended.
//!
//! After each sweep of its flow table a shard sends a bound ([`Streaming::bound`]): the
//! earliest start among the flows still live in its table, the usable flows of the batch
//! it is building, and the packets still to come (the newest packet time read, less the
//! longest idle timeout, the disorder a capture may have; a shard that decoded exported
//! flow records sends no more). When the usable flows the feed
//! holds fill [`DetectConfig::max_pending_flows`], those that start before every shard's
//! bound go through the rules at once, in detection order ([`Streaming::release`]); the
//! rest wait. So a long capture needs neither temporary files nor memory beyond the flows
//! of the last few minutes, and the rules have read most flows when the input ends.
//!
//! The result must be the detection over the stored tables, so each thing that could
//! make it differ is checked, and if one did, the feed lets go of what it gathered and
//! the tables are read back ([`Streaming::check_end`]):
//! - **A flow that starts before a released bound**: the input was out of time order
//!   by more than the idle timeout (files given out of order, flow logs or exported
//!   records among packets).
//! - **C&C addresses.** The rules start before the run's DNS is complete, and `cnc_ip`
//!   counts the flows to the addresses C&C names resolve to. Before each release the
//!   detector is told the addresses the decode workers published by then
//!   ([`Detector::watch_resolved`]); a flow to a published address was kept by its shard
//!   after it was published, so before the release. A released flow to an address not yet
//!   known goes into a Bloom filter of responders; at the end, an address the whole DNS
//!   resolves that the filter may hold means such a flow may have been read as an
//!   ordinary one.
//! - **A flow turned down by a shard** before its C&C address was published, which the
//!   feed would otherwise read from the stored table (see `resolved.rs`): the released
//!   flows are gone, so the whole detection is read back instead.
//!
//! Releasing only when the held flows fill the cap keeps the sorting to one pass over
//! each cap's worth; the flows held in temporary files beyond it are merged with them,
//! each file read from where the last release left it, so no flow is written twice. When
//! fewer than a quarter of the cap may go (a capture whose flows stay live for long),
//! nothing is, and the batch goes to a file as before.

use std::net::IpAddr;

use hashbrown::HashSet;
use wormsign_detect::{DetectConfig, Detector, PendingFlows, UsableFlow};

use crate::resolved::ResolvedCnc;

/// The feed's side of detection during the run (see the module doc).
pub(crate) struct Streaming<'a> {
    /// Each shard's latest bound, `None` until it sent one.
    bounds: Vec<Option<i64>>,
    /// The bound the flows released so far all started before; every flow that comes
    /// later must start at it or after.
    released_before: i64,
    /// A flow came that started before `released_before`.
    late: bool,
    /// Usable flows released.
    pub released: u64,
    /// The detector the released flows went through, made at the first release.
    detector: Option<Detector<'a>>,
    /// C&C addresses the detector knows: listed, or published before a release.
    known: HashSet<IpAddr>,
    /// Responders of released flows that were no known C&C address then.
    unknown_responders: AddressBloom,
}

impl<'a> Streaming<'a> {
    pub fn new(config: &DetectConfig) -> Self {
        Streaming {
            bounds: Vec::new(),
            released_before: i64::MIN,
            late: false,
            released: 0,
            detector: None,
            known: config.cnc.ips.iter().copied().collect(),
            unknown_responders: AddressBloom::default(),
        }
    }

    /// Shard `shard` of `of` will send no usable flow that starts before `before`.
    pub fn bound(&mut self, shard: usize, of: usize, before: i64) {
        if self.bounds.len() != of {
            self.bounds = vec![None; of];
        }
        if let Some(b) = self.bounds.get_mut(shard) {
            *b = Some(before);
        }
    }

    /// Usable flows that came: any that starts before a released bound is late.
    pub fn came(&mut self, flows: &[UsableFlow]) {
        let before = self.released_before;
        self.late |= flows.iter().any(|f| f.start() < before);
    }

    /// Runs the flows of `pending` that start before every shard's bound through the
    /// rules, if at least a quarter of the cap may go.
    pub fn release(
        &mut self,
        config: &'a DetectConfig,
        resolved: &ResolvedCnc,
        pending: &mut PendingFlows,
    ) {
        let Some(before) = self.bounds.iter().copied().min().flatten() else {
            return;
        };
        if before <= self.released_before || self.late {
            return;
        }
        let least = (config.max_pending_flows / 4).max(1);
        let released = pending.drain_before(before, least, |flows| {
            self.run(config, resolved, flows);
        });
        if released > 0 {
            self.released_before = before;
            self.released += released as u64;
        }
    }

    /// `flows`, in detection order, through the detector, told first of the C&C
    /// addresses published by now.
    fn run(&mut self, config: &'a DetectConfig, resolved: &ResolvedCnc, flows: &[&UsableFlow]) {
        let Streaming {
            detector,
            known,
            unknown_responders,
            ..
        } = self;
        let detector = detector.get_or_insert_with(|| Detector::new(config, &[], &[]));
        let published = resolved.published();
        let new: Vec<IpAddr> = published
            .iter()
            .filter(|&&a| known.insert(a))
            .copied()
            .collect();
        if !new.is_empty() {
            detector.watch_resolved(&new);
        }
        for f in flows.iter().filter(|f| !known.contains(&f.responder())) {
            unknown_responders.insert(f.responder());
        }
        detector.push_in_order(flows);
    }

    /// The detector the released flows went through, if any were.
    pub fn take_detector(&mut self) -> Option<Detector<'a>> {
        self.detector.take()
    }

    /// Whether the rest of the flows can follow the released ones to the detection over
    /// the stored tables, given `resolved_beyond`, the C&C addresses the run's DNS
    /// resolved beyond the listed ones (`None`: the filters differ otherwise); else why
    /// not.
    pub fn check_end(
        &self,
        resolved: &ResolvedCnc,
        resolved_beyond: Option<&std::collections::HashSet<IpAddr>>,
    ) -> Result<(), &'static str> {
        let Some(beyond) = resolved_beyond else {
            return Err(WATCHED_MORE);
        };
        if self.late {
            Err(LATE)
        } else if beyond.iter().any(|&a| self.unknown_responders.may_hold(a)) {
            Err(RESOLVED_AFTER)
        } else if !resolved.missed_none_of(beyond) {
            Err(TURNED_DOWN)
        } else {
            Ok(())
        }
    }
}

/// Why the flows the rules read during the run cannot be followed by the others.
const LATE: &str = "usable flows came out of time order, by more than the idle timeout, \
                    after the rules had read later ones during the run";
const WATCHED_MORE: &str = "the rules, which read flows during the run, watch more than the \
                            C&C addresses the run resolved";
const RESOLVED_AFTER: &str = "the run's DNS resolved a C&C name to an address that flows \
                              the rules read during the run may have gone to before";
const TURNED_DOWN: &str = "a flow shard turned down flows to an address the run's DNS \
                           resolved for a C&C name before it was known, and the rules read \
                           flows during the run";
pub(crate) const UNSETTLED: &str = "a C&C address published during the run is not among \
                                    those its DNS resolved";

/// Bits of [`AddressBloom`]: 2^24 (2 MiB, allocated at the first insertion). With
/// 400 000 distinct responders in it (a scan of that many addresses), an address not in
/// it reads as held about once in 14 000 (four probes).
const BLOOM_BITS: usize = 1 << 24;

/// A Bloom filter of addresses: no false "not held".
#[derive(Default)]
struct AddressBloom {
    /// Allocated at the first insertion.
    words: Vec<u64>,
}

impl AddressBloom {
    fn insert(&mut self, ip: IpAddr) {
        if self.words.is_empty() {
            self.words = vec![0; BLOOM_BITS / 64];
        }
        for bit in probes(ip) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_hold(&self, ip: IpAddr) -> bool {
        !self.words.is_empty()
            && probes(ip)
                .iter()
                .all(|&bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// The filter's four bits for `ip`: from a fixed hash, so the same run checks the same
/// way every time.
fn probes(ip: IpAddr) -> [usize; 4] {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) | 1 << 127,
        IpAddr::V6(v6) => u128::from(v6),
    };
    let h = mix(mix(bits as u64) ^ (bits >> 64) as u64);
    let (a, b) = (h as usize, (h >> 32) as usize | 1);
    [0, 1, 2, 3].map(|i| a.wrapping_add(i * b) % BLOOM_BITS)
}

/// SplitMix64's finalizer: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolved::tests::{answer, flow, rules, CNC};
    use std::collections::HashSet as StdHashSet;

    /// The end check fails when the rules read a flow to an address before the DNS named
    /// it a C&C address (the read-back then counts that flow as `cnc_ip` does), not when
    /// the address was published before; and it fails when a flow comes that starts
    /// before the released bound.
    #[test]
    fn the_end_check_catches_what_reading_early_could_change() {
        let rules = DetectConfig {
            max_pending_flows: 4,
            ..rules()
        };
        let cnc = StdHashSet::from([IpAddr::from(CNC)]);
        let usable = |n: u8, to| UsableFlow::from(&flow(n, to, 80));
        for published_first in [false, true] {
            let resolved = ResolvedCnc::default();
            if published_first {
                resolved.publish(&rules, &answer().message);
            }
            let mut streaming = Streaming::new(&rules);
            let mut pending = PendingFlows::new(rules.max_pending_flows);
            pending.hold(vec![
                usable(1, CNC),
                usable(3, [10, 0, 0, 9]),
                usable(9, CNC),
            ]);
            streaming.bound(0, 1, 5_000_000_000);
            streaming.release(&rules, &resolved, &mut pending);
            assert_eq!(streaming.released, 2, "the flows before the bound");
            resolved.publish(&rules, &answer().message);
            let want = if published_first {
                Ok(())
            } else {
                Err(RESOLVED_AFTER)
            };
            assert_eq!(streaming.check_end(&resolved, Some(&cnc)), want);
            streaming.came(&[usable(4, [10, 0, 0, 9])]);
            assert_eq!(streaming.check_end(&resolved, Some(&cnc)), Err(LATE));
        }
    }

    /// The filter holds what went in; of 100 000 addresses that did not, a few at most
    /// read as held with 400 000 in it (about 7 expected), IPv4 and IPv6 alike.
    #[test]
    fn the_bloom_filter_holds_what_went_in_and_little_else() {
        let addr = |i: u32| IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        let mut bloom = AddressBloom::default();
        assert!(!bloom.may_hold(addr(0)));
        (0..400_000).for_each(|i| bloom.insert(addr(i)));
        assert!((0..400_000).all(|i| bloom.may_hold(addr(i))));
        let false_hits = (400_000..500_000)
            .filter(|&i| bloom.may_hold(addr(i)))
            .count();
        assert!(false_hits < 40, "{false_hits} of 100 000 read as held");
        let v6 = |i: u128| IpAddr::from((0x2001_0db8_u128 << 96 | i).to_be_bytes());
        (0..1000).for_each(|i| bloom.insert(v6(i)));
        assert!((0..1000).all(|i| bloom.may_hold(v6(i))));
        assert!((1000..2000).filter(|&i| bloom.may_hold(v6(i))).count() < 5);
    }
}
