//! What the guard does with each line the server writes: JSON-RPC reaches the host; anything else,
//! and any response nobody asked for, is dropped (and logged on stderr).

mod relay_common;
mod support;

use std::time::Duration;

use relay_common::Guard;
use serde_json::json;

#[test]
fn non_jsonrpc_server_lines_are_dropped_and_logged() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    std::thread::sleep(Duration::from_millis(100));
    let stderr_before = guard.stderr_text().len();
    // Non-JSON, non-UTF-8, JSON that is not JSON-RPC: only the answer may come through.
    let answer = guard.call_and_recv("1", "garbage", json!({}));
    assert_eq!(answer.assert_result("1"), "ok");
    guard.assert_alive("2");
    std::thread::sleep(Duration::from_millis(100));
    let stderr = guard.stderr_text();
    assert!(
        stderr.len() > stderr_before,
        "dropped server lines were not logged on stderr:\n{stderr}"
    );
}

#[test]
fn startup_banner_is_dropped() {
    let mut guard = Guard::mock(&[], &["--banner"]);
    let result = guard.initialize("2025-06-18");
    assert_eq!(result["serverInfo"]["name"], "mock-server");
    guard.assert_alive("1");
}

#[test]
fn server_notifications_reach_the_host() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "notify", json!({}));
    let note = guard.recv().json();
    assert_eq!(note["method"], "notifications/message", "{note}");
    assert_eq!(note["params"]["data"], "hello from mock");
    assert_eq!(guard.recv().assert_result("1"), "ok");
}

#[test]
fn responses_with_unrequested_ids_are_dropped() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    // The mock answers "spoofed-id" and 987654321 first, then the real id.
    let answer = guard.call_and_recv("1", "spoof", json!({}));
    assert_eq!(answer.assert_result("1"), "ok");
    guard.assert_alive("2");
    guard.expect_silence(Duration::from_millis(100));
}

#[test]
fn second_answer_to_the_same_id_is_dropped() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    let answer = guard.call_and_recv("\"dup\"", "duplicate", json!({}));
    assert_eq!(answer.assert_result("\"dup\""), "first");
    // The duplicate was written before the ping was even read: it would arrive first.
    guard.assert_alive("2");
    guard.expect_silence(Duration::from_millis(100));
}

#[test]
fn an_answered_id_can_be_reused_by_the_host() {
    // Dropping duplicates must not blacklist the id: the host may reuse it once answered.
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    assert_eq!(
        guard.call_and_recv("5", "ok", json!({})).assert_result("5"),
        "ok"
    );
    let again = guard.call_and_recv("5", "echo", json!({"text": "again"}));
    assert_eq!(again.assert_result("5"), "again");
}

#[test]
fn responses_with_lookalike_ids_are_dropped() {
    // "1" is not 1, 1.0 is not 1, and big integers differ in their last digit even where an
    // f64 would not tell them apart.
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    for (i, raw_id) in [
        "1",
        "\"1\"",
        "\"007\"",
        "123456789012345678901234567890",
        "9007199254740993",
    ]
    .iter()
    .enumerate()
    {
        let answer = guard.call_and_recv(raw_id, "near_ids", json!({}));
        assert_eq!(answer.assert_result(raw_id), "ok", "for id {raw_id}");
        guard.assert_alive(&format!("\"alive-{i}\""));
    }
}
