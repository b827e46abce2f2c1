//! What influxd's answer to an entry means, and where it goes.
//!
//! Outcomes fall in three classes. 2xx: applied. 4xx: a deterministic rejection (parse error,
//! field type conflict, database not found...): every replica rejects the same points, the
//! outcome goes to the waiting client and the applier moves on. Anything else (5xx, refused
//! connection, timeout) means influxd is unavailable: an [`Interrupt`]; the applier waits for
//! influxd, then resumes from the marker it holds, never skipping an entry.

use bytes::Bytes;
use hyper::StatusCode;

use crate::entry::{Origin, Query};
use crate::influxd::{Response, Unavailable};
use crate::log::LogReadError;
use crate::marker::MarkerError;

/// The answer influxd gave for one entry, handed to the client that proposed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub body: Bytes,
    pub content_type: Option<String>,
    /// Not influxd's answer to this entry but to an earlier write this one retried (the same
    /// idempotency key): nothing of this entry was applied.
    pub replayed: bool,
}

impl Outcome {
    pub(crate) fn from_response(r: &Response) -> Outcome {
        Outcome {
            status: r.status.as_u16(),
            body: r.body.clone(),
            content_type: r
                .content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            replayed: false,
        }
    }

    pub fn error_text(&self) -> String {
        crate::influxd::error_text(&self.body)
    }

    pub(crate) fn refused(message: &str) -> Outcome {
        Outcome {
            status: 403,
            body: Bytes::from(serde_json::json!({ "error": message }).to_string()),
            content_type: Some("application/json".into()),
            replayed: false,
        }
    }

    pub(crate) fn no_content() -> Outcome {
        Outcome {
            status: 204,
            body: Bytes::new(),
            content_type: None,
            replayed: false,
        }
    }
}

/// Receives the outcome of every entry this node proposed (the entry's context names it).
pub trait OutcomeSink: Send + Sync + 'static {
    fn applied(&self, origin: Origin, index: u64, outcome: Outcome);
}

/// Told of every state-changing query the applier applied, with influxd's answer, before the
/// marker covers it: what a node keeps beside influxd (users' passwords, which a copy of
/// influxd cannot carry) follows its influxd this way.
pub trait AppliedQueries: Send + Sync + 'static {
    fn applied(&self, index: u64, query: &Query, answer: &Response);
}

/// Why applying stopped and must start again from influxd's marker.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Interrupt {
    /// influxd did not answer at all.
    #[error(transparent)]
    NoAnswer(#[from] Unavailable),
    /// 401/403: about the gateway's credentials, not the request.
    #[error("influxd refused the gateway's credentials ({status}): {error}")]
    Credentials { status: StatusCode, error: String },
    /// 5xx, or anything else that is no verdict on the request.
    #[error("influxd answered {status}: {error}")]
    Failed { status: StatusCode, error: String },
    /// influxd could not write to its own disk (full, read-only, failing), whatever status it
    /// answered with: a condition of this replica, never a verdict on the request.
    #[error(
        "influxd cannot write to its disk ({status}: {error}); applying resumes once it can. \
         influxd 1.6 may go on failing after space was freed until it is restarted"
    )]
    Storage { status: StatusCode, error: String },
    /// Reading or writing the marker failed.
    #[error(transparent)]
    Marker(#[from] MarkerError),
    /// The idempotency keys could not be stored before a marker.
    #[error("cannot store the idempotency keys with the log: {0}")]
    Keys(#[from] hybrid_log::LogError),
    /// The marker cannot be written without the term of its entry.
    #[error("reading the log term at {index}: {source}")]
    LogTerm { index: u64, source: LogReadError },
    /// influxd lost data: the marker database is gone.
    #[error("the marker database disappeared")]
    MarkerDatabaseGone,
    /// The log no longer holds the next entry to apply: influxd must be seeded.
    #[error("the log no longer holds entry {next}: it was trimmed")]
    Trimmed { next: u64 },
    /// influxd lost data: it no longer holds the marker last written.
    #[error("influxd's marker is {} but {written} was written", shown(.found))]
    MarkerBehind { found: Option<u64>, written: u64 },
    /// influxd restarted while a replay floor is set: it may have lost writes behind a gap
    /// in its WAL (`applier/torn_wal.rs`).
    #[error("influxd restarted while its WAL may hold a torn write")]
    Restarted,
}

impl Interrupt {
    /// influxd answers but no longer holds what the marker said it held; otherwise it is
    /// unavailable.
    pub(crate) fn lost_data(&self) -> bool {
        matches!(
            self,
            Interrupt::MarkerDatabaseGone | Interrupt::MarkerBehind { .. } | Interrupt::Restarted
        )
    }
}

impl Interrupt {
    /// influxd may have written part of a write to its WAL and not the rest: it failed to
    /// write its disk, or the connection broke while a request was in flight (influxd killed
    /// in the middle of it, paused and maybe killed later). A refused connection reached no
    /// influxd at all.
    pub(crate) fn may_tear_wal(&self) -> bool {
        let broke = |u: &Unavailable| !u.reason.contains("(Connect)");
        match self {
            Interrupt::Storage { .. } => true,
            Interrupt::NoAnswer(u) | Interrupt::Marker(MarkerError::Unavailable(u)) => broke(u),
            Interrupt::Marker(MarkerError::Unexpected { body, .. }) => {
                STORAGE_FAILURES.iter().any(|f| body.contains(f))
            }
            _ => false,
        }
    }
}

fn shown(marker: &Option<u64>) -> String {
    marker.map_or_else(|| "missing".to_owned(), |index| index.to_string())
}

/// What influxd (Go) reports when a file cannot be written for a reason of this machine:
/// strerror of ENOSPC, EDQUOT, EROFS, EIO, EMFILE. influxd 1.6 answers a full disk with
/// `400 partial write: ... no space left on device` for new series, with `200` and the error
/// inside the results for a statement, and with `500` for its WAL: none of them is a verdict
/// that every replica would give.
const STORAGE_FAILURES: [&str; 5] = [
    "no space left on device",
    "disk quota exceeded",
    "read-only file system",
    "input/output error",
    "too many open files",
];

/// Bytes of an answer searched for a storage failure: influxd's errors come first, and a
/// state-changing statement's answer is small.
const SEARCHED: usize = 64 << 10;

fn storage_failure(r: &Response) -> bool {
    let head = &r.body[..r.body.len().min(SEARCHED)];
    let text = String::from_utf8_lossy(head);
    STORAGE_FAILURES.iter().any(|f| text.contains(f))
}

/// 2xx and 4xx are answers about the request; 401/403 are about our credentials, 5xx about
/// influxd, and a failure to write its own disk (whatever the status) about this replica, so
/// those interrupt and are retried.
pub(crate) fn classify(r: Response) -> Result<Response, Interrupt> {
    if storage_failure(&r) {
        return Err(Interrupt::Storage {
            status: r.status,
            error: r.error_text(),
        });
    }
    match r.status.as_u16() {
        200..=299 => Ok(r),
        401 | 403 => Err(Interrupt::Credentials {
            status: r.status,
            error: r.error_text(),
        }),
        400..=499 => Ok(r),
        _ => Err(Interrupt::Failed {
            status: r.status,
            error: r.error_text(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from_static(br#"{"error":"boom"}"#),
            content_type: None,
        }
    }

    #[test]
    fn answers_fall_in_three_classes() {
        for applied_or_rejected in [200, 204, 400, 404, 413, 422] {
            assert!(classify(answer(applied_or_rejected)).is_ok());
        }
        for unavailable in [401, 403, 500, 503, 302] {
            let i = classify(answer(unavailable)).unwrap_err();
            assert!(!i.lost_data(), "{i}");
        }
        assert_eq!(
            classify(answer(503)).unwrap_err().to_string(),
            "influxd answered 503 Service Unavailable: boom"
        );
        assert_eq!(
            classify(answer(401)).unwrap_err().to_string(),
            "influxd refused the gateway's credentials (401 Unauthorized): boom"
        );
    }

    /// The answers influxd 1.6.7 gave on a full tmpfs: a new series, a statement, the WAL.
    #[test]
    fn a_full_disk_is_never_a_verdict_whatever_the_status() {
        let answers = [
            (
                400,
                r#"{"error":"partial write: write /d/data/a/_series/01/0000: no space left on device dropped=1991"}"#,
            ),
            (
                200,
                r#"{"results":[{"statement_id":0,"error":"write /d/meta/meta.dbtmp: no space left on device"}]}"#,
            ),
            (
                500,
                r#"{"error":"engine: error writing WAL entry: write /d/wal/a/autogen/1/_00001.wal: no space left on device"}"#,
            ),
            (
                500,
                r#"{"error":"open /d/data/a/autogen/2: read-only file system"}"#,
            ),
        ];
        for (status, body) in answers {
            let r = Response {
                status: StatusCode::from_u16(status).unwrap(),
                body: Bytes::from_static(body.as_bytes()),
                content_type: None,
            };
            match classify(r) {
                Err(i @ Interrupt::Storage { .. }) => {
                    assert!(!i.lost_data());
                    assert!(i.to_string().contains("cannot write to its disk"), "{i}");
                }
                other => panic!("{status} {body}: {other:?}"),
            }
        }
        // A statement influxd refuses for what it says is still a verdict.
        let refused = Response {
            status: StatusCode::OK,
            body: Bytes::from_static(
                br#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#,
            ),
            content_type: None,
        };
        assert!(classify(refused).is_ok());
    }

    #[test]
    fn lost_data_says_what_the_marker_was() {
        let behind = Interrupt::MarkerBehind {
            found: None,
            written: 9,
        };
        assert!(behind.lost_data());
        assert_eq!(
            behind.to_string(),
            "influxd's marker is missing but 9 was written"
        );
        assert!(Interrupt::MarkerDatabaseGone.lost_data());
    }

    #[test]
    fn a_write_may_be_torn_by_a_full_disk_or_a_broken_connection_not_a_refused_one() {
        let unavailable = |reason: &str| Unavailable {
            url: "http://127.0.0.1:8086".into(),
            reason: reason.into(),
        };
        let full = Response {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: Bytes::from_static(
                br#"{"error":"engine: error writing WAL entry: write x.wal: no space left on device"}"#,
            ),
            content_type: None,
        };
        assert!(classify(full).unwrap_err().may_tear_wal());
        let reset = "client error (SendRequest): connection error: Connection reset by peer";
        assert!(Interrupt::NoAnswer(unavailable(reset)).may_tear_wal());
        assert!(Interrupt::NoAnswer(unavailable("no answer within 10s")).may_tear_wal());
        let refused = "client error (Connect): tcp connect error: Connection refused";
        assert!(!Interrupt::NoAnswer(unavailable(refused)).may_tear_wal());
        assert!(!classify(answer(503)).unwrap_err().may_tear_wal());
        assert!(Interrupt::Restarted.lost_data());
    }
}
