//! The applier: replays committed Raft entries into the local influxd.
//!
//! Each node's influxd is a deterministic function of the log: the same entries, applied in
//! the same order, give the same points. So there are no snapshots. A node that restarts
//! resumes from the marker it keeps in influxd; a node whose influxd lost data (wiped, restored
//! from an old backup) or a brand-new node replays the log from wherever its marker says,
//! index 1 if there is none.
//!
//! Layout:
//! - [`entry`]: the format of a normal Raft entry, its data ([`Command`]) and its context
//!   ([`Origin`]);
//! - [`log`]: the log as the gateway and the applier use it: committed entries, and every key
//!   kept in the log's meta space ([`log::MetaKey`]);
//! - [`applier`]: the loop that applies entries in order, with where it resumes, how it
//!   coalesces writes and how it backs off;
//! - [`outcome`]: what influxd's answers mean and how they reach the waiting client;
//! - [`idempotency`]: the table of applied keyed writes, which makes a retry apply at most
//!   once and answers it with the first attempt's outcome;
//! - [`marker`]: the applier's progress, kept in influxd itself;
//! - [`influxd`]: the HTTP client for the local influxd;
//! - [`seed`]: a node that needs entries the log no longer keeps gets a copy of a peer's
//!   influxd instead (influxd's own backup, streamed, restored) and replays from what it covers;
//! - [`status`]: what the applier reports about itself.

pub mod applier;
pub mod entry;
pub mod idempotency;
pub mod influxd;
pub mod log;
pub mod marker;
pub mod outcome;
pub mod seed;
pub mod status;

/// The entry format's earlier name.
pub use entry as command;

pub use applier::{Applier, ApplierConfig};
pub use entry::{Command, KeyedBy, Origin, Trim};
pub use idempotency::KeyTable;
pub use influxd::Influxd;
pub use log::{CommittedLog, LogReadError, MetaKey, ReplayFloor};
pub use outcome::{AppliedQueries, Outcome, OutcomeSink};
pub use status::ApplierStatus;
