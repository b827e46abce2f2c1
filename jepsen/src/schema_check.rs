//! The schema checker: every replica must hold the same databases, retention policies,
//! users and grants, continuous queries, series and points of every policy; and what the
//! schema workload's operations did must show. Objects are judged by the operations on
//! their names alone (names are never reused by another client):
//!
//! - created (ok) with no drop that may come after (ok or info, not completed before the
//!   create was invoked): present on every replica;
//! - dropped (ok) with no create that may come after: absent from every replica;
//! - a scratch point acknowledged, with nothing that may have removed it after (its
//!   database, policy or measurement dropped, a `DELETE` over it): present, as written; a
//!   scratch point whose write failed: absent.
//!
//! `DELETE`s of the main workload's points are judged with the main workload's elements
//! (see [`MainDeletes`], used by the checker).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checker::FinalRead;
use crate::history::{Event, Type, F};
use crate::influx::{Point, DATABASE, MEASUREMENT};
use crate::schema::{SchemaOp, SchemaValue, AUTOGEN, SCRATCH};

/// How many differences and violations are listed (the counts are always complete).
const LIST_LIMIT: usize = 500;

/// One thing two replicas hold differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// What: `retention policy db.rp`, `user u`, `series db.rp key`, `point db.rp key@time`...
    pub what: String,
    /// The replica compared with (the first one read), and the one that differs from it.
    pub nodes: [u8; 2],
    /// What each holds; null: nothing.
    pub values: [Value; 2],
}

/// Something a replica holds (or lacks) against what the operations say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub what: String,
    pub rule: String,
    /// The operations the rule rests on.
    pub ops: Vec<u64>,
    pub nodes: Vec<u8>,
}

/// `DELETE`s of the main workload's points and what they did to its elements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeleteStats {
    pub ok: usize,
    pub failed: usize,
    pub indeterminate: usize,
    /// Elements in the range of a delete that may have come after their write: they may
    /// be missing (alike on every replica).
    pub may_be_deleted: usize,
    pub may_be_deleted_present: usize,
    /// Acknowledged before a successful delete over them began: they must be gone.
    pub must_be_deleted: usize,
    /// Of those, still on some replica (invalid).
    pub deleted_present: usize,
    pub deleted_present_elements: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaCheck {
    /// Operation name -> outcome -> count.
    pub ops: BTreeMap<String, BTreeMap<String, usize>>,
    /// Objects (policies, users, queries, series, points...) compared between replicas.
    pub compared: usize,
    pub differences: usize,
    pub difference_list: Vec<Difference>,
    pub violations: usize,
    pub violation_list: Vec<Violation>,
    /// Objects the rules required present / absent, and scratch points checked.
    pub required_present: usize,
    pub required_absent: usize,
    pub scratch_points_checked: usize,
}

/// A schema operation: its invocation, outcome and completion time.
pub struct SchemaOpRef<'a> {
    pub invoke: &'a Event,
    pub value: &'a SchemaValue,
    pub outcome: Type,
    pub completed: Option<u64>,
}

impl SchemaOpRef<'_> {
    fn id(&self) -> u64 {
        self.invoke.op
    }

    /// Whether this operation may have taken effect.
    fn may_have_happened(&self) -> bool {
        self.outcome != Type::Fail
    }

    /// Whether it certainly ended before `other` began.
    fn before(&self, other: &SchemaOpRef<'_>) -> bool {
        self.completed.is_some_and(|t| t < other.invoke.time)
    }
}

/// Pairs each schema invocation with its completion; one never completed is indeterminate.
pub fn schema_ops(history: &[Event]) -> Vec<SchemaOpRef<'_>> {
    let done: HashMap<u64, &Event> = history
        .iter()
        .filter(|e| e.f == F::Schema && e.kind != Type::Invoke)
        .map(|e| (e.op, e))
        .collect();
    history
        .iter()
        .filter(|e| e.f == F::Schema && e.kind == Type::Invoke)
        .filter_map(|invoke| {
            let value = invoke.schema.as_ref()?;
            let c = done.get(&invoke.op);
            Some(SchemaOpRef {
                invoke,
                value,
                outcome: c.map_or(Type::Info, |c| c.kind),
                completed: c.map(|c| c.time),
            })
        })
        .collect()
}

/// What a main-workload element's timestamp and write make of the `DELETE`s over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// No delete may have removed it: judged as if there were none.
    Kept,
    /// A delete over it may have come after its write: present or absent, alike everywhere.
    Maybe,
    /// Acknowledged before a successful delete over it began: must be absent.
    Deleted,
}

struct Range {
    from: i64,
    to: i64,
    invoked: u64,
    completed: Option<u64>,
    ok: bool,
}

/// The `DELETE`s over the main workload's timestamped measurement that may have happened.
#[derive(Default)]
pub struct MainDeletes {
    ranges: Vec<Range>,
}

impl MainDeletes {
    pub fn new(history: &[Event]) -> MainDeletes {
        let ranges = schema_ops(history)
            .into_iter()
            .filter(SchemaOpRef::may_have_happened)
            .filter_map(|o| match &o.value.op {
                SchemaOp::Delete {
                    db,
                    measurement,
                    from,
                    to,
                } if db == DATABASE && measurement.as_deref().is_none_or(|m| m == MEASUREMENT) => {
                    Some(Range {
                        from: *from,
                        to: *to,
                        invoked: o.invoke.time,
                        completed: o.completed,
                        ok: o.outcome == Type::Ok,
                    })
                }
                _ => None,
            })
            .collect();
        MainDeletes { ranges }
    }

    fn covering(&self, ts: i64) -> impl Iterator<Item = &Range> {
        self.ranges
            .iter()
            .filter(move |r| r.from <= ts && ts < r.to)
    }

    /// The fate of an element stamped `ts`, written by a write invoked at `invoked` and
    /// completed at `completed` (run times), acknowledged or not.
    pub fn fate(&self, ts: i64, invoked: u64, completed: Option<u64>, acknowledged: bool) -> Fate {
        let mut fate = Fate::Kept;
        for r in self.covering(ts) {
            if r.completed.is_some_and(|c| c < invoked) {
                // The write came after the delete: the delete cannot touch it.
                continue;
            }
            if r.ok && acknowledged && completed.is_some_and(|c| c < r.invoked) {
                return Fate::Deleted;
            }
            fate = Fate::Maybe;
        }
        fate
    }

    /// Whether a delete over `ts` may have taken effect before run time `t`: a read that
    /// ended then may miss the element.
    pub fn may_hide(&self, ts: i64, t: u64) -> bool {
        self.covering(ts).any(|r| r.invoked < t)
    }

    /// Whether any delete that may have happened covers `ts`.
    pub fn covers(&self, ts: i64) -> bool {
        self.covering(ts).next().is_some()
    }

    pub fn count(history: &[Event], stats: &mut DeleteStats) {
        for o in schema_ops(history) {
            if matches!(&o.value.op, SchemaOp::Delete { db, .. } if db == DATABASE) {
                match o.outcome {
                    Type::Ok => stats.ok += 1,
                    Type::Fail => stats.failed += 1,
                    _ => stats.indeterminate += 1,
                }
            }
        }
    }
}

/// Compares the replicas and judges the schema operations.
pub fn check(history: &[Event], reads: &[FinalRead]) -> SchemaCheck {
    let ops = schema_ops(history);
    let mut out = SchemaCheck::default();
    for o in &ops {
        *out.ops
            .entry(o.value.op.name().to_owned())
            .or_default()
            .entry(format!("{:?}", o.outcome).to_lowercase())
            .or_default() += 1;
    }
    differences(reads, &mut out);
    lifecycles(&ops, reads, &mut out);
    scratch_points(&ops, reads, &mut out);
    out
}

/// Problems, in words, for the verdict.
pub fn problems(s: &SchemaCheck, deletes: &DeleteStats) -> Vec<String> {
    let mut p = Vec::new();
    if s.differences > 0 {
        p.push(format!(
            "{} schema objects or scratch points differ between replicas",
            s.differences
        ));
    }
    if s.violations > 0 {
        p.push(format!(
            "{} schema objects or scratch points contradict the operations",
            s.violations
        ));
    }
    if deletes.deleted_present > 0 {
        p.push(format!(
            "{} elements present although a successful DELETE began after their write was acknowledged",
            deletes.deleted_present
        ));
    }
    p
}

/// Everything a replica holds beyond the main workload's points, flattened: what -> value.
fn flatten(read: &FinalRead) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    let c = &read.catalog;
    for db in &read.databases {
        m.insert(format!("database {db}"), Value::Bool(true));
    }
    for (db, rps) in &c.retention_policies {
        for (rp, v) in rps {
            m.insert(
                format!("retention policy {db}.{rp}"),
                serde_json::to_value(v).unwrap_or_default(),
            );
        }
    }
    for (u, v) in &c.users {
        m.insert(
            format!("user {u}"),
            serde_json::to_value(v).unwrap_or_default(),
        );
    }
    for (db, cqs) in &c.continuous_queries {
        for (name, q) in cqs {
            m.insert(
                format!("continuous query {db}.{name}"),
                Value::String(q.clone()),
            );
        }
    }
    for (at, keys) in &c.series {
        for k in keys {
            m.insert(format!("series {at} {k}"), Value::Bool(true));
        }
    }
    for (at, points) in &c.points {
        for p in points {
            m.insert(
                format!("point {at} {}@{}", p.series(), p.time),
                serde_json::to_value(&p.fields).unwrap_or_default(),
            );
        }
    }
    m
}

/// Each replica against the first one read, object by object.
fn differences(reads: &[FinalRead], out: &mut SchemaCheck) {
    let Some(first) = reads.first() else {
        return;
    };
    let base = flatten(first);
    let mut differing = BTreeSet::new();
    let mut all = base.keys().cloned().collect::<BTreeSet<_>>();
    for read in &reads[1..] {
        let other = flatten(read);
        all.extend(other.keys().cloned());
        let keys: BTreeSet<&String> = base.keys().chain(other.keys()).collect();
        for k in keys {
            let (a, b) = (base.get(k), other.get(k));
            if a != b {
                differing.insert(k.clone());
                if out.difference_list.len() < LIST_LIMIT {
                    out.difference_list.push(Difference {
                        what: k.clone(),
                        nodes: [first.node, read.node],
                        values: [
                            a.cloned().unwrap_or(Value::Null),
                            b.cloned().unwrap_or(Value::Null),
                        ],
                    });
                }
            }
        }
    }
    out.compared = all.len();
    out.differences = differing.len();
}

/// Whether a replica holds an object.
type Holds<'a> = Box<dyn Fn(&FinalRead) -> bool + 'a>;

/// A named object: the operations that create it, those that remove it, and whether a
/// replica holds it.
struct Object<'a, 'h> {
    what: String,
    creates: Vec<&'a SchemaOpRef<'h>>,
    removes: Vec<&'a SchemaOpRef<'h>>,
    holds: Holds<'a>,
}

fn lifecycles(ops: &[SchemaOpRef<'_>], reads: &[FinalRead], out: &mut SchemaCheck) {
    let mut objects: BTreeMap<String, Object<'_, '_>> = BTreeMap::new();
    let drops_of_db = |db: &str| -> Vec<&SchemaOpRef<'_>> {
        ops.iter()
            .filter(|o| matches!(&o.value.op, SchemaOp::DropDatabase { db: d } if d == db))
            .collect()
    };
    for o in ops {
        let (key, create, holds): (String, bool, Holds<'_>) = match &o.value.op {
            SchemaOp::CreateDatabase { db } | SchemaOp::DropDatabase { db } => {
                let d = db.clone();
                (
                    format!("database {db}"),
                    matches!(o.value.op, SchemaOp::CreateDatabase { .. }),
                    Box::new(move |r: &FinalRead| r.databases.contains(&d)),
                )
            }
            SchemaOp::CreateRp { db, rp, .. } | SchemaOp::DropRp { db, rp } => {
                let (d, p) = (db.clone(), rp.clone());
                (
                    format!("retention policy {db}.{rp}"),
                    matches!(o.value.op, SchemaOp::CreateRp { .. }),
                    Box::new(move |r: &FinalRead| {
                        r.catalog
                            .retention_policies
                            .get(&d)
                            .is_some_and(|rps| rps.contains_key(&p))
                    }),
                )
            }
            SchemaOp::CreateUser { user, .. } | SchemaOp::DropUser { user } => {
                let u = user.clone();
                (
                    format!("user {user}"),
                    matches!(o.value.op, SchemaOp::CreateUser { .. }),
                    Box::new(move |r: &FinalRead| r.catalog.users.contains_key(&u)),
                )
            }
            SchemaOp::CreateCq { db, name } | SchemaOp::DropCq { db, name } => {
                let (d, n) = (db.clone(), name.clone());
                (
                    format!("continuous query {db}.{name}"),
                    matches!(o.value.op, SchemaOp::CreateCq { .. }),
                    Box::new(move |r: &FinalRead| {
                        r.catalog
                            .continuous_queries
                            .get(&d)
                            .is_some_and(|c| c.contains_key(&n))
                    }),
                )
            }
            _ => continue,
        };
        let object = objects.entry(key.clone()).or_insert_with(|| Object {
            what: key,
            creates: Vec::new(),
            removes: Vec::new(),
            holds,
        });
        if create {
            object.creates.push(o);
        } else {
            object.removes.push(o);
        }
    }
    // A policy or a continuous query goes with its database.
    for object in objects.values_mut() {
        let db = object.creates.iter().find_map(|o| match &o.value.op {
            SchemaOp::CreateRp { db, .. } | SchemaOp::CreateCq { db, .. } => Some(db.clone()),
            _ => None,
        });
        if let Some(db) = db {
            object.removes.extend(drops_of_db(&db));
        }
    }
    for object in objects.values() {
        judge(object, reads, out);
    }
}

/// The two rules of one object.
fn judge(object: &Object<'_, '_>, reads: &[FinalRead], out: &mut SchemaCheck) {
    let created = object.creates.iter().find(|c| {
        c.outcome == Type::Ok
            && object
                .removes
                .iter()
                .filter(|r| r.may_have_happened())
                .all(|r| r.before(c))
    });
    let dropped = object.removes.iter().find(|r| {
        r.outcome == Type::Ok
            && object
                .creates
                .iter()
                .filter(|c| c.may_have_happened())
                .all(|c| c.before(r))
    });
    let mut violate = |rule: &str, op: u64, nodes: Vec<u8>| {
        out.violations += 1;
        if out.violation_list.len() < LIST_LIMIT {
            out.violation_list.push(Violation {
                what: object.what.clone(),
                rule: rule.to_owned(),
                ops: vec![op],
                nodes,
            });
        }
    };
    if let Some(c) = created {
        out.required_present += 1;
        let missing: Vec<u8> = reads
            .iter()
            .filter(|r| !(object.holds)(r))
            .map(|r| r.node)
            .collect();
        if !missing.is_empty() {
            violate(
                "created, and not dropped after: must be present",
                c.id(),
                missing,
            );
        }
    }
    if let Some(d) = dropped {
        out.required_absent += 1;
        let present: Vec<u8> = reads
            .iter()
            .filter(|r| (object.holds)(r))
            .map(|r| r.node)
            .collect();
        if !present.is_empty() {
            violate(
                "dropped, and not created after: must be absent",
                d.id(),
                present,
            );
        }
    }
}

/// Where a replica holds a scratch point: (db.rp, series, time) -> fields.
type PointIndex<'a> = HashMap<(String, String, i64), &'a BTreeMap<String, Value>>;

fn point_index(read: &FinalRead) -> PointIndex<'_> {
    let mut index = HashMap::new();
    let main = format!("{DATABASE}.{AUTOGEN}");
    let scratch_in_main = read
        .points
        .iter()
        .filter(|p| p.measurement.starts_with(SCRATCH))
        .map(|p| (main.clone(), p));
    let elsewhere = read
        .catalog
        .points
        .iter()
        .flat_map(|(at, ps)| ps.iter().map(move |p| (at.clone(), p)));
    for (at, p) in scratch_in_main.chain(elsewhere) {
        index.insert((at, p.series(), p.time), &p.fields);
    }
    index
}

/// Whether `o` may remove point `p` of database `db`, policy `rp`.
fn removes(o: &SchemaOpRef<'_>, db: &str, rp: &str, p: &Point) -> bool {
    match &o.value.op {
        SchemaOp::DropDatabase { db: d } => d == db,
        SchemaOp::DropRp { db: d, rp: r } => d == db && r == rp,
        SchemaOp::DropMeasurement {
            db: d,
            measurement: m,
        } => d == db && *m == p.measurement,
        SchemaOp::Delete {
            db: d,
            measurement,
            from,
            to,
        } => {
            d == db
                && measurement.as_ref().is_none_or(|m| *m == p.measurement)
                && *from <= p.time
                && p.time < *to
        }
        _ => false,
    }
}

/// Acknowledged scratch points nothing may have removed since are on every replica, as
/// written; points of failed writes are on none.
fn scratch_points(ops: &[SchemaOpRef<'_>], reads: &[FinalRead], out: &mut SchemaCheck) {
    let indexes: Vec<(u8, PointIndex<'_>)> =
        reads.iter().map(|r| (r.node, point_index(r))).collect();
    for w in ops {
        let SchemaOp::Write { db, rp, points } = &w.value.op else {
            continue;
        };
        if w.outcome == Type::Info {
            continue;
        }
        for p in points {
            let kept = ops
                .iter()
                .filter(|o| o.may_have_happened() && removes(o, db, rp, p))
                .all(|o| o.before(w));
            let key = (format!("{db}.{rp}"), p.series(), p.time);
            let (rule, bad): (&str, Vec<u8>) = match w.outcome {
                Type::Ok if kept => (
                    "acknowledged and not removed after: must be present as written",
                    indexes
                        .iter()
                        .filter(|(_, ix)| ix.get(&key) != Some(&&p.fields))
                        .map(|(n, _)| *n)
                        .collect(),
                ),
                Type::Fail => (
                    "its write failed: must be absent",
                    indexes
                        .iter()
                        .filter(|(_, ix)| ix.contains_key(&key))
                        .map(|(n, _)| *n)
                        .collect(),
                ),
                _ => continue,
            };
            out.scratch_points_checked += 1;
            if !bad.is_empty() {
                out.violations += 1;
                if out.violation_list.len() < LIST_LIMIT {
                    out.violation_list.push(Violation {
                        what: format!("point {} {}@{}", key.0, key.1, key.2),
                        rule: rule.to_owned(),
                        ops: vec![w.id()],
                        nodes: bad,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, RetentionPolicy, User};
    use crate::schema::scratch_point;

    /// Builds histories of schema operations by hand.
    struct H {
        events: Vec<Event>,
        op: u64,
        t: u64,
    }

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
            self.events.push(e);
        }

        fn invoke(&mut self, op: SchemaOp) -> u64 {
            self.op += 1;
            let mut e = Event::new("s0", Type::Invoke, F::Schema, self.op);
            e.schema = Some(SchemaValue {
                client: 0,
                statement: String::new(),
                db_param: String::new(),
                op,
            });
            self.push(e);
            self.op
        }

        fn complete(&mut self, op: u64, outcome: Type) {
            self.push(Event::new("s0", outcome, F::Schema, op));
        }

        /// An operation invoked and completed at once.
        fn run(&mut self, op: SchemaOp, outcome: Type) -> u64 {
            let id = self.invoke(op);
            self.complete(id, outcome);
            id
        }
    }

    fn db(name: &str) -> String {
        name.to_owned()
    }

    fn rp(d: &str, r: &str) -> SchemaOp {
        SchemaOp::CreateRp {
            db: db(d),
            rp: r.into(),
            duration: "1d".into(),
            shard_duration: None,
            default: false,
        }
    }

    /// Three replicas holding the same databases and catalog.
    fn replicas(databases: &[&str], catalog: Catalog) -> Vec<FinalRead> {
        (1..=3)
            .map(|node| FinalRead {
                node,
                points: Vec::new(),
                databases: databases.iter().map(|d| d.to_string()).collect(),
                catalog: catalog.clone(),
            })
            .collect()
    }

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            duration: "24h0m0s".into(),
            shard_group_duration: "1h0m0s".into(),
            replication: 1,
            default: false,
        }
    }

    #[test]
    fn replicas_holding_the_same_schema_agree() {
        let mut c = Catalog::default();
        c.retention_policies
            .insert("d".into(), [("r".to_owned(), policy())].into());
        c.series.insert("d.autogen".into(), vec!["m,c=1".into()]);
        let s = check(&[], &replicas(&["d"], c));
        assert_eq!((s.differences, s.violations), (0, 0));
        assert_eq!(s.compared, 3);
    }

    #[test]
    fn every_kind_of_difference_is_reported_with_both_values() {
        let mut c = Catalog::default();
        c.retention_policies
            .insert("d".into(), [("r".to_owned(), policy())].into());
        c.users.insert(
            "u".into(),
            User {
                admin: false,
                grants: [("d".to_owned(), "READ".to_owned())].into(),
            },
        );
        c.continuous_queries.insert(
            "d".into(),
            [("q".to_owned(), "CREATE ...".to_owned())].into(),
        );
        c.series.insert("d.autogen".into(), vec!["m,c=1".into()]);
        c.points
            .insert("d.autogen".into(), vec![scratch_point("m", 1, 1, 5)]);
        let mut reads = replicas(&["d"], c);
        let other = &mut reads[2].catalog;
        other
            .retention_policies
            .get_mut("d")
            .unwrap()
            .get_mut("r")
            .unwrap()
            .duration = "48h0m0s".into();
        other
            .users
            .get_mut("u")
            .unwrap()
            .grants
            .insert("d".into(), "ALL PRIVILEGES".into());
        other.continuous_queries.clear();
        other
            .series
            .get_mut("d.autogen")
            .unwrap()
            .push("m,c=2".into());
        other.points.get_mut("d.autogen").unwrap()[0]
            .fields
            .insert("v".into(), Value::from(0.5));
        reads[1].databases.push("e".into());
        let s = check(&[], &reads);
        let whats: Vec<&str> = s.difference_list.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(s.differences, 6, "{whats:?}");
        for w in [
            "database e",
            "retention policy d.r",
            "user u",
            "continuous query d.q",
            "series d.autogen m,c=2",
            "point d.autogen m,c=1@5",
        ] {
            assert!(whats.contains(&w), "{w} in {whats:?}");
        }
        let cq = s
            .difference_list
            .iter()
            .find(|d| d.what == "continuous query d.q")
            .unwrap();
        assert_eq!(cq.nodes, [1, 3]);
        assert_eq!(cq.values, [Value::from("CREATE ..."), Value::Null]);
        assert!(!problems(&s, &DeleteStats::default()).is_empty());
    }

    #[test]
    fn a_created_database_never_dropped_must_be_present() {
        let mut h = H::new();
        let c = h.run(SchemaOp::CreateDatabase { db: db("d") }, Type::Ok);
        // A drop that failed changes nothing.
        h.run(SchemaOp::DropDatabase { db: db("d") }, Type::Fail);
        let s = check(&h.events, &replicas(&["d"], Catalog::default()));
        assert_eq!((s.required_present, s.violations), (1, 0));
        let mut reads = replicas(&["d"], Catalog::default());
        reads[1].databases.clear();
        let s = check(&h.events, &reads);
        assert_eq!(s.violations, 1);
        assert_eq!(s.violation_list[0].ops, vec![c]);
        assert_eq!(s.violation_list[0].nodes, vec![2]);
    }

    #[test]
    fn a_dropped_database_not_created_again_must_be_absent() {
        let mut h = H::new();
        h.run(SchemaOp::CreateDatabase { db: db("d") }, Type::Ok);
        let d = h.run(SchemaOp::DropDatabase { db: db("d") }, Type::Ok);
        let s = check(&h.events, &replicas(&[], Catalog::default()));
        assert_eq!(
            (s.required_present, s.required_absent, s.violations),
            (0, 1, 0)
        );
        let s = check(&h.events, &replicas(&["d"], Catalog::default()));
        assert_eq!(s.violations, 1);
        assert_eq!(s.violation_list[0].ops, vec![d]);
        assert_eq!(s.violation_list[0].nodes, vec![1, 2, 3]);
    }

    #[test]
    fn a_drop_that_may_have_happened_leaves_either_outcome() {
        let mut h = H::new();
        h.run(SchemaOp::CreateDatabase { db: db("d") }, Type::Ok);
        h.run(SchemaOp::DropDatabase { db: db("d") }, Type::Info);
        for dbs in [&["d"][..], &[]] {
            let s = check(&h.events, &replicas(dbs, Catalog::default()));
            assert_eq!(
                (s.required_present, s.required_absent, s.violations),
                (0, 0, 0)
            );
        }
    }

    #[test]
    fn a_create_concurrent_with_a_drop_leaves_either_outcome() {
        let mut h = H::new();
        h.run(SchemaOp::CreateDatabase { db: db("d") }, Type::Ok);
        let drop = h.invoke(SchemaOp::DropDatabase { db: db("d") });
        let create = h.invoke(SchemaOp::CreateDatabase { db: db("d") });
        h.complete(drop, Type::Ok);
        h.complete(create, Type::Ok);
        for dbs in [&["d"][..], &[]] {
            let s = check(&h.events, &replicas(dbs, Catalog::default()));
            assert_eq!(s.violations, 0);
        }
        // Created again once the drop completed: must be there.
        h.run(SchemaOp::CreateDatabase { db: db("d") }, Type::Ok);
        let s = check(&h.events, &replicas(&[], Catalog::default()));
        assert_eq!(s.violations, 1);
    }

    #[test]
    fn policies_and_continuous_queries_go_with_their_database() {
        let mut h = H::new();
        h.run(SchemaOp::CreateDatabase { db: db("d") }, Type::Ok);
        h.run(rp("d", "r"), Type::Ok);
        h.run(
            SchemaOp::CreateCq {
                db: db("d"),
                name: "q".into(),
            },
            Type::Ok,
        );
        h.run(rp("d", "r2"), Type::Ok);
        h.run(
            SchemaOp::DropRp {
                db: db("d"),
                rp: "r2".into(),
            },
            Type::Ok,
        );
        let mut c = Catalog::default();
        c.retention_policies
            .insert("d".into(), [("r".to_owned(), policy())].into());
        c.continuous_queries.insert(
            "d".into(),
            [("q".to_owned(), "CREATE ...".to_owned())].into(),
        );
        let s = check(&h.events, &replicas(&["d"], c.clone()));
        assert_eq!(s.violations, 0, "{:?}", s.violation_list);
        assert_eq!((s.required_present, s.required_absent), (3, 1));
        // Without the policy or the query on one replica.
        let mut reads = replicas(&["d"], c.clone());
        reads[0].catalog.retention_policies.clear();
        reads[2].catalog.continuous_queries.clear();
        let s = check(&h.events, &reads);
        let whats: Vec<&str> = s.violation_list.iter().map(|v| v.what.as_str()).collect();
        assert_eq!(whats, ["continuous query d.q", "retention policy d.r"]);
        // The dropped policy still there.
        let mut with_r2 = c.clone();
        with_r2
            .retention_policies
            .get_mut("d")
            .unwrap()
            .insert("r2".into(), policy());
        assert_eq!(check(&h.events, &replicas(&["d"], with_r2)).violations, 1);
        // Dropping the database takes the policy and the query with it.
        h.run(SchemaOp::DropDatabase { db: db("d") }, Type::Ok);
        let s = check(&h.events, &replicas(&[], Catalog::default()));
        assert_eq!(s.violations, 0, "{:?}", s.violation_list);
        let s = check(&h.events, &replicas(&[], c));
        assert_eq!(s.violations, 2);
    }

    #[test]
    fn users_created_and_dropped() {
        let mut h = H::new();
        h.run(
            SchemaOp::CreateUser {
                user: "u".into(),
                admin: false,
            },
            Type::Ok,
        );
        h.run(
            SchemaOp::CreateUser {
                user: "v".into(),
                admin: true,
            },
            Type::Ok,
        );
        h.run(SchemaOp::DropUser { user: "v".into() }, Type::Ok);
        let user = User {
            admin: false,
            grants: BTreeMap::new(),
        };
        let mut c = Catalog::default();
        c.users.insert("u".into(), user.clone());
        assert_eq!(check(&h.events, &replicas(&[], c.clone())).violations, 0);
        c.users.insert("v".into(), user);
        let s = check(&h.events, &replicas(&[], c));
        assert_eq!(s.violations, 1);
        assert_eq!(s.violation_list[0].what, "user v");
        assert_eq!(
            check(&h.events, &replicas(&[], Catalog::default())).violations,
            1
        );
    }

    fn write(h: &mut H, d: &str, points: Vec<Point>, outcome: Type) -> u64 {
        h.run(
            SchemaOp::Write {
                db: db(d),
                rp: AUTOGEN.into(),
                points,
            },
            outcome,
        )
    }

    fn with_points(points: Vec<Point>) -> Vec<FinalRead> {
        let mut c = Catalog::default();
        c.points.insert("d.autogen".into(), points);
        replicas(&["d"], c)
    }

    #[test]
    fn acknowledged_scratch_points_are_kept_unless_removed_after() {
        let mut h = H::new();
        let (a, b, f) = (
            scratch_point("m", 0, 1, 10),
            scratch_point("n", 0, 2, 20),
            scratch_point("m", 0, 3, 30),
        );
        write(&mut h, "d", vec![a.clone()], Type::Ok);
        write(&mut h, "d", vec![b.clone()], Type::Ok);
        write(&mut h, "d", vec![f.clone()], Type::Fail);
        let s = check(&h.events, &with_points(vec![a.clone(), b.clone()]));
        assert_eq!((s.scratch_points_checked, s.violations), (3, 0));
        // Lost, or altered, or a failed one present.
        let s = check(&h.events, &with_points(vec![b.clone()]));
        assert_eq!(s.violations, 1);
        let mut altered = a.clone();
        altered.fields.insert("v".into(), Value::from(9.0));
        assert_eq!(
            check(&h.events, &with_points(vec![altered, b.clone()])).violations,
            1
        );
        assert_eq!(
            check(&h.events, &with_points(vec![a.clone(), b.clone(), f])).violations,
            1
        );
        // A DELETE over `a` and a DROP MEASUREMENT of `n` that may have happened excuse
        // their absence; a failed one does not.
        h.run(
            SchemaOp::Delete {
                db: db("d"),
                measurement: Some("m".into()),
                from: 5,
                to: 11,
            },
            Type::Info,
        );
        h.run(
            SchemaOp::DropMeasurement {
                db: db("d"),
                measurement: "n".into(),
            },
            Type::Fail,
        );
        let s = check(&h.events, &with_points(vec![b]));
        assert_eq!(s.violations, 0, "{:?}", s.violation_list);
        let s = check(&h.events, &with_points(vec![]));
        assert_eq!(s.violations, 1);
        assert!(s.violation_list[0].what.contains("n,c=0@20"));
    }

    #[test]
    fn scratch_points_in_the_main_database_are_found_among_its_points() {
        let mut h = H::new();
        let p = scratch_point("scratch_m_0_1", 0, 1, 10);
        h.run(
            SchemaOp::Write {
                db: db(DATABASE),
                rp: AUTOGEN.into(),
                points: vec![p.clone()],
            },
            Type::Ok,
        );
        let mut reads = replicas(&[DATABASE], Catalog::default());
        for r in &mut reads {
            r.points.push(p.clone());
        }
        assert_eq!(check(&h.events, &reads).violations, 0);
        reads[0].points.clear();
        assert_eq!(check(&h.events, &reads).violations, 1);
    }

    fn delete(h: &mut H, from: i64, to: i64) -> u64 {
        h.invoke(SchemaOp::Delete {
            db: db(DATABASE),
            measurement: Some(MEASUREMENT.into()),
            from,
            to,
        })
    }

    #[test]
    fn the_fate_of_main_elements_under_deletes() {
        let mut h = H::new();
        // A write acknowledged at 2 ms, a delete over [10, 20) from 3 to 4 ms.
        let d = delete(&mut h, 10, 20);
        h.complete(d, Type::Ok);
        let del = MainDeletes::new(&h.events);
        let (invoked, completed) = (h.events[0].time, h.events[1].time);
        assert_eq!(del.fate(5, 0, Some(500_000), true), Fate::Kept);
        // Acknowledged before the delete began: gone.
        assert_eq!(del.fate(15, 0, Some(500_000), true), Fate::Deleted);
        // Not acknowledged (indeterminate): it may have been applied after the delete.
        assert_eq!(del.fate(15, 0, Some(500_000), false), Fate::Maybe);
        // Concurrent with the delete.
        assert_eq!(
            del.fate(15, invoked - 1, Some(invoked + 1), true),
            Fate::Maybe
        );
        // Invoked after the delete completed: untouched.
        assert_eq!(
            del.fate(15, completed + 1, Some(completed + 2), true),
            Fate::Kept
        );
        assert!(del.covers(19) && !del.covers(20));
        assert!(del.may_hide(15, invoked + 1) && !del.may_hide(15, invoked));

        // A delete that may have happened never makes an element certainly gone.
        let mut h = H::new();
        let d = delete(&mut h, 10, 20);
        h.complete(d, Type::Info);
        let del = MainDeletes::new(&h.events);
        assert_eq!(del.fate(15, 0, Some(500_000), true), Fate::Maybe);
        // A failed one is no delete at all.
        let mut h = H::new();
        let d = delete(&mut h, 10, 20);
        h.complete(d, Type::Fail);
        assert_eq!(
            MainDeletes::new(&h.events).fate(15, 0, Some(1), true),
            Fate::Kept
        );
        let mut stats = DeleteStats::default();
        MainDeletes::count(&h.events, &mut stats);
        assert_eq!((stats.ok, stats.failed, stats.indeterminate), (0, 1, 0));
    }
}
