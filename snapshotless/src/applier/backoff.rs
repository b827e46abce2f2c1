//! How long to wait before asking influxd again while it is down or will not give a marker:
//! quickly at first, so a restart of influxd costs little, then no more than every 2 s, so a
//! long outage costs it nothing.

use std::time::Duration;

pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff {
            next: Duration::from_millis(50),
        }
    }

    pub(super) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(2));
    }
}
