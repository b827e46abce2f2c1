//! Snapshotless recovery with real processes: a restarted gateway resumes from the marker in
//! its influxd; an influxd that was down catches up; a wiped influxd is rebuilt from the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::{wait_until, Cluster, HttpError};

const CONVERGE: Duration = Duration::from_secs(60);

fn status(c: &Cluster, id: u64) -> serde_json::Value {
    c.node(id).api().get("/status").unwrap().json()
}

#[test]
fn restarted_gateway_resumes_from_its_marker_without_replaying_the_log() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    for i in 0..200 {
        c.node(2).api().write_ok("db=db", &format!("m v={i}i {i}"));
    }
    c.wait_converged("db", "m", 200, CONVERGE);
    // Idle, the applier records how far it got in influxd.
    let marker = wait_until(
        "node 2's marker to reach its applied index",
        CONVERGE,
        || {
            let s = status(&c, 2);
            let (marker, applied) = (
                s["applier"]["marker"].as_u64(),
                s["applier"]["applied"].as_u64(),
            );
            match (marker, applied) {
                (Some(m), Some(a)) if m == a && a > 200 => Ok(m),
                _ => Err(s["applier"].clone()),
            }
        },
    );

    c.node_mut(2).gateway.kill();
    c.node_mut(2).gateway.start();
    c.wait_ready(&[2], CONVERGE);
    // Ready (a leader known, influxd answering) may come before the applier has resumed;
    // it reports a commit index only once it applies, after resuming.
    let s = wait_until("node 2's applier to resume", CONVERGE, || {
        let s = status(&c, 2);
        if s["applier"]["committed"].as_u64() > Some(0) {
            Ok(s)
        } else {
            Err(s["applier"].clone())
        }
    });
    assert_eq!(
        s["applier"]["resumed_from"].as_u64(),
        Some(marker),
        "node 2 did not resume from its marker: {}",
        s["applier"]
    );
    assert!(
        s["applier"]["entries_applied"].as_u64().unwrap() < 20,
        "node 2 re-applied the log after a restart: {}",
        s["applier"]
    );
    c.wait_converged("db", "m", 200, CONVERGE);
}

#[test]
fn influxd_killed_under_load_then_restarted_converges() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let api = c.node(1).api();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = 0u64;
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let r = api
                    .write("db=db", &format!("load seq={seq}i {seq}"))
                    .unwrap();
                assert_eq!(
                    r.status, 204,
                    "writes through a healthy node fail: {}",
                    r.body
                );
                acked = seq;
            }
            acked
        })
    };

    wait_until("some load", CONVERGE, || {
        let n = c.node(3).influx().rows("db", "load").len();
        if n > 20 {
            Ok(())
        } else {
            Err(n)
        }
    });
    c.node_mut(3).influxd.kill();

    // Node 3 stays a Raft member but refuses writes that would wait on its influxd, fast,
    // unless the client only asks for a quorum commit.
    let api3 = c.node(3).api();
    wait_until(
        "node 3 to report its influxd down",
        Duration::from_secs(10),
        || {
            let start = Instant::now();
            let r = api3.write("db=db", "direct v=1 1").unwrap();
            if r.status == 503 && r.error().starts_with("local influxd unavailable") {
                assert!(
                    start.elapsed() < Duration::from_secs(1),
                    "slow 503: {:?}",
                    start.elapsed()
                );
                Ok(())
            } else {
                Err((r.status, r.body))
            }
        },
    );
    let r = api3.write("db=db&consistency=any", "anyway v=1 1").unwrap();
    assert_eq!(
        r.status, 204,
        "consistency=any while influxd is down: {}",
        r.body
    );
    assert_eq!(api3.get("/health").unwrap().status, 503);

    c.node_mut(3).influxd.restart();
    c.wait_ready(&[3], CONVERGE);
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    c.wait_converged("db", "load", acked as usize, CONVERGE);
    c.wait_converged("db", "anyway", 1, CONVERGE);
}

/// Everything a replica holds, as its influxd reports it: databases, retention policies,
/// users and every point. An error while the replica is still being rebuilt.
fn everything(c: &Cluster, id: u64) -> Result<String, HttpError> {
    let http = c.node(id).influx();
    let mut out = String::new();
    for (db, q) in [
        ("", "SHOW DATABASES"),
        ("", "SHOW USERS"),
        ("db", "SHOW RETENTION POLICIES"),
        ("other", "SHOW RETENTION POLICIES"),
        ("db", "SELECT * FROM /.*/ GROUP BY *"),
        ("other", "SELECT * FROM /.*/ GROUP BY *"),
        ("db", "SELECT * FROM \"short\"./.*/ GROUP BY *"),
    ] {
        out += &http.try_query(db, q)?["results"][0].to_string();
    }
    Ok(out)
}

fn wait_rebuilt(c: &Cluster, id: u64, reference: &str) {
    wait_until(&format!("node {id} rebuilt"), CONVERGE, || {
        let now = everything(c, id).map_err(|e| e.to_string())?;
        if now == reference {
            Ok(())
        } else {
            Err(format!("{} bytes differ", now.len()))
        }
    });
}

#[test]
fn wiped_influxd_is_rebuilt_from_the_log() {
    let mut c = Cluster::start(3);
    let api = c.node(1).api();
    for q in [
        "CREATE DATABASE db",
        "CREATE DATABASE other",
        "CREATE RETENTION POLICY short ON db DURATION 1000w REPLICATION 1",
        "CREATE USER reader WITH PASSWORD 'secret'",
        "GRANT READ ON db TO reader",
    ] {
        api.query_ok("", q);
    }
    for i in 0..300 {
        let via = c.node(i % 3 + 1).api();
        let r = via
            .write(
                "db=db",
                &format!("cpu,host=h{} v={i}i,s=\"é {i}\" {i}", i % 7),
            )
            .unwrap();
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = api.write("db=db&rp=short", "mem v=1").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    let r = api.write("db=other", "disk v=2 2000").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    c.wait_converged("db", "cpu", 300, CONVERGE);
    let reference = everything(&c, 1).unwrap();

    // Wiped while its gateway runs: the gateway notices the missing marker and replays.
    let n3 = c.node_mut(3);
    n3.influxd.kill();
    n3.influxd.wipe();
    n3.influxd.start_again();
    wait_rebuilt(&c, 3, &reference);
    c.wait_ready(&[3], CONVERGE);

    // Wiped while its gateway is stopped too.
    let n2 = c.node_mut(2);
    n2.gateway.kill();
    n2.influxd.kill();
    n2.influxd.wipe();
    n2.influxd.start_again();
    n2.gateway.start();
    wait_rebuilt(&c, 2, &reference);
    c.wait_ready(&[1, 2, 3], CONVERGE);
    let s = status(&c, 2);
    assert_eq!(s["applier"]["resumed_from"], 0, "{}", s["applier"]);
}

/// influxd 1.6 answers a write once the shard group is committed to `meta.db` (written and
/// fsync'd, then renamed), the shard's directories exist and its WAL entry is flushed and
/// fsync'd, so a SIGKILL right after the 204 loses nothing, even of the first write into a
/// new shard. The applier relies on it: its marker lives in another database and shard, and
/// once it is past a point, a restarted influxd is not given that point again. Each kill
/// here follows the first write into a new shard (a new database, or a new week of an
/// existing one, i.e. a new shard group): within milliseconds of the 204 (the marker is
/// still before the point, so the point is applied again after the restart) and once the
/// marker is past the point (then only influxd's own durability keeps it). Every replica
/// must hold the point.
#[test]
fn influxd_killed_right_after_the_first_write_into_a_new_shard_keeps_it() {
    const WEEK_NS: u64 = 7 * 86_400 * 1_000_000_000;
    let mut c = Cluster::start(3);
    c.create_database(1, "weeks");
    let mut kills = 0u64;
    for round in 0..6u64 {
        for marker_past in [false, true] {
            let new_db = format!("new_{round}_{marker_past}");
            c.create_database(1, &new_db);
            for db in [new_db.as_str(), "weeks"] {
                kills += 1;
                let ts = kills * WEEK_NS;
                // Right after a restart influxd may still be replayed to (503, safe to
                // retry) if the kill could have torn a write.
                let api = c.node(1).api();
                wait_until("the write acknowledged", CONVERGE, || {
                    match api.write(&format!("db={db}"), &format!("m,kill={kills} v=1i {ts}")) {
                        Ok(r) if r.status == 204 => Ok(()),
                        Ok(r) => Err(format!("{} {}", r.status, r.body)),
                        Err(e) => Err(e.to_string()),
                    }
                });
                if marker_past {
                    let applied = status(&c, 1)["applier"]["applied"].as_u64().unwrap();
                    wait_until("node 1's marker past the point", CONVERGE, || {
                        let s = status(&c, 1);
                        match s["applier"]["marker"].as_u64() {
                            Some(m) if m >= applied => Ok(()),
                            _ => Err(s["applier"].clone()),
                        }
                    });
                }
                c.node_mut(1).influxd.kill();
                c.node_mut(1).influxd.start_again();
                c.wait_ready(&[1], CONVERGE);
                let q = format!("SELECT v FROM m WHERE \"kill\" = '{kills}'");
                for id in 1..=3 {
                    wait_until(
                        &format!(
                            "point {kills} ({db}, marker past it: {marker_past}) on node {id}"
                        ),
                        Duration::from_secs(20),
                        || {
                            let v = c
                                .node(id)
                                .influx()
                                .try_query(db, &q)
                                .map_err(|e| e.to_string())?;
                            match v["results"][0]["series"][0]["values"].as_array() {
                                Some(rows) if rows.len() == 1 => Ok(()),
                                _ => Err(v.to_string()),
                            }
                        },
                    );
                }
            }
        }
    }
    c.wait_converged("weeks", "m", (kills / 2) as usize, CONVERGE);
}

/// influxd 1.6 keeps the WAL segment it reopened at start after snapshotting it, when nothing
/// was written to that shard since (influxdata/influxdb#14229); a `DELETE` then writes nothing
/// to the WAL, and its next start replays the deleted points. The applier replays the log from
/// the `DELETE` after that start.
#[test]
fn points_deleted_after_influxd_snapshots_a_reopened_wal_stay_deleted() {
    // Snapshot a shard's cache 2 s after its last write, not 10 minutes.
    const COLD: [(&str, &str); 1] = [("INFLUXDB_DATA_CACHE_SNAPSHOT_WRITE_COLD_DURATION", "2s")];
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    c.node(1)
        .api()
        .write_ok("db=db&precision=s", "m v=1 1\nm v=2 2\nm v=3 3");
    c.wait_converged("db", "m", 3, CONVERGE);
    let victim = 2;
    // Its marker past the write first: a resume from before it would write the points again,
    // and the snapshot after that write deletes the reopened segment (nothing to bring back).
    // Node 1 answered the write once it had applied it: its commit index covers it. (Node 2's
    // own applied index may still be short of it while its influxd already holds the points.)
    let write = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    wait_until("node 2's marker to cover the write", CONVERGE, || {
        let s = status(&c, victim);
        match s["applier"]["marker"].as_u64() {
            Some(m) if m >= write => Ok(()),
            _ => Err(s["applier"].clone()),
        }
    });
    // Killed with the points in its WAL, which it reopens at start; nothing is written to
    // that shard afterwards.
    c.node_mut(victim).influxd.restart_with_env(&COLD);
    c.wait_ready(&[victim], CONVERGE);
    wait_until("influxd to snapshot the reopened WAL", CONVERGE, || {
        let vars = c.node(victim).influx().get("/debug/vars").unwrap().json();
        let snapshots = vars
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|v| v["name"] == "tsm1_engine" && v["tags"]["database"] == "db")
            .filter_map(|v| v["values"]["cacheCompactions"].as_u64())
            .sum::<u64>();
        if snapshots > 0 {
            Ok(())
        } else {
            Err("no cache snapshot of db yet")
        }
    });
    let r = c
        .node(3)
        .api()
        .query(
            "db",
            "DELETE FROM m WHERE time >= 1500000000 AND time < 2500000000",
        )
        .unwrap();
    assert_eq!(r.status, 200, "DELETE: {}", r.body);
    c.wait_converged("db", "m", 2, CONVERGE);
    let floor = wait_until("a replay floor at the DELETE on node 2", CONVERGE, || {
        let s = status(&c, victim);
        s["applier"]["replay_floor"]
            .as_u64()
            .ok_or_else(|| s["applier"].clone())
    });
    assert!(floor > 1, "replay floor {floor}");
    // The start that replays the old segment, and one after it.
    for _ in 0..2 {
        c.node_mut(victim).influxd.restart();
        c.wait_ready(&[victim], CONVERGE);
        c.wait_converged("db", "m", 2, CONVERGE);
    }
}

/// A node catching up sends its large groups of writes as two requests at once
/// (`snapshotless/src/applier/lanes.rs`), and must still end up holding exactly what the nodes
/// that applied one entry at a time hold: a point overwritten at one time (its series spelled
/// with its tags in two orders) keeps its last value, and of two series that give one field
/// two types in a new shard, the first in the log sets the type everywhere.
#[test]
fn a_node_catching_up_in_lanes_holds_what_the_others_hold() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    // A follower is down: a leader going down with it would fail a write of the sequence.
    let leader = c.wait_for_leader(CONVERGE);
    let down = (1..=3).find(|&id| id != leader).unwrap();
    let up = (1..=3).find(|&id| id != leader && id != down).unwrap();
    c.node_mut(down).gateway.kill();
    let api = c.node(leader).api();
    // About 6.5 MB each: a group of its own (the applier's are at most 8 MiB), large enough
    // for lanes (6 MiB); `last` ends it.
    let bulk = |n: u64, last: &str| -> String {
        let mut body: String = (0..120_000u64)
            .map(|i| {
                let p = n * 120_000 + i;
                let host = p % 1_000;
                let ts = 1_000_000_000_000_000_000 + p / 1_000 * 1_000_000_000;
                format!(
                    "cpu,host=h{host},region=r{} v={p}i,u={}.5 {ts}\n",
                    host % 3,
                    p % 97
                )
            })
            .collect();
        body += last;
        body
    };
    let (old, new_shard) = (1_000_000_000u64, 1_500_000_000_000_000_000u64);
    // Every series appears in the first group, which goes whole and makes them known.
    api.write_ok(
        "db=db",
        &format!(
            "over,host=h1,region=x v=0 {old}\nover,region=x,host=h1 v=0 {old}\n\
             conflict,host=a g=1 {old}\nconflict,host=b g=1 {old}"
        ),
    );
    api.write_ok("db=db", &bulk(0, ""));
    // A group where a field gets two types in a new shard: it goes whole.
    api.write_ok(
        "db=db",
        &bulk(1, &format!("over,host=h1,region=x v=1 {old}")),
    );
    api.write_ok("db=db", &format!("conflict,host=a f=1i {new_shard}"));
    let r = api
        .write("db=db", &format!("conflict,host=b f=1.5 {}", new_shard + 1))
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("field type conflict"), "{}", r.body);
    // A group in lanes that writes one point three times, its tags in two orders.
    api.write_ok(
        "db=db",
        &bulk(2, &format!("over,region=x,host=h1 v=2 {old}")),
    );
    api.write_ok(
        "db=db",
        &format!("over,host=h1,region=x v=2.5 {old}\nover,region=x,host=h1 v=3 {old}"),
    );
    // Groups after it: a group goes in lanes only with as many entries waiting behind it.
    for n in 3..5 {
        api.write_ok("db=db", &bulk(n, ""));
    }

    let reference = wait_until("the leader to apply everything", CONVERGE, || {
        let d = digest(&c, leader).map_err(|e| e.to_string())?;
        if d.contains(",600000,") {
            Ok(d)
        } else {
            Err(d)
        }
    });
    assert!(
        reference.contains(r#""name":"over","tags":{"host":"h1","region":"x"},"values":[["1970-01-01T00:00:01Z",null,null,3]]"#),
        "the last write at one time wins: {reference}"
    );
    assert!(
        reference.contains(r#"["f","integer"]"#) && !reference.contains(r#"["f","float"]"#),
        "the first type in the log is the field's: {reference}"
    );
    wait_digest(&c, up, &reference);
    c.node_mut(down).gateway.start();
    wait_digest(&c, down, &reference);
    let applier = status(&c, down)["applier"].clone();
    assert!(
        applier["lane_groups"].as_u64() > Some(0),
        "node {down} caught up without lanes: {applier}"
    );
}

fn wait_digest(c: &Cluster, id: u64, reference: &str) {
    wait_until(
        &format!("node {id} to hold what the leader holds"),
        CONVERGE,
        || {
            let now = digest(c, id).map_err(|e| e.to_string())?;
            if now == reference {
                Ok(())
            } else {
                Err(now)
            }
        },
    );
}

/// What the lanes test compares: the bulk's counts and sums, the points written at one time
/// and into a field with two types, and the field types.
fn digest(c: &Cluster, id: u64) -> Result<String, HttpError> {
    let http = c.node(id).influx();
    let mut out = String::new();
    for q in [
        "SELECT count(v), sum(v), sum(u) FROM cpu",
        "SELECT count(v), sum(v), sum(u) FROM cpu GROUP BY region",
        "SELECT * FROM over, conflict GROUP BY *",
        "SHOW FIELD KEYS",
    ] {
        out += &http.try_query("db", q)?["results"][0].to_string();
    }
    Ok(out)
}
