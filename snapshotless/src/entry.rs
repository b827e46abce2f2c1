//! The format of a normal Raft entry: its data (a [`Command`]: a write or a state-changing
//! query, ready to replay) and its context (the [`Origin`] of the request waiting for it).
//! One more kind of normal entry has no data: a [`Trim`], the leader's decision that every
//! node removes the log up to an index, carried in the context.
//!
//! The encoding is prost, and everything in a command is already deterministic: timestamps
//! were converted to nanoseconds and missing ones stamped by the node that received the
//! write, so every replica replaying the entry produces the same points. A write may carry
//! its client's idempotency key ([`KeyedBy`]), with everything needed to judge a retry the
//! same way on every replica; entries written before keys existed decode without one.
//!
//! A large command is packed: the entry's data is then one zstd frame of its encoding
//! ([`pack`]), made once by the node that received the request, so that the leader, the
//! followers, their logs and the wire all carry the compressed bytes instead of compressing
//! the same lines again on every node. A prost encoding of a command never starts with
//! zstd's magic number (its first byte is a tag of field 1, 2 or 3), so the two cannot be
//! mistaken for each other. Builds older than packing cannot read a packed entry: a node
//! packs only while every member says it reads them, and a log that holds one is fenced
//! against older builds (`hybrid_log::LogBatch::fence_older_builds`).

use std::cell::RefCell;

use prost::Message as _;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(oneof = "Kind", tags = "1, 2")]
    pub kind: Option<Kind>,
    /// The client's idempotency key, on a write that came with one.
    #[prost(message, optional, tag = "3")]
    pub keyed_by: Option<KeyedBy>,
}

/// A write's idempotency key and what the applier needs to recognise a retry of it
/// (`crate::idempotency`). Everything here is fixed by the node that received the write, so
/// that every replica, whatever its own clock and settings, reaches the same verdict.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyedBy {
    #[prost(string, tag = "1")]
    pub key: String,
    /// A digest of what the client sent (database, retention policy, precision, body): a
    /// retry must send the same, and a different write under the same key is refused.
    #[prost(bytes = "vec", tag = "2")]
    pub digest: Vec<u8>,
    /// The receiving node's clock when the write arrived, in milliseconds since the epoch.
    #[prost(uint64, tag = "3")]
    pub received_ms: u64,
    /// How long after an applied write a retry is still recognised (the receiving node's
    /// `idempotency_window`), in milliseconds.
    #[prost(uint64, tag = "4")]
    pub window_ms: u64,
    /// How many keys the table keeps at most (the receiving node's
    /// `idempotency_max_keys`): recording this write evicts the oldest beyond it.
    #[prost(uint64, tag = "5")]
    pub max_keys: u64,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(message, tag = "1")]
    Write(Write),
    #[prost(message, tag = "2")]
    Query(Query),
}

/// Line protocol for one database / retention policy, one point per line, every timestamp
/// explicit and in nanoseconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Write {
    #[prost(string, tag = "1")]
    pub db: String,
    /// Empty means the database's default retention policy.
    #[prost(string, tag = "2")]
    pub rp: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub lines: bytes::Bytes,
}

/// An InfluxQL query with at least one statement that changes state (DDL, DELETE, user
/// management, SELECT ... INTO), replayed through influxd's /query in log order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    #[prost(string, tag = "1")]
    pub q: String,
    #[prost(string, tag = "2")]
    pub db: String,
    #[prost(string, tag = "3")]
    pub rp: String,
    /// Bound parameters (influxd's `params`, JSON), empty if none.
    #[prost(string, tag = "4")]
    pub params: String,
}

impl Command {
    pub fn write(db: impl Into<String>, rp: impl Into<String>, lines: bytes::Bytes) -> Command {
        Command {
            kind: Some(Kind::Write(Write {
                db: db.into(),
                rp: rp.into(),
                lines,
            })),
            keyed_by: None,
        }
    }

    pub fn query(q: Query) -> Command {
        Command {
            kind: Some(Kind::Query(q)),
            keyed_by: None,
        }
    }

    /// The same command, carrying the client's idempotency key.
    pub fn keyed(self, keyed_by: KeyedBy) -> Command {
        Command {
            keyed_by: Some(keyed_by),
            ..self
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, prost::DecodeError> {
        <Command as prost::Message>::decode(bytes)
    }

    /// Decodes without copying the lines: they become slices of `bytes`, or of the one
    /// buffer a packed command unpacks into.
    pub fn decode_bytes(bytes: bytes::Bytes) -> Result<Command, EntryError> {
        let plain = if is_packed(&bytes) {
            bytes::Bytes::from(unpack(&bytes)?)
        } else {
            bytes
        };
        Ok(<Command as prost::Message>::decode(plain)?)
    }
}

/// Commands smaller than this are proposed as they are: zstd's gain is in large ones (a
/// Telegraf flush of 500 points is 70-100 KiB of line protocol), and the log stores small
/// entries LZ4-compressed anyway.
pub const PACK_MIN: usize = 16 << 10;

/// zstd's fastest regular level: on line protocol about half of LZ4's size, at a speed that
/// keeps it a small part of a write (higher levels cost several times the CPU for a few
/// percent less).
const PACK_LEVEL: i32 = 1;

/// The most an entry unpacks to: far above any request body the gateway takes, and a bound
/// on what a damaged frame header can make the applier allocate.
const MAX_UNPACKED: u64 = 1 << 30;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether an entry's data is a packed command.
pub fn is_packed(data: &[u8]) -> bool {
    data.starts_with(&ZSTD_MAGIC)
}

/// How large an entry's command is unpacked, as its frame header says (`data`'s own length
/// for a command that is not packed, or a header that does not say).
pub fn plain_len(data: &[u8]) -> u64 {
    if !is_packed(data) {
        return data.len() as u64;
    }
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(len)) => len,
        _ => data.len() as u64,
    }
}

/// `encoded` (a command's encoding) packed into one zstd frame that records its size, or
/// `None` when packing would not make it smaller. Contexts are kept per thread: making one
/// costs as much as compressing a small command.
pub fn pack(encoded: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { RefCell::new(None) };
    }
    let packed = COMPRESSOR.with_borrow_mut(|c| {
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(PACK_LEVEL).ok();
        }
        c.as_mut()?.compress(encoded).ok()
    })?;
    (packed.len() < encoded.len()).then_some(packed)
}

/// The encoding a packed command holds.
pub fn unpack(packed: &[u8]) -> Result<Vec<u8>, EntryError> {
    thread_local! {
        static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { RefCell::new(None) };
    }
    let len = match zstd::zstd_safe::get_frame_content_size(packed) {
        Ok(Some(len)) if len <= MAX_UNPACKED => len as usize,
        Ok(Some(len)) => return Err(EntryError::Unpack(format!("claims {len} bytes"))),
        Ok(None) | Err(_) => return Err(EntryError::Unpack("no size in the frame header".into())),
    };
    let plain = DECOMPRESSOR
        .with_borrow_mut(|d| {
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new()?);
            }
            d.as_mut().expect("made above").decompress(packed, len)
        })
        .map_err(|e| EntryError::Unpack(e.to_string()))?;
    if plain.len() != len {
        return Err(EntryError::Unpack(format!(
            "{} bytes where the header says {len}",
            plain.len()
        )));
    }
    Ok(plain)
}

/// Why an entry's data is not a command.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("packed command does not unpack: {0}")]
    Unpack(String),
    #[error("command does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Who is waiting for an entry: carried in the raft entry's `context`, so the node that
/// received the request recognises its own entries when they commit and when they are applied,
/// without decoding the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub node: u64,
    pub request: u64,
}

impl Origin {
    pub fn to_context(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.node.to_be_bytes());
        v.extend_from_slice(&self.request.to_be_bytes());
        v
    }

    pub fn from_context(ctx: &[u8]) -> Option<Origin> {
        let node = u64::from_be_bytes(ctx.get(0..8)?.try_into().ok()?);
        let request = u64::from_be_bytes(ctx.get(8..16)?.try_into().ok()?);
        Some(Origin { node, request })
    }
}

/// The leader's decision to trim the log through `through`: an entry with no data (nothing
/// for influxd, like a leader's no-op) and this in its context. It goes through the log so
/// that every node trims at the same point of it; its 12-byte context can never be read as
/// an [`Origin`] (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    pub through: u64,
}

impl Trim {
    const TAG: &'static [u8; 4] = b"trim";

    pub fn to_context(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12);
        v.extend_from_slice(Self::TAG);
        v.extend_from_slice(&self.through.to_be_bytes());
        v
    }

    /// The trim an entry with `data` and `ctx` carries, if it is one.
    pub fn from_entry(data: &[u8], ctx: &[u8]) -> Option<Trim> {
        if !data.is_empty() || ctx.len() != 12 || &ctx[..4] != Self::TAG {
            return None;
        }
        let through = u64::from_be_bytes(ctx[4..].try_into().ok()?);
        Some(Trim { through })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = Command::write("db", "rp", bytes::Bytes::from_static(b"m v=1 1\n"));
        assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        let keyed = c.clone().keyed(KeyedBy {
            key: "k".into(),
            digest: vec![1; 32],
            received_ms: 1_700_000_000_000,
            window_ms: 600_000,
            max_keys: 100_000,
        });
        assert_eq!(Command::decode(&keyed.encode()).unwrap(), keyed);
        assert!(!is_packed(&c.encode()) && !is_packed(&keyed.encode()));
        let o = Origin {
            node: 3,
            request: u64::MAX - 1,
        };
        assert_eq!(Origin::from_context(&o.to_context()), Some(o));
        assert_eq!(Origin::from_context(b"short"), None);
        let t = Trim { through: 42 };
        assert_eq!(Trim::from_entry(b"", &t.to_context()), Some(t));
        assert_eq!(Origin::from_context(&t.to_context()), None);
        assert_eq!(Trim::from_entry(b"x", &t.to_context()), None);
        assert_eq!(Trim::from_entry(b"", &o.to_context()), None);
    }

    /// Entries written before idempotency keys existed: a write as those versions encoded it
    /// (the oneof alone) decodes, without a key; and a keyed write read by such a version
    /// is still the same write (prost skips the field it does not know).
    #[test]
    fn entries_without_a_key_still_decode() {
        // Field 1 (Write), length-delimited: db "db", rp "", lines "m v=1 1".
        let old: &[u8] = b"\x0a\x0d\x0a\x02db\x1a\x07m v=1 1";
        let c = Command::decode(old).unwrap();
        assert_eq!(c.keyed_by, None);
        assert_eq!(
            c,
            Command::write("db", "", bytes::Bytes::from_static(b"m v=1 1"))
        );
        let keyed = c.clone().keyed(KeyedBy {
            key: "k".into(),
            ..KeyedBy::default()
        });
        #[derive(Clone, PartialEq, prost::Message)]
        struct Before {
            #[prost(oneof = "Kind", tags = "1, 2")]
            kind: Option<Kind>,
        }
        let before = <Before as prost::Message>::decode(&keyed.encode()[..]).unwrap();
        assert_eq!(before.kind, c.kind);
    }

    fn large_write() -> Command {
        let lines: String = (0..2_000)
            .map(|i| {
                format!(
                    "cpu,host=h{},cpu=cpu{} usage_idle={}.5,usage_user=3i {}\n",
                    i % 50,
                    i % 8,
                    i,
                    1_700_000_000_000_000_000u64 + i
                )
            })
            .collect();
        Command::write("telegraf", "autogen", bytes::Bytes::from(lines)).keyed(KeyedBy {
            key: "k".into(),
            digest: vec![7; 32],
            ..KeyedBy::default()
        })
    }

    #[test]
    fn a_packed_command_unpacks_to_the_same_command() {
        let c = large_write();
        let encoded = c.encode();
        assert!(encoded.len() >= PACK_MIN);
        let packed = pack(&encoded).expect("line protocol compresses");
        assert!(is_packed(&packed));
        assert_eq!(plain_len(&packed), encoded.len() as u64);
        assert_eq!(plain_len(&encoded), encoded.len() as u64);
        assert!(
            packed.len() * 4 < encoded.len(),
            "{} of {}",
            packed.len(),
            encoded.len()
        );
        assert_eq!(Command::decode_bytes(packed.into()).unwrap(), c);
        // Data that does not shrink is left as it is.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..PACK_MIN)
            .map(|_| {
                // xorshift64*: bytes zstd finds nothing to gain on.
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        assert_eq!(pack(&noise), None);
    }

    /// A damaged frame is an error, not a panic or a huge allocation, and so is a frame that
    /// claims more than an entry can hold.
    #[test]
    fn a_damaged_packed_command_is_refused() {
        let packed = pack(&large_write().encode()).unwrap();
        let mut cut = packed.clone();
        cut.truncate(packed.len() / 2);
        assert!(matches!(
            Command::decode_bytes(cut.into()),
            Err(EntryError::Unpack(_))
        ));
        let mut flipped = packed.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        assert!(Command::decode_bytes(flipped.into()).is_err());
        let mut header_only = ZSTD_MAGIC.to_vec();
        // Frame header descriptor: an 8-byte content size, single segment; then the size.
        header_only.push(0xe0);
        header_only.extend_from_slice(&(MAX_UNPACKED + 1).to_le_bytes());
        let e = Command::decode_bytes(header_only.into()).unwrap_err();
        assert!(e.to_string().contains("claims"), "{e}");
    }

    /// What a build from before packing makes of a packed entry: no write it could mistake
    /// for a real one (its applier skips what it cannot decode, which is why packing is
    /// gated and the log fenced).
    #[test]
    fn an_older_build_cannot_take_a_packed_entry_for_a_write() {
        let packed = pack(&large_write().encode()).unwrap();
        assert!(!matches!(
            Command::decode(&packed),
            Ok(Command { kind: Some(_), .. })
        ));
    }
}
