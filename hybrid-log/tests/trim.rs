//! The rules of trimming and of taking a snapshot's position, one by one: what each accepts
//! and refuses, what raft-rs then reads from the log, and that a reopened log says the same.

use hybrid_log::{HybridLog, LogBatch, LogError, TrimPoint};
use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use raft::{GetEntriesContext, Storage, StorageError};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index}").into_bytes(),
        ..Default::default()
    }
}

/// Appends `from..=to` in `term`, committed through `commit`.
fn append(log: &HybridLog, from: u64, to: u64, term: u64, commit: u64) {
    let mut batch = LogBatch::new();
    batch
        .append((from..=to).map(|i| entry(i, term)).collect())
        .set_hard_state(HardState {
            term,
            vote: 1,
            commit,
        });
    log.commit(batch, true).unwrap();
}

fn read(log: &HybridLog, lo: u64, hi: u64) -> raft::Result<Vec<Entry>> {
    log.entries(lo, hi, None, GetEntriesContext::empty(false))
}

fn is_compacted(e: &raft::Error) -> bool {
    matches!(e, raft::Error::Store(StorageError::Compacted))
}

fn compacted<T>(r: raft::Result<T>) -> bool {
    r.is_err_and(|e| is_compacted(&e))
}

fn meta(index: u64, term: u64, voters: Vec<u64>) -> SnapshotMetadata {
    SnapshotMetadata {
        conf_state: Some(ConfState::from((voters, vec![]))),
        index,
        term,
    }
}

/// A log of entries 1 to 10 (terms 1 to 5: 1 then 3), committed through 8.
fn ten(dir: &tempfile::TempDir) -> HybridLog {
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    append(&log, 1, 5, 1, 0);
    append(&log, 6, 10, 3, 8);
    let mut batch = LogBatch::new();
    batch.set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    log.commit(batch, true).unwrap();
    log
}

/// What raft-rs reads from a log trimmed through `t` (whose entry has `term`) and ending at
/// `last`.
fn assert_trimmed_at(log: &HybridLog, t: u64, term: u64, last: u64) {
    assert_eq!(log.trim_point(), TrimPoint { index: t, term });
    assert_eq!(log.first_index().unwrap(), t + 1);
    assert_eq!(Storage::last_index(log).unwrap(), last);
    assert_eq!(log.term(t).unwrap(), term);
    assert!(compacted(log.term(t - 1)), "term below the trim point");
    assert!(
        compacted(read(log, t, last + 1)),
        "read from the trim point"
    );
    assert!(compacted(read(log, 1, 2)), "read of the first entry");
    let kept = read(log, t + 1, last + 1).unwrap();
    assert_eq!(kept.len() as u64, last - t);
    for (e, index) in kept.iter().zip(t + 1..) {
        assert_eq!((e.index, &e.data), (index, &entry(index, 0).data));
    }
    let snap = log.snapshot(0, 2).unwrap();
    assert!(snap.data.is_empty());
    let m = snap.metadata.unwrap();
    assert_eq!((m.index, m.term), (t, term));
    assert_eq!(m.conf_state.unwrap(), log.conf_state());
}

#[test]
fn a_trim_removes_entries_up_to_the_index_and_keeps_its_term() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    let trimmed = log.trim(4).unwrap();
    assert_eq!(trimmed.entries, 4);
    assert_eq!(trimmed.trim_point, TrimPoint { index: 4, term: 1 });
    assert_trimmed_at(&log, 4, 1, 10);
    let stats = log.stats();
    assert_eq!(
        (
            stats.first_index,
            stats.disk_entries,
            stats.trimmed_entries_total
        ),
        (5, 6, 4)
    );

    // Again, across a change of term.
    assert_eq!(log.trim(7).unwrap().entries, 3);
    assert_trimmed_at(&log, 7, 3, 10);
    assert_eq!(log.stats().trimmed_entries_total, 7);

    drop(log);
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    assert_trimmed_at(&log, 7, 3, 10);
    assert_eq!(log.conf_state(), ConfState::from((vec![1, 2, 3], vec![])));
    assert_eq!(log.hard_state().commit, 8);
}

#[test]
fn a_log_never_trimmed_offers_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    assert_eq!(log.trim_point(), TrimPoint::default());
    assert_eq!(log.first_index().unwrap(), 1);
    assert_eq!(log.term(0).unwrap(), 0);
    assert!(matches!(
        log.snapshot(0, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
    // Nor a later one than the trim point, once trimmed.
    log.trim(3).unwrap();
    assert!(log.snapshot(3, 2).is_ok());
    assert!(matches!(
        log.snapshot(4, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
}

#[test]
fn a_trim_beyond_what_is_committed_is_refused_and_one_below_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    // Stored but not committed.
    assert!(matches!(
        log.trim(9),
        Err(LogError::TrimBeyondCommitted {
            index: 9,
            last: 10,
            commit: 8
        })
    ));
    // Not even stored (the commit index may run ahead of a follower's log).
    let mut batch = LogBatch::new();
    batch.set_hard_state(HardState {
        term: 3,
        vote: 1,
        commit: 12,
    });
    log.commit(batch, true).unwrap();
    assert!(matches!(
        log.trim(11),
        Err(LogError::TrimBeyondCommitted { index: 11, .. })
    ));
    assert_eq!(log.trim_point(), TrimPoint::default());

    log.trim(6).unwrap();
    for at_or_below in [0, 2, 6] {
        let again = log.trim(at_or_below).unwrap();
        assert_eq!(again.entries, 0);
        assert_eq!(again.trim_point, TrimPoint { index: 6, term: 3 });
    }
    assert_trimmed_at(&log, 6, 3, 10);
}

#[test]
fn everything_can_be_trimmed_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    append(&log, 11, 11, 3, 11);
    assert_eq!(log.trim(11).unwrap().entries, 11);
    assert_eq!(log.first_index().unwrap(), 12);
    assert_eq!(Storage::last_index(&log).unwrap(), 11);
    assert_eq!(log.term(11).unwrap(), 3);
    assert_eq!(read(&log, 12, 12).unwrap(), vec![]);
    assert_eq!(log.stats().disk_entries, 0);

    // An empty log with a trim point reopens as one.
    drop(log);
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(log.trim_point(), TrimPoint { index: 11, term: 3 });
    assert_eq!(log.last_index(), 11);
    assert!(matches!(
        log.commit(
            {
                let mut b = LogBatch::new();
                b.append(vec![entry(13, 3)]);
                b
            },
            true
        ),
        Err(LogError::Gap {
            first: 13,
            last: 11
        })
    ));
    append(&log, 12, 14, 4, 14);
    assert_trimmed_at(&log, 11, 3, 14);
}

#[test]
fn an_append_over_trimmed_entries_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    log.trim(5).unwrap();
    for first in [1, 5] {
        let mut batch = LogBatch::new();
        batch.append(vec![entry(first, 4)]);
        assert!(matches!(
            log.commit(batch, true),
            Err(LogError::AppendTrimmed { trimmed: 5, .. })
        ));
    }
    // A conflicting append just above the trim point replaces the rest, as always.
    append(&log, 6, 6, 4, 6);
    assert_trimmed_at(&log, 5, 1, 6);
    assert_eq!(log.term(6).unwrap(), 4);
}

#[test]
fn a_snapshot_ahead_of_the_log_moves_it_forward() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    log.apply_snapshot_metadata(&meta(50, 7, vec![1, 2, 4]))
        .unwrap();
    assert_eq!(log.trim_point(), TrimPoint { index: 50, term: 7 });
    assert_eq!(log.first_index().unwrap(), 51);
    assert_eq!(log.last_index(), 50);
    assert_eq!(log.term(50).unwrap(), 7);
    assert!(compacted(log.term(10)));
    assert_eq!(log.conf_state(), ConfState::from((vec![1, 2, 4], vec![])));
    let hs = log.hard_state();
    assert_eq!((hs.term, hs.vote, hs.commit), (7, 1, 50));
    assert_eq!(log.stats().disk_entries, 0);
    assert_eq!(log.stats().trimmed_entries_total, 10);

    drop(log);
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(log.trim_point(), TrimPoint { index: 50, term: 7 });
    assert_eq!(log.last_index(), 50);
    assert_eq!(log.hard_state().commit, 50);
    assert_eq!(log.conf_state(), ConfState::from((vec![1, 2, 4], vec![])));
    append(&log, 51, 53, 7, 52);
    assert_trimmed_at(&log, 50, 7, 53);
}

#[test]
fn a_snapshot_inside_the_log_discards_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    log.trim(2).unwrap();
    // Inside the log, with a term that conflicts with entry 9's.
    log.apply_snapshot_metadata(&meta(9, 4, vec![1, 2, 3]))
        .unwrap();
    assert_eq!(log.last_index(), 9);
    assert_eq!(log.term(9).unwrap(), 4);
    assert!(matches!(
        log.entries(10, 11, None, GetEntriesContext::empty(false)),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
    let hs = log.hard_state();
    assert_eq!((hs.term, hs.commit), (4, 9));
    append(&log, 10, 10, 4, 10);
    assert_trimmed_at(&log, 9, 4, 10);
}

#[test]
fn a_snapshot_never_lowers_the_commit_index_or_term() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    let mut batch = LogBatch::new();
    batch.set_hard_state(HardState {
        term: 9,
        vote: 2,
        commit: 8,
    });
    log.commit(batch, true).unwrap();
    log.apply_snapshot_metadata(&meta(6, 3, vec![1, 2, 3]))
        .unwrap();
    let hs = log.hard_state();
    assert_eq!((hs.term, hs.vote, hs.commit), (9, 2, 8));
}

#[test]
fn a_snapshot_at_or_below_the_trim_point_is_out_of_date() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten(&dir);
    assert!(matches!(
        log.apply_snapshot_metadata(&meta(0, 0, vec![1])),
        Err(LogError::SnapshotOutOfDate {
            index: 0,
            trimmed: 0
        })
    ));
    log.trim(6).unwrap();
    for index in [3, 6] {
        let err = log
            .apply_snapshot_metadata(&meta(index, 3, vec![1]))
            .unwrap_err();
        assert!(matches!(
            err,
            LogError::SnapshotOutOfDate { trimmed: 6, .. }
        ));
        // raft-rs reads it as the storage error of that name.
        assert_eq!(
            raft::Error::from(err),
            raft::Error::Store(StorageError::SnapshotOutOfDate)
        );
    }
    assert_trimmed_at(&log, 6, 3, 10);
}

#[test]
fn a_snapshot_on_a_new_log_gives_it_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    log.apply_snapshot_metadata(&meta(1000, 5, vec![1, 2, 3]))
        .unwrap();
    drop(log);
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(log.first_index().unwrap(), 1001);
    assert_eq!(log.term(1000).unwrap(), 5);
    append(&log, 1001, 1001, 5, 1001);
    assert_eq!(read(&log, 1001, 1002).unwrap(), vec![entry(1001, 5)]);
}

#[test]
fn reads_overtaken_by_a_trim_answer_compacted_never_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // A small memory tier: most reads go to disk, where a trim can overtake them.
    let log = HybridLog::open(dir.path(), 4 << 10).unwrap();
    for first in (1..=20_000).step_by(1000) {
        append(&log, first, first + 999, 1, first + 999);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for reader in 0..2u64 {
            let (log, done) = (&log, &done);
            s.spawn(move || {
                let mut reads = 0u64;
                let mut compacted_reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    // Just above the trim point, where the next trim lands.
                    let lo = log.trim_point().index + 1 + (reads * 7 + reader) % 150;
                    match read(log, lo, lo + 50) {
                        Ok(got) => {
                            assert_eq!(got.len(), 50);
                            for (e, index) in got.iter().zip(lo..) {
                                assert_eq!(e, &entry(index, 1));
                            }
                        }
                        Err(e) => {
                            assert!(is_compacted(&e), "read {lo}: {e}");
                            compacted_reads += 1;
                        }
                    }
                    match log.term(lo) {
                        Ok(term) => assert_eq!(term, 1),
                        Err(e) => assert!(is_compacted(&e), "term {lo}: {e}"),
                    }
                    reads += 1;
                }
                eprintln!("reader {reader}: {reads} reads, {compacted_reads} compacted");
            });
        }
        for through in (25..=19_000).step_by(25) {
            log.trim(through).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(log.first_index().unwrap(), 19_001);
}
