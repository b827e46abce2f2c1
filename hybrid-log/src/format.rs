//! How the log is stored, byte for byte: the keys of the `state` column family, the format
//! marker, the two encodings of an entry value, and the trim point. Everything written to
//! disk is spelled here, so that a change of format is one file's change.

use std::cell::RefCell;

use prost::Message as _;
use raft::prelude::Entry;

use crate::trim::TrimPoint;

pub const CF_ENTRIES: &str = "entries";
pub const CF_STATE: &str = "state";

pub const KEY_FORMAT: &[u8] = b"format";
pub const KEY_HARD_STATE: &[u8] = b"hard_state";
pub const KEY_CONF_STATE: &[u8] = b"conf_state";
/// Absent until the first trim (or snapshot application): a log without it starts at 1, as
/// every log written before trimming existed does. That is why trimming needs no new format
/// marker: v1 and v2 logs read the same with or without it. An older build does not misread
/// a trimmed log either: it refuses entries that do not start at 1, and a trimmed log with no
/// entries left has a commit index past its end (0 to that build), which raft-rs refuses.
pub const KEY_TRIM_POINT: &[u8] = b"trim_point";
const META_PREFIX: &str = "meta/";

/// Written once when a log is created; a directory without it is not ours.
/// v1: an entry's value is its prost encoding. v2: a tag byte, then the prost encoding,
/// LZ4-compressed when that makes it smaller. v3 (what new logs use): the same, compressed
/// with zstd, or LZ4 below [`ZSTD_MIN`] (see [`Values`]). A log keeps the format it was created in, so that the build
/// that created it can still open it. v4: v3's values (a v2 log's read the same), in a log
/// whose caller fenced it against builds older than v4's
/// ([`crate::LogBatch::fence_older_builds`]): they do not know the marker, so they refuse it.
pub const FORMAT_V1: &[u8] = b"hybrid-log v1";
pub const FORMAT_V2: &[u8] = b"hybrid-log v2";
pub const FORMAT_V3: &[u8] = b"hybrid-log v3";
pub const FORMAT_V4: &[u8] = b"hybrid-log v4";

const TAG_PLAIN: u8 = 0;
const TAG_LZ4: u8 = 1;
const TAG_ZSTD: u8 = 2;

/// Entries smaller than this are stored as they are: compression gains little on a few
/// hundred bytes, and RocksDB's block compression still applies to them on flush.
const COMPRESS_MIN: usize = 512;

/// Entries smaller than this are compressed with LZ4 in a zstd log: zstd's gain grows with
/// the entry (more repeats to entropy-code), its fixed cost per call does not, and LZ4 keeps
/// the appends of many small entries as fast as they were. The bulk of a log's bytes are
/// large entries (a Telegraf flush of 500 points is 70-100 KiB of line protocol).
const ZSTD_MIN: usize = 16 << 10;

/// zstd's fastest regular level. On line protocol it stores about half of what LZ4 does
/// (points of one batch share their measurement, tag and field names), at a compression speed
/// that keeps it a small part of an append: higher levels cost several times the CPU for a
/// few percent less.
const ZSTD_LEVEL: i32 = 1;

pub fn entry_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub fn meta_key(key: &str) -> Vec<u8> {
    format!("{META_PREFIX}{key}").into_bytes()
}

/// The caller's key of a stored metadata key; `None` if it is not one.
pub fn meta_name(stored: &[u8]) -> Option<String> {
    let name = stored.strip_prefix(META_PREFIX.as_bytes())?;
    String::from_utf8(name.to_vec()).ok()
}

/// How entry values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    Plain,
    Lz4,
    Zstd,
}

impl Values {
    /// The format of new logs.
    pub const NEW: Values = Values::Zstd;

    /// The encoding a format marker stands for; `None` for a marker we do not know.
    pub fn of_marker(marker: &[u8]) -> Option<Values> {
        match marker {
            FORMAT_V4 | FORMAT_V3 => Some(Values::Zstd),
            // A log created by an earlier version keeps its format: every value in one
            // directory is stored the same way.
            FORMAT_V2 => Some(Values::Lz4),
            FORMAT_V1 => Some(Values::Plain),
            _ => None,
        }
    }

    /// The marker of a log in this encoding fenced against older builds; `None` for plain
    /// values, whose entries carry no tag for v4 to read them by.
    pub fn fenced_marker(self) -> Option<&'static [u8]> {
        (self != Values::Plain).then_some(FORMAT_V4)
    }

    pub fn marker(self) -> &'static [u8] {
        match self {
            Values::Plain => FORMAT_V1,
            Values::Lz4 => FORMAT_V2,
            Values::Zstd => FORMAT_V3,
        }
    }

    /// An entry as stored. Compressing here rather than only in RocksDB's blocks means the
    /// WAL, which every synced append writes before it may be acknowledged, carries the
    /// compressed bytes: line protocol shrinks several times over.
    /// Data that is a zstd frame already (the caller compressed it) is stored as it is.
    pub fn encode(self, e: &Entry) -> Vec<u8> {
        let plain = e.encode_to_vec();
        if self == Values::Plain {
            return plain;
        }
        if plain.len() >= COMPRESS_MIN && !is_zstd_frame(&e.data) {
            let out = if self == Values::Zstd && plain.len() >= ZSTD_MIN {
                zstd_compress(&plain)
            } else {
                let mut out = Vec::with_capacity(1 + 4 + plain.len() / 2);
                out.push(TAG_LZ4);
                out.extend_from_slice(&lz4_flex::block::compress_prepend_size(&plain));
                Some(out)
            };
            if let Some(out) = out.filter(|out| out.len() < plain.len()) {
                return out;
            }
        }
        let mut out = Vec::with_capacity(1 + plain.len());
        out.push(TAG_PLAIN);
        out.extend_from_slice(&plain);
        out
    }

    /// Whether `e` goes through zstd, several times slower than LZ4 (sizes are close enough
    /// to the encoded ones for this).
    pub fn compresses_slowly(self, e: &Entry) -> bool {
        self == Values::Zstd && e.data.len() >= ZSTD_MIN && !is_zstd_frame(&e.data)
    }

    /// The entry a stored value holds, or what is wrong with it.
    pub fn decode(self, stored: &[u8]) -> Result<Entry, BadValue> {
        let plain = match (self, stored.split_first()) {
            (Values::Plain, _) => return decode(stored),
            (_, Some((&TAG_PLAIN, plain))) => return decode(plain),
            (_, Some((&TAG_LZ4, packed))) => lz4_flex::block::decompress_size_prepended(packed)
                .map_err(|e| BadValue::Decompress(e.to_string()))?,
            (Values::Zstd, Some((&TAG_ZSTD, packed))) => zstd_decompress(packed)?,
            (_, Some((&tag, _))) => return Err(BadValue::UnknownTag(tag)),
            (_, None) => return Err(BadValue::Empty),
        };
        decode(&plain)
    }
}

/// Whether `data` starts like a zstd frame: compressing it again would only cost CPU.
fn is_zstd_frame(data: &[u8]) -> bool {
    data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// The tag, the plain length (so that decompression allocates once and can refuse a length
/// that does not match), then one zstd frame.
/// Contexts are reused: making one per entry costs as much as compressing a small entry.
fn zstd_compress(plain: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { RefCell::new(None) };
    }
    let len = u32::try_from(plain.len()).ok()?;
    let packed = COMPRESSOR.with_borrow_mut(|c| {
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        c.as_mut()?.compress(plain).ok()
    })?;
    let mut out = Vec::with_capacity(1 + 4 + packed.len());
    out.push(TAG_ZSTD);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&packed);
    Some(out)
}

fn zstd_decompress(packed: &[u8]) -> Result<Vec<u8>, BadValue> {
    let (len, frame) = packed
        .split_first_chunk::<4>()
        .ok_or_else(|| BadValue::Decompress("shorter than its length".into()))?;
    let len = u32::from_le_bytes(*len) as usize;
    thread_local! {
        static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { RefCell::new(None) };
    }
    let plain = DECOMPRESSOR
        .with_borrow_mut(|d| {
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new()?);
            }
            d.as_mut().expect("made above").decompress(frame, len)
        })
        .map_err(|e| BadValue::Decompress(e.to_string()))?;
    if plain.len() != len {
        return Err(BadValue::Decompress(format!(
            "{} bytes where {len} were stored",
            plain.len()
        )));
    }
    Ok(plain)
}

/// What is wrong with a stored entry value; the caller names the entry and the directory.
#[derive(Debug, thiserror::Error)]
pub enum BadValue {
    #[error("does not decompress: {0}")]
    Decompress(String),
    #[error("has an unknown encoding tag {0}")]
    UnknownTag(u8),
    #[error("is empty")]
    Empty,
    #[error("does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

fn decode(bytes: &[u8]) -> Result<Entry, BadValue> {
    Ok(Entry::decode(bytes)?)
}

/// The trim point as stored: index then term, big-endian. Fixed-size rather than a protobuf
/// message, so a damaged value cannot decode into a plausible smaller one.
pub fn encode_trim_point(point: TrimPoint) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&point.index.to_be_bytes());
    out[8..].copy_from_slice(&point.term.to_be_bytes());
    out
}

pub fn decode_trim_point(stored: &[u8]) -> Option<TrimPoint> {
    let bytes: [u8; 16] = stored.try_into().ok()?;
    let (index, term) = bytes.split_at(8);
    Some(TrimPoint {
        index: u64::from_be_bytes(index.try_into().ok()?),
        term: u64::from_be_bytes(term.try_into().ok()?),
    })
}
