//! Confining the server: landlock, seccomp, capabilities, resource limits and a clean environment.
//!
//! The guard resolves a [`SandboxConfig`] (from the policy, or the secure default) into a
//! [`Plan`] *before* it spawns anything: every path is absolute, the executable is resolved,
//! the environment is final. The plan travels to the supervisor (see `crate::launch`), a
//! single-threaded re-exec of `mcp-guard`, whose forked child calls
//! [`apply_to_current_process`] and then execs the server. Doing the work there, and not in a
//! `pre_exec` hook of the multi-threaded guard, lets the layers allocate and report errors
//! freely: nothing between fork and exec has to be async-signal-safe.

mod baseline;
#[cfg(test)]
mod bpf_eval;
pub(crate) mod env;
pub mod exec;
pub mod fd_passing;
pub mod fs_rules;
#[cfg(target_os = "linux")]
mod landlock;
pub mod limits;
#[cfg(target_os = "linux")]
pub mod net_broker;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod network_tier;
#[cfg(target_os = "linux")]
pub mod path_search;
mod privileges;
pub mod probe;
pub mod protect;
#[cfg(target_os = "linux")]
pub mod protect_watch;
pub mod seccomp;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use fs_rules::{FsAccess, FsGrant};

/// A confinement layer that can be demanded with `--require` / `enforce = "required"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Landlock,
    LandlockNetwork,
    LandlockScope,
    Seccomp,
    Limits,
    Capabilities,
    /// Protected paths inside writable directories (a private mount namespace, see [`protect`]).
    ProtectedPaths,
}

/// What the user (policy, profile or flags) asked for; paths may still be relative to the CWD.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub fs: FsRules,
    pub network: NetworkRules,
    pub limits: Limits,
    pub env: EnvRules,
    pub syscalls: SyscallRules,
    /// Layers whose absence makes `run` refuse to start instead of degrading.
    pub require: BTreeSet<Layer>,
    /// Run with no sandbox at all (`--allow-unsandboxed`, mainly for non-Linux systems).
    pub disabled: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FsRules {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
    /// Paths that no allow rule may open up; a deny always wins.
    pub deny: Vec<PathBuf>,
    /// Names protected in every writable root besides [`protect::DEFAULT_PROTECTED`]
    /// (relative: `.vscode`, `.config/fish`). A path named exactly in `write` is not protected.
    #[serde(default)]
    pub protect: Vec<PathBuf>,
    /// mcp-guard's own directories (its state: pins, package lock, fleet ledger, audit log;
    /// its user config; its package store): read-only to the server wherever a writable root
    /// holds them, so a server given `~` cannot approve its own changes or rewrite the code
    /// the guard later runs.
    #[serde(default)]
    pub guard_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// No TCP bind/connect, no inet/packet/vsock sockets.
    #[default]
    Off,
    /// Only the hosts of `NetworkRules::allow`, through the guard's egress proxy.
    Hosts,
    /// Only the listed TCP ports, to any address (weak: kept for old policies).
    Ports,
    /// No network restriction.
    Open,
}

/// How `hosts` mode makes the guard's proxy the server's only way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// A private user + network namespace with only `lo`; the proxy listens inside it.
    Namespace,
    /// No namespaces: landlock allows TCP only to the proxy's port and a seccomp
    /// user-notification broker in the supervisor connects every `connect()` itself.
    Broker,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Namespace => "namespace",
            Isolation::Broker => "broker",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkRules {
    pub mode: NetworkMode,
    /// TCP ports (`ports` mode).
    pub connect: Vec<u16>,
    pub bind: Vec<u16>,
    /// Egress allow list (`hosts` mode): `HOST[:PORTS]`, `*.DOMAIN[:PORTS]`, `CIDR[:PORTS]`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// UDP destinations the server may use; empty: no UDP socket at all.
    #[serde(default)]
    pub udp: Vec<String>,
    /// Pathname unix sockets the server may connect to; empty: no unix socket at all
    /// (socketpair(2) stays allowed).
    #[serde(default)]
    pub unix: Vec<PathBuf>,
    /// The enforcement tier for `hosts` mode; `None`: the strongest this machine offers.
    #[serde(default)]
    pub isolation: Option<Isolation>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// CPU bandwidth in cores (1.5 = one and a half cores).
    pub cpus: Option<f64>,
    /// Total CPU time before the server is killed.
    pub cpu_time: Option<Duration>,
    /// Lifetime of the server, enforced by the guard.
    pub wall_clock: Option<Duration>,
    pub file_size_bytes: Option<u64>,
    pub open_files: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvRules {
    /// Names passed through from the guard's environment.
    pub pass: Vec<String>,
    /// Fixed values (never logged).
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyscallRules {
    /// Extra syscalls refused with EPERM.
    pub deny: Vec<String>,
    /// Syscalls the default filter refuses that this server needs.
    pub allow: Vec<String>,
}

/// Everything the supervisor needs to confine and exec the server, fully resolved by the guard.
/// It crosses a pipe as JSON, never argv or the environment (both readable in /proc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Absolute path of the executable, resolved against the guard's PATH.
    pub program: PathBuf,
    /// argv, argv[0] included.
    pub argv: Vec<String>,
    /// The server's complete environment.
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// Private HOME/TMPDIR created by the guard and removed at exit, if any.
    pub private_dir: Option<PathBuf>,
    pub config: SandboxConfig,
    /// The landlock filesystem rules: baseline, install directory, policy and private dir, with
    /// `config.fs.deny` already carved out (see [`fs_rules`]).
    #[serde(default)]
    pub fs_grants: Vec<FsGrant>,
    /// Grant the server read access to its own `/proc/<pid>` (resolved in the child, see
    /// `landlock.rs`); false when a deny covers `/proc/self`.
    #[serde(default)]
    pub proc_self: bool,
    /// Entries of the writable directories the server may read but not change (see [`protect`]).
    #[serde(default)]
    pub protect: protect::ProtectPlan,
    /// `hosts` mode: how the server reaches the guard's egress proxy (filled in by the guard
    /// once it has chosen the isolation tier and the proxy's port).
    #[serde(default)]
    pub egress: Option<EgressPlan>,
}

/// Where the egress proxy listens for the server, and how the server is kept from going around it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct EgressPlan {
    /// The tier the policy demands; `None`: the namespace where it works, else the broker.
    pub isolation: Option<Isolation>,
    /// The proxy's TCP port on 127.0.0.1 (inside the server's namespace, or the host's loopback).
    pub proxy_port: u16,
}

/// What the layers achieved, reported once on stderr and in the audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnforcementReport {
    pub enforced: Vec<Layer>,
    /// Layers (or parts of them) that could not be enforced, with the reason.
    pub not_enforced: Vec<(Layer, String)>,
    /// Layers in `enforced` that leave something open on this kernel, with what.
    #[serde(default)]
    pub partial: Vec<(Layer, String)>,
    /// The landlock ABI the kernel offered (e.g. "7"), when landlock was tried.
    #[serde(default)]
    pub landlock_abi: Option<String>,
    /// Which mechanism enforces each resource limit.
    #[serde(default)]
    pub limits: Option<limits::LimitsReport>,
    /// `hosts` mode: the tier that makes the proxy the only way out.
    #[serde(default)]
    pub network_isolation: Option<Isolation>,
    /// seccomp refuses unix sockets (none listed), covering landlock's gap below ABI 9.
    #[serde(default)]
    pub unix_refused: bool,
    /// seccomp refuses UDP sockets (none listed), covering landlock's gap below ABI 10.
    #[serde(default)]
    pub udp_refused: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("command not found: `{command}` (searched PATH={path})")]
    CommandNotFound { command: String, path: String },
    #[error("`{0}` is not valid UTF-8; mcp-guard passes only UTF-8 arguments")]
    NonUtf8Argument(String),
    #[error("{layer:?} is required but cannot be enforced: {reason}")]
    Required { layer: Layer, reason: String },
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Resolve `command` and `config` into a [`Plan`]. Runs in the guard, before spawning.
///
/// Unless the sandbox is disabled this creates the private HOME/TMPDIR (`Plan::private_dir`),
/// which the caller removes when the server is gone.
pub fn prepare(config: &SandboxConfig, command: &[OsString]) -> Result<Plan, SandboxError> {
    let argv = command
        .iter()
        .map(|a| {
            a.to_str()
                .map(str::to_owned)
                .ok_or_else(|| SandboxError::NonUtf8Argument(a.to_string_lossy().into_owned()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first = argv
        .first()
        .ok_or_else(|| SandboxError::Setup("no server command given".into()))?;
    let path = std::env::var("PATH").unwrap_or_default();
    let program = path_search::resolve_program(first, &path).ok_or_else(|| {
        SandboxError::CommandNotFound {
            command: first.clone(),
            path: path.clone(),
        }
    })?;
    let cwd = std::env::current_dir()?;
    if config.disabled {
        let env = env::unsandboxed_env(&config.env);
        return Ok(Plan {
            program,
            argv,
            env,
            cwd,
            private_dir: None,
            config: config.clone(),
            fs_grants: Vec::new(),
            proc_self: false,
            protect: protect::ProtectPlan::default(),
            egress: None,
        });
    }
    let chain = exec::ExecChain::resolve(&program, &path);
    let mut grants = baseline::grants(&chain, &argv, &cwd);
    let policy = [
        (&config.fs.read, FsAccess::Read),
        (&config.fs.write, FsAccess::Write),
        (&config.fs.exec, FsAccess::Execute),
    ];
    for (paths, access) in policy {
        for path in paths {
            match FsGrant::new(cwd.join(path), access) {
                Some(grant) => grants.push(grant),
                None => {
                    tracing::warn!("policy path {} does not exist; not granted", path.display())
                }
            }
        }
    }
    let denies: Vec<PathBuf> = config
        .fs
        .deny
        .iter()
        .map(|d| fs_rules::canonical_deny(&cwd.join(d)))
        .collect();
    // /proc/self names a different /proc/<pid> in every process: compare the deny paths as
    // written, not canonicalized.
    let proc_self = !config.fs.deny.iter().map(|d| cwd.join(d)).any(|d| {
        Path::new("/proc/self").starts_with(&d)
            || d.starts_with("/proc/self")
            || d.starts_with("/proc/thread-self")
    });
    let write_roots: Vec<PathBuf> = config
        .fs
        .write
        .iter()
        .filter_map(|p| std::fs::canonicalize(cwd.join(p)).ok())
        .collect();
    let protect = protect::plan(
        &write_roots,
        &config.fs.protect,
        &config.fs.guard_dirs,
        &write_roots,
    );
    let private_dir = env::create_private_dir()?;
    grants.extend(FsGrant::new(&private_dir, FsAccess::Write));
    let fs_grants = fs_rules::apply_denies(grants, &denies);
    let env = env::server_env(&config.env, &private_dir, std::env::vars_os());
    Ok(Plan {
        program,
        argv,
        env,
        cwd,
        private_dir: Some(private_dir),
        config: config.clone(),
        fs_grants,
        proc_self,
        protect,
        egress: None,
    })
}

/// Apply every layer of `plan` to the calling process. Runs in the supervisor's forked,
/// single-threaded child, right before `execve`.
pub fn apply_to_current_process(plan: &Plan) -> Result<EnforcementReport, SandboxError> {
    apply_with_broker(plan, None)
}

/// As [`apply_to_current_process`]; with `broker`, the broker tier of `hosts` mode: install the
/// connect notifier and send its listener to the supervisor over `broker`.
pub fn apply_with_broker(
    plan: &Plan,
    broker: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<EnforcementReport, SandboxError> {
    #[allow(unused_mut)]
    let mut report = EnforcementReport::default();
    if plan.config.disabled {
        return Ok(report);
    }
    #[cfg(target_os = "linux")]
    {
        // Order matters. 1. Open the landlock rule paths while root still sees everything, drop
        // capabilities, set no_new_privs (landlock and seccomp need it), mark inherited fds
        // close-on-exec, then restrict: filesystem, network, scope. Before all of them, the
        // protected paths' mount namespace (it needs the capabilities about to be dropped).
        protect_paths(plan, &mut report)?;
        let landlock_rules = landlock::prepare(plan, broker.is_some());
        privileges::drop_capabilities(
            &mut report,
            plan.config.require.contains(&Layer::Capabilities),
        )?;
        privileges::set_no_new_privs()?;
        privileges::close_inherited_fds()?;
        landlock::restrict(landlock_rules, plan, &mut report)?;
    }
    #[cfg(not(target_os = "linux"))]
    {
        let reason = "only available on Linux";
        for layer in [
            Layer::Capabilities,
            Layer::Landlock,
            Layer::LandlockNetwork,
            Layer::LandlockScope,
        ] {
            if plan.config.require.contains(&layer) {
                return Err(SandboxError::Required {
                    layer,
                    reason: reason.into(),
                });
            }
            report.not_enforced.push((layer, reason.into()));
        }
    }
    // 2. The broker's notifier (after no_new_privs; before rlimits, so an open-files limit
    // cannot refuse its descriptor; under the main filter, whose refusals then take
    // precedence), rlimits, then seccomp last: its filter may deny what the others need.
    if let Some(channel) = broker {
        install_broker(channel)?;
    }
    report.limits = Some(limits::apply_to_current_process(plan, &mut report)?);
    seccomp::apply_to_current_process(plan, &mut report)?;
    Ok(report)
}

/// Enter the protected paths' mount namespace and record the outcome.
#[cfg(target_os = "linux")]
fn protect_paths(plan: &Plan, report: &mut EnforcementReport) -> Result<(), SandboxError> {
    let layer = Layer::ProtectedPaths;
    let p = &plan.protect;
    if p.is_empty() && p.missing.is_empty() {
        return Ok(());
    }
    match protect::enter(p) {
        Ok(()) => {
            report.enforced.push(layer);
            if !p.missing.is_empty() {
                let example = p
                    .missing
                    .iter()
                    .find(|m| m.ends_with(".mcp.json"))
                    .unwrap_or(&p.missing[0]);
                report.partial.push((
                    layer,
                    format!(
                        "existing protected entries are read-only; {} protected name(s) that do \
                         not exist yet (e.g. {}) are watched and moved aside when created, which \
                         leaves a moment in which they exist; see SECURITY.md",
                        p.missing.len(),
                        example.display()
                    ),
                ));
            }
            Ok(())
        }
        Err(reason) if plan.config.require.contains(&layer) => {
            Err(SandboxError::Required { layer, reason })
        }
        Err(reason) => {
            report.not_enforced.push((layer, reason));
            Ok(())
        }
    }
}

/// The broker tier, in the child: the notifier's listener goes to the supervisor, and the
/// child's own copy is closed before exec (a server holding it could answer for itself).
#[cfg(target_os = "linux")]
fn install_broker(channel: std::os::fd::BorrowedFd<'_>) -> Result<(), SandboxError> {
    let notify = net_broker::install_connect_notifier().map_err(|e| {
        SandboxError::Setup(format!(
            "network isolation `broker` is not available: {e}. `hosts` mode cannot hold \
             here; allow unprivileged user namespaces (the `namespace` tier) or choose \
             another network mode"
        ))
    })?;
    fd_passing::send_fd(channel, &notify).map_err(|e| {
        SandboxError::Setup(format!(
            "cannot hand the connect broker to the supervisor: {e}"
        ))
    })?;
    drop(notify);
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn install_broker(_channel: std::os::fd::BorrowedFd<'_>) -> Result<(), SandboxError> {
    Err(SandboxError::Setup(
        "the connect broker exists only on Linux".into(),
    ))
}
