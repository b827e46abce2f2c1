//! Seeding over the peer network: both sides of copying a peer's influxd to a node whose log
//! no longer holds what its influxd needs (or whose backlog a copy moves much faster).
//!
//! The node side is the applier's [`Seeder`]: it asks the leader first, then every other
//! member, over a side channel of the peer transport (the same port and the same cluster
//! check as Raft traffic) for a copy covering at least its log's trim point; receives it into
//! its data directory; wipes its influxd and restores the copy, marker last
//! (`snapshotless::seed`). The source side answers such channels one at a time: it refuses
//! when its own influxd does not cover what is needed, otherwise takes the copy with
//! influxd's own backup and streams it.
//!
//! A side channel opens with one answer from the source, a 4-byte big-endian length and a
//! JSON [`Answer`]; a copy's stream (`snapshotless::seed::send`) follows an answer that
//! agreed to send one.
//!
//! The answer also carries the source's idempotency table as it was at the copy's marker
//! (`snapshotless::idempotency`): the node applies the log from there, and the writes that
//! built the table may be trimmed from every log. A node seeded without it could apply again
//! a retry its source had recognised.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hybrid_log::HybridLog;
use raft::Storage as _;
use serde::{Deserialize, Serialize};
use snapshotless::idempotency::Export;
use snapshotless::seed::{
    self, BoxFuture, Passwords, Progress as CopyProgress, Restored, SeedError, SeedReport, Seeder,
    Tools,
};
use snapshotless::{entry, ApplierStatus, Influxd, KeyTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::Config;
use crate::passwords::{PasswordBook, Records};
use crate::raft::members::AddressBook;
use crate::raft::progress::Progress;
use crate::raft::transport::{SideChannel, SideRequest, Transport};
use crate::raft::RaftHandle;
use crate::tls::PeerStream;

/// A copy that makes no progress for this long is given up (the source died or was cut off).
const STALL: Duration = Duration::from_secs(60);
/// Largest answer frame accepted: an idempotency table of the most keys allowed, each with
/// the longest key and a stored error, fits.
const MAX_ANSWER: u32 = 1 << 30;

/// The source's first words on a side channel.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    /// Why no copy comes, if none does.
    refused: Option<String>,
    /// The source's marker: what its influxd (and a copy of it) covers at least.
    marker: u64,
    /// The copy's bytes (seed), or what the source's influxd takes on disk (size).
    bytes: u64,
    /// With a copy: the users' passwords the source recorded (passwords.rs).
    #[serde(default)]
    passwords: Records,
    /// With a copy: the idempotency table at the copy's marker (absent from a source older
    /// than keys, which recorded none).
    #[serde(default)]
    keys: Option<Export>,
}

/// Both sides of seeding on this node.
pub struct Seeds {
    id: u64,
    parts: SeedParts,
    tools: Tools,
    rpc: String,
    work_dir: PathBuf,
    /// The gateway's own influxd account, which a restored influxd keeps.
    admin: Option<(String, String)>,
    ratio: u64,
    min_backlog: u64,
    /// One copy at a time leaves this node: each is a full backup of its influxd.
    serving: Semaphore,
}

impl Seeds {
    pub fn new(config: &Config, parts: SeedParts) -> Arc<Seeds> {
        let work_dir = config.data_dir.join("seed");
        // Copies left by a process that died while sending or receiving one.
        let _ = std::fs::remove_dir_all(&work_dir);
        Arc::new(Seeds {
            id: config.node_id(),
            parts,
            tools: Tools {
                program: config.influxd_program.clone(),
                timeout: config.seed_timeout,
            },
            rpc: config.influxd_rpc.clone(),
            work_dir,
            admin: config.influxd_credentials(),
            ratio: config.seed_backlog_ratio,
            min_backlog: config.seed_min_backlog.as_u64(),
            serving: Semaphore::new(1),
        })
    }

    /// Answers peers' side channels until the transport is gone. `applier` tells whether
    /// this node's own influxd is whole (not being seeded itself).
    pub async fn serve(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<SideRequest>,
        applier: watch::Receiver<ApplierStatus>,
    ) {
        while let Some(req) = requests.recv().await {
            let me = self.clone();
            let applier = applier.clone();
            tokio::spawn(async move {
                let (from, kind) = (req.from, req.kind);
                if let Err(e) = me.answer(req, applier).await {
                    tracing::warn!(peer = from, ?kind, error = %e, "side channel failed");
                }
            });
        }
    }

    async fn answer(
        &self,
        req: SideRequest,
        applier: watch::Receiver<ApplierStatus>,
    ) -> Result<(), SeedError> {
        let SideRequest {
            from,
            kind,
            need,
            mut stream,
        } = req;
        let marker = self.parts.progress.own();
        let refuse = |why: String| Answer {
            refused: Some(why),
            marker,
            bytes: 0,
            passwords: Records::new(),
            keys: None,
        };
        if applier.borrow().seeding.is_some() {
            let answer = refuse("this node's influxd is being seeded itself".into());
            return write_answer(&mut stream, &answer).await;
        }
        if kind == SideChannel::Size {
            let answer = match self.parts.influxd.disk_bytes().await {
                Ok(bytes) => Answer {
                    refused: None,
                    marker,
                    bytes,
                    passwords: Records::new(),
                    keys: None,
                },
                Err(e) => refuse(e.to_string()),
            };
            return write_answer(&mut stream, &answer).await;
        }
        if marker < need {
            let why = format!("its influxd holds the log up to {marker}, not {need}");
            return write_answer(&mut stream, &refuse(why)).await;
        }
        let Ok(_permit) = self.serving.try_acquire() else {
            let answer = refuse("already sending a copy to another node".into());
            return write_answer(&mut stream, &answer).await;
        };
        tracing::info!(peer = from, need, "copying influxd for a peer");
        // Taken before the copy reads its marker: the table forgets nothing it held there.
        let hold = self.parts.keys.hold();
        let copy = match seed::take_copy(
            &self.tools,
            &self.rpc,
            &self.parts.influxd,
            &self.work_dir,
        )
        .await
        {
            Ok(c) if c.marker().index >= need => c,
            Ok(c) => {
                let why = format!("the copy covers {}, not {need}", c.marker().index);
                return write_answer(&mut stream, &refuse(why)).await;
            }
            Err(e) => return write_answer(&mut stream, &refuse(e.to_string())).await,
        };
        let keys = self.parts.keys.export(copy.marker().index);
        // Not for as long as the copy streams: the table would grow meanwhile.
        drop(hold);
        let keys = match keys {
            Ok(keys) => keys,
            Err(e) => return write_answer(&mut stream, &refuse(e.to_string())).await,
        };
        // Read after the copy was taken: they cover at least what it covers.
        let answer = Answer {
            refused: None,
            marker: copy.marker().index,
            bytes: copy.total_bytes(),
            passwords: self.parts.passwords.records(),
            keys: Some(keys),
        };
        write_answer(&mut stream, &answer).await?;
        let (progress, _) = watch::channel(CopyProgress::default());
        seed::send(&copy, &mut stream, &progress).await?;
        // A clean end (TLS's close_notify) tells the receiver the stream was not cut.
        stream
            .shutdown()
            .await
            .map_err(SeedError::io("end the copy's stream"))?;
        tracing::info!(
            peer = from,
            covers = answer.marker,
            bytes = answer.bytes,
            "copy sent"
        );
        Ok(())
    }

    /// Members to ask for a copy: the leader first (it holds everything committed), then
    /// the others.
    fn sources(&self) -> Vec<(u64, String)> {
        let status = self.parts.raft.status();
        let mut ids: Vec<u64> = status
            .members
            .iter()
            .map(|m| m.id)
            .filter(|&id| id != self.id)
            .collect();
        ids.sort_by_key(|&id| (id != status.leader, id));
        ids.into_iter()
            .filter_map(|id| Some((id, self.parts.book.get(id)?)))
            .collect()
    }

    async fn seed_once(&self, report: &SeedReport) -> Result<Restored, SeedError> {
        let need = self.parts.log.trim_point().index;
        report.need(need);
        let mut refusals = Vec::new();
        for (id, addr) in self.sources() {
            match self.fetch(id, &addr, need, report).await {
                Ok((copy, passwords, keys)) => {
                    self.parts.passwords.merge(passwords);
                    report.restoring();
                    let dropped = seed::wipe_for_seed(&self.parts.influxd).await?;
                    if !dropped.is_empty() {
                        tracing::info!(databases = ?dropped, "influxd wiped for the seed");
                    }
                    // Once influxd holds no marker, and before it holds the copy's.
                    let at = copy.marker().index;
                    let keys = keys.unwrap_or(Export {
                        at,
                        records: Vec::new(),
                    });
                    self.parts.keys.replace(keys)?;
                    return seed::restore(
                        &self.tools,
                        &self.rpc,
                        &self.parts.influxd,
                        &copy,
                        &self.passwords(),
                    )
                    .await;
                }
                Err(e) => {
                    tracing::info!(peer = id, %addr, error = %e, "no copy from this peer");
                    refusals.push(format!("node {id} ({addr}): {e}"));
                }
            }
        }
        if refusals.is_empty() {
            refusals.push("no other member is known".into());
        }
        Err(SeedError::NoSource(refusals.join("; ")))
    }

    /// Receives a copy covering `need` from the member `id` at `addr`.
    async fn fetch(
        &self,
        id: u64,
        addr: &str,
        need: u64,
        report: &SeedReport,
    ) -> Result<(seed::Copy, Records, Option<Export>), SeedError> {
        let mut stream = self
            .parts
            .transport
            .open_side(addr, SideChannel::Seed, need)
            .await
            .map_err(SeedError::io(format!("connect to {addr}")))?;
        // The source takes its backup before it answers: as long as a backup may take.
        let answer = tokio::time::timeout(self.tools.timeout, read_answer(&mut stream))
            .await
            .map_err(|_| {
                SeedError::NoSource(format!("no answer within {:?}", self.tools.timeout))
            })??;
        if let Some(why) = answer.refused {
            return Err(SeedError::NoSource(why));
        }
        report.copying(&format!("{id} ({addr})"), answer.bytes);
        let (tx, mut rx) = watch::channel(CopyProgress::default());
        let receive = seed::receive(&mut stream, &self.work_dir, &tx);
        tokio::pin!(receive);
        let copy = loop {
            tokio::select! {
                copy = &mut receive => break copy?,
                changed = tokio::time::timeout(STALL, rx.changed()) => match changed {
                    Ok(_) => report.received(rx.borrow_and_update().done),
                    Err(_) => {
                        return Err(SeedError::NoSource(format!("the copy stalled for {STALL:?}")))
                    }
                },
            }
        };
        if copy.marker().index < need {
            return Err(SeedError::NoSource(format!(
                "the copy covers {}, not {need}",
                copy.marker().index
            )));
        }
        if answer
            .keys
            .as_ref()
            .is_some_and(|k| k.at != copy.marker().index)
        {
            return Err(SeedError::NoSource(
                "the idempotency keys sent are not the copy's".into(),
            ));
        }
        Ok((copy, answer.passwords, answer.keys))
    }

    /// Every password known: the recorded ones, and the gateway's own account.
    fn passwords(&self) -> Passwords {
        let mut known = self.parts.passwords.passwords();
        if let Some((user, password)) = &self.admin {
            known.insert(user.clone(), password.clone());
        }
        known
    }

    async fn prefers_seed_now(&self, from: u64, to: u64) -> bool {
        if self.ratio == 0 || from < self.parts.log.trim_point().index {
            return false;
        }
        // What a replay moves is line protocol: the memory tier holds entries as they are
        // (a packed one compressed), the disk tier's figure is compressed, and the newest
        // entries of the backlog say how large they are unpacked.
        let stats = self.parts.log.stats();
        let per_entry = (stats.memory_bytes / stats.memory_entries.max(1))
            .max(stats.disk_bytes / stats.disk_entries.max(1))
            .max(self.line_bytes_per_entry(from, to));
        let backlog = per_entry.saturating_mul(to - from);
        if backlog < self.min_backlog {
            tracing::debug!(backlog_bytes = backlog, "backlog small enough to replay");
            return false;
        }
        for (id, addr) in self.sources() {
            match self.size_of(&addr, to).await {
                Ok(bytes) => {
                    let faster = backlog > bytes.saturating_mul(self.ratio);
                    tracing::info!(
                        peer = id,
                        backlog_bytes = backlog,
                        copy_bytes = bytes,
                        ratio = self.ratio,
                        seed = faster,
                        "replay or seed"
                    );
                    return faster;
                }
                Err(e) => tracing::debug!(peer = id, error = %e, "no size from this peer"),
            }
        }
        false
    }

    /// The mean size, unpacked, of the newest entries (at most 64) of the backlog from
    /// `from + 1` through `to`; 0 if they cannot be read.
    fn line_bytes_per_entry(&self, from: u64, to: u64) -> u64 {
        let lo = (from + 1).max((to + 1).saturating_sub(64));
        match self
            .parts
            .log
            .entries(lo, to + 1, None, raft::GetEntriesContext::empty(false))
        {
            Ok(entries) if !entries.is_empty() => {
                let sum: u64 = entries.iter().map(|e| entry::plain_len(&e.data)).sum();
                sum / entries.len() as u64
            }
            _ => 0,
        }
    }

    /// What a copy of the influxd at `addr` would move, if it covers at least `to`... or
    /// close to it: a source behind would leave more to replay, which is still small.
    async fn size_of(&self, addr: &str, to: u64) -> Result<u64, SeedError> {
        let mut stream = self
            .parts
            .transport
            .open_side(addr, SideChannel::Size, to)
            .await
            .map_err(SeedError::io(format!("connect to {addr}")))?;
        let answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stream))
            .await
            .map_err(|_| SeedError::NoSource("no answer within 10s".into()))??;
        match answer.refused {
            Some(why) => Err(SeedError::NoSource(why)),
            None => Ok(answer.bytes),
        }
    }
}

/// What [`Seeds::new`] takes from the rest of start-up.
pub struct SeedParts {
    pub log: HybridLog,
    pub book: AddressBook,
    pub raft: RaftHandle,
    pub transport: Arc<Transport>,
    pub progress: Progress,
    pub influxd: Influxd,
    pub passwords: Arc<PasswordBook>,
    pub keys: Arc<KeyTable>,
}

impl Seeder for Seeds {
    fn prefers_seed(&self, from: u64, to: u64) -> BoxFuture<'_, bool> {
        Box::pin(self.prefers_seed_now(from, to))
    }

    fn seed<'a>(&'a self, report: &'a SeedReport) -> BoxFuture<'a, Result<Restored, SeedError>> {
        Box::pin(self.seed_once(report))
    }
}

async fn write_answer(stream: &mut PeerStream, answer: &Answer) -> Result<(), SeedError> {
    let json = serde_json::to_vec(answer).expect("an answer serializes");
    let mut frame = Vec::with_capacity(4 + json.len());
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&json);
    stream
        .write_all(&frame)
        .await
        .map_err(SeedError::io("answer a peer"))?;
    // Under TLS, what was written may still sit in the session's buffer.
    stream
        .flush()
        .await
        .map_err(SeedError::io("answer a peer"))?;
    if answer.refused.is_some() {
        let _ = stream.shutdown().await;
    }
    Ok(())
}

async fn read_answer(stream: &mut PeerStream) -> Result<Answer, SeedError> {
    let len = stream
        .read_u32()
        .await
        .map_err(SeedError::io("read the peer's answer"))?;
    if len > MAX_ANSWER {
        return Err(SeedError::NoSource(format!("an answer of {len} bytes")));
    }
    let mut buf = vec![0; len as usize];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(SeedError::io("read the peer's answer"))?;
    serde_json::from_slice(&buf)
        .map_err(|e| SeedError::NoSource(format!("an unreadable answer: {e}")))
}
