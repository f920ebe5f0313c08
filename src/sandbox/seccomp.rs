//! The seccomp-bpf layer: refuse (EPERM) the syscalls an MCP server never needs and that widen
//! the kernel surface or reach outside the sandbox, refuse the x32 ABI, kill foreign
//! architectures, and — with the network off — refuse sockets other than unix and netlink-route.
//!
//! The filter is a deny list on purpose: servers run arbitrary interpreters (node, python, JVMs)
//! whose syscall needs cannot be enumerated, while the syscalls below are never needed by one.
//! It is built and installed in the supervisor's single-threaded child, after every other layer
//! (those may need syscalls this filter refuses), right before `execve`.

use super::{EnforcementReport, Layer, NetworkMode, Plan, SandboxConfig, SandboxError};

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod table;

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    #[error("unknown syscall `{0}` in the syscall rules (use the kernel's name, e.g. `ptrace`)")]
    UnknownSyscall(String),
    #[error("seccomp filters are not supported on this architecture ({0})")]
    UnsupportedArch(&'static str),
    #[error("seccomp is not available on this system (Linux only)")]
    UnsupportedOs,
    #[error("cannot build the seccomp filter: {0}")]
    Build(String),
    #[error("the kernel refused the seccomp filter: {0} (needs Linux 3.5+ built with CONFIG_SECCOMP_FILTER)")]
    Install(#[source] std::io::Error),
}

/// What the default filter refuses, by name; `syscalls.allow` removes names, `syscalls.deny`
/// adds them. `clone` and `ioctl` are refused only for the dangerous arguments.
pub const DEFAULT_DENY: &[&str] = &[
    // Reading or writing other processes' memory.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    // Large kernel attack surface, frequent source of privilege escalations.
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "personality",
    "vmsplice",
    // File handles bypass path-based (landlock) checks.
    "open_by_handle_at",
    "name_to_handle_at",
    // Mounts and namespaces: escape routes from path-based confinement.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "unshare",
    "setns",
    // Host administration.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "modify_ldt",
    "uselib",
    "_sysctl",
    "lookup_dcookie",
    "nfsservctl",
];

/// Namespace flags refused in `clone(2)`'s first argument. CLONE_NEWTIME (0x80) is left out:
/// in `clone` that bit belongs to the exit signal; `unshare` (refused whole) is the way to it.
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// Terminal ioctls that inject input (TIOCSTI) or reach the console (TIOCLINUX).
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// `socket(2)` families and netlink protocol the filter reasons about.
const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const AF_NETLINK: u64 = 16;
const NETLINK_ROUTE: u64 = 0;

/// Syscall numbers with this bit set select the x32 ABI on x86-64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// What an installed filter covers, for the enforcement report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompSummary {
    /// Syscalls refused outright.
    pub denied: Vec<String>,
    /// Socket families still allowed (`None`: sockets are not filtered).
    pub socket_families: Option<&'static str>,
    /// Number of BPF instructions.
    pub instructions: usize,
}

impl std::fmt::Display for SeccompSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} syscalls refused with EPERM, clone into namespaces (clone3: ENOSYS), TIOCSTI/TIOCLINUX, x32 ABI refused, \
             foreign architectures killed",
            self.denied.len()
        )?;
        if let Some(families) = self.socket_families {
            write!(f, ", sockets limited to {families}")?;
        }
        write!(f, " ({} BPF instructions)", self.instructions)
    }
}

/// Every syscall name this build knows; `None` when seccomp is unsupported here.
pub fn is_known_syscall(name: &str) -> Option<bool> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        Some(table::number(name).is_some())
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = name;
        None
    }
}

/// Check the syscall names of `config` without building anything (for policy validation).
pub fn validate_names(config: &SandboxConfig) -> Result<(), SeccompError> {
    for name in config.syscalls.deny.iter().chain(&config.syscalls.allow) {
        if is_known_syscall(name) == Some(false) {
            return Err(SeccompError::UnknownSyscall(name.clone()));
        }
    }
    Ok(())
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub use linux::SyscallFilter;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod linux {
    use std::collections::{BTreeMap, BTreeSet};

    use seccompiler::{
        sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
        SeccompFilter, SeccompRule, TargetArch,
    };

    use super::*;

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000; // EM_X86_64, 64-bit, little-endian
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000; // EM_AARCH64, 64-bit, little-endian
    #[cfg(target_arch = "x86_64")]
    const TARGET: TargetArch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    const TARGET: TargetArch = TargetArch::aarch64;

    // Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JMP_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const BPF_JMP_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const OFFSET_NR: u32 = 0;
    const OFFSET_ARCH: u32 = 4;

    /// A compiled filter, ready to install on the calling thread.
    #[derive(Debug, Clone)]
    pub struct SyscallFilter {
        program: BpfProgram,
        summary: SeccompSummary,
    }

    impl SyscallFilter {
        /// Build the filter for `config`: the default deny list adjusted by `syscalls.allow` /
        /// `syscalls.deny`, plus socket rules for the network mode.
        pub fn build(config: &SandboxConfig) -> Result<Self, SeccompError> {
            validate_names(config)?;
            let allow: BTreeSet<&str> = config.syscalls.allow.iter().map(String::as_str).collect();
            let mut deny: BTreeSet<&str> = DEFAULT_DENY
                .iter()
                .copied()
                .filter(|n| !allow.contains(n))
                .collect();
            deny.extend(
                config
                    .syscalls
                    .deny
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !allow.contains(n)),
            );

            let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
            let mut denied = Vec::new();
            for name in &deny {
                // Names of the default list missing on this architecture (iopl on arm64) are skipped.
                if let Some(nr) = table::number(name) {
                    rules.insert(nr, Vec::new());
                    denied.push((*name).to_owned());
                }
            }
            // clone3 passes its flags in memory, out of the filter's reach. ENOSYS (in the
            // prologue) makes glibc and Rust's std fall back to clone(2), whose flags we can see.
            let clone3_enosys = !deny.contains("clone3") && !allow.contains("clone3");
            let conditional = |name: &str| !deny.contains(name) && !allow.contains(name);
            if conditional("clone") {
                let per_flag = CLONE_NAMESPACE_FLAGS
                    .iter()
                    .map(|&flag| rule(vec![cond(0, SeccompCmpOp::MaskedEq(flag), flag)?]))
                    .collect::<Result<Vec<_>, _>>()?;
                rules.insert(libc::SYS_clone, per_flag);
            }
            if conditional("ioctl") {
                // The kernel compares the request as a 32-bit int: match the low 32 bits only, or a
                // high bit set by the caller would slip past.
                rules.insert(
                    libc::SYS_ioctl,
                    vec![
                        rule(vec![cond(1, SeccompCmpOp::Eq, TIOCSTI)?])?,
                        rule(vec![cond(1, SeccompCmpOp::Eq, TIOCLINUX)?])?,
                    ],
                );
            }
            let socket_families = match config.network.mode {
                NetworkMode::Open => None,
                _ if !conditional("socket") => None,
                mode => {
                    // An allowlist of families: AF_PACKET, AF_VSOCK, AF_BLUETOOTH, AF_ALG... all
                    // refused. Netlink stays for NETLINK_ROUTE only: glibc's getaddrinfo and
                    // if_nameindex open it; sock_diag, audit and uevent sockets are refused.
                    let mut allowed = vec![AF_UNIX, AF_NETLINK];
                    if mode == NetworkMode::Ports {
                        // TCP ports are policed by landlock; UDP is not (see the docs).
                        allowed.extend([AF_INET, AF_INET6]);
                    }
                    let other_family = allowed
                        .iter()
                        .map(|&family| cond(0, SeccompCmpOp::Ne, family))
                        .collect::<Result<Vec<_>, _>>()?;
                    rules.insert(
                        libc::SYS_socket,
                        vec![
                            rule(other_family)?,
                            rule(vec![
                                cond(0, SeccompCmpOp::Eq, AF_NETLINK)?,
                                cond(2, SeccompCmpOp::Ne, NETLINK_ROUTE)?,
                            ])?,
                        ],
                    );
                    Some(if mode == NetworkMode::Ports {
                        "unix, inet, inet6, netlink-route"
                    } else {
                        "unix, netlink-route"
                    })
                }
            };

            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(libc::EPERM as u32),
                TARGET,
            )
            .map_err(|e| SeccompError::Build(e.to_string()))?;
            let body: BpfProgram = filter
                .try_into()
                .map_err(|e: seccompiler::BackendError| SeccompError::Build(e.to_string()))?;
            let mut program = prologue(clone3_enosys);
            program.extend(body);
            let summary = SeccompSummary {
                denied,
                socket_families,
                instructions: program.len(),
            };
            Ok(Self { program, summary })
        }

        pub fn summary(&self) -> &SeccompSummary {
            &self.summary
        }

        /// Install the filter on the calling thread (sets no_new_privs first, as the kernel
        /// requires without CAP_SYS_ADMIN). Children and the exec'd server inherit it.
        pub fn install(&self) -> Result<(), SeccompError> {
            seccompiler::apply_filter(&self.program).map_err(|e| match e {
                seccompiler::Error::Prctl(io) | seccompiler::Error::Seccomp(io) => {
                    SeccompError::Install(io)
                }
                other => SeccompError::Build(other.to_string()),
            })
        }
    }

    /// Instructions run before seccompiler's program: kill foreign architectures (i386 via
    /// `int 0x80` included), refuse the x32 ABI, and answer clone3 with ENOSYS.
    ///
    /// x32 gets EPERM rather than being let through to the kernel: x32 syscalls are the x86-64
    /// ones with bit 30 set, so a filter keyed on x86-64 numbers would miss every one of them on
    /// kernels built with x32 (seccompiler does not check the bit). EPERM, not ENOSYS, so that a
    /// test can tell the filter refused it on kernels where x32 is compiled out.
    fn prologue(clone3_enosys: bool) -> BpfProgram {
        let mut p = vec![
            stmt(BPF_LD_W_ABS, OFFSET_ARCH),
            jump(BPF_JMP_JEQ_K, AUDIT_ARCH, 1, 0),
            stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
            stmt(BPF_LD_W_ABS, OFFSET_NR),
            jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
            stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        ];
        if clone3_enosys {
            p.push(jump(BPF_JMP_JEQ_K, libc::SYS_clone3 as u32, 0, 1));
            p.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
        }
        p
    }

    fn stmt(code: u16, k: u32) -> sock_filter {
        sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    /// A 32-bit comparison of argument `index`: flags, families and ioctl requests are `int`s.
    fn cond(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
        SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
            .map_err(|e| SeccompError::Build(e.to_string()))
    }

    fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
        SeccompRule::new(conditions).map_err(|e| SeccompError::Build(e.to_string()))
    }
}

/// Build and install the filter for `config` on the calling thread; on success, what it covers.
pub fn install_on_current_thread(config: &SandboxConfig) -> Result<SeccompSummary, SeccompError> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        let filter = SyscallFilter::build(config)?;
        filter.install()?;
        Ok(filter.summary().clone())
    }
    #[cfg(all(
        target_os = "linux",
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    ))]
    {
        let _ = config;
        Err(SeccompError::UnsupportedArch(std::env::consts::ARCH))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = config;
        Err(SeccompError::UnsupportedOs)
    }
}

/// Step 2b of [`super::apply_to_current_process`], last of all: install the filter and record the
/// outcome. A mistake in the configuration (unknown syscall name) is an error; a kernel without
/// seccomp degrades loudly, or refuses to start when seccomp is required.
pub fn apply_to_current_process(
    plan: &Plan,
    report: &mut EnforcementReport,
) -> Result<(), SandboxError> {
    match install_on_current_thread(&plan.config) {
        Ok(summary) => {
            report.enforced.push(Layer::Seccomp);
            if plan.config.network.mode == NetworkMode::Ports {
                report.partial.push((
                    Layer::Seccomp,
                    "UDP is not filtered when TCP ports are allowed".into(),
                ));
            }
            tracing::debug!("seccomp: {summary}");
            Ok(())
        }
        Err(e @ SeccompError::UnknownSyscall(_)) => Err(SandboxError::Setup(e.to_string())),
        Err(e) if plan.config.require.contains(&Layer::Seccomp) => Err(SandboxError::Required {
            layer: Layer::Seccomp,
            reason: e.to_string(),
        }),
        Err(e) => {
            let mut reason = e.to_string();
            if plan.config.network.mode == NetworkMode::Off {
                reason.push_str("; UDP and raw sockets stay open");
            }
            report.not_enforced.push((Layer::Seccomp, reason));
            Ok(())
        }
    }
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::*;

    #[test]
    fn default_deny_names_are_known_or_arch_specific() {
        let arch_specific = [
            "iopl",
            "ioperm",
            "modify_ldt",
            "uselib",
            "_sysctl",
            "kexec_file_load",
        ];
        for name in DEFAULT_DENY {
            assert!(
                is_known_syscall(name) == Some(true) || arch_specific.contains(name),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_names_are_rejected() {
        let mut config = SandboxConfig::default();
        config.syscalls.deny.push("no_such_call".into());
        assert!(
            matches!(SyscallFilter::build(&config), Err(SeccompError::UnknownSyscall(n)) if n == "no_such_call")
        );
    }

    #[test]
    fn allow_removes_and_deny_adds() {
        let mut config = SandboxConfig::default();
        config.syscalls.allow.push("ptrace".into());
        config.syscalls.deny.push("getpid".into());
        let filter = SyscallFilter::build(&config).unwrap();
        assert!(!filter.summary().denied.iter().any(|n| n == "ptrace"));
        assert!(filter.summary().denied.iter().any(|n| n == "getpid"));
    }

    #[test]
    fn network_modes_choose_socket_families() {
        let mut config = SandboxConfig::default();
        assert_eq!(
            SyscallFilter::build(&config)
                .unwrap()
                .summary()
                .socket_families,
            Some("unix, netlink-route")
        );
        config.network.mode = NetworkMode::Open;
        assert_eq!(
            SyscallFilter::build(&config)
                .unwrap()
                .summary()
                .socket_families,
            None
        );
    }
}
