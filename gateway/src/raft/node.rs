//! The Raft loop: one thread owns the `RawNode`, ticks it, feeds it proposals and peer
//! messages, and handles each `Ready` in the order the protocol requires:
//!
//! 1. send the leader's messages (they may go out before the local write: the followers'
//!    disks and ours work in parallel);
//! 2. handle newly committed entries (membership changes, commit notifications);
//! 3. persist new entries and the HardState as ONE synced write batch;
//! 4. answer read-index requests, then send the messages that required the write
//!    (votes, append responses);
//! 5. advance, and do the same for the light ready.
//!
//! Every write of the log from this loop goes through [`Node::persist`]. A full disk stalls
//! the loop there, retrying the same batch, rather than advancing past a Ready that is not
//! durable: the node behaves as a paused one (the others elect a leader if it led), refuses
//! writes meanwhile (log_disk.rs), and goes on by itself once space is freed.
//!
//! Normal entries are not applied here: the applier reads them from the log on its own, at
//! influxd's pace, so a slow influxd never slows Raft down. This loop only tells it how far
//! the committed, locally durable log reaches.
//!
//! It also bounds the log. The leader decides how far it may be trimmed (trim.rs) and
//! proposes a [`Trim`] entry; every node trims its own log when that entry commits. A
//! follower that needs entries the leader no longer holds gets a snapshot without data: it
//! takes the log position from it, and its applier, finding the entries it needs trimmed,
//! has its influxd seeded from a peer's (seed.rs).

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hybrid_log::{HybridLog, LogBatch, LogError};
use prost::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, MessageType,
};
use raft::{Config, ProgressState, RawNode, SnapshotStatus, StateRole};
use raft_proto::ConfChangeI;
use snapshotless::log::{put_u64, read_u64, MetaKey};
use snapshotless::{entry, Origin, Trim};
use tokio::sync::watch;

use super::handle::{
    remember_leader_change, Input, LeaderChange, MemberStatus, ProposeError, RaftStatus, Refused,
    Role,
};
use super::members::AddressBook;
use super::progress::Progress;
use super::transport::Transport;
use super::trim::{self, LogShape, Samples, TrimPolicy};
use crate::log_disk::LogDisk;
use crate::pending::Pending;

/// Inputs handled per loop turn before the next Ready: large enough to batch many proposals
/// into one fsync, small enough to keep ticks on time.
const MAX_INPUTS_PER_TURN: usize = 4096;
/// A learner this close to the commit index is promoted to voter.
const PROMOTE_LAG: u64 = 64;
/// ...and its influxd's marker this close (the marker trails applying by up to 10,000
/// entries or a second).
const PROMOTE_APPLY_LAG: u64 = 20_000;
/// How often the leader considers trimming the log.
const TRIM_EVERY: Duration = Duration::from_secs(1);
/// A trim proposed this long ago and not seen committed may be proposed again.
const TRIM_RETRY: Duration = Duration::from_secs(5);
/// A follower sent a snapshot and silent about it this long gets another: the message may
/// have been lost, and raft-rs sends nothing more to a follower waiting for a snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);
/// A write of the log that found no space is retried after this, doubling up to
/// [`PERSIST_RETRY_MAX`]: soon enough that freeing space is noticed at once, rarely enough
/// that a long outage costs nothing.
const PERSIST_RETRY_MIN: Duration = Duration::from_millis(100);
const PERSIST_RETRY_MAX: Duration = Duration::from_secs(1);

pub struct NodeConfig {
    pub id: u64,
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub trim: TrimPolicy,
}

/// Where the node's decisions go: peers, waiting requests, the applier, status readers.
pub struct Wiring {
    pub book: AddressBook,
    pub transport: Arc<Transport>,
    pub pending: Arc<Pending>,
    pub progress: Progress,
    /// Where a full disk under the log is reported, for readiness and status.
    pub disk: LogDisk,
    /// How far the committed, locally durable log reaches (the applier follows it).
    pub commit_tx: watch::Sender<u64>,
    pub status_tx: watch::Sender<RaftStatus>,
}

pub struct Node {
    id: u64,
    raw: RawNode<HybridLog>,
    log: HybridLog,
    out: Wiring,
    tick: Duration,
    /// Index of the last committed entry this loop handled.
    applied: u64,
    /// The `applied` last written to the log, as a hint for the next start.
    hinted_applied: u64,
    leader: u64,
    /// Since when this node has known no leader (start counts as such a moment).
    leaderless_since: Option<Instant>,
    /// What the status page shows of recent elections, published with the status.
    leader_changes: Vec<LeaderChange>,
    trim: TrimState,
}

/// The log's bound: the leader's decisions and every node's share of carrying them out.
struct TrimState {
    policy: TrimPolicy,
    samples: Samples,
    checked_at: Instant,
    /// The last trim this node proposed as leader, and when.
    proposed: Option<(u64, Instant)>,
    /// The furthest committed [`Trim`] not carried out yet: it waits until the Ready that
    /// committed it is persisted, so the log's commit index covers it.
    due: u64,
    /// Followers waiting for a snapshot, since when.
    snapshot_sent: HashMap<u64, Instant>,
}

impl Node {
    pub fn new(cfg: NodeConfig, log: HybridLog, out: Wiring) -> Result<Node, raft::Error> {
        // Membership changes up to here were applied (and their ConfState persisted) before
        // the restart; raft-rs must hand us only what comes after.
        // A crash right after a snapshot was applied can leave the recorded index below the
        // trim point, and raft-rs must never be handed entries the log no longer holds.
        let applied = read_u64(&log, MetaKey::RaftApplied).max(log.trim_point().index);
        let config = Config {
            id: cfg.id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            applied,
            // Large appends let a follower that was away catch up in few round trips (a
            // 5,000-point batch is ~400 KB); the in-flight limit bounds what one slow follower
            // can hold in queues (16 x 4 MiB).
            max_size_per_msg: 4 << 20,
            max_inflight_msgs: 16,
            check_quorum: true,
            pre_vote: true,
            max_uncommitted_size: 1 << 30,
            max_committed_size_per_ready: 64 << 20,
            ..Default::default()
        };
        config.validate()?;
        let raw = RawNode::new(&config, log.clone(), &crate::logging::raft_logger())?;
        out.commit_tx.send_replace(applied);
        let now = Instant::now();
        Ok(Node {
            id: cfg.id,
            raw,
            log,
            out,
            tick: cfg.tick,
            applied,
            hinted_applied: applied,
            leader: 0,
            leaderless_since: Some(Instant::now()),
            leader_changes: Vec::new(),
            trim: TrimState {
                samples: Samples::new(&cfg.trim, applied, now),
                policy: cfg.trim,
                checked_at: now,
                proposed: None,
                due: 0,
                snapshot_sent: HashMap::new(),
            },
        })
    }

    /// Runs the loop until every input sender is gone.
    pub fn run(mut self, inputs: Receiver<Input>) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inputs.recv_timeout(wait) {
                Ok(input) => {
                    self.handle(input);
                    for input in inputs.try_iter().take(MAX_INPUTS_PER_TURN) {
                        self.handle(input);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                self.promote_caught_up_learners();
                self.maybe_propose_trim(now);
                self.retry_lost_snapshots(now);
                // After a stall (a long fsync), tick once rather than in a burst.
                next_tick = (next_tick + self.tick).max(now);
            }
            self.on_ready();
            self.publish_status();
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Propose {
                context,
                data,
                reply,
            } => {
                // raft-rs would drop the data with its refusal: keep it for the retry.
                let r = if self.raw.raft.leader_id == raft::INVALID_ID {
                    let error = ProposeError::NoLeader;
                    Err(Refused { error, data })
                } else {
                    self.raw.propose(context, data).map_err(|e| Refused {
                        error: self.refusal(e),
                        data: Vec::new(),
                    })
                };
                let _ = reply.send(r);
            }
            Input::ConfChange {
                context,
                change,
                reply,
            } => {
                let r = self
                    .raw
                    .propose_conf_change(context, change)
                    .map_err(|e| self.refusal(e));
                let _ = reply.send(r);
            }
            Input::ReadIndex { request } => {
                self.raw.read_index(request.to_be_bytes().to_vec());
            }
            Input::Peer(m) => {
                if let Err(e) = self.raw.step(*m) {
                    tracing::debug!(error = %e, "peer message not stepped");
                }
            }
            Input::Unreachable(id) => self.raw.report_unreachable(id),
        }
    }

    fn refusal(&self, e: raft::Error) -> ProposeError {
        if self.raw.raft.leader_id == raft::INVALID_ID {
            ProposeError::NoLeader
        } else {
            ProposeError::Dropped(e.to_string())
        }
    }

    fn send(&mut self, mut msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        for m in &mut msgs {
            if m.msg_type() == MessageType::MsgSnapshot {
                // The snapshot is only a position; it carries the address book, which the
                // membership changes below that position would otherwise have given.
                if let Some(snap) = m.snapshot.as_mut() {
                    snap.data = self.out.book.encode();
                }
                self.trim.snapshot_sent.insert(m.to, Instant::now());
                tracing::info!(
                    peer = m.to,
                    index = m
                        .snapshot
                        .as_ref()
                        .and_then(|s| s.metadata.as_ref())
                        .map_or(0, |md| md.index),
                    "peer needs trimmed entries: sending it the log position; it will be seeded"
                );
            }
        }
        for id in self.out.transport.send(msgs) {
            self.raw.report_unreachable(id);
        }
    }

    fn on_ready(&mut self) {
        if !self.raw.has_ready() {
            return;
        }
        let mut rd = self.raw.ready();
        self.send(rd.take_messages());
        if !rd.snapshot().is_empty() {
            self.take_snapshot_position(rd.snapshot().clone());
        }
        let committed = rd.take_committed_entries();
        self.handle_committed(committed);

        let mut batch = LogBatch::new();
        let entries = rd.take_entries();
        if !self.log.fenced() && entries.iter().any(|e| entry::is_packed(&e.data)) {
            // An older build must not open a log it would skip these entries of (packing.rs).
            batch.fence_older_builds();
        }
        batch.append(entries);
        if let Some(hs) = rd.hs() {
            batch.set_hard_state(hs.clone());
        }
        self.persist(batch, rd.must_sync(), "the Raft log");

        for rs in rd.read_states() {
            if let Ok(ctx) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) {
                self.out
                    .pending
                    .read_index(u64::from_be_bytes(ctx), rs.index);
            }
        }
        if let Some(ss) = rd.ss() {
            self.leader_changed(ss.leader_id, ss.raft_state);
        }
        self.send(rd.take_persisted_messages());

        let mut light = self.raw.advance(rd);
        let commit = light.commit_index();
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        self.handle_committed(committed);
        self.raw.advance_apply_to(self.applied);

        // The commit index and how far this loop got are hints for the next start; they need
        // not be synced (raft-rs recovers a commit index that went back a little). A Ready
        // that only sent messages (heartbeats and their answers) changed neither.
        if commit.is_some() || self.applied != self.hinted_applied {
            let mut batch = LogBatch::new();
            if let Some(commit) = commit {
                let mut hs = self.log.hard_state();
                hs.commit = commit;
                batch.set_hard_state(hs);
            }
            put_u64(&mut batch, MetaKey::RaftApplied, self.applied);
            self.persist(batch, false, "the Raft state");
            self.hinted_applied = self.applied;
        }
        self.carry_out_trim();
        self.trim.samples.record(self.applied, Instant::now());
        self.out.commit_tx.send_if_modified(|c| {
            let changed = *c != self.applied;
            *c = self.applied;
            changed
        });
    }

    /// A follower too far behind: its log restarts at the leader's trim point. Its influxd
    /// is then behind its log, which the applier finds out and has seeded.
    fn take_snapshot_position(&mut self, snap: raft::prelude::Snapshot) {
        let meta = snap.metadata.unwrap_or_default();
        let mut backoff = PERSIST_RETRY_MIN;
        while let Err(e) = self.log.apply_snapshot_metadata(&meta) {
            let what = format!("the log position {} from the leader", meta.index);
            if !e.is_no_space() {
                fail_stop(&format!("cannot take {what}: {e}"));
            }
            self.wait_for_space(&what, &e, &mut backoff);
        }
        self.space_is_back();
        if self.out.book.merge(&snap.data) {
            let mut batch = LogBatch::new();
            self.out.book.persist(&mut batch);
            self.persist(batch, true, "the address book");
        }
        tracing::warn!(
            index = meta.index,
            term = meta.term,
            "the entries this node needs were trimmed: its log continues after {}, and its \
             influxd will be seeded from a peer's",
            meta.index
        );
        self.applied = meta.index;
    }

    /// As leader: proposes a trim when the rules allow one (trim.rs).
    fn maybe_propose_trim(&mut self, now: Instant) {
        if self.raw.raft.state != StateRole::Leader
            || now.duration_since(self.trim.checked_at) < TRIM_EVERY
        {
            return;
        }
        self.trim.checked_at = now;
        let trimmed = self.log.trim_point().index;
        if let Some((through, at)) = self.trim.proposed {
            if through > trimmed && now.duration_since(at) < TRIM_RETRY {
                return;
            }
        }
        let conf = self.raw.raft.prs().conf();
        let members: Vec<trim::Member> = conf
            .voters()
            .ids()
            .iter()
            .map(|id| (id, true))
            .chain(conf.learners().iter().map(|&id| (id, false)))
            .map(|(id, voter)| trim::Member {
                voter,
                applied: if id == self.id {
                    Some(self.out.progress.own())
                } else {
                    self.out.progress.of(id)
                },
            })
            .collect();
        let stats = self.log.stats();
        let shape = LogShape {
            trimmed,
            last: self.raw.raft.raft_log.last_index(),
            commit: self.raw.raft.raft_log.committed,
            dir_bytes: stats.dir_bytes,
            entries_bytes: stats.disk_bytes,
            settled: stats.compacted_through >= trimmed,
        };
        let policy = self.trim.policy;
        let Some((through, reason)) =
            trim::decide(&policy, &mut self.trim.samples, &members, &shape, now)
        else {
            return;
        };
        match self.raw.propose(Trim { through }.to_context(), Vec::new()) {
            Ok(()) => {
                tracing::debug!(through, ?reason, "trim proposed");
                self.trim.proposed = Some((through, now));
            }
            Err(e) => tracing::debug!(error = %e, "trim not proposed"),
        }
    }

    /// Trims this node's log as far as the committed trims say, once the log's commit index
    /// covers them.
    fn carry_out_trim(&mut self) {
        let through = self.trim.due.min(self.applied);
        if through <= self.log.trim_point().index {
            return;
        }
        match self.log.trim(through) {
            Ok(t) => tracing::debug!(
                through,
                entries = t.entries,
                approx_bytes = t.approx_bytes,
                "log trimmed"
            ),
            Err(LogError::TrimBeyondCommitted { .. }) => {}
            // A trim only gives space back; the next Ready tries again, and a full disk is
            // reported by the writes that must succeed.
            Err(e) if e.is_no_space() => {
                tracing::debug!(through, error = %e, "log not trimmed: no space for the trim");
            }
            Err(e) => fail_stop(&format!("cannot trim the log through {through}: {e}")),
        }
    }

    /// raft-rs waits for a follower to acknowledge a snapshot before it sends it anything
    /// else; a lost one would leave the follower behind for good.
    fn retry_lost_snapshots(&mut self, now: Instant) {
        if self.trim.snapshot_sent.is_empty() {
            return;
        }
        let prs = self.raw.raft.prs();
        let mut lost = Vec::new();
        self.trim.snapshot_sent.retain(|&id, since| {
            let waiting = self.raw.raft.state == StateRole::Leader
                && prs
                    .get(id)
                    .is_some_and(|p| p.state == ProgressState::Snapshot);
            if waiting && now.duration_since(*since) >= SNAPSHOT_WAIT {
                lost.push(id);
            }
            waiting && now.duration_since(*since) < SNAPSHOT_WAIT
        });
        for id in lost {
            tracing::debug!(peer = id, "no answer to the snapshot; sending it again");
            self.raw.report_snapshot(id, SnapshotStatus::Failure);
        }
    }

    fn leader_changed(&mut self, leader: u64, state: StateRole) {
        if leader != self.leader {
            let term = self.raw.raft.term;
            tracing::info!(leader, role = ?state, term, "leader changed");
            let at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            remember_leader_change(
                &mut self.leader_changes,
                LeaderChange {
                    at_ms,
                    term,
                    leader,
                },
            );
        }
        if leader == raft::INVALID_ID && self.leader != raft::INVALID_ID {
            self.out.pending.leader_lost();
            self.leaderless_since = Some(Instant::now());
        }
        if leader != raft::INVALID_ID {
            self.leaderless_since = None;
        }
        self.leader = leader;
    }

    fn handle_committed(&mut self, entries: Vec<Entry>) {
        for e in entries {
            match e.entry_type() {
                EntryType::EntryNormal => {
                    if let Some(t) = Trim::from_entry(&e.data, &e.context) {
                        self.trim.due = self.trim.due.max(t.through);
                    }
                }
                EntryType::EntryConfChange => match ConfChange::decode(e.data.as_slice()) {
                    Ok(cc) => self.apply_conf_change(&cc, &cc.context),
                    Err(err) => fail_stop(&format!(
                        "undecodable membership change at {}: {err}",
                        e.index
                    )),
                },
                EntryType::EntryConfChangeV2 => match ConfChangeV2::decode(e.data.as_slice()) {
                    Ok(cc) => self.apply_conf_change(&cc, &cc.context),
                    Err(err) => fail_stop(&format!(
                        "undecodable membership change at {}: {err}",
                        e.index
                    )),
                },
            }
            if let Some(origin) = Origin::from_context(&e.context) {
                if origin.node == self.id {
                    self.out.pending.committed(origin.request, e.index);
                }
            }
            self.applied = e.index;
        }
    }

    fn apply_conf_change(&mut self, cc: &impl ConfChangeI, context: &[u8]) {
        let cc2 = cc.as_v2();
        // A node is added as a learner; the same addition committed again (an operator's or
        // the admin API's retry after a leader change) must not demote it once it became a
        // voter. The configuration is the same on every node at this index, so every node
        // skips it alike.
        let voters = self.raw.raft.prs().conf().voters().ids();
        if cc2.changes.iter().all(|c| {
            c.change_type() == ConfChangeType::AddLearnerNode && voters.contains(c.node_id)
        }) && !cc2.changes.is_empty()
        {
            tracing::info!(changes = ?cc2.changes, "membership change skipped: already voters");
            return;
        }
        let cs = match self.raw.apply_conf_change(cc) {
            Ok(cs) => cs,
            Err(e) => {
                // raft-rs validated the change when it was proposed; one it now refuses is
                // refused identically on every node, so the configuration stays the same.
                tracing::error!(error = %e, "membership change refused");
                return;
            }
        };
        let addr = std::str::from_utf8(context).ok().filter(|a| !a.is_empty());
        for change in &cc2.changes {
            match change.change_type() {
                ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                    if let Some(addr) = addr {
                        self.out.book.set(change.node_id, addr);
                    }
                    tracing::info!(node = change.node_id, kind = ?change.change_type(), "member added");
                }
                ConfChangeType::RemoveNode => {
                    self.out.book.remove(change.node_id);
                    self.out.transport.forget(change.node_id);
                    tracing::info!(node = change.node_id, "member removed");
                    if change.node_id == self.id {
                        tracing::warn!("this node was removed from the cluster; it no longer takes part in Raft");
                        self.hand_over_leadership();
                    }
                }
            }
        }
        let mut batch = LogBatch::new();
        batch.set_conf_state(cs);
        self.out.book.persist(&mut batch);
        self.persist(batch, true, "the membership");
    }

    /// Makes `batch` durable; every write of the log from this loop comes here. raft-rs may
    /// not be told a Ready is persisted before it is, so a full disk waits here, retrying the
    /// same batch, until space is freed; the loop stalls meanwhile, as if the process were
    /// paused. Any other failure stops the process (see [`fail_stop`]).
    fn persist(&mut self, batch: LogBatch, sync: bool, what: &str) {
        let mut batch = batch;
        let mut backoff = PERSIST_RETRY_MIN;
        loop {
            match self.log.try_commit(batch, sync) {
                Ok(()) => {
                    self.space_is_back();
                    return;
                }
                Err(r) if r.error.is_no_space() => {
                    self.wait_for_space(what, &r.error, &mut backoff);
                    batch = r.batch;
                }
                Err(r) => fail_stop(&format!("cannot persist {what}: {}", r.error)),
            }
        }
    }

    /// One wait before a write that found no space is tried again. The first one of an
    /// outage is logged and marks the node, so that it refuses writes and says why.
    fn wait_for_space(&mut self, what: &str, error: &LogError, backoff: &mut Duration) {
        if self.out.disk.persist_failed(error.to_string()) {
            tracing::error!(
                %error,
                "cannot persist {what} for want of disk space; this node takes no part in \
                 the cluster and refuses writes until space is freed there, and retries"
            );
            // The loop is stalled: the status must say so now, not after the wait.
            self.publish_status();
        }
        std::thread::sleep(*backoff);
        *backoff = (*backoff * 2).min(PERSIST_RETRY_MAX);
    }

    fn space_is_back(&self) {
        if let Some(after) = self.out.disk.persist_recovered() {
            tracing::info!(
                after_seconds = after.as_secs_f64(),
                "the Raft log is written again: space was freed"
            );
        }
    }

    /// A leader that was just removed would go on leading until it is stopped, and the
    /// cluster would then wait a whole election timeout: hand leadership to the most
    /// up-to-date remaining voter right away.
    fn hand_over_leadership(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        let prs = self.raw.raft.prs();
        let best = prs
            .conf()
            .voters()
            .ids()
            .iter()
            .filter(|&id| id != self.id)
            .max_by_key(|&id| prs.get(id).map_or(0, |p| p.matched));
        if let Some(target) = best {
            tracing::info!(to = target, "handing leadership over before leaving");
            self.raw.transfer_leader(target);
        }
    }

    /// New members join as learners (they replay the log, or are seeded, without weakening
    /// the quorum) and become voters once they have caught up.
    fn promote_caught_up_learners(&mut self) {
        if self.raw.raft.state != StateRole::Leader || self.raw.raft.has_pending_conf() {
            return;
        }
        let commit = self.raw.raft.raft_log.committed;
        let learners: Vec<u64> = self
            .raw
            .raft
            .prs()
            .conf()
            .learners()
            .iter()
            .copied()
            .collect();
        for id in learners {
            // Its log, and its influxd too: a learner seeded from a peer's influxd holds the
            // log long before its influxd holds the data, and a voter is expected to serve.
            let caught_up = self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|p| p.matched + PROMOTE_LAG >= commit)
                && self
                    .out
                    .progress
                    .of(id)
                    .is_some_and(|m| m + PROMOTE_APPLY_LAG >= commit);
            if caught_up {
                let cc = ConfChange {
                    change_type: ConfChangeType::AddNode as i32,
                    node_id: id,
                    context: self.out.book.get(id).unwrap_or_default().into_bytes(),
                    ..Default::default()
                };
                match self.raw.propose_conf_change(vec![], cc) {
                    Ok(()) => tracing::info!(node = id, "learner caught up; promoting it to voter"),
                    Err(e) => tracing::debug!(node = id, error = %e, "promotion not proposed"),
                }
                return;
            }
        }
    }

    fn publish_status(&self) {
        let raft = &self.raw.raft;
        let conf = raft.prs().conf();
        let voters: HashSet<u64> = conf.voters().ids().iter().collect();
        let learners = conf.learners();
        let leader = raft.state == StateRole::Leader;
        let mut members: Vec<MemberStatus> = voters
            .iter()
            .map(|&id| (id, "voter"))
            .chain(learners.iter().map(|&id| (id, "learner")))
            .map(|(id, kind)| MemberStatus {
                id,
                peer_addr: self.out.book.get(id),
                kind,
                matched: if leader {
                    raft.prs().get(id).map(|p| p.matched)
                } else {
                    None
                },
                applied: if id == self.id {
                    Some(self.out.progress.own())
                } else {
                    self.out.progress.of(id)
                },
            })
            .collect();
        members.sort_by_key(|m| m.id);
        let status = RaftStatus {
            id: self.id,
            role: match raft.state {
                StateRole::Leader => Role::Leader,
                StateRole::Candidate => Role::Candidate,
                StateRole::PreCandidate => Role::PreCandidate,
                StateRole::Follower => Role::Follower,
            },
            leader: raft.leader_id,
            leaderless_since: self.leaderless_since,
            term: raft.term,
            commit: self.applied,
            last_index: raft.raft_log.last_index(),
            member: voters.contains(&self.id) || learners.contains(&self.id),
            members,
            leader_changes: self.leader_changes.clone(),
        };
        self.out.status_tx.send_if_modified(|s| {
            if *s != status {
                *s = status;
                true
            } else {
                false
            }
        });
    }
}

/// The log is the only durable copy of acknowledged writes: if it cannot be written, going on
/// would acknowledge writes that are not durable. Stop, and let a restart recover from disk.
fn fail_stop(why: &str) -> ! {
    tracing::error!("{why}; stopping");
    eprintln!("gateway: {why}; stopping");
    std::process::exit(70);
}
