//! Idempotency keys: the table that makes a retried write apply at most once, whichever node
//! each attempt reached.
//!
//! The table is built where entries are applied, in log order: every replica applies the same
//! committed entries in the same order, and the verdict on a keyed write depends only on
//! those entries (each carries its key, its digest, the receiving node's clock and settings:
//! [`KeyedBy`]), never on this node's clock or settings. So every replica reaches the same
//! verdict, across leader changes, and two attempts in flight at once are ordered by the log:
//! the first to commit is applied, the other answered with its outcome.
//!
//! A record is kept per applied keyed write, with influxd's outcome. Recording one evicts the
//! oldest records beyond the write's `max_keys`, and those older than its window: the table
//! is bounded by count and by time, the time the writes carry.
//!
//! The table must match influxd at influxd's marker, since that is where the applier
//! resumes. It is written, synced, with the log's metadata before each marker (so it never
//! lags influxd), one value per record, and the records it holds after the marker are
//! dropped again when the applier resumes there ([`KeyTable::rewind`]). An evicted record is
//! kept until a marker past its eviction is written: until then influxd may resume before
//! the eviction, where the record was live. A seed carries the table as it was at the
//! copy's marker ([`KeyTable::export`], [`KeyTable::replace`]), because the entries that
//! built it may be trimmed from every log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use hybrid_log::{HybridLog, LogBatch, LogError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::entry::KeyedBy;
use crate::log::{put_bytes, read_bytes, MetaKey};
use crate::outcome::Outcome;

/// A stored answer body larger than this keeps only the start of its error text: records
/// are bounded in size, and influxd's write errors are one line.
const MAX_BODY: usize = 4096;

/// What the applier does with a keyed write.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not seen within its window: apply it, then [`KeyTable::record`] its outcome.
    New,
    /// A retry of a write applied before: answer with that write's outcome, apply nothing.
    Retry(Outcome),
    /// The key was used for a different write within the window: refuse, apply nothing.
    Conflict(Outcome),
}

/// One applied keyed write and influxd's answer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The log index it was applied at.
    pub index: u64,
    pub key: String,
    /// Base64 of the client's request digest.
    pub digest: String,
    pub received_ms: u64,
    pub status: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The index of the write whose recording evicted it; kept until a marker covers that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_at: Option<u64>,
}

impl Record {
    fn new(index: u64, k: &KeyedBy, outcome: &Outcome) -> Record {
        let mut body = String::from_utf8_lossy(&outcome.body).into_owned();
        if body.len() > MAX_BODY {
            let text: String = outcome.error_text().chars().take(MAX_BODY / 4).collect();
            body = serde_json::json!({ "error": text }).to_string();
        }
        Record {
            index,
            key: k.key.clone(),
            digest: encode_digest(&k.digest),
            received_ms: k.received_ms,
            status: outcome.status,
            body,
            content_type: outcome.content_type.clone(),
            evicted_at: None,
        }
    }

    fn outcome(&self) -> Outcome {
        Outcome {
            status: self.status,
            body: Bytes::from(self.body.clone()),
            content_type: self.content_type.clone(),
            replayed: true,
        }
    }

    /// Whether a write received at `k.received_ms` falls within `k`'s window of this one. A
    /// retry stamped before the original (the receiving nodes' clocks differ) is within it.
    fn covers(&self, k: &KeyedBy) -> bool {
        k.received_ms.saturating_sub(self.received_ms) <= k.window_ms
    }
}

fn encode_digest(digest: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
}

/// The answer to a key reused for a different write: 422, as the IETF draft on the
/// `Idempotency-Key` header suggests, in influxd's error style.
pub fn conflict(key: &str) -> Outcome {
    let message = format!(
        "idempotency key {key:?} was already used for a different write (database, retention \
         policy, precision or body differ): a retry must send the same request; use a new key \
         for a new write"
    );
    Outcome {
        status: 422,
        body: Bytes::from(serde_json::json!({ "error": message }).to_string()),
        content_type: Some("application/json".into()),
        replayed: false,
    }
}

/// The table cannot be put where influxd's marker is: what it held there is no longer known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the idempotency keys at index {at} are not known here (this node's table covers \
     {floor} to {through})"
)]
pub struct KeysUnknown {
    pub at: u64,
    pub floor: u64,
    pub through: u64,
}

/// The table as it was at a seed's marker, for the node the seed goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub at: u64,
    pub records: Vec<Record>,
}

/// What the log's metadata holds besides the records: the span of indexes the stored table
/// can be rewound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Span {
    floor: u64,
    through: u64,
}

/// The table itself: deterministic, no locks and no I/O.
#[derive(Debug, Default)]
struct Table {
    /// Every record kept: live, and evicted ones not yet forgotten.
    records: BTreeMap<u64, Record>,
    /// Live records' indexes, oldest first, and the one live record of each key.
    live: BTreeSet<u64>,
    by_key: HashMap<String, u64>,
    /// Evicted records by (eviction index, index), first to be forgotten first.
    evicted: BTreeSet<(u64, u64)>,
    /// Every keyed write up to `through` is reflected; it can be rewound down to `floor`.
    floor: u64,
    through: u64,
    /// Records whose stored value changed since the table was last written (put or deleted).
    dirty: BTreeSet<u64>,
}

impl Table {
    fn verdict(&self, k: &KeyedBy) -> Verdict {
        let Some(r) = self.by_key.get(&k.key).map(|i| &self.records[i]) else {
            return Verdict::New;
        };
        if !r.covers(k) {
            Verdict::New
        } else if r.digest == encode_digest(&k.digest) {
            Verdict::Retry(r.outcome())
        } else {
            Verdict::Conflict(conflict(&k.key))
        }
    }

    /// Records the outcome of a write the verdict said to apply, evicting first what it
    /// pushes out: the key's own expired record, then the oldest records while there are
    /// `max_keys` or the oldest is past the window.
    fn record(&mut self, index: u64, k: &KeyedBy, outcome: &Outcome) {
        if let Some(&old) = self.by_key.get(&k.key) {
            self.evict(old, index);
        }
        let max = k.max_keys.max(1) as usize;
        while let Some(&oldest) = self.live.first() {
            let expired = !self.records[&oldest].covers(k);
            if self.live.len() < max && !expired {
                break;
            }
            self.evict(oldest, index);
        }
        self.records.insert(index, Record::new(index, k, outcome));
        self.live.insert(index);
        self.by_key.insert(k.key.clone(), index);
        self.dirty.insert(index);
        self.through = self.through.max(index);
    }

    fn evict(&mut self, index: u64, at: u64) {
        let Some(r) = self.records.get_mut(&index) else {
            return;
        };
        r.evicted_at = Some(at);
        self.live.remove(&index);
        self.by_key.remove(&r.key);
        self.evicted.insert((at, index));
        self.dirty.insert(index);
    }

    /// influxd holds a marker at `marker`: it will never resume before it, so records
    /// evicted up to there are needed no more.
    fn forget_through(&mut self, marker: u64) {
        while let Some(&(at, index)) = self.evicted.first() {
            if at > marker {
                break;
            }
            self.evicted.pop_first();
            self.records.remove(&index);
            self.dirty.insert(index);
        }
        self.floor = self.floor.max(marker.min(self.through));
    }

    /// The table as it was right after index `at`.
    fn rewind(&mut self, at: u64) -> Result<(), KeysUnknown> {
        if at == 0 {
            // Before the first entry nothing was recorded, whatever this node knew.
            self.dirty.extend(self.records.keys().copied());
            *self = Table {
                dirty: std::mem::take(&mut self.dirty),
                ..Table::default()
            };
            return Ok(());
        }
        if at < self.floor || at > self.through {
            return Err(KeysUnknown {
                at,
                floor: self.floor,
                through: self.through,
            });
        }
        let later: Vec<u64> = self.records.range(at + 1..).map(|(&i, _)| i).collect();
        for index in later {
            let r = self.records.remove(&index).expect("listed");
            if r.evicted_at.is_none() {
                self.live.remove(&index);
                self.by_key.remove(&r.key);
            }
            self.dirty.insert(index);
        }
        let revived: Vec<(u64, u64)> = self.evicted.range((at + 1, 0)..).copied().collect();
        for (evicted_at, index) in revived {
            self.evicted.remove(&(evicted_at, index));
            if let Some(r) = self.records.get_mut(&index) {
                r.evicted_at = None;
                self.live.insert(index);
                self.by_key.insert(r.key.clone(), index);
                self.dirty.insert(index);
            }
        }
        self.evicted.retain(|&(_, index)| index <= at);
        self.through = at;
        Ok(())
    }

    fn export(&self, at: u64) -> Result<Export, KeysUnknown> {
        if at < self.floor || at > self.through {
            return Err(KeysUnknown {
                at,
                floor: self.floor,
                through: self.through,
            });
        }
        let records = self
            .records
            .range(..=at)
            .map(|(_, r)| r)
            .filter(|r| r.evicted_at.is_none_or(|e| e > at))
            .map(|r| Record {
                evicted_at: None,
                ..r.clone()
            })
            .collect();
        Ok(Export { at, records })
    }

    /// A table made of `records`, in index order, reflecting the log up to `through`.
    fn from_records(records: Vec<Record>, floor: u64, through: u64) -> Table {
        let mut t = Table {
            floor,
            through,
            ..Table::default()
        };
        for r in records {
            if r.index > through {
                continue;
            }
            match r.evicted_at {
                Some(at) => {
                    t.evicted.insert((at, r.index));
                }
                None => {
                    if let Some(&earlier) = t.by_key.get(&r.key) {
                        // Never stored so; should it be, the later record is the key's.
                        t.evict(earlier, r.index);
                    }
                    t.live.insert(r.index);
                    t.by_key.insert(r.key.clone(), r.index);
                }
            }
            t.records.insert(r.index, r);
        }
        t.dirty.clear();
        t
    }

    fn span(&self) -> Span {
        Span {
            floor: self.floor,
            through: self.through,
        }
    }
}

/// The idempotency table of this node: shared by the applier, which keeps it, the write path,
/// which answers retries it already knows without proposing them again, and seeding.
pub struct KeyTable {
    store: Option<HybridLog>,
    table: Mutex<Table>,
    /// Copies of influxd being taken for a seed: while any is, no record is forgotten, so
    /// that the table can still be exported as it was at the copy's marker.
    holds: Mutex<usize>,
}

/// While it lives, [`KeyTable`] forgets nothing; see [`KeyTable::hold`].
pub struct Hold(Arc<KeyTable>);

impl Drop for Hold {
    fn drop(&mut self) {
        *self.0.holds.lock() -= 1;
    }
}

impl KeyTable {
    /// A table kept in memory only, for tests and tools: it starts knowing that no key was
    /// recorded before it (as a log older than keys), and is lost across a restart.
    pub fn in_memory() -> KeyTable {
        KeyTable {
            store: None,
            table: Mutex::new(Table::from_records(Vec::new(), 0, u64::MAX)),
            holds: Mutex::new(0),
        }
    }

    /// The table stored with `log`. A log that never stored one is either new, so the table
    /// knows nothing yet (influxd will have to be empty, or seeded), or was written by a
    /// version without keys, which recorded none at any index; that is decided now, before
    /// anything is appended, and stored. A table that cannot be read knows nothing either.
    pub fn open(log: &HybridLog) -> Result<KeyTable, LogError> {
        let stored = read_bytes(log, MetaKey::IdempotencySpan)?;
        let table = match &stored {
            Some(span) => match Self::read(log, span)? {
                Ok(table) => table,
                Err(e) => {
                    tracing::error!(error = %e, "the idempotency table stored with the log cannot be read; influxd will be seeded");
                    Table::from_records(Vec::new(), 0, 0)
                }
            },
            None => {
                let fresh = log.last_index() == 0 && log.hard_state().term == 0;
                let through = if fresh { 0 } else { u64::MAX };
                Table::from_records(Vec::new(), 0, through)
            }
        };
        let keys = KeyTable {
            store: Some(log.clone()),
            table: Mutex::new(table),
            holds: Mutex::new(0),
        };
        if stored.is_none() {
            keys.write(&mut keys.table.lock())?;
        }
        Ok(keys)
    }

    fn read(log: &HybridLog, span: &[u8]) -> Result<Result<Table, serde_json::Error>, LogError> {
        let span = match serde_json::from_slice::<Span>(span) {
            Ok(span) => span,
            Err(e) => return Ok(Err(e)),
        };
        let mut records = Vec::new();
        for (_, value) in log.meta_with_prefix(MetaKey::IdempotencyRecords.key())? {
            match serde_json::from_slice::<Record>(&value) {
                Ok(r) => records.push(r),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(Table::from_records(records, span.floor, span.through)))
    }

    /// What to do with the keyed write at the next index to apply.
    pub fn verdict(&self, k: &KeyedBy) -> Verdict {
        self.table.lock().verdict(k)
    }

    /// Whether `key` has a record (live, maybe past a window): a write with it must not be
    /// applied in one batch with writes before it, which the verdict on it may depend on.
    pub fn knows(&self, key: &str) -> bool {
        self.table.lock().by_key.contains_key(key)
    }

    /// Records influxd's outcome for the keyed write applied at `index`.
    pub fn record(&self, index: u64, k: &KeyedBy, outcome: &Outcome) {
        self.table.lock().record(index, k, outcome);
    }

    /// Writes what changed, synced, as the table after index `through` (everything up to it
    /// was applied): before a marker at `through` is written to influxd, so the table never
    /// lags the marker.
    pub fn persist(&self, through: u64) -> Result<(), LogError> {
        let mut t = self.table.lock();
        t.through = through;
        self.write(&mut t)
    }

    /// influxd now holds a marker at `marker`.
    pub fn marker_written(&self, marker: u64) {
        if *self.holds.lock() == 0 {
            self.table.lock().forget_through(marker);
        }
    }

    /// Puts the table where influxd's marker `at` is, where the applier resumes.
    pub fn rewind(&self, at: u64) -> Result<(), KeysUnknown> {
        self.table.lock().rewind(at)
    }

    /// Keeps every record until the returned guard is dropped: for a copy of influxd whose
    /// marker is read after this.
    pub fn hold(self: &Arc<Self>) -> Hold {
        *self.holds.lock() += 1;
        Hold(self.clone())
    }

    /// The table as it was right after index `at` (a copy's marker).
    pub fn export(&self, at: u64) -> Result<Export, KeysUnknown> {
        self.table.lock().export(at)
    }

    /// Replaces the table with a seed's, once influxd was wiped for the seed and before the
    /// copy's marker is written: the applier resumes at `export.at`, and can never go back
    /// before it.
    pub fn replace(&self, export: Export) -> Result<(), LogError> {
        let mut t = self.table.lock();
        let mut dirty = std::mem::take(&mut t.dirty);
        dirty.extend(t.records.keys().copied());
        let mut records: Vec<Record> = export
            .records
            .into_iter()
            .filter(|r| r.index <= export.at)
            .map(|r| Record {
                evicted_at: None,
                ..r
            })
            .collect();
        records.sort_by_key(|r| r.index);
        *t = Table::from_records(records, export.at, export.at);
        dirty.extend(t.records.keys().copied());
        t.dirty = dirty;
        self.write(&mut t)
    }

    /// Records kept: live ones, and all (for metrics and tests).
    pub fn len(&self) -> (usize, usize) {
        let t = self.table.lock();
        (t.live.len(), t.records.len())
    }

    fn write(&self, t: &mut Table) -> Result<(), LogError> {
        let Some(log) = &self.store else {
            t.dirty.clear();
            return Ok(());
        };
        let mut batch = LogBatch::new();
        for &index in &t.dirty {
            let key = record_key(index);
            match t.records.get(&index) {
                Some(r) => {
                    batch.put_meta(&key, serde_json::to_vec(r).expect("a record serializes"));
                }
                None => {
                    batch.delete_meta(&key);
                }
            }
        }
        let span = serde_json::to_vec(&t.span()).expect("a span serializes");
        put_bytes(&mut batch, MetaKey::IdempotencySpan, span);
        // Synced even when only the span moved: influxd syncs the marker that follows, and a
        // span lost to a power cut while the marker survived would send the node to a seed,
        // every node at once after a power cut of the whole cluster, with no source left.
        // Markers come at most about once a second (and after state changes), so the cost
        // is about one flush a second.
        log.commit(batch, true)?;
        t.dirty.clear();
        Ok(())
    }
}

/// The metadata key of the record at `index`: the family's prefix and the index in fixed
/// width, so that keys sort by index.
fn record_key(index: u64) -> String {
    format!("{}{index:020}", MetaKey::IdempotencyRecords.key())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn keyed(key: &str, body: &str, received_ms: u64) -> KeyedBy {
        KeyedBy {
            key: key.into(),
            digest: body.as_bytes().to_vec(),
            received_ms,
            window_ms: 10 * MIN,
            max_keys: 3,
        }
    }

    fn status(s: u16) -> Outcome {
        Outcome {
            status: s,
            body: if s == 204 {
                Bytes::new()
            } else {
                Bytes::from_static(br#"{"error":"partial write: x dropped=1"}"#)
            },
            content_type: (s != 204).then(|| "application/json".into()),
            replayed: false,
        }
    }

    /// Applies keyed writes as the applier does: a verdict, and a record when it says so.
    fn apply(t: &KeyTable, writes: &[(u64, KeyedBy)]) -> Vec<Verdict> {
        writes
            .iter()
            .map(|(index, k)| {
                let v = t.verdict(k);
                if v == Verdict::New {
                    t.record(*index, k, &status(if *index % 5 == 0 { 400 } else { 204 }));
                }
                v
            })
            .collect()
    }

    fn live_keys(t: &KeyTable) -> Vec<String> {
        let t = t.table.lock();
        t.live.iter().map(|i| t.records[i].key.clone()).collect()
    }

    #[test]
    fn a_retry_gets_the_first_outcome_and_another_body_a_conflict() {
        let t = KeyTable::in_memory();
        let v = apply(
            &t,
            &[
                (5, keyed("a", "x", 0)),
                (6, keyed("a", "x", MIN)),
                (7, keyed("a", "y", 2 * MIN)),
                (8, keyed("b", "x", 2 * MIN)),
            ],
        );
        assert_eq!(v[0], Verdict::New);
        // The first attempt's answer (a 400 at index 5), marked as a replay.
        let Verdict::Retry(o) = &v[1] else {
            panic!("{:?}", v[1])
        };
        assert_eq!((o.status, o.replayed), (400, true));
        assert_eq!(o.body, status(400).body);
        let Verdict::Conflict(o) = &v[2] else {
            panic!("{:?}", v[2])
        };
        assert_eq!(o.status, 422);
        assert!(o.error_text().contains("\"a\" was already used"), "{o:?}");
        assert_eq!(v[3], Verdict::New);
    }

    #[test]
    fn the_window_is_judged_by_the_writes_clocks() {
        let t = KeyTable::in_memory();
        let v = apply(
            &t,
            &[
                (1, keyed("a", "x", 100 * MIN)),
                // Exactly at the window's end, and stamped by a node whose clock is behind.
                (2, keyed("a", "x", 110 * MIN)),
                (3, keyed("a", "x", 99 * MIN)),
                // Past it: applied again, and from then on the new record is the key's.
                (4, keyed("a", "x", 110 * MIN + 1)),
                (6, keyed("a", "y", 115 * MIN)),
            ],
        );
        assert!(matches!(v[1], Verdict::Retry(_)));
        assert!(matches!(v[2], Verdict::Retry(_)));
        assert_eq!(v[3], Verdict::New);
        assert!(matches!(v[4], Verdict::Conflict(_)));
        // The expired record was evicted when the new one was recorded.
        assert_eq!(t.len(), (1, 2));
        // Recording a write evicts records past its window.
        apply(&t, &[(7, keyed("b", "x", 121 * MIN))]);
        assert_eq!(live_keys(&t), ["b"]);
    }

    #[test]
    fn the_table_keeps_at_most_max_keys_evicting_the_oldest() {
        let t = KeyTable::in_memory();
        let writes: Vec<(u64, KeyedBy)> = (1..=5)
            .map(|i| (i, keyed(&format!("k{i}"), "x", i)))
            .collect();
        apply(&t, &writes);
        assert_eq!(live_keys(&t), ["k3", "k4", "k5"]);
        // k1 is forgotten: a retry of it is applied again.
        assert_eq!(apply(&t, &[(6, keyed("k1", "x", 6))]), [Verdict::New]);
        assert!(matches!(
            &apply(&t, &[(7, keyed("k5", "x", 7))])[0],
            Verdict::Retry(_)
        ));
        // Evicted records wait for a marker past their eviction; none is held meanwhile.
        assert_eq!(t.len().1, 6);
        t.marker_written(5);
        assert_eq!(t.len(), (3, 4));
        let hold = Arc::new(KeyTable::in_memory());
        let _guard = hold.hold();
        apply(&hold, &writes);
        hold.marker_written(5);
        assert_eq!(hold.len(), (3, 5));
    }

    /// Two replicas applying the same entries reach the same verdicts and the same table,
    /// whatever happened to one of them in between (a restart from a marker behind).
    #[test]
    fn replicas_agree_also_after_resuming_from_a_marker() {
        let writes: Vec<(u64, KeyedBy)> = (1..=40u64)
            .map(|i| {
                let key = format!("k{}", i * 5 % 9 % 5);
                let body = if i % 11 == 0 { "other" } else { "x" };
                let k = keyed(&key, body, i * MIN / 2);
                (i, KeyedBy { max_keys: 4, ..k })
            })
            .collect();
        let a = KeyTable::in_memory();
        let verdicts_a = apply(&a, &writes);

        let b = KeyTable::in_memory();
        let mut verdicts_b = apply(&b, &writes[..25]);
        b.persist(25).unwrap();
        b.marker_written(18);
        // influxd had the marker at 18: the applier resumes there.
        b.rewind(18).unwrap();
        verdicts_b.truncate(18);
        verdicts_b.extend(apply(&b, &writes[18..]));
        assert_eq!(verdicts_a, verdicts_b);
        a.persist(40).unwrap();
        b.persist(40).unwrap();
        assert_eq!(a.export(40).unwrap(), b.export(40).unwrap());
        assert!(verdicts_a.iter().any(|v| matches!(v, Verdict::Retry(_))));
        assert!(verdicts_a.iter().any(|v| matches!(v, Verdict::Conflict(_))));
    }

    #[test]
    fn it_cannot_be_rewound_past_what_it_knows() {
        let t = KeyTable::in_memory();
        let writes: Vec<(u64, KeyedBy)> = (1..=6)
            .map(|i| (i, keyed(&format!("k{i}"), "x", i)))
            .collect();
        apply(&t, &writes);
        t.persist(8).unwrap();
        t.marker_written(5);
        let unknown = t.rewind(4).unwrap_err();
        assert_eq!((unknown.floor, unknown.through), (5, 8));
        assert!(t.rewind(9).is_err());
        // Index 0 always is: nothing was recorded before the first entry.
        t.rewind(0).unwrap();
        assert_eq!(t.len(), (0, 0));
    }

    #[test]
    fn the_table_is_stored_with_the_log_and_rewound_to_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
        let t = KeyTable::open(&log).unwrap();
        // A new log: nothing known, nothing to rewind to but 0.
        assert!(t.rewind(3).is_err());
        let writes: Vec<(u64, KeyedBy)> = (1..=6)
            .map(|i| (i, keyed(&format!("k{}", i % 4), "x", i)))
            .collect();
        apply(&t, &writes[..4]);
        t.persist(4).unwrap();
        t.marker_written(4);
        apply(&t, &writes[4..]);
        t.persist(6).unwrap();
        let at_6 = t.export(6).unwrap();
        let at_4 = t.export(4).unwrap();
        drop(t);

        let t = KeyTable::open(&log).unwrap();
        assert_eq!(t.export(6).unwrap(), at_6);
        // The marker in influxd is 4: what the table held there, also across another restart.
        t.rewind(4).unwrap();
        assert_eq!(t.export(4).unwrap(), at_4);
        t.persist(4).unwrap();
        drop(t);
        let t = KeyTable::open(&log).unwrap();
        assert_eq!(t.export(4).unwrap(), at_4);
        let stored = log
            .meta_with_prefix(MetaKey::IdempotencyRecords.key())
            .unwrap();
        assert_eq!(stored.len(), at_4.records.len());

        // A damaged record: the table knows nothing, and only index 0 can be resumed at.
        drop(t);
        let mut b = LogBatch::new();
        b.put_meta(&record_key(3), b"{not json".to_vec());
        log.commit(b, true).unwrap();
        let t = KeyTable::open(&log).unwrap();
        assert!(t.rewind(4).is_err());
        t.rewind(0).unwrap();
    }

    #[test]
    fn a_log_from_before_keys_knows_none_at_any_index() {
        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
        let mut b = LogBatch::new();
        b.set_hard_state(raft::prelude::HardState {
            term: 2,
            ..Default::default()
        });
        log.commit(b, true).unwrap();
        let t = KeyTable::open(&log).unwrap();
        t.rewind(1234).unwrap();
    }

    #[test]
    fn a_seed_carries_the_table_at_the_copys_marker() {
        let source = Arc::new(KeyTable::in_memory());
        let writes: Vec<(u64, KeyedBy)> = (1..=8)
            .map(|i| (i, keyed(&format!("k{i}"), "x", i)))
            .collect();
        apply(&source, &writes[..5]);
        source.persist(5).unwrap();
        source.marker_written(5);
        // The copy's marker is read once the hold is in place; the source goes on meanwhile.
        let hold = source.hold();
        apply(&source, &writes[5..]);
        source.persist(8).unwrap();
        source.marker_written(8);
        let export = source.export(5).unwrap();
        drop(hold);
        assert_eq!(
            export.records.iter().map(|r| r.index).collect::<Vec<_>>(),
            [3, 4, 5]
        );

        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
        let node = KeyTable::open(&log).unwrap();
        apply(&node, &[(1, keyed("mine", "x", 1))]);
        node.replace(export.clone()).unwrap();
        drop(node);
        let node = KeyTable::open(&log).unwrap();
        node.rewind(5).unwrap();
        assert_eq!(node.export(5).unwrap(), export);
        assert!(node.rewind(4).is_err());
        // Replaying what came after the copy, the node reaches the source's verdicts.
        let replayed = apply(&node, &writes[5..]);
        let again = KeyTable::in_memory();
        assert_eq!(replayed, apply(&again, &writes)[5..]);
    }
}
