//! Request bodies and query parameters, with influxd's limits and errors; and the lingering
//! read that lets a client whose request was refused early see the answer.

use std::collections::HashMap;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use hyper::{HeaderMap, StatusCode};
use parking_lot::Mutex;

use super::response::ApiError;

/// influxd's own message for an oversized body.
pub const TOO_LARGE: &str = "http: request body too large";

/// How much of a refused body is read and thrown away, and for how long, before the
/// connection is given up instead.
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// What a handler left of its request body.
pub type Rest = Arc<Mutex<Option<Body>>>;

/// A request body that, dropped before its end (the handler answered without reading it, or
/// stopped at the size limit), leaves the rest in [`Rest`] to be drained.
struct Tracked {
    inner: Option<Body>,
    rest: Rest,
    ended: bool,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended {
            *self.rest.lock() = self.inner.take();
        }
    }
}

/// Gives the request a body whose unread rest can be drained after the handler answered.
pub fn track(req: Request) -> (Request, Rest) {
    let rest = Rest::default();
    let req = req.map(|body| {
        Body::new(Tracked {
            inner: Some(body),
            rest: rest.clone(),
            ended: false,
        })
    });
    (req, rest)
}

/// Reads and discards what the handler left of the body, within [`DRAIN_LIMIT`] and
/// [`DRAIN_TIME`]. A client sends its whole request before it reads the answer: closing the
/// connection under a client still sending makes its kernel reset the connection, and the
/// answer (a 413, an early 400 or 503) is lost with it. Returns false when the limits ran
/// out first: the connection must then be closed after the answer.
pub async fn drain(rest: Rest) -> bool {
    let Some(mut body) = rest.lock().take() else {
        return true;
    };
    let mut seen = 0usize;
    let reading = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, reading)
        .await
        .unwrap_or(false)
}

/// Reads the whole body, refusing more than `max` bytes before and after gzip decompression:
/// a small gzip body may inflate to gigabytes, and must be stopped at the limit, not after.
pub async fn read(headers: &HeaderMap, mut body: Body, max: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut raw = BytesMut::with_capacity(declared.unwrap_or(0).min(max));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen += data.len();
        if seen > max {
            // The rest is drained once the answer is ready (see `drain`).
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE));
        }
        raw.extend_from_slice(&data);
    }
    let raw = raw.freeze();

    let gzip = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(raw);
    }
    gunzip(&raw, max)
}

/// Decompresses a gzip body (several concatenated members allowed, as Go's reader does).
pub fn gunzip(raw: &[u8], max: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(max));
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(max as u64 + 1);
    match decoder.read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, format!("gzip: {e}"))),
    }
}

/// Query-string (or form) parameters. A repeated key keeps its first value, as influxd's
/// `Values.Get` does.
pub fn params(query: Option<&str>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

/// Refuses parameters the endpoint does not know: a misspelt `precison` silently ignored
/// would shift every timestamp by a factor of a billion.
pub fn reject_unknown(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "unknown parameter{} {} (accepted: {})",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_round_trip_and_concatenated_members() {
        let mut two = gz(b"a v=1 1\n");
        two.extend(gz(b"b v=2 2\n"));
        assert_eq!(&gunzip(&two, 1000).unwrap()[..], b"a v=1 1\nb v=2 2\n");
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let bomb = gz(&vec![b'x'; 10 << 20]);
        assert!(bomb.len() < 100_000);
        let e = gunzip(&bomb, 1 << 20).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn corrupt_gzip_is_a_bad_request() {
        let mut data = gz(b"m v=1 1\n");
        let n = data.len();
        data[n / 2] ^= 0xff;
        data.truncate(n - 3);
        let e = gunzip(&data, 1000).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = gunzip(b"not gzip at all", 1000).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unknown_parameters_are_named() {
        let p = params(Some("db=x&precison=s"));
        let e = reject_unknown(&p, &["db", "precision"]).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("\"precison\""), "{}", e.message);
    }
}
