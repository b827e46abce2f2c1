//! Writes through a real 3-node cluster (three influxd, three gateway processes): every
//! acknowledged write is on every replica, and bad input is refused without changing
//! anything.

use std::io::Write as _;
use std::time::Duration;

use tests::Cluster;

const CONVERGE: Duration = Duration::from_secs(20);

#[test]
fn writes_through_every_node_reach_every_replica_identically() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    // Every node takes writes, the leader and both followers; points without a timestamp
    // are stamped once, by the node that received them, so replicas agree on the time too.
    for round in 0..5 {
        for n in &c.nodes {
            let lines = format!(
                "cpu,host=h{id},round=r{round} v={round}.5,i={id}i,s=\"x y\",b=true\ncpu,host=h{id},round=r{round},kind=stamped v=1",
                id = n.id
            );
            let r = n.api().write("db=db", &lines).unwrap();
            assert_eq!(r.status, 204, "write via node {}: {}", n.id, r.body);
            // Read-your-writes on the node that acknowledged.
            let rows = n.influx().rows("db", "cpu");
            assert!(
                rows.len() >= round * 6 + n.id as usize * 2,
                "node {} acknowledged but its influxd has only {} rows",
                n.id,
                rows.len()
            );
        }
    }
    c.wait_converged("db", "cpu", 30, CONVERGE);
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let c = Cluster::start(3);
    c.create_database(2, "db");
    let api = c.node(3).api();

    let r = api.write("", "m v=1").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "database is required");

    let r = api.write("db=nope", "m v=1 1").unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.error(), "database not found: \"nope\"");

    let r = api.write("db=db&precision=xs", "m v=1 1").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("precision"), "{}", r.body);

    let r = api.write("db=db&precison=s", "m v=1 1").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("precison"), "{}", r.body);

    let r = api.write("db=db", "bad line\nworse").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error().starts_with("unable to parse 'bad line'"),
        "{}",
        r.body
    );

    let r = api.write("db=_gateway", "m v=1").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);

    // Oversized: refused from Content-Length alone.
    let big = "m v=1 1\n".repeat(4_000_000);
    let r = api.write("db=db", &big).unwrap();
    assert_eq!(r.status, 413, "{}", r.body);

    // A small gzip body that inflates past the limit.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(big.as_bytes()).unwrap();
    let bomb = e.finish().unwrap();
    let gzip = [("Content-Encoding", "gzip")];
    let r = api.write_bytes("db=db", &gzip, &bomb).unwrap();
    assert_eq!(r.status, 413, "{}", r.body);

    let r = api
        .write_bytes("db=db", &gzip, b"\x1f\x8b\x08garbage")
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().starts_with("gzip"), "{}", r.body);

    // Nothing of the above reached any replica.
    for (id, rows) in c.rows_everywhere("db", "m") {
        assert!(
            rows.is_empty(),
            "node {id} has rows after refused writes: {rows:?}"
        );
    }
}

#[test]
fn partial_writes_gzip_and_influxd_rejections_match_influxd() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    let api = c.node(2).api();

    // Valid lines are replicated, the bad one is reported as influxd reports it.
    let r = api.write("db=db", "m v=1 1\nbad line\nm v=2 2").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error()
            .starts_with("partial write: unable to parse 'bad line'")
            && r.error().ends_with("dropped=0"),
        "{}",
        r.body
    );

    // gzip, and a precision.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"m v=3 3\n").unwrap();
    let gzip = [("Content-Encoding", "gzip")];
    let r = api
        .write_bytes("db=db&precision=s", &gzip, &e.finish().unwrap())
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);

    // influxd's own rejection (a field type conflict) comes back as influxd answers it, and
    // is the same on every replica.
    let r = api.write("db=db", "m v=\"text\" 4").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("field type conflict"), "{}", r.body);

    // The 2.x write API: bucket = db/rp.
    let r = api
        .send(
            "POST",
            "/api/v2/write?bucket=db/autogen&org=x&precision=ms",
            &[],
            b"m v=5 5",
        )
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);

    c.wait_converged("db", "m", 4, CONVERGE);
    let rows = c.node(1).influx().rows("db", "m");
    let times: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(
        times,
        [
            "1970-01-01T00:00:00.000000001Z",
            "1970-01-01T00:00:00.000000002Z",
            "1970-01-01T00:00:00.005Z",
            "1970-01-01T00:00:03Z"
        ]
    );
}

#[test]
fn query_reads_locally_and_api_answers_like_influxd() {
    let c = Cluster::start(3);
    let api = c.node(1).api();
    let r = api.get("/ping").unwrap();
    assert_eq!(r.status, 204);
    assert!(r.header("X-Influxdb-Version").is_some());
    assert!(r.header("Request-Id").is_some());
    let r = api
        .send("GET", "/ping", &[("Request-Id", "abc-123")], &[])
        .unwrap();
    assert_eq!(r.header("Request-Id"), Some("abc-123"));
    let r = api.get("/ping?verbose=true").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.json()["version"].is_string());

    let h = c.health(1).unwrap();
    assert_eq!(h["status"], "pass", "{h}");
    assert_eq!(h["node"], 1);
    assert!(h["leader"].as_u64().is_some());

    c.create_database(3, "db");
    let r = api.write("db=db", "m v=1 1").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    let v = api.query_ok("db", "SELECT * FROM m");
    assert_eq!(v["results"][0]["series"][0]["values"][0][1], 1.0);
    let v = api.query_ok("", "SHOW DATABASES");
    let dbs = v["results"][0]["series"][0]["values"].to_string();
    assert!(dbs.contains("\"db\""), "{dbs}");

    let metrics = api.get("/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("gateway_raft_commit_index"));
    assert!(metrics.body.contains("gateway_log_first_index 1"));

    // The log's figures: nothing trimmed, so it starts at 1, and its files take room.
    let log = api.get("/status").unwrap().json()["log"].clone();
    assert_eq!(log["first_index"], 1, "{log}");
    assert_eq!(log["trimmed_entries"], 0, "{log}");
    assert!(log["dir_bytes"].as_u64().unwrap_or(0) > 0, "{log}");
}

/// A request answered before its body was read (an unknown path, a reserved database, a body
/// over the limit) must still reach a client that is busy sending that body, on a machine
/// too loaded to read answers promptly, and leave the keep-alive connection usable: the
/// gateway drains the rest of the body before answering instead of closing under the client.
#[test]
fn early_answers_reach_clients_still_sending_on_a_loaded_machine() {
    let c = Cluster::start_with(1, &["--max-body-size", "1MB"]);
    c.create_database(1, "db");
    let api = c.node(1).api();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let body = "m v=1 1\n".repeat(400_000); // 3.2 MB
    for round in 0..20 {
        for (target, status) in [
            ("/write?db=_gateway", 400),
            ("/write?db=db", 413),
            ("/nowhere", 404),
            ("/write?db=db&precison=s", 400),
        ] {
            let r = api
                .send("POST", target, &[], body.as_bytes())
                .unwrap_or_else(|e| panic!("round {round}, {target}: no answer: {e}"));
            assert_eq!(r.status, status, "round {round}, {target}: {}", r.body);
        }
        let r = api.write("db=db", &format!("m v={round} {round}")).unwrap();
        assert_eq!(r.status, 204, "round {round}: {}", r.body);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    assert_eq!(c.node(1).influx().rows("db", "m").len(), 20);
}
