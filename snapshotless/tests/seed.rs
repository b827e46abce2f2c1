//! Seeding against real influxd processes: a copy of one influxd, streamed through a pipe and
//! restored into an empty one, gives an identical influxd whose marker is the copy's A; a cut
//! stream leaves nothing; an influxd holding data is refused until wiped; a copy that would
//! bring deleted points back is refused. Each test has loopback addresses of its own
//! (127.0.21.x), so they run side by side.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::influxd::{self, Config};
use harness::{Http, Process};
use serde_json::Value;
use snapshotless::marker::{self, Marker};
use snapshotless::seed::{self, Passwords, Progress, SeedError, StreamError, Tools};
use snapshotless::Influxd;
use tokio::sync::watch;

const ADMIN: (&str, &str) = ("admin", "adm1n pw");

/// One influxd with authentication on, and the admin account the gateway's applier would
/// have created on it.
struct Node {
    config: Config,
    _process: Process,
}

impl Node {
    fn start(host: &str, work: &Path) -> Node {
        let mut config = Config::new(host, 18086, work.join(host));
        config.auth = true;
        let mut process = config.process(work.join(format!("{host}.log"))).unwrap();
        process.start().unwrap();
        let ping = Http::new(&config.http_addr());
        influxd::wait_answering(&mut process, Duration::from_secs(30), || ping.get("/ping"))
            .unwrap_or_else(|e| panic!("{e}"));
        let node = Node {
            config,
            _process: process,
        };
        let q = format!(
            "CREATE USER \"{}\" WITH PASSWORD '{}' WITH ALL PRIVILEGES",
            ADMIN.0, ADMIN.1
        );
        Http::new(&node.config.http_addr()).query_ok("", &q);
        node
    }

    fn http(&self) -> Http {
        Http::new(&self.config.http_addr()).with_auth(ADMIN.0, ADMIN.1)
    }

    fn influxd(&self) -> Influxd {
        let url = format!("http://{}", self.config.http_addr());
        Influxd::new(&url, Duration::from_secs(30), Some(ADMIN))
    }

    fn rpc(&self) -> String {
        self.config.rpc_addr()
    }

    fn run(&self, statements: &[&str]) {
        let http = self.http();
        for q in statements {
            http.query_ok("", q);
        }
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Databases (one without shards), retention policies (a non-default one made default), a
/// continuous query, users with grants, a few thousand points and the marker.
async fn fill(node: &Node, marker: Marker) {
    node.run(&[
        "CREATE DATABASE db1",
        "CREATE RETENTION POLICY hot ON db1 DURATION 7d REPLICATION 1 SHARD DURATION 1h DEFAULT",
        "CREATE RETENTION POLICY long ON db1 DURATION 520w REPLICATION 1",
        "CREATE DATABASE db2 WITH DURATION 30d SHARD DURATION 1d NAME short",
        "CREATE DATABASE \"empty db\"",
        // Over a measurement nobody writes: a continuous query runs once as soon as it is
        // created, on each influxd at its own moment, over what that one holds by then.
        "CREATE CONTINUOUS QUERY cq ON db1 BEGIN SELECT mean(v) INTO db1.long.cpu_1h \
         FROM db1.hot.cpu_raw GROUP BY time(1h), host END",
        "CREATE USER reader WITH PASSWORD 'r3ader'",
        "GRANT READ ON db1 TO reader",
        "GRANT WRITE ON db2 TO reader",
        "CREATE USER locked WITH PASSWORD 'nobody knows'",
        "GRANT WRITE ON db1 TO locked",
        "REVOKE ALL PRIVILEGES ON db2 FROM locked",
    ]);
    let now = now_s();
    let http = node.http();
    let cpu: String = (0..2000)
        .map(|i| format!("cpu,host=h{} v={}.5 {}\n", i % 5, i, now - i))
        .collect();
    http.write_ok("db=db1&precision=s", &cpu);
    let old: String = (0..500)
        .map(|i| format!("old,dc=d{} n={i}i {}\n", i % 3, 1_600_000_000 + i * 3600))
        .collect();
    http.write_ok("db=db1&rp=long&precision=s", &old);
    let mem: String = (0..1000)
        .map(|i| {
            format!(
                "mem used={i}i,label=\"s{i}\",ok={} {}\n",
                i % 2 == 0,
                now - i * 900
            )
        })
        .collect();
    http.write_ok("db=db2&precision=s", &mem);
    let influxd = node.influxd();
    marker::create_database(&influxd).await.unwrap();
    marker::write(&influxd, marker).await.unwrap();
}

/// `influxd`, after writing `marker` to `node`: the applier moving on between the marker read
/// and the backup, so the copy holds a later marker than the one it is said to cover.
fn advancing_influxd(node: &Node, marker: Marker, work: &Path) -> PathBuf {
    let script = work.join("influxd-after-a-marker");
    let text = format!(
        "#!/bin/sh\ncurl -sf -u '{}:{}' -XPOST 'http://{}/write?db=_gateway&precision=ns' \
         --data-binary 'applied index={}i,term={}i 0' || exit 99\nexec influxd \"$@\"\n",
        ADMIN.0,
        ADMIN.1,
        node.config.http_addr(),
        marker.index,
        marker.term
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn series(v: &Value) -> BTreeMap<String, Value> {
    v["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_owned(),
                s["values"].clone(),
            )
        })
        .collect()
}

fn sorted_rows(v: &Value) -> Vec<String> {
    let mut rows: Vec<String> = series(v)
        .values()
        .flat_map(|rows| rows.as_array().cloned().unwrap_or_default())
        .map(|r| r.to_string())
        .collect();
    rows.sort();
    rows
}

/// Everything SHOW and SELECT can see, except the `_gateway` database's points.
fn assert_identical(a: &Node, b: &Node, users: &[&str]) {
    let (a, b) = (a.http(), b.http());
    let dbs = a.query_ok("", "SHOW DATABASES");
    assert_eq!(
        sorted_rows(&dbs),
        sorted_rows(&b.query_ok("", "SHOW DATABASES"))
    );
    let q = "SHOW CONTINUOUS QUERIES";
    assert_eq!(series(&a.query_ok("", q)), series(&b.query_ok("", q)));
    let q = "SHOW USERS";
    assert_eq!(
        sorted_rows(&a.query_ok("", q)),
        sorted_rows(&b.query_ok("", q))
    );
    for u in users {
        let q = format!("SHOW GRANTS FOR \"{u}\"");
        assert_eq!(
            sorted_rows(&a.query_ok("", &q)),
            sorted_rows(&b.query_ok("", &q)),
            "{q}"
        );
    }
    let mut points = 0;
    for db in series(&dbs)["databases"].as_array().unwrap() {
        let db = db[0].as_str().unwrap();
        let q = format!("SHOW RETENTION POLICIES ON \"{db}\"");
        let rps = a.query_ok("", &q);
        assert_eq!(rps, b.query_ok("", &q), "{q}");
        if db == marker::DATABASE {
            continue;
        }
        for rp in rps["results"][0]["series"][0]["values"].as_array().unwrap() {
            let q = format!(
                "SELECT * FROM \"{db}\".\"{}\"./.*/",
                rp[0].as_str().unwrap()
            );
            let (pa, pb) = (a.query_ok(db, &q), b.query_ok(db, &q));
            assert!(pa == pb, "{q} differs");
            points += series(&pa)
                .values()
                .map(|v| v.as_array().map_or(0, Vec::len))
                .sum::<usize>();
        }
    }
    assert_eq!(points, 3500, "every point was compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_influxd_is_identical_to_its_source_and_marked_with_what_the_copy_covers() {
    let work = tempfile::tempdir().unwrap();
    let (source, node) = (
        Node::start("127.0.21.1", work.path()),
        Node::start("127.0.21.2", work.path()),
    );
    let a = Marker {
        index: 1234,
        term: 7,
    };
    fill(&source, a).await;
    // What the node's applier creates first on an empty influxd: allowed.
    marker::create_database(&node.influxd()).await.unwrap();

    let later = Marker {
        index: 1300,
        term: 7,
    };
    let tools = Tools {
        program: advancing_influxd(&source, later, work.path()),
        ..Tools::default()
    };
    let copy = seed::take_copy(
        &tools,
        &source.rpc(),
        &source.influxd(),
        &work.path().join("out"),
    )
    .await
    .unwrap();
    assert_eq!(copy.marker(), a, "the marker read before the backup");

    let (mut tx, mut rx) = tokio::io::duplex(64 * 1024);
    let (progress, seen) = watch::channel(Progress::default());
    let (unwatched, into) = (
        watch::channel(Progress::default()).0,
        work.path().join("in"),
    );
    let (sent, received) = tokio::join!(
        seed::send(&copy, &mut tx, &unwatched),
        seed::receive(&mut rx, &into, &progress)
    );
    sent.unwrap();
    let received = received.unwrap();
    let total = copy.total_bytes();
    assert_eq!(*seen.borrow(), Progress { done: total, total });
    assert_eq!(received.files(), copy.files());

    let passwords: Passwords = [ADMIN, ("reader", "r3ader")].into_iter().collect();
    let restored = seed::restore(
        &Tools::default(),
        &node.rpc(),
        &node.influxd(),
        &received,
        &passwords,
    )
    .await
    .unwrap();
    assert_eq!(restored.marker, a);
    assert_eq!(restored.databases, ["db1", "db2", "empty db"]);
    assert_eq!(restored.continuous_queries, 1);
    assert_eq!(restored.locked_users, ["locked"]);

    assert_identical(&source, &node, &["admin", "reader", "locked"]);
    assert_eq!(marker::read(&node.influxd()).await.unwrap(), Some(a));
    assert_eq!(marker::read(&source.influxd()).await.unwrap(), Some(later));
    // The copy itself holds the later marker, which the node must not have taken.
    let aside = std::process::Command::new("influxd")
        .args([
            "restore",
            "-portable",
            "-host",
            &node.rpc(),
            "-db",
            "_gateway",
        ])
        .args(["-newdb", "copy_gateway"])
        .arg(received.dir())
        .output()
        .unwrap();
    assert!(aside.status.success(), "{aside:?}");
    // The tool exits before influxd has imported what it sent: wait for it.
    let http = node.http();
    let q = "SELECT \"index\" FROM applied";
    harness::wait_until("the copy's marker", Duration::from_secs(30), || {
        let v = http
            .try_query("copy_gateway", q)
            .map_err(|e| e.to_string())?;
        let index = v["results"][0]["series"][0]["values"][0][1].clone();
        Some(index).filter(|i| i == 1300).ok_or(v.to_string())
    });

    // The user whose password was given logs in with it, with its grants; the other is locked.
    let reader = Http::new(&node.config.http_addr()).with_auth("reader", "r3ader");
    reader.query_ok("db1", "SELECT count(*) FROM cpu");
    let denied = reader.try_query("db2", "SELECT count(*) FROM mem");
    assert!(denied.is_err(), "reader has no READ on db2: {denied:?}");
    let q = "SHOW DATABASES";
    for (node, status) in [(&source, 200), (&node, 401)] {
        let locked = Http::new(&node.config.http_addr()).with_auth("locked", "nobody knows");
        assert_eq!(locked.query("", q).unwrap().status, status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_or_corrupt_stream_of_a_real_copy_is_refused_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let source = Node::start("127.0.21.3", work.path());
    fill(&source, Marker { index: 10, term: 1 }).await;
    let copy = seed::take_copy(
        &Tools::default(),
        &source.rpc(),
        &source.influxd(),
        work.path(),
    )
    .await
    .unwrap();
    let mut bytes = Vec::new();
    seed::send(&copy, &mut bytes, &watch::channel(Progress::default()).0)
        .await
        .unwrap();
    let into = work.path().join("in");
    let receive = |bytes: Vec<u8>| {
        let into = into.clone();
        async move {
            let r = seed::receive(
                &mut bytes.as_slice(),
                &into,
                &watch::channel(Progress::default()).0,
            )
            .await;
            let left = std::fs::read_dir(&into).map_or(0, |d| d.count());
            (r, left)
        }
    };
    for cut in [0, 30, 50, bytes.len() / 2, bytes.len() - 5, bytes.len() - 1] {
        let (r, left) = receive(bytes[..cut].to_vec()).await;
        assert!(
            matches!(r, Err(SeedError::Stream(StreamError::Truncated(_)))),
            "cut {cut}: {r:?}"
        );
        assert_eq!(left, 0, "cut at {cut} left a directory");
    }
    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 0x10;
    let (r, left) = receive(bad).await;
    assert!(
        matches!(r, Err(SeedError::Stream(StreamError::Corrupt(_)))),
        "{r:?}"
    );
    assert_eq!(left, 0);
    let (r, left) = receive(bytes).await;
    assert_eq!(r.unwrap().files(), copy.files());
    assert_eq!(left, 1, "the received copy, until it is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_influxd_holding_data_is_refused_until_wiped_also_after_a_half_restore() {
    let work = tempfile::tempdir().unwrap();
    let (source, node) = (
        Node::start("127.0.21.5", work.path()),
        Node::start("127.0.21.6", work.path()),
    );
    let a = Marker { index: 99, term: 2 };
    fill(&source, a).await;
    let copy = seed::take_copy(
        &Tools::default(),
        &source.rpc(),
        &source.influxd(),
        work.path(),
    )
    .await
    .unwrap();
    let passwords: Passwords = [ADMIN].into_iter().collect();
    let restore = |n: &Node| {
        let (rpc, influxd) = (n.rpc(), n.influxd());
        let (copy, passwords) = (&copy, &passwords);
        async move { seed::restore(&Tools::default(), &rpc, &influxd, copy, passwords).await }
    };

    // Into the source itself: every database is held, the marker's too.
    let r = restore(&source).await;
    assert!(
        matches!(&r, Err(SeedError::NotEmpty { databases }) if databases.len() == 4),
        "{r:?}"
    );
    assert_eq!(marker::read(&source.influxd()).await.unwrap(), Some(a));

    // A node holding something else: refused, wiped, restored.
    node.run(&["CREATE DATABASE stale"]);
    let r = restore(&node).await;
    assert!(
        matches!(&r, Err(SeedError::NotEmpty { databases }) if databases == &["stale"]),
        "{r:?}"
    );
    assert_eq!(
        seed::wipe_for_seed(&node.influxd()).await.unwrap(),
        ["stale"]
    );
    restore(&node).await.unwrap();
    assert_identical(&source, &node, &["admin", "reader", "locked"]);

    // What a restore that stopped before its marker leaves: data, no marker. Refused, then
    // wiped (marker database first) and restored again.
    node.run(&["DROP DATABASE _gateway"]);
    let r = restore(&node).await;
    assert!(
        matches!(&r, Err(SeedError::NotEmpty { databases }) if databases.len() == 3),
        "{r:?}"
    );
    let wiped = seed::wipe_for_seed(&node.influxd()).await.unwrap();
    assert_eq!(wiped.len(), 3);
    seed::check_empty(&node.influxd()).await.unwrap();
    let restored = restore(&node).await.unwrap();
    assert_eq!(restored.marker, a);
    assert_identical(&source, &node, &["admin", "reader", "locked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_holding_deletes_its_restore_would_undo_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let source = Node::start("127.0.21.7", work.path());
    fill(&source, Marker { index: 5, term: 1 }).await;
    let (tools, rpc, influxd) = (Tools::default(), source.rpc(), source.influxd());
    // A backup writes influxd's cache out to TSM files; a delete after that leaves tombstones.
    drop(
        seed::take_copy(&tools, &rpc, &influxd, work.path())
            .await
            .unwrap(),
    );
    source
        .http()
        .query_ok("db1", "DELETE FROM cpu WHERE host = 'h1'");
    let r = seed::take_copy(&tools, &rpc, &influxd, work.path()).await;
    match r {
        Err(SeedError::PendingDeletes { shards }) => {
            assert!(!shards.is_empty() && shards.iter().all(|s| s.starts_with("db1.hot")));
        }
        r => panic!("{r:?}"),
    }
    let left = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(Result::ok);
    assert!(left
        .into_iter()
        .all(|e| !e.file_name().to_string_lossy().starts_with("seed-")));
}
