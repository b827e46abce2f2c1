//! Hostile and slow clients on the API: thousands of idle connections, slowloris heads and
//! bodies, connections past the cap and oversized heads leave a normal client served
//! promptly; a slow body is refused and writes nothing; the admin API answers only whom it
//! should.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use tests::cluster::{gateway_binary, API_PORT};
use tests::metrics::metric;
use tests::raw::{self, closed_within, connect, connect_from, exchange, read_answer, request};
use tests::Cluster;

/// Time any answer expected at once may take on a loaded test machine.
const ANSWER: Duration = Duration::from_secs(5);
/// What a normal client must get while the node is under attack.
const PROMPT: Duration = Duration::from_secs(1);
/// Slack beyond a deadline for the server to notice it and the client to see the close.
const SLACK: Duration = Duration::from_secs(3);

fn api_addr(c: &Cluster, id: u64) -> String {
    format!("{}:{API_PORT}", c.node(id).ip)
}

fn ping() -> Vec<u8> {
    request("GET /ping", &[], b"")
}

/// A client sending its request a byte per step: a slowloris.
struct Trickler {
    s: TcpStream,
    /// What it sends after what it sent on opening, repeated without end.
    filler: &'static [u8],
    sent: usize,
    opened: Instant,
    closed: Option<Instant>,
    answer: Vec<u8>,
}

impl Trickler {
    /// Opens a connection and sends `first`, the start of the request.
    fn open(addr: &str, first: &[u8], filler: &'static [u8]) -> Trickler {
        let mut s = connect(addr);
        s.write_all(first).unwrap();
        let opened = Instant::now();
        s.set_nonblocking(true).unwrap();
        Trickler {
            s,
            filler,
            sent: 0,
            opened,
            closed: None,
            answer: Vec::new(),
        }
    }

    /// Sends one more byte and takes whatever the server sent; true once it closed the
    /// connection (end of stream, reset, or a failed send).
    fn step(&mut self) -> bool {
        if self.closed.is_some() {
            return true;
        }
        let byte = self.filler[self.sent % self.filler.len()];
        match self.s.write(&[byte]) {
            Ok(_) => self.sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return self.close(),
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return self.close(),
                Ok(n) => self.answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => return self.close(),
            }
        }
    }

    fn close(&mut self) -> bool {
        self.closed = Some(Instant::now());
        true
    }

    /// How long the server let it trickle, if it cut it.
    fn lasted(&self) -> Option<Duration> {
        self.closed.map(|c| c - self.opened)
    }
}

/// Steps every trickler every `every` until the server closed them all, or `limit` passed.
fn trickle(mut all: Vec<Trickler>, every: Duration, limit: Duration) -> Vec<Trickler> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut open = 0;
        for t in &mut all {
            if !t.step() {
                open += 1;
            }
        }
        if open == 0 {
            break;
        }
        std::thread::sleep(every);
    }
    all
}

/// The head of a write whose body of `length` bytes will come slowly.
fn write_head(length: usize) -> Vec<u8> {
    format!("POST /write?db=db HTTP/1.1\r\nHost: gateway\r\nContent-Length: {length}\r\n\r\n")
        .into_bytes()
}

#[test]
fn idle_and_slowloris_connections_do_not_stop_a_normal_client() {
    const IDLE: usize = 2000;
    const SLOW: usize = 100;
    const DEADLINE: Duration = Duration::from_secs(8);
    let c = Cluster::start_with(
        3,
        &[
            "--header-read-timeout",
            "8s",
            "--body-read-timeout",
            "8s",
            "--idle-timeout",
            "5m",
        ],
    );
    let files = raw::raise_open_files_limit();
    assert!(
        files as usize > IDLE + 2 * SLOW + 100,
        "this test needs more open files than the hard limit of {files}"
    );
    c.create_database(1, "db");
    let addr = api_addr(&c, 1);

    // Idle keep-alive connections, as a large pool of clients leaves them: each was served
    // one request, then stays silent. They are opened in batches, each answered before the
    // next, so that none waits in an overflowing listen backlog (where the kernel drops
    // packets and the client's retransmissions back off for seconds).
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE);
    while idle.len() < IDLE {
        let batch: Vec<TcpStream> = (0..200)
            .map(|_| {
                let mut s = connect(&addr);
                s.write_all(&ping()).unwrap();
                s
            })
            .collect();
        for mut s in batch {
            let i = idle.len();
            let a =
                read_answer(&mut s, ANSWER).unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
            assert_eq!(a.status, 204, "idle connection {i}: {a:?}");
            idle.push(s);
        }
    }

    // Slowloris: heads trickled a byte at a time, and whole heads whose body is trickled.
    let mut slow: Vec<Trickler> = (0..SLOW)
        .map(|_| Trickler::open(&addr, b"POST /write?db=db HTTP/1.1\r\n", b"X-Slow: a\r\n"))
        .collect();
    slow.extend((0..SLOW).map(|_| Trickler::open(&addr, &write_head(1_000_000), b"slow v=1 1\n")));
    let trickling =
        std::thread::spawn(move || trickle(slow, Duration::from_millis(200), DEADLINE + SLACK * 3));

    // A normal client, on a new connection each time, is answered promptly meanwhile.
    for i in 0..5 {
        let api = c.node(1).api();
        let started = Instant::now();
        let r = api.get("/ping").unwrap();
        let ping = started.elapsed();
        assert_eq!(r.status, 204, "{}", r.body);
        let started = Instant::now();
        api.write_ok("db=db", &format!("m v={i} {i}"));
        let write = started.elapsed();
        assert!(
            ping < PROMPT && write < PROMPT,
            "under attack, /ping took {ping:?} and /write {write:?}"
        );
    }
    let measured = Instant::now();

    // The idle connections were all still open throughout, and still serve.
    for (i, s) in idle.iter_mut().enumerate() {
        s.set_nonblocking(true).unwrap();
        match s.read(&mut [0u8; 1]) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("idle connection {i} closed while its idle timeout is 5m: {other:?}"),
        }
        s.set_nonblocking(false).unwrap();
    }
    for s in idle.iter_mut().take(10) {
        assert_eq!(exchange(s, &ping(), ANSWER).unwrap().status, 204);
    }

    // Every slowloris was cut by the server, within its deadline, after the measurements.
    let slow = trickling.join().unwrap();
    for (i, t) in slow.iter().enumerate() {
        let kind = if i < SLOW { "head" } else { "body" };
        let lasted = t.lasted().unwrap_or_else(|| {
            panic!(
                "slow {kind} {i} still open {:?} after it started",
                t.opened.elapsed()
            )
        });
        assert!(
            lasted <= DEADLINE + SLACK,
            "slow {kind} {i} was cut only after {lasted:?}"
        );
        assert!(
            t.closed.unwrap() > measured,
            "slow {kind} {i} was cut before the measurements ended ({lasted:?}): the test \
             measured nothing under attack"
        );
        // A body missed its deadline: the answer, where it arrived before the close, is 408.
        if !t.answer.is_empty() {
            let answer = String::from_utf8_lossy(&t.answer);
            assert!(
                kind == "body" && answer.starts_with("HTTP/1.1 408"),
                "slow {kind} {i} was answered: {answer}"
            );
        }
    }

    // The normal client's writes are there, everywhere; nothing of the slow bodies is.
    c.wait_converged("db", "m", 5, Duration::from_secs(30));
    assert!(c.node(1).influx().rows("db", "slow").is_empty());
    let metrics = c.node(1).api().get("/metrics").unwrap().body;
    for reason in ["header_timeout", "body_timeout"] {
        let cut = metric(
            &metrics,
            &format!("gateway_api_cut_total{{reason=\"{reason}\"}}"),
        );
        assert!(cut >= SLOW as f64, "{cut} cut for {reason}");
    }
    let open = metric(&metrics, "gateway_api_connections");
    assert!(open >= IDLE as f64, "{open} connections open");
}

#[test]
fn a_slow_body_is_refused_with_408_and_writes_nothing() {
    let c = Cluster::start_with(1, &["--body-read-timeout", "2s"]);
    c.create_database(1, "db");
    let addr = api_addr(&c, 1);
    let last_index =
        || c.node(1).api().get("/status").unwrap().json()["raft"]["last_index"].clone();
    let before = last_index();
    assert!(before.as_u64().is_some_and(|i| i > 0), "{before}");

    // Part of the body, then nothing.
    let mut s = connect(&addr);
    s.write_all(&write_head(100)).unwrap();
    s.write_all(b"m v=1 1\n").unwrap();
    let started = Instant::now();
    let a = read_answer(&mut s, Duration::from_secs(2) + ANSWER).unwrap();
    let took = started.elapsed();
    assert_eq!(a.status, 408, "{a:?}");
    assert!(a.error().contains("body_read_timeout"), "{a:?}");
    assert_eq!(a.header("Connection"), Some("close"), "{a:?}");
    assert!(
        took >= Duration::from_millis(1900) && took <= Duration::from_secs(2) + SLACK,
        "answered after {took:?}"
    );
    closed_within(&mut s, ANSWER).expect("the connection closed after the 408");

    // A byte every 100 ms: 100 bytes would take 10 s.
    let t = Trickler::open(&addr, &write_head(100), b"m v=2 2\n");
    let t = trickle(
        vec![t],
        Duration::from_millis(100),
        Duration::from_secs(2) + ANSWER,
    )
    .pop()
    .unwrap();
    let lasted = t.lasted().expect("the trickled body was cut");
    assert!(
        lasted <= Duration::from_secs(2) + SLACK,
        "cut after {lasted:?}"
    );
    let answer = String::from_utf8_lossy(&t.answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // Nothing reached the log or influxd; a whole body still does.
    assert_eq!(last_index(), before);
    assert!(c.node(1).influx().rows("db", "m").is_empty());
    c.node(1).api().write_ok("db=db", "m v=3 3");
    assert_eq!(c.node(1).influx().rows("db", "m").len(), 1);
}

#[test]
fn over_the_connection_cap_newcomers_wait_while_open_connections_keep_working() {
    const CAP: usize = 8;
    let c = Cluster::start_with(1, &["--max-connections", "8"]);
    let addr = api_addr(&c, 1);

    // The harness's readiness checks may hold a slot for a moment yet: each of these is
    // answered once it has one.
    let mut open: Vec<TcpStream> = (0..CAP)
        .map(|i| {
            let mut s = connect(&addr);
            let a = exchange(&mut s, &ping(), ANSWER)
                .unwrap_or_else(|e| panic!("connection {i} within the cap: {e}"));
            assert_eq!(a.status, 204);
            s
        })
        .collect();

    // Past the cap, a connection is made (the kernel's backlog holds it) but not served.
    let mut newcomers: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect(&addr);
            s.write_all(&ping()).unwrap();
            s
        })
        .collect();
    for (i, s) in newcomers.iter_mut().enumerate() {
        let wait = if i == 0 {
            PROMPT
        } else {
            Duration::from_millis(50)
        };
        match read_answer(s, wait) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("newcomer {i} past the cap was not kept waiting: {other:?}"),
        }
    }
    for (i, s) in open.iter_mut().enumerate() {
        let started = Instant::now();
        let a = exchange(s, &ping(), PROMPT)
            .unwrap_or_else(|e| panic!("open connection {i} at the cap: {e}"));
        assert_eq!(a.status, 204);
        assert!(started.elapsed() < PROMPT);
    }

    // Connections closing make room: the newcomers are served, in their turn.
    open.truncate(CAP - newcomers.len());
    for (i, s) in newcomers.iter_mut().enumerate() {
        let a = read_answer(s, ANSWER)
            .unwrap_or_else(|e| panic!("newcomer {i} once there was room: {e}"));
        assert_eq!(a.status, 204);
    }
    let a = exchange(&mut open[0], &request("GET /metrics", &[], b""), ANSWER).unwrap();
    assert_eq!(metric(&a.body, "gateway_api_connections"), CAP as f64);
    assert_eq!(metric(&a.body, "gateway_api_connections_max"), CAP as f64);
    assert!(metric(&a.body, "gateway_api_connections_cap_waits_total") >= 1.0);
}

#[test]
fn an_oversized_head_is_refused_with_431_and_the_node_keeps_serving() {
    // The default max_header_size.
    const MAX: usize = 64 << 10;
    let c = Cluster::start(1);
    let addr = api_addr(&c, 1);

    // Each fills the limit exactly, so the server has read all of it when it refuses: its
    // answer is not lost to a reset of a connection with unread bytes.
    let mut line = b"GET /ping?q=".to_vec();
    line.resize(MAX, b'a');
    let mut header = b"GET /ping HTTP/1.1\r\nHost: gateway\r\nX-Big: ".to_vec();
    header.resize(MAX, b'b');
    let mut many = "GET /ping HTTP/1.1\r\nHost: gateway\r\n".to_owned();
    for i in 0..100 {
        many += &format!("X-H{i}: v\r\n");
    }
    many += "\r\n";
    for (what, req) in [
        ("a long request line", line),
        ("a long header", header),
        ("101 headers", many.into_bytes()),
    ] {
        let mut s = connect(&addr);
        let a = exchange(&mut s, &req, ANSWER).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(a.status, 431, "{what}: {a:?}");
        closed_within(&mut s, ANSWER).unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    // A large head within the limit is served, and so is everyone else.
    let big = "v".repeat(MAX - 1024);
    let mut s = connect(&addr);
    let a = exchange(
        &mut s,
        &request("GET /ping", &[("X-Big", &big)], b""),
        ANSWER,
    )
    .unwrap();
    assert_eq!(a.status, 204, "{a:?}");
    let metrics = c.node(1).api().get("/metrics").unwrap().body;
    let refused = metric(&metrics, "gateway_api_cut_total{reason=\"head_too_large\"}");
    assert_eq!(refused, 3.0);
}

const ADMIN: (&str, &str) = ("gw-admin", "adm1n");

/// `gateway members` against `addr`: its exit code and output.
fn members_cli(addr: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(gateway_binary())
        .args(["members", "--node", addr])
        .args(extra)
        .arg("list")
        .env_remove("INFLUX_USERNAME")
        .env_remove("INFLUX_PASSWORD")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn with_authentication_the_admin_api_needs_an_admin_user() {
    let c = Cluster::start_with_auth(1, ADMIN);
    let addr = api_addr(&c, 1);
    let admin = c.node(1).api().with_auth(ADMIN.0, ADMIN.1);
    admin.query_ok("", "CREATE USER writer WITH PASSWORD 'wpass'");
    let writer = c.node(1).api().with_auth("writer", "wpass");

    let r = c.node(1).api().get("/admin/members").unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    for (method, path) in [("GET", "/admin/members"), ("DELETE", "/admin/members?id=1")] {
        let r = writer.send(method, path, &[], &[]).unwrap();
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(
            r.error(),
            "writer not authorized to use the admin API, requires admin privilege"
        );
    }
    let r = admin.get("/admin/members").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["members"][0]["id"], 1, "{}", r.body);

    let (code, out) = members_cli(&addr, &["--username", ADMIN.0, "--password", ADMIN.1]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"members\""), "{out}");
    let (code, out) = members_cli(&addr, &["--username", "writer", "--password", "wpass"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("requires admin privilege"), "{out}");
}

#[test]
fn the_admin_api_can_be_turned_off() {
    let c = Cluster::start_with(1, &["--admin-api", "off"]);
    let api = c.node(1).api();
    let add = br#"{"id": 9, "peer_addr": "127.0.0.9:8089"}"#;
    for (method, body) in [("GET", &b""[..]), ("POST", add), ("DELETE", b"")] {
        let path = if method == "DELETE" {
            "/admin/members?id=1"
        } else {
            "/admin/members"
        };
        let r = api.send(method, path, &[], body).unwrap();
        assert_eq!(r.status, 403, "{method}: {}", r.body);
        assert_eq!(
            r.error(),
            "the admin API is disabled on this node (admin_api = off)"
        );
    }
    let (code, out) = members_cli(&api_addr(&c, 1), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("disabled"), "{out}");
    // Nothing else is: the membership is unchanged, the node serves.
    let raft = api.get("/status").unwrap().json()["raft"].clone();
    assert_eq!(raft["members"].as_array().map(Vec::len), Some(1), "{raft}");
    assert_eq!(api.get("/ping").unwrap().status, 204);
}

#[test]
fn the_admin_api_answers_only_listed_client_addresses() {
    let c = Cluster::start_with(1, &["--admin-api", "127.0.0.0/16, ::1"]);
    let addr = api_addr(&c, 1);
    let inside: IpAddr = c.node(1).ip.parse().unwrap();
    // Loopback too (all of 127.0.0.0/8 is), outside the list.
    let outside: IpAddr = "127.1.0.1".parse().unwrap();
    let list = request("GET /admin/members", &[], b"");

    let a = exchange(&mut connect_from(inside, &addr), &list, ANSWER).unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    let a = exchange(&mut connect_from(outside, &addr), &list, ANSWER).unwrap();
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(
        a.error(),
        "the admin API does not accept requests from 127.1.0.1 (admin_api)"
    );
    let remove = request("DELETE /admin/members?id=1", &[], b"");
    let a = exchange(&mut connect_from(outside, &addr), &remove, ANSWER).unwrap();
    assert_eq!(a.status, 403, "{a:?}");
    // The rest of the API serves that client; the CLI, from this host, works as it is.
    let a = exchange(&mut connect_from(outside, &addr), &ping(), ANSWER).unwrap();
    assert_eq!(a.status, 204, "{a:?}");
    let (code, out) = members_cli(&addr, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"members\""), "{out}");
}
