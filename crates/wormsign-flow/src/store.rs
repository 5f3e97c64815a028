//! Storage of a table's live flows: a dense `Vec` of entries behind a small hash index
//! of positions.
//!
//! Why not a `HashMap<FlowKey, FlowState>`: its buckets hold whole ~200-byte entries at
//! hash-random places, so with a few hundred thousand live flows the table is tens of
//! megabytes and every packet's lookup missed the caches and the TLB two or three times
//! in a row, about a fifth of the pipeline's CPU time. Here:
//!
//! * the index has two to four 8-byte slots per live flow as it grows (up to 32 after
//!   sweeps, before a rebuild gives the room up), small enough to stay mostly in cache,
//!   and its layout is ours, so [`FlowStore::warm`] can touch the slots and
//!   entries of a group of packets together and let their misses overlap;
//! * entries sit in a dense `Vec`; removal swaps the last entry into the hole. Iteration
//!   order therefore depends only on the sequence of inserts and removals, never on the
//!   hasher's random seed.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

use crate::key::FlowKey;

/// Most entries a [`FlowStore`] can hold: the index has at least twice as many slots,
/// which the 32 hash bits a slot keeps must still address; positions then also stay
/// below the empty-slot marker.
pub(crate) const MAX_ENTRIES: usize = (1 << 31) - 1;

pub(crate) struct FlowStore<V> {
    hasher: DefaultHashBuilder,
    index: PositionIndex,
    entries: Vec<(FlowKey, V)>,
}

/// A value whose cache lines [`FlowStore::warm`] loads by reading a few fields spread
/// over it.
pub(crate) trait Touch {
    /// Any value computed from fields in each cache line the value spans.
    fn touch(&self) -> u64;
}

impl<V: Touch> FlowStore<V> {
    pub(crate) fn with_capacity(capacity: usize) -> FlowStore<V> {
        FlowStore {
            hasher: DefaultHashBuilder::default(),
            index: PositionIndex::with_capacity(capacity),
            entries: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The hash under which `key` is indexed; compute it once per lookup-then-insert.
    pub(crate) fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Brings the index slots and the likely entries of `hashes` into the cache, so
    /// that the lookups which follow hit it. The loops do nothing but independent
    /// loads, which the CPU keeps in flight together: one miss's latency for the whole
    /// group instead of one per lookup. (Safe Rust has no prefetch instruction; these
    /// are plain loads whose values are thrown away.)
    pub(crate) fn warm(&self, hashes: &[u64]) {
        let mut sink = 0u64;
        for &hash in hashes {
            sink ^= self.index.first_slot(hash);
        }
        for &hash in hashes {
            if let Some(pos) = self.index.candidate(hash) {
                let (key, value) = &self.entries[pos];
                sink ^= key.touch() ^ value.touch();
            }
        }
        std::hint::black_box(sink);
    }

    /// The position of `key`'s entry, if it is live.
    pub(crate) fn find(&self, hash: u64, key: &FlowKey) -> Option<usize> {
        self.index.find(hash, |&pos| self.entries[pos].0 == *key)
    }

    /// The entry at `pos` (from [`FlowStore::find`] or [`FlowStore::insert`]).
    pub(crate) fn entry_mut(&mut self, pos: usize) -> (&FlowKey, &mut V) {
        let (key, value) = &mut self.entries[pos];
        (key, value)
    }

    /// Adds an entry for a key that [`FlowStore::find`] just did not find (under the
    /// same `hash`); returns its position. The caller keeps `len()` below
    /// [`MAX_ENTRIES`].
    pub(crate) fn insert(&mut self, hash: u64, key: FlowKey, value: V) -> usize {
        let pos = self.entries.len();
        self.entries.push((key, value));
        self.index.insert(hash, pos);
        pos
    }

    /// Every live entry, in storage order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(FlowKey, V)> {
        self.entries.iter()
    }

    /// Keeps the entries for which `keep` returns true; `keep` sees every entry once,
    /// in storage order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &mut V) -> bool) {
        let gone: Vec<usize> = self
            .entries
            .iter_mut()
            .enumerate()
            .filter_map(|(pos, (key, value))| (!keep(key, value)).then_some(pos))
            .collect();
        if gone.len() > self.entries.len() / 8 {
            // Removing one by one costs two index lookups each; for many, compacting
            // and rebuilding the index is cheaper (and keeps storage order).
            let mut gone = gone.into_iter().peekable();
            let mut pos = 0;
            self.entries.retain(|_| {
                let removed = gone.next_if_eq(&pos).is_some();
                pos += 1;
                !removed
            });
            self.reindex();
        } else {
            // From the back, so that each swap fills the hole with a kept entry.
            for pos in gone.into_iter().rev() {
                self.remove_at(pos);
            }
        }
    }

    /// Removes every entry and returns them in storage order.
    pub(crate) fn take_all(&mut self) -> Vec<(FlowKey, V)> {
        self.index.clear();
        std::mem::take(&mut self.entries)
    }

    fn reindex(&mut self) {
        // Slots sized for the starting capacity or a past peak are given up when the live
        // entries need an eighth of them or less: clearing 128 k slots at every sweep for
        // a few thousand live flows was 1.8 % of the outbreak benchmark's CPU.
        if self.index.slots.len() >= 8 * PositionIndex::slots_for(self.entries.len()) {
            self.index = PositionIndex::with_capacity(self.entries.len());
        } else {
            self.index.clear();
        }
        for (pos, (key, _)) in self.entries.iter().enumerate() {
            self.index.insert(self.hasher.hash_one(key), pos);
        }
    }

    fn remove_at(&mut self, pos: usize) {
        let hash = self.hash(&self.entries[pos].0);
        self.index.remove(hash, pos);
        self.entries.swap_remove(pos);
        // The former last entry now fills `pos`.
        if let Some((moved, _)) = self.entries.get(pos) {
            let hash = self.hash(moved);
            self.index.repoint(hash, self.entries.len(), pos);
        }
    }
}

/// Open addressing with linear probing over `u64` slots: the low 32 bits hold the low
/// 32 bits of the key's hash (which also give the home slot, so growing never rehashes
/// a key), the high 32 bits the entry's position; all ones is an empty slot.
/// Removal shifts the following run back (no tombstones), so a probe ends at the first
/// empty slot.
struct PositionIndex {
    slots: Vec<u64>,
    len: usize,
}

/// Not zero: a zeroed allocation is mapped to the shared zero page, and the first write
/// to each page, after lookups had read it, was a copy-on-write fault that flushed the
/// TLB of every core (2 % of the CPU profile with two threads). Filling with ones writes
/// every page up front. No position reaches `u32::MAX` (see [`MAX_ENTRIES`]).
const EMPTY: u64 = u64::MAX;

fn slot_of(hash: u64, pos: usize) -> u64 {
    ((pos as u64) << 32) | (hash & 0xffff_ffff)
}

fn slot_pos(slot: u64) -> usize {
    (slot >> 32) as usize
}

impl PositionIndex {
    fn with_capacity(capacity: usize) -> PositionIndex {
        PositionIndex {
            slots: vec![EMPTY; PositionIndex::slots_for(capacity)],
            len: 0,
        }
    }

    /// Slots for `capacity` entries before the index grows (it stays at most half full).
    fn slots_for(capacity: usize) -> usize {
        (capacity.max(4) * 2).next_power_of_two()
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// Slots from `hash`'s home onwards, up to the first empty one.
    fn probe(&self, hash: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        let mask = self.mask();
        let home = self.home(hash);
        (0..self.slots.len())
            .map(move |step| (home + step) & mask)
            .map(|i| (i, self.slots[i]))
            .take_while(|&(_, slot)| slot != EMPTY)
    }

    fn first_slot(&self, hash: u64) -> u64 {
        self.slots[self.home(hash)]
    }

    /// Positions whose slots carry `hash`'s bits, in probe order.
    fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        self.probe(hash)
            .filter(move |&(_, slot)| slot as u32 == hash as u32)
            .map(|(_, slot)| slot_pos(slot))
    }

    /// The position `hash`'s key most likely has, without comparing keys.
    fn candidate(&self, hash: u64) -> Option<usize> {
        self.candidates(hash).next()
    }

    fn find(&self, hash: u64, is_key_at: impl FnMut(&usize) -> bool) -> Option<usize> {
        self.candidates(hash).find(is_key_at)
    }

    /// The slot index holding `pos`, which is indexed under `hash`.
    fn slot_holding(&self, hash: u64, pos: usize) -> usize {
        self.probe(hash)
            .find(|&(_, slot)| slot_pos(slot) == pos)
            .map(|(i, _)| i)
            .expect("every entry is indexed under its key's hash")
    }

    fn insert(&mut self, hash: u64, pos: usize) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.put(slot_of(hash, pos));
        self.len += 1;
    }

    /// Writes `slot` into the first empty slot from its home on.
    fn put(&mut self, slot: u64) {
        let mask = self.mask();
        let mut i = self.home(slot);
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let doubled = vec![EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            self.put(slot);
        }
    }

    fn repoint(&mut self, hash: u64, from: usize, to: usize) {
        let i = self.slot_holding(hash, from);
        self.slots[i] = slot_of(hash, to);
    }

    fn remove(&mut self, hash: u64, pos: usize) {
        let mask = self.mask();
        let mut hole = self.slot_holding(hash, pos);
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let slot = self.slots[next];
            if slot == EMPTY {
                break;
            }
            // A slot may move back into the hole only if that keeps it at or after its
            // home, i.e. its probe distance is at least the distance from the hole.
            let distance = next.wrapping_sub(self.home(slot)) & mask;
            if distance >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                hole = next;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    fn clear(&mut self) {
        self.slots.fill(EMPTY);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr};

    use super::{FlowStore, PositionIndex, Touch};
    use crate::key::{Endpoints, FlowKey};

    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Random inserts and removals against a `HashMap`, with hashes drawn from a small
    /// range so that runs collide, wrap around the end and shift back on removal.
    #[test]
    fn index_agrees_with_a_map_under_collisions() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut index = PositionIndex::with_capacity(4);
        let mut model: HashMap<usize, u64> = HashMap::new();
        for step in 0..20_000usize {
            let r = next();
            let live: Vec<usize> = if r % 3 == 0 {
                model.keys().copied().collect()
            } else {
                Vec::new()
            };
            if let Some(&pos) = live.get(r as usize / 3 % live.len().max(1)) {
                let hash = model.remove(&pos).unwrap();
                index.remove(hash, pos);
            } else if model.len() < 100 {
                // High bits vary, low bits collide in a window of 64 slots.
                let hash = (r & 0xffff_ffff_0000_0000) | (r >> 20 & 63);
                index.insert(hash, step);
                model.insert(step, hash);
            }
            assert_eq!(index.len, model.len());
            if step % 10 != 0 {
                continue;
            }
            for (&pos, &hash) in &model {
                assert_eq!(index.find(hash, |&p| p == pos), Some(pos), "step {step}");
            }
        }
    }

    impl Touch for u64 {
        fn touch(&self) -> u64 {
            *self
        }
    }

    fn key(n: u64) -> FlowKey {
        let ends = Endpoints {
            src: IpAddr::V4(Ipv4Addr::from(n as u32)),
            src_port: 1024,
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst_port: 445,
        };
        FlowKey::new(ends, 6, None, 0).0
    }

    /// Inserts, lookups and `retain` sweeps (which move entries) against a `HashMap`.
    #[test]
    fn store_agrees_with_a_map_across_sweeps() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut store: FlowStore<u64> = FlowStore::with_capacity(4);
        let mut model: HashMap<FlowKey, u64> = HashMap::new();
        for round in 0..50u64 {
            for _ in 0..500 {
                let (k, v) = (key(next() % 4000), next());
                let hash = store.hash(&k);
                match store.find(hash, &k) {
                    Some(pos) => *store.entry_mut(pos).1 = v,
                    None => _ = store.insert(hash, k, v),
                }
                model.insert(k, v);
            }
            // Drop about a third, a seventeenth (one by one) or half.
            let cut = [3, 17, 2][round as usize % 3];
            store.retain(|_, v| *v % cut != 0);
            model.retain(|_, v| *v % cut != 0);
            assert_eq!(store.len(), model.len());
            for (k, v) in &model {
                let pos = store.find(store.hash(k), k).expect("live key is found");
                assert_eq!(store.entry_mut(pos).1, v);
            }
            for (k, _) in store.iter() {
                assert!(model.contains_key(k));
            }
        }
        assert_eq!(store.take_all().len(), model.len());
        assert!(store.is_empty());
    }

    /// A sweep that leaves a few entries in an index sized for many gives it up for a
    /// fitting one, which grows again as entries come back; every live key stays found.
    #[test]
    fn an_index_sized_for_many_shrinks_when_few_are_left_and_grows_again() {
        let mut store: FlowStore<u64> = FlowStore::with_capacity(1 << 16);
        let found = |store: &FlowStore<u64>, range: std::ops::Range<u64>| {
            range
                .filter(|&i| store.find(store.hash(&key(i)), &key(i)).is_some())
                .count()
        };
        for i in 0..3_000 {
            store.insert(store.hash(&key(i)), key(i), i);
        }
        assert_eq!(store.index.slots.len(), 1 << 17);
        store.retain(|_, v| *v < 100);
        assert_eq!(store.index.slots.len(), 256, "fits 100 entries");
        assert_eq!(found(&store, 0..3_000), 100);
        for i in 3_000..8_000 {
            store.insert(store.hash(&key(i)), key(i), i);
        }
        assert!(store.index.slots.len() >= 2 * store.len());
        assert_eq!(found(&store, 0..8_000), 5_100);
        store.retain(|_, v| *v % 2 == 0);
        assert_eq!(found(&store, 0..8_000), 2_550);
    }
}
