//! Its presence makes `cargo test --workspace` build this crate's binaries
//! (cargo builds a package's bins only for that package's integration tests),
//! so mcp-guard's integration tests can find them in the target directory.
#[test]
fn testkit_binaries_are_built() {
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_echo-server")).exists());
}
