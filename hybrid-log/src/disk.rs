//! The disk tier: every entry of the log, in RocksDB.
//!
//! Two column families: `entries` maps a big-endian index to an encoded `Entry` (so
//! RocksDB's byte order is index order and a range read is one iterator), and `state` holds
//! the HardState, the ConfState, a format marker and small metadata values owned by the
//! caller. Writes are whole `WriteBatch`es, so a Raft `Ready` is durable all at once or not at
//! all.

use std::path::{Path, PathBuf};

use prost::Message as _;
use raft::prelude::{ConfState, Entry, HardState};
use rocksdb::{
    BlockBasedOptions, ChecksumType, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType,
    Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

use crate::error::LogError;
use crate::limit::SizeLimit;

const CF_ENTRIES: &str = "entries";
const CF_STATE: &str = "state";

const KEY_FORMAT: &[u8] = b"format";
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const META_PREFIX: &str = "meta/";

/// Written once when a log is created; a directory without it is not ours.
/// v1: an entry's value is its prost encoding. v2 (what new logs use): a tag byte, then the
/// prost encoding, LZ4-compressed when that makes it smaller (see [`Values`]).
const FORMAT_V1: &[u8] = b"hybrid-log v1";
const FORMAT_V2: &[u8] = b"hybrid-log v2";

/// How entry values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Values {
    Plain,
    Tagged,
}

const TAG_PLAIN: u8 = 0;
const TAG_LZ4: u8 = 1;

/// Entries smaller than this are stored as they are: LZ4 gains little on a few hundred bytes,
/// and RocksDB's block compression still applies to them on flush.
const COMPRESS_MIN: usize = 512;

pub fn entry_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn meta_key(key: &str) -> Vec<u8> {
    format!("{META_PREFIX}{key}").into_bytes()
}

pub struct DiskTier {
    db: DB,
    path: PathBuf,
    values: Values,
}

/// What a directory held when it was opened.
pub struct Recovered {
    pub hard_state: HardState,
    pub conf_state: ConfState,
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
        let mut disk = DiskTier {
            db,
            path: path.to_path_buf(),
            values: Values::Tagged,
        };

        disk.check_format(fresh)?;

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
        let last_index = disk.scan_last_index()?;
        Ok((
            disk,
            Recovered {
                hard_state,
                conf_state,
                last_index,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the format marker into a new log; takes the format of an existing one, and
    /// refuses a directory with no marker or an unknown one.
    fn check_format(&mut self, fresh: bool) -> Result<(), LogError> {
        if fresh {
            let mut batch = WriteBatch::default();
            batch.put_cf(self.state_cf(), KEY_FORMAT, FORMAT_V2);
            self.write(batch, true)?;
        }
        match self.get_state(KEY_FORMAT)? {
            Some(f) if f == FORMAT_V2 => {}
            // A log created by an earlier version keeps its format: every value in one
            // directory is stored the same way.
            Some(f) if f == FORMAT_V1 => self.values = Values::Plain,
            other => {
                return Err(LogError::NotALog {
                    path: self.path.clone(),
                    reason: match other {
                        Some(f) => format!("unknown format {:?}", String::from_utf8_lossy(&f)),
                        None => "the RocksDB database has no hybrid-log format marker".into(),
                    },
                })
            }
        }
        Ok(())
    }

    fn entries_cf(&self) -> &ColumnFamily {
        self.db
            .cf_handle(CF_ENTRIES)
            .expect("opened with this column family")
    }

    fn state_cf(&self) -> &ColumnFamily {
        self.db
            .cf_handle(CF_STATE)
            .expect("opened with this column family")
    }

    fn corrupt(&self, what: impl Into<String>) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    fn io(&self, source: rocksdb::Error) -> LogError {
        LogError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn decode<M: prost::Message + Default>(&self, bytes: &[u8], what: &str) -> Result<M, LogError> {
        M::decode(bytes).map_err(|e| self.corrupt(format!("{what} does not decode: {e}")))
    }

    /// An entry as stored. Compressing here rather than only in RocksDB's blocks means the
    /// WAL, which every synced append writes before it may be acknowledged, carries the
    /// compressed bytes: line protocol shrinks several times over.
    fn encode_entry(&self, e: &Entry) -> Vec<u8> {
        let plain = e.encode_to_vec();
        if self.values == Values::Plain {
            return plain;
        }
        if plain.len() >= COMPRESS_MIN {
            let mut out = Vec::with_capacity(1 + 4 + plain.len() / 2);
            out.push(TAG_LZ4);
            out.extend_from_slice(&lz4_flex::block::compress_prepend_size(&plain));
            if out.len() < plain.len() {
                return out;
            }
        }
        let mut out = Vec::with_capacity(1 + plain.len());
        out.push(TAG_PLAIN);
        out.extend_from_slice(&plain);
        out
    }

    fn decode_entry(&self, stored: &[u8], index: u64) -> Result<Entry, LogError> {
        let what = format!("entry {index}");
        match (self.values, stored.split_first()) {
            (Values::Plain, _) => self.decode(stored, &what),
            (Values::Tagged, Some((&TAG_PLAIN, plain))) => self.decode(plain, &what),
            (Values::Tagged, Some((&TAG_LZ4, packed))) => {
                let plain = lz4_flex::block::decompress_size_prepended(packed)
                    .map_err(|e| self.corrupt(format!("{what} does not decompress: {e}")))?;
                self.decode(&plain, &what)
            }
            (Values::Tagged, Some((tag, _))) => {
                Err(self.corrupt(format!("{what} has an unknown encoding tag {tag}")))
            }
            (Values::Tagged, None) => Err(self.corrupt(format!("{what} is empty"))),
        }
    }

    fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        self.db.get_cf(self.state_cf(), key).map_err(|e| self.io(e))
    }

    /// The last index on disk, and a check that the log starts at 1: the log is never
    /// compacted, so anything else means the directory was damaged.
    fn scan_last_index(&self) -> Result<u64, LogError> {
        let cf = self.entries_cf();
        let first = self.db.iterator_cf(cf, IteratorMode::Start).next();
        let last = self.db.iterator_cf(cf, IteratorMode::End).next();
        match (first, last) {
            (None, None) => Ok(0),
            (Some(first), Some(last)) => {
                let (first_key, _) = first.map_err(|e| self.io(e))?;
                let (last_key, last_val) = last.map_err(|e| self.io(e))?;
                let first_index = self.key_index(&first_key)?;
                let last_index = self.key_index(&last_key)?;
                if first_index != 1 {
                    return Err(
                        self.corrupt(format!("the log starts at index {first_index}, not 1"))
                    );
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
        for (expected, item) in (lo..hi).zip(self.db.iterator_cf(self.entries_cf(), mode)) {
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
        let value = self
            .db
            .get_pinned_cf(self.entries_cf(), entry_key(index))
            .map_err(|e| self.io(e))?;
        match value {
            None => Ok(None),
            Some(v) => Ok(Some(self.decode_entry(&v, index)?.term)),
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.get_state(&meta_key(key))
    }

    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), LogError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(|e| self.io(e))
    }

    pub fn put_entry(&self, batch: &mut WriteBatch, e: &Entry) {
        batch.put_cf(self.entries_cf(), entry_key(e.index), self.encode_entry(e));
    }

    /// Deletes entries `[from, to)`.
    pub fn delete_entries(&self, batch: &mut WriteBatch, from: u64, to: u64) {
        batch.delete_range_cf(self.entries_cf(), entry_key(from), entry_key(to));
    }

    pub fn put_hard_state(&self, batch: &mut WriteBatch, hs: &HardState) {
        batch.put_cf(self.state_cf(), KEY_HARD_STATE, hs.encode_to_vec());
    }

    pub fn put_conf_state(&self, batch: &mut WriteBatch, cs: &ConfState) {
        batch.put_cf(self.state_cf(), KEY_CONF_STATE, cs.encode_to_vec());
    }

    pub fn put_meta(&self, batch: &mut WriteBatch, key: &str, value: &[u8]) {
        batch.put_cf(self.state_cf(), meta_key(key), value);
    }

    /// Approximate on-disk size of the entries, as RocksDB estimates it.
    pub fn estimated_bytes(&self) -> u64 {
        self.db
            .property_int_value_cf(self.entries_cf(), "rocksdb.estimate-live-data-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }
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

    let mut entries_opts = Options::default();
    // Line protocol compresses several times over; LZ4 costs little on the flush path.
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
