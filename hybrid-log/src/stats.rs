//! Counters the gateway exports as metrics. Plain atomics: they are bumped on the read and
//! write paths and must cost next to nothing there.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (microseconds) of the sync latency histogram buckets; the last bucket is open.
pub const SYNC_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

#[derive(Default)]
pub struct Stats {
    memory_hits: AtomicU64,
    memory_misses: AtomicU64,
    memory_entries: AtomicU64,
    memory_bytes: AtomicU64,
    disk_entries: AtomicU64,
    first_index: AtomicU64,
    trimmed_entries: AtomicU64,
    trimmed_bytes: AtomicU64,
    compacted_through: AtomicU64,
    syncs: AtomicU64,
    sync_us_total: AtomicU64,
    sync_buckets: [AtomicU64; SYNC_BUCKETS_US.len() + 1],
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default)]
pub struct LogStats {
    /// Range reads served entirely from the memory tier.
    pub memory_hits: u64,
    /// Range reads that had to go to RocksDB.
    pub memory_misses: u64,
    pub memory_entries: u64,
    pub memory_bytes: u64,
    /// Entries on disk: from `first_index` to the last index.
    pub disk_entries: u64,
    /// RocksDB's estimate of the live bytes of the entries column family.
    pub disk_bytes: u64,
    /// What the log directory takes on disk: SST files, WAL, manifest. Trimmed entries leave
    /// it once the background compaction ran (`compacted_through`).
    pub dir_bytes: u64,
    /// The first index the log holds; everything below was trimmed (1 if nothing was).
    pub first_index: u64,
    /// Entries trimmed since the log was opened (snapshot applications included).
    pub trimmed_entries_total: u64,
    /// Their approximate size on disk before compaction, since the log was opened.
    pub trimmed_bytes_total: u64,
    /// The trim point up to which a background compaction has finished: from there down,
    /// trimmed entries no longer take disk space. Below `first_index - 1` while one runs.
    pub compacted_through: u64,
    pub syncs: u64,
    pub sync_seconds_total: f64,
    /// Cumulative counts per bucket of [`SYNC_BUCKETS_US`], then the total (Prometheus style).
    pub sync_buckets: Vec<(f64, u64)>,
}

impl Stats {
    pub fn memory_hit(&self) {
        self.memory_hits.fetch_add(1, Relaxed);
    }

    pub fn memory_miss(&self) {
        self.memory_misses.fetch_add(1, Relaxed);
    }

    pub fn set_memory(&self, entries: u64, bytes: u64) {
        self.memory_entries.store(entries, Relaxed);
        self.memory_bytes.store(bytes, Relaxed);
    }

    pub fn set_disk_entries(&self, n: u64) {
        self.disk_entries.store(n, Relaxed);
    }

    pub fn set_first_index(&self, index: u64) {
        self.first_index.store(index, Relaxed);
    }

    pub fn record_trim(&self, entries: u64, bytes: u64) {
        self.trimmed_entries.fetch_add(entries, Relaxed);
        self.trimmed_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn set_compacted_through(&self, index: u64) {
        self.compacted_through.fetch_max(index, Relaxed);
    }

    pub fn record_sync(&self, took: Duration) {
        let us = took.as_micros() as u64;
        self.syncs.fetch_add(1, Relaxed);
        self.sync_us_total.fetch_add(us, Relaxed);
        let bucket = SYNC_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(SYNC_BUCKETS_US.len());
        self.sync_buckets[bucket].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self, disk_bytes: u64, dir_bytes: u64) -> LogStats {
        let mut cumulative = 0;
        let mut sync_buckets = Vec::with_capacity(SYNC_BUCKETS_US.len() + 1);
        for (i, count) in self.sync_buckets.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le = SYNC_BUCKETS_US
                .get(i)
                .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
            sync_buckets.push((le, cumulative));
        }
        LogStats {
            memory_hits: self.memory_hits.load(Relaxed),
            memory_misses: self.memory_misses.load(Relaxed),
            memory_entries: self.memory_entries.load(Relaxed),
            memory_bytes: self.memory_bytes.load(Relaxed),
            disk_entries: self.disk_entries.load(Relaxed),
            disk_bytes,
            dir_bytes,
            first_index: self.first_index.load(Relaxed),
            trimmed_entries_total: self.trimmed_entries.load(Relaxed),
            trimmed_bytes_total: self.trimmed_bytes.load(Relaxed),
            compacted_through: self.compacted_through.load(Relaxed),
            syncs: self.syncs.load(Relaxed),
            sync_seconds_total: self.sync_us_total.load(Relaxed) as f64 / 1e6,
            sync_buckets,
        }
    }
}
