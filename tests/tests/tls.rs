//! TLS: HTTPS on the API, and peer links that let in only nodes whose certificate the cluster
//! CA signed. A connection that cannot prove it belongs to the cluster (a forged hello over
//! plain TCP, another CA's certificate, no certificate, garbage) is dropped before any Raft
//! message is read from it, counted, and writes nothing. Certificates reload on SIGHUP
//! without dropping connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tests::cluster::{Secured, API_PORT, PEER_PORT};
use tests::{metrics, wait_until, Cluster};

const CONVERGE: Duration = Duration::from_secs(30);

#[test]
fn https_on_the_api_and_mutual_tls_between_peers_replicate_writes() {
    let c = Cluster::start_with_tls(3, Secured::PeersAndApi, &[]);
    c.create_database(1, "db");
    c.node(2).api().write_ok("db=db", "m v=1 1\nm v=2 2");
    c.node(3).api().write_ok("db=db", "m v=3 3");
    c.wait_converged("db", "m", 3, CONVERGE);

    // Plain HTTP to the HTTPS port gets a readable refusal, as from influxd, not a hang.
    let addr = format!("{}:{API_PORT}", c.node(1).ip);
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
    assert!(
        answer.contains("Client sent an HTTP request to an HTTPS server"),
        "{answer}"
    );

    // A client that trusts another CA refuses the node.
    let other = harness::tls::Ca::new(c.dir.path(), "other-ca").unwrap();
    let r = harness::Http::https(&addr, &other.cert)
        .unwrap()
        .get("/ping");
    assert!(r.is_err(), "a certificate of another CA was trusted: {r:?}");
}

#[test]
fn the_peer_port_refuses_whoever_cannot_prove_membership_and_nothing_is_written() {
    let c = Cluster::start_with_tls(3, Secured::Peers, &[]);
    c.create_database(1, "db");
    c.node(1).api().write_ok("db=db", "m v=1 1");
    c.wait_converged("db", "m", 1, CONVERGE);
    let before = state(&c);
    let target = format!("{}:{PEER_PORT}", c.node(1).ip);
    let tls = c.tls.as_ref().unwrap();
    let dir = c.dir.path();

    // 1. Plain TCP with a well-formed hello, as a node of the cluster would send, with cluster
    //    id 0 (what a joining node sends), then with some other id, each followed by bytes.
    for cluster in [0, 0x5eed] {
        let mut s = plain_connect(&target);
        let mut bytes = frame(&hello(1, &c.peer_addr(1), cluster));
        bytes.extend(frame(&[0x0a, 0x00]));
        let _ = s.write_all(&bytes);
        assert_dropped(
            &mut s,
            &format!("plain TCP with a hello of cluster {cluster:#x}"),
        );
    }
    // 2. Garbage.
    let mut s = plain_connect(&target);
    let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\x00\x00\x10garbage-garbage!");
    assert_dropped(&mut s, "garbage");
    // 3. TLS with a certificate another CA signed, for the very same address.
    let forger = harness::tls::Ca::new(dir, "forger-ca").unwrap();
    let forged = forger
        .issue(dir, "forged", &[c.node(2).ip.parse().unwrap()])
        .unwrap();
    let client = harness::tls::client_config(&tls.ca.cert, Some(&forged)).unwrap();
    let mut s = tls_connect(&target, &c.node(1).ip, client);
    let _ = s.write_all(&frame(&hello(2, &c.peer_addr(2), 0)));
    let _ = s.flush();
    assert_dropped(&mut s, "TLS with another CA's certificate");
    // 4. TLS with no client certificate at all.
    let no_certificate = harness::tls::client_config(&tls.ca.cert, None).unwrap();
    let mut s = tls_connect(&target, &c.node(1).ip, no_certificate);
    let _ = s.write_all(&frame(&hello(2, &c.peer_addr(2), 0)));
    let _ = s.flush();
    assert_dropped(&mut s, "TLS without a client certificate");

    // Every attempt was counted, as a failed handshake (nothing got as far as a hello).
    let rejected = wait_until("the refusals counted", CONVERGE, || {
        let n = rejected(&c, 1, "tls");
        if n >= 5 {
            Ok(n)
        } else {
            Err(n)
        }
    });
    assert!(rejected >= 5, "{rejected}");
    assert_eq!(
        state(&c),
        before,
        "a refused connection changed the log or a replica"
    );

    // The cluster itself is fine: its own nodes still get through.
    c.node(3).api().write_ok("db=db", "m v=2 2");
    c.wait_converged("db", "m", 2, CONVERGE);
}

#[test]
fn certificates_reload_on_sighup_without_dropping_connections() {
    let c = Cluster::start_with_tls(3, Secured::PeersAndApi, &[]);
    let tls = c.tls.as_ref().unwrap();
    let node = c.node(1);
    let addr = format!("{}:{API_PORT}", node.ip);
    let client = harness::tls::client_config(&tls.ca.cert, None).unwrap();
    let mut kept = tls_connect(&addr, &node.ip, client.clone());
    assert_eq!(ping(&mut kept), 204);
    let first = served_certificate(&kept);

    // The same files, new contents (a new certificate for the node), then SIGHUP.
    let dir = c.dir.path();
    tls.ca
        .issue(dir, "node1", &[node.ip.parse().unwrap()])
        .unwrap();
    hup(&c, 1);
    let rotated = wait_until("the new certificate served", CONVERGE, || {
        let s = tls_connect(&addr, &node.ip, client.clone());
        let cert = served_certificate(&s);
        if cert != first {
            Ok(cert)
        } else {
            Err("still the first certificate")
        }
    });
    // The connection opened before the reload still works, on its old session.
    assert_eq!(ping(&mut kept), 204);
    assert!(node.gateway.log().contains("reloaded the API certificate"));

    // A reload that fails (a key that is no key) keeps the certificate in use.
    std::fs::write(dir.join("node1-key.pem"), "not a key").unwrap();
    hup(&c, 1);
    wait_until("the failed reload logged", CONVERGE, || {
        if node.gateway.log().contains("the previous one stays in use") {
            Ok(())
        } else {
            Err("not yet")
        }
    });
    let s = tls_connect(&addr, &node.ip, client.clone());
    assert_eq!(served_certificate(&s), rotated);

    // Peer links reloaded too, and still carry writes.
    c.create_database(2, "db");
    c.node(1).api().write_ok("db=db", "m v=1 1");
    c.wait_converged("db", "m", 1, CONVERGE);
}

/// The last log index on every node, and what every influxd holds.
fn state(c: &Cluster) -> Vec<(u64, u64, String, usize)> {
    c.nodes
        .iter()
        .map(|n| {
            let status = n.api().get("/status").unwrap().json();
            let databases = n.influx().query_ok("", "SHOW DATABASES").to_string();
            let rows = n.influx().rows("db", "m").len();
            (
                n.id,
                status["raft"]["last_index"].as_u64().unwrap(),
                databases,
                rows,
            )
        })
        .collect()
}

fn rejected(c: &Cluster, id: u64, reason: &str) -> u64 {
    let name = format!("gateway_peer_connections_rejected_total{{reason=\"{reason}\"}}");
    metrics::metric(&metrics::scrape(c.node(id)), &name) as u64
}

/// The server closes the connection: reading gets an end or an error, within the handshake
/// timeout, and what came before is at most a TLS alert (a record of type 21), never data.
fn assert_dropped(s: &mut impl Read, what: &str) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        got.is_empty() || got[0] == 21,
        "{what}: the node sent {got:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{what}: dropped only after {:?}",
        start.elapsed()
    );
}

/// The peer transport's hello, as prost encodes it: from (1), addr (2), cluster (3).
fn hello(from: u64, addr: &str, cluster: u64) -> Vec<u8> {
    let mut b = vec![0x08];
    varint(&mut b, from);
    b.push(0x12);
    varint(&mut b, addr.len() as u64);
    b.extend_from_slice(addr.as_bytes());
    if cluster != 0 {
        b.push(0x18);
        varint(&mut b, cluster);
    }
    b
}

fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// A connection whose reads give up after 10 s, so a node that keeps it open fails the test
/// rather than hanging it.
fn plain_connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr`, the handshake done (as far as the client can tell: under TLS
/// 1.3 the server judges the client's certificate after the client is done).
fn tls_connect(addr: &str, name: &str, config: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    }
    s
}

fn served_certificate(s: &Tls) -> Vec<u8> {
    s.conn.peer_certificates().unwrap()[0].to_vec()
}

/// GET /ping on a kept-alive connection; the status.
fn ping(s: &mut Tls) -> u16 {
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)
            .expect("an answer on the kept connection");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    // A 204 has no body: the connection is ready for the next request.
    head[9..12].parse().unwrap()
}

fn hup(c: &Cluster, id: u64) {
    let pid = c.node(id).gateway.pid().expect("running") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}
