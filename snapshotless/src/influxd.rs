//! HTTP client for the local influxd: the only way the applier touches the state machine.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// influxd's answer to one request.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
}

impl Response {
    pub fn error_text(&self) -> String {
        error_text(&self.body)
    }
}

/// The `error` of an influx-style error body, or the body itself.
pub fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// `name` as an InfluxQL identifier: double-quoted, its quotes and backslashes escaped.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `s` as an InfluxQL string literal: single-quoted, its quotes and backslashes escaped.
pub fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// No HTTP answer: refused, reset, timed out. influxd is unavailable; never a verdict on the
/// request itself.
#[derive(Debug, Clone, thiserror::Error)]
#[error("influxd at {url} unavailable: {reason}")]
pub struct Unavailable {
    pub url: String,
    pub reason: String,
}

/// A request body sent as the pieces it is made of: the applier's coalesced writes are many
/// entries' lines, megabytes in all, and copying them into one buffer first (and faulting in
/// its fresh pages) cost more than anything else the applier does.
#[derive(Debug, Default)]
pub struct Chunks {
    pieces: VecDeque<Bytes>,
    len: u64,
}

impl Chunks {
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len() as u64;
            self.pieces.push_back(piece);
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole body in one buffer (a copy).
    pub fn to_bytes(&self) -> Bytes {
        let mut all = BytesMut::with_capacity(self.len as usize);
        for piece in &self.pieces {
            all.extend_from_slice(piece);
        }
        all.freeze()
    }
}

impl From<Bytes> for Chunks {
    fn from(piece: Bytes) -> Chunks {
        let mut chunks = Chunks::default();
        chunks.push(piece);
        chunks
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let piece = self.pieces.pop_front();
        if let Some(p) = &piece {
            self.len -= p.len() as u64;
        }
        Poll::Ready(piece.map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Exact, so the request carries a Content-Length rather than chunked encoding.
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[derive(Clone)]
pub struct Influxd {
    client: Client<HttpConnector, Chunks>,
    base: String,
    timeout: Duration,
    /// Basic credentials for an influxd with authentication enabled (an admin user).
    auth: Option<HeaderValue>,
}

impl Influxd {
    /// `base` like `http://127.0.0.1:18086`.
    pub fn new(base: &str, timeout: Duration, credentials: Option<(&str, &str)>) -> Influxd {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let auth = credentials.map(|(u, p)| basic_auth(u, p));
        Influxd {
            client,
            base: base.trim_end_matches('/').to_owned(),
            timeout,
            auth,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn unavailable(&self, reason: impl ToString) -> Unavailable {
        Unavailable {
            url: self.base.clone(),
            reason: reason.to_string(),
        }
    }

    /// One request within `timeout`, its whole body read.
    async fn exchange(
        &self,
        req: Request<Chunks>,
        timeout: Duration,
    ) -> Result<(hyper::http::response::Parts, Bytes), Unavailable> {
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.unavailable(error_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| self.unavailable(format!("reading the response: {e}")))?
                .to_bytes();
            Ok((parts, body))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| self.unavailable(format!("no answer within {timeout:?}")))?
    }

    async fn send(&self, req: Request<Chunks>) -> Result<Response, Unavailable> {
        let (parts, body) = self.exchange(req, self.timeout).await?;
        Ok(Response {
            status: parts.status,
            body,
            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
        })
    }

    fn request(&self, method: Method, path_and_query: &str) -> hyper::http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path_and_query));
        if let Some(auth) = &self.auth {
            b = b.header(AUTHORIZATION, auth.clone());
        }
        b
    }

    /// POST /write with nanosecond line protocol.
    pub async fn write(
        &self,
        db: &str,
        rp: &str,
        lines: impl Into<Chunks>,
    ) -> Result<Response, Unavailable> {
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("db", db);
            if !rp.is_empty() {
                q.append_pair("rp", rp);
            }
            q.append_pair("precision", "ns");
            q.finish()
        };
        let req = self
            .request(Method::POST, &format!("/write?{query}"))
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(lines.into())
            .expect("valid request");
        self.send(req).await
    }

    /// POST /query with the statement in a form body, as the influx CLI sends it.
    pub async fn query(
        &self,
        q: &str,
        db: &str,
        rp: &str,
        params: &str,
    ) -> Result<Response, Unavailable> {
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("q", q);
            if !db.is_empty() {
                form.append_pair("db", db);
            }
            if !rp.is_empty() {
                form.append_pair("rp", rp);
            }
            if !params.is_empty() {
                form.append_pair("params", params);
            }
            form.finish()
        };
        let req = self
            .request(Method::POST, "/query")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Chunks::from(Bytes::from(form)))
            .expect("valid request");
        self.send(req).await
    }

    /// GET /ping: influxd's version if it answers.
    pub async fn ping(&self) -> Result<String, Unavailable> {
        let req = self
            .request(Method::GET, "/ping")
            .body(Chunks::from(Bytes::new()))
            .expect("valid request");
        let (parts, _) = self
            .exchange(req, self.timeout.min(Duration::from_secs(5)))
            .await?;
        if !parts.status.is_success() {
            return Err(self.unavailable(format!("/ping answered {}", parts.status)));
        }
        Ok(parts
            .headers
            .get("X-Influxdb-Version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_owned())
    }
}

impl Influxd {
    /// What influxd's data takes on disk, from its own statistics (`/debug/vars`): the TSM
    /// files and the WAL of every shard, `_internal` left out as a seed leaves it out. About
    /// what a portable backup of it moves.
    pub async fn disk_bytes(&self) -> Result<u64, Unavailable> {
        Ok(shard_disk_bytes(&self.debug_vars().await?))
    }

    /// When the influxd process started (`SHOW DIAGNOSTICS`, a small answer): tells a
    /// restarted influxd from the same one. `None` if the answer does not say.
    pub async fn started(&self) -> Result<Option<String>, Unavailable> {
        let r = self.query("SHOW DIAGNOSTICS", "", "", "").await?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let system = v["results"][0]["series"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == "system"));
        Ok(system.and_then(|s| {
            let column = s["columns"]
                .as_array()?
                .iter()
                .position(|c| c == "started")?;
            s["values"][0][column].as_str().map(str::to_owned)
        }))
    }

    /// influxd's statistics (`/debug/vars`): its process, and each shard's engine.
    pub async fn debug_vars(
        &self,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Unavailable> {
        let req = self
            .request(Method::GET, "/debug/vars")
            .body(Chunks::from(Bytes::new()))
            .expect("valid request");
        let (parts, body) = self.exchange(req, self.timeout).await?;
        if !parts.status.is_success() {
            return Err(self.unavailable(format!("/debug/vars answered {}", parts.status)));
        }
        serde_json::from_slice(&body).map_err(|e| self.unavailable(format!("/debug/vars: {e}")))
    }
}

/// The sum of the shards' TSM and WAL bytes in influxd's `/debug/vars`.
fn shard_disk_bytes(vars: &serde_json::Map<String, serde_json::Value>) -> u64 {
    const SIZES: [(&str, &str); 3] = [
        ("tsm1_filestore", "diskBytes"),
        ("tsm1_wal", "currentSegmentDiskBytes"),
        ("tsm1_wal", "oldSegmentsDiskBytes"),
    ];
    vars.values()
        .filter(|v| v["tags"]["database"] != "_internal")
        .flat_map(|v| {
            SIZES
                .iter()
                .filter(move |(name, _)| v["name"] == *name)
                .filter_map(move |(_, field)| v["values"][field].as_u64())
        })
        .sum()
}

fn basic_auth(user: &str, password: &str) -> HeaderValue {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value")
}

/// hyper's errors say little at the top level ("client error (Connect)"); the cause chain
/// says what happened ("Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_bytes_sums_the_shards_but_internal() {
        let vars = serde_json::json!({
            "tsm1_filestore:/d/db1/autogen/1": {"name": "tsm1_filestore",
                "tags": {"database": "db1"}, "values": {"diskBytes": 1000, "numFiles": 2}},
            "tsm1_wal:/w/db1/autogen/1": {"name": "tsm1_wal", "tags": {"database": "db1"},
                "values": {"currentSegmentDiskBytes": 30, "oldSegmentsDiskBytes": 7}},
            "tsm1_filestore:/d/_internal/monitor/2": {"name": "tsm1_filestore",
                "tags": {"database": "_internal"}, "values": {"diskBytes": 5000}},
            "memstats": {"Alloc": 123},
        });
        assert_eq!(shard_disk_bytes(vars.as_object().unwrap()), 1037);
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote_ident(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote_string(r"it's a\b"), r"'it\'s a\\b'");
    }
}
