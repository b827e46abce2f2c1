//! How entries are stored: large ones compressed with zstd (and read back exactly), a damaged
//! compressed entry refused with an error naming the directory, and logs written in the
//! first format (plain values) and the second (LZ4) still readable and appendable, each in
//! its own format; metadata values put, deleted and listed by prefix; entries compressed by
//! the caller stored as they are; a log fenced against older builds.

use hybrid_log::{HybridLog, LogBatch};
use prost::Message as _;
use raft::prelude::{Entry, HardState};
use raft::{GetEntriesContext, Storage};

/// Line protocol, as the gateway stores it: compresses several times over.
fn line_protocol(index: u64, bytes: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "cpu,host=server{:03},region=eu usage_user={}.{},usage_idle={}i {}\n",
            i % 50,
            i % 100,
            index % 10,
            i * 7,
            1_700_000_000_000_000_000u64 + i
        ));
        i += 1;
    }
    out.into_bytes()
}

fn entry(index: u64, bytes: usize) -> Entry {
    Entry {
        index,
        term: 1,
        data: line_protocol(index, bytes),
        ..Default::default()
    }
}

fn append(log: &HybridLog, entries: Vec<Entry>) {
    let commit = entries.last().unwrap().index;
    let mut b = LogBatch::new();
    b.append(entries).set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit,
    });
    log.commit(b, true).unwrap();
}

fn read_all(log: &HybridLog) -> Vec<Entry> {
    log.entries(
        1,
        log.last_index() + 1,
        None,
        GetEntriesContext::empty(false),
    )
    .unwrap()
}

fn raw_value(path: &std::path::Path, index: u64) -> Vec<u8> {
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        path,
        ["entries", "state"],
        false,
    )
    .unwrap();
    db.get_cf(db.cf_handle("entries").unwrap(), index.to_be_bytes())
        .unwrap()
        .expect("entry stored")
}

#[test]
fn large_entries_are_stored_compressed_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut written: Vec<Entry> = (1..=20).map(|i| entry(i, 64 << 10)).collect();
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        append(&log, written[..10].to_vec());
        append(&log, written[10..].to_vec());
        // Budget 0: everything comes from disk.
        assert_eq!(read_all(&log), written);
        // raft-rs's size limit counts encoded entries, not compressed bytes.
        let two = written[0].encoded_len() as u64 + written[1].encoded_len() as u64;
        let got = log
            .entries(1, 21, Some(two), GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.len(), 2);
    }
    let stored = raw_value(dir.path(), 5);
    assert_eq!(stored[0], 2, "large entries are zstd-compressed (tag 2)");
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        append(&log, vec![entry(21, 4096)]);
    }
    assert_eq!(raw_value(dir.path(), 21)[0], 1, "small ones LZ4 (tag 1)");
    written.push(entry(21, 4096));
    assert!(
        stored.len() * 3 < written[4].encoded_len(),
        "a 64 KiB line protocol entry takes {} bytes on disk",
        stored.len()
    );
    let log = HybridLog::open(dir.path(), 0).unwrap();
    assert_eq!(log.last_index(), 21);
    assert_eq!(read_all(&log), written);
}

#[test]
fn a_damaged_compressed_entry_is_refused_naming_the_directory() {
    // 4 KiB entries are stored LZ4-compressed, 64 KiB ones zstd-compressed.
    for size in [4096, 64 << 10] {
        damaged_entry_is_refused(size);
    }
}

fn damaged_entry_is_refused(size: usize) {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        append(&log, (1..=3).map(|i| entry(i, size)).collect());
    }
    {
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            dir.path(),
            ["entries", "state"],
        )
        .unwrap();
        let cf = db.cf_handle("entries").unwrap();
        let mut v = db.get_cf(cf, 3u64.to_be_bytes()).unwrap().unwrap();
        let mid = v.len() / 2;
        v.truncate(mid);
        db.put_cf(cf, 3u64.to_be_bytes(), v).unwrap();
    }
    match HybridLog::open(dir.path(), 0) {
        Ok(_) => panic!("a log with a damaged last entry opened"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
            assert!(msg.contains("entry 3"), "{msg}");
        }
    }
}

#[test]
fn a_log_in_the_first_format_opens_reads_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<Entry> = (1..=5).map(|i| entry(i, 2048)).collect();
    {
        // What the first format wrote: the marker, plain prost values, the HardState.
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), ["entries", "state"]).unwrap();
        let state = db.cf_handle("state").unwrap();
        db.put_cf(state, b"format", b"hybrid-log v1").unwrap();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 5,
        };
        db.put_cf(state, b"hard_state", hs.encode_to_vec()).unwrap();
        let entries = db.cf_handle("entries").unwrap();
        for e in &first {
            db.put_cf(entries, e.index.to_be_bytes(), e.encode_to_vec())
                .unwrap();
        }
    }
    let more: Vec<Entry> = (6..=8).map(|i| entry(i, 2048)).collect();
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.hard_state().commit, 5);
        assert_eq!(read_all(&log), first);
        append(&log, more.clone());
    }
    // It stays in its format: the new entries are plain too.
    assert_eq!(raw_value(dir.path(), 7), more[1].encode_to_vec());
    let log = HybridLog::open(dir.path(), 0).unwrap();
    let all: Vec<Entry> = first.into_iter().chain(more).collect();
    assert_eq!(read_all(&log), all);
}

#[test]
fn a_log_in_the_second_format_keeps_lz4() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<Entry> = (1..=5).map(|i| entry(i, 4096)).collect();
    {
        // What the second format wrote: tag 1, the plain length, an LZ4 block.
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), ["entries", "state"]).unwrap();
        let state = db.cf_handle("state").unwrap();
        db.put_cf(state, b"format", b"hybrid-log v2").unwrap();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 5,
        };
        db.put_cf(state, b"hard_state", hs.encode_to_vec()).unwrap();
        let entries = db.cf_handle("entries").unwrap();
        for e in &first {
            let mut v = vec![1u8];
            v.extend(lz4_flex::block::compress_prepend_size(&e.encode_to_vec()));
            db.put_cf(entries, e.index.to_be_bytes(), v).unwrap();
        }
    }
    let more: Vec<Entry> = (6..=8).map(|i| entry(i, 4096)).collect();
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        assert_eq!(read_all(&log), first);
        append(&log, more.clone());
    }
    // An older build can still open it: new entries are LZ4 too.
    assert_eq!(raw_value(dir.path(), 7)[0], 1);
    let log = HybridLog::open(dir.path(), 0).unwrap();
    let all: Vec<Entry> = first.into_iter().chain(more).collect();
    assert_eq!(read_all(&log), all);
}

#[test]
fn a_log_in_the_first_format_can_be_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), ["entries", "state"]).unwrap();
        let state = db.cf_handle("state").unwrap();
        db.put_cf(state, b"format", b"hybrid-log v1").unwrap();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 5,
        };
        db.put_cf(state, b"hard_state", hs.encode_to_vec()).unwrap();
        let entries = db.cf_handle("entries").unwrap();
        for e in (1..=5).map(|i| entry(i, 2048)) {
            db.put_cf(entries, e.index.to_be_bytes(), e.encode_to_vec())
                .unwrap();
        }
    }
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        assert_eq!(log.trim(3).unwrap().entries, 3);
    }
    let log = HybridLog::open(dir.path(), 0).unwrap();
    assert_eq!(log.first_index().unwrap(), 4);
    assert_eq!(log.term(3).unwrap(), 1);
    let kept = log
        .entries(4, 6, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(kept, vec![entry(4, 2048), entry(5, 2048)]);
}

fn marker(path: &std::path::Path) -> Vec<u8> {
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        path,
        ["entries", "state"],
        false,
    )
    .unwrap();
    db.get_cf(db.cf_handle("state").unwrap(), b"format")
        .unwrap()
        .expect("a marker")
}

#[test]
fn entries_the_caller_compressed_are_stored_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let packed = Entry {
        index: 1,
        term: 1,
        data: zstd::bulk::compress(&line_protocol(1, 4 << 20), 1).unwrap(),
        ..Default::default()
    };
    assert!(packed.data.len() > 16 << 10);
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        append(&log, vec![packed.clone(), entry(2, 64 << 10)]);
    }
    let stored = raw_value(dir.path(), 1);
    assert_eq!(stored[0], 0, "a zstd frame is not compressed again (tag 0)");
    assert_eq!(&stored[1..], packed.encode_to_vec());
    assert_eq!(raw_value(dir.path(), 2)[0], 2);
    let log = HybridLog::open(dir.path(), 0).unwrap();
    assert_eq!(read_all(&log)[0], packed);
}

/// The fence is the marker `hybrid-log v4`, written in the same batch as the entries that
/// need it; a fenced log opens fenced and reads as before; a log in the second format (LZ4)
/// can be fenced too, a log in the first (untagged values) cannot.
#[test]
fn a_fenced_log_carries_the_v4_marker_and_reads_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<Entry> = (1..=3).map(|i| entry(i, 64 << 10)).collect();
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        assert!(log.can_fence() && !log.fenced());
        append(&log, first[..1].to_vec());
        let mut b = LogBatch::new();
        b.append(first[1..].to_vec()).fence_older_builds();
        log.commit(b, true).unwrap();
        assert!(log.fenced());
    }
    assert_eq!(marker(dir.path()), b"hybrid-log v4");
    let log = HybridLog::open(dir.path(), 0).unwrap();
    assert!(log.fenced());
    assert_eq!(read_all(&log), first);

    // Second format: fenced, then its LZ4 entries and the new ones read back.
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<Entry> = (1..=2).map(|i| entry(i, 4096)).collect();
    write_raw_log(dir.path(), b"hybrid-log v2", &old, |e| {
        let mut v = vec![1u8];
        v.extend(lz4_flex::block::compress_prepend_size(&e.encode_to_vec()));
        v
    });
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        let mut b = LogBatch::new();
        b.append(vec![entry(3, 64 << 10)]).fence_older_builds();
        log.commit(b, true).unwrap();
    }
    assert_eq!(marker(dir.path()), b"hybrid-log v4");
    let log = HybridLog::open(dir.path(), 0).unwrap();
    let all: Vec<Entry> = old.into_iter().chain([entry(3, 64 << 10)]).collect();
    assert_eq!(read_all(&log), all);

    // First format: left as it is.
    let dir = tempfile::tempdir().unwrap();
    write_raw_log(dir.path(), b"hybrid-log v1", &[entry(1, 2048)], |e| {
        e.encode_to_vec()
    });
    {
        let log = HybridLog::open(dir.path(), 0).unwrap();
        assert!(!log.can_fence());
        let mut b = LogBatch::new();
        b.append(vec![entry(2, 2048)]).fence_older_builds();
        log.commit(b, true).unwrap();
        assert!(!log.fenced());
    }
    assert_eq!(marker(dir.path()), b"hybrid-log v1");
}

/// A log as an older build wrote it: the marker, committed HardState, values as `encode` makes them.
fn write_raw_log(
    path: &std::path::Path,
    marker: &[u8],
    entries: &[Entry],
    encode: impl Fn(&Entry) -> Vec<u8>,
) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let db = rocksdb::DB::open_cf(&opts, path, ["entries", "state"]).unwrap();
    let state = db.cf_handle("state").unwrap();
    db.put_cf(state, b"format", marker).unwrap();
    let hs = HardState {
        term: 1,
        vote: 1,
        commit: entries.len() as u64,
    };
    db.put_cf(state, b"hard_state", hs.encode_to_vec()).unwrap();
    let cf = db.cf_handle("entries").unwrap();
    for e in entries {
        db.put_cf(cf, e.index.to_be_bytes(), encode(e)).unwrap();
    }
}

#[test]
fn metadata_values_are_put_deleted_and_listed_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    let mut b = LogBatch::new();
    b.put_meta("family/2", b"two".to_vec())
        .put_meta("family/1", b"one".to_vec())
        .put_meta("familiar", b"not of it".to_vec())
        .put_meta("other", b"x".to_vec());
    log.commit(b, true).unwrap();
    let listed = log.meta_with_prefix("family/").unwrap();
    assert_eq!(
        listed,
        vec![
            ("family/1".to_owned(), b"one".to_vec()),
            ("family/2".to_owned(), b"two".to_vec())
        ]
    );

    // A delete and a put of one key in one batch: the later one wins.
    let mut b = LogBatch::new();
    b.delete_meta("family/1")
        .put_meta("family/3", b"three".to_vec())
        .delete_meta("family/3")
        .put_meta("family/3", b"again".to_vec());
    log.commit(b, true).unwrap();
    drop(log);
    let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
    let keys: Vec<String> = log
        .meta_with_prefix("family/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["family/2", "family/3"]);
    assert_eq!(
        log.meta("family/3").unwrap().as_deref(),
        Some(&b"again"[..])
    );
    assert_eq!(log.meta("family/1").unwrap(), None);
    assert_eq!(log.meta("other").unwrap().as_deref(), Some(&b"x"[..]));
}
