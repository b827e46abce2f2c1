//! A write influxd tore half-way, and the replay floor that makes up for it.
//!
//! influxd 1.6 can lose writes it acknowledged after a write it did not finish: its disk
//! full, or the process killed between two of the system calls of one WAL entry. At its next
//! start it cuts the WAL segment back to the last whole entry, but goes on appending where
//! the file ended before the cut, leaving a gap; at the start after that, reading stops at
//! the gap, and every write behind it is gone (influxdata/influxdb#9657). Each of those writes
//! was answered 204, and the marker, in another shard's WAL, still says they were applied:
//! nothing the applier reads shows the loss.
//!
//! So from the first such write the applier keeps a replay floor, persisted with the log:
//! each time influxd has restarted it replays the log from there, which puts back whatever a
//! gap took (points carry their timestamps, so rewriting the others changes nothing). The
//! floor goes once a later influxd process has snapshotted every shard it holds a WAL for
//! (a snapshot moves the cache to the data files and deletes the segments, gap and all), as
//! its statistics show. A seed, which replaces influxd's data, clears it too.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::Applier;
use crate::log::{CommittedLog, ReplayFloor};
use crate::marker::{self, Marker};
use crate::outcome::Interrupt;

/// How often, while a floor is set, influxd's statistics are read to see whether it can go.
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Databases left out of the check: `_internal` is influxd's own, and the marker's database
/// is written every second, so it rarely snapshots; a gap there loses the marker, which the
/// applier sees (`resume.rs`).
const IGNORED: [&str; 2] = ["_internal", marker::DATABASE];

/// Shards with a WAL whose cache this influxd process has not snapshotted yet, by its
/// statistics (`/debug/vars`).
pub(crate) fn unsnapshotted(vars: &Map<String, Value>) -> usize {
    let snapshots = |id: &Value| {
        vars.values()
            .find(|v| v["name"] == "tsm1_cache" && &v["tags"]["id"] == id)
            .and_then(|c| c["values"]["snapshotCount"].as_u64())
            .unwrap_or(0)
    };
    vars.values()
        .filter(|v| v["name"] == "tsm1_wal")
        .filter(|v| !IGNORED.iter().any(|db| v["tags"]["database"] == *db))
        .filter(|v| {
            let bytes = |f: &str| v["values"][f].as_u64().unwrap_or(0);
            bytes("currentSegmentDiskBytes") + bytes("oldSegmentsDiskBytes") > 0
        })
        .filter(|wal| snapshots(&wal["tags"]["id"]) == 0)
        .count()
}

impl<L: CommittedLog> Applier<L> {
    /// influxd may have torn a write: from the next entry on, replay after each of its
    /// restarts until a later process has snapshotted everything.
    pub(super) async fn note_torn_write(&mut self, why: &Interrupt) {
        // A process that answers is the one that failed or a later one (recorded as the one
        // that tore it, the floor only stays longer); one that does not was last seen.
        let process = match self.influxd.started().await {
            Ok(Some(started)) => Some(started),
            _ => self.influxd_process.clone(),
        };
        let from = match &self.floor {
            Some(f) => f.from,
            None => {
                tracing::warn!(
                    from = self.pos + 1,
                    %why,
                    "influxd may have torn a write in its WAL; the log will be replayed from here after each restart of influxd until it has snapshotted its shards"
                );
                self.pos + 1
            }
        };
        self.set_floor(Some(ReplayFloor { from, process }));
    }

    /// Whether influxd restarted since the applier last looked (at a start of the gateway,
    /// as far as it knows, yes).
    pub(super) async fn influxd_restarted(&mut self) -> bool {
        let started = self.influxd.started().await.ok().flatten();
        let restarted = started.is_none() || started != self.influxd_process;
        self.influxd_process = started;
        restarted
    }

    /// Keeps the process the applier last saw current while idle, so that a write torn later
    /// is put on the right one; a restart while a floor is set means a replay.
    pub(super) async fn watch_process(&mut self) -> Result<(), Interrupt> {
        let started = self.influxd.started().await?;
        if started.is_some() && started != self.influxd_process {
            if self.floor.is_some() {
                return Err(Interrupt::Restarted);
            }
            self.influxd_process = started;
        }
        Ok(())
    }

    /// Where a resume must start, given influxd's marker: no later than the floor when
    /// influxd restarted since a torn write.
    pub(super) fn replay_start(&self, start: Marker, restarted: bool) -> Marker {
        match &self.floor {
            Some(f) if restarted && start.index >= f.from => {
                let index = f.from - 1;
                tracing::warn!(
                    marker = start.index,
                    from = f.from,
                    "influxd restarted since it may have torn a write in its WAL; replaying the log from the replay floor"
                );
                Marker {
                    index,
                    term: self.log.term(index).unwrap_or(0),
                }
            }
            _ => start,
        }
    }

    /// The index the idempotency table may forget records up to: a replay from the floor
    /// needs them.
    pub(super) fn keys_forget_through(&self, marker: u64) -> u64 {
        self.floor
            .as_ref()
            .map_or(marker, |f| marker.min(f.from - 1))
    }

    /// While a floor is set, now and then: influxd restarted under the applier (replay), or
    /// a later process has snapshotted every shard (the floor goes).
    pub(super) async fn check_floor(&mut self) -> Result<(), Interrupt> {
        let Some(floor) = self.floor.clone() else {
            return Ok(());
        };
        if self.floor_checked_at.elapsed() < CHECK_EVERY {
            return Ok(());
        }
        self.floor_checked_at = Instant::now();
        if !self.floor_saved {
            self.set_floor(Some(floor.clone()));
        }
        let Ok(Some(started)) = self.influxd.started().await else {
            return Ok(());
        };
        if Some(&started) != self.influxd_process.as_ref() {
            return Err(Interrupt::Restarted);
        }
        let Ok(vars) = self.influxd.debug_vars().await else {
            return Ok(());
        };
        let later_process = floor.process.as_ref().is_some_and(|p| *p != started);
        if later_process && unsnapshotted(&vars) == 0 {
            tracing::info!(
                from = floor.from,
                "influxd has snapshotted every shard since it restarted: the replay floor is cleared"
            );
            self.set_floor(None);
        }
        Ok(())
    }

    pub(super) fn set_floor(&mut self, floor: Option<ReplayFloor>) {
        self.floor_saved = match self.log.save_replay_floor(floor.as_ref()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot store the replay floor with the log; retrying");
                false
            }
        };
        let from = floor.as_ref().map(|f| f.from);
        self.floor = floor;
        self.status.send_modify(|s| s.replay_floor = from);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shard(id: u64, db: &str, wal_bytes: u64, snapshots: u64) -> [(String, Value); 2] {
        [
            (
                format!("tsm1_wal:/d/{db}/autogen/{id}:{id}"),
                json!({"name": "tsm1_wal", "tags": {"database": db, "id": id.to_string()},
                    "values": {"currentSegmentDiskBytes": wal_bytes, "oldSegmentsDiskBytes": 0}}),
            ),
            (
                format!("tsm1_cache:/d/{db}/autogen/{id}:{id}"),
                json!({"name": "tsm1_cache", "tags": {"database": db, "id": id.to_string()},
                    "values": {"snapshotCount": snapshots}}),
            ),
        ]
    }

    fn vars(shards: &[[(String, Value); 2]]) -> Map<String, Value> {
        shards.iter().flatten().cloned().collect()
    }

    #[test]
    fn a_shard_with_a_wal_and_no_snapshot_holds_the_floor() {
        let held = vars(&[
            shard(1, "db", 4096, 0),
            shard(2, "db", 0, 0),
            shard(3, "db", 100, 2),
            shard(4, "_internal", 100, 0),
            shard(5, "_gateway", 100, 0),
        ]);
        assert_eq!(unsnapshotted(&held), 1);
        let clear = vars(&[shard(1, "db", 4096, 1), shard(2, "db", 0, 0)]);
        assert_eq!(unsnapshotted(&clear), 0);
        assert_eq!(unsnapshotted(&Map::new()), 0);
    }
}
