//! The Raft log as the gateway and the applier use it: committed entries to read, and the
//! small values they keep in the log's meta space. Every meta key is declared here, in one
//! place, because the keys are on disk: two spellings of one key, or one key used for two
//! things, would lose a value across a restart.

use hybrid_log::{HybridLog, LogBatch, LogError};
use raft::prelude::Entry;
use raft::{GetEntriesContext, Storage};

/// A value kept in the log's meta space. It is written in a [`LogBatch`], so it becomes
/// durable in the same atomic write as the Raft state it goes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKey {
    /// The Raft loop's applied index (big-endian u64). Written by the Raft loop after every
    /// Ready it handled, and at bootstrap just past the bootstrap entries; read at start as
    /// `raft::Config::applied`, so raft-rs hands over only the entries that come after it
    /// (membership changes up to there were applied, their ConfState persisted).
    RaftApplied,
    /// The cluster id (big-endian u64): a hash of the bootstrap entries. Written at bootstrap,
    /// or by a joining node when the first member contacts it; exchanged when peers connect,
    /// so that nodes bootstrapped with different member lists refuse to talk.
    ClusterId,
    /// The address book (JSON, member id -> peer address). Written with each membership
    /// change that alters it and at bootstrap; read at start, so the transport knows where to
    /// connect before the log is replayed.
    Addresses,
    /// The applier's last marker index (big-endian u64): how far this node knows it applied
    /// the log to its influxd. Written by the applier after each marker it writes to influxd,
    /// not synced; read when it resumes, where a marker in influxd below this value means
    /// influxd lost data. A hint only: influxd's own marker is the truth.
    ApplierMarker,
    /// The last password set for each user by an applied statement (JSON, user -> index and
    /// password, or none once dropped). Written, synced, by the gateway after each applied
    /// statement that sets one, before the marker covers it; sent with a seed, because
    /// influxd's portable restore does not carry passwords.
    Passwords,
    /// The span of log indexes the stored idempotency table can be put at (JSON: floor and
    /// through). Written, synced, with the table's records before each marker the applier
    /// writes to influxd, so the table never lags influxd (`idempotency.rs`).
    IdempotencySpan,
    /// Not one value but a family: one idempotency record per applied keyed write (JSON),
    /// under this prefix followed by its log index in 20 digits. Written with
    /// [`MetaKey::IdempotencySpan`]; deleted once evicted and covered by a marker.
    IdempotencyRecords,
    /// The [`ReplayFloor`] (JSON), while there is one. Written, synced, by the applier when
    /// influxd failed or died in the middle of a write, deleted once influxd has moved what
    /// it wrote since into its data files (`applier/torn_wal.rs`).
    ReplayFloor,
}

impl MetaKey {
    /// Every key, for checks over all of them.
    pub const ALL: [MetaKey; 8] = [
        MetaKey::RaftApplied,
        MetaKey::ClusterId,
        MetaKey::Addresses,
        MetaKey::ApplierMarker,
        MetaKey::Passwords,
        MetaKey::IdempotencySpan,
        MetaKey::IdempotencyRecords,
        MetaKey::ReplayFloor,
    ];

    /// The key as stored. Never change one: logs written by earlier versions use these.
    pub const fn key(self) -> &'static str {
        match self {
            MetaKey::RaftApplied => "raft.applied",
            MetaKey::ClusterId => "raft.cluster",
            MetaKey::Addresses => "raft.addresses",
            MetaKey::ApplierMarker => "applier.marker",
            MetaKey::Passwords => "seed.passwords",
            MetaKey::IdempotencySpan => "idempotency.span",
            MetaKey::IdempotencyRecords => "idempotency.records/",
            MetaKey::ReplayFloor => "applier.replay_floor",
        }
    }
}

/// The bytes stored under `key`, `None` if nothing is.
pub fn read_bytes(log: &HybridLog, key: MetaKey) -> Result<Option<Vec<u8>>, LogError> {
    log.meta(key.key())
}

/// Stores `value` under `key` when `batch` is committed.
pub fn put_bytes(batch: &mut LogBatch, key: MetaKey, value: impl Into<Vec<u8>>) {
    batch.put_meta(key.key(), value);
}

/// The u64 stored under `key`; 0 when there is none, or it cannot be read or is not 8 bytes
/// (every u64 key counts from 0, which is what a new log holds).
pub fn read_u64(log: &HybridLog, key: MetaKey) -> u64 {
    read_bytes(log, key)
        .ok()
        .flatten()
        .and_then(|v| v.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Stores `value` under `key`, big-endian, when `batch` is committed.
pub fn put_u64(batch: &mut LogBatch, key: MetaKey, value: u64) {
    put_bytes(batch, key, value.to_be_bytes().to_vec());
}

/// The committed log could not be read. It is on this node's own disk, so nothing can be
/// applied until it reads again, and nothing is ever skipped.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct LogReadError(#[from] pub raft::Error);

impl LogReadError {
    /// The entries asked for were trimmed: nothing on this node can replay them.
    pub fn is_trimmed(&self) -> bool {
        matches!(self.0, raft::Error::Store(raft::StorageError::Compacted))
    }
}

/// Where the applier replays from after influxd restarts, while influxd's write-ahead log may
/// hold a write torn half-way (`applier/torn_wal.rs`), or points deleted since that its next
/// start would bring back (`applier/wal_watch.rs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplayFloor {
    /// The first entry to apply again.
    pub from: u64,
    /// When the influxd process that tore a write started (its `SHOW DIAGNOSTICS` `started`),
    /// if known: only a later process can have moved everything into its data files.
    pub process: Option<String>,
    /// influxd may have torn a write (a floor stored before this field existed was set for
    /// that alone).
    #[serde(default = "yes")]
    pub torn: bool,
    /// Points were deleted while influxd's WAL may still hold them.
    #[serde(default)]
    pub removals: bool,
}

fn yes() -> bool {
    true
}

/// The applier's view of the log: committed entries to read, and a place to remember how far
/// it got (a hint only; influxd's own marker is the truth).
pub trait CommittedLog: Send + Sync + 'static {
    /// Entries `[lo, hi)`, as many as fit in `max_bytes` (at least one).
    fn read(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, LogReadError>;
    fn term(&self, index: u64) -> Result<u64, LogReadError>;
    /// The last marker index this node wrote to influxd, persisted with the log.
    fn load_applied(&self) -> u64;
    fn save_applied(&self, index: u64);
    /// The replay floor, if one is set.
    fn load_replay_floor(&self) -> Option<ReplayFloor>;
    /// Sets or clears the replay floor, synced: forgetting it would lose writes at influxd's
    /// next restart.
    fn save_replay_floor(&self, floor: Option<&ReplayFloor>) -> Result<(), LogError>;
}

impl CommittedLog for HybridLog {
    fn read(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, LogReadError> {
        Ok(self.entries(lo, hi, max_bytes, GetEntriesContext::empty(false))?)
    }

    fn term(&self, index: u64) -> Result<u64, LogReadError> {
        Ok(Storage::term(self, index)?)
    }

    fn load_applied(&self) -> u64 {
        read_u64(self, MetaKey::ApplierMarker)
    }

    fn save_applied(&self, index: u64) {
        let mut batch = LogBatch::new();
        put_u64(&mut batch, MetaKey::ApplierMarker, index);
        // Not synced: losing the latest value only makes a later wipe check less precise.
        if let Err(e) = self.commit(batch, false) {
            tracing::warn!(error = %e, "cannot record the applied marker in the log directory");
        }
    }

    fn load_replay_floor(&self) -> Option<ReplayFloor> {
        let bytes = read_bytes(self, MetaKey::ReplayFloor).ok().flatten()?;
        match serde_json::from_slice(&bytes) {
            Ok(f) => Some(f),
            Err(e) => {
                // Unreadable: replay from the start rather than risk a gap.
                tracing::error!(error = %e, "the stored replay floor cannot be read; replaying from index 1 at influxd's next restart");
                Some(ReplayFloor {
                    from: 1,
                    process: None,
                    torn: true,
                    removals: true,
                })
            }
        }
    }

    fn save_replay_floor(&self, floor: Option<&ReplayFloor>) -> Result<(), LogError> {
        let mut batch = LogBatch::new();
        match floor {
            Some(f) => put_bytes(
                &mut batch,
                MetaKey::ReplayFloor,
                serde_json::to_vec(f).expect("a replay floor serializes"),
            ),
            None => {
                batch.delete_meta(MetaKey::ReplayFloor.key());
            }
        }
        self.commit(batch, true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The keys are on disk: a log written by an earlier version must still be read.
    #[test]
    fn keys_are_the_stored_strings_and_distinct() {
        let keys: Vec<&str> = MetaKey::ALL.iter().map(|k| k.key()).collect();
        assert_eq!(
            keys,
            [
                "raft.applied",
                "raft.cluster",
                "raft.addresses",
                "applier.marker",
                "seed.passwords",
                "idempotency.span",
                "idempotency.records/",
                "applier.replay_floor"
            ]
        );
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
        // A family's prefix is no other key's start: listing it finds only its own.
        let family = MetaKey::IdempotencyRecords.key();
        assert!(keys.iter().all(|k| *k == family || !k.starts_with(family)));
    }

    #[test]
    fn values_round_trip_and_absent_u64_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(read_u64(&log, MetaKey::RaftApplied), 0);
        let mut batch = LogBatch::new();
        put_u64(&mut batch, MetaKey::RaftApplied, 7);
        put_u64(&mut batch, MetaKey::ClusterId, u64::MAX);
        put_bytes(&mut batch, MetaKey::Addresses, b"{}".to_vec());
        log.commit(batch, true).unwrap();
        assert_eq!(read_u64(&log, MetaKey::RaftApplied), 7);
        assert_eq!(read_u64(&log, MetaKey::ClusterId), u64::MAX);
        assert_eq!(
            read_bytes(&log, MetaKey::Addresses).unwrap().as_deref(),
            Some(&b"{}"[..])
        );
        // Not a u64: read as 0, as a missing value.
        assert_eq!(read_u64(&log, MetaKey::Addresses), 0);
        // What the gateway wrote with the bare strings is what these read.
        assert_eq!(
            log.meta("raft.applied").unwrap(),
            Some(7u64.to_be_bytes().to_vec())
        );
        log.save_applied(42);
        assert_eq!(log.load_applied(), 42);
        assert_eq!(read_u64(&log, MetaKey::ApplierMarker), 42);
        assert_eq!(log.load_replay_floor(), None);
        let floor = ReplayFloor {
            from: 9,
            process: Some("2026-11-26T18:55:58Z".into()),
            torn: false,
            removals: true,
        };
        log.save_replay_floor(Some(&floor)).unwrap();
        assert_eq!(log.load_replay_floor(), Some(floor));
        // As stored before it said why: for a torn write.
        let mut batch = LogBatch::new();
        put_bytes(
            &mut batch,
            MetaKey::ReplayFloor,
            r#"{"from":3,"process":null}"#,
        );
        log.commit(batch, true).unwrap();
        let old = log.load_replay_floor().unwrap();
        assert!(old.torn && !old.removals, "{old:?}");
        log.save_replay_floor(None).unwrap();
        assert_eq!(log.load_replay_floor(), None);
    }
}
