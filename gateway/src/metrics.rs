//! Prometheus metrics. Counters on the request path are updated as requests go. The state of
//! Raft, the applier, the log and the transport is read when /metrics is scraped: levels into
//! gauges, and the counts those parts keep into counter families built from the snapshot.
//! The process's own figures (CPU, memory, file descriptors, start time) come from
//! /proc/self, as every Prometheus client reports them (`process_*`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Counter, CounterVec, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
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
    pub disk: &'a crate::log_disk::LogDisk,
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
    /// The UDP listener's counts (zero while it is off).
    pub udp: Arc<UdpMetrics>,
    /// Keyed writes answered from this node's idempotency table, without a proposal.
    pub retries_answered: IntCounter,
    gauges: Gauges,
}

/// What the UDP listener received, wrote and dropped: its datagrams get no answer, so this is
/// the only account of them.
pub struct UdpMetrics {
    pub datagrams: IntCounter,
    pub bytes: IntCounter,
    /// Points of the datagrams that parsed, before batching.
    pub points_received: IntCounter,
    /// Points committed to the log.
    pub points_written: IntCounter,
    /// Datagrams dropped, by reason.
    dropped: IntCounterVec,
    /// Datagrams of batches proposed whose commit was not confirmed in time.
    pub unconfirmed: IntCounter,
    /// Batches handed to the log, by what made them go.
    batches: IntCounterVec,
    /// The socket's receive buffer as the kernel granted it.
    pub receive_buffer: IntGauge,
}

/// Every reason a datagram is dropped for, so each has a sample from the start.
pub const UDP_DROP_REASONS: [&str; 9] = [
    "malformed",
    "receive_buffer_full",
    "queue_full",
    "no_leader",
    "not_member",
    "overloaded",
    "disk_full",
    "not_ready",
    "read_error",
];

impl UdpMetrics {
    fn new(r: &Registry) -> UdpMetrics {
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let dropped = IntCounterVec::new(
            Opts::new(
                "gateway_udp_dropped_total",
                "UDP datagrams dropped: malformed (a line did not parse: the whole datagram, as \
                 influxd), receive_buffer_full (by the kernel, the socket's buffer full), \
                 queue_full (udp_batch_pending batches already waiting), no_leader (no quorum \
                 known), not_member, overloaded (the Raft node's queue full), disk_full (the \
                 log's disk below log_disk_reserve, or full), not_ready (not \
                 proposed for another reason: the UDP database not created in time), \
                 read_error",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let batches = IntCounterVec::new(
            Opts::new(
                "gateway_udp_batches_total",
                "UDP batches handed to the log: flush=size (udp_batch_size points or \
                 max_body_size bytes) or timeout (udp_batch_timeout after its first point)",
            ),
            &["flush"],
        )
        .expect("valid metric");
        let receive_buffer = IntGauge::new(
            "gateway_udp_receive_buffer_bytes",
            "The UDP socket's receive buffer, as the kernel granted it (Linux: twice what it \
             was asked, capped at twice net.core.rmem_max)",
        )
        .expect("valid metric");
        for c in [
            Box::new(dropped.clone()) as Box<dyn Collector>,
            Box::new(batches.clone()),
            Box::new(receive_buffer.clone()),
        ] {
            r.register(c).expect("unique metric");
        }
        UdpMetrics {
            datagrams: counter("gateway_udp_datagrams_total", "UDP datagrams received"),
            bytes: counter(
                "gateway_udp_received_bytes_total",
                "Bytes of the UDP datagrams received",
            ),
            points_received: counter(
                "gateway_udp_points_received_total",
                "Points of the UDP datagrams that parsed",
            ),
            points_written: counter(
                "gateway_udp_points_written_total",
                "UDP points committed to the log",
            ),
            dropped,
            unconfirmed: counter(
                "gateway_udp_unconfirmed_total",
                "UDP datagrams of batches proposed but not confirmed committed within \
                 write_timeout (the leader was lost): they may or may not be written",
            ),
            batches,
            receive_buffer,
        }
    }

    /// Gives every label its sample, so that a rate over it exists before the first drop.
    pub fn listening(&self) {
        for reason in UDP_DROP_REASONS {
            self.dropped.with_label_values(&[reason]);
        }
        for flush in ["size", "timeout"] {
            self.batches.with_label_values(&[flush]);
        }
    }

    pub fn dropped(&self, reason: &str, datagrams: u64) {
        self.dropped.with_label_values(&[reason]).inc_by(datagrams);
    }

    pub fn flushed(&self, why: crate::udp::Flush) {
        let label = match why {
            crate::udp::Flush::Size => "size",
            crate::udp::Flush::Timeout => "timeout",
        };
        self.batches.with_label_values(&[label]).inc();
    }
}

/// The node's state, read from the snapshot into gauges on each scrape.
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
    idempotency_keys: IntGauge,
    pending: IntGauge,
    log_memory_bytes: IntGauge,
    log_memory_entries: IntGauge,
    log_disk_entries: IntGauge,
    log_disk_bytes: IntGauge,
    log_dir_bytes: IntGauge,
    log_first_index: IntGauge,
    seeding: IntGauge,
    log_disk_free: IntGauge,
    log_disk_reserve: IntGauge,
    log_disk_full: IntGauge,
    log_persist_stalled: IntGauge,
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
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        let r = &registry;
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
            log_disk_free: gauge(
                r,
                "gateway_log_disk_free_bytes",
                "Bytes free on the Raft log's disk",
            ),
            log_disk_reserve: gauge(
                r,
                "gateway_log_disk_reserve_bytes",
                "Free space below which writes are refused (log_disk_reserve)",
            ),
            log_disk_full: gauge(
                r,
                "gateway_log_disk_full",
                "1 while writes are refused for the Raft log's disk (below the reserve, or the log cannot be written)",
            ),
            log_persist_stalled: gauge(
                r,
                "gateway_log_persist_stalled",
                "1 while the Raft node waits for disk space to persist the log",
            ),
            rebuilding: gauge(
                r,
                "gateway_rebuilding",
                "1 while influxd is rebuilt from the log",
            ),
            idempotency_keys: gauge(
                r,
                "gateway_idempotency_keys",
                "Idempotency keys this node's table holds",
            ),
            pending: gauge(r, "gateway_pending_requests", "Requests waiting on the log"),
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
            seeding: gauge(
                r,
                "gateway_seeding",
                "1 while influxd is replaced by a copy of a peer's",
            ),
        };
        let udp = Arc::new(UdpMetrics::new(&registry));
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
            udp,
            retries_answered,
            gauges,
        }
    }

    /// The Prometheus text exposition, with every gauge and snapshot counter read fresh.
    pub fn render(&self, s: &Snapshot) -> String {
        let g = &self.gauges;
        let (raft, applier, log) = (&s.raft, &s.applier, &s.log);
        g.raft_term.set(raft.term as i64);
        g.raft_commit.set(raft.commit as i64);
        g.raft_last_index.set(raft.last_index as i64);
        g.raft_is_leader.set(i64::from(raft.role == Role::Leader));
        g.raft_leader.set(raft.leader as i64);
        g.applied.set(applier.applied as i64);
        g.apply_lag
            .set(raft.commit.saturating_sub(applier.applied) as i64);
        g.influxd_up.set(i64::from(applier.influxd_up));
        let free = s.disk.free();
        g.log_disk_free.set(i64::try_from(free).unwrap_or(i64::MAX));
        g.log_disk_reserve
            .set(i64::try_from(s.disk.reserve()).unwrap_or(i64::MAX));
        g.log_disk_full.set(i64::from(s.disk.check().is_err()));
        g.log_persist_stalled
            .set(i64::from(s.disk.persist_failing()));
        g.rebuilding.set(i64::from(applier.rebuilding.is_some()));
        g.idempotency_keys.set(s.keys as i64);
        g.pending.set(s.pending as i64);
        g.log_memory_bytes.set(log.memory_bytes as i64);
        g.log_memory_entries.set(log.memory_entries as i64);
        g.log_disk_entries.set(log.disk_entries as i64);
        g.log_disk_bytes.set(log.disk_bytes as i64);
        g.log_dir_bytes.set(log.dir_bytes as i64);
        g.log_first_index.set(log.first_index as i64);
        g.seeding.set(i64::from(applier.seeding.is_some()));

        let mut families = self.registry.gather();
        families.extend(snapshot_counters(s));
        families.sort_by(|a, b| a.get_name().cmp(b.get_name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is utf-8")
    }
}

/// The counts the applier, the log and the transport keep, as counter families. They are
/// monotonic counts already, kept where they happen; building the families from them at each
/// scrape, rather than mirroring them into registered counters, leaves one copy to trust.
fn snapshot_counters(s: &Snapshot) -> Vec<MetricFamily> {
    let (applier, log, t) = (&s.applier, &s.log, s.peers);
    let mut families = Vec::new();
    let mut counter = |name: &str, help: &str, value: f64| {
        let c = Counter::new(name, help).expect("valid metric");
        c.inc_by(value);
        families.extend(c.collect());
    };
    counter(
        "gateway_apply_rejected_entries_total",
        "Entries influxd rejected (4xx), and keyed writes refused for reusing a key",
        applier.rejected as f64,
    );
    counter(
        "gateway_apply_retries_total",
        "Keyed writes the applier answered as retries of a write applied before, without \
         applying them",
        applier.retries as f64,
    );
    counter(
        "gateway_apply_resumes_total",
        "Times the applier resumed from the marker",
        applier.resumes as f64,
    );
    counter(
        "gateway_apply_influxd_requests_total",
        "Requests made to influxd by the applier",
        applier.requests as f64,
    );
    counter(
        "gateway_apply_lane_groups_total",
        "Groups of writes the applier sent to influxd as several requests at once",
        applier.lane_groups as f64,
    );
    counter(
        "gateway_apply_influxd_write_seconds_total",
        "Seconds the applier spent waiting for influxd to answer writes",
        applier.write_seconds,
    );
    counter(
        "gateway_log_memory_hits_total",
        "Log reads served from memory",
        log.memory_hits as f64,
    );
    counter(
        "gateway_log_memory_misses_total",
        "Log reads that went to disk",
        log.memory_misses as f64,
    );
    counter(
        "gateway_log_trimmed_entries_total",
        "Entries trimmed from the log",
        log.trimmed_entries_total as f64,
    );
    counter(
        "gateway_log_trimmed_bytes_total",
        "Approximate bytes of the entries trimmed from the log",
        log.trimmed_bytes_total as f64,
    );
    counter(
        "gateway_log_syncs_total",
        "Synced log writes",
        log.syncs as f64,
    );
    counter(
        "gateway_log_sync_seconds_total",
        "Time spent in synced log writes",
        log.sync_seconds_total,
    );
    counter(
        "gateway_seeds_started_total",
        "Seeds started",
        applier.seeds_started as f64,
    );
    counter(
        "gateway_seeds_completed_total",
        "Seeds completed",
        applier.seeds_completed as f64,
    );
    counter(
        "gateway_seeds_failed_total",
        "Seed attempts that failed",
        applier.seeds_failed as f64,
    );
    counter(
        "gateway_peer_messages_sent_total",
        "Raft messages sent to peers",
        t.sent.load(Relaxed) as f64,
    );
    counter(
        "gateway_peer_messages_received_total",
        "Raft messages received",
        t.received.load(Relaxed) as f64,
    );
    counter(
        "gateway_peer_messages_dropped_total",
        "Raft messages dropped (full queue, unknown peer)",
        t.dropped.load(Relaxed) as f64,
    );
    counter(
        "gateway_peer_messages_held_back_total",
        "Raft messages not sent because they carry a packed entry and their peer has not said \
         it reads those (an older build): it stays behind until it does",
        t.held_back.load(Relaxed) as f64,
    );
    counter(
        "gateway_peer_connects_total",
        "Peer connections established",
        t.connects.load(Relaxed) as f64,
    );
    let rejected = CounterVec::new(
        Opts::new(
            "gateway_peer_connections_rejected_total",
            "Peer connections dropped before any message was read: reason=tls (failed \
             handshake: no certificate, another CA, not TLS) or hello (missing, undecodable or \
             of another cluster, or too many unproven at once)",
        ),
        &["reason"],
    )
    .expect("valid metric");
    for (reason, n) in [("tls", &t.rejected_tls), ("hello", &t.rejected_hello)] {
        rejected
            .with_label_values(&[reason])
            .inc_by(n.load(Relaxed) as f64);
    }
    families.extend(rejected.collect());
    families
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
