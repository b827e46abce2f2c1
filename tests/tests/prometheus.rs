//! Prometheus remote storage through the gateway, against the real thing:
//! (a) the same remote write request, sent to a plain influxd 1.6 and to the cluster, answers
//! the same and stores the same series and points on every replica; bad bodies are refused
//! and change nothing;
//! (b) a real Prometheus (Debian's `prometheus`) writing through one node and reading through
//! another loses no sample, every replica holds what a plain influxd it writes to as well
//! holds, and a query Prometheus answers by remote read finds what was written.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::ingest::prom::{Label, Sample, TimeSeries, WriteRequest};
use harness::Process;
use nix::sys::signal::Signal;
use tests::{wait_until, Cluster, Http, Influxd};

const CONVERGE: Duration = Duration::from_secs(30);

fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
    }
}

/// A remote write body as Prometheus sends it: protobuf, snappy block format.
fn body(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(&WriteRequest { timeseries });
    snap::raw::Encoder::new().compress_vec(&raw).unwrap()
}

fn prom_write(http: &Http, query: &str, body: &[u8]) -> tests::http::Response {
    http.send(
        "POST",
        &format!("/api/v1/prom/write?{query}"),
        &[
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/x-protobuf"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        body,
    )
    .unwrap()
}

/// The status and error text of an answer (Go's JSON escapes `>`, so the text, not the bytes).
fn answer(r: &tests::http::Response) -> (u16, String) {
    let error = if r.body.trim().is_empty() {
        String::new()
    } else {
        r.error()
    };
    (r.status, error)
}

/// Series keys, points (time included) and field types of a database, as influxd shows them.
fn contents(http: &Http, db: &str, until: Option<i64>) -> String {
    let when = until.map_or(String::new(), |ns| format!(" WHERE time < {ns}"));
    let points = http.query_ok(db, &format!("SELECT * FROM /.*/{when} GROUP BY *"));
    let series = http.query_ok(db, "SHOW SERIES");
    let fields = http.query_ok(db, "SHOW FIELD KEYS");
    format!(
        "{}\n{}\n{}",
        points["results"][0], series["results"][0], fields["results"][0]
    )
}

/// How many series, and points before `until`, a database holds.
fn size(http: &Http, db: &str, until: i64) -> (usize, u64) {
    let series = http.query_ok(db, "SHOW SERIES")["results"][0]["series"][0]["values"]
        .as_array()
        .map_or(0, Vec::len);
    let counts = http.query_ok(
        db,
        &format!("SELECT count(value) FROM /.*/ WHERE time < {until}"),
    );
    let points = counts["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["values"][0][1].as_u64())
        .sum();
    (series, points)
}

/// Waits until every replica's contents of `db` are `expected`.
fn wait_replicas(c: &Cluster, db: &str, until: Option<i64>, expected: &str) {
    wait_until(
        &format!("every replica's {db} as the plain influxd's"),
        CONVERGE,
        || {
            let differ: Vec<u64> = c
                .nodes
                .iter()
                .filter(|n| contents(&n.influx(), db, until) != expected)
                .map(|n| n.id)
                .collect();
            if differ.is_empty() {
                Ok(())
            } else {
                Err(format!("nodes {differ:?} differ"))
            }
        },
    );
}

/// What a case expects of the gateway, next to influxd's answer to the same request.
#[derive(Debug, PartialEq)]
enum Expect {
    /// The same status, the same error and the same contents on every replica.
    Same,
    /// A key influxd's parser would read back as another: refused (400), nothing written.
    Refused,
}

fn cases() -> Vec<(&'static str, Vec<TimeSeries>, Expect)> {
    use Expect::*;
    let t = 1_700_000_000_000i64;
    vec![
        (
            "typical",
            vec![
                series(
                    &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
                    &[(1.0, t), (0.0, t + 1000)],
                ),
                series(
                    &[("__name__", "http_requests_total"), ("code", "200")],
                    &[
                        (1e16, t),
                        (12345.678, t + 1),
                        (-0.0, t + 2),
                        (1.0 / 3.0, t + 3),
                    ],
                ),
                series(&[("__name__", "tiny")], &[(5e-324, t), (f64::MAX, t + 1)]),
            ],
            Same,
        ),
        ("no name", vec![series(&[("a", "b")], &[(2.0, t)])], Same),
        (
            "repeated labels, empty values",
            vec![series(
                &[
                    ("__name__", "x"),
                    ("a", "1"),
                    ("e", ""),
                    ("a", "2"),
                    ("__name__", "y"),
                ],
                &[(1.0, t)],
            )],
            Same,
        ),
        (
            "NaN dropped, the rest written",
            vec![series(
                &[("__name__", "m")],
                &[(f64::NAN, t), (3.0, t + 1), (f64::NAN, t + 2)],
            )],
            Same,
        ),
        (
            "Inf refuses the whole request",
            vec![
                series(&[("__name__", "ok")], &[(1.0, t)]),
                series(&[("__name__", "m")], &[(2.0, t), (f64::INFINITY, t + 1)]),
            ],
            Same,
        ),
        (
            "escaped names and values",
            vec![series(
                &[
                    ("__name__", "a b,c=d"),
                    ("k", "v w,x=y"),
                    ("q", "\"quoted\""),
                    ("u", "é 漢字"),
                    ("bs", "a\\b"),
                    ("lead", " x"),
                ],
                &[(1.0, t)],
            )],
            Same,
        ),
        (
            "timestamps: negative, zero, wrapped",
            vec![series(
                &[("__name__", "m")],
                &[
                    (1.0, -5),
                    (2.0, 0),
                    (3.0, i64::MIN),
                    (4.0, i64::MAX / 1_000_000 + 7),
                ],
            )],
            Same,
        ),
        (
            "a time influxd reserves",
            vec![series(&[("__name__", "m")], &[(1.0, 1 << 57)])],
            Same,
        ),
        (
            "a label named time: partial write",
            vec![
                series(&[("__name__", "m"), ("time", "x")], &[(1.0, t)]),
                series(&[("__name__", "m"), ("k", "v")], &[(1.0, t)]),
            ],
            Same,
        ),
        (
            "the same time twice: the last value",
            vec![series(&[("__name__", "m")], &[(1.0, t), (2.0, t)])],
            Same,
        ),
        ("no series", vec![], Same),
        ("no samples", vec![series(&[("__name__", "m")], &[])], Same),
        (
            "a key too long",
            vec![series(
                &[("__name__", "m"), ("k", &"v".repeat(65_530))],
                &[(1.0, t)],
            )],
            Same,
        ),
        (
            "a value ending in a backslash",
            vec![series(&[("__name__", "m"), ("k", "v\\")], &[(1.0, t)])],
            Refused,
        ),
        (
            "an escaped backslash before a comma",
            vec![series(&[("__name__", "m"), ("k", "a\\,b")], &[(1.0, t)])],
            Refused,
        ),
        (
            "an empty label name",
            vec![series(&[("__name__", "m"), ("", "v")], &[(1.0, t)])],
            Refused,
        ),
        (
            "an empty metric name",
            vec![series(&[("__name__", ""), ("k", "v")], &[(1.0, t)])],
            Refused,
        ),
        (
            "a metric name starting with #",
            vec![series(&[("__name__", "#m")], &[(1.0, t)])],
            Refused,
        ),
        (
            // influxd 1.x keeps a tab in a value, and ingest reads line protocol as it does.
            "a tab in a value",
            vec![series(&[("__name__", "m"), ("k", "a\tb")], &[(1.0, t)])],
            Same,
        ),
        (
            "a newline in a value",
            vec![series(&[("__name__", "m"), ("k", "a\nb")], &[(1.0, t)])],
            Refused,
        ),
    ]
}

#[test]
fn remote_write_stores_what_influxd_stores() {
    let c = Cluster::start(3);
    let plain = Influxd::start(
        &format!("{}:18086", c.slot.ip(100)),
        &c.dir.path().join("plain"),
    );
    let influxd = plain.http();
    let mut report = String::new();
    for (i, (name, timeseries, expect)) in cases().into_iter().enumerate() {
        let db = format!("p{i}");
        plain.create_database(&db);
        c.create_database(1, &db);
        let b = body(timeseries);
        let theirs = prom_write(&influxd, &format!("db={db}"), &b);
        let via = c.node(1 + i as u64 % 3).api();
        let ours = prom_write(&via, &format!("db={db}"), &b);
        let _ = writeln!(
            report,
            "{name}: influxd {} {:?}, gateway {} {:?}",
            theirs.status, theirs.body, ours.status, ours.body
        );
        match expect {
            Expect::Same => {
                assert_eq!(answer(&ours), answer(&theirs), "{name}");
                wait_replicas(&c, &db, None, &contents(&influxd, &db, None));
            }
            Expect::Refused => {
                assert_eq!(ours.status, 400, "{name}: {}", ours.body);
                assert!(
                    ours.error()
                        .contains("cannot be written through the gateway"),
                    "{name}: {}",
                    ours.body
                );
                let empty = contents(&c.node(1).influx(), &db, None);
                assert!(!empty.contains("\"values\""), "{name}: {empty}");
            }
        }
    }
    eprintln!("{report}");
}

#[test]
fn bad_remote_writes_are_refused_and_change_nothing() {
    let c = Cluster::start(3);
    let plain = Influxd::start(
        &format!("{}:18086", c.slot.ip(100)),
        &c.dir.path().join("plain"),
    );
    let influxd = plain.http();
    plain.create_database("db");
    c.create_database(1, "db");
    let api = c.node(2).api();
    let good = body(vec![series(&[("__name__", "m")], &[(1.0, 1)])]);
    let not_protobuf = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\x05ab")
        .unwrap();
    for (what, query, body, status) in [
        (
            "corrupt snappy",
            "db=db",
            b"\x05\xffnot snappy".to_vec(),
            400,
        ),
        (
            "truncated snappy",
            "db=db",
            good[..good.len() - 2].to_vec(),
            400,
        ),
        ("snappy, not protobuf", "db=db", not_protobuf, 400),
        ("empty", "db=db", Vec::new(), 400),
        ("no database", "", good.clone(), 400),
        ("unknown database", "db=nope", good.clone(), 404),
    ] {
        let theirs = prom_write(&influxd, query, &body);
        let ours = prom_write(&api, query, &body);
        assert_eq!(theirs.status, status, "{what}: influxd {}", theirs.body);
        assert_eq!(ours.status, status, "{what}: gateway {}", ours.body);
        assert!(!ours.error().is_empty(), "{what}: {}", ours.body);
        if status == 404 || query.is_empty() {
            assert_eq!(ours.error(), theirs.error(), "{what}");
        }
    }
    // A typo'd parameter would write elsewhere unnoticed: refused, as on /write.
    let r = prom_write(&api, "db=db&retention=x", &good);
    assert_eq!(r.status, 400, "{}", r.body);
    for n in &c.nodes {
        let v = n.influx().query_ok("db", "SHOW SERIES");
        assert!(v["results"][0]["series"].is_null(), "node {}: {v}", n.id);
    }
    let r = prom_write(&api, "db=db", &good);
    assert_eq!(r.status, 204, "{}", r.body);
}

#[test]
fn remote_storage_checks_credentials_as_influxd_does() {
    let admin = ("gw-admin", "s3cret");
    let c = Cluster::start_with_auth(1, admin);
    for q in [
        "CREATE DATABASE db",
        "CREATE USER writer WITH PASSWORD 'wpass'",
        "GRANT WRITE ON db TO writer",
        "CREATE USER reader WITH PASSWORD 'rpass'",
        "GRANT READ ON db TO reader",
    ] {
        c.node(1).api().with_auth(admin.0, admin.1).query_ok("", q);
    }
    let as_user = |http: Http, user: Option<(&str, &str)>| match user {
        Some((u, p)) => http.with_auth(u, p),
        None => http,
    };
    let (api, influxd) = (c.node(1).api(), Http::new(&c.node(1).influxd.addr));
    let good = body(vec![series(&[("__name__", "m")], &[(1.0, 1)])]);
    for (user, status) in [
        (None, 401),
        (Some(("writer", "nope")), 401),
        (Some(("reader", "rpass")), 403),
        (Some(("writer", "wpass")), 204),
    ] {
        let ours = prom_write(&as_user(api.clone(), user), "db=db", &good);
        let theirs = prom_write(&as_user(influxd.clone(), user), "db=db", &good);
        assert_eq!(answer(&ours), answer(&theirs), "{user:?}");
        assert_eq!(ours.status, status, "{user:?}: {}", ours.body);
    }
    // Remote read is influxd's to check: the credentials go with it. A request without a
    // query gets past authentication to influxd's 400.
    let no_query = snap::raw::Encoder::new().compress_vec(b"").unwrap();
    for (user, status) in [
        (None, 401),
        (Some(("reader", "nope")), 401),
        (Some(("reader", "rpass")), 400),
    ] {
        let read = |http: Http| {
            as_user(http, user)
                .send("POST", "/api/v1/prom/read?db=db", &[], &no_query)
                .unwrap()
        };
        let (ours, theirs) = (read(api.clone()), read(influxd.clone()));
        assert_eq!(answer(&ours), answer(&theirs), "{user:?}");
        assert_eq!(ours.status, status, "{user:?}: {}", ours.body);
    }
}

/// A Prometheus metric's value on its own /metrics, for one remote storage queue.
fn prom_metric(prometheus: &Http, name: &str, remote: &str) -> Option<f64> {
    let text = prometheus.get("/metrics").ok()?.body;
    text.lines()
        .find(|l| {
            l.starts_with(&format!("{name}{{")) && l.contains(&format!("remote_name=\"{remote}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn prometheus_config(c: &Cluster, plain: &str, web: &str) -> String {
    let node = |i: u64| format!("{}:8086", c.node(i).ip);
    let queue = "queue_config: {max_shards: 1, batch_send_deadline: 500ms, min_backoff: 50ms, max_backoff: 1s}";
    format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gateways
    static_configs:
      - targets: ['{n1}', '{n2}', '{n3}']
  - job_name: prometheus
    static_configs:
      - targets: ['{web}']
remote_write:
  - name: gateway
    url: http://{n1}/api/v1/prom/write?db=prom
    {queue}
  - name: influxd
    url: http://{plain}/api/v1/prom/write?db=prom
    {queue}
remote_read:
  - name: gateway
    url: http://{n2}/api/v1/prom/read?db=prom&consistency=linearizable
    read_recent: true
"#,
        n1 = node(1),
        n2 = node(2),
        n3 = node(3),
    )
}

fn start_prometheus(dir: &Path, config: &str, web: &str) -> Process {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let mut p = Process::new("prometheus", "prometheus", dir.join("prometheus.log")).args([
        format!("--config.file={}", file.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address={web}"),
    ]);
    p.start()
        .unwrap_or_else(|e| panic!("{e} (is the Debian package `prometheus` installed?)"));
    p
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn prometheus_writes_and_reads_through_the_cluster() {
    let c = Cluster::start(3);
    let plain = Influxd::start(
        &format!("{}:18086", c.slot.ip(100)),
        &c.dir.path().join("plain"),
    );
    plain.create_database("prom");
    c.create_database(1, "prom");
    // Its own address on the slot, and a port no system Prometheus listens on.
    let web = format!("{}:19090", c.slot.ip(200));
    let mut prometheus = start_prometheus(
        &c.dir.path().join("prometheus"),
        &prometheus_config(&c, &plain.addr, &web),
        &web,
    );
    let api = Http::new(&web);
    wait_until("prometheus ready", CONVERGE, || match api.get("/-/ready") {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(r.body),
        Err(e) => Err(e.to_string()),
    });

    // Several seconds of scrapes sent through both queues (the gauge counts whole seconds).
    let highest_sent = || {
        let at = |remote| {
            prom_metric(
                &api,
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                remote,
            )
            .unwrap_or(0.0)
        };
        at("gateway").min(at("influxd"))
    };
    let first = wait_until("first samples sent", Duration::from_secs(60), || {
        Some(highest_sent()).filter(|&t| t > 0.0).ok_or("none yet")
    });
    let sent = wait_until("6 s of samples sent", Duration::from_secs(60), || {
        let t = highest_sent();
        if t >= first + 6.0 {
            Ok(t)
        } else {
            Err(format!("sent up to {t}, from {first}"))
        }
    });
    for remote in ["gateway", "influxd"] {
        for metric in [
            "prometheus_remote_storage_samples_failed_total",
            "prometheus_remote_storage_samples_dropped_total",
        ] {
            assert_eq!(
                prom_metric(&api, metric, remote),
                Some(0.0),
                "{metric} {remote}"
            );
        }
        let total = prom_metric(&api, "prometheus_remote_storage_samples_total", remote);
        assert!(total.unwrap_or(0.0) > 100.0, "{remote}: {total:?} samples");
    }

    // What both queues had sent: a scrape is stamped when it starts and queued when it ends,
    // so everything stamped a scrape timeout (1 s) before the highest sent time was sent.
    let cutoff = ((sent - 2.0) * 1e9) as i64;
    let expected = contents(&plain.http(), "prom", Some(cutoff));
    let (keys, points) = size(&plain.http(), "prom", cutoff);
    eprintln!("compared {keys} series, {points} points");
    assert!(
        keys > 100 && points > 1000,
        "{keys} series, {points} points"
    );
    assert!(expected.contains("gateway_raft_term"), "{expected:.400}");
    wait_replicas(&c, "prom", Some(cutoff), &expected);

    // A metric only the cluster holds, written through a third node: Prometheus finds it by
    // remote read through node 2, whose read index makes the write visible there.
    let now = now_ms();
    let b = body(vec![series(
        &[("__name__", "remote_only_total"), ("source", "test")],
        &[(7.0, now - 2000), (8.5, now - 1000)],
    )]);
    let r = prom_write(&c.node(3).api(), "db=prom", &b);
    assert_eq!(r.status, 204, "{}", r.body);
    let q = api
        .get(&format!(
            "/api/v1/query?query=remote_only_total&time={}",
            now as f64 / 1000.0
        ))
        .unwrap();
    assert_eq!(q.status, 200, "{}", q.body);
    let v = q.json();
    let result = &v["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(result[0]["metric"]["__name__"], "remote_only_total", "{v}");
    assert_eq!(result[0]["metric"]["source"], "test", "{v}");
    assert_eq!(result[0]["value"][1], "8.5", "{v}");

    prometheus.signal(Signal::SIGTERM).unwrap();
    wait_until("prometheus stopped", CONVERGE, || {
        prometheus.exited().ok_or("running")
    });
}
