//! Helpers shared by the integration tests: where the binaries are.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod generate;
pub mod mcp;
pub mod users;

/// The `mcp-guard` binary under test.
pub fn guard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-guard"))
}

/// A test server from the `testkit` crate (`echo-server`, `mock-server`, `hostile-server`).
/// `cargo test --workspace` builds them next to `mcp-guard`.
pub fn testkit_bin(name: &str) -> PathBuf {
    let path = guard_bin().with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the testkit binaries are built",
        path.display()
    );
    path
}

/// Give a guard run its own `XDG_STATE_HOME` under `dir` (unless the test set one), so that
/// runs never see each other's trust-on-first-use pins, nor the user's. World-writable, as a
/// test may run the guard as the unprivileged test user.
pub fn private_state(command: &mut Command, dir: &Path) {
    // A removal (`Identity::apply` removes the runner's XDG dirs) shows in `get_envs` too, as
    // `None`: only a value the test set itself is kept.
    if command
        .get_envs()
        .any(|(k, v)| k == "XDG_STATE_HOME" && v.is_some())
    {
        return;
    }
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state directory");
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o1777));
    command.env("XDG_STATE_HOME", state);
}
