//! A real influxd 1.x process with its own data, meta and wal directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http::Http;
use crate::wait::wait_until;

/// How long influxd may take to answer /ping after start (it usually takes one or two seconds).
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Influxd {
    /// `host:port` of its HTTP API.
    pub addr: String,
    dir: PathBuf,
    child: Option<Child>,
    /// With authentication enabled, the admin account the harness reads with.
    admin: Option<(String, String)>,
}

impl Influxd {
    /// Starts influxd with its HTTP API on `addr` (`host:port`) and its files under `dir`,
    /// and waits until it answers /ping.
    pub fn start(addr: &str, dir: &Path) -> Influxd {
        Self::start_with_auth(addr, dir, None)
    }

    /// As [`Influxd::start`]; with `admin`, authentication is enabled (the admin user itself is
    /// left for the gateway to create, as it does on a fresh influxd).
    pub fn start_with_auth(addr: &str, dir: &Path, admin: Option<(&str, &str)>) -> Influxd {
        fs::create_dir_all(dir).expect("create influxd dir");
        let mut influxd = Influxd {
            addr: addr.to_owned(),
            dir: dir.to_path_buf(),
            child: None,
            admin: admin.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        influxd.write_config();
        influxd.spawn();
        influxd
    }

    pub fn http(&self) -> Http {
        let http = Http::new(&self.addr);
        match &self.admin {
            Some((u, p)) => http.with_auth(u, p),
            None => http,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("influxdb.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("influxd.log")
    }

    fn write_config(&self) {
        let host = self.addr.split(':').next().unwrap();
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        // The backup/restore RPC port must differ per instance too.
        let rpc = format!("{host}:{}", port + 2);
        let d = self.dir.display();
        let config = format!(
            r#"reporting-enabled = false
bind-address = "{rpc}"
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
  bind-address = "{addr}"
  log-enabled = false
  auth-enabled = {auth}
[continuous_queries]
  log-enabled = false
"#,
            addr = self.addr,
            auth = self.admin.is_some()
        );
        fs::write(self.config_path(), config).expect("write influxd config");
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open influxd log");
        let child = Command::new("influxd")
            .arg("-config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start influxd (is the Debian package `influxdb` installed?)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let http = Http::new(&self.addr);
        let log = self.log_path();
        let child = self.child.as_mut().unwrap();
        wait_until(
            &format!("influxd on {} to answer /ping", self.addr),
            START_TIMEOUT,
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "influxd on {} exited with {status}; log:\n{}",
                        self.addr,
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                match http.get("/ping") {
                    Ok(r) if r.status == 204 => Ok(()),
                    Ok(r) => Err(format!("status {}", r.status)),
                    Err(e) => Err(e),
                }
            },
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Deletes data, meta and wal: as if the disk under influxd had been replaced.
    /// The process must be stopped.
    pub fn wipe(&mut self) {
        assert!(self.child.is_none(), "wipe a running influxd");
        for d in ["data", "meta", "wal"] {
            let _ = fs::remove_dir_all(self.dir.join(d));
        }
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "influxd is already running");
        self.spawn();
    }

    pub fn create_database(&self, db: &str) {
        self.http()
            .query_ok("", &format!("CREATE DATABASE \"{db}\""));
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.kill();
    }
}
