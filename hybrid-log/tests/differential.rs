//! HybridLog must answer every `raft::Storage` question exactly as raft-rs's own MemStorage
//! does, whatever the sequence of appends (with conflicting overwrites), state updates,
//! reopens and memory budget.

use hybrid_log::{HybridLog, LogBatch};
use proptest::prelude::*;
use raft::prelude::{ConfState, Entry, EntryType, HardState};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, Storage};

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
        }
    }

    fn hybrid(&self) -> &HybridLog {
        self.log.as_ref().expect("open")
    }

    fn last(&self) -> u64 {
        self.model.last_index().unwrap()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append {
                back,
                term,
                sizes,
                with_context,
            } => {
                let start = self.last().saturating_sub(*back).max(1);
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
                let hs = HardState {
                    term: *term,
                    vote: *vote,
                    commit: *commit,
                };
                self.model.wl().set_hardstate(hs.clone());
                let mut batch = LogBatch::new();
                batch.set_hard_state(hs);
                self.hybrid().commit(batch, true).unwrap();
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
                let lo = lo % (last + 1) + 1; // 1..=last+1
                let lo = lo.min(last);
                let hi = (lo + span).min(last + 1);
                let want = self
                    .model
                    .entries(lo, hi, *max_size, GetEntriesContext::empty(false))
                    .unwrap();
                let got = self
                    .hybrid()
                    .entries(lo, hi, *max_size, GetEntriesContext::empty(false))
                    .unwrap();
                prop_assert_eq!(got, want, "entries({}, {}, {:?})", lo, hi, max_size);
            }
            Op::Term(idx) => {
                let idx = idx % (self.last() + 3);
                let want = self.model.term(idx).map_err(|e| e.to_string());
                let got = self.hybrid().term(idx).map_err(|e| e.to_string());
                prop_assert_eq!(got, want, "term({})", idx);
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
        prop_assert_eq!(h.conf_state, m.conf_state);
        let stats = self.hybrid().stats();
        prop_assert!(stats.memory_bytes <= self.budget as u64);
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
