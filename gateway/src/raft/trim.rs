//! The leader's decision of how far the log may be trimmed: the rules of `log_retention` and
//! `log_max_size`. The decision goes through the log as a [`snapshotless::Trim`] entry, so
//! every node trims at the same point of it (node.rs).
//!
//! Two rules, the larger result wins:
//! - retention: an entry goes once every member's influxd holds it (its durable marker, as
//!   it last reported it; a member that never reported holds nothing) and it was committed
//!   longer than `log_retention` ago;
//! - size: while the log's directory is over `log_max_size`, the oldest entries a quorum of
//!   voters holds go too, enough to come back under three quarters of the cap. A member still
//!   behind that point is seeded from a peer's influxd when it needs them.
//!
//! How old an entry is comes from samples of (commit index, time) this node takes as the
//! commit index moves. A node that just started has none for older entries and takes them
//! as committed at its start: it keeps them longer than needed, never shorter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most this many entries go in one trim: its deletes are one synced write on the Raft
/// thread, which must stay short.
const MAX_STEP: u64 = 50_000;
/// Samples kept over the retention window, at most.
const MAX_SAMPLES: u32 = 1024;

/// The settings the decision follows.
#[derive(Debug, Clone, Copy)]
pub struct TrimPolicy {
    /// `None`: the retention rule never removes anything.
    pub retention: Option<Duration>,
    /// `None`: no cap.
    pub max_size: Option<u64>,
}

/// When entries were committed, roughly: (commit index, when it was seen).
pub struct Samples {
    samples: VecDeque<(u64, Instant)>,
    every: Duration,
}

impl Samples {
    /// `start` is the commit index at start: everything up to it counts as committed now.
    pub fn new(policy: &TrimPolicy, start: u64, now: Instant) -> Samples {
        let every = policy
            .retention
            .map_or(Duration::from_secs(1), |r| r / MAX_SAMPLES)
            .max(Duration::from_millis(100));
        Samples {
            samples: VecDeque::from([(start, now)]),
            every,
        }
    }

    /// The commit index is `commit` at `now`.
    pub fn record(&mut self, commit: u64, now: Instant) {
        match self.samples.back() {
            Some(&(i, at)) if i >= commit || now.duration_since(at) < self.every => {}
            _ => self.samples.push_back((commit, now)),
        }
    }

    /// The last index committed at or before `now - age`, 0 if none is known to be that old.
    /// Samples older than the one returned are dropped: they will never be needed again.
    fn older_than(&mut self, age: Duration, now: Instant) -> u64 {
        let Some(cutoff) = now.checked_sub(age) else {
            return 0;
        };
        let old = self
            .samples
            .iter()
            .take_while(|(_, at)| *at <= cutoff)
            .count();
        if old == 0 {
            return 0;
        }
        self.samples.drain(..old - 1);
        self.samples[0].0
    }
}

/// One member, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub voter: bool,
    /// Its durable marker as last reported; `None` if it never reported.
    pub applied: Option<u64>,
}

/// What the log looks like on the leader.
#[derive(Debug, Clone, Copy)]
pub struct LogShape {
    /// The log holds `trimmed + 1 ..= last`.
    pub trimmed: u64,
    pub last: u64,
    pub commit: u64,
    /// The directory's bytes on disk, and the live bytes of its entries.
    pub dir_bytes: u64,
    pub entries_bytes: u64,
    /// No compaction after an earlier trim is pending: `dir_bytes` reflects every trim.
    pub settled: bool,
}

/// Why a trim was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Retention,
    Size,
}

/// The index to trim through, if the log should be trimmed further than `shape.trimmed`.
pub fn decide(
    policy: &TrimPolicy,
    samples: &mut Samples,
    members: &[Member],
    shape: &LogShape,
    now: Instant,
) -> Option<(u64, Reason)> {
    if members.is_empty() {
        return None;
    }
    let everyone = members
        .iter()
        .map(|m| m.applied.unwrap_or(0))
        .min()
        .unwrap_or(0);
    let old = match policy.retention {
        None => 0,
        Some(age) => samples.older_than(age, now),
    };
    let by_retention = everyone.min(old).min(shape.commit);

    let by_size = match policy.max_size {
        Some(cap) if shape.settled && shape.dir_bytes > cap && shape.last > shape.trimmed => {
            let mut voters: Vec<u64> = members
                .iter()
                .filter(|m| m.voter)
                .map(|m| m.applied.unwrap_or(0))
                .collect();
            voters.sort_unstable_by(|a, b| b.cmp(a));
            let quorum = voters.get(voters.len() / 2).copied().unwrap_or(0);
            let per_entry = (shape.entries_bytes / (shape.last - shape.trimmed)).max(1);
            let excess = shape.dir_bytes - cap / 4 * 3;
            let enough = shape.trimmed + excess / per_entry + 1;
            quorum.min(enough).min(shape.commit)
        }
        _ => 0,
    };

    let (target, reason) = if by_size > by_retention {
        (by_size, Reason::Size)
    } else {
        (by_retention, Reason::Retention)
    };
    let target = target.min(shape.trimmed + MAX_STEP);
    (target > shape.trimmed).then_some((target, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn shape(trimmed: u64, last: u64) -> LogShape {
        LogShape {
            trimmed,
            last,
            commit: last,
            dir_bytes: 1 << 20,
            entries_bytes: 1 << 20,
            settled: true,
        }
    }

    fn voters(applied: &[Option<u64>]) -> Vec<Member> {
        applied
            .iter()
            .map(|&applied| Member {
                voter: true,
                applied,
            })
            .collect()
    }

    #[test]
    fn retention_waits_for_every_member_and_for_age() {
        let policy = TrimPolicy {
            retention: Some(HOUR),
            max_size: None,
        };
        let t0 = Instant::now();
        let mut s = Samples::new(&policy, 10, t0);
        s.record(100, t0 + Duration::from_secs(60));
        s.record(200, t0 + 2 * HOUR);
        let m = voters(&[Some(150), Some(300), Some(300)]);
        // Nothing is an hour old yet.
        assert_eq!(
            decide(&policy, &mut s, &m, &shape(0, 300), t0 + HOUR / 2),
            None
        );
        // Index 10 was committed at t0, 100 a minute later.
        let d = decide(
            &policy,
            &mut s,
            &m,
            &shape(0, 300),
            t0 + HOUR + Duration::from_secs(61),
        );
        assert_eq!(d, Some((100, Reason::Retention)));
        // Old enough, but a member holds only up to 150.
        let d = decide(&policy, &mut s, &m, &shape(100, 300), t0 + 3 * HOUR);
        assert_eq!(d, Some((150, Reason::Retention)));
        // A member that never reported holds nothing.
        let m = voters(&[None, Some(300), Some(300)]);
        assert_eq!(
            decide(&policy, &mut s, &m, &shape(0, 300), t0 + 3 * HOUR),
            None
        );
    }

    #[test]
    fn forever_keeps_everything_within_the_cap() {
        let policy = TrimPolicy {
            retention: None,
            max_size: None,
        };
        let t0 = Instant::now();
        let mut s = Samples::new(&policy, 100, t0);
        let m = voters(&[Some(100), Some(100), Some(100)]);
        assert_eq!(
            decide(&policy, &mut s, &m, &shape(0, 100), t0 + 1000 * HOUR),
            None
        );
    }

    #[test]
    fn size_trims_what_a_quorum_holds_down_to_three_quarters() {
        let policy = TrimPolicy {
            retention: None,
            max_size: Some(1000),
        };
        let t0 = Instant::now();
        let mut s = Samples::new(&policy, 0, t0);
        // 100 entries of 20 bytes; 2000 bytes on disk, 1250 over three quarters of the cap.
        let mut log = shape(0, 100);
        log.dir_bytes = 2000;
        log.entries_bytes = 2000;
        let m = voters(&[Some(100), Some(90), Some(5)]);
        assert_eq!(
            decide(&policy, &mut s, &m, &log, t0),
            Some((63, Reason::Size))
        );
        // Only what a quorum holds: the second highest of three.
        let m = voters(&[Some(100), Some(40), Some(5)]);
        assert_eq!(
            decide(&policy, &mut s, &m, &log, t0),
            Some((40, Reason::Size))
        );
        // Learners do not count towards the quorum.
        let mut m = voters(&[Some(100), Some(40), Some(5)]);
        m.push(Member {
            voter: false,
            applied: Some(100),
        });
        assert_eq!(
            decide(&policy, &mut s, &m, &log, t0),
            Some((40, Reason::Size))
        );
        // Not while an earlier trim's space has not come back.
        log.settled = false;
        assert_eq!(decide(&policy, &mut s, &m, &log, t0), None);
        // Under the cap: nothing.
        log.settled = true;
        log.dir_bytes = 900;
        assert_eq!(decide(&policy, &mut s, &m, &log, t0), None);
    }

    #[test]
    fn never_beyond_the_commit_index_and_in_bounded_steps() {
        let policy = TrimPolicy {
            retention: Some(Duration::ZERO),
            max_size: None,
        };
        let t0 = Instant::now();
        let mut s = Samples::new(&policy, 0, t0);
        s.record(1_000_000, t0 + Duration::from_millis(200));
        let m = voters(&[Some(1_000_000); 3]);
        let mut log = shape(0, 1_000_000);
        log.commit = 900_000;
        assert_eq!(
            decide(&policy, &mut s, &m, &log, t0 + Duration::from_secs(1)),
            Some((MAX_STEP, Reason::Retention))
        );
        log.trimmed = 800_000;
        assert_eq!(
            decide(&policy, &mut s, &m, &log, t0 + Duration::from_secs(1)),
            Some((900_000, Reason::Retention))
        );
    }

    #[test]
    fn samples_stay_few() {
        let policy = TrimPolicy {
            retention: Some(HOUR),
            max_size: None,
        };
        let t0 = Instant::now();
        let mut s = Samples::new(&policy, 0, t0);
        for i in 1..100_000u64 {
            s.record(i, t0 + Duration::from_millis(i * 10));
        }
        // 1,000 s at one sample per 3.5 s.
        assert!(s.samples.len() < 300, "{}", s.samples.len());
    }
}
