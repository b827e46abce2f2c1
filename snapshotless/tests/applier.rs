//! The applier against a scripted fake influxd: coalescing, per-entry outcomes after a
//! rejected batch, retries without skipping, resuming from the marker, and keyed writes
//! applied at most once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use raft::prelude::{Entry, EntryType};
use snapshotless::{
    Applier, ApplierConfig, ApplierStatus, Command, CommittedLog, Influxd, KeyTable, KeyedBy,
    LogReadError, Origin, Outcome, OutcomeSink, ReplayFloor,
};
use tokio::sync::watch;

/// What the fake influxd holds and how it answers writes.
#[derive(Default)]
struct FakeState {
    /// Bodies of user writes, in arrival order.
    writes: Vec<String>,
    /// (index, term) of the marker, if the marker database exists.
    marker: Option<(u64, u64)>,
    marker_db: bool,
    /// Statuses to answer user writes with, in order; 204 once empty.
    script: VecDeque<u16>,
    /// Rejects any single write whose body contains this.
    poison: Option<String>,
    /// Whether the user database is missing (as on an influxd that was wiped).
    no_user_db: bool,
    /// How long each user write takes to be answered.
    write_delay: Duration,
}

async fn serve(state: Arc<Mutex<FakeState>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn reply(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("X-Influxdb-Version", "fake")
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn answer(state: &Mutex<FakeState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let uri = req.uri().clone();
    let body =
        String::from_utf8(req.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let user_write = uri.path() == "/write" && !uri.query().unwrap_or("").contains("db=_gateway");
    if user_write {
        let delay = state.lock().write_delay;
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock();
    match uri.path() {
        "/ping" => reply(204, ""),
        "/query" => {
            let q: String = form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if q.starts_with("CREATE DATABASE \"_gateway\"") {
                s.marker_db = true;
                return reply(200, r#"{"results":[{"statement_id":0}]}"#);
            }
            if q.starts_with("SELECT \"index\"") {
                return match (s.marker_db, s.marker) {
                    (false, _) => reply(
                        200,
                        r#"{"results":[{"statement_id":0,"error":"database not found: _gateway"}]}"#,
                    ),
                    (true, None) => reply(200, r#"{"results":[{"statement_id":0}]}"#),
                    (true, Some((i, t))) => reply(
                        200,
                        &format!(
                            r#"{{"results":[{{"statement_id":0,"series":[{{"name":"applied","columns":["time","index","term"],"values":[[0,{i},{t}]]}}]}}]}}"#
                        ),
                    ),
                };
            }
            if q == "CREATE DATABASE db" {
                s.no_user_db = false;
            }
            reply(200, r#"{"results":[{"statement_id":0}]}"#)
        }
        "/write" if uri.query().unwrap_or("").contains("db=_gateway") => {
            if !s.marker_db {
                return reply(404, r#"{"error":"database not found: \"_gateway\""}"#);
            }
            let field = |name: &str| -> u64 {
                let at = body.find(&format!("{name}=")).unwrap() + name.len() + 1;
                body[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            s.marker = Some((field("index"), field("term")));
            reply(204, "")
        }
        "/write" => {
            if s.no_user_db {
                return reply(404, r#"{"error":"database not found: \"db\""}"#);
            }
            let status = s.script.pop_front().unwrap_or(204);
            if status != 204 {
                return reply(status, r#"{"error":"scripted failure"}"#);
            }
            if let Some(p) = &s.poison {
                if body.contains(p.as_str()) {
                    return reply(400, r#"{"error":"partial write: poison dropped=1"}"#);
                }
            }
            s.writes.push(body);
            reply(204, "")
        }
        _ => reply(404, ""),
    }
}

/// The committed log, in memory.
#[derive(Clone, Default)]
struct FakeLog {
    entries: Arc<Mutex<Vec<Entry>>>,
    applied_hint: Arc<Mutex<u64>>,
    replay_floor: Arc<Mutex<Option<ReplayFloor>>>,
}

impl CommittedLog for FakeLog {
    fn read(&self, lo: u64, hi: u64, _max_bytes: u64) -> Result<Vec<Entry>, LogReadError> {
        Ok(self.entries.lock()[(lo - 1) as usize..(hi - 1) as usize].to_vec())
    }
    fn term(&self, index: u64) -> Result<u64, LogReadError> {
        Ok(self.entries.lock()[(index - 1) as usize].term)
    }
    fn load_applied(&self) -> u64 {
        *self.applied_hint.lock()
    }
    fn save_applied(&self, index: u64) {
        *self.applied_hint.lock() = index;
    }
    fn load_replay_floor(&self) -> Option<ReplayFloor> {
        self.replay_floor.lock().clone()
    }
    fn save_replay_floor(&self, floor: Option<&ReplayFloor>) -> Result<(), hybrid_log::LogError> {
        *self.replay_floor.lock() = floor.cloned();
        Ok(())
    }
}

#[derive(Default)]
struct Outcomes(Mutex<Vec<(u64, u16)>>, Mutex<Vec<(u64, Outcome)>>);

impl OutcomeSink for Outcomes {
    fn applied(&self, _origin: Origin, index: u64, outcome: Outcome) {
        self.0.lock().push((index, outcome.status));
        self.1.lock().push((index, outcome));
    }
}

/// A normal entry at term 1 that no request waits for.
fn entry(index: u64, command: &Command) -> Entry {
    Entry {
        entry_type: EntryType::EntryNormal as i32,
        index,
        term: 1,
        data: command.encode(),
        ..Default::default()
    }
}

struct Rig {
    state: Arc<Mutex<FakeState>>,
    log: FakeLog,
    commit: watch::Sender<u64>,
    status: watch::Receiver<ApplierStatus>,
    outcomes: Arc<Outcomes>,
}

const NODE: u64 = 1;

impl Rig {
    async fn start(state: FakeState, log: FakeLog) -> Rig {
        Self::start_with_keys(state, log, Arc::new(KeyTable::in_memory())).await
    }

    async fn start_with_keys(state: FakeState, log: FakeLog, keys: Arc<KeyTable>) -> Rig {
        Self::start_full(state, log, keys, ApplierConfig::default().batch_bytes).await
    }

    async fn start_full(
        state: FakeState,
        log: FakeLog,
        keys: Arc<KeyTable>,
        batch_bytes: usize,
    ) -> Rig {
        let config = ApplierConfig {
            batch_bytes,
            ..ApplierConfig::default()
        };
        Self::start_configured(state, log, keys, config).await
    }

    async fn start_configured(
        state: FakeState,
        log: FakeLog,
        keys: Arc<KeyTable>,
        config: ApplierConfig,
    ) -> Rig {
        let state = Arc::new(Mutex::new(state));
        let addr = serve(state.clone()).await;
        let influxd = Influxd::new(&format!("http://{addr}"), Duration::from_secs(5), None);
        let (commit, commit_rx) = watch::channel(log.entries.lock().len() as u64);
        let outcomes = Arc::new(Outcomes::default());
        let config = ApplierConfig {
            node_id: NODE,
            idle_marker_delay: Duration::from_millis(20),
            ..config
        };
        let (applier, status) =
            Applier::new(config, log.clone(), influxd, commit_rx, outcomes.clone());
        tokio::spawn(applier.with_keys(keys).run());
        Rig {
            state,
            log,
            commit,
            status,
            outcomes,
        }
    }

    /// Appends an entry proposed by this node; returns its index.
    fn push(&self, command: Command) -> u64 {
        let mut entries = self.log.entries.lock();
        let index = entries.len() as u64 + 1;
        let origin = Origin {
            node: NODE,
            request: index,
        };
        entries.push(Entry {
            context: origin.to_context(),
            ..entry(index, &command)
        });
        index
    }

    fn push_write(&self, lines: &str) -> u64 {
        self.push(Command::write("db", "", Bytes::from(lines.to_owned())))
    }

    /// A write with an idempotency key; its digest is its lines.
    fn push_keyed(&self, key: &str, lines: &str) -> u64 {
        let keyed_by = KeyedBy {
            key: key.into(),
            digest: lines.as_bytes().to_vec(),
            received_ms: 1_000,
            window_ms: 600_000,
            max_keys: 100,
        };
        self.push(Command::write("db", "", Bytes::from(lines.to_owned())).keyed(keyed_by))
    }

    fn push_query(&self, q: &str) -> u64 {
        self.push(Command::query(snapshotless::command::Query {
            q: q.into(),
            ..Default::default()
        }))
    }

    fn commit_all(&self) {
        self.commit
            .send_replace(self.log.entries.lock().len() as u64);
    }

    async fn applied(&mut self, index: u64) {
        let reached = tokio::time::timeout(
            Duration::from_secs(10),
            self.status
                .wait_for(|s| s.applied >= index && s.marker >= index),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(
            reached,
            "not applied to {index}: {:?}",
            *self.status.borrow()
        );
    }
}

#[tokio::test]
async fn consecutive_writes_are_coalesced_and_each_gets_its_outcome() {
    let log = FakeLog::default();
    let mut rig = Rig::start(FakeState::default(), log).await;
    rig.applied(0).await;
    for i in 0..5 {
        rig.push_write(&format!("m v={i} {i}\n"));
    }
    rig.commit_all();
    rig.applied(5).await;
    let writes = rig.state.lock().writes.clone();
    assert_eq!(
        writes.len(),
        1,
        "five committed writes should make one request: {writes:?}"
    );
    assert_eq!(writes[0].lines().count(), 5);
    let outcomes = rig.outcomes.0.lock().clone();
    assert_eq!(outcomes, (1..=5).map(|i| (i, 204)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_backlog_goes_in_order_in_bounded_requests_and_reads_ahead_into_new_commits() {
    // influxd takes 200 ms a request; a request holds two of these writes at most.
    let state = FakeState {
        write_delay: Duration::from_millis(200),
        ..FakeState::default()
    };
    let keys = Arc::new(KeyTable::in_memory());
    let mut rig = Rig::start_full(state, FakeLog::default(), keys, 20).await;
    rig.applied(0).await;
    let line = |i: u64| format!("m v={i} {i}\n");
    for i in 1..=10 {
        rig.push_write(&line(i));
    }
    let within = Duration::from_secs(10);
    rig.commit.send_replace(5);
    let first = tokio::time::timeout(within, rig.status.wait_for(|s| s.applied >= 2)).await;
    assert!(
        first.is_ok_and(|r| r.is_ok()),
        "the first request never went"
    );
    // Five more commit while the first five are being applied: the applier reads ahead into
    // them at once, rather than once it is done with the five.
    rig.commit_all();
    let applied_then = tokio::time::timeout(within, rig.status.wait_for(|s| s.committed == 10))
        .await
        .ok()
        .and_then(|r| r.ok().map(|s| s.applied));
    assert!(
        applied_then.is_some_and(|a| a < 5),
        "the applier saw the new commits only after applying {applied_then:?}"
    );
    rig.applied(10).await;
    let writes = rig.state.lock().writes.clone();
    assert!(
        writes.len() >= 5 && writes.iter().all(|w| w.lines().count() <= 2),
        "requests over the 20-byte bound: {writes:?}"
    );
    let all: String = writes.concat();
    assert_eq!(all, (1..=10).map(line).collect::<String>());
    let outcomes = rig.outcomes.0.lock().clone();
    assert_eq!(outcomes, (1..=10).map(|i| (i, 204)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_rejected_batch_is_applied_entry_by_entry() {
    let state = FakeState {
        poison: Some("bad".into()),
        ..FakeState::default()
    };
    let mut rig = Rig::start(state, FakeLog::default()).await;
    rig.applied(0).await;
    rig.push_write("m v=1 1\n");
    rig.push_write("m bad=1 2\n");
    rig.push_write("m v=3 3\n");
    rig.commit_all();
    rig.applied(3).await;
    let outcomes = rig.outcomes.0.lock().clone();
    assert_eq!(outcomes, vec![(1, 204), (2, 400), (3, 204)]);
    let writes = rig.state.lock().writes.clone();
    assert!(writes.iter().any(|w| w.contains("v=3")), "{writes:?}");
    assert_eq!(rig.status.borrow().rejected, 1);
}

#[tokio::test]
async fn a_backlog_goes_in_lanes_once_its_series_are_stored_and_a_refused_lane_goes_entry_by_entry()
{
    let state = FakeState {
        poison: Some("bad".into()),
        ..FakeState::default()
    };
    // Groups of two entries, each large enough for lanes.
    let config = ApplierConfig {
        batch_bytes: 60,
        lane_bytes: 1,
        ..ApplierConfig::default()
    };
    let keys = Arc::new(KeyTable::in_memory());
    let mut rig = Rig::start_configured(state, FakeLog::default(), keys, config).await;
    rig.applied(0).await;
    let entry = |i: u64, field: &str| {
        format!(
            "m,t=a v={i} {}\nm,t=b {field}={i} {}\n",
            10 + 2 * i,
            11 + 2 * i
        )
    };
    for i in 1..=8 {
        rig.push_write(&entry(i, if i == 6 { "bad" } else { "v" }));
    }
    rig.commit_all();
    rig.applied(8).await;
    let outcomes = rig.outcomes.0.lock().clone();
    let expected: Vec<(u64, u16)> = (1..=8)
        .map(|i| (i, if i == 6 { 400 } else { 204 }))
        .collect();
    assert_eq!(outcomes, expected);
    let status = rig.status.borrow().clone();
    // The first group brings the series and goes whole; the second and third go in lanes;
    // the last has nothing waiting behind it and goes whole.
    assert_eq!(status.lane_groups, 2, "{status:?}");
    assert_eq!(status.rejected, 1);
    let writes = rig.state.lock().writes.clone();
    let mut stored: Vec<&str> = writes.iter().flat_map(|w| w.lines()).collect();
    stored.sort_unstable();
    stored.dedup();
    let mut expected: Vec<String> = (1..=8)
        .filter(|&i| i != 6)
        .flat_map(|i| entry(i, "v").lines().map(str::to_owned).collect::<Vec<_>>())
        .chain([entry(6, "bad").lines().next().unwrap().to_owned()])
        .collect();
    expected.sort_unstable();
    assert_eq!(stored, expected, "{writes:?}");
    // The refused group's lanes, then its entries one by one: the good one stored twice.
    assert_eq!(writes.len(), 1 + 2 + 1 + 1 + 1, "{writes:?}");
}

#[tokio::test]
async fn unavailable_influxd_is_retried_and_nothing_is_skipped() {
    let state = FakeState {
        script: [503, 500, 503].into(),
        ..FakeState::default()
    };
    let mut rig = Rig::start(state, FakeLog::default()).await;
    rig.applied(0).await;
    rig.push_write("m v=1 1\n");
    rig.commit_all();
    rig.applied(1).await;
    let writes = rig.state.lock().writes.clone();
    assert_eq!(writes, vec!["m v=1 1\n"]);
    assert_eq!(rig.outcomes.0.lock().clone(), vec![(1, 204)]);
    assert!(rig.status.borrow().resumes >= 1);
}

#[tokio::test]
async fn resumes_after_the_marker_and_rebuilds_when_it_is_missing() {
    // influxd already holds everything up to index 3.
    let log = FakeLog::default();
    let state = FakeState {
        marker: Some((3, 1)),
        marker_db: true,
        ..FakeState::default()
    };
    {
        let mut entries = log.entries.lock();
        for i in 1..=5u64 {
            let write = Command::write("db", "", Bytes::from(format!("m v={i} {i}\n")));
            entries.push(entry(i, &write));
        }
    }
    let mut rig = Rig::start(state, log.clone()).await;
    rig.applied(5).await;
    let writes = rig.state.lock().writes.concat();
    assert_eq!(
        writes, "m v=4 4\nm v=5 5\n",
        "only what follows the marker is applied"
    );
    assert_eq!(rig.status.borrow().resumed_from, 3);

    // The same log against an empty influxd that this node had applied to: a rebuild from 1.
    log.save_applied(5);
    let mut rig = Rig::start(FakeState::default(), log).await;
    rig.applied(5).await;
    assert_eq!(rig.state.lock().writes.concat().lines().count(), 5);
    assert_eq!(rig.status.borrow().resumed_from, 0);
    assert!(rig.status.borrow().rebuilding.is_none());
}

#[tokio::test]
async fn a_rejection_from_a_wiped_influxd_is_not_an_answer() {
    let mut rig = Rig::start(FakeState::default(), FakeLog::default()).await;
    rig.applied(0).await;
    rig.push_query("CREATE DATABASE db");
    rig.push_write("m v=1 1\n");
    rig.commit_all();
    rig.applied(2).await;

    // influxd loses everything; the next write meets "database not found".
    {
        let mut s = rig.state.lock();
        *s = FakeState {
            no_user_db: true,
            ..FakeState::default()
        };
    }
    let last = rig.push_write("m v=2 2\n");
    rig.commit_all();
    rig.applied(last).await;
    let outcomes = rig.outcomes.0.lock().clone();
    assert!(
        outcomes.contains(&(last, 204)) && !outcomes.contains(&(last, 404)),
        "the write was answered with the wiped influxd's rejection: {outcomes:?}"
    );
    let writes = rig.state.lock().writes.concat();
    assert_eq!(
        writes, "m v=1 1\nm v=2 2\n",
        "the rebuild replayed the log from the start"
    );
}

#[tokio::test]
async fn a_keyed_write_is_applied_once_and_its_retries_get_its_outcome() {
    let state = FakeState {
        poison: Some("bad".into()),
        ..FakeState::default()
    };
    let mut rig = Rig::start(state, FakeLog::default()).await;
    rig.applied(0).await;
    // Committed together: the retry must not be coalesced with its first attempt, whose
    // outcome it is answered with.
    rig.push_keyed("a", "m v=1 1\n");
    rig.push_write("m v=2 2\n");
    rig.push_keyed("a", "m v=1 1\n");
    rig.push_keyed("b", "m bad=1 3\n");
    rig.push_keyed("b", "m bad=1 3\n");
    rig.push_keyed("a", "m v=9 9\n");
    rig.commit_all();
    rig.applied(6).await;
    let writes = rig.state.lock().writes.concat();
    assert_eq!(writes, "m v=1 1\nm v=2 2\n", "nothing applied twice");
    let outcomes = rig.outcomes.1.lock().clone();
    let seen: Vec<(u64, u16, bool)> = outcomes
        .iter()
        .map(|(i, o)| (*i, o.status, o.replayed))
        .collect();
    assert_eq!(
        seen,
        [
            (1, 204, false),
            (2, 204, false),
            (3, 204, true),
            (4, 400, false),
            (5, 400, true),
            (6, 422, false)
        ]
    );
    assert_eq!(outcomes[4].1.body, outcomes[3].1.body);
    let status = rig.status.borrow().clone();
    assert_eq!((status.retries, status.rejected), (2, 2));
}

#[tokio::test]
async fn a_keyed_write_replayed_from_the_marker_is_not_its_own_retry() {
    // The keyed write is applied, then influxd fails before a marker covers it: the applier
    // resumes before it and must apply it again, not take it for a retry of itself.
    let state = FakeState {
        script: [204, 503].into(),
        ..FakeState::default()
    };
    let keys = Arc::new(KeyTable::in_memory());
    let log = FakeLog::default();
    let mut rig = Rig::start_with_keys(state, log, keys.clone()).await;
    rig.applied(0).await;
    rig.push_keyed("a", "m v=1 1\n");
    rig.push(Command::write(
        "other",
        "",
        Bytes::from_static(b"o v=2 2\n"),
    ));
    rig.commit_all();
    rig.applied(2).await;
    let writes = rig.state.lock().writes.concat();
    assert_eq!(writes, "m v=1 1\nm v=1 1\no v=2 2\n");
    let status = rig.status.borrow().clone();
    assert!(status.resumes >= 1, "{status:?}");
    assert_eq!(status.retries, 0, "the replay was taken for a retry");
    assert_eq!(keys.len().0, 1);
}
