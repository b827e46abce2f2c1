//! The memory tier: the newest entries of the log, bounded by a byte budget.
//!
//! It exists so that the two hot readers never touch RocksDB: the leader replicating to
//! followers that keep up, and the local applier that trails the commit index by a little.
//! It is always an exact suffix of the disk tier; an entry too large for the budget simply
//! leaves the window empty, and reads fall through to disk.

use std::collections::VecDeque;

use raft::prelude::Entry;

/// What an entry costs in memory: its payload plus the struct that holds it.
pub fn entry_cost(e: &Entry) -> usize {
    std::mem::size_of::<Entry>() + e.data.len() + e.context.len()
}

#[derive(Debug)]
pub struct MemoryTier {
    entries: VecDeque<Entry>,
    bytes: usize,
    budget: usize,
    /// Index the window would start at if it were empty: one past the last index of the log.
    next_index: u64,
}

impl MemoryTier {
    pub fn new(budget: usize, last_index: u64) -> Self {
        MemoryTier {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
            next_index: last_index + 1,
        }
    }

    /// First index held in memory; `last_index + 1` when the window is empty.
    pub fn first_index(&self) -> u64 {
        self.entries.front().map_or(self.next_index, |e| e.index)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Mirrors an append that is already durable on disk. `entries` must start at or before
    /// one past the current last index (the caller checked that); anything from their first
    /// index on is replaced, as on disk.
    pub fn append(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first() else {
            return;
        };
        debug_assert!(first.index <= self.next_index, "gap in append");
        // Truncating also empties a window that starts above `first.index`, so the new
        // entries always start the window where the log continues: it stays a suffix.
        self.truncate_from(first.index);
        self.next_index = entries.last().map_or(self.next_index, |e| e.index + 1);
        for e in entries {
            self.bytes += entry_cost(&e);
            self.entries.push_back(e);
        }
        self.evict();
    }

    /// Drops the entries up to and including `index`: they were trimmed from the log. The
    /// window stays a suffix: it may only get shorter from the front.
    pub fn trim_through(&mut self, index: u64) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            let e = self.entries.pop_front().expect("checked non-empty");
            self.bytes -= entry_cost(&e);
        }
    }

    /// Empties the window, which then starts after `last_index`: the log was replaced by a
    /// snapshot's position and holds no entries.
    pub fn reset(&mut self, last_index: u64) {
        self.entries.clear();
        self.bytes = 0;
        self.next_index = last_index + 1;
    }

    /// Drops entries at `index` and after (a conflicting append replaces them).
    fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.index >= index) {
            let e = self.entries.pop_back().expect("checked non-empty");
            self.bytes -= entry_cost(&e);
        }
        self.next_index = self.next_index.min(index);
    }

    /// Evicts the oldest entries until the window fits the budget. The window may end up
    /// empty if the newest entry alone is larger than the budget.
    fn evict(&mut self) {
        while self.bytes > self.budget {
            let e = self
                .entries
                .pop_front()
                .expect("bytes > 0 implies an entry");
            self.bytes -= entry_cost(&e);
        }
    }

    /// The entries in `[lo, hi)`, which must lie inside the window.
    pub fn range(&self, lo: u64, hi: u64) -> impl Iterator<Item = &Entry> {
        let first = self.first_index();
        debug_assert!(lo >= first && hi <= self.next_index);
        self.entries
            .range((lo - first) as usize..(hi - first) as usize)
    }

    pub fn term(&self, index: u64) -> Option<u64> {
        let first = self.first_index();
        if index < first {
            return None;
        }
        self.entries.get((index - first) as usize).map(|e| e.term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, size: usize) -> Entry {
        Entry {
            index,
            term,
            data: vec![0; size],
            ..Default::default()
        }
    }

    /// A tier with room for `fits` entries of `size` bytes, holding what is left of
    /// entries 1 to 5 (term 1, `size` bytes each).
    fn five_appended(fits: usize, size: usize) -> MemoryTier {
        let mut m = MemoryTier::new(entry_cost(&entry(1, 1, size)) * fits, 0);
        m.append((1..=5).map(|i| entry(i, 1, size)).collect());
        m
    }

    #[test]
    fn evicts_oldest_to_stay_within_budget() {
        let cost = entry_cost(&entry(1, 1, 100));
        let m = five_appended(3, 100);
        assert_eq!(m.first_index(), 3);
        assert_eq!(m.len(), 3);
        assert!(m.bytes() <= cost * 3);
    }

    #[test]
    fn oversized_entry_leaves_window_empty_but_positioned() {
        let mut m = MemoryTier::new(1000, 0);
        m.append(vec![entry(1, 1, 10)]);
        m.append(vec![entry(2, 1, 5000)]);
        assert!(m.is_empty());
        assert_eq!(m.first_index(), 3);
        m.append(vec![entry(3, 1, 10)]);
        assert_eq!(m.first_index(), 3);
        assert_eq!(m.term(3), Some(1));
    }

    #[test]
    fn conflicting_append_truncates() {
        let mut m = five_appended(1 << 10, 1);
        m.append(vec![entry(3, 2, 1)]);
        assert_eq!(m.first_index(), 1);
        assert_eq!(m.term(3), Some(2));
        assert_eq!(m.term(4), None);
        assert_eq!(m.range(1, 4).count(), 3);
    }

    #[test]
    fn trim_drops_the_front_and_keeps_the_position() {
        let mut m = five_appended(1 << 10, 1);
        m.trim_through(2);
        assert_eq!(m.first_index(), 3);
        assert_eq!(m.len(), 3);
        assert_eq!(m.bytes(), 3 * entry_cost(&entry(1, 1, 1)));
        m.trim_through(5);
        assert!(m.is_empty());
        assert_eq!(m.first_index(), 6);
        m.append(vec![entry(6, 1, 1)]);
        assert_eq!(m.term(6), Some(1));
    }

    #[test]
    fn reset_restarts_the_window_after_a_snapshot() {
        let mut m = five_appended(1 << 10, 1);
        m.reset(9);
        assert!(m.is_empty());
        assert_eq!(m.bytes(), 0);
        assert_eq!(m.first_index(), 10);
        m.append(vec![entry(10, 2, 1)]);
        assert_eq!(m.first_index(), 10);
        assert_eq!(m.term(10), Some(2));
    }

    #[test]
    fn conflicting_append_below_window_restarts_window() {
        let mut m = five_appended(2, 1);
        assert_eq!(m.first_index(), 4);
        m.append(vec![entry(2, 3, 1)]);
        assert_eq!(m.first_index(), 2);
        assert_eq!(m.len(), 1);
        assert_eq!(m.term(2), Some(3));
    }
}
