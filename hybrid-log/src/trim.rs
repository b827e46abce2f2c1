//! Bounding the log: trimming the entries every member has applied, and the follower's side,
//! taking a position from a metadata-only snapshot. Either way the log then starts after a
//! trim point, whose index and term are kept so that raft-rs can still match the entry below
//! the first one, and disk space is given back in the background.

use parking_lot::RwLockWriteGuard;
use raft::prelude::SnapshotMetadata;

use crate::disk::Batch;
use crate::error::LogError;
use crate::{HybridLog, State};

/// Where the log was trimmed: the last entry removed, and its term. The log holds the entries
/// after it; `(0, 0)` in a log never trimmed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrimPoint {
    pub index: u64,
    pub term: u64,
}

/// What one [`HybridLog::trim`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Entries removed; 0 when the log was already trimmed that far.
    pub entries: u64,
    /// Their approximate size on disk, which the background compaction gives back.
    pub approx_bytes: u64,
    /// The log's trim point now.
    pub trim_point: TrimPoint,
}

impl HybridLog {
    /// The trim point: the log's entries start at `trim_point().index + 1`.
    pub fn trim_point(&self) -> TrimPoint {
        self.inner.state.read().trim
    }

    /// Removes every entry up to and including `index`.
    ///
    /// `index` must be stored and committed: at most the last index and the HardState's commit
    /// index, or this fails with [`LogError::TrimBeyondCommitted`]. At or below the current
    /// trim point it does nothing. What the log cannot check is the caller's part: no member
    /// may still need the entries (each applied them durably, or is seeded past them), and
    /// raft-rs on this node must have applied them (`Config::applied` at a restart must not be
    /// below the trim point).
    ///
    /// The removal and the new trim point are one synced write: after a crash the log holds
    /// either all of it or none. The disk space comes back later, from a background
    /// compaction (see [`LogStats::compacted_through`](crate::LogStats::compacted_through)).
    pub fn trim(&self, index: u64) -> Result<Trimmed, LogError> {
        let _writer = self.inner.writer.lock();
        let (trim, last, commit) = {
            let state = self.inner.state.read();
            (state.trim, state.last_index, state.hard_state.commit)
        };
        if index <= trim.index {
            return Ok(Trimmed {
                trim_point: trim,
                ..Trimmed::default()
            });
        }
        if index > last || index > commit {
            return Err(LogError::TrimBeyondCommitted {
                index,
                last,
                commit,
            });
        }
        let point = TrimPoint {
            index,
            term: self.entry_term(index)?,
        };
        let entries = index - trim.index;
        // Entries are of about one size in a stretch of the log; an estimate is all the
        // counters need, and reading the removed entries to measure them would cost more
        // than the trim.
        let approx_bytes = (u128::from(self.inner.disk.entries_bytes()) * u128::from(entries)
            / u128::from(last - trim.index)) as u64;

        let mut state = self.remove(index, |disk, wb| {
            disk.delete_entries(wb, trim.index + 1, index + 1);
            disk.put_trim_point(wb, point);
        })?;
        state.trim = point;
        state.memory.trim_through(index);
        self.inner.stats.record_trim(entries, approx_bytes);
        self.publish(&state);
        drop(state);
        self.inner.compactor.request(index);
        Ok(Trimmed {
            entries,
            approx_bytes,
            trim_point: point,
        })
    }

    /// Takes the position of a metadata-only snapshot, as raft-rs's `MemStorage::apply_snapshot`
    /// does without data: every entry goes, the log continues at `meta.index + 1`, with
    /// `(meta.index, meta.term)` as its trim point and `meta.conf_state` as its ConfState; the
    /// HardState's commit index becomes at least `meta.index` and its term at least
    /// `meta.term`. All of that is one synced write.
    ///
    /// Every entry goes, not only those up to `meta.index`: raft-rs hands a snapshot over in a
    /// `Ready` only when the log does not hold `meta.index` with `meta.term` (it just moves its
    /// commit index when the log does), so entries after it belong to a history that lost.
    /// A snapshot at or below the trim point fails with [`LogError::SnapshotOutOfDate`].
    ///
    /// The caller's part: the state machine must reflect the log up to `meta.index` (the
    /// member is seeded from a peer's influxd), and raft-rs on this node counts `meta.index`
    /// as applied.
    pub fn apply_snapshot_metadata(&self, meta: &SnapshotMetadata) -> Result<(), LogError> {
        let _writer = self.inner.writer.lock();
        let (trim, last, mut hard_state) = {
            let state = self.inner.state.read();
            (state.trim, state.last_index, state.hard_state.clone())
        };
        if meta.index <= trim.index {
            return Err(LogError::SnapshotOutOfDate {
                index: meta.index,
                trimmed: trim.index,
            });
        }
        let point = TrimPoint {
            index: meta.index,
            term: meta.term,
        };
        hard_state.commit = hard_state.commit.max(meta.index);
        hard_state.term = hard_state.term.max(meta.term);
        let conf_state = meta.conf_state.clone().unwrap_or_default();
        let (entries, approx_bytes) = match last - trim.index {
            0 => (0, 0),
            n => (n, self.inner.disk.entries_bytes()),
        };

        let mut state = self.remove(last, |disk, wb| {
            disk.delete_entries(wb, trim.index + 1, last + 1);
            disk.put_trim_point(wb, point);
            disk.put_hard_state(wb, &hard_state);
            disk.put_conf_state(wb, &conf_state);
        })?;
        state.trim = point;
        state.last_index = meta.index;
        state.memory.reset(meta.index);
        state.hard_state = hard_state;
        state.conf_state = conf_state;
        self.inner.stats.record_trim(entries, approx_bytes);
        self.publish(&state);
        drop(state);
        self.inner.compactor.request(last.max(meta.index));
        Ok(())
    }

    /// Writes the batch `build` makes, which removes the entries up to `through`, synced,
    /// and returns the state, locked, for the caller to follow it. Readers are not held up by
    /// the sync; those that miss an entry meanwhile learn from `removing` that it is being
    /// trimmed. A failed write (a full disk) leaves the log as it was.
    fn remove(
        &self,
        through: u64,
        build: impl FnOnce(&Batch<'_>, &mut rocksdb::WriteBatch),
    ) -> Result<RwLockWriteGuard<'_, State>, LogError> {
        self.inner.state.write().removing = through;
        let written = self.inner.disk.write(true, build);
        let mut state = self.inner.state.write();
        state.removing = 0;
        written.map(|()| state)
    }
}
