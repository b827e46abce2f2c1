//! Reads answered by the local influxd: the request passed on as it came (the client's
//! credentials with it, so influxd checks them), the answer streamed back as influxd gives it.
//! `/query`'s reads, Prometheus remote read and `/debug/*` all go this way.
//!
//! `consistency=linearizable`, the gateway's own parameter, makes a read wait for a Raft read
//! index and for the local applier to pass it first, so it sees every write acknowledged
//! anywhere before it started; influxd never sees the parameter.

use std::collections::HashMap;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, HOST};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};

use super::response::{error, ApiError, Resp};
use crate::replicate::Replicator;
use crate::state::LocalInfluxd;

/// Waits for a read index first if the request asks for `consistency=linearizable`.
pub async fn consistency(
    replicator: &Replicator,
    params: &HashMap<String, String>,
) -> Result<(), ApiError> {
    match params.get("consistency").map(String::as_str) {
        None | Some("" | "local") => Ok(()),
        Some("linearizable") => Ok(replicator.linearizable().await?),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid consistency {other:?} for a read (use local or linearizable)"),
        )),
    }
}

/// Passes the request to the local influxd and streams its answer back; 503 if influxd does
/// not answer.
pub async fn pass(influxd: &LocalInfluxd, parts: Parts, body: Bytes) -> Resp {
    match send(influxd, parts, body).await {
        Ok(resp) => {
            let (parts, incoming) = resp.into_parts();
            Resp::from_parts(parts, Body::new(incoming))
        }
        Err(e) => unavailable(e),
    }
}

/// The request as influxd is sent it: same method, path, query and headers (a `Token` as
/// HTTP Basic, which influxd 1.6 understands), without the gateway's `consistency`.
pub async fn send(
    influxd: &LocalInfluxd,
    parts: Parts,
    body: Bytes,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = format!("{}{}", influxd.url, without_consistency(path_and_query));
    let mut builder = Request::builder().method(parts.method).uri(uri);
    for (name, value) in parts.headers.iter() {
        if name == AUTHORIZATION {
            builder = builder.header(name, crate::auth::for_influxd(value));
        } else if name != HOST && name != CONTENT_LENGTH {
            builder = builder.header(name, value);
        }
    }
    let req = builder
        .body(Full::new(body))
        .expect("a valid request from a valid one");
    influxd.client.request(req).await
}

/// 503: influxd did not answer, or its answer broke off.
pub fn unavailable(e: impl std::fmt::Display) -> Resp {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("local influxd unavailable: {e}"),
    );
    r.headers_mut()
        .insert("Retry-After", HeaderValue::from_static("1"));
    r
}

/// Our own `consistency` parameter means nothing to influxd.
fn without_consistency(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.starts_with("consistency="))
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_parameter_is_taken_out() {
        assert_eq!(
            without_consistency("/query?db=a&consistency=linearizable&q=x"),
            "/query?db=a&q=x"
        );
        assert_eq!(
            without_consistency("/api/v1/prom/read?consistency=local"),
            "/api/v1/prom/read"
        );
        assert_eq!(
            without_consistency("/debug/pprof/profile?seconds=1"),
            "/debug/pprof/profile?seconds=1"
        );
        assert_eq!(without_consistency("/debug/vars"), "/debug/vars");
    }
}
