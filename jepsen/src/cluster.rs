//! The cluster under test: in each node namespace an influxd (on the namespace's loopback)
//! and a gateway (API and peer port on the namespace's address), run by the shared process
//! harness behind `ip netns exec`. Processes can be killed, paused, resumed and restarted;
//! anything that dies on its own is noticed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use harness::gateway::{self, Peers};
use harness::{influxd, poll, process, Http, Process, Response};
use nix::sys::signal::Signal;
use parking_lot::Mutex;
use serde::Serialize;

use crate::netns::{self, exec_prefix, ip, nodes, Network};

pub const API_PORT: u16 = 8086;
pub const PEER_PORT: u16 = 8089;
/// influxd listens on its namespace's own loopback: only its gateway, and the final reads
/// from inside the namespace, reach it.
const INFLUXD_HOST: &str = "127.0.0.1";
const INFLUXD_PORT: u16 = 18086;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proc {
    Influxd,
    Gateway,
}

impl Proc {
    pub fn name(self) -> &'static str {
        match self {
            Proc::Influxd => "influxd",
            Proc::Gateway => "gateway",
        }
    }
}

struct Managed {
    process: Process,
    paused: bool,
}

impl Managed {
    fn start(&mut self, n: u8, p: Proc) -> anyhow::Result<()> {
        self.process
            .start()
            .with_context(|| format!("cannot start {} of node {n}", p.name()))?;
        self.paused = false;
        Ok(())
    }
}

struct NodeProcs {
    influxd: Managed,
    gateway: Managed,
}

impl NodeProcs {
    /// Node `n`'s two processes, not started: each in the node's namespace and in a process
    /// group of its own, so a Ctrl-C on the terminal stays away from them (the harness
    /// decides when the cluster stops).
    fn new(
        n: u8,
        gateway_bin: &Path,
        gateway_args: &[String],
        work: &Path,
        logs: &Path,
    ) -> anyhow::Result<NodeProcs> {
        let influxd = influxd::Config::new(INFLUXD_HOST, INFLUXD_PORT, work.join("influxd"))
            .process(logs.join("influxd.log"))?;
        let peers = nodes()
            .map(|m| (u64::from(m), format!("{}:{PEER_PORT}", ip(m))))
            .collect();
        let gateway = gateway::Node {
            id: u64::from(n),
            api_addr: format!("{}:{API_PORT}", ip(n)),
            peer_addr: format!("{}:{PEER_PORT}", ip(n)),
            peers: Peers::Initial(peers),
            data_dir: work.join("gateway"),
            influxd_url: format!("http://{INFLUXD_HOST}:{INFLUXD_PORT}"),
            extra: gateway_args.to_vec(),
        }
        .process(gateway_bin, logs.join("gateway.log"));
        let managed = |p: Process| Managed {
            process: p.prefix(exec_prefix(n)).own_process_group(),
            paused: false,
        };
        Ok(NodeProcs {
            influxd: managed(influxd),
            gateway: managed(gateway),
        })
    }

    fn get(&mut self, p: Proc) -> &mut Managed {
        match p {
            Proc::Influxd => &mut self.influxd,
            Proc::Gateway => &mut self.gateway,
        }
    }
}

/// What a node's /health says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub ready: bool,
    pub leader: Option<u64>,
    pub role: String,
    pub term: u64,
    pub applied: u64,
    pub committed: u64,
    pub message: String,
}

impl Health {
    fn parse(r: Response) -> Option<Health> {
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let number = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let text = |k: &str| {
            v.get(k)
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        Some(Health {
            ready: r.status == 200,
            leader: number("leader"),
            role: text("role"),
            term: number("term").unwrap_or(0),
            applied: number("applied").unwrap_or(0),
            committed: number("committed").unwrap_or(0),
            message: text("message"),
        })
    }
}

pub struct Cluster {
    /// Per node: data of influxd and of the gateway (removed at the end unless kept).
    work_dir: PathBuf,
    /// Per node: logs (kept with the results).
    log_dir: PathBuf,
    procs: Mutex<Vec<NodeProcs>>,
    /// Each gateway's API, with short timeouts: a node that does not answer at once is
    /// reported as not answering.
    apis: Vec<Http>,
    network: Mutex<Option<Network>>,
}

impl Cluster {
    /// Builds the network and starts every process, each gateway with `gateway_args` on top
    /// of its own; returns once all three gateways are ready with an agreed leader.
    pub fn start(
        gateway_bin: &Path,
        gateway_args: &[String],
        work_dir: &Path,
        log_dir: &Path,
    ) -> anyhow::Result<Cluster> {
        let network = Network::setup()?;
        let mut cluster = Cluster {
            work_dir: work_dir.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            procs: Mutex::new(Vec::new()),
            apis: nodes()
                .map(|n| {
                    Http::new(&format!("{}:{API_PORT}", ip(n)))
                        .with_timeouts(Duration::from_secs(1), Duration::from_secs(2))
                })
                .collect(),
            network: Mutex::new(Some(network)),
        };
        for n in nodes() {
            fs::create_dir_all(cluster.node_work(n))?;
            fs::create_dir_all(cluster.node_logs(n))?;
            let procs = NodeProcs::new(
                n,
                gateway_bin,
                gateway_args,
                &cluster.node_work(n),
                &cluster.node_logs(n),
            )?;
            cluster.procs.get_mut().push(procs);
        }
        for n in nodes() {
            cluster.spawn(n, Proc::Influxd)?;
        }
        for n in nodes() {
            cluster.wait_influxd(n, Duration::from_secs(60))?;
        }
        for n in nodes() {
            cluster.spawn(n, Proc::Gateway)?;
        }
        cluster
            .wait_settled(Duration::from_secs(60), false)
            .context("the cluster did not come up")?;
        Ok(cluster)
    }

    fn node_work(&self, n: u8) -> PathBuf {
        self.work_dir.join(format!("n{n}"))
    }

    pub fn node_logs(&self, n: u8) -> PathBuf {
        self.log_dir.join(format!("n{n}"))
    }

    /// Runs `f` on process `p` of node `n`, under the lock.
    fn with<T>(&self, n: u8, p: Proc, f: impl FnOnce(&mut Managed) -> T) -> T {
        f(self.procs.lock()[usize::from(n - 1)].get(p))
    }

    fn spawn(&self, n: u8, p: Proc) -> anyhow::Result<()> {
        self.with(n, p, |m| m.start(n, p))
    }

    fn wait_influxd(&self, n: u8, limit: Duration) -> anyhow::Result<()> {
        self.with(n, Proc::Influxd, |m| {
            influxd::wait_answering(&mut m.process, limit, || self.influxd_get(n, "/ping"))
        })
        .with_context(|| format!("influxd of node {n}"))
    }

    /// GET on node `n`'s influxd, from inside its namespace.
    pub fn influxd_get(&self, n: u8, path_and_query: &str) -> anyhow::Result<Response> {
        let influxd = Http::new(&format!("{INFLUXD_HOST}:{INFLUXD_PORT}"))
            .with_timeouts(Duration::from_secs(2), Duration::from_secs(300));
        Ok(netns::in_netns(n, move || influxd.get(path_and_query))??)
    }

    pub fn health(&self, n: u8) -> Option<Health> {
        Health::parse(self.apis[usize::from(n - 1)].get("/health").ok()?)
    }

    pub fn healths(&self) -> Vec<Option<Health>> {
        nodes().map(|n| self.health(n)).collect()
    }

    /// The node that says it leads (the highest term wins if several still think so).
    pub fn leader(&self) -> Option<u8> {
        nodes()
            .zip(self.healths())
            .filter_map(|(n, h)| h.filter(|h| h.role == "leader").map(|h| (h.term, n)))
            .max()
            .map(|(_, n)| n)
    }

    /// Waits until every gateway is ready and agrees on the leader; with `caught_up`, also
    /// until every applier has applied the whole log and all report the same index.
    pub fn wait_settled(&self, limit: Duration, caught_up: bool) -> anyhow::Result<Vec<Health>> {
        let settled = poll(limit, Duration::from_millis(250), || {
            let hs = self.healths();
            if let Some(hs) = hs.iter().cloned().collect::<Option<Vec<Health>>>() {
                let leader = hs[0].leader;
                let agreed = leader.is_some() && hs.iter().all(|h| h.ready && h.leader == leader);
                let applied = !caught_up
                    || hs
                        .iter()
                        .all(|h| h.applied == h.committed && h.committed == hs[0].committed);
                if agreed && applied {
                    return Ok(hs);
                }
            }
            Err(hs)
        });
        settled.or_else(|hs| bail!("not settled within {limit:?}; last health: {hs:?}"))
    }

    /// kill -9, and reap it.
    pub fn kill(&self, n: u8, p: Proc) {
        self.with(n, p, |m| {
            m.process.kill();
            m.paused = false;
        })
    }

    pub fn pause(&self, n: u8, p: Proc) -> anyhow::Result<()> {
        self.with(n, p, |m| {
            m.process.signal(Signal::SIGSTOP)?;
            m.paused = true;
            Ok(())
        })
    }

    pub fn resume(&self, n: u8, p: Proc) {
        self.with(n, p, |m| {
            let _ = m.process.signal(Signal::SIGCONT);
            m.paused = false;
        })
    }

    /// Starts `p` on node `n` unless it runs.
    pub fn restart(&self, n: u8, p: Proc) -> anyhow::Result<bool> {
        self.with(n, p, |m| {
            if m.process.is_running() {
                return Ok(false);
            }
            m.start(n, p)?;
            Ok(true)
        })
    }

    /// Processes that died without being killed by us, since the last call.
    pub fn crashes(&self) -> Vec<(u8, Proc, String)> {
        let mut out = Vec::new();
        for n in nodes() {
            for p in [Proc::Influxd, Proc::Gateway] {
                if let Some(status) = self.with(n, p, |m| m.process.exited()) {
                    out.push((n, p, status.to_string()));
                }
            }
        }
        out
    }

    /// Resumes whatever is paused and starts whatever is not running.
    pub fn revive_all(&self) -> anyhow::Result<Vec<(u8, Proc)>> {
        let mut restarted = Vec::new();
        for n in nodes() {
            for p in [Proc::Influxd, Proc::Gateway] {
                if self.with(n, p, |m| m.paused) {
                    self.resume(n, p);
                }
                if self.restart(n, p)? {
                    restarted.push((n, p));
                }
            }
        }
        Ok(restarted)
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace period) and removes the
    /// network. Safe to call more than once.
    pub fn teardown(&self) {
        let mut procs = self.procs.lock();
        let all = procs
            .iter_mut()
            .flat_map(|np| [&mut np.gateway.process, &mut np.influxd.process]);
        process::stop_all(all, Duration::from_secs(10));
        drop(procs);
        if let Some(mut net) = self.network.lock().take() {
            net.teardown();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}
