//! Scanning sources: each source's first contacts on worm services, in bounded memory.
//!
//! TRW and failed contacts count first contacts (a source's first flow to a destination),
//! so the distinct destinations each source tried are kept once here for both. The table
//! holds at most [`DetectConfig::max_sources`] sources (shared out among the parts of a
//! detection, see `part.rs`); at the cap, the least recently
//! active eighth of the sources no rule has flagged is evicted, and every rule forgets
//! them ([`crate::rules::RuleState::forget_source`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
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
    /// How many sources no rule has flagged.
    unflagged: usize,
    /// The unflagged sources, oldest first, from the first eviction on.
    idle: Option<IdleQueue>,
}

/// The unflagged sources by (last seen, address), oldest first: a priority queue whose
/// entries may be stale (the source was evicted, flagged or seen since), so that
/// counting a flow costs the queue nothing unless it is the source's first or moves it
/// back in time. Every unflagged source has an entry no later than its (last seen,
/// address); [`IdleQueue::pop_oldest`] skips or moves up the others. New sources and
/// late flows add entries; once it outgrows the table ([`IdleQueue::outgrew`]), it is
/// built again.
///
/// Why a queue: evicting by collecting every unflagged source read the whole table
/// (262 144 sources by default) for each eviction, and once nearly every source is
/// flagged an eviction frees one place at a time, so each new source read the table.
///
/// Why two: the rules read flows in time order, so new sources come oldest first, and a
/// first-in first-out queue takes them and gives them back in order at no cost; only
/// the entries that come out of order (a late flow's, a source seen since it was
/// queued) go to a heap. Every pop takes the earlier of the two fronts, so the entries
/// come off in the order one heap gave them. Under a SYN flood of spoofed sources, where
/// every flow brings a new source and so, on average, evicts one (an eighth of the table
/// at a time), the heap alone (`pop`'s sifting down and up over 16 384 entries) was 9 %
/// of the run.
struct IdleQueue {
    /// Entries that came no earlier than the one before them, in order.
    in_order: VecDeque<(i64, IpAddr)>,
    /// The others.
    out_of_order: BinaryHeap<Reverse<(i64, IpAddr)>>,
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
        if self.unflagged == 0 {
            stats.entries_refused += 1;
            return false;
        }
        // The oldest eighth: a unique set, as (last_seen, ip) pairs are distinct.
        let n = (self.by_addr.len() / 8).clamp(1, self.unflagged);
        let by_addr = &mut self.by_addr;
        let idle = match &mut self.idle {
            Some(idle) if !idle.outgrew(by_addr.len()) => idle,
            _ => self.idle.insert(IdleQueue::of(by_addr)),
        };
        let start = evicted.len();
        while evicted.len() - start < n {
            let Some(ip) = idle.pop_oldest(by_addr) else {
                break;
            };
            by_addr.remove(&ip);
            evicted.push(ip);
        }
        let gone = evicted.len() - start;
        self.unflagged -= gone;
        stats.sources_evicted += gone as u64;
        gone > 0
    }

    /// Whether `src` is in the table or fits without evicting anyone.
    pub fn has_room_for(&self, src: IpAddr, caps: Caps) -> bool {
        // The length first: while the table has room, no flow's address is hashed twice.
        self.by_addr.len() < caps.sources || self.by_addr.contains_key(&src)
    }

    /// Counts a worm-service flow of a source the table holds: whether it is the source's
    /// first contact with the destination.
    pub fn record(&mut self, f: &UsableFlow, caps: Caps, stats: &mut DetectStats) -> bool {
        let (src, ts) = (f.orig_addr, f.ts_first);
        let held = self.by_addr.len();
        let mut added = false;
        let s = self.by_addr.entry(src).or_insert_with(|| {
            added = true;
            Source::default()
        });
        // A late flow (of an earlier sorted run) can move a source back in time.
        if added || ts < s.last_seen {
            if let Some(idle) = &mut self.idle {
                idle.push((ts, src));
                // Late flows of a full table that evicts no one would grow the queue
                // without bound: the next eviction builds it again instead.
                if idle.outgrew(held + usize::from(added)) {
                    self.idle = None;
                }
            }
        }
        self.unflagged += usize::from(added);
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
        if let Some(s) = self.by_addr.get_mut(&src).filter(|s| !s.flagged) {
            s.flagged = true;
            self.unflagged -= 1;
        }
    }

    /// The first contacts of `src`.
    pub fn get(&self, src: IpAddr) -> Option<&Source> {
        self.by_addr.get(&src)
    }
}

impl IdleQueue {
    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    /// Whether the queue holds more than twice the entries of a table of `held` sources
    /// (and 64): mostly stale ones, cheaper to build again than to keep.
    fn outgrew(&self, held: usize) -> bool {
        self.len() > 2 * held + 64
    }

    /// The unflagged sources of `by_addr`.
    fn of(by_addr: &HashMap<IpAddr, Source>) -> IdleQueue {
        let unflagged = by_addr.iter().filter(|(_, s)| !s.flagged);
        let mut entries: Vec<(i64, IpAddr)> = unflagged.map(|(&ip, s)| (s.last_seen, ip)).collect();
        entries.sort_unstable();
        IdleQueue {
            in_order: entries.into(),
            out_of_order: BinaryHeap::new(),
        }
    }

    fn push(&mut self, entry: (i64, IpAddr)) {
        if self.in_order.back().is_none_or(|&last| last <= entry) {
            self.in_order.push_back(entry);
        } else {
            self.out_of_order.push(Reverse(entry));
        }
    }

    /// The earliest entry, taken off the queue.
    fn pop(&mut self) -> Option<(i64, IpAddr)> {
        let heap_first = self.out_of_order.peek().map(|&Reverse(e)| e);
        match (self.in_order.front(), heap_first) {
            (Some(&first), Some(other)) if other < first => self.pop_out_of_order(),
            (Some(_), _) => self.in_order.pop_front(),
            (None, _) => self.pop_out_of_order(),
        }
    }

    fn pop_out_of_order(&mut self) -> Option<(i64, IpAddr)> {
        self.out_of_order.pop().map(|Reverse(e)| e)
    }

    /// The unflagged source of `by_addr` least recently seen (ties: the lowest address),
    /// taken off the queue; `None` only when no source is unflagged.
    fn pop_oldest(&mut self, by_addr: &HashMap<IpAddr, Source>) -> Option<IpAddr> {
        while let Some((seen, ip)) = self.pop() {
            match by_addr.get(&ip) {
                Some(s) if !s.flagged && s.last_seen == seen => return Some(ip),
                // Seen since: its true place is later in the queue.
                Some(s) if !s.flagged && s.last_seen > seen => self.push((s.last_seen, ip)),
                // Evicted or flagged, or an entry a later, earlier-dated one replaced.
                _ => {}
            }
        }
        None
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use wormsign_testutil::SplitMix64;

    use super::*;
    use crate::config::DetectConfig;

    /// The table as it evicted before the queue: every unflagged source collected, the
    /// oldest eighth by (last seen, address) evicted, the new source refused when every
    /// source is flagged.
    #[derive(Default)]
    struct Reference {
        /// Last seen and flagged, by address.
        sources: BTreeMap<IpAddr, (i64, bool)>,
    }

    impl Reference {
        fn make_room_for(&mut self, src: IpAddr, cap: usize) -> Option<Vec<IpAddr>> {
            if self.sources.len() < cap || self.sources.contains_key(&src) {
                return Some(Vec::new());
            }
            let mut idle: Vec<(i64, IpAddr)> = (self.sources.iter())
                .filter(|(_, &(_, flagged))| !flagged)
                .map(|(&ip, &(seen, _))| (seen, ip))
                .collect();
            if idle.is_empty() {
                return None;
            }
            idle.sort_unstable();
            idle.truncate((self.sources.len() / 8).clamp(1, idle.len()));
            let evicted: Vec<IpAddr> = idle.into_iter().map(|(_, ip)| ip).collect();
            for ip in &evicted {
                self.sources.remove(ip);
            }
            Some(evicted)
        }
    }

    /// The caps of a detection whose table holds 16 sources.
    fn sixteen_sources() -> Caps {
        let config = DetectConfig {
            max_sources: 16,
            ..DetectConfig::default()
        };
        config.caps(1)
    }

    fn flow(src: IpAddr, ts_first: i64) -> UsableFlow {
        UsableFlow {
            ts_first,
            ts_last: ts_first,
            first_packet: 0,
            payload_bytes: 0,
            record_index: 0,
            orig_addr: src,
            resp_addr: IpAddr::from([10, 9, 0, 1]),
            orig_port: 49_152,
            resp_port: 445,
            proto: 6,
            has_ports: true,
            failed: true,
            completed: false,
            shows_outcome: true,
        }
    }

    /// Flows from 40 sources into a table of 16, mostly in time order with some late
    /// ones, and sources flagged at random (often nearly all of those held): the queue
    /// evicts and refuses exactly the sources the full scan did, at every step.
    #[test]
    fn eviction_by_the_queue_matches_a_scan_of_the_whole_table() {
        let caps = sixteen_sources();
        let (mut sources, mut reference) = (Sources::default(), Reference::default());
        let mut stats = DetectStats::default();
        let mut rng = SplitMix64(11);
        let (mut ts, mut evictions, mut refusals) = (0i64, 0, 0);
        for _ in 0..20_000 {
            let src = IpAddr::from([10, 0, 0, rng.below(40) as u8]);
            if rng.below(6) == 0 {
                sources.flag(src);
                if let Some((_, flagged)) = reference.sources.get_mut(&src) {
                    *flagged = true;
                }
                continue;
            }
            // Now and then a late flow, earlier than the last.
            ts += if rng.below(10) == 0 {
                -(rng.below(50) as i64)
            } else {
                rng.below(5) as i64
            };
            let mut evicted = Vec::new();
            let room = sources.make_room_for(src, caps, &mut stats, &mut evicted);
            let expected = reference.make_room_for(src, caps.sources);
            evicted.sort_unstable();
            let mut want = expected.clone().unwrap_or_default();
            want.sort_unstable();
            assert_eq!(
                (room, &evicted),
                (expected.is_some(), &want),
                "{src} at {ts}"
            );
            evictions += usize::from(!evicted.is_empty());
            refusals += usize::from(!room);
            if room {
                sources.record(&flow(src, ts), caps, &mut stats);
                let seen = reference.sources.entry(src).or_insert((ts, false));
                seen.0 = ts;
            }
            // Flags clear now and then, as new sources replace the flagged ones.
            if rng.below(500) == 0 {
                sources = Sources::default();
                reference = Reference::default();
            }
            let held: Vec<IpAddr> = reference.sources.keys().copied().collect();
            let mut now: Vec<IpAddr> = sources.by_addr.keys().copied().collect();
            now.sort_unstable();
            assert_eq!(now, held);
        }
        assert!(
            evictions > 1_000 && refusals > 100,
            "{evictions} evictions, {refusals} refusals"
        );
        assert_eq!(stats.entries_refused, refusals as u64);
    }

    /// Pushes and pops in random order, mostly rising with some late and repeated
    /// entries, come off the two queues as they come off one heap.
    #[test]
    fn the_two_queues_pop_what_one_heap_pops() {
        let mut rng = SplitMix64(7);
        let mut queue = IdleQueue::of(&HashMap::new());
        let mut heap = BinaryHeap::new();
        let (mut ts, mut fifo_held, mut heap_held) = (0i64, 0, 0);
        for _ in 0..50_000 {
            if rng.below(3) == 0 {
                assert_eq!(queue.pop(), heap.pop().map(|Reverse(e)| e));
                continue;
            }
            ts += rng.below(3) as i64;
            let back = if rng.below(8) == 0 {
                rng.below(20) as i64
            } else {
                0
            };
            let entry = (ts - back, IpAddr::from([10, 0, 0, rng.below(4) as u8]));
            queue.push(entry);
            heap.push(Reverse(entry));
            assert_eq!(queue.len(), heap.len());
            fifo_held = fifo_held.max(queue.in_order.len());
            heap_held = heap_held.max(queue.out_of_order.len());
        }
        while let Some(Reverse(e)) = heap.pop() {
            assert_eq!(queue.pop(), Some(e));
        }
        assert_eq!(queue.pop(), None);
        assert!(
            fifo_held > 100 && heap_held > 100,
            "{fifo_held} and {heap_held} held"
        );
    }

    /// A full table that evicts no one, fed flows that keep moving its sources back in
    /// time (late flows of earlier sorted runs): the queue stays within twice the table.
    #[test]
    fn late_flows_of_a_full_table_keep_the_queue_bounded() {
        let caps = sixteen_sources();
        let (mut sources, mut stats) = (Sources::default(), DetectStats::default());
        let source = |i: u64| IpAddr::from([10, 0, 0, i as u8]);
        for (i, ts) in (0..17).zip(100..) {
            assert!(sources.make_room_for(source(i), caps, &mut stats, &mut Vec::new()));
            sources.record(&flow(source(i), ts), caps, &mut stats);
        }
        assert!(sources.idle.is_some(), "the 17th source evicted two");
        let held: Vec<IpAddr> = sources.by_addr.keys().copied().collect();
        for step in 0..10_000i64 {
            let src = held[step as usize % held.len()];
            assert!(sources.make_room_for(src, caps, &mut stats, &mut Vec::new()));
            sources.record(&flow(src, 99 - step), caps, &mut stats);
            let queued = sources.idle.as_ref().map_or(0, IdleQueue::len);
            assert!(
                queued <= 2 * held.len() + 64,
                "{queued} queued at step {step}"
            );
        }
        assert_eq!(stats.sources_evicted, 2);
    }
}
