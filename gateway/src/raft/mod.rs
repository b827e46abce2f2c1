//! The Raft node: one thread runs raft-rs's `RawNode` over the hybrid log (node.rs), peers
//! exchange messages over long-lived TCP connections (transport.rs), and a new cluster's
//! first entries name its members (bootstrap.rs), and each member's peer address is kept in
//! the address book (members.rs). The rest of the gateway starts it with [`start`] and talks
//! to it through a [`RaftHandle`].

pub mod bootstrap;
mod handle;
pub mod members;
pub mod node;
pub mod packing;
pub mod progress;
pub mod transport;
pub mod trim;

use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use hybrid_log::HybridLog;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::log_disk::LogDisk;
use crate::pending::Pending;
use crate::tls::PeerSecurity;
use bootstrap::ClusterId;
pub use handle::{
    Input, LeaderChange, MemberStatus, ProposeError, RaftHandle, RaftStatus, Refused, Role,
    LEADER_CHANGES_KEPT,
};
use members::AddressBook;
use node::{Node, NodeConfig, Wiring};
use packing::Packing;
use progress::Progress;
use transport::{Identity, SideRequest, Transport, TransportStats};
pub use trim::TrimPolicy;

/// Proposals, read-index requests and peer messages waiting for the Raft thread. Bounded so
/// that overload turns into prompt 503s, not unbounded memory.
const INBOX: usize = 65_536;
/// Side channels waiting to be answered; more are refused.
const SIDE_QUEUE: usize = 16;

/// A running Raft node, as the rest of the gateway sees it.
pub struct Started {
    pub handle: RaftHandle,
    /// How far the committed, locally durable log reaches: what the applier may apply.
    pub commits: watch::Receiver<u64>,
    pub peers: Arc<TransportStats>,
    pub transport: Arc<Transport>,
    pub book: AddressBook,
    /// Whether what this node proposes is packed now.
    pub packing: Packing,
    /// Side channels peers opened (seeding); whoever serves them takes this.
    pub side: mpsc::Receiver<SideRequest>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot write the initial membership: {0}")]
    Bootstrap(#[from] hybrid_log::LogError),
    #[error("cannot start the Raft node: {0}")]
    Node(#[from] raft::Error),
    #[error("cannot start the Raft thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Bootstraps a new cluster's log if needed, then starts the peer transport on `peers` and
/// the Raft thread. Must run inside the tokio runtime (the transport's tasks live there).
pub fn start(
    config: &Config,
    log: &HybridLog,
    pending: Arc<Pending>,
    progress: Progress,
    disk: LogDisk,
    peers: TcpListener,
    security: Arc<PeerSecurity>,
) -> Result<Started, StartError> {
    let members = config.members();
    let book = AddressBook::load(log, &members);
    if bootstrap::bootstrap_if_new(log, &members, config.join, &book)? {
        tracing::info!(members = ?members, "new cluster: wrote the initial membership");
    }
    let (inbox_tx, inbox_rx) = sync_channel(INBOX);
    let me = Identity {
        id: config.node_id(),
        advertise: config.advertise(),
        cluster: ClusterId::load(log),
        security,
    };
    let (side_tx, side) = mpsc::channel(SIDE_QUEUE);
    if config.pack_entries && !log.can_fence() {
        // Without the fence an older build put back on this directory would skip packed
        // entries; so the node says it does not read them, and nobody packs.
        tracing::warn!(
            log = %log.path().display(),
            "this log is in the first format, which cannot be marked against older versions: this node does not read packed entries, so no member packs writes while it is one (replace the node under a new id to start packing)"
        );
    }
    let packing = Packing::new(
        config.node_id(),
        config.pack_entries && log.can_fence(),
        book.clone(),
    );
    let transport = Transport::new(
        me,
        book.clone(),
        progress.clone(),
        packing.clone(),
        inbox_tx.clone(),
        side_tx,
        tokio::runtime::Handle::current(),
    );
    tokio::spawn(transport.clone().serve(peers));
    transport.greet();

    let (commit_tx, commits) = watch::channel(0);
    let (status_tx, status_rx) = watch::channel(RaftStatus::default());
    let node_config = NodeConfig {
        id: config.node_id(),
        tick: config.raft_tick,
        election_ticks: 10,
        heartbeat_ticks: 1,
        trim: config.trim_policy(),
    };
    let stats = transport.stats.clone();
    let wiring = Wiring {
        book: book.clone(),
        transport: transport.clone(),
        pending,
        progress,
        disk,
        commit_tx,
        status_tx,
    };
    let node = Node::new(node_config, log.clone(), wiring)?;
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || node.run(inbox_rx))?;
    Ok(Started {
        handle: RaftHandle::new(inbox_tx, status_rx),
        commits,
        peers: stats,
        transport,
        book,
        packing,
        side,
    })
}
