//! Crash safety: a child process writes to the log in a loop and reports each step once it
//! returned; we SIGKILL it at random moments, reopen the log and check that every reported
//! step is there. One child only appends; another also trims and applies snapshots, and
//! must never leave a gap, lose a trim point, or keep entries below it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hybrid_log::{HybridLog, LogBatch};
use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use raft::{GetEntriesContext, Storage, StorageError};
use rand::Rng;

const CHILD_DIR_ENV: &str = "HYBRID_LOG_CRASH_CHILD_DIR";
const ROUNDS: usize = 24;

/// The bytes entry `index` carries: recomputable by the checker, and of varied sizes (up to
/// 64 KiB) so that memtable flushes happen too while the child is being killed.
fn payload(index: u64) -> Vec<u8> {
    let len = match index % 7 {
        0 => 64 << 10,
        1 | 2 => 4 << 10,
        _ => (index % 300) as usize,
    };
    (0..len).map(|i| (index as usize * 131 + i) as u8).collect()
}

fn entry(index: u64) -> Entry {
    Entry {
        index,
        term: 1,
        data: payload(index),
        ..Default::default()
    }
}

/// What a child reported before it was killed: the highest of each.
#[derive(Default, Debug, Clone, Copy)]
struct Reported {
    appended: u64,
    /// The highest trim point a trim or a snapshot application set.
    trimmed: u64,
}

/// Appends `n` entries after the last one, committed, synced; reports them.
fn append_reported(log: &HybridLog, n: u64, out: &mut impl Write) {
    let next = log.last_index() + 1;
    let mut batch = LogBatch::new();
    batch
        .append((next..next + n).map(entry).collect())
        .set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: next + n - 1,
        });
    log.commit(batch, true).expect("append");
    writeln!(out, "appended {}", next + n - 1).unwrap();
    out.flush().unwrap();
}

/// The child of the first test: runs only when the parent starts this binary with the
/// directory set.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let log = HybridLog::open(&dir, 1 << 20).expect("child opens the log");
    let mut rng = rand::thread_rng();
    let mut out = std::io::stdout().lock();
    loop {
        append_reported(&log, rng.gen_range(1..=16), &mut out);
    }
}

/// The child of the second test: appends, and between appends trims (most of the log, some
/// of the time) or takes a snapshot's position a little ahead of its end.
#[test]
fn crash_child_trimmer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let log = HybridLog::open(&dir, 1 << 20).expect("child opens the log");
    let mut rng = rand::thread_rng();
    let mut out = std::io::stdout().lock();
    loop {
        append_reported(&log, rng.gen_range(1..=16), &mut out);
        let last = log.last_index();
        match rng.gen_range(0..40) {
            0..=7 => {
                let through = last - rng.gen_range(0..last.min(100));
                let trimmed = log.trim(through).expect("trim");
                writeln!(out, "trimmed {}", trimmed.trim_point.index).unwrap();
            }
            8 => {
                let meta = SnapshotMetadata {
                    conf_state: Some(ConfState::from((vec![1, 2, 3], vec![]))),
                    index: last + rng.gen_range(1..20),
                    term: 1,
                };
                log.apply_snapshot_metadata(&meta).expect("snapshot");
                writeln!(out, "trimmed {}", meta.index).unwrap();
            }
            _ => continue,
        }
        out.flush().unwrap();
    }
}

/// Runs `child` `ROUNDS` times on one log directory, killing it at a random moment each
/// time, and hands each reopened log to `check` with what the child had reported.
fn kill_and_check(child: &str, check: impl Fn(usize, &HybridLog, Reported)) -> Reported {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut reported = Reported::default();

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([child, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, &log_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // A report ends a line, which may begin with the test harness's own output.
                let mut words = line.split_whitespace().rev();
                if let (Some(Ok(n)), Some(what)) = (words.next().map(str::parse), words.next()) {
                    let _ = tx.send((what.to_owned(), n));
                }
            }
        });

        // Kill only once the child is really writing, then at a random moment after.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("round {round}: child reported nothing in 30 s"));
        assert!(
            first.0 == "appended" && first.1 > reported.appended,
            "round {round}: child restarted below {reported:?}: {first:?}"
        );
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..250)));
        child.kill().expect("SIGKILL child");
        child.wait().unwrap();
        reader.join().unwrap();
        for (what, n) in std::iter::once(first).chain(rx.try_iter()) {
            match what.as_str() {
                "appended" => reported.appended = reported.appended.max(n),
                "trimmed" => reported.trimmed = reported.trimmed.max(n),
                other => panic!("round {round}: child reported {other:?}"),
            }
        }

        let log = HybridLog::open(&log_dir, 1 << 20)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        check(round, &log, reported);
    }
    reported
}

/// Every entry from the first index to the last is there, in place, with its bytes. One
/// range read over all of them: the disk tier refuses to return a range with a gap, so this
/// also proves contiguity.
fn assert_entries_whole(round: usize, log: &HybridLog) {
    let (first, last) = (log.first_index().unwrap(), log.last_index());
    let all = log
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap_or_else(|e| panic!("round {round}: reading {first}..={last}: {e}"));
    assert_eq!(all.len() as u64, last + 1 - first, "round {round}");
    for (e, index) in all.iter().zip(first..) {
        assert_eq!(e.index, index, "round {round}: entry out of place");
        assert_eq!(
            e.data,
            payload(index),
            "round {round}: entry {index} has the wrong bytes"
        );
    }
}

#[test]
fn sigkilled_appender_keeps_every_reported_entry() {
    let reported = kill_and_check("crash_child_appender", |round, log, reported| {
        let last = log.last_index();
        assert!(
            last >= reported.appended,
            "round {round}: child reported {reported:?} but the log ends at {last}"
        );
        assert_eq!(log.first_index().unwrap(), 1);
        assert_entries_whole(round, log);
    });
    assert!(
        reported.appended > ROUNDS as u64,
        "the child appended too little to test anything"
    );
}

#[test]
fn sigkilled_trimmer_keeps_its_trim_point_and_every_entry_after_it() {
    let reported = kill_and_check("crash_child_trimmer", |round, log, reported| {
        let (trim, last) = (log.trim_point(), log.last_index());
        assert!(
            trim.index >= reported.trimmed,
            "round {round}: child reported {reported:?} but the log is trimmed at {trim:?}"
        );
        assert!(
            last >= reported.appended && last >= trim.index,
            "round {round}: child reported {reported:?} but the log ends at {last}"
        );
        assert_eq!(log.first_index().unwrap(), trim.index + 1);
        assert!(log.hard_state().commit >= trim.index, "round {round}");
        if trim.index > 0 {
            // The entry below the first keeps its term, and what lies below is answered as
            // trimmed, never as damage.
            assert_eq!(log.term(trim.index).unwrap(), 1, "round {round}");
            let compacted = raft::Error::Store(StorageError::Compacted);
            assert_eq!(
                log.term(trim.index - 1).unwrap_err(),
                compacted,
                "round {round}"
            );
            let below = log.entries(trim.index, last + 1, None, GetEntriesContext::empty(false));
            assert_eq!(below.unwrap_err(), compacted, "round {round}");
        }
        assert_entries_whole(round, log);
    });
    // Not `appended > trimmed`: a snapshot's position may lie ahead of the last append.
    assert!(
        reported.trimmed > ROUNDS as u64 && reported.appended > ROUNDS as u64,
        "the child trimmed too little to test anything: {reported:?}"
    );
}
