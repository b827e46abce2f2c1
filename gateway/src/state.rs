//! What the HTTP handlers share, in parts: each handler takes only the parts it needs
//! (axum's `FromRef`), and none of them reaches into the whole.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use bytes::Bytes;
use http_body_util::Full;
use hybrid_log::HybridLog;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::auth::Auth;
use crate::config::AdminApi;
use crate::idempotency::Idempotency;
use crate::metrics::{Metrics, Snapshot};
use crate::raft::transport::TransportStats;
use crate::replicate::Replicator;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub replicator: Replicator,
    pub auth: Arc<Auth>,
    pub influxd: LocalInfluxd,
    pub node: NodeView,
    pub limits: Limits,
    /// Who may use `/admin/members`.
    pub admin_api: Arc<AdminApi>,
}

/// Request limits.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Largest body, also after gzip decompression.
    pub max_body_size: usize,
    /// The longest a body may take to arrive, from the handler's first read.
    pub body_read_timeout: Duration,
}

/// The local influxd, for passing reads through to it.
#[derive(Clone)]
pub struct LocalInfluxd {
    pub url: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

impl LocalInfluxd {
    pub fn new(url: &str) -> LocalInfluxd {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        LocalInfluxd {
            url: url.to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

/// What the node says about itself: its id, its figures and where they come from.
#[derive(Clone)]
pub struct NodeView {
    pub id: u64,
    pub replicator: Replicator,
    pub log: HybridLog,
    pub memory_budget: usize,
    pub peers: Arc<TransportStats>,
    pub metrics: Arc<Metrics>,
    /// Writes' idempotency keys: the header's checks and this node's table.
    pub idempotency: Idempotency,
}

impl NodeView {
    /// Every figure, read now.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            raft: self.replicator.raft(),
            applier: self.replicator.applier(),
            log: self.log.stats(),
            peers: &self.peers,
            pending: self.replicator.pending_requests(),
            keys: self.idempotency.keys(),
            disk: self.replicator.disk(),
        }
    }
}
