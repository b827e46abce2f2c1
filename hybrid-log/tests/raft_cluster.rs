//! raft-rs on HybridLog: three RawNodes in one process, messages passed in memory, each on its
//! own log directory. They elect a leader, commit 10,000 proposals, and a follower that is
//! stopped halfway and restarted from its directory catches up: from entries while the log is
//! whole, and from a metadata-only snapshot, then entries, once the others trimmed it.

use std::collections::VecDeque;

use hybrid_log::{HybridLog, LogBatch};
use raft::prelude::{ConfState, EntryType, Message};
use raft::{Config, RawNode, StateRole, Storage};

const PROPOSALS: usize = 10_000;
const APPLIED_KEY: &str = "applied";

struct Node {
    id: u64,
    dir: std::path::PathBuf,
    raft: Option<RawNode<HybridLog>>,
    /// Index and data of every committed normal entry, in commit order: the node's state
    /// machine, which stands for its influxd.
    applied: Vec<(u64, Vec<u8>)>,
    /// The index the state machine reflects.
    applied_index: u64,
    /// Set when the node took a snapshot's position: its state machine, emptied, must be
    /// seeded from a peer's up to this index.
    needs_seed: Option<u64>,
    snapshots: usize,
}

fn config(id: u64, applied: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 1,
        pre_vote: true,
        check_quorum: true,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

impl Node {
    fn start(id: u64, dir: std::path::PathBuf, applied_so_far: Vec<(u64, Vec<u8>)>) -> Node {
        let log = HybridLog::open(&dir, 256 << 10).unwrap();
        if log.conf_state().voters.is_empty() {
            let mut b = LogBatch::new();
            b.set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
            log.commit(b, true).unwrap();
        }
        // What raft-rs applied, and never below the trim point: a crash right after a
        // snapshot's position was taken leaves the applied index behind it.
        let applied = log
            .meta(APPLIED_KEY)
            .unwrap()
            .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()))
            .max(log.trim_point().index);
        let raft = RawNode::new(&config(id, applied), log, &logger()).unwrap();
        Node {
            id,
            dir,
            raft: Some(raft),
            applied: applied_so_far,
            applied_index: applied,
            needs_seed: None,
            snapshots: 0,
        }
    }

    fn data(&self) -> Vec<Vec<u8>> {
        self.applied.iter().map(|(_, d)| d.clone()).collect()
    }

    fn raft(&mut self) -> &mut RawNode<HybridLog> {
        self.raft.as_mut().expect("node is running")
    }

    /// One Ready, handled in the order raft-rs requires. Returns the messages to send.
    fn handle_ready(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        if !self.raft.as_ref().is_some_and(|r| r.has_ready()) {
            return out;
        }
        let raft = self.raft.as_mut().unwrap();
        let mut rd = raft.ready();
        out.extend(rd.take_messages());
        let store = raft.store().clone();
        let mut applied_to = None;
        if !rd.snapshot().is_empty() {
            // The data never comes through Raft: the node takes the snapshot's position in
            // its log, and its state machine is seeded from a peer's (`Cluster::seed`).
            let meta = rd.snapshot().get_metadata();
            store.apply_snapshot_metadata(meta).unwrap();
            self.applied.clear();
            self.needs_seed = Some(meta.index);
            self.snapshots += 1;
            applied_to = Some(meta.index);
        }
        let mut record = |entries: Vec<raft::prelude::Entry>, applied: &mut Vec<_>| {
            for e in entries {
                if e.entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                    applied.push((e.index, e.data));
                }
                applied_to = Some(e.index);
            }
        };
        record(rd.take_committed_entries(), &mut self.applied);

        let mut batch = LogBatch::new();
        batch.append(rd.take_entries());
        if let Some(hs) = rd.hs() {
            batch.set_hard_state(hs.clone());
        }
        store.commit(batch, rd.must_sync()).unwrap();
        out.extend(rd.take_persisted_messages());

        let mut light = raft.advance(rd);
        let mut batch = LogBatch::new();
        if let Some(commit) = light.commit_index() {
            let mut hs = store.hard_state();
            hs.commit = commit;
            batch.set_hard_state(hs);
        }
        out.extend(light.take_messages());
        record(light.take_committed_entries(), &mut self.applied);
        if let Some(index) = applied_to {
            batch.put_meta(APPLIED_KEY, index.to_be_bytes().to_vec());
            self.applied_index = index;
        }
        store.commit(batch, false).unwrap();
        raft.advance_apply();
        out
    }
}

struct Cluster {
    nodes: Vec<Node>,
    inflight: VecDeque<Message>,
}

impl Cluster {
    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// Delivers messages and handles readies until nothing moves. Messages to a stopped
    /// node are dropped, as a network would.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                let msgs = self.nodes[i].handle_ready();
                moved |= !msgs.is_empty();
                self.inflight.extend(msgs);
                if let Some(index) = self.nodes[i].needs_seed.take() {
                    let seed = self.seed(self.nodes[i].id, index);
                    self.nodes[i].applied.splice(0..0, seed);
                }
            }
            while let Some(m) = self.inflight.pop_front() {
                moved = true;
                if let Some(r) = self.nodes[m.to as usize - 1].raft.as_mut() {
                    let _ = r.step(m);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// What seeding copies to node `to`: a running peer's state machine up to `index`, as a
    /// copy of its influxd would hold it.
    fn seed(&self, to: u64, index: u64) -> Vec<(u64, Vec<u8>)> {
        let peer = self
            .nodes
            .iter()
            .find(|n| n.id != to && n.raft.is_some() && n.applied_index >= index)
            .expect("a peer applied as far as the snapshot");
        peer.applied
            .iter()
            .take_while(|(i, _)| *i <= index)
            .cloned()
            .collect()
    }

    fn tick(&mut self) {
        for n in &mut self.nodes {
            if let Some(r) = n.raft.as_mut() {
                r.tick();
            }
        }
        self.pump();
    }

    fn leader(&self) -> Option<u64> {
        self.nodes.iter().find_map(|n| {
            n.raft
                .as_ref()
                .filter(|r| r.raft.state == StateRole::Leader)
                .map(|_| n.id)
        })
    }

    fn wait_for_leader(&mut self) -> u64 {
        for _ in 0..1000 {
            if let Some(id) = self.leader() {
                return id;
            }
            self.tick();
        }
        panic!("no leader elected within 1000 ticks");
    }

    fn propose(&mut self, from: usize, to: usize) {
        let mut next = from;
        let mut ticks = 0;
        while next < to {
            let leader = self.wait_for_leader();
            let raft = self.node(leader).raft();
            for i in next..(next + 100).min(to) {
                raft.propose(vec![], format!("proposal-{i}").into_bytes())
                    .expect("leader accepts proposals");
            }
            next = (next + 100).min(to);
            self.pump();
            ticks += 1;
            if ticks % 10 == 0 {
                self.tick();
            }
        }
    }
}

fn proposals(from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to)
        .map(|i| format!("proposal-{i}").into_bytes())
        .collect()
}

fn cluster(dir: &tempfile::TempDir) -> Cluster {
    let nodes = (1..=3)
        .map(|id| Node::start(id, dir.path().join(format!("node{id}")), vec![]))
        .collect();
    Cluster {
        nodes,
        inflight: VecDeque::new(),
    }
}

#[test]
fn three_nodes_commit_ten_thousand_and_a_restarted_follower_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(&dir);
    let leader = c.wait_for_leader();

    c.propose(0, PROPOSALS / 2);
    // Stop a follower (its RawNode and log are dropped, as in a crash after the last sync).
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let node = c.node(follower);
    node.raft = None;
    let kept = std::mem::take(&mut node.applied);
    let kept_len = kept.len();

    c.propose(PROPOSALS / 2, PROPOSALS);
    let expected = proposals(0, PROPOSALS);
    for id in (1..=3).filter(|&id| id != follower) {
        assert_eq!(
            c.node(id).data(),
            expected,
            "node {id} committed a different log"
        );
    }

    // Restart the follower from its directory; it must resume after what it applied, not
    // re-deliver it, and catch up from the leader's log (no snapshot exists to send).
    let node = c.node(follower);
    let restarted = Node::start(follower, node.dir.clone(), kept);
    *node = restarted;
    for _ in 0..200 {
        if c.node(follower).applied.len() == PROPOSALS {
            break;
        }
        c.tick();
    }
    let applied = c.node(follower).data();
    assert!(
        kept_len > 0,
        "the follower applied nothing before it was stopped"
    );
    assert_eq!(
        applied.len(),
        PROPOSALS,
        "restarted follower applied {} of {PROPOSALS}",
        applied.len()
    );
    assert_eq!(applied, expected, "restarted follower diverged");
    let log = c.node(follower).raft().store().clone();
    assert_eq!(
        log.last_index(),
        c.node(leader).raft().raft.raft_log.last_index()
    );
}

#[test]
fn a_follower_behind_the_trim_point_is_sent_a_snapshot_then_replicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(&dir);
    let leader = c.wait_for_leader();
    c.propose(0, 2000);

    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let node = c.node(follower);
    node.raft = None;
    let kept = std::mem::take(&mut node.applied);
    c.propose(2000, 4000);

    // The two running nodes trim what they both applied: the stopped one is behind it.
    let through = (1..=3)
        .filter(|&id| id != follower)
        .map(|id| c.node(id).applied_index)
        .min()
        .unwrap();
    for id in (1..=3).filter(|&id| id != follower) {
        let trimmed = c.node(id).raft().store().trim(through).unwrap();
        assert!(trimmed.entries > 0);
    }
    c.propose(4000, 5000);

    let node = c.node(follower);
    let restarted = Node::start(follower, node.dir.clone(), kept);
    *node = restarted;
    for _ in 0..200 {
        if c.node(follower).applied.len() == 5000 {
            break;
        }
        c.tick();
    }
    let node = c.node(follower);
    assert_eq!(
        node.snapshots, 1,
        "the follower took no snapshot's position"
    );
    assert_eq!(node.data(), proposals(0, 5000), "seeded follower diverged");
    let log = node.raft().store();
    assert_eq!(log.trim_point().index, through);
    assert_eq!(log.first_index().unwrap(), through + 1);

    // It restarts from that position, and all three go on replicating.
    let kept = std::mem::take(&mut node.applied);
    node.raft = None;
    let restarted = Node::start(follower, node.dir.clone(), kept);
    *node = restarted;
    c.propose(5000, 5500);
    for _ in 0..200 {
        if c.nodes.iter().all(|n| n.applied.len() == 5500) {
            break;
        }
        c.tick();
    }
    for id in 1..=3 {
        assert_eq!(c.node(id).data(), proposals(0, 5500), "node {id} diverged");
    }
    assert_eq!(
        c.node(follower).snapshots,
        0,
        "a second snapshot after restart"
    );
}
