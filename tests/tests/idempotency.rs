//! Idempotency keys with real processes: a write retried with the same `Idempotency-Key`,
//! through any node, after a leader was killed, after every gateway restarted or on a node
//! seeded from a peer, is applied once and answered with the first attempt's outcome; past
//! the window it is a new write; the same key with another body is refused. Every write here
//! has points without timestamps, which each attempt would otherwise stamp anew.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tests::cluster::Secured;
use tests::{wait_until, Cluster, Http, HttpError};

const CONVERGE: Duration = Duration::from_secs(60);

fn keyed(api: &Http, key: &str, body: &str) -> Result<tests::http::Response, HttpError> {
    api.write_bytes("db=db", &[("Idempotency-Key", key)], body.as_bytes())
}

fn keyed_ok(api: &Http, key: &str, body: &str) -> tests::http::Response {
    keyed(api, key, body).unwrap_or_else(|e| panic!("{e}"))
}

fn replayed(r: &tests::http::Response) -> bool {
    r.header("Idempotent-Replayed") == Some("true")
}

/// Writes a unique point through node `via` and waits until every node has it: everything
/// committed before it is applied everywhere, so counts read after it are final.
fn barrier(c: &Cluster, via: u64, n: usize) {
    c.node(via)
        .api()
        .write_ok("db=db", &format!("barrier v={n}i {n}"));
    c.wait_converged("db", "barrier", n, CONVERGE);
}

fn status(c: &Cluster, id: u64) -> serde_json::Value {
    c.node(id).api().get("/status").unwrap().json()
}

/// The rows of `measurement` on every node, which must agree.
fn rows_everywhere(c: &Cluster, measurement: &str) -> Vec<serde_json::Value> {
    let all = c.rows_everywhere("db", measurement);
    for (id, rows) in &all {
        assert_eq!(rows, &all[0].1, "node {id} differs from node {}", all[0].0);
    }
    all[0].1.clone()
}

#[test]
fn a_keyed_retry_through_another_node_is_applied_once_and_answered_alike() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    // Now, as the rejected write below: influxd checks field types within a shard.
    c.node(1).api().write_ok("db=db", "typed,t=x v=1");

    // Two points without timestamps: each attempt would stamp them with its node's clock.
    let body = "m,t=a v=1\nm,t=b v=2";
    let first = keyed_ok(&c.node(1).api(), "k-1", body);
    assert_eq!(first.status, 204, "{}", first.body);
    assert!(!replayed(&first));
    for via in [2, 3, 1] {
        let retry = keyed_ok(&c.node(via).api(), "k-1", body);
        assert_eq!(
            (retry.status, &retry.body),
            (first.status, &first.body),
            "retry through node {via}"
        );
        assert!(
            replayed(&retry),
            "retry through node {via}: {:?}",
            retry.headers
        );
    }
    // Quoted, as the IETF draft writes the header, it is the same key; and through the 2.x
    // endpoint it is the same write.
    let retry = keyed_ok(&c.node(2).api(), "\"k-1\"", body);
    assert!(replayed(&retry));
    let v2 = c
        .node(3)
        .api()
        .send(
            "POST",
            "/api/v2/write?bucket=db&org=o",
            &[("Idempotency-Key", "k-1")],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(v2.status, 204, "{}", v2.body);
    assert!(replayed(&v2));

    // A partial write (a bad line dropped by ingest) and an influxd rejection: the retry gets
    // the first attempt's answer, word for word.
    let partial = "p,t=a v=1\nnot line protocol";
    let rejected = "typed,t=y v=\"a string\"";
    for (key, body, status) in [("k-partial", partial, 400), ("k-rejected", rejected, 400)] {
        let first = keyed_ok(&c.node(3).api(), key, body);
        assert_eq!(first.status, status, "{key}: {}", first.body);
        let retry = keyed_ok(&c.node(1).api(), key, body);
        assert_eq!((retry.status, &retry.body), (first.status, &first.body));
        assert_eq!(
            retry.header("X-Influxdb-Error"),
            first.header("X-Influxdb-Error")
        );
        assert!(replayed(&retry), "{key}");
    }

    // The same key with another body, or another database: refused, nothing written.
    let r = keyed_ok(&c.node(2).api(), "k-1", "m,t=c v=3");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.error().contains("\"k-1\" was already used"), "{}", r.body);
    assert!(r.header("X-Influxdb-Error").is_some());
    let other_db = c
        .node(3)
        .api()
        .write_bytes(
            "db=db&rp=autogen",
            &[("Idempotency-Key", "k-1")],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(other_db.status, 422, "{}", other_db.body);

    // A malformed key is refused before anything is proposed.
    let r = keyed_ok(&c.node(1).api(), &"k".repeat(256), body);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("Idempotency-Key"), "{}", r.body);

    // Unkeyed writes are what they always were: each one applied, stamped anew.
    for via in [1, 2] {
        c.node(via).api().write_ok("db=db", "u,t=a v=1");
    }

    barrier(&c, 2, 1);
    assert_eq!(rows_everywhere(&c, "m").len(), 2);
    assert_eq!(rows_everywhere(&c, "p").len(), 1);
    assert_eq!(rows_everywhere(&c, "typed").len(), 1);
    assert_eq!(rows_everywhere(&c, "u").len(), 2);
}

#[test]
fn attempts_in_flight_at_once_are_applied_once_and_answered_alike() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    // Ten keys, each sent through all three nodes at the same moment.
    for round in 0..10 {
        let key = format!("k-{round}");
        let body = format!("m,round=r{round} v=1\nm,round=r{round},second=yes v=2");
        let answers: Vec<tests::http::Response> = std::thread::scope(|s| {
            let sent: Vec<_> = c
                .nodes
                .iter()
                .map(|n| {
                    let (api, key, body) = (n.api(), &key, &body);
                    s.spawn(move || keyed_ok(&api, key, body))
                })
                .collect();
            sent.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for a in &answers {
            assert_eq!(a.status, 204, "{key}: {}", a.body);
        }
        // One of them was the first to commit; the others were answered as its retries.
        assert_eq!(
            answers.iter().filter(|a| !replayed(a)).count(),
            1,
            "{key}: {:?}",
            answers.iter().map(|a| &a.headers).collect::<Vec<_>>()
        );
    }
    barrier(&c, 3, 1);
    assert_eq!(rows_everywhere(&c, "m").len(), 20);
}

#[test]
fn retries_after_the_leader_is_killed_are_applied_at_most_once() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    let leader = c.wait_for_leader(CONVERGE);
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();

    // Writers send keyed writes to the leader until it is killed: the last ones may or may
    // not have been committed, and their answers say so (500) or never come.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let api = c.node(leader).api();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut sent = BTreeMap::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("w{w}-{n}");
                    let answer = keyed(&api, &key, &format!("f,key={key} v=1"));
                    let gone = answer.is_err();
                    sent.insert(key, answer.ok().map(|r| (r.status, replayed(&r))));
                    if gone {
                        break;
                    }
                }
                sent
            })
        })
        .collect();
    wait_until("some keyed writes applied", CONVERGE, || {
        let n = c.node(survivors[0]).influx().rows("db", "f").len();
        if n >= 40 {
            Ok(())
        } else {
            Err(n)
        }
    });
    c.node_mut(leader).gateway.kill();
    stop.store(true, Ordering::Relaxed);
    let sent: BTreeMap<String, Option<(u16, bool)>> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    // Every write is retried through the survivors until its outcome is known.
    let mut unknown = 0;
    for (i, (key, first)) in sent.iter().enumerate() {
        let via = c.node(survivors[i % 2]).api();
        let body = format!("f,key={key} v=1");
        let retry = wait_until(
            &format!("a definite answer to {key}"),
            CONVERGE,
            || match keyed(&via, key, &body) {
                Ok(r) if r.status == 204 => Ok(r),
                Ok(r) => Err(format!("{}: {}", r.status, r.body)),
                Err(e) => Err(e.to_string()),
            },
        );
        match first {
            Some((204, _)) => assert!(replayed(&retry), "{key} was applied already"),
            _ => unknown += 1,
        }
    }
    eprintln!(
        "{} keyed writes, {unknown} with an unknown outcome",
        sent.len()
    );

    c.node_mut(leader).gateway.start();
    c.wait_ready(&[1, 2, 3], CONVERGE);
    barrier(&c, survivors[0], 1);
    let rows = rows_everywhere(&c, "f");
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        *per_key
            .entry(row[1].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let not_once: Vec<_> = per_key.iter().filter(|(_, &n)| n != 1).collect();
    assert!(not_once.is_empty(), "applied other than once: {not_once:?}");
    assert_eq!(per_key.len(), sent.len());
}

#[test]
fn keys_survive_a_restart_of_every_gateway() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    let body = "m,t=a v=1\nm,t=b v=2";
    let first = keyed_ok(&c.node(1).api(), "k-restart", body);
    assert_eq!(first.status, 204, "{}", first.body);
    // At once, before any marker may have been written after it: each node resumes before
    // the write and must find the key again as it replays.
    for id in 1..=3 {
        c.node_mut(id).gateway.kill();
    }
    for id in 1..=3 {
        c.node_mut(id).gateway.start();
    }
    c.wait_ready(&[1, 2, 3], CONVERGE);
    for via in [3, 2] {
        let retry = wait_until("a retry answered", CONVERGE, || {
            match keyed(&c.node(via).api(), "k-restart", body) {
                Ok(r) if r.status != 503 => Ok(r),
                Ok(r) => Err(r.body),
                Err(e) => Err(e.to_string()),
            }
        });
        assert_eq!((retry.status, &retry.body), (first.status, &first.body));
        assert!(replayed(&retry), "through node {via}");
    }
    // And once more, after a second restart that follows markers written past the write:
    // the table comes from the disk, not from replaying the write.
    barrier(&c, 1, 1);
    let commit = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    for id in 1..=3 {
        wait_until(
            &format!("node {id}'s marker past {commit}"),
            CONVERGE,
            || {
                let marker = status(&c, id)["applier"]["marker"].as_u64();
                if marker >= Some(commit) {
                    Ok(())
                } else {
                    Err(marker)
                }
            },
        );
    }
    for id in 1..=3 {
        c.node_mut(id).gateway.kill();
        c.node_mut(id).gateway.start();
    }
    c.wait_ready(&[1, 2, 3], CONVERGE);
    let retry = keyed_ok(&c.node(2).api(), "k-restart", body);
    assert!(replayed(&retry), "{}: {}", retry.status, retry.body);
    barrier(&c, 1, 2);
    assert_eq!(rows_everywhere(&c, "m").len(), 2);
}

#[test]
fn a_retry_after_the_window_is_a_new_write() {
    let c = Cluster::start_with(3, &["--idempotency-window", "3s"]);
    c.create_database(1, "db");
    let body = "m v=1";
    let first = keyed_ok(&c.node(1).api(), "k-window", body);
    assert_eq!(first.status, 204, "{}", first.body);
    assert!(replayed(&keyed_ok(&c.node(2).api(), "k-window", body)));
    std::thread::sleep(Duration::from_millis(3500));
    let late = keyed_ok(&c.node(3).api(), "k-window", body);
    assert_eq!(late.status, 204, "{}", late.body);
    assert!(!replayed(&late), "a retry past the window was not applied");
    // And the key's window starts again from that write.
    assert!(replayed(&keyed_ok(&c.node(1).api(), "k-window", body)));
    // Past the window another body is a new write too.
    std::thread::sleep(Duration::from_millis(3500));
    let other = keyed_ok(&c.node(2).api(), "k-window", "m v=2");
    assert_eq!(other.status, 204, "{}", other.body);
    barrier(&c, 1, 1);
    assert_eq!(rows_everywhere(&c, "m").len(), 3);
}

#[test]
fn a_node_seeded_after_trimming_knows_the_keys_of_its_source() {
    let flags = ["--log-retention", "0s"];
    let mut c = Cluster::start_with_tls(3, Secured::Peers, &flags);
    c.create_database(1, "db");
    let body = "m,t=a v=1\nm,t=b v=2";
    let first = keyed_ok(&c.node(1).api(), "k-seed", body);
    assert_eq!(first.status, 204, "{}", first.body);
    for i in 0..50 {
        c.node(i % 3 + 1)
            .api()
            .write_ok("db=db", &format!("filler v={i}i {i}"));
    }
    c.wait_converged("db", "filler", 50, CONVERGE);
    // The keyed write is no longer in any log: a new node can only learn of it with a seed.
    let commit = status(&c, 1)["raft"]["commit"].as_u64().unwrap();
    for id in 1..=3 {
        wait_until(&format!("node {id} trimmed"), CONVERGE, || {
            let s = status(&c, id);
            match s["log"]["first_index"].as_u64() {
                Some(first) if first > commit - 5 => Ok(()),
                _ => Err(s["log"].clone()),
            }
        });
    }

    c.start_joining_node_with(4, &flags);
    let r = c.add_member(1, 4);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("node 4 seeded and ready", CONVERGE, || {
        let s = c.node(4).api().get("/health").map_err(|e| e.to_string())?;
        if s.status != 200 {
            return Err(s.body);
        }
        let st = c.node(4).api().get("/status").unwrap().json();
        match st["applier"]["seeds_completed"].as_u64() {
            Some(n) if n >= 1 => Ok(()),
            _ => Err(st["applier"].to_string()),
        }
    });
    let retry = keyed_ok(&c.node(4).api(), "k-seed", body);
    assert_eq!((retry.status, &retry.body), (first.status, &first.body));
    assert!(replayed(&retry), "node 4 did not know the key");
    let conflict = keyed_ok(&c.node(4).api(), "k-seed", "m,t=c v=3");
    assert_eq!(conflict.status, 422, "{}", conflict.body);
    barrier(&c, 4, 1);
    assert_eq!(rows_everywhere(&c, "m").len(), 2);
}
