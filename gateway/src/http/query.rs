//! `/query`: reads go to the local influxd untouched (so the influx CLI, Grafana and client
//! libraries work through :8086); a query with any state-changing statement goes through the
//! log whole and is answered with influxd's JSON from this node once applied here.
//!
//! `consistency=linearizable` makes a read wait for a Raft read index and for the local
//! applier to pass it, so it sees every write acknowledged anywhere before it started
//! (proxy.rs).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Method, StatusCode};
use snapshotless::command::Query;
use snapshotless::marker::DATABASE as RESERVED_DB;
use snapshotless::Command;

use super::body::{self, params, reject_unknown};
use super::format::{self, Format};
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
    let body = match query_body(&parts.headers, incoming, limits.max_body_size).await {
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
        return replicate(&replicator, &p, q, Format::asked(&parts.headers)).await;
    }

    if let Err(e) = proxy::consistency(&replicator, &p).await {
        return e.into_response();
    }
    let lists_databases = classified
        .statements
        .iter()
        .any(|s| s.name == "SHOW DATABASES");
    // The body was decoded above: influxd is sent it plain.
    let mut parts = parts;
    parts.headers.remove(hyper::header::CONTENT_ENCODING);
    let answer = proxy::pass(&influxd, parts, body).await;
    if lists_databases {
        return hide_reserved(answer).await;
    }
    answer
}

/// The largest `SHOW DATABASES` answer filtered; a larger one is passed on as it is.
const MAX_LISTING: usize = 16 << 20;

/// The gateway's bookkeeping database is no database of the user's: it is left out of
/// `SHOW DATABASES` answers (JSON, chunked JSON and CSV), so database pickers (Grafana's, a
/// client's `get_list_database`) do not offer it.
async fn hide_reserved(answer: Resp) -> Resp {
    let (mut parts, body) = answer.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_LISTING).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("reading influxd's answer: {e}"),
            )
        }
    };
    // influxd compresses for clients that accept it (the influx CLI does); the filtered
    // answer goes back uncompressed.
    let bytes = if body::is_gzip(&parts.headers) {
        match body::gunzip(&bytes, MAX_LISTING) {
            Ok(plain) => {
                parts.headers.remove(hyper::header::CONTENT_ENCODING);
                plain
            }
            Err(_) => return Resp::from_parts(parts, Body::from(bytes)),
        }
    } else {
        bytes
    };
    let csv = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("csv"));
    let filtered = if csv {
        without_reserved_csv(&bytes)
    } else if parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"))
    {
        without_reserved_json(&bytes)
    } else {
        bytes.to_vec()
    };
    // The length changed, and the body is whole now.
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    Resp::from_parts(parts, Body::from(filtered))
}

/// Drops the rows `databases,,_gateway`.
fn without_reserved_csv(answer: &[u8]) -> Vec<u8> {
    let row = format!("databases,,{RESERVED_DB}");
    let mut out = Vec::with_capacity(answer.len());
    for line in answer.split_inclusive(|b| *b == b'\n') {
        if line.strip_suffix(b"\n").unwrap_or(line) != row.as_bytes() {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Drops the value rows `["_gateway"]` (compact or pretty), with the comma that separated
/// them from a neighbour.
fn without_reserved_json(answer: &[u8]) -> Vec<u8> {
    let name = format!("\"{RESERVED_DB}\"");
    let mut out = answer.to_vec();
    let mut from = 0;
    while let Some(at) = find(&out[from..], name.as_bytes()).map(|i| i + from) {
        let ws = |b: u8| b.is_ascii_whitespace();
        let mut start = at;
        while start > 0 && ws(out[start - 1]) {
            start -= 1;
        }
        let mut end = at + name.len();
        while end < out.len() && ws(out[end]) {
            end += 1;
        }
        // Only a row of its own: `[ "_gateway" ]`.
        if start == 0 || out[start - 1] != b'[' || out.get(end) != Some(&b']') {
            from = at + name.len();
            continue;
        }
        start -= 1;
        end += 1;
        let mut after = end;
        while after < out.len() && ws(out[after]) {
            after += 1;
        }
        if out.get(after) == Some(&b',') {
            end = after + 1;
            while end < out.len() && ws(out[end]) {
                end += 1;
            }
        } else {
            let mut before = start;
            while before > 0 && ws(out[before - 1]) {
                before -= 1;
            }
            if before > 0 && out[before - 1] == b',' {
                start = before - 1;
            }
        }
        out.drain(start..end);
        from = start;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// influxd reads `/query` bodies whatever their `Content-Encoding` says, and clients rely on
/// it: the Python client with `gzip=True` labels every query gzip, body or none. So a body is
/// decompressed only when it is gzip indeed; the proxy passes it on decoded.
async fn query_body(headers: &HeaderMap, incoming: Body, max: usize) -> Result<Bytes, ApiError> {
    let raw = body::read_raw(headers, incoming, max).await?;
    if body::is_gzip(headers) && raw.starts_with(&[0x1f, 0x8b]) {
        return body::gunzip(&raw, max);
    }
    Ok(raw)
}

/// A state-changing query: through the log, answered with influxd's answer once applied here,
/// in the format the client asked for.
async fn replicate(
    replicator: &Replicator,
    p: &HashMap<String, String>,
    q: String,
    format: Format,
) -> Resp {
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
        Ok(Some(mut outcome)) => {
            if let Some(body) = format::render(format, &outcome.body) {
                outcome.body = body;
                outcome.content_type = Some(format.content_type().to_owned());
            }
            from_outcome(&outcome)
        }
        Ok(None) => no_content(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_database_is_left_out_of_listings() {
        let compact = br#"{"results":[{"statement_id":0,"series":[{"name":"databases","columns":["name"],"values":[["_gateway"],["db"],["x"]]}]}]}"#;
        assert_eq!(
            String::from_utf8(without_reserved_json(compact)).unwrap(),
            r#"{"results":[{"statement_id":0,"series":[{"name":"databases","columns":["name"],"values":[["db"],["x"]]}]}]}"#
        );
        let last = br#"{"values":[["db"],["_gateway"]]}"#;
        assert_eq!(
            without_reserved_json(last),
            br#"{"values":[["db"]]}"#.to_vec()
        );
        let pretty = b"\"values\": [\n  [\n    \"_gateway\"\n  ],\n  [\n    \"db\"\n  ]\n]";
        assert_eq!(
            String::from_utf8(without_reserved_json(pretty)).unwrap(),
            "\"values\": [\n  [\n    \"db\"\n  ]\n]"
        );
        // A value in a row of several columns is someone's data.
        let other = br#"{"values":[["_gateway",1]]}"#;
        assert_eq!(without_reserved_json(other), other.to_vec());
        let csv = b"name,tags,name\ndatabases,,_gateway\ndatabases,,db\n";
        assert_eq!(
            without_reserved_csv(csv),
            b"name,tags,name\ndatabases,,db\n".to_vec()
        );
    }
}
