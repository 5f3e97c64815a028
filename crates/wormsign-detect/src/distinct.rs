//! Distinct-address counting in bounded memory: exact up to a cap, estimated beyond.

use std::net::IpAddr;

use hashbrown::HashSet;

use crate::model::DetectStats;

/// An exact set of addresses up to a cap. Beyond it the set is *saturated*: new
/// addresses are no longer stored (so whether one is new is unknown), but every address
/// still goes into a HyperLogLog sketch, so [`CappedSet::len`] stays an estimate of the
/// distinct count (±3 %) instead of stopping at the cap.
#[derive(Default)]
pub(crate) struct CappedSet {
    exact: Exact,
    sketch: Option<HyperLogLog>,
}

/// The addresses a [`CappedSet`] holds: the first in place, a table from the second on.
/// Many sets never get a second (a SYN flood's sources, each seen once; a server's one
/// peer), and a table for each, allocated on a source's first flow and freed when it is
/// evicted, was an eighth of a flood's detection time in `malloc` and `free`. In place,
/// the address takes no more room than the empty table did (40 bytes).
enum Exact {
    One(Option<IpAddr>),
    Many(HashSet<IpAddr>),
}

// What the doc above says of its room.
const _: () = assert!(std::mem::size_of::<Exact>() == std::mem::size_of::<HashSet<IpAddr>>());

impl Default for Exact {
    fn default() -> Self {
        Exact::One(None)
    }
}

impl Exact {
    fn len(&self) -> usize {
        match self {
            Exact::One(first) => usize::from(first.is_some()),
            Exact::Many(set) => set.len(),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Exact::One(first) => *first == Some(ip),
            Exact::Many(set) => set.contains(&ip),
        }
    }

    /// Adds `ip`: whether it was new.
    fn insert(&mut self, ip: IpAddr) -> bool {
        match self {
            Exact::One(None) => *self = Exact::One(Some(ip)),
            Exact::One(Some(first)) if *first == ip => return false,
            Exact::One(Some(first)) => *self = Exact::Many(HashSet::from_iter([*first, ip])),
            Exact::Many(set) => return set.insert(ip),
        }
        true
    }

    fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let (first, set) = match self {
            Exact::One(first) => (*first, None),
            Exact::Many(set) => (None, Some(set)),
        };
        first.into_iter().chain(set.into_iter().flatten().copied())
    }
}

impl CappedSet {
    /// `Some(true)` if `ip` is new, `Some(false)` if known, `None` if unknown because the
    /// set is full (the callers then treat it as not new: first-contact counts stay lower
    /// bounds).
    pub(crate) fn insert(
        &mut self,
        ip: IpAddr,
        cap: usize,
        stats: &mut DetectStats,
    ) -> Option<bool> {
        // Below the cap one lookup answers both questions (contains-then-insert hashed
        // each new address twice; the scan benchmark makes 850 k calls).
        if self.exact.len() < cap {
            return Some(self.exact.insert(ip));
        }
        if self.exact.contains(ip) {
            return Some(false);
        }
        stats.cap_hits += 1;
        let sketch = self.sketch.get_or_insert_with(|| {
            stats.saturated_sets += 1;
            let mut s = HyperLogLog::default();
            self.exact.iter().for_each(|a| s.add(a));
            s
        });
        sketch.add(ip);
        None
    }

    /// The addresses held exactly (all of them while not saturated), in no set order.
    pub(crate) fn exact(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.exact.iter()
    }

    /// Whether the cap was reached.
    pub(crate) fn saturated(&self) -> bool {
        self.sketch.is_some()
    }

    /// Distinct addresses: exact while not saturated, then the sketch's estimate (never
    /// below the exact part).
    pub(crate) fn len(&self) -> u64 {
        let exact = self.exact.len() as u64;
        self.sketch
            .as_ref()
            .map_or(exact, |s| s.estimate().max(exact))
    }
}

/// Registers of the sketch: 2^10, standard error 1.04 / √1024 ≈ 3.3 %, 1 KiB per set.
const P: u32 = 10;
const M: usize = 1 << P;

/// HyperLogLog (Flajolet et al. 2007) with the small-range correction (linear counting).
struct HyperLogLog {
    registers: Box<[u8; M]>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog {
            registers: Box::new([0; M]),
        }
    }
}

impl HyperLogLog {
    fn add(&mut self, ip: IpAddr) {
        let h = hash(ip);
        let index = (h >> (64 - P)) as usize;
        // Leading zeros of the remaining bits, plus one; a sentinel bit bounds it.
        let rank = ((h << P) | (1 << (P - 1))).leading_zeros() as u8 + 1;
        let r = &mut self.registers[index];
        *r = (*r).max(rank);
    }

    fn estimate(&self) -> u64 {
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let e = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        e.round() as u64
    }
}

/// A fixed, well-mixed 64-bit hash of an address (SplitMix64 finaliser over its bytes),
/// so estimates are the same on every run and platform.
fn hash(ip: IpAddr) -> u64 {
    let (hi, lo) = match ip {
        IpAddr::V4(a) => (4, u64::from(u32::from(a))),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            ((v >> 64) as u64 ^ 6, v as u64)
        }
    };
    mix(mix(hi) ^ lo)
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    #[test]
    fn exact_below_the_cap_then_estimated_within_a_few_percent() {
        let mut stats = DetectStats::default();
        let mut s = CappedSet::default();
        for i in 0..100 {
            assert_eq!(s.insert(v4(i), 4096, &mut stats), Some(true));
        }
        assert_eq!(s.insert(v4(7), 4096, &mut stats), Some(false));
        assert_eq!((s.len(), s.saturated()), (100, false));
        for n in [5_000u32, 50_000, 500_000] {
            let mut s = CappedSet::default();
            for i in 0..n {
                s.insert(v4(0x0a00_0000 + i * 7), 4096, &mut stats);
            }
            assert!(s.saturated());
            let err = (s.len() as f64 - f64::from(n)).abs() / f64::from(n);
            assert!(err < 0.08, "{n}: estimated {}", s.len());
            // Repeats do not inflate it.
            let before = s.len();
            for i in 0..n / 2 {
                s.insert(v4(0x0a00_0000 + i * 7), 4096, &mut stats);
            }
            assert_eq!(s.len(), before);
        }
        assert_eq!(stats.saturated_sets, 3);
    }

    /// At the cap a known address is still known, a new one unknown, and only the new
    /// one counts as a cap hit.
    #[test]
    fn at_the_cap_known_addresses_stay_known() {
        let mut stats = DetectStats::default();
        let mut s = CappedSet::default();
        let answers: Vec<_> = [1, 2, 3, 2, 4, 3, 4]
            .map(|i| s.insert(v4(i), 3, &mut stats))
            .into();
        let (new, known) = (Some(true), Some(false));
        assert_eq!(answers, [new, new, new, known, None, known, None]);
        assert_eq!((stats.cap_hits, stats.saturated_sets), (2, 1));
        assert_eq!(s.len(), 4, "the sketch counts the fourth address");
    }

    /// The first address, held in place of a table, is known, counted and listed like
    /// the others, at a cap of one and of none.
    #[test]
    fn the_first_address_counts_like_the_others() {
        let mut stats = DetectStats::default();
        let mut s = CappedSet::default();
        let answers: Vec<_> = [1, 1, 2, 1, 2]
            .map(|i| s.insert(v4(i), 1, &mut stats))
            .into();
        assert_eq!(answers, [Some(true), Some(false), None, Some(false), None]);
        assert!(
            matches!(s.exact, Exact::One(Some(_))),
            "one address, no table"
        );
        assert_eq!(s.exact().collect::<Vec<_>>(), [v4(1)]);
        assert_eq!((s.len(), stats.cap_hits), (2, 2));

        let mut none = CappedSet::default();
        assert_eq!(none.insert(v4(1), 0, &mut stats), None);
        assert_eq!((none.exact().count(), none.len()), (0, 1));

        let mut three = CappedSet::default();
        let answers: Vec<_> = [3, 3, 1, 2, 1, 3]
            .map(|i| three.insert(v4(i), 3, &mut stats))
            .into();
        let (new, known) = (Some(true), Some(false));
        assert_eq!(answers, [new, known, new, new, known, known]);
        let mut held: Vec<_> = three.exact().collect();
        held.sort();
        assert_eq!((held, three.len()), (vec![v4(1), v4(2), v4(3)], 3));
        assert!(!three.saturated());
    }
}
