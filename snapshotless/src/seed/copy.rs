//! The source side of a seed, and what both sides hold: a [`Copy`], a complete portable backup
//! of every database of an influxd in a directory of its own, with the applied index it is
//! guaranteed to cover. The directory goes when the `Copy` does.

use std::path::Path;

use serde::Deserialize;
use tempfile::TempDir;

use super::meta::Meta;
use super::shards::{self, ShardArchive};
use super::tool::Tools;
use super::SeedError;
use crate::influxd::Influxd;
use crate::marker::{self, Marker};

/// A complete portable backup and the marker it covers. Only [`take_copy`] and
/// [`super::receive`] make one, and only once every file is in place and checked: there is no
/// way to hold a `Copy` of a backup that is still being written.
#[derive(Debug)]
pub struct Copy {
    dir: TempDir,
    marker: Marker,
    files: Vec<CopyFile>,
    total: u64,
    meta: Meta,
    shards: Vec<ShardArchive>,
}

/// One file of a backup, its name relative to the backup's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFile {
    pub name: String,
    pub size: u64,
}

/// The backup's `.manifest`: which file is the meta store and which shard files it needs.
#[derive(Deserialize)]
struct Manifest {
    meta: ManifestMeta,
    files: Vec<ManifestFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestMeta {
    file_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestFile {
    database: String,
    policy: String,
    #[serde(rename = "shardID")]
    shard_id: u64,
    file_name: String,
}

/// Reads this influxd's marker A, then copies every database with `influxd backup -portable`
/// into a new directory under `work_dir`. In that order: the marker is written after the data
/// it covers, so a backup started after reading it holds at least everything up to A. Read
/// afterwards, it could claim entries the backup missed.
pub async fn take_copy(
    tools: &Tools,
    rpc_addr: &str,
    influxd: &Influxd,
    work_dir: &Path,
) -> Result<Copy, SeedError> {
    let marker = marker::read(influxd).await?.ok_or(SeedError::NoMarker)?;
    let dir = new_dir(work_dir, "seed-copy-")?;
    tools.backup(rpc_addr, dir.path()).await?;
    let copy = Copy::complete(dir, marker).await?;
    copy.check_no_deletes()?;
    tracing::info!(
        covers = marker.index,
        files = copy.files.len(),
        bytes = copy.total,
        "copied influxd for a seed"
    );
    Ok(copy)
}

/// A new, empty directory under `work_dir` (created if need be), removed when dropped.
pub(crate) fn new_dir(work_dir: &Path, prefix: &str) -> Result<TempDir, SeedError> {
    std::fs::create_dir_all(work_dir)
        .map_err(SeedError::io(format!("create {}", work_dir.display())))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(work_dir)
        .map_err(SeedError::io(format!(
            "create a directory in {}",
            work_dir.display()
        )))
}

impl Copy {
    /// Takes `dir` as a finished backup: lists its files, and checks that it holds one
    /// manifest, every file that manifest names, and a readable meta store.
    pub(crate) async fn complete(dir: TempDir, marker: Marker) -> Result<Copy, SeedError> {
        let files = list(dir.path()).await?;
        let manifests: Vec<&CopyFile> = files
            .iter()
            .filter(|f| f.name.ends_with(".manifest"))
            .collect();
        let [manifest] = manifests.as_slice() else {
            return Err(SeedError::Backup(format!(
                "{} manifests in {}",
                manifests.len(),
                dir.path().display()
            )));
        };
        let manifest: Manifest =
            serde_json::from_slice(&read(dir.path(), &manifest.name).await?)
                .map_err(|e| SeedError::Backup(format!("unreadable manifest: {e}")))?;
        let needed = std::iter::once(&manifest.meta.file_name)
            .chain(manifest.files.iter().map(|f| &f.file_name));
        for name in needed {
            if !files.iter().any(|f| &f.name == name) {
                return Err(SeedError::Backup(format!("{name} is missing")));
            }
        }
        let meta = Meta::from_file(&read(dir.path(), &manifest.meta.file_name).await?)?;
        let shards = read_shards(dir.path(), manifest.files).await?;
        let total = files.iter().map(|f| f.size).sum();
        Ok(Copy {
            dir,
            marker,
            files,
            total,
            meta,
            shards,
        })
    }

    /// Refuses a copy whose restore would bring deleted points back (see `seed/shards.rs`).
    pub(crate) fn check_no_deletes(&self) -> Result<(), SeedError> {
        let shards: Vec<String> = self
            .shards
            .iter()
            .filter(|s| s.tombstones)
            .map(|s| format!("{}.{} shard {}", s.database, s.policy, s.shard_id))
            .collect();
        if shards.is_empty() {
            Ok(())
        } else {
            Err(SeedError::PendingDeletes { shards })
        }
    }

    /// The directory holding the backup, as `influxd restore -portable` reads it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The applied index (and its term) the copy is guaranteed to cover.
    pub fn marker(&self) -> Marker {
        self.marker
    }

    /// Its files, by name.
    pub fn files(&self) -> &[CopyFile] {
        &self.files
    }

    /// The sum of its files' sizes.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    pub(crate) fn shards(&self) -> &[ShardArchive] {
        &self.shards
    }
}

/// What each shard archive the manifest names holds; off the async threads, as it
/// decompresses every archive.
async fn read_shards(dir: &Path, files: Vec<ManifestFile>) -> Result<Vec<ShardArchive>, SeedError> {
    let dir = dir.to_owned();
    let read_all = move || {
        files
            .into_iter()
            .map(|f| {
                let (tsm_bytes, tombstones) = shards::read(&dir, &f.file_name)?;
                Ok(ShardArchive {
                    database: f.database,
                    policy: f.policy,
                    shard_id: f.shard_id,
                    file: f.file_name,
                    tsm_bytes,
                    tombstones,
                })
            })
            .collect()
    };
    tokio::task::spawn_blocking(read_all)
        .await
        .map_err(|e| SeedError::Backup(format!("reading the shard archives: {e}")))?
}

/// The regular files of a backup directory, sorted by name. A backup is flat: anything else
/// in it is not influxd's doing.
async fn list(dir: &Path) -> Result<Vec<CopyFile>, SeedError> {
    let action = || format!("list {}", dir.display());
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(SeedError::io(action()))?;
    let mut files = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(SeedError::io(action()))?
    {
        let meta = entry.metadata().await.map_err(SeedError::io(action()))?;
        let name = entry.file_name().into_string().map_err(|name| {
            SeedError::Backup(format!("a file name that is not UTF-8: {name:?}"))
        })?;
        if !meta.is_file() {
            return Err(SeedError::Backup(format!("{name} is not a regular file")));
        }
        files.push(CopyFile {
            name,
            size: meta.len(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

async fn read(dir: &Path, name: &str) -> Result<Vec<u8>, SeedError> {
    let path = dir.join(name);
    tokio::fs::read(&path)
        .await
        .map_err(SeedError::io(format!("read {}", path.display())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::seed::meta::{self, Database};
    use crate::seed::shards::tests::archive;

    /// A directory that passes for a portable backup: a manifest, a meta file and `shards`.
    pub fn fake_backup(work: &Path, shards: &[(&str, &[u8])]) -> TempDir {
        let dir = new_dir(work, "fake-").unwrap();
        let meta = Meta {
            databases: vec![Database {
                name: "db1".into(),
                ..Default::default()
            }],
            users: vec![],
        };
        std::fs::write(dir.path().join("b.meta"), meta::tests::encode(&meta)).unwrap();
        let files: Vec<String> = shards
            .iter()
            .enumerate()
            .map(|(i, (name, bytes))| {
                let tsm = [("db1/rp/1/000000001-000000001.tsm", *bytes)];
                std::fs::write(dir.path().join(name), archive(&tsm)).unwrap();
                format!(r#"{{"database":"db1","policy":"rp","shardID":{i},"fileName":"{name}"}}"#)
            })
            .collect();
        let manifest = format!(
            r#"{{"meta":{{"fileName":"b.meta","size":1}},"limited":false,"files":[{}]}}"#,
            files.join(",")
        );
        std::fs::write(dir.path().join("b.manifest"), manifest).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_complete_backup_is_listed_with_its_sizes() {
        let work = tempfile::tempdir().unwrap();
        let dir = fake_backup(work.path(), &[("b.s1.tar.gz", b"12345")]);
        let copy = Copy::complete(dir, Marker { index: 7, term: 2 })
            .await
            .unwrap();
        let names: Vec<&str> = copy.files().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b.manifest", "b.meta", "b.s1.tar.gz"]);
        assert_eq!(copy.shards()[0].tsm_bytes, 5);
        assert!(!copy.shards()[0].tombstones);
        assert_eq!(copy.marker().index, 7);
        assert_eq!(copy.meta().databases[0].name, "db1");
        let path = copy.dir().to_owned();
        drop(copy);
        assert!(!path.exists(), "the directory goes with the copy");
    }

    #[tokio::test]
    async fn a_backup_missing_a_shard_file_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let dir = fake_backup(work.path(), &[("b.s1.tar.gz", b"12345")]);
        std::fs::remove_file(dir.path().join("b.s1.tar.gz")).unwrap();
        let r = Copy::complete(dir, Marker::ZERO).await;
        assert!(
            matches!(&r, Err(SeedError::Backup(m)) if m.contains("b.s1")),
            "{r:?}"
        );
    }
}
