//! seccomp: each dangerous syscall succeeds in the hostile server run directly (the control) and
//! is refused under `mcp-guard run`, the guard staying alive and answering.

#[path = "sandbox_limits_common/mod.rs"]
mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{guarded, hostile, readable_address, Session, Victim};
use serde_json::{json, Value};

const EPERM: i32 = 1;
const ENOSYS: i32 = 38;

/// The attack succeeds directly and fails with EPERM under the guard.
#[track_caller]
fn control_then_guarded_eperm(name: &str, arguments: Value) {
    Session::start(hostile())
        .attack(name, arguments.clone())
        .succeeded();
    let mut guard = Session::start(guarded(&[]));
    guard.attack(name, arguments).blocked_with(EPERM);
    guard.assert_alive();
}

#[test]
fn seccomp_ptrace_the_guard() {
    let victim = Victim::new();
    Session::start(hostile())
        .attack("ptrace", json!({"pid": victim.pid()}))
        .succeeded();
    let mut guard = Session::start(guarded(&[]));
    let pid = guard.pid();
    guard
        .attack("ptrace", json!({"pid": pid}))
        .blocked_with(EPERM);
    guard.assert_alive();
}

#[test]
fn seccomp_process_vm_readv_the_guard() {
    let victim = Victim::new();
    let args = json!({"pid": victim.pid(), "addr": readable_address(victim.pid())});
    Session::start(hostile())
        .attack("process_vm_readv", args)
        .succeeded();
    let mut guard = Session::start(guarded(&[]));
    let pid = guard.pid();
    let args = json!({"pid": pid, "addr": readable_address(pid)});
    guard.attack("process_vm_readv", args).blocked_with(EPERM);
    guard.assert_alive();
}

#[test]
fn seccomp_io_uring_setup() {
    control_then_guarded_eperm("io_uring_setup", json!({}));
}

#[test]
fn seccomp_bpf() {
    control_then_guarded_eperm("bpf", json!({}));
}

#[test]
fn seccomp_perf_event_open() {
    control_then_guarded_eperm("perf_event_open", json!({}));
}

#[test]
fn seccomp_keyctl() {
    control_then_guarded_eperm("keyctl", json!({}));
}

#[test]
fn seccomp_userfaultfd() {
    control_then_guarded_eperm("userfaultfd", json!({}));
}

#[test]
fn seccomp_unshare_user_namespace_then_mount() {
    control_then_guarded_eperm("unshare_mount", json!({}));
}

#[test]
fn seccomp_clone_into_a_user_namespace() {
    control_then_guarded_eperm("clone_newuser", json!({}));
}

/// clone3 keeps its flags in memory, where seccomp cannot look: the filter answers ENOSYS so
/// that C libraries fall back to clone(2), whose flags it checks (previous test).
#[test]
fn seccomp_clone3_gets_enosys() {
    Session::start(hostile())
        .attack("clone3_newuser", json!({}))
        .succeeded();
    let mut guard = Session::start(guarded(&[]));
    guard
        .attack("clone3_newuser", json!({}))
        .blocked_with(ENOSYS);
    guard.assert_alive();
}

/// Under the guard the pty cannot even be opened (landlock hides /dev/ptmx, and `run` gives the
/// server no terminal); `sandbox_seccomp_filter_alone` shows the filter refuses the ioctl itself.
#[test]
fn seccomp_tiocsti_on_its_own_controlling_pty() {
    Session::start(hostile())
        .attack("tiocsti", json!({}))
        .succeeded();
    let mut guard = Session::start(guarded(&[]));
    guard.attack("tiocsti", json!({})).blocked();
    guard.assert_alive();
}

/// x32 is compiled out of this kernel, so the control already fails with ENOSYS (elsewhere it
/// succeeds). EPERM under the guard shows the filter refused the call before the kernel's syscall
/// table was consulted: the protection holds on kernels where x32 is enabled.
#[test]
fn seccomp_x32_syscall() {
    let control = Session::start(hostile()).attack("x32_syscall", json!({}));
    let text = control.text();
    assert!(
        text.starts_with("SUCCEEDED:") || text.contains("(os error 38)"),
        "unexpected control: {text}"
    );
    let mut guard = Session::start(guarded(&[]));
    guard.attack("x32_syscall", json!({})).blocked_with(EPERM);
    guard.assert_alive();
}

/// Landlock does not cover UDP: with the network off (the default) seccomp refuses inet sockets.
#[test]
fn seccomp_udp_send_with_the_network_off() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let port = receiver.local_addr().expect("addr").port();
    let mut buf = [0u8; 64];

    Session::start(hostile())
        .attack("udp_send", json!({"port": port}))
        .succeeded();
    let (n, _) = receiver
        .recv_from(&mut buf)
        .expect("the control's datagram");
    assert!(n > 0);

    let mut guard = Session::start(guarded(&[]));
    guard
        .attack("udp_send", json!({"port": port}))
        .blocked_with(EPERM);
    assert!(
        receiver.recv_from(&mut buf).is_err(),
        "a datagram got out of the sandbox"
    );
    guard.assert_alive();
}

/// What the filter must not break: fork and threads (clone without namespace flags).
#[test]
fn seccomp_plain_fork_still_works() {
    let mut guard = Session::start(guarded(&[]));
    guard.attack("fork_bomb", json!({"count": 4})).succeeded();
    guard.assert_alive();
}
