//! An audit log that cannot be written: `required` audit stops the server with a clear error;
//! best-effort audit says so once and keeps relaying.

mod relay_common;
mod support;

use std::time::Duration;

use relay_common::{echo_bin, Guard};
use serde_json::json;

fn policy(dir: &std::path::Path, required: bool) -> String {
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!("version = 1\n[audit]\nrequired = {required}\nsuspicious_refusals = 1000\n"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn audit_required_cannot_open_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), true);
    let mut guard = Guard::start(
        &["--policy", &policy, "--audit-log", "/dev/null/audit.jsonl"],
        &echo_bin(),
        &[],
    );
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 2);
    let stderr = guard.stderr_text();
    assert!(
        stderr.contains("cannot open the audit log /dev/null/audit.jsonl"),
        "{stderr}"
    );
}

#[test]
fn audit_best_effort_cannot_open_keeps_relaying() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), false);
    let mut guard = Guard::start(
        &["--policy", &policy, "--audit-log", "/dev/null/audit.jsonl"],
        &echo_bin(),
        &[],
    );
    guard.initialize("2025-06-18");
    guard.assert_alive("1");
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    let stderr = guard.stderr_text();
    assert_eq!(
        stderr.matches("cannot open the audit log").count(),
        1,
        "{stderr}"
    );
}

/// /dev/full opens fine and fails every write with ENOSPC: a full disk mid-session.
#[test]
fn audit_required_disk_full_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), true);
    let mut guard = Guard::start(
        &["--policy", &policy, "--audit-log", "/dev/full"],
        &echo_bin(),
        &[],
    );
    guard.send_json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    // The guard stops the server: stdout ends and the guard exits on its own.
    let status = guard.wait_exit(Duration::from_secs(15));
    let stderr = guard.stderr_text();
    assert!(
        stderr.contains("cannot write the audit log /dev/full"),
        "{stderr}"
    );
    assert!(stderr.contains("required"), "{stderr}");
    assert!(
        !status.success() || stderr.contains("stopping the server"),
        "{stderr}"
    );
}

#[test]
fn audit_best_effort_disk_full_keeps_relaying() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), false);
    let mut guard = Guard::start(
        &["--policy", &policy, "--audit-log", "/dev/full"],
        &echo_bin(),
        &[],
    );
    guard.initialize("2025-06-18");
    for i in 1..20 {
        guard.assert_alive(&i.to_string());
    }
    std::thread::sleep(Duration::from_millis(600)); // past a flush tick
    guard.assert_alive("99");
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    let stderr = guard.stderr_text();
    assert_eq!(
        stderr.matches("cannot write the audit log").count(),
        1,
        "{stderr}"
    );
}
