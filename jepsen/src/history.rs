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
}

/// What a write carries: elements, and for each the timestamp and series it was written
/// with, so the checker can tell exactly which point each element must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteValue {
    pub client: u32,
    pub elements: Vec<u64>,
    pub timestamps: Vec<i64>,
    /// Whether the points carry the string field `s` (see `--no-string-field`).
    #[serde(default = "yes")]
    pub string_field: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NemesisValue {
    pub kind: String,
    pub nodes: Vec<u8>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<NemesisValue>,
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
            read: None,
            nemesis: None,
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
        if matches!(e.f, F::Start | F::Stop | F::Crash) {
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
        e.write = Some(WriteValue {
            client: 1,
            elements: vec![1, 2],
            timestamps: vec![10, 11],
            string_field: true,
        });
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
