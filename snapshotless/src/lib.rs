//! The applier: replays committed Raft entries into the local influxd.
//!
//! Each node's influxd is a deterministic function of the log: the same entries, applied in
//! the same order, give the same points. So there are no snapshots. A node that restarts
//! resumes from the marker it keeps in influxd; a node whose influxd lost data (wiped, restored
//! from an old backup) or a brand-new node replays the log from wherever its marker says,
//! index 1 if there is none.

pub mod applier;
pub mod entry;
pub mod influxd;
pub mod log;
pub mod marker;
pub mod status;

/// The entry format's earlier name.
pub use entry as command;

pub use applier::{Applier, ApplierConfig, Outcome, OutcomeSink};
pub use entry::{Command, Origin};
pub use influxd::Influxd;
pub use log::{CommittedLog, LogReadError, MetaKey};
pub use status::ApplierStatus;
