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

/// How a build meets a log of a later format (`hybrid-log v4` is how builds from before it
/// meet a fenced log): refused, naming the format, before anything is read.
#[test]
fn a_format_this_build_does_not_know_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), ["entries", "state"]).unwrap();
        db.put_cf(db.cf_handle("state").unwrap(), b"format", b"hybrid-log v5")
            .unwrap();
    }
    match HybridLog::open(dir.path(), 0) {
        Ok(_) => panic!("a log of an unknown format opened"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(r#"unknown format "hybrid-log v5""#), "{msg}");
        }
    }
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

/// A log of entries 1 to 5, committed, trimmed through 3; then `damage` is done to its
/// RocksDB directly.
fn trimmed_then(path: &std::path::Path, damage: impl FnOnce(&rocksdb::DB)) {
    {
        let log = HybridLog::open(path, 1 << 20).unwrap();
        let mut batch = LogBatch::new();
        batch
            .append(
                (1..=5)
                    .map(|index| Entry {
                        index,
                        term: 1,
                        ..Default::default()
                    })
                    .collect(),
            )
            .set_hard_state(HardState {
                term: 1,
                vote: 1,
                commit: 5,
            });
        log.commit(batch, true).unwrap();
        log.trim(3).unwrap();
    }
    let db =
        rocksdb::DB::open_cf(&rocksdb::Options::default(), path, ["entries", "state"]).unwrap();
    damage(&db);
}

#[test]
fn a_trimmed_log_reopens_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    trimmed_then(dir.path(), |_| {});
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!((log.trim_point().index, log.last_index()), (3, 5));
}

#[test]
fn a_damaged_trim_point_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    trimmed_then(dir.path(), |db| {
        db.put_cf(db.cf_handle("state").unwrap(), b"trim_point", [0, 3])
            .unwrap();
    });
    assert_refused(dir.path(), "a trim point of 2 bytes");
}

#[test]
fn an_entry_below_the_trim_point_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    trimmed_then(dir.path(), |db| {
        let stray = Entry {
            index: 2,
            term: 1,
            ..Default::default()
        };
        let mut value = vec![0]; // the tag of a plain value
        prost::Message::encode(&stray, &mut value).unwrap();
        db.put_cf(db.cf_handle("entries").unwrap(), 2u64.to_be_bytes(), value)
            .unwrap();
    });
    assert_refused(dir.path(), "entry 2 in a log trimmed through 3");
}

#[test]
fn a_gap_after_the_trim_point_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    trimmed_then(dir.path(), |db| {
        db.delete_cf(db.cf_handle("entries").unwrap(), 4u64.to_be_bytes())
            .unwrap();
    });
    assert_refused(dir.path(), "entry 4 missing after a trim through 3");
}
