//! Prometheus remote storage, as influxd 1.6 serves it.
//!
//! `/api/v1/prom/write` is a write like any other: its samples are converted as influxd
//! converts them (`ingest/prom.rs`) and go through the log (write.rs), so every replica holds
//! them, and Prometheus is answered 204 once they are committed and applied here. The codes
//! it acts on are the write path's: a 503 or 500 it retries; a 4xx (a bad body, an unknown
//! database) it drops, as it would from influxd.
//!
//! `/api/v1/prom/read` is a read: the local influxd answers it from its replica (proxy.rs),
//! after a read index if the URL asks for `consistency=linearizable`.

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use hyper::StatusCode;

use super::body::{self, params, reject_unknown};
use super::proxy;
use super::response::{error, Resp};
use super::write::{self, consistency, Format, Target, Writer};
use crate::replicate::Replicator;
use crate::state::{Limits, LocalInfluxd};

pub async fn write(State(w): State<Writer>, req: Request) -> Resp {
    let p = params(req.uri().query());
    if let Err(e) = reject_unknown(&p, &["db", "rp", "consistency", "u", "p"]) {
        return e.into_response();
    }
    let db = p.get("db").cloned().unwrap_or_default();
    if db.is_empty() {
        return error(StatusCode::BAD_REQUEST, "database is required");
    }
    let wait = match consistency(p.get("consistency")) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let target = Target {
        rp: p.get("rp").cloned().unwrap_or_default(),
        params: p,
        db,
        format: Format::PromRemote,
        wait,
    };
    write::write(&w, req, target).await
}

pub async fn read(
    State(replicator): State<Replicator>,
    State(limits): State<Limits>,
    State(influxd): State<LocalInfluxd>,
    req: Request,
) -> Resp {
    let p = params(req.uri().query());
    if let Err(e) = reject_unknown(&p, &["db", "rp", "consistency", "u", "p"]) {
        return e.into_response();
    }
    let (parts, incoming) = req.into_parts();
    // Snappy-compressed protobuf, passed on untouched.
    let body = match body::read_raw(&parts.headers, incoming, limits.max_body_size).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = proxy::consistency(&replicator, &p).await {
        return e.into_response();
    }
    proxy::pass(&influxd, parts, body).await
}
