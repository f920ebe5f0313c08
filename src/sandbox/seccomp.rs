//! The seccomp-bpf layer: refuse (EPERM) the syscalls an MCP server never needs and that widen
//! the kernel surface or reach outside the sandbox, refuse the x32 ABI, kill foreign
//! architectures, and — with the network off — refuse sockets other than unix and netlink-route.
//!
//! The filter is a deny list on purpose: servers run arbitrary interpreters (node, python, JVMs)
//! whose syscall needs cannot be enumerated, while the syscalls below are never needed by one.
//! It is built and installed in the supervisor's single-threaded child, after every other layer
//! (those may need syscalls this filter refuses), right before `execve`.

use super::{
    EnforcementReport, Layer, NetworkMode, NetworkRules, Plan, SandboxConfig, SandboxError,
};

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
/// memfd_create flag: the memfd can never be made executable.
const MFD_NOEXEC_SEAL: u64 = 0x0008;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const AF_NETLINK: u64 = 16;
const NETLINK_ROUTE: u64 = 0;
/// `socket(2)` types (the low four bits of the type argument) and inet protocols.
const SOCK_TYPE_MASK: u64 = 0xf;
const SOCK_DGRAM: u64 = 2;
const SOCK_RAW: u64 = 3;
const SOCK_RDM: u64 = 4;
const SOCK_SEQPACKET: u64 = 5;
const SOCK_DCCP: u64 = 6;
const SOCK_PACKET: u64 = 10;
const IPPROTO_TCP: u64 = 6;
const IPPROTO_UDP: u64 = 17;

/// Syscall numbers with this bit set select the x32 ABI on x86-64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// What an installed filter covers, for the enforcement report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompSummary {
    /// Syscalls refused outright.
    pub denied: Vec<String>,
    /// Socket families still allowed (`None`: sockets are not filtered).
    pub socket_families: Option<String>,
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
        if let Some(families) = &self.socket_families {
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
    const BPF_JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const OFFSET_NR: u32 = 0;
    /// A tree of N leaves takes under 1.6 N instructions: 150 keeps every jump below 256.
    const MAX_TREE_LEAVES: usize = 150;
    const OFFSET_ARCH: u32 = 4;

    /// A compiled filter, ready to install on the calling thread.
    #[derive(Debug, Clone)]
    pub struct SyscallFilter {
        pub(super) program: BpfProgram,
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

            // Unconditional refusals go in a search tree of our own (below); seccompiler compiles
            // only the rules on arguments.
            let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
            let mut denied = Vec::new();
            let mut denied_nrs = Vec::new();
            for name in &deny {
                // Names of the default list missing on this architecture (iopl on arm64) are skipped.
                if let Some(nr) = table::number(name) {
                    denied_nrs.push(nr as u32);
                    denied.push((*name).to_owned());
                }
            }
            denied_nrs.sort_unstable();
            denied_nrs.dedup();
            if denied_nrs.len() > MAX_TREE_LEAVES {
                // Keep every jump of the tree within BPF's 8-bit offsets.
                rules.extend(denied_nrs.drain(..).map(|nr| (i64::from(nr), Vec::new())));
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
            if conditional("memfd_create") {
                // Landlock does not check exec of a memfd (an internal mount): copying a readable
                // binary into one and running it would bypass the exec allowlist. Only sealed,
                // never-executable memfds (MFD_NOEXEC_SEAL, Linux 6.3) are allowed.
                rules.insert(
                    libc::SYS_memfd_create,
                    vec![rule(vec![cond(
                        1,
                        SeccompCmpOp::MaskedEq(MFD_NOEXEC_SEAL),
                        0,
                    )?])?],
                );
            }
            let socket_families = if conditional("socket") {
                Some(socket_rules(&config.network, &mut rules)?)
            } else {
                None
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
            program.extend(deny_tree(&denied_nrs));
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

    /// A binary search over the sorted syscall numbers in `nrs` (the accumulator holds the number
    /// after the prologue): EPERM on a match, else fall through to the program that follows.
    ///
    /// seccompiler compiles a linear chain, and the kernel pays for its length at install time: it
    /// runs the filter once per syscall number to build its allow cache (~165 µs for a 350-instruction
    /// chain here, ~40 µs with the tree).
    fn deny_tree(nrs: &[u32]) -> BpfProgram {
        // Jumps to the two exits are patched once their positions are known.
        enum Exit {
            Deny,
            Continue,
        }
        fn emit(nrs: &[u32], code: &mut BpfProgram, exits: &mut Vec<(usize, Exit)>) {
            if nrs.len() <= 4 {
                for &nr in nrs {
                    exits.push((code.len(), Exit::Deny));
                    code.push(jump(BPF_JMP_JEQ_K, nr, 0, 0));
                }
                exits.push((code.len(), Exit::Continue));
                code.push(stmt(BPF_JMP_JA, 0));
                return;
            }
            let (low, high) = nrs.split_at(nrs.len() / 2);
            let split = code.len();
            code.push(jump(BPF_JMP_JGE_K, high[0], 0, 0));
            emit(low, code, exits);
            // Offsets are relative to the next instruction; the tree stays far below 256.
            code[split].jt = (code.len() - split - 1) as u8;
            emit(high, code, exits);
        }
        if nrs.is_empty() {
            return Vec::new();
        }
        let mut code = Vec::new();
        let mut exits = Vec::new();
        emit(nrs, &mut code, &mut exits);
        let deny = code.len();
        code.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32));
        let after = code.len();
        for (at, exit) in exits {
            match exit {
                Exit::Deny => code[at].jt = (deny - at - 1) as u8,
                Exit::Continue => code[at].k = (after - at - 1) as u32,
            }
        }
        code
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
    /// Refusals for `socket(2)` in every network mode; returns what stays allowed, for the report.
    ///
    /// An allowlist of families: AF_PACKET, AF_VSOCK, AF_BLUETOOTH, AF_ALG... all refused.
    /// Netlink stays for NETLINK_ROUTE only: glibc's getaddrinfo and if_nameindex open it.
    /// Unix sockets only when the policy names some: landlock below ABI 9 does not check
    /// connect() to pathname sockets such as /run/docker.sock (root on the host); socketpair(2),
    /// which servers use for child processes, is another syscall and stays allowed.
    /// Inet sockets are TCP only unless the policy names UDP destinations (landlock below ABI
    /// 10 cannot see UDP at all), and not at all with the network off.
    fn socket_rules(
        net: &NetworkRules,
        rules: &mut BTreeMap<i64, Vec<SeccompRule>>,
    ) -> Result<String, SeccompError> {
        let inet = net.mode != NetworkMode::Off;
        let udp = inet && (!net.udp.is_empty() || net.mode == NetworkMode::Open);
        let mut allowed = vec![AF_NETLINK];
        let mut names = vec!["netlink-route"];
        if !net.unix.is_empty() {
            allowed.push(AF_UNIX);
            names.push("unix");
        }
        if inet {
            allowed.extend([AF_INET, AF_INET6]);
            names.push(if udp { "tcp and udp" } else { "tcp" });
        }
        let other_family = allowed
            .iter()
            .map(|&family| cond(0, SeccompCmpOp::Ne, family))
            .collect::<Result<Vec<_>, _>>()?;
        let mut socket = vec![
            rule(other_family)?,
            rule(vec![
                cond(0, SeccompCmpOp::Eq, AF_NETLINK)?,
                cond(2, SeccompCmpOp::Ne, NETLINK_ROUTE)?,
            ])?,
        ];
        if inet && net.mode != NetworkMode::Open {
            // The type's low bits name it (the rest are SOCK_NONBLOCK / SOCK_CLOEXEC).
            let refused_types: &[u64] = if udp {
                &[SOCK_RAW, SOCK_RDM, SOCK_SEQPACKET, SOCK_DCCP, SOCK_PACKET]
            } else {
                &[
                    SOCK_DGRAM,
                    SOCK_RAW,
                    SOCK_RDM,
                    SOCK_SEQPACKET,
                    SOCK_DCCP,
                    SOCK_PACKET,
                ]
            };
            for family in [AF_INET, AF_INET6] {
                for &kind in refused_types {
                    socket.push(rule(vec![
                        cond(0, SeccompCmpOp::Eq, family)?,
                        cond(1, SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK), kind)?,
                    ])?);
                }
                // A stream socket of another protocol (SCTP, MPTCP) is not TCP to landlock.
                let mut protocol = vec![
                    cond(0, SeccompCmpOp::Eq, family)?,
                    cond(2, SeccompCmpOp::Ne, 0)?,
                    cond(2, SeccompCmpOp::Ne, IPPROTO_TCP)?,
                ];
                if udp {
                    protocol.push(cond(2, SeccompCmpOp::Ne, IPPROTO_UDP)?);
                }
                socket.push(rule(protocol)?);
            }
        }
        rules.insert(libc::SYS_socket, socket);
        Ok(names.join(", "))
    }

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
            let net = &plan.config.network;
            if !net.udp.is_empty() && net.mode != NetworkMode::Off {
                report.partial.push((
                    Layer::Seccomp,
                    "UDP sockets are allowed to every destination (the policy names UDP \
                     destinations; this kernel cannot check which)"
                        .into(),
                ));
            }
            if !net.unix.is_empty() {
                report.partial.push((
                    Layer::Seccomp,
                    "unix sockets are allowed (the policy names some); below landlock ABI 9 \
                     the kernel cannot check which paths"
                        .into(),
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

    /// Run `program` over seccomp_data {nr, arch, args} like the kernel (only the opcodes we and
    /// seccompiler emit).
    fn eval(program: &[seccompiler::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let program: Vec<_> = program.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
        crate::sandbox::bpf_eval::eval(&program, nr, arch, args)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn filter_refuses_exactly_the_denied_numbers() {
        const ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
        let filter = SyscallFilter::build(&SandboxConfig::default()).unwrap();
        let denied: Vec<i64> = filter
            .summary()
            .denied
            .iter()
            .map(|n| table::number(n).unwrap())
            .collect();
        for nr in 0..600u32 {
            let verdict = eval(&filter.program, nr, ARCH, [0; 6]);
            let expected = if nr as i64 == libc::SYS_clone3 {
                0x0005_0000 | libc::ENOSYS as u32
            } else if denied.contains(&(nr as i64))
                || nr as i64 == libc::SYS_socket
                || nr as i64 == libc::SYS_memfd_create
            {
                // EPERM (socket family 0 is refused with the network off; a memfd without
                // MFD_NOEXEC_SEAL is refused)
                0x0005_0001
            } else {
                0x7fff_0000 // allow
            };
            assert_eq!(verdict, expected, "syscall {nr}");
        }
        assert_eq!(
            eval(
                &filter.program,
                libc::SYS_memfd_create as u32,
                ARCH,
                [0, MFD_NOEXEC_SEAL, 0, 0, 0, 0]
            ),
            0x7fff_0000,
            "a sealed memfd is allowed"
        );
        assert_eq!(
            eval(&filter.program, 39 | 0x4000_0000, ARCH, [0; 6]),
            0x0005_0001,
            "x32"
        );
        assert_eq!(
            eval(&filter.program, 20, 3 | 0x4000_0000, [0; 6]),
            0x8000_0000,
            "i386 is killed"
        );
        let clone = libc::SYS_clone as u32;
        assert_eq!(
            eval(&filter.program, clone, ARCH, [0x1200011, 0, 0, 0, 0, 0]),
            0x7fff_0000,
            "fork"
        );
        assert_eq!(
            eval(&filter.program, clone, ARCH, [0x1000_0011, 0, 0, 0, 0, 0]),
            0x0005_0001,
            "NEWUSER"
        );
        let ioctl = libc::SYS_ioctl as u32;
        assert_eq!(
            eval(&filter.program, ioctl, ARCH, [1, 0x1_0000_5412, 0, 0, 0, 0]),
            0x0005_0001,
            "TIOCSTI"
        );
        assert_eq!(
            eval(&filter.program, ioctl, ARCH, [1, 0x5401, 0, 0, 0, 0]),
            0x7fff_0000,
            "TCGETS"
        );
        let socket = libc::SYS_socket as u32;
        assert_eq!(
            eval(&filter.program, socket, ARCH, [1, 1, 0, 0, 0, 0]),
            0x0005_0001,
            "unix (offline: no pathname sockets such as /run/docker.sock)"
        );
        assert_eq!(
            eval(&filter.program, socket, ARCH, [16, 3, 0, 0, 0, 0]),
            0x7fff_0000,
            "netlink route"
        );
        assert_eq!(
            eval(&filter.program, socket, ARCH, [16, 3, 4, 0, 0, 0]),
            0x0005_0001,
            "sock_diag"
        );
        assert_eq!(
            eval(&filter.program, socket, ARCH, [2, 2, 0, 0, 0, 0]),
            0x0005_0001,
            "inet"
        );
    }

    #[test]
    fn huge_deny_lists_fall_back_to_a_chain() {
        let mut config = SandboxConfig::default();
        config.syscalls.deny = table::COMMON
            .iter()
            .take(200)
            .map(|(n, _)| (*n).to_owned())
            .collect();
        let filter = SyscallFilter::build(&config).unwrap();
        assert!(filter.summary().denied.len() > 150);
    }

    #[test]
    fn network_modes_choose_socket_families() {
        let mut config = SandboxConfig::default();
        assert_eq!(
            SyscallFilter::build(&config)
                .unwrap()
                .summary()
                .socket_families
                .as_deref(),
            Some("netlink-route")
        );
        config.network.mode = NetworkMode::Open;
        assert_eq!(
            SyscallFilter::build(&config)
                .unwrap()
                .summary()
                .socket_families
                .as_deref(),
            Some("netlink-route, tcp and udp")
        );
        config.network.mode = NetworkMode::Hosts;
        config.network.unix.push("/run/x.sock".into());
        assert_eq!(
            SyscallFilter::build(&config)
                .unwrap()
                .summary()
                .socket_families
                .as_deref(),
            Some("netlink-route, unix, tcp")
        );
    }

    #[test]
    fn tcp_modes_refuse_udp_raw_and_other_stream_protocols() {
        #[cfg(target_arch = "x86_64")]
        const ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
        #[cfg(target_arch = "aarch64")]
        const ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
        let mut config = SandboxConfig::default();
        config.network.mode = NetworkMode::Ports;
        let filter = SyscallFilter::build(&config).unwrap();
        let socket = libc::SYS_socket as u32;
        let (allow, eperm) = (0x7fff_0000, 0x0005_0001);
        let cases = [
            ([2, 1, 0], allow, "tcp"),
            (
                [10, 1 | 0x800 | 0x80000, 6],
                allow,
                "tcp6, nonblocking, cloexec",
            ),
            ([2, 2, 0], eperm, "udp"),
            ([10, 2 | 0x800, 17], eperm, "udp6"),
            ([2, 3, 1], eperm, "raw"),
            ([2, 1, 132], eperm, "sctp stream"),
            ([2, 5, 132], eperm, "sctp seqpacket"),
            ([1, 1, 0], eperm, "unix (none listed)"),
            ([17, 3, 0], eperm, "packet"),
        ];
        for ([family, kind, protocol], want, what) in cases {
            assert_eq!(
                eval(
                    &filter.program,
                    socket,
                    ARCH,
                    [family, kind, protocol, 0, 0, 0]
                ),
                want,
                "{what}"
            );
        }
        config.network.udp.push("1.1.1.1:53".into());
        let filter = SyscallFilter::build(&config).unwrap();
        assert_eq!(
            eval(&filter.program, socket, ARCH, [2, 2, 17, 0, 0, 0]),
            allow,
            "udp once listed"
        );
    }
}
