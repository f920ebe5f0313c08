//! Where trust-on-first-use pins live: `$XDG_STATE_HOME/mcp-guard/pins/<id>.json` (else
//! `~/.local/state/mcp-guard/pins/`), one lockfile per server. A guard, `pin approve` and other
//! guards of the same server may change one at the same time, so every change is a
//! read-modify-write under an exclusive flock of a sidecar file, and the new file replaces the
//! old by rename (a reader that takes no lock still sees one whole file).

use std::path::{Path, PathBuf};

use super::lockfile::{LockError, Lockfile, FORMAT_VERSION};
use crate::launchers::lock::exclusive_hold;
use crate::policy::Vars;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot find the pin directory: neither XDG_STATE_HOME nor HOME is set (set one, or run with --no-pin)")]
    NoStateDir,
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("no pinned server matches `{0}`; `mcp-guard pin status` lists them")]
    NotFound(String),
    #[error("`{prefix}` matches several pinned servers ({}); give more of the id", .ids.join(", "))]
    Ambiguous { prefix: String, ids: Vec<String> },
}

/// The directory of the pin files.
pub fn pins_dir() -> Result<PathBuf, StoreError> {
    Vars::from_env(None)
        .get("XDG_STATE_HOME")
        .map(|d| d.join("mcp-guard").join("pins"))
        .ok_or(StoreError::NoStateDir)
}

pub fn pin_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// The ids of every pin file, sorted.
pub fn list(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                op: "read",
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".json")?;
            (!id.starts_with('.')).then(|| id.to_owned())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// The one id that is `prefix` or starts with it.
pub fn resolve(dir: &Path, prefix: &str) -> Result<String, StoreError> {
    let ids = list(dir)?;
    if ids.iter().any(|id| id == prefix) {
        return Ok(prefix.to_owned());
    }
    let found: Vec<String> = ids
        .into_iter()
        .filter(|id| !prefix.is_empty() && id.starts_with(prefix))
        .collect();
    match found.len() {
        0 => Err(StoreError::NotFound(prefix.to_owned())),
        1 => Ok(found.into_iter().next().unwrap_or_default()),
        _ => Err(StoreError::Ambiguous {
            prefix: prefix.to_owned(),
            ids: found,
        }),
    }
}

/// The pin at `path`, or `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<Lockfile>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Lockfile::load(path)?))
}

/// Read the pin at `path` (an empty one when missing), let `change` edit it, and write it back
/// when `change` says so; all under the exclusive hold. Returns the pin as it now is.
pub fn update(
    path: &Path,
    change: impl FnOnce(&mut Lockfile) -> bool,
) -> Result<Lockfile, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        op: "create",
        path: dir.to_owned(),
        source,
    })?;
    let flock_path = dir.join(".pins.flock");
    let _hold = exclusive_hold(
        &flock_path,
        "pin: waiting for another mcp-guard that is updating pins",
    )
    .map_err(|(op, source)| StoreError::Io {
        op,
        path: flock_path.clone(),
        source,
    })?;
    let mut lock = load(path)?.unwrap_or_else(|| Lockfile {
        format: FORMAT_VERSION,
        ..Lockfile::default()
    });
    if change(&mut lock) {
        lock.save(path)?;
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::Kind;
    use serde_json::json;

    #[test]
    fn update_creates_merges_and_prefixes_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = pin_path(dir.path(), "abc123");
        update(&path, |l| {
            l.insert(Kind::Tools, json!({"name": "a"}));
            true
        })
        .unwrap();
        let lock = update(&path, |l| {
            l.insert(Kind::Tools, json!({"name": "b"}));
            true
        })
        .unwrap();
        assert_eq!(lock.count(Kind::Tools), 2);
        assert_eq!(Lockfile::load(&path).unwrap(), lock);
        pin_path(dir.path(), "abd");
        std::fs::write(pin_path(dir.path(), "abd999"), "{}").unwrap();
        assert_eq!(resolve(dir.path(), "abc").unwrap(), "abc123");
        assert!(matches!(
            resolve(dir.path(), "ab"),
            Err(StoreError::Ambiguous { .. })
        ));
        assert!(matches!(
            resolve(dir.path(), "zz"),
            Err(StoreError::NotFound(_))
        ));
        // Only the pins and the hold's file: no temporary files left.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".pins.flock", "abc123.json", "abd999.json"]);
    }
}
