//! Packed entries with real processes: large writes are replicated compressed once every
//! member says it reads them; a member that says it does not (as builds from before packing
//! do, and as `pack_entries = false` makes a node say) stops the packing, and is never sent a
//! packed entry: it stays behind instead, until it says it reads them, then catches up.

use std::time::Duration;

use tests::metrics::{metric, scrape};
use tests::{wait_until, Cluster};

const CONVERGE: Duration = Duration::from_secs(60);
const HELD_BACK: &str = "gateway_peer_messages_held_back_total";

fn status(c: &Cluster, id: u64) -> serde_json::Value {
    c.node(id).api().get("/status").unwrap().json()
}

fn wait_packing(c: &Cluster, id: u64, packing: bool) {
    wait_until(
        &format!("node {id}'s /status to say packing {packing}"),
        CONVERGE,
        || {
            let s = status(c, id);
            if s["log"]["packing"] == packing {
                Ok(())
            } else {
                Err(s["log"].clone())
            }
        },
    );
}

/// 5,000 points of `m` with values from `from`: about 300 KB of line protocol, far over what
/// is packed.
fn batch(m: &str, from: usize) -> String {
    (from..from + 5_000)
        .map(|i| {
            format!(
                "{m},host=h{},cpu=cpu{} idle={i}.5,user=3i {i}\n",
                i % 50,
                i % 8
            )
        })
        .collect()
}

#[test]
fn large_writes_are_packed_only_for_members_that_read_them() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    let plain = c.dir.path().join("plain.toml");
    std::fs::write(&plain, "pack_entries = false\n").unwrap();

    // Every member reads packed entries: a write through any node is packed, and every log
    // that took one is fenced against older builds.
    wait_packing(&c, 1, true);
    wait_packing(&c, 2, true);
    c.node(2).api().write_ok("db=db", &batch("a", 0));
    c.wait_converged("db", "a", 5_000, CONVERGE);
    for id in 1..=3 {
        let s = status(&c, id);
        assert_eq!(s["log"]["fenced"], true, "node {id}: {}", s["log"]);
    }

    // Node 3 says it does not read them: nobody packs, and it takes every write.
    c.node_mut(3).gateway.kill();
    c.node_mut(3).gateway.set_config_file(&plain);
    c.node_mut(3).gateway.start();
    c.wait_ready(&[3], CONVERGE);
    wait_packing(&c, 1, false);
    wait_packing(&c, 2, false);
    assert_eq!(status(&c, 3)["log"]["packing"], false);
    c.node(1).api().write_ok("db=db", &batch("b", 0));
    c.wait_converged("db", "b", 5_000, CONVERGE);

    // Back to reading them; then down while a packed write commits, and back as a node that
    // says it does not read them: the leader holds the packed entry back, and node 3 stays
    // behind rather than be sent what it said it cannot read.
    c.node_mut(3).gateway.kill();
    let none = c.dir.path().join("none.toml");
    std::fs::write(&none, "").unwrap();
    c.node_mut(3).gateway.set_config_file(&none);
    c.node_mut(3).gateway.start();
    c.wait_ready(&[3], CONVERGE);
    wait_packing(&c, 1, true);
    wait_packing(&c, 2, true);
    // The restarted node packs too: it hears from the follower as well as from the leader
    // (a follower has no message for another; its lanes redial and say hello regardless).
    wait_packing(&c, 3, true);
    c.node_mut(3).gateway.kill();
    // Node 3 is down, and counts by what it said last.
    assert_eq!(status(&c, 1)["log"]["packing"], true);
    c.node(1).api().write_ok("db=db", &batch("c", 0));
    wait_until("the write on nodes 1 and 2", CONVERGE, || {
        let n: Vec<usize> = [1, 2]
            .map(|id| c.node(id).influx().rows("db", "c").len())
            .to_vec();
        if n == [5_000, 5_000] {
            Ok(())
        } else {
            Err(n)
        }
    });
    c.node_mut(3).gateway.set_config_file(&plain);
    c.node_mut(3).gateway.start();
    let leader = c.wait_for_leader(CONVERGE);
    assert_ne!(leader, 3);
    let before = metric(&scrape(c.node(leader)), HELD_BACK);
    wait_until(
        "the leader to hold the packed entry back from node 3, again and again",
        CONVERGE,
        || {
            let held = metric(&scrape(c.node(leader)), HELD_BACK);
            if held >= before + 3.0 {
                Ok(())
            } else {
                Err(held)
            }
        },
    );
    assert!(
        c.node(3).influx().rows("db", "c").is_empty(),
        "node 3 applied a write it was never to be sent"
    );
    assert!(
        c.node(leader)
            .gateway
            .log()
            .contains("holding back the log from this peer"),
        "the leader did not say why node 3 stays behind"
    );
    wait_packing(&c, leader, false);

    // Reading them again, node 3 catches up.
    c.node_mut(3).gateway.kill();
    c.node_mut(3).gateway.set_config_file(&none);
    c.node_mut(3).gateway.start();
    c.wait_converged("db", "c", 5_000, CONVERGE);
    c.wait_converged("db", "a", 5_000, CONVERGE);
    c.wait_converged("db", "b", 5_000, CONVERGE);
}
