//! The API's connections: the accept loop under a cap on connections served at once, and one
//! connection's life within its limits (head size, deadlines), for any stream: TCP, or TLS
//! over it when the API serves HTTPS.
//!
//! HTTP/1.1 only: influxd 1.x serves HTTP/2 only over TLS, so no client of its API speaks
//! cleartext HTTP/2, and every limit here is one of HTTP/1's.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower_service::Service as _;

use super::deadline::{Activity, Deadlines, InFlight, Timed};
use crate::metrics::Metrics;
use crate::tls::ApiTls;

/// The bounds every API connection is served within.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// The request line and headers together, in bytes.
    pub max_header_size: usize,
    pub max_headers: usize,
}

/// hyper's read buffer grows to this before a body's bytes are handed on (its default); a
/// head may take all of it only if `max_header_size` allows.
const READ_BUFFER: usize = 8192 + 4096 * 100;

/// How often reaching the cap is logged at most: under a flood it is reached on every accept.
const CAP_LOG_EVERY: Duration = Duration::from_secs(10);

/// What every connection is served with.
#[derive(Clone)]
pub struct Served {
    pub router: Router,
    pub limits: ConnLimits,
    pub metrics: Arc<Metrics>,
    /// HTTPS: the certificate as last loaded.
    pub tls: Option<Arc<ApiTls>>,
}

/// Serves the API until the process ends. At the cap, accepting pauses: new connections wait
/// in the kernel's listen backlog (their clients see a slow connect, not a refusal) until a
/// connection closes, while those open keep being served.
pub async fn serve(listener: TcpListener, served: Served) {
    let served = Arc::new(served);
    let slots = Arc::new(Semaphore::new(served.limits.max_connections));
    served
        .metrics
        .api_connections_max
        .set(served.limits.max_connections as i64);
    let mut cap_logged: Option<Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                served.metrics.api_cap_waits.inc();
                if cap_logged.is_none_or(|at| at.elapsed() >= CAP_LOG_EVERY) {
                    cap_logged = Some(Instant::now());
                    tracing::warn!(
                        max_connections = served.limits.max_connections,
                        "API connection cap reached: new connections wait until one closes"
                    );
                }
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        let (mut stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted.
                tracing::warn!(error = %e, "accepting an API connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = Slot::take(permit, &served.metrics);
        let served = served.clone();
        let acceptor = served.tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, remote, &served).await,
                // The handshake runs in the slot already taken, so handshakes held open count
                // against the cap too, and within the time a request's head is given.
                Some(acceptor) => {
                    let limit = served.limits.header_read_timeout;
                    if refused_plain_http(&mut stream, limit).await {
                        return;
                    }
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(tls, remote, &served).await,
                        Ok(Err(e)) => {
                            served
                                .metrics
                                .api_cuts
                                .with_label_values(&["tls_handshake"])
                                .inc();
                            tracing::debug!(%remote, error = %e, "API TLS handshake failed");
                        }
                        Err(_) => {
                            served
                                .metrics
                                .api_cuts
                                .with_label_values(&["tls_handshake"])
                                .inc();
                            tracing::debug!(%remote, "API TLS handshake timed out");
                        }
                    }
                }
            }
            drop(slot);
        });
    }
}

/// A client that speaks plain HTTP to the HTTPS port gets a readable answer rather than a
/// closed connection, as influxd (Go) gives it. A TLS connection starts with a handshake
/// record (0x16); an HTTP request starts with a method's letter.
async fn refused_plain_http(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(limit, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) || !first[0].is_ascii_uppercase() {
        return false;
    }
    const ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\
        Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    if stream.write_all(ANSWER).await.is_ok() && stream.shutdown().await.is_ok() {
        // Closing with the request unread would reset the connection, and the client could
        // lose the answer: read what it sent first, briefly.
        let mut sink = [0u8; 4096];
        let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
    true
}

/// Serves one connection until it closes, is cut off, or fails.
pub async fn serve_connection<S>(stream: S, remote: SocketAddr, served: &Served)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &served.limits;
    let activity = Arc::new(Activity::default());
    let deadlines = Deadlines {
        header: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let io = TokioIo::new(Timed::new(stream, activity.clone(), deadlines));
    let service = ConnService {
        router: served.router.clone(),
        remote,
        activity: activity.clone(),
    };
    let result = http1::Builder::new()
        .keep_alive(true)
        // `Timed` keeps the head and idle deadlines (see deadline.rs).
        .header_read_timeout(None)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_size)
        .max_buf_size(limits.max_header_size.max(READ_BUFFER))
        .serve_connection(io, service)
        .await;
    let cut = match (activity.missed(), &result) {
        (Some(missed), _) => Some(missed.label()),
        (None, Err(e)) if e.is_parse_too_large() => Some("head_too_large"),
        _ => None,
    };
    if let Some(cut) = cut {
        served.metrics.api_cuts.with_label_values(&[cut]).inc();
        tracing::debug!(%remote, reason = cut, "API connection cut off");
    } else if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "API connection ended with an error");
    }
}

/// A connection's share of the cap, counted in the open-connections gauge while held.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, metrics: &Arc<Metrics>) -> Slot {
        metrics.api_connections.inc();
        metrics.api_accepted.inc();
        Slot {
            _permit: permit,
            metrics: metrics.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.api_connections.dec();
    }
}

/// The router for one connection: each request carries the client's address (axum's
/// `ConnectInfo`) and is in flight, for the connection's deadlines, until its answer is sent.
struct ConnService {
    router: Router,
    remote: SocketAddr,
    activity: Arc<Activity>,
}

type Answering = Pin<Box<dyn Future<Output = Result<Response<Answer>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, mut req: Request<Incoming>) -> Answering {
        req.extensions_mut().insert(ConnectInfo(self.remote));
        let in_flight = self.activity.begin();
        // A Router is always ready: `call` needs no `poll_ready` first.
        let answer = self.router.clone().call(req);
        Box::pin(async move {
            let resp = answer.await?;
            Ok(resp.map(|body| Answer {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// An answer's body, holding its request in flight until hyper has sent it or dropped it.
struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
