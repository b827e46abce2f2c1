//! Crash safety: a child process appends to the log in a loop and reports each index once its
//! append returned; we SIGKILL it at random moments, reopen the log and check that every
//! reported index is there with the right bytes and that the log has no gap.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hybrid_log::{HybridLog, LogBatch};
use raft::prelude::Entry;
use raft::{GetEntriesContext, Storage};
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

/// The child: runs only when the parent test starts this binary with the directory set.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let log = HybridLog::open(&dir, 1 << 20).expect("child opens the log");
    let mut rng = rand::thread_rng();
    let mut next = log.last_index() + 1;
    let mut out = std::io::stdout().lock();
    loop {
        let n = rng.gen_range(1..=16);
        let entries: Vec<Entry> = (next..next + n).map(entry).collect();
        let mut batch = LogBatch::new();
        batch.append(entries);
        log.commit(batch, true).expect("append");
        next += n;
        writeln!(out, "appended {}", next - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkilled_appender_keeps_every_reported_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut reported = 0u64;

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_appender",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, &log_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("appended ") {
                    let _ = tx.send(n.parse::<u64>().expect("index"));
                }
            }
        });

        // Kill only once the child is really appending, then at a random moment after.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("round {round}: child reported no append in 30 s"));
        assert!(
            first > reported,
            "round {round}: child restarted below {reported}"
        );
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..250)));
        child.kill().expect("SIGKILL child");
        child.wait().unwrap();
        reader.join().unwrap();
        reported = rx.try_iter().chain([first]).max().unwrap();

        let log = HybridLog::open(&log_dir, 1 << 20)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        let last = log.last_index();
        assert!(
            last >= reported,
            "round {round}: child reported {reported} but the log ends at {last}"
        );
        // One range read over the whole log: the disk tier refuses to return a range with a
        // gap, so this also proves contiguity.
        let all = log
            .entries(1, last + 1, None, GetEntriesContext::empty(false))
            .unwrap_or_else(|e| panic!("round {round}: reading 1..={last}: {e}"));
        assert_eq!(all.len() as u64, last);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1, "round {round}: entry out of place");
            assert_eq!(
                e.data,
                payload(e.index),
                "round {round}: entry {} has the wrong bytes",
                e.index
            );
        }
    }
    assert!(
        reported > ROUNDS as u64,
        "the child appended too little to test anything"
    );
}
