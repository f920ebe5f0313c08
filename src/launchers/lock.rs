//! `packages.lock`: the resolved version and content hash of every package a server runs from
//! the store (JSON), and the exclusive hold that every change to it is made under.
//!
//! Several guards start at once (a host starts all its servers together), and each may add an
//! entry. A change is therefore a read-modify-write under an exclusive `flock` of a sidecar file
//! (`.packages.lock.flock`), and the new lock replaces the old by rename, so a reader that takes
//! no lock still sees one whole file. The flock is not taken on `packages.lock` itself: the
//! rename gives the path a new inode, and a guard that opened the old one would hold a lock
//! nobody else is waiting on.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::error::{io_error, PackageError};
use super::spec::Family;

/// `packages.lock`: JSON, written whole (temporary file + rename).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lock {
    pub version: u32,
    /// By [`super::PackageLaunch::lock_key`].
    pub packages: BTreeMap<String, LockEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    pub family: Family,
    pub package: String,
    /// The version spec as written; `null`: whatever was newest at the last fetch or update.
    pub requested: Option<String>,
    /// The version the registry resolved it to.
    pub version: String,
    /// The store entry, relative to the store root (`npm/@scope+name@1.2.3`).
    pub entry: String,
    /// `sha256:` of the entry's tree (see [`super::package::hash_tree`]).
    pub hash: String,
    /// When it was fetched (RFC 3339, UTC).
    pub fetched: String,
}

impl Lock {
    /// The lock as it is now (empty when there is none yet). Needs no hold: the file is only
    /// ever replaced whole.
    pub fn load(path: &Path) -> Result<Lock, PackageError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| PackageError::LockInvalid {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock {
                version: 1,
                ..Lock::default()
            }),
            Err(source) => Err(io_error("read", path, source)),
        }
    }

    /// Written to a temporary file, flushed to disk, then renamed over `path`. Only under a
    /// [`HeldLock`] (two writers would each drop the other's entries).
    fn save(&self, path: &Path) -> Result<(), PackageError> {
        let dir = lock_dir(path)?;
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| PackageError::LockEncode {
                path: path.to_owned(),
                source,
            })?;
        text.push('\n');
        write_replacing(path, &text).map_err(|(at, e)| io_error("write", &at, e))
    }
}

/// Write `text` to a temporary file beside `path`, flush it to disk, then rename it over
/// `path`: a reader that takes no hold sees the old file or the new one, never half of one.
/// The error names the file that could not be written. Also the fleet ledger's writer
/// (`crate::pin::fleet`).
pub fn write_replacing(path: &Path, text: &str) -> Result<(), (PathBuf, std::io::Error)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // Unique per writer, so an unheld writer (a test's control) cannot clobber another's.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{name}.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err((tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        (path.to_owned(), e)
    })
}

fn lock_dir(path: &Path) -> Result<&Path, PackageError> {
    path.parent()
        .ok_or_else(|| PackageError::LockPathWithoutDir {
            path: path.to_owned(),
        })
}

/// The lock, read under an exclusive hold that lasts until this is dropped: changes made to
/// `lock` and [`HeldLock::save`]d cannot lose another guard's.
#[derive(Debug)]
pub struct HeldLock {
    pub lock: Lock,
    path: PathBuf,
    _hold: Flock<File>,
}

impl HeldLock {
    /// Wait for the hold on `path` (saying so when another guard has it), then read the lock.
    pub fn acquire(path: &Path) -> Result<HeldLock, PackageError> {
        let dir = lock_dir(path)?;
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let flock_path = dir.join(".packages.lock.flock");
        let hold = exclusive_hold(
            &flock_path,
            "package: waiting for another mcp-guard that is fetching or updating packages",
        )
        .map_err(|(op, e)| io_error(op, &flock_path, e))?;
        Ok(HeldLock {
            lock: Lock::load(path)?,
            path: path.to_owned(),
            _hold: hold,
        })
    }

    /// Write `lock` (atomically); the hold stays.
    pub fn save(&mut self) -> Result<(), PackageError> {
        self.lock.version = 1;
        self.lock.save(&self.path)
    }
}

/// An exclusive `flock` of `flock_path` (created when missing), held until dropped. When
/// another process holds it, says `waiting` once and waits. Errors name the step that failed
/// (`open`, `lock`). Also the pin files' hold (`crate::pin::store`).
pub fn exclusive_hold(
    flock_path: &Path,
    waiting: &str,
) -> Result<Flock<File>, (&'static str, std::io::Error)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(flock_path)
        .map_err(|e| ("open", e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(hold) => Ok(hold),
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            tracing::info!("{waiting} ({} is held)", flock_path.display());
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| ("lock", errno.into()))
        }
        Err((_, errno)) => Err(("lock", errno.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn entry(n: usize) -> LockEntry {
        LockEntry {
            family: Family::Npm,
            package: format!("pkg-{n}"),
            requested: None,
            version: "1.0.0".into(),
            entry: format!("npm/pkg-{n}@1.0.0"),
            hash: "sha256:00".into(),
            fetched: "2026-01-01T00:00:00Z".into(),
        }
    }

    const WRITERS: usize = 12;

    /// Every writer reads the lock, waits until all have read it, then adds its entry.
    fn race(path: &Path, held: bool) -> Lock {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let threads: Vec<_> = (0..WRITERS)
            .map(|n| {
                let (path, barrier) = (path.to_owned(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    if held {
                        // Everyone asks at once; the hold lets one in at a time.
                        barrier.wait();
                        let mut hold = HeldLock::acquire(&path).unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        hold.lock.packages.insert(format!("npm:pkg-{n}"), entry(n));
                        hold.save().unwrap();
                    } else {
                        let mut lock = Lock::load(&path).unwrap();
                        barrier.wait();
                        lock.packages.insert(format!("npm:pkg-{n}"), entry(n));
                        lock.save(&path).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        Lock::load(path).unwrap()
    }

    #[test]
    fn concurrent_writers_without_the_hold_lose_entries() {
        // The control: read-modify-write with no hold keeps only the last writer's entry.
        let dir = tempfile::tempdir().unwrap();
        let lock = race(&dir.path().join("state/packages.lock"), false);
        assert_eq!(lock.packages.len(), 1, "{:?}", lock.packages.keys());
    }

    #[test]
    fn concurrent_writers_under_the_hold_keep_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/packages.lock");
        let lock = race(&path, true);
        let mut want: Vec<String> = (0..WRITERS).map(|n| format!("npm:pkg-{n}")).collect();
        want.sort();
        let have: Vec<String> = lock.packages.keys().cloned().collect();
        assert_eq!(have, want);
        // Nothing but the lock and its flock file is left behind (no temporary files).
        let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".packages.lock.flock", "packages.lock"]);
    }

    #[test]
    fn a_second_hold_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("packages.lock");
        let first = HeldLock::acquire(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let second = HeldLock::acquire(&path).unwrap();
                tx.send(second.lock.packages.len()).unwrap();
            })
        };
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        let mut first = first;
        first.lock.packages.insert("npm:a".into(), entry(0));
        first.save().unwrap();
        drop(first);
        // The second sees what the first wrote.
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)), Ok(1));
        waiter.join().unwrap();
    }
}
