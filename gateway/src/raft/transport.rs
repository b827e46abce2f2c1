//! Peer transport: Raft messages between gateway nodes over long-lived TCP connections.
//!
//! Each peer gets two outbound lanes, each its own connection and bounded queue: `bulk` for
//! log replication (MsgAppend) and forwarded proposals, `control` for everything else
//! (heartbeats, votes, responses). A heartbeat therefore never waits behind megabytes of
//! entries, which would otherwise let a busy leader look dead and trigger needless elections.
//!
//! Queues are bounded and never block the Raft thread: when one is full the message is dropped
//! and Raft is told the peer is unreachable (it retries from its own state, as it would after
//! any network loss). A dead or slow peer only ever fills its own queues.
//!
//! Wire format: frames of a 4-byte big-endian length and a prost payload
//! (`LengthDelimitedCodec`). The first frame on a connection is a `Hello` (sender id, its peer
//! address, cluster id), then `Batch`es. A `Hello` may also open a side channel instead
//! (seed.rs: a copy of this node's influxd, or its size): the connection is checked like any
//! other, then handed over whole, and never carries Raft messages.
//!
//! Every connection is mutual TLS under the cluster CA unless peer links were explicitly made
//! plain text (tls.rs): the handshake comes first, and a connection that fails it, or whose
//! hello does not check out, is dropped before any message is read from it, and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use prost::Message as _;
use raft::prelude::{Message, MessageType};
use snapshotless::entry;
use tokio::io::{AsyncReadExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::bootstrap::ClusterId;
use super::handle::Input;
use super::members::AddressBook;
use super::packing::Packing;
use super::progress::Progress;
use crate::tls::{PeerSecurity, PeerStream};

const CONTROL_QUEUE: usize = 4096;
const BULK_QUEUE: usize = 32;
/// A batch is cut after this many bytes of messages (one message may exceed it alone).
const BATCH_BYTES: usize = 4 << 20;
/// Refuse frames larger than this.
const MAX_FRAME: usize = 512 << 20;
const MAX_HELLO: usize = 64 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long sent data may go unacknowledged before a peer connection is given up. Without it
/// a connection that went silent (a partition drops packets, it does not reset connections)
/// recovers only when the kernel next retransmits, and retransmissions back off to minutes:
/// a node would keep refusing writes long after the partition healed. Given up, the lane
/// redials, and the first attempt after the heal succeeds.
const UNACKED_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long a new connection has for its TLS handshake and its hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections not yet past their handshake and hello; more are dropped at once, so a flood
/// of them cannot take every file descriptor.
const MAX_UNPROVEN: usize = 256;

#[derive(Clone, PartialEq, prost::Message)]
struct Hello {
    #[prost(uint64, tag = "1")]
    from: u64,
    #[prost(string, tag = "2")]
    addr: String,
    #[prost(uint64, tag = "3")]
    cluster: u64,
    /// 0: Raft messages follow. Otherwise a [`SideChannel`] the connection is for.
    #[prost(uint32, tag = "4")]
    side: u32,
    /// What the side channel asks for: the log index a copy must cover.
    #[prost(uint64, tag = "5")]
    need: u64,
    /// Whether the sender reads packed entries (packing.rs); older builds send nothing: 0.
    #[prost(uint32, tag = "6")]
    reads: u32,
}

/// What a peer connection can be opened for besides Raft messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideChannel {
    /// A copy of this node's influxd covering at least the given index.
    Seed = 1,
    /// The size of this node's influxd: what a copy of it would move.
    Size = 2,
}

/// A side-channel connection from a peer, checked to belong to this cluster; the hello was
/// its only frame so far.
pub struct SideRequest {
    pub from: u64,
    pub kind: SideChannel,
    pub need: u64,
    pub stream: PeerStream,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Batch {
    #[prost(message, repeated, tag = "1")]
    msgs: Vec<Message>,
    /// The sender's durable marker when it sent the batch (see progress.rs). Nodes that do
    /// not send it are read as having applied nothing.
    #[prost(uint64, tag = "2")]
    applied: u64,
}

#[derive(Default)]
pub struct TransportStats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Connections dropped because they could not prove they belong to this cluster: a
    /// failed TLS handshake (no certificate, another CA, not TLS at all).
    pub rejected_tls: AtomicU64,
    /// ... or a missing, undecodable or foreign hello, or too many unproven at once.
    pub rejected_hello: AtomicU64,
    /// Messages not sent because they carry a packed entry and their peer has not said it
    /// reads those (an older build): it stays behind until it does.
    pub held_back: AtomicU64,
    unproven: AtomicUsize,
}

struct Lanes {
    addr: String,
    control: mpsc::Sender<Message>,
    bulk: mpsc::Sender<Message>,
    /// Wakes the lanes out of their reconnect backoff: the peer just connected to us, so it
    /// is back, and making it wait for our next attempt would delay its catch-up.
    peer_is_back: Arc<Notify>,
}

/// Who this node is to its peers: what every connection it opens says first.
pub struct Identity {
    pub id: u64,
    /// Its peer address, as the others reach it.
    pub advertise: String,
    pub cluster: ClusterId,
    /// How its connections are secured, both ways.
    pub security: Arc<PeerSecurity>,
}

pub struct Transport {
    me: Identity,
    book: AddressBook,
    progress: Progress,
    packing: Packing,
    inbox: SyncSender<Input>,
    lanes: Mutex<HashMap<u64, Lanes>>,
    runtime: tokio::runtime::Handle,
    side: mpsc::Sender<SideRequest>,
    pub stats: Arc<TransportStats>,
}

impl Transport {
    pub fn new(
        me: Identity,
        book: AddressBook,
        progress: Progress,
        packing: Packing,
        inbox: SyncSender<Input>,
        side: mpsc::Sender<SideRequest>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Transport> {
        Arc::new(Transport {
            me,
            book,
            progress,
            packing,
            inbox,
            lanes: Mutex::new(HashMap::new()),
            runtime,
            side,
            stats: Arc::default(),
        })
    }

    /// Opens a side channel to the peer at `addr`, as this node: the stream comes back with
    /// the hello sent, for the caller to speak the channel's protocol on.
    pub async fn open_side(
        &self,
        addr: &str,
        kind: SideChannel,
        need: u64,
    ) -> std::io::Result<PeerStream> {
        let tcp = dial(addr, self.local_ip()).await?;
        let stream = self.me.security.connect(tcp, addr).await?;
        let mut out = FramedWrite::new(stream, codec());
        let hello = Hello {
            side: kind as u32,
            need,
            ..self.hello()
        };
        out.send(frame(&hello)).await?;
        Ok(out.into_inner())
    }

    /// Starts the lanes to every peer in the address book, each of which says hello at once.
    /// Lanes otherwise start with the first message to their peer, and a restarted follower
    /// has none to send until the leader reaches it: meanwhile the leader's lanes to it may
    /// sleep in their reconnect backoff, which only a connection from it cuts short.
    pub fn greet(&self) {
        let mut lanes = self.lanes.lock();
        for id in self.book.all().into_keys().filter(|&id| id != self.me.id) {
            self.lanes_for(&mut lanes, id);
        }
    }

    /// Queues messages for their peers without blocking. Returns the peers that could not
    /// take a message, for `RawNode::report_unreachable`.
    pub fn send(&self, msgs: Vec<Message>) -> Vec<u64> {
        let mut unreachable = Vec::new();
        let mut lanes = self.lanes.lock();
        for m in msgs {
            let to = m.to;
            let Some(peer) = self.lanes_for(&mut lanes, to) else {
                self.stats.dropped.fetch_add(1, Relaxed);
                unreachable.push(to);
                continue;
            };
            let lane = match m.msg_type() {
                MessageType::MsgAppend | MessageType::MsgPropose | MessageType::MsgSnapshot => {
                    &peer.bulk
                }
                _ => &peer.control,
            };
            if !self.packing.reads(to) {
                if let Some(e) = m.entries.iter().find(|e| entry::is_packed(&e.data)) {
                    self.stats.held_back.fetch_add(1, Relaxed);
                    if self.packing.held_back(to) {
                        tracing::warn!(
                            peer = to,
                            index = e.index,
                            "holding back the log from this peer: it has not said it reads                              packed entries (an older build?); it stays behind until it runs                              this build or a later one"
                        );
                    }
                    unreachable.push(to);
                    continue;
                }
            }
            match lane.try_send(m) {
                Ok(()) => {}
                Err(_) => {
                    self.stats.dropped.fetch_add(1, Relaxed);
                    unreachable.push(to);
                }
            }
        }
        unreachable.sort_unstable();
        unreachable.dedup();
        unreachable
    }

    /// The lanes to `to`, started on first use and restarted if its address changed.
    fn lanes_for<'a>(&self, lanes: &'a mut HashMap<u64, Lanes>, to: u64) -> Option<&'a Lanes> {
        let addr = self.book.get(to)?;
        let stale = lanes.get(&to).is_some_and(|l| l.addr != addr);
        if stale {
            // Dropping the senders ends the old lane tasks.
            lanes.remove(&to);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = lanes.entry(to) {
            let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
            let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE);
            let peer_is_back = Arc::new(Notify::new());
            for (name, rx) in [("control", control_rx), ("bulk", bulk_rx)] {
                let lane = Lane {
                    name,
                    to,
                    addr: addr.clone(),
                    local_ip: self.local_ip(),
                    hello: self.hello(),
                    security: self.me.security.clone(),
                    inbox: self.inbox.clone(),
                    stats: self.stats.clone(),
                    progress: self.progress.clone(),
                    peer_is_back: peer_is_back.clone(),
                };
                self.runtime.spawn(lane.run(rx));
            }
            slot.insert(Lanes {
                addr,
                control,
                bulk,
                peer_is_back,
            });
        }
        lanes.get(&to)
    }

    /// Stops talking to a removed member.
    pub fn forget(&self, id: u64) {
        self.lanes.lock().remove(&id);
        self.progress.forget(id);
    }

    fn local_ip(&self) -> Option<std::net::IpAddr> {
        self.me
            .advertise
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
    }

    fn hello(&self) -> Hello {
        Hello {
            from: self.me.id,
            addr: self.me.advertise.clone(),
            cluster: self.me.cluster.get(),
            side: 0,
            need: 0,
            reads: self.packing.says(),
        }
    }

    /// Accepts peer connections until the process ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    if self.stats.unproven.fetch_add(1, Relaxed) >= MAX_UNPROVEN {
                        self.stats.unproven.fetch_sub(1, Relaxed);
                        self.stats.rejected_hello.fetch_add(1, Relaxed);
                        tracing::debug!(%remote, "peer connection dropped: too many unproven");
                        continue;
                    }
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.receive(stream, remote).await {
                            tracing::debug!(%remote, error = %e, "peer connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a peer connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn receive(
        &self,
        stream: TcpStream,
        remote: std::net::SocketAddr,
    ) -> std::io::Result<()> {
        let proven = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.prove(stream, remote)).await;
        self.stats.unproven.fetch_sub(1, Relaxed);
        let (hello, mut frames) = match proven {
            Ok(Ok(proven)) => proven,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                self.stats.rejected_hello.fetch_add(1, Relaxed);
                tracing::warn!(%remote, "refused a peer connection: no handshake and hello within {HANDSHAKE_TIMEOUT:?}");
                return Err(invalid("no handshake and hello in time"));
            }
        };
        if hello.side != 0 {
            let kind = match hello.side {
                1 => SideChannel::Seed,
                2 => SideChannel::Size,
                other => return Err(invalid(format!("unknown side channel {other}"))),
            };
            // Nothing was sent after the hello: the peer waits for an answer.
            if !frames.read_buffer().is_empty() {
                return Err(invalid("data after a side-channel hello"));
            }
            let request = SideRequest {
                from: hello.from,
                kind,
                need: hello.need,
                stream: frames.into_inner(),
            };
            if self.side.try_send(request).is_err() {
                tracing::debug!(peer = hello.from, ?kind, "side channel refused: busy");
            }
            return Ok(());
        }
        // A joining node learns where to answer from whoever contacts it first.
        if self.book.get(hello.from).is_none() && !hello.addr.is_empty() {
            tracing::info!(peer = hello.from, addr = %hello.addr, "learned a peer address");
            self.book.set(hello.from, &hello.addr);
        }
        if let Some(lanes) = self.lanes.lock().get(&hello.from) {
            lanes.peer_is_back.notify_waiters();
        }
        let _open = self.packing.connected(hello.from, hello.reads);
        loop {
            let batch: Batch = read_frame(&mut frames).await?;
            self.progress.record(hello.from, batch.applied);
            for m in batch.msgs {
                if m.to != self.me.id {
                    continue;
                }
                self.stats.received.fetch_add(1, Relaxed);
                match self.inbox.try_send(Input::Peer(Box::new(m))) {
                    Ok(()) => {}
                    // Raft recovers from lost messages; a full inbox means we are behind.
                    Err(TrySendError::Full(_)) => {
                        self.stats.dropped.fetch_add(1, Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => return Ok(()),
                }
            }
        }
    }

    /// The TLS handshake (the peer's certificate is checked against the cluster CA) and the
    /// hello (it must be of this cluster): what a connection must get through before any
    /// message on it is read.
    async fn prove(
        &self,
        stream: TcpStream,
        remote: std::net::SocketAddr,
    ) -> std::io::Result<(Hello, FramedRead<PeerStream, LengthDelimitedCodec>)> {
        tune(&stream)?;
        let stream = self.me.security.accept(stream).await.inspect_err(|e| {
            self.stats.rejected_tls.fetch_add(1, Relaxed);
            tracing::warn!(%remote, error = %e, "refused a peer connection: TLS handshake failed");
        })?;
        // Until the hello checks out, a frame's length is not trusted with a large buffer.
        let mut frames = FramedRead::with_capacity(stream, codec_of(MAX_HELLO), 256 << 10);
        let hello = read_frame::<Hello>(&mut frames)
            .await
            .and_then(|hello| self.check_cluster(&hello).map(|()| hello))
            .inspect_err(|e| {
                self.stats.rejected_hello.fetch_add(1, Relaxed);
                tracing::warn!(%remote, error = %e, "refused a peer connection: bad hello");
            })?;
        frames.decoder_mut().set_max_frame_length(MAX_FRAME);
        Ok((hello, frames))
    }

    /// Nodes bootstrapped from different member lists have different first entries; letting
    /// them exchange messages would corrupt both logs, so they refuse each other loudly.
    fn check_cluster(&self, hello: &Hello) -> std::io::Result<()> {
        if self
            .me
            .cluster
            .admit(hello.cluster)
            .map_err(std::io::Error::other)?
        {
            return Ok(());
        }
        tracing::error!(
            peer = hello.from,
            addr = %hello.addr,
            "refusing a peer from another cluster (its member list at bootstrap differs from ours); \
             check that every node was started with the same --peer list"
        );
        Err(invalid("peer belongs to another cluster"))
    }
}

struct Lane {
    name: &'static str,
    to: u64,
    addr: String,
    /// This node's own peer IP, when its advertised address is an IP (not a name, not a
    /// wildcard).
    local_ip: Option<std::net::IpAddr>,
    hello: Hello,
    security: Arc<PeerSecurity>,
    inbox: SyncSender<Input>,
    stats: Arc<TransportStats>,
    progress: Progress,
    peer_is_back: Arc<Notify>,
}

/// The two halves of a lane's connection: frames go out on one; the other only tells when the
/// connection died (the peer never sends anything on it).
struct Connection {
    out: FramedWrite<WriteHalf<PeerStream>, LengthDelimitedCodec>,
    watch: ReadHalf<PeerStream>,
}

impl Lane {
    /// Connects, sends batches, reconnects with backoff. Ends when the transport drops
    /// the queue's sender (peer removed or moved).
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let mut backoff = Duration::from_millis(20);
        // A batch whose write failed gets one more chance, on the next connection: it may be a
        // forwarded proposal, which Raft does not resend, and losing it would leave its client
        // waiting for the write timeout. (Raft ignores a message it receives twice, and a
        // proposal that lands twice writes the same points twice.)
        //
        // The first batch is empty and goes out at once: a node that just started makes
        // itself known to every peer (`Transport::greet`), which wakes their lanes to it out of any reconnect
        // backoff (see `peer_is_back`). Otherwise a restarted node waits for the leader's next
        // attempt, up to MAX_BACKOFF, before its catch-up can begin. A lane whose connection
        // was lost, or could not be made, redials with an empty batch too, until it is
        // connected again: a restarted peer learns from the hello what this node reads
        // (packing.rs), and a follower has nothing else to send another follower.
        let mut retry: Option<Batch> = Some(Batch::default());
        loop {
            let batch = match retry.take() {
                Some(b) => b,
                None => match rx.recv().await {
                    Some(first) => gather(first, &mut rx),
                    None => return,
                },
            };
            // Registered before the attempt, so that a peer coming back while it fails still
            // cuts the backoff short (`notify_waiters` wakes only futures that exist).
            let peer_is_back = self.peer_is_back.notified();
            let conn = match self.connect().await {
                Ok(c) => {
                    self.stats.connects.fetch_add(1, Relaxed);
                    backoff = Duration::from_millis(20);
                    c
                }
                Err(e) => {
                    self.stats.connect_failures.fetch_add(1, Relaxed);
                    tracing::debug!(peer = self.to, lane = self.name, addr = %self.addr, error = %e, "cannot connect to peer");
                    // What queued up while the peer was away is stale by now; Raft resends
                    // from its own state once the peer answers again.
                    loop {
                        match rx.try_recv() {
                            Ok(_) => {}
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => return,
                        }
                    }
                    let _ = self.inbox.try_send(Input::Unreachable(self.to));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = peer_is_back => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    retry = Some(Batch::default());
                    continue;
                }
            };
            match self.pump(conn, batch, &mut rx).await {
                Ok(()) => return,
                Err((e, unsent)) => {
                    tracing::debug!(peer = self.to, lane = self.name, error = %e, "peer connection lost");
                    let _ = self.inbox.try_send(Input::Unreachable(self.to));
                    retry = Some(unsent.unwrap_or_default());
                }
            }
        }
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let tcp = dial(&self.addr, self.local_ip).await?;
        let stream =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, self.security.connect(tcp, &self.addr))
                .await
                .map_err(|_| invalid("TLS handshake timed out"))??;
        let (watch, out) = tokio::io::split(stream);
        let mut out = FramedWrite::new(out, codec());
        out.send(frame(&self.hello)).await?;
        Ok(Connection { out, watch })
    }

    /// Sends `batch`, then whatever comes, until the queue closes (Ok) or the connection
    /// fails (Err, with the batch that could not be written, if one was being written). An
    /// idle connection is watched too, so a dead one is dropped before the next message is
    /// lost on it.
    async fn pump(
        &self,
        mut conn: Connection,
        mut batch: Batch,
        rx: &mut mpsc::Receiver<Message>,
    ) -> Result<(), (std::io::Error, Option<Batch>)> {
        let mut probe = [0u8; 64];
        loop {
            batch.applied = self.progress.own();
            if let Err(e) = conn.out.send(frame(&batch)).await {
                return Err((e, Some(batch)));
            }
            self.stats.sent.fetch_add(batch.msgs.len() as u64, Relaxed);
            let next = tokio::select! {
                m = rx.recv() => m,
                r = conn.watch.read(&mut probe) => {
                    let e = match r {
                        Ok(_) => invalid("the peer closed the connection"),
                        Err(e) => e,
                    };
                    return Err((e, None));
                }
            };
            match next {
                Some(m) => batch = gather(m, rx),
                None => return Ok(()),
            }
        }
    }
}

/// A tuned connection to `addr`, from `local_ip` if given.
async fn dial(addr: &str, local_ip: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let dial = async {
        let remote = tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| invalid(format!("{addr} resolves to nothing")))?;
        let socket = match remote {
            std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // Connections come from this node's own peer address, so that peers (and
        // firewalls) see node-to-node traffic as coming from the node it belongs to.
        if let Some(ip) = local_ip.filter(|ip| ip.is_ipv4() == remote.is_ipv4()) {
            socket.bind(std::net::SocketAddr::new(ip, 0))?;
        }
        socket.connect(remote).await
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, dial)
        .await
        .map_err(|_| invalid("connect timed out"))??;
    tune(&stream)?;
    Ok(stream)
}

/// `first` and whatever else is queued, up to about [`BATCH_BYTES`].
fn gather(first: Message, rx: &mut mpsc::Receiver<Message>) -> Batch {
    let mut bytes = first.encoded_len();
    let mut batch = Batch {
        msgs: vec![first],
        applied: 0,
    };
    while bytes < BATCH_BYTES {
        match rx.try_recv() {
            Ok(m) => {
                bytes += m.encoded_len();
                batch.msgs.push(m);
            }
            Err(_) => break,
        }
    }
    batch
}

/// No Nagle delay (heartbeats are tiny and urgent), a bound on unacknowledged data, and
/// keepalives so that a receiving side whose peer vanished during a partition notices too.
fn tune(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    sock.set_tcp_user_timeout(Some(UNACKED_TIMEOUT))?;
    sock.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(2))
            .with_interval(Duration::from_secs(1))
            .with_retries(3),
    )
}

/// Frames of a 4-byte big-endian length and a payload; a corrupt length must not make us
/// allocate gigabytes.
fn codec() -> LengthDelimitedCodec {
    codec_of(MAX_FRAME)
}

fn codec_of(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max_frame)
        .new_codec()
}

fn frame<M: prost::Message>(m: &M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

async fn read_frame<M: prost::Message + Default>(
    frames: &mut FramedRead<PeerStream, LengthDelimitedCodec>,
) -> std::io::Result<M> {
    let bytes = frames
        .next()
        .await
        .ok_or_else(|| invalid("the peer closed the connection"))??;
    M::decode(bytes.freeze()).map_err(|e| invalid(format!("undecodable frame: {e}")))
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hybrid_log::HybridLog;

    use super::super::packing;
    use super::*;

    /// Node 1 with peers 2 and 3 listening on `peers`, packing on, its log in `dir`.
    fn node_one(dir: &std::path::Path, peers: &[TcpListener]) -> (Arc<Transport>, Packing) {
        let log = HybridLog::open(dir, 1 << 20).unwrap();
        let addrs: BTreeMap<u64, String> = [(1, "127.0.0.1:1".to_owned())]
            .into_iter()
            .chain(
                peers
                    .iter()
                    .zip(2..)
                    .map(|(l, id)| (id, l.local_addr().unwrap().to_string())),
            )
            .collect();
        let book = AddressBook::load(&log, &addrs);
        let (inbox, inbox_rx) = std::sync::mpsc::sync_channel(16);
        // Lanes report through the inbox; nothing reads it here.
        std::mem::forget(inbox_rx);
        let (side, side_rx) = mpsc::channel(1);
        std::mem::forget(side_rx);
        let me = Identity {
            id: 1,
            advertise: "127.0.0.1:1".to_owned(),
            cluster: ClusterId::load(&log),
            security: Arc::new(PeerSecurity::Plaintext),
        };
        let packing = Packing::new(1, true, book.clone());
        let transport = Transport::new(
            me,
            book,
            Progress::default(),
            packing.clone(),
            inbox,
            side,
            tokio::runtime::Handle::current(),
        );
        (transport, packing)
    }

    async fn listeners(n: usize) -> Vec<TcpListener> {
        let mut peers = Vec::new();
        for _ in 0..n {
            peers.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        peers
    }

    /// A node that just started has no message for anyone until the leader reaches it, but
    /// its lanes open at once and say hello: that is what wakes the leader's lanes to it out
    /// of their reconnect backoff.
    #[tokio::test]
    async fn greet_says_hello_to_every_peer_before_any_message() {
        let dir = tempfile::tempdir().unwrap();
        let peers = listeners(2).await;
        let (transport, _) = node_one(dir.path(), &peers);
        transport.greet();
        for listener in &peers {
            // Both lanes, control and bulk, connect and send their hello, then an empty batch.
            for _ in 0..2 {
                let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
                    .await
                    .expect("no connection from a greeting node within 10 s")
                    .unwrap();
                let mut frames = FramedRead::new(Box::new(tcp) as PeerStream, codec());
                let hello: Hello = read_frame(&mut frames).await.unwrap();
                assert_eq!((hello.from, hello.side), (1, 0));
                assert_eq!(hello.reads, packing::READS_PACKED);
                let batch: Batch = read_frame(&mut frames).await.unwrap();
                assert!(batch.msgs.is_empty(), "{:?}", batch.msgs);
            }
        }
    }

    /// A lane whose connection is lost redials and says hello again with nothing to send:
    /// how a restarted peer hears from a follower, which has no message for it, what this
    /// node reads.
    #[tokio::test]
    async fn a_lost_connection_is_redialled_with_a_hello_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let peers = listeners(1).await;
        let (transport, _) = node_one(dir.path(), &peers);
        transport.greet();
        for round in 0..3 {
            for _ in 0..2 {
                let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), peers[0].accept())
                    .await
                    .unwrap_or_else(|_| panic!("no connection within 10 s (round {round})"))
                    .unwrap();
                let mut frames = FramedRead::new(Box::new(tcp) as PeerStream, codec());
                let hello: Hello = read_frame(&mut frames).await.unwrap();
                assert_eq!(hello.from, 1);
                let batch: Batch = read_frame(&mut frames).await.unwrap();
                assert!(batch.msgs.is_empty(), "{:?}", batch.msgs);
                // Dropped here: the peer "restarts".
            }
        }
    }

    /// An append that carries a packed entry is held back from a peer that has not said it
    /// reads them, and reported unreachable (Raft tries again later); anything else goes.
    #[tokio::test]
    async fn a_packed_entry_is_held_back_from_a_peer_that_does_not_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let peers = listeners(2).await;
        let (transport, packing) = node_one(dir.path(), &peers);
        let lines = "cpu,host=a usage=1 1\n".repeat(2_000);
        let command = snapshotless::Command::write("db", "", lines.into()).encode();
        let packed = entry::pack(&command).unwrap();
        let append = |to: u64, data: Vec<u8>| Message {
            msg_type: MessageType::MsgAppend.into(),
            to,
            from: 1,
            entries: vec![raft::prelude::Entry {
                index: 7,
                data,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(transport.send(vec![append(2, packed.clone())]), vec![2]);
        assert_eq!(transport.stats.held_back.load(Relaxed), 1);
        assert_eq!(
            transport.send(vec![append(2, command.clone())]),
            Vec::<u64>::new()
        );
        let _open = packing.connected(2, packing::READS_PACKED);
        let old = packing.connected(3, 0);
        assert_eq!(
            transport.send(vec![append(2, packed.clone()), append(3, packed.clone())]),
            vec![3]
        );
        drop(old);
        assert_eq!(transport.stats.held_back.load(Relaxed), 2);
    }
}
