//! The filesystem grants of a [`Plan`](super::Plan), and how a deny carves them.
//!
//! Landlock can only allow: a rule on a directory grants its whole subtree, and nothing can
//! take a subtree back. So a deny is applied here, when the plan is computed: a grant on an
//! ancestor of a denied path is replaced by grants on each of the ancestor's entries *except*
//! the one leading to the denied path, recursively down to it. The cost, documented for users:
//! the directories on the way (between the granted ancestor and the denied path) lose the right
//! to be listed and to have entries created directly in them; entries created there after the
//! guard started are not covered. A grant on the denied path or below it is dropped.
//!
//! Rules are bound to inodes, not names: paths are canonicalized so that a symlink cannot smuggle
//! a denied directory back in, and symlinks met while splitting are skipped (their targets are
//! reachable, or not, through their own rules). What cannot be seen from paths is not handled:
//! a hard link or a bind mount of a denied file elsewhere under a granted directory.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a grant allows beneath its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsAccess {
    /// Read files and list directories.
    Read,
    /// Read and execute (files landlock must allow to be `execve`d or used as ELF interpreter).
    Execute,
    /// Read and write existing files, no creating or deleting (`/dev/null`).
    Device,
    /// Everything but executing: create, write, truncate, rename, delete.
    Write,
}

/// One landlock rule: `access` on `path` and everything beneath it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FsGrant {
    /// Canonical (symlinks resolved), absolute.
    pub path: PathBuf,
    pub access: FsAccess,
}

impl FsGrant {
    /// A grant on the canonical form of `path`; `None` when it does not exist.
    pub fn new(path: impl AsRef<Path>, access: FsAccess) -> Option<Self> {
        let path = std::fs::canonicalize(path.as_ref()).ok()?;
        Some(FsGrant { path, access })
    }
}

/// Canonical form of a deny path that may not exist (yet): the longest existing ancestor is
/// resolved, the rest appended as written.
pub fn canonical_deny(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(&existing) {
            return rest
                .iter()
                .rev()
                .fold(canonical, |acc, part: &std::ffi::OsString| acc.join(part));
        }
        match (
            existing.file_name().map(ToOwned::to_owned),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Remove every part of `grants` that would reach a path in `denies` (canonical, absolute).
pub fn apply_denies(grants: Vec<FsGrant>, denies: &[PathBuf]) -> Vec<FsGrant> {
    let mut grants = grants;
    for deny in denies {
        let mut carved = Vec::with_capacity(grants.len());
        for grant in grants {
            if grant.path.starts_with(deny) {
                continue;
            }
            if deny.starts_with(&grant.path) {
                split_around(&grant, deny, &mut carved);
            } else {
                carved.push(grant);
            }
        }
        grants = carved;
    }
    grants.sort();
    grants.dedup();
    grants
}

/// Grant every entry of `grant.path` except the way to `deny`, then recurse along that way.
fn split_around(grant: &FsGrant, deny: &Path, out: &mut Vec<FsGrant>) {
    let Ok(relative) = deny.strip_prefix(&grant.path) else {
        return;
    };
    let Some(Component::Normal(next)) = relative.components().next() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&grant.path) else {
        return;
    };
    for entry in entries.flatten() {
        let is_symlink = entry.file_type().map(|t| t.is_symlink()).unwrap_or(true);
        if is_symlink {
            continue;
        }
        let sub = FsGrant {
            path: entry.path(),
            access: grant.access,
        };
        if entry.file_name() == next {
            if sub.path != deny {
                split_around(&sub, deny, out);
            }
        } else {
            out.push(sub);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(path: &Path) -> FsGrant {
        FsGrant {
            path: path.to_path_buf(),
            access: FsAccess::Read,
        }
    }

    #[test]
    fn apply_denies_grants_siblings_instead_of_the_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        for sub in ["a/secret", "a/public", "b"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        std::fs::write(root.join("a/file"), "x").expect("write");
        std::os::unix::fs::symlink(root.join("a"), root.join("link")).expect("symlink");
        let result = apply_denies(vec![grant(&root)], &[root.join("a/secret")]);
        let paths: Vec<_> = result
            .iter()
            .map(|g| g.path.strip_prefix(&root).expect("under root"))
            .collect();
        assert_eq!(
            paths,
            [Path::new("a/file"), Path::new("a/public"), Path::new("b")]
        );
    }

    #[test]
    fn apply_denies_drops_grants_below_a_deny() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("x/y")).expect("mkdir");
        let result = apply_denies(
            vec![grant(&root.join("x/y")), grant(&root.join("x"))],
            &[root.join("x")],
        );
        assert!(result.is_empty());
    }

    #[test]
    fn canonical_deny_keeps_missing_components() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        assert_eq!(
            canonical_deny(&dir.path().join("no/such")),
            root.join("no/such")
        );
    }
}
