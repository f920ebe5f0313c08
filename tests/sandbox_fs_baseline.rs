//! The default sandbox (no policy): every layer is reported honestly, and the real node and
//! Python servers still start under it.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;

use mcp_guard::sandbox::{Layer, SandboxConfig};

#[test]
fn baseline_reports_every_layer() {
    let report = harness::Server::report_for(&SandboxConfig::default()).expect("report");
    eprintln!("{report:#?}");
    for layer in [
        Layer::Capabilities,
        Layer::Landlock,
        Layer::LandlockNetwork,
        Layer::LandlockScope,
    ] {
        let enforced = report.enforced.contains(&layer);
        let reason = report.not_enforced.iter().find(|(l, _)| *l == layer);
        assert!(
            enforced != reason.is_some(),
            "{layer:?} must be either enforced or explained: {report:?}"
        );
    }
    // On a kernel with landlock, a partial layer says what is missing.
    for (layer, what) in &report.partial {
        assert!(
            report.enforced.contains(layer) && !what.is_empty(),
            "{report:?}"
        );
    }
}

fn peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// `mcp-guard run -- CMD` answers `initialize`; skipped (with a note) when the peer is missing.
fn starts_under_the_guard(command: &[&str], needs: PathBuf) {
    if !needs.exists() {
        eprintln!(
            "skipped: {} is not installed (scripts/setup-peers)",
            needs.display()
        );
        return;
    }
    let mut guard = Command::new(env!("CARGO_BIN_EXE_mcp-guard"));
    guard
        .args(["-q", "run", "--"])
        .args(command)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Err(e) = harness::support::mcp::Session::try_start(guard) {
        panic!("{command:?} did not start under the guard: {e}");
    }
}

#[test]
fn baseline_node_server_starts() {
    let script = "tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
    starts_under_the_guard(
        &["node", script, "stdio"],
        peers().join("node_modules/@modelcontextprotocol/server-everything"),
    );
}

#[test]
fn baseline_python_venv_server_starts() {
    starts_under_the_guard(
        &["tests/peers/.venv/bin/mcp-server-time"],
        peers().join(".venv/bin/mcp-server-time"),
    );
}

#[test]
fn baseline_python_module_server_starts() {
    starts_under_the_guard(
        &["tests/peers/.venv/bin/python", "-m", "mcp_server_time"],
        peers().join(".venv/bin/python"),
    );
}
