//! Package launchers (`npx -y PKG`, `uvx PKG`, `pnpm dlx`, `bunx`, `pipx run`): the guard's own
//! store, the lock, and the fetch sandbox. The families themselves (how they install, what they
//! run) are in `npm.rs` and `uv.rs`; the other launchers' command lines in `pnpm_bun.rs` and
//! `pipx.rs`, the lock file in `lock.rs`.
//!
//! - **store**: `$XDG_CACHE_HOME/mcp-guard/store/<npm|uv>/<package>@<version>/`, one directory
//!   per resolved package version, written only by the fetch sandbox, never by a server (a
//!   server gets it read-only and executable).
//! - **fetch**: when the package is not in the store, the real package manager runs *under the
//!   sandbox* (the same supervisor and layers as a server) with the registry hosts as its only
//!   network (the egress proxy, `hosts` mode), a private HOME, and one writable directory: a
//!   staging directory in the store, renamed into place once the install has succeeded.
//!   Install scripts run there too. The user's `~/.npm` and uv caches are never opened.
//! - **lock**: `$XDG_STATE_HOME/mcp-guard/packages.lock` (JSON) records, per family (npm, uv)
//!   and package spec, the resolved version and a SHA-256 of the store entry's whole tree. Every
//!   start checks it: an unversioned `npx -y pkg` keeps its locked version until `mcp-guard
//!   update`, and an entry whose content changed is refused. Changes are made under an
//!   exclusive hold (lock.rs), so guards starting together keep each other's entries.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{io_error, LockedEntry, PackageError};
use super::lock::{HeldLock, Lock, LockEntry};
use super::spec::{Family, FetchStep, PackageLaunch, FETCH_ALLOW_ENV};
use crate::policy::resolve::ServerCommand;
use crate::policy::{load_layers, merge, parse_policy, Origin, PolicyError, Vars};
use crate::sandbox::SandboxConfig;

/// How long one fetch step may take before its whole tree is killed.
const FETCH_LIMIT: Duration = Duration::from_secs(600);

/// When `command` is a package launcher the guard understands, what it asks for.
pub fn look_through_package(command: &[OsString]) -> Result<Option<PackageLaunch>, PackageError> {
    let parsers = [
        super::npm::parse,
        super::pnpm_bun::parse,
        super::uv::parse,
        super::pipx::parse,
    ];
    for parse in parsers {
        if let Some(launch) = parse(command)? {
            return Ok(Some(launch));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Locations

/// `$XDG_CACHE_HOME/mcp-guard/store` (else `~/.cache/mcp-guard/store`).
pub fn store_root() -> Result<PathBuf, PackageError> {
    xdg_dir("XDG_CACHE_HOME").map(|d| d.join("mcp-guard").join("store"))
}

/// `$XDG_STATE_HOME/mcp-guard/packages.lock` (else `~/.local/state/mcp-guard/packages.lock`).
pub fn lock_path() -> Result<PathBuf, PackageError> {
    xdg_dir("XDG_STATE_HOME").map(|d| d.join("mcp-guard").join("packages.lock"))
}

fn xdg_dir(name: &'static str) -> Result<PathBuf, PackageError> {
    Vars::from_env(None)
        .get(name)
        .map(Path::to_owned)
        .ok_or(PackageError::NoBaseDir { var: name })
}

/// A store entry's directory name: `@scope/name` becomes `@scope+name`.
fn entry_name(package: &str, version: &str) -> String {
    format!("{}@{version}", package.replace('/', "+"))
}

// ---------------------------------------------------------------------------------------------
// The content hash

/// SHA-256 over a directory tree: for every entry in name order, its path relative to `root`,
/// its kind, and for files the executable bit and the content, for symlinks the target.
/// Modes other than the executable bit, owners and times are left out (a copy of the store
/// hashes the same).
pub fn hash_tree(root: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hash_dir(root, Path::new(""), &mut hasher)?;
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

fn hash_dir(root: &Path, rel: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let mut names: Vec<OsString> = std::fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let mut buf = vec![0u8; 64 * 1024];
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        hasher.update(rel.as_os_str().as_bytes());
        hasher.update([0]);
        if meta.file_type().is_symlink() {
            hasher.update(b"l");
            hasher.update(std::fs::read_link(&path)?.as_os_str().as_bytes());
            hasher.update([0]);
        } else if meta.is_dir() {
            hasher.update(b"d");
            hash_dir(root, &rel, hasher)?;
            hasher.update(b"D");
        } else if meta.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            hasher.update(if exec { b"x" } else { b"f" });
            hasher.update(meta.len().to_le_bytes());
            let mut file = std::fs::File::open(&path)?;
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        } else {
            hasher.update(b"o");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Start: store, lock, fetch

/// What `run` launches for a package launch: the command from the store entry, and the entry
/// (to be granted read and execute).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub command: Vec<OsString>,
    pub entry: PathBuf,
}

/// Make `launch` ready to run from the store: check the locked entry, or fetch and lock it.
pub fn prepare(launch: &PackageLaunch) -> Result<Prepared, PackageError> {
    let store = store_root()?;
    let lock_file = lock_path()?;
    let key = launch.lock_key();
    // Most starts find their entry, and read the lock without waiting for other guards.
    let locked = match Lock::load(&lock_file)?.packages.remove(&key) {
        Some(locked) => locked,
        None => fetch_and_lock(launch, &store, &lock_file, &key)?,
    };
    let entry = store.join(&locked.entry);
    verify(launch, &locked, &entry, &lock_file)?;
    let command = match launch.family {
        Family::Npm => super::npm::command(launch, &entry)?,
        Family::Uv => super::uv::command(launch, &entry)?,
    };
    Ok(Prepared { command, entry })
}

/// The first start of a package: fetch it and add it to the lock. The hold lasts across the
/// fetch, so a second guard starting the same package waits and then uses this entry, instead
/// of fetching it again and replacing the store entry under a server already running from it.
fn fetch_and_lock(
    launch: &PackageLaunch,
    store: &Path,
    lock_file: &Path,
    key: &str,
) -> Result<LockEntry, PackageError> {
    let mut held = HeldLock::acquire(lock_file)?;
    if let Some(locked) = held.lock.packages.get(key) {
        return Ok(locked.clone());
    }
    let locked = fetch(launch, store, &held.lock, None)?;
    held.lock.packages.insert(key.to_owned(), locked.clone());
    held.save()?;
    tracing::info!(
        "package: {} {} fetched into the store and locked (sha256 of the entry in {})",
        launch.package,
        locked.version,
        lock_file.display()
    );
    Ok(locked)
}

fn verify(
    launch: &PackageLaunch,
    locked: &LockEntry,
    entry: &Path,
    lock_file: &Path,
) -> Result<(), PackageError> {
    let details = || {
        Box::new(LockedEntry {
            package: launch.package.clone(),
            version: locked.version.clone(),
            entry: entry.to_owned(),
            lock_file: lock_file.to_owned(),
        })
    };
    if !entry.is_dir() {
        return Err(PackageError::EntryGone { locked: details() });
    }
    let hash = hash_tree(entry).map_err(|e| io_error("read", entry, e))?;
    if hash != locked.hash {
        return Err(PackageError::EntryChanged {
            locked: details(),
            found: hash,
            locked_hash: locked.hash.clone(),
        });
    }
    Ok(())
}

/// `mcp-guard update [PKG]`: fetch every locked package (or those named `package`) again,
/// resolving unversioned specs to the newest version, and lock the new entries. Returns the
/// changes, one line each.
pub fn update(package: Option<&str>) -> Result<Vec<String>, PackageError> {
    let store = store_root()?;
    let lock_file = lock_path()?;
    // Held throughout: starts of locked packages go on (they only read), first fetches wait.
    let mut held = HeldLock::acquire(&lock_file)?;
    let keys: Vec<String> = held
        .lock
        .packages
        .iter()
        .filter(|(_, e)| package.is_none_or(|p| p == e.package))
        .map(|(k, _)| k.clone())
        .collect();
    if keys.is_empty() {
        match package {
            Some(p) => {
                return Err(PackageError::NotLocked {
                    package: p.to_owned(),
                    lock_file,
                })
            }
            None => return Ok(vec!["no package is locked yet".into()]),
        }
    }
    let mut lines = Vec::new();
    for key in keys {
        let old = held.lock.packages[&key].clone();
        let launch = PackageLaunch {
            family: old.family,
            launcher: old.family.as_str().into(),
            package: old.package.clone(),
            requested: old.requested.clone(),
            command: None,
            args: Vec::new(),
        };
        let new = fetch(&launch, &store, &held.lock, Some(&old.entry))?;
        lines.push(if new.version == old.version && new.hash == old.hash {
            format!("{key}: {} (unchanged)", new.version)
        } else {
            format!("{key}: {} -> {} ({})", old.version, new.version, new.hash)
        });
        // Other keys naming the same entry (`uv:x` and `uv:x@1.0`) now name its new content.
        for other in held.lock.packages.values_mut() {
            if other.entry == new.entry {
                other.hash.clone_from(&new.hash);
            }
        }
        held.lock.packages.insert(key, new);
        held.save()?;
        // The old entry goes once no lock entry names it any more.
        if !held.lock.packages.values().any(|e| e.entry == old.entry) {
            remove_tree(&store.join(&old.entry));
        }
    }
    Ok(lines)
}

/// Fetch `launch` into the store under the sandbox; returns the lock entry. `lock`: the lock as
/// held (whose entries are in use); `replacing`: the entry being updated (fetched anew even if
/// the version is the same).
fn fetch(
    launch: &PackageLaunch,
    store: &Path,
    lock: &Lock,
    replacing: Option<&str>,
) -> Result<LockEntry, PackageError> {
    let family_dir = store.join(launch.family.as_str());
    std::fs::create_dir_all(&family_dir)
        .map_err(|e| io_error("create the package store", &family_dir, e))?;
    let staging = family_dir.join(format!(
        ".fetch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir(&staging).map_err(|e| io_error("create", &staging, e))?;
    let result = fetch_into(launch, &staging, &family_dir, lock, replacing);
    remove_tree(&staging);
    result
}

fn fetch_into(
    launch: &PackageLaunch,
    staging: &Path,
    family_dir: &Path,
    lock: &Lock,
    replacing: Option<&str>,
) -> Result<LockEntry, PackageError> {
    tracing::info!(
        "package: fetching {} from {} under the sandbox (network: {} only; writes: {} only)",
        launch.spec(),
        launch.family.registry_hosts().join(", "),
        launch.family.registry_hosts().join(", "),
        staging.display()
    );
    let steps = match launch.family {
        Family::Npm => super::npm::fetch_steps(launch, staging)?,
        Family::Uv => super::uv::fetch_steps(launch, staging)?,
    };
    for step in steps {
        run_fetch_step(launch, staging, &step)?;
    }
    let built = staging.join("entry");
    let version = match launch.family {
        Family::Npm => super::npm::installed_version(launch, &built)?,
        Family::Uv => super::uv::installed_version(launch, &built)?,
    };
    let name = entry_name(&launch.package, &version);
    let entry_rel = format!("{}/{name}", launch.family.as_str());
    let dest = family_dir.join(&name);
    if dest.exists() {
        let in_use = lock.packages.values().any(|e| e.entry == entry_rel);
        if in_use && replacing != Some(entry_rel.as_str()) {
            // Another lock entry's content (servers may be running from it): keep it, use it.
            return locked(launch, version, entry_rel, &dest);
        }
        // Replaced by the fresh fetch: an update re-fetches, and an entry no lock names (a
        // fetch that died before locking) is not trusted.
        remove_tree(&dest);
    }
    std::fs::rename(&built, &dest)
        .map_err(|e| io_error("move the fetched package to", &dest, e))?;
    locked(launch, version, entry_rel, &dest)
}

/// The lock entry for the store entry at `dest` (its tree hashed now).
fn locked(
    launch: &PackageLaunch,
    version: String,
    entry: String,
    dest: &Path,
) -> Result<LockEntry, PackageError> {
    Ok(LockEntry {
        family: launch.family,
        package: launch.package.clone(),
        requested: launch.requested.clone(),
        version,
        hash: hash_tree(dest).map_err(|e| io_error("read", dest, e))?,
        entry,
        fetched: now_rfc3339(),
    })
}

/// The fetch sandbox, as a policy layered over `default`: the staging directory is the only
/// writable place (besides the private HOME), the registry hosts the only network.
fn fetch_config(
    launch: &PackageLaunch,
    staging: &Path,
    step: &FetchStep,
) -> Result<SandboxConfig, PolicyError> {
    let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
    let list = |v: &[PathBuf]| v.iter().map(|p| q(p)).collect::<Vec<_>>().join(", ");
    let strs = |v: &[String]| {
        v.iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut allow: Vec<String> = launch
        .family
        .registry_hosts()
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    if let Ok(extra) = std::env::var(FETCH_ALLOW_ENV) {
        allow.extend(
            extra
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    let mut text = format!(
        "version = 1\n\
         [launch]\nallow = [{}]\n\
         [filesystem]\nwrite = [{}]\nread = [{}]\nexec = [{}]\n\
         [network]\nmode = \"hosts\"\nallow = [{}]\n\
         [limits]\nmemory = \"2GiB\"\npids = 512\nwall_clock = \"10m\"\n\
         [env]\npass = [{}]\n[env.set]\n",
        strs(&step.launch),
        q(staging),
        list(&step.read),
        list(&step.exec),
        strs(&allow),
        strs(
            &step
                .env_pass
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
        ),
    );
    for (name, value) in &step.env_set {
        text.push_str(&format!(
            "{name} = {}\n",
            serde_json::to_string(value).unwrap_or_default()
        ));
    }
    let mut layers = load_layers(Some("default"), None)?;
    layers.push((
        Origin::Profile("package fetch (built in)".into()),
        parse_policy("package fetch policy", &text)?,
    ));
    let effective = merge(layers);
    let resolved = effective.resolve(
        &Vars::from_env(None),
        Some(&ServerCommand::new(&step.command)),
    )?;
    Ok(resolved.sandbox)
}

fn run_fetch_step(
    launch: &PackageLaunch,
    staging: &Path,
    step: &FetchStep,
) -> Result<(), PackageError> {
    let config =
        fetch_config(launch, staging, step).map_err(|source| PackageError::FetchPolicy {
            spec: launch.spec(),
            source,
        })?;
    let mut plan = crate::sandbox::prepare(&config, &step.command).map_err(|source| {
        PackageError::FetchStart {
            command: describe(&step.command),
            source,
        }
    })?;
    // The egress proxy and the supervisor report their own errors; kept as the source.
    let run = |source: Box<dyn std::error::Error + Send + Sync>| PackageError::FetchRun {
        command: describe(&step.command),
        source,
    };
    let egress = crate::egress::launch::prepare(&mut plan).map_err(|e| run(e.into()))?;
    let status =
        crate::launch::batch::run_batch(&plan, egress, FETCH_LIMIT).map_err(|e| run(e.into()))?;
    if status != 0 {
        return Err(PackageError::FetchFailed {
            family: launch.family,
            spec: launch.spec(),
            command: describe(&step.command),
            status,
        });
    }
    Ok(())
}

fn describe(command: &[OsString]) -> String {
    command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn remove_tree(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::spec::split_npm_spec;
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(split_npm_spec("a"), ("a".into(), None));
        assert_eq!(split_npm_spec("a@1.2"), ("a".into(), Some("1.2".into())));
        assert_eq!(split_npm_spec("@s/a"), ("@s/a".into(), None));
        assert_eq!(
            split_npm_spec("@s/a@^1"),
            ("@s/a".into(), Some("^1".into()))
        );
        assert_eq!(entry_name("@s/a", "1.0.0"), "@s+a@1.0.0");
    }

    #[test]
    fn tree_hash_sees_content_mode_and_names() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcpg-hash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/f"), "x").unwrap();
        let h1 = hash_tree(&dir).unwrap();
        assert_eq!(h1, hash_tree(&dir).unwrap());
        std::fs::write(dir.join("a/f"), "y").unwrap();
        let h2 = hash_tree(&dir).unwrap();
        assert_ne!(h1, h2);
        std::fs::set_permissions(dir.join("a/f"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let h3 = hash_tree(&dir).unwrap();
        assert_ne!(h2, h3);
        std::fs::write(dir.join("a/g"), "").unwrap();
        assert_ne!(h3, hash_tree(&dir).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
