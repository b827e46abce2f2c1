//! Cluster benchmarks with real processes, each figure next to a baseline measured in the same
//! run on the same influxd processes. One JSON object per line on stdout, progress on stderr.
//!
//!   cargo run --release -p tests --bin cluster-bench -- throughput [--quick]
//!   cargo run --release -p tests --bin cluster-bench -- catchup [--quick]
//!
//! throughput: sustained points/s with 5,000-point batches and 4, 8 and 16 clients through the
//! 3-node cluster, against a fan-out baseline (each batch written to all three influxd, as
//! influxdb-relay does) and one influxd alone; latency of 100-point batches; gateway CPU
//! seconds per million points; gateway RSS.
//!
//! catchup: one node is down while N points are written, then restarted: the rate at which it
//! replays them into its influxd, against writing the same points straight into one influxd.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;
use tests::{wait_until, Cluster, Http, HttpError};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    Throughput {
        /// Shorter phases, for a smoke run.
        #[arg(long)]
        quick: bool,
    },
    Catchup {
        #[arg(long)]
        quick: bool,
    },
}

const BATCH: usize = 5_000;
const SMALL_BATCH: usize = 100;
const MEMORY_BUDGET: &str = "64MiB";

fn main() {
    match Args::parse().what {
        What::Throughput { quick } => throughput(quick),
        What::Catchup { quick } => catchup(quick),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn emit(v: serde_json::Value) {
    println!("{v}");
}

/// `n` realistic points (Telegraf cpu style), unique by timestamp within `[base, base + n)`.
fn batch(base: u64, n: usize) -> String {
    let mut s = String::with_capacity(n * 110);
    for i in 0..n as u64 {
        let t = base + i;
        s += &format!(
            "cpu,host=server{:03},region=eu-{} usage_user={}.{},usage_system={}.{},usage_idle={}i {}\n",
            t % 200,
            t % 4,
            t % 97,
            t % 10,
            t % 13,
            t % 7,
            t % 100,
            1_600_000_000_000_000_000 + t
        );
    }
    s
}

/// Runs `clients` writers for `secs`, each calling `write(batch_base)`; returns points/s.
fn sustained(
    clients: usize,
    secs: f64,
    points_per_write: usize,
    write: impl Fn(usize, u64) + Send + Sync,
) -> f64 {
    let next = AtomicU64::new(0);
    let written = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (next, written, write) = (&next, &written, &write);
            s.spawn(move || {
                while Instant::now() < deadline {
                    let base = next.fetch_add(points_per_write as u64, Ordering::Relaxed);
                    write(c, base);
                    written.fetch_add(points_per_write as u64, Ordering::Relaxed);
                }
            });
        }
    });
    written.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn ok(r: Result<tests::http::Response, HttpError>, what: &str) {
    match r {
        Ok(r) if r.status == 204 => {}
        Ok(r) => panic!("{what}: {} {}", r.status, r.body),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Gateway CPU time (user + system) in seconds, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn gateway_pids(c: &Cluster) -> Vec<u32> {
    c.nodes.iter().filter_map(|n| n.gateway.pid()).collect()
}

fn influxd_pids(c: &Cluster) -> Vec<u32> {
    c.nodes.iter().filter_map(|n| n.influxd.pid()).collect()
}

fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

fn create_direct(http: &Http, db: &str) {
    http.query_ok("", &format!("CREATE DATABASE \"{db}\""));
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn latencies(n: usize, write: impl Fn(u64)) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..n as u64)
        .map(|i| {
            let start = Instant::now();
            write(i * SMALL_BATCH as u64);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (quantile(&ms, 0.5), quantile(&ms, 0.99))
}

fn throughput(quick: bool) {
    let secs = if quick { 4.0 } else { 20.0 };
    eprintln!("starting a 3-node cluster (release build)...");
    let c = Cluster::start_with(3, &["--memory-budget", MEMORY_BUDGET]);
    c.create_database(1, "bench");
    let influx: Vec<Http> = c.nodes.iter().map(|n| n.influx()).collect();
    for h in &influx {
        create_direct(h, "fanout");
    }
    create_direct(&influx[0], "single");
    let apis: Vec<Http> = c.nodes.iter().map(|n| n.api()).collect();
    let pids = gateway_pids(&c);
    let influxds = influxd_pids(&c);

    for clients in [4, 8, 16] {
        // Different timestamp ranges per phase keep every phase writing new points.
        let offset = clients as u64 * 1_000_000_000_000;
        eprintln!("{clients} clients: cluster...");
        let (gw_before, influxd_before) = (total_cpu(&pids), total_cpu(&influxds));
        let counted = AtomicU64::new(0);
        let cluster = sustained(clients, secs, BATCH, |client, base| {
            let api = &apis[client % apis.len()];
            ok(
                api.write("db=bench", &batch(offset + base, BATCH)),
                "cluster write",
            );
            counted.fetch_add(BATCH as u64, Ordering::Relaxed);
        });
        // Let the other replicas finish applying before the baseline uses their influxd;
        // their CPU counts, the points were written in the timed phase.
        wait_applied(&c);
        let mpoints = counted.load(Ordering::Relaxed) as f64 / 1e6;
        let gateway_cpu = (total_cpu(&pids) - gw_before) / mpoints;
        let cluster_influxd_cpu = (total_cpu(&influxds) - influxd_before) / mpoints;

        eprintln!("{clients} clients: fan-out to three influxd...");
        let influxd_before = total_cpu(&influxds);
        let fanout_points = AtomicU64::new(0);
        let fanout = sustained(clients, secs, BATCH, |_, base| {
            let body = batch(offset + base, BATCH);
            std::thread::scope(|s| {
                for h in &influx {
                    let body = &body;
                    s.spawn(move || ok(h.write("db=fanout", body), "fan-out write"));
                }
            });
            fanout_points.fetch_add(BATCH as u64, Ordering::Relaxed);
        });
        let fanout_influxd_cpu = (total_cpu(&influxds) - influxd_before)
            / (fanout_points.load(Ordering::Relaxed) as f64 / 1e6);
        eprintln!("{clients} clients: one influxd alone...");
        let single = sustained(clients, secs, BATCH, |_, base| {
            ok(
                influx[0].write("db=single", &batch(offset + base, BATCH)),
                "single write",
            )
        });
        emit(json!({
            "bench": "throughput", "batch": BATCH, "clients": clients,
            "cluster_points_per_s": cluster.round(),
            "fanout_points_per_s": fanout.round(),
            "single_points_per_s": single.round(),
            "cluster_vs_fanout": (cluster / fanout * 100.0).round() / 100.0,
            // CPU seconds per million points, summed over the three processes of a kind.
            "gateway_cpu_s_per_million_points": round2(gateway_cpu),
            "cluster_influxd_cpu_s_per_million_points": round2(cluster_influxd_cpu),
            "fanout_influxd_cpu_s_per_million_points": round2(fanout_influxd_cpu),
            "gateway_cpu_vs_influxd_cpu": round2(gateway_cpu / fanout_influxd_cpu),
        }));
    }

    eprintln!("latency of {SMALL_BATCH}-point batches...");
    let n = if quick { 300 } else { 2000 };
    let off = 900_000_000_000_000;
    let (c50, c99) = latencies(n, |base| {
        let api = &apis[(base / SMALL_BATCH as u64) as usize % apis.len()];
        ok(
            api.write("db=bench", &batch(off + base, SMALL_BATCH)),
            "cluster write",
        )
    });
    let (f50, f99) = latencies(n, |base| {
        let body = batch(off + base, SMALL_BATCH);
        std::thread::scope(|s| {
            for h in &influx {
                let body = &body;
                s.spawn(move || ok(h.write("db=fanout", body), "fan-out write"));
            }
        });
    });
    emit(json!({
        "bench": "latency", "batch": SMALL_BATCH, "writes": n,
        "cluster_p50_ms": (c50 * 100.0).round() / 100.0,
        "cluster_p99_ms": (c99 * 100.0).round() / 100.0,
        "fanout_p50_ms": (f50 * 100.0).round() / 100.0,
        "fanout_p99_ms": (f99 * 100.0).round() / 100.0,
        "p99_over_fanout_ms": ((c99 - f99) * 100.0).round() / 100.0,
    }));
    let rss: Vec<f64> = pids
        .iter()
        .map(|&p| (rss_mib(p) * 10.0).round() / 10.0)
        .collect();
    emit(json!({
        "bench": "memory",
        "gateway_rss_mib": rss,
        "memory_budget": MEMORY_BUDGET,
        "limit_mib": 64 + 100,
    }));
}

/// Waits until every node has applied everything committed.
fn wait_applied(c: &Cluster) {
    wait_until(
        "every node to apply the log",
        Duration::from_secs(600),
        || {
            let s: Vec<(u64, u64)> = c
                .nodes
                .iter()
                .map(|n| {
                    let h = c.health(n.id).unwrap_or_default();
                    (
                        h["applied"].as_u64().unwrap_or(0),
                        h["committed"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            let target = s.iter().map(|x| x.1).max().unwrap_or(0);
            if s.iter().all(|&(a, _)| a >= target) {
                Ok(())
            } else {
                Err(s)
            }
        },
    );
}

fn catchup(quick: bool) {
    let total: usize = if quick { 200_000 } else { 1_000_000 };
    eprintln!("starting a 3-node cluster (release build)...");
    let mut c = Cluster::start_with(3, &["--memory-budget", MEMORY_BUDGET]);
    c.create_database(1, "bench");
    let leader = c.wait_for_leader(Duration::from_secs(30));
    let down = (1..=3).find(|&id| id != leader).unwrap();
    let up: Vec<u64> = (1..=3).filter(|&id| id != down).collect();

    eprintln!("node {down} down; writing {total} points through the others...");
    c.node_mut(down).gateway.kill();
    let apis: Vec<Http> = up.iter().map(|&id| c.node(id).api()).collect();
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for client in 0..4 {
            let (apis, next) = (&apis, &next);
            s.spawn(move || loop {
                let base = next.fetch_add(BATCH as u64, Ordering::Relaxed);
                if base >= total as u64 {
                    break;
                }
                ok(
                    apis[client % apis.len()].write("db=bench", &batch(base, BATCH)),
                    "write",
                );
            });
        }
    });

    eprintln!("restarting node {down}; measuring its catch-up...");
    let target = c.health(leader).unwrap()["committed"].as_u64().unwrap();
    let start = Instant::now();
    c.node_mut(down).gateway.start();
    // Follow the node's log and its applier: when the last entry reached its disk, and when
    // its influxd had everything.
    let mut replicated_at = None;
    loop {
        let h = c.health(down).unwrap_or_default();
        let (committed, applied) = (
            h["committed"].as_u64().unwrap_or(0),
            h["applied"].as_u64().unwrap_or(0),
        );
        if replicated_at.is_none() && committed >= target {
            replicated_at = Some(start.elapsed().as_secs_f64());
        }
        if applied >= target {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "no catch-up in 30 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let replay = start.elapsed().as_secs_f64();

    eprintln!("baseline: the same points straight into one influxd...");
    let direct = c.node(down).influx();
    create_direct(&direct, "direct");
    let start = Instant::now();
    for base in (0..total as u64).step_by(BATCH) {
        ok(
            direct.write("db=direct", &batch(base, BATCH)),
            "direct write",
        );
    }
    let baseline = start.elapsed().as_secs_f64();
    emit(json!({
        "bench": "catchup", "points": total, "batch": BATCH,
        "catchup_seconds": (replay * 100.0).round() / 100.0,
        "replicated_after_seconds": (replicated_at.unwrap_or(replay) * 100.0).round() / 100.0,
        "catchup_points_per_s": (total as f64 / replay).round(),
        "direct_points_per_s": (total as f64 / baseline).round(),
        "catchup_vs_direct": ((baseline / replay) * 100.0).round() / 100.0,
    }));
}
