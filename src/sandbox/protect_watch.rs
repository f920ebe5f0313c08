//! Protected names that did not exist when the server started (`.mcp.json`, `.envrc`,
//! `.claude`, `.config/fish`, ...): watched by the supervisor, and moved aside the moment one
//! appears.
//!
//! # Why watch and move, and not refuse
//!
//! Refusing the creation of one name in a directory where others may be created is beyond
//! both tools the sandbox has (see `protect.rs`): landlock grants rights per inode, never per
//! name, and a read-only mount needs an existing inode to go on. The alternatives cost more
//! than they save: granting only a root's existing entries takes every new top-level file
//! from the server (a filesystem server could not save `notes.md`), placeholders put a dozen
//! empty, invalid files into the user's project, and a FUSE mirror or a seccomp path broker
//! puts a user-space round trip on every file operation.
//!
//! So the supervisor, which runs outside the sandbox and outlives the guard, watches the
//! nearest existing directory of each missing name with inotify. When the name appears it is
//! renamed, in the same directory, to `NAME.mcp-guard-quarantined-PID-N`, a name no shell,
//! editor, host or CI reads, and reported (audit line, warning). Nothing is deleted: the user
//! can look at what the server wrote and rename it back. A last sweep runs once the server's
//! tree is dead, which catches anything the watch missed (a full event queue).
//!
//! What remains: between the creation and the rename (microseconds to milliseconds) the
//! file exists; a program that reads it in exactly that window sees it. SECURITY.md says so.
//!
//! The supervisor is not confined, so it must never be steered outside a writable root: every
//! directory on the way to a name is opened with `O_NOFOLLOW` from `/` (the plan's paths are
//! canonical, so a symlink on the way was put there after the start, by the server), and the
//! rename happens relative to that directory, never through a path.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, renameat2, OFlag, RenameFlags, AT_FDCWD};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::{fstatat, Mode};

/// The suffix a moved-aside name gets (then `-PID-N`).
pub const QUARANTINE_SUFFIX: &str = ".mcp-guard-quarantined";

/// One protected name the server created, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub path: PathBuf,
    /// The new name; `None` when the rename failed (then `error` says why).
    pub moved_to: Option<PathBuf>,
    pub error: Option<String>,
}

/// Watches the missing protected names of one server.
pub struct ProtectWatch {
    missing: Vec<PathBuf>,
    inotify: Inotify,
    moved: usize,
}

impl ProtectWatch {
    /// Start watching `missing` (canonical paths below the writable roots).
    pub fn new(missing: Vec<PathBuf>) -> Result<Self, String> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC)
            .map_err(|e| format!("cannot watch for protected names: inotify_init failed: {e}"))?;
        let mut watch = ProtectWatch {
            missing,
            inotify,
            moved: 0,
        };
        watch.rewatch();
        Ok(watch)
    }

    /// Move aside every missing name that now exists, and watch the nearest existing directory
    /// of the others (a directory created on the way gets its own watch here).
    pub fn sweep(&mut self) -> Vec<Quarantined> {
        // Watch first, then look: a name created before a new directory's watch was added is
        // seen by the look, one created after it raises an event (`mkdir -p .config/fish`
        // would otherwise slip in between).
        self.rewatch();
        sweep(&self.missing, &mut self.moved)
    }

    /// Block until something happens in a watched directory, then [`sweep`](Self::sweep).
    /// Never returns an empty list unless the watch itself failed (then it returns `Err`).
    pub fn wait(&mut self) -> Result<Vec<Quarantined>, String> {
        loop {
            self.inotify
                .read_events()
                .map_err(|e| format!("the watch for protected names stopped: {e}"))?;
            let found = self.sweep();
            if !found.is_empty() {
                return Ok(found);
            }
        }
    }

    fn rewatch(&mut self) {
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DONT_FOLLOW
            | AddWatchFlags::IN_ONLYDIR;
        for path in &self.missing {
            if let Some(dir) = nearest_existing_dir(path) {
                // Watching the same directory twice returns the same watch: no growth.
                if let Err(e) = self.inotify.add_watch(&dir, flags) {
                    tracing::warn!("cannot watch {} for protected names: {e}", dir.display());
                }
            }
        }
    }
}

/// Move aside every name of `missing` that exists; `moved` numbers the new names.
pub fn sweep(missing: &[PathBuf], moved: &mut usize) -> Vec<Quarantined> {
    missing
        .iter()
        .filter_map(|path| quarantine_if_present(path, moved))
        .collect()
}

/// The deepest real (not symlinked) directory on the way to `path`, `path`'s parent at most.
fn nearest_existing_dir(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    let mut dir = PathBuf::from("/");
    for part in parent.components().skip(1) {
        let next = dir.join(part);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.is_dir() => dir = next,
            _ => break,
        }
    }
    Some(dir)
}

/// When `path` exists (as anything, a symlink included) below real directories only, rename
/// it aside in its own directory.
fn quarantine_if_present(path: &Path, moved: &mut usize) -> Option<Quarantined> {
    let name = path.file_name()?;
    let parent = open_without_symlinks_on_the_way(path.parent()?)?;
    fstatat(
        parent.as_fd(),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ok()?;
    loop {
        *moved += 1;
        let mut new_name = name.to_owned();
        new_name.push(format!(
            "{QUARANTINE_SUFFIX}-{}-{}",
            std::process::id(),
            moved
        ));
        let result = renameat2(
            parent.as_fd(),
            name,
            parent.as_fd(),
            new_name.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        );
        return match result {
            Ok(()) => Some(Quarantined {
                path: path.to_owned(),
                moved_to: Some(path.with_file_name(new_name)),
                error: None,
            }),
            // The server took the name first: try the next number.
            Err(nix::Error::EEXIST) => continue,
            // Gone again before the rename (the server moved it itself): nothing to do.
            Err(nix::Error::ENOENT) => None,
            Err(e) => Some(Quarantined {
                path: path.to_owned(),
                moved_to: None,
                error: Some(format!("cannot move it aside: {e}")),
            }),
        };
    }
}

/// Open `dir` (absolute) component by component, refusing a symlink at any of them (unlike
/// `env.rs`'s `open_dir_nofollow`, which checks only the last).
fn open_without_symlinks_on_the_way(dir: &Path) -> Option<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = openat(AT_FDCWD, "/", flags, Mode::empty()).ok()?;
    for part in dir.components() {
        match part {
            Component::RootDir => continue,
            Component::Normal(name) => {
                fd = openat(fd.as_fd(), name, flags, Mode::empty()).ok()?;
            }
            _ => return None,
        }
    }
    Some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        (dir, root)
    }

    #[test]
    fn a_created_name_is_moved_aside_and_kept() {
        let (_dir, root) = root();
        let mut watch = ProtectWatch::new(vec![root.join(".mcp.json")]).expect("watch");
        assert!(watch.sweep().is_empty());
        std::fs::write(root.join(".mcp.json"), "{}").expect("write");
        let found = watch.wait().expect("event");
        assert_eq!(found.len(), 1);
        let moved = found[0].moved_to.clone().expect("moved");
        assert!(!root.join(".mcp.json").exists());
        assert_eq!(std::fs::read_to_string(moved).expect("kept"), "{}");
    }

    #[test]
    fn a_nested_name_is_caught_through_a_new_directory() {
        let (_dir, root) = root();
        let mut watch = ProtectWatch::new(vec![root.join(".config/fish")]).expect("watch");
        std::fs::create_dir_all(root.join(".config/fish")).expect("mkdir");
        let found = watch.wait().expect("event");
        assert_eq!(found[0].path, root.join(".config/fish"));
        assert!(
            root.join(".config").is_dir(),
            "the directory on the way stays"
        );
        assert!(!root.join(".config/fish").exists());
    }

    #[test]
    fn a_symlink_on_the_way_is_never_followed() {
        let (_dir, root) = root();
        let (_elsewhere, outside) = self::root();
        std::fs::create_dir_all(outside.join("fish")).expect("mkdir");
        let mut watch = ProtectWatch::new(vec![root.join(".config/fish")]).expect("watch");
        std::os::unix::fs::symlink(&outside, root.join(".config")).expect("symlink");
        assert!(watch.sweep().is_empty());
        assert!(outside.join("fish").is_dir(), "the target was not touched");
    }

    #[test]
    fn a_symlink_with_the_name_is_moved_itself() {
        let (_dir, root) = root();
        let (_elsewhere, outside) = self::root();
        std::fs::write(outside.join("evil.json"), "x").expect("write");
        let mut watch = ProtectWatch::new(vec![root.join(".mcp.json")]).expect("watch");
        std::os::unix::fs::symlink(outside.join("evil.json"), root.join(".mcp.json"))
            .expect("symlink");
        let found = watch.sweep();
        assert_eq!(found.len(), 1);
        assert!(outside.join("evil.json").is_file(), "the target stays");
        assert!(std::fs::symlink_metadata(root.join(".mcp.json")).is_err());
    }
}
