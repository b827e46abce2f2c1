//! Readiness for systemd (`Type=notify`): units ordered after the gateway, and `systemctl
//! start` itself, wait until the node has opened its log, started its Raft node and listens
//! on its API, rather than until the process exists. Outside systemd (`NOTIFY_SOCKET` unset)
//! nothing is sent.

use sd_notify::NotifyState;

/// The node serves: its API listens and its Raft node runs.
pub fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// The node is shutting down, so systemd reports it as stopping rather than still running
/// while it does.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

fn send(state: &[NotifyState], what: &str) {
    // The environment is left as it is: removing NOTIFY_SOCKET would mutate the environment
    // of a process already running threads.
    if let Err(e) = sd_notify::notify(false, state) {
        // Serving matters more than the service manager's view of it: under Type=notify a
        // lost READY=1 makes systemd time the start out, and this warning says why.
        tracing::warn!(error = %e, "cannot send {what} to the service manager (NOTIFY_SOCKET)");
    }
}
