//! `/debug/vars`, `/debug/pprof/*` and `/debug/requests` through the gateway answer as the
//! local influxd's do (with authentication enabled too, where influxd 1.6 asks for none), and
//! `/debug/vars` carries the gateway's own figures under `gateway`.

use std::collections::BTreeSet;
use std::time::Duration;

use tests::{wait_until, Cluster, Http};

const ADMIN: (&str, &str) = ("gw-admin", "s3cret");
const SETTLE: Duration = Duration::from_secs(30);

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The same request to the gateway and to its influxd: the same status.
fn same_status(gateway: &Http, influxd: &Http, path: &str) -> u16 {
    let ours = gateway.get(path).unwrap();
    let theirs = influxd.get(path).unwrap();
    assert_eq!(ours.status, theirs.status, "{path}: {}", ours.body);
    ours.status
}

#[test]
fn debug_endpoints_are_influxds_with_the_gateways_figures() {
    let mut c = Cluster::start(1);
    c.create_database(1, "db");
    let api = c.node(1).api();
    api.write_ok("db=db", "m v=1 1\nm v=2 2");
    let influxd = c.node(1).influx();

    // influxd's object, with one more key: compared once the applier's marker writes settle.
    let vars = wait_until("/debug/vars as influxd's plus gateway", SETTLE, || {
        let ours = api.get("/debug/vars").unwrap();
        assert_eq!(ours.status, 200, "{}", ours.body);
        assert!(
            ours.header("Content-Type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{:?}",
            ours.headers
        );
        let ours = ours.json();
        let mut theirs = keys(&influxd.get("/debug/vars").unwrap().json());
        theirs.insert("gateway".into());
        if keys(&ours) == theirs {
            Ok(ours)
        } else {
            Err(format!("{:?} vs {theirs:?}", keys(&ours)))
        }
    });
    assert!(vars["memstats"]["Alloc"].is_u64(), "{}", vars["memstats"]);
    let g = &vars["gateway"];
    assert_eq!(g["name"], "gateway");
    assert_eq!(g["tags"]["node"], "1");
    let v = &g["values"];
    assert!(v["raftTerm"].as_u64() >= Some(1), "{g}");
    assert!(v["raftCommitIndex"].as_u64() >= Some(3), "{g}");
    assert!(v["appliedIndex"].as_u64() >= Some(3), "{g}");
    assert_eq!(v["raftIsLeader"], 1, "{g}");
    assert_eq!(v["influxdUp"], 1, "{g}");
    assert_eq!(v["writeReq"], 1, "{g}");
    assert_eq!(v["pointsWritten"], 2, "{g}");
    assert!(v["logDiskEntries"].as_u64() >= Some(3), "{g}");

    // Profiles, the request tracker and their errors are influxd's own.
    assert_eq!(same_status(&api, &influxd, "/debug/pprof/"), 200);
    let index = api.get("/debug/pprof/").unwrap().body;
    assert!(
        index.contains("goroutine") && index.contains("heap"),
        "{index}"
    );
    assert!(api
        .get("/debug/pprof/cmdline")
        .unwrap()
        .body
        .contains("influxd"));
    let profile = api.get("/debug/pprof/profile?seconds=1").unwrap();
    assert_eq!(profile.status, 200, "{}", profile.body);
    assert!(!profile.body.is_empty());
    assert_eq!(
        same_status(&api, &influxd, "/debug/pprof/heap?debug=1"),
        200
    );
    let requests = api.get("/debug/requests?seconds=1").unwrap();
    assert_eq!(requests.status, 200, "{}", requests.body);
    assert!(requests.json().is_object(), "{}", requests.body);
    assert_eq!(
        same_status(&api, &influxd, "/debug/requests?seconds=x"),
        400
    );
    assert_eq!(same_status(&api, &influxd, "/debug/nothing"), 404);

    // influxd down: its endpoints are unavailable, the gateway's figures are not.
    c.node_mut(1).influxd.kill();
    let r = api.get("/debug/pprof/").unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    let r = api.get("/debug/vars").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let alone = r.json();
    assert_eq!(keys(&alone), BTreeSet::from(["gateway".to_owned()]));
    assert_eq!(alone["gateway"]["tags"]["node"], "1");
}

#[test]
fn debug_endpoints_need_no_credentials_as_in_influxd() {
    let c = Cluster::start_with_auth(1, ADMIN);
    let api = c.node(1).api();
    // Without credentials, as influxd 1.6 serves them even with auth-enabled.
    let influxd = Http::new(&c.node(1).influxd.addr);
    for path in ["/debug/vars", "/debug/pprof/", "/debug/requests?seconds=1"] {
        assert_eq!(same_status(&api, &influxd, path), 200, "{path}");
    }
    let vars = api.get("/debug/vars").unwrap().json();
    assert!(vars["gateway"]["values"].is_object(), "{vars}");
    // Everything else still asks for them.
    let r = api.query("", "CREATE DATABASE db").unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
}
