//! The network under test: one namespace per node, each with a veth onto a bridge in the root
//! namespace. Clients stay in the root namespace and reach every node over the bridge, so the
//! partitions (iptables rules inside the node namespaces, matching only peer addresses) never
//! cut a client off: clients are outside the partitioned network.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

use anyhow::{bail, Context};

pub const NODES: u8 = 3;
pub const BRIDGE: &str = "jepsen-br0";
pub const BRIDGE_IP: &str = "10.77.0.254";
/// Marks the one rule we add in the root namespace, so teardown and leftover cleanup find it.
const RULE_COMMENT: &str = "jepsen-harness";

pub fn ns(n: u8) -> String {
    format!("jepsen-n{n}")
}

pub fn ip(n: u8) -> String {
    format!("10.77.0.{n}")
}

fn veth(n: u8) -> String {
    format!("jepsen-v{n}")
}

pub fn nodes() -> impl Iterator<Item = u8> {
    1..=NODES
}

/// Runs a command; an error carries its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command prefix that runs a program inside node `n`'s namespace (`ip netns exec`
/// execs it in place, so the child's pid is the program's).
pub fn exec_prefix(n: u8) -> [String; 4] {
    ["ip".into(), "netns".into(), "exec".into(), ns(n)]
}

/// Runs a command inside node `n`'s namespace.
pub fn ns_run(n: u8, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let [ip, rest @ ..] = exec_prefix(n);
    let mut full: Vec<&str> = rest.iter().map(String::as_str).collect();
    full.push(program);
    full.extend_from_slice(args);
    run(&ip, &full)
}

/// Runs `f` on a thread that has entered node `n`'s network namespace: sockets it opens
/// live there (e.g. to reach the node's influxd on that namespace's loopback).
pub fn in_netns<T: Send>(n: u8, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let path = format!("/run/netns/{}", ns(n));
    let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(file.as_raw_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter {path}"))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| bail!("a thread in {path} panicked"))
    })
}

pub fn preflight() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "jepsen needs root: it creates network namespaces, a bridge, iptables rules and \
             tc qdiscs (run it with sudo, or as root in a VM or container with CAP_NET_ADMIN)"
        );
    }
    for tool in ["ip", "iptables", "tc", "influxd"] {
        if which(tool).is_none() {
            bail!("`{tool}` is not installed (Debian: iproute2, iptables, influxdb)");
        }
    }
    Ok(())
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// The test network has fixed names and addresses, so it serves one run at a time: a second
/// run would tear the first one's namespaces down (`cleanup_leftovers`) and write into its
/// influxd. Held for the whole run; the kernel lets go of it when the run's process ends.
pub struct NetworkLock {
    _held: std::fs::File,
}

pub fn lock_network() -> anyhow::Result<NetworkLock> {
    let dir = std::path::Path::new("/run/lock");
    let dir = if dir.is_dir() {
        dir.to_owned()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join("jepsen-network.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(NetworkLock { _held: file }),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another jepsen run is using the test network (namespaces jepsen-n*, lock {}): \
             wait for it to end",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// What a crashed earlier run may have left: processes in our namespaces, the namespaces,
/// the bridge, the veths, the root FORWARD rule. Everything is named `jepsen-*`.
pub fn cleanup_leftovers() {
    let namespaces = run("ip", &["netns", "list"]).unwrap_or_default();
    for line in namespaces.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if !name.starts_with("jepsen-n") {
            continue;
        }
        let pids = run("ip", &["netns", "pids", name]).unwrap_or_default();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = run("ip", &["netns", "del", name]);
    }
    for n in 1..=9 {
        if std::path::Path::new(&format!("/sys/class/net/{}", veth(n))).exists() {
            let _ = run("ip", &["link", "del", &veth(n)]);
        }
    }
    if std::path::Path::new(&format!("/sys/class/net/{BRIDGE}")).exists() {
        let _ = run("ip", &["link", "del", BRIDGE]);
    }
    // The nodes' disks, once their processes are gone.
    for path in harness::tmpfs::mounted_from(crate::cluster::DISK_SOURCE) {
        harness::tmpfs::unmount(&path);
    }
    while remove_forward_rule() {}
}

fn forward_rule(action: &str) -> Vec<&str> {
    vec![
        action,
        "FORWARD",
        "-i",
        BRIDGE,
        "-o",
        BRIDGE,
        "-m",
        "comment",
        "--comment",
        RULE_COMMENT,
        "-j",
        "ACCEPT",
    ]
}

fn remove_forward_rule() -> bool {
    run("iptables", &forward_rule("-D")).is_ok()
}

/// The bridge, the namespaces and their links. Dropping it removes them all.
pub struct Network {
    up: bool,
}

impl Network {
    pub fn setup() -> anyhow::Result<Network> {
        let mut net = Network { up: true };
        net.create().context(
            "cannot build the test network (this needs root and network namespace support)",
        )?;
        Ok(net)
    }

    fn create(&mut self) -> anyhow::Result<()> {
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("{BRIDGE_IP}/24"), "dev", BRIDGE],
        )?;
        run("ip", &["link", "set", BRIDGE, "up"])?;
        // Bridged frames traverse the root FORWARD chain when br_netfilter is loaded; a host
        // whose policy drops forwarded traffic (Docker's does) would silently partition
        // everything.
        let _ = run("iptables", &forward_rule("-I"));
        for n in nodes() {
            let ns = ns(n);
            let peer = format!("jepsen-p{n}");
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &veth(n),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &peer,
                ],
            )?;
            run("ip", &["link", "set", &peer, "netns", &ns])?;
            run("ip", &["link", "set", &veth(n), "master", BRIDGE])?;
            run("ip", &["link", "set", &veth(n), "up"])?;
            run("ip", &["-n", &ns, "link", "set", &peer, "name", "eth0"])?;
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{}/24", ip(n)),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    pub fn teardown(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        for n in nodes() {
            let _ = run("ip", &["netns", "del", &ns(n)]);
            let _ = run("ip", &["link", "del", &veth(n)]);
        }
        let _ = run("ip", &["link", "del", BRIDGE]);
        while remove_forward_rule() {}
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Node `to` drops every packet from node `from` (Jepsen's grudges: one direction at a time,
/// on the receiving side).
pub fn drop_from(to: u8, from: u8) -> anyhow::Result<()> {
    ns_run(
        to,
        "iptables",
        &["-A", "INPUT", "-s", &ip(from), "-j", "DROP"],
    )
    .map(drop)
}

/// Removes every rule of ours: the namespaces' INPUT and OUTPUT chains hold nothing else.
pub fn heal_partitions() -> anyhow::Result<()> {
    for n in nodes() {
        ns_run(n, "iptables", &["-F", "INPUT"])?;
        ns_run(n, "iptables", &["-F", "OUTPUT"])?;
    }
    Ok(())
}

/// Whether this kernel has netem (some minimal kernels lack CONFIG_NET_SCH_NETEM); probed
/// once on a namespace's loopback.
pub fn netem_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let ok = ns_run(
            1,
            "tc",
            &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        )
        .is_ok();
        let _ = ns_run(1, "tc", &["qdisc", "del", "dev", "lo", "root"]);
        ok
    })
}

/// Shapes packets leaving node `n` (its side of the veth) with a root qdisc.
pub fn qdisc(n: u8, spec: &[&str]) -> anyhow::Result<()> {
    let mut args = vec!["qdisc", "replace", "dev", "eth0", "root"];
    args.extend_from_slice(spec);
    ns_run(n, "tc", &args).map(drop)
}

pub fn clear_qdisc(n: u8) {
    // Fails harmlessly when there is no qdisc of ours.
    let _ = ns_run(n, "tc", &["qdisc", "del", "dev", "eth0", "root"]);
}

/// Node `n` drops a random share of the packets it receives and of those it sends (for
/// kernels without netem); removed by [`heal_partitions`].
pub fn random_loss(n: u8, probability: f64) -> anyhow::Result<()> {
    let p = format!("{probability}");
    for chain in ["INPUT", "OUTPUT"] {
        ns_run(
            n,
            "iptables",
            &[
                "-A",
                chain,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        )?;
    }
    Ok(())
}
