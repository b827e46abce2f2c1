//! `/query`: reads go to the local influxd untouched (so the influx CLI, Grafana and client
//! libraries work through :8086); a query with any state-changing statement goes through the
//! log whole and is answered with influxd's JSON from this node once applied here.
//!
//! `consistency=linearizable` makes a read wait for a Raft read index and for the local
//! applier to pass it, so it sees every write acknowledged anywhere before it started.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use snapshotless::command::Query;
use snapshotless::marker::DATABASE as RESERVED_DB;
use snapshotless::Command;
use tokio::time::timeout_at;

use super::body::{self, params, reject_unknown};
use super::response::{error, from_outcome, Body, Resp};
use super::wait;
use crate::auth::Need;
use crate::gateway::Gateway;
use crate::influxql::classify;

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

pub async fn handle(gw: &Arc<Gateway>, req: Request<Incoming>) -> Resp {
    let (parts, incoming) = req.into_parts();
    let body = match body::read(&parts.headers, incoming, gw.config.max_body_size).await {
        Ok(b) => b,
        Err(e) => return e.into(),
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
        return e.into();
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
        if let Err(e) = gw.auth.check(&parts.headers, &p, Need::Admin).await {
            return e.into();
        }
        return replicate(gw, &p, q).await;
    }

    match p.get("consistency").map(String::as_str) {
        None | Some("" | "local") => {}
        Some("linearizable") => {
            if let Err(r) = wait_linearizable(gw).await {
                return r;
            }
        }
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid consistency {other:?} for a query (use local or linearizable)"),
            )
        }
    }
    proxy(gw, parts, body).await
}

/// A state-changing query: through the log, answered with influxd's JSON once applied here.
async fn replicate(gw: &Arc<Gateway>, p: &HashMap<String, String>, q: String) -> Resp {
    let deadline = wait::deadline(gw);
    {
        let raft = gw.raft.status();
        if raft.leader == 0 {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::raft::ProposeError::NoLeader.to_string(),
            );
        }
        let applier = gw.applier.borrow();
        if !applier.ready() {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "local influxd unavailable or rebuilding: state-changing queries wait for the local apply",
            );
        }
    }
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let command = Command::query(Query {
        q,
        db: get("db"),
        rp: get("rp"),
        params: get("params"),
    })
    .encode();
    let mut ticket = gw.pending.register();
    if let Err(e) = gw.raft.propose(ticket.origin.to_context(), command).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    let index = match wait::committed(gw, &mut ticket, deadline, "query").await {
        Ok(index) => index,
        Err(r) => return r,
    };
    match wait::applied(gw, &mut ticket, index, deadline, "query").await {
        Ok(o) => from_outcome(&o),
        Err(r) => r,
    }
}

/// Waits for a read index from the leader, then for the local applier to reach it.
async fn wait_linearizable(gw: &Arc<Gateway>) -> Result<(), Resp> {
    let deadline = wait::deadline(gw);
    let unavailable = |why: String| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("linearizable read unavailable: {why}"),
        )
    };
    let mut ticket = gw.pending.register();
    gw.raft
        .read_index(ticket.origin.request)
        .map_err(|e| unavailable(e.to_string()))?;
    let index = match timeout_at(deadline, &mut ticket.read_index).await {
        Ok(Ok(i)) => i,
        Ok(Err(_)) => return Err(unavailable("this node lost its leader".into())),
        Err(_) => return Err(unavailable("no read index from a quorum in time".into())),
    };
    let mut status = gw.applier.clone();
    let reached = timeout_at(deadline, status.wait_for(|s| s.applied >= index)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        _ => Err(unavailable(format!(
            "the local influxd has not applied up to the read index {index} in time"
        ))),
    }
}

/// Passes the request to the local influxd and streams its answer back.
async fn proxy(gw: &Arc<Gateway>, parts: hyper::http::request::Parts, body: Bytes) -> Resp {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/query", |pq| pq.as_str());
    let uri = format!("{}{}", gw.config.influxd_url, strip_ours(path_and_query));
    let mut builder = Request::builder().method(parts.method).uri(uri);
    for (name, value) in parts.headers.iter() {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            builder = builder.header(name, value);
        }
    }
    let req = builder
        .body(super::response::full(body))
        .expect("a valid request from a valid one");
    match gw.proxy.request(req).await {
        Ok(resp) => {
            let (mut parts, incoming) = resp.into_parts();
            parts.headers.remove("Request-Id");
            parts.headers.remove("X-Request-Id");
            let body: Body = incoming.map_err(|e| Box::new(e) as _).boxed();
            hyper::Response::from_parts(parts, body)
        }
        Err(e) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("local influxd unavailable: {e}"),
            );
            r.headers_mut()
                .insert("Retry-After", HeaderValue::from_static("1"));
            r
        }
    }
}

/// Our own `consistency` parameter means nothing to influxd.
fn strip_ours(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.starts_with("consistency="))
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}
