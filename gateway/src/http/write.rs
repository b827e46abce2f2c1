//! `/write`, `/api/v2/write` and Prometheus remote write (`/api/v1/prom/write`, whose
//! parameters prom.rs reads): body -> ingest -> one Raft entry -> the local applier's outcome.
//!
//! What the status codes promise:
//! - 204: committed on a quorum's disks and applied to this node's influxd.
//! - 4xx: nothing of the rejected part was written (a parse error never enters the log; a
//!   rejection by influxd happened identically on every replica).
//! - 503: nothing was proposed (no quorum, local influxd unavailable, overload): safe to retry
//!   elsewhere.
//! - 500 with "outcome unknown": the write was proposed and may or may not be committed.
//!
//! A write with an `Idempotency-Key` (`crate::idempotency`) is applied at most once within
//! the key's window: a retry is answered with the first attempt's outcome (and
//! `Idempotent-Replayed: true`), the same key with another request with 422.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use hyper::StatusCode;
use snapshotless::marker::DATABASE as RESERVED_DB;
use snapshotless::{Command, Outcome};

use super::body::{self, params, reject_unknown};
use super::response::{error, from_outcome, no_content, ApiError, Resp};
use crate::auth::{Auth, Need};
use crate::idempotency::{self, Idempotency};
use crate::ingest::{ingest, now_ns, prom, Batch, Precision};
use crate::replicate::{Replicator, Wait};
use crate::state::{Limits, NodeView};

/// What a write handler takes from the shared state.
pub struct Writer {
    replicator: Replicator,
    auth: Arc<Auth>,
    limits: Limits,
    node: NodeView,
    idempotency: Idempotency,
}

impl axum::extract::FromRef<crate::state::AppState> for Writer {
    fn from_ref(s: &crate::state::AppState) -> Writer {
        Writer {
            replicator: s.replicator.clone(),
            auth: s.auth.clone(),
            limits: s.limits,
            node: s.node.clone(),
            idempotency: s.node.idempotency.clone(),
        }
    }
}

/// `consistency`: `any` is acknowledged once committed; the others once applied here.
pub(super) fn consistency(param: Option<&String>) -> Result<Wait, ApiError> {
    match param.map(String::as_str) {
        None | Some("" | "one" | "quorum" | "all") => Ok(Wait::Applied),
        Some("any") => Ok(Wait::Committed),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid consistency level {other:?} (use any, one, quorum or all)"),
        )),
    }
}

/// What a write's body holds, and so how it becomes a batch.
#[derive(Debug, Clone, Copy)]
pub(super) enum Format {
    /// Line protocol (gzip allowed), timestamps at this precision.
    LineProtocol(Precision),
    /// A Prometheus remote write request: snappy-compressed protobuf, read as it came
    /// (influxd does not gunzip it either).
    PromRemote,
}

pub(super) struct Target {
    pub params: HashMap<String, String>,
    pub db: String,
    pub rp: String,
    pub format: Format,
    pub wait: Wait,
}

pub async fn v1(State(w): State<Writer>, req: Request) -> Resp {
    let p = params(req.uri().query());
    if let Err(e) = reject_unknown(&p, &["db", "rp", "precision", "consistency", "u", "p"]) {
        return e.into_response();
    }
    let db = p.get("db").cloned().unwrap_or_default();
    if db.is_empty() {
        return error(StatusCode::BAD_REQUEST, "database is required");
    }
    let precision = match Precision::from_v1(p.get("precision").map(String::as_str)) {
        Ok(pr) => pr,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let wait = match consistency(p.get("consistency")) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let target = Target {
        rp: p.get("rp").cloned().unwrap_or_default(),
        params: p,
        db,
        format: Format::LineProtocol(precision),
        wait,
    };
    write(&w, req, target).await
}

/// The 2.x write API as InfluxDB 1.8 serves it: `bucket` is `db` or `db/rp`, `org` is
/// accepted and ignored.
pub async fn v2(State(w): State<Writer>, req: Request) -> Resp {
    let p = params(req.uri().query());
    if let Err(e) = reject_unknown(&p, &["bucket", "org", "orgID", "precision"]) {
        return e.into_response();
    }
    let bucket = p.get("bucket").cloned().unwrap_or_default();
    let (db, rp) = match bucket.split_once('/') {
        Some((db, rp)) => (db.to_owned(), rp.to_owned()),
        None => (bucket, String::new()),
    };
    if db.is_empty() {
        return error(StatusCode::BAD_REQUEST, "bucket is required");
    }
    let precision = match Precision::from_v2(p.get("precision").map(String::as_str)) {
        Ok(pr) => pr,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let target = Target {
        params: p,
        db,
        rp,
        format: Format::LineProtocol(precision),
        wait: Wait::Applied,
    };
    write(&w, req, target).await
}

pub(super) async fn write(w: &Writer, req: Request, t: Target) -> Resp {
    let started = Instant::now();
    let deadline = w.replicator.deadline();
    if t.db == RESERVED_DB {
        return error(
            StatusCode::BAD_REQUEST,
            format!("database {RESERVED_DB:?} is reserved for the gateway's own bookkeeping"),
        );
    }
    // Refuse before reading the body: a client that gets a 503 moves on to another node.
    // During an election it waits for the new leader rather than be refused.
    w.replicator.await_leader(deadline).await;
    if let Err(e) = w.replicator.readiness(t.wait) {
        return ApiError::from(e).into_response();
    }
    if let Err(e) = w
        .auth
        .check(req.headers(), &t.params, Need::Write(&t.db))
        .await
    {
        return ApiError::from(e).into_response();
    }
    let key = match idempotency::key(req.headers()) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };

    let (parts, incoming) = req.into_parts();
    let max = w.limits.max_body_size;
    let body = match t.format {
        Format::LineProtocol(_) => body::read(&parts.headers, incoming, max).await,
        Format::PromRemote => body::read_raw(&parts.headers, incoming, max).await,
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let now = now_ns();
    let format = t.format;
    let keyed_by = key.map(|key| {
        let request = idempotency::Request {
            db: &t.db,
            rp: &t.rp,
            precision_ns: match format {
                Format::LineProtocol(p) => p.nanos(),
                // A remote write request carries its own millisecond times.
                Format::PromRemote => 0,
            },
            body: &body,
        };
        w.idempotency
            .keyed_by(key, &request, (now / 1_000_000).max(0) as u64)
    });
    // Large bodies take milliseconds to parse: keep them off the async workers.
    let batch = if body.len() > 256 << 10 {
        match tokio::task::spawn_blocking(move || to_batch(format, &body, now, max)).await {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("ingest failed: {e}"),
                )
            }
        }
    } else {
        to_batch(format, &body, now, max)
    };
    let batch = match batch {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if batch.points == 0 {
        return match batch.parse_error {
            Some(e) => error(StatusCode::BAD_REQUEST, e),
            None => no_content(),
        };
    }
    let metrics = &w.node.metrics;
    if let Some(known) = keyed_by.as_ref().and_then(|k| w.idempotency.known(k)) {
        metrics.retries_answered.inc();
        return answer(Some(known), batch.parse_error);
    }
    metrics.points_written.inc_by(batch.points as u64);

    let command = Command::write(t.db, t.rp, batch.lines.into());
    let replicated = match keyed_by {
        Some(k) => {
            let command = command.keyed(k).encode();
            w.replicator
                .replicate_keyed("write", command, t.wait, deadline)
                .await
        }
        None => {
            w.replicator
                .replicate("write", command.encode(), t.wait, deadline)
                .await
        }
    };
    let outcome = match replicated {
        Ok(o) => o,
        Err(e) => return ApiError::from(e).into_response(),
    };
    metrics
        .write_seconds
        .observe(started.elapsed().as_secs_f64());
    answer(outcome, batch.parse_error)
}

/// The answer to a write from the applier's outcome (none with `consistency=any`) and the
/// lines ingest dropped. A retry answered with its first attempt's outcome gets what the
/// first attempt got: the same body has the same lines dropped.
fn answer(outcome: Option<Outcome>, parse_error: Option<String>) -> Resp {
    let mut r = match &outcome {
        // influxd's rejection of the valid lines comes first, as influxd answers it.
        Some(o) if !(200..300).contains(&o.status) => from_outcome(o),
        _ => match parse_error {
            Some(e) => error(
                StatusCode::BAD_REQUEST,
                format!("partial write: {e} dropped=0"),
            ),
            None => no_content(),
        },
    };
    if outcome.is_some_and(|o| o.replayed) {
        r.headers_mut().insert(
            "Idempotent-Replayed",
            hyper::header::HeaderValue::from_static("true"),
        );
    }
    r
}

/// The body as a batch for the log. Line protocol may be partly valid (the valid lines are
/// written, as influxd does); a remote write request is converted whole or refused whole.
fn to_batch(format: Format, body: &[u8], now: i64, max: usize) -> Result<Batch, ApiError> {
    match format {
        Format::LineProtocol(precision) => Ok(ingest(body, precision, now)),
        Format::PromRemote => Ok(prom::decode(body, max).and_then(|r| prom::convert(&r))?),
    }
}
