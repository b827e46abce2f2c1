//! A size-limited file system under a node's directory (its gateway's data or its influxd's),
//! so that a test or a fault can fill that disk alone: a tmpfs, mounted with `mount` (root
//! only), filled by a ballast file written until ENOSPC, unmounted when its guard is dropped.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The ballast's name in the file system's root.
pub const BALLAST: &str = "ballast";

/// A mounted tmpfs; unmounted (and its mount point removed) when dropped, also when a test
/// fails.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes on `path`, created if missing. tmpfs holds in memory only
    /// what is stored in it, so a generous size costs nothing until it is used.
    pub fn mount(path: &Path, size: u64) -> Result<Tmpfs, Error> {
        Self::mount_named(path, size, "tmpfs")
    }

    /// As [`Tmpfs::mount`], with `source` as the mount's source in `/proc/mounts`, by which
    /// what a crashed run left can be found ([`mounted_from`]).
    pub fn mount_named(path: &Path, size: u64, source: &str) -> Result<Tmpfs, Error> {
        fs::create_dir_all(path).map_err(Error::io(format!("create {}", path.display())))?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), source])
            .arg(path))
        .map_err(|e| Error::Mount(format!("{} (mounting needs root): {e}", path.display())))?;
        Ok(Tmpfs {
            path: path.to_path_buf(),
            mounted: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts now; a file system still in use (a process holds a file in it) is detached
    /// and goes once the last file is closed.
    pub fn unmount(&mut self) {
        if !self.mounted {
            return;
        }
        self.mounted = false;
        unmount(&self.path);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Mount points of the tmpfs mounted with `source` ([`Tmpfs::mount_named`]), deepest first.
pub fn mounted_from(source: &str) -> Vec<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut found: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (src, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            (src == source && kind == "tmpfs").then(|| PathBuf::from(point))
        })
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Unmounts `path` (detaching it if it is still in use) and removes the mount point.
pub fn unmount(path: &Path) {
    if run(Command::new("umount").arg(path)).is_err() {
        let _ = run(Command::new("umount").arg("-l").arg(path));
    }
    let _ = fs::remove_dir(path);
}

fn run(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Fills the file system that holds `dir` with a ballast file in `dir`, written until the
/// disk is full (down to the last page); returns its size. Whatever else writes there then
/// meets ENOSPC.
pub fn fill(dir: &Path) -> Result<u64, Error> {
    let path = dir.join(BALLAST);
    let action = format!("write the ballast {}", path.display());
    let mut f = File::create(&path).map_err(Error::io(action.clone()))?;
    let mut size = 0u64;
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0xa5u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => size += n as u64,
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(action)(e)),
            }
        }
    }
    Ok(size)
}

/// Deletes the ballast [`fill`] wrote in `dir`; nothing if there is none.
pub fn drain(dir: &Path) -> Result<(), Error> {
    let path = dir.join(BALLAST);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ballast_fills_the_file_system_and_its_removal_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut fs = match Tmpfs::mount_named(&dir.path().join("small"), 4 << 20, "harness-test") {
            Ok(fs) => fs,
            Err(e) => panic!("{e}"),
        };
        assert!(mounted_from("harness-test").contains(&fs.path().to_path_buf()));
        let size = fill(fs.path()).unwrap();
        assert!(size > 3 << 20 && size <= 4 << 20, "{size}");
        let err = fs::write(fs.path().join("more"), [1u8; 8192]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_enospc()));
        drain(fs.path()).unwrap();
        fs::write(fs.path().join("more"), [1u8; 8192]).unwrap();
        drain(fs.path()).unwrap(); // none left: nothing to do
        let path = fs.path().to_path_buf();
        fs.unmount();
        assert!(!path.exists(), "the mount point is removed");
    }
}
