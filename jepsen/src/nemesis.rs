//! Faults: each kind can be asked for by name, several can be combined, and `all` mixes them
//! all. A schedule picks one fault of the chosen kinds per cycle: fault, wait, heal, wait.
//! Every fault is healed before the schedule ends, and each start and heal goes into the
//! history.
//!
//! The wipes replace disks: a node's influxd loses its data, or the whole node loses its data
//! and its Raft log. The gateway must rebuild influxd by itself; a node that lost its log is
//! replaced the way an operator would, under a new Raft id, and is still the same node to the
//! workload and the checker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::cluster::{Cluster, Disk, Proc, Wipe};
use crate::history::{Event, NemesisValue, Recorder, Type, F};
use crate::netns::{self, nodes, NODES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One random node cut off from the others.
    PartitionOne,
    /// A random minority / majority split.
    PartitionHalves,
    /// The node that says it leads, cut off.
    PartitionLeader,
    /// Jepsen's majorities ring: every node drops one other node's packets, in a cycle, so
    /// each node sees a majority and no two see the same one (the links are one-way).
    MajoritiesRing,
    /// One link cut both ways: the node in the middle sees both others, which do not see
    /// each other (rotates with the random choice of the middle node).
    Bridge,
    KillGateway,
    KillInfluxd,
    KillNode,
    PauseGateway,
    PauseInfluxd,
    PauseNode,
    /// Packets leaving some nodes are delayed (tc netem; a tbf slow link where the kernel
    /// has no netem).
    Delay,
    /// Packets of some nodes are dropped at random (tc netem; iptables' statistic match
    /// where the kernel has no netem).
    Loss,
    /// One node's influxd killed and its data, meta and wal deleted; started again empty at
    /// the heal, while its gateway runs on and must rebuild it.
    WipeInfluxd,
    /// One node's influxd and gateway killed and all their data deleted, the Raft log
    /// included; at the heal the old member is removed and the node added as a new one.
    WipeNode,
    /// One node's gateway restarted with its wall clock seconds to hours off (libfaketime;
    /// monotonic clocks untouched), jumped to another offset, often of the other sign,
    /// half-way through; restarted with the real clock at the heal.
    ClockSkew,
    /// The membership changed under the workload, in one of [`Reconfiguration`]'s ways: a
    /// node removed and added back as a fresh member, or replaced by a new one while the
    /// leader is cut off or killed, or while the member that handles the change dies.
    Membership,
    /// One node's gateway disk (its Raft log) or influxd disk filled to the last byte with a
    /// ballast file; the heal deletes it. influxd 1.6 goes on failing the writes that met
    /// the full disk until it is restarted, so a heal of its disk also restarts it, as an
    /// operator would; the gateway is never restarted.
    DiskFull,
}

/// The ways a `membership` fault changes the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reconfiguration {
    /// A running node (the leader as likely as any other) removed; at the heal, its disks
    /// are wiped and it is added back as a fresh member under a new id.
    RemoveAdd,
    /// The leader cut off, and, while it is, replaced by a new member: old id removed
    /// through the others, its disks wiped, the new id added. It catches up at the heal.
    ReplaceIsolatedLeader,
    /// The leader killed and replaced by a new member at once.
    ReplaceKilledLeader,
    /// A follower's removal asked of the leader, and the leader killed in the middle of
    /// the change, which may or may not commit; at the heal the leader is restarted and
    /// the follower added back as a fresh member.
    RemoveThroughDyingLeader,
}

const RECONFIGURATIONS: [Reconfiguration; 4] = [
    Reconfiguration::RemoveAdd,
    Reconfiguration::ReplaceIsolatedLeader,
    Reconfiguration::ReplaceKilledLeader,
    Reconfiguration::RemoveThroughDyingLeader,
];

/// Offsets a skewed clock is given, in seconds: under and over the idempotency window
/// (10 minutes by default), ahead and behind.
const SKEWS_S: [i64; 6] = [7, 90, 400, 1_500, 7_200, 30_000];

/// How long a heal waits for a replaced node to become a voter. A second node replaced
/// before the first is a voter would leave two voters, one of them dead: no majority could
/// ever remove it, and the cluster would be stuck for good.
const PROMOTION_LIMIT: Duration = Duration::from_secs(120);

pub const ALL: [Kind; 18] = [
    Kind::PartitionOne,
    Kind::PartitionHalves,
    Kind::PartitionLeader,
    Kind::MajoritiesRing,
    Kind::Bridge,
    Kind::KillGateway,
    Kind::KillInfluxd,
    Kind::KillNode,
    Kind::PauseGateway,
    Kind::PauseInfluxd,
    Kind::PauseNode,
    Kind::Delay,
    Kind::Loss,
    Kind::WipeInfluxd,
    Kind::WipeNode,
    Kind::ClockSkew,
    Kind::Membership,
    Kind::DiskFull,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PartitionOne => "partition-one",
            Kind::PartitionHalves => "partition-halves",
            Kind::PartitionLeader => "partition-leader",
            Kind::MajoritiesRing => "majorities-ring",
            Kind::Bridge => "bridge",
            Kind::KillGateway => "kill-gateway",
            Kind::KillInfluxd => "kill-influxd",
            Kind::KillNode => "kill-node",
            Kind::PauseGateway => "pause-gateway",
            Kind::PauseInfluxd => "pause-influxd",
            Kind::PauseNode => "pause-node",
            Kind::Delay => "delay",
            Kind::Loss => "loss",
            Kind::WipeInfluxd => "wipe-influxd",
            Kind::WipeNode => "wipe-node",
            Kind::ClockSkew => "clock-skew",
            Kind::Membership => "membership",
            Kind::DiskFull => "disk-full",
        }
    }

    /// Names, with a few aliases, separated by commas; `all` for every kind, `none` for none.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Kind>> {
        let mut kinds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let add: Vec<Kind> = match name {
                "all" => ALL.to_vec(),
                "none" => vec![],
                "partition" => vec![
                    Kind::PartitionOne,
                    Kind::PartitionHalves,
                    Kind::PartitionLeader,
                    Kind::MajoritiesRing,
                    Kind::Bridge,
                ],
                "partition-majority" => vec![Kind::PartitionHalves],
                "kill" => vec![Kind::KillGateway, Kind::KillInfluxd, Kind::KillNode],
                "pause" => vec![Kind::PauseGateway, Kind::PauseInfluxd, Kind::PauseNode],
                "packet" => vec![Kind::Delay, Kind::Loss],
                "wipe" => vec![Kind::WipeInfluxd, Kind::WipeNode],
                "clock" => vec![Kind::ClockSkew],
                "members" => vec![Kind::Membership],
                "disk" => vec![Kind::DiskFull],
                other => match ALL.iter().find(|k| k.name() == other) {
                    Some(k) => vec![*k],
                    None => bail!(
                        "unknown nemesis {other:?}; known: all, none, partition, kill, pause, \
                         packet, wipe, clock, members, disk, {}",
                        ALL.map(Kind::name).join(", ")
                    ),
                },
            };
            for k in add {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        Ok(kinds)
    }
}

/// A fault in force, and what healing it takes.
#[derive(Debug)]
enum Active {
    Partition,
    Stopped(Vec<(u8, Proc)>),
    Paused(Vec<(u8, Proc)>),
    Netem(Vec<u8>),
    Wiped(u8, Wipe),
    /// A gateway's clock is off; half-way through it jumps to the second offset.
    Skewed(u8, i64),
    /// A membership change under way: the heal lifts partitions, restarts what was
    /// killed, and, for `wipe`, wipes that node and adds it back as a fresh member; then
    /// waits until `replaced` is a voter again.
    Reconfigured {
        stopped: Vec<(u8, Proc)>,
        wipe: Option<u8>,
        replaced: u8,
    },
    /// A node's disk holds a ballast that fills it.
    Filled(u8, Disk),
}

pub struct Nemesis {
    pub cluster: Arc<Cluster>,
    pub recorder: Arc<Recorder>,
    pub kinds: Vec<Kind>,
    pub interval: Duration,
    pub time_limit: Duration,
    pub stop: Arc<AtomicBool>,
    /// What is in force now, for the progress line.
    pub current: Arc<Mutex<String>>,
}

impl Nemesis {
    /// The schedule; returns once the time limit is reached (or the run is stopped), with
    /// everything healed.
    pub fn run(&self, rng: &mut StdRng) {
        if self.kinds.is_empty() {
            return;
        }
        let start = Instant::now();
        // A fault is only started if its heal and a quiet period after it fit before the end:
        // every heal must be followed by writes, or its recovery cannot be measured.
        let cycle = self.interval + self.interval.min(Duration::from_secs(10));
        if !self.sleep(self.interval) {
            return;
        }
        while start.elapsed() + cycle <= self.time_limit && !self.stopped() {
            let kind = *self.kinds.choose(rng).expect("kinds is not empty");
            let (active, value) = match self.inflict(kind, rng) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("\nnemesis {}: {e:#}", kind.name());
                    let _ = netns::heal_partitions();
                    if !self.sleep(self.interval) {
                        break;
                    }
                    continue;
                }
            };
            let mut ev = Event::new("nemesis", Type::Info, F::Start, self.recorder.op_id());
            ev.nemesis = Some(value.clone());
            self.recorder.record(ev);
            *self.current.lock() = describe(&value);
            if let Active::Skewed(n, to) = active {
                self.sleep(self.interval / 2);
                if let Err(e) = self.cluster.jump_clock(n, to) {
                    eprintln!("\nnemesis: jumping n{n}'s clock failed: {e:#}");
                }
                self.sleep(self.interval - self.interval / 2);
            } else {
                self.sleep(self.interval);
            }
            let op = self.recorder.op_id();
            if let Err(e) = self.heal(active) {
                eprintln!("\nnemesis: healing {} failed: {e:#}", kind.name());
            }
            let mut ev = Event::new("nemesis", Type::Info, F::Stop, op);
            ev.nemesis = Some(value);
            self.recorder.record(ev);
            *self.current.lock() = String::new();
            if !self.sleep(self.interval) {
                break;
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps unless the run is stopped first; false if it was.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopped() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        true
    }

    fn inflict(&self, kind: Kind, rng: &mut StdRng) -> anyhow::Result<(Active, NemesisValue)> {
        let all: Vec<u8> = nodes().collect();
        let value = |nodes: Vec<u8>, detail: String| NemesisValue {
            kind: kind.name().to_owned(),
            nodes,
            detail,
            offsets_s: Vec::new(),
        };
        Ok(match kind {
            Kind::PartitionOne | Kind::PartitionLeader => {
                let (n, detail) = match kind {
                    Kind::PartitionLeader => match self.cluster.leader() {
                        Some(l) => (l, format!("leader n{l} isolated")),
                        None => {
                            let n = all[rng.gen_range(0..all.len())];
                            (n, format!("no leader known; n{n} isolated"))
                        }
                    },
                    _ => {
                        let n = all[rng.gen_range(0..all.len())];
                        (n, format!("n{n} isolated"))
                    }
                };
                isolate(&[n])?;
                (Active::Partition, value(vec![n], detail))
            }
            Kind::PartitionHalves => {
                let mut shuffled = all.clone();
                shuffled.shuffle(rng);
                let minority: Vec<u8> = shuffled[..usize::from(NODES / 2)].to_vec();
                isolate(&minority)?;
                let majority: Vec<u8> = shuffled[usize::from(NODES / 2)..].to_vec();
                let detail = format!("{} | {}", names(&minority), names(&majority));
                (Active::Partition, value(minority, detail))
            }
            Kind::MajoritiesRing => {
                // Node order[i] drops packets from order[i+1]: each node then hears from itself
                // and its other neighbour, a different majority for every node.
                let mut order = all.clone();
                order.shuffle(rng);
                let mut detail = Vec::new();
                for i in 0..order.len() {
                    let to = order[i];
                    let from = order[(i + 1) % order.len()];
                    netns::drop_from(to, from)?;
                    detail.push(format!("n{to} drops n{from}"));
                }
                (Active::Partition, value(order, detail.join(", ")))
            }
            Kind::Bridge => {
                let mut order = all.clone();
                order.shuffle(rng);
                let (a, b) = (order[1], order[2]);
                netns::drop_from(a, b)?;
                netns::drop_from(b, a)?;
                let detail = format!("n{a} x n{b}, n{} bridges", order[0]);
                (Active::Partition, value(vec![a, b], detail))
            }
            Kind::KillGateway | Kind::KillInfluxd | Kind::KillNode => {
                let n = all[rng.gen_range(0..all.len())];
                let procs = procs_of(kind);
                for &p in &procs {
                    self.cluster.kill(n, p);
                }
                let detail = format!("kill -9 {} of n{n}", proc_names(&procs));
                (
                    Active::Stopped(procs.iter().map(|&p| (n, p)).collect()),
                    value(vec![n], detail),
                )
            }
            Kind::PauseGateway | Kind::PauseInfluxd | Kind::PauseNode => {
                let n = all[rng.gen_range(0..all.len())];
                let procs = procs_of(kind);
                for &p in &procs {
                    self.cluster.pause(n, p)?;
                }
                let detail = format!("SIGSTOP {} of n{n}", proc_names(&procs));
                (
                    Active::Paused(procs.iter().map(|&p| (n, p)).collect()),
                    value(vec![n], detail),
                )
            }
            Kind::Delay | Kind::Loss => {
                let targets: Vec<u8> = if rng.gen_bool(0.5) {
                    all.clone()
                } else {
                    vec![all[rng.gen_range(0..all.len())]]
                };
                let detail = if kind == Kind::Delay {
                    // Without netem, a slow link: tbf queues up to 400 ms, then drops.
                    let spec: &[&str] = if netns::netem_available() {
                        &["netem", "delay", "200ms", "100ms", "distribution", "normal"]
                    } else {
                        &[
                            "tbf", "rate", "512kbit", "burst", "16kb", "latency", "400ms",
                        ]
                    };
                    for &n in &targets {
                        netns::qdisc(n, spec)?;
                    }
                    format!("{} on {}", spec.join(" "), names(&targets))
                } else if netns::netem_available() {
                    for &n in &targets {
                        netns::qdisc(n, &["netem", "loss", "25%"])?;
                    }
                    format!("netem loss 25% on {}", names(&targets))
                } else {
                    for &n in &targets {
                        netns::random_loss(n, 0.15)?;
                    }
                    format!("iptables random drop 15% in and out on {}", names(&targets))
                };
                (Active::Netem(targets.clone()), value(targets, detail))
            }
            Kind::WipeInfluxd | Kind::WipeNode => {
                let what = if kind == Kind::WipeInfluxd {
                    Wipe::Influxd
                } else {
                    Wipe::Node
                };
                if what == Wipe::Node && !self.cluster.all_voters() {
                    bail!(
                        "not every node is a voter (a replaced node has not caught up): \
                         no second node is replaced before it is"
                    );
                }
                let n = all[rng.gen_range(0..all.len())];
                let old = self.cluster.id(n);
                let id = self
                    .cluster
                    .wipe(n, what)
                    .with_context(|| format!("wiping n{n}"))?;
                let detail = match what {
                    Wipe::Influxd => {
                        format!("n{n}'s influxd killed, its data, meta and wal deleted")
                    }
                    Wipe::Node => format!(
                        "n{n}'s influxd and gateway killed, their data and the Raft log \
                         deleted; member {old} to be replaced by {id}"
                    ),
                };
                (Active::Wiped(n, what), value(vec![n], detail))
            }
            Kind::ClockSkew => {
                let n = all[rng.gen_range(0..all.len())];
                let mut offset = || {
                    let s = SKEWS_S[rng.gen_range(0..SKEWS_S.len())];
                    if rng.gen_bool(0.5) {
                        s
                    } else {
                        -s
                    }
                };
                let (from, mut to) = (offset(), offset());
                // A jump, always: of the other sign at least half the time.
                if to == from || (rng.gen_bool(0.5) && to.signum() == from.signum()) {
                    to = -to;
                }
                self.cluster
                    .skew_clock(n, from)
                    .with_context(|| format!("skewing n{n}'s clock"))?;
                let detail = format!(
                    "n{n}'s gateway restarted with its clock {from:+} s off, \
                     jumping to {to:+} s half-way"
                );
                let mut v = value(vec![n], detail);
                v.offsets_s = vec![from, to];
                (Active::Skewed(n, to), v)
            }
            Kind::Membership => {
                if !self.cluster.all_voters() {
                    bail!(
                        "not every node is a voter (a replaced node has not caught up): \
                         no membership change starts before it is"
                    );
                }
                let how = *RECONFIGURATIONS.choose(rng).expect("not empty");
                let (active, nodes, detail) = self.reconfigure(how, rng)?;
                (active, value(nodes, detail))
            }
            Kind::DiskFull => {
                let n = all[rng.gen_range(0..all.len())];
                let disk = if rng.gen_bool(0.5) {
                    Disk::Gateway
                } else {
                    Disk::Influxd
                };
                let bytes = self
                    .cluster
                    .fill_disk(n, disk)
                    .with_context(|| format!("filling n{n}'s {} disk", disk.name()))?;
                let detail = format!(
                    "n{n}'s {} disk filled: ballast of {bytes} bytes ({:.1} MiB)",
                    disk.name(),
                    bytes as f64 / f64::from(1 << 20)
                );
                (Active::Filled(n, disk), value(vec![n], detail))
            }
        })
    }

    /// Starts a membership change; the nodes it touches and what it did.
    fn reconfigure(
        &self,
        how: Reconfiguration,
        rng: &mut StdRng,
    ) -> anyhow::Result<(Active, Vec<u8>, String)> {
        let all: Vec<u8> = nodes().collect();
        let leader = self.cluster.leader();
        let needs_leader = || leader.context("no leader known to act on");
        Ok(match how {
            Reconfiguration::RemoveAdd => {
                let n = all[rng.gen_range(0..all.len())];
                let id = self.cluster.remove_member(n)?;
                let role = if leader == Some(n) {
                    ", the leader"
                } else {
                    ""
                };
                (
                    Active::Reconfigured {
                        stopped: Vec::new(),
                        wipe: Some(n),
                        replaced: n,
                    },
                    vec![n],
                    format!(
                        "remove-add: n{n} (id {id}{role}) removed while running; wiped and \
                         added back as a new member at the heal"
                    ),
                )
            }
            Reconfiguration::ReplaceIsolatedLeader => {
                let l = needs_leader()?;
                isolate(&[l])?;
                let done = self.replace_now(l);
                (
                    Active::Reconfigured {
                        stopped: Vec::new(),
                        wipe: None,
                        replaced: l,
                    },
                    vec![l],
                    format!("replace-isolated-leader: leader n{l} isolated; {done}"),
                )
            }
            Reconfiguration::ReplaceKilledLeader => {
                let l = needs_leader()?;
                let done = self.replace_now(l);
                (
                    Active::Reconfigured {
                        stopped: Vec::new(),
                        wipe: None,
                        replaced: l,
                    },
                    vec![l],
                    format!("replace-killed-leader: leader n{l} killed; {done}"),
                )
            }
            Reconfiguration::RemoveThroughDyingLeader => {
                let l = needs_leader()?;
                let others: Vec<u8> = all.iter().copied().filter(|&n| n != l).collect();
                let f = others[rng.gen_range(0..others.len())];
                let id = self.cluster.id(f);
                // A removal commits within about 5 ms here: later kills would only find it done.
                let after = Duration::from_micros(rng.gen_range(0..4_000));
                let answer = self.cluster.remove_member_through_dying(f, l, after);
                (
                    Active::Reconfigured {
                        stopped: vec![(l, Proc::Gateway), (l, Proc::Influxd)],
                        wipe: Some(f),
                        replaced: f,
                    },
                    vec![l, f],
                    format!(
                        "remove-through-dying-leader: leader n{l} asked to remove n{f} (id \
                         {id}) and killed {after:?} later ({answer}); n{l} restarted, n{f} \
                         wiped and added back as a new member at the heal"
                    ),
                )
            }
        })
    }

    /// Replaces node `n` by a new member now, the way an operator replaces a dead node:
    /// its disks wiped, its old id removed and a new one added through the others. What
    /// was done, for the detail; an unfinished replacement is finished by the heal.
    fn replace_now(&self, n: u8) -> String {
        let old = self.cluster.id(n);
        let new = match self.cluster.wipe(n, Wipe::Node) {
            Ok(id) => id,
            Err(e) => return format!("wiping n{n} failed: {e:#}"),
        };
        let replaced = self
            .cluster
            .restart(n, Proc::Influxd)
            .and_then(|_| self.cluster.replace_member(n, None));
        match replaced {
            Ok(()) => format!("meanwhile replaced: id {old} removed, disks wiped, id {new} added"),
            Err(e) => format!(
                "meanwhile replaced in part (id {old} to {new}), finished at the heal: {e:#}"
            ),
        }
    }

    fn heal(&self, active: Active) -> anyhow::Result<()> {
        let healed = match active {
            Active::Partition => netns::heal_partitions(),
            Active::Netem(targets) => {
                targets.into_iter().for_each(netns::clear_qdisc);
                netns::heal_partitions()
            }
            Active::Paused(procs) => {
                for (n, p) in procs {
                    self.cluster.resume(n, p);
                }
                Ok(())
            }
            Active::Stopped(procs) => {
                // influxd first: a gateway starting against a dead influxd only waits.
                procs
                    .into_iter()
                    .rev()
                    .try_for_each(|(n, p)| self.cluster.restart(n, p).map(drop))
            }
            Active::Skewed(..) => self.cluster.unskew_clocks().map(drop),
            Active::Filled(n, disk) => self.cluster.drain_disk(n, disk).and_then(|()| {
                // influxd 1.6 keeps the error of a write that met the full disk (its WAL and
                // series files) until it restarts; the gateway needs nothing.
                match disk {
                    Disk::Influxd => self.cluster.bounce(n, Proc::Influxd),
                    Disk::Gateway => Ok(()),
                }
            }),
            Active::Reconfigured {
                stopped,
                wipe,
                replaced,
            } => netns::heal_partitions()
                .and_then(|()| {
                    stopped
                        .into_iter()
                        .rev()
                        .try_for_each(|(n, p)| self.cluster.restart(n, p).map(drop))
                })
                .and_then(|()| match wipe {
                    Some(n) => self
                        .cluster
                        .wipe(n, Wipe::Node)
                        .and_then(|_| self.cluster.restart(n, Proc::Influxd).map(drop)),
                    None => Ok(()),
                })
                .and_then(|()| self.cluster.replace_member(replaced, Some(PROMOTION_LIMIT))),
            Active::Wiped(n, what) => self.cluster.restart(n, Proc::Influxd).and_then(|_| {
                if what == Wipe::Node {
                    self.cluster.replace_member(n, Some(PROMOTION_LIMIT))
                } else {
                    Ok(())
                }
            }),
        };
        // Anything that died on its own meanwhile comes back with the heal, and a
        // replacement an earlier heal left unfinished is finished, even if this heal failed.
        let revived = self.cluster.revive_all().map(drop);
        let replaced = self.cluster.complete_replacements();
        healed.and(revived).and(replaced)
    }
}

/// Every node in `group` drops packets from every node outside it, and the reverse.
fn isolate(group: &[u8]) -> anyhow::Result<()> {
    for a in nodes() {
        for b in nodes() {
            if group.contains(&a) != group.contains(&b) {
                netns::drop_from(a, b)?;
            }
        }
    }
    Ok(())
}

/// Heals every kind of fault, whatever is in force: the end of a run, or after a failure.
pub fn heal_everything(cluster: &Cluster) -> anyhow::Result<Vec<(u8, Proc)>> {
    netns::heal_partitions()?;
    for n in nodes() {
        for disk in [Disk::Gateway, Disk::Influxd] {
            cluster.drain_disk(n, disk)?;
        }
    }
    nodes().for_each(netns::clear_qdisc);
    cluster.unskew_clocks()?;
    let revived = cluster.revive_all()?;
    // Not fatal here: a membership that stays incomplete keeps the cluster from settling,
    // which makes the run invalid, with the membership in the reason.
    if let Err(e) = cluster.complete_replacements() {
        eprintln!("finishing a node's replacement failed: {e:#}");
    }
    Ok(revived)
}

fn procs_of(kind: Kind) -> Vec<Proc> {
    match kind {
        Kind::KillGateway | Kind::PauseGateway => vec![Proc::Gateway],
        Kind::KillInfluxd | Kind::PauseInfluxd => vec![Proc::Influxd],
        _ => vec![Proc::Gateway, Proc::Influxd],
    }
}

fn proc_names(procs: &[Proc]) -> String {
    procs.iter().map(|p| p.name()).collect::<Vec<_>>().join("+")
}

fn names(nodes: &[u8]) -> String {
    nodes
        .iter()
        .map(|n| format!("n{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn describe(v: &NemesisValue) -> String {
    format!("{} ({})", v.kind, v.detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_combine() {
        assert_eq!(Kind::parse_list("all").unwrap().len(), ALL.len());
        assert_eq!(
            Kind::parse_list("partition-one,kill-gateway").unwrap(),
            vec![Kind::PartitionOne, Kind::KillGateway]
        );
        assert_eq!(Kind::parse_list("kill,kill-node").unwrap().len(), 3);
        assert_eq!(
            Kind::parse_list("wipe").unwrap(),
            vec![Kind::WipeInfluxd, Kind::WipeNode]
        );
        assert!(Kind::parse_list("none").unwrap().is_empty());
        assert_eq!(Kind::parse_list("disk").unwrap(), vec![Kind::DiskFull]);
        assert!(Kind::parse_list("all").unwrap().contains(&Kind::DiskFull));
        assert!(Kind::parse_list("partition-everything").is_err());
        for k in ALL {
            assert_eq!(Kind::parse_list(k.name()).unwrap(), vec![k]);
        }
    }
}
