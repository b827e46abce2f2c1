//! `/debug/*`: influxd's own debug endpoints, passed to the local influxd as they are (query
//! string included, answer streamed: a CPU profile or `/debug/requests` takes its seconds),
//! with the gateway's figures added to `/debug/vars`.
//!
//! influxd 1.6 serves these before authentication, even with `auth-enabled`, and
//! `/debug/pprof` only with `pprof-enabled`; passing them on unchanged keeps both rules
//! influxd's. `/debug/vars` is influxd's JSON with one more top-level key, `gateway`, in the
//! `{"name", "tags", "values"}` form influxd gives its statistics, so Telegraf's
//! `inputs.influxdb` records it as `influxdb_gateway`. When influxd does not answer, the
//! gateway's key is served alone: that is when its figures matter most.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::StatusCode;
use serde_json::{json, Value};

use super::body;
use super::proxy;
use super::response::Resp;
use crate::raft::Role;
use crate::state::{Limits, LocalInfluxd, NodeView};

/// The key the gateway's figures take in `/debug/vars`.
pub const VARS_KEY: &str = "gateway";

/// influxd's `/debug/vars` is tens of kilobytes; anything far larger is passed on unchanged.
const VARS_LIMIT: usize = 16 << 20;

pub async fn handle(
    State(influxd): State<LocalInfluxd>,
    State(node): State<NodeView>,
    State(limits): State<Limits>,
    req: Request,
) -> Resp {
    let (parts, incoming) = req.into_parts();
    let body = match body::read_raw(&parts.headers, incoming, limits.max_body_size).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // influxd matches the prefix, so `/debug/vars/anything` is its vars too.
    if !parts.uri.path().starts_with("/debug/vars") {
        return proxy::pass(&influxd, parts, body).await;
    }
    let ours = stats(&node);
    let resp = match proxy::send(&influxd, parts, body).await {
        Ok(r) => r,
        Err(_) => return alone(&ours),
    };
    let (mut parts, incoming) = resp.into_parts();
    if parts.status != StatusCode::OK {
        return Resp::from_parts(parts, Body::new(incoming));
    }
    let theirs = match http_body_util::Limited::new(incoming, VARS_LIMIT)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => return proxy::unavailable(e),
    };
    match with_gateway(&theirs, &ours) {
        Some(merged) => {
            // The length is no longer influxd's, and hyper frames a whole body itself.
            parts.headers.remove(CONTENT_LENGTH);
            parts.headers.remove(TRANSFER_ENCODING);
            Resp::from_parts(parts, Body::from(merged))
        }
        // Not the JSON object influxd writes: its answer, as it came.
        None => Resp::from_parts(parts, Body::from(theirs)),
    }
}

/// influxd's JSON object with the gateway's key added at its end. influxd's text is kept byte
/// for byte (its key order included), so the object is spliced rather than re-serialized.
fn with_gateway(theirs: &[u8], ours: &Value) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde_json::Map<String, Value>>(theirs).ok()?;
    let close = theirs.iter().rposition(|&b| b == b'}')?;
    let inner = theirs[..close].trim_ascii_end();
    let mut out = Vec::with_capacity(theirs.len() + 1024);
    out.extend_from_slice(inner);
    if inner != b"{" {
        out.push(b',');
    }
    out.extend_from_slice(format!("\n\"{VARS_KEY}\": {ours}\n}}\n").as_bytes());
    Some(out)
}

/// The gateway's key alone, when influxd did not answer.
fn alone(ours: &Value) -> Resp {
    let mut r = Resp::new(Body::from(Bytes::from(format!(
        "{{\n\"{VARS_KEY}\": {ours}\n}}\n"
    ))));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// The node's main figures, named in influxd's style (camelCase, counters as integers).
fn stats(node: &NodeView) -> Value {
    let s = node.snapshot();
    let (raft, applier, log) = (&s.raft, &s.applier, &s.log);
    let requests = |route: &str| node.metrics.requests.with_label_values(&[route]).get();
    json!({
        "name": VARS_KEY,
        "tags": { "node": node.id.to_string() },
        "values": {
            "raftTerm": raft.term,
            "raftLeader": raft.leader,
            "raftIsLeader": u8::from(raft.role == Role::Leader),
            "raftCommitIndex": raft.commit,
            "raftLastIndex": raft.last_index,
            "appliedIndex": applier.applied,
            "applyLag": raft.commit.saturating_sub(applier.applied),
            "applyRejected": applier.rejected,
            "influxdUp": u8::from(applier.influxd_up),
            "rebuilding": u8::from(applier.rebuilding.is_some()),
            "seeding": u8::from(applier.seeding.is_some()),
            "seedsCompleted": applier.seeds_completed,
            "seedsFailed": applier.seeds_failed,
            "pendingRequests": s.pending,
            "writeReq": requests("write") + requests("write_v2") + requests("prom_write"),
            "promWriteReq": requests("prom_write"),
            "promReadReq": requests("prom_read"),
            "queryReq": requests("query"),
            "pointsWritten": node.metrics.points_written.get(),
            "logFirstIndex": log.first_index,
            "logDiskEntries": log.disk_entries,
            "logDiskBytes": log.disk_bytes,
            "logDirBytes": log.dir_bytes,
            "logMemoryEntries": log.memory_entries,
            "logMemoryBytes": log.memory_bytes,
            "logTrimmedEntries": log.trimmed_entries_total,
            "logTrimmedBytes": log.trimmed_bytes_total,
            "logSyncs": log.syncs,
            "apiConnections": node.metrics.api_connections.get(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_key_is_added_to_influxds_object() {
        let ours = json!({"name": "gateway", "tags": {}, "values": {"raftTerm": 2}});
        let theirs =
            b"{\n\"memstats\": {\"Alloc\": 1},\n\"httpd::8086\": {\"name\":\"httpd\"}\n}\n";
        let merged = with_gateway(theirs, &ours).unwrap();
        let text = String::from_utf8(merged).unwrap();
        assert!(text.starts_with("{\n\"memstats\": {\"Alloc\": 1},\n\"httpd::8086\""));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["gateway"], ours);
        assert_eq!(v["memstats"]["Alloc"], 1);

        let empty = with_gateway(b"{\n}\n", &ours).unwrap();
        let v: Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);

        assert!(with_gateway(b"404 page not found", &ours).is_none());
        assert!(with_gateway(b"[1]", &ours).is_none());
    }
}
