//! Waiting until influxd has really taken what `influxd restore` sent. The tool exits once it
//! has sent the last shard, while influxd may still be importing it (the shard disabled
//! meanwhile), and an import that fails there is only logged by influxd (see
//! `seed/shards.rs`). A restored shard counts as imported when it holds at least the TSM bytes
//! its archive brought, and then answers queries: influxd enables it only after its import.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::meta::Database;
use super::query::{exec, show};
use super::shards::rfc3339;
use super::{Copy, SeedError};
use crate::influxd::{quote_ident, Influxd};

/// A restored shard, found again by what the restore keeps: its database, retention policy
/// and start time (its id is new).
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Clone)]
struct Place {
    db: String,
    rp: String,
    start: String,
}

/// Waits, at most `timeout`, until every shard of `dbs` in `copy` is imported.
pub(crate) async fn wait(
    influxd: &Influxd,
    copy: &Copy,
    dbs: &[&Database],
    timeout: Duration,
) -> Result<(), SeedError> {
    let expected = expected(copy, dbs)?;
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        let Some(last) = pending(influxd, &expected).await? else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(SeedError::Verify(format!(
                "influxd did not finish importing within {timeout:?}: {last}"
            )));
        }
        tokio::time::sleep(delay).await;
        // The node is not serving meanwhile: every moment this waits after the import
        // finished is a moment longer the node is out, and a check is a few cheap queries.
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Where each shard archive of `dbs` goes, and the TSM bytes it brings.
fn expected(copy: &Copy, dbs: &[&Database]) -> Result<HashMap<Place, u64>, SeedError> {
    let mut places = HashMap::new();
    for s in copy.shards() {
        let Some(db) = dbs.iter().find(|d| d.name == s.database) else {
            continue;
        };
        let start = db
            .shard_start(&s.policy, s.shard_id)
            .ok_or_else(|| SeedError::Backup(format!("{} is not in the meta store", s.file)))?;
        let place = Place {
            db: s.database.clone(),
            rp: s.policy.clone(),
            start: rfc3339(start),
        };
        *places.entry(place).or_default() += s.tsm_bytes;
    }
    Ok(places)
}

/// What is not imported yet, if anything. The bytes first, then the queries: a shard that
/// holds its bytes and answers has finished its import, as it is disabled throughout.
async fn pending(
    influxd: &Influxd,
    expected: &HashMap<Place, u64>,
) -> Result<Option<String>, SeedError> {
    let ids = shard_ids(influxd).await?;
    let bytes = disk_bytes(influxd).await?;
    for (place, &want) in expected {
        let Some(id) = ids.get(place) else {
            return Ok(Some(format!("no shard for {place:?}")));
        };
        let held = bytes.get(id).copied().unwrap_or(0);
        if held < want {
            return Ok(Some(format!(
                "shard {id} ({place:?}) holds {held} of {want} bytes"
            )));
        }
    }
    let policies: BTreeSet<(&str, &str)> = expected
        .keys()
        .map(|p| (p.db.as_str(), p.rp.as_str()))
        .collect();
    for (db, rp) in policies {
        let q = format!(
            "SELECT * FROM {}.{}./.*/ LIMIT 1",
            quote_ident(db),
            quote_ident(rp)
        );
        match exec(influxd, &q, db, &q).await {
            Ok(_) => {}
            Err(SeedError::Query { error, .. }) if error.contains("shard is disabled") => {
                return Ok(Some(format!("{db}.{rp}: {error}")));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// SHOW SHARDS: each shard's id by where it is.
async fn shard_ids(influxd: &Influxd) -> Result<HashMap<Place, u64>, SeedError> {
    let mut ids = HashMap::new();
    for s in show(influxd, "SHOW SHARDS").await? {
        // id, database, retention_policy, shard_group, start_time, end_time, expiry, owners
        for r in &s.rows {
            let text = |i: usize| r.get(i).and_then(Value::as_str).map(str::to_owned);
            if let (Some(id), Some(db), Some(rp), Some(start)) =
                (r.first().and_then(Value::as_u64), text(1), text(2), text(4))
            {
                ids.insert(Place { db, rp, start }, id);
            }
        }
    }
    Ok(ids)
}

/// SHOW STATS FOR 'shard': each shard's bytes on disk, by id.
async fn disk_bytes(influxd: &Influxd) -> Result<HashMap<u64, u64>, SeedError> {
    let q = "SHOW STATS FOR 'shard'";
    let v = exec(influxd, q, "", q).await?;
    let mut bytes = HashMap::new();
    for s in v["results"][0]["series"].as_array().into_iter().flatten() {
        let id = s["tags"]["id"].as_str().and_then(|id| id.parse().ok());
        let columns = s["columns"].as_array();
        let at = columns.and_then(|c| c.iter().position(|c| c == "diskBytes"));
        let held = at.and_then(|i| s["values"][0][i].as_u64());
        if let (Some(id), Some(held)) = (id, held) {
            bytes.insert(id, held);
        }
    }
    Ok(bytes)
}
