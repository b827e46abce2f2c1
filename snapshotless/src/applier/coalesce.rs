//! Coalescing: consecutive writes to one database and retention policy become one influxd
//! request, up to a byte bound. A node catching up sends a few large requests instead of one
//! per entry; the bound keeps each within what influxd takes in one go.

use std::collections::VecDeque;

use bytes::Bytes;

use super::decode::{At, Item, Op};
use crate::entry::Write;
use crate::influxd::Chunks;

/// `first` and the writes that directly follow it in `items` to the same db/rp, taken out of
/// `items` as long as their lines stay within `max_bytes` together (`first` alone may exceed
/// it) and `admits` each of them.
pub(super) fn gather(
    first: (At, Write),
    items: &mut VecDeque<Item>,
    max_bytes: usize,
    mut admits: impl FnMut(&At) -> bool,
) -> Vec<(At, Write)> {
    let mut bytes = first.1.lines.len();
    let mut group = vec![first];
    let mut joins = |next: &Item, bytes: usize, group: &[(At, Write)]| match &next.op {
        Op::Write(w) => {
            let target = &group[0].1;
            w.db == target.db
                && w.rp == target.rp
                && bytes + w.lines.len() <= max_bytes
                && admits(&next.at)
        }
        _ => false,
    };
    while items.front().is_some_and(|next| joins(next, bytes, &group)) {
        let Some(Item {
            at,
            op: Op::Write(next),
        }) = items.pop_front()
        else {
            unreachable!("only a write joins a group");
        };
        bytes += next.lines.len();
        group.push((at, next));
    }
    group
}

/// The lines of a group as one request body, each entry's lines a piece of it (not copied);
/// each entry's lines end with a newline.
pub(super) fn body(group: &[(At, Write)]) -> Chunks {
    let mut body = Chunks::default();
    for (_, w) in group {
        body.push(w.lines.clone());
        if !w.lines.ends_with(b"\n") {
            body.push(Bytes::from_static(b"\n"));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Query;

    fn item(index: u64, op: Op) -> Item {
        let context = Vec::new();
        Item {
            at: At {
                index,
                context,
                keyed_by: None,
            },
            op,
        }
    }

    fn write(index: u64, db: &str, lines: &'static str) -> Item {
        let (db, rp, lines) = (
            db.into(),
            String::new(),
            Bytes::from_static(lines.as_bytes()),
        );
        item(index, Op::Write(Write { db, rp, lines }))
    }

    /// Gathers from the first item, as the applier does: the group, and the index of the
    /// item left next.
    fn gathered(items: Vec<Item>, max_bytes: usize) -> (Vec<(At, Write)>, Option<u64>) {
        gathered_if(items, max_bytes, |_| true)
    }

    fn gathered_if(
        items: Vec<Item>,
        max_bytes: usize,
        admits: impl FnMut(&At) -> bool,
    ) -> (Vec<(At, Write)>, Option<u64>) {
        let mut items: VecDeque<Item> = items.into();
        let Some(Item {
            at,
            op: Op::Write(w),
        }) = items.pop_front()
        else {
            panic!("the first item must be a write");
        };
        let group = gather((at, w), &mut items, max_bytes, admits);
        (group, items.pop_front().map(|i| i.at.index))
    }

    fn indexes(items: Vec<Item>, max_bytes: usize) -> (Vec<u64>, Option<u64>) {
        let (group, next) = gathered(items, max_bytes);
        (group.iter().map(|(at, _)| at.index).collect(), next)
    }

    #[test]
    fn stops_at_another_database_a_query_or_a_skip() {
        let (w1, w2) = (|| write(1, "a", "m v=1\n"), || write(2, "a", "m v=2\n"));
        let other_db = vec![w1(), w2(), write(3, "b", "m v=3\n")];
        assert_eq!(indexes(other_db, 1 << 20), (vec![1, 2], Some(3)));
        let query = item(2, Op::Query(Query::default()));
        assert_eq!(indexes(vec![w1(), query], 1 << 20), (vec![1], Some(2)));
        assert_eq!(
            indexes(vec![w1(), item(2, Op::Skip)], 1 << 20),
            (vec![1], Some(2))
        );
    }

    #[test]
    fn stays_within_the_byte_bound() {
        let items = || {
            (1..=4)
                .map(|i| write(i, "a", "m v=1\n"))
                .collect::<Vec<_>>()
        };
        assert_eq!(indexes(items(), 12), (vec![1, 2], Some(3)));
        // One entry larger than the bound still goes, on its own.
        assert_eq!(indexes(items(), 1), (vec![1], Some(2)));
    }

    #[test]
    fn stops_at_a_write_not_admitted() {
        let items = (1..=4).map(|i| write(i, "a", "m v=1\n")).collect();
        let (group, next) = gathered_if(items, 1 << 20, |at| at.index != 3);
        let group: Vec<u64> = group.iter().map(|(at, _)| at.index).collect();
        assert_eq!((group, next), (vec![1, 2], Some(3)));
    }

    #[test]
    fn every_entry_ends_its_own_line() {
        let (group, _) = gathered(vec![write(1, "a", "m v=1"), write(2, "a", "m v=2\n")], 100);
        assert_eq!(body(&group).to_bytes(), "m v=1\nm v=2\n");
    }
}
