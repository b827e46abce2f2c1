//! The InfluxDB clients users run, against a real 3-node cluster: the Python clients
//! (`influxdb` for the 1.x API, `influxdb-client` for 2.x), the Node.js clients (`influx`,
//! `@influxdata/influxdb-client`) and the influx CLI. Each writes through every node with its
//! own write API and reads back with its own query API (the 2.x clients through `/query`: their
//! query API is Flux, which influxd 1.6 does not have), and every node's influxd must then
//! hold exactly those points, with the field types the client meant.
//!
//! The drivers live in `tests/clients/` (installed by `scripts/clients`, which this test runs:
//! a no-op when they are installed). Every client is reached through an [`Endpoint`], a base
//! URL and, for https, the CA to trust: over plain HTTP, and over the gateway's HTTPS.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::cluster::{Node, Secured, API_PORT, UDP_PORT};
use tests::{wait_until, Cluster, Http};

const DB: &str = "clients";
const POINTS: usize = 3;
const CONVERGE: Duration = Duration::from_secs(30);
/// A driver has its own 30 s request timeouts; this only stops a hung one from hanging the test.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(120);
const ADMIN: (&str, &str) = ("admin", "pa ss'word");

/// Where a client reaches a node's API: a base URL and, for https, the CA the server's
/// certificate must chain to (the only one the client then trusts).
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    ca: Option<PathBuf>,
}

impl Endpoint {
    fn plain(node: &Node) -> Endpoint {
        Endpoint {
            url: format!("http://{}:{API_PORT}", node.ip),
            ca: None,
        }
    }

    /// `host` is what the client dials (an address the server's certificate names).
    fn https(host: &str, port: u16, ca: &Path) -> Endpoint {
        Endpoint {
            url: format!("https://{host}:{port}"),
            ca: Some(ca.to_owned()),
        }
    }

    fn host_port(&self) -> (&str, u16) {
        let authority = self.url.split_once("://").expect("a URL").1;
        let (host, port) = authority.rsplit_once(':').expect("host:port");
        (host, port.parse().expect("a port"))
    }

    fn http(&self) -> Http {
        Http::url(&self.url, self.ca.as_deref()).unwrap_or_else(|e| panic!("{e}"))
    }
}

#[derive(Debug, Clone, Copy)]
enum Client {
    /// PyPI `influxdb`: `write_points`, `query`.
    PythonV1,
    /// PyPI `influxdb-client`: the write API on `/api/v2/write`.
    PythonV2,
    /// PyPI `influxdb` in its UDP mode: `write_points` as a datagram to the node's UDP
    /// listener, `query` over HTTP. Not in [`EVERY_CLIENT`]: UDP has neither TLS nor
    /// credentials.
    PythonUdp,
    /// npm `influx`: `writePoints`, `query`.
    NodeV1,
    /// npm `@influxdata/influxdb-client`: the write API on `/api/v2/write`.
    NodeV2,
    /// The influx CLI of Debian's `influxdb-client`: `INSERT` and `SELECT` in `-execute`.
    Cli,
}

const EVERY_CLIENT: [Client; 5] = [
    Client::PythonV1,
    Client::PythonV2,
    Client::NodeV1,
    Client::NodeV2,
    Client::Cli,
];

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::PythonV1 => "py1",
            Client::PythonV2 => "py2",
            Client::PythonUdp => "pyudp",
            Client::NodeV1 => "js1",
            Client::NodeV2 => "js2",
            Client::Cli => "cli",
        }
    }
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Installs the clients at their pinned versions, once per test process (a no-op when they
/// already are), as the gateway binary is built on demand: a test never runs without them.
fn installed() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/clients");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Runs `cmd` to completion, within [`DRIVER_TIMEOUT`].
fn run(mut cmd: Command) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + DRIVER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {DRIVER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// What a client run gave: the points it read back (in the drivers' shape), or its error.
fn run_client(
    client: Client,
    at: &Endpoint,
    measurement: &str,
    credentials: Option<(&str, &str)>,
) -> Result<Vec<Value>, String> {
    installed();
    if let Client::Cli = client {
        return run_cli(at, measurement, credentials);
    }
    let dir = clients_dir();
    let mut cmd = match client {
        Client::PythonV1 | Client::PythonV2 | Client::PythonUdp => {
            Command::new(dir.join(".venv/bin/python"))
        }
        _ => Command::new("node"),
    };
    cmd.arg(dir.join(match client {
        Client::PythonV1 => "v1.py",
        Client::PythonV2 => "v2.py",
        Client::PythonUdp => "udp.py",
        Client::NodeV1 => "v1.js",
        Client::NodeV2 => "v2.js",
        Client::Cli => unreachable!(),
    }));
    cmd.args(["--url", &at.url, "--db", DB, "--measurement", measurement]);
    cmd.args(["--points", &POINTS.to_string()]);
    if let Client::PythonUdp = client {
        cmd.args(["--udp-port", &UDP_PORT.to_string()]);
    }
    if let Some(ca) = &at.ca {
        cmd.arg("--ca").arg(ca);
    }
    if let Some((user, password)) = credentials {
        cmd.args(["--username", user, "--password", password]);
    }
    let out = run(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {stderr}",
            client.name(),
            out.status
        ));
    }
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {stdout}", client.name()));
    Ok(result["read"].as_array().cloned().unwrap_or_default())
}

/// The influx CLI: creates the database, `INSERT`s the points, `SELECT`s them back. Over
/// https it trusts the endpoint's CA through `SSL_CERT_FILE`, as Go reads it on Linux.
fn run_cli(
    at: &Endpoint,
    measurement: &str,
    credentials: Option<(&str, &str)>,
) -> Result<Vec<Value>, String> {
    let (host, port) = at.host_port();
    let influx = |args: &[&str]| -> Result<String, String> {
        let mut cmd = Command::new("influx");
        cmd.args(["-host", host, "-port", &port.to_string()]);
        if let Some(ca) = &at.ca {
            cmd.arg("-ssl").env("SSL_CERT_FILE", ca);
            // Go adds every file of SSL_CERT_DIR (or of the system's directories) to the
            // roots: a directory that does not exist leaves the CA file the only root.
            cmd.env("SSL_CERT_DIR", "/nonexistent");
        }
        if let Some((user, password)) = credentials {
            cmd.args(["-username", user, "-password", password]);
        }
        cmd.args(args);
        let out = run(cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The CLI exits 0 after an INSERT or a query that failed: its ERR line tells.
        if !out.status.success() || text.contains("ERR:") || text.contains("Failed to connect") {
            return Err(format!("influx {args:?} ({}): {text}", out.status));
        }
        Ok(text)
    };
    influx(&["-execute", &format!("CREATE DATABASE \"{DB}\"")])?;
    let inserts: Vec<String> = (0..POINTS)
        .map(|i| {
            format!(
                "INSERT {measurement},host=h{i} value={i}.5,count={i}i,label=\"point {i}\",ok={} {}",
                i % 2 == 0,
                BASE_TIME + i as u64
            )
        })
        .collect();
    influx(&[
        "-database",
        DB,
        "-precision",
        "s",
        "-execute",
        &inserts.join("\n"),
    ])?;
    let text = influx(&[
        "-database",
        DB,
        "-precision",
        "s",
        "-format",
        "json",
        "-execute",
        &format!("SELECT * FROM \"{measurement}\""),
    ])?;
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("influx SELECT: not JSON ({e}): {text}"))?;
    let series = &v["results"][0]["series"][0];
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rows = series["values"].as_array().cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .map(|row| {
            let get = |name: &str| {
                columns
                    .iter()
                    .position(|c| *c == name)
                    .map_or(Value::Null, |i| row[i].clone())
            };
            json!({"time": get("time"), "host": get("host"), "value": get("value"),
                   "count": get("count"), "label": get("label"), "ok": get("ok")})
        })
        .collect())
}

const BASE_TIME: u64 = 1_700_000_000;

/// The points every client writes, in the drivers' shape (see tests/clients/common.py).
fn expected_points() -> Vec<Value> {
    (0..POINTS)
        .map(|i| {
            json!({"time": BASE_TIME + i as u64, "host": format!("h{i}"), "value": i as f64 + 0.5,
                   "count": i, "label": format!("point {i}"), "ok": i % 2 == 0})
        })
        .collect()
}

/// The same points as `SELECT *` returns them from influxd: time, then fields and tags by name.
fn expected_rows() -> Vec<Value> {
    (0..POINTS)
        .map(|i| {
            json!([
                format!("2023-11-14T22:13:2{i}Z"),
                i,
                format!("h{i}"),
                format!("point {i}"),
                i % 2 == 0,
                i as f64 + 0.5
            ])
        })
        .collect()
}

/// Every node's influxd holds exactly the points of `measurement`, with the types a client
/// meant (an integer `count`, not a float).
fn assert_on_every_replica(c: &Cluster, measurement: &str) {
    c.wait_converged(DB, measurement, POINTS, CONVERGE);
    for n in &c.nodes {
        let influxd = n.influx();
        assert_eq!(
            influxd.rows(DB, measurement),
            expected_rows(),
            "{measurement} on node {}",
            n.id
        );
        let keys = influxd.query_ok(DB, &format!("SHOW FIELD KEYS FROM \"{measurement}\""));
        assert_eq!(
            keys["results"][0]["series"][0]["values"],
            json!([
                ["count", "integer"],
                ["label", "string"],
                ["ok", "boolean"],
                ["value", "float"]
            ]),
            "field types of {measurement} on node {}",
            n.id
        );
    }
}

/// No node's influxd holds any point of `measurement`.
fn assert_nowhere(c: &Cluster, measurement: &str) {
    for n in &c.nodes {
        let rows = n.influx().rows(DB, measurement);
        assert!(
            rows.is_empty(),
            "{measurement} was written on node {}: {rows:?}",
            n.id
        );
    }
}

/// The database exists on every node's influxd, created through `api` (any node's).
fn create_database(c: &Cluster, api: &Http) {
    api.query_ok("", &format!("CREATE DATABASE \"{DB}\""));
    for n in &c.nodes {
        wait_until(&format!("{DB} on node {}", n.id), CONVERGE, || {
            let v = n
                .influx()
                .try_query("", "SHOW DATABASES")
                .map_err(|e| e.to_string())?;
            let dbs = v["results"][0]["series"][0]["values"].to_string();
            if dbs.contains(&format!("\"{DB}\"")) {
                Ok(())
            } else {
                Err(dbs)
            }
        });
    }
}

/// `client` writes through each node of `c` in turn (leader and followers), reaching it at
/// `endpoint(node)`, each time into its own measurement; it reads back what it wrote, and every
/// replica holds it. Over HTTPS: a cluster serving it, and `endpoint` returning
/// `Endpoint::https(&node.ip, API_PORT, ca)`.
fn writes_through_every_node(c: &Cluster, client: Client, endpoint: impl Fn(&Node) -> Endpoint) {
    // The 2.x clients cannot create a database; the others create it again, which is no error.
    create_database(c, &endpoint(c.node(1)).http());
    for n in &c.nodes {
        let measurement = format!("{}_via{}", client.name(), n.id);
        let read = run_client(client, &endpoint(n), &measurement, None)
            .unwrap_or_else(|e| panic!("through node {}: {e}", n.id));
        assert_eq!(
            read,
            expected_points(),
            "{measurement} as the client read it"
        );
    }
    for n in &c.nodes {
        assert_on_every_replica(c, &format!("{}_via{}", client.name(), n.id));
    }
}

#[test]
fn python_influxdb_client_writes_and_reads_through_every_node() {
    writes_through_every_node(&Cluster::start(3), Client::PythonV1, Endpoint::plain);
}

#[test]
fn python_influxdb_client_v2_writes_through_every_node() {
    writes_through_every_node(&Cluster::start(3), Client::PythonV2, Endpoint::plain);
}

/// Against nodes listening for UDP into the clients' database, at the second precision the
/// client sends: each node's datagram reaches every replica through the log.
#[test]
fn python_influxdb_client_writes_over_udp_through_every_node() {
    let bind = format!("{{ip}}:{UDP_PORT}");
    let udp = [
        "--udp-bind",
        &bind,
        "--udp-database",
        DB,
        "--udp-precision",
        "s",
    ];
    let c = Cluster::start_with(3, &[&udp[..], &["--udp-batch-timeout", "100ms"]].concat());
    writes_through_every_node(&c, Client::PythonUdp, Endpoint::plain);
}

#[test]
fn node_influx_client_writes_and_reads_through_every_node() {
    writes_through_every_node(&Cluster::start(3), Client::NodeV1, Endpoint::plain);
}

#[test]
fn node_influxdb_client_v2_writes_through_every_node() {
    writes_through_every_node(&Cluster::start(3), Client::NodeV2, Endpoint::plain);
}

#[test]
fn influx_cli_writes_and_reads_through_every_node() {
    writes_through_every_node(&Cluster::start(3), Client::Cli, Endpoint::plain);
}

/// With authentication on, each client's way of sending credentials (HTTP Basic from the 1.x
/// clients and the CLI, `Token user:password` from the 2.x clients, for writes and reads) is
/// accepted with the right password, and a wrong one fails the client with influxd's
/// `authorization failed` and writes nothing.
#[test]
fn every_client_authenticates_and_a_wrong_password_writes_nothing() {
    let c = Cluster::start_with_auth(3, ADMIN);
    c.wait_ready(&[1, 2, 3], CONVERGE);
    create_database(&c, &c.node(1).api().with_auth(ADMIN.0, ADMIN.1));
    for (i, client) in EVERY_CLIENT.into_iter().enumerate() {
        let node = c.node(i as u64 % 3 + 1);
        let measurement = format!("{}_auth", client.name());
        let read = run_client(client, &Endpoint::plain(node), &measurement, Some(ADMIN))
            .unwrap_or_else(|e| panic!("through node {}: {e}", node.id));
        assert_eq!(
            read,
            expected_points(),
            "{measurement} as the client read it"
        );

        let refused = format!("{}_refused", client.name());
        let wrong = (ADMIN.0, "wrong");
        match run_client(client, &Endpoint::plain(node), &refused, Some(wrong)) {
            Ok(read) => panic!("{refused}: a wrong password was accepted: {read:?}"),
            Err(e) => assert!(e.contains("authorization failed"), "{refused}: {e}"),
        }
    }
    for client in EVERY_CLIENT {
        assert_on_every_replica(&c, &format!("{}_auth", client.name()));
    }
    for client in EVERY_CLIENT {
        assert_nowhere(&c, &format!("{}_refused", client.name()));
    }
}

/// Over the gateway's own HTTPS, every client works through every node, trusting the cluster
/// CA it is given and only that: told to trust another CA, it refuses the connection before
/// sending anything.
#[test]
fn over_https_every_client_works_and_verifies_the_certificate_against_the_given_ca() {
    let c = Cluster::start_with_tls(3, Secured::PeersAndApi, &[]);
    let ca = c.tls.as_ref().expect("a TLS cluster").ca.cert.clone();
    let foreign = harness::tls::Ca::new(c.dir.path(), "foreign-ca").unwrap();
    for client in EVERY_CLIENT {
        writes_through_every_node(&c, client, |n| Endpoint::https(&n.ip, API_PORT, &ca));
    }
    for (i, client) in EVERY_CLIENT.into_iter().enumerate() {
        let node = c.node(i as u64 % 3 + 1);
        let refused = format!("{}_foreign_ca", client.name());
        let distrusting = Endpoint::https(&node.ip, API_PORT, &foreign.cert);
        match run_client(client, &distrusting, &refused, None) {
            Ok(read) => {
                panic!("{refused}: a certificate of an untrusted CA was accepted: {read:?}")
            }
            Err(e) => assert!(
                [
                    "certificate verify failed",
                    "unable to verify",
                    "unknown authority"
                ]
                .iter()
                .any(|why| e.contains(why)),
                "{refused}: not refused for its certificate: {e}"
            ),
        }
    }
    for client in EVERY_CLIENT {
        assert_nowhere(&c, &format!("{}_foreign_ca", client.name()));
    }
}
