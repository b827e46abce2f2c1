//! influxd's own backup and restore, run as child processes against an influxd's RPC address:
//! the only way a seed reads or writes influxd's files. Each run is bounded in time; a run that
//! outlives it, or whose caller gave up (its future dropped), is killed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::SeedError;

/// Where influxd's tools are and how long one run may take.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `influxd` binary, whose `backup` and `restore` subcommands do the work.
    pub program: PathBuf,
    /// Upper bound of one backup or restore run (one database, for a restore).
    pub timeout: Duration,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            program: PathBuf::from("influxd"),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// How a run ended: its exit status and what it printed.
#[derive(Debug)]
pub(crate) struct Run {
    pub success: bool,
    pub status: String,
    pub output: String,
}

impl Run {
    pub fn into_error(self, action: &'static str) -> SeedError {
        SeedError::Tool {
            action,
            status: self.status,
            output: self.output,
        }
    }
}

/// Keep the end of a tool's output in errors: that is where it says what went wrong, and a
/// backup of many shards prints a line for each.
const OUTPUT_TAIL: usize = 4096;

impl Tools {
    /// `influxd backup -portable` of every database into `dir`, which must be empty.
    pub(crate) async fn backup(&self, rpc_addr: &str, dir: &Path) -> Result<(), SeedError> {
        let args = [
            OsStr::new("backup"),
            OsStr::new("-portable"),
            OsStr::new("-host"),
            OsStr::new(rpc_addr),
            dir.as_os_str(),
        ];
        let run = self.run("backup", &args).await?;
        if !run.success {
            return Err(run.into_error("backup"));
        }
        Ok(())
    }

    /// `influxd restore -portable -db <db>` from `dir`; the caller judges how it ended.
    pub(crate) async fn restore(
        &self,
        rpc_addr: &str,
        db: &str,
        dir: &Path,
    ) -> Result<Run, SeedError> {
        let args = [
            OsStr::new("restore"),
            OsStr::new("-portable"),
            OsStr::new("-host"),
            OsStr::new(rpc_addr),
            OsStr::new("-db"),
            OsStr::new(db),
            dir.as_os_str(),
        ];
        self.run("restore", &args).await
    }

    async fn run(&self, action: &'static str, args: &[&OsStr]) -> Result<Run, SeedError> {
        let child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SeedError::Spawn {
                program: self.program.display().to_string(),
                source,
            })?;
        // On timeout the future that owns the child is dropped, which kills it.
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| SeedError::ToolTimeout {
                action,
                after: self.timeout,
            })?
            .map_err(SeedError::io(format!("wait for influxd {action}")))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(Run {
            success: out.status.success(),
            status: out.status.to_string(),
            output: tail(text.trim(), OUTPUT_TAIL).to_owned(),
        })
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_past_its_time_is_killed() {
        let tools = Tools {
            program: PathBuf::from("sleep"),
            timeout: Duration::from_millis(100),
        };
        let started = std::time::Instant::now();
        let r = tools.run("backup", &[OsStr::new("30")]).await;
        assert!(matches!(r, Err(SeedError::ToolTimeout { .. })), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let tools = Tools {
            program: PathBuf::from("/nonexistent/influxd"),
            ..Tools::default()
        };
        let r = tools.backup("127.0.0.1:1", Path::new("/tmp")).await;
        assert!(matches!(r, Err(SeedError::Spawn { .. })), "{r:?}");
    }

    #[test]
    fn tail_cuts_at_a_character_boundary() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("aéb", 2), "b");
        assert_eq!(tail("aéb", 3), "éb");
    }
}
