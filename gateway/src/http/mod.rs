//! The InfluxDB 1.x HTTP API on :8086.
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
mod wait;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::gateway::Gateway;
use response::{error, Resp};

/// Serves the API until the process ends.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an API connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(gw, req, remote).await) }
            });
            let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = conn {
                tracing::debug!(%remote, error = %e, "API connection ended with an error");
            }
        });
    }
}

async fn handle(gw: Arc<Gateway>, req: Request<Incoming>, _remote: SocketAddr) -> Resp {
    let request_id = req
        .headers()
        .get("Request-Id")
        .or_else(|| req.headers().get("X-Request-Id"))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ascii")
        });
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    gw.metrics
        .requests
        .with_label_values(&[route_label(&path)])
        .inc();

    let mut resp = match (method.clone(), path.as_str()) {
        (Method::POST, "/write") => write::v1(&gw, req).await,
        (Method::POST, "/api/v2/write") => write::v2(&gw, req).await,
        (Method::GET | Method::POST, "/query") => query::handle(&gw, req).await,
        (Method::GET | Method::HEAD, "/ping") => status::ping(&gw, &req),
        (Method::GET | Method::HEAD, "/health") => status::health(&gw),
        (Method::GET, "/status") => status::status(&gw),
        (Method::GET, "/metrics") => status::metrics(&gw),
        (_, "/admin/members") => admin::members(&gw, req).await,
        (
            _,
            "/write" | "/api/v2/write" | "/query" | "/ping" | "/health" | "/status" | "/metrics",
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed"),
        ),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    };

    gw.metrics
        .responses
        .with_label_values(&[route_label(&path), resp.status().as_str()])
        .inc();
    let h = resp.headers_mut();
    h.insert("Request-Id", request_id.clone());
    h.insert("X-Request-Id", request_id);
    h.insert("X-Influxdb-Build", HeaderValue::from_static("OSS"));
    if let Ok(v) = HeaderValue::from_str(&gw.influxd_version()) {
        h.insert("X-Influxdb-Version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&gw.config.id.to_string()) {
        h.insert("X-Gateway-Node", v);
    }
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
