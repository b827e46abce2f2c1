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
//! floor goes once every shard of a later influxd process is settled (`wal_watch.rs`: its
//! WAL empty, or snapshotted after a write, which deletes the segments, gap and all) and the
//! replay is through. A seed, which replaces influxd's data, clears it too.
//!
//! The same floor serves points deleted while influxd's WAL may still hold them, which its
//! next start would bring back (`wal_watch.rs`): a replay from the `DELETE` deletes them again.
//! That part goes once no shard's WAL can bring anything back and the replay is through.

use std::time::{Duration, Instant};

use super::wal_watch::WalReading;
use super::Applier;
use crate::log::{CommittedLog, ReplayFloor};
use crate::marker::Marker;
use crate::outcome::Interrupt;

/// How often, while a floor is set, influxd's statistics are read to see whether it can go.
const CHECK_EVERY: Duration = Duration::from_secs(10);

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
        let (from, removals) = match &self.floor {
            Some(f) => (f.from, f.removals),
            None => {
                tracing::warn!(
                    from = self.pos + 1,
                    %why,
                    "influxd may have torn a write in its WAL; the log will be replayed from here after each restart of influxd until it has snapshotted its shards"
                );
                (self.pos + 1, false)
            }
        };
        self.set_floor(Some(ReplayFloor {
            from,
            process,
            torn: true,
            removals,
        }));
    }

    /// Entry `index` deleted points: if influxd's WAL may still hold some that its cache does
    /// not (or its statistics cannot be read), replay from here after its next restart.
    pub(super) async fn note_removal(&mut self, index: u64) {
        let may_resurrect = self.read_wal().await.map_or(1, |r| r.may_resurrect);
        if may_resurrect == 0 {
            return;
        }
        let floor = match self.floor.clone() {
            Some(f) if f.removals && f.from <= index => return,
            Some(f) => ReplayFloor {
                from: f.from.min(index),
                removals: true,
                ..f
            },
            None => ReplayFloor {
                from: index,
                process: self.influxd_process.clone(),
                torn: false,
                removals: true,
            },
        };
        tracing::warn!(
            index,
            shards = may_resurrect,
            "points deleted while influxd's WAL may still hold them (influxdata/influxdb#14229): the log will be replayed from this entry after influxd's next restart"
        );
        self.set_floor(Some(floor));
    }

    /// influxd's statistics, judged with what was seen of the same process before.
    async fn read_wal(&mut self) -> Option<WalReading> {
        let started = self.influxd.started().await.ok().flatten()?;
        let vars = self.influxd.debug_vars().await.ok()?;
        Some(self.wal_watch.observe(&started, &vars))
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
    /// what the floor is for is over (it goes).
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
        // A replay from the floor must be through before the floor goes: influxd's marker
        // is past it, so a resume would not apply those entries again.
        if self.status.borrow().rebuilding.is_some() {
            return Ok(());
        }
        let Some(wal) = self.read_wal().await else {
            return Ok(());
        };
        let later_process = floor.process.as_ref().is_some_and(|p| *p != started);
        let torn = floor.torn && !(later_process && wal.unsettled == 0);
        let removals = floor.removals && wal.may_resurrect > 0;
        if !torn && !removals {
            tracing::info!(
                from = floor.from,
                "influxd's WAL holds nothing from before the replay floor any more: the floor is cleared"
            );
            self.set_floor(None);
        } else if (torn, removals) != (floor.torn, floor.removals) {
            self.set_floor(Some(ReplayFloor {
                torn,
                removals,
                ..floor
            }));
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
