//! `pipx run [--spec PKG[==VER]] APP[==VER] ARGS…`, as host configs write it: a launcher of the
//! PyPI family.
//!
//! Only the command line is pipx's. The package is fetched with the uv family's machinery
//! (`uv.rs`) into the guard's store and its entry point run from there, exactly as for `uvx`,
//! and shares the `uvx` lock entry (`uv:PKG`). pipx itself is never run, so its venvs and caches
//! (`~/.local/pipx`, `~/.local/share/pipx`) are never opened, and it need not be installed.
//! `--no-cache` is accepted and changes nothing: pipx's cache is not used at all, and the
//! locked version stays until `mcp-guard update`.

use std::ffi::OsString;

use super::error::PackageError;
use super::npm::program_name;
use super::spec::{option_value, Family, PackageLaunch};
use super::uv::{normalize, split_spec};

const LAUNCHER: &str = "pipx run";

/// Options that change nothing the guard does (output, pipx's own cache).
const QUIET: &[&str] = &["-q", "--quiet", "-v", "--verbose", "--no-cache"];

/// `pipx run …`, understood; `None` for other commands.
pub fn parse(command: &[OsString]) -> Result<Option<PackageLaunch>, PackageError> {
    if program_name(command) != "pipx" || command.get(1).is_none_or(|a| a != "run") {
        return Ok(None);
    }
    let rest = &command[2..];
    let mut spec: Option<String> = None;
    let mut i = 0;
    while i < rest.len() {
        let text = rest[i].to_str().ok_or_else(|| PackageError::NotUtf8 {
            launcher: LAUNCHER.into(),
        })?;
        if text.starts_with('-') {
            if text == "--spec" {
                spec = Some(option_value(rest, &mut i, LAUNCHER)?.to_owned());
            } else if let Some(value) = text.strip_prefix("--spec=") {
                spec = Some(value.to_owned());
            } else if !QUIET.contains(&text) {
                return Err(PackageError::UnsupportedOption {
                    family: Family::Uv,
                    launcher: LAUNCHER.into(),
                    option: text.to_owned(),
                    form: FORMS.into(),
                });
            }
            i += 1;
            continue;
        }
        // The first operand: the app, which (without --spec) is also the package.
        let (spec, app) = match spec {
            Some(spec) => (spec, Some(text.to_owned())),
            None => (text.to_owned(), None),
        };
        let (package, requested) = pip_spec(&spec)?;
        return Ok(Some(PackageLaunch {
            family: Family::Uv,
            launcher: LAUNCHER.into(),
            package: normalize(&package),
            requested,
            // `pipx run PKG`: the app named like the package, as written.
            command: app.or(Some(package)),
            args: rest[i + 1..].to_vec(),
        }));
    }
    Err(PackageError::NoPackage {
        family: Family::Uv,
        launcher: LAUNCHER.into(),
        form: FORMS.into(),
    })
}

const FORMS: &str = "`pipx run PACKAGE[==VERSION] ARGS…` or `pipx run --spec PACKAGE[==VERSION] \
                     APP ARGS…` (options: --spec, --no-cache, -q/--quiet, -v/--verbose)";

/// pip's `NAME` or `NAME==VERSION` (pipx hands its spec to pip, which reads `NAME@…` as a URL).
fn pip_spec(spec: &str) -> Result<(String, Option<String>), PackageError> {
    if spec.contains('@') {
        return Err(PackageError::UnsupportedSpec {
            family: Family::Uv,
            launcher: LAUNCHER.into(),
            spec: spec.to_owned(),
        });
    }
    split_spec(spec, LAUNCHER)
}

#[cfg(test)]
mod tests {
    use super::super::spec::test_support::{os, parsed, what};
    use super::*;

    #[test]
    fn pipx_run_forms() {
        let l = parsed(
            parse,
            &["pipx", "run", "mcp-server-time", "--local-timezone", "UTC"],
        );
        assert_eq!(
            (l.family, l.launcher.as_str(), what(&l)),
            (
                Family::Uv,
                "pipx run",
                ("mcp-server-time", None, Some("mcp-server-time"))
            )
        );
        assert_eq!(l.args, os(&["--local-timezone", "UTC"]));
        // Options after the app are the app's.
        let l = parsed(
            parse,
            &[
                "/usr/bin/pipx",
                "run",
                "--no-cache",
                "Mcp_Server.Git==1.0",
                "-v",
            ],
        );
        assert_eq!(
            what(&l),
            ("mcp-server-git", Some("1.0"), Some("Mcp_Server.Git"))
        );
        assert_eq!(l.args, os(&["-v"]));
        let l = parsed(parse, &["pipx", "run", "--spec", "pkg==2", "cmd", "a"]);
        assert_eq!(what(&l), ("pkg", Some("2"), Some("cmd")));
        assert_eq!(l.args, os(&["a"]));
        let l = parsed(parse, &["pipx", "run", "-q", "--spec=pkg", "cmd"]);
        assert_eq!(what(&l), ("pkg", None, Some("cmd")));
        // The lock entry is the uv family's: `uvx pkg` and `pipx run pkg` share it.
        assert_eq!(l.lock_key(), "uv:pkg");
        for other in [
            &["pipx", "install", "x"][..],
            &["pipx"],
            &["python3", "run"],
        ] {
            assert_eq!(parse(&os(other)).unwrap(), None, "{other:?}");
        }
    }

    #[test]
    fn pipx_run_refusals() {
        for bad in [
            &["pipx", "run"][..],
            &["pipx", "run", "--spec"],
            &["pipx", "run", "pkg@1.0"],
            &["pipx", "run", "--spec", "git+https://x/y", "app"],
            &["pipx", "run", "--spec", "./local", "app"],
            &["pipx", "run", "pkg>=1"],
        ] {
            assert!(parse(&os(bad)).is_err(), "{bad:?}");
        }
        for (flag, command) in [
            ("--python", &["pipx", "run", "--python", "3.12", "pkg"][..]),
            (
                "--index-url",
                &["pipx", "run", "--index-url", "https://x", "pkg"],
            ),
            (
                "--pip-args=--pre",
                &["pipx", "run", "--pip-args=--pre", "pkg"],
            ),
        ] {
            let e = parse(&os(command)).unwrap_err().to_string();
            let named =
                format!("`pipx run {flag}` is not understood by mcp-guard, which runs PyPI");
            assert!(e.starts_with(&named), "{e}");
            assert!(
                e.contains("`pipx run --spec PACKAGE[==VERSION] APP ARGS…`"),
                "{e}"
            );
        }
    }
}
