//! The InfluxDB 1.x HTTP API on :8086: one route table, and the headers every answer carries.
//!
//! `/write` and `/api/v2/write` (write.rs) go through ingest and the Raft log; `/query`
//! (query.rs) sends reads to the local influxd (proxy.rs) and state changes through the log;
//! Prometheus remote write and read (prom.rs) take the same two ways; `/debug/*` (debug.rs)
//! is influxd's, with the gateway's figures in `/debug/vars`; `/ping`, `/health`, `/status`
//! and `/metrics` (status.rs) describe the node, and `/` (or `/ui`, ui.rs) shows it to a
//! person as a page; `/admin/members` (admin.rs) changes the membership. conn.rs accepts
//! and serves the connections within their limits; deadline.rs keeps the time a client is
//! given.

mod admin;
pub mod body;
mod conn;
mod deadline;
mod debug;
mod format;
mod prom;
mod proxy;
mod query;
pub mod response;
mod status;
pub mod ui;
mod write;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::routing::{any, get, post};
use axum::Router;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Method, StatusCode};

use crate::state::{AppState, Limits, NodeView};
pub use conn::{serve, serve_connection, ConnLimits, Served};
use response::{error, Resp};

/// The API's routes over the shared state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/write", post(write::v1))
        .route("/api/v2/write", post(write::v2))
        .route("/query", get(query::handle).post(query::handle))
        .route("/api/v1/prom/write", post(prom::write))
        .route("/api/v1/prom/read", post(prom::read))
        .route("/debug/{*rest}", any(debug::handle))
        .route("/ping", get(status::ping).head(status::ping))
        .route("/health", get(status::health).head(status::health))
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/", get(ui::page))
        .route("/ui", get(ui::page))
        .route("/admin/members", any(admin::members))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(state.clone(), linger))
        .layer(middleware::from_fn_with_state(state.node.clone(), decorate))
        .with_state(state)
}

async fn method_not_allowed(method: Method) -> Resp {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed"),
    )
}

/// Bounds the time the request body may take to arrive, and drains what the handler left of
/// it before the answer goes out, so a client still sending sees the answer rather than a
/// reset connection.
async fn linger(
    State(limits): State<Limits>,
    State(node): State<NodeView>,
    req: Request,
    next: Next,
) -> Resp {
    let (req, rest) = body::track(req, limits.body_read_timeout);
    let mut resp = next.run(req).await;
    let drained = body::drain(rest, limits.body_read_timeout).await;
    if drained == body::Drained::TimedOut {
        node.metrics
            .api_cuts
            .with_label_values(&["body_timeout"])
            .inc();
    }
    if drained != body::Drained::Clean {
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
        "/" | "/ui" => "ui",
        "/api/v1/prom/write" => "prom_write",
        "/api/v1/prom/read" => "prom_read",
        _ if path.starts_with("/debug/") => "debug",
        _ => "other",
    }
}
