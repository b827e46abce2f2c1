//! The format of a normal Raft entry: its data (a [`Command`]: a write or a state-changing
//! query, ready to replay) and its context (the [`Origin`] of the request waiting for it).
//! One more kind of normal entry has no data: a [`Trim`], the leader's decision that every
//! node removes the log up to an index, carried in the context.
//!
//! The encoding is prost, and everything in a command is already deterministic: timestamps
//! were converted to nanoseconds and missing ones stamped by the node that received the
//! write, so every replica replaying the entry produces the same points.

use prost::Message as _;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(oneof = "Kind", tags = "1, 2")]
    pub kind: Option<Kind>,
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
        }
    }

    pub fn query(q: Query) -> Command {
        Command {
            kind: Some(Kind::Query(q)),
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
}
