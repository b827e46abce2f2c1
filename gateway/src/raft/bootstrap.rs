//! A new cluster's first entries: one membership change per initial member, at term 1, the
//! same bytes on every initial node (as etcd bootstraps). Every node starts from an identical
//! log prefix, so a node added later learns the initial membership simply by replaying the log
//! from index 1, like everything else. The cluster id derived from those entries is what
//! peers show each other before they exchange anything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use hybrid_log::{HybridLog, LogBatch, LogError};
use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState};

use snapshotless::log::{put_u64, read_u64, MetaKey};

use super::members::AddressBook;

/// The bootstrap entries for `peers`, in id order.
pub fn entries(peers: &BTreeMap<u64, String>) -> Vec<Entry> {
    peers
        .iter()
        .enumerate()
        .map(|(i, (id, addr))| {
            let cc = ConfChange {
                change_type: ConfChangeType::AddNode as i32,
                node_id: *id,
                context: addr.clone().into_bytes(),
                ..Default::default()
            };
            Entry {
                entry_type: EntryType::EntryConfChange as i32,
                term: 1,
                index: i as u64 + 1,
                data: cc.encode_to_vec(),
                ..Default::default()
            }
        })
        .collect()
}

/// FNV-1a over the bootstrap entries: stable across builds and platforms.
pub fn cluster_id(entries: &[Entry]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for e in entries {
        for b in e.encode_to_vec() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h.max(1)
}

/// Writes the bootstrap entries into an empty log, unless the node is joining an existing
/// cluster (it then receives them from the leader). A log that already has entries or a
/// configuration is left alone: restarts never re-bootstrap.
pub fn bootstrap_if_new(
    log: &HybridLog,
    peers: &BTreeMap<u64, String>,
    join: bool,
    book: &AddressBook,
) -> Result<bool, LogError> {
    if join || log.last_index() > 0 || !log.conf_state().voters.is_empty() {
        return Ok(false);
    }
    let entries = entries(peers);
    let n = entries.len() as u64;
    let cluster = cluster_id(&entries);
    let mut batch = LogBatch::new();
    batch
        .append(entries)
        .set_hard_state(HardState {
            term: 1,
            vote: 0,
            commit: n,
        })
        .set_conf_state(ConfState::from((peers.keys().copied(), std::iter::empty())));
    put_u64(&mut batch, MetaKey::RaftApplied, n);
    put_u64(&mut batch, MetaKey::ClusterId, cluster);
    book.persist(&mut batch);
    log.commit(batch, true)?;
    Ok(true)
}

/// The cluster this node belongs to, checked on every peer connection. Nodes bootstrapped
/// from different member lists have different first entries; letting them exchange messages
/// would corrupt both logs.
#[derive(Clone)]
pub struct ClusterId {
    id: Arc<AtomicU64>,
    log: HybridLog,
}

impl ClusterId {
    pub fn load(log: &HybridLog) -> ClusterId {
        ClusterId {
            id: Arc::new(AtomicU64::new(read_u64(log, MetaKey::ClusterId))),
            log: log.clone(),
        }
    }

    /// 0 until a joining node has heard from its cluster.
    pub fn get(&self) -> u64 {
        self.id.load(Relaxed)
    }

    /// Whether a peer announcing `theirs` may talk to this node. A joining node adopts, for
    /// good, the cluster of the first member that contacts it.
    pub fn admit(&self, theirs: u64) -> Result<bool, LogError> {
        let ours = self.get();
        if theirs == 0 || theirs == ours {
            return Ok(true);
        }
        if ours != 0 {
            return Ok(false);
        }
        let mut batch = LogBatch::new();
        put_u64(&mut batch, MetaKey::ClusterId, theirs);
        self.log.commit(batch, true)?;
        self.id.store(theirs, Relaxed);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_peers_same_entries_and_cluster_id() {
        let a: BTreeMap<u64, String> = [(2, "b:1".into()), (1, "a:1".into())].into();
        let b: BTreeMap<u64, String> = [(1, "a:1".into()), (2, "b:1".into())].into();
        assert_eq!(entries(&a), entries(&b));
        assert_eq!(cluster_id(&entries(&a)), cluster_id(&entries(&b)));
        let c: BTreeMap<u64, String> = [(1, "a:1".into()), (2, "c:1".into())].into();
        assert_ne!(cluster_id(&entries(&a)), cluster_id(&entries(&c)));
    }

    #[test]
    fn bootstraps_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
        let peers: BTreeMap<u64, String> = [(1, "a:1".into()), (2, "b:1".into())].into();
        let book = AddressBook::default();
        assert!(bootstrap_if_new(&log, &peers, false, &book).unwrap());
        assert!(!bootstrap_if_new(&log, &peers, false, &book).unwrap());
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.conf_state().voters, vec![1, 2]);
        assert_eq!(read_u64(&log, MetaKey::RaftApplied), 2);
    }
}
