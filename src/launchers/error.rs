//! What can go wrong with a package launch (`npx -y PKG`, `uvx PKG`): a command line the guard
//! does not run from its store, the store and its lock, the fetch under the sandbox, and the
//! fetched package itself. Every message says what to do instead.

use std::path::{Path, PathBuf};

use super::spec::{Family, FETCH_ALLOW_ENV};
use crate::policy::PolicyError;
use crate::sandbox::SandboxError;

/// An error from the package launchers (parse, store, lock, fetch, run).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    // --- The command line -------------------------------------------------------------------
    /// An argument of the launcher is not UTF-8.
    #[error("`{launcher}` arguments must be valid UTF-8")]
    NotUtf8 { launcher: String },
    /// An option that takes a package (`-p`, `--from`) is the last argument.
    #[error("`{launcher} {option}` needs a package after it")]
    MissingPackageValue { launcher: String, option: String },
    /// A launcher option the guard does not understand.
    #[error(
        "`{launcher} {option}` is not understood by mcp-guard, which runs {} packages from its \
         own store: write {form}",
        registry_name(*family)
    )]
    UnsupportedOption {
        family: Family,
        launcher: String,
        option: String,
        /// The forms of this launcher the guard understands.
        form: String,
    },
    /// The launcher names no package.
    #[error("`{launcher}` with no package to run: write {form}")]
    NoPackage {
        family: Family,
        launcher: String,
        /// The forms of this launcher the guard understands.
        form: String,
    },
    /// `npx -p A -p B …`.
    #[error("`{launcher}` with more than one --package is not supported by mcp-guard")]
    MultiplePackages { launcher: String },
    /// A package spec that is not a registry package (a path, tarball, git or URL spec).
    #[error("`{launcher} {spec}`: {}", spec_fix(*family))]
    UnsupportedSpec {
        family: Family,
        launcher: String,
        spec: String,
    },

    // --- Tools and locations ----------------------------------------------------------------
    /// A program the fetch needs (`npm`, `node`, `uv`, `python3`) is not on PATH.
    #[error("{tool} is not on PATH; it is needed to {purpose}")]
    ToolMissing {
        tool: &'static str,
        purpose: &'static str,
    },
    /// `$UV_PYTHON` names a path that does not exist.
    #[error("$UV_PYTHON {} does not exist", path.display())]
    UvPythonMissing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `python3` on PATH is a script (a shim) that could not be asked for its interpreter.
    #[error("cannot ask {} for its interpreter", python.display())]
    PythonQuery {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The interpreter a `python3` shim named does not exist.
    #[error("{} names no interpreter; set UV_PYTHON to a python executable", python.display())]
    PythonInterpreter {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Neither the XDG variable nor `$HOME` is set.
    #[error("cannot find ${var}: set it or $HOME")]
    NoBaseDir { var: &'static str },
    /// Reading, creating, writing or moving a file or directory failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `read`, `create`, `write`, `move the fetched package to`, …
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    // --- The lock and the store -------------------------------------------------------------
    /// `packages.lock` is not valid JSON of the expected shape.
    #[error(
        "the package lock {} is not valid; fix it or remove it (every package is then fetched \
         again and locked anew)",
        path.display()
    )]
    LockInvalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The lock could not be serialized.
    #[error("cannot write the package lock {}", path.display())]
    LockEncode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The lock path has no parent directory.
    #[error("the lock path has no directory: {}", path.display())]
    LockPathWithoutDir { path: PathBuf },
    /// `mcp-guard update PKG` for a package the lock does not hold.
    #[error(
        "`{package}` is not in the package lock {}; it is fetched and locked the first time a \
         server starts from it",
        lock_file.display()
    )]
    NotLocked { package: String, lock_file: PathBuf },
    /// The lock names a store entry that is not there.
    #[error(
        "{} {} is locked in {} but its store entry {} is gone (was the cache cleared?). Run \
         `mcp-guard update {}` to fetch it again",
        locked.package,
        locked.version,
        locked.lock_file.display(),
        locked.entry.display(),
        locked.package
    )]
    EntryGone { locked: Box<LockedEntry> },
    /// The store entry's content no longer hashes to the locked hash.
    #[error(
        "refusing to start {} {}: its store entry {} has changed since it was fetched (content \
         {found}, locked {locked_hash} in {}). Something wrote into the store; if you did not \
         change it yourself, treat this machine's user account as compromised. Run `mcp-guard \
         update {}` to fetch the package again and lock the new content",
        locked.package,
        locked.version,
        locked.entry.display(),
        locked.lock_file.display(),
        locked.package
    )]
    EntryChanged {
        locked: Box<LockedEntry>,
        /// The hash of the entry as it is now.
        found: String,
        /// The hash in the lock.
        locked_hash: String,
    },

    // --- The fetch --------------------------------------------------------------------------
    /// The fetch policy could not be built or resolved.
    #[error("cannot build the fetch sandbox for {spec}")]
    FetchPolicy {
        spec: String,
        #[source]
        source: PolicyError,
    },
    /// The sandbox plan for a fetch step could not be prepared.
    #[error("cannot start `{command}`")]
    FetchStart {
        command: String,
        #[source]
        source: SandboxError,
    },
    /// A fetch step could not be run (egress proxy, supervisor).
    #[error("cannot run `{command}` under the fetch sandbox")]
    FetchRun {
        command: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A fetch step ran and failed.
    #[error(
        "fetching {spec} failed: `{command}` exited with status {status} under the fetch \
         sandbox (its output is above). The fetch may reach only {} (more with ${}, e.g. a \
         mirror) and write only the store",
        family.registry_hosts().join(", "),
        FETCH_ALLOW_ENV
    )]
    FetchFailed {
        family: Family,
        spec: String,
        command: String,
        status: u8,
    },

    // --- The fetched package ----------------------------------------------------------------
    /// The fetched package (npm) or environment (uv) lacks a file or directory it must have.
    #[error("the fetched {what} has no {}", path.display())]
    FetchedMissing {
        /// `package` or `environment`.
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The package's manifest (`package.json`) is not JSON.
    #[error("{} is not JSON", path.display())]
    ManifestInvalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `package.json` has no `version`.
    #[error("{package} has no version in its package.json")]
    ManifestNoVersion { package: String },
    /// `package.json` has no `bin`.
    #[error("{package} has no `bin` in its package.json: it cannot be run with npx")]
    ManifestNoBin { package: String },
    /// The uv environment has no `site-packages`.
    #[error("no site-packages under {}", lib.display())]
    NoSitePackages { lib: PathBuf },
    /// The uv environment has no `NAME-VERSION.dist-info` for the package.
    #[error("{package} was installed but has no dist-info in {}", site.display())]
    NoDistInfo { package: String, site: PathBuf },
    /// The package has no command (npm bin, Python entry point) of the name asked for.
    #[error(
        "{package} {} `{wanted}` (it has: {}); name one with `{launcher} {} {package} {}`",
        match family { Family::Npm => "has no bin named", Family::Uv => "provides no command" },
        available.join(", "),
        command_option(launcher),
        match family { Family::Npm => "BIN", Family::Uv => "COMMAND" }
    )]
    NoSuchCommand {
        family: Family,
        /// The launcher as written (`npx`, `pipx run`, …).
        launcher: String,
        package: String,
        wanted: String,
        available: Vec<String>,
    },
}

/// A locked package and where it lives, for [`PackageError::EntryGone`] and
/// [`PackageError::EntryChanged`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedEntry {
    pub package: String,
    /// The locked version.
    pub version: String,
    /// The store entry.
    pub entry: PathBuf,
    /// The lock file that names it.
    pub lock_file: PathBuf,
}

fn registry_name(family: Family) -> &'static str {
    match family {
        Family::Npm => "npm",
        Family::Uv => "PyPI",
    }
}

/// The launcher's option naming the package when the command to run is another of its
/// commands (`npx -p PKG BIN`, `uvx --from PKG CMD`, `pipx run --spec PKG CMD`).
fn command_option(launcher: &str) -> &'static str {
    match launcher {
        "pipx run" => "--spec",
        "pnpm dlx" | "pnpx" => "--package",
        l if l.starts_with("uv") => "--from",
        _ => "-p",
    }
}

fn spec_fix(family: Family) -> &'static str {
    match family {
        Family::Npm => {
            "mcp-guard runs only npm registry packages (NAME[@VERSION] or @SCOPE/NAME[@VERSION]) \
             from its store; for a local package, run it with node directly (`node \
             path/to/server.js`)"
        }
        Family::Uv => {
            "mcp-guard runs only PyPI packages (NAME or NAME==VERSION, and NAME@VERSION with uvx) \
             from its store; for a local project, run its virtualenv's command directly"
        }
    }
}

/// [`PackageError::Io`]: `cannot {action} {path}`.
pub(super) fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> PackageError {
    PackageError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_fix() {
        let e = PackageError::EntryChanged {
            locked: Box::new(LockedEntry {
                package: "pkg".into(),
                version: "1.0.0".into(),
                entry: "/s/npm/pkg@1.0.0".into(),
                lock_file: "/l/packages.lock".into(),
            }),
            found: "sha256:aa".into(),
            locked_hash: "sha256:bb".into(),
        }
        .to_string();
        assert!(e.contains("has changed since it was fetched"), "{e}");
        assert!(e.contains("sha256:aa") && e.contains("sha256:bb"), "{e}");
        assert!(e.contains("`mcp-guard update pkg`"), "{e}");

        let e = PackageError::NoSuchCommand {
            family: Family::Npm,
            launcher: "npx".into(),
            package: "@s/tools".into(),
            wanted: "x".into(),
            available: vec!["a".into(), "b".into()],
        }
        .to_string();
        assert_eq!(
            e,
            "@s/tools has no bin named `x` (it has: a, b); name one with `npx -p @s/tools BIN`"
        );
        let e = PackageError::NoSuchCommand {
            family: Family::Uv,
            launcher: "pipx run".into(),
            package: "tool".into(),
            wanted: "x".into(),
            available: vec![],
        }
        .to_string();
        assert_eq!(
            e,
            "tool provides no command `x` (it has: ); name one with `pipx run --spec tool COMMAND`"
        );

        let e = PackageError::FetchFailed {
            family: Family::Uv,
            spec: "p".into(),
            command: "uv pip install p".into(),
            status: 1,
        }
        .to_string();
        assert!(
            e.contains("only pypi.org, files.pythonhosted.org (more with $MCP_GUARD_FETCH_ALLOW"),
            "{e}"
        );
    }
}
