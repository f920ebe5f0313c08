//! The uv family: `uvx [--from PKG] CMD[@VER] ARGS…` and `uv tool run …`, as host configs write
//! them.
//!
//! Fetch, under the sandbox: `uv venv --relocatable ENTRY/venv` then `uv pip install
//! --compile-bytecode` of the package into it, uv's cache inside the staging directory (thrown
//! away afterwards), never `~/.cache/uv` or `~/.local/share/uv`. The venv is relocatable, so the
//! staging directory can be renamed into the store. Run: `ENTRY/venv/bin/python
//! ENTRY/venv/bin/CMD ARGS…` (the entry point is a script both sh and python can run; running it
//! with python needs no shell).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::{io_error, PackageError};
use super::spec::{find_on_path, option_value, Family, FetchStep, PackageLaunch};

/// `uvx …` / `uv tool run …`, understood; `None` for other commands.
pub fn parse(command: &[OsString]) -> Result<Option<PackageLaunch>, PackageError> {
    let Some(first) = command.first().and_then(|a| a.to_str()) else {
        return Ok(None);
    };
    let name = Path::new(first)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let second = |i: usize| command.get(i).and_then(|a| a.to_str());
    let (launcher, rest) = match name {
        "uvx" => ("uvx".to_owned(), &command[1..]),
        "uv" if second(1) == Some("tool") && second(2) == Some("run") => {
            ("uv tool run".to_owned(), &command[3..])
        }
        "uv" if second(1) == Some("tool") && second(2) == Some("uvx") => {
            ("uv tool uvx".to_owned(), &command[3..])
        }
        _ => return Ok(None),
    };
    let mut from: Option<String> = None;
    let mut i = 0;
    while i < rest.len() {
        let text = rest[i].to_str().ok_or_else(|| PackageError::NotUtf8 {
            launcher: launcher.clone(),
        })?;
        if text.starts_with('-') {
            match text {
                "-q" | "--quiet" => {}
                "--from" => from = Some(option_value(rest, &mut i, &launcher)?.to_owned()),
                _ if text.starts_with("--from=") => from = Some(text[7..].to_owned()),
                _ => {
                    return Err(PackageError::UnsupportedOption {
                        family: Family::Uv,
                        option: text.to_owned(),
                        form: forms(&launcher),
                        launcher,
                    })
                }
            }
            i += 1;
            continue;
        }
        let args = rest[i + 1..].to_vec();
        let (spec, command) = match &from {
            Some(spec) => (spec.clone(), Some(text.to_owned())),
            None => (text.to_owned(), None),
        };
        let (package, requested) = split_spec(&spec, &launcher)?;
        // `uvx CMD@VER`: the command is the package's name as written.
        let command = command.or_else(|| Some(package.clone()));
        return Ok(Some(PackageLaunch {
            family: Family::Uv,
            launcher,
            package: normalize(&package),
            requested,
            command,
            args,
        }));
    }
    Err(PackageError::NoPackage {
        family: Family::Uv,
        form: forms(&launcher),
        launcher,
    })
}

fn forms(launcher: &str) -> String {
    format!(
        "`{launcher} PACKAGE[@VERSION] ARGS…` or `{launcher} --from PACKAGE[==VERSION] COMMAND \
         ARGS…` (options: --from, -q/--quiet)"
    )
}

/// `name`, `name@1.0`, `name==1.0` (`@latest`: no version).
pub(super) fn split_spec(
    spec: &str,
    launcher: &str,
) -> Result<(String, Option<String>), PackageError> {
    let (name, version) = match spec.split_once("==").or_else(|| spec.split_once('@')) {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '!'))
    };
    if !valid(name) || version.is_some_and(|v| !valid(v)) || name.starts_with(['.', '-']) {
        return Err(PackageError::UnsupportedSpec {
            family: Family::Uv,
            launcher: launcher.to_owned(),
            spec: spec.to_owned(),
        });
    }
    let version = version.filter(|v| *v != "latest").map(str::to_owned);
    Ok((name.to_owned(), version))
}

/// PEP 503 normalization: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The Python the venv is made from: `$UV_PYTHON` when it is a path, else `python3` on PATH,
/// symlinks resolved (a pyenv shim is asked for the interpreter it runs).
fn base_python() -> Result<PathBuf, PackageError> {
    if let Some(p) = std::env::var_os("UV_PYTHON").filter(|p| Path::new(p).is_absolute()) {
        return std::fs::canonicalize(&p).map_err(|source| PackageError::UvPythonMissing {
            path: p.into(),
            source,
        });
    }
    let found = find_on_path("python3").ok_or(PackageError::ToolMissing {
        tool: "python3",
        purpose: "build the package's environment",
    })?;
    let real = std::fs::canonicalize(&found).map_err(|e| io_error("resolve", &found, e))?;
    let head = std::fs::read(&real).unwrap_or_default();
    if !head.starts_with(b"#!") {
        return Ok(real);
    }
    let out = std::process::Command::new(&found)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|source| PackageError::PythonQuery {
            python: found.clone(),
            source,
        })?;
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::canonicalize(&exe).map_err(|source| PackageError::PythonInterpreter {
        python: found,
        source,
    })
}

/// What the base Python needs readable: its install prefix, or (for a system Python in /usr)
/// its standard library.
fn python_reads(python: &Path) -> Vec<PathBuf> {
    let Some(prefix) = python.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    if ["/", "/usr", "/usr/local"]
        .iter()
        .any(|p| prefix == Path::new(p))
    {
        let Some(name) = python.file_name().and_then(|n| n.to_str()) else {
            return Vec::new();
        };
        // python3.11 -> lib/python3.11 (and lib64 on some systems).
        ["lib", "lib64"]
            .iter()
            .map(|l| prefix.join(l).join(name))
            .filter(|p| p.is_dir())
            .collect()
    } else {
        vec![prefix.to_owned()]
    }
}

/// The fetch: a relocatable venv, then the package installed into it.
pub fn fetch_steps(launch: &PackageLaunch, staging: &Path) -> Result<Vec<FetchStep>, PackageError> {
    find_on_path("uv").ok_or(PackageError::ToolMissing {
        tool: "uv",
        purpose: "fetch the package",
    })?;
    let python = base_python()?;
    let entry = staging.join("entry");
    let venv = entry.join("venv");
    std::fs::create_dir_all(&entry).map_err(|e| io_error("create", &entry, e))?;
    let spec = match &launch.requested {
        Some(v) => format!("{}=={v}", launch.package),
        None => launch.package.clone(),
    };
    let step = |command: Vec<String>| FetchStep {
        command: command.into_iter().map(OsString::from).collect(),
        launch: vec!["uv".into()],
        read: python_reads(&python),
        exec: vec![python.clone()],
        env_pass: vec!["SSL_CERT_FILE", "SSL_CERT_DIR"],
        env_set: vec![
            (
                "UV_CACHE_DIR",
                staging.join("cache").to_string_lossy().into_owned(),
            ),
            ("UV_PYTHON_DOWNLOADS", "never".into()),
            ("UV_NO_PROGRESS", "1".into()),
        ],
    };
    let venv_text = venv.to_string_lossy().into_owned();
    Ok(vec![
        step(vec![
            "uv".into(),
            "venv".into(),
            "--quiet".into(),
            "--relocatable".into(),
            "--python".into(),
            python.to_string_lossy().into_owned(),
            venv_text.clone(),
        ]),
        step(vec![
            "uv".into(),
            "pip".into(),
            "install".into(),
            "--quiet".into(),
            "--compile-bytecode".into(),
            "--python".into(),
            format!("{venv_text}/bin/python"),
            spec,
        ]),
    ])
}

fn site_packages(entry: &Path) -> Result<PathBuf, PackageError> {
    let lib = entry.join("venv").join("lib");
    std::fs::read_dir(&lib)
        .map_err(|source| PackageError::FetchedMissing {
            what: "environment",
            path: lib.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .ok_or(PackageError::NoSitePackages { lib })
}

/// The installed version, from the package's `NAME-VERSION.dist-info`.
pub fn installed_version(launch: &PackageLaunch, entry: &Path) -> Result<String, PackageError> {
    let site = site_packages(entry)?;
    let items = std::fs::read_dir(&site).map_err(|e| io_error("read", &site, e))?;
    for item in items.filter_map(Result::ok) {
        let name = item.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".dist-info") else {
            continue;
        };
        if let Some((dist, version)) = stem.rsplit_once('-') {
            if normalize(dist) == launch.package {
                return Ok(version.to_owned());
            }
        }
    }
    Err(PackageError::NoDistInfo {
        package: launch.package.clone(),
        site,
    })
}

/// `ENTRY/venv/bin/python ENTRY/venv/bin/CMD ARGS…`.
pub fn command(launch: &PackageLaunch, entry: &Path) -> Result<Vec<OsString>, PackageError> {
    let bin = entry.join("venv").join("bin");
    let name = launch.command.as_deref().unwrap_or(&launch.package);
    let script = bin.join(name);
    if !script.is_file() {
        let mut have: Vec<String> = std::fs::read_dir(&bin)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with("python") && !n.starts_with("activate"))
                    .collect()
            })
            .unwrap_or_default();
        have.sort();
        return Err(PackageError::NoSuchCommand {
            family: Family::Uv,
            launcher: launch.launcher.clone(),
            package: launch.package.clone(),
            wanted: name.to_owned(),
            available: have,
        });
    }
    let mut command = vec![bin.join("python").into_os_string(), script.into_os_string()];
    command.extend(launch.args.iter().cloned());
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::super::spec::test_support::os;
    use super::*;

    #[test]
    fn uvx_forms() {
        let l = parse(&os(&["uvx", "mcp-server-time", "--local-timezone", "UTC"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.package.as_str(), l.requested, l.command.as_deref()),
            ("mcp-server-time", None, Some("mcp-server-time"))
        );
        assert_eq!(l.args, os(&["--local-timezone", "UTC"]));
        let l = parse(&os(&["uvx", "Mcp_Server.Git@1.0", "--repository", "/r"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.package.as_str(), l.requested.as_deref()),
            ("mcp-server-git", Some("1.0"))
        );
        assert_eq!(l.command.as_deref(), Some("Mcp_Server.Git"));
        let l = parse(&os(&["uv", "tool", "run", "--from", "pkg==2", "cmd", "a"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                l.package.as_str(),
                l.requested.as_deref(),
                l.command.as_deref()
            ),
            ("pkg", Some("2"), Some("cmd"))
        );
        assert_eq!(parse(&os(&["uv", "run", "x"])).unwrap(), None);
        assert_eq!(parse(&os(&["python3", "-m", "x"])).unwrap(), None);
        assert_eq!(
            parse(&os(&["uvx", "pkg@latest"]))
                .unwrap()
                .unwrap()
                .requested,
            None
        );
    }

    #[test]
    fn uvx_refusals() {
        for bad in [
            &["uvx"][..],
            &["uvx", "--with", "x", "pkg"],
            &["uvx", "git+https://x/y"],
            &["uvx", "./local"],
        ] {
            assert!(parse(&os(bad)).is_err(), "{bad:?}");
        }
    }
}
