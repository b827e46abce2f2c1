//! A partition with real packet loss: node 3 is cut off from its peers by iptables rules on
//! the loopback addresses (root only; `scripts/deps` installs iptables). While cut off it
//! refuses writes with 503; once healed it must take writes again within 10 s, however long
//! the partition lasted. (It used to wait for the kernel's next TCP retransmission on the
//! stalled peer connections, 20 s and more after a 30 s partition.)

use std::time::{Duration, Instant};

use tests::{wait_until, Cluster, Http, Partition};

const PARTITION: Duration = Duration::from_secs(30);
const RECOVERY_TARGET: Duration = Duration::from_secs(10);

/// Waits until a write of `lines` to db through `api` is answered with `status`.
fn answered(what: &str, timeout: Duration, api: &Http, lines: &str, status: u16) {
    wait_until(what, timeout, || {
        let r = api.write("db=db", lines).unwrap();
        if r.status == status {
            Ok(())
        } else {
            Err((r.status, r.body))
        }
    })
}

#[test]
fn a_healed_node_takes_writes_again_within_seconds() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    let island = c.node(3);
    let r = island.api().write("db=db", "m v=0i 0").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);

    let mut partition = Partition::cut(&island.ip, &[c.node(1).ip.clone(), c.node(2).ip.clone()]);
    let started = Instant::now();
    let island_api = island.api();
    let ten = Duration::from_secs(10);
    answered(
        "node 3 to refuse writes while cut off",
        ten,
        &island_api,
        "m v=1i 1",
        503,
    );
    // The majority side goes on.
    answered(
        "writes through the majority",
        ten,
        &c.node(1).api(),
        "m v=2i 2",
        204,
    );
    // Hold the fault: long enough for TCP's retransmission backoff to grow past the target.
    std::thread::sleep(PARTITION.saturating_sub(started.elapsed()));

    partition.heal();
    let healed = Instant::now();
    let after_heal = "node 3 to take writes after the heal";
    answered(after_heal, RECOVERY_TARGET, &island_api, "m v=3i 3", 204);
    eprintln!(
        "node 3 took writes again {:?} after the heal",
        healed.elapsed()
    );
    // Every acknowledged point everywhere (a write tried while node 3 was being cut off may
    // have an unknown outcome, so it may or may not be there, but the same everywhere).
    let acknowledged = [
        "1970-01-01T00:00:00Z",
        "1970-01-01T00:00:00.000000002Z",
        "1970-01-01T00:00:00.000000003Z",
    ];
    wait_until(
        "every replica identical, with every acknowledged point",
        Duration::from_secs(30),
        || {
            let all = c.rows_everywhere("db", "m");
            let same = all.iter().all(|(_, rows)| *rows == all[0].1);
            let times: Vec<&str> = all[0].1.iter().filter_map(|r| r[0].as_str()).collect();
            if same && acknowledged.iter().all(|t| times.contains(t)) {
                Ok(())
            } else {
                Err(format!("{all:?}"))
            }
        },
    );
}
