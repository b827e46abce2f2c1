//! Bounded waiting for a condition: nothing sleeps to synchronise.

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Ok`, backing off from 10 ms to `max_delay` between tries;
/// after `timeout`, the last observation is the error.
pub fn poll<T, D>(
    timeout: Duration,
    max_delay: Duration,
    mut check: impl FnMut() -> Result<T, D>,
) -> Result<T, D> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(10).min(max_delay);
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(last) if start.elapsed() > timeout => return Err(last),
            Err(_) => {}
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(max_delay);
    }
}

/// Polls `check` until it returns `Ok`, or panics after `timeout` with `what` and the last
/// observation, so a failure says what was awaited and what was seen instead.
pub fn wait_until<T, D: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> Result<T, D>,
) -> T {
    poll(timeout, Duration::from_millis(200), check).unwrap_or_else(|last| {
        panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
    })
}
