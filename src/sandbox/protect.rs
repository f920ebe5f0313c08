//! Protected paths: entries inside a writable directory that the server may read but not
//! change, because code in them runs later, outside the sandbox (git hooks, `core.fsmonitor` in
//! `.git/config`, shell start-up files, editor and agent configs, CI workflows).
//!
//! # Why a mount namespace and not landlock
//!
//! Landlock rights are inherited down the tree and bound to inodes, never to names: whatever a
//! *new* file in a directory `D` may do, an *existing* file in `D` may do as well, and a
//! directory with `MAKE_REG` lets any name be created in it. git writes its lock files directly
//! in `.git` (`index.lock` → `index`, `HEAD.lock` → `HEAD`), so `.git` needs `MAKE_REG`,
//! `REMOVE_FILE` and `WRITE_FILE` — and with them landlock cannot keep the server from writing
//! `.git/config`, creating a file in `.git/hooks`, or renaming its own file over either. A
//! carve-out like a deny (grant each sibling, not the parent) only holds if the parent loses
//! its create and remove rights, which breaks git in `.git` and every new top-level file in a
//! served directory.
//!
//! So every existing protected entry is bind-mounted read-only onto itself in a private mount
//! namespace of the server (made in the child, before landlock and seccomp; seccomp then
//! refuses `mount`, `umount2`, `unshare` and namespace flags in `clone`):
//! - writing it, truncating it, or creating anything inside it fails with `EROFS`;
//! - renaming it, renaming something over it, unlinking or removing it fails with `EBUSY`
//!   (it is a mount point in the server's namespace);
//! - the directories on the way to it below the writable root (`.git`, `.github`, `.config`)
//!   are bind-mounted onto themselves (still writable), so they cannot be renamed away and
//!   rebuilt with a new `config` or `hooks` either (`EBUSY`); for a nested repository that is
//!   every directory from the root down to its `.git`. The price: a rename from inside a
//!   pinned directory to outside it (or back) crosses a mount and fails with `EXDEV` (tools
//!   then usually copy; `mv` does).
//!
//! The user's own view is untouched: the mounts exist only in the server's namespace and
//! vanish with it. Root enters a mount namespace directly; an ordinary user enters a user
//! namespace with its uid and gid mapped to themselves (file ownership unchanged), whose
//! capabilities are dropped before exec with the rest.
//!
//! # What stays open
//!
//! A protected name that does **not exist** when the server starts can still be created: a
//! mount needs an existing inode, and landlock cannot refuse one name in a directory where
//! others may be created. The exception is `.git/hooks`, which git itself creates in every
//! repository: a missing one is created (empty) before the server starts, and protected.
//! Placeholders for the other names were rejected: an empty `.mcp.json` is invalid JSON for
//! the host reading it, empty `.bashrc`/`.gitmodules`/`.envrc` files show up in `git status`
//! and in the user's home, and a dozen empty directories would appear in every listing the
//! server (and the agent) makes of the user's project.
//!
//! # Where
//!
//! Protected names are looked up directly in each writable root (that is where shells, editors,
//! hosts and CI read them: the home directory, the project root), and `.git/hooks` and
//! `.git/config` in every `.git` directory found below a writable root at plan time, down to
//! [`GIT_SEARCH_DEPTH`] levels: a nested repository's hooks run whenever the user runs git in
//! it. A `.vscode` in a subdirectory of a root is not protected (it acts only when that
//! subdirectory is opened as a workspace); a `.git` *file* (worktrees, submodules) points
//! elsewhere and is not followed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default protected names, relative to each writable root, with why each is protected.
/// Kept in step with `policies/README.md`.
pub const DEFAULT_PROTECTED: &[(&str, &str)] = &[
    (
        ".git/hooks",
        "git runs these scripts on commit, checkout, merge, push",
    ),
    (
        ".git/config",
        "core.fsmonitor, core.hooksPath, core.sshCommand, aliases, filters run commands",
    ),
    (
        ".gitmodules",
        "submodule URLs and paths git fetches and checks out on `git submodule update`",
    ),
    (".bashrc", "bash runs it for every interactive shell"),
    (".bash_profile", "bash runs it at login"),
    (".bash_login", "bash runs it at login"),
    (".profile", "sh and bash run it at login"),
    (".zshrc", "zsh runs it for every interactive shell"),
    (".zshenv", "zsh runs it for every shell, scripts included"),
    (".zprofile", "zsh runs it at login"),
    (".zlogin", "zsh runs it at login"),
    (
        ".config/fish",
        "fish runs config.fish and conf.d/* at start",
    ),
    (
        ".ssh",
        "authorized_keys grants logins; config runs ProxyCommand / LocalCommand",
    ),
    (
        ".gnupg",
        "gpg.conf and gpg-agent.conf name programs gpg runs",
    ),
    (
        ".envrc",
        "direnv runs it when the shell enters the directory",
    ),
    (
        ".npmrc",
        "npm settings: registry, scripts' shell, node-options",
    ),
    (".pypirc", "package index credentials and upload targets"),
    (".netrc", "credentials curl, git and ftp send to hosts"),
    (
        ".docker",
        "credential helpers docker runs; registry credentials",
    ),
    (
        ".kube",
        "kubeconfig exec plugins run commands; cluster credentials",
    ),
    (".aws", "credential_process runs a command; AWS credentials"),
    (".config/gcloud", "gcloud credentials and configurations"),
    (
        ".mcp.json",
        "project MCP servers a host starts (commands run on the user's machine)",
    ),
    (
        ".vscode",
        "tasks.json and settings (terminal profiles, interpreters) run commands",
    ),
    (".idea", "JetBrains run configurations and startup tasks"),
    (".cursor", "Cursor rules and MCP servers"),
    (
        ".claude",
        "Claude Code settings: hooks run commands, MCP servers, permissions",
    ),
    (
        ".github/workflows",
        "CI workflows run with the repository's secrets on push",
    ),
];

/// How deep below a writable root `.git` directories are looked for (`ROOT/a/b/c/.git`).
pub const GIT_SEARCH_DEPTH: usize = 4;
/// At most this many directories are read while looking for `.git` directories.
const GIT_SEARCH_BUDGET: usize = 20_000;
/// Directories not searched for nested repositories (large, and not where repositories live).
const GIT_SEARCH_SKIP: &[&str] = &["node_modules", "target", ".venv", "venv", "__pycache__"];

/// The protected paths of a plan, resolved against the disk by the guard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectPlan {
    /// Existing protected entries, made read-only in the server's mount namespace.
    pub read_only: Vec<PathBuf>,
    /// Directories between a writable root and a protected entry (`.git`, `.github`,
    /// `.config`), pinned (bind-mounted onto themselves) so they cannot be renamed away.
    pub pinned: Vec<PathBuf>,
    /// Protected names that do not exist: the server can create them (reported, not enforced).
    pub missing: Vec<PathBuf>,
    /// `.git/hooks` directories the guard created (empty) so that they could be protected.
    pub created: Vec<PathBuf>,
}

impl ProtectPlan {
    pub fn is_empty(&self) -> bool {
        self.read_only.is_empty() && self.pinned.is_empty()
    }
}

/// Resolve the protected paths below `write_roots` (canonical directories): the default names
/// plus `extra` (relative names), and `guard_dirs` (absolute: mcp-guard's own directories,
/// created when a writable root holds them so that they are protected from the start), except
/// the exact paths in `unprotected` (canonical; a path the policy names in `write` is writable
/// as asked). Creates a missing `.git/hooks`.
pub fn plan(
    write_roots: &[PathBuf],
    extra: &[PathBuf],
    guard_dirs: &[PathBuf],
    unprotected: &[PathBuf],
) -> ProtectPlan {
    let mut names: Vec<PathBuf> = DEFAULT_PROTECTED
        .iter()
        .map(|(name, _)| PathBuf::from(name))
        .collect();
    names.extend(extra.iter().filter(|n| is_relative_name(n)).cloned());
    let mut out = ProtectPlan::default();
    let roots: Vec<&PathBuf> = write_roots.iter().filter(|r| r.is_dir()).collect();
    for root in &roots {
        for name in &names {
            add(root, name, unprotected, &mut out);
        }
        for dir in guard_dirs {
            let Ok(relative) = dir.strip_prefix(root) else {
                continue;
            };
            if relative.as_os_str().is_empty() || !is_relative_name(relative) {
                continue;
            }
            // Created before the server starts: a missing one would be the server's to create.
            if create_private_dir(dir).is_ok() {
                add(root, relative, unprotected, &mut out);
            }
        }
        for git in find_git_dirs(root) {
            let Ok(relative) = git.strip_prefix(root) else {
                continue;
            };
            if relative == Path::new(".git") {
                continue; // done above with the root's own names
            }
            for name in [".git/hooks", ".git/config"] {
                add(root, &relative.with_file_name(name), unprotected, &mut out);
            }
        }
    }
    // A protected path inside another writable root's protected path is covered already; a
    // writable root inside a protected path (`write = ["~/.ssh"]`) stays as the user asked.
    for list in [&mut out.read_only, &mut out.pinned, &mut out.missing] {
        list.sort();
        list.dedup();
    }
    let read_only = out.read_only.clone();
    out.read_only.retain(|p| {
        !read_only.iter().any(|q| q != p && p.starts_with(q))
            && !roots.iter().any(|r| r.starts_with(p))
    });
    let read_only = &out.read_only;
    // Pinning leaves a directory writable: a root at or below it changes nothing.
    out.pinned
        .retain(|d| !read_only.iter().any(|q| d.starts_with(q)));
    out
}

/// `dir` and its missing parents, the new ones private to the user (0700).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `name` is a relative path going down only (`.vscode`, `.config/fish`).
pub fn is_relative_name(name: &Path) -> bool {
    use std::path::Component;
    !name.as_os_str().is_empty() && name.components().all(|c| matches!(c, Component::Normal(_)))
}

fn add(root: &Path, name: &Path, unprotected: &[PathBuf], out: &mut ProtectPlan) {
    let path = root.join(name);
    if unprotected.contains(&path) {
        return;
    }
    // Every directory on the way must be a real directory (a symlink could point anywhere,
    // and the protection would then be mounted over its target).
    let mut on_the_way = Vec::new();
    let mut dir = root.to_path_buf();
    let parts: Vec<_> = name.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => on_the_way.push(dir.clone()),
            Ok(_) => return, // a file or a symlink: nothing below it to protect here
            Err(_) => {
                out.missing.push(path);
                return;
            }
        }
    }
    let exists = match std::fs::symlink_metadata(&path) {
        Ok(m) => !m.file_type().is_symlink() || path.exists(),
        Err(_) => false,
    };
    let exists = exists || (name.ends_with(".git/hooks") && create_hooks_dir(&path, out));
    if !exists {
        out.missing.push(path);
        return;
    }
    // A protected entry that is a symlink: protect the link itself by protecting its parent's
    // entry would need the target; mount over the canonical target only when it stays under
    // the root (outside it, the server has no write grant there anyway).
    let target = match std::fs::canonicalize(&path) {
        Ok(t) if t.starts_with(root) => t,
        Ok(_) => return,
        Err(_) => {
            out.missing.push(path);
            return;
        }
    };
    out.read_only.push(target);
    out.pinned.extend(on_the_way);
}

/// git creates `.git/hooks` in every repository; a missing one is created so that it can be
/// made read-only (a directory that does not exist cannot be).
fn create_hooks_dir(path: &Path, out: &mut ProtectPlan) -> bool {
    let Some(git) = path.parent() else {
        return false;
    };
    if !git.join("config").is_file() {
        return false; // not a repository
    }
    match std::fs::create_dir(path) {
        Ok(()) => {
            out.created.push(path.to_path_buf());
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => true,
        Err(e) => {
            tracing::warn!("cannot create {} to protect it: {e}", path.display());
            false
        }
    }
}

/// `.git` directories below `root` (itself included), breadth first, bounded in depth and work.
fn find_git_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut level = vec![root.to_path_buf()];
    let mut budget = GIT_SEARCH_BUDGET;
    for _ in 0..GIT_SEARCH_DEPTH {
        let mut next = Vec::new();
        for dir in level {
            if budget == 0 {
                return found;
            }
            budget -= 1;
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if !kind.is_dir() {
                    continue;
                }
                let name = entry.file_name();
                if name == ".git" {
                    found.push(entry.path());
                } else if !GIT_SEARCH_SKIP.iter().any(|s| name == *s) {
                    next.push(entry.path());
                }
            }
        }
        level = next;
    }
    found
}

/// In the server's (single-threaded) child, before landlock and seccomp: enter a private mount
/// namespace and make the plan's entries read-only (and its directories pinned) in it.
#[cfg(target_os = "linux")]
pub fn enter(plan: &ProtectPlan) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};

    if plan.is_empty() {
        return Ok(());
    }
    // Root (or a process already in a user namespace of its own, the network namespace tier)
    // can make a mount namespace directly; an ordinary user needs a user namespace for it.
    if unshare(CloneFlags::CLONE_NEWNS).is_err() {
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|e| {
            format!("cannot create a private mount namespace: unshare(CLONE_NEWUSER | CLONE_NEWNS) failed: {e}")
        })?;
        write_proc("/proc/self/setgroups", "deny")?;
        write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1"))?;
        write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1"))?;
    }
    // Nothing done here may reach the user's own mount namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the server's mounts private: {e}"))?;
    // Parents first: a mount on `.git/hooks` goes on top of the pinned `.git`.
    let mut all: Vec<(&PathBuf, bool)> = plan
        .pinned
        .iter()
        .map(|p| (p, false))
        .chain(plan.read_only.iter().map(|p| (p, true)))
        .collect();
    all.sort_by_key(|(p, _)| p.components().count());
    for (path, read_only) in all {
        mount(
            Some(path.as_path()),
            path.as_path(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("cannot bind-mount {}: {e}", path.display()))?;
        if read_only {
            // A remount must repeat the flags the kernel locks in a user namespace.
            let kept = locked_flags(path);
            mount(
                None::<&str>,
                path.as_path(),
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | kept,
                None::<&str>,
            )
            .map_err(|e| format!("cannot make {} read-only: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn locked_flags(path: &Path) -> nix::mount::MsFlags {
    use nix::mount::MsFlags;
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(stat) = statvfs(path) else {
        return MsFlags::empty();
    };
    let flags = stat.flags();
    let mut out = MsFlags::empty();
    for (have, want) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(have) {
            out |= want;
        }
    }
    out
}

#[cfg(target_os = "linux")]
fn write_proc(path: &str, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {path}: {e}"))
}

#[cfg(not(target_os = "linux"))]
pub fn enter(plan: &ProtectPlan) -> Result<(), String> {
    if plan.is_empty() {
        Ok(())
    } else {
        Err("protected paths need a mount namespace (Linux only)".into())
    }
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
    fn existing_entries_are_read_only_and_their_parents_pinned() {
        let (_dir, root) = root();
        for d in [
            ".git/hooks",
            ".github/workflows",
            "sub/deeper/.git",
            "node_modules/x/.git",
        ] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        for f in [".git/config", "sub/deeper/.git/config", ".bashrc"] {
            std::fs::write(root.join(f), "").expect("write");
        }
        let p = plan(
            std::slice::from_ref(&root),
            &[PathBuf::from("notes/secret")],
            &[],
            &[],
        );
        let rel = |v: &[PathBuf]| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            rel(&p.read_only),
            [
                ".bashrc",
                ".git/config",
                ".git/hooks",
                ".github/workflows",
                "sub/deeper/.git/config",
                "sub/deeper/.git/hooks"
            ]
        );
        assert_eq!(
            rel(&p.pinned),
            [".git", ".github", "sub", "sub/deeper", "sub/deeper/.git"]
        );
        assert_eq!(rel(&p.created), ["sub/deeper/.git/hooks"]);
        assert!(p.missing.contains(&root.join(".mcp.json")));
        assert!(p.missing.contains(&root.join("notes/secret")));
        assert!(!rel(&p.read_only)
            .iter()
            .any(|p| p.starts_with("node_modules")));
    }

    #[test]
    fn an_exact_write_path_is_not_protected() {
        let (_dir, root) = root();
        std::fs::create_dir_all(root.join(".vscode")).expect("mkdir");
        let p = plan(
            std::slice::from_ref(&root),
            &[],
            &[],
            &[root.join(".vscode")],
        );
        assert!(p.read_only.is_empty());
        assert!(!p.missing.contains(&root.join(".vscode")));
    }

    #[test]
    fn a_root_inside_a_protected_path_stays_writable() {
        let (_dir, root) = root();
        std::fs::create_dir_all(root.join(".ssh")).expect("mkdir");
        let p = plan(&[root.clone(), root.join(".ssh")], &[], &[], &[]);
        assert!(!p.read_only.contains(&root.join(".ssh")));
    }

    #[test]
    fn names_must_go_down() {
        assert!(is_relative_name(Path::new(".config/fish")));
        assert!(!is_relative_name(Path::new("/etc")));
        assert!(!is_relative_name(Path::new("../x")));
        assert!(!is_relative_name(Path::new("")));
    }
}
