//! The applier: committed entries, strictly in index order, into the local influxd. This
//! file is the loop and its state; where it starts is `applier/resume.rs`, and what
//! influxd's answers mean is [`crate::outcome`].
//!
//! A keyed write is first judged by the idempotency table (`crate::idempotency`): a retry of
//! a write applied before gets that write's outcome and applies nothing. The table follows
//! the applier: written before each marker, put back at the marker wherever it resumes.
//!
//! A 4xx is only trusted once the marker shows influxd still holds everything it held before:
//! a "database not found" from an influxd that was just wiped is not a verdict on the write,
//! and handing it to a client would make an error answer for a write that the rebuild then
//! applies.

mod backoff;
mod coalesce;
mod decode;
mod lanes;
mod read_ahead;
mod resume;
mod seeding;
mod torn_wal;
mod wal_watch;

pub use seeding::{SeedReport, Seeder};

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use self::backoff::Backoff;
use self::decode::{At, Item, Op};
use self::lanes::{KnownSeries, Plan};
use self::read_ahead::ReadAhead;
use crate::entry::{Origin, Query, Write};
use crate::idempotency::{KeyTable, Verdict};
use crate::influxd::{Chunks, Influxd, Response};
use crate::log::{CommittedLog, ReplayFloor};
use crate::marker::{self, Marker, Written};
use crate::outcome::{classify, AppliedQueries, Interrupt, Outcome, OutcomeSink};
use crate::status::{ApplierStatus, SeedReason};

#[derive(Debug, Clone)]
pub struct ApplierConfig {
    pub node_id: u64,
    /// The admin account the applier uses on an influxd with authentication enabled; it is
    /// created on an influxd that has no users yet (fresh or wiped), so a rebuild needs no
    /// operator.
    pub admin: Option<(String, String)>,
    /// Upper bound of one coalesced influxd write while catching up.
    pub batch_bytes: usize,
    /// How many requests a group of writes of at least `lane_bytes` may be split into, sent to
    /// influxd at once (`applier/lanes.rs`); 1 sends every group whole.
    pub lanes: usize,
    pub lane_bytes: usize,
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
            lanes: 2,
            // Three quarters of the bound: large groups, such as a node catching up gathers.
            lane_bytes: 6 << 20,
            marker_interval: Duration::from_secs(1),
            marker_entries: 10_000,
            idle_marker_delay: Duration::from_millis(200),
            check_interval: Duration::from_millis(250),
            marker_check_interval: Duration::from_secs(2),
        }
    }
}

pub struct Applier<L: CommittedLog> {
    config: ApplierConfig,
    log: Arc<L>,
    /// What comes after the applier's position, read and decoded.
    ahead: Option<ReadAhead<L>>,
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
    /// When an idle applier last pinged influxd, and last checked its marker.
    pinged_at: Instant,
    marker_checked_at: Instant,
    seeder: Option<seeding::SharedSeeder>,
    queries: Option<Arc<dyn AppliedQueries>>,
    /// A seed chosen for speed failed: until then, replay.
    faster_paused_until: Option<Instant>,
    keys: Arc<KeyTable>,
    /// Series influxd is known to hold: what lets a group go in lanes.
    known_series: KnownSeries,
    /// influxd answers but failed the last entry (a 5xx, its disk full): it counts as down,
    /// with that reason, until an entry or a marker goes through again, rather than as up
    /// each time it answers a ping between two failed attempts.
    down_until_progress: bool,
    /// Set while influxd may hold a torn write in its WAL (`applier/torn_wal.rs`); whether
    /// it is stored with the log; when it was last checked.
    floor: Option<ReplayFloor>,
    floor_saved: bool,
    floor_checked_at: Instant,
    /// When the influxd process the applier last looked at started (`SHOW DIAGNOSTICS`).
    influxd_process: Option<String>,
    /// What was seen of that process's WAL (`applier/wal_watch.rs`).
    wal_watch: wal_watch::WalWatch,
    /// The last interruption came from a request that writes nothing (an idle check).
    interrupted_reading: bool,
}

/// Committed entries after the group being applied.
#[derive(Clone, Copy)]
struct Backlog {
    entries: u64,
}

impl Backlog {
    /// At least another group as large waits: the node is catching up. Lanes are for that, not
    /// for a node keeping up with a busy cluster, where writers wait for their own writes and
    /// few entries wait beyond a group: there, on a machine with no core to spare, two
    /// requests cost influxd more than one and the gateway a scan of every line.
    fn catching_up(self, group_entries: usize) -> bool {
        self.entries >= group_entries as u64
    }
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
        let floor = log.load_replay_floor();
        let (status, status_rx) = watch::channel(ApplierStatus {
            replay_floor: floor.as_ref().map(|f| f.from),
            ..ApplierStatus::default()
        });
        let now = Instant::now();
        let applier = Applier {
            config,
            log: Arc::new(log),
            ahead: None,
            influxd,
            committed,
            sink,
            status,
            pos: 0,
            marker: Marker::ZERO,
            marker_written_at: now,
            progress_logged_at: now,
            pinged_at: now,
            marker_checked_at: now,
            seeder: None,
            queries: None,
            faster_paused_until: None,
            keys: Arc::new(KeyTable::in_memory()),
            known_series: KnownSeries::default(),
            down_until_progress: false,
            floor,
            floor_saved: true,
            floor_checked_at: now,
            influxd_process: None,
            wal_watch: wal_watch::WalWatch::default(),
            interrupted_reading: false,
        };
        (applier, status_rx)
    }

    /// Tells `queries` of every state-changing query applied, with influxd's answer.
    pub fn with_applied_queries(mut self, queries: Arc<dyn AppliedQueries>) -> Self {
        self.queries = Some(queries);
        self
    }

    /// Keeps idempotency keys in `keys` (by default a table in memory, lost at a restart).
    pub fn with_keys(mut self, keys: Arc<KeyTable>) -> Self {
        self.keys = keys;
        self
    }

    /// Lets the applier seed influxd from a peer's when the log no longer holds what it
    /// needs, or a copy is much faster than a replay. Without one, such a node waits.
    pub fn with_seeder(mut self, seeder: Arc<dyn Seeder>) -> Self {
        self.seeder = Some(seeder);
        self
    }

    /// Runs until the process ends: resume from the marker, apply, and on any interruption
    /// wait for influxd and resume from its marker again.
    pub async fn run(mut self) {
        let mut first = true;
        // Attempts that failed on the same entry wait longer and longer (up to 2 s), and are
        // logged once: influxd may fail the same write for as long as its disk is full.
        let mut retry = Backoff::new();
        let mut stuck: Option<(u64, std::mem::Discriminant<Interrupt>)> = None;
        loop {
            self.resume(first).await;
            first = false;
            // Whatever influxd held before may be gone: it restarted, was wiped or seeded.
            self.known_series.forget();
            if let Err(e) = self.keys.rewind(self.pos) {
                tracing::warn!(error = %e, "influxd's marker is where this node no longer knows the idempotency keys; seeding");
                self.seed(SeedReason::KeysUnknown).await;
                continue;
            }
            if self.seed_is_faster().await {
                self.seed(SeedReason::Faster).await;
                continue;
            }
            let why = self.apply_loop().await;
            self.status.send_modify(|s| s.resumes += 1);
            let reading = std::mem::take(&mut self.interrupted_reading);
            if why.may_tear_wal() && !reading {
                self.note_torn_write(&why).await;
            }
            if let Interrupt::Trimmed { next } = why {
                tracing::warn!(next, "the log no longer holds the next entry to apply");
                self.seed(SeedReason::Trimmed).await;
            } else if why.lost_data() {
                tracing::warn!(%why, applied = self.pos, "influxd lost data; replaying the log from its marker");
                // Never a hot loop, whatever influxd keeps answering.
                tokio::time::sleep(Duration::from_millis(100)).await;
            } else {
                let again = (self.pos, std::mem::discriminant(&why));
                if stuck == Some(again) {
                    tracing::debug!(%why, applied = self.pos, "influxd still fails the next entry");
                    retry.wait().await;
                } else {
                    tracing::warn!(%why, applied = self.pos, "influxd unavailable; will resume from its marker");
                    retry = Backoff::new();
                }
                stuck = Some(again);
                // It answered, but not with a verdict: down until it applies something.
                self.down_until_progress = !matches!(why, Interrupt::NoAnswer(_));
                self.set_down(why.to_string());
            }
        }
    }

    fn set_down(&self, why: String) {
        self.status.send_modify(|s| {
            s.influxd_up = false;
            s.influxd_error = Some(why);
        });
    }

    /// Something went through to influxd: it is up, whatever failed before.
    fn made_progress(&mut self) {
        if self.down_until_progress {
            self.down_until_progress = false;
            self.set_up(None);
        }
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

    /// Applies what is committed, waits when there is nothing, until something interrupts.
    async fn apply_loop(&mut self) -> Interrupt {
        // Whatever was read ahead before an interruption is for a position that may be gone.
        self.ahead = None;
        self.pinged_at = Instant::now();
        self.marker_checked_at = Instant::now();
        loop {
            let committed = *self.committed.borrow_and_update();
            self.status.send_modify(|s| s.committed = committed);
            let step = if self.pos >= committed {
                self.idle().await
            } else {
                self.apply_committed(committed).await
            };
            if let Err(why) = step {
                return why;
            }
        }
    }

    /// Caught up: waits for the next commit, and meanwhile keeps an eye on influxd.
    async fn idle(&mut self) -> Result<(), Interrupt> {
        let check_in = self
            .config
            .check_interval
            .saturating_sub(self.pinged_at.elapsed());
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
                self.write_marker().await?;
            }
            _ = tokio::time::sleep(check_in) => {
                self.pinged_at = Instant::now();
                let with_marker =
                    self.marker_checked_at.elapsed() >= self.config.marker_check_interval;
                if with_marker {
                    self.marker_checked_at = Instant::now();
                }
                // Reads only: influxd dying under one of them tore nothing of ours.
                let read = async {
                    self.check_influxd(with_marker).await?;
                    if with_marker {
                        self.watch_process().await?;
                    }
                    Ok(())
                };
                if let Err(why) = read.await {
                    self.interrupted_reading = true;
                    return Err(why);
                }
                // Nothing left to apply and influxd answers: nothing is failing now.
                self.made_progress();
                self.check_floor().await?;
            }
        }
        Ok(())
    }

    /// Applies what is committed up to `committed`, a group of writes at a time, reading and
    /// decoding the next group while influxd takes the current one.
    async fn apply_committed(&mut self, mut committed: u64) -> Result<(), Interrupt> {
        let budget = self.config.batch_bytes;
        let max_read = budget as u64;
        let mut ahead = match self.ahead.take() {
            Some(ahead) if ahead.first() == self.pos + 1 => ahead,
            _ => ReadAhead::new(self.log.clone(), self.pos + 1),
        };
        ahead.fill(committed, budget, max_read);
        if let Some(e) = ahead.take_failure() {
            if e.is_trimmed() {
                return Err(Interrupt::Trimmed { next: self.pos + 1 });
            }
            // The log is on this node's own disk; if it cannot be read nothing can be
            // applied, and skipping is never an option.
            tracing::error!(error = %e, from = self.pos + 1, "cannot read committed entries");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(());
        }
        while let Some(Item { at, op }) = ahead.ready.pop_front() {
            match op {
                Op::Skip => self.advance(&at, 0),
                Op::Query(q) => self.apply_query(&at, &q).await?,
                Op::Write(_) if self.answered_by_keys(&at) => {}
                Op::Write(w) => {
                    let group = self.gather((at, w), &mut ahead.ready);
                    // A backlog can take minutes to apply, and commits go on meanwhile: read
                    // ahead into them too, and keep the status current.
                    committed = committed.max(*self.committed.borrow());
                    self.status.send_modify(|s| s.committed = committed);
                    let behind = Backlog {
                        entries: committed.saturating_sub(group[group.len() - 1].0.index),
                    };
                    if ahead.can_fill(committed) {
                        let next = ahead.fill_blocking(committed, budget, max_read);
                        let (sent, filled) = tokio::join!(self.apply_writes(&group, behind), next);
                        ahead = filled;
                        sent?;
                    } else {
                        self.apply_writes(&group, behind).await?;
                    }
                    self.marker_if_due().await?;
                }
            }
        }
        self.ahead = Some(ahead);
        self.marker_if_due().await
    }

    /// `first` and the writes after it that can go to influxd in the same request: the same
    /// database and retention policy, and not a keyed write the table may judge a retry, of
    /// this group or before.
    fn gather(&self, first: (At, Write), ready: &mut VecDeque<Item>) -> Vec<(At, Write)> {
        let keys = &self.keys;
        let mut grouped: HashSet<String> = first.0.keyed_by.iter().map(|k| k.key.clone()).collect();
        let admits = |next: &At| match &next.keyed_by {
            None => true,
            Some(k) => !keys.knows(&k.key) && grouped.insert(k.key.clone()),
        };
        coalesce::gather(first, ready, self.config.batch_bytes, admits)
    }

    async fn apply_writes(
        &mut self,
        group: &[(At, Write)],
        behind: Backlog,
    ) -> Result<(), Interrupt> {
        let (db, rp) = (&group[0].1.db, &group[0].1.rp);
        let bytes: usize = group.iter().map(|(_, w)| w.lines.len()).sum();
        let mut new_series = Vec::new();
        if self.config.lanes > 1
            && bytes >= self.config.lane_bytes
            && behind.catching_up(group.len())
        {
            let entries = group.iter().map(|(_, w)| &w.lines[..]);
            match lanes::plan(db, rp, entries, self.config.lanes, &self.known_series) {
                Plan::Lanes(bodies) => {
                    if self.send_lanes(db, rp, bodies).await? {
                        self.stored(group);
                        return Ok(());
                    }
                    // One was refused: as for a coalesced request, below.
                    return self.apply_one_by_one(group).await;
                }
                Plan::Whole { new_series: new } => new_series = new,
            }
        }
        if let [one] = group {
            return self.apply_one(one, new_series).await;
        }
        let r = self.send_write(db, rp, coalesce::body(group)).await?;
        if r.status.is_success() {
            self.known_series.learn(new_series);
            self.stored(group);
            return Ok(());
        }
        // A rejection of the coalesced request cannot be attributed to one entry: apply them
        // one by one for exact per-entry outcomes. Rewriting points the combined request
        // already stored is harmless (same points, same timestamps).
        self.apply_one_by_one(group).await
    }

    /// influxd stored every write of `group`.
    fn stored(&mut self, group: &[(At, Write)]) {
        for (e, _) in group {
            self.settle(e, Outcome::no_content());
            self.advance(e, 0);
        }
    }

    /// Each write of `group` in its own request, for influxd's answer to each.
    async fn apply_one_by_one(&mut self, group: &[(At, Write)]) -> Result<(), Interrupt> {
        for one in group {
            self.apply_one(one, Vec::new()).await?;
        }
        Ok(())
    }

    /// One write in its own request, and influxd's answer to it; `new_series` are known once
    /// influxd took it whole.
    async fn apply_one(
        &mut self,
        (e, w): &(At, Write),
        new_series: Vec<u64>,
    ) -> Result<(), Interrupt> {
        let r = self.send_write(&w.db, &w.rp, w.lines.clone()).await?;
        if r.status.is_success() {
            self.known_series.learn(new_series);
            self.settle(e, Outcome::no_content());
            self.advance(e, 0);
        } else {
            self.verify_marker().await?;
            tracing::debug!(index = e.index, status = %r.status, error = %r.error_text(), "influxd rejected a write");
            self.settle(e, Outcome::from_response(&r));
            self.advance(e, 1);
        }
        Ok(())
    }

    /// Sends a write; a 4xx comes back as a response, anything else interrupts.
    async fn send_write(
        &self,
        db: &str,
        rp: &str,
        lines: impl Into<Chunks>,
    ) -> Result<Response, Interrupt> {
        let start = Instant::now();
        let answer = self.influxd.write(db, rp, lines).await;
        self.count_writes(1, start);
        classify(answer?)
    }

    /// Sends the lanes of a group at once: whether influxd stored every one whole. Any that
    /// gets no verdict interrupts, as a single request would (the others are rewritten by the
    /// replay from the marker, which changes nothing).
    async fn send_lanes(&self, db: &str, rp: &str, bodies: Vec<Bytes>) -> Result<bool, Interrupt> {
        let start = Instant::now();
        let n = bodies.len() as u64;
        let sends = bodies.into_iter().map(|b| self.influxd.write(db, rp, b));
        let answers = futures::future::join_all(sends).await;
        self.count_writes(n, start);
        self.status.send_modify(|s| s.lane_groups += 1);
        let mut stored = true;
        for answer in answers {
            stored &= classify(answer?)?.status.is_success();
        }
        Ok(stored)
    }

    fn count_writes(&self, requests: u64, since: Instant) {
        let took = since.elapsed().as_secs_f64();
        self.status.send_modify(|s| {
            s.requests += requests;
            s.write_seconds += took;
        });
    }

    async fn apply_query(&mut self, e: &At, q: &Query) -> Result<(), Interrupt> {
        // It may drop series, or databases: the lanes start again from what influxd stores
        // after it.
        self.known_series.forget();
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
        let r = classify(self.influxd.query(&q.q, &q.db, &q.rp, &q.params).await?)?;
        if let Some(queries) = &self.queries {
            queries.applied(e.index, q, &r);
        }
        if r.status.is_success() && wal_watch::removes_points(&q.q) {
            self.note_removal(e.index).await;
        }
        // The marker goes right after every state change, before its outcome is handed out:
        // a replay then never starts before a schema change that later entries depend on,
        // and writing it proves influxd was not wiped under the statement.
        self.advance(e, u64::from(!r.status.is_success()));
        self.write_marker().await?;
        self.report(e, Outcome::from_response(&r));
        Ok(())
    }

    /// A keyed write the table says is a retry, or a reuse of its key for another write, is
    /// answered from the table and not applied.
    fn answered_by_keys(&mut self, e: &At) -> bool {
        let Some(k) = &e.keyed_by else {
            return false;
        };
        match self.keys.verdict(k) {
            Verdict::New => false,
            Verdict::Retry(outcome) => {
                self.status.send_modify(|s| s.retries += 1);
                self.report(e, outcome);
                self.advance(e, 0);
                true
            }
            Verdict::Conflict(outcome) => {
                self.report(e, outcome);
                self.advance(e, 1);
                true
            }
        }
    }

    /// influxd's outcome for a write it was sent: kept with the write's key, if it has one,
    /// then handed to the waiting request.
    fn settle(&self, e: &At, outcome: Outcome) {
        if let Some(k) = &e.keyed_by {
            self.keys.record(e.index, k, &outcome);
        }
        self.report(e, outcome);
    }

    fn report(&self, e: &At, outcome: Outcome) {
        if let Some(origin) = Origin::from_context(&e.context) {
            if origin.node == self.config.node_id {
                self.sink.applied(origin, e.index, outcome);
            }
        }
    }

    fn advance(&mut self, e: &At, rejected: u64) {
        self.made_progress();
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
        let index = self.pos;
        let term = self
            .log
            .term(index)
            .map_err(|source| Interrupt::LogTerm { index, source })?;
        let m = Marker { index, term };
        // The keys first: a marker in influxd must never be ahead of them.
        self.keys.persist(index)?;
        match marker::write(&self.influxd, m).await? {
            Written::Ok => {}
            Written::DatabaseMissing => return Err(Interrupt::MarkerDatabaseGone),
        }
        self.keys.marker_written(self.keys_forget_through(index));
        self.made_progress();
        self.marker = m;
        self.marker_written_at = Instant::now();
        self.log.save_applied(m.index);
        self.status.send_modify(|s| s.marker = m.index);
        self.check_floor().await
    }

    /// influxd still holds the marker we last wrote: it has not lost data under us.
    async fn verify_marker(&self) -> Result<(), Interrupt> {
        match marker::read(&self.influxd).await? {
            Some(m) if m.index >= self.marker.index => Ok(()),
            found => Err(Interrupt::MarkerBehind {
                found: found.map(|m| m.index),
                written: self.marker.index,
            }),
        }
    }

    /// The idle check: influxd answers and still holds its marker.
    async fn check_influxd(&self, with_marker: bool) -> Result<(), Interrupt> {
        self.influxd.ping().await?;
        if with_marker {
            self.verify_marker().await?;
        }
        Ok(())
    }
}
