//! Where applying starts: right after the marker influxd holds. It waits for influxd, checks
//! that the marker was written from this log, and compares it with what this node knows it
//! applied before: a marker behind that means influxd lost data, and the node rebuilds it
//! from the log before it is ready again. This is what replaces snapshots.

use std::time::Instant;

use super::backoff::Backoff;
use super::Applier;
use crate::log::CommittedLog;
use crate::marker::{self, Marker, MarkerError, Written};
use crate::status::Rebuild;

impl<L: CommittedLog> Applier<L> {
    /// Waits for influxd, reads its marker and positions the applier after it.
    pub(super) async fn resume(&mut self, first: bool) {
        let mut backoff = Backoff::new();
        let found = self.read_marker(&mut backoff).await;
        let restarted = self.influxd_restarted().await;
        // What this node knows it had applied to influxd: the persisted hint, or the marker
        // it wrote itself before this interruption.
        let mut written_before = self.log.load_applied().max(self.marker.index);
        let start = match found {
            None => self.create_marker(&mut backoff).await,
            Some(m) => self.check_marker_term(m).await,
        };
        written_before = written_before.max(start.index);
        let start = self.replay_start(start, restarted);
        if start.index < written_before {
            self.start_rebuild(start, written_before);
        } else if self
            .status
            .borrow()
            .rebuilding
            .is_some_and(|r| r.target <= start.index)
        {
            // Reached already (a seed brought influxd past it): applying will not say so.
            self.status.send_modify(|s| s.rebuilding = None);
        } else if first {
            tracing::info!(
                marker = start.index,
                "resuming from influxd's applied marker"
            );
        }
        self.pos = start.index;
        self.marker = start;
        self.marker_written_at = Instant::now();
        self.status.send_modify(|s| {
            s.applied = start.index;
            s.marker = start.index;
            s.resumed_from = start.index;
        });
    }

    /// The marker influxd holds, `None` if it has none; waits as long as influxd does not
    /// answer. An influxd with authentication enabled and no users (fresh or wiped) gets the
    /// gateway's admin user first.
    async fn read_marker(&self, backoff: &mut Backoff) -> Option<Marker> {
        loop {
            match self.influxd.ping().await {
                Err(e) => {
                    self.set_down(e.to_string());
                    backoff.wait().await;
                    continue;
                }
                // After a failed entry influxd counts as down until one goes through: an
                // answer to a ping says nothing about its disk.
                Ok(version) if self.down_until_progress => {
                    self.status
                        .send_modify(|s| s.influxd_version = Some(version));
                }
                Ok(version) => self.set_up(Some(version)),
            }
            match (marker::read(&self.influxd).await, &self.config.admin) {
                (Ok(m), _) => return m,
                (Err(MarkerError::Unexpected { body, .. }), Some((user, password)))
                    if body.contains("create admin user first") =>
                {
                    tracing::warn!(%user, "influxd has no users (fresh or wiped): creating the gateway's admin user");
                    if let Err(e) = marker::create_admin(&self.influxd, user, password).await {
                        tracing::warn!(error = %e, "cannot create the admin user");
                        backoff.wait().await;
                    }
                }
                (Err(e), _) => {
                    tracing::warn!(error = %e, "cannot read the applied marker from influxd");
                    if let MarkerError::Unavailable(u) = &e {
                        self.set_down(u.to_string());
                    }
                    backoff.wait().await;
                }
            }
        }
    }

    /// Creates the marker database with a marker at 0 right away: from now on a missing
    /// marker always means influxd lost data, even before the first real marker is written.
    async fn create_marker(&self, backoff: &mut Backoff) -> Marker {
        loop {
            let created = match marker::create_database(&self.influxd).await {
                Ok(()) => marker::write(&self.influxd, Marker::ZERO).await,
                Err(e) => Err(e),
            };
            match created {
                Ok(Written::Ok) => return Marker::ZERO,
                Ok(Written::DatabaseMissing) => {}
                Err(e) => tracing::warn!(error = %e, "cannot create the marker"),
            }
            backoff.wait().await;
        }
    }

    /// A marker whose term differs from our log's entry at that index was written from another
    /// log (influxd reused across clusters): its index means nothing here, replay everything.
    async fn check_marker_term(&mut self, m: Marker) -> Marker {
        if m.index == 0 {
            return m;
        }
        // The log may not reach the marker yet (a node with a fresh log and an old influxd).
        while *self.committed.borrow() < m.index {
            if self.committed.changed().await.is_err() {
                return m;
            }
        }
        match self.log.term(m.index) {
            Ok(t) if t == m.term => m,
            Ok(t) => {
                tracing::error!(
                    index = m.index,
                    marker_term = m.term,
                    log_term = t,
                    "influxd's marker was written from a different log; replaying from index 1"
                );
                Marker::ZERO
            }
            // Below the log's start: nothing to compare with. If the entries after it were
            // trimmed too, applying finds out and influxd is seeded.
            Err(e) if e.is_trimmed() => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the log at the marker; replaying from index 1");
                Marker::ZERO
            }
        }
    }

    /// influxd holds less than this node applied to it: the node is not ready until it has
    /// replayed the log up to what is committed (or what it had applied, if more).
    fn start_rebuild(&self, start: Marker, written_before: u64) {
        let target = (*self.committed.borrow()).max(written_before);
        tracing::warn!(
            marker = start.index,
            applied_before = written_before,
            target,
            "influxd holds less than this node applied to it (wiped, restored or replaced); rebuilding from the log"
        );
        self.status.send_modify(|s| {
            s.rebuilding = Some(Rebuild {
                from: start.index,
                target,
            })
        });
    }
}
