//! Cluster benchmarks with real processes, each figure next to a baseline measured in the same
//! run on the same influxd processes. One JSON object per line on stdout, progress on stderr.
//!
//!   cargo run --release -p tests --bin cluster-bench -- throughput [--quick] [--baseline BIN]
//!       [--seconds S] [--clients 4,8,16]
//!   cargo run --release -p tests --bin cluster-bench -- latency [--quick] [--baseline BIN]
//!   cargo run --release -p tests --bin cluster-bench -- telegraf [--quick] [--baseline BIN]
//!   cargo run --release -p tests --bin cluster-bench -- batch-size [--quick]
//!   cargo run --release -p tests --bin cluster-bench -- catchup [--quick]
//!   cargo run --release -p tests --bin cluster-bench -- seed [--quick]
//!   cargo run --release -p tests --bin cluster-bench -- tls [--quick]
//!
//! throughput: sustained points/s with 5,000-point batches and 4, 8 and 16 clients through the
//! 3-node cluster, against a fan-out baseline (each batch written to three influxd of its own,
//! as influxdb-relay does) and one influxd alone; latency of 100-point batches, one write of
//! each kind in turn; gateway CPU and influxd CPU seconds per million points, points per
//! influxd request, the share of the machine's CPU left idle; gateway RSS. With `--baseline BIN`, a second cluster running
//! the gateway binary BIN (another build) goes through the same phases in the same run, and
//! every figure is printed for both builds.
//!
//! telegraf: 50 clients (`--clients`) each sending 500-point batches of many series, as
//! Telegraf does (hosts x measurements x instances: cpu per core, mem, disk, diskio, net,
//! system, processes, swap), through the cluster and fanned out to three influxd of its own
//! (and through the `--baseline` build's cluster), each started on a quiet machine: points/s,
//! p50/p99 of each write, gateway CPU per point, and the log's bytes per point once its
//! directory settled.
//!
//! batch-size: how fast one influxd ingests the same points sent one request after another
//! (as the applier sends them) in requests of 500 to 100,000 points, with its CPU per point.
//!
//! tls: 8 clients, each on its own kept-alive connection, through a cluster with HTTPS on the
//! API and mutual TLS between peers, against the same through a plain-text cluster; clusters
//! of each kind are started in turn, twice. Points/s, and p50/p99 of 100-point batches.
//!
//! catchup: one node is down while N Telegraf-like points are written, then restarted: the rate
//! at which it replays them into its influxd, against writing the same points straight into one
//! influxd in 5,000-point requests (and, as the ceiling, in 75,000-point ones), each started
//! on a quiet machine. With `--baseline BIN`, the same on a cluster of that build.
//!
//! seed: the bounded log, on two clusters one after the other, each filled with N Telegraf-like
//! points. On one the log is kept forever and seeding is off, on the other entries are trimmed
//! as soon as every member applied them (and the log is capped at 64 MiB). On each: the log's
//! and influxd's bytes per point; how long a node whose influxd was wiped takes to hold every
//! point again (replayed from the log on the first, seeded from a peer's influxd on the second);
//! the log directory's size, sampled every second, under sustained writes. Last, seed against
//! replay and the bounded log's size against the unbounded one's. `--points N` and
//! `--load-seconds S` change N (2,000,000) and the sustained writes' duration (60 s).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;
use tests::cluster::Secured;
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
        /// Another build's gateway binary, measured in the same run.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Seconds each kind writes at each client count, in slices of about 5 s (default
        /// 20; 4 with --quick): longer runs steady the ratios.
        #[arg(long)]
        seconds: Option<f64>,
        /// The client counts to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [4, 8, 16])]
        clients: Vec<usize>,
    },
    Telegraf {
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[arg(long, default_value_t = 50)]
        clients: usize,
    },
    BatchSize {
        #[arg(long)]
        quick: bool,
    },
    Catchup {
        #[arg(long)]
        quick: bool,
        /// Another build's gateway binary, whose catch-up is measured in the same run.
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Throughput and latency with TLS on both links (HTTPS API, mutual-TLS peers) against
    /// plain text, clusters of each kind started in turn, twice.
    /// p50/p99 of 100-point writes through the cluster, fanned out to three influxd, and
    /// through the `--baseline` build's cluster, one write of each in turn, so that whatever
    /// else the machine does weighs on all alike.
    Latency {
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    Tls {
        #[arg(long)]
        quick: bool,
    },
    Seed {
        /// 200,000 points and 5 s of sustained writes, for a smoke run.
        #[arg(long)]
        quick: bool,
        /// Points each cluster is filled with, all of which a wiped node must get back
        /// (default 2,000,000; 200,000 with --quick).
        #[arg(long)]
        points: Option<u64>,
        /// Seconds of sustained writes while the log's size is sampled (default 60; 5 with
        /// --quick).
        #[arg(long)]
        load_seconds: Option<f64>,
    },
}

const BATCH: usize = 5_000;
const SMALL_BATCH: usize = 100;
const MEMORY_BUDGET: &str = "64MiB";
/// Clients that fill a cluster: four already reach its top rate (see throughput), more only
/// add latency.
const WRITERS: usize = 4;

fn main() {
    match Args::parse().what {
        What::Throughput {
            quick,
            baseline,
            seconds,
            clients,
        } => throughput(
            seconds.unwrap_or(if quick { 4.0 } else { 20.0 }),
            &clients,
            quick,
            baseline.as_deref(),
        ),
        What::Telegraf {
            quick,
            baseline,
            clients,
        } => telegraf(quick, baseline.as_deref(), clients),
        What::BatchSize { quick } => batch_size(quick),
        What::Catchup { quick, baseline } => catchup(quick, baseline.as_deref()),
        What::Latency { quick, baseline } => latency(quick, baseline.as_deref()),
        What::Tls { quick } => tls(quick),
        What::Seed {
            quick,
            points,
            load_seconds,
        } => seed(
            points.unwrap_or(if quick { 200_000 } else { 2_000_000 }),
            load_seconds.unwrap_or(if quick { 5.0 } else { 60.0 }),
        ),
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

/// Series of Telegraf's `cpu` input on 250 hosts of 8 cores each, reporting every 10 s.
const HOSTS: u64 = 250;
const CPUS: u64 = 8;
const INTERVAL_NS: u64 = 10_000_000_000;

/// Points `[base, base + n)` as Telegraf's `cpu` input writes them (about 136 bytes each):
/// point `p` is series `p % (HOSTS * CPUS)` at interval `p / (HOSTS * CPUS)`, so every point is
/// distinct and a count tells how many arrived. The values are pseudo-random, not a constant
/// that would compress to nothing in the log and in influxd.
fn telegraf_batch(base: u64, n: usize) -> String {
    let series = HOSTS * CPUS;
    let mut s = String::with_capacity(n * 140);
    for p in base..base + n as u64 {
        let (host, cpu) = (p % series / CPUS, p % CPUS);
        let ts = 1_600_000_000_000_000_000 + p / series * INTERVAL_NS;
        // Hundredths of a percent, adding up to 100%.
        let x = splitmix64(p);
        let user = x % 6_000;
        let system = (x >> 16) % 2_000;
        let iowait = (x >> 32) % 500;
        let idle = 10_000 - user - system - iowait;
        writeln!(
            s,
            concat!(
                "cpu,host=host{:03},cpu=cpu{},region=eu-central-{} ",
                "usage_user={},usage_system={},usage_idle={},usage_iowait={} {}"
            ),
            host,
            cpu,
            host % 3 + 1,
            Percent(user),
            Percent(system),
            Percent(idle),
            Percent(iowait),
            ts,
        )
        .expect("writing to a String cannot fail");
    }
    s
}

/// A percentage held in hundredths, printed as a float field.
struct Percent(u64);

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes points `[0, total)` into `db` as fast as they are taken: `clients` writers, client
/// `c` through `apis[c % apis.len()]`, `BATCH` points (as `points(base, n)` makes them) per
/// write. Returns the line-protocol bytes written.
fn write_all(
    apis: &[Http],
    db: &str,
    total: u64,
    clients: usize,
    points: fn(u64, usize) -> String,
) -> u64 {
    let next = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let query = format!("db={db}");
    std::thread::scope(|s| {
        for client in 0..clients {
            let (next, bytes, query) = (&next, &bytes, &query);
            s.spawn(move || loop {
                let base = next.fetch_add(BATCH as u64, Ordering::Relaxed);
                if base >= total {
                    break;
                }
                let body = points(base, BATCH.min((total - base) as usize));
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                ok(apis[client % apis.len()].write(query, &body), "write");
            });
        }
    });
    bytes.into_inner()
}

/// Runs `clients` writers for `secs`, each calling `write(batch_base)`; returns points/s.
fn sustained(
    clients: usize,
    secs: f64,
    points_per_write: usize,
    write: impl Fn(usize, u64) + Send + Sync,
) -> f64 {
    let (points, took) = sustained_counted(clients, secs, points_per_write, write);
    points / took
}

/// As [`sustained`]: the points written and the seconds it took.
fn sustained_counted(
    clients: usize,
    secs: f64,
    points_per_write: usize,
    write: impl Fn(usize, u64) + Send + Sync,
) -> (f64, f64) {
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
    (
        written.load(Ordering::Relaxed) as f64,
        start.elapsed().as_secs_f64(),
    )
}

fn ok(r: Result<tests::http::Response, HttpError>, what: &str) {
    match r {
        Ok(r) if r.status == 204 => {}
        Ok(r) => panic!("{what}: {} {}", r.status, r.body),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Waits until the machine is quiet (at least 90% idle over a quarter of a second), at most
/// 10 s: each slice then starts without the work the previous one left (influxd compacting
/// what it was just sent), which would otherwise fall on whichever kind comes next.
fn settle() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let window = Duration::from_millis(250);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let before = idle_seconds();
        std::thread::sleep(window);
        if idle_seconds() - before >= 0.9 * cores * window.as_secs_f64() {
            return;
        }
    }
    eprintln!("the machine is still busy after 10 s; going on");
}

/// Idle and I/O-wait time of all cores together, in seconds since boot (/proc/stat).
fn idle_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait ...
    (cpu.get(3).copied().unwrap_or(0.0) + cpu.get(4).copied().unwrap_or(0.0)) / 100.0
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

/// A way of writing one 100-point batch: given the write's number and its body.
type Writer<'a> = &'a dyn Fn(usize, &str);

/// p50 and p99 of `n` writes of [`SMALL_BATCH`] points by each of `kinds`, one write of each
/// in turn, so that whatever else the machine does (influxd compacting what earlier phases
/// wrote, above all) weighs on all alike.
fn interleaved_latencies(n: usize, off: u64, kinds: &[Writer<'_>]) -> Vec<(f64, f64)> {
    let mut ms = vec![Vec::with_capacity(n); kinds.len()];
    for i in 0..n {
        let body = batch(off + (i * SMALL_BATCH) as u64, SMALL_BATCH);
        for (k, write) in kinds.iter().enumerate() {
            let start = Instant::now();
            write(i, &body);
            ms[k].push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            (quantile(&v, 0.5), quantile(&v, 0.99))
        })
        .collect()
}

/// One write through each node of a cluster in turn.
fn cluster_writer(apis: &[Http]) -> impl Fn(usize, &str) + '_ {
    move |i, body| {
        ok(
            apis[i % apis.len()].write("db=bench", body),
            "cluster write",
        )
    }
}

/// One write fanned out to three influxd at once.
fn fanout_writer(influx: &[Http]) -> impl Fn(usize, &str) + '_ {
    move |_, body| {
        std::thread::scope(|s| {
            for h in influx {
                s.spawn(move || ok(h.write("db=fanout", body), "fan-out write"));
            }
        })
    }
}

/// What timed writes through one cluster (or fanned out) measured, over one or more slices.
#[derive(Default)]
struct Phase {
    points: f64,
    secs: f64,
    /// CPU seconds, summed over the three processes of a kind.
    gateway_cpu_s: f64,
    influxd_cpu_s: f64,
    /// Write requests the three influxd were sent, and groups of writes the appliers sent as
    /// requests at once (lanes).
    influxd_requests: f64,
    lane_groups: f64,
    /// The machine's idle and I/O-wait CPU seconds meanwhile (all cores).
    idle_cpu_s: f64,
}

impl Phase {
    fn add(&mut self, slice: Phase) {
        self.points += slice.points;
        self.secs += slice.secs;
        self.gateway_cpu_s += slice.gateway_cpu_s;
        self.influxd_cpu_s += slice.influxd_cpu_s;
        self.influxd_requests += slice.influxd_requests;
        self.lane_groups += slice.lane_groups;
        self.idle_cpu_s += slice.idle_cpu_s;
    }

    /// The share of the machine's CPU time left idle.
    fn idle_share(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.idle_cpu_s / (self.secs * cores)
    }

    /// Points per write request each influxd was sent (each holds every point).
    fn points_per_request(&self) -> f64 {
        3.0 * self.points / self.influxd_requests
    }

    fn points_per_s(&self) -> f64 {
        self.points / self.secs
    }

    /// CPU seconds per million points.
    fn gateway_cpu(&self) -> f64 {
        self.gateway_cpu_s / (self.points / 1e6)
    }

    fn influxd_cpu(&self) -> f64 {
        self.influxd_cpu_s / (self.points / 1e6)
    }
}

/// `clients` writers sending `BATCH`-point batches through `c`'s gateways for `secs`; the CPU
/// counted includes the other replicas finishing what was written.
fn cluster_phase(c: &Cluster, clients: usize, secs: f64, offset: u64) -> Phase {
    let apis: Vec<Http> = c.nodes.iter().map(|n| n.api()).collect();
    let (pids, influxds) = (gateway_pids(c), influxd_pids(c));
    let (gw_before, influxd_before) = (total_cpu(&pids), total_cpu(&influxds));
    let applied = |field: &str| -> f64 {
        (1..=3)
            .map(|id| status(c, id)["applier"][field].as_f64().unwrap_or(0.0))
            .sum()
    };
    let requests = || applied("requests");
    let requests_before = requests();
    let lanes_before = applied("lane_groups");
    let idle_before = idle_seconds();
    let (points, secs) = sustained_counted(clients, secs, BATCH, |client, base| {
        let api = &apis[client % apis.len()];
        ok(
            api.write("db=bench", &batch(offset + base, BATCH)),
            "cluster write",
        );
    });
    let idle_cpu_s = idle_seconds() - idle_before;
    wait_applied(c);
    Phase {
        points,
        secs,
        idle_cpu_s,
        gateway_cpu_s: total_cpu(&pids) - gw_before,
        influxd_cpu_s: total_cpu(&influxds) - influxd_before,
        // The appliers' markers are requests too, one a second at most.
        influxd_requests: requests() - requests_before,
        lane_groups: applied("lane_groups") - lanes_before,
    }
}

/// `clients` writers sending each `BATCH`-point batch to all of `influx` (as influxdb-relay
/// does) for `secs`.
fn fanout_phase(
    influx: &[Http],
    influxds: &[u32],
    clients: usize,
    secs: f64,
    offset: u64,
) -> Phase {
    let influxd_before = total_cpu(influxds);
    let idle_before = idle_seconds();
    let (points, secs) = sustained_counted(clients, secs, BATCH, |_, base| {
        let body = batch(offset + base, BATCH);
        std::thread::scope(|s| {
            for h in influx {
                let body = &body;
                s.spawn(move || ok(h.write("db=fanout", body), "fan-out write"));
            }
        });
    });
    Phase {
        points,
        secs,
        idle_cpu_s: idle_seconds() - idle_before,
        gateway_cpu_s: 0.0,
        influxd_cpu_s: total_cpu(influxds) - influxd_before,
        influxd_requests: influx.len() as f64 * points / BATCH as f64,
        lane_groups: 0.0,
    }
}

/// A cluster for the benchmarks: this build's gateway, or the baseline binary given.
fn bench_cluster(binary: Option<&Path>) -> Cluster {
    let flags = ["--memory-budget", MEMORY_BUDGET];
    let c = match binary {
        Some(bin) => Cluster::start_with_binary(3, &flags, bin),
        None => Cluster::start_with(3, &flags),
    };
    c.create_database(1, "bench");
    c
}

/// A throughput phase runs in at least this many slices, the cluster's, the baseline's and fan-out's
/// in turn. influxd compacts what was just written while the next slice writes: in one long
/// phase after another, whatever went later met the compactions of all that went before.
/// Each kind writes into influxd processes of its own (fan-out into three started for it):
/// sharing them, one kind's slice would meet the other's compactions on the very processes it
/// writes to, and which one met them would depend on the order of the slices. Each slice
/// starts on a quiet machine ([`settle`]), for the same reason across processes.
const SLICES: u64 = 4;

/// Three influxd of their own for fan-out, each on its own loopback address.
struct FanoutInfluxds {
    influxds: Vec<tests::Influxd>,
    _dir: tempfile::TempDir,
    _slot: tests::cluster::Slot,
}

impl FanoutInfluxds {
    fn start() -> FanoutInfluxds {
        let slot = tests::cluster::Slot::acquire();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let influxds = (1..=3)
            .map(|id| {
                tests::Influxd::start(
                    &format!("{}:{}", slot.ip(id), tests::cluster::INFLUXD_PORT),
                    &dir.path().join(format!("fanout{id}")),
                )
            })
            .collect();
        FanoutInfluxds {
            influxds,
            _dir: dir,
            _slot: slot,
        }
    }
}

fn throughput(secs: f64, client_counts: &[usize], quick: bool, baseline: Option<&Path>) {
    // Slices of about 5 s, at least four: see SLICES.
    let slices = ((secs / 5.0).round() as u64).max(SLICES);
    // Each slice writes points of its own, 10^11 indexes apart; client counts 10^12 apart.
    assert!(slices < 40, "--seconds: at most 195 s a phase");
    eprintln!("starting a 3-node cluster (release build)...");
    let c = bench_cluster(None);
    let base = baseline.map(|bin| {
        eprintln!(
            "starting a 3-node cluster of the baseline build {}...",
            bin.display()
        );
        bench_cluster(Some(bin))
    });
    eprintln!("starting three influxd for fan-out...");
    let own = FanoutInfluxds::start();
    let influx: Vec<Http> = own.influxds.iter().map(|i| i.http()).collect();
    for h in &influx {
        create_direct(h, "fanout");
    }
    create_direct(&influx[0], "single");
    let influxds: Vec<u32> = own.influxds.iter().filter_map(|i| i.pid()).collect();

    for &clients in client_counts {
        // Different timestamp ranges per phase keep every phase writing new points.
        let offset = clients as u64 * 1_000_000_000_000;
        let (mut cluster, mut fanout) = (Phase::default(), Phase::default());
        let mut baseline = base.as_ref().map(|_| Phase::default());
        for slice in 0..slices {
            let offset = offset + slice * 100_000_000_000;
            let part = format!("slice {} of {slices}", slice + 1);
            let secs = secs / slices as f64;
            eprintln!("{clients} clients: cluster ({part})...");
            settle();
            cluster.add(cluster_phase(&c, clients, secs, offset));
            if let (Some(b), Some(phase)) = (&base, baseline.as_mut()) {
                eprintln!("{clients} clients: the baseline build's cluster ({part})...");
                settle();
                phase.add(cluster_phase(b, clients, secs, offset));
            }
            eprintln!("{clients} clients: fan-out to three influxd ({part})...");
            settle();
            fanout.add(fanout_phase(&influx, &influxds, clients, secs, offset));
        }
        let fanout_influxd_cpu = fanout.influxd_cpu();
        let fanout_idle = fanout.idle_share();
        let fanout = fanout.points_per_s();
        eprintln!("{clients} clients: one influxd alone...");
        let single = sustained(clients, secs, BATCH, |_, base| {
            ok(
                influx[0].write("db=single", &batch(offset + base, BATCH)),
                "single write",
            )
        });
        let mut line = json!({
            "bench": "throughput", "batch": BATCH, "clients": clients,
            "cluster_points_per_s": cluster.points_per_s().round(),
            "fanout_points_per_s": fanout.round(),
            "single_points_per_s": single.round(),
            "cluster_vs_fanout": round2(cluster.points_per_s() / fanout),
            "gateway_cpu_s_per_million_points": round2(cluster.gateway_cpu()),
            "cluster_influxd_cpu_s_per_million_points": round2(cluster.influxd_cpu()),
            "fanout_influxd_cpu_s_per_million_points": round2(fanout_influxd_cpu),
            "gateway_cpu_vs_influxd_cpu": round2(cluster.gateway_cpu() / fanout_influxd_cpu),
            "cluster_points_per_influxd_request": cluster.points_per_request().round(),
            "cluster_lane_groups": cluster.lane_groups,
            "cluster_idle_share": round2(cluster.idle_share()),
            "fanout_idle_share": round2(fanout_idle),
        });
        if let Some(b) = baseline {
            line["baseline_points_per_s"] = json!(b.points_per_s().round());
            line["baseline_vs_fanout"] = json!(round2(b.points_per_s() / fanout));
            line["baseline_gateway_cpu_s_per_million_points"] = json!(round2(b.gateway_cpu()));
            line["baseline_influxd_cpu_s_per_million_points"] = json!(round2(b.influxd_cpu()));
            line["gateway_cpu_vs_baseline"] =
                json!(round2(cluster.gateway_cpu() / b.gateway_cpu()));
            line["baseline_points_per_influxd_request"] = json!(b.points_per_request().round());
            line["baseline_idle_share"] = json!(round2(b.idle_share()));
        }
        emit(line);
    }

    eprintln!("latency of {SMALL_BATCH}-point batches, one write of each kind in turn...");
    let n = if quick { 300 } else { 2000 };
    let off = 900_000_000_000_000;
    settle();
    let apis = |c: &Cluster| -> Vec<Http> { c.nodes.iter().map(|n| n.api()).collect() };
    let (ours, theirs) = (apis(&c), base.as_ref().map(apis));
    let (ours, fanout) = (cluster_writer(&ours), fanout_writer(&influx));
    let theirs = theirs.as_deref().map(cluster_writer);
    let mut kinds: Vec<Writer<'_>> = vec![&ours, &fanout];
    kinds.extend(theirs.as_ref().map(|w| w as Writer<'_>));
    let got = interleaved_latencies(n, off, &kinds);
    let ((c50, c99), (f50, f99)) = (got[0], got[1]);
    let mut line = json!({
        "bench": "latency", "batch": SMALL_BATCH, "writes": n,
        "cluster_p50_ms": round2(c50),
        "cluster_p99_ms": round2(c99),
        "fanout_p50_ms": round2(f50),
        "fanout_p99_ms": round2(f99),
        "p99_over_fanout_ms": round2(c99 - f99),
    });
    if let Some(&(b50, b99)) = got.get(2) {
        line["baseline_p50_ms"] = json!(round2(b50));
        line["baseline_p99_ms"] = json!(round2(b99));
        line["baseline_p99_over_fanout_ms"] = json!(round2(b99 - f99));
    }
    emit(line);
    let rss = |c: &Cluster| -> Vec<f64> {
        gateway_pids(c)
            .iter()
            .map(|&p| (rss_mib(p) * 10.0).round() / 10.0)
            .collect()
    };
    emit(json!({
        "bench": "memory",
        "gateway_rss_mib": rss(&c),
        "baseline_gateway_rss_mib": base.as_ref().map(rss),
        "memory_budget": MEMORY_BUDGET,
        "limit_mib": 64 + 100,
    }));
}

fn latency(quick: bool, baseline: Option<&Path>) {
    let n = if quick { 300 } else { 3000 };
    eprintln!("starting a 3-node cluster (release build)...");
    let c = bench_cluster(None);
    let base = baseline.map(|bin| {
        eprintln!(
            "starting a 3-node cluster of the baseline build {}...",
            bin.display()
        );
        bench_cluster(Some(bin))
    });
    let influx: Vec<Http> = c.nodes.iter().map(|n| n.influx()).collect();
    for h in &influx {
        create_direct(h, "fanout");
    }
    let apis = |c: &Cluster| -> Vec<Http> { c.nodes.iter().map(|n| n.api()).collect() };
    let (ours, theirs) = (apis(&c), base.as_ref().map(apis).unwrap_or_default());
    eprintln!("{n} writes of {SMALL_BATCH} points to each, in turn...");
    let (ours, fanout) = (cluster_writer(&ours), fanout_writer(&influx));
    let theirs = (!theirs.is_empty()).then(|| cluster_writer(&theirs));
    let mut kinds: Vec<Writer<'_>> = vec![&ours, &fanout];
    kinds.extend(theirs.as_ref().map(|w| w as Writer<'_>));
    let got = interleaved_latencies(n, 900_000_000_000_000, &kinds);
    let nan = (f64::NAN, f64::NAN);
    let [cl, fan, bl] = [0, 1, 2].map(|k| {
        let (p50, p99) = got.get(k).copied().unwrap_or(nan);
        (round2(p50), round2(p99))
    });
    let (c99, f99, b99) = (cl.1, fan.1, bl.1);
    emit(json!({
        "bench": "latency_interleaved", "batch": SMALL_BATCH, "writes": n,
        "cluster_p50_ms": cl.0, "cluster_p99_ms": c99,
        "fanout_p50_ms": fan.0, "fanout_p99_ms": f99,
        "baseline_p50_ms": bl.0, "baseline_p99_ms": b99,
        "p99_over_fanout_ms": round2(c99 - f99),
        "baseline_p99_over_fanout_ms": round2(b99 - f99),
    }));
}

/// Telegraf's batch size: `metric_batch_size` defaults to 1,000; 500 is common too.
const TELEGRAF_BATCH: usize = 500;
/// Hosts reporting, each with [`SERIES_PER_HOST`] series: 10,000 series.
const TELEGRAF_HOSTS: u64 = 500;
const SERIES_PER_HOST: u64 = 20;
const TELEGRAF_CPUS: u64 = 8;

/// Points `[base, base + n)` of a fleet running Telegraf's default inputs: point `p` is series
/// `p % (hosts x SERIES_PER_HOST)` at interval `p / (hosts x SERIES_PER_HOST)`, so every point
/// is distinct. Per host: `cpu` for each core and the total, `mem`, `disk` for three mounts,
/// `diskio` and `net` for two devices, `system`, `processes` and `swap`, with their usual
/// fields; counters grow from one interval to the next, gauges are pseudo-random.
fn telegraf_fleet_batch(base: u64, n: usize) -> String {
    let series = TELEGRAF_HOSTS * SERIES_PER_HOST;
    let mut s = String::with_capacity(n * 260);
    for p in base..base + n as u64 {
        let (host, k) = (p % series / SERIES_PER_HOST, p % SERIES_PER_HOST);
        let interval = p / series;
        let ts = 1_600_000_000_000_000_000 + interval * INTERVAL_NS;
        let x = splitmix64(p);
        let r = |shift: u32, m: u64| (x >> shift) % m;
        let count = |rate: u64| interval * rate + r(7, rate.max(1));
        let _ = write!(
            s,
            "{},host=web{host:03},dc=eu-{}",
            measurement(k),
            host % 3 + 1
        );
        let _ = match k {
            0..=8 => {
                let cpu = if k == TELEGRAF_CPUS {
                    "cpu-total".to_owned()
                } else {
                    format!("cpu{k}")
                };
                let (user, system, iowait) = (r(0, 6_000), r(16, 2_000), r(32, 500));
                writeln!(
                    s,
                    ",cpu={cpu} usage_user={},usage_system={},usage_idle={},usage_iowait={},usage_irq=0,usage_softirq={},usage_steal=0,usage_nice={},usage_guest=0,usage_guest_nice=0 {ts}",
                    Percent(user),
                    Percent(system),
                    Percent(10_000 - user - system - iowait),
                    Percent(iowait),
                    Percent(r(40, 100)),
                    Percent(r(48, 50)),
                )
            }
            9 => writeln!(
                s,
                " total=16777216000i,available={}i,used={}i,free={}i,cached={}i,buffered={}i,available_percent={},used_percent={} {ts}",
                8_000_000_000 + r(0, 4_000_000_000),
                4_000_000_000 + r(8, 4_000_000_000),
                r(16, 2_000_000_000),
                r(24, 6_000_000_000),
                r(32, 500_000_000),
                Percent(r(40, 10_000)),
                Percent(r(48, 10_000)),
            ),
            10..=12 => writeln!(
                s,
                ",path={},device=sda{},fstype=ext4,mode=rw total=107374182400i,free={}i,used={}i,used_percent={},inodes_total=6553600i,inodes_free={}i,inodes_used={}i {ts}",
                ["/", "/var", "/home"][(k - 10) as usize],
                k - 9,
                r(0, 50_000_000_000),
                50_000_000_000 + r(8, 50_000_000_000),
                Percent(r(16, 10_000)),
                r(24, 6_000_000),
                r(32, 600_000),
            ),
            13 | 14 => writeln!(
                s,
                ",name=nvme{}n1 reads={}i,writes={}i,read_bytes={}i,write_bytes={}i,read_time={}i,write_time={}i,io_time={}i,iops_in_progress={}i {ts}",
                k - 13,
                count(40),
                count(120),
                count(40 * 4096),
                count(120 * 4096),
                count(20),
                count(90),
                count(100),
                r(56, 4),
            ),
            15 | 16 => writeln!(
                s,
                ",interface=eth{} bytes_sent={}i,bytes_recv={}i,packets_sent={}i,packets_recv={}i,err_in=0i,err_out=0i,drop_in={}i,drop_out=0i {ts}",
                k - 15,
                count(1_500_000),
                count(3_000_000),
                count(2_000),
                count(3_500),
                r(50, 3),
            ),
            17 => writeln!(
                s,
                " load1={},load5={},load15={},n_cpus={TELEGRAF_CPUS}i,n_users={}i,uptime={}i {ts}",
                Percent(r(0, 800)),
                Percent(r(12, 600)),
                Percent(r(24, 400)),
                r(36, 4),
                1_000_000 + interval * 10,
            ),
            18 => writeln!(
                s,
                " blocked={}i,running={}i,sleeping={}i,stopped=0i,total={}i,zombies=0i,total_threads={}i {ts}",
                r(0, 3),
                r(8, 9),
                200 + r(16, 100),
                210 + r(24, 100),
                900 + r(32, 400),
            ),
            _ => writeln!(
                s,
                " total=4294967296i,used={}i,free={}i,used_percent={},in={}i,out={}i {ts}",
                r(0, 1_000_000_000),
                3_000_000_000 + r(8, 1_000_000_000),
                Percent(r(16, 3_000)),
                count(5),
                count(9),
            ),
        };
    }
    s
}

fn measurement(k: u64) -> &'static str {
    match k {
        0..=8 => "cpu",
        9 => "mem",
        10..=12 => "disk",
        13 | 14 => "diskio",
        15 | 16 => "net",
        17 => "system",
        18 => "processes",
        _ => "swap",
    }
}

/// A timed phase of `clients` writers sending Telegraf fleet batches through `write`.
struct Latencies {
    points_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    line_protocol_bytes: u64,
}

fn telegraf_phase(
    clients: usize,
    secs: f64,
    offset: u64,
    write: impl Fn(usize, &str) + Send + Sync,
) -> Latencies {
    let (ms, bytes) = (std::sync::Mutex::new(Vec::new()), AtomicU64::new(0));
    let points_per_s = sustained(clients, secs, TELEGRAF_BATCH, |client, base| {
        let body = telegraf_fleet_batch(offset + base, TELEGRAF_BATCH);
        bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let start = Instant::now();
        write(client, &body);
        let took = start.elapsed().as_secs_f64() * 1e3;
        ms.lock().unwrap().push(took);
    });
    let mut ms = ms.into_inner().unwrap();
    ms.sort_by(f64::total_cmp);
    Latencies {
        points_per_s,
        p50_ms: quantile(&ms, 0.5),
        p99_ms: quantile(&ms, 0.99),
        line_protocol_bytes: bytes.into_inner(),
    }
}

fn telegraf(quick: bool, baseline: Option<&Path>, clients: usize) {
    let secs = if quick { 4.0 } else { 20.0 };
    let mut clusters = vec![("cluster", None)];
    if let Some(bin) = baseline {
        clusters.push(("baseline", Some(bin)));
    }
    let mut fanout_done = false;
    for (name, bin) in clusters {
        eprintln!("starting the {name} 3-node cluster...");
        let c = bench_cluster(bin);
        let apis: Vec<Http> = c.nodes.iter().map(|n| n.api()).collect();
        let (pids, influxds) = (gateway_pids(&c), influxd_pids(&c));
        eprintln!("{name}: {clients} Telegraf clients, {TELEGRAF_BATCH}-point batches...");
        settle();
        let (gw0, ix0) = (total_cpu(&pids), total_cpu(&influxds));
        let m = telegraf_phase(clients, secs, 0, |client, body| {
            ok(apis[client % apis.len()].write("db=bench", body), "write")
        });
        let points = m.points_per_s * secs;
        wait_applied(&c);
        let (gw, ix) = (total_cpu(&pids) - gw0, total_cpu(&influxds) - ix0);
        let logs = wait_log_settled(&c);
        let per_point = |field: &str| -> Vec<f64> {
            log_field(&logs, field)
                .iter()
                .map(|&b| round2(b as f64 / points))
                .collect()
        };
        emit(json!({
            "bench": "telegraf", "gateway": name, "clients": clients, "batch": TELEGRAF_BATCH,
            "series": TELEGRAF_HOSTS * SERIES_PER_HOST,
            "points_per_s": m.points_per_s.round(),
            "p50_ms": round2(m.p50_ms), "p99_ms": round2(m.p99_ms),
            "gateway_cpu_s_per_million_points": round2(gw / points * 1e6),
            "influxd_cpu_s_per_million_points": round2(ix / points * 1e6),
            "line_protocol_bytes_per_point": round2(m.line_protocol_bytes as f64 / points),
            "log_dir_bytes_per_point": per_point("dir_bytes"),
            "log_flushed_bytes_per_point": per_point("disk_bytes"),
        }));
        if !fanout_done {
            fanout_done = true;
            // Three influxd of its own, as in `throughput`: not the cluster's, still busy
            // with what the cluster just wrote.
            let own = FanoutInfluxds::start();
            let influx: Vec<Http> = own.influxds.iter().map(|i| i.http()).collect();
            let influxds: Vec<u32> = own.influxds.iter().filter_map(|i| i.pid()).collect();
            for h in &influx {
                create_direct(h, "fanout");
            }
            eprintln!("fan-out: {clients} Telegraf clients to three influxd...");
            settle();
            let ix0 = total_cpu(&influxds);
            let f = telegraf_phase(clients, secs, 0, |_, body| {
                std::thread::scope(|s| {
                    for h in &influx {
                        s.spawn(move || ok(h.write("db=fanout", body), "fan-out write"));
                    }
                });
            });
            let points = f.points_per_s * secs;
            emit(json!({
                "bench": "telegraf", "gateway": "fan-out", "clients": clients,
                "batch": TELEGRAF_BATCH,
                "points_per_s": f.points_per_s.round(),
                "p50_ms": round2(f.p50_ms), "p99_ms": round2(f.p99_ms),
                "influxd_cpu_s_per_million_points":
                    round2((total_cpu(&influxds) - ix0) / points * 1e6),
            }));
        }
    }
}

/// influxd's ingest rate against request size, one request after another.
fn batch_size(quick: bool) {
    let total: usize = if quick { 200_000 } else { 1_000_000 };
    let slot = tests::cluster::Slot::acquire();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let influxd = tests::Influxd::start(&format!("{}:18086", slot.ip(1)), dir.path());
    let http = influxd.http();
    let pid = influxd.pid().expect("influxd runs");
    create_direct(&http, "bench");
    // Every series exists before the timed rounds, as it does for a node catching up.
    for base in (0..2_000u64).step_by(BATCH) {
        ok(
            http.write("db=bench", &telegraf_batch(base, 2_000)),
            "write",
        );
    }
    // One request after another, as the applier sends a group; and two at once, as it sends
    // a large group's lanes (each round waits for both).
    let sizes = [500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];
    let configs: Vec<(usize, usize)> = sizes
        .iter()
        .map(|&size| (size, 1))
        .chain([5_000, 10_000, 20_000, 50_000].map(|size| (size, 2)))
        .collect();
    let lanes: Vec<Http> = (0..2).map(|_| influxd.http()).collect();
    // Up the sizes, then down: whatever drifts during the run (compactions, the cache's
    // snapshots) weighs on both ends alike.
    let order = configs.iter().chain(configs.iter().rev()).copied();
    let mut rates: BTreeMap<(usize, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for (round, (size, at_once)) in order.enumerate() {
        // New points every round: a later interval of the same series.
        let offset = (round as u64 + 1) * 100_000_000;
        let bodies: Vec<String> = (0..total as u64)
            .step_by(size)
            .map(|b| telegraf_batch(offset + b, size.min(total - b as usize)))
            .collect();
        let cpu0 = cpu_seconds(pid);
        let start = Instant::now();
        for together in bodies.chunks(at_once) {
            std::thread::scope(|s| {
                for (body, http) in together.iter().zip(&lanes) {
                    s.spawn(move || ok(http.write("db=bench", body), "write"));
                }
            });
        }
        let took = start.elapsed().as_secs_f64();
        let cpu = (cpu_seconds(pid) - cpu0) / total as f64 * 1e6;
        eprintln!(
            "{size}-point requests, {at_once} at once: {:.0} points/s",
            total as f64 / took
        );
        rates
            .entry((size, at_once))
            .or_default()
            .push((total as f64 / took, cpu));
    }
    let best = rates
        .values()
        .map(|r| r.iter().map(|x| x.0).sum::<f64>() / r.len() as f64)
        .fold(0.0, f64::max);
    for ((size, at_once), r) in rates {
        let mean = |f: fn(&(f64, f64)) -> f64| r.iter().map(f).sum::<f64>() / r.len() as f64;
        let rate = mean(|x| x.0);
        emit(json!({
            "bench": "batch_size", "points_per_request": size, "requests_at_once": at_once,
            "bytes_per_request": telegraf_batch(0, size).len(),
            "points_per_s": rate.round(),
            "runs_points_per_s": r.iter().map(|x| x.0.round()).collect::<Vec<_>>(),
            "vs_fastest": round2(rate / best),
            "influxd_cpu_s_per_million_points": round2(mean(|x| x.1)),
        }));
    }
}

fn tls(quick: bool) {
    let (secs, clients, n) = if quick {
        (4.0, 8, 300)
    } else {
        (20.0, 8, 2000)
    };
    let mut rounds = Vec::new();
    // Plain, TLS, plain, TLS: drift on a shared machine hits both kinds alike.
    for round in 0..2 {
        for secured in [false, true] {
            let name = if secured { "tls" } else { "plain" };
            eprintln!("round {round}: {name} cluster...");
            let flags = ["--memory-budget", MEMORY_BUDGET];
            let c = if secured {
                Cluster::start_with_tls(3, Secured::PeersAndApi, &flags)
            } else {
                Cluster::start_with(3, &flags)
            };
            c.create_database(1, "bench");
            // A client each, as real writers have: each keeps its own connection alive.
            let apis: Vec<Http> = (0..clients)
                .map(|i| c.nodes[i % c.nodes.len()].api())
                .collect();
            let offset = round as u64 * 1_000_000_000_000;
            let points = sustained(clients, secs, BATCH, |client, base| {
                ok(
                    apis[client].write("db=bench", &batch(offset + base, BATCH)),
                    "write",
                )
            });
            let off = offset + 900_000_000_000;
            let (p50, p99) = latencies(n, |base| {
                let api = &apis[(base / SMALL_BATCH as u64) as usize % apis.len()];
                ok(
                    api.write("db=bench", &batch(off + base, SMALL_BATCH)),
                    "write",
                )
            });
            emit(json!({
                "bench": "tls", "round": round, "links": name, "clients": clients,
                "points_per_s": points.round(),
                "p50_ms": round2(p50), "p99_ms": round2(p99),
            }));
            rounds.push((secured, points, p99));
        }
    }
    let mean = |tls: bool, f: fn(&(bool, f64, f64)) -> f64| {
        let v: Vec<f64> = rounds.iter().filter(|r| r.0 == tls).map(f).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (plain, secured) = (mean(false, |r| r.1), mean(true, |r| r.1));
    emit(json!({
        "bench": "tls_summary",
        "plain_points_per_s": plain.round(),
        "tls_points_per_s": secured.round(),
        "tls_vs_plain_throughput": round2(secured / plain),
        "plain_p99_ms": round2(mean(false, |r| r.2)),
        "tls_p99_ms": round2(mean(true, |r| r.2)),
        "target_throughput_ratio": 0.9,
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

fn catchup(quick: bool, baseline: Option<&Path>) {
    let total: usize = if quick { 200_000 } else { 1_000_000 };
    let mut builds = vec![("cluster", None)];
    if let Some(bin) = baseline {
        builds.push(("baseline", Some(bin)));
    }
    let (mut direct, mut direct_large) = (None, None);
    let mut runs = Vec::new();
    for (name, bin) in builds {
        eprintln!("starting the {name} 3-node cluster...");
        let mut c = bench_cluster(bin);
        let (replay, replicated_at, down) = catch_up_once(&mut c, total);
        runs.push((name, replay, replicated_at));
        if direct.is_none() {
            eprintln!("the same points straight into one influxd...");
            let influx = c.node(down).influx();
            create_direct(&influx, "direct");
            // Made before the clock starts: the baseline is influxd's time alone.
            let bodies: Vec<String> = (0..total as u64)
                .step_by(BATCH)
                .map(|base| telegraf_batch(base, BATCH))
                .collect();
            settle();
            let start = Instant::now();
            for body in &bodies {
                ok(influx.write("db=direct", body), "direct write");
            }
            direct = Some(start.elapsed().as_secs_f64());
            // The same, in requests as large as the applier's (8 MiB, about 75,000 points),
            // into another database.
            create_direct(&influx, "direct_large");
            let large = 75_000;
            let bodies: Vec<String> = (0..total as u64)
                .step_by(large)
                .map(|base| telegraf_batch(base, large.min(total - base as usize)))
                .collect();
            settle();
            let start = Instant::now();
            for body in &bodies {
                ok(influx.write("db=direct_large", body), "direct write");
            }
            direct_large = Some(start.elapsed().as_secs_f64());
        }
    }
    let direct = direct.expect("measured with the first cluster");
    let direct_large = direct_large.expect("measured with the first cluster");
    for (name, replay, replicated_at) in runs {
        emit(json!({
            "bench": "catchup", "gateway": name, "points": total, "batch": BATCH,
            "catchup_seconds": round2(replay),
            "replicated_after_seconds": round2(replicated_at),
            "catchup_points_per_s": (total as f64 / replay).round(),
            "direct_points_per_s": (total as f64 / direct).round(),
            "catchup_vs_direct": round2(direct / replay),
            // influxd's own best, one request after another: the ceiling of a replay.
            "direct_75000_point_requests_points_per_s": (total as f64 / direct_large).round(),
        }));
    }
}

/// A follower is down while `total` points are written through the others, then restarted:
/// how long until it applied them all, when its log had them all, and which node it was.
fn catch_up_once(c: &mut Cluster, total: usize) -> (f64, f64, u64) {
    let leader = c.wait_for_leader(Duration::from_secs(30));
    let down = (1..=3).find(|&id| id != leader).unwrap();
    let up: Vec<u64> = (1..=3).filter(|&id| id != down).collect();

    eprintln!("node {down} down; writing {total} points through the others...");
    c.node_mut(down).gateway.kill();
    let apis: Vec<Http> = up.iter().map(|&id| c.node(id).api()).collect();
    write_all(&apis, "bench", total as u64, WRITERS, telegraf_batch);

    // The replay starts on a quiet machine, as the direct writes it is compared with do: not
    // with the other influxd still compacting the million points they were just sent.
    settle();
    eprintln!("restarting node {down}; measuring its catch-up...");
    let target = c.health(leader).unwrap()["committed"].as_u64().unwrap();
    let start = Instant::now();
    c.node_mut(down).gateway.start();
    // Follow the node's log and its applier: when the last entry reached its disk, and when
    // its influxd had everything.
    let mut replicated_at = None;
    let (mut answered_at, mut applying_at, mut applied_before) = (None, None, None);
    loop {
        let h = c.health(down).unwrap_or_default();
        let (committed, applied) = (
            h["committed"].as_u64().unwrap_or(0),
            h["applied"].as_u64().unwrap_or(0),
        );
        if answered_at.is_none() && h.get("applied").is_some() {
            answered_at = Some(start.elapsed().as_secs_f64());
            applied_before = Some(applied);
        }
        if applying_at.is_none() && applied_before.is_some_and(|a| applied > a) {
            applying_at = Some(start.elapsed().as_secs_f64());
        }
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
    let applier = &status(c, down)["applier"];
    let requests = applier["requests"].as_u64().unwrap_or(0);
    let waiting = applier["write_seconds"].as_f64().unwrap_or(0.0);
    // What the log keeps per point, once RocksDB has flushed: on disk (table files) and in
    // the whole directory (its WAL too, which is capped).
    let logs = wait_log_settled(c);
    let per_point = |field: &str| -> Vec<f64> {
        log_field(&logs, field)
            .iter()
            .map(|&b| round2(b as f64 / total as f64))
            .collect()
    };
    eprintln!(
        "log bytes per point: flushed {:?}, whole directory {:?}",
        per_point("disk_bytes"),
        per_point("dir_bytes")
    );
    eprintln!(
        "node {down} applied them in {requests} influxd requests; it answered after {:.2} s \
         and applied its first entry after {:.2} s; influxd answering writes {waiting:.2} s \
         of {replay:.2} s",
        answered_at.unwrap_or(replay),
        applying_at.unwrap_or(replay)
    );
    (replay, replicated_at.unwrap_or(replay), down)
}

/// How one cluster of `seed` bounds its log, and so how a node whose influxd was wiped gets
/// its points back.
struct LogPolicy {
    retention: &'static str,
    max_size: &'static str,
    /// A wiped influxd is seeded from a peer's; otherwise it is rebuilt from the log.
    seeded: bool,
}

/// Everything ever written stays in the log: a wiped influxd is rebuilt by replaying it.
const KEPT: LogPolicy = LogPolicy {
    retention: "forever",
    max_size: "0",
    seeded: false,
};

/// Entries go once every member applied them, and the cap holds the log when one lags: a
/// wiped influxd needs entries that are gone, so it is seeded.
const TRIMMED: LogPolicy = LogPolicy {
    retention: "0s",
    max_size: "64MiB",
    seeded: true,
};

impl LogPolicy {
    fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![
            "--memory-budget",
            MEMORY_BUDGET,
            "--log-retention",
            self.retention,
            "--log-max-size",
            self.max_size,
        ];
        if !self.seeded {
            // A large enough backlog would otherwise be seeded for speed, log or no log.
            flags.extend(["--seed-backlog-ratio", "0"]);
        }
        flags
    }

    fn recovery(&self) -> &'static str {
        if self.seeded {
            "seed"
        } else {
            "replay"
        }
    }

    fn name(&self) -> String {
        format!(
            "--log-retention {} --log-max-size {}",
            self.retention, self.max_size
        )
    }
}

/// A replay of millions of points on a busy machine fits in it.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(1800);
/// For a log to be trimmed or to settle.
const LOG_TIMEOUT: Duration = Duration::from_secs(300);
/// A log directory whose size moved less than this for `SETTLE_TIME` is done flushing and
/// compacting; a bounded log keeps trimming one small entry a second, so never exactly still.
const SETTLE_TOLERANCE: u64 = 1 << 20;
const SETTLE_TIME: Duration = Duration::from_secs(3);

/// What the summary compares between the two clusters.
struct PolicyRun {
    recovery: Recovery,
    /// The largest log directory of any node under sustained writes.
    max_dir_bytes: u64,
}

fn seed(points: u64, load_secs: f64) {
    assert!(points > 0, "--points must be at least 1");
    let kept = policy_run(&KEPT, points, load_secs);
    let trimmed = policy_run(&TRIMMED, points, load_secs);
    emit(json!({
        "bench": "seed_vs_replay", "points": points,
        "replay_seconds": round2(kept.recovery.seconds),
        "seed_seconds": round2(trimmed.recovery.seconds),
        "replay_vs_seed": round2(kept.recovery.seconds / trimmed.recovery.seconds),
        // The same without the time each node took to notice the wipe, which is up to the
        // applier's 2 s marker check in either case.
        "replay_vs_seed_once_noticed":
            round2(kept.recovery.since_noticed() / trimmed.recovery.since_noticed()),
        "load_seconds": load_secs,
        "forever_max_log_dir_bytes": kept.max_dir_bytes,
        "bounded_max_log_dir_bytes": trimmed.max_dir_bytes,
        "forever_vs_bounded_max_log_dir":
            round2(kept.max_dir_bytes as f64 / trimmed.max_dir_bytes.max(1) as f64),
    }));
}

/// One cluster under `policy`: filled with `points` points, its bytes per point, a wiped
/// node's recovery, then the log's size under `load_secs` of sustained writes.
fn policy_run(policy: &LogPolicy, points: u64, load_secs: f64) -> PolicyRun {
    let name = policy.name();
    eprintln!("{name}: starting a 3-node cluster (release build)...");
    let mut c = Cluster::start_with(3, &policy.flags());
    c.create_database(1, "bench");
    let apis: Vec<Http> = c.nodes.iter().map(|n| n.api()).collect();

    eprintln!("{name}: writing {points} points...");
    let start = Instant::now();
    let written = write_all(&apis, "bench", points, WRITERS, telegraf_batch);
    let fill_secs = start.elapsed().as_secs_f64();
    wait_applied(&c);
    if policy.seeded {
        // With none of the points left in any log, the wiped node cannot replay any of them.
        wait_trimmed(&c);
    }
    let logs = wait_log_settled(&c);
    let dir = log_field(&logs, "dir_bytes");
    let influxd: Vec<InfluxdBytes> = c.nodes.iter().map(|n| influxd_bytes(&n.influx())).collect();
    let per_point = |bytes: &[u64]| -> Vec<f64> {
        bytes
            .iter()
            .map(|&b| round2(b as f64 / points as f64))
            .collect()
    };
    emit(json!({
        "bench": "log_bytes_per_point",
        "log_retention": policy.retention, "log_max_size": policy.max_size,
        "points": points, "batch": BATCH,
        "fill_points_per_s": (points as f64 / fill_secs).round(),
        "line_protocol_bytes_per_point": round2(written as f64 / points as f64),
        "log_dir_bytes": dir,
        "log_dir_bytes_per_point": per_point(&dir),
        // Entries flushed to SST files, as RocksDB estimates them; those still in the
        // memtable are only in the WAL, which the directory's bytes include.
        "log_flushed_bytes_per_point": per_point(&log_field(&logs, "disk_bytes")),
        "log_first_index": log_field(&logs, "first_index"),
        "line_protocol_vs_log_dir": dir
            .iter()
            .map(|&d| round2(written as f64 / d.max(1) as f64))
            .collect::<Vec<_>>(),
        "influxd_tsm_bytes_per_point":
            per_point(&influxd.iter().map(|b| b.tsm).collect::<Vec<_>>()),
        "influxd_wal_bytes_per_point":
            per_point(&influxd.iter().map(|b| b.wal).collect::<Vec<_>>()),
    }));

    let recovery = recover_wiped(&mut c, policy, points);
    let max_dir_bytes = log_under_load(&c, policy, points, load_secs);
    PolicyRun {
        recovery,
        max_dir_bytes,
    }
}

/// How long a node whose influxd was wiped took to hold every point again, counted from the
/// restart of its empty influxd.
struct Recovery {
    seconds: f64,
    /// When the node first showed it knew (influxd down, a rebuild or a seed under way).
    noticed: Option<f64>,
}

impl Recovery {
    fn since_noticed(&self) -> f64 {
        self.seconds - self.noticed.unwrap_or(0.0)
    }
}

/// Wipes a follower's influxd (killed, its files deleted, started again empty) and times
/// from that restart until the node answers /health with 200 and its influxd holds all
/// `points` points again.
fn recover_wiped(c: &mut Cluster, policy: &LogPolicy, points: u64) -> Recovery {
    let leader = c.wait_for_leader(LOG_TIMEOUT);
    // A follower: the leader stays put, and it is the first a seed asks for a copy.
    let id = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .expect("a 3-node cluster has a follower");
    let target = c
        .health(leader)
        .and_then(|h| h["committed"].as_u64())
        .unwrap_or_else(|| panic!("node {leader}'s /health has no commit index"));
    let before = status(c, id)["applier"].clone();

    eprintln!(
        "{}: wiping node {id}'s influxd; timing its {}...",
        policy.name(),
        policy.recovery()
    );
    let node = c.node_mut(id);
    node.influxd.kill();
    node.influxd.wipe();
    let start = Instant::now();
    node.influxd.start_again();
    let influxd_answered = start.elapsed().as_secs_f64();

    let (api, influx) = (c.node(id).api(), c.node(id).influx());
    // When each state the node went through was first seen, and the size of the copy.
    let mut first_seen: BTreeMap<String, f64> = BTreeMap::new();
    let mut copy_bytes = 0;
    // Polled every 20 ms at most, as the time is the figure.
    let ready = harness::poll(RECOVERY_TIMEOUT, Duration::from_millis(20), || {
        let at = start.elapsed().as_secs_f64();
        let r = api.get("/health").map_err(|e| e.to_string())?;
        let h: serde_json::Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("/health is not JSON ({e}): {}", r.body))?;
        let mut saw = |state: String| {
            first_seen.entry(state).or_insert(round2(at));
        };
        if h["influxd"] == "down" {
            saw("influxd down".into());
        }
        if !h["rebuild"].is_null() {
            saw("rebuild".into());
        }
        if let Some(phase) = h["seed"]["phase"].as_str() {
            saw(format!("seed: {phase}"));
            copy_bytes = h["seed"]["bytes_total"]
                .as_u64()
                .unwrap_or(0)
                .max(copy_bytes);
        }
        if r.status != 200 || h["applied"].as_u64() < Some(target) {
            return Err(h.to_string());
        }
        // Until the applier notices the wipe, /health still says what it said before it;
        // the count tells, and is only asked once /health looks ready (it is not free).
        let held = count_points(&influx).map_err(|e| e.to_string())?;
        if held == points {
            Ok(at)
        } else {
            Err(format!(
                "/health 200, but influxd holds {held} of {points} points"
            ))
        }
    })
    .unwrap_or_else(|last| {
        panic!(
            "node {id} did not hold its {points} points again within {RECOVERY_TIMEOUT:?} \
             after its influxd was wiped; last seen: {last}"
        )
    });

    let noticed = first_seen.values().copied().reduce(f64::min);
    let after = status(c, id)["applier"].clone();
    let grew = |key: &str| {
        after[key]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(before[key].as_u64().unwrap_or(0))
    };
    if policy.seeded {
        assert!(
            grew("seeds_completed") >= 1,
            "node {id} got its points back without a seed, so there is nothing to time: {after}"
        );
    } else {
        assert!(
            grew("seeds_started") == 0,
            "node {id} was seeded though the log was kept and seeding for speed was off: {after}"
        );
    }
    emit(json!({
        "bench": "wiped_node", "recovery": policy.recovery(),
        "log_retention": policy.retention, "log_max_size": policy.max_size,
        "points": points,
        "seconds": round2(ready),
        "influxd_answered_seconds": round2(influxd_answered),
        "noticed_seconds": noticed,
        "points_per_s": (points as f64 / ready).round(),
        "first_seen_seconds": first_seen,
        "copy_bytes": copy_bytes,
        "entries_applied": grew("entries_applied"),
        "seeds_completed": grew("seeds_completed"),
    }));
    Recovery {
        seconds: ready,
        noticed,
    }
}

/// Writes for `secs` as fast as the cluster takes them, after the points `[0, offset)`, and
/// samples every node's log directory once a second. Returns the largest sample of any node.
fn log_under_load(c: &Cluster, policy: &LogPolicy, offset: u64, secs: f64) -> u64 {
    eprintln!(
        "{}: {secs} s of sustained writes, sampling the log...",
        policy.name()
    );
    let apis: Vec<Http> = c.nodes.iter().map(|n| n.api()).collect();
    let written = AtomicU64::new(0);
    let (stop, stopped) = mpsc::channel::<()>();
    let (rate, samples) = std::thread::scope(|s| {
        let apis = &apis;
        let sampler = s.spawn(move || {
            let mut samples = Vec::new();
            loop {
                samples.push(log_field(&logs(apis), "dir_bytes"));
                // The writers are done when the sender is dropped.
                match stopped.recv_timeout(Duration::from_secs(1)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break samples,
                }
            }
        });
        let rate = sustained(WRITERS, secs, BATCH, |client, base| {
            let body = telegraf_batch(offset + base, BATCH);
            written.fetch_add(body.len() as u64, Ordering::Relaxed);
            ok(apis[client % apis.len()].write("db=bench", &body), "write");
        });
        drop(stop);
        let samples = sampler
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (rate, samples)
    });
    let end = samples.last().cloned().unwrap_or_default();
    wait_applied(c);
    let settled = wait_log_settled(c);
    let max: Vec<u64> = (0..c.nodes.len())
        .map(|i| samples.iter().map(|s| s[i]).max().unwrap_or(0))
        .collect();
    let written = written.into_inner();
    let largest = max.iter().copied().max().unwrap_or(0);
    emit(json!({
        "bench": "log_under_load",
        "log_retention": policy.retention, "log_max_size": policy.max_size,
        "seconds": secs, "batch": BATCH, "clients": WRITERS,
        "points_per_s": rate.round(),
        "line_protocol_bytes": written,
        "samples": samples.len(),
        "max_dir_bytes": max,
        "end_dir_bytes": end,
        "settled_dir_bytes": log_field(&settled, "dir_bytes"),
        "trimmed_entries": log_field(&settled, "trimmed_entries"),
        "line_protocol_vs_max_dir": round2(written as f64 / largest.max(1) as f64),
    }));
    largest
}

/// The node's /status JSON.
fn status(c: &Cluster, id: u64) -> serde_json::Value {
    status_of(&c.node(id).api())
}

fn status_of(api: &Http) -> serde_json::Value {
    match api.get("/status") {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => panic!("GET {}/status: {} {}", api.base(), r.status, r.body),
        Err(e) => panic!("GET {}/status: {e}", api.base()),
    }
}

/// The `log` part of each node's /status, in node order.
fn logs(apis: &[Http]) -> Vec<serde_json::Value> {
    apis.iter()
        .map(|api| status_of(api)["log"].clone())
        .collect()
}

fn log_field(logs: &[serde_json::Value], field: &str) -> Vec<u64> {
    logs.iter()
        .map(|l| {
            l[field]
                .as_u64()
                .unwrap_or_else(|| panic!("no {field} in a node's log status: {l}"))
        })
        .collect()
}

/// Waits until every node's log starts after what is committed now: everything written so
/// far was trimmed everywhere.
fn wait_trimmed(c: &Cluster) {
    let last = c
        .nodes
        .iter()
        .filter_map(|n| c.health(n.id)?["committed"].as_u64())
        .max()
        .expect("no node answers /health");
    for n in &c.nodes {
        wait_until(
            &format!("node {}'s log trimmed past {last}", n.id),
            LOG_TIMEOUT,
            || {
                let log = status_of(&n.api())["log"].clone();
                match log["first_index"].as_u64() {
                    Some(first) if first > last => Ok(()),
                    _ => Err(log),
                }
            },
        );
    }
}

/// Each node's log status once its directory stopped changing: RocksDB flushes, and gives
/// trimmed entries' space back, in the background after the writes that caused it.
fn wait_log_settled(c: &Cluster) -> Vec<serde_json::Value> {
    let apis: Vec<Http> = c.nodes.iter().map(|n| n.api()).collect();
    let mut steady: Option<(Vec<u64>, Instant)> = None;
    wait_until("every node's log directory to settle", LOG_TIMEOUT, || {
        let now = logs(&apis);
        let sizes = log_field(&now, "dir_bytes");
        match &steady {
            Some((then, since))
                if sizes
                    .iter()
                    .zip(then)
                    .all(|(a, b)| a.abs_diff(*b) <= SETTLE_TOLERANCE) =>
            {
                if since.elapsed() >= SETTLE_TIME {
                    return Ok(now);
                }
            }
            _ => steady = Some((sizes.clone(), Instant::now())),
        }
        Err(sizes)
    })
}

/// How many points of `bench.cpu` influxd holds (every point has `usage_user`).
fn count_points(influx: &Http) -> Result<u64, HttpError> {
    let v = influx.try_query("bench", "SELECT count(usage_user) FROM cpu")?;
    Ok(v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0))
}

/// What influxd itself says the `bench` database's shards take on disk.
struct InfluxdBytes {
    tsm: u64,
    /// Written to the WAL, not compacted into TSM files yet.
    wal: u64,
}

fn influxd_bytes(influx: &Http) -> InfluxdBytes {
    let vars = match influx.get("/debug/vars") {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => panic!("GET {}/debug/vars: {} {}", influx.base(), r.status, r.body),
        Err(e) => panic!("GET {}/debug/vars: {e}", influx.base()),
    };
    let stats = vars.as_object().cloned().unwrap_or_default();
    let sum = |name: &str, fields: &[&str]| -> u64 {
        stats
            .values()
            .filter(|v| v["name"] == name && v["tags"]["database"] == "bench")
            .flat_map(|v| fields.iter().filter_map(|f| v["values"][*f].as_u64()))
            .sum()
    };
    InfluxdBytes {
        tsm: sum("tsm1_filestore", &["diskBytes"]),
        wal: sum(
            "tsm1_wal",
            &["currentSegmentDiskBytes", "oldSegmentsDiskBytes"],
        ),
    }
}
