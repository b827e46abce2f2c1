//! The disk under the Raft log, as the rest of the node sees it: how much space is free (read
//! with statvfs at most every 100 ms, never per point), whether it is below the reserve that
//! makes this node refuse writes, and whether the Raft node is waiting for space to persist.
//! Writes refused here were never proposed: the client may retry them on another node.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytesize::ByteSize;
use parking_lot::Mutex;
use serde_json::json;

/// How old a free-space figure may be before a reader measures it again.
const REFRESH: Duration = Duration::from_millis(100);

/// Why this node refuses writes for its log's disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskFull {
    #[error(
        "the disk of this node's raft log ({path}) has {} free, less than log_disk_reserve ({}): \
         this node refuses writes until space is freed there; nothing was written, retry on \
         another node",
        ByteSize(*.free),
        ByteSize(*.reserve)
    )]
    BelowReserve {
        path: String,
        free: u64,
        reserve: u64,
    },
    #[error(
        "this node cannot write its raft log ({error}); it takes no writes and retries until \
         space is freed on that disk; nothing was written, retry on another node"
    )]
    LogWriteFailing { error: String },
}

/// Cheap to clone: the Raft node, the write path and the status endpoints share one.
#[derive(Clone)]
pub struct LogDisk {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    reserve: u64,
    free: AtomicU64,
    /// When `free` was measured; held while measuring, so concurrent readers measure once.
    measured: Mutex<Option<Instant>>,
    /// The Raft node could not persist for want of space, and is retrying.
    failing: AtomicBool,
    failure: Mutex<Option<(String, Instant)>>,
}

impl LogDisk {
    /// The disk of the log in `path`; writes are refused below `reserve` bytes free.
    pub fn new(path: PathBuf, reserve: u64) -> LogDisk {
        LogDisk {
            inner: Arc::new(Inner {
                path,
                reserve,
                free: AtomicU64::new(u64::MAX),
                measured: Mutex::new(None),
                failing: AtomicBool::new(false),
                failure: Mutex::new(None),
            }),
        }
    }

    /// Bytes free on the log's disk, at most [`REFRESH`] old. A disk that cannot be measured
    /// counts as having room: the log's own writes still say when it has none.
    pub fn free(&self) -> u64 {
        if let Some(mut measured) = self.inner.measured.try_lock() {
            if measured.is_none_or(|at| at.elapsed() >= REFRESH) {
                let free = hybrid_log::free_bytes(&self.inner.path).unwrap_or(u64::MAX);
                self.inner.free.store(free, Ordering::Relaxed);
                *measured = Some(Instant::now());
            }
        }
        self.inner.free.load(Ordering::Relaxed)
    }

    pub fn reserve(&self) -> u64 {
        self.inner.reserve
    }

    /// Whether this node can take a write, as far as its log's disk is concerned.
    pub fn check(&self) -> Result<(), DiskFull> {
        if self.inner.failing.load(Ordering::Acquire) {
            let error = self
                .inner
                .failure
                .lock()
                .as_ref()
                .map_or_else(String::new, |(e, _)| e.clone());
            return Err(DiskFull::LogWriteFailing { error });
        }
        let free = self.free();
        if free < self.inner.reserve {
            return Err(DiskFull::BelowReserve {
                path: self.inner.path.display().to_string(),
                free,
                reserve: self.inner.reserve,
            });
        }
        Ok(())
    }

    /// The Raft node could not persist: `error` says why. Returns whether this is news.
    pub fn persist_failed(&self, error: String) -> bool {
        let mut failure = self.inner.failure.lock();
        let new = failure.is_none();
        if new {
            *failure = Some((error, Instant::now()));
        }
        self.inner.failing.store(true, Ordering::Release);
        new
    }

    /// The Raft node persisted again; returns how long it had been failing, if it was.
    pub fn persist_recovered(&self) -> Option<Duration> {
        if !self.inner.failing.swap(false, Ordering::AcqRel) {
            return None;
        }
        self.inner.failure.lock().take().map(|(_, at)| at.elapsed())
    }

    pub fn persist_failing(&self) -> bool {
        self.inner.failing.load(Ordering::Acquire)
    }

    /// What `/status` says of the disk.
    pub fn status(&self) -> serde_json::Value {
        let free = self.free();
        let failure = self.inner.failure.lock().clone();
        json!({
            "path": self.inner.path.display().to_string(),
            "free_bytes": (free != u64::MAX).then_some(free),
            "reserve_bytes": self.inner.reserve,
            "below_reserve": free < self.inner.reserve,
            "log_write_failing": failure.as_ref().map(|(e, _)| e.clone()),
            "log_write_failing_seconds": failure.map(|(_, at)| at.elapsed().as_secs_f64()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_a_failing_log_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log");
        std::fs::create_dir(&path).unwrap();
        let roomy = LogDisk::new(path.clone(), 0);
        assert_eq!(roomy.check(), Ok(()));
        let full = LogDisk::new(path, u64::MAX - 1);
        match full.check() {
            Err(e @ DiskFull::BelowReserve { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("raft-log") && text.contains("log_disk_reserve"),
                    "{text}"
                );
            }
            other => panic!("expected a refusal below the reserve, got {other:?}"),
        }
        assert!(roomy.persist_failed("no space left".into()));
        assert!(!roomy.persist_failed("no space left again".into()));
        match roomy.check() {
            Err(DiskFull::LogWriteFailing { error }) => assert_eq!(error, "no space left"),
            other => panic!("expected a failing log, got {other:?}"),
        }
        assert_eq!(roomy.status()["log_write_failing"], "no space left");
        assert!(roomy.persist_recovered().is_some());
        assert!(roomy.persist_recovered().is_none());
        assert_eq!(roomy.check(), Ok(()));
    }
}
