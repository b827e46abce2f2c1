//! Packed entries across builds: which members read them, and so whether this node packs the
//! commands it proposes (`snapshotless::entry::pack`, compressed once by the node that
//! received the request instead of by every node's log).
//!
//! A build from before packing skips an entry it cannot decode, which would leave its replica
//! without the write. Three things keep a packed entry from ever reaching one:
//! - every node says in its hello whether it reads packed entries, and a node packs what it
//!   proposes only once every other member has said so in its latest hello (a member that is
//!   down counts by what it said last: the entries written meanwhile reach it packed, which
//!   is what makes its catch-up cheap);
//! - the transport holds back an append or forwarded proposal that carries a packed entry
//!   from a peer that has not said so on a connection still open: a peer restarted as an
//!   older build stays behind, and the log says why, until it runs a build that reads them;
//! - a node that appends a packed entry fences its log in the same write
//!   (`hybrid_log::LogBatch::fence_older_builds`), so that an older build put back on its
//!   directory refuses to open it instead of skipping the entries it had not applied yet.
//!
//! `pack_entries = false` makes a node neither pack nor say it reads packed entries: the
//! whole cluster then replicates commands as they came.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::members::AddressBook;

/// What a hello says a node reads: 0 (older builds send nothing) plain commands only.
pub const READS_PACKED: u32 = 1;

/// Cheap to clone: the transport and every handler that proposes hold one.
#[derive(Clone)]
pub struct Packing {
    inner: Arc<Inner>,
}

struct Inner {
    me: u64,
    /// This node reads packed entries (and so may write them).
    enabled: bool,
    book: AddressBook,
    peers: Mutex<HashMap<u64, Peer>>,
}

#[derive(Default)]
struct Peer {
    /// What its latest hello said.
    reads: bool,
    /// Its open connections to this node whose hello said it reads packed entries: a peer
    /// restarted as another build has closed them (or will, before it can be sent anything).
    open: usize,
    /// A packed entry was held back from it since it last said it reads them.
    warned: bool,
}

impl Packing {
    pub fn new(me: u64, enabled: bool, book: AddressBook) -> Packing {
        Packing {
            inner: Arc::new(Inner {
                me,
                enabled,
                book,
                peers: Mutex::default(),
            }),
        }
    }

    /// Never packs: for a node or a test that replicates commands as they came.
    pub fn off() -> Packing {
        Packing::new(0, false, AddressBook::default())
    }

    /// What this node's hellos say.
    pub fn says(&self) -> u32 {
        if self.inner.enabled {
            READS_PACKED
        } else {
            0
        }
    }

    /// A Raft connection from `peer` whose hello said `reads`; the peer counts as reading
    /// packed entries while the returned guard (the connection) lives.
    pub fn connected(&self, peer: u64, reads: u32) -> Open {
        let reads = reads >= READS_PACKED;
        let mut peers = self.inner.peers.lock();
        let p = peers.entry(peer).or_default();
        if reads && !p.reads {
            tracing::info!(peer, "peer reads packed entries");
        }
        p.reads = reads;
        p.open += usize::from(reads);
        p.warned &= !reads;
        Open {
            packing: self.clone(),
            peer,
            counted: reads,
        }
    }

    /// Whether `peer` may be sent packed entries.
    pub fn reads(&self, peer: u64) -> bool {
        self.inner
            .peers
            .lock()
            .get(&peer)
            .is_some_and(|p| p.reads && p.open > 0)
    }

    /// Whether this node packs what it proposes now: it reads packed entries and every other
    /// member said so last.
    pub fn now(&self) -> bool {
        if !self.inner.enabled {
            return false;
        }
        // Asked for every large write: the book is not copied.
        let peers = self.inner.peers.lock();
        self.inner
            .book
            .every_id(|&id| id == self.inner.me || peers.get(&id).is_some_and(|p| p.reads))
    }

    /// Records that a packed entry was held back from `peer`; true the first time since the
    /// peer last said it reads them (the time to tell the operator).
    pub fn held_back(&self, peer: u64) -> bool {
        let mut peers = self.inner.peers.lock();
        let p = peers.entry(peer).or_default();
        !std::mem::replace(&mut p.warned, true)
    }
}

/// An open connection from a peer that said it reads packed entries.
pub struct Open {
    packing: Packing,
    peer: u64,
    counted: bool,
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.counted {
            if let Some(p) = self.packing.inner.peers.lock().get_mut(&self.peer) {
                p.open = p.open.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Packing {
        let book = AddressBook::default();
        for id in 1..=3 {
            book.set(id, &format!("127.0.0.{id}:8089"));
        }
        Packing::new(1, true, book)
    }

    #[test]
    fn packs_only_while_every_other_member_reads_packed_entries() {
        let p = three();
        assert!(!p.now(), "nobody has said anything yet");
        let two = p.connected(2, READS_PACKED);
        assert!(!p.now(), "3 has not said it");
        let three_old = p.connected(3, 0);
        assert!(!p.now(), "3 runs an older build");
        drop(three_old);
        let three_new = p.connected(3, READS_PACKED);
        assert!(p.now());
        // A second connection (the other lane) and the loss of one: still open.
        let two_again = p.connected(2, READS_PACKED);
        drop(two);
        assert!(p.now());
        drop(two_again);
        // 2 is down: it is sent nothing packed, but what it said last still counts for
        // packing, so that what is written meanwhile reaches it packed.
        assert!(!p.reads(2) && p.now());
        let _two = p.connected(2, READS_PACKED);
        assert!(p.reads(2) && p.now());
        // 3 restarted as an older build while its old connection is still open.
        let _three_old = p.connected(3, 0);
        assert!(!p.reads(3) && !p.now());
        drop(three_new);
        assert!(!p.now());
        // A member that never connected keeps it off; so does this node's own setting.
        p.inner.book.set(4, "127.0.0.4:8089");
        let _three = p.connected(3, READS_PACKED);
        assert!(!p.now());
        let off = Packing::new(1, false, AddressBook::default());
        assert!(!off.now() && off.says() == 0);
    }

    #[test]
    fn a_held_back_entry_is_reported_once_until_the_peer_reads_them() {
        let p = three();
        assert!(p.held_back(2));
        assert!(!p.held_back(2));
        let _two = p.connected(2, READS_PACKED);
        assert!(p.held_back(2), "said it reads them since: a new episode");
    }
}
