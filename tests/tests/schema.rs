//! State-changing queries travel through the log in order with the writes; reads can be made
//! linearizable.

use std::time::Duration;

use tests::Cluster;

const CONVERGE: Duration = Duration::from_secs(30);

#[test]
fn ddl_through_one_node_applies_everywhere_in_order_with_writes() {
    let c = Cluster::start(3);
    let r = c.node(2).api().query("", "CREATE DATABASE db").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // The answer is influxd's own JSON, from the node asked, once applied there.
    assert_eq!(
        r.json(),
        serde_json::json!({"results":[{"statement_id":0}]})
    );
    for n in &c.nodes {
        let dbs = n.influx().query_ok("", "SHOW DATABASES")["results"][0]["series"][0]["values"]
            .to_string();
        assert!(dbs.contains("\"db\""), "node {}: {dbs}", n.id);
    }

    // Writes, a DROP MEASUREMENT, more writes: through three different nodes, and every
    // replica ends with exactly the writes made after the drop.
    let before = (0..20)
        .map(|i| format!("m,when=before v={i}i {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    let r = c.node(1).api().write("db=db", &before).unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    let r = c.node(2).api().query("db", "DROP MEASUREMENT m").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let after = (0..5)
        .map(|i| format!("m,when=after v={i}i {}", 100 + i))
        .collect::<Vec<_>>()
        .join("\n");
    let r = c.node(3).api().write("db=db", &after).unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    c.wait_converged("db", "m", 5, CONVERGE);
    for (id, rows) in c.rows_everywhere("db", "m") {
        assert!(
            rows.iter().all(|r| r.to_string().contains("after")),
            "node {id} kept points written before the drop: {rows:?}"
        );
    }

    // Several statements at once, one of them writing: through the log, whole.
    let r = c
        .node(1)
        .api()
        .query(
            "db",
            "CREATE RETENTION POLICY week ON db DURATION 7d REPLICATION 1; SHOW DATABASES",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for n in &c.nodes {
        let rps = n
            .influx()
            .query_ok("db", "SHOW RETENTION POLICIES")
            .to_string();
        assert!(rps.contains("\"week\""), "node {}: {rps}", n.id);
    }

    // A statement influxd rejects is rejected the same way, and reported as influxd does.
    let r = c
        .node(3)
        .api()
        .query(
            "",
            "CREATE RETENTION POLICY x ON nowhere DURATION 1d REPLICATION 1",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["results"][0]["error"].is_string(), "{}", r.body);

    // The gateway's own bookkeeping database cannot be dropped.
    let r = c.node(1).api().query("", "DROP DATABASE _gateway").unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
}

#[test]
fn linearizable_read_sees_a_write_acknowledged_by_another_node() {
    let c = Cluster::start(3);
    c.create_database(1, "db");
    for i in 0..30u64 {
        let writer = c.node(i % 3 + 1).api();
        let reader = c.node((i + 1) % 3 + 1).api();
        let r = writer.write("db=db", &format!("lin v={i}i {i}")).unwrap();
        assert_eq!(r.status, 204, "{}", r.body);
        let r = reader
            .send(
                "GET",
                &format!(
                    "/query?db=db&consistency=linearizable&q={}",
                    tests::http::encode("SELECT count(v) FROM lin")
                ),
                &[],
                &[],
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let count = r.json()["results"][0]["series"][0]["values"][0][1].as_u64();
        assert_eq!(
            count,
            Some(i + 1),
            "a linearizable read after write {i} saw {}",
            r.body
        );
    }
}
