//! Explicit consent (`[tools.NAME] confirm = true`), through the real binary: the unguarded call
//! goes straight through; through the guard, a host that declared elicitation is asked first
//! (`elicitation/create` from the guard) and the call reaches the server only when the user
//! approves; a decline, a cancel, no answer in time or a host without elicitation refuse it, and
//! the mock server's own record shows it never saw the call. Then a real client (the TypeScript
//! SDK, then the Python SDK) against server-everything, accepting and declining.

mod profile_support;
#[path = "relay_common/mod.rs"]
mod relay_common;
mod support;

use std::path::Path;
use std::time::Duration;

use relay_common::{Guard, Line};
use serde_json::{json, Value};

/// A secret the question must not show (the built-in AWS key pattern).
const SECRET: &str = "AKIAZZZZZZZZZZZZZZZZ";

/// The guard in front of the mock server with `policy` (after `version = 1`), auditing to
/// `audit.jsonl` in its scratch directory.
fn guarded(policy: &str) -> (Guard, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, format!("version = 1\n{policy}")).expect("write policy");
    let log = dir.path().join("audit.jsonl");
    let (path, log) = (path.display().to_string(), log.display().to_string());
    let guard = Guard::mock(&["--policy", &path, "--audit-log", &log], &[]);
    (guard, dir)
}

/// `initialize` with `capabilities`, then `tools/list`.
fn start(g: &mut Guard, version: &str, capabilities: Value) {
    g.initialize_with(version, capabilities);
    g.request(1, "tools/list", json!({})).json();
}

/// The guard's question for the call just sent: an `elicitation/create` with an id of its own.
fn question(g: &mut Guard) -> (Value, Value) {
    let line = g.recv_within(Duration::from_secs(10)).json();
    assert_eq!(
        line["method"], "elicitation/create",
        "not a question: {line}"
    );
    let id = line["id"].clone();
    assert!(
        id.as_str()
            .is_some_and(|id| id.starts_with("mcp-guard/consent/")),
        "the guard's id must not look like one the server could use: {line}"
    );
    (id, line["params"].clone())
}

/// The guard with `[tools.echo] confirm = true`, a host of `version` declaring `capabilities`,
/// and the question for its call `7` of `echo`: the guard, its directory, the question's id and
/// params.
fn asked(version: &str, capabilities: Value) -> (Guard, tempfile::TempDir, Value, Value) {
    let (mut g, dir) = guarded("[tools.echo]\nconfirm = true\n");
    start(&mut g, version, capabilities);
    g.call("7", "echo", json!({"text": "deploy"}));
    let (id, params) = question(&mut g);
    (g, dir, id, params)
}

fn answer(g: &mut Guard, id: &Value, result: Value) {
    g.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
}

/// The user approves the question `id`.
fn approve(g: &mut Guard, id: &Value) {
    answer(
        g,
        id,
        json!({"action": "accept", "content": {"approve": true}}),
    );
}

/// The tools the mock server was called with (it records every call).
fn server_calls(g: &mut Guard, raw_id: &str) -> Vec<String> {
    g.server_stats(raw_id)["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The guard's `consent` audit lines once it has exited.
fn consent_lines(mut g: Guard, log: &Path) -> Vec<String> {
    g.close_stdin();
    g.wait_exit(Duration::from_secs(10));
    std::fs::read_to_string(log)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit line"))
        .filter(|e| e["event"] == "finding" && e["kind"] == "consent")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn tool_error_text(line: &Line, raw_id: &str) -> String {
    let v = line.json();
    assert_eq!(line.raw_id().as_deref(), Some(raw_id), "{}", line.short());
    assert_eq!(v["result"]["isError"], true, "not a tool error: {v}");
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn unguarded_the_call_goes_straight_through() {
    let mut direct = Guard::unguarded(&relay_common::mock_bin(), &[]);
    direct.initialize_with("2025-11-25", json!({"elicitation": {}}));
    let text = direct
        .call_and_recv("7", "echo", json!({"text": "rm -rf"}))
        .assert_result("7");
    assert_eq!(text, "rm -rf");
}

#[test]
fn an_approved_call_reaches_the_server_and_its_result_the_host() {
    let (mut g, dir) = guarded("[tools.echo]\nconfirm = true\n");
    start(&mut g, "2025-11-25", json!({"elicitation": {}}));
    g.call("7", "echo", json!({"text": "deploy", "key": SECRET}));
    let (id, params) = question(&mut g);
    assert_eq!(params["mode"], "form", "{params}");
    let message = params["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("echo") && message.contains("mock-server") && message.contains("deploy"),
        "the question must name the tool, the server and the arguments: {message}"
    );
    assert!(
        !message.contains(SECRET) && message.contains("[REDACTED:aws_access_key]"),
        "secrets are redacted in the question: {message}"
    );
    let schema = &params["requestedSchema"];
    assert_eq!(
        schema["properties"]["approve"]["type"], "boolean",
        "{schema}"
    );
    // Other messages keep flowing while the call waits.
    g.assert_alive("8");
    approve(&mut g, &id);
    assert_eq!(g.recv().assert_result("7"), "deploy");
    assert_eq!(server_calls(&mut g, "9"), ["echo", "stats"]);
    let lines = consent_lines(g, &dir.path().join("audit.jsonl"));
    assert!(lines[0].contains("tool `echo` (call 7): held"), "{lines:?}");
    assert!(lines[1].contains("approved by the user"), "{lines:?}");
}

#[test]
fn a_declined_call_is_refused_and_never_reaches_the_server() {
    let (mut g, dir, id, _) = asked("2025-11-25", json!({"elicitation": {"form": {}}}));
    answer(&mut g, &id, json!({"action": "decline"}));
    let text = tool_error_text(&g.recv(), "7");
    assert!(
        text.contains("declined") && text.contains("not sent to the server"),
        "{text}"
    );
    // Ticking nothing is no approval either.
    g.call("10", "echo", json!({"text": "deploy"}));
    let (id, _) = question(&mut g);
    answer(
        &mut g,
        &id,
        json!({"action": "accept", "content": {"approve": false}}),
    );
    assert!(tool_error_text(&g.recv(), "10").contains("did not tick"));
    assert_eq!(server_calls(&mut g, "11"), ["stats"]);
    let lines = consent_lines(g, &dir.path().join("audit.jsonl"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("refused: the user declined it")),
        "{lines:?}"
    );
}

#[test]
fn before_2025_11_25_a_cancel_is_a_json_rpc_error() {
    let (mut g, _dir, id, params) = asked("2025-06-18", json!({"elicitation": {}}));
    assert!(
        params.get("mode").is_none(),
        "no `mode` before 2025-11-25: {params}"
    );
    answer(&mut g, &id, json!({"action": "cancel"}));
    let line = g.recv();
    line.assert_error("7", -32004);
    assert!(line.error_message().contains("cancel"), "{}", line.short());
    assert_eq!(server_calls(&mut g, "8"), ["stats"]);
}

#[test]
fn a_host_without_elicitation_is_refused_at_once_with_the_way_out() {
    let (mut g, dir) = guarded("[tools.echo]\nconfirm = true\n");
    start(&mut g, "2025-06-18", json!({"roots": {}}));
    let line = g.call_and_recv("7", "echo", json!({"text": "deploy"}));
    line.assert_error("7", -32004);
    let message = line.error_message();
    assert!(
        message.contains("`elicitation` capability") && message.contains("confirm = false"),
        "{message}"
    );
    // Other tools are not affected.
    assert_eq!(
        g.call_and_recv("8", "ok", json!({})).assert_result("8"),
        "ok"
    );
    assert_eq!(server_calls(&mut g, "9"), ["ok", "stats"]);
    let lines = consent_lines(g, &dir.path().join("audit.jsonl"));
    assert!(lines[0].contains("refused without asking"), "{lines:?}");
}

#[test]
fn no_answer_in_time_refuses_and_withdraws_the_question() {
    let (mut g, _dir) =
        guarded("[tools]\nconfirm_timeout = \"1s\"\n[tools.echo]\nconfirm = true\n");
    start(&mut g, "2025-11-25", json!({"elicitation": {}}));
    g.call("7", "echo", json!({"text": "deploy"}));
    let (id, _) = question(&mut g);
    g.assert_alive("8");
    let cancel = g.recv_within(Duration::from_secs(10)).json();
    assert_eq!(cancel["method"], "notifications/cancelled", "{cancel}");
    assert_eq!(cancel["params"]["requestId"], id);
    let text = tool_error_text(&g.recv(), "7");
    assert!(text.contains("no answer from the user within 1s"), "{text}");
    // A late approval changes nothing.
    approve(&mut g, &id);
    g.expect_silence(Duration::from_millis(300));
    assert_eq!(server_calls(&mut g, "9"), ["stats"]);
}

#[test]
fn a_call_the_client_withdraws_is_dropped_with_its_question() {
    let (mut g, _dir, id, _) = asked("2025-11-25", json!({"elicitation": {}}));
    g.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#);
    let withdrawn = g.recv().json();
    assert_eq!(
        withdrawn["method"], "notifications/cancelled",
        "{withdrawn}"
    );
    assert_eq!(withdrawn["params"]["requestId"], id);
    // The user's approval, too late, sends nothing on.
    approve(&mut g, &id);
    g.expect_silence(Duration::from_millis(300));
    let stats = g.server_stats("8");
    assert_eq!(stats["calls"].as_array().map(Vec::len), Some(1), "{stats}");
    assert_eq!(
        stats["cancelled"],
        json!([]),
        "the server never saw the call: {stats}"
    );
}

#[test]
fn a_pattern_asks_for_every_tool_it_matches_and_a_name_can_be_exempted() {
    let (mut g, _dir) = guarded("[tools.\"*\"]\nconfirm = true\n[tools.stats]\nconfirm = false\n");
    start(&mut g, "2025-11-25", json!({"elicitation": {}}));
    g.call("7", "ok", json!({}));
    let (id, params) = question(&mut g);
    assert!(params["message"]
        .as_str()
        .unwrap_or_default()
        .contains("ok"));
    answer(&mut g, &id, json!({"action": "decline"}));
    tool_error_text(&g.recv(), "7");
    // `stats` is named with `confirm = false`: straight through.
    assert_eq!(server_calls(&mut g, "8"), ["stats"]);
}

/// `mcp-guard run` in front of `server` with `[tools.echo] confirm = true` (its policy in `dir`).
fn confirming_echo(dir: &Path, server: &[String]) -> Vec<String> {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "version = 1\n[tools.echo]\nconfirm = true\n").expect("policy");
    let policy = policy.display().to_string();
    profile_support::guarded(
        &["--allow-unsandboxed", "--no-audit", "--policy", &policy],
        server,
    )
}

/// The TypeScript SDK (2025-11-25, form elicitation) against server-everything's `echo`:
/// directly, then through the guard accepting and declining.
#[test]
fn a_real_client_approves_and_declines() {
    use profile_support::{call, node_cmd, run_json, with_server, Peers};
    let peers = Peers::get();
    let calls = json!([{"name": "echo", "arguments": {"message": "consent please"}}]);
    let server = node_cmd(&peers.node_server("everything"), &[]);
    let direct = run_json(
        "TS client, direct",
        &with_server(&peers.call_tools(&calls, &["--elicit", "accept"]), &server),
    );
    assert_eq!(call(&direct, 0)["isError"], false, "{direct}");
    assert_eq!(direct["elicitations"], json!([]), "{direct}");

    let dir = tempfile::tempdir().expect("tempdir");
    let guard = confirming_echo(dir.path(), &server);
    let accepted = run_json(
        "TS client accepting, guarded",
        &with_server(&peers.call_tools(&calls, &["--elicit", "accept"]), &guard),
    );
    assert_eq!(call(&accepted, 0), call(&direct, 0), "{accepted}");
    let asked = &accepted["elicitations"][0];
    assert!(
        asked["message"]
            .as_str()
            .unwrap_or_default()
            .contains("consent please"),
        "{accepted}"
    );

    let declined = run_json(
        "TS client declining, guarded",
        &with_server(&peers.call_tools(&calls, &["--elicit", "decline"]), &guard),
    );
    let refused = call(&declined, 0);
    assert_eq!(refused["isError"], true, "{declined}");
    assert!(
        refused["text"]
            .as_str()
            .unwrap_or_default()
            .contains("declined"),
        "{declined}"
    );
}

/// The Python SDK (`mcp`, its own handshake) the same way: direct, accepting, declining.
#[test]
fn a_real_python_client_approves_and_declines() {
    use profile_support::{node_cmd, run_json, with_server, Peers};
    let peers = Peers::get();
    let driver = |action: &str| peers.py_driver("consent", &["--elicit", action]);
    let server = node_cmd(&peers.node_server("everything"), &[]);
    let direct = run_json(
        "Python client, direct",
        &with_server(&driver("accept"), &server),
    );
    assert_eq!(direct["call"]["text"], "Echo: consent please", "{direct}");
    assert_eq!(direct["elicitations"], json!([]), "{direct}");

    let dir = tempfile::tempdir().expect("tempdir");
    let guard = confirming_echo(dir.path(), &server);
    let accepted = run_json(
        "Python client accepting, guarded",
        &with_server(&driver("accept"), &guard),
    );
    assert_eq!(accepted["call"], direct["call"], "{accepted}");
    let asked = accepted["elicitations"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(asked.contains("Tool: echo"), "{accepted}");

    let declined = run_json(
        "Python client declining, guarded",
        &with_server(&driver("decline"), &guard),
    );
    assert_eq!(declined["call"]["isError"], true, "{declined}");
    let text = declined["call"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("declined"), "{declined}");
}

/// A call held for the user keeps its id: the host cannot slip a second request with the same
/// id past the ledger while the first waits (its answer would be taken for the held call's).
#[test]
fn a_request_reusing_the_id_of_a_held_call_is_refused() {
    let (mut g, _dir, id, _) = asked("2025-11-25", json!({"elicitation": {}}));
    g.call("7", "echo", json!({"text": "other"}));
    let refused = g.recv().json();
    assert_eq!(refused["id"], 7, "{refused}");
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    // The held call is still the user's to approve, and then runs once.
    approve(&mut g, &id);
    assert_eq!(g.recv().assert_result("7"), "deploy");
    assert_eq!(server_calls(&mut g, "9"), ["echo", "stats"]);
}
