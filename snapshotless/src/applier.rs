//! The applier: committed entries, strictly in index order, into the local influxd.
//!
//! Outcomes fall in three classes. 2xx: applied. 4xx: a deterministic rejection (parse error,
//! field type conflict, database not found...): every replica rejects the same points, the
//! outcome goes to the waiting client and the applier moves on. Anything else (5xx, refused
//! connection, timeout) means influxd is unavailable: wait for it, then resume from the marker
//! it holds, never skip an entry.
//!
//! A 4xx is only trusted once the marker shows influxd still holds everything it held before:
//! a "database not found" from an influxd that was just wiped is not a verdict on the write,
//! and handing it to a client would make an error answer for a write that the rebuild then
//! applies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use raft::prelude::{Entry, EntryType};
use tokio::sync::watch;

use crate::entry::{Command, Kind, Origin, Query, Write};
use crate::influxd::{Influxd, Response};
use crate::log::CommittedLog;
use crate::marker::{self, Marker, MarkerError, Written};
use crate::status::{ApplierStatus, Rebuild};

/// The answer influxd gave for one entry, handed to the client that proposed it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub body: Bytes,
    pub content_type: Option<String>,
}

impl Outcome {
    fn from_response(r: &Response) -> Outcome {
        Outcome {
            status: r.status.as_u16(),
            body: r.body.clone(),
            content_type: r
                .content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    pub fn error_text(&self) -> String {
        crate::influxd::error_text(&self.body)
    }

    fn refused(message: &str) -> Outcome {
        Outcome {
            status: 403,
            body: Bytes::from(serde_json::json!({ "error": message }).to_string()),
            content_type: Some("application/json".into()),
        }
    }

    fn no_content() -> Outcome {
        Outcome {
            status: 204,
            body: Bytes::new(),
            content_type: None,
        }
    }
}

/// Receives the outcome of every entry this node proposed (the entry's context names it).
pub trait OutcomeSink: Send + Sync + 'static {
    fn applied(&self, origin: Origin, index: u64, outcome: Outcome);
}

#[derive(Debug, Clone)]
pub struct ApplierConfig {
    pub node_id: u64,
    /// The admin account the applier uses on an influxd with authentication enabled; it is
    /// created on an influxd that has no users yet (fresh or wiped), so a rebuild needs no
    /// operator.
    pub admin: Option<(String, String)>,
    /// Upper bound of one coalesced influxd write while catching up.
    pub batch_bytes: usize,
    /// Write the marker at least this often while entries are being applied...
    pub marker_interval: Duration,
    /// ...or after this many entries, whichever comes first.
    pub marker_entries: u64,
    /// How long the log must be quiet before a caught-up applier writes its marker.
    pub idle_marker_delay: Duration,
    /// How often an idle applier pings influxd: a write arriving at a node whose influxd died
    /// while the log was quiet should get a prompt 503, not wait for an apply that cannot
    /// happen.
    pub check_interval: Duration,
    /// How often, while idle, it also checks that influxd still holds its marker.
    pub marker_check_interval: Duration,
}

impl Default for ApplierConfig {
    fn default() -> Self {
        ApplierConfig {
            node_id: 0,
            admin: None,
            batch_bytes: 8 << 20,
            marker_interval: Duration::from_secs(1),
            marker_entries: 10_000,
            idle_marker_delay: Duration::from_millis(200),
            check_interval: Duration::from_millis(250),
            marker_check_interval: Duration::from_secs(2),
        }
    }
}

/// Why applying stopped and must start again from influxd's marker.
#[derive(Debug)]
enum Interrupt {
    /// influxd did not answer or answered 5xx.
    Unavailable(String),
    /// influxd no longer holds what the marker said it held.
    LostData(String),
}

pub struct Applier<L: CommittedLog> {
    config: ApplierConfig,
    log: L,
    influxd: Influxd,
    committed: watch::Receiver<u64>,
    sink: Arc<dyn OutcomeSink>,
    status: watch::Sender<ApplierStatus>,
    /// Next index to apply is `pos + 1`.
    pos: u64,
    /// The marker influxd should hold right now.
    marker: Marker,
    marker_written_at: Instant,
    progress_logged_at: Instant,
}

/// How often a rebuild logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl<L: CommittedLog> Applier<L> {
    pub fn new(
        config: ApplierConfig,
        log: L,
        influxd: Influxd,
        committed: watch::Receiver<u64>,
        sink: Arc<dyn OutcomeSink>,
    ) -> (Self, watch::Receiver<ApplierStatus>) {
        let (status, status_rx) = watch::channel(ApplierStatus::default());
        let applier = Applier {
            config,
            log,
            influxd,
            committed,
            sink,
            status,
            pos: 0,
            marker: Marker { index: 0, term: 0 },
            marker_written_at: Instant::now(),
            progress_logged_at: Instant::now(),
        };
        (applier, status_rx)
    }

    /// Runs until the process ends: resume from the marker, apply, and on any interruption
    /// wait for influxd and resume from its marker again.
    pub async fn run(mut self) {
        let mut first = true;
        loop {
            self.resume(first).await;
            first = false;
            let interrupt = self.apply_loop().await;
            self.status.send_modify(|s| s.resumes += 1);
            match interrupt {
                Interrupt::Unavailable(why) => {
                    tracing::warn!(%why, applied = self.pos, "influxd unavailable; will resume from its marker");
                    self.set_down(why);
                }
                Interrupt::LostData(why) => {
                    tracing::warn!(%why, applied = self.pos, "influxd lost data; replaying the log from its marker");
                    // Never a hot loop, whatever influxd keeps answering.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn set_down(&self, why: String) {
        self.status.send_modify(|s| {
            s.influxd_up = false;
            s.influxd_error = Some(why);
        });
    }

    fn set_up(&self, version: Option<String>) {
        self.status.send_modify(|s| {
            s.influxd_up = true;
            s.influxd_error = None;
            if version.is_some() {
                s.influxd_version = version;
            }
        });
    }

    /// Waits for influxd, reads its marker and positions the applier after it.
    async fn resume(&mut self, first: bool) {
        let mut backoff = Backoff::new();
        let marker = loop {
            match self.influxd.ping().await {
                Err(e) => {
                    self.set_down(e.to_string());
                    backoff.wait().await;
                    continue;
                }
                Ok(version) => self.set_up(Some(version)),
            }
            match marker::read(&self.influxd).await {
                Ok(m) => break m,
                Err(MarkerError::Unexpected { body, .. })
                    if body.contains("create admin user first") && self.config.admin.is_some() =>
                {
                    let (user, password) = self.config.admin.clone().expect("checked");
                    tracing::warn!(%user, "influxd has no users (fresh or wiped): creating the gateway's admin user");
                    if let Err(e) = marker::create_admin(&self.influxd, &user, &password).await {
                        tracing::warn!(error = %e, "cannot create the admin user");
                        backoff.wait().await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the applied marker from influxd");
                    if let MarkerError::Unavailable(u) = &e {
                        self.set_down(u.to_string());
                    }
                    backoff.wait().await;
                }
            }
        };

        // What this node knows it had applied to influxd: the persisted hint, or the marker
        // it wrote itself before this interruption.
        let written_before = self.log.load_applied().max(self.marker.index);
        let start = match marker {
            None => {
                // A marker at 0 right away: from now on a missing marker always means influxd
                // lost data, even before the first real marker is written.
                let zero = Marker { index: 0, term: 0 };
                loop {
                    let created = match marker::create_database(&self.influxd).await {
                        Ok(()) => marker::write(&self.influxd, zero).await,
                        Err(e) => Err(e),
                    };
                    match created {
                        Ok(marker::Written::Ok) => break,
                        Ok(marker::Written::DatabaseMissing) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot create the marker"),
                    }
                    backoff.wait().await;
                }
                zero
            }
            Some(m) => self.check_marker_term(m).await,
        };
        if start.index < written_before {
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
                Marker { index: 0, term: 0 }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the log at the marker; replaying from index 1");
                Marker { index: 0, term: 0 }
            }
        }
    }

    async fn apply_loop(&mut self) -> Interrupt {
        let mut last_check = Instant::now();
        let mut last_marker_check = Instant::now();
        loop {
            let committed = *self.committed.borrow_and_update();
            self.status.send_modify(|s| s.committed = committed);
            if self.pos >= committed {
                let check_in = self
                    .config
                    .check_interval
                    .saturating_sub(last_check.elapsed());
                // Caught up with a marker behind: write it once the log has been quiet for a
                // moment, not after every entry, which would double influxd's requests under
                // a steady trickle of writes.
                let marker_behind = self.pos > self.marker.index;
                tokio::select! {
                    changed = self.committed.changed() => {
                        if changed.is_err() {
                            // The raft loop is gone: the process is shutting down.
                            std::future::pending::<()>().await;
                        }
                    }
                    _ = tokio::time::sleep(self.config.idle_marker_delay), if marker_behind => {
                        if let Err(i) = self.write_marker().await {
                            return i;
                        }
                    }
                    _ = tokio::time::sleep(check_in) => {
                        last_check = Instant::now();
                        let with_marker = last_marker_check.elapsed() >= self.config.marker_check_interval;
                        if with_marker {
                            last_marker_check = Instant::now();
                        }
                        if let Err(i) = self.check_influxd(with_marker).await {
                            return i;
                        }
                    }
                }
                continue;
            }

            let entries = match self.log.read(
                self.pos + 1,
                committed + 1,
                self.config.batch_bytes as u64,
            ) {
                Ok(e) => e,
                Err(e) => {
                    // The log is on this node's own disk; if it cannot be read nothing can be
                    // applied, and skipping is never an option.
                    tracing::error!(error = %e, from = self.pos + 1, "cannot read committed entries");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(i) = self.apply_entries(entries).await {
                return i;
            }
            if let Err(i) = self.marker_if_due().await {
                return i;
            }
        }
    }

    async fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), Interrupt> {
        let mut items = entries.into_iter().map(Item::decode).peekable();
        while let Some(Item { at, op }) = items.next() {
            match op {
                Op::Skip => self.advance(&at, 0),
                Op::Query(q) => self.apply_query(&at, &q).await?,
                Op::Write(w) => {
                    // Gather the following writes to the same db/rp into one influxd request.
                    let mut bytes = w.lines.len();
                    let mut group = vec![(at, w)];
                    while let Some(Item {
                        op: Op::Write(next),
                        ..
                    }) = items.peek()
                    {
                        let first = &group[0].1;
                        if next.db != first.db
                            || next.rp != first.rp
                            || bytes + next.lines.len() > self.config.batch_bytes
                        {
                            break;
                        }
                        bytes += next.lines.len();
                        if let Some(Item {
                            at,
                            op: Op::Write(next),
                        }) = items.next()
                        {
                            group.push((at, next));
                        }
                    }
                    self.apply_writes(&group).await?;
                }
            }
        }
        Ok(())
    }

    async fn apply_writes(&mut self, group: &[(At, Write)]) -> Result<(), Interrupt> {
        if group.len() > 1 {
            let total: usize = group.iter().map(|(_, w)| w.lines.len() + 1).sum();
            let mut body = BytesMut::with_capacity(total);
            for (_, w) in group {
                body.extend_from_slice(&w.lines);
                if !w.lines.ends_with(b"\n") {
                    body.extend_from_slice(b"\n");
                }
            }
            let (db, rp) = (&group[0].1.db, &group[0].1.rp);
            let r = self.send_write(db, rp, body.freeze()).await?;
            if r.status.is_success() {
                for (e, _) in group {
                    self.report(e, Outcome::no_content());
                    self.advance(e, 0);
                }
                return Ok(());
            }
            // A rejection of the coalesced request cannot be attributed to one entry: apply
            // them one by one for exact per-entry outcomes. Rewriting points the combined
            // request already stored is harmless (same points, same timestamps).
        }
        for (e, w) in group {
            let r = self.send_write(&w.db, &w.rp, w.lines.clone()).await?;
            if r.status.is_success() {
                self.report(e, Outcome::no_content());
                self.advance(e, 0);
            } else {
                self.verify_marker().await?;
                tracing::debug!(index = e.index, status = %r.status, error = %r.error_text(), "influxd rejected a write");
                self.report(e, Outcome::from_response(&r));
                self.advance(e, 1);
            }
        }
        Ok(())
    }

    /// Sends a write; a 4xx comes back as a response, anything else interrupts.
    async fn send_write(&self, db: &str, rp: &str, lines: Bytes) -> Result<Response, Interrupt> {
        self.status.send_modify(|s| s.requests += 1);
        let r = self
            .influxd
            .write(db, rp, lines)
            .await
            .map_err(|e| Interrupt::Unavailable(e.to_string()))?;
        classify(r)
    }

    async fn apply_query(&mut self, e: &At, q: &Query) -> Result<(), Interrupt> {
        if marker::is_reserved(&q.q, &q.db) {
            // The gateway refuses these before they reach the log; should one get there
            // anyway, dropping the marker database would make every replica rebuild from
            // index 1 and meet the same statement again, forever. Refuse it, identically
            // everywhere.
            self.advance(e, 1);
            self.report(
                e,
                Outcome::refused(&format!(
                "statements on database {:?} are refused: it holds the gateway's own bookkeeping",
                marker::DATABASE
            )),
            );
            return Ok(());
        }
        self.status.send_modify(|s| s.requests += 1);
        let r = self
            .influxd
            .query(&q.q, &q.db, &q.rp, &q.params)
            .await
            .map_err(|e| Interrupt::Unavailable(e.to_string()))?;
        let r = classify(r)?;
        // The marker goes right after every state change, before its outcome is handed out:
        // a replay then never starts before a schema change that later entries depend on,
        // and writing it proves influxd was not wiped under the statement.
        self.advance(e, u64::from(!r.status.is_success()));
        self.write_marker().await?;
        self.report(e, Outcome::from_response(&r));
        Ok(())
    }

    fn report(&self, e: &At, outcome: Outcome) {
        if let Some(origin) = Origin::from_context(&e.context) {
            if origin.node == self.config.node_id {
                self.sink.applied(origin, e.index, outcome);
            }
        }
    }

    fn advance(&mut self, e: &At, rejected: u64) {
        self.pos = e.index;
        let pos = self.pos;
        let report = self.progress_logged_at.elapsed() >= PROGRESS_EVERY;
        self.status.send_modify(|s| {
            s.applied = pos;
            s.entries_applied += 1;
            s.rejected += rejected;
            match s.rebuilding {
                Some(r) if pos >= r.target => {
                    tracing::info!(applied = pos, "rebuild complete");
                    s.rebuilding = None;
                }
                Some(r) if report => tracing::info!(
                    applied = pos,
                    target = r.target,
                    percent = ((pos - r.from) * 100 / (r.target - r.from).max(1)),
                    "rebuilding influxd from the log"
                ),
                _ => {}
            }
        });
        if report {
            self.progress_logged_at = Instant::now();
        }
    }

    async fn marker_if_due(&mut self) -> Result<(), Interrupt> {
        if self.pos <= self.marker.index {
            return Ok(());
        }
        let due = self.pos - self.marker.index >= self.config.marker_entries
            || self.marker_written_at.elapsed() >= self.config.marker_interval;
        if due {
            self.write_marker().await?;
        }
        Ok(())
    }

    async fn write_marker(&mut self) -> Result<(), Interrupt> {
        let term = self.log.term(self.pos).map_err(|e| {
            Interrupt::Unavailable(format!("reading the log term at {}: {e}", self.pos))
        })?;
        let m = Marker {
            index: self.pos,
            term,
        };
        match marker::write(&self.influxd, m).await {
            Ok(Written::Ok) => {}
            Ok(Written::DatabaseMissing) => {
                return Err(Interrupt::LostData(
                    "the marker database disappeared".into(),
                ))
            }
            Err(MarkerError::Unavailable(u)) => return Err(Interrupt::Unavailable(u.to_string())),
            Err(e) => return Err(Interrupt::Unavailable(e.to_string())),
        }
        self.marker = m;
        self.marker_written_at = Instant::now();
        self.log.save_applied(m.index);
        self.status.send_modify(|s| s.marker = m.index);
        Ok(())
    }

    /// influxd still holds the marker we last wrote: it has not lost data under us.
    async fn verify_marker(&self) -> Result<(), Interrupt> {
        match marker::read(&self.influxd).await {
            Ok(Some(m)) if m.index >= self.marker.index => Ok(()),
            Ok(found) => Err(Interrupt::LostData(format!(
                "influxd's marker is {} but {} was written",
                found.map_or("missing".to_owned(), |m| m.index.to_string()),
                self.marker.index
            ))),
            Err(MarkerError::Unavailable(u)) => Err(Interrupt::Unavailable(u.to_string())),
            Err(e) => Err(Interrupt::Unavailable(e.to_string())),
        }
    }

    /// The idle check: influxd answers and still holds its marker.
    async fn check_influxd(&self, with_marker: bool) -> Result<(), Interrupt> {
        self.influxd
            .ping()
            .await
            .map_err(|e| Interrupt::Unavailable(e.to_string()))?;
        if with_marker {
            self.verify_marker().await?;
        }
        Ok(())
    }
}

/// 2xx and 4xx are answers about the request; 401/403 are about our credentials and 5xx
/// about influxd, so those interrupt and are retried.
fn classify(r: Response) -> Result<Response, Interrupt> {
    match r.status.as_u16() {
        200..=299 => Ok(r),
        401 | 403 => Err(Interrupt::Unavailable(format!(
            "influxd refused the gateway's credentials ({}): {}",
            r.status,
            r.error_text()
        ))),
        400..=499 => Ok(r),
        _ => Err(Interrupt::Unavailable(format!(
            "influxd answered {}: {}",
            r.status,
            r.error_text()
        ))),
    }
}

/// Where an entry sits and who proposed it: what advancing and reporting need.
struct At {
    index: u64,
    context: Vec<u8>,
}

enum Op {
    /// Leader no-ops and membership changes: nothing for influxd.
    Skip,
    Write(Write),
    Query(Query),
}

struct Item {
    at: At,
    op: Op,
}

impl Item {
    /// Takes the entry apart; the payload moves into `Bytes`, so the lines are never copied
    /// on their way to influxd.
    fn decode(e: Entry) -> Item {
        let op = if e.entry_type() != EntryType::EntryNormal || e.data.is_empty() {
            Op::Skip
        } else {
            match Command::decode_bytes(Bytes::from(e.data)) {
                Ok(Command {
                    kind: Some(Kind::Write(w)),
                }) => Op::Write(w),
                Ok(Command {
                    kind: Some(Kind::Query(q)),
                }) => Op::Query(q),
                Ok(Command { kind: None }) => {
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
            },
            op,
        }
    }
}

struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: Duration::from_millis(50),
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(2));
    }
}
