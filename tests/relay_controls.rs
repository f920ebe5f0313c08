//! Controls: each misbehaviour the relay tests rely on, observed with NO guard in between. If the
//! mock ever stopped misbehaving, the guarded tests would pass for nothing; these would fail.

mod relay_common;
mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use relay_common::{mock_bin, process_alive, reap_leftover, wait_gone, Guard};
use serde_json::json;

fn mock(args: &[&str]) -> Guard {
    let mut server = Guard::unguarded(&mock_bin(), args);
    server.initialize("2025-06-18");
    server
}

#[test]
fn control_garbage_and_banner_reach_an_unguarded_host() {
    let mut server = Guard::unguarded(&mock_bin(), &["--banner"]);
    server.send(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#);
    let first = server.recv();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&first.bytes).is_err(),
        "{}",
        first.short()
    );
    let mut server = mock(&[]);
    server.call("1", "garbage", json!({}));
    let first = server.recv();
    assert!(!first.bytes.starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":1"));
}

#[test]
fn control_spoofed_duplicate_and_lookalike_answers_are_sent() {
    let mut server = mock(&[]);
    server.call("1", "spoof", json!({}));
    assert_eq!(server.recv().raw_id().as_deref(), Some("\"spoofed-id\""));
    server.call("2", "duplicate", json!({}));
    let mut seen = 0;
    while let Some(line) = server.try_recv(Duration::from_millis(300)) {
        seen += usize::from(line.raw_id().as_deref() == Some("2"));
    }
    assert_eq!(seen, 2);
    server.call("123456789012345678901234567890", "near_ids", json!({}));
    let ids: Vec<String> = (0..5).filter_map(|_| server.recv().raw_id()).collect();
    assert!(
        ids.contains(&"123456789012345678901234567891".to_owned()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"\"123456789012345678901234567890\"".to_owned()),
        "{ids:?}"
    );
}

#[test]
fn control_never_and_partial_exit_leave_the_request_unanswered() {
    let mut server = mock(&[]);
    server.call("1", "never", json!({}));
    server.expect_silence(Duration::from_millis(700));
    server.call("2", "partial_exit", json!({}));
    let partial = server.recv();
    assert!(serde_json::from_slice::<serde_json::Value>(&partial.bytes).is_err());
    assert!(server.try_recv(Duration::from_millis(300)).is_none());
}

#[test]
fn control_huge_answer_is_over_16_mib() {
    let mut server = mock(&[]);
    server.call("1", "huge", json!({}));
    assert!(server.recv().bytes.len() > 16 << 20);
}

#[test]
fn control_crashes_give_their_own_status() {
    let mut server = mock(&[]);
    server.call("1", "crash", json!({"code": 3}));
    assert_eq!(server.wait_exit(Duration::from_secs(3)).code(), Some(3));
    let mut server = mock(&[]);
    server.call("1", "crash_signal", json!({"signal": "SEGV"}));
    let status = server.wait_exit(Duration::from_secs(3));
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
}

#[test]
fn control_server_that_ignores_eof_keeps_running() {
    let mut server = mock(&["--exit-on-eof=false", "--log={dir}/log"]);
    server.close_stdin();
    std::thread::sleep(Duration::from_millis(300));
    assert!(process_alive(server.pid()), "the mock exited on EOF");
    let log = std::fs::read_to_string(server.path("log")).unwrap_or_default();
    assert!(log.ends_with("eof\n"), "{log:?}");
}

#[test]
fn control_grandchild_outlives_a_killed_server() {
    let mut server = mock(&[]);
    let pid_file = server.path("pids");
    server.call(
        "1",
        "spawn_child",
        json!({"path": pid_file.display().to_string()}),
    );
    server.recv().assert_result("1");
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(3));
    let survived = !wait_gone(pids[1], Duration::from_millis(300));
    reap_leftover(pids[1]);
    assert!(survived, "without a guard the grandchild should survive");
}
