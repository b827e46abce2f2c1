//! The worker that gives trimmed entries' disk space back. A trim is one small synced write;
//! the compaction that really frees the space reads and rewrites files for seconds, so it runs
//! here, on a thread of its own, and appends and reads never wait for it.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::disk::DiskTier;
use crate::error::LogError;
use crate::stats::Stats;

pub struct Compactor {
    disk: DiskTier,
    requests: Option<Sender<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    pub fn start(disk: DiskTier, stats: Arc<Stats>) -> Result<Compactor, LogError> {
        let (requests, rx) = mpsc::channel();
        let worker = disk.clone();
        let thread = std::thread::Builder::new()
            .name("hybrid-log-compact".into())
            .spawn(move || run(&worker, &rx, &stats))
            .map_err(|e| LogError::Worker {
                path: disk.path().to_path_buf(),
                source: e,
            })?;
        Ok(Compactor {
            disk,
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Asks for the space of the entries up to `index` to be given back; returns at once.
    pub fn request(&self, index: u64) {
        if let Some(requests) = &self.requests {
            // The worker only stops when this sender is dropped, so the send cannot fail
            // while `self` lives; if it somehow did, the next trim's compaction covers this
            // range too (each one starts at the beginning of the log).
            let _ = requests.send(index);
        }
    }
}

/// Runs until the log is closed. Requests that queued up while a compaction ran are served by
/// one compaction up to the highest of them: each one covers everything below its index.
fn run(disk: &DiskTier, requests: &Receiver<u64>, stats: &Stats) {
    while let Ok(mut through) = requests.recv() {
        through = requests.try_iter().fold(through, u64::max);
        // A failure here only delays the space's return to the next trim, whose compaction
        // covers the same range; nothing in the log depends on it.
        if disk.compact_through(through).is_ok() {
            stats.set_compacted_through(through);
        }
    }
}

impl Drop for Compactor {
    /// Closing the log interrupts a running compaction rather than waiting for it: RocksDB
    /// stops it safely, and the log compacts below its trim point again when next opened.
    fn drop(&mut self) {
        self.disk.cancel_background_work();
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
