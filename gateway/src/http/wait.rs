//! Waiting on a proposed entry: first for its commit, then for the local applier's outcome.
//! Once proposed, an entry may commit whatever happens to the request, so every failure past
//! this point is an unknown or a pending outcome (500), never a definite one.

use std::time::Duration;

use hyper::StatusCode;
use snapshotless::Outcome;
use tokio::time::{timeout_at, Instant};

use super::response::{error, Resp};
use crate::gateway::Gateway;
use crate::pending::Ticket;

/// `what` names the request in messages: "write" or "query".
pub async fn committed(
    gw: &Gateway,
    ticket: &mut Ticket,
    deadline: Instant,
    what: &str,
) -> Result<u64, Resp> {
    let unknown = |why: String| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} outcome unknown: {why}; it may or may not have been committed"),
        )
    };
    match timeout_at(deadline, &mut ticket.committed).await {
        Ok(Ok(index)) => Ok(index),
        Ok(Err(_)) => Err(unknown(
            "this node lost its leader before the entry was confirmed committed".into(),
        )),
        Err(_) => Err(unknown(format!(
            "timeout: not confirmed committed within {:?}",
            gw.config.write_timeout
        ))),
    }
}

/// Waits for the outcome of the entry committed at `index` on this node's influxd. If that
/// influxd becomes unavailable meanwhile, the answer comes at once: the entry is durable and
/// will be applied when influxd returns, but influxd's verdict on it cannot be known now.
pub async fn applied(
    gw: &Gateway,
    ticket: &mut Ticket,
    index: u64,
    deadline: Instant,
    what: &str,
) -> Result<Outcome, Resp> {
    let mut status = gw.applier.clone();
    tokio::select! {
        outcome = timeout_at(deadline, &mut ticket.applied) => match outcome {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(_)) => Err(pending(what, index, "its local apply was abandoned")),
            Err(_) => Err(pending(
                what,
                index,
                &format!("timeout: not applied to this node's influxd within {:?}", gw.config.write_timeout),
            )),
        },
        _ = status.wait_for(|s| !s.influxd_up) => Err(pending(
            what,
            index,
            "this node's influxd became unavailable before applying it",
        )),
    }
}

fn pending(what: &str, index: u64, why: &str) -> Resp {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "{why}: the {what} was committed at index {index} and will be applied when possible, \
             but influxd's verdict on it is unknown"
        ),
    )
}

/// How long a request may still wait.
pub fn deadline(gw: &Gateway) -> Instant {
    Instant::now() + gw.config.write_timeout.max(Duration::from_millis(1))
}
