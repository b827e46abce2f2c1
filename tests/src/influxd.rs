//! A real influxd 1.x process with its own data, meta and wal directories, on a loopback
//! address, started and awaited through the shared harness.

use std::path::Path;
use std::time::Duration;

pub use harness::influxd::Index;
use harness::influxd::{self, Config};
use harness::{Http, Process};

/// How long influxd may take to answer /ping after start (it usually takes one or two seconds).
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Influxd {
    /// `host:port` of its HTTP API.
    pub addr: String,
    config: Config,
    process: Process,
    /// With authentication enabled, the admin account the harness reads with.
    admin: Option<(String, String)>,
}

impl Influxd {
    /// Starts influxd with its HTTP API on `addr` (`host:port`) and its files under `dir`,
    /// and waits until it answers /ping.
    pub fn start(addr: &str, dir: &Path) -> Influxd {
        Self::start_with_auth(addr, dir, None)
    }

    /// As [`Influxd::start`], with the series index `index` rather than the harness's
    /// (`inmem`).
    pub fn start_with_index(addr: &str, dir: &Path, index: Index) -> Influxd {
        Self::start_full(addr, dir, None, index)
    }

    /// As [`Influxd::start`]; with `admin`, authentication is enabled (the admin user itself is
    /// left for the gateway to create, as it does on a fresh influxd).
    pub fn start_with_auth(addr: &str, dir: &Path, admin: Option<(&str, &str)>) -> Influxd {
        Self::start_full(addr, dir, admin, Index::Inmem)
    }

    fn start_full(addr: &str, dir: &Path, admin: Option<(&str, &str)>, index: Index) -> Influxd {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse().ok()?)))
            .expect("an influxd address is host:port");
        let mut config = Config::new(host, port, dir);
        config.auth = admin.is_some();
        config.index = index;
        let process = config
            .process(dir.join("influxd.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut influxd = Influxd {
            addr: addr.to_owned(),
            config,
            process,
            admin: admin.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        influxd.start_again();
        influxd
    }

    pub fn http(&self) -> Http {
        let http = Http::new(&self.addr);
        match &self.admin {
            Some((u, p)) => http.with_auth(u, p),
            None => http,
        }
    }

    /// Its RPC address, where influxd's backup and restore tools reach it.
    pub fn rpc_addr(&self) -> String {
        self.config.rpc_addr()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Kills it and starts it again with `settings` in its environment (`INFLUXDB_...`
    /// variables, which override its configuration file), for this start and the later ones.
    pub fn restart_with_env(&mut self, settings: &[(&str, &str)]) {
        self.kill();
        let log = self.process.log_path().to_owned();
        let mut process = self.config.process(log).unwrap_or_else(|e| panic!("{e}"));
        for (key, value) in settings {
            process = process.env(key, value);
        }
        self.process = process;
        self.start_again();
    }

    /// Deletes data, meta and wal: as if the disk under influxd had been replaced.
    /// The process must be stopped.
    pub fn wipe(&mut self) {
        assert!(self.process.pid().is_none(), "wipe a running influxd");
        self.config.wipe();
    }

    /// Starts the stopped influxd and waits until it answers /ping.
    pub fn start_again(&mut self) {
        self.process
            .start()
            .unwrap_or_else(|e| panic!("{e} (is the Debian package `influxdb` installed?)"));
        let http = Http::new(&self.addr);
        influxd::wait_answering(&mut self.process, START_TIMEOUT, || http.get("/ping"))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn create_database(&self, db: &str) {
        self.http()
            .query_ok("", &format!("CREATE DATABASE \"{db}\""));
    }
}
