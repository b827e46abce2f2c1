//! Responses in influxd's style: JSON errors `{"error": "..."}` mirrored in
//! `X-Influxdb-Error`, and the status each of the gateway's typed errors maps to.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;

use crate::auth::AuthError;
use crate::ingest::prom::PromError;
use crate::replicate::{ReplicateError, Unavailable};

pub type Resp = Response;

pub fn no_content() -> Resp {
    StatusCode::NO_CONTENT.into_response()
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    let mut r = Response::new(Body::from(value.to_string()));
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Resp {
        error(self.status, self.message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError::new(e.status(), e.to_string())
    }
}

impl From<Unavailable> for ApiError {
    fn from(e: Unavailable) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// 413 for a body that decompresses past the limit; 400 for any other bad remote write body.
impl From<PromError> for ApiError {
    fn from(e: PromError) -> ApiError {
        let status = if e.too_large() {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, e.to_string())
    }
}

/// 503 when nothing was proposed (or no read index could be had); 500 when the outcome of
/// something proposed is not known.
impl From<ReplicateError> for ApiError {
    fn from(e: ReplicateError) -> ApiError {
        let status = match e {
            ReplicateError::Unavailable(_) | ReplicateError::NoReadIndex(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ReplicateError::Unknown { .. } | ReplicateError::NotApplied { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
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
    let mut r = Response::new(Body::from(outcome.body.clone()));
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
