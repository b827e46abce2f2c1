//! Reading ahead: while influxd takes one request, the entries of the next are read from the
//! log and unpacked on a blocking thread. A node catching up then keeps its influxd busy
//! instead of making it wait, between two requests, for work only the gateway can do.
//!
//! Entries are decoded in index order and handed out in that order; nothing here decides
//! what is applied. Read-ahead stops at anything that is not a write (a query, a no-op, a
//! membership change), where a group of writes ends anyway.

use std::collections::VecDeque;
use std::sync::Arc;

use raft::prelude::Entry;

use super::decode::{Item, Op};
use crate::log::{CommittedLog, LogReadError};

pub(super) struct ReadAhead<L> {
    log: Arc<L>,
    /// The first index not read from the log yet.
    next: u64,
    /// Read from the log, not decoded yet.
    read: VecDeque<Entry>,
    /// Decoded, not applied yet.
    pub ready: VecDeque<Item>,
    /// Why the log could not be read at `next`: surfaced once everything before it is applied.
    failed: Option<LogReadError>,
}

impl<L: CommittedLog> ReadAhead<L> {
    /// Nothing read yet; the next entry to apply is `from`.
    pub fn new(log: Arc<L>, from: u64) -> ReadAhead<L> {
        ReadAhead {
            log,
            next: from,
            read: VecDeque::new(),
            ready: VecDeque::new(),
            failed: None,
        }
    }

    /// The index of the first entry not applied yet, which the applier's position must be
    /// right before for what is held here to be what comes next.
    pub fn first(&self) -> u64 {
        let held = self.ready.front().map(|i| i.at.index);
        held.or_else(|| self.read.front().map(|e| e.index))
            .unwrap_or(self.next)
    }

    /// Whether [`ReadAhead::fill`] would decode anything more of what is committed up to
    /// `committed`: there is more, and nothing that ends a group of writes is ready.
    pub fn can_fill(&self, committed: u64) -> bool {
        let more = !self.read.is_empty() || self.next <= committed;
        let barrier = self.ready.iter().any(|i| !matches!(i.op, Op::Write(_)));
        self.failed.is_none() && more && !barrier
    }

    /// The error that stopped reading, once nothing decoded is left before it.
    pub fn take_failure(&mut self) -> Option<LogReadError> {
        if self.ready.is_empty() {
            self.failed.take()
        } else {
            None
        }
    }

    /// Decodes entries up to `committed` until the writes ready to go hold `budget` bytes of
    /// lines, or something that is not a write is ready, whichever comes first. Reads from the
    /// log `max_read` bytes at a time.
    pub fn fill(&mut self, committed: u64, budget: usize, max_read: u64) {
        let mut bytes = 0;
        for item in &self.ready {
            match &item.op {
                Op::Write(w) => bytes += w.lines.len(),
                _ => return,
            }
        }
        while bytes < budget {
            let Some(entry) = self
                .read
                .pop_front()
                .or_else(|| self.read_more(committed, max_read))
            else {
                return;
            };
            let item = Item::decode(entry);
            let write = match &item.op {
                Op::Write(w) => Some(w.lines.len()),
                _ => None,
            };
            self.ready.push_back(item);
            match write {
                Some(len) => bytes += len,
                None => return,
            }
        }
    }

    /// The next entry, reading more of the log if there is more committed.
    fn read_more(&mut self, committed: u64, max_read: u64) -> Option<Entry> {
        if self.failed.is_some() || self.next > committed {
            return None;
        }
        match self.log.read(self.next, committed + 1, max_read) {
            Ok(entries) => {
                self.next = entries.last().map_or(self.next, |e| e.index + 1);
                self.read.extend(entries);
                self.read.pop_front()
            }
            Err(e) => {
                self.failed = Some(e);
                None
            }
        }
    }

    /// [`ReadAhead::fill`] on a blocking thread: the future resolves to this read-ahead again.
    pub async fn fill_blocking(mut self, committed: u64, budget: usize, max_read: u64) -> Self {
        let filled = tokio::task::spawn_blocking(move || {
            self.fill(committed, budget, max_read);
            self
        });
        match filled.await {
            Ok(ahead) => ahead,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Command, Kind, Query, Write};
    use crate::log::ReplayFloor;
    use hybrid_log::LogError;
    use prost::Message;

    /// Entries 1..=n in memory; reads of at most `per_read` entries.
    struct Memory {
        entries: Vec<Entry>,
        per_read: usize,
    }

    impl CommittedLog for Memory {
        fn read(&self, lo: u64, hi: u64, _max: u64) -> Result<Vec<Entry>, LogReadError> {
            let hi = hi.min(lo + self.per_read as u64);
            Ok(self.entries[lo as usize - 1..hi as usize - 1].to_vec())
        }
        fn term(&self, _: u64) -> Result<u64, LogReadError> {
            Ok(1)
        }
        fn load_applied(&self) -> u64 {
            0
        }
        fn save_applied(&self, _: u64) {}
        fn load_replay_floor(&self) -> Option<ReplayFloor> {
            None
        }
        fn save_replay_floor(&self, _: Option<&ReplayFloor>) -> Result<(), LogError> {
            Ok(())
        }
    }

    fn entry(index: u64, kind: Kind) -> Entry {
        let command = Command {
            kind: Some(kind),
            keyed_by: None,
        };
        Entry {
            index,
            term: 1,
            data: command.encode_to_vec(),
            ..Default::default()
        }
    }

    fn write(index: u64) -> Entry {
        let lines = format!("m v={index}\n").into();
        let (db, rp) = ("db".into(), String::new());
        entry(index, Kind::Write(Write { db, rp, lines }))
    }

    fn ready(ahead: &ReadAhead<Memory>) -> Vec<u64> {
        ahead.ready.iter().map(|i| i.at.index).collect()
    }

    #[test]
    fn fills_up_to_the_budget_across_reads_and_no_further_than_committed() {
        let entries = (1..=10).map(write).collect();
        let log = Arc::new(Memory {
            entries,
            per_read: 3,
        });
        let mut ahead = ReadAhead::new(log, 1);
        // Each write is 6 bytes of lines: 4 of them reach 20.
        ahead.fill(10, 20, 0);
        assert_eq!(ready(&ahead), [1, 2, 3, 4]);
        // Filling again only adds what the budget lacks.
        ahead.ready.pop_front();
        ahead.fill(10, 20, 0);
        assert_eq!(ready(&ahead), [2, 3, 4, 5]);
        ahead.fill(6, 1000, 0);
        assert_eq!(ready(&ahead), [2, 3, 4, 5, 6]);
        assert!(!ahead.can_fill(6));
        assert!(ahead.can_fill(7));
        assert_eq!(ahead.first(), 2);
    }

    #[test]
    fn stops_at_anything_that_is_not_a_write() {
        let query = Kind::Query(Query::default());
        let entries = vec![write(1), write(2), entry(3, query), write(4)];
        let log = Arc::new(Memory {
            entries,
            per_read: 10,
        });
        let mut ahead = ReadAhead::new(log, 1);
        ahead.fill(4, 1000, 0);
        assert_eq!(ready(&ahead), [1, 2, 3]);
        // Nothing more while the query waits its turn.
        assert!(!ahead.can_fill(4));
        ahead.fill(4, 1000, 0);
        assert_eq!(ready(&ahead), [1, 2, 3]);
        ahead.ready.clear();
        ahead.fill(4, 1000, 0);
        assert_eq!(ready(&ahead), [4]);
    }
}
