//! The ports of fragmented datagrams: a first fragment's ports, kept for the fragments
//! that follow it (which carry none), in bounded memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;

use hashbrown::HashMap;

/// Which datagram a fragment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub id: u32,
    pub tunnel: u32,
}

/// First fragments' ports and capture times, by datagram.
#[derive(Default)]
pub(crate) struct Fragments {
    /// Source port, destination port and capture time.
    ports: HashMap<FragKey, (u16, u16, i64)>,
    /// (time, datagram) of the first fragments remembered, oldest first, so forgetting
    /// the old ones reads only them. Entries of datagrams since forgotten, or remembered
    /// again, are stale: skipped when they come out.
    ///
    /// Why: a full table forgot its old entries with a `retain` over all of it. A steady
    /// stream of unanswered first fragments at the rate that fills it (65 536 in 30 s, on
    /// one shard) made each new one forget a single entry, so every packet read the whole
    /// table (200 000 such packets took 1.2-1.35 s with one thread, and 0.28 s this way).
    by_time: BinaryHeap<Reverse<(i64, FragKey)>>,
}

impl Fragments {
    /// The ports of datagram `key`'s first fragment, if it is remembered.
    pub fn get(&self, key: &FragKey) -> Option<(u16, u16)> {
        self.ports.get(key).map(|&(src, dst, _)| (src, dst))
    }

    /// Forgets datagram `key` (its last fragment came).
    pub fn remove(&mut self, key: &FragKey) {
        self.ports.remove(key);
    }

    /// Remembers the ports of a first fragment seen at `ts`. When `max` datagrams are
    /// remembered, those whose first fragment is more than `timeout` ns older are
    /// forgotten first, and every one if that frees no room; returns how many were
    /// forgotten that way.
    pub fn remember(
        &mut self,
        key: FragKey,
        (src_port, dst_port): (u16, u16),
        ts: i64,
        max: usize,
        timeout: i64,
    ) -> usize {
        let before = self.ports.len();
        if before >= max {
            self.forget_before(ts.saturating_sub(timeout));
            if self.ports.len() >= max {
                self.clear();
            }
        }
        let forgotten = before - self.ports.len();
        self.ports.insert(key, (src_port, dst_port, ts));
        self.by_time.push(Reverse((ts, key)));
        if self.by_time.len() > 2 * self.ports.len() + 64 {
            let live = self
                .ports
                .iter()
                .map(|(&key, &(_, _, ts))| Reverse((ts, key)));
            self.by_time = live.collect();
        }
        forgotten
    }

    /// Forgets the datagrams whose first fragment came before `horizon`.
    pub fn forget_before(&mut self, horizon: i64) {
        while let Some(&Reverse((ts, key))) = self.by_time.peek() {
            if ts >= horizon {
                break;
            }
            self.by_time.pop();
            if self.ports.get(&key).is_some_and(|&(_, _, now)| now == ts) {
                self.ports.remove(&key);
            }
        }
    }

    /// Forgets every datagram.
    pub fn clear(&mut self) {
        self.ports.clear();
        self.by_time.clear();
    }
}

#[cfg(test)]
mod tests {
    use wormsign_testutil::SplitMix64;

    use super::*;

    /// The table as it was: a map, its old entries forgotten by reading all of it.
    #[derive(Default)]
    struct Reference(HashMap<FragKey, (u16, u16, i64)>);

    impl Reference {
        fn remember(&mut self, key: FragKey, ports: (u16, u16), ts: i64, max: usize) -> usize {
            let before = self.0.len();
            if before >= max {
                self.forget_before(ts.saturating_sub(TIMEOUT));
                if self.0.len() >= max {
                    self.0.clear();
                }
            }
            let forgotten = before - self.0.len();
            self.0.insert(key, (ports.0, ports.1, ts));
            forgotten
        }

        fn forget_before(&mut self, horizon: i64) {
            self.0.retain(|_, &mut (_, _, ts)| ts >= horizon);
        }
    }

    const TIMEOUT: i64 = 30;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: IpAddr::from([10, 0, 0, 1]),
            dst: IpAddr::from([10, 0, 0, 2]),
            proto: 17,
            id,
            tunnel: 0,
        }
    }

    /// First fragments of 24 datagrams into a table of 8, with times that mostly go
    /// forward (sometimes back, as capture clocks do), datagrams completed and old ones
    /// expired at random: the table remembers, and forgets, exactly what reading the
    /// whole map did, and counts the same forgotten entries.
    #[test]
    fn the_time_queue_forgets_what_a_full_read_did() {
        let (mut table, mut reference) = (Fragments::default(), Reference::default());
        let mut rng = SplitMix64(3);
        let (mut ts, mut forgotten, mut cleared) = (0i64, 0, 0);
        for _ in 0..50_000 {
            let k = key(rng.below(24) as u32);
            ts += if rng.below(8) == 0 {
                -(rng.below(20) as i64)
            } else {
                rng.below(4) as i64
            };
            match rng.below(10) {
                0..=5 => {
                    let ports = (rng.below(60_000) as u16, 53);
                    let n = table.remember(k, ports, ts, 8, TIMEOUT);
                    assert_eq!(n, reference.remember(k, ports, ts, 8), "at {ts}");
                    forgotten += n;
                    // Forgotten down to the new entry alone: cleared, or nearly all old.
                    cleared += usize::from(n > 0 && table.ports.len() == 1);
                }
                6..=7 => {
                    table.remove(&k);
                    reference.0.remove(&k);
                }
                8 => {
                    table.forget_before(ts - TIMEOUT);
                    reference.forget_before(ts - TIMEOUT);
                }
                _ => {}
            }
            for id in 0..24 {
                let k = key(id);
                let want = reference.0.get(&k).map(|&(s, d, _)| (s, d));
                assert_eq!(table.get(&k), want, "datagram {id} at {ts}");
            }
            assert_eq!(table.ports, reference.0);
            assert!(table.by_time.len() <= 2 * table.ports.len() + 65);
        }
        assert!(
            forgotten > 1_000 && cleared > 10,
            "{forgotten} forgotten, {cleared} cleared"
        );
    }

    /// Datagrams completed one after another, with nothing expired and a table that
    /// never fills: their entries in the time queue go stale, and the queue is rebuilt
    /// before it passes twice the map.
    #[test]
    fn completed_datagrams_leave_the_time_queue_bounded() {
        let mut table = Fragments::default();
        for id in 0..10_000 {
            table.remember(key(id), (1_024, 53), i64::from(id), 1 << 20, TIMEOUT);
            assert!(table.by_time.len() <= 2 * table.ports.len() + 64, "at {id}");
            if id % 4 != 0 {
                table.remove(&key(id));
            }
        }
        assert!(!table.ports.is_empty());
    }
}
