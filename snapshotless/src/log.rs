//! The applier's view of the Raft log: committed entries to read, and a place to remember how
//! far it got (a hint only; influxd's own marker is the truth).

use hybrid_log::{HybridLog, LogBatch};
use raft::{GetEntriesContext, Storage};

pub trait CommittedLog: Send + Sync + 'static {
    /// Entries `[lo, hi)`, as many as fit in `max_bytes` (at least one).
    fn read(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<raft::prelude::Entry>, String>;
    fn term(&self, index: u64) -> Result<u64, String>;
    /// The last marker index this node wrote to influxd, persisted with the log.
    fn load_applied(&self) -> u64;
    fn save_applied(&self, index: u64);
}

const APPLIED_KEY: &str = "applier.marker";

impl CommittedLog for HybridLog {
    fn read(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<raft::prelude::Entry>, String> {
        self.entries(lo, hi, max_bytes, GetEntriesContext::empty(false))
            .map_err(|e| e.to_string())
    }

    fn term(&self, index: u64) -> Result<u64, String> {
        Storage::term(self, index).map_err(|e| e.to_string())
    }

    fn load_applied(&self) -> u64 {
        self.meta(APPLIED_KEY)
            .ok()
            .flatten()
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }

    fn save_applied(&self, index: u64) {
        let mut batch = LogBatch::new();
        batch.put_meta(APPLIED_KEY, index.to_be_bytes().to_vec());
        // Not synced: losing the latest value only makes a later wipe check less precise.
        if let Err(e) = self.commit(batch, false) {
            tracing::warn!(error = %e, "cannot record the applied marker in the log directory");
        }
    }
}
