//! Helpers shared by the integration tests: where the binaries are.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod generate;
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
