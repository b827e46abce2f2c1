//! Seeding: how a node that needs log entries nobody keeps any more gets a copy of a healthy
//! peer's influxd instead, made with influxd's own tools, and replays the log from what the
//! copy covers.
//!
//! The steps, in the order they must happen:
//! 1. the source reads its marker A, *then* runs `influxd backup -portable` of every database
//!    ([`take_copy`]): the marker is written after the data it covers, so a copy started after
//!    reading it holds at least everything up to A (maybe more; replaying is idempotent);
//! 2. the copy travels as one byte stream ([`send`], [`receive`]), never through the log;
//! 3. the node restores it into its empty influxd ([`restore`]), re-creates what influxd's
//!    restore leaves out, checks the result, and only then writes its marker A. The copy's own
//!    `_gateway` database is never restored: its marker says how far the *source* had got
//!    while copying, which the node cannot trust, and a half-restored influxd holding it would
//!    look complete. Without a marker, an interrupted restore is plainly unfinished.
//!
//! What influxd 1.6.7's portable backup and restore carry (found by experiment): every
//! database, its retention policies with their durations and the default one, its shards and
//! points. Not carried: continuous queries and users with their privileges; the backup's meta
//! file holds them (users with bcrypt hashes), but the restore imports databases only. So
//! [`restore`] re-creates them from that file: continuous queries exactly, users with their
//! admin flag and grants, passwords only where the caller knows them ([`Passwords`]); see
//! `seed/users.rs` for why and what happens to the others. Two more things the tools do not
//! say: the restore exits before influxd has finished importing (so [`restore`] waits for
//! it), and it drops tombstones, bringing back points deleted since the last compaction (so a
//! copy holding any is refused); see `seed/shards.rs`.
//!
//! Layout:
//! - `seed/tool.rs`: influxd's backup and restore, run as bounded child processes ([`Tools`]);
//! - `seed/copy.rs`: the source side, and the backup directory both sides hold ([`Copy`]);
//! - `seed/meta.rs`: what a backup's meta file says;
//! - `seed/shards.rs`: what its shard archives hold (TSM bytes, tombstones);
//! - `seed/query.rs`: the InfluxQL a seed runs and the SHOW answers it reads;
//! - `seed/stream.rs`: the copy as one byte stream, its format and its checks;
//! - `seed/restore.rs`: the node side, and how to recover a half-restored influxd;
//! - `seed/imported.rs`: waiting until influxd has really imported what its restore sent;
//! - `seed/users.rs`: users and privileges, which influxd's restore does not carry.

mod copy;
mod imported;
mod meta;
mod query;
mod restore;
mod shards;
mod stream;
mod tool;
mod users;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use copy::{take_copy, Copy, CopyFile};
pub use restore::{check_empty, restore, wipe_for_seed, Restored};
pub use stream::{receive, send, StreamError};
pub use tool::Tools;
pub use users::Passwords;

pub use crate::applier::{SeedReport, Seeder};

/// A boxed future, as [`Seeder`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

use crate::influxd::Unavailable;
use crate::marker::MarkerError;

/// How far a transfer got: bytes of file content sent or received, of `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error(transparent)]
    Marker(#[from] MarkerError),
    /// The source's influxd holds no marker, so nothing says what a copy of it would cover.
    #[error("influxd holds no marker: a copy of it covers no known index")]
    NoMarker,
    /// influxd answered a statement with an error.
    #[error("influxd refused {statement}: {error}")]
    Query { statement: String, error: String },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("influxd {action} failed ({status}): {output}")]
    Tool {
        action: &'static str,
        status: String,
        output: String,
    },
    #[error("influxd {action} did not finish within {after:?} and was killed")]
    ToolTimeout {
        action: &'static str,
        after: Duration,
    },
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// A backup directory that is not a complete portable backup.
    #[error("not a usable backup: {0}")]
    Backup(String),
    /// The copy holds deletes influxd's restore would not apply (see `seed/shards.rs`).
    #[error(
        "the copy holds tombstones in {shards:?}: its restore would bring deleted points \
         back; copy again once influxd has compacted them"
    )]
    PendingDeletes { shards: Vec<String> },
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The node's influxd holds databases: restoring over them would fail half-way or mix
    /// data. See [`wipe_for_seed`].
    #[error("influxd is not empty: it holds {databases:?}")]
    NotEmpty { databases: Vec<String> },
    /// No peer sent a usable copy; why, peer by peer.
    #[error("no peer sent a copy: {0}")]
    NoSource(String),
    /// After the restore, influxd does not hold what the copy does.
    #[error("the restored influxd differs from the copy: {0}")]
    Verify(String),
    /// The copy's idempotency keys could not be stored with the log.
    #[error("cannot store the copy's idempotency keys: {0}")]
    Keys(#[from] hybrid_log::LogError),
}

impl SeedError {
    /// An I/O error while doing `action` ("create /tmp/x").
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SeedError {
        let action = action.into();
        move |source| SeedError::Io { action, source }
    }
}
