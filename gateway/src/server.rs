//! Start-up: opens the log, starts the Raft node, the applier and the API, and serves until
//! the process is told to stop. The wiring, in data-path order, fits on this screen.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hybrid_log::HybridLog;
use snapshotless::{Applier, ApplierConfig, Influxd, KeyTable};
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::config::Config;
use crate::idempotency::Idempotency;
use crate::log_disk::LogDisk;
use crate::metrics::Metrics;
use crate::passwords::PasswordBook;
use crate::pending::Pending;
use crate::raft::progress::Progress;
use crate::replicate::Replicator;
use crate::seed::{SeedParts, Seeds};
use crate::state::{AppState, Limits, LocalInfluxd, NodeView};
use crate::tls::{ApiTls, PeerSecurity, PeerTls};
use crate::{http, raft, readiness, tls, udp};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] hybrid_log::LogError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Raft(#[from] raft::StartError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Udp(#[from] udp::UdpError),
}

pub async fn run(config: Config) -> Result<(), StartError> {
    // Certificates first: a bad file is named before anything is created or listens.
    let api_tls = config.api_tls().map(ApiTls::load).transpose()?;
    let peer_tls = config.peer_tls().map(PeerTls::load).transpose()?;
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let open_files = raise_open_files_limit();
    if open_files.is_some_and(|n| n < config.max_connections as u64 + FDS_BESIDES_API) {
        tracing::warn!(
            open_files,
            max_connections = config.max_connections,
            "the open-files limit binds before max_connections: past it, connections are not \
             accepted and the log may fail to open files; raise the hard limit (ulimit -Hn, \
             LimitNOFILE=) or lower max_connections"
        );
    }
    let log = HybridLog::open(data_dir.join("raft-log"), config.memory_budget())?;
    // Before Raft can append anything: a table the log never stored is told apart as a new
    // log's or an older version's by whether the log is empty.
    let keys = Arc::new(KeyTable::open(&log)?);
    let disk = LogDisk::new(log.path().to_path_buf(), config.log_disk_reserve.as_u64());
    let security = Arc::new(match &peer_tls {
        Some(tls) => PeerSecurity::Tls(tls.clone()),
        None => {
            tracing::warn!(
                "peer links are plain text (peer_plaintext): they are neither \
                authenticated nor encrypted, and anyone who reaches the peer port can write"
            );
            PeerSecurity::Plaintext
        }
    });
    tokio::spawn(tls::reload_on_sighup(api_tls.clone(), peer_tls));
    // Bind before starting anything, so a busy port is a prompt, clear failure.
    let api = bind("the API", config.listen).await?;
    let peers = bind("peers", config.peer_listen()).await?;
    let udp = config.udp().map(udp::bind).transpose()?;

    let pending = Pending::new(config.node_id());
    let progress = Progress::default();
    let raft = raft::start(
        &config,
        &log,
        pending.clone(),
        progress.clone(),
        disk.clone(),
        peers,
        security,
    )?;

    let admin = config.influxd_credentials();
    let admin_ref = admin.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let influxd = Influxd::new(&config.influxd_url, Duration::from_secs(30), admin_ref);
    let auth = Auth::new(config.auth_enabled, influxd.clone(), &config.influxd_url);
    let applier_config = ApplierConfig {
        node_id: config.node_id(),
        admin,
        ..ApplierConfig::default()
    };
    let passwords = Arc::new(PasswordBook::load(&log));
    let seeds = Seeds::new(
        &config,
        SeedParts {
            log: log.clone(),
            book: raft.book,
            raft: raft.handle.clone(),
            transport: raft.transport,
            progress: progress.clone(),
            influxd: influxd.clone(),
            passwords: passwords.clone(),
            keys: keys.clone(),
        },
    );
    let (applier, applied) = Applier::new(
        applier_config,
        log.clone(),
        influxd,
        raft.commits,
        pending.clone(),
    );
    let applier = applier
        .with_seeder(seeds.clone())
        .with_applied_queries(passwords)
        .with_keys(keys.clone());
    tokio::spawn(applier.run());
    tokio::spawn(seeds.serve(raft.side, applied.clone()));
    tokio::spawn(progress.follow(applied.clone()));

    // Elections time out after 10 to 20 ticks: a request waits out the longest.
    let leader_wait = config.raft_tick * 20;
    let replicator = Replicator::new(
        raft.handle,
        pending,
        applied,
        disk,
        config.write_timeout,
        leader_wait,
    )
    .with_packing(raft.packing);
    let metrics = Arc::new(Metrics::new());
    if let Some(udp) = udp {
        tokio::spawn(udp.run(replicator.clone(), metrics.udp.clone()));
    }
    let state = AppState {
        replicator: replicator.clone(),
        auth: Arc::new(auth),
        influxd: LocalInfluxd::new(&config.influxd_url),
        node: NodeView {
            id: config.node_id(),
            replicator,
            log: log.clone(),
            memory_budget: config.memory_budget(),
            peers: raft.peers,
            metrics: metrics.clone(),
            idempotency: Idempotency::new(
                keys,
                config.idempotency_window,
                config.idempotency_max_keys,
            ),
        },
        limits: Limits {
            max_body_size: config.max_body_size(),
            body_read_timeout: config.body_read_timeout,
        },
        admin_api: Arc::new(config.admin_api.clone()),
    };
    let served = http::Served {
        router: http::router(state),
        limits: config.connection_limits(),
        metrics,
        tls: api_tls,
    };
    tracing::info!(id = config.node_id(), api = %config.listen, peers = %config.peer_listen(),
        udp = ?config.udp_bind, influxd = %config.influxd_url, log = %log.path().display(),
        max_connections = config.max_connections, open_files, "gateway started");
    readiness::ready();
    tokio::select! {
        _ = http::serve(api, served) => {}
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            readiness::stopping();
        }
    }
    Ok(())
}

/// File descriptors the node needs besides its API connections: the log's RocksDB files,
/// peer links, connections to influxd, seeds.
const FDS_BESIDES_API: u64 = 1024;

/// Raises the soft limit on open files to the hard limit, so that `max_connections` rather
/// than a distribution's default soft limit (often 1024) is what bounds API connections.
/// Returns the limit now in force, if it could be read.
fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-files limit");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Some(hard),
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
            Some(soft)
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
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
