//! Request bodies and query parameters, with influxd's limits and errors.

use std::collections::HashMap;
use std::io::Read;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use hyper::{HeaderMap, StatusCode};

use super::response::ApiError;

/// influxd's own message for an oversized body.
pub const TOO_LARGE: &str = "http: request body too large";

/// Past the limit, how much more of a body is read and thrown away before answering 413: a
/// client still sending when we answer would see a broken pipe instead of the answer.
const DRAIN_LIMIT: usize = 64 << 20;

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
        if seen > max + DRAIN_LIMIT {
            break;
        }
        if seen <= max {
            raw.extend_from_slice(&data);
        }
    }
    if seen > max {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE));
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
