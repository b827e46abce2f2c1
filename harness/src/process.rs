//! A child process the harness starts, signals, kills and starts again: influxd or a gateway,
//! its output appended to one log file across restarts. A command prefix runs it elsewhere
//! (`ip netns exec NS` runs it inside a network namespace).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Error;

pub struct Process {
    /// Names it in errors: "influxd on 127.0.0.1:18086", "gateway 2".
    name: String,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    prefix: Vec<OsString>,
    own_group: bool,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// A process running `program`, not started yet.
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>, log: PathBuf) -> Process {
        Process {
            name: name.into(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            prefix: Vec::new(),
            own_group: false,
            log,
            child: None,
        }
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Process {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Process {
        self.set_env(key, value);
        self
    }

    /// Sets (or replaces) an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Runs it through `prefix` (e.g. `ip netns exec NS`), which must exec the program in
    /// place, so that the child's pid is the program's and signals reach it.
    pub fn prefix<S: AsRef<OsStr>>(mut self, prefix: impl IntoIterator<Item = S>) -> Process {
        self.prefix = prefix.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Puts it in a process group of its own, so a Ctrl-C on the terminal does not reach it
    /// and the caller alone decides when it stops. (Without it, a test interrupted with
    /// Ctrl-C takes its processes with it, as its drop handlers do not run.)
    pub fn own_process_group(mut self) -> Process {
        self.own_group = true;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything it has written so far, over all its runs.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts it; an error if it is running. One that died on its own is started again.
    pub fn start(&mut self) -> Result<(), Error> {
        if self.is_running() {
            return Err(Error::Running(self.name.clone()));
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(Error::io(format!("open {}", self.log.display())))?;
        let err = Error::io(format!("start {}", self.name));
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(&self.program);
                cmd
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(Error::io("clone a log handle"))?)
            .stderr(log);
        if self.own_group {
            cmd.process_group(0);
        }
        self.child = Some(cmd.spawn().map_err(err)?);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// How it ended, if it ended since it was started (it is then no longer this process's
    /// child); `None` while it runs, or when it was killed or never started.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// Sends `sig` (SIGSTOP and SIGCONT pause and resume it).
    pub fn signal(&self, sig: Signal) -> Result<(), Error> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| Error::NotRunning(self.name.clone()))?;
        kill(pid_of(child), sig).map_err(|e| Error::Io {
            action: format!("send {sig} to {}", self.name),
            source: e.into(),
        })
    }

    /// SIGKILL, and reap it: it gets no chance to flush anything. A no-op if not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32)
}

/// Asks every process to stop (SIGCONT, in case it is paused, then SIGTERM), gives them all
/// `grace` together, then kills whatever is left.
pub fn stop_all<'a>(processes: impl IntoIterator<Item = &'a mut Process>, grace: Duration) {
    let mut children: Vec<Child> = processes
        .into_iter()
        .filter_map(|p| p.child.take())
        .collect();
    for c in &children {
        let _ = kill(pid_of(c), Signal::SIGCONT);
        let _ = kill(pid_of(c), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    for c in &mut children {
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_logs_pauses_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sh.log");
        let mut p = Process::new("sh", "sh", log)
            .args(["-c", "echo \"started $X\"; exec sleep 60"])
            .env("X", "here");
        assert!(p.signal(Signal::SIGSTOP).is_err(), "not running yet");
        p.start().unwrap();
        assert!(matches!(p.start(), Err(Error::Running(_))));
        crate::wait_until("the log line", Duration::from_secs(10), || {
            Some(p.log())
                .filter(|l| l == "started here\n")
                .ok_or(p.log())
        });
        p.signal(Signal::SIGSTOP).unwrap();
        p.signal(Signal::SIGCONT).unwrap();
        assert!(p.is_running() && p.exited().is_none());
        p.kill();
        assert!(!p.is_running() && p.pid().is_none());
        p.start().unwrap();
        stop_all([&mut p], Duration::from_secs(5));
        assert!(p.pid().is_none());
    }

    #[test]
    fn a_death_on_its_own_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::new("false", "false", dir.path().join("log"));
        p.start().unwrap();
        let status = crate::wait_until("false to exit", Duration::from_secs(10), || {
            p.exited().ok_or("running")
        });
        assert!(!status.success());
        assert!(p.exited().is_none());
    }

    #[test]
    fn a_prefix_runs_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::new("echo", "echo", dir.path().join("log"))
            .args(["b"])
            .prefix(["env", "A=1"]);
        p.start().unwrap();
        crate::wait_until("echo to exit", Duration::from_secs(10), || {
            p.exited().ok_or("running")
        });
        assert_eq!(p.log(), "b\n");
    }
}
