//! A write's idempotency key, as the client gives it in the `Idempotency-Key` header, and what
//! the receiving node fixes with it before it enters the log.
//!
//! Why a header of its own and not `Request-Id`: `Request-Id` names one request. influxd
//! makes up a new one for every request it answers, proxies and tracing set a fresh one per
//! attempt, and the gateway echoes it back as such. A retry must carry the same key as the
//! attempt it repeats, which only a header meant for that does (the IETF draft
//! `draft-ietf-httpapi-idempotency-key-header` names it `Idempotency-Key`). None of the
//! InfluxDB clients this project tests with sends one by itself, nor a `Request-Id`.
//!
//! The verdict on a keyed write is the applier's (`snapshotless::idempotency`), in log order
//! on every replica. What happens here: the key is checked, the request digested, and the
//! receiving node's clock and settings attached; and a retry whose first attempt this node
//! already applied is answered from its own table without proposing it again. That shortcut
//! only ever answers what the log decided before, so nothing depends on it.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderMap;
use hyper::StatusCode;
use ring::digest::{Context, SHA256};
use snapshotless::idempotency::Verdict;
use snapshotless::{KeyTable, KeyedBy, Outcome};

use crate::http::response::ApiError;

pub const HEADER: &str = "Idempotency-Key";
/// Keys are kept in every replica's table: long enough for any UUID or hash, short enough
/// that the table's bound on keys bounds its bytes.
pub const MAX_KEY_LEN: usize = 255;

/// What a write is checked and stamped against.
#[derive(Clone)]
pub struct Idempotency {
    table: Arc<KeyTable>,
    window: Duration,
    max_keys: u64,
}

/// The request as a retry must repeat it.
pub struct Request<'a> {
    pub db: &'a str,
    pub rp: &'a str,
    /// The precision's length in nanoseconds (`precision` changes what the body means).
    pub precision_ns: i64,
    /// The body after decompression: the same write compressed or not is the same write.
    pub body: &'a [u8],
}

impl Idempotency {
    pub fn new(table: Arc<KeyTable>, window: Duration, max_keys: u64) -> Idempotency {
        Idempotency {
            table,
            window,
            max_keys,
        }
    }

    /// `key` attached to `request`, received at `received_ms` by this node's clock.
    pub fn keyed_by(&self, key: String, request: &Request<'_>, received_ms: u64) -> KeyedBy {
        KeyedBy {
            key,
            digest: digest(request),
            received_ms,
            window_ms: self.window.as_millis() as u64,
            max_keys: self.max_keys,
        }
    }

    /// The answer, if this node's table already has one: the first attempt's outcome for a
    /// retry, or the refusal of a key reused for another write.
    pub fn known(&self, k: &KeyedBy) -> Option<Outcome> {
        match self.table.verdict(k) {
            Verdict::New => None,
            Verdict::Retry(o) | Verdict::Conflict(o) => Some(o),
        }
    }

    /// Keys the table holds now.
    pub fn keys(&self) -> usize {
        self.table.len().0
    }
}

/// The client's key, if it sent one: 1 to 255 visible ASCII characters, bare or as a quoted
/// string (the draft's structured-field form, `"..."`).
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid {HEADER} header: {why}"),
        )
    };
    if values.next().is_some() {
        return Err(invalid("given more than once"));
    }
    let text = value
        .to_str()
        .map_err(|_| invalid("not visible ASCII"))?
        .trim();
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(&format!("longer than {MAX_KEY_LEN} characters")));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(invalid("not visible ASCII"));
    }
    Ok(Some(key.to_owned()))
}

/// SHA-256 of what the write asks for, each part length-prefixed so that no two requests
/// run together into the same bytes.
fn digest(r: &Request<'_>) -> Vec<u8> {
    let mut c = Context::new(&SHA256);
    for part in [r.db.as_bytes(), r.rp.as_bytes(), r.body] {
        c.update(&(part.len() as u64).to_be_bytes());
        c.update(part);
    }
    c.update(&r.precision_ns.to_be_bytes());
    c.finish().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_are_visible_ascii_bare_or_quoted() {
        assert_eq!(key(&HeaderMap::new()).unwrap(), None);
        let uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324";
        assert_eq!(key(&headers(&[uuid.as_bytes()])).unwrap().unwrap(), uuid);
        let quoted = format!("\"{uuid}\"");
        assert_eq!(key(&headers(&[quoted.as_bytes()])).unwrap().unwrap(), uuid);
        assert_eq!(key(&headers(&[b"a b"])).unwrap().unwrap(), "a b");
        let long = "k".repeat(MAX_KEY_LEN);
        assert_eq!(key(&headers(&[long.as_bytes()])).unwrap().unwrap(), long);

        for (bad, why) in [
            (vec![&b""[..]], "empty"),
            (vec![&b"\"\""[..]], "empty"),
            (vec![&b"caf\xc3\xa9"[..]], "not visible ASCII"),
            (vec![&b"a\tb"[..]], "not visible ASCII"),
            (vec![&b"a"[..], &b"b"[..]], "more than once"),
        ] {
            let e = key(&headers(&bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(why), "{bad:?}: {}", e.message);
            assert!(e.message.starts_with("invalid Idempotency-Key header"));
        }
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(key(&headers(&[too_long.as_bytes()])).is_err());
    }

    #[test]
    fn the_digest_covers_every_part_of_the_request() {
        let base = Request {
            db: "db",
            rp: "",
            precision_ns: 1,
            body: b"m v=1",
        };
        let d = digest(&base);
        assert_eq!(d.len(), 32);
        assert_eq!(d, digest(&Request { ..base }));
        for other in [
            Request { db: "db2", ..base },
            Request { rp: "rp", ..base },
            Request {
                precision_ns: 1_000_000_000,
                ..base
            },
            Request {
                body: b"m v=2",
                ..base
            },
            // The parts do not run together.
            Request {
                db: "d",
                rp: "b",
                ..base
            },
        ] {
            assert_ne!(digest(&other), d);
        }
    }

    #[test]
    fn a_key_carries_this_nodes_clock_and_settings() {
        let i = Idempotency::new(
            Arc::new(KeyTable::in_memory()),
            Duration::from_secs(600),
            1000,
        );
        let r = Request {
            db: "db",
            rp: "",
            precision_ns: 1,
            body: b"m v=1",
        };
        let k = i.keyed_by("k".into(), &r, 42);
        assert_eq!(
            (k.received_ms, k.window_ms, k.max_keys),
            (42, 600_000, 1000)
        );
        assert_eq!(i.known(&k), None);
    }
}
