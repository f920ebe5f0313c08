//! From the merged policy to what the sandbox and the relay take: variables expanded, globs
//! matched against the disk, deny applied over allow, the launch allowlist checked.

use crate::sandbox::limits::UNLIMITED;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::merge::EffectivePolicy;
use super::model::{ArgAccess, CommandRef, Enforce};
use super::values::Val;
use super::vars::{PathPattern, Vars};
use super::{Origin, PolicyError};
use crate::sandbox::{
    EnvRules, FsRules, Layer, Limits, NetworkMode, NetworkRules, SandboxConfig, SyscallRules,
};

/// The relay's limits from `[limits]`; `None` where no layer set one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RelayLimits {
    pub request_timeout: Option<Duration>,
    pub max_message_bytes: Option<u64>,
}

/// A resolved policy, ready to launch with.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub sandbox: SandboxConfig,
    pub relay: RelayLimits,
    /// `[filesystem] create`: directories to create (0700) before launch.
    pub create_dirs: Vec<PathBuf>,
    /// Things the user should know (entries dropped, risky allowances).
    pub warnings: Vec<String>,
}

/// Filesystem paths after expansion, each with a label saying where it came from.
#[derive(Debug, Clone, Default)]
pub struct FsView {
    pub read: Vec<(PathBuf, String)>,
    pub write: Vec<(PathBuf, String)>,
    pub exec: Vec<(PathBuf, String)>,
    pub deny: Vec<(PathBuf, String)>,
    pub create: Vec<(PathBuf, String)>,
}

/// The server command as the policy sees it.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    pub argv: Vec<String>,
    /// The executable, found on PATH, symlinks resolved.
    pub program: Option<PathBuf>,
}

impl ServerCommand {
    pub fn new(command: &[OsString]) -> ServerCommand {
        let argv: Vec<String> = command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let program = argv
            .first()
            .and_then(|name| find_program(name))
            .and_then(|p| std::fs::canonicalize(p).ok());
        ServerCommand { argv, program }
    }

    /// `${SERVER_DIR}`: the directory of the server's script (the first argument that is an
    /// existing file, as in `node /srv/index.js`), else of its executable.
    pub fn server_dir(&self) -> Option<PathBuf> {
        let script = self
            .argv
            .iter()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .map(Path::new)
            .find(|p| p.is_file());
        let file = script
            .and_then(|p| std::fs::canonicalize(p).ok())
            .or_else(|| self.program.clone())?;
        file.parent().map(Path::to_owned)
    }

    /// Arguments that are existing directories (`--root=/x` counts too), made absolute.
    pub(crate) fn dir_args(&self) -> Vec<PathBuf> {
        let cwd = std::env::current_dir().unwrap_or_default();
        self.argv
            .iter()
            .skip(1)
            .filter_map(|a| {
                if a.starts_with('-') {
                    a.split_once('=').map(|(_, v)| v)
                } else {
                    Some(a.as_str())
                }
            })
            .map(|a| cwd.join(a))
            .filter(|p| p.is_dir())
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect()
    }
}

/// Create `[filesystem] create` directories (mode 0700, parents as needed).
pub fn create_dirs(dirs: &[PathBuf]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    for dir in dirs {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// The program `name` names, found with the sandbox's own PATH search
/// ([`crate::sandbox::path_search`]), so the launch allowlist judges the same binary that runs.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    crate::sandbox::path_search::resolve_program(name, &path)
}

impl EffectivePolicy {
    /// The relay options set by `[limits]`.
    pub fn relay_limits(&self) -> RelayLimits {
        let l = &self.policy.limits;
        RelayLimits {
            request_timeout: l.request_timeout.as_ref().and_then(|v| v.value.duration),
            max_message_bytes: l.max_message_bytes.as_ref().and_then(|v| v.value.bytes),
        }
    }

    /// Refuse a command that `[launch]` does not allow (deny first, then the allowlist).
    pub fn check_launch(&self, command: &ServerCommand, vars: &Vars) -> Result<(), PolicyError> {
        let launch = &self.policy.launch;
        let Some(first) = command.argv.first() else {
            return Ok(());
        };
        let matches = |c: &Val<CommandRef>| {
            command_matches(&c.value, first, command.program.as_deref(), vars)
        };
        if let Some(d) = launch.deny.iter().find(|d| matches(d)) {
            return Err(PolicyError::LaunchRefused(format!(
                "the policy refuses to launch `{first}`: [launch] deny has \"{}\" ({})",
                d.value.as_str(),
                d.origin_label()
            )));
        }
        if launch.allow.is_empty() || launch.allow.iter().any(matches) {
            return Ok(());
        }
        let allowed: Vec<String> = launch
            .allow
            .iter()
            .map(|a| format!("{} ({})", a.value.as_str(), a.origin_label()))
            .collect();
        let name = Path::new(first)
            .file_name()
            .map_or(first.clone(), |n| n.to_string_lossy().into_owned());
        Err(PolicyError::LaunchRefused(format!(
            "the policy does not allow launching `{first}`{}; [launch] allow has: {}. To allow it, add \
             `allow = [\"{name}\"]` (or its absolute path) under [launch] in your policy file",
            command.program.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default(),
            allowed.join(", ")
        )))
    }

    /// The filesystem lists, expanded, deny applied, each path with the layer it came from.
    pub fn resolve_fs(
        &self,
        vars: &Vars,
        command: Option<&ServerCommand>,
        warnings: &mut Vec<String>,
    ) -> Result<FsView, PolicyError> {
        let f = &self.policy.filesystem;
        let vars = &vars.with_server_dir(command.and_then(ServerCommand::server_dir));
        // Without a server command `${SERVER_DIR}` is unknown: only `run` must refuse then.
        let deny = expand_all(
            &f.deny,
            vars,
            if command.is_some() {
                Kind::Deny
            } else {
                Kind::Lenient
            },
            warnings,
        )?;
        let allow = |list: &[Val<PathPattern>], what: &str, warnings: &mut Vec<String>| {
            let kind = if what == "create" {
                Kind::Lenient
            } else {
                Kind::Allow
            };
            let paths = expand_all(list, vars, kind, warnings)?;
            Ok::<_, PolicyError>(without_denied(paths, &deny, what, warnings))
        };
        let mut view = FsView {
            read: allow(&f.read, "read", warnings)?,
            write: allow(&f.write, "write", warnings)?,
            exec: allow(&f.exec, "exec", warnings)?,
            create: allow(&f.create, "create", warnings)?,
            deny: Vec::new(),
        };
        let access = f.arg_paths.as_ref().map_or(ArgAccess::None, |v| v.value);
        if let (Some(cmd), ArgAccess::Read | ArgAccess::Write) = (command, access) {
            let label = f.arg_paths.as_ref().map_or_else(String::new, |v| {
                format!("{}, a server argument", v.origin_label())
            });
            let args = cmd
                .dir_args()
                .into_iter()
                .map(|d| (d, label.clone()))
                .collect();
            let args = without_denied(args, &deny, "arg_paths", warnings);
            let target = if access == ArgAccess::Write {
                &mut view.write
            } else {
                &mut view.read
            };
            target.extend(
                args.into_iter()
                    .filter(|(p, _)| !target.iter().any(|(q, _)| q == p))
                    .collect::<Vec<_>>(),
            );
        }
        view.deny = deny;
        Ok(view)
    }

    /// Resolve against `vars` (and the server command when known: `${SERVER_DIR}`,
    /// `arg_paths`, the launch check).
    pub fn resolve(
        &self,
        vars: &Vars,
        command: Option<&ServerCommand>,
    ) -> Result<Resolved, PolicyError> {
        let p = &self.policy;
        let vars = &vars.with_server_dir(command.and_then(ServerCommand::server_dir));
        let mut warnings = Vec::new();
        if let Some(cmd) = command {
            let path = std::env::var("PATH").unwrap_or_default();
            let first = cmd.argv.first().map_or("", String::as_str);
            let note = crate::sandbox::path_search::skipped_entries_note(first, &path);
            self.check_launch(cmd, vars).map_err(|e| match (e, &note) {
                (PolicyError::LaunchRefused(why), Some(note)) => {
                    PolicyError::LaunchRefused(format!("{why}. Note: {note}"))
                }
                (e, _) => e,
            })?;
            warnings.extend(note);
        }

        let fs = self.resolve_fs(vars, command, &mut warnings)?;
        let strip = |v: Vec<(PathBuf, String)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        let create_dirs = strip(fs.create.clone());

        let mode = p
            .network
            .mode
            .as_ref()
            .map_or(NetworkMode::Off, |v| v.value);
        let ports = |list: &[Val<u16>]| {
            if mode == NetworkMode::Ports {
                list.iter().map(|v| v.value).collect()
            } else {
                vec![]
            }
        };
        let network = NetworkRules {
            mode,
            connect: ports(&p.network.connect),
            bind: ports(&p.network.bind),
            allow: if mode == NetworkMode::Hosts {
                p.network.allow.iter().map(|v| v.value.clone()).collect()
            } else {
                vec![]
            },
            udp: p.network.udp.iter().map(|v| v.value.clone()).collect(),
            unix: strip(expand_all(
                &p.network.unix,
                vars,
                Kind::Allow,
                &mut warnings,
            )?),
            isolation: p.network.isolation.as_ref().map(|v| v.value),
        };
        match mode {
            NetworkMode::Ports => warnings.push(
                "[network] mode \"ports\" is weak: the server may reach every host on the \
                 internet on those ports. Name the hosts instead: `[network] allow = \
                 [\"api.example.com\"]` (or --allow-host api.example.com), and only they are \
                 reachable, through the guard's egress proxy"
                    .to_owned(),
            ),
            NetworkMode::Hosts if network.allow.is_empty() => warnings.push(
                "[network] mode \"hosts\" without an `allow` list: no host is reachable; add \
                 `allow = [\"api.example.com\"]`"
                    .to_owned(),
            ),
            NetworkMode::Open => warnings.push(
                "[network] mode \"open\": the server may reach any host and port (only unix \
                 sockets stay closed); prefer `allow = [...]` with the hosts it needs"
                    .to_owned(),
            ),
            _ => {}
        }

        let l = &p.limits;
        let limits = Limits {
            // "unlimited" is a choice, not an absence: it must not fall back to the default.
            memory_bytes: l
                .memory
                .as_ref()
                .map(|v| v.value.bytes.unwrap_or(UNLIMITED)),
            pids: l.pids.as_ref().map(|v| v.value.0.unwrap_or(UNLIMITED)),
            cpus: l.cpus.as_ref().and_then(|v| v.value.0),
            cpu_time: l.cpu_time.as_ref().and_then(|v| v.value.duration),
            wall_clock: l.wall_clock.as_ref().and_then(|v| v.value.duration),
            file_size_bytes: l.file_size.as_ref().and_then(|v| v.value.bytes),
            open_files: l.open_files.as_ref().and_then(|v| v.value.0),
        };

        let mut env = EnvRules {
            pass: p.env.pass.iter().map(|v| v.value.0.clone()).collect(),
            ..EnvRules::default()
        };
        for (name, value) in &p.env.set {
            match value.value.expand(vars) {
                Ok(v) => {
                    env.set.insert(name.clone(), v);
                }
                Err(var) => warnings.push(format!(
                    "[env.set] {name} dropped: `${{{var}}}` has no value here"
                )),
            }
        }

        let syscall_deny: Vec<String> = p.syscalls.deny.iter().map(|v| v.value.0.clone()).collect();
        let syscall_allow: Vec<String> = p
            .syscalls
            .allow
            .iter()
            .map(|v| v.value.0.clone())
            .filter(|s| !syscall_deny.contains(s))
            .collect();
        for s in &syscall_allow {
            warnings.push(format!(
                "[syscalls] allow lets the server call `{s}`, which the default filter refuses for a reason; keep it only if the server needs it"
            ));
        }

        let mut require: BTreeSet<Layer> = p.require.iter().map(|v| v.value).collect();
        if p.enforce
            .as_ref()
            .is_some_and(|v| v.value == Enforce::Required)
        {
            require.extend([
                Layer::Landlock,
                Layer::LandlockScope,
                Layer::Seccomp,
                Layer::Limits,
                Layer::Capabilities,
                Layer::ProtectedPaths,
            ]);
            // Nothing to enforce on the network when it is open.
            if mode != NetworkMode::Open {
                require.insert(Layer::LandlockNetwork);
            }
        }

        let mut write = fs.write;
        write.extend(fs.create);
        let fs = FsRules {
            read: strip(fs.read),
            write: strip(write),
            exec: strip(fs.exec),
            deny: strip(fs.deny),
            protect: p
                .filesystem
                .protect
                .iter()
                .map(|v| PathBuf::from(&v.value.0))
                .collect(),
            guard_dirs: ["XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"]
                .into_iter()
                .filter_map(|var| vars.get(var))
                .map(|base| base.join("mcp-guard"))
                .collect(),
        };
        let sandbox = SandboxConfig {
            fs,
            network,
            limits,
            env,
            syscalls: SyscallRules {
                deny: syscall_deny,
                allow: syscall_allow,
            },
            require,
            disabled: false,
        };
        Ok(Resolved {
            sandbox,
            relay: self.relay_limits(),
            create_dirs,
            warnings,
        })
    }
}

/// Expand every pattern, keeping the layer for warnings. An allow entry whose variable has no
/// value is dropped (less access is safe); a deny entry like that is an error.
fn expand_all(
    list: &[Val<PathPattern>],
    vars: &Vars,
    kind: Kind,
    warnings: &mut Vec<String>,
) -> Result<Vec<(PathBuf, String)>, PolicyError> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for entry in list {
        match entry.value.expand(vars) {
            Ok(paths) => {
                // Shipped profiles list alternatives across systems (`/usr/lib/git-core`,
                // `/usr/libexec/git-core`): the ones missing here are not worth a warning.
                let optional = kind == Kind::Allow && is_shipped(entry);
                for path in paths.into_iter().filter(|p| !optional || p.exists()) {
                    if !out.iter().any(|(p, _)| *p == path) {
                        let raw = entry.value.as_str();
                        let label = if Path::new(raw) == path {
                            entry.origin_label()
                        } else {
                            format!("{}: {raw}", entry.origin_label())
                        };
                        out.push((path, label));
                    }
                }
            }
            // A shipped profile's deny under an unset `${HOME}` guards nothing; a user's is an error.
            Err(variable) if kind == Kind::Deny && !is_shipped(entry) => {
                let hint = if variable == "SERVER_DIR" {
                    " (it is known once the server command is)"
                } else {
                    ""
                };
                return Err(PolicyError::Unresolved {
                    pattern: format!(
                        "deny \"{}\" ({})",
                        entry.value.as_str(),
                        entry.origin_label()
                    ),
                    variable,
                    hint: hint.into(),
                });
            }
            Err(variable) => warnings.push(format!(
                "\"{}\" ({}) skipped: `${{{variable}}}` has no value here",
                entry.value.as_str(),
                entry.origin_label()
            )),
        }
    }
    Ok(out)
}

/// Whether `entry` comes from a shipped profile or the built-in layer.
fn is_shipped<T>(entry: &Val<T>) -> bool {
    matches!(entry.origin, Some(Origin::Profile(_) | Origin::Builtin))
}

/// How [`expand_all`] treats a list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unresolvable entries are errors.
    Deny,
    /// Unresolvable entries are dropped with a warning, as are denies when there is no server
    /// command yet (`policy show`).
    Lenient,
    /// Like `Lenient`; missing paths from shipped profiles are dropped silently.
    Allow,
}

/// Deny wins: drop allowed paths at or below a denied one.
fn without_denied(
    paths: Vec<(PathBuf, String)>,
    deny: &[(PathBuf, String)],
    what: &str,
    warnings: &mut Vec<String>,
) -> Vec<(PathBuf, String)> {
    paths
        .into_iter()
        .filter(
            |(path, origin)| match deny.iter().find(|(d, _)| path.starts_with(d)) {
                Some((d, deny_origin)) => {
                    warnings.push(format!(
                        "{what} \"{}\" ({origin}) is denied by \"{}\" ({deny_origin}); deny wins",
                        path.display(),
                        d.display()
                    ));
                    false
                }
                None => true,
            },
        )
        .collect()
}

/// Whether `rule` names the command `argv0` (found at `program`).
fn command_matches(rule: &CommandRef, argv0: &str, program: Option<&Path>, vars: &Vars) -> bool {
    let file_name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    match rule {
        CommandRef::Name(name) => {
            file_name(Path::new(argv0)).as_deref() == Some(name)
                || program.and_then(file_name).as_deref() == Some(name)
        }
        CommandRef::Path(pattern) => {
            let Some(program) = program else { return false };
            pattern.expand(vars).unwrap_or_default().iter().any(|p| {
                let canonical = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                canonical == program || p == program
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{merge, parse_policy, Origin};

    fn effective(layers: &[&str]) -> EffectivePolicy {
        merge(
            layers
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    (
                        Origin::File(format!("p{i}.toml").into()),
                        parse_policy("t", t).unwrap(),
                    )
                })
                .collect(),
        )
    }

    fn vars() -> Vars {
        Vars::from_pairs(&[("HOME", "/home/u"), ("CWD", "/work")])
    }

    fn cmd(argv: &[&str]) -> ServerCommand {
        ServerCommand {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            program: None,
        }
    }

    #[test]
    fn resolve_deny_wins_across_layers() {
        let eff = effective(&[
            "version = 1\n[filesystem]\nwrite = [\"${HOME}\"]\nread = [\"${HOME}/.ssh/config\"]",
            "version = 1\n[filesystem]\ndeny = [\"${HOME}/.ssh\"]",
        ]);
        let r = eff.resolve(&vars(), None).unwrap();
        assert_eq!(r.sandbox.fs.write, vec![PathBuf::from("/home/u")]);
        assert!(r.sandbox.fs.read.is_empty(), "read under a deny is dropped");
        assert_eq!(r.sandbox.fs.deny, vec![PathBuf::from("/home/u/.ssh")]);
        assert!(r.warnings.iter().any(|w| w.contains("deny wins")));
    }

    #[test]
    fn resolve_required_enforce_requires_all_layers() {
        let eff = effective(&["version = 1\nenforce = \"required\""]);
        let r = eff.resolve(&vars(), None).unwrap();
        assert!(
            r.sandbox.require.contains(&Layer::Seccomp)
                && r.sandbox.require.contains(&Layer::LandlockNetwork)
        );
        let eff = effective(&["version = 1\nenforce = \"required\"\n[network]\nmode = \"open\""]);
        assert!(!eff
            .resolve(&vars(), None)
            .unwrap()
            .sandbox
            .require
            .contains(&Layer::LandlockNetwork));
    }

    #[test]
    fn resolve_limits_and_relay() {
        let eff = effective(&[
            "version = 1\n[limits]\nmemory = \"1GiB\"\ncpus = 1.5\nrequest_timeout = \"5m\"",
            "version = 1\n[limits]\nmemory = \"unlimited\"\npids = 32",
        ]);
        let r = eff.resolve(&vars(), None).unwrap();
        assert_eq!(r.sandbox.limits.memory_bytes, Some(UNLIMITED));
        assert_eq!(r.sandbox.limits.pids, Some(32));
        assert_eq!(r.sandbox.limits.cpus, Some(1.5));
        assert_eq!(r.relay.request_timeout, Some(Duration::from_secs(300)));
    }

    #[test]
    fn resolve_launch_allowlist_refuses_other_commands() {
        let eff = effective(&["version = 1\n[launch]\nallow = [\"npx\", \"node\"]"]);
        assert!(eff
            .resolve(&vars(), Some(&cmd(&["npx", "-y", "x"])))
            .is_ok());
        let err = eff
            .resolve(&vars(), Some(&cmd(&["curl", "http://x"])))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not allow launching `curl`") && err.contains("allow = [\"curl\"]"),
            "{err}"
        );
        let eff = effective(&["version = 1\n[launch]\ndeny = [\"curl\"]"]);
        assert!(eff
            .resolve(&vars(), Some(&cmd(&["/usr/bin/curl"])))
            .is_err());
    }

    #[test]
    fn resolve_server_dir_needs_command_for_allow_only() {
        let eff = effective(&["version = 1\n[filesystem]\nread = [\"${SERVER_DIR}\"]"]);
        let r = eff.resolve(&vars(), None).unwrap();
        assert!(r.sandbox.fs.read.is_empty() && r.warnings[0].contains("SERVER_DIR"));
        let eff = effective(&["version = 1\n[filesystem]\ndeny = [\"${SERVER_DIR}/secret\"]"]);
        assert!(
            eff.resolve(&vars(), None).is_ok(),
            "`policy show` without a command still works"
        );
        assert!(
            eff.resolve(&vars(), Some(&cmd(&["x"]))).is_err(),
            "`run` refuses an unresolvable deny"
        );
    }

    #[test]
    fn resolve_shipped_deny_with_unset_variable_is_skipped() {
        let layer =
            parse_policy("t", "version = 1\n[filesystem]\ndeny = [\"${HOME}/.ssh\"]").unwrap();
        let eff = merge(vec![(Origin::Profile("default".into()), layer)]);
        let r = eff.resolve(&Vars::default(), Some(&cmd(&["x"]))).unwrap();
        assert!(r.sandbox.fs.deny.is_empty() && r.warnings[0].contains("`${HOME}` has no value"));
    }

    #[test]
    fn resolve_arg_paths_grants_directory_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let eff = effective(&["version = 1\n[filesystem]\narg_paths = \"write\""]);
        let c = cmd(&["server", root.to_str().unwrap(), "--flag", "/nonexistent"]);
        let r = eff.resolve(&vars(), Some(&c)).unwrap();
        assert_eq!(r.sandbox.fs.write, vec![root]);
    }

    #[test]
    fn resolve_network_ports_and_syscall_warning() {
        let eff = effective(&[
            "version = 1\n[network]\nconnect = [443]\n[syscalls]\nallow = [\"ptrace\"]",
        ]);
        let r = eff.resolve(&vars(), None).unwrap();
        assert_eq!(
            r.sandbox.network.mode,
            NetworkMode::Ports,
            "ports imply mode = \"ports\""
        );
        assert_eq!(r.sandbox.network.connect, vec![443]);
        assert!(r.warnings.iter().any(|w| w.contains("`ptrace`")));
    }
}
