//! What a node says about itself: `/ping` (as influxd), `/health` (ready or not, and why),
//! `/status` (the whole picture as JSON) and `/metrics` (Prometheus).

use axum::extract::{RawQuery, State};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde_json::json;

use super::body::params;
use super::response::{json, no_content, Resp};
use crate::raft::RaftStatus;
use crate::replicate::{Replicator, Wait};
use crate::state::NodeView;
use snapshotless::ApplierStatus;

pub async fn ping(State(replicator): State<Replicator>, RawQuery(query): RawQuery) -> Resp {
    let verbose = params(query.as_deref())
        .get("verbose")
        .is_some_and(|v| v == "true" || v == "1");
    if verbose {
        json(
            StatusCode::OK,
            &json!({ "version": replicator.influxd_version() }),
        )
    } else {
        no_content()
    }
}

/// 200 when this node can take writes that wait for its influxd, by the same decision the
/// write path makes; 503 otherwise, with the reason, so load balancers route around it.
pub async fn health(State(replicator): State<Replicator>) -> Resp {
    let readiness = replicator.readiness(Wait::Applied);
    let raft = replicator.raft();
    let applier = replicator.applier();
    let message = match &readiness {
        Ok(()) => "ready for queries and writes".to_owned(),
        Err(why) => why.to_string(),
    };
    let body = json!({
        "name": "influx-gateway",
        "status": if readiness.is_ok() { "pass" } else { "fail" },
        "message": message,
        "version": replicator.influxd_version(),
        "node": raft.id,
        "role": raft.role.as_str(),
        "leader": if raft.leader == 0 { serde_json::Value::Null } else { raft.leader.into() },
        "term": raft.term,
        "committed": raft.commit,
        "applied": applier.applied,
        "influxd": if applier.influxd_up { "up" } else { "down" },
        "rebuild": rebuild(&raft, &applier),
        "seed": seed(&applier),
    });
    let status = match readiness {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    json(status, &body)
}

/// A rebuild under way, with its progress from 0 to 1; null when none runs. `/health` and
/// `/status` (and so the status page) say it alike.
fn rebuild(raft: &RaftStatus, applier: &ApplierStatus) -> serde_json::Value {
    applier.rebuilding.map_or(serde_json::Value::Null, |r| {
        json!({
            "from": r.from,
            "target": r.target,
            "applied": applier.applied,
            "committed": raft.commit,
            "progress": progress(r.from, r.target, applier.applied),
        })
    })
}

/// A seed under way, with its progress from 0 to 1 (bytes received of the copy); null when
/// none runs.
fn seed(applier: &ApplierStatus) -> serde_json::Value {
    applier.seeding.as_ref().map_or(serde_json::Value::Null, |s| {
        json!({
            "reason": s.reason,
            "phase": s.phase,
            "source": s.source,
            "need": s.need,
            "bytes_copied": s.bytes_done,
            "bytes_total": s.bytes_total,
            "progress": if s.bytes_total == 0 { 0.0 } else { (s.bytes_done as f64 / s.bytes_total as f64).min(1.0) },
            "elapsed_seconds": s.started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            "last_error": applier.last_seed_error,
        })
    })
}

fn progress(from: u64, target: u64, applied: u64) -> f64 {
    if target <= from {
        return 1.0;
    }
    ((applied.saturating_sub(from)) as f64 / (target - from) as f64).min(1.0)
}

pub async fn status(State(node): State<NodeView>) -> Resp {
    json(StatusCode::OK, &status_document(&node))
}

/// What `/status` answers; the status page (ui.rs) is rendered from the same document, and
/// its script refreshes itself from `/status`, so both always show the same figures.
pub(super) fn status_document(node: &NodeView) -> serde_json::Value {
    let s = node.snapshot();
    let log = json!({
            "path": node.log.path().display().to_string(),
            "first_index": s.log.first_index,
            "disk_entries": s.log.disk_entries,
            "disk_bytes": s.log.disk_bytes,
            "dir_bytes": s.log.dir_bytes,
            "trimmed_entries": s.log.trimmed_entries_total,
            "trimmed_bytes": s.log.trimmed_bytes_total,
            "memory_entries": s.log.memory_entries,
            "memory_bytes": s.log.memory_bytes,
            "memory_budget": node.memory_budget,
            "memory_hits": s.log.memory_hits,
            "memory_misses": s.log.memory_misses,
            "syncs": s.log.syncs,
            // Large writes this node proposes now are packed (every member reads them), and
            // builds older than packing refuse this log (it holds packed entries).
            "packing": node.replicator.packs_now(),
            "fenced": node.log.fenced(),
    });
    let mut doc = document(&s.raft, &s.applier, log, s.pending);
    doc["disk"] = s.disk.status();
    doc
}

/// The `/status` document from its parts; the log's figures come ready-made, since they need
/// the open log.
pub(super) fn document(
    raft: &RaftStatus,
    applier: &ApplierStatus,
    log: serde_json::Value,
    pending: usize,
) -> serde_json::Value {
    json!({
        "node": raft.id,
        "apply_lag": raft.commit.saturating_sub(applier.applied),
        "rebuild": rebuild(raft, applier),
        "seed": seed(applier),
        "raft": raft,
        "applier": applier,
        "log": log,
        "pending_requests": pending,
    })
}

pub async fn metrics(State(node): State<NodeView>) -> Resp {
    let mut r = Resp::new(node.metrics.render(&node.snapshot()).into());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::Pending;
    use crate::raft::RaftHandle;
    use snapshotless::status::{Rebuild, SeedReason, Seeding};
    use std::time::Duration;
    use tokio::sync::watch;

    fn replicator(raft: RaftStatus, applier: ApplierStatus) -> Replicator {
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        let (_raft_tx, raft_rx) = watch::channel(raft);
        let (_applier_tx, applier_rx) = watch::channel(applier);
        // The senders may go: a watch receiver keeps the last value.
        Replicator::new(
            RaftHandle::new(tx, raft_rx),
            Pending::new(1),
            applier_rx,
            crate::log_disk::LogDisk::new(std::env::temp_dir(), 0),
            Duration::from_secs(1),
            Duration::ZERO,
        )
    }

    /// `/health` is what load balancers route by: it must call a node ready exactly when the
    /// write path would take a write that waits for the local influxd.
    #[tokio::test]
    async fn health_answers_what_the_write_path_decides() {
        let led = RaftStatus {
            id: 1,
            leader: 2,
            commit: 10,
            member: true,
            ..RaftStatus::default()
        };
        let up = ApplierStatus {
            influxd_up: true,
            applied: 10,
            ..ApplierStatus::default()
        };
        let cases = [
            (led.clone(), up.clone(), true),
            (
                RaftStatus {
                    leader: 0,
                    ..led.clone()
                },
                up.clone(),
                false,
            ),
            (
                RaftStatus {
                    member: false,
                    ..led.clone()
                },
                up.clone(),
                false,
            ),
            (
                led.clone(),
                ApplierStatus {
                    influxd_up: false,
                    ..up.clone()
                },
                false,
            ),
            (
                led.clone(),
                ApplierStatus {
                    rebuilding: Some(Rebuild {
                        from: 0,
                        target: 10,
                    }),
                    ..up.clone()
                },
                false,
            ),
            (
                led.clone(),
                ApplierStatus {
                    seeding: Some(Seeding {
                        reason: SeedReason::Trimmed,
                        need: 8,
                        phase: "copying",
                        source: Some("2 (10.0.0.2:8089)".into()),
                        bytes_done: 25,
                        bytes_total: 100,
                        started: Some(std::time::Instant::now()),
                    }),
                    ..up.clone()
                },
                false,
            ),
        ];
        for (raft, applier, ready) in cases {
            let r2 = |raft: &RaftStatus, applier: &ApplierStatus| {
                replicator(raft.clone(), applier.clone())
            };
            let r = replicator(raft.clone(), applier.clone());
            let decided = r.readiness(Wait::Applied);
            assert_eq!(decided.is_ok(), ready, "{raft:?} {applier:?}");
            let answer = health(State(r)).await;
            let expected = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            assert_eq!(answer.status(), expected, "{raft:?} {applier:?}");
            let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if let Err(why) = decided {
                assert_eq!(body["message"], why.to_string());
            }
            if let Some(seeding) = &applier.seeding {
                assert_eq!(body["seed"]["phase"], seeding.phase);
                assert_eq!(body["seed"]["progress"], 0.25);
                assert_eq!(body["seed"]["source"], "2 (10.0.0.2:8089)");
                // consistency=any waits for the commit only: still taken.
                assert!(r2(&raft, &applier).readiness(Wait::Committed).is_ok());
            }
        }
    }
}
