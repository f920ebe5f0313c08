//! Trust on first use, on by default: `mcp-guard run` pins what the first session shows the
//! host, hides and refuses what is new or changed later (also mid-session) until
//! `mcp-guard pin approve`, and quarantines items whose text looks like prompt injection.
//! Each test has its own XDG_STATE_HOME, shared by the runs within it.

mod relay_common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use relay_common::Guard;
use serde_json::{json, Value};

fn rugpull() -> PathBuf {
    support::testkit_bin("rugpull-server")
}

/// `mcp-guard run [ARGS] -- rugpull-server`, the server's mode in `RUGPULL_MODE` (passed on
/// unsandboxed): every mode is one command line, one pin.
fn start(state: &Path, args: &[&str], mode: &str) -> Guard {
    let mut run_args = vec!["--allow-unsandboxed", "--no-audit"];
    run_args.extend_from_slice(args);
    let state = state.to_str().unwrap();
    let mut g = Guard::start_run(
        &[("XDG_STATE_HOME", state), ("RUGPULL_MODE", mode)],
        &run_args,
        &rugpull(),
        &[],
    );
    g.initialize("2025-06-18");
    g
}

/// `mcp-guard pin ARGS` with the test's state directory.
fn pin_cli(state: &Path, args: &[&str]) -> Output {
    Command::new(support::guard_bin())
        .env("XDG_STATE_HOME", state)
        .arg("pin")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn list_tools(g: &mut Guard, id: u64) -> Vec<String> {
    g.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}));
    let list = g.recv().json();
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn stop(mut g: Guard) {
    g.close_stdin();
    g.exit_code(Duration::from_secs(10));
}

/// The one pinned server's id, from `pin status`.
fn only_id(state: &Path) -> String {
    let out = pin_cli(state, &["status"]);
    let text = stdout(&out);
    let ids: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("review"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids.len(), 1, "{text}");
    ids[0].to_owned()
}

#[test]
fn tofu_hides_a_tool_that_is_new_on_the_second_start() {
    // Unguarded, the second start's server offers `exfiltrate` to whoever asks.
    let mut direct = Guard::unguarded(&rugpull(), &["--changed"]);
    direct.initialize("2025-06-18");
    assert_eq!(list_tools(&mut direct, 1), ["add", "search", "exfiltrate"]);
    stop(direct);

    let state = tempfile::tempdir().unwrap();
    let mut first = start(state.path(), &[], "--stable");
    assert_eq!(list_tools(&mut first, 1), ["add", "search"]);
    stop(first);

    // Same command line, new tool list: what was not pinned is hidden and refused.
    let mut second = start(state.path(), &[], "--changed");
    assert_eq!(list_tools(&mut second, 1), ["add"]);
    let id = only_id(state.path());
    let refused = second.call_and_recv("2", "exfiltrate", json!({"path": "/etc/passwd"}));
    refused.assert_error("2", -32602);
    let message = refused.error_message();
    assert!(
        message.contains("tool `exfiltrate` is new since this server was pinned"),
        "{message}"
    );
    assert!(
        message.contains(&format!("mcp-guard pin approve {id} exfiltrate")),
        "{message}"
    );
    assert_eq!(
        second
            .call_and_recv("3", "add", json!({"a": 1, "b": 2}))
            .assert_result("3"),
        "called add"
    );
    stop(second);
}

/// The host lists once and ignores `list_changed`; a tool that appears mid-session in the
/// first session is new all the same. Approved, it passes at once.
#[test]
fn tofu_mid_session_tool_waits_for_pin_approve() {
    let state = tempfile::tempdir().unwrap();
    let mut g = start(state.path(), &[], "--after-call");
    assert_eq!(list_tools(&mut g, 1), ["add", "search"]);
    assert_eq!(
        g.call_and_recv("2", "add", json!({"a": 1, "b": 2}))
            .assert_result("2"),
        "called add"
    );
    let note = g.recv().json();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    std::thread::sleep(Duration::from_millis(300));
    let id = only_id(state.path());
    let refused = g.call_and_recv("3", "exfiltrate", json!({"path": "/etc/passwd"}));
    refused.assert_error("3", -32602);
    let message = refused.error_message();
    assert!(
        message.contains(&format!(
            "is new since this server was pinned; review with `mcp-guard pin diff {id}` and \
             approve it with `mcp-guard pin approve {id} exfiltrate`"
        )),
        "{message}"
    );

    // The refusal recorded it: status, diff and approve need no server.
    let status = stdout(&pin_cli(state.path(), &["status"]));
    assert!(
        status.contains("awaiting approval: tool `exfiltrate` (new)"),
        "{status}"
    );
    assert!(status.contains("rugpull-server 1.0.0: 2 tools"), "{status}");
    let diff = pin_cli(state.path(), &["diff", &id[..6]]);
    assert_eq!(diff.status.code(), Some(1), "{}", stdout(&diff));
    assert!(
        stdout(&diff).contains("+ new tool `exfiltrate`"),
        "{}",
        stdout(&diff)
    );
    let approve = pin_cli(state.path(), &["approve", &id[..6], "exfiltrate"]);
    assert!(approve.status.success(), "{approve:?}");
    assert!(stdout(&approve).contains("approved tool `exfiltrate`"));

    // The same session: the retried call passes; `search` (changed) stays hidden.
    assert_eq!(
        g.call_and_recv("4", "exfiltrate", json!({"path": "/tmp/x"}))
            .assert_result("4"),
        "called exfiltrate"
    );
    assert_eq!(list_tools(&mut g, 5), ["add", "exfiltrate"]);
    g.call_and_recv("6", "search", json!({"query": "x"}))
        .assert_error("6", -32602);
    stop(g);
    let status = stdout(&pin_cli(state.path(), &["status"]));
    assert!(status.contains("tool `search` (changed"), "{status}");
    assert!(!status.contains("`exfiltrate`"), "{status}");
}

#[test]
fn tofu_quarantines_a_poisoned_description_until_approved() {
    let state = tempfile::tempdir().unwrap();
    // First use, and `search` already carries an injection: pinned are only the others.
    let mut g = start(state.path(), &[], "--changed");
    assert_eq!(list_tools(&mut g, 1), ["add", "exfiltrate"]);
    let refused = g.call_and_recv("2", "search", json!({"query": "x"}));
    refused.assert_error("2", -32602);
    let message = refused.error_message();
    assert!(
        message.contains(
            "tool `search` is quarantined: its text looks like prompt injection (hidden-tag"
        ),
        "{message}"
    );
    stop(g);
    let id = only_id(state.path());
    let diff = stdout(&pin_cli(state.path(), &["diff", &id]));
    assert!(diff.contains("+ new tool `search`"), "{diff}");
    assert!(
        diff.contains("(quarantined; looks like prompt injection: hidden-tag"),
        "{diff}"
    );

    // With `injection = "flag"` (another state directory: another first use) it passes.
    let flagged = tempfile::tempdir().unwrap();
    let policy = flagged.path().join("flag.toml");
    std::fs::write(&policy, "version = 1\n[pin]\ninjection = \"flag\"\n").unwrap();
    let mut g = start(
        flagged.path(),
        &["--policy", policy.to_str().unwrap()],
        "--changed",
    );
    assert_eq!(list_tools(&mut g, 1), ["add", "search", "exfiltrate"]);
    stop(g);

    // Approved (the server named by its command this time), it passes; the firewall still
    // audits its finding.
    let server = rugpull();
    let approve = pin_cli(
        state.path(),
        &["approve", "search", "--", server.to_str().unwrap()],
    );
    assert!(approve.status.success(), "{approve:?}");
    let mut g = start(state.path(), &[], "--changed");
    assert_eq!(list_tools(&mut g, 1), ["add", "search", "exfiltrate"]);
    assert_eq!(
        g.call_and_recv("2", "search", json!({"query": "x"}))
            .assert_result("2"),
        "called search"
    );
    g.close_stdin();
    g.exit_code(Duration::from_secs(10));
    let stderr = g.stderr_text();
    assert!(
        stderr.contains("tool `search` text looks like prompt injection"),
        "{stderr}"
    );
    assert!(!stdout(&pin_cli(state.path(), &["status"])).contains("awaiting"));
}

#[test]
fn pin_off_lets_the_changed_list_through() {
    let state = tempfile::tempdir().unwrap();
    let policy = state.path().join("off.toml");
    std::fs::write(&policy, "version = 1\n[pin]\nmode = \"off\"\n").unwrap();
    let off = ["--policy", policy.to_str().unwrap()];
    stop(start(state.path(), &off, "--stable"));
    let mut g = start(state.path(), &off, "--changed");
    assert_eq!(list_tools(&mut g, 1), ["add", "search", "exfiltrate"]);
    stop(g);
    assert!(stdout(&pin_cli(state.path(), &["status"])).contains("no server pinned yet"));
    // `--no-pin` too, even with a pin on record.
    stop(start(state.path(), &[], "--stable"));
    let mut g = start(state.path(), &["--no-pin"], "--changed");
    assert_eq!(list_tools(&mut g, 1), ["add", "search", "exfiltrate"]);
    stop(g);
}

/// server-everything gates 3 of its tools on the client's capabilities; `pin` declares what
/// real hosts declare, so it pins all of them.
#[test]
fn pin_sees_server_everything_capability_gated_tools() {
    let index = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if !index.exists() {
        eprintln!("skipped: run scripts/setup-peers to install server-everything");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("everything.pin.json");
    let out = Command::new(support::guard_bin())
        .env("XDG_STATE_HOME", dir.path())
        .args(["pin", "--profile", "everything", "-o"])
        .arg(&lock)
        .arg("--")
        .arg("node")
        .arg(&index)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let tools = v["items"]["tools"].as_object().unwrap();
    assert_eq!(tools.len(), 16, "{:?}", tools.keys().collect::<Vec<_>>());
}

/// lying-server's instructions carry an injection: on first use they are dropped and recorded;
/// approved, the next session passes them on (sanitised by the firewall).
#[test]
fn tofu_quarantines_poisoned_instructions_until_approved() {
    let state = tempfile::tempdir().unwrap();
    let server = support::testkit_bin("lying-server");
    let env = [("XDG_STATE_HOME", state.path().to_str().unwrap())];
    let session = |env: &[(&str, &str)]| {
        let mut g = Guard::start_run(env, &["--allow-unsandboxed", "--no-audit"], &server, &[]);
        let init = g.initialize("2025-06-18");
        stop(g);
        init["instructions"].clone()
    };
    // Unguarded they reach the model as sent.
    let mut direct = Guard::unguarded(&server, &[]);
    let sent = direct.initialize("2025-06-18");
    assert!(sent["instructions"]
        .as_str()
        .unwrap()
        .contains("Ignore all previous instructions"));
    stop(direct);

    assert_eq!(session(&env), Value::Null);
    let id = only_id(state.path());
    let status = stdout(&pin_cli(state.path(), &["status"]));
    assert!(
        status.contains("the server instructions (`instructions`) (quarantined; looks like prompt injection: ignore-instructions"),
        "{status}"
    );
    assert!(pin_cli(state.path(), &["approve", &id, "instructions"])
        .status
        .success());
    let now = session(&env);
    assert!(
        now.as_str().unwrap().starts_with("Use these tools."),
        "{now}"
    );
}
