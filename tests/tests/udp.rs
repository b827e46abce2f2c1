//! The UDP line protocol listener against real gateways and influxd: datagrams sent to any
//! node reach every replica through the log, a malformed datagram is dropped whole and counted
//! and changes nothing, batches go by size and by timeout, and datagrams a node cannot
//! replicate (no quorum) are counted as dropped. The Python client's UDP mode is checked in
//! clients.rs.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use tests::cluster::{Node, UDP_PORT};
use tests::metrics::{metric, scrape};
use tests::{wait_until, Cluster};

const DB: &str = "udp";
const CONVERGE: Duration = Duration::from_secs(30);
const BASE_NS: u64 = 1_700_000_000_000_000_000;

fn send(node: &Node, datagram: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(datagram.as_bytes(), format!("{}:{UDP_PORT}", node.ip))
        .unwrap();
}

/// A cluster of `n` whose nodes listen for UDP on their own address, with `extra` flags.
fn start(n: u64, extra: &[&str]) -> Cluster {
    let bind = format!("{{ip}}:{UDP_PORT}");
    let mut flags = vec!["--udp-bind", &bind, "--udp-database", DB];
    flags.extend_from_slice(extra);
    Cluster::start_with(n, &flags)
}

/// `name{labels}` of the node, once it reaches `want`.
fn wait_metric(node: &Node, name: &str, want: f64) {
    wait_until(
        &format!("{name} = {want} on node {}", node.id),
        CONVERGE,
        || {
            let v = metric(&scrape(node), name);
            if v == want {
                Ok(())
            } else {
                Err(v)
            }
        },
    );
}

/// Lines `m,via=ID,i=I v=Ii <time>` for `i` in `range`, one datagram.
fn lines(via: u64, range: std::ops::Range<u64>) -> String {
    range
        .map(|i| format!("m,via={via},i={i} v={i}i {}\n", BASE_NS + i))
        .collect()
}

#[test]
fn udp_points_reach_every_replica_and_a_malformed_datagram_is_dropped_whole() {
    let c = start(3, &["--udp-batch-timeout", "200ms"]);
    // Three datagrams of 10 points to each node; the database is created by the listener.
    for n in &c.nodes {
        for d in 0..3 {
            send(n, &lines(n.id, d * 10..d * 10 + 10));
        }
    }
    c.wait_converged(DB, "m", 90, CONVERGE);
    for n in &c.nodes {
        let text = scrape(n);
        assert_eq!(metric(&text, "gateway_udp_datagrams_total"), 3.0);
        assert_eq!(metric(&text, "gateway_udp_points_received_total"), 30.0);
        wait_metric(n, "gateway_udp_points_written_total", 30.0);
        assert_eq!(
            metric(&text, "gateway_udp_dropped_total{reason=\"malformed\"}"),
            0.0
        );
        assert!(metric(&text, "gateway_udp_receive_buffer_bytes") > 0.0);
    }

    // One line that does not parse: the whole datagram goes, the good lines with it (as
    // influxd's UDP service does), and nothing is proposed.
    let last_index = |n: &Node| metric(&scrape(n), "gateway_raft_last_index");
    let before: Vec<f64> = c.nodes.iter().map(last_index).collect();
    let node = c.node(2);
    send(node, &format!("{}m,via=2 v=\n", lines(2, 100..105)));
    wait_metric(node, "gateway_udp_dropped_total{reason=\"malformed\"}", 1.0);
    // Ten batch timeouts: a batch, had there been one, would have been proposed.
    std::thread::sleep(Duration::from_secs(2));
    let text = scrape(node);
    assert_eq!(metric(&text, "gateway_udp_datagrams_total"), 4.0);
    assert_eq!(metric(&text, "gateway_udp_points_received_total"), 30.0);
    assert_eq!(metric(&text, "gateway_udp_points_written_total"), 30.0);
    let after: Vec<f64> = c.nodes.iter().map(last_index).collect();
    assert_eq!(before, after, "the log grew for a malformed datagram");
    for (id, rows) in c.rows_everywhere(DB, "m") {
        assert_eq!(rows.len(), 90, "node {id}");
    }

    // No quorum: node 3 alone knows no leader, and drops what it gets, counting it.
    let leader = c.wait_for_leader(CONVERGE);
    let survivor = if leader == 3 { 1 } else { 3 };
    let mut c = c;
    for id in [1, 2, 3].into_iter().filter(|&id| id != survivor) {
        c.node_mut(id).gateway.kill();
    }
    let node = c.node(survivor);
    wait_until("the survivor knows no leader", CONVERGE, || {
        match node.api().get("/health") {
            Ok(r) if r.status == 503 && r.body.contains("no quorum") => Ok(()),
            Ok(r) => Err(r.body),
            Err(e) => Err(e.to_string()),
        }
    });
    send(node, &lines(survivor, 200..210));
    wait_metric(node, "gateway_udp_dropped_total{reason=\"no_leader\"}", 1.0);
    assert_eq!(
        metric(&scrape(node), "gateway_udp_points_written_total"),
        30.0
    );
    assert_eq!(node.influx().rows(DB, "m").len(), 90);
}

#[test]
fn batches_go_when_full_and_when_their_time_is_up() {
    let timeout = Duration::from_secs(4);
    let c = start(1, &["--udp-batch-size", "5", "--udp-batch-timeout", "4s"]);
    let node = c.node(1);
    // Five points, in datagrams of one and of two: the fifth fills the batch.
    for (a, b) in [(0, 1), (1, 3), (3, 4), (4, 5)] {
        send(node, &lines(1, a..b));
    }
    c.wait_converged(DB, "m", 5, CONVERGE);
    let text = scrape(node);
    assert_eq!(
        metric(&text, "gateway_udp_batches_total{flush=\"size\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "gateway_udp_batches_total{flush=\"timeout\"}"),
        0.0
    );

    // Three points: the batch is not full, and goes once its first point is 4 s old.
    let sent = Instant::now();
    send(node, &lines(1, 10..13));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        node.influx().rows(DB, "m").len(),
        5,
        "proposed before its time"
    );
    c.wait_converged(DB, "m", 8, CONVERGE);
    assert!(sent.elapsed() >= timeout, "{:?}", sent.elapsed());
    let text = scrape(node);
    assert_eq!(
        metric(&text, "gateway_udp_batches_total{flush=\"timeout\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "gateway_udp_batches_total{flush=\"size\"}"),
        1.0
    );
    assert_eq!(metric(&text, "gateway_udp_points_written_total"), 8.0);
}

/// While the gateway is paused, datagrams overflow its (small) receive buffer and the kernel
/// drops them; the kernel's count reaches /metrics with the next datagram read, so that every
/// datagram sent is either received or counted as dropped.
#[test]
fn datagrams_the_kernel_drops_for_a_full_buffer_are_counted() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let c = start(1, &["--udp-read-buffer", "4KiB"]);
    let node = c.node(1);
    let pid = Pid::from_raw(node.gateway.pid().expect("running") as i32);
    let padding = "x".repeat(900);
    let datagram = |i: u64| format!("big,i={i} s=\"{padding}\" {}\n", BASE_NS + i);
    const SENT: u64 = 200;
    kill(pid, Signal::SIGSTOP).unwrap();
    for i in 0..SENT {
        send(node, &datagram(i));
    }
    kill(pid, Signal::SIGCONT).unwrap();
    // What the buffer held is read first; the next datagram carries the kernel's count.
    wait_until("the buffered datagrams read", CONVERGE, || {
        let a = metric(&scrape(node), "gateway_udp_datagrams_total");
        std::thread::sleep(Duration::from_millis(300));
        let b = metric(&scrape(node), "gateway_udp_datagrams_total");
        if a == b && a > 0.0 {
            Ok(())
        } else {
            Err(b)
        }
    });
    send(node, &datagram(SENT));
    let dropped = "gateway_udp_dropped_total{reason=\"receive_buffer_full\"}";
    wait_until("every datagram received or counted", CONVERGE, || {
        let text = scrape(node);
        let (received, lost) = (
            metric(&text, "gateway_udp_datagrams_total"),
            metric(&text, dropped),
        );
        if received + lost == (SENT + 1) as f64 {
            Ok((received, lost))
        } else {
            Err((received, lost))
        }
    });
    let text = scrape(node);
    let received = metric(&text, "gateway_udp_datagrams_total") as usize;
    assert!(metric(&text, dropped) > 0.0, "a 4 KiB buffer held them all");
    c.wait_converged(DB, "big", received, CONVERGE);
}
