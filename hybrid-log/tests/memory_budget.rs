//! The memory tier never holds more than its budget, whatever the entry sizes, and what it
//! holds is always served from memory.

use hybrid_log::{HybridLog, LogBatch};
use proptest::prelude::*;
use raft::prelude::Entry;
use raft::{GetEntriesContext, Storage};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_tier_stays_within_budget(
        budget in 0usize..20_000,
        appends in prop::collection::vec(
            (0u64..4, prop::collection::vec(0usize..60_000, 1..6)), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path(), budget).unwrap();
        for (back, sizes) in appends {
            let start = log.last_index().saturating_sub(back) + 1;
            let entries: Vec<Entry> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| Entry { index: start + i as u64, term: 1, data: vec![1; n], ..Default::default() })
                .collect();
            let mut batch = LogBatch::new();
            batch.append(entries);
            log.commit(batch, false).unwrap();

            let stats = log.stats();
            prop_assert!(
                stats.memory_bytes <= budget as u64,
                "memory tier holds {} bytes, budget {}", stats.memory_bytes, budget
            );
            prop_assert_eq!(stats.disk_entries, log.last_index());
            // The newest entries the window holds are read without touching disk.
            if stats.memory_entries > 0 {
                let last = log.last_index();
                let first_in_memory = last - stats.memory_entries + 1;
                let misses = stats.memory_misses;
                log.entries(first_in_memory, last + 1, None, GetEntriesContext::empty(false)).unwrap();
                prop_assert_eq!(log.stats().memory_misses, misses);
            }
        }
    }
}
