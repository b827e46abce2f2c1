use std::path::PathBuf;

/// Every error names the log directory: an operator reading it must know which disk to look at.
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
    #[error("append at index {first} would leave a gap after the last index {last}")]
    Gap { first: u64, last: u64 },
}

impl From<LogError> for raft::Error {
    fn from(e: LogError) -> raft::Error {
        raft::Error::Store(raft::StorageError::Other(Box::new(e)))
    }
}
