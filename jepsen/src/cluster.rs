//! The cluster under test: in each node namespace an influxd (on the namespace's loopback)
//! and a gateway (API and peer port on the namespace's address). Processes can be killed,
//! paused, resumed and restarted; anything that dies on its own is noticed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::netns::{self, ip, nodes, ns, Network};

pub const API_PORT: u16 = 8086;
pub const PEER_PORT: u16 = 8089;
const INFLUXD_ADDR: &str = "127.0.0.1:18086";

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

#[derive(Default)]
struct Managed {
    child: Option<Child>,
    paused: bool,
    /// The exit status of a death we did not cause, until someone asks.
    crashed: Option<String>,
}

struct NodeProcs {
    influxd: Managed,
    gateway: Managed,
}

impl NodeProcs {
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

pub struct Cluster {
    gateway_bin: PathBuf,
    /// Per node: data of influxd and of the gateway (removed at the end unless kept).
    work_dir: PathBuf,
    /// Per node: logs (kept with the results).
    log_dir: PathBuf,
    procs: Mutex<Vec<NodeProcs>>,
    http: ureq::Agent,
    network: Mutex<Option<Network>>,
}

impl Cluster {
    /// Builds the network and starts every process; returns once all three gateways are
    /// ready with an agreed leader.
    pub fn start(gateway_bin: &Path, work_dir: &Path, log_dir: &Path) -> anyhow::Result<Cluster> {
        let network = Network::setup()?;
        let cluster = Cluster {
            gateway_bin: gateway_bin.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            procs: Mutex::new(
                nodes()
                    .map(|_| NodeProcs {
                        influxd: Managed::default(),
                        gateway: Managed::default(),
                    })
                    .collect(),
            ),
            http: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(1))
                .timeout(Duration::from_secs(2))
                .build(),
            network: Mutex::new(Some(network)),
        };
        for n in nodes() {
            fs::create_dir_all(cluster.node_work(n))?;
            fs::create_dir_all(cluster.node_logs(n))?;
            cluster.write_influxd_config(n)?;
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

    fn write_influxd_config(&self, n: u8) -> anyhow::Result<()> {
        let d = self.node_work(n).join("influxd");
        let d = d.display();
        // The RPC (backup) port is bound too: on the namespace's loopback like the API.
        let config = format!(
            r#"reporting-enabled = false
bind-address = "127.0.0.1:18088"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "{INFLUXD_ADDR}"
  log-enabled = false
[continuous_queries]
  log-enabled = false
"#
        );
        fs::write(self.node_work(n).join("influxdb.conf"), config)?;
        Ok(())
    }

    fn command(&self, n: u8, p: Proc) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns(n)]);
        match p {
            Proc::Influxd => {
                cmd.arg("influxd")
                    .arg("-config")
                    .arg(self.node_work(n).join("influxdb.conf"));
            }
            Proc::Gateway => {
                cmd.arg(&self.gateway_bin)
                    .args(["--id", &n.to_string()])
                    .args(["--listen", &format!("{}:{API_PORT}", ip(n))])
                    .args(["--peer-listen", &format!("{}:{PEER_PORT}", ip(n))]);
                for m in nodes() {
                    cmd.args(["--peer", &format!("{m}={}:{PEER_PORT}", ip(m))]);
                }
                cmd.arg("--data-dir")
                    .arg(self.node_work(n).join("gateway"))
                    .args(["--influxd-url", &format!("http://{INFLUXD_ADDR}")]);
            }
        }
        cmd
    }

    fn spawn(&self, n: u8, p: Proc) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let log_path = self.node_logs(n).join(format!("{}.log", p.name()));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        // `ip netns exec` execs the program in place, so the child's pid is the program's.
        // Its own process group keeps a Ctrl-C on the terminal away from it: the harness
        // decides when the cluster stops.
        let child = self
            .command(n, p)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {} of node {n}", p.name()))?;
        let mut procs = self.procs.lock().unwrap();
        let m = procs[usize::from(n - 1)].get(p);
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    fn wait_influxd(&self, n: u8, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.influxd_get(n, "/ping").is_ok_and(|(s, _)| s == 204) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "influxd of node {n} did not answer /ping within {limit:?} (see {})",
                    self.node_logs(n).join("influxd.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// GET on node `n`'s influxd, from inside its namespace.
    pub fn influxd_get(&self, n: u8, path_and_query: &str) -> anyhow::Result<(u16, String)> {
        let url = format!("http://{INFLUXD_ADDR}{path_and_query}");
        netns::in_netns(n, move || {
            let agent = ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(2))
                .timeout(Duration::from_secs(300))
                .build();
            match agent.get(&url).call() {
                Ok(r) => Ok((r.status(), r.into_string()?)),
                Err(ureq::Error::Status(code, r)) => {
                    Ok((code, r.into_string().unwrap_or_default()))
                }
                Err(e) => Err(anyhow::Error::from(e)),
            }
        })?
    }

    pub fn health(&self, n: u8) -> Option<Health> {
        let url = format!("http://{}:{API_PORT}/health", ip(n));
        let resp = match self.http.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(_) => return None,
        };
        let ready = resp.status() == 200;
        let v: serde_json::Value = serde_json::from_str(&resp.into_string().ok()?).ok()?;
        Some(Health {
            ready,
            leader: v.get("leader").and_then(serde_json::Value::as_u64),
            role: v
                .get("role")
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_owned(),
            term: v
                .get("term")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            applied: v
                .get("applied")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            committed: v
                .get("committed")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            message: v
                .get("message")
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_owned(),
        })
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
        let deadline = Instant::now() + limit;
        loop {
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
            if Instant::now() > deadline {
                bail!("not settled within {limit:?}; last health: {hs:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn signal(&self, n: u8, p: Proc, sig: Signal) -> anyhow::Result<()> {
        let procs = self.procs.lock().unwrap();
        let m = &procs[usize::from(n - 1)];
        let m = match p {
            Proc::Influxd => &m.influxd,
            Proc::Gateway => &m.gateway,
        };
        match &m.child {
            Some(c) => kill(Pid::from_raw(c.id() as i32), sig)
                .with_context(|| format!("cannot send {sig} to {} of node {n}", p.name())),
            None => bail!("{} of node {n} is not running", p.name()),
        }
    }

    /// kill -9, and reap it.
    pub fn kill(&self, n: u8, p: Proc) {
        let mut procs = self.procs.lock().unwrap();
        let m = procs[usize::from(n - 1)].get(p);
        if let Some(mut c) = m.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
        m.paused = false;
    }

    pub fn pause(&self, n: u8, p: Proc) -> anyhow::Result<()> {
        self.signal(n, p, Signal::SIGSTOP)?;
        self.procs.lock().unwrap()[usize::from(n - 1)].get(p).paused = true;
        Ok(())
    }

    pub fn resume(&self, n: u8, p: Proc) {
        let _ = self.signal(n, p, Signal::SIGCONT);
        self.procs.lock().unwrap()[usize::from(n - 1)].get(p).paused = false;
    }

    /// Starts `p` on node `n` unless it runs.
    pub fn restart(&self, n: u8, p: Proc) -> anyhow::Result<bool> {
        {
            let mut procs = self.procs.lock().unwrap();
            let m = procs[usize::from(n - 1)].get(p);
            if let Some(c) = m.child.as_mut() {
                if c.try_wait()?.is_none() {
                    return Ok(false);
                }
                m.child = None;
            }
        }
        self.spawn(n, p)?;
        Ok(true)
    }

    /// Processes that died without being killed by us, since the last call.
    pub fn crashes(&self) -> Vec<(u8, Proc, String)> {
        let mut out = Vec::new();
        let mut procs = self.procs.lock().unwrap();
        for (i, np) in procs.iter_mut().enumerate() {
            for p in [Proc::Influxd, Proc::Gateway] {
                let m = np.get(p);
                if let Some(c) = m.child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        m.child = None;
                        m.crashed = Some(status.to_string());
                    }
                }
                if let Some(status) = m.crashed.take() {
                    out.push((i as u8 + 1, p, status));
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
                let paused = self.procs.lock().unwrap()[usize::from(n - 1)].get(p).paused;
                if paused {
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
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        let mut children: Vec<Child> = procs
            .iter_mut()
            .flat_map(|np| [np.gateway.child.take(), np.influxd.child.take()])
            .flatten()
            .collect();
        for c in &children {
            let pid = Pid::from_raw(c.id() as i32);
            let _ = kill(pid, Signal::SIGCONT);
            let _ = kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut children {
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        drop(procs);
        if let Some(mut net) = self
            .network
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            net.teardown();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}
