//! Failures of real processes: the leader SIGKILLed under load, a node left without a quorum.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::{wait_until, Cluster};

const CONVERGE: Duration = Duration::from_secs(30);
/// The gateways run with a 10 s write timeout; an answer may take that plus a little.
const LONGEST_ANSWER: Duration = Duration::from_secs(13);

#[test]
fn leader_sigkilled_under_load_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    let old_leader = c.wait_for_leader(Duration::from_secs(10));
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != old_leader).collect();

    // Writers on every node, each point unique; every answer is recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for n in &c.nodes {
        let api = n.api();
        let id = n.id;
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let line = format!("load,writer=w{id} seq={seq}i {}", id * 1_000_000_000 + seq);
                let start = Instant::now();
                let r = api.write("db=db", &line);
                let took = start.elapsed();
                assert!(
                    took < LONGEST_ANSWER,
                    "writer {id}: a write took {took:?}, past the write timeout"
                );
                match r {
                    Ok(r) if r.status == 204 => acked.push(id * 1_000_000_000 + seq),
                    // 503: nothing was proposed; 500: outcome unknown. Both are allowed
                    // while the leader changes; anything else is a bug.
                    Ok(r) if r.status == 503 || r.status == 500 => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(r) => panic!("writer {id}: unexpected answer {}: {}", r.status, r.body),
                    // The killed node's gateway refuses connections.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            acked
        }));
    }

    wait_until("some writes acknowledged", Duration::from_secs(10), || {
        let n = c.node(old_leader).influx().rows("db", "load").len();
        if n >= 30 {
            Ok(())
        } else {
            Err(n)
        }
    });
    let killed_at = Instant::now();
    c.node_mut(old_leader).gateway.kill();

    let new_leader = wait_until(
        "a new leader among the survivors",
        Duration::from_secs(10),
        || {
            survivors
                .iter()
                .filter_map(|&id| c.health(id))
                .find_map(|h| h["leader"].as_u64().filter(|&l| l != old_leader))
                .ok_or("none yet")
        },
    );
    let election = killed_at.elapsed();
    assert!(
        election < Duration::from_secs(6),
        "electing node {new_leader} took {election:?}"
    );

    // Writes go on through the survivors.
    wait_until("writes succeeding again", Duration::from_secs(10), || {
        let r = c
            .node(survivors[0])
            .api()
            .write("db=db", "probe v=1")
            .unwrap();
        if r.status == 204 {
            Ok(())
        } else {
            Err(r.body)
        }
    });

    // The killed node comes back and catches up while the writers keep going.
    c.node_mut(old_leader).gateway.start();
    c.wait_ready(&[old_leader], CONVERGE);
    stop.store(true, Ordering::Relaxed);
    let acked: BTreeSet<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer panicked"))
        .collect();
    assert!(
        acked.len() >= 30,
        "only {} writes acknowledged",
        acked.len()
    );

    c.wait_ready(&[1, 2, 3], CONVERGE);
    let rows = c.node(survivors[0]).influx().rows("db", "load");
    c.wait_converged("db", "load", rows.len(), CONVERGE);
    let present: BTreeSet<u64> = c
        .node(old_leader)
        .influx()
        .query_ok("db", "SELECT * FROM load")["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let writer: u64 = row[2].as_str().unwrap()[1..].parse().unwrap();
            writer * 1_000_000_000 + row[1].as_u64().unwrap()
        })
        .collect();
    eprintln!(
        "{} writes acknowledged, {} points present, new leader {new_leader} after {election:?}",
        acked.len(),
        present.len()
    );
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

#[test]
fn a_node_cut_off_from_the_quorum_answers_503_fast() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    c.node_mut(2).gateway.kill();
    c.node_mut(3).gateway.kill();
    let api = c.node(1).api();

    // Within about an election timeout node 1 knows it has no quorum, and from then on it
    // answers at once instead of holding the client for the write timeout.
    let cut_off = Instant::now();
    wait_until(
        "node 1 to refuse writes with 503",
        Duration::from_secs(5),
        || {
            let r = api.write("db=db", "m v=1").unwrap();
            if r.status == 503 {
                Ok(r)
            } else {
                Err((r.status, r.body))
            }
        },
    );
    assert!(
        cut_off.elapsed() < Duration::from_secs(5),
        "node 1 took {:?} to notice",
        cut_off.elapsed()
    );
    let start = Instant::now();
    let r = api.write("db=db", "m v=1").unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.error().starts_with("no quorum"), "{}", r.body);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "a 503 took {:?}",
        start.elapsed()
    );
    let h = api.get("/health").unwrap();
    assert_eq!(h.status, 503, "{}", h.body);
    // Nothing was written anywhere.
    assert!(c.node(1).influx().rows("db", "m").is_empty());
}
