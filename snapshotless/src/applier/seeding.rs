//! Seeding, as the applier sees it: influxd needs entries the log no longer holds (or
//! replaying would move far more than a copy), so the applier stops applying, has a
//! [`Seeder`] replace influxd with a copy of a peer's, and resumes from the marker the copy
//! came with. How the copy is found and moved is the seeder's business (the gateway's peer
//! network); what the node may do meanwhile is here: nothing that waits for influxd.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::backoff::Backoff;
use super::Applier;
use crate::log::CommittedLog;
use crate::seed::{BoxFuture, Restored, SeedError};
use crate::status::{ApplierStatus, Rebuild, SeedReason, Seeding};

/// After a seed chosen for speed failed, the applier replays for this long before it
/// considers seeding for speed again: it must not wipe influxd over and over.
const FASTER_PAUSE: Duration = Duration::from_secs(600);

/// Replaces this node's influxd with a copy of a peer's.
pub trait Seeder: Send + Sync + 'static {
    /// Whether replaying the log from `from + 1` through `to` would move so much more than a
    /// copy of a peer's influxd that seeding is the faster way.
    fn prefers_seed(&self, from: u64, to: u64) -> BoxFuture<'_, bool>;

    /// Wipes this node's influxd and restores into it a copy of a peer's that covers at least
    /// the log's first index minus one, marker last; reports how it goes on `report`.
    fn seed<'a>(&'a self, report: &'a SeedReport) -> BoxFuture<'a, Result<Restored, SeedError>>;
}

/// Where a seeder says how far it got: the applier's status, which /health shows.
pub struct SeedReport {
    status: watch::Sender<ApplierStatus>,
}

impl SeedReport {
    fn update(&self, f: impl FnOnce(&mut Seeding)) {
        self.status.send_modify(|s| {
            if let Some(seeding) = s.seeding.as_mut() {
                f(seeding)
            }
        });
    }

    /// The log index the copy must cover.
    pub fn need(&self, need: u64) {
        self.update(|s| s.need = need);
    }

    /// `source` agreed to send a copy of `total` bytes.
    pub fn copying(&self, source: &str, total: u64) {
        self.update(|s| {
            s.phase = "copying";
            s.source = Some(source.to_owned());
            s.bytes_done = 0;
            s.bytes_total = total;
        });
    }

    pub fn received(&self, done: u64) {
        self.update(|s| s.bytes_done = done);
    }

    pub fn restoring(&self) {
        self.update(|s| s.phase = "restoring");
    }
}

impl<L: CommittedLog> Applier<L> {
    /// Has the seeder replace influxd. A seed the log made necessary is retried until it
    /// succeeds; one chosen for speed is given up after a failure, and the log replayed.
    pub(super) async fn seed(&mut self, reason: SeedReason) {
        let Some(seeder) = self.seeder.clone() else {
            tracing::error!(
                "influxd needs entries the log no longer holds, and this node cannot be seeded"
            );
            self.status
                .send_modify(|s| s.seeding = Some(seeding(reason, "no seeder: cannot be seeded")));
            std::future::pending::<()>().await;
            return;
        };
        let report = SeedReport {
            status: self.status.clone(),
        };
        let mut backoff = Backoff::new();
        loop {
            tracing::warn!(?reason, "seeding influxd from a copy of a peer's");
            self.status.send_modify(|s| {
                s.seeds_started += 1;
                s.seeding = Some(seeding(reason, "finding a source"));
            });
            match seeder.seed(&report).await {
                Ok(restored) => {
                    let took = self.seed_elapsed();
                    tracing::info!(
                        marker = restored.marker.index,
                        databases = restored.databases.len(),
                        locked_users = ?restored.locked_users,
                        took = ?took,
                        "influxd seeded; replaying the log from the copy's marker"
                    );
                    // The copy replaced influxd's data, torn WAL included.
                    self.set_floor(None);
                    // Not ready until it replayed what was committed meanwhile.
                    let (from, target) = (restored.marker.index, *self.committed.borrow());
                    self.status.send_modify(|s| {
                        s.seeds_completed += 1;
                        s.seeding = None;
                        s.rebuilding = (from < target).then_some(Rebuild { from, target });
                    });
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?reason, "seeding failed");
                    self.status.send_modify(|s| {
                        s.seeds_failed += 1;
                        s.last_seed_error = Some(e.to_string());
                    });
                    if reason == SeedReason::Faster {
                        self.faster_paused_until = Some(Instant::now() + FASTER_PAUSE);
                        self.status.send_modify(|s| s.seeding = None);
                        return;
                    }
                    report.update(|s| s.phase = "waiting to try again");
                    backoff.wait().await;
                    // A seed moves gigabytes: a few seconds between attempts cost nothing.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Whether to seed rather than replay the backlog the applier just resumed with.
    pub(super) async fn seed_is_faster(&self) -> bool {
        let committed = *self.committed.borrow();
        let Some(seeder) = self.seeder.as_ref() else {
            return false;
        };
        if self.pos >= committed || self.faster_paused_until.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        seeder.prefers_seed(self.pos, committed).await
    }

    fn seed_elapsed(&self) -> Option<Duration> {
        self.status
            .borrow()
            .seeding
            .as_ref()
            .and_then(|s| s.started)
            .map(|t| t.elapsed())
    }
}

fn seeding(reason: SeedReason, phase: &'static str) -> Seeding {
    Seeding {
        reason,
        need: 0,
        phase,
        source: None,
        bytes_done: 0,
        bytes_total: 0,
        started: Some(Instant::now()),
    }
}

/// The seeder type the applier holds.
pub(super) type SharedSeeder = Arc<dyn Seeder>;
