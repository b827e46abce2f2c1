//! The checker: Jepsen's set-full semantics over the history and the final reads of every
//! replica, plus what set-full lacks for a replicated store: per-replica checks, exact point
//! contents, duplicates, torn batches and divergence between replicas.
//!
//! Every element is attempted by exactly one write. Its outcome says what may be found:
//! - ok (acknowledged): must be on every replica, exactly once, exactly as written;
//! - fail (definite error): must be on no replica;
//! - info (indeterminate): may be present or absent, but the same on every replica, and a
//!   batch is one log entry, so all of its points or none.
//!
//! The schema workload's `DELETE`s over the main measurement change that for the elements
//! in their ranges: one a delete may have come after may be missing (alike everywhere);
//! one acknowledged before a successful delete began must be gone (see
//! [`crate::schema_check`], which also judges the rest of the schema workload).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::Catalog;
use crate::history::{Attempt, Event, Type, WriteValue, F};
use crate::influx::{Point, KEYED_MEASUREMENT, MEASUREMENT, UNKEYED_MEASUREMENT};
use crate::schema::SCRATCH;
use crate::schema_check::{self, DeleteStats, Fate, MainDeletes, SchemaCheck};

/// The gateway's default `idempotency_window`: a keyed retry judged by a clock this far or
/// more from the clock of the first attempt's node may be a new write (README, Retries).
pub const IDEMPOTENCY_WINDOW_S: i64 = 600;

/// How many offending elements or points are listed (the counts are always complete).
const LIST_LIMIT: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalRead {
    pub node: u8,
    pub points: Vec<Point>,
    pub databases: Vec<String>,
    /// Policies, users, queries, series and the points of other policies and databases.
    #[serde(default)]
    pub catalog: Catalog,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DivergentPoint {
    pub series: String,
    pub time: i64,
    /// What each replica holds at that series and time (absent: nothing).
    pub replicas: BTreeMap<u8, Option<BTreeMap<String, Value>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quantiles {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Visibility {
    /// Milliseconds from a write's invocation until every replica's periodic read showed its
    /// element (set-full's stable latency; the resolution is the read interval).
    pub from_invoke_ms: Option<Quantiles>,
    /// The same, from the write's acknowledgement.
    pub from_ack_ms: Option<Quantiles>,
    /// Acknowledged elements that some replica's periodic reads never showed (the final read
    /// decides whether they are lost).
    pub never_read_everywhere: usize,
    /// An element a replica showed, then did not show in a later read whose window covered
    /// it.
    pub flickered: usize,
    pub flickered_elements: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealRecovery {
    pub kind: String,
    pub detail: String,
    /// Seconds since the start of the run.
    pub healed_at: f64,
    /// Seconds from the heal to the next acknowledged write through any node.
    pub any_node_s: Option<f64>,
    /// Seconds from the heal until a write had been acknowledged through every node.
    pub every_node_s: Option<f64>,
}

/// A stretch of time with no acknowledged write at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gap {
    /// Seconds since the start of the run: the last ok before the gap, the first after it.
    pub from: f64,
    pub to: f64,
    pub seconds: f64,
    /// Whether a fault was in force during any of it.
    pub during_fault: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recovery {
    pub target_s: f64,
    pub heals: Vec<HealRecovery>,
    pub max_any_node_s: Option<f64>,
    pub max_every_node_s: Option<f64>,
    /// Every heal was followed by acknowledged writes through every node within the target.
    pub within_target: bool,
    /// Stretches over one second without any acknowledged write, longest first.
    pub gaps: Vec<Gap>,
    /// The longest such stretch entirely outside fault periods (a quiet cluster stalling).
    pub longest_gap_without_fault_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckResult {
    pub valid: bool,
    /// Why not, in words.
    pub problems: Vec<String>,
    pub attempted: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub write_ops: BTreeMap<String, usize>,
    pub lost: usize,
    pub lost_elements: Vec<u64>,
    /// Per replica: how many acknowledged elements it lacks.
    pub lost_by_node: BTreeMap<u8, usize>,
    pub unexpected: usize,
    pub unexpected_elements: Vec<u64>,
    /// Points that carry no element of ours at all (another measurement, a mangled point).
    pub unexpected_points: Vec<String>,
    pub failed_present: usize,
    pub failed_present_elements: Vec<u64>,
    pub duplicated: usize,
    pub duplicated_elements: Vec<u64>,
    pub divergent: usize,
    pub divergent_points: Vec<DivergentPoint>,
    /// An element stored with other contents than written (series, time or a field).
    pub corrupted: usize,
    pub corrupted_elements: Vec<u64>,
    /// A write whose batch is partly present on a replica.
    pub torn: usize,
    pub torn_ops: Vec<u64>,
    pub indeterminate_present: usize,
    pub indeterminate_absent: usize,
    pub points_by_node: BTreeMap<u8, usize>,
    pub databases_differ: bool,
    pub visibility: Visibility,
    pub recovery: Recovery,
    pub keyed: Keyed,
    pub unkeyed_retries: UnkeyedRetries,
    pub linearizable_reads: LinReads,
    /// `DELETE`s of the main workload's points, and the elements in their ranges.
    #[serde(default)]
    pub deletes: DeleteStats,
    /// The schema workload: replicas compared, and its operations' outcomes checked.
    #[serde(default)]
    pub schema: SchemaCheck,
}

/// A retried write as the checker saw it: its attempts, and how many copies of each of its
/// elements every replica holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetriedOp {
    pub op: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub outcome: Type,
    pub elements: Vec<u64>,
    /// Seconds since the start of the run.
    pub invoked_s: f64,
    pub attempts: Vec<Attempt>,
    /// Per replica, element by element (in `elements`' order): copies held.
    pub copies: BTreeMap<u8, Vec<usize>>,
}

/// Writes with an `Idempotency-Key`, sent without timestamps and retried with the same key
/// while their outcome was unknown. Each must be on every replica at most once, and once
/// exactly if acknowledged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Keyed {
    pub writes: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub indeterminate: usize,
    /// Writes sent more than once, and attempts in all.
    pub retried: usize,
    pub attempts: usize,
    pub acknowledged_after_retry: usize,
    /// Attempts answered as a replay of an earlier one (`Idempotent-Replayed: true`): the
    /// key did its work.
    pub replayed: usize,
    /// Indeterminate writes present on every replica / on none.
    pub indeterminate_present: usize,
    pub indeterminate_absent: usize,
    /// Writes with an element on some replica more than once (invalid).
    pub duplicated: usize,
    pub duplicated_ops: Vec<RetriedOp>,
    /// The same, for writes whose attempts overlapped a `clock-skew` fault with an offset
    /// over the idempotency window: beyond what keys promise (README, Retries), so counted
    /// apart and not invalid.
    pub duplicated_under_skew: usize,
    pub duplicated_under_skew_ops: Vec<RetriedOp>,
    /// Acknowledged writes missing from some replica (also counted in `lost`).
    pub lost: usize,
    pub lost_ops: Vec<RetriedOp>,
}

/// Writes sent without timestamps and retried without a key (`--unkeyed-retries`): a
/// statistic of what keys prevent, never a failure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UnkeyedRetries {
    pub writes: usize,
    pub retried: usize,
    pub attempts: usize,
    /// Writes with an element more than once on some replica, and the copies beyond the
    /// first (on the replica holding most).
    pub duplicated: usize,
    pub extra_copies: usize,
    pub duplicated_ops: Vec<RetriedOp>,
}

/// A write a linearizable read is judged against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteRef {
    pub op: u64,
    pub outcome: Type,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
    pub invoked_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub elements: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
}

/// A linearizable read that missed acknowledged writes, or saw failed ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinAnomaly {
    pub read_op: u64,
    pub node: u8,
    /// Whose elements it read.
    pub client: u32,
    pub invoked_s: f64,
    pub completed_s: f64,
    /// The offending elements: missing, or present although their write failed.
    pub elements: Vec<u64>,
    pub writes: Vec<WriteRef>,
}

/// Reads with `consistency=linearizable`: each successful one must show every write of its
/// client acknowledged before it was invoked (keyed ones, and timestamped ones within its
/// time window), and no write that failed definitely.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinReads {
    pub ok: usize,
    pub failed: usize,
    /// Elements checked in all (acknowledged before the read, over every read).
    pub elements_checked: usize,
    pub latency_ms: Option<Quantiles>,
    pub stale: usize,
    pub stale_reads: Vec<LinAnomaly>,
    pub saw_failed: usize,
    pub saw_failed_reads: Vec<LinAnomaly>,
}

struct WriteOp<'a> {
    invoke: &'a Event,
    outcome: Type,
    completed_at: Option<u64>,
    done: Option<&'a Event>,
}

fn push_limited<T>(v: &mut Vec<T>, x: T) {
    if v.len() < LIST_LIMIT {
        v.push(x);
    }
}

/// Pairs each invocation with its completion; an invocation never completed (the run was
/// cut short) is indeterminate.
fn write_ops(history: &[Event]) -> Vec<WriteOp<'_>> {
    let mut done: HashMap<u64, &Event> = HashMap::new();
    for e in history
        .iter()
        .filter(|e| e.f == F::Write && e.kind != Type::Invoke)
    {
        done.insert(e.op, e);
    }
    history
        .iter()
        .filter(|e| e.f == F::Write && e.kind == Type::Invoke && e.write.is_some())
        .map(|invoke| {
            let c = done.get(&invoke.op);
            WriteOp {
                invoke,
                outcome: c.map_or(Type::Info, |c| c.kind),
                completed_at: c.map(|c| c.time),
                done: c.copied(),
            }
        })
        .collect()
}

/// Checks the history against the final reads of every replica.
pub fn check(history: &[Event], reads: &[FinalRead], recovery_target_s: f64) -> CheckResult {
    let ops = write_ops(history);
    let deletes = MainDeletes::new(history);
    let mut r = CheckResult {
        points_by_node: reads.iter().map(|f| (f.node, f.points.len())).collect(),
        visibility: visibility(history, &ops, &deletes),
        recovery: recovery(history, recovery_target_s),
        ..CheckResult::default()
    };
    MainDeletes::count(history, &mut r.deletes);
    let expected = expected_points(&ops, &mut r);
    let mut offenders = Offenders::default();
    let by_node = held_by_node(reads, &ops, &expected, &mut r, &mut offenders);
    compare_writes(&ops, &by_node, &deletes, &mut r, &mut offenders);
    offenders.record(&mut r);
    retried_writes(history, &ops, &by_node, &mut r);
    r.linearizable_reads = linearizable_reads(history, &ops, &deletes);
    divergence(reads, &mut r);
    if let Some(first) = reads.first() {
        r.databases_differ = reads.iter().any(|f| f.databases != first.databases);
    }
    r.schema = schema_check::check(history, reads);
    r.problems = problems(&r, reads.len());
    r.problems
        .extend(schema_check::problems(&r.schema, &r.deletes));
    r.valid = r.problems.is_empty();
    r
}

/// Per replica: element -> the points holding it.
type Held<'a> = HashMap<u64, Vec<&'a Point>>;

/// Elements found where they must not be, or not as written, each counted once however many
/// replicas show it.
#[derive(Default)]
struct Offenders {
    lost: BTreeSet<u64>,
    unexpected: BTreeSet<u64>,
    failed_present: BTreeSet<u64>,
    duplicated: BTreeSet<u64>,
    corrupted: BTreeSet<u64>,
    deleted_present: BTreeSet<u64>,
}

impl Offenders {
    /// Into the result: the counts complete, the lists cut at `LIST_LIMIT`.
    fn record(self, r: &mut CheckResult) {
        let counted = |s: BTreeSet<u64>| (s.len(), s.into_iter().take(LIST_LIMIT).collect());
        (r.lost, r.lost_elements) = counted(self.lost);
        let (unexpected, unexpected_elements) = counted(self.unexpected);
        // On top of the points that carry no element of ours at all.
        r.unexpected += unexpected;
        r.unexpected_elements = unexpected_elements;
        (r.failed_present, r.failed_present_elements) = counted(self.failed_present);
        (r.duplicated, r.duplicated_elements) = counted(self.duplicated);
        (r.corrupted, r.corrupted_elements) = counted(self.corrupted);
        (
            r.deletes.deleted_present,
            r.deletes.deleted_present_elements,
        ) = counted(self.deleted_present);
    }
}

/// The point each attempted element must be, counting elements and writes by outcome.
fn expected_points(ops: &[WriteOp<'_>], r: &mut CheckResult) -> HashMap<u64, Point> {
    let mut expected = HashMap::new();
    for op in ops {
        let w = op.invoke.write.as_ref().expect("filtered on write");
        *r.write_ops
            .entry(format!("{:?}", op.outcome).to_lowercase())
            .or_default() += 1;
        for (i, &e) in w.elements.iter().enumerate().take(w.timestamps.len()) {
            expected.insert(e, w.expected_point(op.invoke.op, i));
            r.attempted += 1;
            match op.outcome {
                Type::Ok => r.acknowledged += 1,
                Type::Fail => r.failed += 1,
                _ => r.indeterminate += 1,
            }
        }
    }
    expected
}

/// What each replica holds, by element; on the way, points without an element of ours, and
/// elements never attempted, held twice or not as written.
fn held_by_node<'a>(
    reads: &'a [FinalRead],
    ops: &[WriteOp<'_>],
    expected: &HashMap<u64, Point>,
    r: &mut CheckResult,
    offenders: &mut Offenders,
) -> Vec<(u8, Held<'a>)> {
    // Elements of writes sent without timestamps: found by element, whatever time the
    // receiving node gave them; a second copy of a retried one is judged apart.
    let untimed: HashMap<u64, &WriteValue> = ops
        .iter()
        .filter_map(|o| o.invoke.write.as_ref())
        .filter(|w| w.untimed)
        .flat_map(|w| w.elements.iter().map(move |e| (*e, w)))
        .collect();
    let ours = [MEASUREMENT, KEYED_MEASUREMENT, UNKEYED_MEASUREMENT];
    let mut by_node = Vec::new();
    for read in reads {
        let mut held = Held::new();
        // The schema workload's scratch measurements are judged by its own checker.
        for p in read
            .points
            .iter()
            .filter(|p| !p.measurement.starts_with(SCRATCH))
        {
            match p
                .element()
                .filter(|_| ours.contains(&p.measurement.as_str()))
            {
                Some(e) => held.entry(e).or_default().push(p),
                None => {
                    r.unexpected += 1;
                    push_limited(
                        &mut r.unexpected_points,
                        format!("n{}: {}", read.node, p.line()),
                    );
                }
            }
        }
        for (e, points) in &held {
            match expected.get(e) {
                None => {
                    offenders.unexpected.insert(*e);
                }
                Some(want) => {
                    let untimed = untimed.get(e);
                    if points.len() > 1
                        && untimed.is_none_or(|w| w.key.is_none() && !w.unkeyed_retries)
                    {
                        offenders.duplicated.insert(*e);
                    }
                    let differs = |p: &Point| match untimed {
                        Some(_) => {
                            p.measurement != want.measurement
                                || p.tags != want.tags
                                || p.fields != want.fields
                        }
                        None => p != want,
                    };
                    if points.iter().any(|p| differs(p)) {
                        offenders.corrupted.insert(*e);
                    }
                }
            }
        }
        by_node.push((read.node, held));
    }
    by_node
}

/// Each write against every replica: acknowledged elements missing, elements of failed writes
/// present, batches partly applied, and whether an indeterminate write took effect
/// everywhere or nowhere. Elements a `DELETE` may have removed are left out of those, except
/// the failed ones; those it must have removed must be absent.
fn compare_writes(
    ops: &[WriteOp<'_>],
    by_node: &[(u8, Held<'_>)],
    deletes: &MainDeletes,
    r: &mut CheckResult,
    offenders: &mut Offenders,
) {
    for op in ops {
        let w = op.invoke.write.as_ref().expect("filtered on write");
        let fates: Vec<Fate> = w
            .elements
            .iter()
            .zip(&w.timestamps)
            .map(|(_, &ts)| {
                if w.untimed || w.measurement() != MEASUREMENT {
                    Fate::Kept
                } else {
                    deletes.fate(ts, op.invoke.time, op.completed_at, op.outcome == Type::Ok)
                }
            })
            .collect();
        let kept: Vec<u64> = w
            .elements
            .iter()
            .zip(&fates)
            .filter(|(_, f)| **f == Fate::Kept)
            .map(|(e, _)| *e)
            .collect();
        let mut any_present = false;
        let mut all_present_everywhere = true;
        let mut torn = false;
        for (node, held) in by_node {
            let present = kept.iter().filter(|e| held.contains_key(e)).count();
            torn |= present != 0 && present != kept.len();
            any_present |= present > 0;
            all_present_everywhere &= present == kept.len();
            for (e, fate) in w.elements.iter().zip(&fates) {
                let here = held.contains_key(e);
                match (op.outcome, fate) {
                    (Type::Fail, _) if here => {
                        offenders.failed_present.insert(*e);
                    }
                    (_, Fate::Deleted) if here => {
                        offenders.deleted_present.insert(*e);
                    }
                    (Type::Ok, Fate::Kept) if !here => {
                        offenders.lost.insert(*e);
                        *r.lost_by_node.entry(*node).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
        for (e, fate) in w.elements.iter().zip(&fates) {
            match fate {
                Fate::Kept => {}
                Fate::Maybe => {
                    r.deletes.may_be_deleted += 1;
                    r.deletes.may_be_deleted_present +=
                        usize::from(by_node.iter().all(|(_, h)| h.contains_key(e)));
                }
                Fate::Deleted => r.deletes.must_be_deleted += 1,
            }
        }
        if torn {
            r.torn += 1;
            push_limited(&mut r.torn_ops, op.invoke.op);
        }
        if op.outcome != Type::Ok && op.outcome != Type::Fail && !kept.is_empty() {
            let n = kept.len();
            if any_present && all_present_everywhere {
                r.indeterminate_present += n;
            } else if !any_present {
                r.indeterminate_absent += n;
            }
        }
    }
}

/// Why the run is not valid, in words; none when it is. `replicas`: how many were read.
fn problems(r: &CheckResult, replicas: usize) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, what) in [
        (r.lost, "acknowledged elements lost"),
        (r.unexpected, "unexpected elements or points"),
        (r.failed_present, "elements of failed writes present"),
        (r.duplicated, "elements present more than once"),
        (r.divergent, "points differing between replicas"),
        (
            r.corrupted,
            "elements stored with other contents than written",
        ),
        (r.torn, "writes partly applied"),
    ] {
        if n > 0 {
            problems.push(format!("{n} {what}"));
        }
    }
    if r.keyed.duplicated > 0 {
        problems.push(format!(
            "{} keyed writes applied more than once",
            r.keyed.duplicated
        ));
    }
    let lin = &r.linearizable_reads;
    if lin.stale > 0 {
        problems.push(format!(
            "{} linearizable reads missed writes acknowledged before they began",
            lin.stale
        ));
    }
    if lin.saw_failed > 0 {
        problems.push(format!(
            "{} linearizable reads saw writes that failed",
            lin.saw_failed
        ));
    }
    if r.databases_differ {
        problems.push("replicas hold different databases".into());
    }
    if r.acknowledged == 0 {
        problems.push("no write was acknowledged: nothing was tested".into());
    }
    if replicas < usize::from(crate::netns::NODES) {
        problems.push(format!(
            "final reads of {replicas} replicas only, of {}",
            crate::netns::NODES
        ));
    }
    problems
}

/// Every point (series, time) must be on every replica, with the same fields.
fn divergence(reads: &[FinalRead], r: &mut CheckResult) {
    type Fields = BTreeMap<String, Value>;
    let mut table: BTreeMap<(String, i64), BTreeMap<u8, &Fields>> = BTreeMap::new();
    for read in reads {
        for p in &read.points {
            table
                .entry((p.series(), p.time))
                .or_default()
                .insert(read.node, &p.fields);
        }
    }
    for ((series, time), replicas) in table {
        let first = replicas.values().next().copied();
        let same = replicas.len() == reads.len() && replicas.values().all(|f| Some(*f) == first);
        if !same {
            r.divergent += 1;
            if r.divergent_points.len() < LIST_LIMIT {
                r.divergent_points.push(DivergentPoint {
                    series,
                    time,
                    replicas: reads
                        .iter()
                        .map(|f| (f.node, replicas.get(&f.node).map(|m| (*m).clone())))
                        .collect(),
                });
            }
        }
    }
}

/// `clock-skew` faults, as (start, heal) run times, whose largest offset exceeds the
/// idempotency window.
fn wide_skews(history: &[Event]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open: Option<(u64, bool)> = None;
    for e in history.iter().filter(|e| matches!(e.f, F::Start | F::Stop)) {
        let Some(v) = e.nemesis.as_ref().filter(|v| v.kind == "clock-skew") else {
            continue;
        };
        let wide = v.offsets_s.iter().any(|o| o.abs() >= IDEMPOTENCY_WINDOW_S);
        match e.f {
            F::Start => open = Some((e.time, wide)),
            _ => {
                if let Some((s, true)) = open.take() {
                    out.push((s, e.time));
                }
            }
        }
    }
    if let Some((s, true)) = open {
        out.push((s, u64::MAX));
    }
    out
}

fn retried_op(op: &WriteOp<'_>, by_node: &[(u8, Held<'_>)]) -> RetriedOp {
    let w = op.invoke.write.as_ref().expect("filtered on write");
    RetriedOp {
        op: op.invoke.op,
        key: w.key.clone(),
        outcome: op.outcome,
        elements: w.elements.clone(),
        invoked_s: op.invoke.time as f64 / 1e9,
        attempts: op.done.and_then(|d| d.attempts.clone()).unwrap_or_default(),
        copies: by_node
            .iter()
            .map(|(n, held)| {
                let copies = w
                    .elements
                    .iter()
                    .map(|e| held.get(e).map_or(0, Vec::len))
                    .collect();
                (*n, copies)
            })
            .collect(),
    }
}

/// Keyed writes: at most once on every replica, exactly once if acknowledged; and what
/// retries without a key left twice.
fn retried_writes(
    history: &[Event],
    ops: &[WriteOp<'_>],
    by_node: &[(u8, Held<'_>)],
    r: &mut CheckResult,
) {
    let skews = wide_skews(history);
    let (k, u) = (&mut r.keyed, &mut r.unkeyed_retries);
    for op in ops {
        let w = op.invoke.write.as_ref().expect("filtered on write");
        if w.key.is_none() && !w.unkeyed_retries {
            continue;
        }
        let attempts = op
            .done
            .and_then(|d| d.attempts.as_ref())
            .map_or(1, Vec::len);
        let most = by_node
            .iter()
            .flat_map(|(_, held)| w.elements.iter().map(|e| held.get(e).map_or(0, Vec::len)))
            .max()
            .unwrap_or(0);
        if w.unkeyed_retries {
            u.writes += 1;
            u.attempts += attempts;
            u.retried += usize::from(attempts > 1);
            if most > 1 {
                u.duplicated += 1;
                u.extra_copies += most - 1;
                push_limited(&mut u.duplicated_ops, retried_op(op, by_node));
            }
            continue;
        }
        k.writes += 1;
        k.attempts += attempts;
        k.replayed += op
            .done
            .and_then(|d| d.attempts.as_ref())
            .map_or(0, |a| a.iter().filter(|a| a.replayed).count());
        k.retried += usize::from(attempts > 1);
        match op.outcome {
            Type::Ok => {
                k.acknowledged += 1;
                k.acknowledged_after_retry += usize::from(attempts > 1);
            }
            Type::Fail => k.failed += 1,
            _ => {
                k.indeterminate += 1;
                let present = |held: &Held<'_>| w.elements.iter().all(|e| held.contains_key(e));
                let absent = |held: &Held<'_>| w.elements.iter().all(|e| !held.contains_key(e));
                if by_node.iter().all(|(_, h)| present(h)) {
                    k.indeterminate_present += 1;
                } else if by_node.iter().all(|(_, h)| absent(h)) {
                    k.indeterminate_absent += 1;
                }
            }
        }
        if most > 1 {
            let end = op.completed_at.unwrap_or(u64::MAX);
            let skewed = skews.iter().any(|&(s, t)| s <= end && op.invoke.time <= t);
            if skewed {
                k.duplicated_under_skew += 1;
                push_limited(&mut k.duplicated_under_skew_ops, retried_op(op, by_node));
            } else {
                k.duplicated += 1;
                push_limited(&mut k.duplicated_ops, retried_op(op, by_node));
            }
        }
        let missing = by_node
            .iter()
            .any(|(_, held)| w.elements.iter().any(|e| !held.contains_key(e)));
        if op.outcome == Type::Ok && missing {
            k.lost += 1;
            push_limited(&mut k.lost_ops, retried_op(op, by_node));
        }
    }
}

fn write_ref(op: &WriteOp<'_>, elements: Vec<u64>) -> WriteRef {
    let w = op.invoke.write.as_ref().expect("filtered on write");
    WriteRef {
        op: op.invoke.op,
        outcome: op.outcome,
        node: op.done.and_then(|d| d.node).or(op.invoke.node),
        invoked_s: op.invoke.time as f64 / 1e9,
        completed_s: op.completed_at.map(|t| t as f64 / 1e9),
        key: w.key.clone(),
        elements,
        status: op.done.and_then(|d| d.status),
        attempts: op.done.and_then(|d| d.attempts.clone()),
    }
}

/// Every successful linearizable read against the writes of the client it read: those
/// acknowledged before it was invoked must all be in it (keyed
/// ones from its smallest element on, timestamped ones at or after its lower time bound),
/// and no write that failed may be, nor any element a `DELETE` begun before it ended may
/// have removed.
fn linearizable_reads(history: &[Event], ops: &[WriteOp<'_>], deletes: &MainDeletes) -> LinReads {
    let mut out = LinReads::default();
    let mut by_client: HashMap<u32, Vec<&WriteOp<'_>>> = HashMap::new();
    for op in ops {
        let w = op.invoke.write.as_ref().expect("filtered on write");
        if !w.unkeyed_retries {
            by_client.entry(w.client).or_default().push(op);
        }
    }
    let invokes: HashMap<u64, &Event> = history
        .iter()
        .filter(|e| e.f == F::LinRead && e.kind == Type::Invoke)
        .map(|e| (e.op, e))
        .collect();
    let mut latencies = Vec::new();
    for done in history
        .iter()
        .filter(|e| e.f == F::LinRead && e.kind != Type::Invoke)
    {
        if done.kind != Type::Ok {
            out.failed += 1;
            continue;
        }
        let (Some(inv), Some(read)) = (invokes.get(&done.op), done.read.as_ref()) else {
            continue;
        };
        out.ok += 1;
        latencies.push(done.time.saturating_sub(inv.time) as f64 / 1e6);
        let client = inv.client.unwrap_or_default();
        let since = inv.since.unwrap_or(i64::MIN);
        let floor = inv.min_element.unwrap_or(0);
        let seen: std::collections::HashSet<u64> = read.iter().copied().collect();
        let (mut stale, mut saw_failed) = (Vec::new(), Vec::new());
        for op in by_client.get(&client).into_iter().flatten() {
            let w = op.invoke.write.as_ref().expect("filtered on write");
            match op.outcome {
                Type::Ok if op.completed_at.is_some_and(|t| t < inv.time) => {
                    let missing: Vec<u64> = w
                        .elements
                        .iter()
                        .zip(&w.timestamps)
                        .filter(|(&e, &t)| if w.untimed { e >= floor } else { t >= since })
                        // A DELETE begun before the read ended may have removed it first.
                        .filter(|(_, &t)| w.untimed || !deletes.may_hide(t, done.time))
                        .map(|(&e, _)| e)
                        .inspect(|_| out.elements_checked += 1)
                        .filter(|e| !seen.contains(e))
                        .collect();
                    if !missing.is_empty() {
                        stale.push(write_ref(op, missing));
                    }
                }
                Type::Fail => {
                    let present: Vec<u64> = w
                        .elements
                        .iter()
                        .copied()
                        .filter(|e| seen.contains(e))
                        .collect();
                    if !present.is_empty() {
                        saw_failed.push(write_ref(op, present));
                    }
                }
                _ => {}
            }
        }
        let anomaly = |writes: Vec<WriteRef>| LinAnomaly {
            read_op: done.op,
            node: done.node.unwrap_or_default(),
            client,
            invoked_s: inv.time as f64 / 1e9,
            completed_s: done.time as f64 / 1e9,
            elements: writes.iter().flat_map(|w| w.elements.clone()).collect(),
            writes: writes.into_iter().take(20).collect(),
        };
        if !stale.is_empty() {
            out.stale += 1;
            push_limited(&mut out.stale_reads, anomaly(stale));
        }
        if !saw_failed.is_empty() {
            out.saw_failed += 1;
            push_limited(&mut out.saw_failed_reads, anomaly(saw_failed));
        }
    }
    out.latency_ms = quantiles(latencies);
    out
}

pub fn quantiles(mut xs: Vec<f64>) -> Option<Quantiles> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    Some(Quantiles {
        count: xs.len(),
        min: xs[0],
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: xs[xs.len() - 1],
    })
}

/// When each acknowledged element became visible on every replica, from the periodic reads,
/// and whether a replica ever stopped showing an element it had shown.
fn visibility(history: &[Event], ops: &[WriteOp<'_>], deletes: &MainDeletes) -> Visibility {
    let mut ts: HashMap<u64, i64> = HashMap::new();
    // The periodic reads look at timestamped elements only.
    let timed = |o: &&WriteOp<'_>| o.invoke.write.as_ref().is_some_and(|w| !w.untimed);
    for op in ops.iter().filter(timed) {
        let w = op.invoke.write.as_ref().expect("filtered on write");
        // An element a DELETE may have removed may vanish from reads: not a flicker.
        for (&e, &t) in w.elements.iter().zip(&w.timestamps) {
            if !deletes.covers(t) {
                ts.insert(e, t);
            }
        }
    }
    let invokes: HashMap<u64, &Event> = history
        .iter()
        .filter(|e| e.f == F::Read && e.kind == Type::Invoke)
        .map(|e| (e.op, e))
        .collect();
    // node -> element -> time first seen
    let mut first_seen: BTreeMap<u8, HashMap<u64, u64>> = BTreeMap::new();
    // node -> (timestamp, element) seen so far
    let mut shown: BTreeMap<u8, BTreeSet<(i64, u64)>> = BTreeMap::new();
    let mut flickered = BTreeSet::new();
    for done in history
        .iter()
        .filter(|e| e.f == F::Read && e.kind == Type::Ok)
    {
        let (Some(node), Some(elements)) = (done.node, done.read.as_ref()) else {
            continue;
        };
        let since = invokes
            .get(&done.op)
            .and_then(|i| i.since)
            .unwrap_or(i64::MIN);
        let in_read: std::collections::HashSet<u64> = elements.iter().copied().collect();
        let shown = shown.entry(node).or_default();
        for &(_, e) in shown.range((since, 0)..) {
            if !in_read.contains(&e) {
                flickered.insert(e);
            }
        }
        let first = first_seen.entry(node).or_default();
        for &e in elements {
            first.entry(e).or_insert(done.time);
            if let Some(&t) = ts.get(&e) {
                shown.insert((t, e));
            }
        }
    }
    let nodes: Vec<u8> = history
        .iter()
        .filter(|e| e.f == F::Read)
        .filter_map(|e| e.node)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut from_invoke = Vec::new();
    let mut from_ack = Vec::new();
    let mut never = 0;
    for op in ops.iter().filter(timed).filter(|o| o.outcome == Type::Ok) {
        let w = op.invoke.write.as_ref().expect("filtered on write");
        for e in &w.elements {
            let everywhere = nodes
                .iter()
                .map(|n| first_seen.get(n).and_then(|m| m.get(e)).copied())
                .collect::<Option<Vec<u64>>>()
                .and_then(|ts| ts.into_iter().max());
            match everywhere {
                Some(t) => {
                    from_invoke.push(t.saturating_sub(op.invoke.time) as f64 / 1e6);
                    let ack = op.completed_at.unwrap_or(op.invoke.time);
                    from_ack.push(t.saturating_sub(ack) as f64 / 1e6);
                }
                None => never += 1,
            }
        }
    }
    Visibility {
        from_invoke_ms: quantiles(from_invoke),
        from_ack_ms: quantiles(from_ack),
        never_read_everywhere: never,
        flickered: flickered.len(),
        flickered_elements: flickered.into_iter().take(LIST_LIMIT).collect(),
    }
}

/// For each heal: how long until writes were acknowledged again, through any node and
/// through every node. Heals after the last write are not measured.
fn recovery(history: &[Event], target_s: f64) -> Recovery {
    let oks: Vec<(u64, u8)> = history
        .iter()
        .filter(|e| e.f == F::Write && e.kind == Type::Ok)
        .filter_map(|e| e.node.map(|n| (e.time, n)))
        .collect();
    let nodes: BTreeSet<u8> = history
        .iter()
        .filter(|e| e.f == F::Write)
        .filter_map(|e| e.node)
        .collect();
    let last_write = history
        .iter()
        .filter(|e| e.f == F::Write && e.kind == Type::Invoke)
        .map(|e| e.time)
        .max()
        .unwrap_or(0);
    let mut heals = Vec::new();
    for stop in history.iter().filter(|e| e.f == F::Stop) {
        if stop.time >= last_write {
            continue;
        }
        let after: Vec<&(u64, u8)> = oks.iter().filter(|(t, _)| *t >= stop.time).collect();
        let secs = |t: u64| (t - stop.time) as f64 / 1e9;
        let any = after.first().map(|(t, _)| secs(*t));
        let every = nodes
            .iter()
            .map(|n| after.iter().find(|(_, m)| m == n).map(|(t, _)| *t))
            .collect::<Option<Vec<u64>>>()
            .and_then(|ts| ts.into_iter().max())
            .map(secs);
        let v = stop.nemesis.as_ref();
        heals.push(HealRecovery {
            kind: v.map(|v| v.kind.clone()).unwrap_or_default(),
            detail: v.map(|v| v.detail.clone()).unwrap_or_default(),
            healed_at: stop.time as f64 / 1e9,
            any_node_s: any,
            every_node_s: every,
        });
    }
    let max = |f: fn(&HealRecovery) -> Option<f64>| {
        heals
            .iter()
            .filter_map(f)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    let max_any_node_s = max(|h| h.any_node_s);
    let max_every_node_s = max(|h| h.every_node_s);
    let within_target = heals
        .iter()
        .all(|h| h.every_node_s.is_some_and(|s| s <= target_s));
    let gaps = gaps(history, &oks);
    let longest_gap_without_fault_s = gaps
        .iter()
        .filter(|g| !g.during_fault)
        .map(|g| g.seconds)
        .fold(0.0, f64::max);
    Recovery {
        target_s,
        heals,
        max_any_node_s,
        max_every_node_s,
        within_target,
        gaps,
        longest_gap_without_fault_s,
    }
}

fn gaps(history: &[Event], oks: &[(u64, u8)]) -> Vec<Gap> {
    let mut faults = Vec::new();
    let mut open = None;
    for e in history {
        match e.f {
            F::Start => open = Some(e.time),
            F::Stop => {
                if let Some(s) = open.take() {
                    faults.push((s, e.time));
                }
            }
            _ => {}
        }
    }
    if let Some(s) = open {
        faults.push((s, u64::MAX));
    }
    let mut out: Vec<Gap> = oks
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 > 1_000_000_000)
        .map(|w| {
            let (a, b) = (w[0].0, w[1].0);
            Gap {
                from: a as f64 / 1e9,
                to: b as f64 / 1e9,
                seconds: (b - a) as f64 / 1e9,
                during_fault: faults.iter().any(|&(s, t)| s < b && a < t),
            }
        })
        .collect();
    out.sort_by(|x, y| y.seconds.total_cmp(&x.seconds));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{NemesisValue, WriteValue};

    /// Builds histories by hand: writes with outcomes, reads, nemesis events.
    struct H {
        events: Vec<Event>,
        op: u64,
        t: u64,
    }

    const T0: i64 = 1_700_000_000_000_000_000;

    impl H {
        fn new() -> H {
            H {
                events: Vec::new(),
                op: 0,
                t: 0,
            }
        }

        fn push(&mut self, mut e: Event) {
            self.t += 1_000_000;
            e.time = self.t;
            e.index = self.events.len() as u64;
            self.events.push(e);
        }

        /// A write of `elements` by client 1 through node 1, completed with `outcome`.
        fn write(&mut self, elements: &[u64], outcome: Type) -> u64 {
            self.op += 1;
            let mut inv = Event::new("c1", Type::Invoke, F::Write, self.op);
            inv.node = Some(1);
            inv.write = Some(WriteValue::plain(
                1,
                elements.to_vec(),
                elements.iter().map(|&e| T0 + e as i64).collect(),
            ));
            self.push(inv);
            let mut done = Event::new("c1", outcome, F::Write, self.op);
            done.node = Some(1);
            self.push(done);
            self.op
        }

        fn read(&mut self, node: u8, since: i64, elements: &[u64]) {
            self.op += 1;
            let mut inv = Event::new("r", Type::Invoke, F::Read, self.op);
            inv.node = Some(node);
            inv.since = Some(since);
            self.push(inv);
            let mut done = Event::new("r", Type::Ok, F::Read, self.op);
            done.node = Some(node);
            done.read = Some(elements.to_vec());
            self.push(done);
        }

        fn nemesis(&mut self, f: F) {
            self.op += 1;
            let mut e = Event::new("nemesis", Type::Info, f, self.op);
            e.nemesis = Some(NemesisValue {
                kind: "partition-one".into(),
                nodes: vec![2],
                detail: "n2 isolated".into(),
                offsets_s: Vec::new(),
            });
            self.push(e);
        }

        /// The point element `e` of op `op` must be.
        fn point(op: u64, e: u64) -> Point {
            Point::expected(1, op, e, T0 + e as i64)
        }
    }

    /// Three replicas holding the same points.
    fn replicas(points: Vec<Point>) -> Vec<FinalRead> {
        (1..=3)
            .map(|node| FinalRead {
                node,
                points: points.clone(),
                databases: vec!["_gateway".into(), "jepsen".into()],
                catalog: Catalog::default(),
            })
            .collect()
    }

    fn base() -> (H, Vec<Point>) {
        let mut h = H::new();
        let a = h.write(&[1], Type::Ok);
        let b = h.write(&[2, 3], Type::Ok);
        (h, vec![H::point(a, 1), H::point(b, 2), H::point(b, 3)])
    }

    #[test]
    fn a_clean_history_is_valid() {
        let (mut h, points) = base();
        h.write(&[4], Type::Fail);
        let i = h.write(&[5, 6], Type::Info);
        h.write(&[7], Type::Info);
        let mut points = points;
        points.extend([H::point(i, 5), H::point(i, 6)]);
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(
            (r.attempted, r.acknowledged, r.failed, r.indeterminate),
            (7, 3, 1, 3)
        );
        assert_eq!((r.indeterminate_present, r.indeterminate_absent), (2, 1));
        assert_eq!(
            r.lost + r.unexpected + r.failed_present + r.duplicated + r.divergent,
            0
        );
    }

    #[test]
    fn lost_on_one_replica() {
        let (h, points) = base();
        let mut reads = replicas(points);
        reads[1].points.retain(|p| p.element() != Some(2));
        let r = check(&h.events, &reads, 10.0);
        assert!(!r.valid);
        assert_eq!(r.lost, 1);
        assert_eq!(r.lost_elements, vec![2]);
        assert_eq!(r.lost_by_node.get(&2), Some(&1));
        // Missing on one replica only: the replicas differ too, and the batch is torn there.
        assert_eq!(r.divergent, 1);
        assert_eq!(r.torn, 1);
    }

    #[test]
    fn lost_everywhere() {
        let (h, mut points) = base();
        points.retain(|p| p.element() != Some(1));
        let r = check(&h.events, &replicas(points), 10.0);
        assert_eq!(r.lost, 1);
        assert_eq!(r.divergent, 0);
        assert!(!r.valid);
    }

    #[test]
    fn unexpected_elements_and_points() {
        let (h, mut points) = base();
        points.push(Point::expected(9, 99, 42, T0 + 42));
        let mut stray = Point::expected(1, 1, 0, T0);
        stray.measurement = "other".into();
        points.push(stray);
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(!r.valid);
        assert_eq!(r.unexpected_elements, vec![42]);
        // One stray point per replica, plus the never-attempted element.
        assert_eq!(r.unexpected, 4);
        assert_eq!(r.unexpected_points.len(), 3);
    }

    #[test]
    fn failed_but_present() {
        let (mut h, mut points) = base();
        let f = h.write(&[8], Type::Fail);
        let mut reads = replicas(points.clone());
        reads[2].points.push(H::point(f, 8));
        let r = check(&h.events, &reads, 10.0);
        assert!(!r.valid);
        assert_eq!(r.failed_present, 1);
        assert_eq!(r.failed_present_elements, vec![8]);
        points.push(H::point(f, 8));
        let r = check(&h.events, &replicas(points), 10.0);
        assert_eq!(r.failed_present, 1);
        assert_eq!(r.divergent, 0);
    }

    #[test]
    fn duplicated_at_two_timestamps_or_in_two_series() {
        let (h, points) = base();
        let mut twice = points.clone();
        let mut later = H::point(1, 1);
        later.time += 1_000;
        twice.push(later);
        let r = check(&h.events, &replicas(twice), 10.0);
        assert!(!r.valid);
        assert_eq!(r.duplicated_elements, vec![1]);
        assert_eq!(r.corrupted, 1);

        let mut other_series = points;
        let mut moved = H::point(2, 3);
        moved.tags.insert("client".into(), "7".into());
        other_series.push(moved);
        let r = check(&h.events, &replicas(other_series), 10.0);
        assert_eq!(r.duplicated_elements, vec![3]);
    }

    #[test]
    fn divergent_fields_between_replicas() {
        let (h, points) = base();
        let mut reads = replicas(points);
        let p = reads[0]
            .points
            .iter_mut()
            .find(|p| p.element() == Some(3))
            .unwrap();
        p.fields.insert("v".into(), Value::from(0.25));
        let r = check(&h.events, &reads, 10.0);
        assert!(!r.valid);
        assert_eq!(r.divergent, 1);
        let d = &r.divergent_points[0];
        assert_eq!(d.replicas.len(), 3);
        assert_ne!(d.replicas[&1], d.replicas[&2]);
        assert_eq!(r.corrupted, 1);
    }

    #[test]
    fn divergent_extra_point_on_one_replica() {
        let (mut h, points) = base();
        let i = h.write(&[9], Type::Info);
        let mut reads = replicas(points);
        reads[0].points.push(H::point(i, 9));
        let r = check(&h.events, &reads, 10.0);
        assert!(!r.valid);
        assert_eq!(r.divergent, 1);
        // Neither present everywhere nor absent everywhere.
        assert_eq!(r.indeterminate_present + r.indeterminate_absent, 0);
    }

    #[test]
    fn torn_indeterminate_batch() {
        let (mut h, mut points) = base();
        let i = h.write(&[10, 11], Type::Info);
        points.push(H::point(i, 10));
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(!r.valid);
        assert_eq!(r.torn, 1);
        assert_eq!(r.torn_ops, vec![i]);
    }

    #[test]
    fn different_databases() {
        let (h, points) = base();
        let mut reads = replicas(points);
        reads[0].databases.push("extra".into());
        let r = check(&h.events, &reads, 10.0);
        assert!(r.databases_differ);
        assert!(!r.valid);
    }

    #[test]
    fn nothing_acknowledged_is_not_valid() {
        let mut h = H::new();
        h.write(&[1], Type::Fail);
        let r = check(&h.events, &replicas(vec![]), 10.0);
        assert!(!r.valid);
    }

    #[test]
    fn unfinished_writes_are_indeterminate() {
        let (mut h, points) = base();
        h.op += 1;
        let mut inv = Event::new("c2", Type::Invoke, F::Write, h.op);
        inv.write = Some(WriteValue::plain(2, vec![20], vec![T0 + 20]));
        h.push(inv);
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(r.indeterminate_absent, 1);
    }

    #[test]
    fn visibility_latency_and_flicker() {
        let (mut h, points) = base();
        // Elements 1..3 show up on node 1 at once, on nodes 2 and 3 a read later.
        h.read(1, T0, &[1, 2, 3]);
        h.read(2, T0, &[1]);
        h.read(3, T0, &[1]);
        h.read(2, T0, &[1, 2, 3]);
        h.read(3, T0, &[1, 2, 3]);
        let r = check(&h.events, &replicas(points.clone()), 10.0);
        let v = r.visibility;
        assert_eq!(v.never_read_everywhere, 0);
        let q = v.from_invoke_ms.unwrap();
        assert_eq!(q.count, 3);
        assert!(q.max > q.min);
        assert_eq!(v.flickered, 0);

        // Node 1 later stops showing element 2 although its window covers it.
        h.read(1, T0, &[1, 3]);
        // A window starting after element 1's timestamp is not a flicker.
        h.read(1, T0 + 2, &[2, 3]);
        let r = check(&h.events, &replicas(points), 10.0);
        assert_eq!(r.visibility.flickered_elements, vec![2]);
    }

    #[test]
    fn recovery_after_heals() {
        let mut h = H::new();
        let a = h.write(&[1], Type::Ok);
        h.nemesis(F::Start);
        h.write(&[2], Type::Fail);
        h.nemesis(F::Stop);
        h.write(&[3], Type::Info);
        let b = h.write(&[4], Type::Ok);
        let points = vec![H::point(a, 1), H::point(b, 4)];
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        let rec = r.recovery;
        assert_eq!(rec.heals.len(), 1);
        // The heal is at 6 ms, the next acknowledgement at 10 ms.
        let s = rec.heals[0].any_node_s.unwrap();
        assert!((s - 0.004).abs() < 1e-9, "{s}");
        assert_eq!(rec.heals[0].every_node_s, Some(s));
        assert!(rec.within_target);
        assert!(rec.gaps.is_empty());
        let r = check(
            &h.events,
            &replicas(vec![H::point(a, 1), H::point(b, 4)]),
            0.001,
        );
        assert!(!r.recovery.within_target);
    }

    #[test]
    fn gaps_without_acknowledgements() {
        let mut h = H::new();
        h.write(&[1], Type::Ok);
        h.t += 2_000_000_000;
        h.write(&[2], Type::Ok);
        h.nemesis(F::Start);
        h.t += 3_000_000_000;
        h.nemesis(F::Stop);
        h.write(&[3], Type::Ok);
        let g = recovery(&h.events, 10.0).gaps;
        assert_eq!(g.len(), 2);
        assert!(g[0].during_fault && g[0].seconds > 3.0);
        assert!(!g[1].during_fault && g[1].seconds > 2.0 && g[1].seconds < 3.0);
    }

    /// A keyed write of `elements` by client 1, its attempts through nodes 1 then 2.
    fn keyed_write(h: &mut H, elements: &[u64], outcome: Type) -> u64 {
        h.op += 1;
        let mut inv = Event::new("c1", Type::Invoke, F::Write, h.op);
        inv.node = Some(1);
        inv.write = Some(WriteValue {
            key: Some(format!("key-{}", h.op)),
            untimed: true,
            ..WriteValue::plain(1, elements.to_vec(), vec![0; elements.len()])
        });
        h.push(inv);
        let mut done = Event::new("c1", outcome, F::Write, h.op);
        done.node = Some(2);
        let attempt = |node, kind| Attempt {
            node,
            time: h.t,
            kind,
            status: None,
            error: None,
            replayed: kind == Type::Ok,
        };
        done.attempts = Some(vec![attempt(1, Type::Info), attempt(2, outcome)]);
        h.push(done);
        h.op
    }

    /// Element `e` of keyed write `op` (its `i`th), stamped `time` by whichever node
    /// received it.
    fn keyed_point(op: u64, e: u64, i: usize, time: i64) -> Point {
        let mut p = Point::expected(1, op, e, time);
        p.measurement = KEYED_MEASUREMENT.into();
        p.tags.insert("i".into(), i.to_string());
        p
    }

    #[test]
    fn keyed_writes_once_are_valid_whatever_their_time() {
        let (mut h, mut points) = base();
        let k = keyed_write(&mut h, &[20, 21], Type::Ok);
        let i = keyed_write(&mut h, &[22], Type::Info);
        points.extend([
            keyed_point(k, 20, 0, 5),
            keyed_point(k, 21, 1, 5),
            keyed_point(i, 22, 0, 9),
        ]);
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(
            (r.keyed.writes, r.keyed.retried, r.keyed.attempts),
            (2, 2, 4)
        );
        assert_eq!(r.keyed.indeterminate_present, 1);
        assert_eq!(r.corrupted, 0);
    }

    #[test]
    fn a_keyed_write_applied_twice_is_reported_with_its_attempts() {
        let (mut h, mut points) = base();
        let k = keyed_write(&mut h, &[20], Type::Ok);
        points.extend([keyed_point(k, 20, 0, 5), keyed_point(k, 20, 0, 6)]);
        let r = check(&h.events, &replicas(points.clone()), 10.0);
        assert!(!r.valid);
        assert_eq!(r.keyed.duplicated, 1);
        let d = &r.keyed.duplicated_ops[0];
        assert_eq!(d.op, k);
        assert_eq!(d.attempts.len(), 2);
        assert_eq!(d.copies[&1], vec![2]);
        // Counted as keyed, not as a duplicated plain element.
        assert_eq!(r.duplicated, 0);

        // The same while a clock was skewed past the idempotency window: beyond what keys
        // promise, counted apart.
        let mut h2 = H::new();
        let a = h2.write(&[1], Type::Ok);
        h2.op += 1;
        let mut start = Event::new("nemesis", Type::Info, F::Start, h2.op);
        start.nemesis = Some(NemesisValue {
            kind: "clock-skew".into(),
            nodes: vec![2],
            detail: String::new(),
            offsets_s: vec![-7200, 90],
        });
        h2.push(start.clone());
        let k = keyed_write(&mut h2, &[20], Type::Ok);
        let mut stop = start;
        stop.f = F::Stop;
        h2.push(stop);
        let pts = vec![
            H::point(a, 1),
            keyed_point(k, 20, 0, 5),
            keyed_point(k, 20, 0, 6),
        ];
        let r = check(&h2.events, &replicas(pts), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!((r.keyed.duplicated, r.keyed.duplicated_under_skew), (0, 1));
    }

    #[test]
    fn an_acknowledged_keyed_write_missing_is_lost() {
        let (mut h, points) = base();
        let k = keyed_write(&mut h, &[20], Type::Ok);
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(!r.valid);
        assert_eq!(r.lost, 1);
        assert_eq!(r.keyed.lost_ops[0].op, k);
    }

    #[test]
    fn unkeyed_retries_are_counted_not_failed() {
        let (mut h, mut points) = base();
        h.op += 1;
        let mut inv = Event::new("c1", Type::Invoke, F::Write, h.op);
        inv.write = Some(WriteValue {
            untimed: true,
            unkeyed_retries: true,
            ..WriteValue::plain(1, vec![30], vec![0])
        });
        h.push(inv);
        h.push(Event::new("c1", Type::Ok, F::Write, h.op));
        let mut p = Point::expected(1, h.op, 30, 5);
        p.measurement = UNKEYED_MEASUREMENT.into();
        p.tags.insert("i".into(), "0".into());
        let mut again = p.clone();
        again.time = 7;
        points.extend([p, again]);
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(
            (r.unkeyed_retries.duplicated, r.unkeyed_retries.extra_copies),
            (1, 1)
        );
    }

    fn lin_read(h: &mut H, node: u8, elements: &[u64]) -> u64 {
        h.op += 1;
        let mut inv = Event::new("c2", Type::Invoke, F::LinRead, h.op);
        inv.node = Some(node);
        inv.client = Some(1);
        inv.since = Some(T0);
        h.push(inv);
        let mut done = Event::new("c2", Type::Ok, F::LinRead, h.op);
        done.node = Some(node);
        done.read = Some(elements.to_vec());
        h.push(done);
        h.op
    }

    #[test]
    fn linearizable_reads_see_every_earlier_acknowledged_write() {
        let (mut h, points) = base();
        lin_read(&mut h, 2, &[1, 2, 3]);
        let r = check(&h.events, &replicas(points.clone()), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(
            (
                r.linearizable_reads.ok,
                r.linearizable_reads.elements_checked
            ),
            (1, 3)
        );

        // Missing element 2, acknowledged before the read began.
        let read = lin_read(&mut h, 3, &[1, 3]);
        let r = check(&h.events, &replicas(points.clone()), 10.0);
        assert!(!r.valid);
        assert_eq!(r.linearizable_reads.stale, 1);
        let a = &r.linearizable_reads.stale_reads[0];
        assert_eq!((a.read_op, a.node, a.elements.clone()), (read, 3, vec![2]));
        assert_eq!(a.writes[0].op, 2);
    }

    #[test]
    fn linearizable_reads_may_miss_concurrent_writes_but_never_see_failed_ones() {
        let (mut h, points) = base();
        // A write invoked before the read and acknowledged after it began: either is fine.
        h.op += 1;
        let w = h.op;
        let mut inv = Event::new("c1", Type::Invoke, F::Write, w);
        inv.write = Some(WriteValue::plain(1, vec![9], vec![T0 + 9]));
        h.push(inv);
        h.op += 1;
        let read = h.op;
        let mut rinv = Event::new("c2", Type::Invoke, F::LinRead, read);
        rinv.client = Some(1);
        rinv.since = Some(T0);
        h.push(rinv);
        h.push(Event::new("c1", Type::Ok, F::Write, w));
        let mut rdone = Event::new("c2", Type::Ok, F::LinRead, read);
        rdone.node = Some(1);
        rdone.read = Some(vec![1, 2, 3]);
        h.push(rdone);
        let f = h.write(&[8], Type::Fail);
        let mut pts = points;
        pts.push(H::point(w, 9));
        let r = check(&h.events, &replicas(pts.clone()), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        lin_read(&mut h, 1, &[1, 2, 3, 8, 9]);
        let r = check(&h.events, &replicas(pts), 10.0);
        assert_eq!(r.linearizable_reads.saw_failed, 1);
        assert_eq!(r.linearizable_reads.saw_failed_reads[0].writes[0].op, f);
        assert!(!r.valid);
    }

    /// A `DELETE` of the main measurement's points stamped in `[T0 + from, T0 + to)`,
    /// invoked now; completed at once unless `outcome` is `None`.
    fn main_delete(h: &mut H, from: i64, to: i64, outcome: Option<Type>) -> u64 {
        h.op += 1;
        let mut inv = Event::new("s0", Type::Invoke, F::Schema, h.op);
        inv.schema = Some(crate::schema::SchemaValue {
            client: 0,
            statement: String::new(),
            db_param: crate::influx::DATABASE.into(),
            op: crate::schema::SchemaOp::Delete {
                db: crate::influx::DATABASE.into(),
                measurement: Some(MEASUREMENT.into()),
                from: T0 + from,
                to: T0 + to,
            },
        });
        h.push(inv);
        if let Some(o) = outcome {
            h.push(Event::new("s0", o, F::Schema, h.op));
        }
        h.op
    }

    #[test]
    fn elements_acknowledged_before_a_successful_delete_over_them_are_gone() {
        let (mut h, mut points) = base();
        // Elements 2 and 3 (stamped T0 + 2 and T0 + 3), acknowledged before it began.
        main_delete(&mut h, 2, 3, Some(Type::Ok));
        points.retain(|p| p.element() != Some(2));
        let r = check(&h.events, &replicas(points.clone()), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        // Half of the batch [2, 3] gone is no torn write, and 2 is not lost.
        assert_eq!((r.lost, r.torn, r.deletes.ok), (0, 0, 1));
        assert_eq!(r.deletes.must_be_deleted, 1);
        // Still there, on every replica alike: the delete did not take.
        points.push(H::point(2, 2));
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(!r.valid);
        assert_eq!(r.deletes.deleted_present_elements, vec![2]);
        assert_eq!(r.divergent, 0);
    }

    #[test]
    fn a_delete_that_may_have_come_after_a_write_may_remove_it() {
        let (mut h, points) = base();
        // Indeterminate: element 1 may be gone or not, but alike everywhere.
        main_delete(&mut h, 1, 2, Some(Type::Info));
        let without: Vec<Point> = points
            .iter()
            .filter(|p| p.element() != Some(1))
            .cloned()
            .collect();
        for pts in [points.clone(), without.clone()] {
            let r = check(&h.events, &replicas(pts), 10.0);
            assert!(r.valid, "{:?}", r.problems);
            assert_eq!(r.deletes.may_be_deleted, 1);
        }
        let mut reads = replicas(points.clone());
        reads[0].points = without;
        let r = check(&h.events, &reads, 10.0);
        assert!(!r.valid);
        assert_eq!((r.divergent, r.lost), (1, 0));

        // A write concurrent with a successful delete over it: either way.
        let mut h = H::new();
        let a = h.write(&[1], Type::Ok);
        h.op += 1;
        let w = h.op;
        let mut inv = Event::new("c1", Type::Invoke, F::Write, w);
        inv.write = Some(WriteValue::plain(1, vec![5], vec![T0 + 5]));
        h.push(inv);
        main_delete(&mut h, 5, 6, Some(Type::Ok));
        h.push(Event::new("c1", Type::Ok, F::Write, w));
        for pts in [vec![H::point(a, 1)], vec![H::point(a, 1), H::point(w, 5)]] {
            let r = check(&h.events, &replicas(pts), 10.0);
            assert!(r.valid, "{:?}", r.problems);
        }
        // A failed write stays absent, delete or not.
        let f = h.write(&[6], Type::Fail);
        main_delete(&mut h, 6, 7, Some(Type::Ok));
        let r = check(
            &h.events,
            &replicas(vec![H::point(a, 1), H::point(f, 6)]),
            10.0,
        );
        assert_eq!(r.failed_present, 1);
    }

    #[test]
    fn a_write_invoked_after_a_delete_completed_must_be_present() {
        let mut h = H::new();
        main_delete(&mut h, 0, 100, Some(Type::Ok));
        let a = h.write(&[1], Type::Ok);
        let r = check(&h.events, &replicas(vec![H::point(a, 1)]), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(r.deletes.may_be_deleted + r.deletes.must_be_deleted, 0);
        let r = check(&h.events, &replicas(vec![]), 10.0);
        assert_eq!(r.lost, 1);
        assert!(!r.valid);
    }

    #[test]
    fn linearizable_reads_may_miss_what_a_delete_begun_before_their_end_removed() {
        let (mut h, mut points) = base();
        main_delete(&mut h, 2, 3, Some(Type::Ok));
        points.retain(|p| p.element() != Some(2));
        lin_read(&mut h, 1, &[1, 3]);
        let r = check(&h.events, &replicas(points.clone()), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(r.linearizable_reads.elements_checked, 2);
        // Element 3 is outside the range: missing it is stale.
        lin_read(&mut h, 1, &[1]);
        let r = check(&h.events, &replicas(points), 10.0);
        assert_eq!(r.linearizable_reads.stale, 1);
        assert_eq!(r.linearizable_reads.stale_reads[0].elements, vec![3]);
    }

    #[test]
    fn scratch_measurements_in_the_main_database_are_not_unexpected() {
        let (h, mut points) = base();
        points.push(crate::schema::scratch_point("scratch_m_0_1", 0, 1, T0));
        let r = check(&h.events, &replicas(points), 10.0);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(r.unexpected, 0);
    }

    #[test]
    fn quantiles_pick_ranks() {
        let q = quantiles((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((q.min, q.p50, q.p90, q.max), (1.0, 51.0, 90.0, 100.0));
        assert!(quantiles(vec![]).is_none());
    }
}
