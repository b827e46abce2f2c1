//! Configuration: a TOML file, overridden by command-line flags. Everything is validated
//! before anything listens, so a bad config is a clear error and a non-zero exit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "Raft-replicated write gateway for InfluxDB 1.x",
    long_about = "Serves the InfluxDB 1.x HTTP API (/write, /api/v2/write, /query, /ping, /health) \
                  in front of a local influxd. Writes and state-changing queries go through a Raft \
                  log shared by all gateway nodes; each node replays the committed log into its own \
                  influxd, so the replicas stay identical.\n\n\
                  Settings come from --config (TOML) and are overridden by flags. Without a \
                  subcommand the gateway runs.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show or change the cluster's membership, through any running node's API.
    Members(MembersArgs),
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    /// API address of any node of the cluster.
    #[arg(long, default_value = "127.0.0.1:8086")]
    pub node: String,
    #[command(subcommand)]
    pub action: MembersAction,
}

#[derive(Debug, Subcommand)]
pub enum MembersAction {
    /// List the members, their peer addresses and roles.
    List,
    /// Add a node: it joins as a learner, replays the log from index 1, and is promoted to a
    /// voter once it has caught up. Start it with --join first.
    Add {
        /// The new node's id (unused so far in this cluster).
        id: u64,
        /// Its peer address (host:port).
        peer_addr: String,
    },
    /// Remove a node from the cluster (for a dead node before replacing it, or to shrink).
    Remove { id: u64 },
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// TOML configuration file; flags override its values.
    #[arg(long, short = 'c', env = "GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id: a positive integer, unique in the cluster.
    #[arg(long)]
    pub id: Option<u64>,
    /// Address of the InfluxDB HTTP API [default: 0.0.0.0:8086].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address the Raft peer transport listens on [default: this node's address in --peer,
    /// on all interfaces].
    #[arg(long)]
    pub peer_listen: Option<SocketAddr>,
    /// A cluster member, as ID=HOST:PORT (its peer address); repeat for every member,
    /// this node included. Every initial member must be given the same list.
    #[arg(long = "peer", value_name = "ID=HOST:PORT", value_parser = parse_peer)]
    pub peers: Vec<(u64, String)>,
    /// Start with an empty log and wait to be added by `gateway members add` instead of
    /// forming a new cluster from --peer (give --peer with this node's own address).
    #[arg(long)]
    pub join: bool,
    /// Directory for the Raft log [default: /var/lib/influx-gateway].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// URL of the local influxd the applier writes to [default: http://127.0.0.1:18086].
    #[arg(long)]
    pub influxd_url: Option<String>,
    /// User for an influxd with authentication enabled (an admin: the applier runs DDL).
    #[arg(long, env = "GATEWAY_INFLUXD_USERNAME")]
    pub influxd_username: Option<String>,
    /// Password for --influxd-username.
    #[arg(long, env = "GATEWAY_INFLUXD_PASSWORD", hide_env_values = true)]
    pub influxd_password: Option<String>,
    /// Require credentials (u/p, Basic or Token) on writes and state-changing queries,
    /// checked against influxd's users; needs --influxd-username/--influxd-password and an
    /// influxd with auth-enabled = true.
    #[arg(long)]
    pub auth_enabled: bool,
    /// Bytes of the newest log entries kept in memory, e.g. 64MiB [default: 64MiB].
    #[arg(long)]
    pub memory_budget: Option<ByteSize>,
    /// How long a write waits to be committed and applied before the client is told its
    /// outcome is unknown, e.g. 10s [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub write_timeout: Option<Duration>,
    /// Largest accepted request body, also after gzip decompression [default: 25MB, as
    /// influxd].
    #[arg(long)]
    pub max_body_size: Option<ByteSize>,
    /// Raft tick interval [default: 100ms]; elections time out after 10 to 20 ticks.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub raft_tick: Option<Duration>,
    /// Log level or tracing filter, e.g. info or gateway=debug [default: info; RUST_LOG
    /// wins if set].
    #[arg(long)]
    pub log_level: Option<String>,
}

fn parse_peer(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("peer {s:?} is not ID=HOST:PORT"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("peer id {id:?} is not a positive integer"))?;
    Ok((id, addr.trim().to_owned()))
}

/// The TOML file. Same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    listen: Option<SocketAddr>,
    peer_listen: Option<SocketAddr>,
    #[serde(default)]
    peers: BTreeMap<String, String>,
    join: Option<bool>,
    data_dir: Option<PathBuf>,
    influxd_url: Option<String>,
    influxd_username: Option<String>,
    influxd_password: Option<String>,
    auth_enabled: Option<bool>,
    memory_budget: Option<ByteSize>,
    #[serde(default, with = "humantime_serde")]
    write_timeout: Option<Duration>,
    max_body_size: Option<ByteSize>,
    #[serde(default, with = "humantime_serde")]
    raft_tick: Option<Duration>,
    log_level: Option<String>,
}

/// The validated configuration of a running node.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: u64,
    pub listen: SocketAddr,
    pub peer_listen: SocketAddr,
    /// Initial members (id -> peer address); when joining, at least this node's own.
    pub peers: BTreeMap<u64, String>,
    pub join: bool,
    pub data_dir: PathBuf,
    pub influxd_url: String,
    pub influxd_credentials: Option<(String, String)>,
    pub auth_enabled: bool,
    pub memory_budget: usize,
    pub write_timeout: Duration,
    pub max_body_size: usize,
    pub raft_tick: Duration,
    pub log_level: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl Config {
    pub fn load(args: &RunArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };

        let id = args
            .id
            .or(file.id)
            .ok_or_else(|| err("a node id is required (--id or `id` in the config file)"))?;
        if id == 0 {
            return Err(err(
                "the node id must be a positive integer (0 is reserved by Raft)",
            ));
        }

        let mut peers = BTreeMap::new();
        for (k, v) in &file.peers {
            let pid = k
                .parse::<u64>()
                .map_err(|_| err(format!("peers: key {k:?} is not a node id")))?;
            peers.insert(pid, v.clone());
        }
        if !args.peers.is_empty() {
            // Flags replace the file's list rather than merging with it, so a command line
            // always describes the whole membership.
            peers = args.peers.iter().cloned().collect();
        }
        for (pid, addr) in &peers {
            if *pid == 0 {
                return Err(err("peer id 0 is reserved by Raft"));
            }
            check_host_port(addr).map_err(|e| err(format!("peer {pid}: {e}")))?;
        }

        let join = args.join || file.join.unwrap_or(false);
        if peers.is_empty() {
            return Err(err(if join {
                "a joining node needs its own peer address: --peer ID=HOST:PORT with its own id"
            } else {
                "no peers: give every member with --peer ID=HOST:PORT (this node included), \
                 or --join to be added to an existing cluster"
            }));
        }
        if !peers.contains_key(&id) {
            return Err(err(format!(
                "node {id} is not in the peer list ({}); list every member, this node included",
                peers
                    .keys()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }

        let peer_listen = match args.peer_listen.or(file.peer_listen) {
            Some(a) => a,
            None => {
                let own = &peers[&id];
                let port = own.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                SocketAddr::from(([0, 0, 0, 0], port.unwrap_or(8089)))
            }
        };

        let influxd_url = args
            .influxd_url
            .clone()
            .or(file.influxd_url)
            .unwrap_or_else(|| "http://127.0.0.1:18086".into());
        let uri: hyper::Uri = influxd_url
            .parse()
            .map_err(|e| err(format!("influxd_url {influxd_url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(err(format!(
                "influxd_url {influxd_url:?} must be an http:// URL of the local influxd"
            )));
        }

        let username = args.influxd_username.clone().or(file.influxd_username);
        let password = args.influxd_password.clone().or(file.influxd_password);
        let influxd_credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                return Err(err(
                    "influxd_username and influxd_password must be given together",
                ))
            }
        };

        let auth_enabled = args.auth_enabled || file.auth_enabled.unwrap_or(false);
        if auth_enabled && influxd_credentials.is_none() {
            return Err(err(
                "auth_enabled needs influxd_username and influxd_password: an influxd admin \
                 the gateway applies the log with",
            ));
        }

        let write_timeout = args
            .write_timeout
            .or(file.write_timeout)
            .unwrap_or(Duration::from_secs(10));
        if write_timeout.is_zero() {
            return Err(err("write_timeout must be more than 0"));
        }
        let raft_tick = args
            .raft_tick
            .or(file.raft_tick)
            .unwrap_or(Duration::from_millis(100));
        if raft_tick < Duration::from_millis(10) || raft_tick > Duration::from_secs(5) {
            return Err(err("raft_tick must be between 10ms and 5s"));
        }
        let max_body_size = args
            .max_body_size
            .or(file.max_body_size)
            .unwrap_or(ByteSize(25_000_000))
            .as_u64() as usize;
        if max_body_size == 0 {
            return Err(err("max_body_size must be more than 0"));
        }

        Ok(Config {
            id,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8086))),
            peer_listen,
            peers,
            join,
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| "/var/lib/influx-gateway".into()),
            influxd_url: influxd_url.trim_end_matches('/').to_owned(),
            influxd_credentials,
            auth_enabled,
            memory_budget: args
                .memory_budget
                .or(file.memory_budget)
                .unwrap_or(ByteSize::mib(64))
                .as_u64() as usize,
            write_timeout,
            max_body_size,
            raft_tick,
            log_level: args
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))
}

fn check_host_port(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
    if host.is_empty() {
        return Err(format!("{addr:?} has no host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{addr:?} has an invalid port"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(peers: &[(u64, &str)]) -> RunArgs {
        RunArgs {
            id: Some(1),
            peers: peers.iter().map(|(i, a)| (*i, a.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults() {
        let c = Config::load(&args(&[(1, "127.0.0.1:8089"), (2, "127.0.0.2:8089")])).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8086");
        assert_eq!(c.peer_listen.to_string(), "0.0.0.0:8089");
        assert_eq!(c.influxd_url, "http://127.0.0.1:18086");
        assert_eq!(c.memory_budget, 64 << 20);
        assert_eq!(c.write_timeout, Duration::from_secs(10));
        assert_eq!(c.max_body_size, 25_000_000);
    }

    #[test]
    fn node_must_be_in_its_peer_list() {
        let e = Config::load(&args(&[(2, "127.0.0.2:8089")])).unwrap_err();
        assert!(e.to_string().contains("not in the peer list"), "{e}");
    }

    #[test]
    fn bad_peer_address_is_refused() {
        let e = Config::load(&args(&[(1, "localhost")])).unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn file_values_and_flag_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            r#"
id = 2
write_timeout = "3s"
memory_budget = "16MiB"
[peers]
1 = "127.0.0.1:8089"
2 = "127.0.0.2:8089"
"#,
        )
        .unwrap();
        let c = Config::load(&RunArgs {
            config: Some(path.clone()),
            write_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.write_timeout, Duration::from_secs(5));
        assert_eq!(c.memory_budget, 16 << 20);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peer_listen.to_string(), "0.0.0.0:8089");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "id = 1\nwrite_timout = \"3s\"\n").unwrap();
        let e = Config::load(&RunArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("write_timout"), "{e}");
    }
}
