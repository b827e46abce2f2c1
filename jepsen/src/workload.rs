//! The workload: clients writing unique elements to random nodes, and one reader per node.
//!
//! Every write carries values no other write has (element, timestamp, op id), so where a
//! point comes from is never in doubt. A client never retries: a retry would be a new
//! operation with new elements.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::API_PORT;
use crate::history::{Event, Recorder, Type, WriteValue, F};
use crate::influx::{self, Point, DATABASE, MEASUREMENT};
use crate::netns::{ip, NODES};

pub struct Settings {
    pub concurrency: u32,
    /// Writes per second over all clients; 0 for as fast as they go.
    pub rate: f64,
    pub client_timeout: Duration,
    pub read_interval: Duration,
    pub time_limit: Duration,
    pub seed: u64,
    pub string_field: bool,
}

/// Hands out elements and timestamps, both strictly increasing, and tracks what each node
/// has been seen to hold so readers can keep their windows small.
pub struct Workload {
    pub settings: Settings,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    started: Instant,
    alloc: Mutex<(u64, i64)>,
    tracker: Mutex<Tracker>,
}

#[derive(Default)]
struct Tracker {
    /// (timestamp, element) of writes still in flight.
    in_flight: BTreeSet<(i64, u64)>,
    /// Per node: acknowledged elements that node has not shown yet.
    unseen: Vec<BTreeSet<(i64, u64)>>,
    seen: Vec<HashSet<u64>>,
    timestamps: HashMap<u64, i64>,
}

pub fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Workload {
    pub fn new(settings: Settings, recorder: Arc<Recorder>, stop: Arc<AtomicBool>) -> Workload {
        let tracker = Tracker {
            unseen: vec![BTreeSet::new(); usize::from(NODES)],
            seen: vec![HashSet::new(); usize::from(NODES)],
            ..Default::default()
        };
        Workload {
            settings,
            recorder,
            stop,
            started: Instant::now(),
            alloc: Mutex::new((1, 0)),
            tracker: Mutex::new(tracker),
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.started.elapsed() < self.settings.time_limit
    }

    fn allocate(&self, n: usize) -> (Vec<u64>, Vec<i64>) {
        let mut a = self.alloc.lock();
        let mut elements = Vec::with_capacity(n);
        let mut timestamps = Vec::with_capacity(n);
        for _ in 0..n {
            elements.push(a.0);
            a.0 += 1;
            // Unique timestamps too: two elements never share a point.
            a.1 = (a.1 + 1).max(wall_ns());
            timestamps.push(a.1);
        }
        (elements, timestamps)
    }

    /// One client: writes until the time limit, each to a random node.
    pub fn client(&self, client: u32) {
        let mut rng = StdRng::seed_from_u64(self.settings.seed ^ (u64::from(client) << 32));
        // Pooled connections save a handshake per write. A stale one is never retried for a
        // POST (ureq retries idempotent methods only), so no write is ever sent twice.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(1))
            .timeout(self.settings.client_timeout)
            .build();
        let process = format!("c{client}");
        while self.running() {
            let node = rng.gen_range(1..=NODES);
            let count = if rng.gen_bool(0.5) {
                1
            } else {
                rng.gen_range(2..=10)
            };
            let (elements, timestamps) = self.allocate(count);
            let op = self.recorder.op_id();
            let body: Vec<String> = elements
                .iter()
                .zip(&timestamps)
                .map(|(&e, &t)| {
                    let mut p = Point::expected(client, op, e, t);
                    if !self.settings.string_field {
                        p.fields.remove("s");
                    }
                    p.line()
                })
                .collect();
            let mut invoke = Event::new(&process, Type::Invoke, F::Write, op);
            invoke.node = Some(node);
            invoke.write = Some(WriteValue {
                client,
                elements: elements.clone(),
                timestamps: timestamps.clone(),
                string_field: self.settings.string_field,
            });
            self.tracker.lock().invoked(&elements, &timestamps);
            self.recorder.record(invoke);

            let url = format!("http://{}:{API_PORT}/write", ip(node));
            let result = agent
                .post(&url)
                .query("db", DATABASE)
                .query("precision", "ns")
                .send_string(&body.join("\n"));
            let (kind, status, error) = classify(result);
            self.tracker
                .lock()
                .completed(&elements, &timestamps, kind == Type::Ok);
            let mut done = Event::new(&process, kind, F::Write, op);
            done.node = Some(node);
            done.status = status;
            done.error = error;
            self.recorder.record(done);
            self.pace(&mut rng);
        }
    }

    /// Jepsen's stagger: a uniformly random pause averaging the per-client interval.
    fn pace(&self, rng: &mut StdRng) {
        if self.settings.rate <= 0.0 {
            return;
        }
        let mean = f64::from(self.settings.concurrency) / self.settings.rate;
        let pause = Duration::from_secs_f64(rng.gen_range(0.0..2.0 * mean));
        let until = Instant::now() + pause;
        while self.running() && Instant::now() < until {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
        }
    }

    /// The reader of node `n`: reads the recent elements through that node's API every
    /// interval. The window starts at the oldest element that is in flight or acknowledged
    /// but not yet seen there, so each element is looked for until it shows up.
    pub fn reader(&self, n: u8) {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(1))
            .timeout(self.settings.client_timeout)
            .build();
        let process = format!("r{n}");
        let url = format!("http://{}:{API_PORT}/query", ip(n));
        while self.running() {
            let since = self.tracker.lock().since(n, wall_ns());
            let op = self.recorder.op_id();
            let mut invoke = Event::new(&process, Type::Invoke, F::Read, op);
            invoke.node = Some(n);
            invoke.since = Some(since);
            self.recorder.record(invoke);
            let q = format!("SELECT element FROM \"{MEASUREMENT}\" WHERE time >= {since}");
            let result = agent
                .get(&url)
                .query("db", DATABASE)
                .query("epoch", "ns")
                .query("q", &q)
                .call();
            let mut done = match result.map_err(anyhow::Error::from).and_then(|r| {
                let body = r.into_string()?;
                influx::parse_points(&body)
            }) {
                Ok(points) => {
                    let elements: Vec<u64> = points.iter().filter_map(Point::element).collect();
                    self.tracker.lock().seen(n, &elements);
                    let mut e = Event::new(&process, Type::Ok, F::Read, op);
                    e.read = Some(elements);
                    e
                }
                Err(err) => {
                    // Reads change nothing: a failed one is simply a failure.
                    let mut e = Event::new(&process, Type::Fail, F::Read, op);
                    e.error = Some(format!("{err:#}"));
                    e
                }
            };
            done.node = Some(n);
            self.recorder.record(done);
            let until = Instant::now() + self.settings.read_interval;
            while self.running() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Tracker {
    fn invoked(&mut self, elements: &[u64], timestamps: &[i64]) {
        for (&e, &t) in elements.iter().zip(timestamps) {
            self.in_flight.insert((t, e));
            self.timestamps.insert(e, t);
        }
    }

    fn completed(&mut self, elements: &[u64], timestamps: &[i64], ok: bool) {
        for (&e, &t) in elements.iter().zip(timestamps) {
            self.in_flight.remove(&(t, e));
            if ok {
                for (seen, unseen) in self.seen.iter().zip(self.unseen.iter_mut()) {
                    if !seen.contains(&e) {
                        unseen.insert((t, e));
                    }
                }
            }
        }
    }

    fn seen(&mut self, n: u8, elements: &[u64]) {
        let i = usize::from(n - 1);
        for e in elements {
            if self.seen[i].insert(*e) {
                if let Some(t) = self.timestamps.get(e) {
                    self.unseen[i].remove(&(*t, *e));
                }
            }
        }
    }

    /// The lower time bound of node `n`'s next read: a little history always, and back to
    /// the oldest element still looked for, but never more than five minutes back.
    fn since(&self, n: u8, now: i64) -> i64 {
        let mut since = now - 2_000_000_000;
        if let Some((t, _)) = self.in_flight.first() {
            since = since.min(*t);
        }
        if let Some((t, _)) = self.unseen[usize::from(n - 1)].first() {
            since = since.min(*t);
        }
        since.max(now - 300_000_000_000)
    }
}

/// A write's outcome from its answer. Definite: 204 (ok), 503 and 4xx (nothing written),
/// a refused connection (never sent). Everything else, including timeouts and resets after
/// the request went out, may or may not have been written.
pub fn classify(
    result: Result<ureq::Response, ureq::Error>,
) -> (Type, Option<u16>, Option<String>) {
    match result {
        Ok(r) if r.status() == 204 => (Type::Ok, Some(204), None),
        Ok(r) => (
            Type::Info,
            Some(r.status()),
            Some(format!("unexpected status {}", r.status())),
        ),
        Err(ureq::Error::Status(code, r)) => {
            let header = r.header("X-Influxdb-Error").map(str::to_owned);
            let body = r.into_string().unwrap_or_default();
            let error = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .or(header)
                .unwrap_or(body);
            let kind = match code {
                400..=499 | 503 => Type::Fail,
                _ => Type::Info,
            };
            (kind, Some(code), Some(error))
        }
        Err(ureq::Error::Transport(t)) => {
            let kind = match t.kind() {
                ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => Type::Fail,
                _ => Type::Info,
            };
            (kind, None, Some(t.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_window_follows_unseen_acknowledged_elements() {
        let mut t = Tracker {
            unseen: vec![BTreeSet::new(); 3],
            seen: vec![HashSet::new(); 3],
            ..Default::default()
        };
        let now = 1_000_000_000_000;
        t.invoked(&[1, 2], &[now - 10_000_000_000, now - 9_000_000_000]);
        assert_eq!(t.since(1, now), now - 10_000_000_000);
        t.seen(1, &[1]);
        t.completed(&[1, 2], &[now - 10_000_000_000, now - 9_000_000_000], true);
        // Node 1 showed element 1 already; it still waits for 2.
        assert_eq!(t.since(1, now), now - 9_000_000_000);
        assert_eq!(t.since(2, now), now - 10_000_000_000);
        t.seen(2, &[1, 2]);
        assert_eq!(t.since(2, now), now - 2_000_000_000);
    }
}
