//! What raft-rs asks of a log (`raft::Storage`), answered over both tiers and the trim point.
//! A read below the trim point is `Compacted`, which makes raft-rs send a snapshot; the
//! snapshot is the trim point itself, without data, because a member that needs trimmed
//! entries is seeded from a peer's influxd, never through Raft.

use raft::prelude::{Entry, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::error::LogError;
use crate::limit::SizeLimit;
use crate::HybridLog;

impl HybridLog {
    /// Reads `[lo, hi)` within `max_size`, from memory for the part inside the window and
    /// from disk for the part below it.
    fn read_range(&self, lo: u64, hi: u64, max_size: Option<u64>) -> Result<Vec<Entry>, LogError> {
        let mut limit = SizeLimit::new(max_size);
        let mut out = Vec::new();
        let mut next = lo;
        while next < hi && !limit.is_full() {
            let state = self.inner.state.read();
            // Checked on every turn: a trim may have come in since the last one.
            state.check_stored(next, hi)?;
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
            // disk tier holds every entry above the trim point, so nothing can be missed.
            drop(state);
            let disk_hi = hi.min(mem_first);
            match self.inner.disk.read(next, disk_hi, &mut limit) {
                Ok(part) => {
                    next += part.len() as u64;
                    out.extend(part);
                }
                // Entries missing from disk are damage, or a trim that overtook this read;
                // only the trim point can tell which.
                Err(e) => {
                    self.inner.state.read().check_missing(next, hi)?;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// The term of entry `index`, which must be stored or be the trim point.
    pub(crate) fn entry_term(&self, index: u64) -> Result<u64, LogError> {
        {
            let state = self.inner.state.read();
            if index == state.trim.index {
                return Ok(state.trim.term);
            }
            state.check_stored(index, index + 1)?;
            if let Some(term) = state.memory.term(index) {
                return Ok(term);
            }
        }
        if let Some(term) = self.inner.disk.term(index)? {
            return Ok(term);
        }
        // Missing from disk: damage, or a trim that overtook this read, which only the trim
        // point can tell apart.
        let state = self.inner.state.read();
        if index == state.trim.index {
            return Ok(state.trim.term);
        }
        state.check_missing(index, index + 1)?;
        Err(LogError::Corrupt {
            path: self.path().to_path_buf(),
            what: format!("entry {index} is missing"),
        })
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
        {
            let state = self.inner.state.read();
            if low <= state.trim.index {
                return Err(raft::Error::Store(StorageError::Compacted));
            }
            if high > state.last_index + 1 || low > high {
                return Err(raft::Error::Store(StorageError::Unavailable));
            }
        }
        Ok(self.read_range(low, high, max_size.into())?)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        Ok(self.entry_term(idx)?)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.trim_point().index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(HybridLog::last_index(self))
    }

    /// The trim point as a snapshot without data: its index, its term and the current
    /// ConfState. raft-rs sends it to a follower that needs trimmed entries; the follower
    /// takes its position with [`HybridLog::apply_snapshot_metadata`] and is seeded from a
    /// peer's influxd.
    ///
    /// Unavailable (raft-rs tries again later) while nothing was trimmed, when raft-rs never
    /// needs one, and when asked for a later index than the trim point (a follower called
    /// `request_snapshot`): this log can only offer the position it was trimmed at.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let state = self.inner.state.read();
        if state.trim.index == 0 || request_index > state.trim.index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(Snapshot {
            data: Vec::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(state.conf_state.clone()),
                index: state.trim.index,
                term: state.trim.term,
            }),
        })
    }
}
