//! What the applier reports about itself: for /health, /metrics and the write path's
//! readiness check.

use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplierStatus {
    /// Last log index applied to influxd (or found applied there).
    pub applied: u64,
    /// Last log index the applier knows is committed.
    pub committed: u64,
    /// Whether influxd answered the last request.
    pub influxd_up: bool,
    /// Why influxd is considered down, while it is.
    pub influxd_error: Option<String>,
    /// influxd's version, from its /ping.
    pub influxd_version: Option<String>,
    /// Set while the applier replays the log into an influxd that lost data (wiped, restored
    /// from an old backup, new node): the node is not ready until it reaches `target`.
    pub rebuilding: Option<Rebuild>,
    /// Last marker written to influxd.
    pub marker: u64,
    /// Where the applier last resumed: the marker it found in influxd (0: from the start).
    pub resumed_from: u64,
    /// Entries applied since start, and influxd requests made (coalescing makes fewer).
    pub entries_applied: u64,
    pub requests: u64,
    /// Groups of writes sent as several requests at once (`applier/lanes.rs`).
    pub lane_groups: u64,
    /// Seconds spent waiting for influxd's answers to writes: against the wall clock of a
    /// replay, how much of it was influxd's.
    pub write_seconds: f64,
    /// Entries influxd rejected (4xx), the same way on every replica, and keyed writes
    /// refused for reusing a key.
    pub rejected: u64,
    /// Keyed writes answered as retries of a write applied before, and not applied.
    pub retries: u64,
    /// Times the applier went back to the marker (influxd restarted, lost data, failed).
    pub resumes: u64,
    /// Set while influxd is being replaced by a copy of a peer's: the node is not ready.
    pub seeding: Option<Seeding>,
    /// Seeds started, completed and failed since start; why the last one failed.
    pub seeds_started: u64,
    pub seeds_completed: u64,
    pub seeds_failed: u64,
    pub last_seed_error: Option<String>,
    /// Set while influxd may hold a torn write in its WAL: the log is replayed from here
    /// after each restart of influxd (`applier/torn_wal.rs`).
    pub replay_floor: Option<u64>,
}

/// A seed under way.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Seeding {
    /// Why: the entries influxd needs were trimmed, or the replay would move far more.
    pub reason: SeedReason,
    /// The log index the copy must cover at least.
    pub need: u64,
    /// "finding a source", "copying", "restoring".
    pub phase: &'static str,
    /// The peer the copy comes from, once one agreed to send it.
    pub source: Option<String>,
    /// Bytes of the copy received, of its total (0 until the source said).
    pub bytes_done: u64,
    pub bytes_total: u64,
    #[serde(skip)]
    pub started: Option<Instant>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SeedReason {
    /// The log no longer holds the entries influxd needs next.
    Trimmed,
    /// Replaying the backlog would move many times what a copy moves.
    Faster,
    /// influxd's marker is where this node does not know the idempotency keys (its log is
    /// new, or influxd went back before what the table can be rewound to).
    KeysUnknown,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Rebuild {
    pub from: u64,
    pub target: u64,
}

impl ApplierStatus {
    /// Ready to serve writes that wait for the local apply.
    pub fn ready(&self) -> bool {
        self.influxd_up && self.rebuilding.is_none() && self.seeding.is_none()
    }
}
