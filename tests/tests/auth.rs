//! Authentication with influxd's own users: the gateway creates its admin account on a fresh
//! influxd, checks credentials and privileges before proposing anything, and a wiped influxd
//! gets its users back from the log.

use std::time::Duration;

use tests::{wait_until, Cluster, HttpError};

const ADMIN: (&str, &str) = ("gw-admin", "s3cret'\"x");
const CONVERGE: Duration = Duration::from_secs(30);

#[test]
fn credentials_and_privileges_are_checked_and_users_survive_a_wipe() {
    let mut c = Cluster::start_with_auth(3, ADMIN);
    let admin = c.node(1).api().with_auth(ADMIN.0, ADMIN.1);
    c.wait_ready(&[1, 2, 3], CONVERGE);

    // State changes need an admin.
    let r = c.node(1).api().query("", "CREATE DATABASE db").unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    for q in [
        "CREATE DATABASE db",
        "CREATE USER writer WITH PASSWORD 'wpass'",
        "GRANT WRITE ON db TO writer",
        "CREATE USER reader WITH PASSWORD 'rpass'",
        "GRANT READ ON db TO reader",
    ] {
        admin.query_ok("", q);
    }
    let r = c
        .node(2)
        .api()
        .with_auth("writer", "wpass")
        .query("", "CREATE DATABASE other")
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);

    // Writes: the right user, a wrong password, no credentials, a user without WRITE, and the
    // u/p parameters and `Token` scheme influxd also accepts.
    let api3 = c.node(3).api();
    let as_user = |user, password| api3.clone().with_auth(user, password);
    let failed = Some("authorization failed");
    for (api, query, lines, status, error) in [
        (as_user("writer", "wpass"), "db=db", "m v=1 1", 204, None),
        (as_user("writer", "nope"), "db=db", "m v=2 2", 401, failed),
        (api3.clone(), "db=db", "m v=3 3", 401, None),
        (as_user("reader", "rpass"), "db=db", "m v=4 4", 403, None),
        (api3.clone(), "db=db&u=writer&p=wpass", "m v=5 5", 204, None),
    ] {
        let r = api.write(query, lines).unwrap();
        assert_eq!(r.status, status, "{lines}: {}", r.body);
        if let Some(error) = error {
            assert_eq!(r.error(), error);
        }
    }
    let token = [("Authorization", "Token writer:wpass")];
    let r = api3.write_bytes("db=db", &token, b"m v=6 6").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    c.wait_converged("db", "m", 3, CONVERGE);

    // Reads go to influxd with the client's credentials, and influxd decides.
    let r = c
        .node(2)
        .api()
        .with_auth("reader", "rpass")
        .query("db", "SELECT * FROM m")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["results"][0]["series"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // influxd wiped: the gateway recreates its admin account, then the log brings back the
    // users, their grants and the points.
    let reference = users(&c, 1).unwrap();
    let n3 = c.node_mut(3);
    n3.influxd.kill();
    n3.influxd.wipe();
    n3.influxd.start_again();
    wait_until("node 3's users rebuilt", CONVERGE, || {
        let now = users(&c, 3).map_err(|e| e.to_string())?;
        if now == reference {
            Ok(())
        } else {
            Err(now)
        }
    });
    c.wait_converged("db", "m", 3, CONVERGE);
    // Ready only now: right after the wipe the node may not have noticed it yet, and while
    // it rebuilds it refuses writes that would wait on its influxd.
    c.wait_ready(&[3], CONVERGE);
    let r = api3
        .with_auth("writer", "wpass")
        .write("db=db", "m v=7 7")
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
}

/// Users and the writer's grants on a node's influxd, as its admin sees them.
fn users(c: &Cluster, id: u64) -> Result<String, HttpError> {
    let http = c.node(id).influx();
    let mut out = String::new();
    for q in ["SHOW USERS", "SHOW GRANTS FOR writer"] {
        out += &http.try_query("", q)?["results"][0].to_string();
    }
    Ok(out)
}
