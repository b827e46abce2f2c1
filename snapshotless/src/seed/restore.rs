//! The node side of a seed: a [`Copy`] restored into this node's empty influxd, database by
//! database with `influxd restore -portable`; what that leaves out re-created; the result
//! checked against the copy; and only then the marker written, which is what says the
//! restore is complete.
//!
//! A restore that stops half-way (influxd or this process died, the tool was killed) leaves
//! databases and no marker, so nothing mistakes it for a finished one: [`check_empty`]
//! refuses such an influxd, and the way back is [`wipe_for_seed`], then [`restore`] again.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::imported;
use super::meta::Database;
use super::query::{databases, exec, rows, show};
use super::users::{self, Passwords};
use super::{Copy, SeedError, Tools};
use crate::influxd::{quote_ident, Influxd};
use crate::marker::{self, Marker, Written};

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The marker now in influxd: replay the log from `marker.index + 1`.
    pub marker: Marker,
    pub databases: Vec<String>,
    pub continuous_queries: usize,
    pub users: Vec<String>,
    /// Users created with a password nobody knows (see [`Passwords`]).
    pub locked_users: Vec<String>,
}

/// Databases a seed never takes from a copy: influxd's own monitoring, which each influxd
/// writes for itself, and the marker's, which says how far the *source* had got.
fn not_copied(db: &str) -> bool {
    db == "_internal" || db == marker::DATABASE
}

/// Restores `copy` into `influxd` (reached at `rpc_addr` by influxd's tools, and over HTTP
/// with admin credentials if it checks them), which must be empty ([`check_empty`]). The
/// marker the copy covers is written last, once everything else is in place and checked.
pub async fn restore(
    tools: &Tools,
    rpc_addr: &str,
    influxd: &Influxd,
    copy: &Copy,
    passwords: &Passwords,
) -> Result<Restored, SeedError> {
    copy.check_no_deletes()?;
    check_empty(influxd).await?;
    let meta = copy.meta();
    let dbs: Vec<&Database> = meta
        .databases
        .iter()
        .filter(|d| !not_copied(&d.name))
        .collect();
    // The marker's database first, as on every replica (its applier creates it before
    // anything is applied), so that influxd lists databases in the same order everywhere.
    // It holds no marker until the end.
    marker::create_database(influxd).await?;
    for db in &dbs {
        restore_database(tools, rpc_addr, copy.dir(), db).await?;
    }
    imported::wait(influxd, copy, &dbs, tools.timeout).await?;
    let mut continuous_queries = 0;
    for db in &dbs {
        for cq in &db.continuous_queries {
            let shown = format!("continuous query {} on {}", cq.name, db.name);
            exec(influxd, &cq.query, &db.name, &shown).await?;
            continuous_queries += 1;
        }
    }
    let users = users::restore(influxd, &meta.users, passwords).await?;
    verify(influxd, &dbs, &meta.users).await?;
    marker::create_database(influxd).await?;
    if marker::write(influxd, copy.marker()).await? == Written::DatabaseMissing {
        return Err(SeedError::Verify("the marker database vanished".into()));
    }
    tracing::info!(
        marker = copy.marker().index,
        databases = dbs.len(),
        locked_users = ?users.locked,
        "influxd restored from a seed"
    );
    Ok(Restored {
        marker: copy.marker(),
        databases: dbs.iter().map(|d| d.name.clone()).collect(),
        continuous_queries,
        users: users.users,
        locked_users: users.locked,
    })
}

async fn restore_database(
    tools: &Tools,
    rpc_addr: &str,
    dir: &Path,
    db: &Database,
) -> Result<(), SeedError> {
    let run = tools.restore(rpc_addr, &db.name, dir).await?;
    // influxd's restore counts the shards it mapped and calls a database without any a
    // failure ("DB metadata not changed"), although it did create it; verify() checks that.
    let no_shards = db.shards() == 0 && run.output.contains("DB metadata not changed");
    if run.success || no_shards {
        Ok(())
    } else {
        Err(run.into_error("restore"))
    }
}

/// Whether `influxd` can take a seed: it holds no database besides `_internal` (its own
/// monitoring) and a `_gateway` without a marker (what the node's applier creates first
/// thing on an empty influxd). Users do not count: the applier's account is needed to get
/// here, and the restore re-creates the copy's.
pub async fn check_empty(influxd: &Influxd) -> Result<(), SeedError> {
    let mut held = Vec::new();
    for db in databases(influxd).await? {
        let empty =
            db == "_internal" || (db == marker::DATABASE && marker::read(influxd).await?.is_none());
        if !empty {
            held.push(db);
        }
    }
    if held.is_empty() {
        Ok(())
    } else {
        Err(SeedError::NotEmpty { databases: held })
    }
}

/// Drops every database but `_internal`, so that `influxd` can take a seed; returns their
/// names. For a node that must be seeded and whose influxd is not empty: a restore that
/// stopped half-way, data from an old backup. The marker's database goes first, so that if
/// this stops half-way too, what is left holds no marker claiming the rest. Users are kept.
pub async fn wipe_for_seed(influxd: &Influxd) -> Result<Vec<String>, SeedError> {
    let mut dbs: Vec<String> = databases(influxd)
        .await?
        .into_iter()
        .filter(|d| d != "_internal")
        .collect();
    dbs.sort_by_key(|d| d != marker::DATABASE);
    for db in &dbs {
        let q = format!("DROP DATABASE {}", quote_ident(db));
        exec(influxd, &q, "", &q).await?;
    }
    tracing::warn!(dropped = ?dbs, "influxd wiped for a seed");
    Ok(dbs)
}

/// Checks that influxd now holds what the copy describes: its databases and no others, their
/// retention policies and default one, their continuous queries, its users, admins and grants.
/// The points are influxd's own restore's, each shard checked by `imported::wait`.
async fn verify(
    influxd: &Influxd,
    dbs: &[&Database],
    users: &[super::meta::User],
) -> Result<(), SeedError> {
    let differs = |what: String| Err(SeedError::Verify(what));
    let held: BTreeSet<String> = databases(influxd)
        .await?
        .into_iter()
        .filter(|d| !not_copied(d))
        .collect();
    let copied: BTreeSet<String> = dbs.iter().map(|d| d.name.clone()).collect();
    if held != copied {
        return differs(format!("databases {held:?}, the copy has {copied:?}"));
    }
    let mut cqs: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
    for s in show(influxd, "SHOW CONTINUOUS QUERIES").await? {
        let pairs = s.rows.iter().filter_map(|r| {
            Some((
                r.first()?.as_str()?.to_owned(),
                r.get(1)?.as_str()?.to_owned(),
            ))
        });
        cqs.entry(s.name).or_default().extend(pairs);
    }
    for db in dbs {
        let q = format!("SHOW RETENTION POLICIES ON {}", quote_ident(&db.name));
        // name, duration, shardGroupDuration, replicaN, default
        let held: BTreeSet<(String, u64, bool)> = rows(influxd, &q)
            .await?
            .iter()
            .filter_map(|r| {
                let name = r.first()?.as_str()?.to_owned();
                Some((name, r.get(3)?.as_u64()?, r.get(4)?.as_bool()?))
            })
            .collect();
        let copied: BTreeSet<(String, u64, bool)> = db
            .retention_policies
            .iter()
            .map(|rp| {
                let default = rp.name == db.default_retention_policy;
                (rp.name.clone(), u64::from(rp.replica_n), default)
            })
            .collect();
        if held != copied {
            return differs(format!("{}: policies {held:?}, copy {copied:?}", db.name));
        }
        let copied: BTreeSet<(String, String)> = db
            .continuous_queries
            .iter()
            .map(|cq| (cq.name.clone(), cq.query.clone()))
            .collect();
        let held = cqs.remove(&db.name).unwrap_or_default();
        if held != copied {
            return differs(format!("{}: continuous queries {held:?}", db.name));
        }
    }
    let admins = users::admins(influxd).await?;
    for u in users {
        match admins.get(&u.name) {
            None => return differs(format!("user {} is missing", u.name)),
            Some(false) if u.admin => return differs(format!("{} is not an admin", u.name)),
            Some(_) => {}
        }
        let q = format!("SHOW GRANTS FOR {}", quote_ident(&u.name));
        let held: BTreeSet<(String, String)> = rows(influxd, &q)
            .await?
            .iter()
            .filter_map(|r| Some((r.first()?.as_str()?.to_owned(), r.get(1)?.as_str()?.into())))
            .collect();
        for p in &u.privileges {
            let grant = (p.database.clone(), users::shown(p.privilege).to_owned());
            if !held.contains(&grant) {
                return differs(format!("{} lacks {grant:?}", u.name));
            }
        }
    }
    Ok(())
}
