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
            change(gw, cc).await
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
            change(gw, cc).await
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

async fn change(gw: &Arc<Gateway>, cc: ConfChange) -> Resp {
    let deadline = tokio::time::Instant::now() + gw.config.write_timeout;
    let mut ticket = gw.pending.register();
    if let Err(e) = gw
        .raft
        .propose_conf_change(ticket.origin.to_context(), cc)
        .await
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    match timeout_at(deadline, &mut ticket.committed).await {
        Ok(Ok(_)) => list(gw),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "membership change outcome unknown: not confirmed in time (another change may be in progress); check with GET /admin/members",
        ),
    }
}
