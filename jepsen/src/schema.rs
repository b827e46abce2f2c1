//! The schema workload: beside the writes, clients change what the replicas hold other than
//! points of the main workload, through random nodes: scratch databases created, written
//! into and dropped; retention policies created, altered and dropped; scratch measurements
//! dropped; ranges of the main workload's timestamped points deleted; users, passwords and
//! grants; continuous queries.
//!
//! Every name is new (a client's number and a counter), so an outcome never depends on what
//! another client did with the same name, and the checker can judge each object by the
//! operations on it alone. The statements avoid what would make replicas differ by design
//! (README, "Series metadata" and "What is not guaranteed"): points are written into the
//! `autogen` policy only, which is never dropped, so a dropped policy never held points;
//! nothing is written old enough to fall out of a policy; continuous queries read a
//! measurement that never receives points, so they never write anything; and the main
//! workload's default policy is never altered, dropped or displaced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::API_PORT;
use crate::history::{Event, Recorder, Type, F};
use crate::influx::{Point, DATABASE, MEASUREMENT};
use crate::netns::{ip, NODES};
use crate::workload::{self, wall_ns};

/// Every database, retention policy, measurement, user and continuous query of this
/// workload starts with it; nothing of the main workload does.
pub const SCRATCH: &str = "scratch_";
/// The policy scratch points go to: created with every database, never dropped or altered.
pub const AUTOGEN: &str = "autogen";
/// A measurement no one writes: what continuous queries read, so they never write.
const NEVER_WRITTEN: &str = "scratch_never_written";

/// What a schema operation does, for the checker: each statement's object and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum SchemaOp {
    CreateDatabase {
        db: String,
    },
    DropDatabase {
        db: String,
    },
    CreateRp {
        db: String,
        rp: String,
        duration: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard_duration: Option<String>,
        default: bool,
    },
    AlterRp {
        db: String,
        rp: String,
        duration: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard_duration: Option<String>,
        default: bool,
    },
    DropRp {
        db: String,
        rp: String,
    },
    DropMeasurement {
        db: String,
        measurement: String,
    },
    /// `DELETE [FROM measurement] WHERE time >= from AND time < to`.
    Delete {
        db: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        measurement: Option<String>,
        from: i64,
        to: i64,
    },
    CreateUser {
        user: String,
        admin: bool,
    },
    DropUser {
        user: String,
    },
    SetPassword {
        user: String,
    },
    /// `GRANT privilege ON db TO user`, or with no database `GRANT ALL PRIVILEGES TO user`.
    Grant {
        user: String,
        privilege: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        db: Option<String>,
    },
    Revoke {
        user: String,
        privilege: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        db: Option<String>,
    },
    CreateCq {
        db: String,
        name: String,
    },
    DropCq {
        db: String,
        name: String,
    },
    /// Points into a scratch measurement (in the main database or a scratch one), through
    /// `/write`.
    Write {
        db: String,
        rp: String,
        points: Vec<Point>,
    },
}

/// A schema operation as the history holds it: who sent it, the statement (or line
/// protocol) as sent, the `db` parameter, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub client: u32,
    pub statement: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub db_param: String,
    #[serde(flatten)]
    pub op: SchemaOp,
}

impl SchemaOp {
    /// The statement's name, for counts and the report.
    pub fn name(&self) -> &'static str {
        match self {
            SchemaOp::CreateDatabase { .. } => "create-database",
            SchemaOp::DropDatabase { .. } => "drop-database",
            SchemaOp::CreateRp { .. } => "create-retention-policy",
            SchemaOp::AlterRp { .. } => "alter-retention-policy",
            SchemaOp::DropRp { .. } => "drop-retention-policy",
            SchemaOp::DropMeasurement { .. } => "drop-measurement",
            SchemaOp::Delete { db, .. } if db == DATABASE => "delete-main",
            SchemaOp::Delete { .. } => "delete-scratch",
            SchemaOp::CreateUser { .. } => "create-user",
            SchemaOp::DropUser { .. } => "drop-user",
            SchemaOp::SetPassword { .. } => "set-password",
            SchemaOp::Grant { .. } => "grant",
            SchemaOp::Revoke { .. } => "revoke",
            SchemaOp::CreateCq { .. } => "create-continuous-query",
            SchemaOp::DropCq { .. } => "drop-continuous-query",
            SchemaOp::Write { .. } => "write-scratch",
        }
    }

    /// The InfluxQL statement and the `db` parameter it is sent with; `None` for a write.
    pub fn statement(&self) -> Option<(String, String)> {
        let q = |s: &str| format!("\"{s}\"");
        let none = String::new();
        let stmt = match self {
            SchemaOp::CreateDatabase { db } => (format!("CREATE DATABASE {}", q(db)), none),
            SchemaOp::DropDatabase { db } => (format!("DROP DATABASE {}", q(db)), none),
            SchemaOp::CreateRp {
                db,
                rp,
                duration,
                shard_duration,
                default,
            } => (
                format!(
                    "CREATE RETENTION POLICY {} ON {} DURATION {duration} REPLICATION 1{}{}",
                    q(rp),
                    q(db),
                    shard_duration
                        .as_ref()
                        .map_or(String::new(), |s| format!(" SHARD DURATION {s}")),
                    if *default { " DEFAULT" } else { "" }
                ),
                none,
            ),
            SchemaOp::AlterRp {
                db,
                rp,
                duration,
                shard_duration,
                default,
            } => (
                format!(
                    "ALTER RETENTION POLICY {} ON {} DURATION {duration}{}{}",
                    q(rp),
                    q(db),
                    shard_duration
                        .as_ref()
                        .map_or(String::new(), |s| format!(" SHARD DURATION {s}")),
                    if *default { " DEFAULT" } else { "" }
                ),
                none,
            ),
            SchemaOp::DropRp { db, rp } => (
                format!("DROP RETENTION POLICY {} ON {}", q(rp), q(db)),
                none,
            ),
            SchemaOp::DropMeasurement { db, measurement } => {
                (format!("DROP MEASUREMENT {}", q(measurement)), db.clone())
            }
            SchemaOp::Delete {
                db,
                measurement,
                from,
                to,
            } => (
                format!(
                    "DELETE{} WHERE time >= {from} AND time < {to}",
                    measurement
                        .as_ref()
                        .map_or(String::new(), |m| format!(" FROM {}", q(m)))
                ),
                db.clone(),
            ),
            SchemaOp::CreateUser { user, admin } => (
                format!(
                    "CREATE USER {} WITH PASSWORD '{}'{}",
                    q(user),
                    password(user, 0),
                    if *admin { " WITH ALL PRIVILEGES" } else { "" }
                ),
                none,
            ),
            SchemaOp::DropUser { user } => (format!("DROP USER {}", q(user)), none),
            SchemaOp::SetPassword { user } => (
                format!("SET PASSWORD FOR {} = '{}'", q(user), password(user, 1)),
                none,
            ),
            SchemaOp::Grant {
                user,
                privilege,
                db,
            } => match db {
                Some(db) => (
                    format!("GRANT {privilege} ON {} TO {}", q(db), q(user)),
                    none,
                ),
                None => (format!("GRANT ALL PRIVILEGES TO {}", q(user)), none),
            },
            SchemaOp::Revoke {
                user,
                privilege,
                db,
            } => match db {
                Some(db) => (
                    format!("REVOKE {privilege} ON {} FROM {}", q(db), q(user)),
                    none,
                ),
                None => (format!("REVOKE ALL PRIVILEGES FROM {}", q(user)), none),
            },
            SchemaOp::CreateCq { db, name } => (
                format!(
                    "CREATE CONTINUOUS QUERY {} ON {} BEGIN SELECT count(\"v\") INTO {}.{}.{} \
                     FROM {}.{}.{} GROUP BY time(1h) END",
                    q(name),
                    q(db),
                    q(db),
                    q(AUTOGEN),
                    q(&format!("{name}_out")),
                    q(db),
                    q(AUTOGEN),
                    q(NEVER_WRITTEN)
                ),
                none,
            ),
            SchemaOp::DropCq { db, name } => (
                format!("DROP CONTINUOUS QUERY {} ON {}", q(name), q(db)),
                none,
            ),
            SchemaOp::Write { .. } => return None,
        };
        Some(stmt)
    }
}

fn password(user: &str, generation: u32) -> String {
    format!("pw{generation}-{user}")
}

/// A statement's outcome from the gateway's answer. influxd answers a statement it refuses
/// with 200 and an `error` in the statement's result: through the gateway that answer comes
/// after the statement went through the log, and every replica refused it alike (their
/// states are the same), so it changed nothing: a definite failure. Other statuses as for
/// writes ([`workload::classify`]): 4xx and 503 changed nothing, 500 and timeouts may have.
/// A 200 whose body cannot be read is indeterminate.
pub fn classify_statement(
    result: Result<ureq::Response, ureq::Error>,
) -> (Type, Option<u16>, Option<String>) {
    match result {
        Ok(r) if r.status() == 200 => match r.into_string() {
            Ok(body) => {
                let (kind, error) = statement_answer(&body);
                (kind, Some(200), error)
            }
            Err(e) => (
                Type::Info,
                Some(200),
                Some(format!("reading the answer: {e}")),
            ),
        },
        other => workload::classify(other),
    }
}

/// Judges a 200 answer to a query of one statement.
fn statement_answer(body: &str) -> (Type, Option<String>) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return (Type::Info, Some(format!("not JSON: {body}")));
    };
    let result = v
        .get("results")
        .and_then(Value::as_array)
        .and_then(|r| r.first());
    match result {
        Some(r) => match r.get("error").and_then(Value::as_str) {
            Some(e) => (Type::Fail, Some(e.to_owned())),
            None => (Type::Ok, None),
        },
        None => (Type::Info, Some(format!("no statement result: {body}"))),
    }
}

pub struct SchemaSettings {
    /// Operations per second over all schema clients; 0: none.
    pub rate: f64,
    pub clients: u32,
    pub client_timeout: Duration,
    pub time_limit: Duration,
    pub seed: u64,
}

/// What one schema client believes exists, from its own outcomes (an indeterminate create
/// counts as done, and so does an indeterminate drop: later statements on it may fail, which
/// is harmless).
#[derive(Default)]
struct Model {
    next: u64,
    next_point: i64,
    last_time: i64,
    dbs: Vec<ScratchDb>,
    /// Retention policies and scratch measurements in the main database.
    main: ScratchDb,
    users: Vec<String>,
}

#[derive(Default, Clone)]
struct ScratchDb {
    name: String,
    rps: Vec<String>,
    measurements: Vec<String>,
    cqs: Vec<String>,
    /// Timestamps of points written into it, to aim deletes at.
    times: Vec<i64>,
}

/// Durations and shard durations a policy is given: from an hour (influxd's least) to
/// infinite, the shard duration never longer than the duration.
const DURATIONS: &[(&str, Option<&str>)] = &[
    ("2h", Some("1h")),
    ("1d", Some("1h")),
    ("3d", None),
    ("7d", Some("1d")),
    ("30d", Some("2d")),
    ("INF", None),
    ("INF", Some("7d")),
];
const PRIVILEGES: &[&str] = &["READ", "WRITE", "ALL"];

pub struct SchemaWorkload {
    pub settings: SchemaSettings,
    /// The main workload, told of deletes of its points.
    main: Arc<workload::Workload>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    started: Instant,
}

impl SchemaWorkload {
    pub fn new(
        settings: SchemaSettings,
        main: Arc<workload::Workload>,
        recorder: Arc<Recorder>,
        stop: Arc<AtomicBool>,
    ) -> SchemaWorkload {
        SchemaWorkload {
            settings,
            main,
            recorder,
            stop,
            started: Instant::now(),
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.started.elapsed() < self.settings.time_limit
    }

    /// One schema client: an operation on a random node, then a pause, until the time limit.
    pub fn client(&self, client: u32) {
        let mut rng = StdRng::seed_from_u64(
            self.settings
                .seed
                .wrapping_mul(0x9e37_79b9)
                .wrapping_add(u64::from(client) + 1),
        );
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(1))
            .timeout(self.settings.client_timeout)
            .build();
        let process = format!("s{client}");
        let mut model = Model::default();
        self.pace(&mut rng);
        while self.running() {
            let op = next_op(client, &mut model, &mut rng);
            let node = rng.gen_range(1..=NODES);
            let kind = self.perform(&agent, &process, client, node, &op);
            model.learn(&op, kind);
            self.pace(&mut rng);
        }
    }

    /// Sends `op` through `node`, recording its invocation and completion; its outcome.
    fn perform(
        &self,
        agent: &ureq::Agent,
        process: &str,
        client: u32,
        node: u8,
        op: &SchemaOp,
    ) -> Type {
        let id = self.recorder.op_id();
        let (statement, db_param) = match op {
            SchemaOp::Write { points, .. } => (
                points
                    .iter()
                    .map(Point::line)
                    .collect::<Vec<_>>()
                    .join("\n"),
                String::new(),
            ),
            _ => op.statement().expect("a statement"),
        };
        let mut invoke = Event::new(process, Type::Invoke, F::Schema, id);
        invoke.node = Some(node);
        invoke.schema = Some(SchemaValue {
            client,
            statement: statement.clone(),
            db_param: db_param.clone(),
            op: op.clone(),
        });
        self.recorder.record(invoke);
        if let SchemaOp::Delete { db, from, to, .. } = op {
            if db == DATABASE {
                self.main.deleting(*from, *to);
            }
        }
        let base = format!("http://{}:{API_PORT}", ip(node));
        let (kind, status, error) = match op {
            SchemaOp::Write { db, rp, .. } => workload::classify(
                agent
                    .post(&format!("{base}/write"))
                    .query("db", db)
                    .query("rp", rp)
                    .query("precision", "ns")
                    .send_string(&statement),
            ),
            _ => {
                let mut form = vec![("q", statement.as_str())];
                if !db_param.is_empty() {
                    form.push(("db", db_param.as_str()));
                }
                classify_statement(agent.post(&format!("{base}/query")).send_form(&form))
            }
        };
        let mut done = Event::new(process, kind, F::Schema, id);
        done.node = Some(node);
        done.status = status;
        done.error = error;
        self.recorder.record(done);
        kind
    }

    /// A uniformly random pause averaging one operation per client per `clients / rate`.
    fn pace(&self, rng: &mut StdRng) {
        let mean = f64::from(self.settings.clients.max(1)) / self.settings.rate.max(1e-3);
        let until = Instant::now() + Duration::from_secs_f64(rng.gen_range(0.0..2.0 * mean));
        while self.running() && Instant::now() < until {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
        }
    }
}

impl Model {
    fn name(&mut self, client: u32, what: &str) -> String {
        self.next += 1;
        format!("{SCRATCH}{what}_{client}_{}", self.next)
    }

    /// Strictly increasing timestamps of the client's own points, near the present.
    fn time(&mut self) -> i64 {
        self.last_time = (self.last_time + 1).max(wall_ns());
        self.last_time
    }

    fn db_mut(&mut self, db: &str) -> Option<&mut ScratchDb> {
        if db == DATABASE {
            return Some(&mut self.main);
        }
        self.dbs.iter_mut().find(|d| d.name == db)
    }

    /// What the client believes after `op` ended with `kind`.
    fn learn(&mut self, op: &SchemaOp, kind: Type) {
        let created = kind != Type::Fail;
        match op {
            SchemaOp::CreateDatabase { db } if created => self.dbs.push(ScratchDb {
                name: db.clone(),
                ..ScratchDb::default()
            }),
            SchemaOp::DropDatabase { db } if created => self.dbs.retain(|d| &d.name != db),
            SchemaOp::CreateRp { db, rp, .. } if created => {
                if let Some(d) = self.db_mut(db) {
                    d.rps.push(rp.clone());
                }
            }
            SchemaOp::DropRp { db, rp } if created => {
                if let Some(d) = self.db_mut(db) {
                    d.rps.retain(|r| r != rp);
                }
            }
            SchemaOp::DropMeasurement { db, measurement } if created => {
                if let Some(d) = self.db_mut(db) {
                    d.measurements.retain(|m| m != measurement);
                }
            }
            SchemaOp::CreateUser { user, .. } if created => self.users.push(user.clone()),
            SchemaOp::DropUser { user } if created => self.users.retain(|u| u != user),
            SchemaOp::CreateCq { db, name } if created => {
                if let Some(d) = self.db_mut(db) {
                    d.cqs.push(name.clone());
                }
            }
            SchemaOp::DropCq { db, name } if created => {
                if let Some(d) = self.db_mut(db) {
                    d.cqs.retain(|c| c != name);
                }
            }
            _ => {}
        }
    }
}

/// The next operation of a client, picked at random among those its model allows.
fn next_op(client: u32, m: &mut Model, rng: &mut StdRng) -> SchemaOp {
    loop {
        let roll = rng.gen_range(0..100);
        if let Some(op) = try_op(client, m, rng, roll) {
            return op;
        }
    }
}

/// The operation of the `roll`-th percentile, if the model allows it.
fn try_op(client: u32, m: &mut Model, rng: &mut StdRng, roll: u32) -> Option<SchemaOp> {
    // Databases (scratch ones, or the main one for policies and scratch measurements).
    let any_db = |m: &Model, rng: &mut StdRng| -> Option<String> {
        if m.dbs.is_empty() || rng.gen_bool(0.3) {
            Some(DATABASE.to_owned())
        } else {
            m.dbs.choose(rng).map(|d| d.name.clone())
        }
    };
    Some(match roll {
        0..=7 if m.dbs.len() < 4 => SchemaOp::CreateDatabase {
            db: m.name(client, "db"),
        },
        8..=11 if m.dbs.len() > 1 => SchemaOp::DropDatabase {
            db: m.dbs.choose(rng)?.name.clone(),
        },
        12..=31 => {
            let db = any_db(m, rng)?;
            let time = m.time();
            let fresh = m.name(client, "m");
            let d = m.db_mut(&db)?;
            if d.measurements.is_empty() || rng.gen_bool(0.2) {
                d.measurements.push(fresh);
            }
            let measurement = d.measurements.choose(rng)?.clone();
            let n = rng.gen_range(1..=4);
            let mut points = Vec::with_capacity(n);
            for i in 0..n {
                m.next_point += 1;
                let t = time + i as i64;
                points.push(scratch_point(&measurement, client, m.next_point, t));
            }
            m.last_time = time + n as i64;
            let d = m.db_mut(&db)?;
            d.times.extend(points.iter().map(|p| p.time));
            SchemaOp::Write {
                db,
                rp: AUTOGEN.to_owned(),
                points,
            }
        }
        32..=41 => {
            let db = any_db(m, rng)?;
            let rp = m.name(client, "rp");
            let (duration, shard) = *DURATIONS.choose(rng)?;
            SchemaOp::CreateRp {
                // Never the main database's default: its writes name no policy.
                default: db != DATABASE && rng.gen_bool(0.3),
                db,
                rp,
                duration: duration.to_owned(),
                shard_duration: shard.map(str::to_owned),
            }
        }
        42..=46 => {
            let db = any_db(m, rng)?;
            let rp = m.db_mut(&db)?.rps.choose(rng)?.clone();
            let (duration, shard) = *DURATIONS.choose(rng)?;
            SchemaOp::AlterRp {
                default: db != DATABASE && rng.gen_bool(0.3),
                db,
                rp,
                duration: duration.to_owned(),
                shard_duration: shard.map(str::to_owned),
            }
        }
        47..=51 => {
            let db = any_db(m, rng)?;
            let rp = m.db_mut(&db)?.rps.choose(rng)?.clone();
            SchemaOp::DropRp { db, rp }
        }
        52..=55 => {
            let db = any_db(m, rng)?;
            let d = m.db_mut(&db)?;
            let measurement = d.measurements.choose(rng)?.clone();
            SchemaOp::DropMeasurement { db, measurement }
        }
        56..=65 => {
            // A stretch of the main workload's recent timestamped points: a few seconds
            // old, so some of its writes have been answered and some may still be in
            // flight.
            let to = wall_ns() - rng.gen_range(2_000_000_000..20_000_000_000);
            let from = to - rng.gen_range(100_000_000..1_000_000_000);
            SchemaOp::Delete {
                db: DATABASE.to_owned(),
                measurement: Some(MEASUREMENT.to_owned()),
                from,
                to,
            }
        }
        66..=70 => {
            let d = m.dbs.choose(rng)?;
            let (&a, &b) = (d.times.choose(rng)?, d.times.choose(rng)?);
            let measurement = if rng.gen_bool(0.7) {
                Some(d.measurements.choose(rng)?.clone())
            } else {
                None
            };
            SchemaOp::Delete {
                db: d.name.clone(),
                measurement,
                from: a.min(b),
                to: a.max(b) + 1,
            }
        }
        71..=76 if m.users.len() < 6 => SchemaOp::CreateUser {
            user: m.name(client, "user"),
            admin: rng.gen_bool(0.2),
        },
        77..=79 => SchemaOp::DropUser {
            user: m.users.choose(rng)?.clone(),
        },
        80..=82 => SchemaOp::SetPassword {
            user: m.users.choose(rng)?.clone(),
        },
        83..=90 => {
            let user = m.users.choose(rng)?.clone();
            let admin = rng.gen_bool(0.15);
            let db = if admin {
                None
            } else {
                Some(m.dbs.choose(rng)?.name.clone())
            };
            let privilege = if admin {
                "ALL".to_owned()
            } else {
                (*PRIVILEGES.choose(rng)?).to_owned()
            };
            if roll <= 87 {
                SchemaOp::Grant {
                    user,
                    privilege,
                    db,
                }
            } else {
                SchemaOp::Revoke {
                    user,
                    privilege,
                    db,
                }
            }
        }
        91..=95 => {
            let db = m.dbs.choose(rng)?.name.clone();
            SchemaOp::CreateCq {
                name: m.name(client, "cq"),
                db,
            }
        }
        96..=99 => {
            let d = m.dbs.choose(rng)?;
            SchemaOp::DropCq {
                db: d.name.clone(),
                name: d.cqs.choose(rng)?.clone(),
            }
        }
        _ => return None,
    })
}

/// A point of a scratch measurement: its own id and time, so every point is one of a kind.
pub fn scratch_point(measurement: &str, client: u32, id: i64, time: i64) -> Point {
    Point {
        measurement: measurement.to_owned(),
        tags: [("c".to_owned(), client.to_string())].into(),
        time,
        fields: [
            ("id".to_owned(), Value::from(id)),
            ("v".to_owned(), Value::from(id as f64 + 0.25)),
        ]
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_written_as_influxd_reads_them() {
        let s = |op: SchemaOp| op.statement().unwrap();
        assert_eq!(
            s(SchemaOp::CreateRp {
                db: "d".into(),
                rp: "r".into(),
                duration: "7d".into(),
                shard_duration: Some("1d".into()),
                default: true
            })
            .0,
            "CREATE RETENTION POLICY \"r\" ON \"d\" DURATION 7d REPLICATION 1 SHARD DURATION 1d DEFAULT"
        );
        assert_eq!(
            s(SchemaOp::Delete {
                db: "jepsen".into(),
                measurement: Some("set".into()),
                from: 5,
                to: 9
            }),
            (
                "DELETE FROM \"set\" WHERE time >= 5 AND time < 9".to_owned(),
                "jepsen".to_owned()
            )
        );
        assert_eq!(
            s(SchemaOp::Grant {
                user: "u".into(),
                privilege: "ALL".into(),
                db: None
            })
            .0,
            "GRANT ALL PRIVILEGES TO \"u\""
        );
        assert!(s(SchemaOp::CreateCq {
            db: "d".into(),
            name: "c".into()
        })
        .0
        .contains("FROM \"d\".\"autogen\".\"scratch_never_written\""));
    }

    #[test]
    fn a_statement_refused_by_influxd_is_a_definite_failure() {
        assert_eq!(
            statement_answer(r#"{"results":[{"statement_id":0}]}"#),
            (Type::Ok, None)
        );
        assert_eq!(
            statement_answer(r#"{"results":[{"statement_id":0,"error":"user not found"}]}"#),
            (Type::Fail, Some("user not found".into()))
        );
        assert_eq!(statement_answer("<html>").0, Type::Info);
        assert_eq!(statement_answer(r#"{"results":[]}"#).0, Type::Info);
    }

    #[test]
    fn operations_round_trip_through_json() {
        let v = SchemaValue {
            client: 1,
            statement: "DROP USER \"u\"".into(),
            db_param: String::new(),
            op: SchemaOp::DropUser { user: "u".into() },
        };
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains("\"op\":\"drop-user\""), "{text}");
        assert_eq!(serde_json::from_str::<SchemaValue>(&text).unwrap(), v);
    }

    #[test]
    fn clients_never_touch_the_main_default_policy_or_the_reserved_database() {
        let mut m = Model::default();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..5_000 {
            let op = next_op(1, &mut m, &mut rng);
            let (q, db) = op.statement().unwrap_or_default();
            assert!(!q.contains("_gateway") && db != "_gateway", "{q}");
            match &op {
                SchemaOp::CreateRp { db, default, .. } | SchemaOp::AlterRp { db, default, .. } => {
                    assert!(!(db == DATABASE && *default), "{q}")
                }
                SchemaOp::DropRp { rp, .. } => assert!(rp.starts_with(SCRATCH)),
                SchemaOp::DropDatabase { db } => assert_ne!(db, DATABASE),
                SchemaOp::DropMeasurement { measurement, .. } => {
                    assert!(measurement.starts_with(SCRATCH))
                }
                SchemaOp::Delete {
                    db, measurement, ..
                } if db == DATABASE => {
                    assert_eq!(measurement.as_deref(), Some(MEASUREMENT))
                }
                SchemaOp::Write { rp, points, .. } => {
                    assert_eq!(rp, AUTOGEN);
                    assert!(points.iter().all(|p| p.measurement.starts_with(SCRATCH)));
                }
                _ => {}
            }
            m.learn(&op, Type::Ok);
        }
    }
}
