//! Series metadata of replicas that applied the same operations, one of them restarted since:
//! what influxd 1.6's index keeps of a rejected write or a dropped retention policy, with
//! `index-version = "inmem"` (influxd's default, which the harness and `scripts/cluster` run)
//! and `"tsi1"`. Under inmem, `SHOW SERIES`, `SHOW MEASUREMENTS` and `SHOW TAG VALUES` differ
//! while the points agree; tsi1 makes those agree but can leave a restarted influxd unable to
//! read a point a partly rejected batch stored (README, "Series metadata").

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::cluster::Slot;
use tests::influxd::Index;
use tests::Influxd;

/// The metadata statements compared, and one that reads the points.
const METADATA: [&str; 3] = [
    "SHOW SERIES",
    "SHOW MEASUREMENTS",
    "SHOW TAG VALUES WITH KEY = \"t\"",
];
const POINTS: &str = "SELECT * FROM /.*/";

/// One answer per statement, as influxd's JSON.
fn answers(influxd: &Influxd, statements: &[&str]) -> Vec<Value> {
    statements
        .iter()
        .map(|q| influxd.http().query_ok("db", q))
        .collect()
}

/// Two influxd with the same index version; the same operations go to both.
struct Pair {
    running: Influxd,
    restarted: Influxd,
    _dirs: tempfile::TempDir,
}

impl Pair {
    fn start(slot: &Slot, index: Index) -> Pair {
        let dirs = tempfile::tempdir().unwrap();
        let start = |n: u64| {
            let addr = format!("{}:18086", slot.ip(n));
            Influxd::start_with_index(&addr, &dirs.path().join(n.to_string()), index)
        };
        let pair = Pair {
            running: start(1),
            restarted: start(2),
            _dirs: dirs,
        };
        pair.query("CREATE DATABASE db");
        pair
    }

    fn both(&self) -> [&Influxd; 2] {
        [&self.running, &self.restarted]
    }

    fn query(&self, q: &str) {
        for i in self.both() {
            i.http().query_ok("db", q);
        }
    }

    /// Writes `lines` to both and checks both answer `status`.
    fn write(&self, params: &str, lines: &str, status: u16) {
        for i in self.both() {
            let r = i.http().write(&format!("db=db{params}"), lines).unwrap();
            assert_eq!(r.status, status, "{}: {}", i.addr, r.body);
        }
    }

    /// Restarts one of them, checks they hold the same points, and returns the metadata
    /// answers of the one that kept running and of the restarted one.
    fn restart_one(&mut self) -> (Vec<Value>, Vec<Value>) {
        // Right after the last operation: a write influxd answered survives a SIGKILL, even
        // the first into a new shard (recovery.rs,
        // influxd_killed_right_after_the_first_write_into_a_new_shard_keeps_it).
        self.restarted.restart();
        assert_eq!(
            answers(&self.running, &[POINTS]),
            answers(&self.restarted, &[POINTS]),
            "the points are the same on both"
        );
        (
            answers(&self.running, &METADATA),
            answers(&self.restarted, &METADATA),
        )
    }
}

/// A point rejected for a field type conflict, alone and beside an accepted point, each
/// naming a series that no accepted point has.
fn rejected_points(pair: &Pair) {
    pair.write("", "m,t=a f=1i 1000000000", 204);
    pair.write("", "m,t=b f=\"s\" 1000000000", 400);
    pair.write("", "m,t=c f=2i 2000000000\nm,t=d f=\"s\" 2000000000", 400);
}

/// A series written only into a retention policy that is then dropped.
fn dropped_retention_policy(pair: &Pair) {
    pair.write("", "m,t=a f=1i 1000000000", 204);
    pair.query("CREATE RETENTION POLICY other ON db DURATION 0s REPLICATION 1");
    pair.write("&rp=other", "x,t=r f=1i 1000000000", 204);
    pair.query("DROP RETENTION POLICY other ON db");
}

fn mentions(answers: &[Value], what: &str) -> bool {
    answers.iter().any(|a| a.to_string().contains(what))
}

#[test]
fn inmem_forgets_at_restart_the_series_of_rejected_points_and_tsi1_keeps_them() {
    let slot = Slot::acquire();

    let mut pair = Pair::start(&slot, Index::Inmem);
    rejected_points(&pair);
    let (running, restarted) = pair.restart_one();
    assert!(mentions(&running, "m,t=b") && mentions(&running, "m,t=d"));
    assert!(!mentions(&restarted, "m,t=b") && !mentions(&restarted, "m,t=d"));
    assert_ne!(running, restarted, "inmem: the replicas' metadata differ");
    drop(pair);

    let mut pair = Pair::start(&slot, Index::Tsi1);
    rejected_points(&pair);
    let (running, restarted) = pair.restart_one();
    assert_eq!(running, restarted, "tsi1: the replicas' metadata agree");
    assert!(
        mentions(&restarted, "m,t=b"),
        "tsi1 keeps the rejected point's series, on every replica alike: {restarted:?}"
    );
}

#[test]
fn inmem_forgets_at_restart_the_series_of_a_dropped_retention_policy_and_tsi1_agrees() {
    let slot = Slot::acquire();

    let mut pair = Pair::start(&slot, Index::Inmem);
    dropped_retention_policy(&pair);
    let (running, restarted) = pair.restart_one();
    assert!(mentions(&running, "x,t=r") && !mentions(&restarted, "x,t=r"));
    assert_ne!(running, restarted, "inmem: the replicas' metadata differ");
    drop(pair);

    let mut pair = Pair::start(&slot, Index::Tsi1);
    dropped_retention_policy(&pair);
    let (running, restarted) = pair.restart_one();
    assert_eq!(running, restarted, "tsi1: the replicas' metadata agree");
    assert!(!mentions(&restarted, "x,t=r"), "{restarted:?}");
}

/// Where tsi1 is worse: a batch that gives a field to a shard for the first time and also
/// holds a point with another type for it is partly rejected; influxd 1.6 then stores the
/// accepted point but, under tsi1, does not persist the new field, so once restarted it can
/// no longer read that point. inmem rebuilds the fields from the points at start.
#[test]
fn tsi1_loses_at_restart_the_field_of_a_partly_rejected_batch_and_inmem_does_not() {
    let slot = Slot::acquire();
    let read_g = ["SELECT g FROM m", "SHOW FIELD KEYS FROM m"];
    for index in [Index::Inmem, Index::Tsi1] {
        let mut pair = Pair::start(&slot, index);
        pair.write("", "m,t=a f=1i 1000000000", 204);
        let batch = "m,t=a g=1i 3000000000\nm,t=e g=\"s\" 3000000000";
        pair.write("", batch, 400);
        pair.restarted.restart();
        let (running, restarted) = (
            answers(&pair.running, &read_g),
            answers(&pair.restarted, &read_g),
        );
        assert!(mentions(&running, "3000000000") || mentions(&running, "00:00:03Z"));
        match index {
            Index::Inmem => assert_eq!(running, restarted, "inmem: the same point is read"),
            Index::Tsi1 => assert!(
                !mentions(&restarted, "00:00:03Z") && !mentions(&restarted, "\"g\""),
                "tsi1: the restarted influxd no longer knows field g: {restarted:?}"
            ),
        }
    }
}

/// A copy made with influxd's portable backup and restore, as the gateway seeds a node, has
/// its index rebuilt from the points: none of the rejected points' series, under either
/// index. `DROP SERIES` naming each such series exactly makes source and copy agree, except
/// that tsi1 still lists the dropped series' tag values.
#[test]
fn a_restored_copy_lacks_the_series_of_rejected_points_until_they_are_dropped() {
    let slot = Slot::acquire();
    for index in [Index::Inmem, Index::Tsi1] {
        let pair = Pair::start(&slot, index);
        rejected_points(&pair);
        let dirs = tempfile::tempdir().unwrap();
        let backup = dirs.path().join("backup");
        influxd_tool(
            &["backup", "-portable", "-host", &pair.running.rpc_addr()],
            &backup,
        );
        let addr = format!("{}:18086", slot.ip(3));
        let copy = Influxd::start_with_index(&addr, &dirs.path().join("3"), index);
        influxd_tool(
            &["restore", "-portable", "-host", &copy.rpc_addr()],
            &backup,
        );
        // The restored shard opens shortly after the tool returns ("engine is closed" until then).
        let points = answers(&pair.running, &[POINTS]);
        tests::wait_until("the copy's points", Duration::from_secs(20), || {
            let copied = copy
                .http()
                .try_query("db", POINTS)
                .map_err(|e| e.to_string())?;
            if [copied.clone()] == points[..] {
                Ok(())
            } else {
                Err(copied.to_string())
            }
        });
        let (running, copied) = (answers(&pair.running, &METADATA), answers(&copy, &METADATA));
        assert!(mentions(&running, "m,t=b") && !mentions(&copied, "m,t=b"));
        assert_ne!(
            running, copied,
            "{index:?}: the copy lists only series with points"
        );

        // m has one tag key, so `t = 'b'` names exactly the series m,t=b.
        for i in [&pair.running, &copy] {
            for t in ["b", "d"] {
                i.http()
                    .query_ok("db", &format!("DROP SERIES FROM m WHERE t = '{t}'"));
            }
        }
        let series = ["SHOW SERIES", "SHOW MEASUREMENTS"];
        assert_eq!(answers(&pair.running, &series), answers(&copy, &series));
        let tag_values = [METADATA[2]];
        let (running, copied) = (
            answers(&pair.running, &tag_values),
            answers(&copy, &tag_values),
        );
        match index {
            Index::Inmem => assert_eq!(running, copied),
            // tsi1 keeps listing the dropped series' tag values.
            Index::Tsi1 => assert!(mentions(&running, "\"d\"") && !mentions(&copied, "\"d\"")),
        }
        assert_eq!(answers(&pair.running, &[POINTS]), answers(&copy, &[POINTS]));
    }
}

fn influxd_tool(args: &[&str], dir: &Path) {
    let out = Command::new("influxd")
        .args(args)
        .arg(dir)
        .output()
        .expect("influxd (Debian package influxdb) runs");
    assert!(
        out.status.success(),
        "influxd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
