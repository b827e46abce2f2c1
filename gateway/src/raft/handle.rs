//! The rest of the gateway's way into the Raft thread: what it can be asked ([`Input`]), what
//! it publishes ([`RaftStatus`]), and the handle that does both without blocking.

use std::sync::mpsc::{SyncSender, TrySendError};

use raft::prelude::{ConfChange, Message};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

/// Whether raft-rs took a proposal.
pub type Reply = oneshot::Sender<Result<(), ProposeError>>;

/// A proposal that was not taken, with its data, so that it can be proposed again (a
/// proposal that found no leader is, once there is one).
#[derive(Debug)]
pub struct Refused {
    pub error: ProposeError,
    pub data: Vec<u8>,
}

/// What the node thread is asked to do.
pub enum Input {
    /// Propose a normal entry; the reply says whether raft-rs accepted it (a follower
    /// forwards it to the leader).
    Propose {
        context: Vec<u8>,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), Refused>>,
    },
    /// Propose a membership change.
    ConfChange {
        context: Vec<u8>,
        change: ConfChange,
        reply: Reply,
    },
    /// Ask for a read index; it arrives through `Pending::read_index`.
    ReadIndex { request: u64 },
    /// A message from a peer.
    Peer(Box<Message>),
    /// The transport could not deliver to this peer.
    Unreachable(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("no quorum: this node knows no leader (it may be cut off from the majority)")]
    NoLeader,
    #[error("the Raft node is overloaded; retry")]
    Overloaded,
    #[error("the proposal was dropped by Raft: {0}")]
    Dropped(String),
    #[error("the Raft node has stopped")]
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    #[default]
    Follower,
    Candidate,
    PreCandidate,
    Leader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "pre-candidate",
            Role::Leader => "leader",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberStatus {
    pub id: u64,
    pub peer_addr: Option<String>,
    /// "voter" or "learner".
    pub kind: &'static str,
    /// Highest index known replicated to it (only known on the leader).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<u64>,
    /// The index its influxd durably holds a marker for, as it last said (the leader hears
    /// from every member; a follower from the leader only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
}

/// How many leader changes [`RaftStatus::leader_changes`] keeps: enough to see a flapping
/// leader on the status page, few enough to publish with every status.
pub const LEADER_CHANGES_KEPT: usize = 16;

/// A change of leader as this node observed it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct LeaderChange {
    /// When this node learnt of it, in milliseconds since the Unix epoch (this node's clock).
    pub at_ms: u64,
    pub term: u64,
    /// The new leader; 0 when this node lost its leader and knows none.
    pub leader: u64,
}

/// Adds `change` to `history`, oldest first, forgetting the oldest beyond
/// [`LEADER_CHANGES_KEPT`].
pub fn remember_leader_change(history: &mut Vec<LeaderChange>, change: LeaderChange) {
    if history.len() >= LEADER_CHANGES_KEPT {
        history.drain(..=history.len() - LEADER_CHANGES_KEPT);
    }
    history.push(change);
}

/// A snapshot of the node's Raft state, published after every change.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct RaftStatus {
    pub id: u64,
    pub role: Role,
    /// 0 when no leader is known.
    pub leader: u64,
    /// When this node last lost its leader (or started), while it knows none.
    #[serde(skip)]
    pub leaderless_since: Option<std::time::Instant>,
    pub term: u64,
    /// Highest index committed and durable on this node (what the applier may apply).
    pub commit: u64,
    pub last_index: u64,
    pub members: Vec<MemberStatus>,
    /// Whether this node is part of the configuration at all.
    pub member: bool,
    /// The last leader changes this node saw since it started, oldest first (at most
    /// [`LEADER_CHANGES_KEPT`]).
    pub leader_changes: Vec<LeaderChange>,
}

/// The rest of the gateway's way into the Raft node. Cheap to clone.
#[derive(Clone)]
pub struct RaftHandle {
    tx: SyncSender<Input>,
    status: watch::Receiver<RaftStatus>,
}

impl RaftHandle {
    pub fn new(tx: SyncSender<Input>, status: watch::Receiver<RaftStatus>) -> RaftHandle {
        RaftHandle { tx, status }
    }

    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    pub fn leader(&self) -> u64 {
        self.status.borrow().leader
    }

    pub fn status_watch(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    /// Hands `input` to the Raft thread without blocking: a full inbox is an overload, not a
    /// wait. Refused at once when no leader is known, as raft-rs would refuse it.
    fn submit(&self, input: Input) -> Result<(), ProposeError> {
        if self.leader() == 0 {
            return Err(ProposeError::NoLeader);
        }
        self.tx.try_send(input).map_err(|e| match e {
            TrySendError::Full(_) => ProposeError::Overloaded,
            TrySendError::Disconnected(_) => ProposeError::Stopped,
        })
    }

    /// Submits a proposal and waits for raft-rs to accept it (not to commit it).
    async fn accepted(&self, input: impl FnOnce(Reply) -> Input) -> Result<(), ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.submit(input(reply))?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Proposes an entry; returns once raft-rs accepted it (a follower forwards it). A
    /// refusal for want of a leader hands the data back.
    pub async fn propose(&self, context: Vec<u8>, data: Vec<u8>) -> Result<(), Refused> {
        if self.leader() == 0 {
            let error = ProposeError::NoLeader;
            return Err(Refused { error, data });
        }
        let (reply, rx) = oneshot::channel();
        let input = Input::Propose {
            context,
            data,
            reply,
        };
        let (error, input) = match self.tx.try_send(input) {
            Ok(()) => {
                return rx.await.unwrap_or_else(|_| {
                    let error = ProposeError::Stopped;
                    Err(Refused {
                        error,
                        data: Vec::new(),
                    })
                })
            }
            Err(TrySendError::Full(input)) => (ProposeError::Overloaded, input),
            Err(TrySendError::Disconnected(input)) => (ProposeError::Stopped, input),
        };
        let Input::Propose { data, .. } = input else {
            unreachable!("the input sent was a proposal")
        };
        Err(Refused { error, data })
    }

    pub async fn propose_conf_change(
        &self,
        context: Vec<u8>,
        change: ConfChange,
    ) -> Result<(), ProposeError> {
        self.accepted(|reply| Input::ConfChange {
            context,
            change,
            reply,
        })
        .await
    }

    pub fn read_index(&self, request: u64) -> Result<(), ProposeError> {
        self.submit(Input::ReadIndex { request })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_history_keeps_the_newest_changes_only() {
        let mut history = Vec::new();
        for term in 1..=LEADER_CHANGES_KEPT as u64 + 5 {
            remember_leader_change(
                &mut history,
                LeaderChange {
                    at_ms: term * 1000,
                    term,
                    leader: term % 3,
                },
            );
            assert!(history.len() <= LEADER_CHANGES_KEPT);
        }
        assert_eq!(history.len(), LEADER_CHANGES_KEPT);
        assert_eq!(history[0].term, 6);
        assert_eq!(history.last().unwrap().term, LEADER_CHANGES_KEPT as u64 + 5);
    }
}
