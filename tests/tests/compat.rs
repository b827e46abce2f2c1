//! Answers clients depend on, next to a plain influxd's answer to the same request: a `/query`
//! labelled gzip with no body (the Python client with `gzip=True` sends that on every query),
//! state-changing queries answered in the format `Accept` asks for (CSV, MessagePack), and
//! `SHOW DATABASES` without the gateway's bookkeeping database.

use std::time::Duration;

use tests::{wait_until, Cluster, Http, Influxd};

const CONVERGE: Duration = Duration::from_secs(30);
/// The gateway's bookkeeping database.
const RESERVED: &str = "_gateway";

/// A 3-node cluster and, beside it, a plain influxd to compare answers with.
fn cluster_and_plain_influxd() -> (Cluster, Influxd) {
    let c = Cluster::start(3);
    let plain = Influxd::start(
        &format!("{}:18086", c.slot.ip(100)),
        &c.dir.path().join("plain"),
    );
    (c, plain)
}

#[test]
fn a_query_labelled_gzip_without_a_body_is_answered_as_influxd_answers_it() {
    let (c, plain) = cluster_and_plain_influxd();
    c.create_database(1, "db");
    plain.create_database("db");
    let gzip = [("Content-Encoding", "gzip")];
    for http in [c.node(2).api(), plain.http()] {
        let r = http
            .send("GET", "/query?db=db&q=SHOW+MEASUREMENTS", &gzip, b"")
            .unwrap();
        assert_eq!(r.status, 200, "{}: {}", http.base(), r.body);
        assert!(!r.body.contains("error"), "{}: {}", http.base(), r.body);
    }
    // A state-changing one too, and a real gzip body still counts as gzip.
    let r = c
        .node(3)
        .api()
        .send("POST", "/query?q=CREATE+DATABASE+other", &gzip, b"")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let form = gzip_bytes(b"q=CREATE+DATABASE+third");
    let headers = [
        ("Content-Encoding", "gzip"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = c
        .node(1)
        .api()
        .send("POST", "/query", &headers, &form)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // Each 200 says the statement was applied on the node that answered it; node 2 applies
    // them in its own time.
    wait_until("node 2 to list both databases", CONVERGE, || {
        let listed = c
            .node(2)
            .influx()
            .query_ok("", "SHOW DATABASES")
            .to_string();
        if listed.contains("other") && listed.contains("third") {
            Ok(())
        } else {
            Err(listed)
        }
    });
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn state_changing_queries_answer_in_the_format_asked_byte_for_byte_as_influxd() {
    let (c, plain) = cluster_and_plain_influxd();
    let cluster = c.node(2).api();
    let influxd = plain.http();
    c.create_database(2, "db");
    plain.create_database("db");
    for http in [&cluster, &influxd] {
        let r = http
            .write("db=db", "m v=1 1000000000\nm v=2 2000000000")
            .unwrap();
        assert_eq!(r.status, 204, "{}", r.body);
    }
    c.wait_converged("db", "m", 2, CONVERGE);
    let statements = [
        "CREATE DATABASE a; CREATE DATABASE b",
        "SELECT * INTO m2 FROM m",
        "CREATE USER u WITH PASSWORD 'p'; CREATE USER u WITH PASSWORD 'other'",
        "DROP DATABASE a; DROP DATABASE b",
    ];
    for accept in ["application/csv", "text/csv", "application/x-msgpack"] {
        for q in statements {
            let ask = |http: &Http| {
                let path = format!("/query?db=db&q={}", harness::http::encode(q));
                http.send("POST", &path, &[("Accept", accept)], b"")
                    .unwrap()
            };
            let (ours, theirs) = (ask(&cluster), ask(&influxd));
            assert_eq!(ours.status, theirs.status, "{accept} {q}: {}", ours.body);
            assert_eq!(
                ours.header("Content-Type"),
                theirs.header("Content-Type"),
                "{accept} {q}"
            );
            assert_eq!(
                ours.raw, theirs.raw,
                "{accept} {q}:\ngateway {:?}\ninfluxd {:?}",
                ours.body, theirs.body
            );
        }
    }
}

#[test]
fn show_databases_through_the_gateway_leaves_out_its_bookkeeping_database() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    let reserved = RESERVED;
    // influxd itself holds it: it is where each replica's applied index lives.
    let direct = c
        .node(1)
        .influx()
        .query_ok("", "SHOW DATABASES")
        .to_string();
    assert!(direct.contains(reserved), "{direct}");
    let api = c.node(2).api();
    for (path, accept) in [
        ("/query?q=SHOW+DATABASES", "application/json"),
        ("/query?q=SHOW+DATABASES&pretty=true", "application/json"),
        ("/query?q=SHOW+DATABASES&chunked=true", "application/json"),
        ("/query?q=SHOW+DATABASES", "application/csv"),
    ] {
        let r = api.send("GET", path, &[("Accept", accept)], b"").unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.body.contains("db"), "{path} {accept}: {}", r.body);
        assert!(!r.body.contains(reserved), "{path} {accept}: {}", r.body);
        if accept.contains("json") {
            // Chunked answers are a JSON object a line; the others one object.
            let objects: Vec<&str> = if path.contains("chunked") {
                r.body.lines().filter(|l| !l.trim().is_empty()).collect()
            } else {
                vec![r.body.as_str()]
            };
            for line in objects {
                let _: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("{path}: not JSON after filtering ({e}): {}", r.body)
                });
            }
        }
    }
    // The influx CLI's listing too.
    let out = std::process::Command::new("influx")
        .args(["-host", &c.node(3).ip, "-execute", "SHOW DATABASES"])
        .output()
        .expect("run the influx CLI");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("db") && !listed.contains(reserved),
        "{listed}"
    );
}
