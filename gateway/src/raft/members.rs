//! The address book: which peer address each member listens on. It travels in the log (each
//! membership change carries the address of the node it adds), is kept with the log on disk,
//! and the transport reads it to know where to connect.

use std::collections::BTreeMap;
use std::sync::Arc;

use hybrid_log::{HybridLog, LogBatch};
use parking_lot::RwLock;
use snapshotless::log::{put_bytes, read_bytes, MetaKey};

#[derive(Clone, Default)]
pub struct AddressBook {
    inner: Arc<RwLock<BTreeMap<u64, String>>>,
}

impl AddressBook {
    /// The book kept with the log, completed by the configured peers (which win for ids the
    /// log does not know yet: a node restarted with a corrected address).
    pub fn load(log: &HybridLog, configured: &BTreeMap<u64, String>) -> AddressBook {
        let mut map: BTreeMap<u64, String> = read_bytes(log, MetaKey::Addresses)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        for (id, addr) in configured {
            map.entry(*id).or_insert_with(|| addr.clone());
        }
        AddressBook {
            inner: Arc::new(RwLock::new(map)),
        }
    }

    pub fn get(&self, id: u64) -> Option<String> {
        self.inner.read().get(&id).cloned()
    }

    pub fn all(&self) -> BTreeMap<u64, String> {
        self.inner.read().clone()
    }

    /// Whether `pred` holds for every id in the book, without copying it.
    pub fn every_id(&self, pred: impl FnMut(&u64) -> bool) -> bool {
        self.inner.read().keys().all(pred)
    }

    /// Records an address; returns whether anything changed.
    pub fn set(&self, id: u64, addr: &str) -> bool {
        let mut map = self.inner.write();
        if map.get(&id).map(String::as_str) == Some(addr) {
            return false;
        }
        map.insert(id, addr.to_owned());
        true
    }

    pub fn remove(&self, id: u64) -> bool {
        self.inner.write().remove(&id).is_some()
    }

    /// The book as a leader's snapshot carries it: a member that takes its position from a
    /// snapshot never sees the membership changes below it, which carried the addresses.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.inner.read()).expect("a map serializes")
    }

    /// Takes the addresses of a book from [`AddressBook::encode`]; returns whether anything
    /// changed. Unreadable bytes change nothing.
    pub fn merge(&self, encoded: &[u8]) -> bool {
        let Ok(map) = serde_json::from_slice::<BTreeMap<u64, String>>(encoded) else {
            return false;
        };
        let mut changed = false;
        for (id, addr) in map {
            changed |= self.set(id, &addr);
        }
        changed
    }

    /// Adds the book to a batch, so it is made durable with the change that altered it.
    pub fn persist(&self, batch: &mut LogBatch) {
        let json = serde_json::to_vec(&*self.inner.read()).expect("a map serializes");
        put_bytes(batch, MetaKey::Addresses, json);
    }
}
