//! What a committed entry asks of influxd: nothing, a write or a query. The payload moves into
//! `Bytes` on the way, so the lines of a write are never copied before they reach influxd.

use bytes::Bytes;
use raft::prelude::{Entry, EntryType};

use crate::entry::{Command, KeyedBy, Kind, Query, Write};

/// Where an entry sits and who proposed it: what advancing and reporting need; and the
/// idempotency key of a write that came with one.
pub(super) struct At {
    pub index: u64,
    pub context: Vec<u8>,
    pub keyed_by: Option<KeyedBy>,
}

pub(super) enum Op {
    /// Leader no-ops and membership changes: nothing for influxd.
    Skip,
    Write(Write),
    Query(Query),
}

pub(super) struct Item {
    pub at: At,
    pub op: Op,
}

impl Item {
    /// Takes the entry apart.
    pub(super) fn decode(e: Entry) -> Item {
        let mut keyed_by = None;
        let op = if e.entry_type() != EntryType::EntryNormal || e.data.is_empty() {
            Op::Skip
        } else {
            match Command::decode_bytes(Bytes::from(e.data)) {
                Ok(Command {
                    kind: Some(Kind::Write(w)),
                    keyed_by: key,
                }) => {
                    keyed_by = key;
                    Op::Write(w)
                }
                Ok(Command {
                    kind: Some(Kind::Query(q)),
                    ..
                }) => Op::Query(q),
                Ok(Command { kind: None, .. }) => {
                    tracing::error!(index = e.index, "entry with an empty command; skipping it");
                    Op::Skip
                }
                Err(err) => {
                    // Only this program writes entries, so this is a bug or a newer version's
                    // entry; it is the same on every replica, so skipping keeps them identical.
                    tracing::error!(index = e.index, error = %err, "undecodable entry; skipping it");
                    Op::Skip
                }
            }
        };
        Item {
            at: At {
                index: e.index,
                context: e.context,
                keyed_by,
            },
            op,
        }
    }
}
