//! How far each member has applied the log to its own influxd, as it last said: every batch a
//! node sends to a peer carries its durable marker (the index its influxd holds a marker
//! for). The leader hears from every member, so it knows below which index every replica's
//! influxd already holds the data: the bound any trimming of the log must stay under.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use snapshotless::ApplierStatus;
use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct Progress {
    own: Arc<AtomicU64>,
    peers: Arc<Mutex<BTreeMap<u64, u64>>>,
}

impl Progress {
    /// This node's durable marker.
    pub fn own(&self) -> u64 {
        self.own.load(Relaxed)
    }

    /// Keeps [`Progress::own`] equal to the applier's marker, which may also go back (an
    /// influxd that lost data holds an older marker, or none).
    pub async fn follow(self, mut applier: watch::Receiver<ApplierStatus>) {
        loop {
            self.own.store(applier.borrow_and_update().marker, Relaxed);
            if applier.changed().await.is_err() {
                return;
            }
        }
    }

    /// What `peer` said last. Not a maximum: a peer whose influxd was wiped reports less.
    pub fn record(&self, peer: u64, marker: u64) {
        self.peers.lock().insert(peer, marker);
    }

    /// The last marker `peer` reported, if it ever did.
    pub fn of(&self, peer: u64) -> Option<u64> {
        self.peers.lock().get(&peer).copied()
    }

    pub fn forget(&self, peer: u64) {
        self.peers.lock().remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follows_the_applier_back_and_forth() {
        let p = Progress::default();
        let (tx, rx) = watch::channel(ApplierStatus::default());
        let task = tokio::spawn(p.clone().follow(rx));
        for marker in [5, 9, 2] {
            tx.send_modify(|s| s.marker = marker);
            // The follower copies on its next turn.
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while p.own() != marker {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the marker is followed");
        }
        drop(tx);
        task.await.unwrap();
        p.record(2, 7);
        p.record(2, 3);
        assert_eq!(p.of(2), Some(3));
        p.forget(2);
        assert_eq!(p.of(2), None);
    }
}
