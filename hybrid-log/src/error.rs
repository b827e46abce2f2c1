//! The log's one error type. A problem with the directory names it, because an operator
//! reading the error must know which disk to look at; a caller's mistake names the indexes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the raft log at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rocksdb::Error,
    },
    #[error("cannot read the raft log directory {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a raft log directory: {reason}")]
    NotALog { path: PathBuf, reason: String },
    #[error("the raft log at {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("raft log I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: rocksdb::Error,
    },
    /// The disk under the log is full. Nothing of the write that met it was kept, and the
    /// same write succeeds once space is freed there.
    #[error("no space left on the disk of the raft log at {path}: {detail}")]
    NoSpace { path: PathBuf, detail: String },
    /// A reopen after a failed write could not complete; see [`LogError::NoSpace`].
    #[error("cannot reopen the raft log at {path} after a failed write: {why}")]
    Reopen { path: PathBuf, why: String },
    /// A reopen could not open the database at all, not even to read it.
    #[error("the raft log at {path} is closed: it could not be reopened after a failed write")]
    Closed { path: PathBuf },
    #[error("cannot start the compaction thread of the raft log at {path}: {source}")]
    Worker {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("append at index {first} would leave a gap after the last index {last}")]
    Gap { first: u64, last: u64 },
    #[error("append at index {first} would rewrite entries trimmed through {trimmed}")]
    AppendTrimmed { first: u64, trimmed: u64 },
    #[error(
        "cannot trim through index {index}: the log ends at {last}, committed through {commit}"
    )]
    TrimBeyondCommitted { index: u64, last: u64, commit: u64 },
    #[error("a snapshot at index {index} is not ahead of the trim point {trimmed}")]
    SnapshotOutOfDate { index: u64, trimmed: u64 },
    /// A read below the trim point; raft-rs answers it with a snapshot.
    #[error("entry {index} was trimmed: the log starts at {first}")]
    Compacted { index: u64, first: u64 },
    /// A read past the last index, which a snapshot application can lower under a reader.
    #[error("entry {index} is past the end of the log at {last}")]
    Unavailable { index: u64, last: u64 },
}

impl LogError {
    /// A RocksDB error about the log at `path`: [`LogError::NoSpace`] when the file system is
    /// full (RocksDB's status carries the message of ENOSPC), [`LogError::Io`] otherwise.
    pub(crate) fn from_rocksdb(path: &std::path::Path, source: rocksdb::Error) -> LogError {
        let message = source.to_string();
        // The crate exposes the status code only, not its NoSpace subcode, so the message
        // tells: strerror(ENOSPC), as RocksDB's POSIX file system reports it.
        if message.contains("No space left on device") {
            LogError::NoSpace {
                path: path.to_path_buf(),
                detail: message,
            }
        } else {
            LogError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// The disk under the log is full: a write may be retried once space is freed.
    pub fn is_no_space(&self) -> bool {
        matches!(self, LogError::NoSpace { .. })
    }
}

impl From<LogError> for raft::Error {
    /// The three errors raft-rs acts upon keep their raft-rs meaning; any other one stops
    /// the raft node, as it must when its log cannot be read.
    fn from(e: LogError) -> raft::Error {
        use raft::StorageError;
        raft::Error::Store(match e {
            LogError::Compacted { .. } => StorageError::Compacted,
            LogError::Unavailable { .. } => StorageError::Unavailable,
            LogError::SnapshotOutOfDate { .. } => StorageError::SnapshotOutOfDate,
            other => StorageError::Other(Box::new(other)),
        })
    }
}
