//! Reading and writing host configs: a backup of the file as it was before the first wrap
//! (`FILE.mcp-guard-backup`, owner-only: the entries' `env` often holds tokens), and an atomic
//! replace that keeps the file's permissions and writes through a symlink (dotfile managers
//! link configs), never replacing the link itself. The backup lies beside the name the user
//! knows (the link), which also keeps its tokens out of a dotfiles repository.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::HostError;

const BACKUP_SUFFIX: &str = ".mcp-guard-backup";

pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    PathBuf::from(name)
}

pub fn read(path: &Path) -> Result<String, HostError> {
    fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Replace `path`'s `original` text with `updated`. Keeps the first backup: a later wrap (of
/// servers added since) must not overwrite the only copy of the user's untouched file.
/// Returns the backup's path when this call made it.
pub fn write_wrapped(
    path: &Path,
    original: &str,
    updated: &str,
) -> Result<Option<PathBuf>, HostError> {
    let backup = backup_path(path);
    let made = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&backup)
    {
        Ok(mut file) => {
            file.write_all(original.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|source| HostError::Write {
                    path: backup.clone(),
                    source,
                })?;
            Some(backup)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
        Err(source) => {
            return Err(HostError::Write {
                path: backup,
                source,
            })
        }
    };
    replace(path, original, updated)?;
    Ok(made)
}

/// Replace `path`'s `original` text with `updated`; the backup is removed when the file is back
/// to exactly what it holds (nothing left to protect). Returns whether it was removed.
pub fn write_unwrapped(path: &Path, original: &str, updated: &str) -> Result<bool, HostError> {
    replace(path, original, updated)?;
    let backup = backup_path(path);
    let same = fs::read_to_string(&backup).is_ok_and(|b| b == updated);
    if same {
        fs::remove_file(&backup).map_err(|source| HostError::Write {
            path: backup,
            source,
        })?;
    }
    Ok(same)
}

/// Write `updated` next to the real file and rename it over, unless the file no longer holds
/// `original` (the host saved it meanwhile: its change must not be lost).
fn replace(path: &Path, original: &str, updated: &str) -> Result<(), HostError> {
    let target = fs::canonicalize(path).map_err(|source| HostError::Read {
        path: path.to_owned(),
        source,
    })?;
    if read(&target)? != original {
        return Err(HostError::Changed {
            path: path.to_owned(),
        });
    }
    let write_err = |source| HostError::Write {
        path: target.clone(),
        source,
    };
    let mode = fs::metadata(&target)
        .map_err(write_err)?
        .permissions()
        .mode();
    let temp = backup_path(&target).with_extension("mcp-guard-tmp");
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(updated.as_bytes())?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&temp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(write_err)
}
