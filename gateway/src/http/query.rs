//! `/query`: reads go to the local influxd untouched (so the influx CLI, Grafana and client
//! libraries work through :8086); a query with any state-changing statement goes through the
//! log whole and is answered with influxd's JSON from this node once applied here.
//!
//! `consistency=linearizable` makes a read wait for a Raft read index and for the local
//! applier to pass it, so it sees every write acknowledged anywhere before it started
//! (proxy.rs).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, StatusCode};
use snapshotless::command::Query;
use snapshotless::marker::DATABASE as RESERVED_DB;
use snapshotless::Command;

use super::body::{self, params, reject_unknown};
use super::proxy;
use super::response::{error, from_outcome, no_content, ApiError, Resp};
use crate::auth::{Auth, Need};
use crate::influxql::classify;
use crate::replicate::{Replicator, Wait};
use crate::state::{Limits, LocalInfluxd};

/// influxd 1.x's /query parameters, and ours (`consistency`).
const KNOWN: &[&str] = &[
    "q",
    "db",
    "rp",
    "epoch",
    "chunked",
    "chunk_size",
    "pretty",
    "params",
    "u",
    "p",
    "async",
    "node_id",
    "consistency",
];

pub async fn handle(
    State(replicator): State<Replicator>,
    State(auth): State<Arc<Auth>>,
    State(limits): State<Limits>,
    State(influxd): State<LocalInfluxd>,
    req: Request,
) -> Resp {
    let (parts, incoming) = req.into_parts();
    let body = match body::read(&parts.headers, incoming, limits.max_body_size).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut p = params(parts.uri.query());
    let form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if parts.method == Method::POST && form {
        // influxd reads parameters from the form body too; the URL wins on conflicts.
        for (k, v) in params(std::str::from_utf8(&body).ok()) {
            p.entry(k).or_insert(v);
        }
    }
    if let Err(e) = reject_unknown(&p, KNOWN) {
        return e.into_response();
    }
    let q = p.get("q").cloned().unwrap_or_default();
    if q.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, r#"missing required parameter "q""#);
    }
    let classified = match classify(&q) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("error parsing query: {e}")),
    };

    if classified.writes() {
        if classified.local() {
            // KILL QUERY names a query id of this node; replicated with the rest of the query
            // it would run on every node, where that id is another query or none.
            return error(
                StatusCode::BAD_REQUEST,
                "KILL QUERY cannot be combined with state-changing statements: send it on its own",
            );
        }
        let db = p.get("db").map_or("", String::as_str);
        let params = p.get("params").map_or("", String::as_str);
        if snapshotless::marker::is_reserved(&q, db) || params.contains(RESERVED_DB) {
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "statements on database {RESERVED_DB:?} are refused: it holds the gateway's own bookkeeping"
                ),
            );
        }
        if let Err(e) = auth.check(&parts.headers, &p, Need::Admin).await {
            return ApiError::from(e).into_response();
        }
        return replicate(&replicator, &p, q).await;
    }

    if let Err(e) = proxy::consistency(&replicator, &p).await {
        return e.into_response();
    }
    proxy::pass(&influxd, parts, body).await
}

/// A state-changing query: through the log, answered with influxd's JSON once applied here.
async fn replicate(replicator: &Replicator, p: &HashMap<String, String>, q: String) -> Resp {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let command = Command::query(Query {
        q,
        db: get("db"),
        rp: get("rp"),
        params: get("params"),
    })
    .encode();
    let deadline = replicator.deadline();
    match replicator
        .replicate("query", command, Wait::Applied, deadline)
        .await
    {
        Ok(outcome) => outcome.map_or_else(no_content, |o| from_outcome(&o)),
        Err(e) => ApiError::from(e).into_response(),
    }
}
