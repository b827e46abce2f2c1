//! Raft log storage in two tiers.
//!
//! Every entry is appended to RocksDB (the disk tier) and the newest ones are also kept in
//! memory (the memory tier), within a byte budget. The memory tier is always an exact suffix of
//! the disk tier, so a read is served from memory when its range lies inside the window and
//! from RocksDB otherwise.
//!
//! Replicas of the gateway rebuild their state machine (an influxd) by replaying the log, so
//! the log is their snapshot for as long as it is kept whole. It can be bounded: the caller
//! trims the entries every member has applied ([`HybridLog::trim`]), and a member that needs a
//! trimmed entry is seeded from a peer's influxd. Raft only carries the position, as a
//! snapshot without data that `snapshot()` makes from the trim point and a follower takes
//! with [`HybridLog::apply_snapshot_metadata`]. A log never trimmed starts at 1 and never
//! needs a snapshot.
//!
//! Writes go through [`LogBatch`]: one Raft `Ready`'s entries, HardState, ConfState and any
//! metadata become one RocksDB write batch, synced once (group commit).
//!
//! Layout: `lib.rs` opens the log and writes batches; `storage.rs` answers raft-rs's reads,
//! within the size rule of `limit.rs`; `trim.rs` bounds the log; `memory.rs` and `disk.rs` are
//! the two tiers, `format.rs` the bytes on disk, `compactor.rs` the thread that gives trimmed
//! space back; `stats.rs` counts and `error.rs` says what went wrong.

mod compactor;
mod disk;
mod error;
mod format;
mod limit;
mod memory;
mod stats;
mod storage;
mod trim;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use raft::prelude::{ConfState, Entry, HardState};

use crate::compactor::Compactor;
pub use crate::disk::free_bytes;
use crate::disk::DiskTier;
pub use crate::error::LogError;
use crate::memory::MemoryTier;
pub use crate::stats::LogStats;
use crate::stats::Stats;
pub use crate::trim::{TrimPoint, Trimmed};

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
    /// Held by every write of entries, HardState or ConfState (appends, trims, snapshot
    /// applications): each decides from the last index, trim point or HardState it read, and
    /// mirrors its write in `state` after it, so two of them must not interleave. A write of
    /// metadata alone (the applier's) does not wait for them.
    writer: Mutex<()>,
    stats: Arc<Stats>,
    compactor: Compactor,
}

struct State {
    hard_state: HardState,
    conf_state: ConfState,
    /// The log holds the entries from `trim.index + 1` to `last_index`; none when
    /// `last_index == trim.index`.
    trim: TrimPoint,
    last_index: u64,
    memory: MemoryTier,
    /// While a trim or a snapshot application is being written: the last index it removes.
    /// Entries are deleted on disk before the trim point moves here (the state lock is not
    /// held across a synced write), and a read that misses one of them meanwhile must be told
    /// `Compacted`, not that the log is damaged.
    removing: u64,
}

impl State {
    /// Fails unless entries `[lo, hi)` are stored: `Compacted` below the first index (raft-rs
    /// then sends a snapshot), `Unavailable` past the last one.
    fn check_stored(&self, lo: u64, hi: u64) -> Result<(), LogError> {
        if lo <= self.trim.index {
            return Err(LogError::Compacted {
                index: lo,
                first: self.trim.index + 1,
            });
        }
        if hi > self.last_index + 1 {
            return Err(LogError::Unavailable {
                index: hi - 1,
                last: self.last_index,
            });
        }
        Ok(())
    }

    /// Like [`State::check_stored`], for a read that found entries `[lo, hi)` missing on
    /// disk: if a removal in flight explains it, that is the answer; if nothing does, the
    /// caller reports damage.
    fn check_missing(&self, lo: u64, hi: u64) -> Result<(), LogError> {
        if lo <= self.removing {
            return Err(LogError::Compacted {
                index: lo,
                first: self.removing + 1,
            });
        }
        self.check_stored(lo, hi)
    }
}

/// A commit that failed, with its batch, untouched, for a retry.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    #[source]
    pub error: LogError,
    pub batch: LogBatch,
}

/// The changes of one Raft `Ready`, made durable together by [`HybridLog::commit`].
#[derive(Debug, Default)]
pub struct LogBatch {
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    conf_state: Option<ConfState>,
    /// Metadata writes in order; `None` deletes the value.
    meta: Vec<(String, Option<Vec<u8>>)>,
    fence: bool,
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
        self.meta.push((key.to_owned(), Some(value.into())));
        self
    }

    /// Removes a value stored with [`LogBatch::put_meta`], in the same atomic write.
    pub fn delete_meta(&mut self, key: &str) -> &mut Self {
        self.meta.push((key.to_owned(), None));
        self
    }

    /// Fences the log against older builds, in the same atomic write: from then on its marker
    /// is format v4, which builds from before v4 do not know and refuse to open. For a caller
    /// whose entries from this batch on hold what those builds would misread. A log already
    /// fenced, or in the first format (see [`HybridLog::can_fence`]), is left as it is.
    pub fn fence_older_builds(&mut self) -> &mut Self {
        self.fence = true;
        self
    }

    pub fn is_empty(&self) -> bool {
        !self.touches_log() && self.meta.is_empty() && !self.fence
    }

    /// Whether the batch writes more than metadata.
    fn touches_log(&self) -> bool {
        !self.entries.is_empty() || self.hard_state.is_some() || self.conf_state.is_some()
    }
}

impl HybridLog {
    /// Opens (or creates) the log in `path` with a memory tier of `memory_budget` bytes.
    /// HardState, ConfState, the trim point and every entry after it are restored; the memory
    /// tier starts empty and fills with new appends.
    pub fn open(path: impl AsRef<Path>, memory_budget: usize) -> Result<HybridLog, LogError> {
        let (disk, recovered) = DiskTier::open(path.as_ref())?;
        let stats = Arc::new(Stats::default());
        let compactor = Compactor::start(disk.clone(), Arc::clone(&stats))?;
        let trim = recovered.trim;
        if trim.index > 0 {
            // The compaction after the last trim may not have run to its end before the log
            // was closed; this one finds little to do if it did.
            compactor.request(trim.index);
        }
        let log = HybridLog {
            inner: Arc::new(Shared {
                disk,
                state: RwLock::new(State {
                    hard_state: recovered.hard_state,
                    conf_state: recovered.conf_state,
                    trim,
                    last_index: recovered.last_index,
                    memory: MemoryTier::new(memory_budget, recovered.last_index),
                    removing: 0,
                }),
                writer: Mutex::new(()),
                stats,
                compactor,
            }),
        };
        log.publish(&log.inner.state.read());
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        self.inner.disk.path()
    }

    /// Makes `batch` durable as one RocksDB write batch (fsync'd when `sync`), then updates
    /// the memory tier. A crash at any point leaves either all of the batch or none of it.
    pub fn commit(&self, batch: LogBatch, sync: bool) -> Result<(), LogError> {
        self.try_commit(batch, sync).map_err(|r| r.error)
    }

    /// [`HybridLog::commit`], handing the batch back when it fails, so that a caller can
    /// retry it without having kept a copy. A failed commit changes nothing, on disk or in
    /// memory; after [`LogError::NoSpace`] the same batch succeeds once space is freed.
    pub fn try_commit(&self, batch: LogBatch, sync: bool) -> Result<(), Box<Rejected>> {
        if batch.is_empty() {
            return Ok(());
        }
        let _writer = batch.touches_log().then(|| self.inner.writer.lock());
        let (trim, last_index) = {
            let state = self.inner.state.read();
            (state.trim.index, state.last_index)
        };
        let mut new_last = last_index;
        if let Some(first) = batch.entries.first() {
            let refused = if first.index > last_index + 1 {
                Some(LogError::Gap {
                    first: first.index,
                    last: last_index,
                })
            } else if first.index <= trim {
                Some(LogError::AppendTrimmed {
                    first: first.index,
                    trimmed: trim,
                })
            } else {
                None
            };
            if let Some(error) = refused {
                return Err(Box::new(Rejected { error, batch }));
            }
            new_last = batch.entries.last().map_or(last_index, |e| e.index);
        }

        // The write happens outside the state lock so readers (the applier, replication) are
        // not held up by the fsync. They cannot observe a half-applied change: entries they
        // may read are committed ones, which no later append touches.
        let start = Instant::now();
        let fence = batch.fence && !self.inner.disk.fenced() && self.inner.disk.can_fence();
        let written = self.inner.disk.write(sync, |disk, wb| {
            if fence {
                disk.put_fence(wb);
            }
            if new_last < last_index {
                // A conflicting, shorter append: the old suffix beyond it must go too.
                disk.delete_entries(wb, new_last + 1, last_index + 1);
            }
            disk.put_entries(wb, &batch.entries);
            if let Some(hs) = &batch.hard_state {
                disk.put_hard_state(wb, hs);
            }
            if let Some(cs) = &batch.conf_state {
                disk.put_conf_state(wb, cs);
            }
            for (k, v) in &batch.meta {
                match v {
                    Some(v) => disk.put_meta(wb, k, v),
                    None => disk.delete_meta(wb, k),
                }
            }
        });
        if let Err(error) = written {
            return Err(Box::new(Rejected { error, batch }));
        }
        if sync {
            self.inner.stats.record_sync(start.elapsed());
        }
        if fence {
            self.inner.disk.set_fenced();
        }

        let mut state = self.inner.state.write();
        if !batch.entries.is_empty() {
            state.memory.append(batch.entries);
            state.last_index = new_last;
            self.publish(&state);
        }
        if let Some(hs) = batch.hard_state {
            state.hard_state = hs;
        }
        if let Some(cs) = batch.conf_state {
            state.conf_state = cs;
        }
        Ok(())
    }

    /// Whether builds from before format v4 refuse this log
    /// ([`LogBatch::fence_older_builds`]).
    pub fn fenced(&self) -> bool {
        self.inner.disk.fenced()
    }

    /// Whether this log can be fenced: all but logs in the first format (plain values, which
    /// carry no tag for v4 to read them by).
    pub fn can_fence(&self) -> bool {
        self.inner.disk.can_fence()
    }

    /// Bytes free for this process on the file system that holds the log.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        self.inner.disk.free_bytes()
    }

    /// A metadata value stored with [`LogBatch::put_meta`].
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.inner.disk.meta(key)
    }

    /// Every metadata value whose key starts with `prefix`, in key order: for a caller that
    /// keeps a family of values (one per record) rather than one value.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, LogError> {
        self.inner.disk.meta_with_prefix(prefix)
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
        self.inner.stats.snapshot(
            self.inner.disk.estimated_bytes(),
            self.inner.disk.dir_bytes(),
        )
    }

    /// Brings the counters that mirror the log's extent up to date with `state`.
    fn publish(&self, state: &State) {
        let stats = &self.inner.stats;
        stats.set_first_index(state.trim.index + 1);
        stats.set_disk_entries(state.last_index - state.trim.index);
        stats.set_memory(state.memory.len() as u64, state.memory.bytes() as u64);
    }
}
