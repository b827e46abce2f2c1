//! Requests waiting on the log: a write waits for its entry to commit and then for the local
//! applier's outcome; a linearizable read waits for a read index; a membership change waits
//! for its entry to be applied by the Raft loop.
//!
//! Entries name their origin (node id, request id) in their Raft context, so both the Raft
//! loop and the applier can find the waiter without decoding payloads. Request ids start at a
//! random value: after a restart, old entries still being applied must not be mistaken for
//! new requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use snapshotless::{Origin, Outcome, OutcomeSink};
use tokio::sync::oneshot;

#[derive(Default)]
struct Waiter {
    committed: Option<oneshot::Sender<u64>>,
    applied: Option<oneshot::Sender<Outcome>>,
    read_index: Option<oneshot::Sender<u64>>,
}

pub struct Pending {
    node: u64,
    next: AtomicU64,
    waiters: Mutex<HashMap<u64, Waiter>>,
}

/// One request's place in [`Pending`]; dropping it (answered, timed out, client gone)
/// forgets the request.
pub struct Ticket {
    pub origin: Origin,
    pending: Arc<Pending>,
    pub committed: oneshot::Receiver<u64>,
    pub applied: oneshot::Receiver<Outcome>,
    pub read_index: oneshot::Receiver<u64>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pending.waiters.lock().remove(&self.origin.request);
    }
}

impl Pending {
    pub fn new(node: u64) -> Arc<Pending> {
        Arc::new(Pending {
            node,
            next: AtomicU64::new(rand::random::<u64>() >> 1),
            waiters: Mutex::new(HashMap::new()),
        })
    }

    pub fn register(self: &Arc<Self>) -> Ticket {
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        let (c_tx, c_rx) = oneshot::channel();
        let (a_tx, a_rx) = oneshot::channel();
        let (r_tx, r_rx) = oneshot::channel();
        self.waiters.lock().insert(
            request,
            Waiter {
                committed: Some(c_tx),
                applied: Some(a_tx),
                read_index: Some(r_tx),
            },
        );
        Ticket {
            origin: Origin {
                node: self.node,
                request,
            },
            pending: self.clone(),
            committed: c_rx,
            applied: a_rx,
            read_index: r_rx,
        }
    }

    /// The Raft loop saw this node's entry commit at `index`.
    pub fn committed(&self, request: u64, index: u64) {
        if let Some(w) = self.waiters.lock().get_mut(&request) {
            if let Some(tx) = w.committed.take() {
                let _ = tx.send(index);
            }
        }
    }

    pub fn read_index(&self, request: u64, index: u64) {
        if let Some(w) = self.waiters.lock().get_mut(&request) {
            if let Some(tx) = w.read_index.take() {
                let _ = tx.send(index);
            }
        }
    }

    /// The node lost its leader: requests not yet committed can no longer be confirmed from
    /// here. Dropping their senders tells each waiter its outcome is unknown, right away
    /// rather than at its timeout.
    pub fn leader_lost(&self) {
        for w in self.waiters.lock().values_mut() {
            if w.committed.is_some() {
                w.committed = None;
                w.applied = None;
            }
            w.read_index = None;
        }
    }

    pub fn len(&self) -> usize {
        self.waiters.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OutcomeSink for Pending {
    fn applied(&self, origin: Origin, _index: u64, outcome: Outcome) {
        if let Some(w) = self.waiters.lock().get_mut(&origin.request) {
            if let Some(tx) = w.applied.take() {
                let _ = tx.send(outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commit_then_outcome_reach_the_ticket() {
        let p = Pending::new(1);
        let mut t = p.register();
        p.committed(t.origin.request, 7);
        p.applied(
            t.origin,
            7,
            Outcome {
                status: 204,
                body: Default::default(),
                content_type: None,
                replayed: false,
            },
        );
        assert_eq!((&mut t.committed).await.unwrap(), 7);
        assert_eq!((&mut t.applied).await.unwrap().status, 204);
    }

    #[tokio::test]
    async fn leader_loss_fails_uncommitted_only() {
        let p = Pending::new(1);
        let mut committed = p.register();
        let mut uncommitted = p.register();
        p.committed(committed.origin.request, 3);
        p.leader_lost();
        assert!((&mut uncommitted.committed).await.is_err());
        assert_eq!((&mut committed.committed).await.unwrap(), 3);
    }

    #[test]
    fn dropping_a_ticket_forgets_it() {
        let p = Pending::new(1);
        let t = p.register();
        assert_eq!(p.len(), 1);
        drop(t);
        assert!(p.is_empty());
    }
}
