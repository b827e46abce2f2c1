//! One gateway node: opens the log, starts the Raft thread, the peer transport, the applier
//! and the HTTP API, and holds what the request handlers share.

use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hybrid_log::HybridLog;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use snapshotless::{Applier, ApplierConfig, ApplierStatus, Influxd};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pending::Pending;
use crate::raft::members::AddressBook;
use crate::raft::node::{Node, NodeConfig};
use crate::raft::transport::Transport;
use crate::raft::{bootstrap, RaftHandle, RaftStatus};

/// Proposals, read-index requests and peer messages waiting for the Raft thread. Bounded so
/// that overload turns into prompt 503s, not unbounded memory.
const RAFT_INBOX: usize = 65_536;

pub type ProxyBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What every request handler shares.
pub struct Gateway {
    pub config: Config,
    pub auth: Auth,
    pub raft: RaftHandle,
    pub pending: Arc<Pending>,
    pub applier: watch::Receiver<ApplierStatus>,
    pub log: HybridLog,
    pub transport: Arc<Transport>,
    /// Client for passing reads through to the local influxd.
    pub proxy: Client<HttpConnector, ProxyBody>,
    pub metrics: Metrics,
}

impl Gateway {
    /// The version clients see: the local influxd's, as it reported it.
    pub fn influxd_version(&self) -> String {
        self.applier
            .borrow()
            .influxd_version
            .clone()
            .unwrap_or_else(|| "1.6.7".into())
    }
}

/// Starts the node and serves until the process is told to stop.
pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let log_dir = config.data_dir.join("raft-log");
    let log = HybridLog::open(&log_dir, config.memory_budget)?;
    let book = AddressBook::load(&log, &config.peers);
    if bootstrap::bootstrap_if_new(&log, &config.peers, config.join, &book)? {
        tracing::info!(members = ?config.peers, "new cluster: wrote the initial membership");
    }

    // Bind before starting anything, so a busy port is a prompt, clear failure.
    let api = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", config.listen))?;
    let peers = TcpListener::bind(config.peer_listen)
        .await
        .with_context(|| format!("cannot listen for peers on {}", config.peer_listen))?;

    let (inbox_tx, inbox_rx) = sync_channel(RAFT_INBOX);
    let advertise = config.peers[&config.id].clone();
    let transport = Transport::new(
        config.id,
        advertise,
        log.clone(),
        book.clone(),
        inbox_tx.clone(),
        tokio::runtime::Handle::current(),
    );
    tokio::spawn(transport.clone().serve(peers));

    let pending = Pending::new(config.id);
    let (commit_tx, commit_rx) = watch::channel(0);
    let (status_tx, status_rx) = watch::channel(RaftStatus::default());
    let node = Node::new(
        NodeConfig {
            id: config.id,
            tick: config.raft_tick,
            election_ticks: 10,
            heartbeat_ticks: 1,
        },
        log.clone(),
        book,
        transport.clone(),
        pending.clone(),
        commit_tx,
        status_tx,
    )
    .context("cannot start the Raft node")?;
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || node.run(inbox_rx))
        .context("cannot start the Raft thread")?;
    let raft = RaftHandle::new(inbox_tx, status_rx);

    let influxd = Influxd::new(
        &config.influxd_url,
        std::time::Duration::from_secs(30),
        config
            .influxd_credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str())),
    );
    let auth = Auth::new(config.auth_enabled, influxd.clone(), &config.influxd_url);
    let (applier, applier_status) = Applier::new(
        ApplierConfig {
            node_id: config.id,
            admin: config.influxd_credentials.clone(),
            ..ApplierConfig::default()
        },
        log.clone(),
        influxd,
        commit_rx,
        pending.clone(),
    );
    tokio::spawn(applier.run());

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let proxy = Client::builder(TokioExecutor::new()).build(connector);

    tracing::info!(
        id = config.id,
        api = %config.listen,
        peers = %config.peer_listen,
        influxd = %config.influxd_url,
        log = %log_dir.display(),
        "gateway started"
    );
    let gw = Arc::new(Gateway {
        config,
        auth,
        raft,
        pending,
        applier: applier_status,
        log,
        transport,
        proxy,
        metrics: Metrics::new(),
    });
    tokio::select! {
        _ = crate::http::serve(api, gw) => {}
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// SIGINT or SIGTERM. Nothing needs flushing: every acknowledged write is already synced in
/// the log, and the applier resumes from influxd's marker on the next start.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
