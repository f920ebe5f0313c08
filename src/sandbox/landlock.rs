//! Landlock: filesystem rules, TCP ports, and scoping of abstract unix sockets and signals.
//!
//! Each of the three is its own ruleset, restricted in turn, so that each layer's real outcome
//! (fully, partially, not enforced) can be reported and required on its own; landlock stacks
//! them as nested domains and a process is bound by all of them.
//!
//! Access rights are requested up to the newest ABI this crate knows, in best-effort mode, so a
//! newer kernel enforces more and an older one enforces what it can; the difference is reported
//! as "partially enforced" with what is missing. When a layer is required, its core rights (the
//! ABI that introduced the layer) are a hard requirement: building the ruleset fails instead of
//! silently dropping them.

use std::path::Path;

use ::landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort,
    PathBeneath, PathFd, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, ABI,
};

use super::fs_rules::FsAccess;
use super::{EnforcementReport, Layer, NetworkMode, Plan, SandboxError};

/// The newest ABI whose rights we request. Raise it (and test) when the crate learns more.
const TARGET_ABI: ABI = ABI::V10;

/// Rulesets built (paths opened) while the process still has its privileges and full view of
/// the filesystem; restricted later, after capabilities are dropped.
pub struct Prepared {
    fs: Result<RulesetCreated, RulesetError>,
    net: Option<Result<RulesetCreated, RulesetError>>,
    scope: Result<RulesetCreated, RulesetError>,
}

fn level(plan: &Plan, layer: Layer) -> CompatLevel {
    if plan.config.require.contains(&layer) {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    }
}

/// Open every path of `plan.fs_grants` (and this process's own /proc entry) and build the rulesets.
/// `broker_tier`: the server's connects are performed by the supervisor's broker, so landlock
/// allows no TCP port at all (were the notifier ever missing, the network stays shut).
pub fn prepare(plan: &Plan, broker_tier: bool) -> Prepared {
    Prepared {
        fs: filesystem_ruleset(plan),
        net: match plan.config.network.mode {
            NetworkMode::Open => None,
            NetworkMode::Off | NetworkMode::Hosts | NetworkMode::Ports => {
                Some(network_ruleset(plan, broker_tier))
            }
        },
        scope: Ruleset::default()
            .set_compatibility(level(plan, Layer::LandlockScope))
            .scope(Scope::from_all(ABI::V6))
            .and_then(permit_reparenting),
    }
}

/// Create a ruleset for a layer that is not about files, letting files be renamed and linked
/// across directories. A landlock layer that does not handle `LANDLOCK_ACCESS_FS_REFER` denies
/// every such rename (with EXDEV: ABI 1 compatibility), whatever the other layers allow; so the
/// network and scope layers handle REFER and grant it on the whole tree, leaving the decision
/// to the filesystem layer.
fn permit_reparenting(ruleset: Ruleset) -> Result<RulesetCreated, RulesetError> {
    let created = ruleset
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::Refer)?
        .create()?;
    match PathFd::new("/") {
        Ok(root) => created.add_rule(PathBeneath::new(root, AccessFs::Refer)),
        Err(_) => Ok(created),
    }
}

/// Restrict the calling process with every prepared ruleset and record each outcome.
pub fn restrict(
    prepared: Prepared,
    plan: &Plan,
    report: &mut EnforcementReport,
) -> Result<(), SandboxError> {
    let required = |layer| plan.config.require.contains(&layer);
    let net = &plan.config.network;
    report.unix_refused = net.unix.is_empty();
    report.udp_refused =
        net.mode == NetworkMode::Off || (net.udp.is_empty() && net.mode != NetworkMode::Open);
    record(
        Layer::Landlock,
        prepared.fs.and_then(RulesetCreated::restrict_self),
        required(Layer::Landlock),
        report,
    )?;
    match prepared.net {
        Some(net) => record(
            Layer::LandlockNetwork,
            net.and_then(RulesetCreated::restrict_self),
            required(Layer::LandlockNetwork),
            report,
        )?,
        None => {
            let reason = "the policy allows all network access (network mode `open`)".to_string();
            if required(Layer::LandlockNetwork) {
                return Err(SandboxError::Required {
                    layer: Layer::LandlockNetwork,
                    reason,
                });
            }
            report.not_enforced.push((Layer::LandlockNetwork, reason));
        }
    }
    record(
        Layer::LandlockScope,
        prepared.scope.and_then(RulesetCreated::restrict_self),
        required(Layer::LandlockScope),
        report,
    )
}

fn filesystem_ruleset(plan: &Plan) -> Result<RulesetCreated, RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(level(plan, Layer::Landlock))
        .handle_access(AccessFs::from_all(ABI::V1))?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .create()?;
    for grant in &plan.fs_grants {
        // A path that vanished since the plan was made is simply not granted.
        let Ok(fd) = PathFd::new(&grant.path) else {
            continue;
        };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, rights(grant.access, &grant.path)))?;
    }
    // /proc/self is a symlink to /proc/<pid>, and landlock rules bind inodes, not names: a
    // rule on "/proc/self" opened here is a rule on /proc/<this pid>, which stays the server's
    // own entry across execve. A rule on /proc itself would expose every other process's
    // cmdline, status and the like; /proc/<guard>/environ and /mem would still be refused by
    // landlock's ptrace restriction, but we do not rely on that alone. The price: processes the
    // server forks cannot read their *own* /proc/self (only the server's), and if memory
    // pressure evicts the cached /proc/<pid> inode the rule stops matching (reads then fail
    // with EACCES, never succeed wrongly).
    if !plan.proc_self {
        return Ok(ruleset);
    }
    if let Ok(fd) = PathFd::new("/proc/self") {
        ruleset = ruleset.add_rule(PathBeneath::new(fd, AccessFs::ReadFile | AccessFs::ReadDir))?;
    }
    Ok(ruleset)
}

/// Landlock rights for one grant. Files only take file rights (the kernel rejects directory
/// rights on a file; the crate would report the rule "partially" applied).
fn rights(access: FsAccess, path: &Path) -> BitFlags<AccessFs> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let all = match access {
        FsAccess::Read => read,
        FsAccess::Execute => read | AccessFs::Execute,
        FsAccess::Device => read | AccessFs::WriteFile | AccessFs::Truncate,
        FsAccess::Write => {
            read | (AccessFs::from_write(TARGET_ABI)
                & !(AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::IoctlDev))
        }
    };
    if path.is_dir() {
        all
    } else {
        all & AccessFs::from_file(TARGET_ABI)
    }
}

fn network_ruleset(plan: &Plan, broker_tier: bool) -> Result<RulesetCreated, RulesetError> {
    let rules = &plan.config.network;
    // With the network off, UDP too where the kernel can (ABI 10); with a port list, TCP only
    // (a UDP port list would also have to let DNS through: a policy question).
    let all = match rules.mode {
        NetworkMode::Ports => AccessNet::from_all(ABI::V9),
        NetworkMode::Off | NetworkMode::Hosts | NetworkMode::Open => {
            AccessNet::from_all(TARGET_ABI)
        }
    };
    let ruleset = Ruleset::default()
        .set_compatibility(level(plan, Layer::LandlockNetwork))
        .handle_access(AccessNet::from_all(ABI::V4))?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?;
    let mut ruleset = permit_reparenting(ruleset)?;
    if let (NetworkMode::Hosts, Some(egress), false) = (rules.mode, plan.egress, broker_tier) {
        // The namespace tier: the proxy's port, the only listener in the server's namespace.
        ruleset = ruleset.add_rule(NetPort::new(egress.proxy_port, AccessNet::ConnectTcp))?;
    }
    if rules.mode == NetworkMode::Ports {
        for &port in &rules.connect {
            ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
        }
        for &port in &rules.bind {
            ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::BindTcp))?;
        }
    }
    Ok(ruleset)
}

fn record(
    layer: Layer,
    outcome: Result<RestrictionStatus, RulesetError>,
    required: bool,
    report: &mut EnforcementReport,
) -> Result<(), SandboxError> {
    let status = match outcome {
        Ok(status) => status,
        Err(err) => {
            let reason = format!("landlock refused the ruleset: {err}");
            if required {
                return Err(SandboxError::Required { layer, reason });
            }
            report.not_enforced.push((layer, reason));
            return Ok(());
        }
    };
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
        _ => None,
    };
    if let Some(abi) = abi {
        report.landlock_abi = Some(abi.to_string());
    }
    match status.ruleset {
        RulesetStatus::FullyEnforced => report.enforced.push(layer),
        RulesetStatus::PartiallyEnforced => {
            report.enforced.push(layer);
            // seccomp refuses unix and UDP sockets unless the policy names some, closing the
            // socket gaps of older ABIs (if seccomp fails, its own report says what stays open).
            if let Some(gaps) = missing(layer, abi, report.unix_refused, report.udp_refused) {
                report.partial.push((layer, gaps));
            }
        }
        RulesetStatus::NotEnforced => {
            let reason = unavailable(layer, &status.landlock);
            if required {
                return Err(SandboxError::Required { layer, reason });
            }
            report.not_enforced.push((layer, reason));
        }
    }
    Ok(())
}

/// What a partially enforced layer leaves open on a kernel with landlock `abi`.
fn missing(
    layer: Layer,
    abi: Option<ABI>,
    unix_refused: bool,
    udp_refused: bool,
) -> Option<String> {
    let Some(abi) = abi else {
        return Some("the kernel's landlock ABI is unknown".into());
    };
    let gaps: &[(ABI, &str)] = match layer {
        Layer::Landlock => &[
            (ABI::V2, "renaming or linking files across directories is refused everywhere (needs ABI 2)"),
            (ABI::V3, "truncate(2) is not restricted (needs ABI 3, Linux 6.2)"),
            (ABI::V5, "ioctl on device files is not restricted (needs ABI 5, Linux 6.10)"),
            (
                ABI::V9,
                "connect() to pathname unix sockets such as /run/docker.sock is not restricted (needs ABI 9, Linux 7.1)",
            ),
        ],
        Layer::LandlockNetwork => &[(ABI::V10, "UDP is not restricted by landlock (needs ABI 10, Linux 7.2)")],
        _ => &[],
    };
    let open: Vec<&str> = gaps
        .iter()
        .filter(|(needed, _)| abi < *needed)
        .filter(|(needed, _)| !(unix_refused && *needed == ABI::V9))
        .filter(|(needed, _)| !(udp_refused && *needed == ABI::V10))
        .map(|(_, what)| *what)
        .collect();
    if open.is_empty() {
        // Only gaps seccomp covers: nothing is left open.
        return if unix_refused && udp_refused {
            None
        } else {
            Some(format!(
                "landlock ABI {abi} does not support every requested right"
            ))
        };
    }
    Some(format!("landlock ABI {abi}: {}", open.join("; ")))
}

/// Why a layer could not be enforced at all, with what to do about it.
fn unavailable(layer: Layer, status: &LandlockStatus) -> String {
    match status {
        LandlockStatus::NotImplemented => {
            "this kernel has no landlock (needs Linux 5.13+ built with CONFIG_SECURITY_LANDLOCK)"
                .into()
        }
        LandlockStatus::NotEnabled => {
            "landlock is built in but not enabled: add `landlock` to the `lsm=` kernel parameter"
                .into()
        }
        LandlockStatus::Available { effective_abi, .. } => {
            let needs = match layer {
                Layer::LandlockNetwork => "ABI 4 (Linux 6.7) for TCP port rules",
                Layer::LandlockScope => "ABI 6 (Linux 6.12) for socket and signal scoping",
                _ => "a newer ABI",
            };
            format!("kernel landlock ABI {effective_abi} is too old: needs {needs}")
        }
    }
}
