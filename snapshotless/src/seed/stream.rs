//! A [`Copy`] as one byte stream, over any `AsyncWrite` and from any `AsyncRead` (the peer
//! network in the gateway, an in-memory pipe in tests), with progress on a watch channel.
//!
//! The format, integers big-endian:
//!
//! ```text
//! header   "SLSEED" | version u16 | index u64 | term u64 | total u64 | files u32 | crc u32
//! file     name_len u16 | name | size u64 | size bytes of content | crc u32
//! trailer  "SLEND." | files u32 | total u64 | crc u32
//! ```
//!
//! The header's crc covers the header, a file's covers its record, the trailer's covers the
//! whole stream before it. The header says how many files and bytes follow, so a short stream
//! is told from a complete one wherever it was cut; the per-file crc stops a corrupt transfer
//! at the file it hit. A name is one plain path component (a portable backup is a flat
//! directory), so nothing received can land outside the directory it is written to.
//!
//! The receiver writes into a fresh directory that is removed on any error: only a stream that
//! ended with a good trailer, and holds a backup that [`Copy`] accepts, comes back as a `Copy`.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::copy::{new_dir, Copy, CopyFile};
use super::{Progress, SeedError};
use crate::marker::Marker;

const MAGIC: &[u8; 6] = b"SLSEED";
const END: &[u8; 6] = b"SLEND.";
const VERSION: u16 = 1;
const MAX_NAME: usize = 255;
const CHUNK: usize = 256 * 1024;

/// What is wrong with a stream (as opposed to the disk it is written to).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The transport failed.
    #[error("seed stream transport: {0}")]
    Io(#[source] std::io::Error),
    /// The stream ended before its trailer.
    #[error("the seed stream ended early, in {0}")]
    Truncated(&'static str),
    #[error("not a seed stream")]
    NotASeed,
    #[error("seed stream format version {0}; this build reads version {VERSION}")]
    Version(u16),
    /// A checksum or a count does not match.
    #[error("corrupt seed stream: {0}")]
    Corrupt(String),
    /// A file name that is not one plain path component (`..`, absolute, with a separator).
    #[error("refused file name {0:?} in a seed stream")]
    UnsafeName(String),
}

/// Writes `copy` to `w` as one stream and flushes it (the caller closes the transport).
/// `progress` counts file content sent.
pub async fn send<W: AsyncWrite + Unpin>(
    copy: &Copy,
    w: &mut W,
    progress: &watch::Sender<Progress>,
) -> Result<(), SeedError> {
    let total = copy.total_bytes();
    let mut framer = Framer {
        w,
        sums: Sums::default(),
    };
    let count = u32::try_from(copy.files().len())
        .map_err(|_| SeedError::Backup("more than 2^32 files".into()))?;
    framer.header(copy.marker(), total, count).await?;
    let mut done = 0;
    progress.send_replace(Progress { done, total });
    for f in copy.files() {
        let path = copy.dir().join(&f.name);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(SeedError::io(format!("open {}", path.display())))?;
        framer
            .file(&f.name, f.size, &mut file, |n| {
                done += n;
                progress.send_replace(Progress { done, total });
            })
            .await?;
    }
    framer.trailer(count, total).await
}

/// Reads one stream from `r` into a new directory under `work_dir`. `progress` counts file
/// content received, of the total the header announced.
pub async fn receive<R: AsyncRead + Unpin>(
    r: &mut R,
    work_dir: &Path,
    progress: &watch::Sender<Progress>,
) -> Result<Copy, SeedError> {
    let mut stream = Unframer {
        r,
        sums: Sums::default(),
    };
    let (marker, total, count) = stream.header().await?;
    // Dropped, and so removed, on every early return below.
    let dir = new_dir(work_dir, "seed-incoming-")?;
    let mut done = 0;
    progress.send_replace(Progress { done, total });
    let mut received = Vec::new();
    for _ in 0..count {
        let f = stream
            .file(dir.path(), total - done, |n| {
                done += n;
                progress.send_replace(Progress { done, total });
            })
            .await?;
        received.push(f);
    }
    if done != total {
        return Err(corrupt(format!("{done} bytes received, {total} announced")));
    }
    stream.trailer(count, total).await?;
    let copy = Copy::complete(dir, marker).await?;
    received.sort_by(|a, b| a.name.cmp(&b.name));
    if copy.files() != received {
        return Err(corrupt(
            "the directory holds other files than were sent".into(),
        ));
    }
    Ok(copy)
}

fn corrupt(what: String) -> SeedError {
    SeedError::Stream(StreamError::Corrupt(what))
}

/// A name that can only mean a file directly inside the receiving directory.
fn check_name(name: &str) -> Result<(), StreamError> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(())
    } else {
        Err(StreamError::UnsafeName(name.to_owned()))
    }
}

/// The two checksums both halves keep: over the whole stream, and over the current record.
#[derive(Default)]
struct Sums {
    stream: crc32fast::Hasher,
    record: crc32fast::Hasher,
}

impl Sums {
    fn update(&mut self, bytes: &[u8]) {
        self.stream.update(bytes);
        self.record.update(bytes);
    }

    /// The current record's checksum; the next record starts afresh.
    fn end_record(&mut self) -> u32 {
        std::mem::take(&mut self.record).finalize()
    }

    fn stream(&self) -> u32 {
        self.stream.clone().finalize()
    }
}

/// The writing half: every byte goes through `put`, which keeps the checksums.
struct Framer<'a, W> {
    w: &'a mut W,
    sums: Sums,
}

impl<W: AsyncWrite + Unpin> Framer<'_, W> {
    async fn put(&mut self, bytes: &[u8]) -> Result<(), SeedError> {
        self.sums.update(bytes);
        self.w
            .write_all(bytes)
            .await
            .map_err(|e| SeedError::Stream(StreamError::Io(e)))
    }

    /// Ends a record with the checksum of everything put since the last one.
    async fn seal(&mut self) -> Result<(), SeedError> {
        let crc = self.sums.end_record();
        self.put(&crc.to_be_bytes()).await?;
        self.sums.record = crc32fast::Hasher::new();
        Ok(())
    }

    async fn header(&mut self, m: Marker, total: u64, count: u32) -> Result<(), SeedError> {
        self.put(MAGIC).await?;
        self.put(&VERSION.to_be_bytes()).await?;
        self.put(&m.index.to_be_bytes()).await?;
        self.put(&m.term.to_be_bytes()).await?;
        self.put(&total.to_be_bytes()).await?;
        self.put(&count.to_be_bytes()).await?;
        self.seal().await
    }

    /// One file record: `size` bytes read from `content`.
    async fn file<R: AsyncRead + Unpin>(
        &mut self,
        name: &str,
        size: u64,
        content: &mut R,
        mut sent: impl FnMut(u64),
    ) -> Result<(), SeedError> {
        let len = u16::try_from(name.len())
            .ok()
            .filter(|&n| usize::from(n) <= MAX_NAME)
            .ok_or_else(|| SeedError::Backup(format!("file name too long: {name}")))?;
        self.put(&len.to_be_bytes()).await?;
        self.put(name.as_bytes()).await?;
        self.put(&size.to_be_bytes()).await?;
        let mut buf = vec![0; CHUNK];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = content
                .read(&mut buf[..want])
                .await
                .map_err(SeedError::io(format!("read {name}")))?;
            if n == 0 {
                return Err(SeedError::Backup(format!("{name} shrank while being sent")));
            }
            self.put(&buf[..n]).await?;
            left -= n as u64;
            sent(n as u64);
        }
        self.seal().await
    }

    async fn trailer(&mut self, count: u32, total: u64) -> Result<(), SeedError> {
        self.put(END).await?;
        self.put(&count.to_be_bytes()).await?;
        self.put(&total.to_be_bytes()).await?;
        let crc = self.sums.stream();
        self.put(&crc.to_be_bytes()).await?;
        self.w
            .flush()
            .await
            .map_err(|e| SeedError::Stream(StreamError::Io(e)))
    }
}

/// The reading half: every byte comes through `take`, which keeps the checksums and turns an
/// early end into [`StreamError::Truncated`] naming the part it cut.
struct Unframer<'a, R> {
    r: &'a mut R,
    sums: Sums,
}

impl<R: AsyncRead + Unpin> Unframer<'_, R> {
    async fn take(&mut self, buf: &mut [u8], part: &'static str) -> Result<(), SeedError> {
        self.r.read_exact(buf).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => StreamError::Truncated(part),
            _ => StreamError::Io(e),
        })?;
        self.sums.update(buf);
        Ok(())
    }

    async fn u16(&mut self, part: &'static str) -> Result<u16, SeedError> {
        let mut b = [0; 2];
        self.take(&mut b, part).await?;
        Ok(u16::from_be_bytes(b))
    }

    async fn u32(&mut self, part: &'static str) -> Result<u32, SeedError> {
        let mut b = [0; 4];
        self.take(&mut b, part).await?;
        Ok(u32::from_be_bytes(b))
    }

    async fn u64(&mut self, part: &'static str) -> Result<u64, SeedError> {
        let mut b = [0; 8];
        self.take(&mut b, part).await?;
        Ok(u64::from_be_bytes(b))
    }

    /// Reads a record's checksum and compares it with what the record's bytes give.
    async fn unseal(&mut self, part: &'static str, what: &str) -> Result<(), SeedError> {
        let expected = self.sums.end_record();
        let got = self.u32(part).await?;
        if got != expected {
            return Err(corrupt(format!("checksum mismatch in {what}")));
        }
        self.sums.record = crc32fast::Hasher::new();
        Ok(())
    }

    /// The marker the copy covers, the bytes and the files that follow.
    async fn header(&mut self) -> Result<(Marker, u64, u32), SeedError> {
        let mut magic = [0; 6];
        self.take(&mut magic, "the header").await?;
        if &magic != MAGIC {
            return Err(StreamError::NotASeed.into());
        }
        let version = self.u16("the header").await?;
        if version != VERSION {
            return Err(StreamError::Version(version).into());
        }
        let index = self.u64("the header").await?;
        let term = self.u64("the header").await?;
        let total = self.u64("the header").await?;
        let count = self.u32("the header").await?;
        self.unseal("the header", "the header").await?;
        Ok((Marker { index, term }, total, count))
    }

    /// One file record, written into `dir`; at most `room` bytes of content may remain.
    async fn file(
        &mut self,
        dir: &Path,
        room: u64,
        mut received: impl FnMut(u64),
    ) -> Result<CopyFile, SeedError> {
        let len = usize::from(self.u16("a file name").await?);
        if len > MAX_NAME {
            return Err(corrupt(format!("a file name of {len} bytes")));
        }
        let mut name = vec![0; len];
        self.take(&mut name, "a file name").await?;
        let name = String::from_utf8(name)
            .map_err(|e| StreamError::UnsafeName(String::from_utf8_lossy(e.as_bytes()).into()))?;
        check_name(&name)?;
        let size = self.u64("a file size").await?;
        if size > room {
            return Err(corrupt(format!(
                "{name}: {size} bytes, beyond the announced total"
            )));
        }
        let path = dir.join(&name);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => corrupt(format!("{name} sent twice")),
                _ => SeedError::io(format!("create {}", path.display()))(e),
            })?;
        let write_err = || SeedError::io(format!("write {}", path.display()));
        let mut buf = vec![0; CHUNK];
        let mut left = size;
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            self.take(&mut buf[..n], "a file's content").await?;
            file.write_all(&buf[..n]).await.map_err(write_err())?;
            left -= n as u64;
            received(n as u64);
        }
        // A tokio file writes in the background: flush to see its errors.
        file.flush().await.map_err(write_err())?;
        self.unseal("a file's checksum", &name).await?;
        Ok(CopyFile { name, size })
    }

    async fn trailer(&mut self, count: u32, total: u64) -> Result<(), SeedError> {
        let mut end = [0; 6];
        self.take(&mut end, "the trailer").await?;
        if &end != END {
            return Err(corrupt("no trailer after the last file".into()));
        }
        let (c, t) = (
            self.u32("the trailer").await?,
            self.u64("the trailer").await?,
        );
        if (c, t) != (count, total) {
            return Err(corrupt(format!("the trailer says {c} files and {t} bytes")));
        }
        let expected = self.sums.stream();
        if self.u32("the trailer").await? != expected {
            return Err(corrupt("checksum mismatch over the whole stream".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
