//! The connect notifier's seccomp filter, installed in the child.

use super::*;

#[cfg(target_arch = "x86_64")]
pub(super) const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000; // EM_X86_64, 64-bit, little-endian
#[cfg(target_arch = "aarch64")]
pub(super) const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000; // EM_AARCH64, 64-bit, little-endian

pub(super) const BPF_LD_W_ABS: u16 = 0x20;
pub(super) const BPF_JMP_JEQ_K: u16 = 0x15;
pub(super) const BPF_JMP_JGE_K: u16 = 0x35;
pub(super) const BPF_JMP_JSET_K: u16 = 0x45;
pub(super) const BPF_JMP_JA: u16 = 0x05;
pub(super) const BPF_RET_K: u16 = 0x06;
pub(super) const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(super) const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub(super) const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(super) const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;
pub(super) const OFFSET_NR: u32 = 0;
pub(super) const OFFSET_ARCH: u32 = 4;
/// Offset of the low 32 bits of syscall argument `i` in `struct seccomp_data` (little-endian).
pub(super) const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

pub(super) const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(super) const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The notifier's program: foreign architectures killed and x32 refused (as in the main
/// filter's prologue), `connect` → USER_NOTIF, the send calls with `MSG_FASTOPEN` → EPERM, the
/// rest allowed (the main filter, stacked later, decides about those). A fixed array: nothing
/// is allocated in the child.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn notifier_program() -> [libc::sock_filter; 17] {
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    [
        /* 0 */ stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        /* 1 */ jump(BPF_JMP_JEQ_K, AUDIT_ARCH, 1, 0),
        /* 2 */ stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        /* 3 */ stmt(BPF_LD_W_ABS, OFFSET_NR),
        /* 4 */ jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        /* 5 */ stmt(BPF_RET_K, eperm),
        /* 6 */ jump(BPF_JMP_JEQ_K, libc::SYS_connect as u32, 0, 1),
        /* 7 */ stmt(BPF_RET_K, SECCOMP_RET_USER_NOTIF),
        /* 8 */ jump(BPF_JMP_JEQ_K, libc::SYS_sendto as u32, 2, 0), // → 11
        /* 9 */ jump(BPF_JMP_JEQ_K, libc::SYS_sendmmsg as u32, 1, 0), // → 11
        /* 10 */
        jump(BPF_JMP_JEQ_K, libc::SYS_sendmsg as u32, 2, 5), // → 13, else → 16
        /* 11 */ stmt(BPF_LD_W_ABS, arg_low(3)), // sendto / sendmmsg flags
        /* 12 */ stmt(BPF_JMP_JA, 1), // → 14
        /* 13 */ stmt(BPF_LD_W_ABS, arg_low(2)), // sendmsg flags
        /* 14 */ jump(BPF_JMP_JSET_K, MSG_FASTOPEN, 0, 1),
        /* 15 */ stmt(BPF_RET_K, eperm),
        /* 16 */ stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]
}

/// Install the connect notifier on the calling thread and return the listener descriptor
/// (close-on-exec), which the caller must hand to the supervisor (see
/// [`super::fd_passing::send_fd`]) and then close: a server holding its own listener could
/// answer its own notifications.
///
/// Call it in the supervisor's single-threaded child, after `no_new_privs` and before the main
/// seccomp filter: the main filter is stacked on top and refusals there (EPERM) take precedence
/// over this filter's notification. Any `connect()` made by the child after this call blocks
/// until the broker answers.
pub fn install_connect_notifier() -> Result<OwnedFd, BrokerError> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let program = notifier_program();
        let prog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            filter: program.as_ptr().cast_mut(),
        };
        // WAIT_KILLABLE_RECV (5.19): once the broker holds the notification, only a fatal
        // signal interrupts the caller, so a runtime that signals its threads often (Go's
        // preemption) does not restart the connect over and over. Older kernels: without it.
        let mut result = -1;
        for flags in [
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        ] {
            // SAFETY: `prog` points at `program`, both alive for the call; the kernel copies
            // the program.
            result = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &prog as *const libc::sock_fprog,
                )
            };
            if result >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                break;
            }
        }
        if result < 0 {
            return Err(BrokerError::Install(io::Error::last_os_error()));
        }
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(result as RawFd) })
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Err(BrokerError::UnsupportedArch(std::env::consts::ARCH))
    }
}
