//! Environment: the guard's secrets do not reach the server; HOME and TMPDIR are private.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use harness::{control_then_guarded, Server, SECRET_NAME, SECRET_VALUE};
use mcp_guard::sandbox::SandboxConfig;
use serde_json::json;

#[test]
fn env_secret_of_the_guard_is_not_inherited() {
    control_then_guarded("read_env", json!({"name": SECRET_NAME}));
}

#[test]
fn env_policy_can_pass_a_name_through() {
    let mut config = SandboxConfig::default();
    config.env.pass.push("MCP_GUARD_TEST_PASSED".into());
    // The confined server's environment is computed from this test process's environment.
    std::env::set_var("MCP_GUARD_TEST_PASSED", "yes");
    let mut server = Server::confined(&config);
    harness::assert_succeeded(&server.attack("read_env", json!({"name": "MCP_GUARD_TEST_PASSED"})));
    harness::assert_blocked(&server.attack("read_env", json!({"name": "CARGO_MANIFEST_DIR"})));
    let _ = SECRET_VALUE;
}

#[test]
fn env_home_and_tmpdir_are_private_and_removed_by_the_owner() {
    let mut config = SandboxConfig::default();
    config.env.set.insert("PROBE".into(), "1".into());
    let command = [harness::hostile_bin().into_os_string()];
    let plan = mcp_guard::sandbox::prepare(&config, &command).expect("prepare");
    let dir = plan.private_dir.clone().expect("a private dir");
    assert_eq!(plan.env["HOME"], dir.join("home").to_string_lossy());
    assert_eq!(plan.env["TMPDIR"], dir.join("tmp").to_string_lossy());
    assert_eq!(plan.env["PROBE"], "1");
    assert!(!plan.env.contains_key(SECRET_NAME));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        dir.metadata().expect("stat").permissions().mode() & 0o777,
        0o700
    );
    std::fs::remove_dir_all(&dir).expect("remove the private dir");
}
