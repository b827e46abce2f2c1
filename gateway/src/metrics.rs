//! Prometheus metrics. Counters on the request path are updated as requests go; the state of
//! Raft, the applier, the log and the transport is read into gauges when /metrics is scraped.

use std::sync::atomic::Ordering::Relaxed;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use hybrid_log::LogStats;
use snapshotless::ApplierStatus;

use crate::raft::transport::TransportStats;
use crate::raft::{RaftStatus, Role};

/// The node's state at one moment, read into gauges on each scrape.
pub struct Snapshot<'a> {
    pub raft: RaftStatus,
    pub applier: ApplierStatus,
    pub log: LogStats,
    pub peers: &'a TransportStats,
    pub pending: usize,
    /// Idempotency keys the table holds.
    pub keys: usize,
}

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub responses: IntCounterVec,
    pub points_written: IntCounter,
    pub write_seconds: Histogram,
    /// API connections open now, and the cap on them.
    pub api_connections: IntGauge,
    pub api_connections_max: IntGauge,
    pub api_accepted: IntCounter,
    /// Accepts that found every slot taken and waited for a connection to close.
    pub api_cap_waits: IntCounter,
    /// Connections and requests cut off, by reason (a deadline passed, a head too large).
    pub api_cuts: IntCounterVec,
    /// Keyed writes answered from this node's idempotency table, without a proposal.
    pub retries_answered: IntCounter,
    gauges: Gauges,
}

struct Gauges {
    raft_term: IntGauge,
    raft_commit: IntGauge,
    raft_last_index: IntGauge,
    raft_is_leader: IntGauge,
    raft_leader: IntGauge,
    applied: IntGauge,
    apply_lag: IntGauge,
    influxd_up: IntGauge,
    rebuilding: IntGauge,
    rejected: IntGauge,
    retries_applied: IntGauge,
    idempotency_keys: IntGauge,
    resumes: IntGauge,
    influxd_requests: IntGauge,
    pending: IntGauge,
    log_memory_hits: IntGauge,
    log_memory_misses: IntGauge,
    log_memory_bytes: IntGauge,
    log_memory_entries: IntGauge,
    log_disk_entries: IntGauge,
    log_disk_bytes: IntGauge,
    log_dir_bytes: IntGauge,
    log_first_index: IntGauge,
    log_trimmed_entries: IntGauge,
    log_trimmed_bytes: IntGauge,
    seeding: IntGauge,
    seeds_started: IntGauge,
    seeds_completed: IntGauge,
    seeds_failed: IntGauge,
    log_syncs: IntGauge,
    log_sync_seconds: Gauge,
    peer_sent: IntGauge,
    peer_received: IntGauge,
    peer_dropped: IntGauge,
    peer_connects: IntGauge,
    peer_rejected: IntGaugeVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("gateway_http_requests_total", "HTTP requests by route"),
            &["route"],
        )
        .expect("valid metric");
        let responses = IntCounterVec::new(
            Opts::new(
                "gateway_http_responses_total",
                "HTTP responses by route and status code",
            ),
            &["route", "code"],
        )
        .expect("valid metric");
        let points_written = IntCounter::new(
            "gateway_points_written_total",
            "Points accepted by ingest and proposed to the log",
        )
        .expect("valid metric");
        let write_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "gateway_write_duration_seconds",
                "Time from a write's arrival to its answer",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let api_connections = IntGauge::new(
            "gateway_api_connections",
            "API connections open (each holds a slot of max_connections)",
        )
        .expect("valid metric");
        let api_connections_max = IntGauge::new(
            "gateway_api_connections_max",
            "The cap on API connections open at once (max_connections)",
        )
        .expect("valid metric");
        let api_accepted = IntCounter::new(
            "gateway_api_connections_accepted_total",
            "API connections accepted",
        )
        .expect("valid metric");
        let api_cap_waits = IntCounter::new(
            "gateway_api_connections_cap_waits_total",
            "Times accepting waited for a connection to close, at max_connections",
        )
        .expect("valid metric");
        let api_cuts = IntCounterVec::new(
            Opts::new(
                "gateway_api_cut_total",
                "API connections or requests cut off: header_timeout, idle_timeout, \
                 write_timeout, body_timeout, head_too_large, tls_handshake (failed or timed out)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let retries_answered = IntCounter::new(
            "gateway_write_retries_answered_here_total",
            "Keyed writes this node answered from its idempotency table, without proposing \
             them (a retry of a write already applied, or a key reused for another write)",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(retries_answered.clone()),
            Box::new(responses.clone()),
            Box::new(points_written.clone()),
            Box::new(write_seconds.clone()),
            Box::new(api_connections.clone()),
            Box::new(api_connections_max.clone()),
            Box::new(api_accepted.clone()),
            Box::new(api_cap_waits.clone()),
            Box::new(api_cuts.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        let r = &registry;
        let log_sync_seconds = Gauge::new(
            "gateway_log_sync_seconds_total",
            "Time spent in synced log writes",
        )
        .expect("valid metric");
        r.register(Box::new(log_sync_seconds.clone()))
            .expect("unique metric");
        let gauges = Gauges {
            raft_term: gauge(r, "gateway_raft_term", "Current Raft term"),
            raft_commit: gauge(
                r,
                "gateway_raft_commit_index",
                "Committed, locally durable index",
            ),
            raft_last_index: gauge(r, "gateway_raft_last_index", "Last index in the local log"),
            raft_is_leader: gauge(r, "gateway_raft_is_leader", "1 if this node leads"),
            raft_leader: gauge(
                r,
                "gateway_raft_leader",
                "Id of the known leader, 0 if none",
            ),
            applied: gauge(
                r,
                "gateway_applied_index",
                "Last index applied to the local influxd",
            ),
            apply_lag: gauge(
                r,
                "gateway_apply_lag_entries",
                "Committed entries not yet applied",
            ),
            influxd_up: gauge(r, "gateway_influxd_up", "1 if the local influxd answers"),
            rebuilding: gauge(
                r,
                "gateway_rebuilding",
                "1 while influxd is rebuilt from the log",
            ),
            rejected: gauge(
                r,
                "gateway_apply_rejected_entries_total",
                "Entries influxd rejected (4xx), and keyed writes refused for reusing a key",
            ),
            retries_applied: gauge(
                r,
                "gateway_apply_retries_total",
                "Keyed writes the applier answered as retries of a write applied before, \
                 without applying them",
            ),
            idempotency_keys: gauge(
                r,
                "gateway_idempotency_keys",
                "Idempotency keys this node's table holds",
            ),
            resumes: gauge(
                r,
                "gateway_apply_resumes_total",
                "Times the applier resumed from the marker",
            ),
            influxd_requests: gauge(
                r,
                "gateway_apply_influxd_requests_total",
                "Requests made to influxd by the applier",
            ),
            pending: gauge(r, "gateway_pending_requests", "Requests waiting on the log"),
            log_memory_hits: gauge(
                r,
                "gateway_log_memory_hits_total",
                "Log reads served from memory",
            ),
            log_memory_misses: gauge(
                r,
                "gateway_log_memory_misses_total",
                "Log reads that went to disk",
            ),
            log_memory_bytes: gauge(
                r,
                "gateway_log_memory_bytes",
                "Bytes of entries in the memory tier",
            ),
            log_memory_entries: gauge(
                r,
                "gateway_log_memory_entries",
                "Entries in the memory tier",
            ),
            log_disk_entries: gauge(r, "gateway_log_disk_entries", "Entries on disk"),
            log_disk_bytes: gauge(
                r,
                "gateway_log_disk_bytes",
                "Estimated live bytes of entries on disk",
            ),
            log_dir_bytes: gauge(
                r,
                "gateway_log_dir_bytes",
                "Bytes of every file in the log's directory (SST, WAL, manifest)",
            ),
            log_first_index: gauge(
                r,
                "gateway_log_first_index",
                "First index the log holds (1 until it is trimmed)",
            ),
            log_trimmed_entries: gauge(
                r,
                "gateway_log_trimmed_entries_total",
                "Entries trimmed from the log",
            ),
            log_trimmed_bytes: gauge(
                r,
                "gateway_log_trimmed_bytes_total",
                "Approximate bytes of the entries trimmed from the log",
            ),
            seeding: gauge(
                r,
                "gateway_seeding",
                "1 while influxd is replaced by a copy of a peer's",
            ),
            seeds_started: gauge(r, "gateway_seeds_started_total", "Seeds started"),
            seeds_completed: gauge(r, "gateway_seeds_completed_total", "Seeds completed"),
            seeds_failed: gauge(r, "gateway_seeds_failed_total", "Seed attempts that failed"),
            log_syncs: gauge(r, "gateway_log_syncs_total", "Synced log writes"),
            log_sync_seconds,
            peer_sent: gauge(
                r,
                "gateway_peer_messages_sent_total",
                "Raft messages sent to peers",
            ),
            peer_received: gauge(
                r,
                "gateway_peer_messages_received_total",
                "Raft messages received",
            ),
            peer_dropped: gauge(
                r,
                "gateway_peer_messages_dropped_total",
                "Raft messages dropped (full queue, unknown peer)",
            ),
            peer_connects: gauge(
                r,
                "gateway_peer_connects_total",
                "Peer connections established",
            ),
            peer_rejected: {
                let opts = Opts::new(
                    "gateway_peer_connections_rejected_total",
                    "Peer connections dropped before any message was read: reason=tls (failed \
                     handshake: no certificate, another CA, not TLS) or hello (missing, \
                     undecodable or of another cluster, or too many unproven at once)",
                );
                let v = IntGaugeVec::new(opts, &["reason"]).expect("valid metric");
                r.register(Box::new(v.clone())).expect("unique metric");
                v
            },
        };
        Metrics {
            registry,
            requests,
            responses,
            points_written,
            write_seconds,
            api_connections,
            api_connections_max,
            api_accepted,
            api_cap_waits,
            api_cuts,
            retries_answered,
            gauges,
        }
    }

    /// The Prometheus text exposition, with every gauge read fresh.
    pub fn render(&self, s: &Snapshot) -> String {
        let g = &self.gauges;
        let (raft, applier, log, t) = (&s.raft, &s.applier, &s.log, s.peers);
        g.raft_term.set(raft.term as i64);
        g.raft_commit.set(raft.commit as i64);
        g.raft_last_index.set(raft.last_index as i64);
        g.raft_is_leader.set(i64::from(raft.role == Role::Leader));
        g.raft_leader.set(raft.leader as i64);
        g.applied.set(applier.applied as i64);
        g.apply_lag
            .set(raft.commit.saturating_sub(applier.applied) as i64);
        g.influxd_up.set(i64::from(applier.influxd_up));
        g.rebuilding.set(i64::from(applier.rebuilding.is_some()));
        g.rejected.set(applier.rejected as i64);
        g.retries_applied.set(applier.retries as i64);
        g.idempotency_keys.set(s.keys as i64);
        g.resumes.set(applier.resumes as i64);
        g.influxd_requests.set(applier.requests as i64);
        g.pending.set(s.pending as i64);
        g.log_memory_hits.set(log.memory_hits as i64);
        g.log_memory_misses.set(log.memory_misses as i64);
        g.log_memory_bytes.set(log.memory_bytes as i64);
        g.log_memory_entries.set(log.memory_entries as i64);
        g.log_disk_entries.set(log.disk_entries as i64);
        g.log_disk_bytes.set(log.disk_bytes as i64);
        g.log_dir_bytes.set(log.dir_bytes as i64);
        g.log_first_index.set(log.first_index as i64);
        g.log_trimmed_entries.set(log.trimmed_entries_total as i64);
        g.log_trimmed_bytes.set(log.trimmed_bytes_total as i64);
        g.seeding.set(i64::from(applier.seeding.is_some()));
        g.seeds_started.set(applier.seeds_started as i64);
        g.seeds_completed.set(applier.seeds_completed as i64);
        g.seeds_failed.set(applier.seeds_failed as i64);
        g.log_syncs.set(log.syncs as i64);
        g.log_sync_seconds.set(log.sync_seconds_total);
        g.peer_sent.set(t.sent.load(Relaxed) as i64);
        g.peer_received.set(t.received.load(Relaxed) as i64);
        g.peer_dropped.set(t.dropped.load(Relaxed) as i64);
        g.peer_connects.set(t.connects.load(Relaxed) as i64);
        g.peer_rejected
            .with_label_values(&["tls"])
            .set(t.rejected_tls.load(Relaxed) as i64);
        g.peer_rejected
            .with_label_values(&["hello"])
            .set(t.rejected_hello.load(Relaxed) as i64);

        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
