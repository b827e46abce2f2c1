//! HybridLog must answer every `raft::Storage` question exactly as raft-rs's own MemStorage
//! does, whatever the sequence of appends (with conflicting overwrites), state updates,
//! trims (`MemStorage::compact`), snapshot applications (`MemStorage::apply_snapshot`),
//! reopens and memory budget.

use hybrid_log::{HybridLog, LogBatch, LogError, TrimPoint};
use proptest::prelude::*;
use raft::prelude::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, Storage, StorageError};

#[derive(Debug, Clone)]
enum Op {
    /// Append `sizes.len()` entries starting `back` entries before the end (0 = no conflict).
    Append {
        back: u64,
        term: u64,
        sizes: Vec<usize>,
        with_context: bool,
    },
    HardState {
        term: u64,
        vote: u64,
        commit: u64,
    },
    ConfState {
        voters: Vec<u64>,
        learners: Vec<u64>,
    },
    /// Reads `entries(lo, hi, max_size)` where lo and hi are picked within the log.
    Entries {
        lo: u64,
        span: u64,
        max_size: Option<u64>,
    },
    Term(u64),
    /// Trims through an index picked around the log's extent: below the trim point (a no-op),
    /// inside, or past it (refused). `commit` first moves the commit index up to it, as raft
    /// does before a caller may trim.
    Trim {
        at: u64,
        commit: bool,
    },
    /// Applies a snapshot at an index picked around the log's extent, with the term of the
    /// entry there or a later one, and a new membership.
    Snapshot {
        at: u64,
        term_bump: u64,
        voters: Vec<u64>,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Sizes on both sides of the size from which entries are stored LZ4-compressed.
        6 => (0u64..6, 1u64..5, prop::collection::vec(0usize..1200, 1..8), any::<bool>())
            .prop_map(|(back, term, sizes, with_context)| Op::Append { back, term, sizes, with_context }),
        1 => (0u64..10, 0u64..4, 0u64..50).prop_map(|(term, vote, commit)| Op::HardState { term, vote, commit }),
        1 => (prop::collection::vec(1u64..6, 0..4), prop::collection::vec(6u64..9, 0..2))
            .prop_map(|(voters, learners)| Op::ConfState { voters, learners }),
        6 => (0u64..60, 0u64..20, prop::option::of(0u64..2000))
            .prop_map(|(lo, span, max_size)| Op::Entries { lo, span, max_size }),
        3 => (0u64..60).prop_map(Op::Term),
        2 => (any::<u64>(), any::<bool>()).prop_map(|(at, commit)| Op::Trim { at, commit }),
        1 => (any::<u64>(), 0u64..3, prop::collection::vec(1u64..6, 1..4))
            .prop_map(|(at, term_bump, voters)| Op::Snapshot { at, term_bump, voters }),
        1 => Just(Op::Reopen),
    ]
}

struct Pair {
    dir: tempfile::TempDir,
    budget: usize,
    log: Option<HybridLog>,
    model: MemStorage,
    /// The term of the newest entry, so appends keep terms non-decreasing as raft does.
    term: u64,
    /// The model's trim point. `MemStorage::compact` forgets the term of the last entry it
    /// removes, which raft-rs's `Storage` contract asks to keep (`term(first_index - 1)`), so
    /// the model answers at and below it from here.
    trim: TrimPoint,
}

impl Pair {
    fn new(budget: usize) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path().join("log"), budget).unwrap();
        Pair {
            dir,
            budget,
            log: Some(log),
            model: MemStorage::new(),
            term: 1,
            trim: TrimPoint::default(),
        }
    }

    fn hybrid(&self) -> &HybridLog {
        self.log.as_ref().expect("open")
    }

    fn last(&self) -> u64 {
        self.model.last_index().unwrap()
    }

    fn commit(&self) -> u64 {
        self.model.rl().hard_state().commit
    }

    /// The model's `term(idx)`: MemStorage's, except at and below the trim point.
    fn model_term(&self, idx: u64) -> Result<u64, String> {
        if idx == self.trim.index {
            Ok(self.trim.term)
        } else if idx < self.trim.index {
            Err(raft::Error::Store(StorageError::Compacted).to_string())
        } else {
            self.model.term(idx).map_err(|e| e.to_string())
        }
    }

    fn set_hard_state(&mut self, hs: HardState) {
        self.model.wl().set_hardstate(hs.clone());
        let mut batch = LogBatch::new();
        batch.set_hard_state(hs);
        self.hybrid().commit(batch, true).unwrap();
    }

    /// Trims both through `index`, which the caller found valid.
    fn trim_model(&mut self, index: u64) {
        let term = self.model.term(index).unwrap();
        let last = self.last();
        if index < last {
            self.model.wl().compact(index + 1).unwrap();
        } else {
            // `compact` past the last entry would leave MemStorage without a position (its
            // first index falls back to 1); a snapshot at the last entry is the same trim
            // there, once the HardState it resets is put back.
            let hs = self.model.rl().hard_state().clone();
            let snapshot = Snapshot {
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(self.model.initial_state().unwrap().conf_state),
                    index,
                    term,
                }),
                ..Default::default()
            };
            self.model.wl().apply_snapshot(snapshot).unwrap();
            self.model.wl().set_hardstate(hs);
        }
        self.trim = TrimPoint { index, term };
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append {
                back,
                term,
                sizes,
                with_context,
            } => {
                // Never over trimmed entries: MemStorage panics there, HybridLog refuses.
                let start = self.last().saturating_sub(*back).max(self.trim.index + 1);
                self.term += term - 1;
                let entries: Vec<Entry> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &size)| Entry {
                        entry_type: EntryType::EntryNormal as i32,
                        index: start + i as u64,
                        term: self.term,
                        data: (0..size)
                            .map(|b| (b as u64 * 31 + start + i as u64) as u8)
                            .collect(),
                        context: if *with_context { vec![7; i] } else { vec![] },
                        ..Default::default()
                    })
                    .collect();
                self.model.wl().append(&entries).unwrap();
                let mut batch = LogBatch::new();
                batch.append(entries);
                self.hybrid().commit(batch, false).unwrap();
            }
            Op::HardState { term, vote, commit } => {
                self.set_hard_state(HardState {
                    term: *term,
                    vote: *vote,
                    commit: *commit,
                });
            }
            Op::ConfState { voters, learners } => {
                let cs = ConfState::from((voters.clone(), learners.clone()));
                self.model.wl().set_conf_state(cs.clone());
                let mut batch = LogBatch::new();
                batch.set_conf_state(cs);
                self.hybrid().commit(batch, false).unwrap();
            }
            Op::Entries { lo, span, max_size } => {
                let last = self.last();
                if last == 0 {
                    return Ok(());
                }
                // From just below the trim point (Compacted) to the last entry.
                let base = self.trim.index.saturating_sub(2).max(1);
                let lo = base + lo % (last + 1 - base);
                let hi = (lo + span).min(last + 1);
                let want = self
                    .model
                    .entries(lo, hi, *max_size, GetEntriesContext::empty(false))
                    .map_err(|e| e.to_string());
                let got = self
                    .hybrid()
                    .entries(lo, hi, *max_size, GetEntriesContext::empty(false))
                    .map_err(|e| e.to_string());
                prop_assert_eq!(got, want, "entries({}, {}, {:?})", lo, hi, max_size);
            }
            Op::Term(idx) => {
                let idx = idx % (self.last() + 3);
                let want = self.model_term(idx);
                let got = self.hybrid().term(idx).map_err(|e| e.to_string());
                prop_assert_eq!(got, want, "term({})", idx);
            }
            Op::Trim { at, commit } => {
                let (t, last) = (self.trim.index, self.last());
                // From two below the trim point to one past the last index.
                let index = t.saturating_sub(2) + at % (last + 4 - t.saturating_sub(2));
                if *commit && index > self.commit() {
                    let mut hs = self.model.rl().hard_state().clone();
                    hs.commit = index;
                    self.set_hard_state(hs);
                }
                let got = self.hybrid().trim(index);
                if index <= t {
                    let got = got.unwrap();
                    prop_assert_eq!((got.entries, got.trim_point), (0, self.trim));
                } else if index > last || index > self.commit() {
                    let refused = matches!(got, Err(LogError::TrimBeyondCommitted { .. }));
                    prop_assert!(
                        refused,
                        "trim({}) of 1..={} committed through {}: {:?}",
                        index,
                        last,
                        self.commit(),
                        got
                    );
                } else {
                    let got = got.unwrap();
                    self.trim_model(index);
                    prop_assert_eq!((got.entries, got.trim_point), (index - t, self.trim));
                }
            }
            Op::Snapshot {
                at,
                term_bump,
                voters,
            } => {
                let (t, last) = (self.trim.index, self.last());
                // From one below the trim point (out of date) to past the last index.
                let index = t.saturating_sub(1) + at % (last + 8 - t.saturating_sub(1));
                let term = self.model_term(index).unwrap_or(self.term) + term_bump;
                let meta = SnapshotMetadata {
                    conf_state: Some(ConfState::from((voters.clone(), vec![]))),
                    index,
                    term,
                };
                let before = self.model.rl().hard_state().clone();
                let want = self.model.wl().apply_snapshot(Snapshot {
                    metadata: Some(meta.clone()),
                    ..Default::default()
                });
                let got = self.hybrid().apply_snapshot_metadata(&meta);
                prop_assert_eq!(
                    got.map_err(|e| raft::Error::from(e).to_string()),
                    want.map_err(|e| e.to_string()),
                    "apply_snapshot at {} with the log trimmed through {}",
                    index,
                    t
                );
                if index > t {
                    // MemStorage sets the commit index to the snapshot's; HybridLog never
                    // lowers it.
                    let mut hs = self.model.rl().hard_state().clone();
                    hs.commit = hs.commit.max(before.commit);
                    self.model.wl().set_hardstate(hs);
                    self.trim = TrimPoint { index, term };
                    self.term = self.term.max(term);
                }
            }
            Op::Reopen => {
                // Close first: RocksDB holds a lock on the directory.
                self.log = None;
                self.log = Some(HybridLog::open(self.dir.path().join("log"), self.budget).unwrap());
            }
        }
        self.check_common()
    }

    fn check_common(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            self.hybrid().first_index().unwrap(),
            self.model.first_index().unwrap()
        );
        prop_assert_eq!(
            Storage::last_index(self.hybrid()).unwrap(),
            self.model.last_index().unwrap()
        );
        let (h, m) = (
            self.hybrid().initial_state().unwrap(),
            self.model.initial_state().unwrap(),
        );
        prop_assert_eq!(h.hard_state, m.hard_state);
        prop_assert_eq!(&h.conf_state, &m.conf_state);
        prop_assert_eq!(self.hybrid().trim_point(), self.trim);
        let stats = self.hybrid().stats();
        prop_assert!(stats.memory_bytes <= self.budget as u64);
        prop_assert_eq!(stats.first_index, self.trim.index + 1);
        prop_assert_eq!(stats.disk_entries, self.last() - self.trim.index);
        // What raft-rs sends a follower that needs trimmed entries.
        let snapshot = self.hybrid().snapshot(0, 2).map_err(|e| e.to_string());
        if self.trim.index == 0 {
            prop_assert!(snapshot.is_err());
        } else {
            let want = SnapshotMetadata {
                conf_state: Some(h.conf_state),
                index: self.trim.index,
                term: self.trim.term,
            };
            prop_assert_eq!(
                snapshot,
                Ok(Snapshot {
                    metadata: Some(want),
                    data: vec![]
                })
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A budget of a few entries: most reads go to disk or straddle both tiers.
    #[test]
    fn same_answers_as_memstorage_small_budget(
        budget in 0usize..3000,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut pair = Pair::new(budget);
        for op in &ops {
            pair.apply(op)?;
        }
    }

    /// A budget that holds the whole log: reads come from memory.
    #[test]
    fn same_answers_as_memstorage_large_budget(ops in prop::collection::vec(op(), 1..120)) {
        let mut pair = Pair::new(64 << 20);
        for op in &ops {
            pair.apply(op)?;
        }
    }
}

#[test]
fn reads_are_counted_as_memory_hits_or_misses() {
    let mut pair = Pair::new(2000);
    pair.apply(&Op::Append {
        back: 0,
        term: 1,
        sizes: vec![300; 20],
        with_context: false,
    })
    .unwrap();
    let before = pair.hybrid().stats();
    let last = pair.last();
    pair.hybrid()
        .entries(last, last + 1, None, GetEntriesContext::empty(false))
        .unwrap();
    pair.hybrid()
        .entries(1, 2, None, GetEntriesContext::empty(false))
        .unwrap();
    let after = pair.hybrid().stats();
    assert_eq!(after.memory_hits, before.memory_hits + 1);
    assert_eq!(after.memory_misses, before.memory_misses + 1);
    assert_eq!(after.disk_entries, 20);
    assert!(after.memory_entries > 0 && after.memory_entries < 20);
}
