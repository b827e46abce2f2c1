//! One test run from start to verdict: build the cluster, run the workload under the
//! nemesis, heal, let the cluster settle, read every replica, check, write the results.

use std::collections::BTreeMap;
use std::fs;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use harness::http::encode;
use harness::{poll, Http};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

use crate::catalog;
use crate::checker::{self, FinalRead};
use crate::cluster::{Cluster, Health, API_PORT};
use crate::history::{self, Event, MemberValue, Recorder, Type, F};
use crate::influx::{self, DATABASE};
use crate::nemesis::{self, Kind, Nemesis};
use crate::netns::{self, nodes};
use crate::report;
use crate::schema::{SchemaSettings, SchemaWorkload};
use crate::workload::{Settings, Workload};

pub struct Options {
    pub time_limit: Duration,
    pub nemesis: String,
    pub results: PathBuf,
    pub concurrency: u32,
    pub interval: Duration,
    pub seed: u64,
    pub rate: f64,
    pub client_timeout: Duration,
    pub read_interval: Duration,
    pub settle_timeout: Duration,
    pub recovery_target: f64,
    pub gateway_bin: PathBuf,
    /// Given to every gateway on top of its own arguments.
    pub gateway_args: Vec<String>,
    /// Peer links as mutual TLS.
    pub tls: bool,
    pub work_dir: PathBuf,
    pub keep_data: bool,
    pub save_final_reads: bool,
    pub command_line: String,
    pub string_field: bool,
    pub keyed_fraction: f64,
    pub unkeyed_fraction: f64,
    pub max_attempts: u32,
    pub lin_read_fraction: f64,
    /// Schema operations per second over all schema clients (0: none).
    pub schema_rate: f64,
    pub schema_clients: u32,
}

/// What the run came to, for the exit code.
pub enum Verdict {
    Valid,
    Invalid,
    Interrupted,
}

pub fn test(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<Verdict> {
    let kinds = Kind::parse_list(&opts.nemesis)?;
    netns::preflight()?;
    let _network = netns::lock_network()?;
    if kinds.contains(&Kind::ClockSkew) && crate::cluster::libfaketime().is_none() {
        bail!(
            "clock-skew needs libfaketime (Debian package faketime, see scripts/deps); \
             install it or leave clock-skew out of --nemesis"
        );
    }
    let run_id = format!(
        "{}-s{}",
        humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace(['-', ':'], ""),
        opts.seed
    );
    let run_dir = opts.results.join(&run_id);
    let work_dir = opts.work_dir.join(&run_id);
    fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    println!("run {run_id}: results in {}", run_dir.display());
    println!(
        "nemesis: {} every {:?}; {} clients at {} writes/s; time limit {:?}; seed {}",
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
        },
        opts.interval,
        opts.concurrency,
        opts.rate,
        opts.time_limit,
        opts.seed
    );

    netns::cleanup_leftovers();
    println!("starting 3 influxd and 3 gateways in network namespaces...");
    if opts.tls {
        println!("peer links: mutual TLS under a CA made for this run");
    }
    if !opts.gateway_args.is_empty() {
        println!("every gateway also gets: {}", opts.gateway_args.join(" "));
    }
    let cluster = Arc::new(Cluster::start(
        &opts.gateway_bin,
        &opts.gateway_args,
        opts.tls,
        &work_dir,
        &run_dir,
        opts.keep_data,
    )?);
    let outcome = run_with_cluster(&opts, &kinds, &cluster, &run_dir, &run_id, &stop);
    // Whatever happened: the processes and the network go (idempotent; a panic is caught in
    // main, which cleans up by name).
    cluster.teardown();
    if !opts.keep_data {
        let _ = fs::remove_dir_all(&work_dir);
    }
    let _ = fs::remove_dir(&opts.work_dir);
    outcome
}

fn run_with_cluster(
    opts: &Options,
    kinds: &[Kind],
    cluster: &Arc<Cluster>,
    run_dir: &Path,
    run_id: &str,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Verdict> {
    create_database(cluster)?;
    let recorder = Arc::new(Recorder::new());
    let workload = Arc::new(Workload::new(
        Settings {
            concurrency: opts.concurrency,
            rate: opts.rate,
            client_timeout: opts.client_timeout,
            read_interval: opts.read_interval,
            time_limit: opts.time_limit,
            seed: opts.seed,
            string_field: opts.string_field,
            keyed_fraction: opts.keyed_fraction,
            unkeyed_fraction: opts.unkeyed_fraction,
            max_attempts: opts.max_attempts,
            lin_read_fraction: opts.lin_read_fraction,
        },
        recorder.clone(),
        stop.clone(),
    ));
    let schema = Arc::new(SchemaWorkload::new(
        SchemaSettings {
            rate: opts.schema_rate,
            clients: opts.schema_clients,
            client_timeout: opts.client_timeout,
            time_limit: opts.time_limit,
            seed: opts.seed,
        },
        workload.clone(),
        recorder.clone(),
        stop.clone(),
    ));
    let current = Arc::new(Mutex::new(String::new()));
    let leader = Arc::new(Mutex::new(None::<u8>));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let mut threads = Vec::new();
    for c in 0..opts.concurrency {
        let w = workload.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("client-{c}"))
                .spawn(move || w.client(c))?,
        );
    }
    if opts.schema_rate > 0.0 {
        for c in 0..opts.schema_clients {
            let s = schema.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("schema-{c}"))
                    .spawn(move || s.client(c))?,
            );
        }
    }
    for n in nodes() {
        let w = workload.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("reader-{n}"))
                .spawn(move || w.reader(n))?,
        );
    }
    let nemesis = Nemesis {
        cluster: cluster.clone(),
        recorder: recorder.clone(),
        kinds: kinds.to_vec(),
        interval: opts.interval,
        time_limit: opts.time_limit,
        stop: stop.clone(),
        current: current.clone(),
    };
    let seed = opts.seed;
    threads.push(
        std::thread::Builder::new()
            .name("nemesis".into())
            .spawn(move || {
                nemesis.run(&mut StdRng::seed_from_u64(
                    seed.wrapping_mul(31).wrapping_add(7),
                ))
            })?,
    );
    let monitor = {
        let (cluster, recorder, leader, done) = (
            cluster.clone(),
            recorder.clone(),
            leader.clone(),
            done.clone(),
        );
        std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || {
                let mut members = None;
                while !done.load(Ordering::Relaxed) {
                    record_crashes(&cluster, &recorder);
                    let l = cluster.leader();
                    *leader.lock() = l;
                    record_membership(&cluster, &recorder, l, &mut members);
                    std::thread::sleep(Duration::from_millis(500));
                }
            })?
    };

    let tty = std::io::stdout().is_terminal();
    let mut last_line = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(250));
        let every = if tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        if last_line.elapsed() >= every {
            last_line = Instant::now();
            let (ok, fail, info, reads) = recorder.counts();
            let nem = current.lock().clone();
            let line = format!(
                "[{:>4.0}/{}s] writes ok {ok} fail {fail} info {info} | reads {reads} | nemesis: {} | leader {}",
                started.elapsed().as_secs_f64(),
                opts.time_limit.as_secs(),
                if nem.is_empty() { "-" } else { &nem },
                leader.lock().map_or("none".into(), |l| format!("n{l}")),
            );
            if tty {
                print!("\r\x1b[2K{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
        }
    }
    if tty {
        println!();
    }
    for t in threads {
        if t.join().is_err() {
            bail!("a workload or nemesis thread panicked");
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = monitor.join();
    let workload_secs = started.elapsed().as_secs_f64();

    if stop.load(Ordering::Relaxed) {
        let _ = nemesis::heal_everything(cluster);
        history::write_jsonl(&recorder.snapshot(), &run_dir.join("history.jsonl"))?;
        println!("interrupted; history written to {}", run_dir.display());
        return Ok(Verdict::Interrupted);
    }

    println!("healing everything and waiting for the cluster to settle...");
    record_crashes(cluster, &recorder);
    let revived = nemesis::heal_everything(cluster)?;
    let settle_start = Instant::now();
    let settled = cluster.wait_settled(opts.settle_timeout, true);
    let settle_secs = settle_start.elapsed().as_secs_f64();
    let (converged, final_health, settle_error) = match settled {
        Ok(h) => (true, h, None),
        Err(e) => {
            eprintln!("{e:#}");
            let hs: Vec<Health> = cluster
                .healths()
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect();
            (false, hs, Some(format!("{e:#}")))
        }
    };
    println!(
        "{} after {settle_secs:.1}s; reading every replica...",
        if converged { "settled" } else { "NOT settled" }
    );
    record_crashes(cluster, &recorder);
    record_membership(cluster, &recorder, cluster.leader(), &mut None);

    let mut reads = Vec::new();
    let mut read_errors = Vec::new();
    for n in nodes() {
        match final_read(cluster, n) {
            Ok(r) => reads.push(r),
            Err(e) => read_errors.push(format!("n{n}: {e:#}")),
        }
    }

    let events = recorder.snapshot();
    let mut result = checker::check(&events, &reads, opts.recovery_target);
    if !converged {
        result.valid = false;
        result.problems.push(format!(
            "the cluster did not settle within {:?}",
            opts.settle_timeout
        ));
    }
    if !read_errors.is_empty() {
        result.valid = false;
        result
            .problems
            .push(format!("final reads failed: {}", read_errors.join("; ")));
    }

    let crashes: Vec<&Event> = events.iter().filter(|e| e.f == F::Crash).collect();
    let nemesis_events: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e.f, F::Start | F::Stop))
        .collect();
    let (ok, fail, info, read_count) = recorder.counts();
    // A node replaced after losing its Raft log has a new id; the checker knows nodes by
    // their namespace only, so the ids are there to find each node in the gateways' logs.
    let raft_ids: BTreeMap<String, u64> = nodes()
        .zip(cluster.ids())
        .map(|(n, id)| (format!("n{n}"), id))
        .collect();
    let mut out = serde_json::to_value(&result)?;
    let extra = json!({
        "run": run_id,
        "command": opts.command_line,
        "seed": opts.seed,
        "nemeses": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "gateway_args": opts.gateway_args,
        "tls": opts.tls,
        "raft_ids": raft_ids,
        "time_limit_s": opts.time_limit.as_secs_f64(),
        "interval_s": opts.interval.as_secs_f64(),
        "concurrency": opts.concurrency,
        "rate": opts.rate,
        "client_timeout_s": opts.client_timeout.as_secs_f64(),
        "keyed_fraction": opts.keyed_fraction,
        "unkeyed_fraction": opts.unkeyed_fraction,
        "max_attempts": opts.max_attempts,
        "lin_read_fraction": opts.lin_read_fraction,
        "schema_rate": opts.schema_rate,
        "schema_clients": opts.schema_clients,
        "workload_s": workload_secs,
        "ops": { "write_ok": ok, "write_fail": fail, "write_info": info, "reads_ok": read_count },
        "faults": nemesis_events.iter().filter(|e| e.f == F::Start).count(),
        "converged": converged,
        "settle_s": settle_secs,
        "settle_error": settle_error,
        "revived_at_end": revived.iter().map(|(n, p)| format!("n{n} {}", p.name())).collect::<Vec<_>>(),
        "final_health": final_health,
        "crashes": crashes,
        "nemesis_events": nemesis_events,
        "membership": events
            .iter()
            .filter(|e| e.f == F::Members)
            .map(|e| json!({ "time_s": e.time as f64 / 1e9, "members": e.members }))
            .collect::<Vec<_>>(),
        "final_read_errors": read_errors,
        "history": "history.jsonl",
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    fs::write(
        run_dir.join("results.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    history::write_jsonl(&events, &run_dir.join("history.jsonl"))?;
    if opts.save_final_reads {
        fs::write(
            run_dir.join("final-reads.json"),
            serde_json::to_string(&reads)?,
        )?;
    }
    let meta = vec![
        ("run".to_owned(), run_id.to_owned()),
        ("command".to_owned(), opts.command_line.clone()),
        (
            "nemeses".to_owned(),
            kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("gateway arguments".to_owned(), opts.gateway_args.join(" ")),
        (
            "raft ids".to_owned(),
            raft_ids
                .iter()
                .map(|(n, id)| format!("{n} {id}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("faults injected".to_owned(), extra["faults"].to_string()),
        (
            "writes".to_owned(),
            format!("ok {ok}, fail {fail}, info {info}"),
        ),
        ("reads".to_owned(), read_count.to_string()),
        (
            "settled".to_owned(),
            format!("{converged} after {settle_secs:.1}s"),
        ),
        ("crashes".to_owned(), crashes.len().to_string()),
    ];
    fs::write(
        run_dir.join("report.html"),
        report::html(&events, &result, &meta),
    )?;

    print_summary(&result, ok, fail, info, converged, crashes.len(), run_dir);
    Ok(if result.valid {
        Verdict::Valid
    } else {
        Verdict::Invalid
    })
}

fn print_summary(
    r: &checker::CheckResult,
    ok: usize,
    fail: usize,
    info: usize,
    converged: bool,
    crashes: usize,
    run_dir: &Path,
) {
    println!(
        "writes: ok {ok}, fail {fail}, info {info}; elements attempted {}, acknowledged {}",
        r.attempted, r.acknowledged
    );
    println!(
        "lost {} unexpected {} failed_present {} duplicated {} divergent {} corrupted {} torn {}",
        r.lost, r.unexpected, r.failed_present, r.duplicated, r.divergent, r.corrupted, r.torn
    );
    println!(
        "indeterminate: {} present, {} absent; flickered in periodic reads: {}",
        r.indeterminate_present, r.indeterminate_absent, r.visibility.flickered
    );
    if let Some(q) = &r.visibility.from_ack_ms {
        println!(
            "visible everywhere after ack (ms): p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
            q.p50, q.p90, q.p99, q.max
        );
    }
    let f = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.2}s"));
    println!(
        "recovery after {} heals: max to first ok {}, max to ok through every node {} (target {}s: {})",
        r.recovery.heals.len(),
        f(r.recovery.max_any_node_s),
        f(r.recovery.max_every_node_s),
        r.recovery.target_s,
        if r.recovery.within_target { "met" } else { "MISSED" }
    );
    println!(
        "longest stretch without an acknowledged write: {:.2}s during a fault, {:.2}s outside faults",
        r.recovery
            .gaps
            .iter()
            .filter(|g| g.during_fault)
            .map(|g| g.seconds)
            .fold(0.0, f64::max),
        r.recovery.longest_gap_without_fault_s
    );
    let k = &r.keyed;
    println!(
        "keyed writes: {} (ok {}, fail {}, info {}), {} retried, {} attempts, {} answered as \
         replays; applied twice {}, twice under clock skew {}, acknowledged but missing {}",
        k.writes,
        k.acknowledged,
        k.failed,
        k.indeterminate,
        k.retried,
        k.attempts,
        k.replayed,
        k.duplicated,
        k.duplicated_under_skew,
        k.lost
    );
    let u = &r.unkeyed_retries;
    if u.writes > 0 {
        println!(
            "untimed writes retried without a key: {} ({} retried), {} applied more than once",
            u.writes, u.retried, u.duplicated
        );
    }
    let l = &r.linearizable_reads;
    println!(
        "linearizable reads: ok {}, failed {}; stale {}, saw failed writes {}",
        l.ok, l.failed, l.stale, l.saw_failed
    );
    let (sc, d) = (&r.schema, &r.deletes);
    let schema_ops: usize = sc.ops.values().flat_map(|by| by.values()).sum();
    println!(
        "schema: {schema_ops} operations; {} objects compared between replicas, {} differ; \
         {} contradict the operations; main deletes ok {} info {}: elements that may be \
         deleted {}, must be {}, of those present {}",
        sc.compared,
        sc.differences,
        sc.violations,
        d.ok,
        d.indeterminate,
        d.may_be_deleted,
        d.must_be_deleted,
        d.deleted_present
    );
    println!("settled: {converged}; processes that crashed on their own: {crashes}");
    for p in &r.problems {
        println!("problem: {p}");
    }
    println!(
        "{}: {}",
        if r.valid { "VALID" } else { "INVALID" },
        run_dir.join("report.html").display()
    );
}

fn record_crashes(cluster: &Cluster, recorder: &Recorder) {
    for (n, p, status) in cluster.crashes() {
        eprintln!("\n{} of n{n} died on its own: {status}", p.name());
        let mut e = Event::new("cluster", Type::Info, F::Crash, recorder.op_id());
        e.node = Some(n);
        e.error = Some(format!("{} exited: {status}", p.name()));
        recorder.record(e);
    }
}

/// Records the membership as leader `leader` lists it, when it differs from `last`.
fn record_membership(
    cluster: &Cluster,
    recorder: &Recorder,
    leader: Option<u8>,
    last: &mut Option<Vec<MemberValue>>,
) {
    let Some(l) = leader else { return };
    let Ok(mut members) = cluster.members(l) else {
        return;
    };
    members.sort_by_key(|m| m.id);
    let ids = cluster.ids();
    let now: Vec<MemberValue> = members
        .into_iter()
        .map(|m| MemberValue {
            node: nodes()
                .zip(&ids)
                .find(|(_, id)| **id == m.id)
                .map(|(n, _)| n),
            id: m.id,
            kind: m.kind,
        })
        .collect();
    if last.as_ref() != Some(&now) {
        let mut e = Event::new("membership", Type::Info, F::Members, recorder.op_id());
        e.node = Some(l);
        e.members = Some(now.clone());
        recorder.record(e);
        *last = Some(now);
    }
}

/// Replicated through the log like any state change; retried until some node takes it.
fn create_database(cluster: &Cluster) -> anyhow::Result<()> {
    let apis: Vec<Http> = nodes()
        .map(|n| {
            Http::new(&format!("{}:{API_PORT}", netns::ip(n)))
                .with_timeouts(Duration::from_secs(10), Duration::from_secs(10))
        })
        .collect();
    let created = poll(Duration::from_secs(60), Duration::from_millis(500), || {
        let mut last = String::new();
        for api in &apis {
            match api.query("", &format!("CREATE DATABASE {DATABASE}")) {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => last = format!("status {}", r.status),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    });
    if let Err(last) = created {
        bail!("cannot create database {DATABASE}: {last}");
    }
    // Every replica applies it before the workload starts, so no early write meets a
    // missing database.
    cluster.wait_settled(Duration::from_secs(60), true)?;
    Ok(())
}

/// The body of a 200 answer of node `n`'s influxd.
fn influxd_query(cluster: &Cluster, n: u8, path_and_query: &str) -> anyhow::Result<String> {
    let r = cluster.influxd_get(n, path_and_query)?;
    if r.status != 200 {
        bail!("influxd answered {}: {}", r.status, r.body);
    }
    Ok(r.body)
}

/// Everything node `n`'s influxd holds in the workload's database, read directly from it
/// (not through the gateway), plus its list of databases (without the gateway's own) and
/// its catalog: policies, users, queries, series, and the points of every other policy.
fn final_read(cluster: &Cluster, n: u8) -> anyhow::Result<FinalRead> {
    let q = encode("SELECT * FROM /.*/ GROUP BY *");
    let points = influx::parse_points(&influxd_query(
        cluster,
        n,
        &format!("/query?db={DATABASE}&epoch=ns&chunked=true&chunk_size=10000&q={q}"),
    )?)?;
    let show = influxd_query(
        cluster,
        n,
        &format!("/query?q={}", encode("SHOW DATABASES")),
    )?;
    let databases: Vec<String> = influx::parse_databases(&show)?
        .into_iter()
        .filter(|d| d != influx::RESERVED_DATABASE && d != "_internal")
        .collect();
    let catalog = catalog::read(|pq| influxd_query(cluster, n, pq), &databases)?;
    Ok(FinalRead {
        node: n,
        points,
        databases,
        catalog,
    })
}

/// Re-runs the checker on a stored run (its history and final reads).
pub fn recheck(run_dir: &Path, recovery_target: f64) -> anyhow::Result<Verdict> {
    let events = history::read_jsonl(&run_dir.join("history.jsonl"))?;
    let path = run_dir.join("final-reads.json");
    let reads: Vec<FinalRead> =
        serde_json::from_str(&fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (runs keep it with --save-final-reads)",
                path.display()
            )
        })?)?;
    let result = checker::check(&events, &reads, recovery_target);
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(if result.valid {
        Verdict::Valid
    } else {
        Verdict::Invalid
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::WriteValue;
    use crate::influx::Point;

    #[test]
    fn a_stored_run_is_checked_again() {
        let dir = std::env::temp_dir().join(format!("jepsen-recheck-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut invoke = Event::new("c1", Type::Invoke, F::Write, 1);
        invoke.node = Some(1);
        invoke.write = Some(WriteValue::plain(1, vec![7], vec![70]));
        let mut ok = Event::new("c1", Type::Ok, F::Write, 1);
        ok.node = Some(1);
        ok.time = 1;
        history::write_jsonl(&[invoke, ok], &dir.join("history.jsonl")).unwrap();
        let replica = |node| FinalRead {
            node,
            points: vec![Point::expected(1, 1, 7, 70)],
            databases: vec!["jepsen".into()],
            catalog: Default::default(),
        };
        let reads = vec![replica(1), replica(2), replica(3)];
        fs::write(
            dir.join("final-reads.json"),
            serde_json::to_string(&reads).unwrap(),
        )
        .unwrap();
        assert!(matches!(recheck(&dir, 10.0).unwrap(), Verdict::Valid));
        let reads = vec![replica(1), replica(2)];
        fs::write(
            dir.join("final-reads.json"),
            serde_json::to_string(&reads).unwrap(),
        )
        .unwrap();
        // A replica that was not read cannot be vouched for.
        assert!(matches!(recheck(&dir, 10.0).unwrap(), Verdict::Invalid));
        fs::write(dir.join("final-reads.json"), "[]").unwrap();
        assert!(matches!(recheck(&dir, 10.0).unwrap(), Verdict::Invalid));
        let _ = fs::remove_dir_all(dir);
    }
}
