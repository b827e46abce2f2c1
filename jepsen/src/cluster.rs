//! The cluster under test: in each node namespace an influxd (on the namespace's loopback)
//! and a gateway (API and peer port on the namespace's address), run by the shared process
//! harness behind `ip netns exec`. Processes can be killed, paused, resumed and restarted;
//! anything that dies on its own is noticed. A node's data can be wiped: a gateway that lost
//! its Raft log comes back under a new Raft id, replaced the way an operator would, while the
//! node (its namespace, addresses, reads) stays the same node.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use harness::gateway::{self, Peers};
use harness::{influxd, poll, process, tmpfs, Http, HttpError, Process, Response, Tmpfs};
use nix::sys::signal::Signal;
use parking_lot::Mutex;
use serde::Serialize;

use crate::netns::{self, exec_prefix, ip, nodes, Network, NODES};

pub const API_PORT: u16 = 8086;
pub const PEER_PORT: u16 = 8089;
/// influxd listens on its namespace's own loopback: only its gateway, and the final reads
/// from inside the namespace, reach it.
const INFLUXD_HOST: &str = "127.0.0.1";
const INFLUXD_PORT: u16 = 18086;
/// Size of each node's two disks (its gateway's data, its influxd's): generous for an hour's
/// run, and costing memory only for what is stored (or a `disk-full` ballast, one at a time).
pub const DISK_SIZE: u64 = 1 << 30;
/// The source name of the runs' tmpfs mounts in `/proc/mounts`, by which `jepsen cleanup`
/// finds what a crashed run left.
pub const DISK_SOURCE: &str = "jepsen-disk";
/// How long a membership change is retried through the other nodes: long enough for an
/// election after the removed member was the leader, and for a change in progress to finish.
const MEMBERSHIP_LIMIT: Duration = Duration::from_secs(30);

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
    /// influxd's files, for wiping them.
    influxd_config: influxd::Config,
    /// The gateway's command line: a replaced node's has a new id and `--join`.
    gateway_node: gateway::Node,
    gateway_bin: PathBuf,
    gateway_log: PathBuf,
    /// The gateway runs under libfaketime, its clock set by this file (`clock-skew`).
    clock_file: Option<PathBuf>,
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
        let influxd_config = influxd::Config::new(INFLUXD_HOST, INFLUXD_PORT, work.join("influxd"));
        let influxd = influxd_config.process(logs.join("influxd.log"))?;
        let peers = nodes()
            .map(|m| (u64::from(m), format!("{}:{PEER_PORT}", ip(m))))
            .collect();
        let gateway_node = gateway::Node {
            id: u64::from(n),
            api_addr: format!("{}:{API_PORT}", ip(n)),
            peer_addr: format!("{}:{PEER_PORT}", ip(n)),
            peers: Peers::Initial(peers),
            data_dir: work.join("gateway"),
            influxd_url: format!("http://{INFLUXD_HOST}:{INFLUXD_PORT}"),
            // Where influxd's backup and restore reach it when the node seeds a peer or is
            // seeded.
            extra: ["--influxd-rpc".to_owned(), influxd_config.rpc_addr()]
                .into_iter()
                .chain(gateway_args.iter().cloned())
                .collect(),
        };
        let gateway_log = logs.join("gateway.log");
        let gateway = gateway_node.process(gateway_bin, gateway_log.clone());
        Ok(NodeProcs {
            influxd: managed(n, influxd),
            gateway: managed(n, gateway),
            influxd_config,
            gateway_node,
            gateway_bin: gateway_bin.to_path_buf(),
            gateway_log,
            clock_file: None,
        })
    }

    fn get(&mut self, p: Proc) -> &mut Managed {
        match p {
            Proc::Influxd => &mut self.influxd,
            Proc::Gateway => &mut self.gateway,
        }
    }

    /// From now on the gateway starts as a new node `id` that waits to be added (`--join`).
    /// Its output goes on into the same log, so the node's story stays in one file.
    fn rejoin_as(&mut self, n: u8, id: u64) {
        self.gateway_node.id = id;
        self.gateway_node.peers = Peers::Join;
        self.set_clock(n, None);
    }

    /// From now on the gateway starts with its wall clock offset by what `file` says (and
    /// follows the file's changes within a second), or, with `None`, with the real clock.
    /// Monotonic clocks are left alone, as a stepped system clock leaves them.
    fn set_clock(&mut self, n: u8, file: Option<PathBuf>) {
        let mut gateway = self
            .gateway_node
            .process(&self.gateway_bin, self.gateway_log.clone());
        if let (Some(f), Some(lib)) = (&file, libfaketime()) {
            gateway = gateway
                .env("LD_PRELOAD", &lib.display().to_string())
                .env("FAKETIME_TIMESTAMP_FILE", &f.display().to_string())
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        self.clock_file = file;
        self.gateway = managed(n, gateway);
    }
}

/// libfaketime's thread-safe variant (the gateway is multithreaded), where Debian's
/// `faketime` package installs it.
pub fn libfaketime() -> Option<PathBuf> {
    let dirs = fs::read_dir("/usr/lib").ok()?;
    dirs.filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
        .find(|p| p.exists())
}

fn managed(n: u8, p: Process) -> Managed {
    Managed {
        process: p.prefix(exec_prefix(n)).own_process_group(),
        paused: false,
    }
}

/// One of a node's two disks, each a tmpfs of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disk {
    /// The gateway's data directory: its Raft log.
    Gateway,
    /// influxd's data, meta and wal.
    Influxd,
}

impl Disk {
    pub fn name(self) -> &'static str {
        match self {
            Disk::Gateway => "gateway",
            Disk::Influxd => "influxd",
        }
    }
}

/// What a wipe deletes, as if disks had been replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wipe {
    /// influxd's data, meta and wal; the gateway keeps running and must rebuild it.
    Influxd,
    /// Those and the gateway's data directory (its Raft log): the node must come back as a
    /// new member.
    Node,
}

/// Who a node is in Raft. Its id changes when its gateway lost its log: rejoining under the
/// old id with an empty log could vote twice in one term.
#[derive(Debug, Clone)]
struct Identity {
    id: u64,
    /// Ids this node had before, still to be removed from the membership.
    retired: Vec<u64>,
    /// `id` is still to be added (its gateway starts with `--join`).
    joining: bool,
}

struct Identities {
    nodes: Vec<Identity>,
    /// Never reused: a removed id must not come back.
    next: u64,
}

impl Identities {
    fn new() -> Identities {
        Identities {
            nodes: nodes()
                .map(|n| Identity {
                    id: u64::from(n),
                    retired: Vec::new(),
                    joining: false,
                })
                .collect(),
            next: u64::from(NODES) + 1,
        }
    }

    fn of(&mut self, n: u8) -> &mut Identity {
        &mut self.nodes[usize::from(n - 1)]
    }

    /// A new id for node `n`; its current one is retired.
    fn replace(&mut self, n: u8) -> u64 {
        let id = self.next;
        self.next += 1;
        let node = self.of(n);
        let old = std::mem::replace(&mut node.id, id);
        node.retired.push(old);
        node.joining = true;
        id
    }
}

/// A membership change the harness could not make.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("{change}: no other node confirmed it within {limit:?}; last answer: {last}")]
    NotConfirmed {
        change: String,
        limit: Duration,
        last: String,
    },
    #[error("n{node} (id {id}) was not promoted to voter within {limit:?}; last seen: {last}")]
    NotPromoted {
        node: u8,
        id: u64,
        limit: Duration,
        last: String,
    },
}

/// One member as `/admin/members` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// "voter" or "learner".
    pub kind: String,
}

/// What a node's /health says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// The node's Raft id.
    pub id: u64,
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
            id: number("node").unwrap_or(0),
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
    /// The same APIs, given the time a membership change may take to be confirmed.
    admin: Vec<Http>,
    ids: Mutex<Identities>,
    network: Mutex<Option<Network>>,
    /// Every node's two disks, unmounted at the teardown.
    disks: Mutex<Vec<Tmpfs>>,
    /// Copy the disks' contents out before they are unmounted (`--keep-data`).
    keep_data: bool,
}

impl Cluster {
    /// Builds the network and starts every process, each gateway with `gateway_args` on top
    /// of its own; returns once all three gateways are ready with an agreed leader.
    pub fn start(
        gateway_bin: &Path,
        gateway_args: &[String],
        tls: bool,
        work_dir: &Path,
        log_dir: &Path,
        keep_data: bool,
    ) -> anyhow::Result<Cluster> {
        let network = Network::setup()?;
        fs::create_dir_all(work_dir)?;
        let ca = tls
            .then(|| harness::tls::Ca::new(work_dir, "ca"))
            .transpose()?;
        let api = |request: Duration| -> Vec<Http> {
            nodes()
                .map(|n| {
                    Http::new(&format!("{}:{API_PORT}", ip(n)))
                        .with_timeouts(Duration::from_secs(1), request)
                })
                .collect()
        };
        let mut cluster = Cluster {
            work_dir: work_dir.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            procs: Mutex::new(Vec::new()),
            apis: api(Duration::from_secs(2)),
            admin: api(Duration::from_secs(30)),
            ids: Mutex::new(Identities::new()),
            network: Mutex::new(Some(network)),
            disks: Mutex::new(Vec::new()),
            keep_data,
        };
        for n in nodes() {
            fs::create_dir_all(cluster.node_work(n))?;
            for disk in [Disk::Gateway, Disk::Influxd] {
                let fs = Tmpfs::mount_named(&cluster.disk_path(n, disk), DISK_SIZE, DISK_SOURCE)?;
                cluster.disks.get_mut().push(fs);
            }
            fs::create_dir_all(cluster.node_logs(n))?;
            // Each node's certificate names its own address, as its peers dial it.
            let mut args = gateway_args.to_vec();
            if let Some(ca) = &ca {
                let cert = ca.issue(&cluster.node_work(n), "peer", &[ip(n).parse()?])?;
                args.extend(cert.peer_flags(&ca.cert));
            }
            let procs = NodeProcs::new(
                n,
                gateway_bin,
                &args,
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

    /// Where node `n`'s `disk` is mounted.
    fn disk_path(&self, n: u8, disk: Disk) -> PathBuf {
        self.node_work(n).join(disk.name())
    }

    /// Fills node `n`'s `disk` to the last byte with a ballast file; its size.
    pub fn fill_disk(&self, n: u8, disk: Disk) -> anyhow::Result<u64> {
        Ok(tmpfs::fill(&self.disk_path(n, disk))?)
    }

    /// Deletes the ballast on node `n`'s `disk`, if any.
    pub fn drain_disk(&self, n: u8, disk: Disk) -> anyhow::Result<()> {
        Ok(tmpfs::drain(&self.disk_path(n, disk))?)
    }

    /// Kills node `n`'s `p` and starts it again.
    pub fn bounce(&self, n: u8, p: Proc) -> anyhow::Result<()> {
        self.with(n, p, |m| {
            m.process.kill();
            m.start(n, p)
        })
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

    /// Waits until every gateway is ready and agrees on the leader, and the membership is
    /// exactly the nodes' current ids, all voters; with `caught_up`, also until every
    /// applier has applied the whole log and all report the same index.
    pub fn wait_settled(&self, limit: Duration, caught_up: bool) -> anyhow::Result<Vec<Health>> {
        let settled = poll(limit, Duration::from_millis(250), || {
            let hs = self.healths();
            let Some(all) = hs.iter().cloned().collect::<Option<Vec<Health>>>() else {
                return Err(format!("not every gateway answers; health: {hs:?}"));
            };
            let leader = all[0].leader;
            let agreed = leader.is_some() && all.iter().all(|h| h.ready && h.leader == leader);
            let applied = !caught_up
                || all
                    .iter()
                    .all(|h| h.applied == h.committed && h.committed == all[0].committed);
            if !(agreed && applied) {
                return Err(format!("health: {all:?}"));
            }
            let via = nodes()
                .zip(&all)
                .find(|(_, h)| Some(h.id) == leader)
                .map(|(n, _)| n)
                .ok_or_else(|| format!("the leader is none of the nodes; health: {all:?}"))?;
            self.membership_complete(via)
                .map_err(|e| format!("{e}; health: {all:?}"))?;
            Ok(all)
        });
        settled.or_else(|last| bail!("not settled within {limit:?}; last seen: {last}"))
    }

    /// Node `n`'s Raft id now.
    pub fn id(&self, n: u8) -> u64 {
        self.ids.lock().of(n).id
    }

    /// Every node's Raft id now, in node order.
    pub fn ids(&self) -> Vec<u64> {
        self.ids.lock().nodes.iter().map(|i| i.id).collect()
    }

    /// The membership as node `n` lists it.
    pub fn members(&self, n: u8) -> Result<Vec<Member>, String> {
        members_of(&self.apis[usize::from(n - 1)])
    }

    /// Ok when node `via` lists exactly the nodes' current ids as members, each a voter.
    fn membership_complete(&self, via: u8) -> Result<(), String> {
        let mut members = self.members(via).map_err(|e| format!("n{via}: {e}"))?;
        members.sort_by_key(|m| m.id);
        let mut ids = self.ids();
        ids.sort_unstable();
        let complete = members.iter().map(|m| m.id).eq(ids.iter().copied())
            && members.iter().all(|m| m.kind == "voter");
        if complete {
            Ok(())
        } else {
            Err(format!(
                "n{via} lists members {members:?}; the nodes' ids are {:?}",
                self.ids()
            ))
        }
    }

    /// Kills what `what` wipes on node `n` and deletes its data, as replaced disks would
    /// lose it. After [`Wipe::Node`] the gateway starts as a new member, under a new id and
    /// with `--join`, and the old id is still a member: [`Cluster::replace_member`] does the
    /// rest. Returns the node's id from now on.
    pub fn wipe(&self, n: u8, what: Wipe) -> anyhow::Result<u64> {
        let mut procs = self.procs.lock();
        let np = &mut procs[usize::from(n - 1)];
        if what == Wipe::Node {
            np.gateway.process.kill();
            np.gateway.paused = false;
        }
        np.influxd.process.kill();
        np.influxd.paused = false;
        np.influxd_config.wipe();
        // The harness's wipe is best effort; a fault that silently deleted nothing would
        // test nothing.
        for d in ["data", "meta", "wal"] {
            let path = np.influxd_config.dir.join(d);
            if path.exists() {
                bail!("cannot delete {}", path.display());
            }
        }
        if what == Wipe::Influxd {
            return Ok(np.gateway_node.id);
        }
        // The directory is a mount point: what is inside it goes, as on a replaced disk.
        let dir = np.gateway_node.data_dir.clone();
        let entries =
            fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.with_context(|| format!("cannot delete {}", path.display()))?;
        }
        let id = self.ids.lock().replace(n);
        np.rejoin_as(n, id);
        Ok(id)
    }

    /// Finishes replacing node `n`'s member, in an operator's order: its old ids removed
    /// through another node, its gateway started (it waits to be added), its new id added
    /// through another node. The node joins as a learner; with `promoted`, this waits that
    /// long at most until it is a voter. A no-op for a node that is not being replaced.
    pub fn replace_member(&self, n: u8, promoted: Option<Duration>) -> anyhow::Result<()> {
        let (id, retired, joining) = {
            let mut ids = self.ids.lock();
            let me = ids.of(n);
            (me.id, me.retired.clone(), me.joining)
        };
        for old in retired {
            self.change_members(
                n,
                &format!("removing n{n}'s old id {old}"),
                "DELETE",
                &format!("/admin/members?id={old}"),
                b"",
                // 404: not a member (any more).
                |status| status == 200 || status == 404,
            )?;
            self.ids.lock().of(n).retired.retain(|&r| r != old);
        }
        self.restart(n, Proc::Gateway)?;
        if joining {
            let body =
                serde_json::json!({ "id": id, "peer_addr": format!("{}:{PEER_PORT}", ip(n)) });
            self.change_members(
                n,
                &format!("adding n{n} as id {id}"),
                "POST",
                "/admin/members",
                body.to_string().as_bytes(),
                // 409: already a member (an earlier try went through unconfirmed).
                |status| status == 200 || status == 409,
            )?;
            self.ids.lock().of(n).joining = false;
        }
        if let Some(limit) = promoted {
            self.wait_voter(n, id, limit)?;
        }
        Ok(())
    }

    /// Removes node `n`'s current id from the membership through the other members, while
    /// the node runs on; its id, which must not come back.
    pub fn remove_member(&self, n: u8) -> Result<u64, MembershipError> {
        let id = self.id(n);
        self.change_members(
            n,
            &format!("removing n{n}'s id {id}"),
            "DELETE",
            &format!("/admin/members?id={id}"),
            b"",
            |status| status == 200 || status == 404,
        )?;
        Ok(id)
    }

    /// Asks node `via` to remove node `n`'s id, and kills both of `via`'s processes `after`
    /// the request was handed to the kernel, before the change can be confirmed: it may or
    /// may not commit. What `via` answered, if it answered. The request is written on a
    /// plain socket so the delay counts from its sending, not from a connection that a
    /// loaded machine may open only after the kill.
    pub fn remove_member_through_dying(&self, n: u8, via: u8, after: Duration) -> String {
        use std::io::{Read as _, Write as _};
        let id = self.id(n);
        let addr = format!("{}:{API_PORT}", ip(via));
        let request = format!(
            "DELETE /admin/members?id={id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        let sent = addr
            .parse()
            .map_err(|e| format!("{e}"))
            .and_then(|a| {
                std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1))
                    .map_err(|e| e.to_string())
            })
            .and_then(|mut c| {
                c.write_all(request.as_bytes())
                    .map(|()| c)
                    .map_err(|e| e.to_string())
            });
        std::thread::sleep(after);
        self.kill(via, Proc::Gateway);
        self.kill(via, Proc::Influxd);
        let mut conn = match sent {
            Ok(c) => c,
            Err(e) => return format!("not sent: {e}"),
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        match answer.lines().next() {
            Some(status) if !status.is_empty() => format!("answered {status}"),
            _ => "no answer".to_owned(),
        }
    }

    /// Every replacement left unfinished (a heal that failed part-way) finished now.
    pub fn complete_replacements(&self) -> anyhow::Result<()> {
        let unfinished: Vec<u8> = {
            let ids = self.ids.lock();
            nodes()
                .zip(&ids.nodes)
                .filter(|(_, i)| i.joining || !i.retired.is_empty())
                .map(|(n, _)| n)
                .collect()
        };
        for n in unfinished {
            self.replace_member(n, None)?;
        }
        Ok(())
    }

    /// Whether some node lists every node's current id as a voter; false while a replaced
    /// node has not been added or not caught up.
    pub fn all_voters(&self) -> bool {
        let ids = self.ids();
        nodes().any(|via| {
            self.members(via).is_ok_and(|ms| {
                ids.iter()
                    .all(|id| ms.iter().any(|m| m.id == *id && m.kind == "voter"))
            })
        })
    }

    /// Makes a membership change through the nodes other than `n` that are members, in
    /// turn, until one confirms it (`confirmed` says which statuses do).
    fn change_members(
        &self,
        n: u8,
        change: &str,
        method: &str,
        path: &str,
        body: &[u8],
        confirmed: impl Fn(u16) -> bool,
    ) -> Result<(), MembershipError> {
        let mut last = String::from("no node to ask");
        let done = poll(MEMBERSHIP_LIMIT, Duration::from_millis(500), || {
            for via in self.members_other_than(n) {
                let api = &self.admin[usize::from(via - 1)];
                let headers = [("Content-Type", "application/json")];
                match api.send(method, path, &headers, body) {
                    Ok(r) if confirmed(r.status) => return Ok(()),
                    Ok(r) => last = format!("n{via}: {} {}", r.status, r.body.trim()),
                    Err(e) => last = format!("n{via}: {e}"),
                }
            }
            Err(())
        });
        done.map_err(|()| MembershipError::NotConfirmed {
            change: change.to_owned(),
            limit: MEMBERSHIP_LIMIT,
            last,
        })
    }

    /// The nodes other than `n` that are members: a node still waiting to be added knows no
    /// leader, and would only time out on a change.
    fn members_other_than(&self, n: u8) -> Vec<u8> {
        let ids = self.ids.lock();
        nodes()
            .zip(&ids.nodes)
            .filter(|(m, i)| *m != n && !i.joining)
            .map(|(m, _)| m)
            .collect()
    }

    fn wait_voter(&self, n: u8, id: u64, limit: Duration) -> Result<(), MembershipError> {
        let mut last = String::from("no node to ask");
        let promoted = poll(limit, Duration::from_millis(500), || {
            for via in self.members_other_than(n) {
                match self.members(via) {
                    Ok(ms) if ms.iter().any(|m| m.id == id && m.kind == "voter") => return Ok(()),
                    Ok(ms) => last = format!("n{via} lists {ms:?}"),
                    Err(e) => last = format!("n{via}: {e}"),
                }
            }
            Err(())
        });
        promoted.map_err(|()| MembershipError::NotPromoted {
            node: n,
            id,
            limit,
            last,
        })
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

    /// Restarts node `n`'s gateway (kill -9) with its wall clock `offset_s` seconds off.
    pub fn skew_clock(&self, n: u8, offset_s: i64) -> anyhow::Result<()> {
        if libfaketime().is_none() {
            bail!("libfaketime not found: install Debian's faketime package");
        }
        let file = self.node_work(n).join("faketime");
        write_offset(&file, offset_s)?;
        let mut procs = self.procs.lock();
        let np = &mut procs[usize::from(n - 1)];
        np.gateway.process.kill();
        np.set_clock(n, Some(file));
        np.gateway.start(n, Proc::Gateway)
    }

    /// Moves the skewed clock of node `n`'s gateway to `offset_s` while it runs.
    pub fn jump_clock(&self, n: u8, offset_s: i64) -> anyhow::Result<()> {
        let file = self.procs.lock()[usize::from(n - 1)].clock_file.clone();
        match file {
            Some(f) => write_offset(&f, offset_s),
            None => bail!("n{n}'s gateway does not run under libfaketime"),
        }
    }

    /// Restarts every gateway running with a skewed clock with the real one; the nodes.
    pub fn unskew_clocks(&self) -> anyhow::Result<Vec<u8>> {
        let mut fixed = Vec::new();
        for n in nodes() {
            let mut procs = self.procs.lock();
            let np = &mut procs[usize::from(n - 1)];
            if np.clock_file.is_some() {
                let was_running = np.gateway.process.is_running() || np.gateway.paused;
                np.gateway.process.kill();
                np.set_clock(n, None);
                if was_running {
                    np.gateway.start(n, Proc::Gateway)?;
                }
                fixed.push(n);
            }
        }
        Ok(fixed)
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
        for mut disk in self.disks.lock().drain(..) {
            if self.keep_data {
                let kept = disk.path().with_extension("kept");
                let copied = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(disk.path())
                    .arg(&kept)
                    .status();
                if !copied.is_ok_and(|s| s.success()) {
                    eprintln!("cannot keep the data of {}", disk.path().display());
                }
                disk.unmount();
                let _ = fs::rename(&kept, disk.path());
            } else {
                disk.unmount();
            }
        }
    }
}

/// libfaketime's offset syntax: seconds, signed.
fn write_offset(file: &Path, offset_s: i64) -> anyhow::Result<()> {
    let tmp = file.with_extension("tmp");
    fs::write(&tmp, format!("{offset_s:+}\n"))
        .and_then(|()| fs::rename(&tmp, file))
        .with_context(|| format!("cannot write {}", file.display()))
}

/// The members `api`'s gateway lists at `/admin/members`.
fn members_of(api: &Http) -> Result<Vec<Member>, String> {
    let r = api
        .get("/admin/members")
        .map_err(|e: HttpError| e.to_string())?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.body.trim()));
    }
    let v: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    let members = v["members"]
        .as_array()
        .ok_or_else(|| format!("no members in {}", r.body))?;
    Ok(members
        .iter()
        .map(|m| Member {
            id: m["id"].as_u64().unwrap_or(0),
            kind: m["kind"].as_str().unwrap_or_default().to_owned(),
        })
        .collect())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_node_gets_an_id_never_used_and_retires_its_old_ones() {
        let mut ids = Identities::new();
        assert_eq!(ids.replace(2), 4);
        // Replaced again before the first replacement finished: both earlier ids go.
        assert_eq!(ids.replace(2), 5);
        assert_eq!(ids.replace(1), 6);
        let two = ids.of(2).clone();
        assert_eq!((two.id, two.retired, two.joining), (5, vec![2, 4], true));
        let current: Vec<u64> = ids.nodes.iter().map(|i| i.id).collect();
        assert_eq!(current, vec![6, 5, 3]);
        assert!(!ids.of(3).joining && ids.of(3).retired.is_empty());
    }
}
