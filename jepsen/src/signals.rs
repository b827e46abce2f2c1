//! Ctrl-C and SIGTERM: the first asks the run to stop and tear down in order; a second one
//! tears the test network down at once and exits, for a run stuck somewhere.
//!
//! Handlers rather than a blocked mask and sigwait: children inherit a blocked mask, and a
//! gateway that cannot see SIGTERM cannot stop gracefully.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

pub fn install(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut count = 0;
            for sig in signals.forever() {
                count += 1;
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if count == 1 {
                    eprintln!(
                        "\n{name}: stopping the run, healing and tearing down (again to force)"
                    );
                    stop.store(true, Ordering::SeqCst);
                } else {
                    eprintln!("\n{name}: tearing the test network down now");
                    crate::netns::cleanup_leftovers();
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}
