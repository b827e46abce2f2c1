//! What can go wrong starting processes and waiting for them: each error names the process
//! and, where it helps, points at its log.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is already running")]
    Running(String),
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("{name} exited with {status}; log:\n{log}")]
    Exited {
        name: String,
        status: ExitStatus,
        log: String,
    },
    #[error("{name} did not answer within {timeout:?} (log: {}); last seen: {last}", log.display())]
    NoAnswer {
        name: String,
        timeout: Duration,
        log: PathBuf,
        last: String,
    },
    #[error("building the gateway binary failed: {0}")]
    Build(String),
    #[error("cannot mount a tmpfs on {0}")]
    Mount(String),
}

impl Error {
    /// An I/O error while doing `action` ("write /tmp/x/influxdb.conf").
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }
}
