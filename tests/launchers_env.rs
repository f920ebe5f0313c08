//! `env NAME=VALUE… CMD` as host configs write it: the guard looks through `env`, launches and
//! judges CMD, and gives it the variables.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::process::{Command, Stdio};

use harness::support::{guard_bin, testkit_bin};
use harness::Server;
use serde_json::json;

#[test]
fn env_assignments_reach_the_server_started_through_env() {
    let hostile = testkit_bin("hostile-server");
    let mut command = Command::new(guard_bin());
    command
        .args(["-q", "run", "--", "env", "MCP_GUARD_VIA_ENV=hello"])
        .arg(&hostile);
    let mut server = Server::start_command(command);
    let text = server.attack("read_env", json!({"name": "MCP_GUARD_VIA_ENV"}));
    assert_eq!(text, "SUCCEEDED: read 5 bytes");
    // env itself is not in the sandbox: the server cannot run it.
    let env = server.attack("exec", json!({"path": "/usr/bin/env", "args": ["true"]}));
    harness::assert_blocked(&env);
}

/// Without the sandbox (`--allow-unsandboxed`, what other systems than Linux need) the
/// variables still arrive: the server gets the guard's environment with them on top.
#[test]
fn env_assignments_and_env_flags_reach_an_unsandboxed_server() {
    let hostile = testkit_bin("hostile-server");
    let mut command = Command::new(guard_bin());
    command
        .args([
            "-q",
            "run",
            "--allow-unsandboxed",
            "--env",
            "MCP_GUARD_BY_FLAG=flagged",
        ])
        .args(["--", "env", "MCP_GUARD_VIA_ENV=hello"])
        .arg(&hostile);
    let mut server = Server::start_command(command);
    let text = server.attack("read_env", json!({"name": "MCP_GUARD_VIA_ENV"}));
    assert_eq!(text, "SUCCEEDED: read 5 bytes");
    let text = server.attack("read_env", json!({"name": "MCP_GUARD_BY_FLAG"}));
    assert_eq!(text, "SUCCEEDED: read 7 bytes");
}

#[test]
fn the_command_behind_env_is_what_the_launch_policy_judges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("only-hostile.toml");
    std::fs::write(
        &policy,
        "version = 1\n[launch]\nallow = [\"hostile-server\"]\n",
    )
    .expect("write policy");
    let hostile = testkit_bin("hostile-server");
    let mut command = Command::new(guard_bin());
    command
        .args(["-q", "run", "--policy"])
        .arg(&policy)
        .args(["--", "env", "A=1"])
        .arg(&hostile);
    Server::start_command(command).assert_alive();

    // `env A=1 sh` is judged as sh, which the policy does not allow.
    let output = Command::new(guard_bin())
        .args(["-q", "run", "--policy"])
        .arg(&policy)
        .args(["--", "env", "A=1", "sh", "-c", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("run the guard");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("does not allow launching `sh`"), "{stderr}");
}

#[test]
fn unsupported_env_options_are_refused_with_the_fix() {
    let output = Command::new(guard_bin())
        .args(["-q", "run", "--", "env", "-S", "node x.js"])
        .stdin(Stdio::null())
        .output()
        .expect("run the guard");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--env NAME=VALUE"), "{stderr}");
}
