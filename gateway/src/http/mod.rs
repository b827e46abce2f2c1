//! The InfluxDB 1.x HTTP API on :8086: one route table, and the headers every answer carries.
//!
//! `/write` and `/api/v2/write` (write.rs) go through ingest and the Raft log; `/query`
//! (query.rs) sends reads to the local influxd and state changes through the log; `/ping`,
//! `/health`, `/status` and `/metrics` (status.rs) describe the node; `/admin/members`
//! (admin.rs) changes the membership.

mod admin;
pub mod body;
mod query;
pub mod response;
mod status;
mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::routing::{any, get, post};
use axum::Router;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::timeout;

use crate::state::{AppState, NodeView};
use crate::tls::ApiTls;
use response::{error, Resp};

/// The API's routes over the shared state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/write", post(write::v1))
        .route("/api/v2/write", post(write::v2))
        .route("/query", get(query::handle).post(query::handle))
        .route("/ping", get(status::ping).head(status::ping))
        .route("/health", get(status::health).head(status::health))
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/admin/members", any(admin::members))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn(linger))
        .layer(middleware::from_fn_with_state(state.node.clone(), decorate))
        .with_state(state)
}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API until the process ends: HTTPS when `tls` is given, plain HTTP otherwise.
pub async fn serve(listener: TcpListener, tls: Option<Arc<ApiTls>>, router: Router) {
    loop {
        let (mut stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an API connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            let conn = match acceptor {
                None => serve_connection(stream, service).await,
                Some(acceptor) => {
                    if refused_plain_http(&mut stream).await {
                        return;
                    }
                    let handshake = timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => serve_connection(stream, service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "API TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "API TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = conn {
                tracing::debug!(%remote, error = %e, "API connection ended with an error");
            }
        });
    }
}

/// A client that speaks plain HTTP to the HTTPS port gets a readable answer rather than a
/// closed connection, as influxd (Go) gives it. A TLS connection starts with a handshake
/// record (0x16); an HTTP request starts with a method's letter.
async fn refused_plain_http(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut first = [0u8; 1];
    let peeked = timeout(TLS_HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
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
        let _ = timeout(Duration::from_secs(1), drain).await;
    }
    true
}

async fn serve_connection<S>(
    stream: S,
    service: TowerToHyperService<Router>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await
}

async fn method_not_allowed(method: Method) -> Resp {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed"),
    )
}

/// Drains what the handler left of the request body before the answer goes out, so a client
/// still sending sees the answer rather than a reset connection.
async fn linger(req: Request, next: Next) -> Resp {
    let (req, rest) = body::track(req);
    let mut resp = next.run(req).await;
    if !body::drain(rest).await {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Counts the request and gives its answer the headers every influxd answer carries, with
/// the client's request id.
async fn decorate(State(node): State<NodeView>, req: Request, next: Next) -> Resp {
    let request_id = req
        .headers()
        .get("Request-Id")
        .or_else(|| req.headers().get("X-Request-Id"))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ascii")
        });
    let route = route_label(req.uri().path());
    node.metrics.requests.with_label_values(&[route]).inc();

    let mut resp = next.run(req).await;

    node.metrics
        .responses
        .with_label_values(&[route, resp.status().as_str()])
        .inc();
    let h = resp.headers_mut();
    h.insert("Request-Id", request_id.clone());
    h.insert("X-Request-Id", request_id);
    h.insert("X-Influxdb-Build", HeaderValue::from_static("OSS"));
    if let Ok(v) = HeaderValue::from_str(&node.replicator.influxd_version()) {
        h.insert("X-Influxdb-Version", v);
    }
    h.insert("X-Gateway-Node", HeaderValue::from(node.id));
    resp
}

/// A bounded set of label values for metrics, whatever paths clients send.
fn route_label(path: &str) -> &'static str {
    match path {
        "/write" => "write",
        "/api/v2/write" => "write_v2",
        "/query" => "query",
        "/ping" => "ping",
        "/health" => "health",
        "/status" => "status",
        "/metrics" => "metrics",
        "/admin/members" => "admin",
        _ => "other",
    }
}
