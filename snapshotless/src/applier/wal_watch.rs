//! What influxd's write-ahead log may still hold that a later start of influxd would replay,
//! read from its statistics (`/debug/vars`).
//!
//! influxd 1.6 keeps, at start, the WAL segment it was last writing and appends to it. A
//! cache snapshot (the cache moved into TSM files) deletes the segments it covers, but leaves
//! that reopened one in place when nothing was written to it since the start
//! (influxdata/influxdb#14229, fixed in 1.7.7): its points are in the TSM files and in the
//! WAL. A later `DELETE` or `DROP` finds nothing in the cache, so it writes nothing to the
//! WAL, and the next start replays the old segment: the deleted points are back. The segment
//! goes at the first snapshot after a write.
//!
//! A shard is **settled** in the current influxd process once its WAL is empty, or once it has
//! been seen written to and has completed a snapshot since: that snapshot rolled the segment
//! and deleted it, with whatever it held from before the start. The statistics are counters of
//! the process, so what was seen is kept per process.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::marker;

/// Databases left out: `_internal` is influxd's own, and the marker's database is the
/// gateway's, which it never deletes from.
const IGNORED: [&str; 2] = ["_internal", marker::DATABASE];

/// One shard's WAL and cache, as influxd's statistics show them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shard {
    id: String,
    wal_bytes: u64,
    /// Writes into the WAL by this process.
    wal_writes: u64,
    /// Cache snapshots this process completed (`cacheCompactions`; the cache's own
    /// `snapshotCount` counts attempts not yet through, and is back to 0 after one succeeds).
    snapshots: u64,
    /// A snapshot under way.
    snapshotting: bool,
}

fn shards(vars: &Map<String, Value>) -> Vec<Shard> {
    let engine = |id: &Value| {
        vars.values()
            .find(|v| v["name"] == "tsm1_engine" && &v["tags"]["id"] == id)
    };
    vars.values()
        .filter(|v| v["name"] == "tsm1_wal")
        .filter(|v| !IGNORED.iter().any(|db| v["tags"]["database"] == *db))
        .filter_map(|wal| {
            let id = &wal["tags"]["id"];
            let value = |v: &Value, f: &str| v["values"][f].as_u64().unwrap_or(0);
            let engine = engine(id);
            Some(Shard {
                id: id.as_str()?.to_owned(),
                wal_bytes: value(wal, "currentSegmentDiskBytes")
                    + value(wal, "oldSegmentsDiskBytes"),
                wal_writes: value(wal, "writeOk"),
                snapshots: engine.map_or(0, |e| value(e, "cacheCompactions")),
                snapshotting: engine.is_some_and(|e| value(e, "cacheCompactionsActive") > 0),
            })
        })
        .collect()
}

/// What the applier has seen of the shards of one influxd process.
#[derive(Debug, Default)]
pub(crate) struct WalWatch {
    process: Option<String>,
    /// Shards seen written to, with the snapshots they had completed then.
    written_at: HashMap<String, u64>,
}

/// One reading of the statistics, judged with what was seen before.
#[derive(Debug)]
pub(crate) struct WalReading {
    /// Shards not settled: their WAL may hold points written before this process started
    /// (behind a gap a torn write left, `torn_wal.rs`).
    pub unsettled: usize,
    /// Of those, the ones whose cache no longer holds those points: a `DELETE` of them now
    /// writes nothing to the WAL, and influxd's next start brings them back.
    pub may_resurrect: usize,
}

impl WalWatch {
    /// Takes in influxd's statistics, read from the process that started at `process`.
    pub(crate) fn observe(&mut self, process: &str, vars: &Map<String, Value>) -> WalReading {
        if self.process.as_deref() != Some(process) {
            self.process = Some(process.to_owned());
            self.written_at.clear();
        }
        let mut reading = WalReading {
            unsettled: 0,
            may_resurrect: 0,
        };
        for s in shards(vars) {
            if s.wal_writes > 0 {
                self.written_at.entry(s.id.clone()).or_insert(s.snapshots);
            }
            let written_at = self.written_at.get(&s.id).copied();
            if s.wal_bytes == 0 || written_at.is_some_and(|at| s.snapshots > at) {
                continue;
            }
            reading.unsettled += 1;
            // Not snapshotted yet, the cache holds everything the WAL does; once snapshotted
            // without a write before, it no longer does. (Snapshotted after a write seen
            // before it, the shard is settled.)
            if s.snapshots > 0 || s.snapshotting {
                reading.may_resurrect += 1;
            }
        }
        reading
    }
}

/// Whether a statement may delete points: `DELETE`, `DROP SERIES`, `DROP MEASUREMENT` (and,
/// erring on the safe side, any other `DROP`, or a statement naming something "delete").
pub(crate) fn removes_points(statement: &str) -> bool {
    let upper = statement.to_ascii_uppercase();
    upper.contains("DELETE") || upper.contains("DROP")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct S {
        id: u64,
        db: &'static str,
        wal_bytes: u64,
        wal_writes: u64,
        snapshots: u64,
    }

    fn vars(shards: &[S]) -> Map<String, Value> {
        shards
            .iter()
            .flat_map(|s| {
                let tags = json!({"database": s.db, "id": s.id.to_string()});
                [
                    (
                        format!("tsm1_wal:{}", s.id),
                        json!({"name": "tsm1_wal", "tags": tags,
                            "values": {"currentSegmentDiskBytes": s.wal_bytes,
                                "oldSegmentsDiskBytes": 0, "writeOk": s.wal_writes}}),
                    ),
                    (
                        format!("tsm1_engine:{}", s.id),
                        json!({"name": "tsm1_engine", "tags": tags,
                            "values": {"cacheCompactions": s.snapshots,
                                "cacheCompactionsActive": 0}}),
                    ),
                ]
            })
            .collect()
    }

    fn s(id: u64, wal_bytes: u64, wal_writes: u64, snapshots: u64) -> S {
        S {
            id,
            db: "db",
            wal_bytes,
            wal_writes,
            snapshots,
        }
    }

    #[test]
    fn a_reopened_segment_left_by_a_snapshot_may_bring_deleted_points_back() {
        let mut w = WalWatch::default();
        // Loaded at start, in the cache: a DELETE now reaches the WAL.
        let r = w.observe("p1", &vars(&[s(1, 57, 0, 0)]));
        assert_eq!((r.unsettled, r.may_resurrect), (1, 0));
        // Snapshotted with nothing written: the segment stays, the cache is empty.
        let r = w.observe("p1", &vars(&[s(1, 57, 0, 1)]));
        assert_eq!((r.unsettled, r.may_resurrect), (1, 1));
        // Written to after that: the segment goes at the next snapshot, not before.
        let r = w.observe("p1", &vars(&[s(1, 93, 1, 1)]));
        assert_eq!((r.unsettled, r.may_resurrect), (1, 1));
        let r = w.observe("p1", &vars(&[s(1, 36, 2, 2)]));
        assert_eq!((r.unsettled, r.may_resurrect), (0, 0));
    }

    #[test]
    fn a_shard_written_to_is_settled_by_its_next_snapshot() {
        let mut w = WalWatch::default();
        // Its first snapshot will delete the segment: nothing to bring back, but what it
        // held before the start is still there until then.
        let r = w.observe("p1", &vars(&[s(1, 500, 3, 0)]));
        assert_eq!((r.unsettled, r.may_resurrect), (1, 0));
        let r = w.observe("p1", &vars(&[s(1, 500, 3, 0)]));
        assert_eq!((r.unsettled, r.may_resurrect), (1, 0));
        let r = w.observe("p1", &vars(&[s(1, 800, 9, 4)]));
        assert_eq!((r.unsettled, r.may_resurrect), (0, 0));
        // Another process: seen afresh. Snapshotted before it was seen: not known.
        let r = w.observe("p2", &vars(&[s(1, 800, 9, 4)]));
        assert_eq!((r.unsettled, r.may_resurrect), (1, 1));
    }

    #[test]
    fn empty_wals_and_the_ignored_databases_are_settled() {
        let mut w = WalWatch::default();
        let mut internal = s(2, 100, 0, 3);
        internal.db = "_internal";
        let mut gateway = s(3, 100, 0, 3);
        gateway.db = marker::DATABASE;
        let r = w.observe("p", &vars(&[s(1, 0, 0, 5), internal, gateway]));
        assert_eq!((r.unsettled, r.may_resurrect), (0, 0));
        assert_eq!(w.observe("p", &Map::new()).unsettled, 0);
    }

    #[test]
    fn statements_that_may_delete_points() {
        for q in [
            "DELETE FROM m WHERE time < 10",
            "drop series from cpu",
            "DROP MEASUREMENT \"m\"",
            "drop database d",
        ] {
            assert!(removes_points(q), "{q}");
        }
        for q in [
            "CREATE DATABASE d",
            "CREATE RETENTION POLICY r ON d DURATION 1d REPLICATION 1",
        ] {
            assert!(!removes_points(q), "{q}");
        }
    }
}
