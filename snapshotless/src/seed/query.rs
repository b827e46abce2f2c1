//! The InfluxQL a seed sends to an influxd: run a statement, read what a SHOW answers. An
//! error in influxd's answer is a typed error naming the statement (without its secrets).

use serde_json::Value;

use super::SeedError;
use crate::influxd::Influxd;

/// One series of a SHOW answer: its name (a database, for SHOW CONTINUOUS QUERIES) and rows.
pub(crate) struct Series {
    pub name: String,
    pub rows: Vec<Vec<Value>>,
}

/// Runs `q` on `db`; `shown` stands for it in errors (a CREATE USER carries a password).
pub(crate) async fn exec(
    influxd: &Influxd,
    q: &str,
    db: &str,
    shown: &str,
) -> Result<Value, SeedError> {
    let refused = |error: String| SeedError::Query {
        statement: shown.to_owned(),
        error,
    };
    let r = influxd.query(q, db, "", "").await?;
    if !r.status.is_success() {
        return Err(refused(format!("{}: {}", r.status, r.error_text())));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| refused(e.to_string()))?;
    match v["results"][0]["error"].as_str() {
        Some(e) => Err(refused(e.to_owned())),
        None => Ok(v),
    }
}

/// The series of a SHOW statement's answer (none when there is nothing to show).
pub(crate) async fn show(influxd: &Influxd, q: &str) -> Result<Vec<Series>, SeedError> {
    let v = exec(influxd, q, "", q).await?;
    let series = v["results"][0]["series"].as_array().cloned();
    Ok(series
        .unwrap_or_default()
        .into_iter()
        .map(|s| Series {
            name: s["name"].as_str().unwrap_or_default().to_owned(),
            rows: s["values"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|r| r.as_array().cloned()).collect())
                .unwrap_or_default(),
        })
        .collect())
}

/// The rows of a SHOW statement with a single series (SHOW DATABASES, SHOW USERS, ...).
pub(crate) async fn rows(influxd: &Influxd, q: &str) -> Result<Vec<Vec<Value>>, SeedError> {
    Ok(show(influxd, q)
        .await?
        .into_iter()
        .flat_map(|s| s.rows)
        .collect())
}

/// The names of influxd's databases.
pub(crate) async fn databases(influxd: &Influxd) -> Result<Vec<String>, SeedError> {
    Ok(rows(influxd, "SHOW DATABASES")
        .await?
        .iter()
        .filter_map(|r| r.first()?.as_str().map(str::to_owned))
        .collect())
}
