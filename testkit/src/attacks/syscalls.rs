//! Dangerous-syscall and resource-limit attacks (seccomp, capabilities, limits). UDP sending,
//! which seccomp refuses when the network is off, is `udp_send` in [`super::fs`].
//!
//! Failures carry the OS error text with its number ("Operation not permitted (os error 1)") so a
//! test can tell the filter's EPERM from the kernel's own ENOSYS/EINVAL. Attacks that would change
//! the hostile server itself (namespaces, controlling terminal) run in a forked child, so one
//! server can perform every attack in turn. Every bomb is bounded by its arguments and cleans up.

use std::io::Error;

use serde_json::Value;

use super::Outcome;

pub const NAMES: &[&str] = &[
    "ptrace",
    "process_vm_readv",
    "io_uring_setup",
    "bpf",
    "perf_event_open",
    "keyctl",
    "keyring_read",
    "userfaultfd",
    "unshare_mount",
    "clone_newuser",
    "clone3_newuser",
    "tiocsti",
    "x32_syscall",
    "memory_bomb",
    "fork_bomb",
    "cpu_spin",
    "file_size_bomb",
];

pub fn run(name: &str, args: &Value) -> Option<Outcome> {
    let num = |key: &str| args.get(key).and_then(Value::as_u64).unwrap_or_default();
    let text = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Some(match name {
        "ptrace" => ptrace(num("pid") as i32),
        "process_vm_readv" => process_vm_readv(num("pid") as i32, num("addr")),
        "io_uring_setup" => io_uring_setup(),
        "bpf" => bpf(),
        "perf_event_open" => perf_event_open(),
        "keyctl" => keyctl(),
        "keyring_read" => keyring_read(&text("description")),
        "userfaultfd" => userfaultfd(),
        "unshare_mount" => in_child(unshare_mount),
        "clone_newuser" => clone_newuser(),
        "clone3_newuser" => clone3_newuser(),
        "tiocsti" => tiocsti(),
        "x32_syscall" => x32_syscall(),
        "memory_bomb" => memory_bomb(num("mib")),
        "fork_bomb" => fork_bomb(num("count")),
        "cpu_spin" => cpu_spin(num("ms"), num("cpu_ms")),
        "file_size_bomb" => file_size_bomb(&text("path"), num("mib")),
        _ => return None,
    })
}

fn os_error(step: &str) -> String {
    format!("{step}: {}", Error::last_os_error())
}

fn close(fd: i64) {
    // SAFETY: closing a descriptor this attack opened.
    unsafe { libc::close(fd as i32) };
}

/// Attach to `pid` (the guard), wait for it to stop, detach: enough to read or rewrite it.
fn ptrace(pid: i32) -> Outcome {
    // SAFETY: plain ptrace requests on another process; no memory of ours is passed.
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) } != 0 {
        return Err(os_error("ptrace(PTRACE_ATTACH)"));
    }
    let mut status = 0;
    // SAFETY: waiting for the tracee's stop.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    // SAFETY: detaching resumes the tracee.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    Ok(format!("attached to pid {pid}"))
}

/// Read 8 bytes at `addr` (a readable address the test found in the victim's maps).
fn process_vm_readv(pid: i32, addr: u64) -> Outcome {
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most 8 bytes into `buf`.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(os_error("process_vm_readv"));
    }
    Ok(format!("read {n} bytes of pid {pid} at {addr:#x}"))
}

fn io_uring_setup() -> Outcome {
    let mut params = [0u8; 120]; // struct io_uring_params, zeroed
                                 // SAFETY: the kernel fills `params` (120 bytes, its size).
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(os_error("io_uring_setup"));
    }
    close(fd);
    Ok("created an io_uring".into())
}

/// BPF_MAP_CREATE of a one-entry array map: the first step of any eBPF program.
fn bpf() -> Outcome {
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries (u32 each).
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[2, 4, 8, 1]); // BPF_MAP_TYPE_ARRAY
                                              // SAFETY: the kernel reads `size_of_val(&attr)` bytes.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(os_error("bpf(BPF_MAP_CREATE)"));
    }
    close(fd);
    Ok("created a BPF map".into())
}

/// A software CPU-clock counter on ourselves.
fn perf_event_open() -> Outcome {
    let mut attr = [0u8; 128]; // struct perf_event_attr; zero tail is accepted
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // type = PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size
                                                       // config = PERF_COUNT_SW_CPU_CLOCK (0); flags: disabled | exclude_kernel | exclude_hv
    attr[40..48].copy_from_slice(&(1u64 | 1 << 5 | 1 << 6).to_ne_bytes());
    // SAFETY: the kernel reads `attr`.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
    if fd < 0 {
        return Err(os_error("perf_event_open"));
    }
    close(fd);
    Ok("opened a perf event".into())
}

/// Look up the user keyring: where other sessions' secrets live.
fn keyctl() -> Outcome {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_USER_KEYRING: libc::c_long = -4;
    // SAFETY: integer arguments only.
    let id = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_USER_KEYRING,
            0,
        )
    };
    if id < 0 {
        return Err(os_error("keyctl(KEYCTL_GET_KEYRING_ID)"));
    }
    Ok(format!("user keyring id {id}"))
}

/// Read another tool's secret from the user keyring (a `user` key with this description): what
/// `mcp-guard secret set` stores there.
fn keyring_read(description: &str) -> Outcome {
    const KEYCTL_SEARCH: libc::c_long = 10;
    const KEYCTL_READ: libc::c_long = 11;
    const KEY_SPEC_USER_KEYRING: libc::c_long = -4;
    let description =
        std::ffi::CString::new(description).map_err(|_| "a NUL in the description".to_owned())?;
    // SAFETY: two NUL-terminated strings that outlive the call.
    let key = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SEARCH,
            KEY_SPEC_USER_KEYRING,
            c"user".as_ptr(),
            description.as_ptr(),
            0,
        )
    };
    if key < 0 {
        return Err(os_error("keyctl(KEYCTL_SEARCH)"));
    }
    let mut buffer = [0u8; 4096];
    // SAFETY: the buffer and its length, valid for the call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_READ,
            key,
            buffer.as_mut_ptr(),
            buffer.len(),
        )
    };
    if n < 0 {
        return Err(os_error("keyctl(KEYCTL_READ)"));
    }
    Ok(format!("read {n} bytes of a keyring secret"))
}

fn userfaultfd() -> Outcome {
    const UFFD_USER_MODE_ONLY: libc::c_int = 1;
    // SAFETY: integer flags only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | UFFD_USER_MODE_ONLY) };
    if fd < 0 {
        return Err(os_error("userfaultfd"));
    }
    close(fd);
    Ok("created a userfaultfd".into())
}

/// Run `attack` in a forked child (it changes the process irreversibly); the child reports its
/// outcome on a pipe.
fn in_child(attack: fn() -> Outcome) -> Outcome {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(os_error("pipe"));
    }
    // SAFETY: the hostile server is single-threaded, so the child may allocate.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_error("fork"));
    }
    if pid == 0 {
        let outcome = attack();
        let message = match &outcome {
            Ok(what) => format!("ok:{what}"),
            Err(why) => format!("err:{why}"),
        };
        // SAFETY: writing our own buffer to our pipe, then leaving without unwinding.
        unsafe {
            libc::write(fds[1], message.as_ptr().cast(), message.len());
            libc::_exit(0);
        }
    }
    close(fds[1] as i64);
    let mut buf = vec![0u8; 4096];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    close(fds[0] as i64);
    let mut status = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let message = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    match message.split_once(':') {
        Some(("ok", what)) => Ok(what.to_owned()),
        Some(("err", why)) => Err(why.to_owned()),
        _ => Err(format!("the attack's child died (wait status {status:#x})")),
    }
}

/// Become root in a new user namespace, then mount a tmpfs in a new mount namespace: the first
/// step of most container escapes and of unprivileged kernel exploits.
fn unshare_mount() -> Outcome {
    // SAFETY: unshare and mount with constant arguments, in a throwaway child.
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            return Err(os_error("unshare(CLONE_NEWUSER)"));
        }
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(os_error("unshare(CLONE_NEWNS)"));
        }
        let (src, target, fstype) = (c"none", c"/tmp", c"tmpfs");
        if libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_error("mount(tmpfs)"));
        }
    }
    Ok("mounted a tmpfs on /tmp in a new user+mount namespace".into())
}

/// clone(2) straight into a new user namespace; the child exits at once.
fn clone_newuser() -> Outcome {
    // SAFETY: a NULL stack makes clone behave like fork; the child only calls _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    reap_clone(pid, "clone(CLONE_NEWUSER)")
}

/// clone3(2) with CLONE_NEWUSER: its flags live in memory, out of a seccomp filter's sight.
fn clone3_newuser() -> Outcome {
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls.
    let mut args = [0u64; 8];
    args[0] = libc::CLONE_NEWUSER as u64;
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: the kernel reads `args`; the child only calls _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    };
    reap_clone(pid, "clone3(CLONE_NEWUSER)")
}

fn reap_clone(pid: libc::c_long, step: &str) -> Outcome {
    if pid < 0 {
        return Err(os_error(step));
    }
    if pid == 0 {
        // SAFETY: the child leaves at once.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    Ok(format!("{step} created pid {pid}"))
}

/// Push a character into the input of a terminal. The terminal is a pty this attack opens and
/// makes its own controlling terminal (in a child with a new session), so a success types into
/// nothing that matters; TIOCSTI on a controlling terminal needs no capability.
fn tiocsti() -> Outcome {
    in_child(|| {
        // SAFETY: pty calls on descriptors we own; ioctl reads one byte.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            if master < 0 {
                return Err(os_error("posix_openpt"));
            }
            if libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
                return Err(os_error("grantpt/unlockpt"));
            }
            let name = libc::ptsname(master);
            if name.is_null() {
                return Err(os_error("ptsname"));
            }
            if libc::setsid() < 0 {
                return Err(os_error("setsid"));
            }
            // Without O_NOCTTY the first terminal a session leader opens becomes its own.
            let slave = libc::open(name, libc::O_RDWR);
            if slave < 0 {
                return Err(os_error("open(pty slave)"));
            }
            let byte = b'x';
            if libc::ioctl(slave, libc::TIOCSTI, &byte) != 0 {
                return Err(os_error("ioctl(TIOCSTI)"));
            }
        }
        Ok("injected a byte into the pty's input with TIOCSTI".into())
    })
}

/// getpid through the x32 ABI (syscall number | 0x40000000).
fn x32_syscall() -> Outcome {
    if !cfg!(target_arch = "x86_64") {
        return Err("the x32 ABI exists only on x86-64".into());
    }
    const X32_GETPID: libc::c_long = 0x4000_0000 | 39;
    // SAFETY: getpid takes no arguments.
    let pid = unsafe { libc::syscall(X32_GETPID) };
    if pid < 0 {
        return Err(os_error("x32 getpid"));
    }
    Ok(format!("x32 getpid returned {pid}"))
}

/// Allocate and touch `mib` MiB, 1 MiB at a time; freed before returning. A refused allocation
/// (RLIMIT_DATA) is reported; a cgroup limit kills the server instead.
fn memory_bomb(mib: u64) -> Outcome {
    const MIB: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for i in 0..mib {
        let mut chunk: Vec<u8> = Vec::new();
        if chunk.try_reserve_exact(MIB).is_err() {
            return Err(format!("allocation refused after {i} MiB"));
        }
        // SAFETY: the capacity is MIB bytes; memset touches every page, fast even unoptimized.
        unsafe {
            std::ptr::write_bytes(chunk.as_mut_ptr(), 0xA5, MIB);
            chunk.set_len(MIB);
        }
        chunks.push(chunk);
    }
    Ok(format!("allocated and touched {mib} MiB"))
}

/// Fork `count` children that wait to be killed; all are killed and reaped before returning.
fn fork_bomb(count: u64) -> Outcome {
    let mut children = Vec::new();
    let mut failure = None;
    for _ in 0..count {
        // SAFETY: the child only pauses until it is killed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            loop {
                // SAFETY: wait for SIGKILL.
                unsafe { libc::pause() };
            }
        }
        if pid < 0 {
            failure = Some(os_error(&format!("fork #{}", children.len() + 1)));
            break;
        }
        children.push(pid);
    }
    for &pid in &children {
        // SAFETY: killing and reaping our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    match failure {
        Some(why) => Err(format!("{why} (after {} children)", children.len())),
        None => Ok(format!("forked {count} processes")),
    }
}

/// Spin until `cpu_ms` of CPU time were obtained (0: no target) or `ms` of wall time passed,
/// and report both.
fn cpu_spin(ms: u64, cpu_ms: u64) -> Outcome {
    let start = std::time::Instant::now();
    let cpu_start = cpu_time_ms();
    let mut x = 0u64;
    loop {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let cpu = cpu_time_ms() - cpu_start;
        if start.elapsed().as_millis() >= u128::from(ms) || (cpu_ms > 0 && cpu >= cpu_ms) {
            return Ok(format!(
                "cpu_ms={cpu} wall_ms={}",
                start.elapsed().as_millis()
            ));
        }
    }
}

fn cpu_time_ms() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: the kernel fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: zero-initialised and filled by the kernel.
    let usage = unsafe { usage.assume_init() };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Write `mib` MiB to `path`, by default a file in `$TMPDIR` (deleted afterwards). SIGXFSZ is ignored, as CPython does, so an
/// RLIMIT_FSIZE shows as EFBIG rather than killing the server.
fn file_size_bomb(path: &str, mib: u64) -> Outcome {
    use std::io::Write;
    // SAFETY: ignoring a signal installs no handler code.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let default = std::env::temp_dir().join(format!("fsize-bomb-{}", std::process::id()));
    let path = if path.is_empty() {
        default.to_str().unwrap_or("fsize-bomb")
    } else {
        path
    };
    let mut file = std::fs::File::create(path).map_err(|e| format!("create {path}: {e}"))?;
    let chunk = vec![0x5Au8; 1 << 20];
    let mut result = Ok(format!("wrote {mib} MiB to {path}"));
    for i in 0..mib {
        if let Err(e) = file.write_all(&chunk) {
            result = Err(format!("write failed after {i} MiB: {e}"));
            break;
        }
    }
    drop(file);
    let _ = std::fs::remove_file(path);
    result
}
