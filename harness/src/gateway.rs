//! The gateway of this workspace: its binary, built on demand so a test never runs a stale
//! one, and its command line as one node of a cluster.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Process};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    /// The profile this code was built in: tests get a debug gateway, a release benchmark a
    /// release one.
    pub fn of_this_build() -> Profile {
        if cfg!(debug_assertions) {
            Profile::Debug
        } else {
            Profile::Release
        }
    }
}

/// The workspace's gateway binary in `profile`, brought up to date by cargo first (a no-op
/// when it is). `CARGO_TARGET_DIR` is respected.
pub fn binary(profile: Profile) -> Result<PathBuf, Error> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| Error::Build("the harness crate has no parent directory".into()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-q", "-p", "gateway", "--bin", "gateway"]);
    if profile == Profile::Release {
        build.arg("--release");
    }
    let status = build
        .current_dir(workspace)
        .status()
        .map_err(Error::io("run cargo build for the gateway binary"))?;
    if !status.success() {
        return Err(Error::Build(format!("cargo build exited with {status}")));
    }
    // A relative target directory is relative to where cargo ran.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| workspace.join(t))
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target
        .join(match profile {
            Profile::Debug => "debug",
            Profile::Release => "release",
        })
        .join("gateway");
    if !bin.is_file() {
        return Err(Error::Build(format!(
            "no gateway binary at {} after the build",
            bin.display()
        )));
    }
    Ok(bin)
}

/// How a node meets the cluster.
#[derive(Debug, Clone)]
pub enum Peers {
    /// One of the members the cluster is created with, each with its peer address.
    Initial(Vec<(u64, String)>),
    /// A node added later (`gateway members add`): it knows only itself until the leader
    /// reaches it.
    Join,
}

/// One gateway node's command line.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: u64,
    /// `host:port` of its API.
    pub api_addr: String,
    /// `host:port` of its Raft peer port.
    pub peer_addr: String,
    pub peers: Peers,
    pub data_dir: PathBuf,
    pub influxd_url: String,
    /// Further flags (`--write-timeout 10s`, `--memory-budget 64MiB`).
    pub extra: Vec<String>,
}

impl Node {
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut flag = |name: &str, value: OsString| {
            args.push(name.into());
            args.push(value);
        };
        flag("--id", self.id.to_string().into());
        flag("--listen", (&self.api_addr).into());
        flag("--peer-listen", (&self.peer_addr).into());
        match &self.peers {
            Peers::Initial(peers) => {
                for (id, addr) in peers {
                    flag("--peer", format!("{id}={addr}").into());
                }
            }
            Peers::Join => {
                flag("--peer", format!("{}={}", self.id, self.peer_addr).into());
            }
        }
        flag("--data-dir", self.data_dir.clone().into());
        flag("--influxd-url", (&self.influxd_url).into());
        if matches!(self.peers, Peers::Join) {
            args.push("--join".into());
        }
        args.extend(self.extra.iter().map(OsString::from));
        // Peer links are mutual TLS only when the flags say so; say plain text otherwise.
        if !self.extra.iter().any(|a| a.starts_with("--peer-ca")) {
            args.push("--peer-plaintext".into());
        }
        args
    }

    /// The gateway process of this node, not started, with its output going to `log`.
    pub fn process(&self, binary: &Path, log: PathBuf) -> Process {
        Process::new(format!("gateway {}", self.id), binary, log).args(self.args())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(peers: Peers) -> Node {
        Node {
            id: 2,
            api_addr: "10.0.0.2:8086".into(),
            peer_addr: "10.0.0.2:8089".into(),
            peers,
            data_dir: "/d/n2".into(),
            influxd_url: "http://127.0.0.1:18086".into(),
            extra: vec!["--write-timeout".into(), "10s".into()],
        }
    }

    fn line(n: &Node) -> String {
        n.args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn initial_members_list_every_peer() {
        let n = node(Peers::Initial(vec![
            (1, "10.0.0.1:8089".into()),
            (2, "10.0.0.2:8089".into()),
        ]));
        assert_eq!(
            line(&n),
            "--id 2 --listen 10.0.0.2:8086 --peer-listen 10.0.0.2:8089 \
             --peer 1=10.0.0.1:8089 --peer 2=10.0.0.2:8089 --data-dir /d/n2 \
             --influxd-url http://127.0.0.1:18086 --write-timeout 10s --peer-plaintext"
        );
    }

    #[test]
    fn a_joining_node_knows_only_itself() {
        assert_eq!(
            line(&node(Peers::Join)),
            "--id 2 --listen 10.0.0.2:8086 --peer-listen 10.0.0.2:8089 \
             --peer 2=10.0.0.2:8089 --data-dir /d/n2 \
             --influxd-url http://127.0.0.1:18086 --join --write-timeout 10s --peer-plaintext"
        );
    }
}
