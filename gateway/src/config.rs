//! Configuration: each setting is declared once, as a command-line flag of [`Config`]; a TOML
//! file (`--config`) supplies values under the same names, with underscores (a list as an
//! array or a comma-separated string), and flags override it. Everything is validated before anything listens, so a bad configuration is a
//! clear error and a non-zero exit.
//!
//! The file is read as the flags' defaults: clap then parses file values exactly as it parses
//! flags, so there is one parser, one help text and one default per setting.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ipnet::IpNet;

use snapshotless::marker::DATABASE as RESERVED_DB;

use crate::ingest::Precision;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "Raft-replicated write gateway for InfluxDB 1.x",
    long_about = "Serves the InfluxDB 1.x HTTP API (/write, /api/v2/write, /query, /ping, /health) \
                  in front of a local influxd. Writes and state-changing queries go through a Raft \
                  log shared by all gateway nodes; each node replays the committed log into its own \
                  influxd, so the replicas stay identical.\n\n\
                  Settings come from --config (TOML, the same names with underscores) and are \
                  overridden by flags. Without a subcommand the gateway runs.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show or change the cluster's membership, through any running node's API.
    Members(MembersArgs),
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    /// API address of any node of the cluster: HOST:PORT, or a URL (https://HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:8086")]
    pub node: String,
    /// PEM file of the CA the node's HTTPS certificate is checked against; the request goes
    /// over HTTPS.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// An admin user of the cluster, when authentication is enabled.
    #[arg(long, env = "INFLUX_USERNAME")]
    pub username: Option<String>,
    /// The password of --username.
    #[arg(long, env = "INFLUX_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    #[command(subcommand)]
    pub action: MembersAction,
}

#[derive(Debug, Subcommand)]
pub enum MembersAction {
    /// List the members, their peer addresses and roles.
    List,
    /// Add a node: it joins as a learner, replays the log (or is seeded from a peer's influxd
    /// where the log was trimmed), and is promoted to a voter once it has caught up. Start it
    /// with --join first.
    Add {
        /// The new node's id (unused so far in this cluster).
        id: u64,
        /// Its peer address (host:port).
        peer_addr: String,
    },
    /// Remove a node from the cluster (for a dead node before replacing it, or to shrink).
    Remove { id: u64 },
}

/// A node's settings. [`Config::validate`] checks them together once parsed.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// TOML configuration file; flags override its values.
    #[arg(long, short = 'c', env = "GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id: a positive integer, unique in the cluster.
    #[arg(long)]
    pub id: Option<u64>,
    /// Address of the InfluxDB HTTP API.
    #[arg(long, default_value = "0.0.0.0:8086")]
    pub listen: SocketAddr,
    /// Address the Raft peer transport listens on [default: this node's address in --peer,
    /// on all interfaces].
    #[arg(long)]
    pub peer_listen: Option<SocketAddr>,
    /// A cluster member, as ID=HOST:PORT (its peer address); repeat for every member,
    /// this node included. Every initial member must be given the same list. In the file:
    /// a [peers] table of ID = "HOST:PORT".
    #[arg(long = "peer", id = "peers", value_name = "ID=HOST:PORT", value_parser = parse_peer)]
    pub peers: Vec<(u64, String)>,
    /// Start with an empty log and wait to be added by `gateway members add` instead of
    /// forming a new cluster from --peer (give --peer with this node's own address).
    #[arg(long)]
    pub join: bool,
    /// PEM certificate (chain) the API serves HTTPS with; with --https-private-key. Without
    /// them the API is plain HTTP. Reloaded on SIGHUP.
    #[arg(long)]
    pub https_certificate: Option<PathBuf>,
    /// PEM private key of --https-certificate.
    #[arg(long)]
    pub https_private_key: Option<PathBuf>,
    /// PEM file of the cluster CA: peer connections are mutual TLS, and only a node whose
    /// certificate this CA signed is let in. Needs --peer-certificate and --peer-private-key.
    #[arg(long)]
    pub peer_ca: Option<PathBuf>,
    /// This node's PEM certificate on peer links, signed by --peer-ca, for the host of its
    /// peer address (other nodes check the name they dial) and for both server and client
    /// authentication. Reloaded on SIGHUP, with --peer-ca and --peer-private-key.
    #[arg(long)]
    pub peer_certificate: Option<PathBuf>,
    /// PEM private key of --peer-certificate.
    #[arg(long)]
    pub peer_private_key: Option<PathBuf>,
    /// Run peer links as plain, unauthenticated TCP instead of mutual TLS: anyone who can
    /// reach the peer port can then write into every replica. Only for a trusted network.
    #[arg(long)]
    pub peer_plaintext: bool,
    /// Directory for the Raft log.
    #[arg(long, default_value = "/var/lib/influx-gateway")]
    pub data_dir: PathBuf,
    /// URL of the local influxd the applier writes to.
    #[arg(long, default_value = "http://127.0.0.1:18086")]
    pub influxd_url: String,
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
    /// Bytes of the newest log entries kept in memory.
    #[arg(long, default_value = "64MiB")]
    pub memory_budget: ByteSize,
    /// How long the log keeps entries that every member's influxd holds: a duration (`7d`,
    /// `12h`) or `forever`. A member that needs an entry no longer kept is seeded from a
    /// peer's influxd instead of replaying it.
    #[arg(long, default_value = "1d", value_parser = parse_retention)]
    pub log_retention: Retention,
    /// Cap on the log's disk use (`20GiB`; `0`: no cap). Over it, entries that a quorum's
    /// influxd holds are trimmed too, even if a member still needs them (it will be seeded).
    #[arg(long, default_value = "10GiB")]
    pub log_max_size: ByteSize,
    /// Free space kept on the log's disk: below it, this node refuses writes with 503 before
    /// proposing anything, keeping the room for the appends it must still take as a follower,
    /// its Raft state and the log's own bookkeeping (`0`: refuse only when the log cannot be
    /// written at all).
    #[arg(long, default_value = "256MiB")]
    pub log_disk_reserve: ByteSize,
    /// The local influxd's RPC address (its `bind-address`), where influxd's own backup and
    /// restore tools copy it for a peer that is seeded, and restore a copy into it.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub influxd_rpc: String,
    /// The influxd program, whose `backup` and `restore` subcommands seeding runs.
    #[arg(long, default_value = "influxd")]
    pub influxd_program: PathBuf,
    /// A node that would replay more than this many times the bytes a copy of a peer's
    /// influxd moves is seeded from that copy instead (0: only when the entries it needs
    /// were trimmed).
    #[arg(long, default_value_t = 10)]
    pub seed_backlog_ratio: u64,
    /// A backlog smaller than this is always replayed: a seed costs a few seconds whatever
    /// its size, and wipes the node's influxd first.
    #[arg(long, default_value = "256MiB")]
    pub seed_min_backlog: ByteSize,
    /// Upper bound of one influxd backup or restore run while seeding.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub seed_timeout: Duration,
    /// How long a write waits to be committed and applied before the client is told its
    /// outcome is unknown.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,
    /// How long after a write with an Idempotency-Key was received a retry with the same key
    /// is recognised, through any node: applied at most once and answered with the first
    /// attempt's outcome. Measured by the clocks of the nodes that received the attempts;
    /// each write carries its node's value, so nodes may differ while it is changed.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,
    /// Most idempotency keys every replica keeps; past it the oldest are forgotten first,
    /// even within the window. Each takes a few hundred bytes in memory and on disk.
    #[arg(long, default_value_t = 100_000)]
    pub idempotency_max_keys: u64,
    /// Replicate large writes zstd-compressed, compressed once by the node that received
    /// them, while every member reads such entries (`false`: this node neither compresses nor
    /// says it reads them, so the cluster replicates every write as it came; while any node
    /// says `false`, a rollback to a build from before this setting stays possible).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pack_entries: bool,
    /// Largest accepted request body, also after gzip decompression (influxd's default).
    #[arg(long, default_value = "25MB")]
    pub max_body_size: ByteSize,
    /// Most API connections served at once. Over it, new connections wait in the listen
    /// backlog until one closes; those open keep being served. The open-files limit is
    /// raised to its hard limit at start, so that this cap is what binds.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// A request's line and headers must arrive within this time of its first byte, and a
    /// new connection's first request within this time of the connection: a client
    /// trickling its headers is cut off.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// A keep-alive connection silent this long between requests is closed; so is one whose
    /// client stops reading an answer for this long.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// The longest a request body may take to arrive, from the handler's first read of it to
    /// its last byte; slower, the request fails with 408 and nothing of it is written. Raise
    /// it for large bodies over slow links.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,
    /// Largest request head, the request line and every header together; larger gets 431.
    /// A longer query than fits in the URL can be sent as a POST form body.
    #[arg(long, default_value = "64KiB")]
    pub max_header_size: ByteSize,
    /// Most headers in one request; more gets 431.
    #[arg(long, default_value_t = 100)]
    pub max_headers: usize,
    /// Who may use /admin/members, which changes the cluster's membership: `on` (any
    /// client), `off` (nobody: 403), or the client addresses and networks allowed, separated
    /// by commas (`127.0.0.1,10.0.0.0/8`; in the file also a list). With --auth-enabled it
    /// also needs an admin user.
    #[arg(long, default_value = "on", value_parser = parse_admin_api)]
    pub admin_api: AdminApi,
    /// Address of the UDP line protocol listener (influxd's `[[udp]]`), e.g. 0.0.0.0:8189;
    /// off unless given. Datagrams get no answer: what is dropped is counted in /metrics.
    /// Not the peer port (8089, InfluxDB's customary UDP port, is the peer port's default).
    #[arg(long)]
    pub udp_bind: Option<SocketAddr>,
    /// The database UDP points are written to (required with --udp-bind); created through
    /// the log before the first batch, as influxd's UDP service does.
    #[arg(long)]
    pub udp_database: Option<String>,
    /// The retention policy UDP points are written to [default: the database's default].
    #[arg(long)]
    pub udp_retention_policy: Option<String>,
    /// Precision of the timestamps in UDP datagrams: n (or empty), u, ms, s, m or h.
    #[arg(long, default_value = "n", value_parser = parse_udp_precision)]
    pub udp_precision: Precision,
    /// A UDP batch is proposed to the log once it holds this many points.
    #[arg(long, default_value_t = 5000)]
    pub udp_batch_size: usize,
    /// A UDP batch is proposed this long after its first point, however few it holds.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub udp_batch_timeout: Duration,
    /// UDP batches that may wait for the log at once; past them, a full batch is dropped.
    #[arg(long, default_value_t = 10)]
    pub udp_batch_pending: usize,
    /// The UDP socket's receive buffer (SO_RCVBUF; 0: the kernel's default). Linux caps it at
    /// net.core.rmem_max; what the kernel granted is logged and in /metrics.
    #[arg(long, default_value = "0")]
    pub udp_read_buffer: ByteSize,
    /// Raft tick interval; elections time out after 10 to 20 ticks.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub raft_tick: Duration,
    /// Log level or tracing filter, e.g. info or gateway=debug [RUST_LOG wins if set].
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// How long the log keeps applied entries; `None` is `forever`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

fn parse_retention(s: &str) -> Result<Retention, ConfigError> {
    if s.trim().eq_ignore_ascii_case("forever") {
        return Ok(Retention(None));
    }
    humantime::parse_duration(s.trim())
        .map(|d| Retention(Some(d)))
        .map_err(|e| {
            err(format!(
                "log retention {s:?}: {e} (a duration such as 7d, or forever)"
            ))
        })
}

/// Who may use the admin API, by the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminApi {
    On,
    Off,
    /// Clients from these addresses and networks only.
    From(Vec<IpNet>),
}

impl AdminApi {
    /// Whether a client at `ip` may use the admin API (authentication aside).
    pub fn admits(&self, ip: IpAddr) -> bool {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        match self {
            AdminApi::On => true,
            AdminApi::Off => false,
            AdminApi::From(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

fn parse_admin_api(s: &str) -> Result<AdminApi, ConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" => return Ok(AdminApi::On),
        "off" => return Ok(AdminApi::Off),
        _ => {}
    }
    let nets = s
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    err(format!(
                        "admin_api {s:?}: {n:?} is not an address or a network (ADDRESS/BITS); \
                         expected on, off or a list of them"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nets.is_empty() {
        return Err(err(format!(
            "admin_api {s:?}: expected on, off or a list of addresses and networks"
        )));
    }
    Ok(AdminApi::From(nets))
}

fn parse_udp_precision(s: &str) -> Result<Precision, ConfigError> {
    Precision::from_v1(Some(s.trim())).map_err(|e| err(format!("udp_precision: {e}")))
}

fn parse_peer(s: &str) -> Result<(u64, String), ConfigError> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| err(format!("peer {s:?} is not ID=HOST:PORT")))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| err(format!("peer id {id:?} is not a positive integer")))?;
    Ok((id, addr.trim().to_owned()))
}

/// Bounds of `max_header_size`: a request line with its `Host` header, and far more than any
/// client sends (every connection may buffer this much).
const MIN_HEADER_SIZE: u64 = 1 << 10;
const MAX_HEADER_SIZE: u64 = 16 << 20;
const MAX_HEADERS: usize = 10_000;
/// SO_RCVBUF is an int, and the kernel doubles what it is given.
const MAX_UDP_READ_BUFFER: u64 = 1 << 30;
/// Bounds of the idempotency settings: a window must outlast a client's timeout and retry,
/// and every replica holds the keys in memory.
const MIN_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(1);
const MAX_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(7 * 86_400);
const MAX_IDEMPOTENCY_KEYS: u64 = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Also `--help` and `--version`: `exit()` prints them and exits as clap does.
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl Cli {
    /// Parses the command line, reading `--config` (or `GATEWAY_CONFIG`) first so that its
    /// values become the flags' defaults.
    pub fn load<I, T>(argv: I) -> Result<Cli, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        let first = Cli::try_parse_from(&argv)?;
        let Some(path) = first.run.config.clone().filter(|_| first.command.is_none()) else {
            return Ok(first);
        };
        let mut command = Cli::command();
        for (key, values) in read_file(&path)? {
            if !command.get_arguments().any(|a| a.get_id() == key.as_str()) || key == "config" {
                return Err(err(format!("{}: unknown setting {key:?}", path.display())).into());
            }
            command = command.mut_arg(key, |a| a.default_values(values));
        }
        let matches = command.try_get_matches_from(&argv)?;
        Ok(Cli::from_arg_matches(&matches)?)
    }
}

/// The file's settings as flag values: `key = value`, and `[peers]` as `ID=HOST:PORT` values.
fn read_file(path: &Path) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut settings = Vec::new();
    for (key, value) in table {
        let values = match value {
            toml::Value::String(s) => vec![s],
            toml::Value::Integer(i) => vec![i.to_string()],
            toml::Value::Float(f) => vec![f.to_string()],
            toml::Value::Boolean(b) => vec![b.to_string()],
            // A list setting takes its items as one comma-separated value, as on the command
            // line.
            toml::Value::Array(items) => vec![items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(err(format!(
                        "{}: {key}: expected a list of strings, found {other}",
                        path.display()
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(",")],
            toml::Value::Table(t) if key == "peers" => t
                .into_iter()
                .map(|(id, addr)| match addr {
                    toml::Value::String(a) => Ok(format!("{id}={a}")),
                    other => Err(err(format!(
                        "{}: peers.{id}: expected \"HOST:PORT\", found {other}",
                        path.display()
                    ))),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(err(format!(
                    "{}: {key}: unsupported value {other}",
                    path.display()
                )))
            }
        };
        settings.push((key, values));
    }
    Ok(settings)
}

impl Config {
    /// Checks the settings together and fills in what derives from others.
    pub fn validate(mut self) -> Result<Config, ConfigError> {
        let id = self
            .id
            .ok_or_else(|| err("a node id is required (--id or `id` in the config file)"))?;
        if id == 0 {
            return Err(err(
                "the node id must be a positive integer (0 is reserved by Raft)",
            ));
        }
        let peers = self.members();
        if peers.len() != self.peers.len() {
            return Err(err("a peer id is given twice"));
        }
        for (pid, addr) in &peers {
            if *pid == 0 {
                return Err(err("peer id 0 is reserved by Raft"));
            }
            check_host_port(addr).map_err(|e| err(format!("peer {pid}: {}", e.0)))?;
        }
        if peers.is_empty() {
            return Err(err(if self.join {
                "a joining node needs its own peer address: --peer ID=HOST:PORT with its own id"
            } else {
                "no peers: give every member with --peer ID=HOST:PORT (this node included), \
                 or --join to be added to an existing cluster"
            }));
        }
        let Some(own) = peers.get(&id) else {
            return Err(err(format!(
                "node {id} is not in the peer list ({}); list every member, this node included",
                peers
                    .keys()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if self.peer_listen.is_none() {
            let port = own.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            self.peer_listen = Some(SocketAddr::from(([0, 0, 0, 0], port.unwrap_or(8089))));
        }

        let url = &self.influxd_url;
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| err(format!("influxd_url {url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(err(format!(
                "influxd_url {url:?} must be an http:// URL of the local influxd"
            )));
        }
        self.influxd_url = url.trim_end_matches('/').to_owned();

        if self.influxd_username.is_some() != self.influxd_password.is_some() {
            return Err(err(
                "influxd_username and influxd_password must be given together",
            ));
        }
        if self.auth_enabled && self.influxd_username.is_none() {
            return Err(err(
                "auth_enabled needs influxd_username and influxd_password: an influxd admin \
                 the gateway applies the log with",
            ));
        }
        if self.https_certificate.is_some() != self.https_private_key.is_some() {
            return Err(err(
                "https_certificate and https_private_key must be given together",
            ));
        }
        let peer_tls = [
            &self.peer_ca,
            &self.peer_certificate,
            &self.peer_private_key,
        ];
        match (
            peer_tls.iter().filter(|f| f.is_some()).count(),
            self.peer_plaintext,
        ) {
            (3, false) | (0, true) => {}
            (0, false) => {
                return Err(err(
                    "peer links need mutual TLS: give peer_ca, peer_certificate and \
                     peer_private_key, or set peer_plaintext to run them unauthenticated",
                ))
            }
            (_, true) => {
                return Err(err(
                    "peer_plaintext and the peer TLS files (peer_ca, peer_certificate, \
                     peer_private_key) exclude each other",
                ))
            }
            _ => {
                return Err(err(
                    "peer_ca, peer_certificate and peer_private_key must be given together",
                ))
            }
        }
        if self.write_timeout.is_zero() {
            return Err(err("write_timeout must be more than 0"));
        }
        if self.raft_tick < Duration::from_millis(10) || self.raft_tick > Duration::from_secs(5) {
            return Err(err("raft_tick must be between 10ms and 5s"));
        }
        if self.max_body_size.as_u64() == 0 {
            return Err(err("max_body_size must be more than 0"));
        }
        if self.max_connections == 0 {
            return Err(err("max_connections must be more than 0"));
        }
        for (name, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ] {
            if d.is_zero() {
                return Err(err(format!("{name} must be more than 0")));
            }
        }
        let head = self.max_header_size.as_u64();
        if !(MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&head) {
            return Err(err(format!(
                "max_header_size must be between {} and {}",
                ByteSize(MIN_HEADER_SIZE),
                ByteSize(MAX_HEADER_SIZE)
            )));
        }
        if !(1..=MAX_HEADERS).contains(&self.max_headers) {
            return Err(err(format!(
                "max_headers must be between 1 and {MAX_HEADERS}"
            )));
        }
        self.validate_udp()?;
        if !(MIN_IDEMPOTENCY_WINDOW..=MAX_IDEMPOTENCY_WINDOW).contains(&self.idempotency_window) {
            return Err(err("idempotency_window must be between 1s and 7d"));
        }
        if !(1..=MAX_IDEMPOTENCY_KEYS).contains(&self.idempotency_max_keys) {
            return Err(err(format!(
                "idempotency_max_keys must be between 1 and {MAX_IDEMPOTENCY_KEYS}"
            )));
        }
        Ok(self)
    }

    /// The UDP listener's settings, after `peer_listen` is known.
    fn validate_udp(&self) -> Result<(), ConfigError> {
        let Some(bind) = self.udp_bind else {
            if self.udp_database.is_some() || self.udp_retention_policy.is_some() {
                return Err(err(
                    "udp_database and udp_retention_policy are for the UDP listener, which is \
                     off: give udp_bind too",
                ));
            }
            return Ok(());
        };
        match self.udp_database.as_deref() {
            None | Some("") => {
                return Err(err(
                    "udp_bind needs udp_database: the database UDP points are written to",
                ))
            }
            Some(RESERVED_DB) => {
                return Err(err(format!(
                    "udp_database {RESERVED_DB:?} is reserved for the gateway's own bookkeeping"
                )))
            }
            Some(_) => {}
        }
        // UDP and TCP ports are separate, so the kernel would let both bind; but 8089 is both
        // InfluxDB's customary UDP port and this gateway's peer port, and one port number
        // meaning two services invites firewall rules and clients aimed at the wrong one.
        let peer = self.peer_listen();
        let overlap = |a: IpAddr, b: IpAddr| a == b || a.is_unspecified() || b.is_unspecified();
        if bind.port() == peer.port() && overlap(bind.ip(), peer.ip()) {
            return Err(err(format!(
                "udp_bind {bind} is the peer listener's port ({peer}): give the UDP listener \
                 a port of its own (the peer port is TCP between gateways; UDP clients sending \
                 to it would be ignored)"
            )));
        }
        if self.udp_batch_size == 0 {
            return Err(err("udp_batch_size must be more than 0"));
        }
        if self.udp_batch_pending == 0 {
            return Err(err("udp_batch_pending must be more than 0"));
        }
        if self.udp_batch_timeout.is_zero() {
            return Err(err("udp_batch_timeout must be more than 0"));
        }
        if self.udp_read_buffer.as_u64() > MAX_UDP_READ_BUFFER {
            return Err(err(format!(
                "udp_read_buffer must be at most {}",
                ByteSize(MAX_UDP_READ_BUFFER)
            )));
        }
        Ok(())
    }

    /// The UDP listener's settings, when it is on.
    pub fn udp(&self) -> Option<crate::udp::Settings> {
        Some(crate::udp::Settings {
            bind: self.udp_bind?,
            database: self.udp_database.clone()?,
            retention_policy: self.udp_retention_policy.clone().unwrap_or_default(),
            precision: self.udp_precision,
            batch_size: self.udp_batch_size,
            batch_max_bytes: self.max_body_size(),
            batch_timeout: self.udp_batch_timeout,
            batch_pending: self.udp_batch_pending,
            read_buffer: self.udp_read_buffer.as_u64() as usize,
            auth_enabled: self.auth_enabled,
        })
    }

    /// The API's certificate and key, when it serves HTTPS.
    pub fn api_tls(&self) -> Option<crate::tls::ApiFiles> {
        Some(crate::tls::ApiFiles {
            certificate: self.https_certificate.clone()?,
            private_key: self.https_private_key.clone()?,
        })
    }

    /// The peer TLS files, unless peer links are plain text (validated: all or none).
    pub fn peer_tls(&self) -> Option<crate::tls::PeerFiles> {
        Some(crate::tls::PeerFiles {
            ca: self.peer_ca.clone()?,
            certificate: self.peer_certificate.clone()?,
            private_key: self.peer_private_key.clone()?,
        })
    }

    /// This node's id (validated: present).
    pub fn node_id(&self) -> u64 {
        self.id.unwrap_or_default()
    }

    /// The initial members: id -> peer address; when joining, at least this node's own.
    pub fn members(&self) -> BTreeMap<u64, String> {
        self.peers.iter().cloned().collect()
    }

    /// The address this node's peers reach it at.
    pub fn advertise(&self) -> String {
        self.members().remove(&self.node_id()).unwrap_or_default()
    }

    /// The admin account the applier uses on an influxd with authentication.
    pub fn influxd_credentials(&self) -> Option<(String, String)> {
        self.influxd_username
            .clone()
            .zip(self.influxd_password.clone())
    }

    pub fn peer_listen(&self) -> SocketAddr {
        self.peer_listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8089)))
    }

    pub fn memory_budget(&self) -> usize {
        self.memory_budget.as_u64() as usize
    }

    pub fn max_body_size(&self) -> usize {
        self.max_body_size.as_u64() as usize
    }

    /// The bounds every API connection is served within.
    pub fn connection_limits(&self) -> crate::http::ConnLimits {
        crate::http::ConnLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_header_size: self.max_header_size.as_u64() as usize,
            max_headers: self.max_headers,
        }
    }

    /// The log retention and size cap, `None` where unbounded.
    pub fn trim_policy(&self) -> crate::raft::TrimPolicy {
        crate::raft::TrimPolicy {
            retention: self.log_retention.0,
            max_size: Some(self.log_max_size.as_u64()).filter(|&b| b > 0),
        }
    }
}

fn check_host_port(addr: &str) -> Result<(), ConfigError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| err(format!("{addr:?} is not HOST:PORT")))?;
    if host.is_empty() {
        return Err(err(format!("{addr:?} has no host")));
    }
    port.parse::<u16>()
        .map_err(|_| err(format!("{addr:?} has an invalid port")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `args`, with plain-text peer links unless they say how peers are secured.
    fn load(args: &[&str]) -> Result<Config, String> {
        let secured = args.iter().any(|a| a.starts_with("--peer-"));
        let plain = (!secured).then_some("--peer-plaintext");
        load_exactly(&[args, plain.as_slice()].concat())
    }

    fn load_exactly(args: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("gateway").chain(args.iter().copied());
        let cli = Cli::load(argv).map_err(|e| e.to_string())?;
        cli.run.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = load(&[
            "--id",
            "1",
            "--peer",
            "1=127.0.0.1:8089",
            "--peer",
            "2=127.0.0.2:8089",
        ])
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8086");
        assert_eq!(c.peer_listen().to_string(), "0.0.0.0:8089");
        assert_eq!(c.influxd_url, "http://127.0.0.1:18086");
        assert_eq!(c.memory_budget(), 64 << 20);
        assert_eq!(c.write_timeout, Duration::from_secs(10));
        assert_eq!(c.max_body_size(), 25_000_000);
        let policy = c.trim_policy();
        assert_eq!(policy.retention, Some(Duration::from_secs(86_400)));
        assert_eq!(policy.max_size, Some(10 << 30));
        let conn = c.connection_limits();
        assert_eq!(conn.max_connections, 10_000);
        assert_eq!(conn.header_read_timeout, Duration::from_secs(10));
        assert_eq!(conn.idle_timeout, Duration::from_secs(120));
        assert_eq!(conn.max_header_size, 64 << 10);
        assert_eq!(conn.max_headers, 100);
        assert_eq!(c.body_read_timeout, Duration::from_secs(60));
        assert_eq!(c.admin_api, AdminApi::On);
        assert_eq!(c.idempotency_window, Duration::from_secs(600));
        assert_eq!(c.idempotency_max_keys, 100_000);
        assert!(c.pack_entries);
    }

    #[test]
    fn idempotency_settings_are_checked() {
        let base = ["--id", "1", "--peer", "1=127.0.0.1:8089"];
        let with = |extra: &[&str]| load(&[&base[..], extra].concat());
        let c = with(&[
            "--idempotency-window",
            "1h",
            "--idempotency-max-keys",
            "5000",
        ])
        .unwrap();
        assert_eq!(c.idempotency_window, Duration::from_secs(3600));
        assert_eq!(c.idempotency_max_keys, 5000);
        for (bad, expect) in [
            (&["--idempotency-window", "0s"][..], "idempotency_window"),
            (&["--idempotency-window", "500ms"], "idempotency_window"),
            (&["--idempotency-window", "8d"], "idempotency_window"),
            (&["--idempotency-max-keys", "0"], "idempotency_max_keys"),
            (
                &["--idempotency-max-keys", "2000000"],
                "idempotency_max_keys",
            ),
        ] {
            let e = with(bad).unwrap_err();
            assert!(e.contains(expect), "{bad:?}: {e}");
        }
    }

    #[test]
    fn connection_limits_are_checked() {
        let base = ["--id", "1", "--peer", "1=127.0.0.1:8089"];
        let with = |extra: &[&str]| load(&[&base[..], extra].concat());
        let c = with(&[
            "--max-connections",
            "16",
            "--header-read-timeout",
            "2s",
            "--idle-timeout",
            "30s",
            "--body-read-timeout",
            "5m",
            "--max-header-size",
            "8KiB",
            "--max-headers",
            "20",
        ])
        .unwrap();
        let conn = c.connection_limits();
        assert_eq!(conn.max_connections, 16);
        assert_eq!(conn.header_read_timeout, Duration::from_secs(2));
        assert_eq!(conn.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.body_read_timeout, Duration::from_secs(300));
        assert_eq!((conn.max_header_size, conn.max_headers), (8 << 10, 20));
        for (bad, expect) in [
            (&["--max-connections", "0"][..], "max_connections"),
            (&["--header-read-timeout", "0s"], "header_read_timeout"),
            (&["--idle-timeout", "0s"], "idle_timeout"),
            (&["--body-read-timeout", "0s"], "body_read_timeout"),
            (&["--max-header-size", "100B"], "max_header_size"),
            (&["--max-header-size", "1GiB"], "max_header_size"),
            (&["--max-headers", "0"], "max_headers"),
        ] {
            let e = with(bad).unwrap_err();
            assert!(e.contains(expect), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_udp_listener_is_off_unless_bound_and_needs_a_database() {
        let base = ["--id", "1", "--peer", "1=127.0.0.1:8089"];
        let with = |extra: &[&str]| load(&[&base[..], extra].concat());
        assert!(with(&[]).unwrap().udp().is_none());
        let u = with(&["--udp-bind", "0.0.0.0:8189", "--udp-database", "telegraf"])
            .unwrap()
            .udp()
            .unwrap();
        assert_eq!(u.bind.to_string(), "0.0.0.0:8189");
        assert_eq!(
            (u.database.as_str(), u.retention_policy.as_str()),
            ("telegraf", "")
        );
        assert_eq!(u.precision, Precision::Nanoseconds);
        assert_eq!((u.batch_size, u.batch_pending), (5000, 10));
        assert_eq!(u.batch_timeout, Duration::from_secs(1));
        assert_eq!((u.read_buffer, u.batch_max_bytes), (0, 25_000_000));
        let u = with(&[
            "--udp-bind",
            "127.0.0.1:8189",
            "--udp-database",
            "db",
            "--udp-retention-policy",
            "week",
            "--udp-precision",
            "s",
            "--udp-batch-size",
            "10",
            "--udp-batch-timeout",
            "50ms",
            "--udp-batch-pending",
            "2",
            "--udp-read-buffer",
            "8MiB",
        ])
        .unwrap()
        .udp()
        .unwrap();
        assert_eq!(u.retention_policy, "week");
        assert_eq!(u.precision, Precision::Seconds);
        assert_eq!((u.batch_size, u.batch_pending), (10, 2));
        assert_eq!(u.batch_timeout, Duration::from_millis(50));
        assert_eq!(u.read_buffer, 8 << 20);
        let udp = ["--udp-bind", "127.0.0.1:8189", "--udp-database", "db"];
        for (bad, expect) in [
            (&["--udp-bind", "127.0.0.1:8189"][..], "needs udp_database"),
            (&["--udp-database", "db"], "give udp_bind too"),
            (
                &["--udp-bind", "127.0.0.1:8189", "--udp-database", "_gateway"],
                "reserved",
            ),
            (
                &[&udp[..], &["--udp-precision", "ns2"]].concat(),
                "udp_precision",
            ),
            (
                &[&udp[..], &["--udp-batch-size", "0"]].concat(),
                "udp_batch_size",
            ),
            (
                &[&udp[..], &["--udp-batch-pending", "0"]].concat(),
                "udp_batch_pending",
            ),
            (
                &[&udp[..], &["--udp-batch-timeout", "0s"]].concat(),
                "udp_batch_timeout",
            ),
            (
                &[&udp[..], &["--udp-read-buffer", "2GiB"]].concat(),
                "udp_read_buffer",
            ),
        ] {
            let e = with(bad).unwrap_err();
            assert!(e.contains(expect), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_udp_listener_never_takes_the_peer_port() {
        let base = [
            "--id",
            "1",
            "--peer",
            "1=10.0.0.1:8089",
            "--udp-database",
            "db",
            "--peer-plaintext",
        ];
        let with = |extra: &[&str]| load_exactly(&[&base[..], extra].concat());
        // The peer listener defaults to all interfaces: any address on its port overlaps.
        for bind in ["0.0.0.0:8089", "10.0.0.1:8089", "127.0.0.1:8089"] {
            let e = with(&["--udp-bind", bind]).unwrap_err();
            assert!(e.contains("peer listener's port"), "{bind}: {e}");
        }
        let e = with(&[
            "--peer-listen",
            "10.0.0.1:9000",
            "--udp-bind",
            "0.0.0.0:9000",
        ]);
        assert!(e.unwrap_err().contains("peer listener's port"));
        with(&["--udp-bind", "0.0.0.0:8189"]).unwrap();
        with(&[
            "--peer-listen",
            "10.0.0.1:8089",
            "--udp-bind",
            "10.0.0.2:8089",
        ])
        .unwrap();
    }

    #[test]
    fn admin_api_is_on_off_or_who_may_use_it() {
        let base = ["--id", "1", "--peer", "1=127.0.0.1:8089"];
        let with = |v: &str| load(&[&base[..], &["--admin-api", v]].concat());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(with("OFF").unwrap().admin_api, AdminApi::Off);
        assert!(!AdminApi::Off.admits(ip("127.0.0.1")));
        let allow = with("127.0.0.1, 10.0.0.0/8,::1").unwrap().admin_api;
        assert!(allow.admits(ip("127.0.0.1")));
        assert!(allow.admits(ip("10.200.3.4")));
        assert!(allow.admits(ip("::1")));
        assert!(
            allow.admits(ip("::ffff:10.1.1.1")),
            "IPv4 through a dual-stack socket"
        );
        assert!(!allow.admits(ip("127.0.0.2")));
        assert!(!allow.admits(ip("192.168.1.1")));
        for bad in ["yes", "10.0.0.0/33", "127.0.0.1,localhost", ","] {
            let e = with(bad).unwrap_err();
            assert!(e.contains("admin_api"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_list_setting_may_be_an_array_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "id = 1\nadmin_api = [\"127.0.0.1\", \"10.0.0.0/8\"]\n[peers]\n1 = \"127.0.0.1:8089\"\n",
        )
        .unwrap();
        let c = load(&["--config", path.to_str().unwrap()]).unwrap();
        let nets = ["127.0.0.1/32", "10.0.0.0/8"].map(|n| n.parse().unwrap());
        assert_eq!(c.admin_api, AdminApi::From(nets.to_vec()));
    }

    #[test]
    fn log_bounds() {
        let base = ["--id", "1", "--peer", "1=127.0.0.1:8089"];
        let with = |extra: &[&str]| load(&[&base[..], extra].concat());
        let c = with(&["--log-retention", "forever", "--log-max-size", "0"]).unwrap();
        assert_eq!(c.trim_policy().retention, None);
        assert_eq!(c.trim_policy().max_size, None);
        let c = with(&["--log-retention", "7d", "--log-max-size", "4MiB"]).unwrap();
        assert_eq!(
            c.trim_policy().retention,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(c.trim_policy().max_size, Some(4 << 20));
        let e = with(&["--log-retention", "a week"]).unwrap_err();
        assert!(e.contains("forever"), "{e}");
    }

    #[test]
    fn peer_links_need_tls_or_an_explicit_plaintext() {
        let base = ["--id", "1", "--peer", "1=127.0.0.1:8089"];
        let e = load_exactly(&base).unwrap_err();
        assert!(e.contains("peer_plaintext"), "{e}");
        let tls = ["--peer-ca", "ca.pem", "--peer-certificate", "n.pem"];
        let e = load(&[&base[..], &tls[..]].concat()).unwrap_err();
        assert!(e.contains("together"), "{e}");
        let all = [&tls[..], &["--peer-private-key", "k.pem"]].concat();
        let c = load(&[&base[..], &all[..]].concat()).unwrap();
        assert!(c.peer_tls().is_some());
        let e = load(&[&base[..], &all[..], &["--peer-plaintext"]].concat()).unwrap_err();
        assert!(e.contains("exclude"), "{e}");
        let e = load(&[&base[..], &["--https-certificate", "c.pem"]].concat()).unwrap_err();
        assert!(e.contains("together"), "{e}");
        assert!(load(&base).unwrap().api_tls().is_none());
    }

    #[test]
    fn node_must_be_in_its_peer_list() {
        let e = load(&["--id", "1", "--peer", "2=127.0.0.2:8089"]).unwrap_err();
        assert!(e.contains("not in the peer list"), "{e}");
    }

    #[test]
    fn bad_peer_address_is_refused() {
        let e = load(&["--id", "1", "--peer", "1=localhost"]).unwrap_err();
        assert!(e.contains("HOST:PORT"), "{e}");
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
auth_enabled = false
[peers]
1 = "127.0.0.1:8089"
2 = "127.0.0.2:8089"
"#,
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let c = load(&["--config", path, "--write-timeout", "5s"]).unwrap();
        assert_eq!(c.id, Some(2));
        assert_eq!(c.write_timeout, Duration::from_secs(5));
        assert_eq!(c.memory_budget(), 16 << 20);
        assert_eq!(c.members().len(), 2);
        assert_eq!(c.peer_listen().to_string(), "0.0.0.0:8089");
        // Flags replace the file's peer list rather than merging with it, so a command line
        // always describes the whole membership.
        let c = load(&["--config", path, "--peer", "2=127.0.0.9:8089"]).unwrap();
        assert_eq!(c.members().len(), 1);
    }

    /// The packaged /etc/influx-gateway.toml (deploy/debian) lists every setting, commented
    /// out as `#name = value`, with the very default --help shows, so it cannot fall behind
    /// the flags; uncommented, it is a valid configuration.
    #[test]
    fn the_packaged_configuration_lists_every_setting_with_its_default() {
        let example = include_str!("../../deploy/debian/influx-gateway.toml");
        // Prose is "# text"; a setting (or the [peers] table and its rows) is "#name = value".
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| !l.is_empty() && !l.starts_with([' ', '#']))
            .map(|l| format!("{l}\n"))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("influx-gateway.toml");
        std::fs::write(&path, &uncommented).unwrap();
        let listed: BTreeMap<String, Vec<String>> = read_file(&path).unwrap().into_iter().collect();
        let flags: BTreeMap<String, Vec<String>> = Cli::command()
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "config" | "help" | "version"))
            .map(|a| {
                let default = a.get_default_values().iter();
                let default = default.map(|v| v.to_string_lossy().into_owned());
                (a.get_id().to_string(), default.collect())
            })
            .collect();
        let missing: Vec<_> = flags.keys().filter(|k| !listed.contains_key(*k)).collect();
        let unknown: Vec<_> = listed.keys().filter(|k| !flags.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "settings missing from the packaged configuration: {missing:?}; \
             listed there but unknown: {unknown:?}"
        );
        for (name, default) in flags.iter().filter(|(_, d)| !d.is_empty()) {
            assert_eq!(&listed[name], default, "the packaged default of {name}");
        }
        load_exactly(&["--config", path.to_str().unwrap()]).unwrap();
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "id = 1\nwrite_timout = \"3s\"\n").unwrap();
        let e = load(&["--config", path.to_str().unwrap()]).unwrap_err();
        assert!(e.contains("write_timout"), "{e}");
    }
}
