//! Filesystem attacks: each succeeds without the guard and is refused under it.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use harness::{control_then_guarded, path_str, Canary, Server};
use mcp_guard::sandbox::SandboxConfig;
use serde_json::json;

#[test]
fn fs_read_canary_outside_allowed_paths() {
    let canary = Canary::new();
    control_then_guarded("read_file", json!({"path": canary.file_str()}));
}

#[test]
fn fs_list_directory_outside_allowed_paths() {
    let canary = Canary::new();
    control_then_guarded("list_dir", json!({"path": path_str(canary.dir.path())}));
}

#[test]
fn fs_write_outside_the_private_dir() {
    let canary = Canary::new();
    let mut guarded = Server::guarded();
    for path in [canary.file(), canary.path("new.txt")] {
        harness::assert_blocked(&guarded.attack("write_file", json!({"path": path_str(&path)})));
    }
    canary.assert_intact();
    assert!(!canary.path("new.txt").exists());
    let control = Server::direct().attack(
        "write_file",
        json!({"path": path_str(&canary.path("new.txt"))}),
    );
    harness::assert_succeeded(&control);
}

#[test]
fn fs_write_inside_the_private_dir_is_allowed() {
    // The positive control: the sandbox is not simply refusing everything.
    let text = Server::guarded().attack("write_file", json!({}));
    harness::assert_succeeded(&text);
    assert!(
        text.contains("mcp-guard-"),
        "written outside the private dir: {text}"
    );
}

#[test]
fn fs_rename_outside() {
    let canary = Canary::new();
    let args = json!({"from": canary.file_str(), "to": path_str(&canary.path("renamed.txt"))});
    harness::assert_blocked(&Server::guarded().attack("rename_file", args.clone()));
    canary.assert_intact();
    harness::assert_succeeded(&Server::direct().attack("rename_file", args));
}

#[test]
fn fs_truncate_outside() {
    let canary = Canary::new();
    let args = json!({"path": canary.file_str()});
    harness::assert_blocked(&Server::guarded().attack("truncate_file", args.clone()));
    canary.assert_intact();
    harness::assert_succeeded(&Server::direct().attack("truncate_file", args));
}

#[test]
fn fs_delete_outside() {
    let canary = Canary::new();
    let args = json!({"path": canary.file_str()});
    harness::assert_blocked(&Server::guarded().attack("delete_file", args.clone()));
    canary.assert_intact();
    harness::assert_succeeded(&Server::direct().attack("delete_file", args));
}

#[test]
fn fs_symlink_out_of_the_private_dir() {
    let canary = Canary::new();
    control_then_guarded("symlink_read", json!({"target": canary.file_str()}));
}

#[test]
fn fs_hardlink_out_of_the_private_dir() {
    // The control links into the system temp dir, which must share a filesystem with the canary.
    let canary = Canary::new();
    control_then_guarded("hardlink_read", json!({"target": canary.file_str()}));
}

#[test]
fn fs_deny_wins_over_a_policy_grant() {
    let canary = Canary::new();
    std::fs::create_dir(canary.path("secrets")).expect("mkdir");
    std::fs::write(canary.path("secrets/key"), "k").expect("write");
    let mut config = SandboxConfig::default();
    config.fs.read.push(canary.dir.path().to_path_buf());
    config.fs.deny.push(canary.path("secrets"));
    let mut server = Server::confined(&config);
    harness::assert_succeeded(&server.attack("read_file", json!({"path": canary.file_str()})));
    let secret = path_str(&canary.path("secrets/key"));
    harness::assert_blocked(&server.attack("read_file", json!({"path": secret})));
    harness::assert_blocked(&server.attack(
        "list_dir",
        json!({"path": path_str(&canary.path("secrets"))}),
    ));
}

#[test]
fn fs_policy_write_grant_allows_writing_there_only() {
    let canary = Canary::new();
    let mut config = SandboxConfig::default();
    config.fs.write.push(canary.dir.path().to_path_buf());
    let mut server = Server::confined(&config);
    let new = path_str(&canary.path("out.txt"));
    harness::assert_succeeded(&server.attack("write_file", json!({"path": new})));
    let elsewhere = Canary::new();
    harness::assert_blocked(&server.attack("write_file", json!({"path": elsewhere.file_str()})));
    elsewhere.assert_intact();
}
