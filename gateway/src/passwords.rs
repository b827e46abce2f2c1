//! The last password each user was given, kept with the log. influxd keeps only a bcrypt
//! hash, and its portable restore does not carry even that, so a node whose influxd is seeded
//! from a peer's copy could not give its users their passwords back; the log entries that
//! set them may be long trimmed. So every node records, as its applier applies them, the
//! statements that set or remove a password and that influxd carried out, and a seed brings
//! the source's record along.
//!
//! Each user's record carries the log index of the statement that made it, and records are
//! merged by that index: what a node recorded itself and what a source sent may overlap in
//! either direction, and the later statement wins in both.

use std::collections::BTreeMap;

use hybrid_log::{HybridLog, LogBatch};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use snapshotless::command::Query;
use snapshotless::influxd::Response;
use snapshotless::log::{put_bytes, read_bytes, MetaKey};
use snapshotless::seed::Passwords;
use snapshotless::AppliedQueries;

use crate::influxql::{password_changes, PasswordChange};

/// One user's last password, `None` once the user was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub index: u64,
    pub password: Option<String>,
}

pub type Records = BTreeMap<String, Record>;

pub struct PasswordBook {
    log: HybridLog,
    records: Mutex<Records>,
}

impl PasswordBook {
    pub fn load(log: &HybridLog) -> PasswordBook {
        let records = read_bytes(log, MetaKey::Passwords)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        PasswordBook {
            log: log.clone(),
            records: Mutex::new(records),
        }
    }

    /// Every record, for a node this one seeds.
    pub fn records(&self) -> Records {
        self.records.lock().clone()
    }

    /// Takes what a seed's source recorded; the later statement wins, user by user.
    pub fn merge(&self, other: Records) {
        let mut records = self.records.lock();
        let mut changed = false;
        for (user, r) in other {
            if records.get(&user).is_none_or(|mine| mine.index < r.index) {
                records.insert(user, r);
                changed = true;
            }
        }
        if changed {
            self.persist(&records);
        }
    }

    /// The passwords a restore gives users.
    pub fn passwords(&self) -> Passwords {
        self.records
            .lock()
            .iter()
            .filter_map(|(user, r)| Some((user.clone(), r.password.clone()?)))
            .collect()
    }

    fn persist(&self, records: &Records) {
        let mut batch = LogBatch::new();
        put_bytes(
            &mut batch,
            MetaKey::Passwords,
            serde_json::to_vec(records).expect("records serialize"),
        );
        // Synced: the marker written next says the statement is applied, and a seed from
        // this node must then bring its password along.
        if let Err(e) = self.log.commit(batch, true) {
            tracing::error!(error = %e, "cannot record a user's password with the log");
        }
    }
}

impl AppliedQueries for PasswordBook {
    fn applied(&self, index: u64, query: &Query, answer: &Response) {
        let changes = password_changes(&query.q, &query.params);
        if changes.is_empty() || !answer.status.is_success() {
            return;
        }
        let done = carried_out(&answer.body);
        let mut records = self.records.lock();
        let mut changed = false;
        for change in changes.iter().filter(|c| done.contains(&c.statement())) {
            let password = match change {
                PasswordChange::Set { password, .. } => Some(password.clone()),
                PasswordChange::Dropped { .. } => None,
            };
            records.insert(change.user().to_owned(), Record { index, password });
            changed = true;
        }
        if changed {
            self.persist(&records);
        }
    }
}

/// The statements influxd carried out: those its answer has a result without an error for
/// (influxd stops at the first statement that fails).
fn carried_out(body: &[u8]) -> Vec<usize> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.get("error").is_none())
        .filter_map(|r| r["statement_id"].as_u64().map(|i| i as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hyper::StatusCode;

    fn answer(body: &str) -> Response {
        Response {
            status: StatusCode::OK,
            body: Bytes::from(body.to_owned()),
            content_type: None,
        }
    }

    fn query(q: &str) -> Query {
        Query {
            q: q.into(),
            ..Query::default()
        }
    }

    #[test]
    fn records_what_influxd_carried_out_and_merges_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let log = HybridLog::open(dir.path(), 1 << 20).unwrap();
        let book = PasswordBook::load(&log);
        book.applied(
            5,
            &query("CREATE USER a WITH PASSWORD 'x'; SET PASSWORD FOR b = 'y'; DROP USER c"),
            // The second statement failed, and influxd ran nothing after it.
            &answer(
                r#"{"results":[{"statement_id":0},{"statement_id":1,"error":"user not found"}]}"#,
            ),
        );
        assert_eq!(book.passwords().get("a"), Some("x"));
        assert_eq!(book.passwords().get("b"), None);
        assert!(!book.records().contains_key("c"));

        book.applied(
            9,
            &query("DROP USER a"),
            &answer(r#"{"results":[{"statement_id":0}]}"#),
        );
        assert_eq!(book.passwords().get("a"), None);

        let mut theirs = Records::new();
        theirs.insert(
            "a".into(),
            Record {
                index: 7,
                password: Some("old".into()),
            },
        );
        theirs.insert(
            "d".into(),
            Record {
                index: 3,
                password: Some("z".into()),
            },
        );
        book.merge(theirs);
        // Dropped at 9 stays dropped; d is new.
        assert_eq!(book.passwords().get("a"), None);
        assert_eq!(book.passwords().get("d"), Some("z"));

        // Kept with the log across a restart.
        drop(book);
        let book = PasswordBook::load(&log);
        assert_eq!(book.passwords().get("d"), Some("z"));
        assert_eq!(book.records()["a"].index, 9);
    }
}
