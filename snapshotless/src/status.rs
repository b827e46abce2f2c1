//! What the applier reports about itself: for /health, /metrics and the write path's
//! readiness check.

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
    /// Entries influxd rejected (4xx), the same way on every replica.
    pub rejected: u64,
    /// Times the applier went back to the marker (influxd restarted, lost data, failed).
    pub resumes: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Rebuild {
    pub from: u64,
    pub target: u64,
}

impl ApplierStatus {
    /// Ready to serve writes that wait for the local apply.
    pub fn ready(&self) -> bool {
        self.influxd_up && self.rebuilding.is_none()
    }
}
