//! The one process harness of the workspace: real `influxd` and gateway processes for the
//! end-to-end tests (`tests/`) and the fault tests (`jepsen/`), which differ only in where the
//! processes run (loopback addresses, or network namespaces through a command prefix).
//!
//! Layout:
//! - [`process`]: a child process with a log file, started, signalled, killed and restarted;
//!   dropping it kills it, so a failing test leaves nothing behind.
//! - [`influxd`]: an influxd's configuration, rendered from `harness/influxdb.conf` (the only
//!   influxd configuration in the repository; `scripts/cluster` fills in the same file), its
//!   process, the wait until it answers, and wiping its data.
//! - [`gateway`]: the gateway binary of this workspace, built on demand, and its command line.
//! - [`http`]: a small blocking client for the InfluxDB 1.x API, influxd and gateway alike,
//!   over HTTP or HTTPS with a given CA.
//! - [`tls`]: test certificates (a cluster CA, node certificates, an unrelated CA) as PEM files.
//! - [`tmpfs`]: a small file system under a node's directory, and a ballast that fills it.
//! - [`wait`]: bounded polling, so nothing sleeps to synchronise.
//! - [`Error`]: what can go wrong starting and waiting for processes.

pub mod error;
pub mod gateway;
pub mod http;
pub mod influxd;
pub mod process;
pub mod tls;
pub mod tmpfs;
pub mod wait;

pub use error::Error;
pub use http::{Http, HttpError, Response};
pub use process::Process;
pub use tmpfs::Tmpfs;
pub use wait::{poll, wait_until};
