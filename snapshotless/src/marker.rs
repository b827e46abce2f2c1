//! The applier's progress, kept in influxd itself.
//!
//! After applying the log up to index N the applier writes one point,
//! `_gateway.autogen.applied index=N,term=T` at time 0, *after* the data it covers. Because the
//! marker lives in the same store as the data, it cannot claim more than the store holds: if
//! influxd loses its data (wiped disk, restored backup), the marker goes with it (or goes back),
//! and the applier replays the log from wherever the marker says. That is what replaces
//! snapshots. Replaying from a marker that is a little behind is harmless: every point in the
//! log carries its own timestamp, so writing it again changes nothing.

use bytes::Bytes;

use crate::influxd::{quote_ident, quote_string, Influxd, Response, Unavailable};

pub const DATABASE: &str = "_gateway";
const MEASUREMENT: &str = "applied";

/// Whether a state-changing query could touch the marker database. Deliberately broad (any
/// mention of the name): a false positive costs a user a 403, a miss could drop every
/// replica's progress.
pub fn is_reserved(q: &str, db: &str) -> bool {
    db == DATABASE || q.contains(DATABASE)
}

/// Where the log and influxd agree the applier got to: the index and the term of its entry
/// (the term tells a marker written from another log apart from one written from ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub index: u64,
    pub term: u64,
}

impl Marker {
    /// Nothing applied yet: applying starts at index 1.
    pub const ZERO: Marker = Marker { index: 0, term: 0 };
}

#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// influxd answered, but not with something we can use; retrying is all we can do.
    #[error("influxd answered the marker {op} with {status}: {body}")]
    Unexpected {
        op: &'static str,
        status: u16,
        body: String,
    },
}

fn unexpected(op: &'static str, r: &Response) -> MarkerError {
    MarkerError::Unexpected {
        op,
        status: r.status.as_u16(),
        body: r.error_text(),
    }
}

/// Reads the marker; `None` when influxd has none (fresh or wiped).
pub async fn read(influxd: &Influxd) -> Result<Option<Marker>, MarkerError> {
    let q = format!("SELECT \"index\", \"term\" FROM \"{DATABASE}\".\"autogen\".\"{MEASUREMENT}\"");
    let r = influxd.query(&q, DATABASE, "", "").await?;
    if !r.status.is_success() {
        return Err(unexpected("read", &r));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|_| unexpected("read", &r))?;
    let result = &v["results"][0];
    if let Some(err) = result["error"].as_str() {
        if err.contains("database not found") {
            return Ok(None);
        }
        return Err(unexpected("read", &r));
    }
    let Some(row) = result["series"][0]["values"][0].as_array() else {
        return Ok(None);
    };
    let num = |i: usize| row.get(i).and_then(|x| x.as_u64());
    match (num(1), num(2)) {
        (Some(index), Some(term)) => Ok(Some(Marker { index, term })),
        _ => Err(unexpected("read", &r)),
    }
}

/// Creates the marker database; idempotent.
pub async fn create_database(influxd: &Influxd) -> Result<(), MarkerError> {
    let r = influxd
        .query(&format!("CREATE DATABASE \"{DATABASE}\""), "", "", "")
        .await?;
    if !r.status.is_success() {
        return Err(unexpected("database creation", &r));
    }
    Ok(())
}

/// Creates the first admin user on an influxd with authentication enabled and no users.
pub async fn create_admin(
    influxd: &Influxd,
    user: &str,
    password: &str,
) -> Result<(), MarkerError> {
    let q = format!(
        "CREATE USER {} WITH PASSWORD {} WITH ALL PRIVILEGES",
        quote_ident(user),
        quote_string(password)
    );
    let r = influxd.query(&q, "", "", "").await?;
    if !r.status.is_success() {
        return Err(unexpected("admin user creation", &r));
    }
    Ok(())
}

/// What writing the marker found.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Ok,
    /// The marker database is gone: influxd lost its data under us.
    DatabaseMissing,
}

pub async fn write(influxd: &Influxd, m: Marker) -> Result<Written, MarkerError> {
    let line = format!("{MEASUREMENT} index={}i,term={}i 0\n", m.index, m.term);
    let r = influxd.write(DATABASE, "", Bytes::from(line)).await?;
    match r.status.as_u16() {
        200..=299 => Ok(Written::Ok),
        404 => Ok(Written::DatabaseMissing),
        _ => Err(unexpected("write", &r)),
    }
}
