//! The UDP line protocol listener, influxd's `[[udp]]` service: what Telegraf's `udp://`
//! output and the Python client's UDP mode send. Datagrams are parsed by ingest and gathered
//! into batches, and each batch goes through the log like an HTTP write.
//!
//! Nothing is ever answered, so whatever is lost is counted instead (`gateway_udp_*` in
//! /metrics). As influxd does, a datagram with any line that does not parse is dropped whole,
//! and a batch is acknowledged to no one: it counts as written once committed on a quorum
//! (influxd's UDP service writes with consistency `any`), so UDP keeps being taken while the
//! local influxd is down.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use snapshotless::command::Query;
use snapshotless::Command;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, OnceCell};
use tokio::time::{sleep_until, Instant};

use crate::ingest::{ingest, now_ns, Precision};
use crate::metrics::UdpMetrics;
use crate::raft::ProposeError;
use crate::replicate::{ReplicateError, Replicator, Unavailable, Wait};

/// The largest datagram read whole: every UDP payload over IPv4 or IPv6 (without jumbograms)
/// fits, so no datagram is ever cut (influxd's `MaxUDPPayload`).
const MAX_DATAGRAM: usize = 64 * 1024;

/// The listener's settings (`udp_*` in config.rs).
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database: String,
    /// Empty: the database's default retention policy.
    pub retention_policy: String,
    pub precision: Precision,
    /// Points that make a batch full.
    pub batch_size: usize,
    /// Bytes of line protocol that make a batch full too: no entry is larger than the
    /// largest HTTP write (`max_body_size`).
    pub batch_max_bytes: usize,
    pub batch_timeout: std::time::Duration,
    /// Full batches that may wait for the log at once.
    pub batch_pending: usize,
    /// SO_RCVBUF asked for; 0 leaves the kernel's default.
    pub read_buffer: usize,
    /// Whether the API requires credentials: datagrams carry none, which is said at start.
    pub auth_enabled: bool,
}

/// A bound UDP socket, not yet read from.
pub struct Listener {
    socket: UdpSocket,
    settings: Settings,
    /// The receive buffer the kernel granted (Linux reports twice what it was asked, capped
    /// at twice `net.core.rmem_max`, the doubling being its own bookkeeping).
    receive_buffer: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    #[error("cannot listen for UDP line protocol on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot set the UDP receive buffer on {addr} to {asked} bytes: {source}")]
    ReceiveBuffer {
        addr: SocketAddr,
        asked: usize,
        source: io::Error,
    },
}

/// Binds the socket, sets its receive buffer and asks the kernel to report the datagrams it
/// drops for want of room in that buffer. Must run inside the tokio runtime.
pub fn bind(settings: Settings) -> Result<Listener, UdpError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = settings.bind;
    let bind_err = |source| UdpError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_err)?;
    if settings.read_buffer > 0 {
        socket
            .set_recv_buffer_size(settings.read_buffer)
            .map_err(|source| UdpError::ReceiveBuffer {
                addr,
                asked: settings.read_buffer,
                source,
            })?;
    }
    let receive_buffer = socket.recv_buffer_size().map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    socket::setsockopt(socket.as_raw_fd(), sockopt::RxqOvfl, &1).map_err(|e| bind_err(e.into()))?;
    let socket = UdpSocket::from_std(socket.into()).map_err(bind_err)?;
    Ok(Listener {
        socket,
        settings,
        receive_buffer,
    })
}

/// Line protocol gathered from whole datagrams, waiting to be proposed.
struct Batch {
    lines: Vec<u8>,
    points: usize,
    datagrams: u64,
    /// When its first point arrived: it is proposed `batch_timeout` after.
    started: Instant,
}

/// Why a batch was proposed.
#[derive(Clone, Copy)]
pub enum Flush {
    Size,
    Timeout,
}

impl Listener {
    /// Reads datagrams until the process stops; a task writes the batches to the log.
    pub async fn run(self, replicator: Replicator, metrics: Arc<UdpMetrics>) {
        self.announce(&metrics);
        let s = self.settings;
        let (queue, batches) = mpsc::channel(s.batch_pending);
        let target = Target {
            database: s.database.clone(),
            retention_policy: s.retention_policy.clone(),
            created: OnceCell::new(),
        };
        tokio::spawn(write_batches(batches, target, replicator, metrics.clone()));

        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut cmsg = nix::cmsg_space!(u32);
        let mut kernel_drops = 0u32;
        let mut batch: Option<Batch> = None;
        loop {
            let due = batch.as_ref().map(|b| b.started + s.batch_timeout);
            let received = tokio::select! {
                r = receive(&self.socket, &mut buf, &mut cmsg) => r,
                _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    flush(&queue, batch.take(), Flush::Timeout, &metrics);
                    continue;
                }
            };
            let (len, drops) = match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a UDP datagram failed");
                    metrics.dropped("read_error", 1);
                    continue;
                }
            };
            if let Some(total) = drops {
                // The kernel's count since the socket was made, carried on each datagram.
                metrics.dropped(
                    "receive_buffer_full",
                    u64::from(total.wrapping_sub(kernel_drops)),
                );
                kernel_drops = total;
            }
            if add(&mut batch, &buf[..len], &s, &metrics) {
                flush(&queue, batch.take(), Flush::Size, &metrics);
            }
        }
    }

    /// Says at start what was granted and what UDP cannot do.
    fn announce(&self, metrics: &UdpMetrics) {
        let s = &self.settings;
        if s.read_buffer > 0 && self.receive_buffer < s.read_buffer.saturating_mul(2) {
            tracing::warn!(
                asked = s.read_buffer,
                granted = self.receive_buffer,
                "the kernel granted less UDP receive buffer than asked (it is capped by \
                 net.core.rmem_max; Linux reports twice the usable size): bursts that \
                 overflow it are dropped by the kernel and counted in \
                 gateway_udp_dropped_total{{reason=\"receive_buffer_full\"}}"
            );
        }
        if s.auth_enabled {
            tracing::warn!(
                "UDP datagrams carry no credentials: whoever reaches {} writes into {:?} \
                 although auth_enabled is set",
                s.bind,
                s.database
            );
        }
        tracing::info!(bind = %s.bind, database = %s.database,
            receive_buffer = self.receive_buffer, "listening for UDP line protocol");
        metrics.receive_buffer.set(self.receive_buffer as i64);
        metrics.listening();
    }
}

/// Ingests one datagram into the batch, unless a line of it does not parse; whether the
/// batch is now full.
fn add(batch: &mut Option<Batch>, datagram: &[u8], s: &Settings, m: &UdpMetrics) -> bool {
    m.datagrams.inc();
    m.bytes.inc_by(datagram.len() as u64);
    let parsed = ingest(datagram, s.precision, now_ns());
    if let Some(e) = parsed.parse_error {
        // influxd drops the whole datagram too, the lines that parsed with it.
        tracing::debug!(error = %e, "UDP datagram dropped");
        m.dropped("malformed", 1);
        return false;
    }
    if parsed.points == 0 {
        return false;
    }
    m.points_received.inc_by(parsed.points as u64);
    let b = batch.get_or_insert_with(|| Batch {
        lines: Vec::with_capacity(parsed.lines.len().max(MAX_DATAGRAM)),
        points: 0,
        datagrams: 0,
        started: Instant::now(),
    });
    b.lines.extend_from_slice(&parsed.lines);
    b.points += parsed.points;
    b.datagrams += 1;
    b.points >= s.batch_size || b.lines.len() >= s.batch_max_bytes
}

/// Hands a batch to the writer; if `batch_pending` batches already wait, drops it.
fn flush(queue: &mpsc::Sender<Batch>, batch: Option<Batch>, why: Flush, m: &UdpMetrics) {
    let Some(batch) = batch else { return };
    m.flushed(why);
    if let Err(e) = queue.try_send(batch) {
        let batch = match e {
            mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b,
        };
        m.dropped("queue_full", batch.datagrams);
    }
}

/// One datagram into `buf`: its length, and the kernel's count of datagrams it dropped on
/// this socket so far, when it said.
async fn receive(
    socket: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> io::Result<(usize, Option<u32>)> {
    let fd = socket.as_raw_fd();
    socket
        .async_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(&mut *buf)];
            let msg = socket::recvmsg::<SockaddrStorage>(
                fd,
                &mut iov,
                Some(&mut *cmsg),
                MsgFlags::empty(),
            )?;
            let drops = msg.cmsgs().find_map(|c| match c {
                ControlMessageOwned::RxqOvfl(n) => Some(n),
                _ => None,
            });
            Ok((msg.bytes, drops))
        })
        .await
}

/// Where the batches go, and whether the database was created by this process yet.
struct Target {
    database: String,
    retention_policy: String,
    created: OnceCell<()>,
}

/// Proposes batches one at a time, in the order they were gathered.
async fn write_batches(
    mut batches: mpsc::Receiver<Batch>,
    target: Target,
    replicator: Replicator,
    m: Arc<UdpMetrics>,
) {
    while let Some(batch) = batches.recv().await {
        if let Err(e) = target.create_database(&replicator).await {
            // The batch itself was not proposed, whatever became of the database.
            tracing::debug!(error = %e, datagrams = batch.datagrams, "UDP batch dropped");
            m.dropped(not_proposed_reason(&e), batch.datagrams);
            continue;
        }
        let command = Command::write(
            target.database.clone(),
            target.retention_policy.clone(),
            batch.lines.into(),
        );
        let deadline = replicator.deadline();
        let written = replicator
            .replicate("UDP write", command.encode(), Wait::Committed, deadline)
            .await;
        match written {
            Ok(_) => m.points_written.inc_by(batch.points as u64),
            Err(e @ ReplicateError::Unavailable(_)) => {
                tracing::debug!(error = %e, datagrams = batch.datagrams, "UDP batch dropped");
                m.dropped(not_proposed_reason(&e), batch.datagrams);
            }
            Err(e) => {
                tracing::warn!(error = %e, datagrams = batch.datagrams, "UDP batch");
                m.unconfirmed.inc_by(batch.datagrams);
            }
        }
    }
}

impl Target {
    /// influxd's UDP service creates its database before its first write; so does this
    /// listener, once per process, through the log. Committed is enough: the batches after
    /// it in the log are applied after it.
    async fn create_database(&self, replicator: &Replicator) -> Result<(), ReplicateError> {
        self.created
            .get_or_try_init(|| async {
                let db = &self.database;
                let q = format!("CREATE DATABASE {}", quote_identifier(db));
                let command = Command::query(Query {
                    q,
                    db: String::new(),
                    rp: String::new(),
                    params: String::new(),
                });
                let deadline = replicator.deadline();
                replicator
                    .replicate("UDP database", command.encode(), Wait::Committed, deadline)
                    .await?;
                tracing::info!(database = %db, "created the UDP database (if it was missing)");
                Ok(())
            })
            .await
            .copied()
    }
}

/// An InfluxQL identifier in double quotes, which any name may be.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The label a batch that was not proposed is counted under.
fn not_proposed_reason(e: &ReplicateError) -> &'static str {
    match e {
        ReplicateError::Unavailable(Unavailable::Refused(ProposeError::NoLeader)) => "no_leader",
        ReplicateError::Unavailable(Unavailable::Refused(ProposeError::Overloaded)) => "overloaded",
        ReplicateError::Unavailable(Unavailable::NotMember) => "not_member",
        ReplicateError::Unavailable(Unavailable::DiskFull(_)) => "disk_full",
        _ => "not_ready",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_for_influxql() {
        assert_eq!(quote_identifier("telegraf"), "\"telegraf\"");
        assert_eq!(quote_identifier("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
