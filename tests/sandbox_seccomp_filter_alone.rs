//! The seccomp layer in isolation: the hostile server keeps root with every capability and no
//! other layer, only the filter built from a `SandboxConfig` and installed before exec. Every
//! refusal here is the filter's own EPERM (or ENOSYS for clone3), not a missing capability.

#[path = "sandbox_limits_common/mod.rs"]
mod common;

use std::os::unix::process::CommandExt;
use std::time::Instant;

use common::{hostile, readable_address, Session, Victim};
use mcp_guard::sandbox::seccomp::SyscallFilter;
use mcp_guard::sandbox::{NetworkMode, SandboxConfig};
use serde_json::json;

fn filtered(config: &SandboxConfig) -> Session {
    let filter = SyscallFilter::build(config).expect("build the filter");
    let mut command = hostile();
    // SAFETY: test-only; installing a prepared filter is two syscalls (prctl, seccomp).
    unsafe {
        command.pre_exec(move || filter.install().map_err(std::io::Error::other));
    }
    Session::start(command)
}

#[test]
fn seccomp_filter_alone_refuses_every_dangerous_syscall() {
    let victim = Victim::new();
    let mut server = filtered(&SandboxConfig::default());
    let pid = victim.pid();
    server.attack("ptrace", json!({"pid": pid})).blocked_with(1);
    let addr = readable_address(pid);
    server
        .attack("process_vm_readv", json!({"pid": pid, "addr": addr}))
        .blocked_with(1);
    for attack in [
        "io_uring_setup",
        "bpf",
        "perf_event_open",
        "keyctl",
        "userfaultfd",
        "unshare_mount",
        "clone_newuser",
        "tiocsti",
        "x32_syscall",
    ] {
        server.attack(attack, json!({})).blocked_with(1);
    }
    server.attack("clone3_newuser", json!({})).blocked_with(38);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = udp.local_addr().expect("addr").port();
    server
        .attack("udp_send", json!({"port": port}))
        .blocked_with(1);
    server.attack("fork_bomb", json!({"count": 3})).succeeded();
    server.assert_alive();
}

#[test]
fn seccomp_filter_allow_list_reopens_a_syscall() {
    let victim = Victim::new();
    let mut config = SandboxConfig::default();
    config.syscalls.allow = vec!["ptrace".into(), "bpf".into()];
    let mut server = filtered(&config);
    server
        .attack("ptrace", json!({"pid": victim.pid()}))
        .succeeded();
    server.attack("bpf", json!({})).succeeded();
    server.attack("keyctl", json!({})).blocked_with(1);
}

#[test]
fn seccomp_filter_deny_list_adds_a_syscall() {
    let mut config = SandboxConfig::default();
    config.syscalls.deny = vec!["fork".into(), "clone".into()];
    let mut server = filtered(&config);
    server
        .attack("fork_bomb", json!({"count": 1}))
        .blocked_with(1);
    server.assert_alive();
}

#[test]
fn seccomp_filter_open_network_allows_udp() {
    let mut config = SandboxConfig::default();
    config.network.mode = NetworkMode::Open;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = udp.local_addr().expect("addr").port();
    filtered(&config)
        .attack("udp_send", json!({"port": port}))
        .succeeded();
}

/// Start-up cost of the layer: building the BPF program (in the supervisor's child), and
/// installing it (measured as spawn+exit of `true` with and without the filter).
#[test]
fn seccomp_filter_build_and_install_cost() {
    let config = SandboxConfig::default();
    let runs = 100;
    let started = Instant::now();
    for _ in 0..runs {
        SyscallFilter::build(&config).expect("build");
    }
    let build = started.elapsed() / runs;
    let spawn = |with_filter: bool| {
        let mut total = std::time::Duration::ZERO;
        for _ in 0..runs {
            let filter = SyscallFilter::build(&config).expect("build");
            let mut command = std::process::Command::new("true");
            // SAFETY: test-only; the hook installs a prepared filter (two syscalls).
            unsafe {
                command.pre_exec(move || {
                    if with_filter {
                        filter.install().map_err(std::io::Error::other)?;
                    }
                    Ok(())
                });
            }
            let started = Instant::now();
            assert!(command.status().expect("run true").success());
            total += started.elapsed();
        }
        total / runs
    };
    // Alternate to spread the machine's noise over both.
    let (mut plain, mut filtered) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for _ in 0..3 {
        plain += spawn(false) / 3;
        filtered += spawn(true) / 3;
    }
    // The install itself, timed inside the child and sent back on a pipe.
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let filter = SyscallFilter::build(&config).expect("build");
    let mut command = std::process::Command::new("true");
    // SAFETY: test-only; the hook reads the clock, installs, and writes 8 bytes.
    unsafe {
        command.pre_exec(move || {
            let t = Instant::now();
            filter.install().map_err(std::io::Error::other)?;
            let nanos = t.elapsed().as_nanos() as u64;
            libc::write(fds[1], (&nanos as *const u64).cast(), 8);
            Ok(())
        });
    }
    assert!(command.status().expect("run true").success());
    let mut nanos = 0u64;
    // SAFETY: reading 8 bytes into `nanos`, then closing our pipe.
    unsafe {
        libc::read(fds[0], (&mut nanos as *mut u64).cast(), 8);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    let install = std::time::Duration::from_nanos(nanos);
    eprintln!(
        "seccomp filter: build {build:?}, install {install:?}, spawn of `true` {plain:?} without / {filtered:?} with the filter ({} instructions)",
        SyscallFilter::build(&config).expect("build").summary().instructions
    );
    assert!(
        build.as_micros() < 2_000,
        "building the filter takes {build:?}"
    );
}
