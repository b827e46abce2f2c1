//! The workload: clients writing unique elements to random nodes, and one reader per node.
//!
//! Every write carries values no other write has (element, timestamp, op id), so where a
//! point comes from is never in doubt. A plain write is never retried: a retry would be a
//! new operation with new elements. Keyed writes (an `Idempotency-Key`, no timestamps) are
//! retried with the same key through other nodes while their outcome is unknown, and so
//! are, with `--unkeyed-retries`, some untimed writes without a key. Clients also read one
//! client's elements with `consistency=linearizable` through random nodes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::API_PORT;
use crate::history::{Attempt, Event, Recorder, Type, WriteValue, F};
use crate::influx::{self, Point, DATABASE, KEYED_MEASUREMENT, MEASUREMENT};
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
    /// Share of writes sent with an idempotency key and without timestamps, retried while
    /// their outcome is unknown.
    pub keyed_fraction: f64,
    /// Share of writes sent without timestamps and retried without a key.
    pub unkeyed_fraction: f64,
    /// Attempts of a retried write at most (the first included).
    pub max_attempts: u32,
    /// Share of client operations that are linearizable reads instead of writes.
    pub lin_read_fraction: f64,
}

/// How far back a linearizable read looks: timestamped elements by time, keyed ones (whose
/// time the receiving node's clock sets, however wrong) by element, from the first element
/// allocated this long ago. Longer than any retried write lasts.
pub const LIN_READ_WINDOW: Duration = Duration::from_secs(60);

/// Hands out elements and timestamps, both strictly increasing, and tracks what each node
/// has been seen to hold so readers can keep their windows small.
pub struct Workload {
    pub settings: Settings,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    started: Instant,
    alloc: Mutex<(u64, i64)>,
    /// (when, the next element then), about once a second: where reads' windows start.
    marks: Mutex<std::collections::VecDeque<(Instant, u64)>>,
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
    /// Time ranges a `DELETE` of the schema workload was sent for: what is in them may
    /// never show, so readers do not wait for it.
    deleted: Vec<(i64, i64)>,
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
            marks: Mutex::new(std::collections::VecDeque::new()),
            tracker: Mutex::new(tracker),
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.started.elapsed() < self.settings.time_limit
    }

    fn allocate(&self, n: usize) -> (Vec<u64>, Vec<i64>) {
        let mut a = self.alloc.lock();
        {
            let mut marks = self.marks.lock();
            if marks
                .back()
                .is_none_or(|(t, _)| t.elapsed() >= Duration::from_secs(1))
            {
                marks.push_back((Instant::now(), a.0));
            }
            while marks.len() > 2 && marks[1].0.elapsed() > 2 * LIN_READ_WINDOW {
                marks.pop_front();
            }
        }
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

    /// One client: writes until the time limit, each to a random node, and now and then a
    /// linearizable read.
    pub fn client(&self, client: u32) {
        let mut rng = StdRng::seed_from_u64(self.settings.seed ^ (u64::from(client) << 32));
        // Pooled connections save a handshake per write. A stale one is never retried for a
        // POST (ureq retries idempotent methods only), so no write is ever sent twice by
        // ureq; the retries below are the client's own, recorded as attempts.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(1))
            .timeout(self.settings.client_timeout)
            .build();
        let process = format!("c{client}");
        while self.running() {
            let s = &self.settings;
            if rng.gen_bool(s.lin_read_fraction.clamp(0.0, 1.0)) {
                self.lin_read(&agent, &process, &mut rng);
                self.pace(&mut rng);
                continue;
            }
            let r: f64 = rng.gen();
            let (keyed, unkeyed) = (
                r < s.keyed_fraction,
                r >= s.keyed_fraction && r < s.keyed_fraction + s.unkeyed_fraction,
            );
            let node = rng.gen_range(1..=NODES);
            let count = if rng.gen_bool(0.5) {
                1
            } else {
                rng.gen_range(2..=10)
            };
            let (elements, timestamps) = self.allocate(count);
            let op = self.recorder.op_id();
            let value = WriteValue {
                string_field: self.settings.string_field,
                key: keyed.then(|| uuid(&mut rng)),
                untimed: keyed || unkeyed,
                unkeyed_retries: unkeyed,
                ..WriteValue::plain(client, elements.clone(), timestamps.clone())
            };
            let body: Vec<String> = (0..elements.len())
                .map(|i| {
                    let p = value.expected_point(op, i);
                    if value.untimed {
                        p.line_untimed()
                    } else {
                        p.line()
                    }
                })
                .collect();
            let body = body.join("\n");
            let mut invoke = Event::new(&process, Type::Invoke, F::Write, op);
            invoke.node = Some(node);
            invoke.write = Some(value.clone());
            let tracked = !value.untimed;
            if tracked {
                self.tracker.lock().invoked(&elements, &timestamps);
            }
            self.recorder.record(invoke);

            let mut done = if value.untimed {
                self.retried_write(&agent, &process, op, node, &body, &value, &mut rng)
            } else {
                let (kind, status, error, _) = send_write(&agent, node, &body, None);
                let mut done = Event::new(&process, kind, F::Write, op);
                done.node = Some(node);
                done.status = status;
                done.error = error;
                done
            };
            if tracked {
                self.tracker
                    .lock()
                    .completed(&elements, &timestamps, done.kind == Type::Ok);
            }
            done.op = op;
            self.recorder.record(done);
            self.pace(&mut rng);
        }
    }

    /// A write that is retried while its outcome is unknown: after a 500, a timeout or a cut
    /// connection (and after a 503 or a refused connection following one of those, which
    /// says nothing of the earlier attempt), through another node, at most
    /// `max_attempts` times in all and only while the run goes on. Its outcome: ok if an
    /// attempt was acknowledged; fail if the only attempts were definite failures (the
    /// first, or a 4xx answered to a retry: the outcome of the attempt that was applied);
    /// info otherwise.
    #[allow(clippy::too_many_arguments)]
    fn retried_write(
        &self,
        agent: &ureq::Agent,
        process: &str,
        op: u64,
        first_node: u8,
        body: &str,
        value: &WriteValue,
        rng: &mut StdRng,
    ) -> Event {
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut node = first_node;
        let outcome = loop {
            let (kind, status, error, replayed) =
                send_write(agent, node, body, value.key.as_deref());
            attempts.push(Attempt {
                node,
                time: self.recorder.now(),
                kind,
                status,
                error,
                replayed,
            });
            let unknown_before = attempts.len() > 1;
            match kind {
                Type::Ok => break Type::Ok,
                // A 4xx (not 503) to a retry is the applied attempt's outcome: nothing.
                Type::Fail if !unknown_before || status.is_some_and(|s| s != 503) => {
                    break Type::Fail
                }
                _ => {}
            }
            if attempts.len() as u32 >= self.settings.max_attempts.max(1) || !self.running() {
                break Type::Info;
            }
            // Another node, after a pause that doubles with each attempt (0.4-0.8 s first),
            // so that the attempts span a fault (`--interval`, 10 s) rather than all
            // meeting the same one.
            let others: Vec<u8> = (1..=NODES).filter(|&n| n != node).collect();
            node = others[rng.gen_range(0..others.len())];
            let base = 400u64 << (attempts.len() - 1).min(5);
            let until = Instant::now() + Duration::from_millis(rng.gen_range(base..2 * base));
            while self.running() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let last = attempts.last().expect("at least one attempt").clone();
        let mut done = Event::new(process, outcome, F::Write, op);
        done.node = Some(if outcome == Type::Ok {
            last.node
        } else {
            first_node
        });
        done.status = last.status;
        done.error = last.error;
        done.attempts = Some(attempts);
        done
    }

    /// A read of a random client's elements with `consistency=linearizable`, through a
    /// random node: its keyed elements from the first allocated [`LIN_READ_WINDOW`] ago on
    /// (by element: they carry the receiving node's time, whatever its clock said), and its
    /// timestamped ones of the last [`LIN_READ_WINDOW`]. One series per client and
    /// measurement, and the windows, keep it cheap.
    fn lin_read(&self, agent: &ureq::Agent, process: &str, rng: &mut StdRng) {
        let node = rng.gen_range(1..=NODES);
        let target = rng.gen_range(0..self.settings.concurrency.max(1));
        let since = wall_ns() - LIN_READ_WINDOW.as_nanos() as i64;
        let floor = self.element_floor(LIN_READ_WINDOW);
        let op = self.recorder.op_id();
        let mut invoke = Event::new(process, Type::Invoke, F::LinRead, op);
        invoke.node = Some(node);
        invoke.client = Some(target);
        invoke.since = Some(since);
        invoke.min_element = Some(floor);
        self.recorder.record(invoke);
        let q = format!(
            "SELECT element FROM \"{KEYED_MEASUREMENT}\" WHERE client = '{target}' \
             AND element >= {floor}; \
             SELECT element FROM \"{MEASUREMENT}\" WHERE client = '{target}' AND time >= {since}"
        );
        let result = agent
            .get(&format!("http://{}:{API_PORT}/query", ip(node)))
            .query("db", DATABASE)
            .query("epoch", "ns")
            .query("consistency", "linearizable")
            .query("q", &q)
            .call();
        let mut done = match result.map_err(anyhow::Error::from).and_then(|r| {
            let body = r.into_string()?;
            influx::parse_points(&body)
        }) {
            Ok(points) => {
                let mut e = Event::new(process, Type::Ok, F::LinRead, op);
                e.read = Some(points.iter().filter_map(Point::element).collect());
                e
            }
            Err(err) => {
                let mut e = Event::new(process, Type::Fail, F::LinRead, op);
                e.error = Some(format!("{err:#}"));
                e
            }
        };
        done.node = Some(node);
        done.client = Some(target);
        self.recorder.record(done);
    }

    /// A `DELETE` of the main measurement's points stamped within `[from, to)` is being
    /// sent: readers stop waiting for them.
    pub fn deleting(&self, from: i64, to: i64) {
        self.tracker.lock().deleting(from, to);
    }

    /// The first element allocated at least `age` ago (1 if none was).
    fn element_floor(&self, age: Duration) -> u64 {
        let marks = self.marks.lock();
        marks
            .iter()
            .rev()
            .find(|(t, _)| t.elapsed() >= age)
            .map_or(1, |(_, e)| *e)
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
            if ok && !self.deleted.iter().any(|&(a, b)| a <= t && t < b) {
                for (seen, unseen) in self.seen.iter().zip(self.unseen.iter_mut()) {
                    if !seen.contains(&e) {
                        unseen.insert((t, e));
                    }
                }
            }
        }
    }

    /// Elements stamped within `[from, to)` are no longer looked for.
    fn deleting(&mut self, from: i64, to: i64) {
        self.deleted.push((from, to));
        for unseen in &mut self.unseen {
            unseen.retain(|&(t, _)| t < from || t >= to);
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

/// Sends one attempt of a write to `node`, with `key` as its `Idempotency-Key`; the last
/// item: whether it was answered as a replay of an earlier attempt.
fn send_write(
    agent: &ureq::Agent,
    node: u8,
    body: &str,
    key: Option<&str>,
) -> (Type, Option<u16>, Option<String>, bool) {
    let mut req = agent
        .post(&format!("http://{}:{API_PORT}/write", ip(node)))
        .query("db", DATABASE)
        .query("precision", "ns");
    if let Some(k) = key {
        req = req.set("Idempotency-Key", k);
    }
    let result = req.send_string(body);
    let replayed = match &result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r
            .header("Idempotent-Replayed")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        Err(_) => false,
    };
    let (kind, status, error) = classify(result);
    (kind, status, error, replayed)
}

/// A random version-4 UUID, from the client's seeded generator (a fresh key per write).
fn uuid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
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
