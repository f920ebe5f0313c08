//! Resource limits: a child cgroup (v2 with controllers, else v1) nested under the guard's own,
//! falling back to rlimits. The supervisor creates the group before it forks the server and
//! removes it after the whole tree is dead; the forked child joins it, then sets its rlimits
//! (see [`apply_rlimits_to_current_process`]).
//!
//! Which mechanism enforces each limit is decided here and reported once: a limit the kernel
//! cannot enforce is never silently dropped.

#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(target_os = "linux")]
mod clone_into;
mod rlimits;

use std::fmt;
use std::time::Duration;

use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use super::{EnforcementReport, Layer, Limits, Plan, SandboxError};

pub use rlimits::{apply_rlimits_to_current_process, predict_rlimits};

/// Memory limit when the configuration sets none: enough for node/V8 and CPython servers.
pub const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;
/// Process/thread cap when the configuration sets none (node alone runs ~11 threads).
pub const DEFAULT_PIDS: u64 = 256;
/// `memory_bytes` or `pids` set to this means "no limit" (policy `"unlimited"`): `None` already
/// means "not configured, use the default".
pub const UNLIMITED: u64 = u64::MAX;

/// The limits with defaults filled in: what the server actually gets.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveLimits {
    /// `None`: unlimited.
    pub memory_bytes: Option<u64>,
    /// `None`: unlimited.
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
    pub cpu_time: Option<Duration>,
    pub file_size_bytes: Option<u64>,
    pub open_files: Option<u64>,
}

impl EffectiveLimits {
    pub fn of(limits: &Limits) -> Self {
        Self {
            memory_bytes: with_default(limits.memory_bytes, DEFAULT_MEMORY_BYTES),
            pids: with_default(limits.pids, DEFAULT_PIDS),
            cpus: limits.cpus.filter(|c| c.is_finite() && *c > 0.0),
            cpu_time: limits.cpu_time,
            file_size_bytes: limits.file_size_bytes,
            open_files: limits.open_files,
        }
    }
}

fn with_default(value: Option<u64>, default: u64) -> Option<u64> {
    match value {
        None => Some(default),
        Some(UNLIMITED) => None,
        Some(n) => Some(n),
    }
}

/// How one limit is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum Mechanism {
    /// A cgroup v2 controller file (e.g. `memory.max`).
    CgroupV2(String),
    /// A cgroup v1 controller file (e.g. `memory.limit_in_bytes`).
    CgroupV1(String),
    /// A resource limit (e.g. `RLIMIT_DATA`), with its caveat if any.
    Rlimit(String),
    /// Not requested by the configuration.
    NotSet,
    /// Requested but nothing here can enforce it; the reason.
    NotEnforced(String),
}

impl Mechanism {
    pub fn is_enforced(&self) -> bool {
        matches!(
            self,
            Self::CgroupV2(_) | Self::CgroupV1(_) | Self::Rlimit(_)
        )
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CgroupV2(file) => write!(f, "cgroup v2 {file}"),
            Self::CgroupV1(file) => write!(f, "cgroup v1 {file}"),
            Self::Rlimit(what) => f.write_str(what),
            Self::NotSet => f.write_str("not set"),
            Self::NotEnforced(why) => write!(f, "NOT ENFORCED ({why})"),
        }
    }
}

/// Which mechanism enforces each limit, as reported on stderr and by `mcp-guard check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsReport {
    /// (limit name, value as text, mechanism), in a fixed order.
    pub limits: Vec<(String, String, Mechanism)>,
}

impl LimitsReport {
    /// The limits that were requested but are not enforced.
    pub fn gaps(&self) -> impl Iterator<Item = (&str, &Mechanism)> {
        self.limits
            .iter()
            .filter(|(_, _, m)| matches!(m, Mechanism::NotEnforced(_)))
            .map(|(n, _, m)| (n.as_str(), m))
    }
}

impl fmt::Display for LimitsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .limits
            .iter()
            .filter(|(_, value, m)| *m != Mechanism::NotSet || value == "unlimited")
            .map(|(name, value, m)| {
                if *m == Mechanism::NotSet {
                    format!("{name}: {value}")
                } else if value.is_empty() {
                    format!("{name}: {m}")
                } else {
                    format!("{name} {value}: {m}")
                }
            })
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// Which limits the cgroup the current process joined enforces. Recorded by
/// [`ResourceGroup::join`] in the forked child and read by the rlimit step, which runs after
/// landlock may have hidden /sys and /proc: the child inherits this from the supervisor's memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupCoverage {
    pub memory: Option<CgroupFile>,
    pub pids: Option<CgroupFile>,
    pub cpu: Option<CgroupFile>,
}

/// A limit file of a cgroup version, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupFile {
    pub v2: bool,
    pub file: &'static str,
}

impl CgroupFile {
    fn mechanism(self) -> Mechanism {
        if self.v2 {
            Mechanism::CgroupV2(self.file.to_owned())
        } else {
            Mechanism::CgroupV1(self.file.to_owned())
        }
    }
}

static JOINED: std::sync::Mutex<Option<CgroupCoverage>> = std::sync::Mutex::new(None);

fn record_joined(coverage: CgroupCoverage) {
    if let Ok(mut slot) = JOINED.lock() {
        *slot = Some(coverage);
    }
}

/// What the cgroup this process joined covers (nothing when it joined none).
pub fn joined_coverage() -> CgroupCoverage {
    JOINED
        .lock()
        .ok()
        .and_then(|slot| *slot)
        .unwrap_or_default()
}

/// How the forked server got into its group (see [`ResourceGroup::fork_into`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    born_in_v2: bool,
}

/// The server's cgroup, if one could be made. Dropping it removes the directories.
#[derive(Debug)]
pub struct ResourceGroup {
    #[cfg(target_os = "linux")]
    inner: cgroup::Group,
}

impl ResourceGroup {
    /// Create the group for `plan.config.limits`; `Ok(None)` when no cgroup is writable here
    /// (the rlimit fallbacks then apply) or the sandbox is disabled.
    pub fn create(plan: &Plan) -> Result<Option<Self>, SandboxError> {
        if plan.config.disabled {
            return Ok(None);
        }
        #[cfg(target_os = "linux")]
        {
            let limits = EffectiveLimits::of(&plan.config.limits);
            match cgroup::Group::create(&limits) {
                Ok(inner) => Ok(Some(Self { inner })),
                Err(why) => {
                    tracing::debug!("no cgroup for the server: {why}");
                    Ok(None)
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(None)
        }
    }

    /// Move process `pid` into the group through every `cgroup.procs` (each migration may wait
    /// for an RCU grace period: the server's own start uses [`Self::fork_into`] and
    /// [`Self::join_current`]). Called with the caller's own pid, it also records what the group
    /// covers for the rlimit step.
    pub fn join(&self, pid: i32) -> Result<(), SandboxError> {
        #[cfg(target_os = "linux")]
        {
            self.inner.join(pid).map_err(|e| {
                SandboxError::Setup(format!("cannot join the server's cgroup: {e}"))
            })?;
            if pid == std::process::id() as i32 {
                record_joined(self.coverage());
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = pid;
        Ok(())
    }

    /// Fork the server's process: on Linux ≥ 5.7 born inside the group's cgroup v2 directory,
    /// else plainly (the child's [`Self::join_current`] then migrates it). The child must join
    /// with the returned [`Placement`] before it execs anything.
    ///
    /// # Safety
    /// As `fork()`; the caller must be single-threaded (see `clone_into::fork_into`).
    pub unsafe fn fork_into(&self) -> Result<(ForkResult, Placement), SandboxError> {
        #[cfg(target_os = "linux")]
        if let Some(dir) = self.inner.v2_dir() {
            use std::os::fd::AsFd;
            let born = std::fs::File::open(dir).and_then(|cgroup| {
                // SAFETY: forwarded to our caller.
                unsafe { clone_into::fork_into(cgroup.as_fd()) }
            });
            match born {
                Ok(result) => return Ok((result, Placement { born_in_v2: true })),
                Err(e) => tracing::debug!(
                    "cannot fork into {} ({e}): migrating the server instead",
                    dir.display()
                ),
            }
        }
        // SAFETY: forwarded to our caller.
        let result = unsafe { nix::unistd::fork() }
            .map_err(|e| SandboxError::Setup(format!("fork failed: {e}")))?;
        Ok((result, Placement { born_in_v2: false }))
    }

    /// In the forked server (single-threaded, before exec): join every hierarchy's group, and
    /// record what the group covers for the rlimit step.
    pub fn join_current(&self, placement: Placement) -> Result<(), SandboxError> {
        #[cfg(target_os = "linux")]
        {
            self.inner.join_current(placement.born_in_v2).map_err(|e| {
                SandboxError::Setup(format!("cannot join the server's cgroup: {e}"))
            })?;
            record_joined(self.coverage());
        }
        #[cfg(not(target_os = "linux"))]
        let _ = placement;
        Ok(())
    }

    /// Which limits this group enforces.
    pub fn coverage(&self) -> CgroupCoverage {
        #[cfg(target_os = "linux")]
        {
            self.inner.coverage()
        }
        #[cfg(not(target_os = "linux"))]
        {
            CgroupCoverage::default()
        }
    }

    /// Kill every process in the group (cgroup.kill, or freeze + SIGKILL on v1). Cheap and
    /// idempotent: the supervisor calls it in a loop until the tree is reaped.
    pub fn kill_all(&self) {
        #[cfg(target_os = "linux")]
        self.inner.kill_all();
    }

    /// Which limit fired, if any ("memory" when the OOM killer struck, "pids" when a fork was
    /// refused), read after the server died. CPU time and file size limits show as the
    /// server's signal instead: see [`limit_from_signal`].
    pub fn limit_hit(&self) -> Option<String> {
        #[cfg(target_os = "linux")]
        {
            self.inner.limit_hit()
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }

    /// The process ids currently in the group.
    pub fn pids(&self) -> Vec<i32> {
        #[cfg(target_os = "linux")]
        {
            self.inner.pids()
        }
        #[cfg(not(target_os = "linux"))]
        {
            Vec::new()
        }
    }
}

/// Step 2a of [`super::apply_to_current_process`]: set the rlimits (after the cgroup was joined,
/// before seccomp) and record which mechanism enforces each limit. With `Layer::Limits`
/// required, a gap in memory or process limits refuses to start.
pub fn apply_to_current_process(
    plan: &Plan,
    report: &mut EnforcementReport,
) -> Result<LimitsReport, SandboxError> {
    let limits = apply_rlimits_to_current_process(&plan.config.limits, None);
    let gaps: Vec<String> = limits
        .gaps()
        .map(|(name, m)| format!("{name}: {m}"))
        .collect();
    if !gaps.is_empty() && plan.config.require.contains(&Layer::Limits) {
        return Err(SandboxError::Required {
            layer: Layer::Limits,
            reason: gaps.join("; "),
        });
    }
    let essential_enforced = limits
        .limits
        .iter()
        .filter(|(name, _, _)| name == "memory" || name == "processes")
        .any(|(_, _, m)| m.is_enforced());
    if gaps.is_empty() {
        report.enforced.push(Layer::Limits);
    } else if essential_enforced {
        report.enforced.push(Layer::Limits);
        report.partial.push((Layer::Limits, gaps.join("; ")));
    } else {
        report.not_enforced.push((Layer::Limits, gaps.join("; ")));
    }
    tracing::debug!("limits: {limits}");
    Ok(limits)
}

/// The limit a fatal signal stands for: SIGXCPU (RLIMIT_CPU soft limit) and SIGXFSZ
/// (RLIMIT_FSIZE) are only sent by the kernel when a limit is reached.
pub fn limit_from_signal(signal: i32) -> Option<&'static str> {
    match signal {
        libc::SIGXCPU => Some("cpu-time"),
        libc::SIGXFSZ => Some("file-size"),
        _ => None,
    }
}

/// What a group would enforce here, found by creating a throwaway group and removing it; for
/// `mcp-guard check`.
pub fn probe_cgroups(limits: &EffectiveLimits) -> Result<CgroupCoverage, String> {
    #[cfg(target_os = "linux")]
    {
        cgroup::Group::create(limits).map(|group| group.coverage())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = limits;
        Err("cgroups exist only on Linux".into())
    }
}
