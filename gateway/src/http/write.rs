//! `/write` and `/api/v2/write`: body -> ingest -> one Raft entry -> the local applier's
//! outcome.
//!
//! What the status codes promise:
//! - 204: committed on a quorum's disks and applied to this node's influxd.
//! - 4xx: nothing of the rejected part was written (a parse error never enters the log; a
//!   rejection by influxd happened identically on every replica).
//! - 503: nothing was proposed (no quorum, local influxd unavailable, overload): safe to retry
//!   elsewhere.
//! - 500 with "outcome unknown": the write was proposed and may or may not be committed.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use snapshotless::marker::DATABASE as RESERVED_DB;
use snapshotless::Command;

use super::body::{self, params, reject_unknown};
use super::response::{error, from_outcome, no_content, ApiError, Resp};
use super::wait;
use crate::auth::Need;
use crate::gateway::Gateway;
use crate::ingest::{ingest, Precision};
use crate::raft::ProposeError;

/// What the client asked to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consistency {
    /// Committed on a quorum and applied to this node's influxd (one, quorum, all).
    Applied,
    /// Committed on a quorum only: acknowledged even while the local influxd is down.
    Any,
}

fn consistency(param: Option<&String>) -> Result<Consistency, ApiError> {
    match param.map(String::as_str) {
        None | Some("" | "one" | "quorum" | "all") => Ok(Consistency::Applied),
        Some("any") => Ok(Consistency::Any),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid consistency level {other:?} (use any, one, quorum or all)"),
        )),
    }
}

struct Target {
    params: std::collections::HashMap<String, String>,
    db: String,
    rp: String,
    precision: Precision,
    consistency: Consistency,
}

pub async fn v1(gw: &Arc<Gateway>, req: Request<Incoming>) -> Resp {
    let p = params(req.uri().query());
    if let Err(e) = reject_unknown(&p, &["db", "rp", "precision", "consistency", "u", "p"]) {
        return e.into();
    }
    let db = p.get("db").cloned().unwrap_or_default();
    if db.is_empty() {
        return error(StatusCode::BAD_REQUEST, "database is required");
    }
    let precision = match Precision::from_v1(p.get("precision").map(String::as_str)) {
        Ok(pr) => pr,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let consistency = match consistency(p.get("consistency")) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    let target = Target {
        rp: p.get("rp").cloned().unwrap_or_default(),
        params: p,
        db,
        precision,
        consistency,
    };
    write(gw, req, target).await
}

/// The 2.x write API as InfluxDB 1.8 serves it: `bucket` is `db` or `db/rp`, `org` is
/// accepted and ignored.
pub async fn v2(gw: &Arc<Gateway>, req: Request<Incoming>) -> Resp {
    let p = params(req.uri().query());
    if let Err(e) = reject_unknown(&p, &["bucket", "org", "orgID", "precision"]) {
        return e.into();
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
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let target = Target {
        params: p,
        db,
        rp,
        precision,
        consistency: Consistency::Applied,
    };
    write(gw, req, target).await
}

async fn write(gw: &Arc<Gateway>, req: Request<Incoming>, t: Target) -> Resp {
    let started = Instant::now();
    let deadline = wait::deadline(gw);
    if t.db == RESERVED_DB {
        return error(
            StatusCode::BAD_REQUEST,
            format!("database {RESERVED_DB:?} is reserved for the gateway's own bookkeeping"),
        );
    }
    // Refuse before reading the body: a client that gets a 503 moves on to another node.
    if let Some(r) = unavailable(gw, t.consistency) {
        return r;
    }
    if let Err(e) = gw
        .auth
        .check(req.headers(), &t.params, Need::Write(&t.db))
        .await
    {
        return e.into();
    }

    let (parts, incoming) = req.into_parts();
    let body = match body::read(&parts.headers, incoming, gw.config.max_body_size).await {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let precision = t.precision;
    // Large bodies take milliseconds to parse: keep them off the async workers.
    let batch = if body.len() > 256 << 10 {
        match tokio::task::spawn_blocking(move || ingest(&body, precision, now)).await {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("ingest failed: {e}"),
                )
            }
        }
    } else {
        ingest(&body, precision, now)
    };
    if batch.points == 0 {
        return match batch.parse_error {
            Some(e) => error(StatusCode::BAD_REQUEST, e),
            None => no_content(),
        };
    }
    gw.metrics.points_written.inc_by(batch.points as u64);

    let command = Command::write(t.db, t.rp, batch.lines.into()).encode();
    let mut ticket = gw.pending.register();
    if let Err(e) = gw.raft.propose(ticket.origin.to_context(), command).await {
        return refused(e);
    }

    // From here on the entry may commit whatever happens to this request: every failure is
    // an unknown outcome, never a definite one.
    let committed = match wait::committed(gw, &mut ticket, deadline, "write").await {
        Ok(index) => index,
        Err(r) => return r,
    };
    let outcome = match t.consistency {
        Consistency::Any => None,
        Consistency::Applied => {
            match wait::applied(gw, &mut ticket, committed, deadline, "write").await {
                Ok(o) => Some(o),
                Err(r) => return r,
            }
        }
    };
    gw.metrics
        .write_seconds
        .observe(started.elapsed().as_secs_f64());

    match outcome {
        // influxd's rejection of the valid lines comes first, as influxd answers it.
        Some(o) if !(200..300).contains(&o.status) => from_outcome(&o),
        _ => match batch.parse_error {
            Some(e) => error(
                StatusCode::BAD_REQUEST,
                format!("partial write: {e} dropped=0"),
            ),
            None => no_content(),
        },
    }
}

/// Why this node cannot take a write right now, if it cannot.
fn unavailable(gw: &Gateway, consistency: Consistency) -> Option<Resp> {
    let raft = gw.raft.status();
    if !raft.member && raft.commit > 0 {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is not a member of the cluster",
        ));
    }
    if raft.leader == 0 {
        return Some(refused(ProposeError::NoLeader));
    }
    if consistency == Consistency::Applied {
        let applier = gw.applier.borrow();
        if !applier.influxd_up {
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "local influxd unavailable: {}; writes with consistency=any are still accepted",
                    applier.influxd_error.as_deref().unwrap_or("not answering")
                ),
            ));
        }
        if let Some(r) = applier.rebuilding {
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "local influxd is being rebuilt from the log (applied {} of {}); writes with consistency=any are still accepted",
                    applier.applied, r.target
                ),
            ));
        }
    }
    None
}

/// A proposal raft-rs did not take: nothing entered the log.
fn refused(e: ProposeError) -> Resp {
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}
