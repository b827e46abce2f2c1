//! The bounded log with real processes: entries every member applied are trimmed, the log
//! directory stays within its cap under load, and a node that needs trimmed entries (wiped
//! influxd, a node stopped for long, a new member) is seeded from a peer's influxd and
//! converges, with no operator step.

use std::time::Duration;

use tests::cluster::Secured;
use tests::{wait_until, Cluster, HttpError};

const CONVERGE: Duration = Duration::from_secs(90);

fn status(c: &Cluster, id: u64) -> serde_json::Value {
    c.node(id).api().get("/status").unwrap().json()
}

/// Waits until node `id`'s log starts after `index`: everything up to it was trimmed.
fn wait_trimmed_past(c: &Cluster, id: u64, index: u64) -> u64 {
    wait_until(
        &format!("node {id}'s log trimmed past {index}"),
        CONVERGE,
        || {
            let s = status(c, id);
            match s["log"]["first_index"].as_u64() {
                Some(first) if first > index => Ok(first),
                _ => Err(s["log"].clone()),
            }
        },
    )
}

/// Everything a replica holds, as its influxd reports it: databases, retention policies,
/// users, continuous queries and every point.
fn everything(c: &Cluster, id: u64) -> Result<Vec<String>, HttpError> {
    let http = c.node(id).influx();
    let mut out = Vec::new();
    for (db, q) in [
        ("", "SHOW DATABASES"),
        ("", "SHOW USERS"),
        ("", "SHOW CONTINUOUS QUERIES"),
        ("db", "SHOW GRANTS FOR reader"),
        ("db", "SHOW RETENTION POLICIES"),
        ("db", "SELECT * FROM /.*/ GROUP BY *"),
        ("db", "SELECT * FROM \"short\"./.*/ GROUP BY *"),
    ] {
        out.push(format!("{q}: {}", http.try_query(db, q)?["results"][0]));
    }
    Ok(out)
}

/// Waits until node `id` completed a seed, and returns its status then.
fn wait_seeded(c: &Cluster, id: u64) -> serde_json::Value {
    wait_until(&format!("node {id} seeded"), CONVERGE, || {
        // A gateway just started may not answer yet.
        let s = c
            .node(id)
            .api()
            .get("/status")
            .map_err(|e| e.to_string())?
            .json();
        match s["applier"]["seeds_completed"].as_u64() {
            Some(n) if n >= 1 => Ok(s),
            _ => Err(s["applier"].to_string()),
        }
    })
}

fn wait_identical(c: &Cluster, id: u64, reference: &[String]) {
    wait_until(
        &format!("node {id} identical to the reference"),
        CONVERGE,
        || {
            let now = everything(c, id).map_err(|e| e.to_string())?;
            match now.iter().zip(reference).find(|(a, b)| a != b) {
                None => Ok(()),
                Some((a, b)) => Err(format!("{a}\n  where node 1 has\n{b}")),
            }
        },
    );
}

/// Schema, a user and points, written through every node.
fn populate(c: &Cluster, points: usize) {
    let api = c.node(1).api();
    for q in [
        "CREATE DATABASE db",
        "CREATE RETENTION POLICY short ON db DURATION 1000w REPLICATION 1",
        "CREATE USER reader WITH PASSWORD 'secret'",
        "GRANT READ ON db TO reader",
        "CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT mean(v) INTO db.autogen.cpu_mean FROM cpu GROUP BY time(1h) END",
    ] {
        api.query_ok("", q);
    }
    for i in 0..points {
        let via = c.node(i as u64 % 3 + 1).api();
        let r = via
            .write("db=db", &format!("cpu,host=h{} v={i}i {i}", i % 7))
            .unwrap();
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = api.write("db=db&rp=short", "mem v=1").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    c.wait_converged("db", "cpu", points, CONVERGE);
}

#[test]
fn wiped_influxd_is_seeded_once_its_entries_were_trimmed() {
    let mut c = Cluster::start_with(3, &["--log-retention", "0s"]);
    populate(&c, 300);
    let last = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    for id in 1..=3 {
        wait_trimmed_past(&c, id, last - 5);
    }
    let reference = everything(&c, 1).unwrap();

    let n3 = c.node_mut(3);
    n3.influxd.kill();
    n3.influxd.wipe();
    n3.influxd.start_again();
    wait_identical(&c, 3, &reference);
    wait_seeded(&c, 3);
    c.wait_ready(&[3], CONVERGE);
    // It keeps applying what comes after the copy.
    c.node(1)
        .api()
        .write_ok("db=db", "cpu,host=after v=1i 1000");
    c.wait_converged("db", "cpu", 301, CONVERGE);
}

/// The leader's view of a member's role ("voter", "learner").
fn kind_of(c: &Cluster, via: u64, id: u64) -> Option<String> {
    let s = status(c, via);
    s["raft"]["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == id)
        .and_then(|m| m["kind"].as_str().map(str::to_owned))
}

#[test]
fn a_node_added_after_trimming_is_seeded_then_becomes_a_voter() {
    let flags = ["--log-retention", "0s"];
    // Over mutual-TLS peer links: the join, the seed's side channel and the copy all travel
    // under the cluster CA.
    let mut c = Cluster::start_with_tls(3, Secured::Peers, &flags);
    populate(&c, 200);
    let last = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    wait_trimmed_past(&c, 1, last - 5);
    let reference = everything(&c, 1).unwrap();

    c.start_joining_node_with(4, &flags);
    let r = c.add_member(1, 4);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_identical(&c, 4, &reference);
    let s = wait_seeded(&c, 4);
    assert!(
        s["applier"]["entries_applied"].as_u64() < Some(last / 2),
        "node 4 replayed the log rather than being seeded: {}",
        s["applier"]
    );
    let leader = c.wait_for_leader(CONVERGE);
    wait_until("node 4 to become a voter", CONVERGE, || {
        match kind_of(&c, leader, 4).as_deref() {
            Some("voter") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    c.node(4)
        .api()
        .write_ok("db=db", "cpu,host=from4 v=1i 2000");
    c.wait_converged("db", "cpu", 201, CONVERGE);
}

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

#[test]
fn a_seed_whose_source_dies_completes_from_another_peer() {
    let mut c = Cluster::start_with(3, &["--log-retention", "0s"]);
    populate(&c, 200);
    let last = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    for id in 1..=3 {
        wait_trimmed_past(&c, id, last - 5);
    }
    let reference = everything(&c, 1).unwrap();
    let leader = c.wait_for_leader(CONVERGE);
    let wiped = if leader == 3 { 2 } else { 3 };

    // The leader is asked first; its influxd frozen, it is stuck taking the copy when its
    // gateway is killed: the source dies in the middle of the seed.
    let frozen = c.node(leader).influxd.pid().unwrap();
    signal(frozen, "STOP");
    let n = c.node_mut(wiped);
    n.influxd.kill();
    n.influxd.wipe();
    n.influxd.start_again();
    wait_until(
        &format!("node {leader} to start copying for node {wiped}"),
        CONVERGE,
        || {
            let log = c.node(leader).gateway.log();
            if log.contains("copying influxd for a peer") {
                Ok(())
            } else {
                Err("not yet")
            }
        },
    );
    c.node_mut(leader).gateway.kill();
    signal(frozen, "CONT");

    wait_identical(&c, wiped, &reference);
    wait_seeded(&c, wiped);
    c.node_mut(leader).gateway.start();
    c.wait_ready(&[1, 2, 3], CONVERGE);
    c.node(wiped)
        .api()
        .write_ok("db=db", "cpu,host=after v=1i 3000");
    c.wait_converged("db", "cpu", 201, CONVERGE);
}

/// `n` characters nothing compresses much (hex of a xorshift sequence), so that the log's
/// size on disk is what the test thinks it writes.
fn noise(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(n + 16);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out += &format!("{x:016x}");
    }
    out.truncate(n);
    out
}

/// Writes through `via`, trying again while the cluster elects a leader.
fn write_retrying(c: &Cluster, via: u64, body: &str) {
    wait_until(&format!("a write through node {via}"), CONVERGE, || {
        let r = c
            .node(via)
            .api()
            .write("db=db", body)
            .map_err(|e| e.to_string())?;
        if r.status == 204 {
            Ok(())
        } else {
            Err(format!("{}: {}", r.status, r.body))
        }
    });
}

#[test]
fn a_node_stopped_while_the_log_was_trimmed_past_it_converges_after_restart() {
    // The cap trims what a quorum applied, past the stopped node.
    let mut c = Cluster::start_with(3, &["--log-retention", "0s", "--log-max-size", "1MiB"]);
    populate(&c, 50);
    let leader = c.wait_for_leader(CONVERGE);
    let stopped = if leader == 3 { 2 } else { 3 };
    let writers: Vec<u64> = (1..=3).filter(|&id| id != stopped).collect();
    c.node_mut(stopped).gateway.kill();
    let mut written = 50;
    for i in 0..1000u64 {
        let body: String = (0..4)
            .map(|j| {
                let ts = 10_000 + i * 4 + j;
                format!("cpu,host=big v=1i,pad=\"{}\" {ts}\n", noise(ts, 1000))
            })
            .collect();
        write_retrying(&c, writers[i as usize % 2], &body);
        written += 4;
    }
    let last = status(&c, leader)["raft"]["commit"].as_u64().unwrap();
    wait_trimmed_past(&c, leader, 100);
    c.node_mut(stopped).gateway.start();
    c.wait_converged("db", "cpu", written, CONVERGE);
    let reference = everything(&c, leader).unwrap();
    wait_identical(&c, stopped, &reference);
    let s = wait_seeded(&c, stopped);
    assert!(
        s["log"]["first_index"].as_u64() > Some(100),
        "node {stopped}'s log did not take the leader's trim point: {}",
        s["log"]
    );
    assert!(s["raft"]["commit"].as_u64() >= Some(last));
}

#[test]
fn a_gateway_restarted_on_a_trimmed_log_resumes_without_a_seed() {
    let mut c = Cluster::start_with(3, &["--log-retention", "0s"]);
    populate(&c, 100);
    let last = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    let first = wait_trimmed_past(&c, 2, last - 5);
    c.node_mut(2).gateway.kill();
    c.node_mut(2).gateway.start();
    c.wait_ready(&[2], CONVERGE);
    let s = status(&c, 2);
    assert!(
        s["log"]["first_index"].as_u64() >= Some(first),
        "the trim was lost across the restart: {}",
        s["log"]
    );
    assert_eq!(s["applier"]["seeds_started"], 0, "{}", s["applier"]);
    for i in 0..20 {
        c.node(2)
            .api()
            .write_ok("db=db", &format!("cpu,host=later v={i}i {}", 5000 + i));
    }
    c.wait_converged("db", "cpu", 120, CONVERGE);
}

#[test]
fn the_log_directory_stays_bounded_under_continuous_writes() {
    const CAP_BOUND: u64 = 64 << 20;
    let c = Cluster::start_with(3, &["--log-retention", "1h", "--log-max-size", "4MiB"]);
    c.create_database(1, "db");
    let mut written_bytes = 0u64;
    let mut points = 0usize;
    let mut largest = [0u64; 4];
    let mut ts = 0u64;
    while written_bytes < 110 << 20 {
        let body: String = (0..1000)
            .map(|_| {
                ts += 1;
                format!(
                    "cpu,host=h{} v={ts}i,pad=\"{}\" {ts}\n",
                    ts % 50,
                    noise(ts, 900)
                )
            })
            .collect();
        written_bytes += body.len() as u64;
        points += 1000;
        write_retrying(&c, 1 + ts % 3, &body);
        for (id, largest) in largest.iter_mut().enumerate().skip(1) {
            let dir = status(&c, id as u64)["log"]["dir_bytes"].as_u64().unwrap();
            *largest = (*largest).max(dir);
        }
    }
    c.wait_converged("db", "cpu", points, CONVERGE);
    for id in 1..=3u64 {
        let s = status(&c, id);
        eprintln!(
            "node {id}: largest log directory {} MiB after {} MiB of line protocol; now {}",
            largest[id as usize] >> 20,
            written_bytes >> 20,
            s["log"]
        );
        assert!(
            largest[id as usize] < CAP_BOUND,
            "node {id}'s log directory reached {} bytes",
            largest[id as usize]
        );
        assert!(
            s["log"]["trimmed_entries"].as_u64() > Some(50),
            "{}",
            s["log"]
        );
    }
    // Point for point, not only counts.
    let reference = c.node(1).influx().rows("db", "cpu");
    for id in 2..=3 {
        assert!(
            c.node(id).influx().rows("db", "cpu") == reference,
            "node {id} differs from node 1"
        );
    }
}

#[test]
fn a_seeded_influxd_gives_users_their_passwords_back() {
    let admin = ("admin", "admin-pw");
    let mut c = Cluster::start_with_auth_and(3, admin, &["--log-retention", "0s"]);
    let api = c.node(1).api().with_auth(admin.0, admin.1);
    for q in [
        "CREATE DATABASE db",
        "CREATE USER reader WITH PASSWORD 'first'",
        "GRANT READ ON db TO reader",
        "SET PASSWORD FOR reader = 'second'",
        "CREATE USER gone WITH PASSWORD 'x'",
        "DROP USER gone",
        "CREATE USER boss WITH PASSWORD 'b0ss' WITH ALL PRIVILEGES",
    ] {
        api.query_ok("", q);
    }
    for i in 0..50 {
        api.write_ok("db=db", &format!("cpu v={i}i {i}"));
    }
    let last = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    for id in 1..=3 {
        wait_trimmed_past(&c, id, last - 5);
    }
    let n3 = c.node_mut(3);
    n3.influxd.kill();
    n3.influxd.wipe();
    n3.influxd.start_again();
    wait_seeded(&c, 3);
    c.wait_ready(&[3], CONVERGE);
    let influxd = c.node(3).influxd.http();
    let as_user = |user: &str, pw: &str| {
        tests::Http::new(&influxd.base().replace("http://", ""))
            .with_auth(user, pw)
            .query("db", "SELECT count(v) FROM cpu")
            .unwrap()
    };
    let r = as_user("reader", "second");
    assert_eq!(
        r.status, 200,
        "reader's password on the seeded influxd: {}",
        r.body
    );
    assert!(r.body.contains("50"), "{}", r.body);
    assert_eq!(as_user("reader", "first").status, 401);
    assert_eq!(as_user("boss", "b0ss").status, 200);
    assert_eq!(as_user("gone", "x").status, 401);
    // Through the seeded node's gateway as well.
    let r = c
        .node(3)
        .api()
        .with_auth("reader", "second")
        .query("db", "SELECT count(v) FROM cpu")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_wiped_influxd_with_a_large_backlog_is_seeded_although_nothing_was_trimmed() {
    // Nothing is ever trimmed; the backlog of a wiped influxd (about 2.5 MB of line
    // protocol) is over the minimum and several times what a copy of influxd takes (its
    // WAL is not compacted yet at this size: a ratio of 2 leaves room for that).
    let flags = [
        "--log-retention",
        "forever",
        "--seed-min-backlog",
        "1MiB",
        "--seed-backlog-ratio",
        "2",
    ];
    let mut c = Cluster::start_with(3, &flags);
    c.create_database(1, "db");
    let mut ts = 0u64;
    for _ in 0..40 {
        let body: String = (0..1000)
            .map(|_| {
                ts += 1;
                format!(
                    "cpu,host=h{},region=r{} usage_user={}.5,usage_idle=9{}.25 {ts}\n",
                    ts % 20,
                    ts % 3,
                    ts % 100,
                    ts % 10
                )
            })
            .collect();
        write_retrying(&c, 1, &body);
    }
    c.wait_converged("db", "cpu", 40_000, CONVERGE);
    assert_eq!(status(&c, 1)["log"]["first_index"], 1, "nothing is trimmed");
    let applied_before = status(&c, 3)["applier"]["entries_applied"]
        .as_u64()
        .unwrap();
    let n3 = c.node_mut(3);
    n3.influxd.kill();
    n3.influxd.wipe();
    n3.influxd.start_again();
    let s = wait_seeded(&c, 3);
    assert!(
        s["applier"]["entries_applied"].as_u64() < Some(applied_before + 30),
        "node 3 replayed the log: {}",
        s["applier"]
    );
    c.wait_ready(&[3], CONVERGE);
    c.wait_converged("db", "cpu", 40_000, CONVERGE);
    assert!(
        // The reason, as the log shows it (between colour codes).
        c.node(3).gateway.log().contains("Faster"),
        "the seed was not chosen for speed"
    );
}

#[test]
fn a_half_restored_influxd_is_wiped_and_seeded_again() {
    let mut c = Cluster::start_with(3, &["--log-retention", "0s"]);
    populate(&c, 100);
    let last = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    for id in 1..=3 {
        wait_trimmed_past(&c, id, last - 5);
    }
    let reference = everything(&c, 1).unwrap();
    // What a node that died while restoring leaves: databases, some of the data, and no
    // marker (it is written last).
    let n3 = c.node_mut(3);
    n3.gateway.kill();
    n3.influxd.kill();
    n3.influxd.wipe();
    n3.influxd.start_again();
    let influxd = c.node(3).influx();
    influxd.query_ok("", "CREATE DATABASE db");
    influxd.write_ok("db=db", "cpu,host=half v=-1i 1\nstray v=1 2");
    influxd.query_ok("", "CREATE DATABASE _gateway");
    c.node_mut(3).gateway.start();
    wait_seeded(&c, 3);
    wait_identical(&c, 3, &reference);
    c.wait_ready(&[3], CONVERGE);
}
