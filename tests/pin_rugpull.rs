//! Rug-pull pinning against `rugpull-server`, which changes its tools after approval:
//! `pin` records, `pin diff` shows the change, `run --pin` hides and refuses what changed —
//! also when the change arrives mid-session and the host ignores `list_changed`.

mod relay_common;
mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use relay_common::Guard;
use serde_json::{json, Value};

fn guard(args: &[&str], server_args: &[&str]) -> Output {
    Command::new(support::guard_bin())
        .args(args)
        .arg("--allow-unsandboxed")
        .arg("--")
        .arg(support::testkit_bin("rugpull-server"))
        .args(server_args)
        .output()
        .unwrap()
}

fn pin(dir: &Path) -> String {
    let lock = dir.join("rugpull.pin.json").display().to_string();
    let out = guard(&["pin", "-o", &lock], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lock
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn pin_records_the_first_listing() {
    let dir = tempfile::tempdir().unwrap();
    let lock = pin(dir.path());
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(v["server"]["name"], "rugpull-server");
    assert_eq!(v["instructions"], "Use search to find notes.");
    let tools = v["items"]["tools"].as_object().unwrap();
    assert_eq!(tools.keys().collect::<Vec<_>>(), ["add", "search"]);
    assert!(tools["search"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // A second pin without --update refuses to overwrite.
    let out = guard(&["pin", "-o", &lock], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--update"));
}

#[test]
fn pin_diff_shows_what_changed_and_update_repins() {
    let dir = tempfile::tempdir().unwrap();
    let lock = pin(dir.path());
    let same = guard(&["pin", "diff", &lock], &[]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let out = guard(&["pin", "diff", &lock], &["--changed"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("~ changed tool `search`"), "{text}");
    assert!(text.contains("description: \"Search notes.\" →"), "{text}");
    assert!(text.contains("+ new tool `exfiltrate`"), "{text}");
    assert!(text.contains("mcp-guard pin --update -o"), "{text}");
    let out = guard(&["pin", "--update", "-o", &lock], &["--changed"]);
    assert!(out.status.success());
    let again = guard(&["pin", "diff", &lock], &["--changed"]);
    assert_eq!(again.status.code(), Some(0));
}

#[test]
fn pin_run_hides_and_refuses_changed_tools() {
    let dir = tempfile::tempdir().unwrap();
    let lock = pin(dir.path());
    let log = dir.path().join("audit.jsonl").display().to_string();
    let server = support::testkit_bin("rugpull-server");
    let mut g = Guard::start(
        &["--pin", &lock, "--audit-log", &log],
        &server,
        &["--changed"],
    );
    g.initialize("2025-06-18");
    g.send_json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let list = g.recv().json();
    assert_eq!(tool_names(&list), ["add"], "{list}");
    let refused = g.call_and_recv("2", "search", json!({"query": "x"}));
    refused.assert_error("2", -32602);
    let message = refused.error_message();
    assert!(message.contains("changed since it was pinned"), "{message}");
    assert!(message.contains("mcp-guard pin diff"), "{message}");
    g.call_and_recv("3", "exfiltrate", json!({"path": "/etc/passwd"}))
        .assert_error("3", -32602);
    assert_eq!(
        g.call_and_recv("4", "add", json!({"a": 1, "b": 2}))
            .assert_result("4"),
        "called add"
    );
    g.close_stdin();
    g.exit_code(Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("changed tool `search` hidden"), "{text}");
    assert!(text.contains("refused use of tool `exfiltrate`"), "{text}");
}

/// The host lists once, then ignores `list_changed`; the guard re-lists on its own.
#[test]
fn pin_run_holds_mid_session_list_changed() {
    let dir = tempfile::tempdir().unwrap();
    let lock = pin(dir.path());
    let server = support::testkit_bin("rugpull-server");
    let mut g = Guard::start(&["--pin", &lock], &server, &["--after-call"]);
    g.initialize("2025-06-18");
    g.send_json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let list = g.recv().json();
    assert_eq!(tool_names(&list), ["add", "search"], "{list}");
    assert_eq!(
        g.call_and_recv("2", "search", json!({"query": "x"}))
            .assert_result("2"),
        "called search"
    );
    // The server swaps its tools now and says so; the host forwards nothing back.
    let note = g.recv().json();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    std::thread::sleep(Duration::from_millis(300));
    let refused = g.call_and_recv("3", "search", json!({"query": "x"}));
    refused.assert_error("3", -32602);
    assert_eq!(
        g.call_and_recv("4", "add", json!({"a": 1, "b": 2}))
            .assert_result("4"),
        "called add"
    );
    g.close_stdin();
    g.exit_code(Duration::from_secs(10));
    assert!(
        g.stderr_text().contains("mcp-guard pin --update"),
        "{}",
        g.stderr_text()
    );
}
