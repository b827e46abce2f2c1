//! The gateway: the InfluxDB 1.x HTTP API in front of a Raft log.
//!
//! # Layout
//!
//! The data path, one file (or folder) a step:
//!
//! - `http/`: the API. `mod.rs` is the route table; `write.rs`, `query.rs`, `prom.rs`,
//!   `debug.rs`, `status.rs` and `admin.rs` are the handlers; `proxy.rs` passes reads to the
//!   local influxd; `body.rs` reads bodies and parameters within influxd's limits;
//!   `response.rs` renders influxd-style answers and maps every error to its status.
//! - `ingest/`: line protocol (and Prometheus remote write requests, `prom.rs`) to a
//!   validated, deterministic, nanosecond batch.
//! - `replicate.rs`: the life of a replicated request: readiness, propose, committed,
//!   applied. Every handler that writes, and `/health`, asks it.
//! - `raft/`: `start` (mod.rs); the handle the rest of the gateway uses (`handle.rs`); the
//!   Raft node on its own thread (`node.rs`); the peer transport (`transport.rs`); a new
//!   cluster's first entries and identity (`bootstrap.rs`); the members' addresses
//!   (`members.rs`) and how far each applied the log to its influxd (`progress.rs`); how far
//!   the log may be trimmed (`trim.rs`). The log itself is the `hybrid-log` crate.
//! - `log_disk.rs`: the log's disk: free space against the reserve, and whether the Raft
//!   node waits for space to persist; readiness asks it.
//! - `pending.rs`: requests waiting on the log, found again by the origin their entries carry.
//! - `idempotency.rs`: a write's `Idempotency-Key`, checked, digested and stamped before it
//!   enters the log; the applier's table (in `snapshotless`) decides, in log order.
//! - The applier that replays committed entries into the local influxd is the `snapshotless`
//!   crate; it answers waiting requests through `pending.rs`. When the log no longer holds
//!   what its influxd needs, `seed.rs` copies a peer's influxd to it (with the passwords
//!   `passwords.rs` kept).
//!
//! - `udp.rs`: the UDP line protocol listener; its batches take the same path from ingest on.
//!
//! Around it: `config.rs` (every setting, declared once), `server.rs` (start-up wiring),
//! `readiness.rs` (READY=1 and STOPPING=1 to systemd), `state.rs` (what handlers share, in
//! parts), `auth.rs` (credentials against influxd's users), `tls.rs` (HTTPS on the API, mutual
//! TLS on peer links), `influxql/` (which statements change state), `metrics.rs`,
//! `logging.rs`, `members_cli.rs` (`gateway members`).

pub mod auth;
pub mod config;
pub mod http;
pub mod idempotency;
pub mod influxql;
pub mod ingest;
pub mod log_disk;
pub mod logging;
pub mod members_cli;
pub mod metrics;
pub mod passwords;
pub mod pending;
pub mod raft;
pub mod readiness;
pub mod replicate;
pub mod seed;
pub mod server;
pub mod state;
pub mod tls;
pub mod udp;
