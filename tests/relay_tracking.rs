//! Request tracking: `--request-timeout` answers a stuck request with -32001 and cancels it at the
//! server; progress for the request restarts the clock; an answer after the timeout is dropped.

mod relay_common;
mod support;

use std::time::{Duration, Instant};

use relay_common::Guard;
use serde_json::{json, Value};

/// The id text the server saw for the first call of `tool` (the guard may renumber ids).
fn server_side_id(stats: &Value, tool: &str) -> String {
    stats["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .find(|c| c["name"] == tool)
        .unwrap_or_else(|| panic!("the server never saw a call of {tool}: {stats}"))["id"]
        .as_str()
        .expect("id text")
        .to_owned()
}

#[test]
fn never_answered_request_times_out_and_is_cancelled_at_the_server() {
    let mut guard = Guard::mock(&["--request-timeout", "500ms"], &[]);
    guard.initialize("2025-06-18");
    let start = Instant::now();
    guard.call("7", "never", json!({}));
    let answer = guard.recv();
    let elapsed = start.elapsed();
    answer.assert_error("7", -32001);
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "timed out after {elapsed:?}, expected ~500ms"
    );
    let stats = guard.server_stats("8");
    let never_id = server_side_id(&stats, "never");
    let cancelled: Vec<&str> = stats["cancelled"]
        .as_array()
        .expect("cancelled")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        cancelled,
        [never_id.as_str()],
        "the server should get exactly one notifications/cancelled for the timed-out request"
    );
}

#[test]
fn progress_notifications_restart_the_timeout() {
    let mut guard = Guard::mock(&["--request-timeout", "500ms"], &[]);
    guard.initialize("2025-06-18");
    // Six notifications 250 ms apart: 1.5 s in total, never 500 ms of silence.
    guard.send_json(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "progress", "arguments": {"count": 6, "ms": 250},
        "_meta": {"progressToken": "tok-1"}}}),
    );
    for i in 1..=6 {
        let note = guard.recv().json();
        assert_eq!(note["method"], "notifications/progress", "{note}");
        assert_eq!(note["params"]["progressToken"], "tok-1");
        assert_eq!(note["params"]["progress"], i);
    }
    assert_eq!(guard.recv().assert_result("1"), "ok");
    let stats = guard.server_stats("2");
    assert_eq!(stats["cancelled"], json!([]), "cancelled despite progress");
}

#[test]
fn without_progress_the_same_slow_call_times_out() {
    // Control for the test above: same duration, no progressToken, so no progress is sent.
    let mut guard = Guard::mock(&["--request-timeout", "500ms"], &[]);
    guard.initialize("2025-06-18");
    let start = Instant::now();
    guard.call("1", "progress", json!({"count": 6, "ms": 250}));
    guard.recv().assert_error("1", -32001);
    assert!(start.elapsed() < Duration::from_millis(1400));
    // The real answer comes at 1.5 s and must be dropped.
    std::thread::sleep(Duration::from_millis(1700).saturating_sub(start.elapsed()));
    guard.assert_alive("2");
}

#[test]
fn progress_for_another_token_does_not_restart_the_timeout() {
    let mut guard = Guard::mock(&["--request-timeout", "500ms"], &[]);
    guard.initialize("2025-06-18");
    // Request 1 never answers; request 2 emits progress for its own token meanwhile.
    guard.call("1", "never", json!({}));
    let start = Instant::now();
    guard.send_json(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "progress", "arguments": {"count": 4, "ms": 200},
        "_meta": {"progressToken": "other"}}}),
    );
    let mut timed_out_at = None;
    let mut answered = false;
    while timed_out_at.is_none() || !answered {
        let line = guard.recv();
        let v = line.json();
        if v["method"] == "notifications/progress" {
            continue;
        }
        match line.raw_id().as_deref() {
            Some("1") => {
                line.assert_error("1", -32001);
                timed_out_at = Some(start.elapsed());
            }
            Some("2") => {
                assert_eq!(line.assert_result("2"), "ok");
                answered = true;
            }
            _ => panic!("unexpected {}", line.short()),
        }
    }
    let timed_out_at = timed_out_at.unwrap_or_default();
    assert!(
        timed_out_at < Duration::from_millis(1000),
        "request 1 timed out only after {timed_out_at:?}: another request's progress reset it"
    );
}

#[test]
fn late_answer_after_the_timeout_is_dropped() {
    let mut guard = Guard::mock(&["--request-timeout", "400ms"], &[]);
    guard.initialize("2025-06-18");
    let start = Instant::now();
    guard.call("\"late\"", "delay", json!({"ms": 900}));
    guard.recv().assert_error("\"late\"", -32001);
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(start.elapsed()));
    guard.assert_alive("1");
    guard.expect_silence(Duration::from_millis(100));
}

#[test]
fn answered_requests_never_time_out() {
    let mut guard = Guard::mock(&["--request-timeout", "300ms"], &[]);
    guard.initialize("2025-06-18");
    assert_eq!(
        guard
            .call_and_recv("1", "delay", json!({"ms": 100}))
            .assert_result("1"),
        "ok"
    );
    guard.expect_silence(Duration::from_millis(600));
    let stats = guard.server_stats("2");
    assert_eq!(stats["cancelled"], json!([]));
}

#[test]
fn concurrent_requests_are_tracked_independently() {
    let mut guard = Guard::mock(&["--request-timeout", "600ms"], &[]);
    guard.initialize("2025-06-18");
    let start = Instant::now();
    guard.call("1", "never", json!({}));
    guard.call("2", "delay", json!({"ms": 200}));
    guard.call("3", "ok", json!({}));
    // Answers arrive as the server sends them: 3, then 2, then the timeout of 1.
    assert_eq!(guard.recv().assert_result("3"), "ok");
    assert_eq!(guard.recv().assert_result("2"), "ok");
    guard.recv().assert_error("1", -32001);
    assert!(start.elapsed() >= Duration::from_millis(550));
}
