//! Forking a process straight into a cgroup v2 directory: `clone3(CLONE_INTO_CGROUP)`
//! (Linux 5.7). Moving a running process by writing `cgroup.procs` takes the kernel's global
//! threadgroup lock for writing, which waits for an RCU grace period: 7–15 ms on the machines
//! we measured, on every server start. A process born in the group never migrates.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::unistd::{ForkResult, Pid};

/// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Fork, the child born in the cgroup v2 directory `cgroup`. Like `fork()` with no stack
/// given; an error (no clone3, no CLONE_INTO_CGROUP, a seccomp filter refusing it) means no
/// child was made, and the caller may fork plainly and migrate the child instead.
///
/// # Safety
/// As `fork()`, and more: the caller must be single-threaded, and the child must only run
/// Rust code and raw system calls until it execs or `_exit`s. glibc's fork bookkeeping does
/// not run for a raw clone3 (no atfork handlers, the cached thread id in the child's thread
/// block is the parent's); with one thread nothing is left locked, and the calls the server's
/// child makes before exec (the sandbox's syscalls, allocation, `raise` which asks the kernel
/// for its thread id) do not read that cache.
pub unsafe fn fork_into(cgroup: BorrowedFd<'_>) -> io::Result<ForkResult> {
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: the kernel reads `args` (size given) and writes nothing back; no stack is given,
    // so the child continues on a copy of ours, as after fork().
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(ForkResult::Child),
        child => Ok(ForkResult::Parent {
            child: Pid::from_raw(child as i32),
        }),
    }
}
