//! The `max_size` rule of `raft::Storage::entries`, shared by both tiers so that a range read
//! partly from disk and partly from memory is cut at exactly the same entry as raft-rs's own
//! `MemStorage` (and its `limit_size`) would cut it.

/// Admits entries while their total encoded size stays within the limit; the first entry is
/// always admitted, however large, so that replication can always make progress.
#[derive(Debug)]
pub struct SizeLimit {
    max: Option<u64>,
    used: u64,
    admitted: usize,
    full: bool,
}

impl SizeLimit {
    pub fn new(max: Option<u64>) -> Self {
        SizeLimit {
            max: max.filter(|&m| m != raft::NO_LIMIT),
            used: 0,
            admitted: 0,
            full: false,
        }
    }

    /// Whether an entry of `size` encoded bytes fits; once one does not, none after it does.
    pub fn admit(&mut self, size: u64) -> bool {
        if self.full {
            return false;
        }
        self.used = self.used.saturating_add(size);
        let fits = match self.max {
            Some(max) => self.admitted == 0 || self.used <= max,
            None => true,
        };
        if fits {
            self.admitted += 1;
        } else {
            self.full = true;
        }
        fits
    }

    pub fn is_full(&self) -> bool {
        self.full
    }
}

#[cfg(test)]
mod tests {
    use super::SizeLimit;

    #[test]
    fn first_entry_always_admitted() {
        let mut l = SizeLimit::new(Some(10));
        assert!(l.admit(100));
        assert!(!l.admit(1));
        assert!(l.is_full());
    }

    #[test]
    fn cumulative_size_up_to_max() {
        let mut l = SizeLimit::new(Some(10));
        assert!(l.admit(4));
        assert!(l.admit(6));
        assert!(!l.admit(1));
    }

    #[test]
    fn no_limit() {
        let mut l = SizeLimit::new(Some(raft::NO_LIMIT));
        for _ in 0..1000 {
            assert!(l.admit(u64::MAX / 4));
        }
    }
}
