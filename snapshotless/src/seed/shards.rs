//! What a backup's shard archives hold, read without influxd: how many bytes of TSM files each
//! brings, and whether it carries tombstones.
//!
//! Both matter because of two things influxd 1.6.7's portable restore does not say (found by
//! experiment). It exits before influxd has finished importing: the last shards are still
//! being written, disabled ("shard is disabled" to a query), and an import that fails there
//! is only logged. So a restore counts as done once each restored shard holds at least the
//! TSM bytes its archive brought and answers queries (`seed/restore.rs`). And it imports the
//! TSM files without their tombstones: points deleted (DELETE, DROP SERIES, DROP MEASUREMENT)
//! since influxd last compacted the shard come back on the restored side, where replaying
//! the log from A+1 would not delete them again. A copy with tombstones is refused until
//! influxd has compacted them away (at the latest once the shard has been cold for
//! `compact-full-write-cold-duration`, 4 h by default).

use std::io::Read;
use std::path::Path;

use super::SeedError;

/// One shard archive of a backup, as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardArchive {
    pub database: String,
    pub policy: String,
    /// The shard's id on the influxd the backup was taken from.
    pub shard_id: u64,
    pub file: String,
    /// The sum of the sizes of the TSM files in it.
    pub tsm_bytes: u64,
    /// Whether it holds tombstone files: deletes a restore would not apply.
    pub tombstones: bool,
}

/// Reads the entries of `file` (a gzipped tar) in `dir`: the sizes of its TSM files and
/// whether it holds tombstones. Blocking: it decompresses the whole archive.
pub(crate) fn read(dir: &Path, file: &str) -> Result<(u64, bool), SeedError> {
    let path = dir.join(file);
    let bad = |e: std::io::Error| SeedError::Backup(format!("{file}: {e}"));
    let f =
        std::fs::File::open(&path).map_err(SeedError::io(format!("open {}", path.display())))?;
    summarize(flate2::read::GzDecoder::new(f)).map_err(bad)
}

fn summarize(r: impl Read) -> std::io::Result<(u64, bool)> {
    let mut archive = tar::Archive::new(r);
    let (mut tsm_bytes, mut tombstones) = (0, false);
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("tsm") => tsm_bytes += entry.size(),
            Some("tombstone") => tombstones = true,
            _ => {}
        }
    }
    Ok((tsm_bytes, tombstones))
}

/// A time in nanoseconds as influxd's SHOW SHARDS shows it (Go's RFC 3339, UTC, whole
/// seconds): how a restored shard is found again, its id being new.
pub(crate) fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A gzipped tar of these files, as influxd's backup writes a shard archive.
    pub fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        {
            let mut b = tar::Builder::new(&mut gz);
            for (name, bytes) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, *bytes).unwrap();
            }
            b.finish().unwrap();
        }
        gz.finish().unwrap()
    }

    #[test]
    fn counts_tsm_bytes_and_sees_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 3] = [
            ("db/rp/1/000000001-000000001.tsm", &[0; 1000]),
            ("db/rp/1/000000002-000000001.tsm", &[0; 24]),
            ("db/rp/1/fields.idx", &[0; 7]),
        ];
        std::fs::write(dir.path().join("a.tar.gz"), archive(&files)).unwrap();
        assert_eq!(read(dir.path(), "a.tar.gz").unwrap(), (1024, false));
        let with: [(&str, &[u8]); 2] = [
            ("db/rp/1/1.tsm", &[0; 5]),
            ("db/rp/1/1.tombstone", &[0; 55]),
        ];
        std::fs::write(dir.path().join("b.tar.gz"), archive(&with)).unwrap();
        assert_eq!(read(dir.path(), "b.tar.gz").unwrap(), (5, true));
        std::fs::write(dir.path().join("c.tar.gz"), b"not gzip").unwrap();
        assert!(matches!(
            read(dir.path(), "c.tar.gz"),
            Err(SeedError::Backup(_))
        ));
    }

    #[test]
    fn times_read_as_show_shards_prints_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_599_436_800_000_000_000), "2020-09-07T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-259_200_000_000_000), "1969-12-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_143_999_000_000_000), "2025-11-26T07:59:59Z");
    }
}
