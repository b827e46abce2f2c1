//! The disk tier: every entry of the log, in RocksDB.
//!
//! Two column families, whose keys and values `format.rs` spells out: `entries` maps a
//! big-endian index to an encoded `Entry` (so RocksDB's byte order is index order and a range
//! read is one iterator), and `state` holds the HardState, the ConfState, a format marker, the
//! trim point and small metadata values owned by the caller. Writes are whole `WriteBatch`es,
//! so a Raft `Ready` is durable all at once or not at all.
//!
//! A full disk: RocksDB 7.8 fails the write whose WAL append (or a background flush) met
//! ENOSPC, and from then on fails every write, synced or not, with the same error, also once
//! space is back; it does not resume by itself, and the crate exposes no `Resume()`. Reads
//! keep working, and a reopened database holds exactly the writes that succeeded. So a write
//! is refused before RocksDB sees it when the disk has no room for it (by the last reading of
//! the free space, while that is recent and far from the need), and a write RocksDB failed
//! anyway marks the database for a reopen, which the next write performs once the disk has
//! room for that. Either way the error is [`LogError::NoSpace`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use prost::Message as _;
use raft::prelude::{ConfState, Entry, HardState};
use rayon::iter::{IntoParallelRefIterator, ParallelIterator};
use rocksdb::{
    BlockBasedOptions, ChecksumType, ColumnFamily, ColumnFamilyDescriptor, CompactOptions,
    DBCompressionType, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

use crate::error::LogError;
use crate::format::{
    decode_trim_point, encode_trim_point, entry_key, meta_key, meta_name, Values, CF_ENTRIES,
    CF_STATE, FORMAT_V4, KEY_CONF_STATE, KEY_FORMAT, KEY_HARD_STATE, KEY_TRIM_POINT,
};
use crate::limit::SizeLimit;
use crate::trim::TrimPoint;

/// A cheap handle: the background compaction holds a clone.
#[derive(Clone)]
pub struct DiskTier {
    shared: Arc<Handle>,
}

struct Handle {
    /// The open database. An operation clones the `Arc` and works on its clone, so a reopen
    /// (which takes the lock for writing) waits only for operations under way. `None` only
    /// if a reopen failed to open the database at all.
    db: RwLock<Option<Arc<DB>>>,
    path: PathBuf,
    values: Values,
    /// The marker says v4: builds older than that refuse the log.
    fenced: AtomicBool,
    /// A write failed: RocksDB refuses every later one until the database is reopened.
    failed: AtomicBool,
    /// The last reading of the free space, which writes far from a full disk go by.
    room: Mutex<Option<Room>>,
}

/// A reading of the free space, and what this handle's writes took since.
struct Room {
    free: u64,
    at: Instant,
    written: u64,
}

/// Room kept free beside every write: RocksDB's own small writes (MANIFEST, OPTIONS) must
/// not meet a full disk either.
const MIN_FREE: u64 = 2 << 20;
/// Room a reopen needs beyond the WAL it replays (a new MANIFEST, OPTIONS file and WAL).
const REOPEN_MARGIN: u64 = 4 << 20;
/// A write goes by the last reading of the free space when it is this recent and left this
/// much room beyond what the log wrote since; otherwise the free space is read again. Reading
/// it is a `statvfs` call per write, which costs as much as the log's own unsynced writes.
/// The slack covers what RocksDB's flushes and compactions may write within that time; what
/// another process may fill meanwhile is covered by the reopen after a failed write, as it is
/// between any reading and the write.
const ROOM_FRESH: Duration = Duration::from_secs(1);
const ROOM_SLACK: u64 = 1 << 30;
/// How long a reopen waits for operations under way on the old database (a compaction
/// interrupted by the reopen ends in milliseconds).
const REOPEN_WAIT: Duration = Duration::from_secs(10);

/// What a directory held when it was opened.
pub struct Recovered {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    pub trim: TrimPoint,
    pub last_index: u64,
}

impl DiskTier {
    /// Opens the log in `path`, creating it if the directory is missing or empty. A directory
    /// that holds something else, or a log RocksDB reports as corrupt, is an error naming the
    /// path: starting empty over a damaged log would silently forget acknowledged writes.
    pub fn open(path: &Path) -> Result<(DiskTier, Recovered), LogError> {
        let fresh = is_missing_or_empty(path)?;
        if !fresh && !path.join("CURRENT").exists() {
            return Err(LogError::NotALog {
                path: path.to_path_buf(),
                reason: "the directory is not empty and holds no RocksDB database".into(),
            });
        }

        let (db_opts, cfs) = options(fresh);
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| LogError::Open {
            path: path.to_path_buf(),
            source: e,
        })?;
        let (values, fenced) = check_format(&db, path, fresh)?;
        if values == Values::Zstd {
            // Entries are compressed already: compressing their blocks again on every flush
            // would only cost CPU.
            db.set_options_cf(entries_cf(&db), &[("compression", "kNoCompression")])
                .map_err(|e| LogError::from_rocksdb(path, e))?;
        }
        let disk = DiskTier {
            shared: Arc::new(Handle {
                db: RwLock::new(Some(Arc::new(db))),
                path: path.to_path_buf(),
                values,
                fenced: AtomicBool::new(fenced),
                failed: AtomicBool::new(false),
                room: Mutex::new(None),
            }),
        };

        let hard_state = disk
            .get_state(KEY_HARD_STATE)?
            .map(|b| disk.decode::<HardState>(&b, "hard state"))
            .transpose()?
            .unwrap_or_default();
        let conf_state = disk
            .get_state(KEY_CONF_STATE)?
            .map(|b| disk.decode::<ConfState>(&b, "conf state"))
            .transpose()?
            .unwrap_or_default();
        let trim = disk
            .get_state(KEY_TRIM_POINT)?
            .map(|b| {
                decode_trim_point(&b)
                    .ok_or_else(|| disk.corrupt(format!("the trim point has {} bytes", b.len())))
            })
            .transpose()?
            .unwrap_or_default();
        let last_index = disk.scan_last_index(trim)?;
        Ok((
            disk,
            Recovered {
                hard_state,
                conf_state,
                trim,
                last_index,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Whether builds older than format v4 refuse this log.
    pub fn fenced(&self) -> bool {
        self.shared.fenced.load(Ordering::Acquire)
    }

    /// Whether this log can be fenced: its values carry the tags v4 reads them by.
    pub fn can_fence(&self) -> bool {
        self.shared.values.fenced_marker().is_some()
    }

    /// Records that a write holding the v4 marker is durable.
    pub fn set_fenced(&self) {
        self.shared.fenced.store(true, Ordering::Release);
    }

    /// The database as it is now; an error only after a reopen that could not open it.
    fn db(&self) -> Result<Arc<DB>, LogError> {
        self.shared
            .db
            .read()
            .clone()
            .ok_or_else(|| LogError::Closed {
                path: self.shared.path.clone(),
            })
    }

    fn corrupt(&self, what: impl Into<String>) -> LogError {
        LogError::Corrupt {
            path: self.shared.path.clone(),
            what: what.into(),
        }
    }

    fn io(&self, source: rocksdb::Error) -> LogError {
        LogError::from_rocksdb(&self.shared.path, source)
    }

    fn decode<M: prost::Message + Default>(&self, bytes: &[u8], what: &str) -> Result<M, LogError> {
        M::decode(bytes).map_err(|e| self.corrupt(format!("{what} does not decode: {e}")))
    }

    fn decode_entry(&self, stored: &[u8], index: u64) -> Result<Entry, LogError> {
        self.shared
            .values
            .decode(stored)
            .map_err(|reason| self.corrupt(format!("entry {index} {reason}")))
    }

    fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        let db = self.db()?;
        db.get_cf(state_cf(&db), key).map_err(|e| self.io(e))
    }

    /// The last index on disk, and a check that the entries start right after the trim point
    /// (at 1 in a log never trimmed): entries leave the log only in the write that moves the
    /// trim point, so anything else means the directory was damaged. A log that holds no
    /// entries ends at its trim point.
    fn scan_last_index(&self, trim: TrimPoint) -> Result<u64, LogError> {
        let db = self.db()?;
        let cf = entries_cf(&db);
        let first = db.iterator_cf(cf, IteratorMode::Start).next();
        let last = db.iterator_cf(cf, IteratorMode::End).next();
        match (first, last) {
            (None, None) => Ok(trim.index),
            (Some(first), Some(last)) => {
                let (first_key, _) = first.map_err(|e| self.io(e))?;
                let (last_key, last_val) = last.map_err(|e| self.io(e))?;
                let first_index = self.key_index(&first_key)?;
                let last_index = self.key_index(&last_key)?;
                if first_index != trim.index + 1 {
                    return Err(self.corrupt(format!(
                        "the log starts at index {first_index}, not {} (trimmed through {})",
                        trim.index + 1,
                        trim.index
                    )));
                }
                let e = self.decode_entry(&last_val, last_index)?;
                if e.index != last_index {
                    return Err(self.corrupt(format!(
                        "entry stored under index {last_index} claims index {}",
                        e.index
                    )));
                }
                Ok(last_index)
            }
            _ => Err(self.corrupt("inconsistent iterator")),
        }
    }

    fn key_index(&self, key: &[u8]) -> Result<u64, LogError> {
        let bytes: [u8; 8] = key
            .try_into()
            .map_err(|_| self.corrupt(format!("entry key of {} bytes", key.len())))?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Reads entries `[lo, hi)` in order, as many as `limit` admits.
    pub fn read(&self, lo: u64, hi: u64, limit: &mut SizeLimit) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::with_capacity((hi - lo).min(1024) as usize);
        let mode = IteratorMode::From(&entry_key(lo), Direction::Forward);
        let db = self.db()?;
        for (expected, item) in (lo..hi).zip(db.iterator_cf(entries_cf(&db), mode)) {
            let (key, value) = item.map_err(|e| self.io(e))?;
            let index = self.key_index(&key)?;
            if index != expected {
                return Err(self.corrupt(format!(
                    "gap in the log: expected index {expected}, found {index}"
                )));
            }
            // raft-rs counts an entry's encoded size, not what it takes on disk.
            let e = self.decode_entry(&value, index)?;
            if !limit.admit(e.encoded_len() as u64) {
                return Ok(out);
            }
            out.push(e);
        }
        if (out.len() as u64) < hi - lo {
            return Err(self.corrupt(format!(
                "entries {lo}..{hi} requested but the log ends after {}",
                lo + out.len() as u64 - 1
            )));
        }
        Ok(out)
    }

    pub fn term(&self, index: u64) -> Result<Option<u64>, LogError> {
        let db = self.db()?;
        let value = db
            .get_pinned_cf(entries_cf(&db), entry_key(index))
            .map_err(|e| self.io(e))?;
        match value {
            None => Ok(None),
            Some(v) => Ok(Some(self.decode_entry(&v, index)?.term)),
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.get_state(&meta_key(key))
    }

    /// Writes `build`'s batch, fsync'd when `sync`. After a failed write the database is
    /// reopened first, which fails with [`LogError::NoSpace`] while the disk has no room for
    /// it. The batch is built against the database it goes to, so a caller keeps its own
    /// form of the changes and can retry them.
    pub fn write(
        &self,
        sync: bool,
        build: impl FnOnce(&Batch<'_>, &mut WriteBatch),
    ) -> Result<(), LogError> {
        if self.shared.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let db = self.db()?;
        let mut wb = WriteBatch::default();
        build(
            &Batch {
                db: &db,
                values: self.shared.values,
            },
            &mut wb,
        );
        // RocksDB is not let near ENOSPC when that can be seen coming: a failed WAL append
        // makes it refuse every write until the reopen below. Another process may still fill
        // the disk between this check and the write, or a flush fill it; the reopen covers it.
        self.check_room(wb.size_in_bytes() as u64)?;
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        db.write_opt(wb, &opts).map_err(|e| {
            // Whatever the cause, RocksDB now refuses every write until it is reopened.
            self.shared.failed.store(true, Ordering::Release);
            *self.shared.room.lock() = None;
            self.io(e)
        })
    }

    /// Whether the disk has room for a write of `bytes` beside [`MIN_FREE`], by the last
    /// reading of the free space while that is fresh and far from the need (see
    /// [`ROOM_FRESH`]), by a new one otherwise.
    fn check_room(&self, bytes: u64) -> Result<(), LogError> {
        let need = MIN_FREE + bytes;
        let mut room = self.shared.room.lock();
        if let Some(r) = room.as_mut() {
            let left = r.free.saturating_sub(r.written);
            if r.at.elapsed() < ROOM_FRESH && left >= need.saturating_add(ROOM_SLACK) {
                r.written += bytes;
                return Ok(());
            }
        }
        let free = free_bytes(&self.shared.path).map_err(|source| LogError::Unreadable {
            path: self.shared.path.clone(),
            source,
        })?;
        *room = Some(Room {
            free,
            at: Instant::now(),
            written: bytes,
        });
        if free < need {
            return Err(LogError::NoSpace {
                path: self.shared.path.clone(),
                detail: format!("{free} bytes free, {need} needed for this write"),
            });
        }
        Ok(())
    }

    /// Closes and reopens the database after a failed write, once the disk has room for
    /// what opening writes: RocksDB replays its WAL into new table files, and writes a new
    /// MANIFEST and WAL. Operations under way finish first; others wait for the reopen.
    fn reopen(&self) -> Result<(), LogError> {
        let path = &self.shared.path;
        let need = wal_bytes(path) + REOPEN_MARGIN;
        let free = free_bytes(path).map_err(|source| LogError::Unreadable {
            path: path.clone(),
            source,
        })?;
        if free < need {
            return Err(LogError::NoSpace {
                path: path.clone(),
                detail: format!(
                    "{free} bytes free, {need} needed to reopen the log after a failed write"
                ),
            });
        }
        let mut slot = self.shared.db.write();
        if !self.shared.failed.load(Ordering::Acquire) {
            return Ok(()); // another writer reopened it meanwhile
        }
        if let Some(old) = slot.take() {
            // A running compaction holds the database; interrupt it.
            old.cancel_all_background_work(true);
            let waited = Instant::now();
            while Arc::strong_count(&old) > 1 {
                if waited.elapsed() > REOPEN_WAIT {
                    *slot = Some(old);
                    return Err(LogError::Reopen {
                        path: path.clone(),
                        why: "operations on the failed database did not finish".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        let (db_opts, cfs) = options(false);
        match DB::open_cf_descriptors(&db_opts, path, cfs) {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                self.shared.failed.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Keep the log readable (replication, the applier) until a later write
                // tries again: a read-only open writes nothing.
                let (db_opts, cfs) = options(false);
                *slot = DB::open_cf_descriptors_read_only(&db_opts, path, cfs, false)
                    .ok()
                    .map(Arc::new);
                Err(self.io(e))
            }
        }
    }

    /// Bytes free for this process on the log's file system.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        free_bytes(&self.shared.path)
    }

    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, LogError> {
        let start = meta_key(prefix);
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        let db = self.db()?;
        for item in db.iterator_cf(state_cf(&db), mode) {
            let (key, value) = item.map_err(|e| self.io(e))?;
            if !key.starts_with(&start) {
                break;
            }
            let key =
                meta_name(&key).ok_or_else(|| self.corrupt("a metadata key that is not UTF-8"))?;
            out.push((key, value.into_vec()));
        }
        Ok(out)
    }

    fn entries_property(&self, name: &str) -> u64 {
        let Ok(db) = self.db() else {
            return 0;
        };
        db.property_int_value_cf(entries_cf(&db), name)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Approximate on-disk size of the entries, as RocksDB estimates it.
    pub fn estimated_bytes(&self) -> u64 {
        self.entries_property("rocksdb.estimate-live-data-size")
    }

    /// Approximate size of the entries, flushed or not. It does not see a trim until the
    /// compaction after it ran, so a trim soon after another overestimates.
    pub fn entries_bytes(&self) -> u64 {
        self.estimated_bytes() + self.entries_property("rocksdb.cur-size-all-mem-tables")
    }

    /// What the directory takes on disk: every file in it (SST files, WAL, manifest). A file
    /// RocksDB deletes while this runs is simply not counted.
    pub fn dir_bytes(&self) -> u64 {
        let Ok(dir) = std::fs::read_dir(&self.shared.path) else {
            return 0;
        };
        dir.filter_map(|f| f.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }

    /// Gives the space of the entries up to `index` back to the file system. A trim only
    /// writes a range tombstone; the space comes back when a compaction drops the entries it
    /// covers, which for a large range reads and rewrites files for seconds. The caller runs
    /// this on a thread of its own.
    pub fn compact_through(&self, index: u64) -> Result<(), LogError> {
        let db = self.db()?;
        let mut opts = CompactOptions::default();
        // Not exclusive: automatic compactions, which move the files new appends flush, go on
        // beside this one instead of queueing behind it (and, in the end, stalling writes).
        opts.set_exclusive_manual_compaction(false);
        db.compact_range_cf_opt(
            entries_cf(&db),
            None::<&[u8]>,
            Some(entry_key(index)),
            &opts,
        );
        // A WAL file is deleted only once every column family flushed what it holds. The
        // state column family holds a few small keys and flushes rarely, so without this it
        // would keep the WAL files of the trimmed entries, up to RocksDB's WAL size limit.
        db.flush_cf(state_cf(&db)).map_err(|e| self.io(e))
    }

    /// Stops RocksDB's background work, a running compaction included, so that closing the
    /// log does not wait for it. Only for when the log is being closed.
    pub fn cancel_background_work(&self) {
        if let Ok(db) = self.db() {
            db.cancel_all_background_work(false);
        }
    }
}

/// Builds one write batch against the database it will be written to.
pub struct Batch<'a> {
    db: &'a DB,
    values: Values,
}

/// Below this many bytes of entries to zstd-compress, a batch is encoded on the calling
/// thread: handing work to other threads costs more than it saves.
const PARALLEL_ENCODE_MIN: usize = 64 << 10;

impl Batch<'_> {
    /// Puts `entries`, compressing them on every core when there is much to compress: the
    /// append waits for the compression before its sync, and a single core compresses zstd
    /// at about 600 MB/s.
    pub fn put_entries(&self, batch: &mut WriteBatch, entries: &[Entry]) {
        let values = self.values;
        let (heavy, bytes) = entries
            .iter()
            .filter(|e| values.compresses_slowly(e))
            .fold((0, 0), |(n, b), e| (n + 1, b + e.data.len()));
        let encoded: Vec<Vec<u8>> = if bytes >= PARALLEL_ENCODE_MIN && heavy > 1 {
            entries.par_iter().map(|e| values.encode(e)).collect()
        } else {
            entries.iter().map(|e| values.encode(e)).collect()
        };
        let cf = entries_cf(self.db);
        for (e, value) in entries.iter().zip(encoded) {
            batch.put_cf(cf, entry_key(e.index), value);
        }
    }

    /// Writes the v4 marker, if this log's values allow it (see [`Values::fenced_marker`]).
    pub fn put_fence(&self, batch: &mut WriteBatch) {
        if let Some(marker) = self.values.fenced_marker() {
            batch.put_cf(state_cf(self.db), KEY_FORMAT, marker);
        }
    }

    pub fn put_trim_point(&self, batch: &mut WriteBatch, point: TrimPoint) {
        batch.put_cf(state_cf(self.db), KEY_TRIM_POINT, encode_trim_point(point));
    }

    /// Deletes entries `[from, to)`, one key at a time. Not with a range tombstone: Debian's
    /// librocksdb 7.8 is built with assertions, and a memtable holding a range tombstone that
    /// RocksDB switches out twice (which flushes forced by the WAL limit and the compactor's
    /// flush of the state family can do) aborts the process in
    /// `MemTable::ConstructFragmentedRangeTombstones` (fixed upstream in 9.x). Point
    /// tombstones never take that path; the compaction after a trim drops them with the data.
    pub fn delete_entries(&self, batch: &mut WriteBatch, from: u64, to: u64) {
        let cf = entries_cf(self.db);
        for index in from..to {
            batch.delete_cf(cf, entry_key(index));
        }
    }

    pub fn put_hard_state(&self, batch: &mut WriteBatch, hs: &HardState) {
        batch.put_cf(state_cf(self.db), KEY_HARD_STATE, hs.encode_to_vec());
    }

    pub fn put_conf_state(&self, batch: &mut WriteBatch, cs: &ConfState) {
        batch.put_cf(state_cf(self.db), KEY_CONF_STATE, cs.encode_to_vec());
    }

    pub fn put_meta(&self, batch: &mut WriteBatch, key: &str, value: &[u8]) {
        batch.put_cf(state_cf(self.db), meta_key(key), value);
    }

    pub fn delete_meta(&self, batch: &mut WriteBatch, key: &str) {
        batch.delete_cf(state_cf(self.db), meta_key(key));
    }
}

fn entries_cf(db: &DB) -> &ColumnFamily {
    db.cf_handle(CF_ENTRIES)
        .expect("opened with this column family")
}

fn state_cf(db: &DB) -> &ColumnFamily {
    db.cf_handle(CF_STATE)
        .expect("opened with this column family")
}

/// Writes the format marker into a new log; takes the format of an existing one (and whether
/// it is fenced), and refuses a directory with no marker or an unknown one.
fn check_format(db: &DB, path: &Path, fresh: bool) -> Result<(Values, bool), LogError> {
    let io = |e| LogError::from_rocksdb(path, e);
    if fresh {
        let mut batch = WriteBatch::default();
        batch.put_cf(state_cf(db), KEY_FORMAT, Values::NEW.marker());
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts).map_err(io)?;
    }
    let not_a_log = |reason: String| LogError::NotALog {
        path: path.to_path_buf(),
        reason,
    };
    let marker = db
        .get_cf(state_cf(db), KEY_FORMAT)
        .map_err(io)?
        .ok_or_else(|| not_a_log("the RocksDB database has no hybrid-log format marker".into()))?;
    let values = Values::of_marker(&marker).ok_or_else(|| {
        not_a_log(format!(
            "unknown format {:?}",
            String::from_utf8_lossy(&marker)
        ))
    })?;
    Ok((values, marker == FORMAT_V4))
}

/// Bytes free for an unprivileged process on the file system that holds `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// What the WAL files in `path` take: a reopen replays them into table files.
fn wal_bytes(path: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(path) else {
        return 0;
    };
    dir.filter_map(|f| f.ok())
        .filter(|f| f.path().extension().is_some_and(|e| e == "log"))
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The options of the database and of its two column families, where they differ from
/// RocksDB's defaults and why.
fn options(fresh: bool) -> (Options, Vec<ColumnFamilyDescriptor>) {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(fresh);
    db_opts.create_missing_column_families(fresh);
    db_opts.set_paranoid_checks(true);
    db_opts.set_max_background_jobs(2);
    // Flushes write SST files in small synced steps rather than one large fsync at the
    // end, which would stall the WAL syncs that acknowledge writes behind it.
    db_opts.set_bytes_per_sync(1 << 20);
    // A WAL file is kept until every column family flushed what it holds, and the state
    // column family fills its small memtable slowly: by default the WAL grows to four times
    // the memtables (136 MiB) before RocksDB forces that flush, and the log takes that much
    // beside its entries. 48 MiB is what the entries' own memtables may hold, with room.
    db_opts.set_max_total_wal_size(48 << 20);
    // RocksDB's info log (the LOG file) lives on the log's disk, and Debian's librocksdb 7.8
    // is built with assertions: a second line logged after one failed to be written, as the
    // error handler does when a write meets a full disk, aborts the process
    // (`WritableFileWriter::AssertFalseAndGetStatusForPrevError`). Errors reach the log
    // through the calls that meet them; the LOG file only gets the fatal ones.
    db_opts.set_log_level(rocksdb::LogLevel::Fatal);

    let mut entries_opts = Options::default();
    // Line protocol compresses several times over; LZ4 costs little on the flush path. (Logs
    // whose entries are zstd-compressed turn this off once open.)
    entries_opts.set_compression_type(DBCompressionType::Lz4);
    // Keys are appended in order and never rewritten, so flushed files never overlap:
    // compacting each one as soon as it lands lets RocksDB move it down a level without
    // rewriting it. Batching several level-0 files would make it merge (decompress,
    // recompress) data that only needed to move.
    entries_opts.set_level_zero_file_num_compaction_trigger(1);
    // Every write is synced to the WAL, and recent entries are read from the memory tier,
    // so a large memtable buys nothing but memory.
    entries_opts.set_write_buffer_size(16 << 20);
    entries_opts.set_max_write_buffer_number(2);
    // XXH3 block checksums: fast in software, where the system library's CRC32c is not
    // (it is built without SSE4.2).
    let mut table = BlockBasedOptions::default();
    table.set_checksum_type(ChecksumType::XXH3);
    entries_opts.set_block_based_table_factory(&table);
    let mut state_opts = Options::default();
    // A few small keys overwritten on every Ready: flush often so old versions (and the
    // WAL files they pin) do not pile up.
    state_opts.set_write_buffer_size(1 << 20);
    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_ENTRIES, entries_opts),
        ColumnFamilyDescriptor::new(CF_STATE, state_opts),
    ];
    (db_opts, cfs)
}

fn is_missing_or_empty(path: &Path) -> Result<bool, LogError> {
    match std::fs::read_dir(path) {
        Ok(mut dir) => Ok(dir.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(LogError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
