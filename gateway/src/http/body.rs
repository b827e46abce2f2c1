//! Request bodies and query parameters, with influxd's limits and errors; the deadline on a
//! body's arrival; and the lingering read that lets a client whose request was refused early
//! see the answer.

use std::collections::HashMap;
use std::future::Future;
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
use tokio::time::{Instant, Sleep};

use super::response::ApiError;

/// influxd's own message for an oversized body.
pub const TOO_LARGE: &str = "http: request body too large";

/// How much of a refused body is read and thrown away, and for how long, before the
/// connection is given up instead.
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// What a handler left of its request body.
pub type Rest = Arc<Mutex<Leftover>>;

#[derive(Default)]
pub struct Leftover {
    body: Option<Body>,
    /// The body did not arrive in time: its rest is not worth waiting for.
    timed_out: bool,
}

/// The request body did not arrive within `body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {} (body_read_timeout)", humantime::format_duration(*.0))]
pub struct BodyTimeout(pub Duration);

/// A request body that must arrive within a deadline from the handler's first read of it
/// (so time the handler spends before reading is not the client's), and that, dropped before
/// its end (the handler answered without reading it, or stopped at the size limit), leaves
/// the rest in [`Rest`] to be drained.
struct Tracked {
    inner: Option<Body>,
    rest: Rest,
    ended: bool,
    timeout: Duration,
    /// Set at the first read; the timer only once the body keeps the handler waiting, so a
    /// body already at hand costs none.
    due: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let due = *this
            .due
            .get_or_insert_with(|| Instant::now() + this.timeout);
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Dropping hyper's body makes it stop reading this request and close the
                // connection after the answer.
                this.inner = None;
                this.rest.lock().timed_out = true;
                let e = BodyTimeout(this.timeout);
                Poll::Ready(Some(Err(axum::Error::new(e))))
            }
            polled => polled,
        }
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
            self.rest.lock().body = self.inner.take();
        }
    }
}

/// Gives the request a body that must arrive within `timeout` of the handler's first read,
/// and whose unread rest can be drained after the handler answered.
pub fn track(req: Request, timeout: Duration) -> (Request, Rest) {
    let rest = Rest::default();
    let req = req.map(|body| {
        Body::new(Tracked {
            inner: Some(body),
            rest: rest.clone(),
            ended: false,
            timeout,
            due: None,
            timer: None,
        })
    });
    (req, rest)
}

/// What became of the rest of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Read to its end (or there was none): the connection can serve another request.
    Clean,
    /// Too much, or too slow: the connection must be closed after the answer.
    GaveUp,
    /// The body missed its deadline: the connection must be closed after the answer.
    TimedOut,
}

/// Reads and discards what the handler left of the body, within [`DRAIN_LIMIT`] and
/// [`DRAIN_TIME`] (or `timeout`, the body's own deadline, if shorter). A client sends its
/// whole request before it reads the answer: closing the connection under a client still
/// sending makes its kernel reset the connection, and the answer (a 413, an early 400 or
/// 503) is lost with it. A body that already missed its deadline is not waited for again.
pub async fn drain(rest: Rest, timeout: Duration) -> Drained {
    let (body, timed_out) = {
        let mut left = rest.lock();
        (left.body.take(), left.timed_out)
    };
    if timed_out {
        return Drained::TimedOut;
    }
    let Some(mut body) = body else {
        return Drained::Clean;
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
    match tokio::time::timeout(DRAIN_TIME.min(timeout), reading).await {
        Ok(true) => Drained::Clean,
        _ => Drained::GaveUp,
    }
}

/// Reads the whole body, refusing more than `max` bytes before and after gzip decompression:
/// a small gzip body may inflate to gigabytes, and must be stopped at the limit, not after.
pub async fn read(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    let raw = read_raw(headers, body, max).await?;
    if !is_gzip(headers) {
        return Ok(raw);
    }
    gunzip(&raw, max)
}

/// Reads the whole body as it came, whatever its `Content-Encoding`, refusing more than `max`
/// bytes.
pub async fn read_raw(headers: &HeaderMap, mut body: Body, max: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut raw = BytesMut::with_capacity(declared.unwrap_or(0).min(max));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let status = if timed_out(&e) {
                StatusCode::REQUEST_TIMEOUT
            } else {
                StatusCode::BAD_REQUEST
            };
            ApiError::new(status, format!("reading the request body: {e}"))
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
    Ok(raw.freeze())
}

pub fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

/// Whether a body's error is its deadline, however many layers of body wrap it.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<BodyTimeout>())
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

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_is_a_408_and_its_rest_is_not_waited_for() {
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        tx.try_send(Ok(Bytes::from_static(b"m v=1 1\n"))).unwrap();
        let (req, rest) = track(Request::new(Body::from_stream(rx)), Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let e = read(&HeaderMap::new(), req.into_body(), 1000)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_TIMEOUT, "{}", e.message);
        assert!(e.message.contains("body_read_timeout"), "{}", e.message);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(drain(rest, Duration::from_secs(5)).await, Drained::TimedOut);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_several_pieces_within_its_deadline_is_read_whole() {
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let (req, rest) = track(Request::new(Body::from_stream(rx)), Duration::from_secs(5));
        let sending = tokio::spawn(async move {
            use futures::SinkExt;
            for line in ["a v=1 1\n", "b v=2 2\n"] {
                tokio::time::sleep(Duration::from_secs(2)).await;
                tx.send(Ok(Bytes::from(line))).await.unwrap();
            }
        });
        let body = read(&HeaderMap::new(), req.into_body(), 1000)
            .await
            .unwrap();
        assert_eq!(&body[..], b"a v=1 1\nb v=2 2\n");
        assert_eq!(drain(rest, Duration::from_secs(5)).await, Drained::Clean);
        sending.await.unwrap();
    }

    #[test]
    fn unknown_parameters_are_named() {
        let p = params(Some("db=x&precison=s"));
        let e = reject_unknown(&p, &["db", "precision"]).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("\"precison\""), "{}", e.message);
    }
}
