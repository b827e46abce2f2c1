//! `/admin/members`: the cluster's membership. GET lists it; POST `{"id", "peer_addr"}` adds
//! a node as a learner (promoted to voter once caught up); DELETE `?id=N` removes one.
//! Changes are proposed to Raft; the answer comes once the change is committed and applied.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use raft::prelude::{ConfChange, ConfChangeType};
use serde::Deserialize;
use serde_json::json;
use tokio::time::timeout_at;

use super::body::params;
use super::response::{error, json, Resp};
use crate::auth::Need;
use crate::gateway::Gateway;
use crate::raft::{ProposeError, RaftStatus};

#[derive(Deserialize)]
struct AddMember {
    id: u64,
    peer_addr: String,
}

pub async fn members(gw: &Arc<Gateway>, req: Request<Incoming>) -> Resp {
    if let Err(e) = gw
        .auth
        .check(req.headers(), &params(req.uri().query()), Need::Admin)
        .await
    {
        return e.into();
    }
    match *req.method() {
        Method::GET => list(gw),
        Method::POST => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            let add: AddMember = match serde_json::from_slice(&body) {
                Ok(a) => a,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("expected {{\"id\": N, \"peer_addr\": \"host:port\"}}: {e}"),
                    )
                }
            };
            if add.id == 0 {
                return error(StatusCode::BAD_REQUEST, "node id 0 is reserved by Raft");
            }
            if gw.raft.status().members.iter().any(|m| m.id == add.id) {
                return error(
                    StatusCode::CONFLICT,
                    format!("node {} is already a member", add.id),
                );
            }
            let cc = ConfChange {
                change_type: ConfChangeType::AddLearnerNode as i32,
                node_id: add.id,
                context: add.peer_addr.into_bytes(),
                ..Default::default()
            };
            let (id, addr) = (
                cc.node_id,
                String::from_utf8_lossy(&cc.context).into_owned(),
            );
            change(gw, cc, move |s| {
                s.members
                    .iter()
                    .any(|m| m.id == id && m.peer_addr.as_deref() == Some(addr.as_str()))
            })
            .await
        }
        Method::DELETE => {
            let id = params(req.uri().query())
                .get("id")
                .and_then(|v| v.parse::<u64>().ok());
            let Some(id) = id else {
                return error(StatusCode::BAD_REQUEST, "DELETE /admin/members?id=N");
            };
            if !gw.raft.status().members.iter().any(|m| m.id == id) {
                return error(StatusCode::NOT_FOUND, format!("node {id} is not a member"));
            }
            let cc = ConfChange {
                change_type: ConfChangeType::RemoveNode as i32,
                node_id: id,
                ..Default::default()
            };
            change(gw, cc, move |s| s.members.iter().all(|m| m.id != id)).await
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET, POST or DELETE"),
    }
}

fn list(gw: &Gateway) -> Resp {
    let s = gw.raft.status();
    json(
        StatusCode::OK,
        &json!({ "leader": s.leader, "term": s.term, "members": s.members }),
    )
}

/// Proposes `cc` and answers once the membership shows it (`done`). Operators change the
/// membership precisely when a node died, and that node may have been the leader: a change
/// forwarded to it is lost with it. So a change whose leader was lost before it committed is
/// proposed again once a new leader is known, until the write timeout. That is safe because
/// `done` is checked first and the node skips a change that would be a no-op or a demotion.
async fn change(gw: &Arc<Gateway>, cc: ConfChange, done: impl Fn(&RaftStatus) -> bool) -> Resp {
    let deadline = tokio::time::Instant::now() + gw.config.write_timeout;
    let mut status = gw.raft.status_watch();
    loop {
        // Wait for a leader (and return if the change already shows).
        let waited = timeout_at(deadline, status.wait_for(|s| done(s) || s.leader != 0))
            .await
            .map(|r| r.map(|s| done(&s)));
        match waited {
            Ok(Ok(true)) => return list(gw),
            Ok(Ok(false)) => {}
            Ok(Err(_)) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProposeError::Stopped.to_string(),
                )
            }
            Err(_) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProposeError::NoLeader.to_string(),
                )
            }
        }
        let mut ticket = gw.pending.register();
        match gw
            .raft
            .propose_conf_change(ticket.origin.to_context(), cc.clone())
            .await
        {
            Ok(()) => {}
            // The leader went away between the check and the proposal: wait for the next.
            Err(ProposeError::NoLeader) => continue,
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
        let committed = tokio::select! {
            c = &mut ticket.committed => c.is_ok(),
            Ok(_) = status.wait_for(|s| done(s)) => return list(gw),
            _ = tokio::time::sleep_until(deadline) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "membership change outcome unknown: not confirmed in time (another change may be in progress); check with GET /admin/members",
                )
            }
        };
        if committed {
            // Answer with the membership once this node applied the change.
            let _ = timeout_at(deadline, status.wait_for(|s| done(s))).await;
            return list(gw);
        }
        // The leader was lost before the change committed here: it may be lost, or commit
        // under the next leader. The loop finds out from the membership, or proposes it again.
    }
}
