//! Append and read throughput of the hybrid log, next to TiKV's raft-engine doing the same
//! synced appends and to a plain file with `fdatasync` (what the disk allows), all in one run.
//!
//!   cargo run --release -p hybrid-log --example log-bench -- --quick
//!
//! One JSON object per line on stdout; progress on stderr.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use hybrid_log::{HybridLog, LogBatch};
use protobuf::well_known_types::BytesValue;
use raft::prelude::{Entry, HardState};
use raft::{GetEntriesContext, Storage};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Synced append and read throughput: hybrid-log, raft-engine, plain file")]
struct Args {
    /// A short run (well under a minute).
    #[arg(long)]
    quick: bool,
    /// Where the logs are written; must be on the disk under test, not tmpfs.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Only this entry size (bytes), e.g. to profile one case.
    #[arg(long)]
    size: Option<usize>,
    /// Only this many entries per sync.
    #[arg(long)]
    batch: Option<usize>,
    /// Only this store (hybrid-log, raft-engine, file-fdatasync); skips the reads.
    #[arg(long)]
    store: Option<String>,
    /// Seconds per case [default: 2, or 0.3 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
}

const SIZES: [usize; 3] = [256, 4 << 10, 64 << 10];
const BATCHES: [usize; 3] = [1, 16, 256];

/// Line protocol of about `size` bytes: what the gateway's entries carry, as compressible as
/// the real thing.
fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut s = String::with_capacity(size + 128);
    let mut t = seed;
    while s.len() < size {
        s += &format!(
            "cpu,host=server{:04},region=eu-west-{} usage_user={}.{},usage_system={}.{},usage_idle={}i {}\n",
            t % 1000,
            t % 3,
            t % 97,
            t % 10,
            t % 13,
            t % 7,
            t % 100,
            1_700_000_000_000_000_000u64 + t * 1_000_000_000
        );
        t += 1;
    }
    s.truncate(size);
    s.into_bytes()
}

struct Measured {
    entries: u64,
    bytes: u64,
    elapsed: Duration,
    sync_us: Vec<u64>,
}

impl Measured {
    fn emit(mut self, store: &str, entry_bytes: usize, batch: usize) -> f64 {
        self.sync_us.sort_unstable();
        let p99 = self.sync_us[(self.sync_us.len() - 1) * 99 / 100];
        let secs = self.elapsed.as_secs_f64();
        let rate = self.entries as f64 / secs;
        println!(
            "{}",
            json!({
                "store": store,
                "entry_bytes": entry_bytes,
                "batch": batch,
                "entries_per_s": rate.round(),
                "mb_per_s": (self.bytes as f64 / secs / 1e6 * 10.0).round() / 10.0,
                "p99_sync_us": p99,
            })
        );
        rate
    }
}

/// One append case: entries of about `size` bytes (cycling through `data`), `batch` of them
/// per synced write, for `time`.
struct Case<'a> {
    time: Duration,
    size: usize,
    batch: usize,
    data: &'a [Vec<u8>],
}

impl Case<'_> {
    /// Runs `append(first_index, count)` (one synced write of `count` entries) for `time`.
    fn measure(&self, mut append: impl FnMut(u64, usize)) -> Measured {
        let mut next = 1u64;
        let mut sync_us = Vec::new();
        let start = Instant::now();
        while start.elapsed() < self.time || sync_us.len() < 10 {
            let t = Instant::now();
            append(next, self.batch);
            sync_us.push(t.elapsed().as_micros() as u64);
            next += self.batch as u64;
        }
        let entries = next - 1;
        Measured {
            entries,
            bytes: entries * self.size as u64,
            elapsed: start.elapsed(),
            sync_us,
        }
    }
}

fn entries(first: u64, count: usize, data: &[Vec<u8>]) -> Vec<Entry> {
    (first..first + count as u64)
        .map(|index| Entry {
            index,
            term: 1,
            data: data[index as usize % data.len()].clone(),
            ..Default::default()
        })
        .collect()
}

fn hybrid(dir: &Path, case: &Case) -> Measured {
    let log = HybridLog::open(dir, 64 << 20).expect("open hybrid log");
    case.measure(|first, count| {
        let mut b = LogBatch::new();
        b.append(entries(first, count, case.data))
            .set_hard_state(HardState {
                term: 1,
                vote: 1,
                commit: first,
            });
        log.commit(b, true).expect("append");
    })
}

/// raft-engine's entry type: a protobuf-2 message; the index travels in the first 8 bytes.
struct RaftEngineEntry;

impl raft_engine::MessageExt for RaftEngineEntry {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        u64::from_be_bytes(e.value[..8].try_into().expect("8-byte index prefix"))
    }
}

fn raft_engine_open(dir: &Path) -> raft_engine::Engine {
    let cfg = raft_engine::Config {
        dir: dir.display().to_string(),
        ..Default::default()
    };
    raft_engine::Engine::open(cfg).expect("open raft-engine")
}

fn raft_engine_entries(first: u64, count: usize, data: &[Vec<u8>]) -> Vec<BytesValue> {
    (first..first + count as u64)
        .map(|index| {
            let mut value = index.to_be_bytes().to_vec();
            value.extend_from_slice(&data[index as usize % data.len()]);
            let mut e = BytesValue::new();
            e.value = value;
            e
        })
        .collect()
}

fn raft_engine(dir: &Path, case: &Case) -> Measured {
    let engine = raft_engine_open(dir);
    case.measure(|first, count| {
        let mut b = raft_engine::LogBatch::default();
        b.add_entries::<RaftEngineEntry>(1, &raft_engine_entries(first, count, case.data))
            .expect("add entries");
        // The HardState, as a raft Ready carries it.
        b.put(1, b"hard_state".to_vec(), first.to_be_bytes().to_vec())
            .expect("put");
        engine.write(&mut b, true).expect("write");
    })
}

fn file_fdatasync(dir: &Path, case: &Case) -> Measured {
    let mut f: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .expect("open file");
    let mut buf = Vec::with_capacity(case.batch * (case.size + 16));
    case.measure(|first, count| {
        buf.clear();
        for index in first..first + count as u64 {
            let d = &case.data[index as usize % case.data.len()];
            buf.extend_from_slice(&index.to_be_bytes());
            buf.extend_from_slice(&(d.len() as u32).to_be_bytes());
            buf.extend_from_slice(d);
        }
        f.write_all(&buf).expect("write");
        f.sync_data().expect("fdatasync");
    })
}

/// Read throughput of old entries (below the memory window, from RocksDB) and recent ones.
fn reads(dir: &Path, quick: bool) {
    for size in SIZES {
        let data: Vec<Vec<u8>> = (0..64).map(|i| payload(size, i * 7919)).collect();
        let total: u64 = if quick { 20_000 } else { 100_000 }.min((512 << 20) / size as u64);
        // A memory tier holding a quarter of the log: most of it must be read from disk.
        let budget = (total as usize * size / 4).max(1 << 20);
        let path = dir.join(format!("reads-{size}"));
        let log = HybridLog::open(&path, budget).expect("open");
        for first in (1..=total).step_by(256) {
            let mut b = LogBatch::new();
            b.append(entries(first, 256.min((total - first + 1) as usize), &data));
            log.commit(b, false).expect("append");
        }
        let in_memory = log.stats().memory_entries;
        for (tier, lo, hi) in [
            ("disk", 1, total - in_memory),
            ("memory", total - in_memory + 1, total),
        ] {
            let start = Instant::now();
            let mut read = 0u64;
            let mut at = lo;
            while start.elapsed() < Duration::from_millis(if quick { 300 } else { 2000 }) {
                let end = (at + 64).min(hi + 1);
                read += log
                    .entries(at, end, None, GetEntriesContext::empty(false))
                    .expect("read")
                    .len() as u64;
                at = if end > hi { lo } else { end };
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({
                    "store": "hybrid-log", "read": tier, "entry_bytes": size,
                    "entries_per_s": (read as f64 / secs).round(),
                    "mb_per_s": (read as f64 * size as f64 / secs / 1e6 * 10.0).round() / 10.0,
                })
            );
        }
        drop(log);
        let _ = std::fs::remove_dir_all(&path);
    }
}

fn main() {
    let args = Args::parse();
    let time = Duration::from_secs_f64(args.seconds.unwrap_or(if args.quick { 0.3 } else { 2.0 }));
    let root = tempfile::Builder::new()
        .prefix("log-bench-")
        .tempdir_in(&args.dir)
        .unwrap_or_else(|e| panic!("cannot create a directory in {}: {e}", args.dir.display()));
    let mut ratios = Vec::new();
    for size in SIZES
        .into_iter()
        .filter(|s| args.size.is_none_or(|x| x == *s))
    {
        let data: Vec<Vec<u8>> = (0..64).map(|i| payload(size, i * 7919)).collect();
        for batch in BATCHES
            .into_iter()
            .filter(|b| args.batch.is_none_or(|x| x == *b))
        {
            eprintln!("appends: {size} B entries, {batch} per sync...");
            let rate = |store: &str, run: &dyn Fn(&Path) -> Measured| {
                if args.store.as_deref().is_some_and(|s| s != store) {
                    return f64::NAN;
                }
                let dir = root.path().join(format!("{store}-{size}-{batch}"));
                std::fs::create_dir_all(&dir).expect("create store dir");
                let r = run(&dir).emit(store, size, batch);
                let _ = std::fs::remove_dir_all(&dir);
                r
            };
            let case = Case {
                time,
                size,
                batch,
                data: &data,
            };
            let h = rate("hybrid-log", &|d| hybrid(d, &case));
            let r = rate("raft-engine", &|d| raft_engine(d, &case));
            let f = rate("file-fdatasync", &|d| file_fdatasync(d, &case));
            ratios.push((size, batch, h / r, h / f));
        }
    }
    if args.store.is_none() {
        eprintln!("reads...");
        reads(root.path(), args.quick);
    }
    for (size, batch, vs_engine, vs_file) in ratios.into_iter().filter(|r| r.2.is_finite()) {
        for (name, value) in [
            ("hybrid-log/raft-engine", vs_engine),
            ("hybrid-log/file-fdatasync", vs_file),
        ] {
            println!(
                "{}",
                json!({"ratio": name, "entry_bytes": size, "batch": batch, "value": (value * 100.0).round() / 100.0})
            );
        }
    }
}
