//! The gateway: the InfluxDB 1.x HTTP API in front of a Raft log.
//!
//! The data path, in file order: `http` (the API) -> `ingest` (line protocol to a
//! deterministic, nanosecond batch) -> `raft` (propose, replicate, commit; the log is
//! `hybrid-log`) -> the applier (`snapshotless`) -> the local influxd -> back to the waiting
//! request through `pending`.

pub mod auth;
pub mod config;
pub mod gateway;
pub mod http;
pub mod influxql;
pub mod ingest;
pub mod logging;
pub mod members_cli;
pub mod metrics;
pub mod pending;
pub mod raft;
