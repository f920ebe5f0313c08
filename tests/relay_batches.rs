//! JSON-RPC batches (allowed under MCP 2025-03-26 only): whatever the guard refuses in a batch,
//! the sender gets one array per batch, holding a response for every request member (and none
//! for notifications), the guard's errors merged with the peer's answers.

mod relay_common;
mod support;

use std::time::Duration;

use relay_common::{Guard, Line};
use serde_json::{json, Value};

/// A mock server that negotiates 2025-03-26, behind a policy that denies the tool `crash`.
/// The directory holds the policy; keep it for the guard's lifetime.
fn batch_guard(guard_args: &[&str]) -> (Guard, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "version = 1\n[tools]\ndeny = [\"crash\"]\n").expect("policy");
    let policy = policy.display().to_string();
    let mut args = vec!["--policy", policy.as_str()];
    args.extend_from_slice(guard_args);
    let mut guard = Guard::mock(&args, &["--protocol-version=2025-03-26"]);
    // The host declares roots (not sampling): the server may ask for the one, not the other.
    let result = guard.initialize_with("2025-03-26", json!({"roots": {}}));
    assert_eq!(result["protocolVersion"], "2025-03-26");
    (guard, dir)
}

fn ping(raw_id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"ping"}}"#)
}

fn call(raw_id: &str, tool: &str, arguments: Value) -> String {
    let params = json!({"name": tool, "arguments": arguments});
    format!(r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"tools/call","params":{params}}}"#)
}

const INVALID: &str = r#"{"bad":1}"#;
const NOTIFICATION: &str = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x","progress":1}}"#;

fn batch(members: &[&str]) -> String {
    format!("[{}]", members.join(","))
}

/// The members of an array line; panics if the line is not an array.
fn members(line: &Line) -> Vec<Value> {
    match line.json() {
        Value::Array(items) => items,
        other => panic!("expected one array, got {other}"),
    }
}

/// The members' ids as JSON text, sorted.
fn ids(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items.iter().map(|i| i["id"].to_string()).collect();
    ids.sort();
    ids
}

fn by_id<'a>(items: &'a [Value], raw_id: &str) -> &'a Value {
    let id: Value = serde_json::from_str(raw_id).expect("an id's JSON text");
    items
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no answer for {raw_id} in {items:?}"))
}

#[test]
fn a_batch_with_an_invalid_member_gets_one_array() {
    let (mut guard, _dir) = batch_guard(&[]);
    guard.send(&batch(&[
        &ping("1"),
        INVALID,
        &call("\"two\"", "ok", json!({})),
    ]));
    let answers = members(&guard.recv());
    assert_eq!(ids(&answers), ["\"two\"", "1", "null"], "{answers:?}");
    assert!(by_id(&answers, "1")["result"].is_object(), "{answers:?}");
    assert_eq!(
        by_id(&answers, "\"two\"")["result"]["content"][0]["text"],
        "ok"
    );
    assert_eq!(by_id(&answers, "null")["error"]["code"], -32600);
    // Nothing else belongs to the batch: the next line answers the next request.
    guard.assert_alive("3");
}

#[test]
fn a_denied_call_joins_the_array_even_when_one_answer_comes_singly() {
    let (mut guard, _dir) = batch_guard(&[]);
    guard.send(&batch(&[
        &ping("1"),
        &call("2", "crash", json!({})),
        &call("3", "delay", json!({"ms": 300})),
    ]));
    // The server answers the ping in an array and the delayed call on its own line: the
    // guard's error for the denied call rides in the server's array.
    let answers = members(&guard.recv());
    assert_eq!(ids(&answers), ["1", "2"], "{answers:?}");
    assert!(by_id(&answers, "1")["result"].is_object(), "{answers:?}");
    assert!(
        by_id(&answers, "2")["error"]["code"].is_i64(),
        "{answers:?}"
    );
    assert_eq!(guard.recv().assert_result("3"), "ok");
    guard.assert_alive("4");
    // The denied call never reached the server.
    let stats = guard.server_stats("5");
    let calls: Vec<&str> = stats["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(calls, ["delay", "stats"], "{stats}");
}

#[test]
fn held_errors_follow_answers_that_come_singly() {
    let (mut guard, _dir) = batch_guard(&[]);
    guard.send(&batch(&[INVALID, &call("1", "delay", json!({"ms": 200}))]));
    // The server answers the only forwarded request on its own line; the guard's error then
    // comes as the batch's (last) array.
    assert_eq!(guard.recv().assert_result("1"), "ok");
    let errors = members(&guard.recv());
    assert_eq!(ids(&errors), ["null"], "{errors:?}");
    assert_eq!(errors[0]["error"]["code"], -32600);
    guard.assert_alive("2");
}

#[test]
fn held_errors_are_delivered_when_the_forwarded_request_times_out() {
    let (mut guard, _dir) = batch_guard(&["--request-timeout", "500ms"]);
    guard.send(&batch(&[
        &call("1", "never", json!({})),
        INVALID,
        &call("2", "crash", json!({})),
    ]));
    // The timeout answers the forwarded call; then the guard's errors follow as one array.
    guard.recv().assert_error("1", -32001);
    let errors = members(&guard.recv());
    assert_eq!(ids(&errors), ["2", "null"], "{errors:?}");
    assert_eq!(by_id(&errors, "null")["error"]["code"], -32600);
    assert!(by_id(&errors, "2")["error"]["code"].is_i64(), "{errors:?}");
    guard.assert_alive("3");
}

#[test]
fn held_errors_are_delivered_when_the_host_cancels_the_forwarded_request() {
    let (mut guard, _dir) = batch_guard(&[]);
    guard.send(&batch(&[&call("1", "never", json!({})), INVALID]));
    guard.expect_silence(Duration::from_millis(200));
    guard.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#);
    let errors = members(&guard.recv());
    assert_eq!(ids(&errors), ["null"], "{errors:?}");
    guard.assert_alive("2");
}

#[test]
fn held_errors_are_delivered_when_the_server_exits() {
    let (mut guard, _dir) = batch_guard(&[]);
    guard.send(&batch(&[
        INVALID,
        &call("1", "crash_signal", json!({"signal": "KILL"})),
    ]));
    // The server's exit answers the call; the guard's error for the batch comes as an array.
    let mut lines = [guard.recv(), guard.recv()];
    lines.sort_by_key(|l| l.bytes.first() == Some(&b'['));
    lines[0].assert_error("1", -32000);
    assert_eq!(ids(&members(&lines[1])), ["null"]);
}

#[test]
fn a_batch_refused_entirely_gets_one_array() {
    let (mut guard, _dir) = batch_guard(&[]);
    guard.send(&batch(&[
        INVALID,
        "5",
        &call("1", "crash", json!({})),
        NOTIFICATION,
    ]));
    let errors = members(&guard.recv());
    assert_eq!(ids(&errors), ["1", "null", "null"], "{errors:?}");
    guard.assert_alive("2");
}

#[test]
fn notifications_in_a_batch_get_no_response() {
    let (mut guard, _dir) = batch_guard(&[]);
    guard.send(&batch(&[NOTIFICATION, &ping("1"), NOTIFICATION, INVALID]));
    let answers = members(&guard.recv());
    assert_eq!(ids(&answers), ["1", "null"], "{answers:?}");
    // Only notifications: nothing at all comes back.
    guard.send(&batch(&[NOTIFICATION, NOTIFICATION]));
    guard.expect_silence(Duration::from_millis(300));
    guard.assert_alive("2");
}

#[test]
fn a_server_batch_gets_one_array_of_answers_back() {
    let (mut guard, _dir) = batch_guard(&[]);
    // The server asks for roots (allowed) and sampling (the host did not declare it: refused).
    let server_batch = batch(&[
        r#"{"jsonrpc":"2.0","id":"s1","method":"roots/list"}"#,
        r#"{"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}}"#,
    ]);
    let answer = guard.call_and_recv("1", "server_batch", json!({"line": server_batch}));
    answer.assert_result("1");
    let requests = members(&guard.recv());
    assert_eq!(ids(&requests), ["\"s1\""], "{requests:?}");
    guard.send(r#"[{"jsonrpc":"2.0","id":"s1","result":{"roots":[]}}]"#);
    let stats = guard.server_stats("2");
    let batches = stats["batches"].as_array().expect("batches");
    assert_eq!(batches.len(), 1, "{stats}");
    let received: Vec<Value> =
        serde_json::from_str(batches[0].as_str().expect("text")).expect("array");
    assert_eq!(ids(&received), ["\"s1\"", "\"s2\""], "{stats}");
    assert!(by_id(&received, "\"s1\"")["result"].is_object(), "{stats}");
    assert!(
        by_id(&received, "\"s2\"")["error"]["code"].is_i64(),
        "{stats}"
    );
}
