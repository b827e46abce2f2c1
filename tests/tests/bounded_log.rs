//! The bounded log with real processes: entries every member applied are trimmed, the log
//! directory stays within its cap under load, and a node that needs trimmed entries (wiped
//! influxd, a node stopped for long, a new member) is seeded from a peer's influxd and
//! converges, with no operator step.

use std::time::Duration;

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

fn wait_identical(c: &Cluster, id: u64, reference: &[String]) {
    wait_until(&format!("node {id} identical to node 1"), CONVERGE, || {
        let now = everything(c, id).map_err(|e| e.to_string())?;
        match now.iter().zip(reference).find(|(a, b)| a != b) {
            None => Ok(()),
            Some((a, b)) => Err(format!("{a}\n  where node 1 has\n{b}")),
        }
    });
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
    c.wait_ready(&[3], CONVERGE);
    let s = status(&c, 3);
    assert!(
        s["applier"]["seeds_completed"].as_u64() >= Some(1),
        "node 3 was not seeded: {}",
        s["applier"]
    );
    // It keeps applying what comes after the copy.
    c.node(1)
        .api()
        .write_ok("db=db", "cpu,host=after v=1i 1000");
    c.wait_converged("db", "cpu", 301, CONVERGE);
}
