//! Bounded waiting for a condition: tests never sleep to synchronise.

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what` and the last
/// observation, so a failure says what was awaited and what was seen instead.
pub fn wait_until<T, D: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, D>,
) -> T {
    let start = Instant::now();
    let mut delay = Duration::from_millis(10);
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => {
                if start.elapsed() > timeout {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}");
                }
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}
