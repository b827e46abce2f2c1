//! A directory that is not a sound log is refused with an error naming it; it is never
//! silently treated as an empty log.

use hybrid_log::{HybridLog, LogBatch};
use raft::prelude::{Entry, HardState};

fn assert_refused(path: &std::path::Path, what: &str) {
    match HybridLog::open(path, 1 << 20) {
        Ok(log) => panic!("{what}: opened with last index {}", log.last_index()),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "{what}: error does not name the directory: {msg}"
            );
        }
    }
}

fn write_some(path: &std::path::Path) {
    let log = HybridLog::open(path, 1 << 20).unwrap();
    let mut batch = LogBatch::new();
    batch
        .append(vec![Entry {
            index: 1,
            term: 1,
            data: b"x".to_vec(),
            ..Default::default()
        }])
        .set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: 1,
        });
    log.commit(batch, true).unwrap();
}

#[test]
fn reopen_restores_state_and_entries() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(log.last_index(), 1);
    assert_eq!(
        log.hard_state(),
        HardState {
            term: 1,
            vote: 1,
            commit: 1
        }
    );
}

#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    assert_refused(dir.path(), "directory with foreign files");
}

#[test]
fn rocksdb_without_our_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        rocksdb::DB::open_cf(&opts, dir.path(), ["entries", "state"]).unwrap();
    }
    assert_refused(dir.path(), "another program's RocksDB");
}

#[test]
fn garbled_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    std::fs::write(dir.path().join("CURRENT"), "MANIFEST-999999\n").unwrap();
    assert_refused(dir.path(), "CURRENT pointing at a missing manifest");
}

#[test]
fn deleted_data_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap().path();
        if f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("MANIFEST")
        {
            std::fs::remove_file(f).unwrap();
        }
    }
    assert_refused(dir.path(), "manifest deleted");
}
