//! The life of a replicated request, in one place: can this node take it (readiness), propose
//! it, wait for its commit, wait for the local applier's outcome. Writes, state-changing
//! queries, linearizable reads, membership changes and `/health` all ask here, so they cannot
//! disagree about whether the node is ready.
//!
//! Once proposed, an entry may commit whatever happens to the request, so every failure past
//! the proposal is an unknown or a pending outcome, never a definite one.

use std::sync::Arc;
use std::time::Duration;

use raft::prelude::ConfChange;
use snapshotless::{entry, ApplierStatus, Outcome};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::log_disk::{DiskFull, LogDisk};
use crate::pending::{Pending, Ticket};
use crate::raft::packing::Packing;
use crate::raft::{ProposeError, RaftHandle, RaftStatus, Refused};

/// What a request waits for before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Committed on a quorum only: answered even while the local influxd is down.
    Committed,
    /// Committed on a quorum and applied to this node's influxd (read-your-writes here).
    Applied,
}

/// Why this node cannot take a request now. Nothing was proposed: safe to retry elsewhere.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unavailable {
    #[error("this node is not a member of the cluster")]
    NotMember,
    #[error(transparent)]
    Refused(#[from] ProposeError),
    #[error("local influxd unavailable: {0}; writes with consistency=any are still accepted")]
    InfluxdDown(String),
    #[error(
        "local influxd is being rebuilt from the log (applied {applied} of {target}); writes with consistency=any are still accepted"
    )]
    Rebuilding { applied: u64, target: u64 },
    #[error(
        "local influxd is being seeded from a copy of a peer's ({phase}); writes with consistency=any are still accepted"
    )]
    Seeding { phase: &'static str },
    /// The log's disk is below its reserve, or the log cannot be written for want of space.
    #[error(transparent)]
    DiskFull(#[from] DiskFull),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplicateError {
    /// Nothing was proposed (503).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// Proposed, and not known to be committed (500). `leader_lost`: the leader went before
    /// the entry was seen to commit (else the wait timed out).
    #[error("{what} outcome unknown: {why}; it may or may not have been committed")]
    Unknown {
        what: &'static str,
        why: String,
        leader_lost: bool,
    },
    /// Committed, and not known to be applied here (500).
    #[error(
        "{why}: the {what} was committed at index {index} and will be applied when possible, \
         but influxd's verdict on it is unknown"
    )]
    NotApplied {
        what: &'static str,
        index: u64,
        why: String,
    },
    /// No read index could be had, or the local influxd did not reach it in time (503).
    #[error("linearizable read unavailable: {0}")]
    NoReadIndex(String),
}

/// Cheap to clone: every handler that replicates holds one.
#[derive(Clone)]
pub struct Replicator {
    raft: RaftHandle,
    pending: Arc<Pending>,
    applier: watch::Receiver<ApplierStatus>,
    disk: LogDisk,
    timeout: Duration,
    /// How long a request waits for a leader before it is refused with 503: an election's
    /// worth, so that an election (a leader killed, a heal) is a pause for clients, not an
    /// error each of them must retry.
    leader_wait: Duration,
    /// Whether a large command is packed before it is proposed.
    packing: Packing,
}

impl Replicator {
    pub fn new(
        raft: RaftHandle,
        pending: Arc<Pending>,
        applier: watch::Receiver<ApplierStatus>,
        disk: LogDisk,
        timeout: Duration,
        leader_wait: Duration,
    ) -> Replicator {
        Replicator {
            raft,
            pending,
            applier,
            disk,
            timeout: timeout.max(Duration::from_millis(1)),
            leader_wait,
            packing: Packing::off(),
        }
    }

    /// Packs large commands while `packing` says the cluster reads them.
    pub fn with_packing(self, packing: Packing) -> Replicator {
        Replicator { packing, ..self }
    }

    pub fn raft(&self) -> RaftStatus {
        self.raft.status()
    }

    pub fn applier(&self) -> ApplierStatus {
        self.applier.borrow().clone()
    }

    pub fn disk(&self) -> &LogDisk {
        &self.disk
    }

    /// Whether a large command proposed now is packed.
    pub fn packs_now(&self) -> bool {
        self.packing.now()
    }

    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// The version clients see: the local influxd's, as it reported it.
    pub fn influxd_version(&self) -> String {
        self.applier
            .borrow()
            .influxd_version
            .clone()
            .unwrap_or_else(|| "1.6.7".into())
    }

    /// When a request arriving now must be answered.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// The one decision on whether this node can take a request that waits for `wait`.
    pub fn readiness(&self, wait: Wait) -> Result<(), Unavailable> {
        let raft = self.raft.status();
        if !raft.member && raft.commit > 0 {
            return Err(Unavailable::NotMember);
        }
        if raft.leader == 0 {
            return Err(ProposeError::NoLeader.into());
        }
        // Whatever the request waits for, its entry must be appended to this node's log.
        self.disk.check()?;
        if wait == Wait::Committed {
            return Ok(());
        }
        let applier = self.applier.borrow();
        if !applier.influxd_up {
            let why = applier.influxd_error.as_deref().unwrap_or("not answering");
            return Err(Unavailable::InfluxdDown(why.to_owned()));
        }
        if let Some(s) = &applier.seeding {
            return Err(Unavailable::Seeding { phase: s.phase });
        }
        if let Some(r) = applier.rebuilding {
            return Err(Unavailable::Rebuilding {
                applied: applier.applied,
                target: r.target,
            });
        }
        Ok(())
    }

    /// Waits until this node knows a leader, at most until the leader wait has passed since
    /// it lost the last one (and `deadline`): an election ends within that, so a node still
    /// leaderless after it is cut off from the quorum, and answers 503 at once from then on.
    /// Nothing is proposed meanwhile, so a request still refused has changed nothing.
    pub async fn await_leader(&self, deadline: Instant) {
        let status = self.raft.status();
        let Some(since) = status.leaderless_since.filter(|_| status.leader == 0) else {
            return;
        };
        let until = deadline.min(Instant::from_std(since) + self.leader_wait);
        let mut status = self.raft.status_watch();
        let _ = timeout_at(until, status.wait_for(|s| s.leader != 0 || !s.member)).await;
    }

    /// `command` as it is proposed: packed if it is large and every member reads packed
    /// entries. Compressed here, once, rather than by every node's log.
    fn pack(&self, command: Vec<u8>) -> Vec<u8> {
        if command.len() < entry::PACK_MIN || !self.packing.now() {
            return command;
        }
        entry::pack(&command).unwrap_or(command)
    }

    /// Proposes `command` and waits as asked; with [`Wait::Applied`], returns influxd's
    /// outcome for it. `what` names the request in messages ("write", "query").
    pub async fn replicate(
        &self,
        what: &'static str,
        command: Vec<u8>,
        wait: Wait,
        deadline: Instant,
    ) -> Result<Option<Outcome>, ReplicateError> {
        let mut command = self.pack(command);
        let mut refusals = 0;
        let mut ticket = loop {
            self.await_leader(deadline).await;
            self.readiness(wait)?;
            let ticket = self.pending.register();
            match self.raft.propose(ticket.origin.to_context(), command).await {
                Ok(()) => break ticket,
                // The leader was lost between the check and the proposal, which raft-rs
                // refused: wait for the next one, as a request that found none does.
                Err(Refused {
                    error: ProposeError::NoLeader,
                    data,
                }) if refusals < 3 => {
                    refusals += 1;
                    command = data;
                    // The published status may not show the loss yet.
                    let mut status = self.raft.status_watch();
                    let soon = deadline.min(Instant::now() + Duration::from_millis(200));
                    let _ = timeout_at(soon, status.wait_for(|s| s.leader == 0)).await;
                }
                Err(r) => return Err(Unavailable::from(r.error).into()),
            }
        };
        let index = committed(&mut ticket, deadline, what, self.timeout).await?;
        match wait {
            Wait::Committed => Ok(None),
            Wait::Applied => self
                .applied(&mut ticket, index, deadline, what)
                .await
                .map(Some),
        }
    }

    /// As [`Replicator::replicate`], for a write carrying an idempotency key: one whose leader
    /// was lost before it was seen to commit is proposed again once there is a new leader,
    /// within the deadline. The applier applies at most one of the copies, whichever commits
    /// first, and answers the others with its outcome, so the client gets that outcome rather
    /// than "outcome unknown". If no copy can be proposed, the answer stays "unknown": the
    /// first may still commit.
    pub async fn replicate_keyed(
        &self,
        what: &'static str,
        command: Vec<u8>,
        wait: Wait,
        deadline: Instant,
    ) -> Result<Option<Outcome>, ReplicateError> {
        let mut unknown = None;
        loop {
            match self.replicate(what, command.clone(), wait, deadline).await {
                Err(
                    e @ ReplicateError::Unknown {
                        leader_lost: true, ..
                    },
                ) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "proposing a keyed write again under the next leader");
                    unknown.get_or_insert(e);
                }
                Err(ReplicateError::Unavailable(_)) if unknown.is_some() => {
                    return Err(unknown.expect("checked"))
                }
                r => return r,
            }
        }
    }

    /// Waits for the outcome of the entry committed at `index` on this node's influxd. If that
    /// influxd becomes unavailable meanwhile, the answer comes at once: the entry is durable
    /// and will be applied when influxd returns, but influxd's verdict on it is not known now.
    async fn applied(
        &self,
        ticket: &mut Ticket,
        index: u64,
        deadline: Instant,
        what: &'static str,
    ) -> Result<Outcome, ReplicateError> {
        let not_applied = |why: String| ReplicateError::NotApplied { what, index, why };
        let mut status = self.applier.clone();
        tokio::select! {
            outcome = timeout_at(deadline, &mut ticket.applied) => match outcome {
                Ok(Ok(o)) => Ok(o),
                Ok(Err(_)) => Err(not_applied("its local apply was abandoned".into())),
                Err(_) => Err(not_applied(format!(
                    "timeout: not applied to this node's influxd within {:?}",
                    self.timeout
                ))),
            },
            _ = status.wait_for(|s| !s.influxd_up) => Err(not_applied(
                "this node's influxd became unavailable before applying it".into(),
            )),
        }
    }

    /// Waits for a read index from the leader, then for the local applier to reach it: a read
    /// after this sees every write acknowledged anywhere before it started.
    pub async fn linearizable(&self) -> Result<(), ReplicateError> {
        let deadline = self.deadline();
        // A Raft node waiting for disk space handles nothing, a read index request included:
        // say so now rather than at the deadline.
        if self.disk.persist_failing() {
            if let Err(e) = self.disk.check() {
                return Err(ReplicateError::NoReadIndex(e.to_string()));
            }
        }
        self.await_leader(deadline).await;
        let mut ticket = self.pending.register();
        self.raft
            .read_index(ticket.origin.request)
            .map_err(|e| ReplicateError::NoReadIndex(e.to_string()))?;
        let index = match timeout_at(deadline, &mut ticket.read_index).await {
            Ok(Ok(i)) => i,
            Ok(Err(_)) => {
                return Err(ReplicateError::NoReadIndex(
                    "this node lost its leader".into(),
                ))
            }
            Err(_) => {
                return Err(ReplicateError::NoReadIndex(
                    "no read index from a quorum in time".into(),
                ))
            }
        };
        let mut status = self.applier.clone();
        let reached = timeout_at(deadline, status.wait_for(|s| s.applied >= index))
            .await
            .is_ok_and(|r| r.is_ok());
        if !reached {
            return Err(ReplicateError::NoReadIndex(format!(
                "the local influxd has not applied up to the read index {index} in time"
            )));
        }
        Ok(())
    }

    /// Proposes a membership change and returns once the membership shows it (`done`).
    /// Operators change the membership precisely when a node died, and that node may have
    /// been the leader: a change forwarded to it is lost with it. So a change whose leader was
    /// lost before it committed is proposed again once a new leader is known, until the
    /// timeout. That is safe because `done` is checked first and the Raft node skips a change
    /// that would be a no-op or a demotion.
    pub async fn change_membership(
        &self,
        cc: ConfChange,
        done: impl Fn(&RaftStatus) -> bool,
    ) -> Result<(), ReplicateError> {
        let deadline = self.deadline();
        let mut status = self.raft.status_watch();
        loop {
            // Wait for a leader (and return if the change already shows).
            let waited = timeout_at(deadline, status.wait_for(|s| done(s) || s.leader != 0))
                .await
                .map(|r| r.map(|s| done(&s)));
            match waited {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) => {}
                Ok(Err(_)) => return Err(Unavailable::from(ProposeError::Stopped).into()),
                Err(_) => return Err(Unavailable::from(ProposeError::NoLeader).into()),
            }
            let mut ticket = self.pending.register();
            match self
                .raft
                .propose_conf_change(ticket.origin.to_context(), cc.clone())
                .await
            {
                Ok(()) => {}
                // The leader went away between the check and the proposal: wait for the next.
                Err(ProposeError::NoLeader) => continue,
                Err(e) => return Err(Unavailable::from(e).into()),
            }
            let committed = tokio::select! {
                c = &mut ticket.committed => c.is_ok(),
                Ok(_) = status.wait_for(|s| done(s)) => return Ok(()),
                _ = sleep_until(deadline) => {
                    return Err(ReplicateError::Unknown {
                        leader_lost: false,
                        what: "membership change",
                        why: "not confirmed in time (another change may be in progress); check with GET /admin/members".into(),
                    })
                }
            };
            if committed {
                // Answer once this node applied the change.
                let _ = timeout_at(deadline, status.wait_for(|s| done(s))).await;
                return Ok(());
            }
            // The leader was lost before the change committed here: it may be lost, or commit
            // under the next leader. The loop finds out from the membership, or proposes again.
        }
    }
}

async fn committed(
    ticket: &mut Ticket,
    deadline: Instant,
    what: &'static str,
    timeout: Duration,
) -> Result<u64, ReplicateError> {
    match timeout_at(deadline, &mut ticket.committed).await {
        Ok(Ok(index)) => Ok(index),
        Ok(Err(_)) => Err(ReplicateError::Unknown {
            what,
            why: "this node lost its leader before the entry was confirmed committed".into(),
            leader_lost: true,
        }),
        Err(_) => Err(ReplicateError::Unknown {
            what,
            why: format!("timeout: not confirmed committed within {timeout:?}"),
            leader_lost: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::RaftStatus;

    const LEADER_WAIT: Duration = Duration::from_secs(2);

    fn replicator(raft: RaftStatus) -> (Replicator, watch::Sender<RaftStatus>) {
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        let (raft_tx, raft_rx) = watch::channel(raft);
        let (_applier_tx, applier_rx) = watch::channel(ApplierStatus::default());
        let r = Replicator::new(
            RaftHandle::new(tx, raft_rx),
            Pending::new(1),
            applier_rx,
            LogDisk::new(std::env::temp_dir(), 0),
            Duration::from_secs(10),
            LEADER_WAIT,
        );
        (r, raft_tx)
    }

    fn leaderless(for_: Duration) -> RaftStatus {
        RaftStatus {
            id: 1,
            member: true,
            commit: 5,
            leaderless_since: Some(std::time::Instant::now() - for_),
            ..RaftStatus::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_during_an_election_waits_for_the_new_leader() {
        let (r, raft_tx) = replicator(leaderless(Duration::ZERO));
        let started = Instant::now();
        let elected = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            raft_tx.send_modify(|s| {
                s.leader = 3;
                s.leaderless_since = None;
            });
            raft_tx
        });
        r.await_leader(started + Duration::from_secs(10)).await;
        assert_eq!(r.raft().leader, 3);
        assert!(started.elapsed() < LEADER_WAIT, "{:?}", started.elapsed());
        assert!(r.readiness(Wait::Committed).is_ok());
        drop(elected.await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_leaderless_for_longer_than_an_election_refuses_at_once() {
        let (r, _raft_tx) = replicator(leaderless(LEADER_WAIT * 3));
        let started = Instant::now();
        r.await_leader(started + Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(
            r.readiness(Wait::Committed),
            Err(Unavailable::Refused(ProposeError::NoLeader))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_for_a_leader_ends_with_the_election_time_or_the_deadline() {
        // No leader comes: the wait ends an election's time after the leader was lost...
        let (r, _raft_tx) = replicator(leaderless(Duration::from_millis(500)));
        let started = Instant::now();
        r.await_leader(started + Duration::from_secs(10)).await;
        let waited = started.elapsed();
        assert!(
            waited <= LEADER_WAIT - Duration::from_millis(400),
            "{waited:?}"
        );
        assert!(
            waited >= LEADER_WAIT - Duration::from_millis(600),
            "{waited:?}"
        );
        // ... or at the request's deadline if that comes first.
        let (r, _raft_tx) = replicator(leaderless(Duration::ZERO));
        let started = Instant::now();
        r.await_leader(started + Duration::from_millis(100)).await;
        assert!(started.elapsed() <= Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_waiting_for_disk_space_refuses_reads_and_writes_at_once() {
        let (r, _raft_tx) = replicator(RaftStatus {
            id: 1,
            leader: 2,
            member: true,
            ..RaftStatus::default()
        });
        r.disk()
            .persist_failed("no space left on the disk of the raft log".into());
        let started = Instant::now();
        match r.linearizable().await {
            Err(ReplicateError::NoReadIndex(why)) => {
                assert!(why.contains("cannot write its raft log"), "{why}")
            }
            other => panic!("expected a refused read, got {other:?}"),
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(matches!(
            r.readiness(Wait::Committed),
            Err(Unavailable::DiskFull(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_with_a_leader_does_not_wait() {
        let (r, _raft_tx) = replicator(RaftStatus {
            id: 1,
            leader: 2,
            member: true,
            ..RaftStatus::default()
        });
        let started = Instant::now();
        r.await_leader(started + Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
