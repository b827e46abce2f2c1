//! influxd 1.x for one node: its configuration, rendered from `harness/influxdb.conf` (the
//! repository's only influxd configuration; `scripts/cluster` fills in the same file), its
//! process, the wait until it answers, and wiping its data as a replaced disk would.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::Response;
use crate::{poll, Error, Process};

const TEMPLATE: &str = include_str!("../influxdb.conf");

/// influxd's series index (`[data] index-version`). The harness and `scripts/cluster` run
/// `inmem`, influxd 1.6's default, rebuilt from the stored points at every start; `tsi1`
/// keeps it on disk (README, "Series metadata", on why the default stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Inmem,
    Tsi1,
}

impl Index {
    pub fn as_str(self) -> &'static str {
        match self {
            Index::Inmem => "inmem",
            Index::Tsi1 => "tsi1",
        }
    }
}

/// Where one influxd listens and keeps its files.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address it binds, and the port of its HTTP API.
    pub host: String,
    pub port: u16,
    /// Its data, meta and wal directories, and its configuration file.
    pub dir: PathBuf,
    /// Whether its HTTP API checks credentials.
    pub auth: bool,
    /// Its series index.
    pub index: Index,
}

impl Config {
    pub fn new(host: &str, port: u16, dir: impl Into<PathBuf>) -> Config {
        Config {
            host: host.to_owned(),
            port,
            dir: dir.into(),
            auth: false,
            index: Index::Inmem,
        }
    }

    /// `host:port` of its HTTP API.
    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Its RPC (backup/restore) address: the HTTP port plus two, on the same host, so
    /// instances side by side do not clash.
    pub fn rpc_addr(&self) -> String {
        format!("{}:{}", self.host, self.port + 2)
    }

    /// The configuration file's text.
    pub fn render(&self) -> String {
        TEMPLATE
            .replace("@RPC_ADDR@", &self.rpc_addr())
            .replace("@DIR@", &self.dir.display().to_string())
            .replace("@HTTP_ADDR@", &self.http_addr())
            .replace("@AUTH_ENABLED@", &self.auth.to_string())
            .replace("@INDEX_VERSION@", self.index.as_str())
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("influxdb.conf")
    }

    /// Writes the configuration file and returns the influxd that reads it, not started,
    /// with its output going to `log`.
    pub fn process(&self, log: PathBuf) -> Result<Process, Error> {
        fs::create_dir_all(&self.dir)
            .map_err(Error::io(format!("create {}", self.dir.display())))?;
        let path = self.path();
        fs::write(&path, self.render()).map_err(Error::io(format!("write {}", path.display())))?;
        let name = format!("influxd on {}", self.http_addr());
        Ok(Process::new(name, "influxd", log)
            .args([std::ffi::OsStr::new("-config"), path.as_os_str()]))
    }

    /// Deletes data, meta and wal: as if the disk under influxd had been replaced. The
    /// process must be stopped.
    pub fn wipe(&self) {
        for d in ["data", "meta", "wal"] {
            let _ = fs::remove_dir_all(self.dir.join(d));
        }
    }
}

/// Waits until `influxd` answers /ping (`ping` sends it, from wherever influxd can be
/// reached); an error at once if it exits, with its log.
pub fn wait_answering<E: std::fmt::Display>(
    influxd: &mut Process,
    timeout: Duration,
    mut ping: impl FnMut() -> Result<Response, E>,
) -> Result<(), Error> {
    let result = poll(timeout, Duration::from_millis(200), || {
        if let Some(status) = influxd.exited() {
            return Ok(Err(status));
        }
        match ping() {
            Ok(r) if r.status == 204 => Ok(Ok(())),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    });
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(status)) => Err(Error::Exited {
            name: influxd.name().to_owned(),
            status,
            log: influxd.log(),
        }),
        Err(last) => Err(Error::NoAnswer {
            name: influxd.name().to_owned(),
            timeout,
            log: influxd.log_path().to_owned(),
            last,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_to_valid_toml_with_every_placeholder_filled() {
        let mut c = Config::new("127.0.3.2", 18086, "/tmp/n2/influxd");
        c.auth = true;
        let text = c.render();
        assert!(!text.contains('@'), "{text}");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["bind-address"].as_str(), Some("127.0.3.2:18088"));
        assert_eq!(v["meta"]["dir"].as_str(), Some("/tmp/n2/influxd/meta"));
        assert_eq!(v["data"]["wal-dir"].as_str(), Some("/tmp/n2/influxd/wal"));
        assert_eq!(v["http"]["bind-address"].as_str(), Some("127.0.3.2:18086"));
        assert_eq!(v["http"]["auth-enabled"].as_bool(), Some(true));
        assert_eq!(v["data"]["index-version"].as_str(), Some("inmem"));
        c.index = Index::Tsi1;
        let v: toml::Value = toml::from_str(&c.render()).unwrap();
        assert_eq!(v["data"]["index-version"].as_str(), Some("tsi1"));
    }

    /// scripts/cluster renders the same file with sed: it must fill in every placeholder.
    #[test]
    fn scripts_cluster_fills_in_every_placeholder() {
        let script = include_str!("../../scripts/cluster");
        assert!(script.contains("harness/influxdb.conf"));
        for p in [
            "@RPC_ADDR@",
            "@DIR@",
            "@HTTP_ADDR@",
            "@AUTH_ENABLED@",
            "@INDEX_VERSION@",
        ] {
            assert!(TEMPLATE.contains(p), "{p}");
            assert!(
                script.contains(&format!("s|{p}|")),
                "scripts/cluster leaves {p}"
            );
        }
    }
}
