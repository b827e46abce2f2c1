//! A full disk under the log, on a real, small tmpfs (mounting one needs root, as these tests
//! run here and in CI): a commit that meets ENOSPC changes nothing, on disk or in memory,
//! everything committed before stays readable, the same batch succeeds once space is freed,
//! and a reopened log holds exactly what was committed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use hybrid_log::{HybridLog, LogBatch, LogError, Rejected};
use raft::prelude::{Entry, HardState};
use raft::{GetEntriesContext, Storage};

/// A tmpfs mounted on a fresh directory, unmounted when dropped (also when a test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} ({status}): these tests need root",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Shrinks the file system to what it holds and `room` more, under the feet of whoever
    /// read its free space.
    fn shrink(&self, room: u64) {
        let vfs = nix::sys::statvfs::statvfs(self.path()).expect("statvfs");
        let used = (vfs.blocks() - vfs.blocks_free()) * vfs.fragment_size();
        let size = (used + room).div_ceil(4096) * 4;
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}k")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot shrink the tmpfs to {size} KiB");
    }

    /// Fills the file system to the last byte with a ballast file.
    fn fill(&self) -> Ballast {
        let path = self.path().join("ballast");
        let mut f = File::create(&path).expect("create the ballast");
        // Large chunks first, then single pages for what is left between them.
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0xa5u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        Ballast { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path();
        let ok = Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file there: detach it anyway, never leave it mounted.
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
    }
}

struct Ballast {
    path: PathBuf,
}

impl Ballast {
    fn remove(self) {
        std::fs::remove_file(&self.path).expect("remove the ballast");
    }
}

fn entry(index: u64) -> Entry {
    Entry {
        index,
        term: 2,
        // Larger than a page, so that no append fits in the slack of a file's last page.
        data: (0..6000).map(|i| (index as usize * 7 + i) as u8).collect(),
        ..Default::default()
    }
}

fn batch(from: u64, to: u64) -> LogBatch {
    let mut b = LogBatch::new();
    b.append((from..=to).map(entry).collect())
        .set_hard_state(HardState {
            term: 2,
            vote: 1,
            commit: to,
        })
        .put_meta("applied", to.to_be_bytes());
    b
}

/// Every entry from 1 to `last`, read through raft-rs's interface, as it was committed.
fn assert_holds_exactly(log: &HybridLog, last: u64) {
    assert_eq!(log.last_index(), last, "the log's last index");
    let got = log
        .entries(1, last + 1, u64::MAX, GetEntriesContext::empty(false))
        .expect("read back every committed entry");
    assert_eq!(got.len() as u64, last);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(*e, entry(i as u64 + 1), "entry {}", i + 1);
    }
    assert_eq!(log.hard_state().commit, last, "the hard state");
    assert_eq!(
        log.meta("applied").unwrap(),
        Some(last.to_be_bytes().to_vec()),
        "the metadata written with the last batch"
    );
}

/// Commits batches of 5 entries after `last` until one fails; returns that one, with the last
/// index committed before it. Page slack in the log's files may take a few small writes. When
/// the log did not see the disk fill, the room RocksDB set aside for its WAL takes many more,
/// for as long as the log goes by its last reading of the free space (a second).
fn commit_until_full(log: &HybridLog, mut last: u64, sync: bool) -> (Box<Rejected>, u64) {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        match log.try_commit(batch(last + 1, last + 5), sync) {
            Ok(()) => last += 5,
            Err(r) => return (r, last),
        }
    }
    panic!("the log kept taking writes on a full disk for 10 s, up to {last}");
}

/// Where the disk's room goes: a small disk filled by a ballast, or a large one (on which the
/// log goes by its last reading of the free space for up to a second) shrunk and filled right
/// after that reading, as another process would fill it.
#[derive(PartialEq)]
enum Filled {
    Small,
    BehindTheLogsBack,
}

fn full_disk_round(sync: bool, filled: Filled) {
    let large = filled == Filled::BehindTheLogsBack;
    let fs = Tmpfs::mount(if large { "2g" } else { "24m" });
    let dir = fs.path().join("raft-log");
    let log = HybridLog::open(&dir, 64 << 20).unwrap();
    log.commit(batch(1, 100), true).unwrap();
    assert_holds_exactly(&log, 100);

    if large {
        fs.shrink(16 << 20);
    }
    let ballast = fs.fill();
    let (rejected, last) = commit_until_full(&log, 100, sync);
    assert!(
        rejected.error.is_no_space(),
        "a full disk must be told apart: {}",
        rejected.error
    );
    assert!(
        matches!(&rejected.error, LogError::NoSpace { path, .. } if *path == dir),
        "the error names the log's directory: {:?}",
        rejected.error
    );
    // Nothing of the failed batch is there, in memory or on disk, and every entry committed
    // before reads back.
    assert_holds_exactly(&log, last);
    // Still full: the handed-back batch fails again, the same way, and changes nothing.
    let again = log.try_commit(rejected.batch, sync).unwrap_err();
    assert!(again.error.is_no_space(), "{}", again.error);
    assert_holds_exactly(&log, last);
    // Other writes fail alike and change nothing either: a metadata write, a trim.
    let mut meta = LogBatch::new();
    meta.put_meta("applied", 1u64.to_be_bytes());
    let meta_failed = log.commit(meta, sync).unwrap_err();
    assert!(meta_failed.is_no_space(), "{meta_failed}");
    let trim_failed = log.trim(10).unwrap_err();
    assert!(trim_failed.is_no_space(), "{trim_failed}");
    assert_eq!(log.trim_point().index, 0);
    assert_holds_exactly(&log, last);

    ballast.remove();
    // The same batch, handed back twice, now succeeds: the log reopens its database first.
    log.try_commit(again.batch, sync)
        .map_err(|r| r.error)
        .expect("the retry once space was freed");
    let mut last = last + 5;
    assert_holds_exactly(&log, last);
    for _ in 0..20 {
        log.commit(batch(last + 1, last + 5), sync).unwrap();
        last += 5;
    }
    assert_holds_exactly(&log, last);
    assert_eq!(log.trim(10).unwrap().trim_point.index, 10);

    // A reopened log holds exactly what was committed: no entry lost, none of the failed
    // attempts, nothing after a torn WAL record dropped.
    drop(log);
    let log = HybridLog::open(&dir, 64 << 20).unwrap();
    assert_eq!(log.last_index(), last);
    assert_eq!(log.trim_point().index, 10);
    let got = log
        .entries(11, last + 1, u64::MAX, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(got, (11..=last).map(entry).collect::<Vec<_>>());
    assert_eq!(log.hard_state().commit, last);
    drop(log);
}

#[test]
fn a_synced_commit_on_a_full_disk_changes_nothing_and_succeeds_once_space_is_freed() {
    full_disk_round(true, Filled::Small);
}

#[test]
fn an_unsynced_commit_on_a_full_disk_changes_nothing_and_succeeds_once_space_is_freed() {
    full_disk_round(false, Filled::Small);
}

/// The log goes by a reading of the free space taken before the disk filled: its writes go
/// into the room RocksDB set aside for its WAL until RocksDB meets the full disk or the log
/// reads the free space again. The outcome is the same.
#[test]
fn a_disk_filled_between_readings_of_its_free_space_changes_nothing_either() {
    full_disk_round(true, Filled::BehindTheLogsBack);
}

/// Entries that LZ4 cannot shrink, so that a flush of them needs their full size on disk.
fn incompressible(index: u64) -> Entry {
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let data = (0..64 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Entry {
        index,
        term: 2,
        data,
        ..Default::default()
    }
}

#[test]
fn a_flush_that_meets_a_full_disk_neither_crashes_nor_loses_anything() {
    let fs = Tmpfs::mount("48m");
    let dir = fs.path().join("raft-log");
    let log = HybridLog::open(&dir, 0).unwrap();
    // 12 MiB in the memtable, not flushed yet (its budget is 16 MiB).
    let last = 192;
    for from in (1..=last).step_by(16) {
        let mut b = LogBatch::new();
        b.append((from..from + 16).map(incompressible).collect())
            .set_hard_state(HardState {
                term: 2,
                vote: 1,
                commit: from + 15,
            });
        log.commit(b, true).unwrap();
    }
    // Leave 4 MiB: enough for small writes, not for the flush a trim's compaction starts.
    let ballast = fs.fill();
    std::fs::remove_file(&ballast.path).unwrap();
    let mut f = File::create(&ballast.path).unwrap();
    let free = log.free_bytes().unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut kept = 0;
    while kept + (4 << 20) < free {
        f.write_all(&chunk).unwrap();
        kept += 1 << 20;
    }
    log.trim(8).expect("a small trim fits");

    // The flush fails in the background; RocksDB then refuses writes, which the log reports
    // as no space once it says so, and never aborts. Writes are tried every 2 ms, so that some
    // also meet the disk while the flush is filling it.
    let started = std::time::Instant::now();
    let mut next = last + 1;
    let mut last_refusal = None;
    let failed = loop {
        let mut b = LogBatch::new();
        b.append(vec![Entry {
            index: next,
            term: 2,
            data: vec![1; 100],
            ..Default::default()
        }]);
        match log.try_commit(b, true) {
            Ok(()) => next += 1,
            // The flush's table file filled the disk before RocksDB gave up on it, and the
            // log's own check refused the write, which changed nothing: RocksDB deletes the
            // file when the flush fails, so the same entry is tried again.
            Err(r) if r.error.is_no_space() && !r.error.to_string().contains(".sst") => {
                assert_eq!(
                    log.last_index(),
                    next - 1,
                    "a refused write changed the log"
                );
                last_refusal = Some(r.error.to_string());
            }
            Err(r) => break r,
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the flush on a full disk never failed (last refusal by the log's own check: {})",
            last_refusal.as_deref().unwrap_or("none")
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(failed.error.is_no_space(), "{}", failed.error);
    // RocksDB's own error, from the flush, not the log's check before a write.
    assert!(
        failed.error.to_string().contains(".sst"),
        "{}",
        failed.error
    );
    let committed = next - 1;
    assert_eq!(log.last_index(), committed);
    let got = log
        .entries(9, last + 1, u64::MAX, GetEntriesContext::empty(false))
        .expect("entries stay readable");
    assert_eq!(got, (9..=last).map(incompressible).collect::<Vec<_>>());

    drop(f);
    std::fs::remove_file(&ballast.path).unwrap();
    log.try_commit(failed.batch, true)
        .map_err(|r| r.error)
        .expect("the retry once space was freed");
    drop(log);
    let log = HybridLog::open(&dir, 0).unwrap();
    assert_eq!(log.last_index(), committed + 1);
    assert_eq!(log.trim_point().index, 8);
    let got = log
        .entries(9, last + 1, u64::MAX, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(got, (9..=last).map(incompressible).collect::<Vec<_>>());
    drop(log);
}
