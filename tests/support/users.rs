//! Running the guard as an ordinary user, as real users do: CI runs as root, where the sandbox
//! behaves differently (cgroups instead of rlimits, capabilities to drop).
//!
//! As root, the tests switch to the user [`TEST_USER`] (created by `.ci/run`); as an ordinary
//! user they simply run as themselves.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The ordinary user the tests switch to when they run as root.
pub const TEST_USER: &str = "mcpguard-test";

/// Who runs a guarded command.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Whoever runs the tests (root in CI).
    Current,
    /// An ordinary user: uid, gid, home.
    Ordinary {
        name: String,
        uid: u32,
        gid: u32,
        home: PathBuf,
    },
}

impl Identity {
    pub fn label(&self) -> String {
        match self {
            // SAFETY: getuid cannot fail.
            Identity::Current => format!("uid {} (the test runner)", unsafe { libc::getuid() }),
            Identity::Ordinary { name, uid, .. } => format!("ordinary user {name} (uid {uid})"),
        }
    }

    /// Make `command` run as this identity (with that user's HOME and a plain PATH).
    pub fn apply(&self, command: &mut Command) {
        if let Identity::Ordinary {
            name,
            uid,
            gid,
            home,
        } = self
        {
            let (uid, gid) = (*uid, *gid);
            command
                .env("HOME", home)
                .env("USER", name)
                .env("LOGNAME", name)
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env_remove("XDG_STATE_HOME")
                .env_remove("XDG_CACHE_HOME")
                .env_remove("XDG_DATA_HOME")
                .env_remove("XDG_CONFIG_HOME")
                .current_dir(home);
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }

    /// A path this identity can execute: the binary itself when every directory above it is
    /// open to others, else a copy in a world-readable directory.
    pub fn binary(&self, path: &Path) -> PathBuf {
        if matches!(self, Identity::Current) || reachable_by_others(path) {
            return path.to_owned();
        }
        let dir = std::env::temp_dir().join("mcpguard-test-bins");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        let copy = dir.join(path.file_name().expect("a file name"));
        let tmp = dir.join(format!(
            ".{}.{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("bin"),
            std::process::id()
        ));
        std::fs::copy(path, &tmp).expect("copy a test binary");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, &copy).expect("place a test binary");
        copy
    }

    /// A fresh directory this identity can write (and others read).
    pub fn scratch_dir(&self) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("mcpguard-scratch-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod scratch");
        dir
    }
}

fn reachable_by_others(path: &Path) -> bool {
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode())
            .unwrap_or(0)
    };
    if mode(path) & 0o005 != 0o005 {
        return false;
    }
    path.ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .all(|dir| mode(dir) & 0o001 != 0)
}

/// The identities a test should run as: the runner, and an ordinary user when the runner is
/// root. In CI (`CI` set) a missing test user is an error, elsewhere a printed skip.
pub fn identities() -> Vec<Identity> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("running as an ordinary user already (uid {})", unsafe {
            libc::getuid()
        });
        return vec![Identity::Current];
    }
    match ordinary_user() {
        Some(user) => vec![Identity::Current, user],
        None if std::env::var_os("CI").is_some() => panic!(
            "the ordinary test user `{TEST_USER}` is missing: .ci/run creates it \
             (useradd -m {TEST_USER})"
        ),
        None => {
            eprintln!(
                "SKIPPED the ordinary-user run: no user `{TEST_USER}` (create it with \
                 `useradd -m {TEST_USER}`)"
            );
            vec![Identity::Current]
        }
    }
}

fn ordinary_user() -> Option<Identity> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 || fields[0] != TEST_USER {
            return None;
        }
        let home = PathBuf::from(fields[5]);
        if !home.is_dir() {
            return None;
        }
        Some(Identity::Ordinary {
            name: TEST_USER.to_owned(),
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home,
        })
    })
}
