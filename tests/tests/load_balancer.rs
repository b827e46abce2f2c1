//! The load-balancer recipes (`deploy/haproxy.cfg`, `deploy/nginx.conf`) in front of a real
//! cluster, run by the real haproxy and nginx (Debian packages), each on its own loopback
//! address. Under steady writes through the balancer, the leader's gateway is SIGKILLed, a
//! node's influxd is stopped, and a node is cut off from its peers by iptables (root only);
//! clients must see no error at all, and every acknowledged point must be on every replica,
//! once.
//!
//! Half the writers send points without timestamps, which a second application would
//! duplicate: the balancer's retries are safe only because it gives each write an
//! idempotency key. The recipes are used as shipped; only their addresses are replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use harness::Process;
use tests::cluster::API_PORT;
use tests::{wait_until, Cluster, Http, Partition};

const WRITERS: u64 = 4;
/// Acknowledged writes awaited after each fault, while it lasts, and after it is healed.
const ACKS_PER_PHASE: u64 = 60;
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

fn recipe(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The recipe's example node addresses replaced by the cluster's.
fn with_nodes(mut text: String, c: &Cluster) -> String {
    for n in &c.nodes {
        let example = format!("10.0.0.{}:8086", n.id);
        assert!(text.contains(&example), "the recipe names {example}");
        text = text.replace(&example, &format!("{}:{API_PORT}", n.ip));
    }
    text
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "the recipe has one {from:?}");
    text.replace(from, to)
}

fn haproxy(c: &Cluster, addr: &str) -> Process {
    let dir = c.dir.path().join("haproxy");
    fs::create_dir_all(&dir).unwrap();
    let cfg = replace_once(
        &with_nodes(recipe("haproxy.cfg"), c),
        "\n    bind :8086\n",
        &format!("\n    bind {addr}\n"),
    );
    let file = dir.join("haproxy.cfg");
    fs::write(&file, cfg).unwrap();
    start(
        Process::new("haproxy", "haproxy", dir.join("haproxy.log"))
            .args(["-db", "-f"])
            .args([&file]),
    )
}

fn nginx(c: &Cluster, addr: &str) -> Process {
    let dir = c.dir.path().join("nginx");
    fs::create_dir_all(&dir).unwrap();
    let site = replace_once(
        &with_nodes(recipe("nginx.conf"), c),
        "\n    listen 8086;\n",
        &format!("\n    listen {addr};\n"),
    );
    fs::write(dir.join("influx-gateway.conf"), site).unwrap();
    // What Debian's /etc/nginx/nginx.conf provides around conf.d, in a directory of its own;
    // one process, so that killing it leaves no worker holding the address.
    let d = dir.display();
    let main = format!(
        "pid {d}/nginx.pid;\nmaster_process off;\nerror_log {d}/nginx.log info;\nevents {{}}\nhttp {{\n  \
         access_log {d}/nginx.log;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  include {d}/influx-gateway.conf;\n}}\n"
    );
    let file = dir.join("nginx.conf");
    fs::write(&file, main).unwrap();
    let error_log: PathBuf = dir.join("nginx.log");
    start(
        Process::new("nginx", "nginx", dir.join("nginx.log"))
            .args(["-g", "daemon off;", "-p"])
            .args([&dir])
            .args(["-e"])
            .args([&error_log])
            .args(["-c"])
            .args([&file]),
    )
}

fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn start(mut p: Process) -> Process {
    p.start()
        .unwrap_or_else(|e| panic!("{e} (scripts/deps installs haproxy and nginx)"));
    p
}

/// One writer's acknowledged sequence numbers, and every answer that was not a 204.
#[derive(Default)]
struct Record {
    acked: BTreeMap<u64, BTreeSet<u64>>,
    errors: Vec<String>,
}

struct Writers {
    /// The balancer's log, shown when a client saw an error.
    log: PathBuf,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    record: Arc<Mutex<Record>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Writers {
    /// Writer `w` sends one point per request, `seq` counting up: even writers without a
    /// timestamp (measurement `untimed`), odd ones with one (`timed`).
    fn start(lb: &str, log: PathBuf) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let record = Arc::new(Mutex::new(Record::default()));
        let threads = (0..WRITERS)
            .map(|w| {
                let (stop, acks, record) = (stop.clone(), acks.clone(), record.clone());
                // Longer than the balancers' own timeouts: a client never gives up first.
                let api =
                    Http::new(lb).with_timeouts(Duration::from_secs(5), Duration::from_secs(90));
                thread::spawn(move || {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let line = if w % 2 == 0 {
                            format!("untimed,writer={w} seq={seq}i")
                        } else {
                            format!("timed,writer={w} seq={seq}i {}", 1_000_000_000 + seq)
                        };
                        let answer = api.write("db=db", &line);
                        let mut r = record.lock().unwrap();
                        match answer {
                            Ok(a) if a.status == 204 => {
                                r.acked.entry(w).or_default().insert(seq);
                                acks.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(a) => r.errors.push(format!("{line}: {} {}", a.status, a.body)),
                            Err(e) => r.errors.push(format!("{line}: {e}")),
                        }
                        drop(r);
                        thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        Writers {
            log,
            stop,
            acks,
            record,
            threads,
        }
    }

    /// Waits for `n` more acknowledged writes, failing on the first client-visible error.
    fn progress(&self, n: u64, during: &str) {
        let target = self.acks.load(Ordering::Relaxed) + n;
        wait_until(
            &format!("{n} acknowledged writes {during}"),
            PHASE_TIMEOUT,
            || {
                let errors = self.record.lock().unwrap().errors.clone();
                assert!(
                    errors.is_empty(),
                    "clients saw errors {during}: {errors:#?}\nthe balancer's log ends: {}",
                    tail(&self.log)
                );
                let acks = self.acks.load(Ordering::Relaxed);
                if acks >= target {
                    Ok(())
                } else {
                    Err(format!("{acks} of {target}"))
                }
            },
        );
    }

    fn finish(self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.record)
            .ok()
            .expect("writers stopped")
            .into_inner()
            .unwrap()
    }
}

/// `(writer, seq)` -> how many times a replica holds it.
fn counts(rows: &[serde_json::Value], columns: &[String]) -> BTreeMap<(u64, u64), usize> {
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("a {name} column in {columns:?}"))
    };
    let (writer, seq) = (col("writer"), col("seq"));
    let mut counts = BTreeMap::new();
    for row in rows {
        let w: u64 = row[writer].as_str().unwrap().parse().unwrap();
        let s = row[seq].as_u64().unwrap();
        *counts.entry((w, s)).or_insert(0) += 1;
    }
    counts
}

/// Every acknowledged write on every replica exactly once (the timed ones may be there more
/// than once only as the same point, which influxd keeps once anyway).
fn check_replicas(c: &Cluster, record: &Record) {
    for (measurement, parity) in [("untimed", 0), ("timed", 1)] {
        let acked: BTreeSet<(u64, u64)> = record
            .acked
            .iter()
            .filter(|(w, _)| *w % 2 == parity)
            .flat_map(|(w, seqs)| seqs.iter().map(move |s| (*w, *s)))
            .collect();
        assert!(!acked.is_empty());
        wait_until(
            &format!("every acknowledged {measurement} write on every replica, once"),
            Duration::from_secs(60),
            || {
                for n in &c.nodes {
                    let q = format!("SELECT writer, seq FROM {measurement}");
                    let r = n.influx().query_ok("db", &q);
                    let series = &r["results"][0]["series"][0];
                    let columns: Vec<String> =
                        serde_json::from_value(series["columns"].clone()).unwrap_or_default();
                    let rows = series["values"].as_array().cloned().unwrap_or_default();
                    let counts = if rows.is_empty() {
                        BTreeMap::new()
                    } else {
                        counts(&rows, &columns)
                    };
                    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
                    assert!(
                        twice.is_empty(),
                        "node {} holds writes more than once: {twice:?}",
                        n.id
                    );
                    let missing: Vec<_> =
                        acked.iter().filter(|k| !counts.contains_key(k)).collect();
                    if !missing.is_empty() {
                        return Err(format!(
                            "node {}: {} acknowledged writes missing, e.g. {:?}",
                            n.id,
                            missing.len(),
                            &missing[..missing.len().min(5)]
                        ));
                    }
                }
                Ok(())
            },
        );
    }
}

/// The three faults, one after another, under the writers; each healed before the next.
fn faults_are_invisible_to_clients(balancer: fn(&Cluster, &str) -> Process) {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    let lb = format!("{}:{API_PORT}", c.slot.ip(100));
    let balancer = balancer(&c, &lb);
    wait_until(
        "the balancer to pass writes",
        Duration::from_secs(30),
        || match Http::new(&lb).write("db=db", "warmup v=1i 1") {
            Ok(r) if r.status == 204 => Ok(()),
            Ok(r) => Err(format!("{} {}", r.status, r.body)),
            Err(e) => Err(e.to_string()),
        },
    );
    let writers = Writers::start(&lb, balancer.log_path().to_owned());
    writers.progress(ACKS_PER_PHASE, "before any fault");

    // The leader's gateway dies mid-request.
    let leader = c.wait_for_leader(Duration::from_secs(10));
    c.node_mut(leader).gateway.kill();
    writers.progress(ACKS_PER_PHASE, "with the leader's gateway killed");
    c.node_mut(leader).gateway.start();
    c.wait_ready(&[1, 2, 3], PHASE_TIMEOUT);
    writers.progress(ACKS_PER_PHASE, "after the killed gateway came back");

    // One node's influxd stops: that node refuses writes with 503 until it is back.
    let victim = c.wait_for_leader(Duration::from_secs(10));
    c.node_mut(victim).influxd.kill();
    writers.progress(ACKS_PER_PHASE, "with the leader's influxd stopped");
    c.node_mut(victim).influxd.start_again();
    c.wait_ready(&[1, 2, 3], PHASE_TIMEOUT);
    writers.progress(ACKS_PER_PHASE, "after the influxd came back");

    // The leader is cut off from its peers (the balancer still reaches it).
    let island = c.wait_for_leader(Duration::from_secs(10));
    let others: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.id != island)
        .map(|n| n.ip.clone())
        .collect();
    let mut partition = Partition::cut(&c.node(island).ip, &others);
    writers.progress(ACKS_PER_PHASE, "with the leader cut off");
    partition.heal();
    c.wait_ready(&[1, 2, 3], PHASE_TIMEOUT);
    writers.progress(ACKS_PER_PHASE, "after the partition healed");

    let record = writers.finish();
    assert!(
        record.errors.is_empty(),
        "clients saw errors: {:#?}",
        record.errors
    );
    let total: usize = record.acked.values().map(BTreeSet::len).sum();
    eprintln!("{total} writes acknowledged, none failed");
    check_replicas(&c, &record);
}

#[test]
fn haproxy_hides_a_killed_leader_a_stopped_influxd_and_a_partition() {
    faults_are_invisible_to_clients(haproxy);
}

#[test]
fn nginx_hides_a_killed_leader_a_stopped_influxd_and_a_partition() {
    faults_are_invisible_to_clients(nginx);
}
