//! Harness for the end-to-end tests: real `influxd` processes (Debian package `influxdb`) and
//! real gateway processes, each node on its own loopback address (127.0.0.1, .2, .3 ...).
//!
//! Everything started here is killed when its handle is dropped, so a failing test leaves no
//! processes behind.

pub mod cluster;
pub mod http;
pub mod influxd;
pub mod wait;

pub use cluster::Cluster;
pub use http::Http;
pub use influxd::Influxd;
pub use wait::wait_until;
