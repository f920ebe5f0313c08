//! The server's environment and its private HOME/TMPDIR.
//!
//! The guard's environment is the host's, full of tokens and keys meant for other tools: the
//! server gets only a short allowlist of harmless names, then what the policy passes by name or
//! sets. Interpreter knobs that load code (`NODE_OPTIONS`, `PYTHONPATH`, `LD_PRELOAD`, ...) are
//! deliberately not on the list: pass them by name if a server needs them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::EnvRules;

/// Names copied from the guard's environment when present.
const ALLOWED: &[&str] = &["PATH", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME"];
/// Prefixes copied likewise (locale categories).
const ALLOWED_PREFIXES: &[&str] = &["LC_"];
/// Used when the guard itself has no PATH.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The server's environment: allowlist, private HOME/TMPDIR, then `rules` (which win).
pub fn server_env(
    rules: &EnvRules,
    private_dir: &Path,
    guard_env: impl IntoIterator<Item = (OsString, OsString)>,
) -> BTreeMap<String, String> {
    let guard: BTreeMap<String, String> = guard_env
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut env: BTreeMap<String, String> = guard
        .iter()
        .filter(|(name, _)| {
            ALLOWED.contains(&name.as_str()) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    let home = private_dir.join("home").to_string_lossy().into_owned();
    let tmp = private_dir.join("tmp").to_string_lossy().into_owned();
    env.insert("HOME".into(), home);
    for name in ["TMPDIR", "TMP", "TEMP"] {
        env.insert(name.into(), tmp.clone());
    }
    for name in &rules.pass {
        if let Some(value) = guard.get(name) {
            env.insert(name.clone(), value.clone());
        }
    }
    for (name, value) in &rules.set {
        env.insert(name.clone(), value.clone());
    }
    env
}

/// An unsandboxed run's environment: the guard's whole environment (nothing is scrubbed
/// without a sandbox) with the policy's fixed values on top, so `--env NAME=VALUE` and
/// `env NAME=VALUE cmd` reach the server as they do under the sandbox.
pub fn unsandboxed_env(rules: &EnvRules) -> BTreeMap<String, String> {
    let mut env = full_env();
    env.extend(rules.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// The guard's whole environment, for an unsandboxed run (non-UTF-8 entries cannot cross the
/// JSON plan and are left out).
pub fn full_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Name prefix of the private directories: `mcp-guard-<guard pid>-<random>`.
const PRIVATE_PREFIX: &str = "mcp-guard-";

/// Create the private directory (mode 0700) with `home/` and `tmp/` inside, under
/// `$XDG_RUNTIME_DIR` (per-user tmpfs) when usable, else the system temp dir. Orphans of dead
/// guards in the same place are swept first.
///
/// Cleanup is belt and braces: the guard removes the directory when it exits, the supervisor
/// (which outlives a SIGKILLed guard) removes it once the server's tree is dead, and this sweep
/// catches what is left when both were killed at once (a cgroup kill, the OOM killer).
pub fn create_private_dir() -> io::Result<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    sweep_orphans(&base);
    create_private_dir_in(&base)
}

fn create_private_dir_in(base: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    let mut last_error = None;
    for _ in 0..16 {
        let dir = base.join(format!(
            "{PRIVATE_PREFIX}{}-{:016x}",
            std::process::id(),
            random_u64()
        ));
        match builder.create(&dir) {
            Ok(()) => {
                let inner = builder
                    .create(dir.join("home"))
                    .and_then(|()| builder.create(dir.join("tmp")));
                if let Err(err) = inner {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(err);
                }
                // Held for as long as the guard lives (the fd is deliberately never closed; a
                // guard makes one or two of these), so no sweep takes the directory from us.
                std::mem::forget(lock_private_dir(&dir)?);
                return Ok(dir);
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last_error = Some(err),
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!(
                        "cannot create the server's private directory in {}: {err}",
                        base.display()
                    ),
                ))
            }
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::other("cannot create the server's private directory")))
}

/// A shared `flock` on the private directory: "someone still uses it". The guard and the
/// supervisor each hold one; a sweep only takes a directory nobody holds. Close-on-exec, so the
/// server never holds it (a server that outlived both could not be told apart from a leak).
pub fn lock_private_dir(dir: &Path) -> io::Result<std::os::fd::OwnedFd> {
    let fd = open_dir_nofollow(dir)?;
    // SAFETY: flock takes no pointers; the fd is ours.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::LOCK_SH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn open_dir_nofollow(dir: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)?;
    Ok(file.into())
}

/// Remove the private directories in `base` left by guards that died without cleaning up.
/// Only directories (never symlinks) that this user owns, whose guard pid is dead and that no
/// guard or supervisor holds locked; `remove_dir_all` does not follow symlinks inside either.
/// The pid check covers the moment between a guard's mkdir and its lock; the lock covers pid
/// reuse and guards in other pid namespaces sharing the directory.
pub fn sweep_orphans(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(guard_pid_of) else {
            continue;
        };
        let path = entry.path();
        let owned_dir =
            std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_dir() && m.uid() == me);
        if !owned_dir || pid_alive(pid) || held_by_someone(&path) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::debug!("removed the orphaned private directory {}", path.display()),
            Err(e) => tracing::debug!("cannot remove the orphan {}: {e}", path.display()),
        }
    }
}

/// The guard pid in `mcp-guard-<pid>-<hex>`.
fn guard_pid_of(name: &str) -> Option<i32> {
    let (pid, random) = name.strip_prefix(PRIVATE_PREFIX)?.split_once('-')?;
    let valid = !random.is_empty() && random.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| pid.parse().ok()).flatten().filter(|p| *p > 0)
}

fn pid_alive(pid: i32) -> bool {
    // Signal 0 only checks for existence; EPERM means it exists (another user's).
    let pid = nix::unistd::Pid::from_raw(pid);
    !matches!(
        nix::sys::signal::kill(pid, None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// True when a guard or supervisor holds the directory's lock (or it cannot be checked).
fn held_by_someone(dir: &Path) -> bool {
    let Ok(fd) = open_dir_nofollow(dir) else {
        return true;
    };
    // SAFETY: flock takes no pointers; the fd is ours and closes (unlocking) when dropped.
    unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::LOCK_EX | libc::LOCK_NB,
        ) != 0
    }
}

/// Unpredictable, for a directory name (creation is exclusive anyway). Should the OS have no
/// randomness to give, the retry loop's exclusive creation still keeps names apart.
fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_env_keeps_only_the_allowlist_and_policy_names() {
        let rules = EnvRules {
            pass: vec!["API_TOKEN".into(), "ABSENT".into()],
            set: [("MODE".to_string(), "x".to_string())].into(),
        };
        let guard = [
            ("PATH", "/bin"),
            ("LC_ALL", "C"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("API_TOKEN", "t"),
            ("NODE_OPTIONS", "--require=/x"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = server_env(&rules, Path::new("/p"), guard);
        let names: Vec<_> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "API_TOKEN",
                "HOME",
                "LC_ALL",
                "MODE",
                "PATH",
                "TEMP",
                "TMP",
                "TMPDIR"
            ]
        );
        assert_eq!(env["HOME"], "/p/home");
        assert_eq!(env["TMPDIR"], "/p/tmp");
    }

    #[test]
    fn create_private_dir_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = create_private_dir().expect("private dir");
        let mode = dir.metadata().expect("stat").permissions().mode();
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(mode & 0o777, 0o700);
    }

    /// A pid that was just in use and is now dead (reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        child.wait().expect("wait");
        child.id()
    }

    #[test]
    fn sweep_removes_only_unlocked_orphans_of_dead_guards() {
        let base = tempfile::tempdir().expect("tempdir");
        let dead = dead_pid();
        let orphan = base.path().join(format!("mcp-guard-{dead}-00aa"));
        std::fs::create_dir_all(orphan.join("home/.cache")).expect("orphan");
        let held = base.path().join(format!("mcp-guard-{dead}-00bb"));
        std::fs::create_dir(&held).expect("held");
        let _lock = lock_private_dir(&held).expect("lock");
        let live = create_private_dir_in(base.path()).expect("our own");
        // A symlink with an orphan's name: the sweep must not follow it into the target.
        let target = base.path().join("precious");
        std::fs::create_dir(&target).expect("target");
        std::fs::write(target.join("keep"), "x").expect("file");
        let link = base.path().join(format!("mcp-guard-{dead}-00cc"));
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let unrelated = base.path().join(format!("mcp-guard-{dead}"));
        std::fs::create_dir(&unrelated).expect("unrelated");

        sweep_orphans(base.path());

        assert!(!orphan.exists(), "the orphan of a dead guard stays");
        assert!(held.exists(), "a locked directory was swept");
        assert!(live.exists(), "a live guard's directory was swept");
        assert!(target.join("keep").exists(), "the sweep followed a symlink");
        assert!(
            link.symlink_metadata().is_ok(),
            "the sweep removed a symlink"
        );
        assert!(unrelated.exists(), "a name not made by the guard was swept");
    }

    #[test]
    fn guard_pid_is_read_only_from_our_names() {
        assert_eq!(guard_pid_of("mcp-guard-42-00ff"), Some(42));
        assert_eq!(guard_pid_of("mcp-guard-42"), None);
        assert_eq!(guard_pid_of("mcp-guard-x-00ff"), None);
        assert_eq!(guard_pid_of("mcp-guard-0-00ff"), None);
        assert_eq!(guard_pid_of("mcp-guard-42-zz"), None);
        assert_eq!(guard_pid_of("other-42-00ff"), None);
    }
}
