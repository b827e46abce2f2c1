//! The stream format against itself: a round trip through a small pipe, a stream cut at every
//! byte, every single-bit flip, unsafe and duplicate names; none may leave a directory behind.

use std::path::Path;

use tokio::sync::watch;

use super::*;
use crate::seed::copy::tests::fake_backup;

async fn fake_copy(work: &Path) -> Copy {
    // Incompressible, so that the archive is large and crosses many pipe buffers.
    let mut x = 1u32;
    let shard: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    let dir = fake_backup(work, &[("b.s1.tar.gz", &shard), ("b.s2.tar.gz", b"")]);
    Copy::complete(dir, Marker { index: 41, term: 3 })
        .await
        .unwrap()
}

async fn encode(copy: &Copy) -> Vec<u8> {
    let mut out = Vec::new();
    send(copy, &mut out, &watch::channel(Progress::default()).0)
        .await
        .unwrap();
    out
}

async fn receive_bytes(bytes: &[u8], work: &Path) -> Result<Copy, SeedError> {
    let mut r = bytes;
    receive(&mut r, work, &watch::channel(Progress::default()).0).await
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

#[tokio::test]
async fn a_copy_arrives_whole_through_a_small_pipe_with_progress() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let copy = fake_copy(src.path()).await;
    let (mut a, mut b) = tokio::io::duplex(4096);
    let (sent_tx, sent_rx) = watch::channel(Progress::default());
    let (got_tx, got_rx) = watch::channel(Progress::default());
    let (sent, got) = tokio::join!(send(&copy, &mut a, &sent_tx), async {
        receive(&mut b, dst.path(), &got_tx).await
    });
    sent.unwrap();
    let got = got.unwrap();
    assert_eq!(got.marker(), copy.marker());
    assert_eq!(got.files(), copy.files());
    for f in copy.files() {
        let a = std::fs::read(copy.dir().join(&f.name)).unwrap();
        let b = std::fs::read(got.dir().join(&f.name)).unwrap();
        assert!(a == b, "{} differs", f.name);
    }
    let total = copy.total_bytes();
    assert_eq!(*sent_rx.borrow(), Progress { done: total, total });
    assert_eq!(*got_rx.borrow(), Progress { done: total, total });
}

#[tokio::test]
async fn a_stream_cut_anywhere_is_truncated_and_leaves_nothing() {
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let copy = fake_copy(src.path()).await;
    let bytes = encode(&copy).await;
    // Every cut in the small records, a few inside the big file.
    let big = bytes.len() - 400;
    let cuts = (0..bytes.len()).filter(|&c| c < 400 || c > big || c % 50_000 == 0);
    for cut in cuts {
        let r = receive_bytes(&bytes[..cut], work.path()).await;
        assert!(
            matches!(r, Err(SeedError::Stream(StreamError::Truncated(_)))),
            "cut at {cut} of {}: {r:?}",
            bytes.len()
        );
        assert!(is_empty(work.path()), "cut at {cut} left files");
    }
    let whole = receive_bytes(&bytes, work.path()).await.unwrap();
    assert_eq!(whole.files(), copy.files());
}

#[tokio::test]
async fn every_flipped_bit_is_refused_and_leaves_nothing() {
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = fake_backup(src.path(), &[("b.s1.tar.gz", b"shard bytes")]);
    let copy = Copy::complete(dir, Marker { index: 9, term: 1 })
        .await
        .unwrap();
    let bytes = encode(&copy).await;
    for i in 0..bytes.len() {
        for bit in [0x01, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            let r = receive_bytes(&bad, work.path()).await;
            assert!(
                r.is_err(),
                "flipping bit {bit:#x} of byte {i} went unnoticed"
            );
            assert!(is_empty(work.path()), "flipping byte {i} left files");
        }
    }
}

/// A stream of the given files, as a sender that does not check names would make it.
async fn crafted(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut f = Framer {
        w: &mut out,
        sums: Sums::default(),
    };
    let total = files.iter().map(|(_, b)| b.len() as u64).sum();
    f.header(Marker { index: 1, term: 1 }, total, files.len() as u32)
        .await
        .unwrap();
    for (name, mut bytes) in files.iter().copied() {
        f.file(name, bytes.len() as u64, &mut bytes, |_| {})
            .await
            .unwrap();
    }
    f.trailer(files.len() as u32, total).await.unwrap();
    out
}

#[tokio::test]
async fn names_that_leave_the_directory_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    for name in [
        "../evil",
        "/tmp/evil",
        "a/b",
        "..",
        ".",
        "",
        "a\\b",
        "nul\0",
    ] {
        let bytes = crafted(&[(name, b"x")]).await;
        let r = receive_bytes(&bytes, &work).await;
        assert!(
            matches!(&r, Err(SeedError::Stream(StreamError::UnsafeName(n))) if n == name),
            "{name:?}: {r:?}"
        );
        assert!(is_empty(&work), "{name:?} left files");
        assert!(!base.path().join("evil").exists());
    }
}

#[tokio::test]
async fn a_name_sent_twice_is_corrupt() {
    let work = tempfile::tempdir().unwrap();
    let bytes = crafted(&[("a", b"1"), ("a", b"2")]).await;
    let r = receive_bytes(&bytes, work.path()).await;
    assert!(
        matches!(&r, Err(SeedError::Stream(StreamError::Corrupt(m))) if m.contains("twice")),
        "{r:?}"
    );
    assert!(is_empty(work.path()));
}

#[tokio::test]
async fn a_well_framed_stream_that_is_not_a_backup_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let bytes = crafted(&[("a", b"1")]).await;
    let r = receive_bytes(&bytes, work.path()).await;
    assert!(matches!(r, Err(SeedError::Backup(_))), "{r:?}");
    assert!(is_empty(work.path()));
}

#[tokio::test]
async fn other_bytes_and_other_versions_are_named() {
    let work = tempfile::tempdir().unwrap();
    let r = receive_bytes(b"HTTP/1.1 200 OK\r\n\r\n and more bytes", work.path()).await;
    assert!(
        matches!(r, Err(SeedError::Stream(StreamError::NotASeed))),
        "{r:?}"
    );
    let mut bytes = crafted(&[]).await;
    bytes[7] = 2;
    let r = receive_bytes(&bytes, work.path()).await;
    assert!(
        matches!(r, Err(SeedError::Stream(StreamError::Version(2)))),
        "{r:?}"
    );
}
