//! A real cluster: N influxd processes and N gateway processes, node i on 127.0.S.i where S is
//! a slot this test holds (so tests run in parallel without port clashes, and every gateway
//! listens on :8086 as in production).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use harness::gateway::{self, Peers, Profile};
use harness::{wait_until, Http, HttpError, Process, Response};

use crate::influxd::Influxd;

pub const API_PORT: u16 = 8086;
pub const PEER_PORT: u16 = 8089;
pub const INFLUXD_PORT: u16 = 18086;
/// Where the tests' UDP listeners bind (`--udp-bind {ip}:8189`): not the peer port, 8089.
pub const UDP_PORT: u16 = 8189;

/// The gateway binary of this workspace, built once per process (a no-op when up to date) so
/// a test never runs a stale binary. Built in the profile this code was built in: tests get a
/// debug gateway, the release benchmark a release one.
pub fn gateway_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| gateway::binary(Profile::of_this_build()).unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

/// Exclusive use of the loopback range 127.0.S.0/24 for this process, by file lock.
pub struct Slot {
    pub n: u8,
    _lock: fs::File,
}

impl Slot {
    pub fn acquire() -> Slot {
        let dir = std::env::temp_dir().join("influx-gateway-test-slots");
        fs::create_dir_all(&dir).unwrap();
        for n in 10..=250u8 {
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("{n}.lock")))
                .unwrap();
            if f.try_lock().is_ok() {
                return Slot { n, _lock: f };
            }
        }
        panic!("no free test slot in 127.0.10-250.x");
    }

    pub fn ip(&self, node: u64) -> String {
        format!("127.0.{}.{node}", self.n)
    }
}

pub struct Gateway {
    pub id: u64,
    process: Process,
}

impl Gateway {
    /// SIGKILL: the node gets no chance to do anything.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub fn start(&mut self) {
        self.process.start().unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Starts from `file` (`GATEWAY_CONFIG`: its settings are the flags' defaults) from the
    /// next start on; the flags the cluster gave still win.
    pub fn set_config_file(&mut self, file: &Path) {
        self.process
            .set_env("GATEWAY_CONFIG", file.to_str().expect("a UTF-8 path"));
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

pub struct Node {
    pub id: u64,
    pub ip: String,
    pub influxd: Influxd,
    pub gateway: Gateway,
    /// The CA of the API's certificate, when the API serves HTTPS.
    pub api_ca: Option<PathBuf>,
}

impl Node {
    /// The gateway's API, over HTTPS if it serves it.
    pub fn api(&self) -> Http {
        let addr = format!("{}:{API_PORT}", self.ip);
        match &self.api_ca {
            Some(ca) => Http::https(&addr, ca).unwrap_or_else(|e| panic!("{e}")),
            None => Http::new(&addr),
        }
    }

    /// The node's influxd, directly.
    pub fn influx(&self) -> Http {
        self.influxd.http()
    }
}

/// Fields drop in this order: the processes go first, then the file systems mounted for them,
/// then the directory that held them all.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// File systems mounted under nodes' directories before they started.
    pub mounts: Vec<harness::Tmpfs>,
    pub dir: tempfile::TempDir,
    pub tls: Option<ClusterTls>,
    pub slot: Slot,
    /// The gateway binary every node runs.
    pub binary: PathBuf,
}

/// TLS in a test cluster: a CA of its own, a certificate it signs for each node (its IP and
/// `localhost`), used on the links `Secured` names.
pub struct ClusterTls {
    pub ca: harness::tls::Ca,
    pub secured: Secured,
}

/// Which links a test cluster runs over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secured {
    Peers,
    PeersAndApi,
}

impl ClusterTls {
    /// Node `id`'s certificate (issued now) and the gateway flags using it.
    fn flags(&self, dir: &Path, id: u64, ip: &str) -> Vec<String> {
        let cert = self
            .ca
            .issue(
                dir,
                &format!("node{id}"),
                &[ip.parse().expect("an IP address")],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let mut flags = cert.peer_flags(&self.ca.cert);
        if self.secured == Secured::PeersAndApi {
            flags.extend(cert.https_flags());
        }
        flags
    }
}

impl Cluster {
    /// Starts `n` influxd and `n` gateways forming one cluster, and waits until every node is
    /// ready (it knows the leader and its influxd answers), so a test's first request through
    /// any node does not race the first election.
    pub fn start(n: u64) -> Cluster {
        Self::start_with(n, &[])
    }

    /// As [`Cluster::start`], with extra gateway flags (e.g. `--memory-budget`); `{ip}` in a
    /// flag is the node's own address (`--udp-bind {ip}:8189`).
    pub fn start_with(n: u64, extra: &[&str]) -> Cluster {
        Self::start_full(n, extra, None, None, &mut |_, _| Vec::new())
    }

    /// As [`Cluster::start_with`], every node running `binary` (another build of the
    /// gateway, for a benchmark that compares two builds in one run).
    pub fn start_with_binary(n: u64, extra: &[&str], binary: &Path) -> Cluster {
        Self::start_built(n, extra, None, None, &mut |_, _| Vec::new(), binary.into())
    }

    /// As [`Cluster::start_with`], calling `prepare` with each node's id and directory before
    /// anything of that node starts; the file systems it mounts there (on `gateway/` or
    /// `influxd/`) are unmounted once the cluster's processes are gone.
    pub fn start_prepared(
        n: u64,
        extra: &[&str],
        prepare: &mut dyn FnMut(u64, &Path) -> Vec<harness::Tmpfs>,
    ) -> Cluster {
        Self::start_full(n, extra, None, None, prepare)
    }

    /// As [`Cluster::start_with`], with mutual TLS on peer links and, if `secured` says so,
    /// HTTPS on the API, under a CA made for this cluster.
    pub fn start_with_tls(n: u64, secured: Secured, extra: &[&str]) -> Cluster {
        Self::start_full(n, extra, None, Some(secured), &mut |_, _| Vec::new())
    }

    /// influxd with authentication enabled, and gateways checking credentials and applying
    /// the log as `admin` (which they create on their fresh influxd).
    pub fn start_with_auth(n: u64, admin: (&str, &str)) -> Cluster {
        Self::start_with_auth_and(n, admin, &[])
    }

    /// As [`Cluster::start_with_auth`], with extra gateway flags.
    pub fn start_with_auth_and(n: u64, admin: (&str, &str), extra: &[&str]) -> Cluster {
        let mut flags = vec![
            "--auth-enabled",
            "--influxd-username",
            admin.0,
            "--influxd-password",
            admin.1,
        ];
        flags.extend_from_slice(extra);
        Self::start_full(n, &flags, Some(admin), None, &mut |_, _| Vec::new())
    }

    fn start_full(
        n: u64,
        extra: &[&str],
        admin: Option<(&str, &str)>,
        secured: Option<Secured>,
        prepare: &mut dyn FnMut(u64, &Path) -> Vec<harness::Tmpfs>,
    ) -> Cluster {
        Self::start_built(n, extra, admin, secured, prepare, gateway_binary())
    }

    fn start_built(
        n: u64,
        extra: &[&str],
        admin: Option<(&str, &str)>,
        secured: Option<Secured>,
        prepare: &mut dyn FnMut(u64, &Path) -> Vec<harness::Tmpfs>,
        binary: PathBuf,
    ) -> Cluster {
        let slot = Slot::acquire();
        let dir = tempfile::Builder::new()
            .prefix("gateway-cluster-")
            .tempdir()
            .unwrap();
        let tls = secured.map(|secured| ClusterTls {
            ca: harness::tls::Ca::new(dir.path(), "ca").unwrap_or_else(|e| panic!("{e}")),
            secured,
        });
        let members: Vec<(u64, String)> = (1..=n)
            .map(|i| (i, format!("{}:{PEER_PORT}", slot.ip(i))))
            .collect();
        let mut mounts = Vec::new();
        let mut nodes: Vec<Node> = (1..=n)
            .map(|id| {
                mounts.extend(prepare(id, &dir.path().join(format!("node{id}"))));
                let peers = Peers::Initial(members.clone());
                let tls = tls.as_ref();
                Self::new_node(&slot, dir.path(), &binary, id, admin, peers, extra, tls)
            })
            .collect();
        for node in &mut nodes {
            node.gateway.start();
        }
        let c = Cluster {
            nodes,
            mounts,
            dir,
            tls,
            slot,
            binary,
        };
        c.wait_for_leader(Duration::from_secs(30));
        let ids: Vec<u64> = c.nodes.iter().map(|n| n.id).collect();
        c.wait_ready(&ids, Duration::from_secs(30));
        c
    }

    /// Node `id` with its influxd running and its gateway not started yet.
    #[allow(clippy::too_many_arguments)]
    fn new_node(
        slot: &Slot,
        dir: &Path,
        binary: &Path,
        id: u64,
        admin: Option<(&str, &str)>,
        peers: Peers,
        extra: &[&str],
        tls: Option<&ClusterTls>,
    ) -> Node {
        let ip = slot.ip(id);
        let node_dir = dir.join(format!("node{id}"));
        let tls_flags = tls.map(|t| t.flags(dir, id, &ip)).unwrap_or_default();
        let influxd = Influxd::start_with_auth(
            &format!("{ip}:{INFLUXD_PORT}"),
            &node_dir.join("influxd"),
            admin,
        );
        let node = gateway::Node {
            id,
            api_addr: format!("{ip}:{API_PORT}"),
            peer_addr: format!("{ip}:{PEER_PORT}"),
            peers,
            data_dir: node_dir.join("gateway"),
            influxd_url: format!("http://{ip}:{INFLUXD_PORT}"),
            extra: [
                "--write-timeout",
                "10s",
                "--influxd-rpc",
                &influxd.rpc_addr(),
            ]
            .iter()
            .copied()
            .map(str::to_owned)
            .chain(extra.iter().map(|f| f.replace("{ip}", &ip)))
            .chain(tls_flags)
            .collect(),
        };
        let process = node
            .process(binary, node_dir.join("gateway.log"))
            .env("RUST_LOG", "info,raft=warn");
        Node {
            id,
            ip,
            influxd,
            gateway: Gateway { id, process },
            api_ca: tls
                .filter(|t| t.secured == Secured::PeersAndApi)
                .map(|t| t.ca.cert.clone()),
        }
    }

    /// Starts a new node that joins through `gateway members add` semantics (the caller
    /// adds it with the admin API).
    pub fn start_joining_node(&mut self, id: u64) -> &mut Node {
        self.start_joining_node_with(id, &[])
    }

    /// As [`Cluster::start_joining_node`], with extra gateway flags.
    pub fn start_joining_node_with(&mut self, id: u64, extra: &[&str]) -> &mut Node {
        let mut node = Self::new_node(
            &self.slot,
            self.dir.path(),
            &self.binary,
            id,
            None,
            Peers::Join,
            extra,
            self.tls.as_ref(),
        );
        node.gateway.start();
        self.nodes.push(node);
        self.nodes.last_mut().unwrap()
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    pub fn peer_addr(&self, id: u64) -> String {
        format!("{}:{PEER_PORT}", self.slot.ip(id))
    }

    /// Asks node `via` to add node `id`, at its peer address, as a member (the admin API's
    /// POST /admin/members); its answer.
    pub fn add_member(&self, via: u64, id: u64) -> Response {
        let body = serde_json::json!({"id": id, "peer_addr": self.peer_addr(id)});
        self.node(via)
            .api()
            .send(
                "POST",
                "/admin/members",
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            )
            .expect("POST /admin/members")
    }

    /// The node's /health JSON (any status code), if it answers.
    pub fn health(&self, id: u64) -> Option<serde_json::Value> {
        self.node(id)
            .api()
            .get("/health")
            .ok()
            .and_then(|r| serde_json::from_str(&r.body).ok())
    }

    /// The leader as some running node reports it.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|n| self.health(n.id))
            .find_map(|h| h["leader"].as_u64())
    }

    pub fn wait_for_leader(&self, timeout: Duration) -> u64 {
        wait_until("a Raft leader", timeout, || self.leader().ok_or("none"))
    }

    /// Waits until every listed node reports itself ready (leader known, influxd up, no
    /// rebuild in progress).
    pub fn wait_ready(&self, ids: &[u64], timeout: Duration) {
        for &id in ids {
            wait_until(&format!("node {id} ready"), timeout, || {
                match self.node(id).api().get("/health") {
                    Ok(r) if r.status == 200 => Ok(()),
                    Ok(r) => Err(r.body),
                    Err(e) => Err(e.to_string()),
                }
            });
        }
    }

    /// Creates a database through node `via` (replicated through the log), and waits until
    /// every node with a running influxd has applied it, so later reads of any replica find
    /// the database.
    pub fn create_database(&self, via: u64, db: &str) {
        let r = self
            .node(via)
            .api()
            .query("", &format!("CREATE DATABASE \"{db}\""))
            .expect("CREATE DATABASE");
        assert_eq!(
            r.status, 200,
            "CREATE DATABASE {db} via node {via}: {}",
            r.body
        );
        // A test that killed an influxd (its child is gone) expects it to catch up later.
        let running: Vec<u64> = self
            .nodes
            .iter()
            .filter_map(|n| n.influxd.pid().map(|_| n.id))
            .collect();
        for id in running {
            wait_until(
                &format!("database {db} on node {id}"),
                Duration::from_secs(30),
                || {
                    let v = self
                        .node(id)
                        .influx()
                        .try_query("", "SHOW DATABASES")
                        .map_err(|e| e.to_string())?;
                    let has = v["results"][0]["series"][0]["values"]
                        .as_array()
                        .is_some_and(|dbs| dbs.iter().any(|d| d[0] == db));
                    if has {
                        Ok(())
                    } else {
                        Err(format!("not yet: {v}"))
                    }
                },
            );
        }
    }

    /// Every row of `measurement` on each node's influxd, read directly.
    pub fn rows_everywhere(
        &self,
        db: &str,
        measurement: &str,
    ) -> Vec<(u64, Vec<serde_json::Value>)> {
        self.nodes
            .iter()
            .map(|n| (n.id, n.influx().rows(db, measurement)))
            .collect()
    }

    /// Waits until every node's influxd holds exactly `expected` rows of `measurement`, and
    /// they are the same rows everywhere.
    pub fn wait_converged(&self, db: &str, measurement: &str, expected: usize, timeout: Duration) {
        wait_until(
            &format!("{expected} identical rows of {db}.{measurement} on every node"),
            timeout,
            || {
                // A replica still rebuilding may not have the database yet: that is "not
                // converged yet", not a failure.
                let all: Vec<(u64, Result<Vec<serde_json::Value>, HttpError>)> = self
                    .nodes
                    .iter()
                    .map(|n| (n.id, n.influx().try_rows(db, measurement)))
                    .collect();
                let first = all[0].1.as_ref().ok();
                let same = all.iter().all(|(_, rows)| rows.as_ref().ok() == first);
                if same && first.is_some_and(|f| f.len() == expected) {
                    Ok(())
                } else {
                    Err(all
                        .iter()
                        .map(|(id, rows)| match rows {
                            Ok(rows) => format!("node {id}: {} rows", rows.len()),
                            Err(e) => format!("node {id}: {e}"),
                        })
                        .collect::<Vec<_>>()
                        .join(", "))
                }
            },
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.nodes {
                let log = n.gateway.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- gateway {} log (last {} lines) ----", n.id, tail.len());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}
