//! `jepsen`: fault testing of a real 3-node gateway cluster with Jepsen's semantics.
//!
//! `jepsen test` builds three network namespaces on a bridge, runs influxd and a gateway in
//! each, writes unique elements from concurrent clients while a nemesis partitions, kills,
//! pauses and slows nodes, and schema clients create, change and drop databases, retention
//! policies, users and continuous queries and delete ranges of points; then it heals
//! everything, reads every replica and checks the history: nothing acknowledged lost,
//! nothing failed present, nothing duplicated, replicas identical, schema included.

mod catalog;
mod checker;
mod cluster;
mod history;
mod influx;
mod nemesis;
mod netns;
mod report;
mod run;
mod schema;
mod schema_check;
mod signals;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "jepsen",
    about = "Jepsen-style fault testing of a 3-node gateway cluster in network namespaces",
    long_about = "Runs a real 3-node cluster (influxd + gateway per node) in network namespaces, \
                  writes unique elements from concurrent clients while a nemesis injects faults, \
                  then heals, reads every replica and checks the history with set-full \
                  semantics. Needs root. Exit status: 0 valid, 1 invalid, 2 error, 130 \
                  interrupted."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a test and check it.
    Test(Box<TestArgs>),
    /// Check a stored run again (it needs final-reads.json: run with --save-final-reads).
    Check {
        /// The run's directory (RESULTS/<run>).
        run: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        recovery_target: f64,
    },
    /// Remove what a killed run left behind: processes, namespaces, bridge, rules, disks.
    Cleanup,
}

#[derive(Args)]
struct TestArgs {
    /// Seconds of workload (faults included); the final phase comes after.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Faults, comma-separated, or `all`: partition-one, partition-halves, partition-leader,
    /// majorities-ring, bridge, kill-gateway, kill-influxd, kill-node, pause-gateway,
    /// pause-influxd, pause-node, delay, loss, wipe-influxd, wipe-node, clock-skew,
    /// membership, disk-full; groups: partition, kill, pause, packet, wipe, clock, members,
    /// disk; none.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Where run directories are created.
    #[arg(long, default_value = "jepsen-results")]
    results: PathBuf,
    /// Concurrent writing clients.
    #[arg(long, default_value_t = 5)]
    concurrency: u32,
    /// Seconds a fault lasts, and the quiet period after each heal.
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Seed for every random choice (nodes, batch sizes, faults) [default: random].
    #[arg(long)]
    seed: Option<u64>,
    /// Writes per second over all clients (0: as fast as they go).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds a client waits for a write's answer before calling it indeterminate.
    #[arg(long, default_value_t = 5.0)]
    client_timeout: f64,
    /// Seconds between the periodic reads of each node.
    #[arg(long, default_value_t = 1.0)]
    read_interval: f64,
    /// Seconds the final phase waits for the healed cluster to agree and catch up.
    #[arg(long, default_value_t = 120.0)]
    settle_timeout: f64,
    /// Seconds within which writes must succeed again after each heal (reported).
    #[arg(long, default_value_t = 10.0)]
    recovery_target: f64,
    /// The gateway binary [default: the workspace's target/release/gateway, brought up to
    /// date with `cargo build --release -p gateway` first; CARGO_TARGET_DIR is respected].
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// One more argument for every gateway the run starts, replacements included; repeat
    /// for several (`--gateway-arg=--write-timeout=20s`, or `--gateway-arg
    /// --write-timeout --gateway-arg 20s`).
    #[arg(long = "gateway-arg", value_name = "ARG", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// Peer links as mutual TLS under a CA made for the run (plain text otherwise).
    #[arg(long)]
    tls: bool,
    /// Data directories of influxd and the gateways (removed after the run).
    #[arg(long, default_value = "/tmp/jepsen-work")]
    work_dir: PathBuf,
    /// Keep the data directories after the run.
    #[arg(long)]
    keep_data: bool,
    /// Also store every replica's final contents (final-reads.json), for `jepsen check`.
    #[arg(long)]
    save_final_reads: bool,
    /// Write points without their string field `s` (element, op and v only): for a gateway
    /// whose ingest cannot carry string fields.
    #[arg(long)]
    no_string_field: bool,
    /// Share of writes sent with an `Idempotency-Key` and without timestamps, retried with
    /// the same key through other nodes while their outcome is unknown (0: none).
    #[arg(long, default_value_t = 0.25)]
    keyed_fraction: f64,
    /// Also send a tenth of the writes without timestamps and retry them without a key,
    /// counting the duplicates that makes (a statistic, never a failure).
    #[arg(long)]
    unkeyed_retries: bool,
    /// Attempts of a retried write at most, the first included.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// Share of client operations that are `consistency=linearizable` reads (0: none).
    #[arg(long, default_value_t = 0.1)]
    lin_read_fraction: f64,
    /// Schema operations per second over all schema clients (0: none): scratch databases,
    /// retention policies, measurements, users, grants and continuous queries created,
    /// changed and dropped, scratch points written, and ranges of the main points deleted,
    /// through random nodes.
    #[arg(long, default_value_t = 1.5)]
    schema_rate: f64,
    /// Concurrent schema clients.
    #[arg(long, default_value_t = 2)]
    schema_clients: u32,
}

fn fraction(f: f64, what: &str) -> anyhow::Result<f64> {
    if !(0.0..=0.9).contains(&f) {
        bail!("{what} must be between 0 and 0.9");
    }
    Ok(f)
}

fn secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        bail!("{what} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

/// The workspace's gateway binary, brought up to date by cargo (a no-op when it is), so a run
/// never tests a stale gateway.
fn gateway_bin(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("no gateway binary at {}", p.display());
        }
        return Ok(p);
    }
    println!("cargo build --release -p gateway --bin gateway");
    Ok(harness::gateway::binary(
        harness::gateway::Profile::Release,
    )?)
}

fn test(args: Box<TestArgs>, stop: Arc<AtomicBool>) -> anyhow::Result<run::Verdict> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.time_limit == 0 {
        bail!("--time-limit must be at least 1");
    }
    let opts = run::Options {
        time_limit: Duration::from_secs(args.time_limit),
        nemesis: args.nemesis,
        results: args.results,
        concurrency: args.concurrency,
        interval: secs(args.interval, "--interval")?,
        seed: args.seed.unwrap_or_else(rand::random),
        rate: args.rate.max(0.0),
        client_timeout: secs(args.client_timeout, "--client-timeout")?,
        read_interval: secs(args.read_interval, "--read-interval")?,
        settle_timeout: secs(args.settle_timeout, "--settle-timeout")?,
        recovery_target: args.recovery_target,
        gateway_bin: gateway_bin(args.gateway_bin)?,
        gateway_args: args.gateway_args,
        tls: args.tls,
        work_dir: args.work_dir,
        keep_data: args.keep_data,
        save_final_reads: args.save_final_reads,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        string_field: !args.no_string_field,
        keyed_fraction: fraction(args.keyed_fraction, "--keyed-fraction")?,
        unkeyed_fraction: if args.unkeyed_retries { 0.1 } else { 0.0 },
        max_attempts: args.max_attempts.max(1),
        lin_read_fraction: fraction(args.lin_read_fraction, "--lin-read-fraction")?,
        schema_rate: if args.schema_rate.is_finite() {
            args.schema_rate.max(0.0)
        } else {
            bail!("--schema-rate must be a number")
        },
        schema_clients: args.schema_clients.max(1),
    };
    run::test(opts, stop)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = match cli.command {
        Cmd::Cleanup => {
            let locked = netns::preflight().and_then(|()| netns::lock_network());
            let _network = match locked {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("jepsen: {e:#}");
                    return ExitCode::from(2);
                }
            };
            netns::cleanup_leftovers();
            println!("removed whatever a previous run left");
            return ExitCode::SUCCESS;
        }
        Cmd::Check {
            run,
            recovery_target,
        } => run::recheck(&run, recovery_target),
        Cmd::Test(args) => {
            if let Err(e) = signals::install(stop.clone()) {
                eprintln!("jepsen: cannot handle signals: {e:#}");
                return ExitCode::from(2);
            }
            // A panic anywhere must not leave namespaces and processes behind.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(args, stop)));
            let result = result.unwrap_or_else(|_| {
                netns::cleanup_leftovers();
                Err(anyhow::anyhow!("the harness panicked (cleaned up)"))
            });
            result
        }
    };
    match outcome {
        Ok(run::Verdict::Valid) => ExitCode::SUCCESS,
        Ok(run::Verdict::Invalid) => ExitCode::from(1),
        Ok(run::Verdict::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("jepsen: {e:#}");
            ExitCode::from(2)
        }
    }
}
