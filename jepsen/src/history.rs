//! The history: every operation as an invocation followed by its completion, in the order
//! they happened, with monotonic times. The checker is a pure function of it (plus the final
//! reads), so the same history always gives the same verdict.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    Invoke,
    /// Definitely happened.
    Ok,
    /// Definitely did not happen.
    Fail,
    /// May or may not have happened.
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum F {
    Write,
    Read,
    /// A nemesis fault begins.
    Start,
    /// A nemesis fault is healed.
    Stop,
    /// A process of the cluster died without being told to.
    Crash,
    /// A read with `consistency=linearizable` of one client's elements, through a random node.
    LinRead,
    /// The membership, as the leader lists it, whenever it changed.
    Members,
    /// A statement of the schema workload (`POST /query`), or a write into its scratch
    /// measurements and databases.
    Schema,
}

/// What a write carries: elements, and for each the timestamp and series it was written
/// with, so the checker can tell exactly which point each element must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteValue {
    pub client: u32,
    pub elements: Vec<u64>,
    /// The points' timestamps; for a write sent without timestamps (`untimed`), the
    /// client's clock when it was invoked, only a hint: the receiving node stamps them.
    pub timestamps: Vec<i64>,
    /// Whether the points carry the string field `s` (see `--no-string-field`).
    #[serde(default = "yes")]
    pub string_field: bool,
    /// The `Idempotency-Key` every attempt of this write carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Sent without timestamps: found by element, never by time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub untimed: bool,
    /// Retried without a key after an indeterminate attempt (`--unkeyed-retries`): a second
    /// copy is possible by design, and only counted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unkeyed_retries: bool,
}

impl WriteValue {
    /// A plain write: timestamped, sent once.
    pub fn plain(client: u32, elements: Vec<u64>, timestamps: Vec<i64>) -> WriteValue {
        WriteValue {
            client,
            elements,
            timestamps,
            string_field: true,
            key: None,
            untimed: false,
            unkeyed_retries: false,
        }
    }

    /// The point element `i` of this write (op `op`) must be. Points sent without
    /// timestamps get one time for the whole batch, so each is put in a series of its own
    /// (tag `i`, its place in the batch): in one series they would overwrite each other.
    pub fn expected_point(&self, op: u64, i: usize) -> crate::influx::Point {
        let mut p =
            crate::influx::Point::expected(self.client, op, self.elements[i], self.timestamps[i]);
        p.measurement = self.measurement().to_owned();
        if !self.string_field {
            p.fields.remove("s");
        }
        if self.untimed {
            p.tags.insert("i".to_owned(), i.to_string());
        }
        p
    }

    /// The measurement its points go to: retried writes each have their own, so that reads
    /// of timestamped elements stay windows of time.
    pub fn measurement(&self) -> &'static str {
        if self.key.is_some() {
            crate::influx::KEYED_MEASUREMENT
        } else if self.unkeyed_retries {
            crate::influx::UNKEYED_MEASUREMENT
        } else {
            crate::influx::MEASUREMENT
        }
    }
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One attempt of a write that is retried (keyed, or `--unkeyed-retries`), in its
/// completion: through which node, when (run time, ns), and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub node: u8,
    pub time: u64,
    #[serde(rename = "type")]
    pub kind: Type,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Answered with `Idempotent-Replayed: true`: the outcome of an earlier attempt.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NemesisValue {
    pub kind: String,
    pub nodes: Vec<u8>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// `clock-skew`: the offsets (seconds) the node's clock had, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets_s: Vec<i64>,
}

/// One member of the Raft group at some time, and the node that has its id, if any still
/// does (a removed node's old id belongs to none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    pub id: u64,
    /// "voter" or "learner".
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub index: u64,
    /// Nanoseconds since the run started (monotonic clock).
    pub time: u64,
    /// "c3" for client 3, "r1" for the reader of node 1, "nemesis", "cluster".
    pub process: String,
    #[serde(rename = "type")]
    pub kind: Type,
    pub f: F,
    /// The operation this event belongs to: an invocation and its completion share it.
    pub op: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteValue>,
    /// A read's lower time bound (its invocation) or the elements it saw (its completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// A linearizable read: the client whose elements it asks for, and the smallest keyed
    /// element it asks for (elements grow with time: this keeps reads small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_element: Option<u64>,
    /// A retried write's attempts (its completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<NemesisValue>,
    /// What a schema operation does (its invocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<crate::schema::SchemaValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall-clock time (UTC) of nemesis and crash events, to find them in the node logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall: Option<String>,
}

impl Event {
    pub fn new(process: &str, kind: Type, f: F, op: u64) -> Event {
        Event {
            index: 0,
            time: 0,
            process: process.to_owned(),
            kind,
            f,
            op,
            node: None,
            write: None,
            since: None,
            client: None,
            min_element: None,
            attempts: None,
            read: None,
            nemesis: None,
            members: None,
            schema: None,
            status: None,
            error: None,
            wall: None,
        }
    }
}

/// The shared recorder: appends stamp the time and index under one lock, so the history's
/// order is the order of the clock.
pub struct Recorder {
    start: Instant,
    next_op: AtomicU64,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            next_op: AtomicU64::new(1),
            events: Mutex::new(Vec::new()),
        }
    }

    pub fn op_id(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::Relaxed)
    }

    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn record(&self, mut e: Event) -> Event {
        let mut events = self.events.lock();
        e.time = self.now();
        e.index = events.len() as u64;
        if matches!(e.f, F::Start | F::Stop | F::Crash | F::Members) {
            e.wall =
                Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
        }
        events.push(e.clone());
        e
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    /// Counts of completed writes by outcome: (ok, fail, info), plus completed reads.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let events = self.events.lock();
        let (mut ok, mut fail, mut info, mut reads) = (0, 0, 0, 0);
        for e in events.iter() {
            match (e.f, e.kind) {
                (F::Write, Type::Ok) => ok += 1,
                (F::Write, Type::Fail) => fail += 1,
                (F::Write, Type::Info) => info += 1,
                (F::Read, Type::Ok) => reads += 1,
                _ => {}
            }
        }
        (ok, fail, info, reads)
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

pub fn write_jsonl(events: &[Event], path: &Path) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Event>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_jsonl() {
        let r = Recorder::new();
        let op = r.op_id();
        let mut e = Event::new("c1", Type::Invoke, F::Write, op);
        e.node = Some(2);
        e.write = Some(WriteValue::plain(1, vec![1, 2], vec![10, 11]));
        r.record(e);
        r.record(Event::new("c1", Type::Ok, F::Write, op));
        let dir = std::env::temp_dir().join(format!("jepsen-hist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let events = r.snapshot();
        write_jsonl(&events, &path).unwrap();
        assert_eq!(read_jsonl(&path).unwrap(), events);
        assert_eq!(r.counts(), (1, 0, 0, 0));
        let _ = std::fs::remove_dir_all(dir);
    }
}
