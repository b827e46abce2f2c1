//! What a replica holds besides the main workload's points: its retention policies, users
//! and their grants, continuous queries, series, and the points of every other policy and
//! database. Read from each node's influxd directly at the end of a run, so the checker can
//! compare replicas and judge the schema workload's operations.

use std::collections::BTreeMap;

use anyhow::Context;
use harness::http::encode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::influx::{self, Point, DATABASE};

/// One retention policy as `SHOW RETENTION POLICIES` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub duration: String,
    pub shard_group_duration: String,
    pub replication: u64,
    pub default: bool,
}

/// One user as `SHOW USERS` and `SHOW GRANTS FOR` list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub admin: bool,
    /// Database -> privilege (`READ`, `WRITE`, `ALL PRIVILEGES`).
    pub grants: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Database -> policy name -> policy.
    pub retention_policies: BTreeMap<String, BTreeMap<String, RetentionPolicy>>,
    pub users: BTreeMap<String, User>,
    /// Database -> query name -> its text.
    pub continuous_queries: BTreeMap<String, BTreeMap<String, String>>,
    /// `db.rp` -> series keys, sorted.
    pub series: BTreeMap<String, Vec<String>>,
    /// `db.rp` -> every point of that policy, for every policy but the main database's
    /// default (whose points are the main workload's final read).
    pub points: BTreeMap<String, Vec<Point>>,
}

/// Reads the catalog of one influxd: `get` answers a path and query string with the body of
/// a 200 answer. `databases`: the replica's databases, the gateway's own left out.
pub fn read(
    get: impl Fn(&str) -> anyhow::Result<String>,
    databases: &[String],
) -> anyhow::Result<Catalog> {
    let show = |q: &str| -> anyhow::Result<Vec<influx::Table>> {
        let body = get(&format!("/query?q={}", encode(q)))?;
        influx::tables(&body).with_context(|| format!("answer to {q}"))
    };
    let text = |t: &influx::Table, row: &[Value], c: &str| {
        t.get(row, c)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut catalog = Catalog::default();
    for db in databases {
        let mut rps = BTreeMap::new();
        for t in show(&format!("SHOW RETENTION POLICIES ON {}", quote(db)))? {
            for row in &t.rows {
                rps.insert(
                    text(&t, row, "name"),
                    RetentionPolicy {
                        duration: text(&t, row, "duration"),
                        shard_group_duration: text(&t, row, "shardGroupDuration"),
                        replication: t.get(row, "replicaN").and_then(Value::as_u64).unwrap_or(0),
                        default: t.get(row, "default").and_then(Value::as_bool) == Some(true),
                    },
                );
            }
        }
        for rp in rps.keys() {
            // Policy by policy: a bare `SHOW SERIES ON db` fails once the database's default
            // policy was dropped (influxd keeps its name as the default).
            let mut series: Vec<String> = show(&format!(
                "SHOW SERIES ON {} FROM {}.{}./.*/",
                quote(db),
                quote(db),
                quote(rp)
            ))?
            .iter()
            .flat_map(|t| t.rows.iter().map(|r| text(t, r, "key")))
            .collect();
            series.sort();
            catalog.series.insert(format!("{db}.{rp}"), series);
            if db == DATABASE && rps[rp].default {
                continue;
            }
            let q = format!("SELECT * FROM {}.{}./.*/ GROUP BY *", quote(db), quote(rp));
            let body = get(&format!(
                "/query?epoch=ns&chunked=true&chunk_size=10000&q={}",
                encode(&q)
            ))?;
            let points = influx::parse_points(&body).with_context(|| format!("answer to {q}"))?;
            catalog.points.insert(format!("{db}.{rp}"), points);
        }
        catalog.retention_policies.insert(db.clone(), rps);
    }
    for t in show("SHOW USERS")? {
        for row in &t.rows {
            let name = text(&t, row, "user");
            let mut grants = BTreeMap::new();
            for g in show(&format!("SHOW GRANTS FOR {}", quote(&name)))? {
                for row in &g.rows {
                    grants.insert(text(&g, row, "database"), text(&g, row, "privilege"));
                }
            }
            let admin = t.get(row, "admin").and_then(Value::as_bool) == Some(true);
            catalog.users.insert(name, User { admin, grants });
        }
    }
    for t in show("SHOW CONTINUOUS QUERIES")? {
        if t.name == influx::RESERVED_DATABASE {
            continue;
        }
        let cqs: BTreeMap<String, String> = t
            .rows
            .iter()
            .map(|r| (text(&t, r, "name"), text(&t, r, "query")))
            .collect();
        if !cqs.is_empty() {
            catalog.continuous_queries.insert(t.name.clone(), cqs);
        }
    }
    Ok(catalog)
}

/// An identifier quoted for InfluxQL.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted influxd: each query's answer by the statement it holds.
    fn scripted(path: &str) -> anyhow::Result<String> {
        let q = path.split("q=").nth(1).unwrap_or_default();
        let q = percent_decode(q);
        let answer = if q.starts_with("SHOW RETENTION POLICIES") {
            r#"{"results":[{"statement_id":0,"series":[{"columns":["name","duration","shardGroupDuration","replicaN","default"],"values":[["autogen","0s","168h0m0s",1,true],["r","48h0m0s","1h0m0s",1,false]]}]}]}"#
        } else if q.starts_with("SHOW SERIES") {
            r#"{"results":[{"statement_id":0,"series":[{"columns":["key"],"values":[["set,client=1"],["keyed,client=1,i=0"]]}]}]}"#
        } else if q.starts_with("SELECT") {
            r#"{"results":[{"statement_id":0,"series":[{"name":"m","tags":{"c":"1"},"columns":["time","id"],"values":[[5,1]]}]}]}"#
        } else if q.starts_with("SHOW USERS") {
            r#"{"results":[{"statement_id":0,"series":[{"columns":["user","admin"],"values":[["u",false],["a",true]]}]}]}"#
        } else if q.starts_with("SHOW GRANTS FOR \"u\"") {
            r#"{"results":[{"statement_id":0,"series":[{"columns":["database","privilege"],"values":[["d","WRITE"]]}]}]}"#
        } else if q.starts_with("SHOW GRANTS") {
            r#"{"results":[{"statement_id":0}]}"#
        } else if q.starts_with("SHOW CONTINUOUS QUERIES") {
            r#"{"results":[{"statement_id":0,"series":[{"name":"_gateway","columns":["name","query"]},{"name":"d","columns":["name","query"],"values":[["c","CREATE CONTINUOUS QUERY c ON d BEGIN ... END"]]}]}]}"#
        } else {
            anyhow::bail!("unexpected query {q}")
        };
        Ok(answer.to_owned())
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_catalog_is_read_from_show_statements() {
        let c = read(scripted, &["d".to_owned()]).unwrap();
        let rps = &c.retention_policies["d"];
        assert_eq!(rps.len(), 2);
        assert_eq!(rps["r"].duration, "48h0m0s");
        assert!(rps["autogen"].default);
        assert_eq!(c.series["d.r"], vec!["keyed,client=1,i=0", "set,client=1"]);
        // Every policy of a database other than the main one is read.
        assert_eq!(c.points.keys().collect::<Vec<_>>(), ["d.autogen", "d.r"]);
        assert_eq!(c.users["u"].grants["d"], "WRITE");
        assert!(c.users["a"].admin && c.users["a"].grants.is_empty());
        assert_eq!(c.continuous_queries.len(), 1);
        assert!(c.continuous_queries["d"]["c"].starts_with("CREATE CONTINUOUS QUERY c"));
    }
}
