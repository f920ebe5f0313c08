//! What this kernel and this process offer the sandbox, measured rather than assumed (for
//! `mcp-guard check`): every probe asks the kernel directly, so a distribution's config files or a
//! missing securityfs cannot mislead it.

use serde::Serialize;

use super::limits::{self, CgroupCoverage, EffectiveLimits, LimitsReport};
use super::{Isolation, Layer, SandboxConfig};

/// Everything `mcp-guard check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub os: &'static str,
    pub arch: &'static str,
    pub kernel: Option<String>,
    pub landlock: LandlockProbe,
    pub seccomp: SeccompProbe,
    pub cgroups: CgroupProbe,
    pub user_namespaces: UserNamespaces,
    /// How `hosts` network mode would make the egress proxy the only way out here.
    pub egress: EgressProbe,
    pub identity: Identity,
    /// Kernel knobs that change what an unconfined server could do.
    pub kernel_settings: Vec<(String, String)>,
    /// What `mcp-guard run` would enforce with no policy.
    pub default_run: DefaultRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct LandlockProbe {
    /// The ABI version (`landlock_create_ruleset(NULL, 0, VERSION)`), when landlock is on.
    pub abi: Option<u32>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeccompProbe {
    pub filter_available: bool,
    /// Return actions the kernel knows (`SECCOMP_GET_ACTION_AVAIL`).
    pub actions: Vec<&'static str>,
    /// "compiled out", "enabled" or "not applicable" (not x86-64).
    pub x32_abi: &'static str,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupProbe {
    /// Controllers offered to our cgroup in the v2 hierarchy (None: no v2 hierarchy).
    pub v2_controllers: Option<Vec<String>>,
    /// v1 controllers mounted.
    pub v1_controllers: Vec<String>,
    /// What a server group would enforce here: found by creating one and removing it.
    pub usable: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserNamespaces {
    /// /proc/sys/user/max_user_namespaces.
    pub max: Option<u64>,
    /// Debian's /proc/sys/kernel/unprivileged_userns_clone, Ubuntu's AppArmor restriction.
    pub unprivileged_allowed: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EgressProbe {
    /// The tier `hosts` mode would use: "namespace", "broker", or none (refuses to start).
    pub tier: Option<Isolation>,
    /// Why a private network namespace cannot be made here (tried in a child), if not.
    pub namespace_error: Option<String>,
    /// Why the seccomp broker cannot work here, if not.
    pub broker_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub uid: u32,
    pub euid: u32,
    pub root: bool,
    /// Effective capabilities, by name.
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DefaultRun {
    /// Each layer with how it is enforced or why it is not.
    pub layers: Vec<LayerOutcome>,
    pub limits: LimitsReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerOutcome {
    pub layer: Layer,
    pub enforced: bool,
    pub detail: String,
}

/// Measure everything. Creates and removes a throwaway cgroup.
/// Probe the kernel, and say what `run` would enforce with `config` (the resolved default
/// policy, for `mcp-guard check`).
pub fn probe(config: &SandboxConfig) -> Probe {
    let landlock = probe_landlock();
    let seccomp = probe_seccomp();
    let (cgroups, coverage) = probe_cgroups();
    let identity = probe_identity();
    let egress = probe_egress(&seccomp);
    let default_run = default_run(config, &landlock, &seccomp, coverage, &identity);
    Probe {
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        landlock,
        seccomp,
        cgroups,
        user_namespaces: probe_user_namespaces(),
        egress,
        identity,
        kernel_settings: kernel_settings(),
        default_run,
    }
}

fn default_run(
    config: &SandboxConfig,
    landlock: &LandlockProbe,
    seccomp: &SeccompProbe,
    coverage: CgroupCoverage,
    identity: &Identity,
) -> DefaultRun {
    let mut layers = Vec::new();
    let abi = landlock.abi.unwrap_or(0);
    let landlock_missing = landlock
        .error
        .clone()
        .unwrap_or_else(|| "landlock is off".into());
    for (layer, min_abi, what) in [
        (Layer::Landlock, 1, "filesystem read/write/execute rules"),
        (Layer::LandlockNetwork, 4, "no TCP bind/connect"),
        (
            Layer::LandlockScope,
            6,
            "no abstract unix sockets or signals outside",
        ),
    ] {
        let (enforced, detail) = if abi >= min_abi {
            (true, format!("{what} (ABI {abi})"))
        } else if abi > 0 {
            (
                false,
                format!("needs landlock ABI {min_abi}, kernel has {abi}"),
            )
        } else {
            (false, landlock_missing.clone())
        };
        layers.push(LayerOutcome {
            layer,
            enforced,
            detail,
        });
    }
    let (enforced, detail) = match (seccomp.filter_available, default_filter_summary(config)) {
        (true, Ok(summary)) => (true, summary),
        (false, _) => (
            false,
            seccomp
                .error
                .clone()
                .unwrap_or_else(|| "seccomp filters unavailable".into()),
        ),
        (true, Err(e)) => (false, e),
    };
    layers.push(LayerOutcome {
        layer: Layer::Seccomp,
        enforced,
        detail,
    });
    let caps = if identity.capabilities.is_empty() {
        (
            true,
            "the server starts with no capabilities (the bounding set is left as is: only a \
             privileged guard can drop it, and no_new_privs keeps execve from granting any)"
                .to_owned(),
        )
    } else if cfg!(target_os = "linux") {
        let held = identity.capabilities.len();
        (
            true,
            format!("all {held} capabilities dropped (bounding, permitted, effective, ambient)"),
        )
    } else {
        (false, "only on Linux".to_owned())
    };
    layers.push(LayerOutcome {
        layer: Layer::Capabilities,
        enforced: caps.0,
        detail: caps.1,
    });
    let limits = limits::predict_rlimits(&config.limits, coverage);
    let gaps: Vec<String> = limits.gaps().map(|(n, m)| format!("{n}: {m}")).collect();
    layers.push(LayerOutcome {
        layer: Layer::Limits,
        enforced: gaps.is_empty(),
        detail: if gaps.is_empty() {
            limits.to_string()
        } else {
            gaps.join("; ")
        },
    });
    DefaultRun { layers, limits }
}

fn default_filter_summary(config: &SandboxConfig) -> Result<String, String> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        super::seccomp::SyscallFilter::build(config)
            .map(|f| f.summary().to_string())
            .map_err(|e| e.to_string())
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = config;
        Err(format!(
            "no seccomp filter for {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ))
    }
}

fn probe_cgroups() -> (CgroupProbe, CgroupCoverage) {
    let mut probe = CgroupProbe {
        v2_controllers: None,
        v1_controllers: Vec::new(),
        usable: None,
        error: None,
    };
    if let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let superopts = right.nth(1).unwrap_or_default();
            let mount = left.split(' ').nth(4).unwrap_or_default();
            match fstype {
                "cgroup2" => {
                    let own = own_v2_path().unwrap_or_default();
                    let dir = std::path::Path::new(mount).join(own.trim_start_matches('/'));
                    probe.v2_controllers = Some(
                        read_trimmed(dir.join("cgroup.controllers"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                "cgroup" => probe.v1_controllers.extend(
                    superopts
                        .split(',')
                        .filter(|o| ["memory", "pids", "cpu", "freezer"].contains(o))
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
    }
    probe.v1_controllers.sort();
    let limits = EffectiveLimits::of(&Default::default());
    let coverage = match limits::probe_cgroups(&limits) {
        Ok(coverage) => {
            let files: Vec<String> = [coverage.memory, coverage.pids, coverage.cpu]
                .into_iter()
                .flatten()
                .map(|f| format!("{} {}", if f.v2 { "v2" } else { "v1" }, f.file))
                .collect();
            probe.usable = Some(files.join(", "));
            coverage
        }
        Err(e) => {
            probe.error = Some(e);
            CgroupCoverage::default()
        }
    };
    (probe, coverage)
}

fn own_v2_path() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}

fn probe_egress(seccomp: &SeccompProbe) -> EgressProbe {
    #[cfg(target_os = "linux")]
    let namespace_error = super::netns::probe().err();
    #[cfg(not(target_os = "linux"))]
    let namespace_error = Some("only available on Linux".to_owned());
    // The broker needs user notification with descriptor injection (SECCOMP_IOCTL_NOTIF_ADDFD,
    // Linux 5.9); the action's presence is what can be asked without installing a filter.
    let broker_error = if !seccomp.filter_available {
        Some("no seccomp filters".to_owned())
    } else if !seccomp.actions.contains(&"user_notif") {
        Some("seccomp has no user notification (needs Linux 5.9)".to_owned())
    } else {
        None
    };
    let tier = match (&namespace_error, &broker_error) {
        (None, _) => Some(Isolation::Namespace),
        (Some(_), None) => Some(Isolation::Broker),
        _ => None,
    };
    EgressProbe {
        tier,
        namespace_error,
        broker_error,
    }
}

fn probe_user_namespaces() -> UserNamespaces {
    let max = read_trimmed("/proc/sys/user/max_user_namespaces").and_then(|t| t.parse().ok());
    let debian = read_trimmed("/proc/sys/kernel/unprivileged_userns_clone").map(|v| v == "1");
    let ubuntu =
        read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").map(|v| v == "0");
    let unprivileged_allowed = match (max, debian, ubuntu) {
        (Some(0), _, _) => Some(false),
        (_, Some(false), _) | (_, _, Some(false)) => Some(false),
        (Some(_), _, _) => Some(true),
        _ => None,
    };
    UserNamespaces {
        max,
        unprivileged_allowed,
    }
}

fn kernel_settings() -> Vec<(String, String)> {
    [
        ("io_uring_disabled", "/proc/sys/kernel/io_uring_disabled"),
        ("legacy_tiocsti", "/proc/sys/dev/tty/legacy_tiocsti"),
        ("yama_ptrace_scope", "/proc/sys/kernel/yama/ptrace_scope"),
        (
            "unprivileged_bpf_disabled",
            "/proc/sys/kernel/unprivileged_bpf_disabled",
        ),
        (
            "perf_event_paranoid",
            "/proc/sys/kernel/perf_event_paranoid",
        ),
        (
            "unprivileged_userfaultfd",
            "/proc/sys/vm/unprivileged_userfaultfd",
        ),
    ]
    .into_iter()
    .map(|(name, path)| {
        (
            name.to_owned(),
            read_trimmed(path).unwrap_or_else(|| "absent".into()),
        )
    })
    .collect()
}

fn read_trimmed(path: impl AsRef<std::path::Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_owned())
}

#[cfg(target_os = "linux")]
fn probe_landlock() -> LandlockProbe {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a NULL attribute pointer with size 0 and the VERSION flag only queries the ABI.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc >= 0 {
        return LandlockProbe {
            abi: u32::try_from(rc).ok(),
            error: None,
        };
    }
    let err = std::io::Error::last_os_error();
    let error = match err.raw_os_error() {
        Some(libc::ENOSYS) => {
            "kernel built without landlock (Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)".into()
        }
        Some(libc::EOPNOTSUPP) => {
            "landlock is built in but disabled: add `landlock` to the lsm= boot parameter".into()
        }
        _ => format!("landlock_create_ruleset: {err}"),
    };
    LandlockProbe {
        abi: None,
        error: Some(error),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_landlock() -> LandlockProbe {
    LandlockProbe {
        abi: None,
        error: Some("landlock exists only on Linux".into()),
    }
}

#[cfg(target_os = "linux")]
fn probe_seccomp() -> SeccompProbe {
    // SECCOMP_SET_MODE_FILTER with a NULL program: EFAULT when filters are supported, EINVAL when
    // the kernel lacks CONFIG_SECCOMP_FILTER. Nothing is installed either way.
    // SAFETY: the kernel rejects the NULL pointer before using it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            std::ptr::null::<libc::c_void>(),
        )
    };
    let errno = std::io::Error::last_os_error();
    let filter_available = rc < 0 && errno.raw_os_error() == Some(libc::EFAULT);
    let actions = [
        (libc::SECCOMP_RET_KILL_PROCESS, "kill_process"),
        (libc::SECCOMP_RET_KILL_THREAD, "kill_thread"),
        (libc::SECCOMP_RET_TRAP, "trap"),
        (libc::SECCOMP_RET_ERRNO, "errno"),
        (libc::SECCOMP_RET_USER_NOTIF, "user_notif"),
        (libc::SECCOMP_RET_TRACE, "trace"),
        (libc::SECCOMP_RET_LOG, "log"),
        (libc::SECCOMP_RET_ALLOW, "allow"),
    ]
    .into_iter()
    .filter(|(action, _)| {
        let action: u32 = *action;
        // SAFETY: the kernel reads one u32 from the pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_ACTION_AVAIL,
                0,
                &action as *const u32,
            )
        };
        rc == 0
    })
    .map(|(_, name)| name)
    .collect();
    SeccompProbe {
        filter_available,
        actions,
        x32_abi: probe_x32(),
        error: (!filter_available).then(|| format!("seccomp filters unavailable: {errno}")),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_seccomp() -> SeccompProbe {
    SeccompProbe {
        filter_available: false,
        actions: Vec::new(),
        x32_abi: "not applicable",
        error: Some("seccomp exists only on Linux".into()),
    }
}

/// getpid through the x32 ABI: ENOSYS when x32 is compiled out (or disabled), a pid otherwise.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn probe_x32() -> &'static str {
    const X32_GETPID: libc::c_long = 0x4000_0000 | 39;
    // SAFETY: getpid takes no arguments and has no side effect.
    if unsafe { libc::syscall(X32_GETPID) } >= 0 {
        "enabled"
    } else {
        "compiled out"
    }
}

#[cfg(all(target_os = "linux", not(target_arch = "x86_64")))]
fn probe_x32() -> &'static str {
    "not applicable"
}

#[cfg(target_os = "linux")]
fn probe_identity() -> Identity {
    let mut capabilities: Vec<String> = caps::read(None, caps::CapSet::Effective)
        .map(|set| set.into_iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    capabilities.sort();
    let (uid, euid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
    );
    Identity {
        uid,
        euid,
        root: euid == 0,
        capabilities,
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_identity() -> Identity {
    let (uid, euid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
    );
    Identity {
        uid,
        euid,
        root: euid == 0,
        capabilities: Vec::new(),
    }
}
