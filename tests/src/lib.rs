//! End-to-end tests with real `influxd` processes (Debian package `influxdb`) and real gateway
//! processes, each node on its own loopback address (127.0.S.1, .2, .3 ...), on the shared
//! process harness (`harness/`).
//!
//! Everything started here is killed when its handle is dropped, so a failing test leaves no
//! processes behind.

pub mod cluster;
pub mod influxd;
pub mod metrics;
pub mod partition;
pub mod raw;

pub use cluster::Cluster;
pub use harness::http::{self, Http, HttpError};
pub use harness::wait_until;
pub use influxd::Influxd;
pub use partition::Partition;
