//! The vocabulary of package launches, shared by the orchestration (`package.rs`) and the
//! families (`npm.rs`, `uv.rs`): which manager, the command line understood, one fetch step.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::PackageError;

/// Extra `[network] allow` entries for the fetch sandbox, comma-separated: a registry mirror,
/// or the address range a site's proxy or mirror answers on (`203.0.113.0/24:443`).
pub const FETCH_ALLOW_ENV: &str = "MCP_GUARD_FETCH_ALLOW";

/// Which package manager a launch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// `npx`, `npm exec`: the npm registry.
    Npm,
    /// `uvx`, `uv tool run`: PyPI.
    Uv,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Npm => "npm",
            Family::Uv => "uv",
        }
    }

    /// The registry hosts the fetch sandbox may reach.
    pub fn registry_hosts(self) -> &'static [&'static str] {
        match self {
            Family::Npm => &["registry.npmjs.org"],
            Family::Uv => &["pypi.org", "files.pythonhosted.org"],
        }
    }
}

/// A package launcher command line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLaunch {
    pub family: Family,
    /// The launcher as written (`npx`, `npm exec`, `uvx`, `uv tool run`), for messages.
    pub launcher: String,
    /// Registry name (`@scope/name`, `mcp-server-time`).
    pub package: String,
    /// The version asked for, if any (`1.2.3`, `^1`, `latest`).
    pub requested: Option<String>,
    /// The command to run from the package when it is not the package's default one
    /// (`npx -p PKG CMD`, `uvx --from PKG CMD`).
    pub command: Option<String>,
    /// The server's arguments.
    pub args: Vec<OsString>,
}

impl PackageLaunch {
    /// The lock's key: one entry per launcher family and package spec.
    pub fn lock_key(&self) -> String {
        match &self.requested {
            Some(v) => format!("{}:{}@{v}", self.family.as_str(), self.package),
            None => format!("{}:{}", self.family.as_str(), self.package),
        }
    }

    /// `PKG[@VER]` as the user wrote it.
    pub fn spec(&self) -> String {
        match &self.requested {
            Some(v) => format!("{}@{v}", self.package),
            None => self.package.clone(),
        }
    }
}

/// One confined step of a fetch.
#[derive(Debug, Clone)]
pub struct FetchStep {
    pub command: Vec<OsString>,
    /// Programs the step launches by name (the fetch policy's `[launch] allow`).
    pub launch: Vec<String>,
    pub read: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
    pub env_pass: Vec<&'static str>,
    pub env_set: Vec<(&'static str, String)>,
}

/// The value of the option at `rest[*i]` (`-p PKG`, `--from PKG`): the next argument, `*i` moved
/// onto it.
pub(super) fn option_value<'a>(
    rest: &'a [OsString],
    i: &mut usize,
    launcher: &str,
) -> Result<&'a str, PackageError> {
    let option = rest[*i].to_string_lossy().into_owned();
    *i += 1;
    rest.get(*i)
        .and_then(|a| a.to_str())
        .ok_or_else(|| PackageError::MissingPackageValue {
            launcher: launcher.to_owned(),
            option,
        })
}

/// The canonical path of `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    crate::sandbox::path_search::resolve_program(name, &path)
}

/// A registry package spec `NAME[@VERSION]` (`@scope/name@1.2`): name and version.
pub fn split_npm_spec(spec: &str) -> (String, Option<String>) {
    let (scope, rest) = match spec.strip_prefix('@') {
        Some(rest) => ("@", rest),
        None => ("", spec),
    };
    match rest.split_once('@') {
        Some((name, version)) if !version.is_empty() => {
            (format!("{scope}{name}"), Some(version.to_owned()))
        }
        Some((name, _)) => (format!("{scope}{name}"), None),
        None => (spec.to_owned(), None),
    }
}

/// For the launchers' parse tests.
#[cfg(test)]
pub(super) mod test_support {
    use super::{OsString, PackageLaunch};
    use crate::launchers::PackageError;

    pub(in crate::launchers) fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// `args` read by `parse`, which must see a package launch in it.
    pub(in crate::launchers) fn parsed(
        parse: fn(&[OsString]) -> Result<Option<PackageLaunch>, PackageError>,
        args: &[&str],
    ) -> PackageLaunch {
        parse(&os(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .unwrap_or_else(|| panic!("{args:?}: not a package launch"))
    }

    /// What a launch runs: (package, requested version, command).
    pub(in crate::launchers) fn what(l: &PackageLaunch) -> (&str, Option<&str>, Option<&str>) {
        (
            l.package.as_str(),
            l.requested.as_deref(),
            l.command.as_deref(),
        )
    }
}
