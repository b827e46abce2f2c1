//! Responses in influxd's style: JSON errors `{"error": "..."}` mirrored in
//! `X-Influxdb-Error`, and the headers every influxd response carries.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub type Resp = Response<Body>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn no_content() -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An error not yet rendered: small enough to travel in a `Result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Resp {
    fn from(e: ApiError) -> Resp {
        error(e.status, e.message)
    }
}

/// An influxd-style error: `{"error": msg}` with the same text in `X-Influxdb-Error`.
pub fn error(status: StatusCode, msg: impl AsRef<str>) -> Resp {
    let msg = msg.as_ref();
    let mut r = json(status, &serde_json::json!({ "error": msg }));
    set_error_header(&mut r, msg);
    r
}

pub fn set_error_header(r: &mut Resp, msg: &str) {
    // Header values cannot hold newlines (influxd's multi-line parse errors): keep the first.
    let first = msg.lines().next().unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(first) {
        r.headers_mut().insert("X-Influxdb-Error", v);
    }
}

/// The outcome influxd gave the applier for this request's entry, passed on as it came.
pub fn from_outcome(outcome: &snapshotless::Outcome) -> Resp {
    let mut r = Response::new(full(outcome.body.clone()));
    *r.status_mut() = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(ct) = outcome
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        r.headers_mut().insert(CONTENT_TYPE, ct);
    }
    if !r.status().is_success() {
        set_error_header(&mut r, &outcome.error_text());
    }
    r
}
