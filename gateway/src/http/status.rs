//! What a node says about itself: `/ping` (as influxd), `/health` (ready or not, and why),
//! `/status` (the whole picture as JSON) and `/metrics` (Prometheus).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::body::params;
use super::response::{json, no_content, Resp};
use crate::gateway::Gateway;

pub fn ping(gw: &Gateway, req: &Request<Incoming>) -> Resp {
    let verbose = params(req.uri().query())
        .get("verbose")
        .is_some_and(|v| v == "true" || v == "1");
    if verbose {
        json(StatusCode::OK, &json!({ "version": gw.influxd_version() }))
    } else {
        no_content()
    }
}

/// 200 when this node can take writes that wait for its influxd; 503 otherwise, with the
/// reason, so load balancers route around it.
pub fn health(gw: &Gateway) -> Resp {
    let raft = gw.raft.status();
    let applier = gw.applier.borrow().clone();
    let (ok, message) = if raft.leader == 0 {
        (
            false,
            "no leader known: this node may be cut off from the quorum".to_owned(),
        )
    } else if !applier.influxd_up {
        (
            false,
            format!(
                "local influxd unavailable: {}",
                applier.influxd_error.as_deref().unwrap_or("not answering")
            ),
        )
    } else if let Some(r) = applier.rebuilding {
        (
            false,
            format!(
                "rebuilding influxd from the log: applied {} of {}",
                applier.applied, r.target
            ),
        )
    } else {
        (true, "ready for queries and writes".to_owned())
    };
    let body = json!({
        "name": "influx-gateway",
        "status": if ok { "pass" } else { "fail" },
        "message": message,
        "version": gw.influxd_version(),
        "node": raft.id,
        "role": raft.role.as_str(),
        "leader": if raft.leader == 0 { serde_json::Value::Null } else { raft.leader.into() },
        "term": raft.term,
        "committed": raft.commit,
        "applied": applier.applied,
        "influxd": if applier.influxd_up { "up" } else { "down" },
        "rebuild": applier.rebuilding.map(|r| json!({
            "from": r.from,
            "target": r.target,
            "applied": applier.applied,
            "committed": raft.commit,
            "progress": progress(r.from, r.target, applier.applied),
        })),
    });
    json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

fn progress(from: u64, target: u64, applied: u64) -> f64 {
    if target <= from {
        return 1.0;
    }
    ((applied.saturating_sub(from)) as f64 / (target - from) as f64).min(1.0)
}

pub fn status(gw: &Gateway) -> Resp {
    let log = gw.log.stats();
    let body = json!({
        "raft": gw.raft.status(),
        "applier": *gw.applier.borrow(),
        "log": {
            "path": gw.log.path().display().to_string(),
            "disk_entries": log.disk_entries,
            "disk_bytes": log.disk_bytes,
            "memory_entries": log.memory_entries,
            "memory_bytes": log.memory_bytes,
            "memory_budget": gw.config.memory_budget,
            "memory_hits": log.memory_hits,
            "memory_misses": log.memory_misses,
            "syncs": log.syncs,
        },
        "pending_requests": gw.pending.len(),
    });
    json(StatusCode::OK, &body)
}

pub fn metrics(gw: &Gateway) -> Resp {
    let mut r = hyper::Response::new(super::response::full(gw.metrics.render(gw)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
