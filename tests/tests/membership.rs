//! Membership through Raft configuration changes: a fourth node joins and replays the whole
//! log from index 1; a node is removed and the cluster keeps working.

use std::time::Duration;

use tests::{wait_until, Cluster};

const CONVERGE: Duration = Duration::from_secs(60);

#[test]
fn a_fourth_node_joins_and_converges_then_a_node_is_removed() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    for i in 0..100 {
        c.node(i % 3 + 1)
            .api()
            .write_ok("db=db", &format!("m v={i}i {i}"));
    }

    c.start_joining_node(4);
    let r = c.add_member(2, 4);
    assert_eq!(r.status, 200, "{}", r.body);

    // It replays the log from index 1 (the database and every point) and becomes a voter.
    wait_until("node 4 to become a voter", CONVERGE, || {
        let m = c.node(1).api().get("/admin/members").unwrap().json();
        let voter = m["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == 4 && x["kind"] == "voter");
        if voter {
            Ok(())
        } else {
            Err(m)
        }
    });
    c.wait_ready(&[4], CONVERGE);
    c.wait_converged("db", "m", 100, CONVERGE);
    let r = c.node(4).api().write("db=db", "m v=100i 100").unwrap();
    assert_eq!(r.status, 204, "write through the new node: {}", r.body);
    c.wait_converged("db", "m", 101, CONVERGE);

    // Remove node 2 and stop it: the three others keep a quorum and keep working.
    let r = c
        .node(1)
        .api()
        .send("DELETE", "/admin/members?id=2", &[], &[])
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    c.node_mut(2).gateway.kill();
    c.node_mut(2).influxd.kill();
    c.nodes.retain(|n| n.id != 2);
    wait_until("a leader among the remaining nodes", CONVERGE, || {
        let leaders: Vec<Option<u64>> = [1, 3, 4]
            .iter()
            .map(|&id| c.health(id).and_then(|h| h["leader"].as_u64()))
            .collect();
        match leaders[0] {
            Some(l) if l != 2 && leaders.iter().all(|x| *x == Some(l)) => Ok(()),
            _ => Err(leaders),
        }
    });
    for i in 0..10 {
        let via = [1, 3, 4][i % 3];
        let r = c
            .node(via)
            .api()
            .write("db=db", &format!("m v={}i {}", 200 + i, 200 + i))
            .unwrap();
        assert_eq!(
            r.status, 204,
            "write via {via} after removing node 2: {}",
            r.body
        );
    }
    c.wait_converged("db", "m", 111, CONVERGE);
    let m = c.node(3).api().get("/admin/members").unwrap().json();
    let ids: Vec<u64> = m["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 3, 4], "{m}");
}

#[test]
fn a_dead_node_is_replaced_by_a_fresh_one() {
    let mut c = Cluster::start(3);
    c.create_database(1, "db");
    for i in 0..50 {
        c.node(1).api().write_ok("db=db", &format!("m v={i}i {i}"));
    }
    // The leader dies for good (gateway and influxd gone): the hardest case, since the removal
    // is asked while the survivors still follow the dead leader and must elect a new one.
    let dead = c.wait_for_leader(CONVERGE);
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != dead).collect();
    let (via, other) = (survivors[0], survivors[1]);
    c.node_mut(dead).gateway.kill();
    c.node_mut(dead).influxd.kill();
    c.nodes.retain(|n| n.id != dead);
    let admin = c.node(via).api();
    let r = admin
        .send("DELETE", &format!("/admin/members?id={dead}"), &[], &[])
        .unwrap();
    assert_eq!(r.status, 200, "removing the dead leader: {}", r.body);
    let ids: Vec<u64> = r.json()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, survivors, "{}", r.body);

    // A fresh node (empty log, empty influxd) takes its place and replays everything.
    c.start_joining_node(5);
    let r = c.add_member(via, 5);
    assert_eq!(r.status, 200, "adding the replacement: {}", r.body);
    c.wait_ready(&[5], CONVERGE);
    c.wait_converged("db", "m", 50, CONVERGE);
    wait_until("node 5 to become a voter", CONVERGE, || {
        let m = admin.get("/admin/members").unwrap().json();
        let kinds: Vec<(u64, String)> = m["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["id"].as_u64().unwrap(),
                    x["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if kinds
            == [
                (via, "voter".into()),
                (other, "voter".into()),
                (5, "voter".into()),
            ]
        {
            Ok(())
        } else {
            Err(kinds)
        }
    });
    // The new member carries its share: with another node down, the rest are a quorum.
    c.node_mut(other).gateway.kill();
    c.nodes.retain(|n| n.id != other);
    wait_until("writes with two of three nodes only", CONVERGE, || {
        let r = c.node(5).api().write("db=db", "m v=100i 100").unwrap();
        if r.status == 204 {
            Ok(())
        } else {
            Err(r.body)
        }
    });
    c.wait_converged("db", "m", 51, CONVERGE);
}

/// Every node tells its peers how far its influxd holds the log (its durable marker), so the
/// leader knows it for every member: the bound under which the log could be trimmed.
#[test]
fn the_leader_knows_how_far_each_replica_applied() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    for i in 0..30 {
        c.node(i % 3 + 1)
            .api()
            .write_ok("db=db", &format!("m v={i}i {i}"));
    }
    let leader = c.wait_for_leader(CONVERGE);
    wait_until(
        "every member's marker at the leader's commit index",
        CONVERGE,
        || {
            let raft = c.node(leader).api().get("/status").unwrap().json()["raft"].clone();
            let commit = raft["commit"].as_u64().unwrap_or(0);
            let applied: Vec<Option<u64>> = raft["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["applied"].as_u64())
                .collect();
            if applied.len() == 3 && applied.iter().all(|a| *a == Some(commit)) {
                Ok(())
            } else {
                Err((commit, applied))
            }
        },
    );
}
