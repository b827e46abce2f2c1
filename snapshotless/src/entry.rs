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

    /// Decodes without copying the lines: they become slices of `bytes`.
    pub fn decode_bytes(bytes: bytes::Bytes) -> Result<Command, prost::DecodeError> {
        <Command as prost::Message>::decode(bytes)
    }
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
}
