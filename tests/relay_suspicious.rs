//! `[audit] on_suspicious = "kill"` under the strict profile: a burst of refusals of the
//! server's messages stops it; a burst of refusals of the host's own requests does not (the
//! host's mistakes are not the server's fault).

mod relay_common;
mod support;

use std::path::Path;
use std::time::Duration;

use relay_common::Guard;
use serde_json::{json, Value};

/// More refusals than strict's `suspicious_refusals` (20, the built-in default).
const BURST: u64 = 25;

/// The lying server under `--profile strict`, its audit log in `dir`.
fn strict_lying(dir: &Path) -> Guard {
    let log = dir.join("audit.jsonl").display().to_string();
    let mut g = Guard::start(
        &["--profile", "strict", "--audit-log", &log],
        &support::testkit_bin("lying-server"),
        &[],
    );
    g.initialize("2025-06-18");
    g.send(r#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#);
    assert!(g.recv().json()["result"]["tools"].is_array());
    g
}

fn suspicious_events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "suspicious")
        .collect()
}

#[test]
fn host_refusals_do_not_get_the_server_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = strict_lying(dir.path());
    // The host calls a tool the server never listed, again and again: each call is refused.
    for i in 0..BURST {
        let id = i.to_string();
        g.call_and_recv(&id, "no_such_tool", json!({}))
            .assert_error(&id, -32602);
    }
    g.assert_alive("\"after\"");
    assert_eq!(
        g.call_and_recv("99", "echo", json!({"text": "still here"}))
            .assert_result("99"),
        "still here"
    );
    g.close_stdin();
    assert_eq!(
        g.exit_code(Duration::from_secs(10)),
        0,
        "{}",
        g.stderr_text()
    );
    let suspicious = suspicious_events(dir.path());
    assert!(
        suspicious.is_empty(),
        "host refusals counted: {suspicious:?}"
    );
}

#[test]
fn server_refusals_still_get_the_server_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = strict_lying(dir.path());
    // Each call makes the server ask the host for sampling, which strict denies: a refusal of
    // the server's own message, every time.
    for i in 0..BURST {
        g.call(
            &i.to_string(),
            "ask",
            json!({"method": "sampling/createMessage"}),
        );
    }
    // The host's stdin stays open: only the guard stopping the server ends the session.
    g.wait_exit(Duration::from_secs(20));
    let stderr = g.stderr_text();
    assert!(stderr.contains("stopping the server"), "{stderr}");
    let suspicious = suspicious_events(dir.path());
    assert!(
        suspicious.iter().any(|e| e["action"] == "kill"),
        "{suspicious:?}\n{stderr}"
    );
}
