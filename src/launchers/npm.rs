//! The npm family: `npx [-y|--yes] [-p PKG] PKG[@VER] ARGS…` and `npm exec|x [-y] [--package=PKG]
//! [--] PKG[@VER] ARGS…`, as host configs write them.
//!
//! Fetch: `npm install --prefix ENTRY PKG@VER` under the sandbox, npm's cache inside the staging
//! directory (thrown away afterwards), never the user's `~/.npm`. Run: `node
//! ENTRY/node_modules/PKG/BIN ARGS…` (the bin's own `#!/usr/bin/env node` is not needed, so
//! neither `env` nor a shell is).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::{io_error, PackageError};
use super::spec::{find_on_path, option_value, split_npm_spec, Family, FetchStep, PackageLaunch};

/// How one npm-family launcher's options read: npx and npm exec here, pnpm dlx and bunx in
/// `pnpm_bun.rs`. What they install and run is the same; only the command line differs.
pub(super) struct Dialect {
    /// Options that change nothing the guard does (prompts, output).
    pub quiet: &'static [&'static str],
    /// Options whose value is the package to install, the operand then being the bin to run
    /// (`-p PKG BIN`, `--package PKG`, and `--package=PKG` for the long ones).
    pub package: &'static [&'static str],
    /// `npm exec PKG -- ARGS`: a `--` right after the package is the launcher's, not the server's.
    pub strips_separator: bool,
    /// The forms understood, for messages; `{launcher}` stands for the launcher as written.
    pub forms: &'static str,
}

impl Dialect {
    /// The forms understood, for `launcher` as written.
    fn forms(&self, launcher: &str) -> String {
        self.forms.replace("{launcher}", launcher)
    }

    /// `option` is not one the guard understands for this launcher.
    pub(super) fn unsupported(&self, launcher: String, option: &str) -> PackageError {
        PackageError::UnsupportedOption {
            family: Family::Npm,
            option: option.to_owned(),
            form: self.forms(&launcher),
            launcher,
        }
    }
}

const NPX: Dialect = Dialect {
    quiet: &["-y", "--yes", "-q", "--quiet", "--no-install=false"],
    package: &["-p", "--package"],
    strips_separator: false,
    forms: "`{launcher} -y PACKAGE[@VERSION] ARGS…` or `{launcher} -y -p PACKAGE[@VERSION] BIN \
            ARGS…` (options: -y/--yes, -p/--package, -q/--quiet)",
};

const NPM_EXEC: Dialect = Dialect {
    strips_separator: true,
    ..NPX
};

/// `npx …` / `npm exec …` / `npm x …`, understood; `None` for other commands.
pub fn parse(command: &[OsString]) -> Result<Option<PackageLaunch>, PackageError> {
    let (launcher, rest, dialect) = match program_name(command) {
        "npx" => ("npx".to_owned(), &command[1..], &NPX),
        "npm" => match command.get(1).and_then(|a| a.to_str()) {
            Some(sub @ ("exec" | "x")) => (format!("npm {sub}"), &command[2..], &NPM_EXEC),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    parse_options(launcher, rest, dialect, None).map(Some)
}

/// The file name of the command's program (`/usr/bin/npx` → `npx`); empty when there is none.
pub(super) fn program_name(command: &[OsString]) -> &str {
    command
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("")
}

/// The launcher's options and operands after its name (`rest`), read as `dialect` says.
/// `package`: a package already named by an option before the subcommand (`pnpm
/// --package=PKG dlx BIN`).
pub(super) fn parse_options(
    launcher: String,
    rest: &[OsString],
    dialect: &Dialect,
    mut package: Option<String>,
) -> Result<PackageLaunch, PackageError> {
    let mut i = 0;
    let mut options_done = false;
    while i < rest.len() {
        let text = rest[i].to_str().ok_or_else(|| PackageError::NotUtf8 {
            launcher: launcher.clone(),
        })?;
        if !options_done && text.starts_with('-') {
            if text == "--" {
                options_done = true;
            } else if dialect.quiet.contains(&text) {
                // Nothing to do: the guard neither prompts nor prints progress.
            } else if dialect.package.contains(&text) {
                let value = option_value(rest, &mut i, &launcher)?;
                set_package(&mut package, value, &launcher)?;
            } else if let Some(value) = long_option_value(text, dialect.package) {
                set_package(&mut package, value, &launcher)?;
            } else {
                return Err(dialect.unsupported(launcher, text));
            }
            i += 1;
            continue;
        }
        // The first operand: the package (or, with -p, the command to run from it).
        let args = rest[i + 1..].to_vec();
        let args = match args.first().and_then(|a| a.to_str()) {
            Some("--") if dialect.strips_separator => args[1..].to_vec(),
            _ => args,
        };
        let (package, requested, command) = match package {
            Some(spec) => {
                let (p, v) = split_npm_spec(&spec);
                (p, v, Some(text.to_owned()))
            }
            None => {
                check_registry_spec(text, &launcher)?;
                let (p, v) = split_npm_spec(text);
                (p, v, None)
            }
        };
        return Ok(PackageLaunch {
            family: Family::Npm,
            launcher,
            package,
            requested,
            command,
            args,
        });
    }
    Err(PackageError::NoPackage {
        family: Family::Npm,
        form: dialect.forms(&launcher),
        launcher,
    })
}

/// `--package=VALUE` for a long option in `options`: the value.
fn long_option_value<'a>(text: &'a str, options: &[&str]) -> Option<&'a str> {
    options
        .iter()
        .filter(|o| o.starts_with("--"))
        .find_map(|o| text.strip_prefix(*o)?.strip_prefix('='))
}

fn set_package(slot: &mut Option<String>, spec: &str, launcher: &str) -> Result<(), PackageError> {
    check_registry_spec(spec, launcher)?;
    if slot.replace(spec.to_owned()).is_some() {
        return Err(PackageError::MultiplePackages {
            launcher: launcher.to_owned(),
        });
    }
    Ok(())
}

/// Only registry packages: no paths, tarballs, git or URL specs (they have no registry version
/// to lock, and would need other hosts).
fn check_registry_spec(spec: &str, launcher: &str) -> Result<(), PackageError> {
    let (name, _) = split_npm_spec(spec);
    let slashes = name.matches('/').count();
    let ok = !name.is_empty()
        && !name.contains(':')
        && !name.starts_with('.')
        && !name.ends_with(".tgz")
        && ((name.starts_with('@') && slashes == 1) || (!name.starts_with('@') && slashes == 0));
    if !ok {
        return Err(PackageError::UnsupportedSpec {
            family: Family::Npm,
            launcher: launcher.to_owned(),
            spec: spec.to_owned(),
        });
    }
    Ok(())
}

/// The fetch: one `npm install` into `staging/entry`.
pub fn fetch_steps(launch: &PackageLaunch, staging: &Path) -> Result<Vec<FetchStep>, PackageError> {
    let needed = |tool: &'static str| {
        find_on_path(tool).ok_or(PackageError::ToolMissing {
            tool,
            purpose: "fetch the package",
        })
    };
    let npm = needed("npm")?;
    let node = needed("node")?;
    let mut read = vec![
        PathBuf::from("/etc/npmrc"),
        PathBuf::from("/usr/etc/npmrc"),
        PathBuf::from("/usr/local/etc/npmrc"),
    ];
    // npm's own package (/usr/lib/node_modules/npm for /usr/bin/npm -> …/npm/bin/npm-cli.js).
    if let Some(root) = std::fs::canonicalize(&npm)
        .ok()
        .and_then(|p| p.parent()?.parent().map(Path::to_owned))
    {
        read.push(root);
    }
    let entry = staging.join("entry");
    std::fs::create_dir_all(&entry).map_err(|e| io_error("create", &entry, e))?;
    let spec = match &launch.requested {
        Some(v) => format!("{}@{v}", launch.package),
        None => launch.package.clone(),
    };
    Ok(vec![FetchStep {
        command: [
            "npm",
            "install",
            "--prefix",
            &entry.to_string_lossy(),
            "--no-audit",
            "--no-fund",
            "--loglevel=warn",
            &spec,
        ]
        .iter()
        .map(OsString::from)
        .collect(),
        launch: vec!["npm".into(), "node".into()],
        read,
        // Install scripts run through sh, and bins start with `#!/usr/bin/env node`.
        exec: vec![
            node,
            PathBuf::from("/bin/sh"),
            PathBuf::from("/usr/bin/env"),
        ],
        env_pass: vec!["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR"],
        env_set: vec![
            (
                "npm_config_cache",
                staging.join("cache").to_string_lossy().into_owned(),
            ),
            ("npm_config_update_notifier", "false".into()),
            ("npm_config_fund", "false".into()),
            ("npm_config_audit", "false".into()),
        ],
    }])
}

/// The version npm installed, from the package's own package.json.
pub fn installed_version(launch: &PackageLaunch, entry: &Path) -> Result<String, PackageError> {
    let manifest = read_manifest(launch, entry)?;
    manifest["version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PackageError::ManifestNoVersion {
            package: launch.package.clone(),
        })
}

fn read_manifest(launch: &PackageLaunch, entry: &Path) -> Result<serde_json::Value, PackageError> {
    let path = package_dir(launch, entry).join("package.json");
    let text = std::fs::read_to_string(&path).map_err(|source| PackageError::FetchedMissing {
        what: "package",
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| PackageError::ManifestInvalid { path, source })
}

fn package_dir(launch: &PackageLaunch, entry: &Path) -> PathBuf {
    entry.join("node_modules").join(&launch.package)
}

/// `node ENTRY/node_modules/PKG/BIN ARGS…`: the bin npx would have run.
pub fn command(launch: &PackageLaunch, entry: &Path) -> Result<Vec<OsString>, PackageError> {
    let manifest = read_manifest(launch, entry)?;
    let short = launch.package.rsplit('/').next().unwrap_or(&launch.package);
    let bin = match &manifest["bin"] {
        serde_json::Value::String(path) => path.clone(),
        serde_json::Value::Object(bins) => {
            let wanted = launch.command.as_deref().unwrap_or(short);
            let found = bins.get(wanted).or_else(|| {
                // npx runs the only bin when there is one (and no -p command was given).
                (launch.command.is_none() && bins.len() == 1)
                    .then(|| bins.values().next())
                    .flatten()
            });
            match found.and_then(|v| v.as_str()) {
                Some(path) => path.to_owned(),
                None => {
                    return Err(PackageError::NoSuchCommand {
                        family: Family::Npm,
                        launcher: launch.launcher.clone(),
                        package: launch.package.clone(),
                        wanted: wanted.to_owned(),
                        available: bins.keys().cloned().collect(),
                    })
                }
            }
        }
        _ => {
            return Err(PackageError::ManifestNoBin {
                package: launch.package.clone(),
            })
        }
    };
    let script = package_dir(launch, entry).join(bin);
    let mut command = vec![OsString::from("node"), script.into_os_string()];
    command.extend(launch.args.iter().cloned());
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::super::spec::test_support::os;
    use super::*;

    #[test]
    fn npx_forms() {
        let l = parse(&os(&["npx", "-y", "@m/server-x@1.2", "/tmp", "--flag"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.package.as_str(), l.requested.as_deref()),
            ("@m/server-x", Some("1.2"))
        );
        assert_eq!(l.args, os(&["/tmp", "--flag"]));
        let l = parse(&os(&["/usr/bin/npx", "--yes", "pkg"]))
            .unwrap()
            .unwrap();
        assert_eq!((l.package.as_str(), l.requested), ("pkg", None));
        let l = parse(&os(&["npm", "exec", "-y", "--", "pkg@2", "--", "a"]))
            .unwrap()
            .unwrap();
        assert_eq!(l.requested.as_deref(), Some("2"));
        assert_eq!(l.args, os(&["a"]));
        let l = parse(&os(&["npx", "-y", "-p", "@s/tools", "tool-a", "x"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.package.as_str(), l.command.as_deref()),
            ("@s/tools", Some("tool-a"))
        );
        assert_eq!(parse(&os(&["node", "x.js"])).unwrap(), None);
        assert_eq!(parse(&os(&["npm", "start"])).unwrap(), None);
    }

    #[test]
    fn npx_refusals() {
        for bad in [
            &["npx", "-y"][..],
            &["npx", "--registry", "x", "pkg"],
            &["npx", "-y", "./local"],
            &["npx", "-y", "github:a/b"],
            &["npx", "-y", "a/b"],
        ] {
            assert!(parse(&os(bad)).is_err(), "{bad:?}");
        }
        let e = parse(&os(&["npm", "exec", "--registry=x", "pkg"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("`npm exec --registry=x` is not understood by mcp-guard")
                && e.contains("write `npm exec -y PACKAGE[@VERSION] ARGS…`"),
            "{e}"
        );
    }
}
