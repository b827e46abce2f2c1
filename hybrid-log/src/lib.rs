//! Raft log storage in two tiers.
//!
//! Every entry is appended to RocksDB (the disk tier) and the newest ones are also kept in
//! memory (the memory tier), within a byte budget. The memory tier is always an exact suffix of
//! the disk tier, so a read is served from memory when its range lies inside the window and
//! from RocksDB otherwise.
//!
//! The log is never compacted: `first_index()` is always 1. Replicas of the gateway rebuild
//! their state machine (an influxd) by replaying the log, so the log *is* the snapshot, and a
//! follower that fell behind, however far, catches up from entries alone. That is why
//! `snapshot()` only ever answers `SnapshotTemporarilyUnavailable`: raft-rs never needs one
//! when no entry has been compacted away.
//!
//! Writes go through [`LogBatch`]: one Raft `Ready`'s entries, HardState, ConfState and any
//! metadata become one RocksDB write batch, synced once (group commit).

mod disk;
mod error;
mod format;
mod limit;
mod memory;
mod stats;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::disk::DiskTier;
pub use crate::error::LogError;
use crate::limit::SizeLimit;
use crate::memory::MemoryTier;
pub use crate::stats::LogStats;
use crate::stats::Stats;

/// Default memory-tier budget.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;

/// The raft log of one node. A cheap handle: clones share one log, so the raft loop, the
/// applier and the metrics endpoint each hold one. Reads take a read lock on the small
/// in-memory state only; RocksDB does its own locking.
#[derive(Clone)]
pub struct HybridLog {
    inner: Arc<Shared>,
}

struct Shared {
    disk: DiskTier,
    state: RwLock<State>,
    stats: Stats,
}

struct State {
    hard_state: HardState,
    conf_state: ConfState,
    last_index: u64,
    memory: MemoryTier,
}

/// The changes of one Raft `Ready`, made durable together by [`HybridLog::commit`].
#[derive(Default)]
pub struct LogBatch {
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    conf_state: Option<ConfState>,
    meta: Vec<(String, Vec<u8>)>,
}

impl LogBatch {
    pub fn new() -> Self {
        LogBatch::default()
    }

    /// Appends entries; an entry whose index already exists replaces it and everything after.
    /// Takes them by value: they move into the memory tier without a copy.
    pub fn append(&mut self, entries: Vec<Entry>) -> &mut Self {
        if let Some(first) = entries.first() {
            // Entries appended earlier in this batch are replaced the same way.
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(entries);
        }
        self
    }

    pub fn set_hard_state(&mut self, hs: HardState) -> &mut Self {
        self.hard_state = Some(hs);
        self
    }

    pub fn set_conf_state(&mut self, cs: ConfState) -> &mut Self {
        self.conf_state = Some(cs);
        self
    }

    /// A small value owned by the caller (e.g. the raft loop's applied index), stored in the
    /// same atomic write as the rest of the batch.
    pub fn put_meta(&mut self, key: &str, value: impl Into<Vec<u8>>) -> &mut Self {
        self.meta.push((key.to_owned(), value.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.hard_state.is_none()
            && self.conf_state.is_none()
            && self.meta.is_empty()
    }
}

impl HybridLog {
    /// Opens (or creates) the log in `path` with a memory tier of `memory_budget` bytes.
    /// HardState, ConfState and every entry are restored; the memory tier starts empty and
    /// fills with new appends.
    pub fn open(path: impl AsRef<Path>, memory_budget: usize) -> Result<HybridLog, LogError> {
        let (disk, recovered) = DiskTier::open(path.as_ref())?;
        let stats = Stats::default();
        stats.set_disk_entries(recovered.last_index);
        Ok(HybridLog {
            inner: Arc::new(Shared {
                disk,
                state: RwLock::new(State {
                    hard_state: recovered.hard_state,
                    conf_state: recovered.conf_state,
                    last_index: recovered.last_index,
                    memory: MemoryTier::new(memory_budget, recovered.last_index),
                }),
                stats,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        self.inner.disk.path()
    }

    /// Makes `batch` durable as one RocksDB write batch (fsync'd when `sync`), then updates
    /// the memory tier. A crash at any point leaves either all of the batch or none of it.
    pub fn commit(&self, batch: LogBatch, sync: bool) -> Result<(), LogError> {
        if batch.is_empty() {
            return Ok(());
        }
        let last_index = self.inner.state.read().last_index;
        let mut wb = rocksdb::WriteBatch::default();
        let mut new_last = last_index;
        if let Some(first) = batch.entries.first() {
            if first.index > last_index + 1 {
                return Err(LogError::Gap {
                    first: first.index,
                    last: last_index,
                });
            }
            new_last = batch.entries.last().map_or(last_index, |e| e.index);
            if new_last < last_index {
                // A conflicting, shorter append: the old suffix beyond it must go too.
                self.inner
                    .disk
                    .delete_entries(&mut wb, new_last + 1, last_index + 1);
            }
            for e in &batch.entries {
                self.inner.disk.put_entry(&mut wb, e);
            }
        }
        if let Some(hs) = &batch.hard_state {
            self.inner.disk.put_hard_state(&mut wb, hs);
        }
        if let Some(cs) = &batch.conf_state {
            self.inner.disk.put_conf_state(&mut wb, cs);
        }
        for (k, v) in &batch.meta {
            self.inner.disk.put_meta(&mut wb, k, v);
        }

        // The write happens outside the state lock so readers (the applier, replication) are
        // not held up by the fsync. They cannot observe a half-applied change: entries they
        // may read are committed ones, which no later append touches.
        let start = Instant::now();
        self.inner.disk.write(wb, sync)?;
        if sync {
            self.inner.stats.record_sync(start.elapsed());
        }

        let mut state = self.inner.state.write();
        if !batch.entries.is_empty() {
            state.memory.append(batch.entries);
            state.last_index = new_last;
            self.inner.stats.set_disk_entries(new_last);
            self.inner
                .stats
                .set_memory(state.memory.len() as u64, state.memory.bytes() as u64);
        }
        if let Some(hs) = batch.hard_state {
            state.hard_state = hs;
        }
        if let Some(cs) = batch.conf_state {
            state.conf_state = cs;
        }
        Ok(())
    }

    /// A metadata value stored with [`LogBatch::put_meta`].
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.inner.disk.meta(key)
    }

    pub fn hard_state(&self) -> HardState {
        self.inner.state.read().hard_state.clone()
    }

    pub fn conf_state(&self) -> ConfState {
        self.inner.state.read().conf_state.clone()
    }

    pub fn last_index(&self) -> u64 {
        self.inner.state.read().last_index
    }

    pub fn stats(&self) -> LogStats {
        self.inner.stats.snapshot(self.inner.disk.estimated_bytes())
    }

    /// Reads `[lo, hi)` within `max_size`, from memory for the part inside the window and
    /// from disk for the part below it.
    fn read_range(&self, lo: u64, hi: u64, max_size: Option<u64>) -> Result<Vec<Entry>, LogError> {
        let mut limit = SizeLimit::new(max_size);
        let mut out = Vec::new();
        let mut next = lo;
        while next < hi && !limit.is_full() {
            let state = self.inner.state.read();
            let mem_first = state.memory.first_index();
            if next >= mem_first {
                if next == lo {
                    self.inner.stats.memory_hit();
                }
                out.extend(take_within(state.memory.range(next, hi), &mut limit));
                break;
            }
            if next == lo {
                self.inner.stats.memory_miss();
            }
            // RocksDB is slow next to memory: read it without holding the lock. The window
            // may move up meanwhile (eviction), which the next turn of the loop notices; the
            // disk tier holds every entry, so nothing can be missed.
            drop(state);
            let disk_hi = hi.min(mem_first);
            let part = self.inner.disk.read(next, disk_hi, &mut limit)?;
            next += part.len() as u64;
            out.extend(part);
        }
        Ok(out)
    }
}

fn take_within<'a>(entries: impl Iterator<Item = &'a Entry>, limit: &mut SizeLimit) -> Vec<Entry> {
    use prost::Message as _;
    entries
        .take_while(|e| limit.admit(e.encoded_len() as u64))
        .cloned()
        .collect()
}

impl Storage for HybridLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let state = self.inner.state.read();
        Ok(RaftState {
            hard_state: state.hard_state.clone(),
            conf_state: state.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < 1 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.read_range(low, high, max_size.into())?)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == 0 {
            return Ok(0);
        }
        let state = self.inner.state.read();
        if idx > state.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if let Some(term) = state.memory.term(idx) {
            return Ok(term);
        }
        drop(state);
        match self.inner.disk.term(idx)? {
            Some(term) => Ok(term),
            None => Err(LogError::Corrupt {
                path: self.path().to_path_buf(),
                what: format!("entry {idx} is missing"),
            }
            .into()),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(HybridLog::last_index(self))
    }

    /// Never available: the log is never compacted, so a follower can always be sent entries
    /// from wherever it is, back to index 1. raft-rs treats this answer as "try again later"
    /// and keeps replicating with entries.
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
