//! `/admin/members`: the cluster's membership. GET lists it; POST `{"id", "peer_addr"}` adds
//! a node as a learner (promoted to voter once caught up); DELETE `?id=N` removes one.
//! Changes are proposed to Raft; the answer comes once the change is committed and applied.
//!
//! Who may use it: clients `admin_api` admits by address (checked first, so a client from
//! elsewhere learns nothing of the credentials), and with authentication an admin user.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::IntoResponse;
use hyper::{Method, StatusCode};
use raft::prelude::{ConfChange, ConfChangeType};
use serde::Deserialize;
use serde_json::json;

use super::body::{self, params};
use super::response::{error, json, ApiError, Resp};
use crate::auth::{Auth, Need};
use crate::config::AdminApi;
use crate::raft::RaftStatus;
use crate::replicate::Replicator;
use crate::state::Limits;

#[derive(Deserialize)]
struct AddMember {
    id: u64,
    peer_addr: String,
}

/// A membership change is a small JSON object.
const MAX_BODY: usize = 64 << 10;

pub async fn members(
    State(replicator): State<Replicator>,
    State(auth): State<Arc<Auth>>,
    State(admin_api): State<Arc<AdminApi>>,
    State(limits): State<Limits>,
    req: Request,
) -> Resp {
    if let Err(e) = admitted(&admin_api, &req) {
        return e.into_response();
    }
    if let Err(e) = auth
        .check(req.headers(), &params(req.uri().query()), Need::Membership)
        .await
    {
        return ApiError::from(e).into_response();
    }
    match *req.method() {
        Method::GET => list(&replicator),
        Method::POST => {
            let (parts, incoming) = req.into_parts();
            let max = MAX_BODY.min(limits.max_body_size);
            let body = match body::read(&parts.headers, incoming, max).await {
                Ok(b) => b,
                Err(e) => return e.into_response(),
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
            if replicator.raft().members.iter().any(|m| m.id == add.id) {
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
            change(&replicator, cc, move |s| {
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
            if !replicator.raft().members.iter().any(|m| m.id == id) {
                return error(StatusCode::NOT_FOUND, format!("node {id} is not a member"));
            }
            let cc = ConfChange {
                change_type: ConfChangeType::RemoveNode as i32,
                node_id: id,
                ..Default::default()
            };
            change(&replicator, cc, move |s| {
                s.members.iter().all(|m| m.id != id)
            })
            .await
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET, POST or DELETE"),
    }
}

/// Refuses a client `admin_api` does not admit, by the address it connected from.
fn admitted(admin_api: &AdminApi, req: &Request) -> Result<(), ApiError> {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match (admin_api, remote) {
        (AdminApi::On, _) => Ok(()),
        (AdminApi::Off, _) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin API is disabled on this node (admin_api = off)",
        )),
        (_, Some(ip)) if admin_api.admits(ip) => Ok(()),
        (_, Some(ip)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the admin API does not accept requests from {} (admin_api)",
                ip.to_canonical()
            ),
        )),
        (_, None) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin API cannot tell where this request comes from",
        )),
    }
}

fn list(replicator: &Replicator) -> Resp {
    let s = replicator.raft();
    json(
        StatusCode::OK,
        &json!({ "leader": s.leader, "term": s.term, "members": s.members }),
    )
}

/// Proposes `cc` and answers with the membership once it shows the change (`done`).
async fn change(
    replicator: &Replicator,
    cc: ConfChange,
    done: impl Fn(&RaftStatus) -> bool,
) -> Resp {
    match replicator.change_membership(cc, done).await {
        Ok(()) => list(replicator),
        Err(e) => ApiError::from(e).into_response(),
    }
}
