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

/// The guard's whole environment, for an unsandboxed run (non-UTF-8 entries cannot cross the
/// JSON plan and are left out).
pub fn full_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Create the private directory (mode 0700) with `home/` and `tmp/` inside, under
/// `$XDG_RUNTIME_DIR` (per-user tmpfs) when usable, else the system temp dir.
pub fn create_private_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    let mut last_error = None;
    for _ in 0..16 {
        let dir = base.join(format!(
            "mcp-guard-{}-{:016x}",
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

/// Unpredictable enough for a directory name (creation is exclusive anyway).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
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
}
