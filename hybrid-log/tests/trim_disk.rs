//! Trimming gives disk space back, in the background: a log of 200 MiB of incompressible
//! entries shrinks on disk once most of it is trimmed and still reopens whole, and appends go
//! on while the compaction that frees the space runs.

use std::time::{Duration, Instant};

use hybrid_log::{HybridLog, LogBatch, LogStats};
use raft::prelude::{Entry, HardState};
use raft::{GetEntriesContext, Storage};

const MIB: u64 = 1 << 20;
const ENTRY_BYTES: usize = 256 << 10;
/// 200 MiB of entries.
const ENTRIES: u64 = 800;
/// What trimming leaves: the last 40 entries (10 MiB).
const KEEP: u64 = 40;

/// Bytes neither LZ4 nor RocksDB can shrink (xorshift), different for every entry.
fn noise(index: u64) -> Vec<u8> {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(ENTRY_BYTES);
    while out.len() < ENTRY_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn entry(index: u64, data: Vec<u8>) -> Entry {
    Entry {
        index,
        term: 1,
        data,
        ..Default::default()
    }
}

/// Appends `entries` and commits them, as the raft loop would, in one synced batch.
fn append(log: &HybridLog, entries: Vec<Entry>) {
    let last = entries.last().expect("entries to append").index;
    let mut batch = LogBatch::new();
    batch.append(entries).set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: last,
    });
    log.commit(batch, true).unwrap();
}

/// A log holding `ENTRIES` entries of noise.
fn large_log(path: &std::path::Path) -> HybridLog {
    let log = HybridLog::open(path, 8 << 20).unwrap();
    for first in (1..=ENTRIES).step_by(16) {
        append(
            &log,
            (first..first + 16).map(|i| entry(i, noise(i))).collect(),
        );
    }
    log
}

/// Waits until `done` holds for the log's counters, at most two minutes.
fn wait_for(log: &HybridLog, what: &str, done: impl Fn(&LogStats) -> bool) -> LogStats {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = log.stats();
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 2 minutes: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn trimming_most_of_a_large_log_gives_its_disk_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = large_log(&path);
    let before = log.stats().dir_bytes;
    // The entries, and a WAL bounded well below their size.
    assert!(
        before > 190 * MIB && before < 280 * MIB,
        "200 MiB of noise take {} MiB",
        before / MIB
    );

    let through = ENTRIES - KEEP;
    let trimmed = log.trim(through).unwrap();
    assert_eq!(trimmed.entries, through);
    assert_eq!(trimmed.trim_point.index, through);
    assert!(
        trimmed.approx_bytes > 150 * MIB && trimmed.approx_bytes < 250 * MIB,
        "{} entries of 256 KiB estimated at {} bytes",
        through,
        trimmed.approx_bytes
    );
    let stats = log.stats();
    assert_eq!(stats.first_index, through + 1);
    assert_eq!(stats.disk_entries, KEEP);
    assert_eq!(stats.trimmed_entries_total, through);

    // What stays: 10 MiB of entries, the WAL the newest of them are in, and files the
    // compaction rewrote where they straddled the trim point.
    let bound = 48 * MIB;
    let started = Instant::now();
    wait_for(&log, "the compaction after the trim", |s| {
        s.compacted_through >= through
    });
    let after = wait_for(&log, "the trimmed files deleted", |s| s.dir_bytes < bound);
    eprintln!(
        "dir {} -> {} MiB, compacted in {:?}",
        before / MIB,
        after.dir_bytes / MIB,
        started.elapsed()
    );

    drop(log);
    let started = Instant::now();
    let log = HybridLog::open(&path, 8 << 20).unwrap();
    eprintln!("reopened in {:?}", started.elapsed());
    assert_eq!(log.trim_point().index, through);
    assert_eq!(log.first_index().unwrap(), through + 1);
    assert_eq!(log.term(through).unwrap(), 1);
    let kept = log
        .entries(
            through + 1,
            ENTRIES + 1,
            None,
            GetEntriesContext::empty(false),
        )
        .unwrap();
    assert_eq!(kept.len() as u64, KEEP);
    for e in &kept {
        assert_eq!(e.data, noise(e.index), "entry {} read back wrong", e.index);
    }
    assert!(log.stats().dir_bytes < bound);
}

#[test]
fn appends_go_on_while_a_large_compaction_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = large_log(&dir.path().join("log"));
    let through = ENTRIES - KEEP;
    log.trim(through).unwrap();

    // Small synced appends, as the raft loop makes under load, for as long as the
    // compaction runs; then they must all be there.
    let mut next = ENTRIES + 1;
    let mut during = 0;
    let started = Instant::now();
    while log.stats().compacted_through < through {
        append(&log, vec![entry(next, next.to_be_bytes().repeat(64))]);
        next += 1;
        during += 1;
    }
    eprintln!(
        "{during} appends during a compaction of {:?}",
        started.elapsed()
    );
    assert!(during > 0, "no append completed while the compaction ran");
    let appended = log
        .entries(ENTRIES + 1, next, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(appended.len() as u64, next - ENTRIES - 1);
    for e in appended {
        assert_eq!(e.data, e.index.to_be_bytes().repeat(64));
    }
}
