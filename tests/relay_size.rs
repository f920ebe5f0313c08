//! `--max-message-bytes`: an over-cap line is refused in either direction without desynchronising
//! the stream; lines under the cap pass intact, however large.

mod relay_common;
mod support;

use std::time::Duration;

use relay_common::Guard;
use serde_json::json;

const CAP: &[&str] = &["--max-message-bytes", "64KiB"];

fn big_text(bytes: usize) -> String {
    "y".repeat(bytes)
}

#[test]
fn over_cap_host_line_is_refused_with_the_id_from_its_head() {
    let mut guard = Guard::mock(CAP, &[]);
    guard.initialize("2025-06-18");
    let line = format!(
        r#"{{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        big_text(100 << 10)
    );
    guard.send(&line);
    guard.recv().assert_error("41", -32600);
    guard.assert_alive("1");
    let stats = guard.server_stats("2");
    assert!(
        stats["max_line"].as_u64().unwrap_or(u64::MAX) < 64 << 10,
        "the over-cap line reached the server: {stats}"
    );
}

#[test]
fn over_cap_host_line_is_refused_with_the_id_from_its_tail() {
    let mut guard = Guard::mock(CAP, &[]);
    guard.initialize("2025-06-18");
    let line = format!(
        r#"{{"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}},"jsonrpc":"2.0","id":42}}"#,
        big_text(100 << 10)
    );
    guard.send(&line);
    guard.recv().assert_error("42", -32600);
    guard.assert_alive("1");
}

#[test]
fn over_cap_host_line_without_an_id_is_refused_with_null() {
    let mut guard = Guard::mock(CAP, &[]);
    guard.initialize("2025-06-18");
    let line = format!(
        r#"{{"method":"notifications/message","params":{{"data":"{}"}},"jsonrpc":"2.0"}}"#,
        big_text(100 << 10)
    );
    guard.send(&line);
    guard.recv().assert_error("null", -32600);
    guard.assert_alive("1");
}

#[test]
fn over_cap_host_line_written_in_pieces_keeps_the_stream_in_sync() {
    let mut guard = Guard::mock(CAP, &[]);
    guard.initialize("2025-06-18");
    let line = format!(
        r#"{{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        big_text(300 << 10)
    );
    for chunk in line.as_bytes().chunks(50 << 10) {
        guard.send_bytes(chunk);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The newline and the next request arrive in the same write.
    guard.send_bytes(b"\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n");
    guard.recv().assert_error("\"big\"", -32600);
    let answer = guard.recv();
    assert_eq!(answer.raw_id().as_deref(), Some("2"), "{}", answer.short());
    assert!(answer.json().get("result").is_some());
}

#[test]
fn under_cap_lines_pass_intact() {
    let mut guard = Guard::mock(CAP, &[]);
    guard.initialize("2025-06-18");
    let text = big_text(60 << 10);
    let answer = guard.call_and_recv("1", "echo", json!({ "text": text }));
    assert_eq!(answer.assert_result("1"), text);
}

#[test]
fn over_cap_server_answer_becomes_an_error_for_the_pending_request() {
    let mut guard = Guard::mock(CAP, &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "huge", json!({"bytes": 200 << 10}));
    let answer = guard.recv();
    assert_eq!(answer.raw_id().as_deref(), Some("1"), "{}", answer.short());
    assert!(
        answer.json()["error"]["code"].is_i64(),
        "{}",
        answer.short()
    );
    guard.assert_alive("2");
}

#[test]
fn over_cap_server_line_for_nobody_is_dropped() {
    let mut guard = Guard::mock(CAP, &[]);
    guard.initialize("2025-06-18");
    let answer = guard.call_and_recv(
        "1",
        "huge",
        json!({"bytes": 200 << 10, "wrong_id": "nobody"}),
    );
    assert_eq!(answer.assert_result("1"), "ok");
    guard.assert_alive("2");
}

#[test]
fn twenty_mib_lines_under_the_default_16_mib_cap() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    let text = big_text(20 << 20);
    guard.send(&format!(
        r#"{{"jsonrpc":"2.0","id":50,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
    ));
    guard.recv().assert_error("50", -32600);
    guard.assert_alive("1");
    guard.call("51", "huge", json!({"bytes": 20 << 20}));
    let answer = guard.recv();
    assert_eq!(answer.raw_id().as_deref(), Some("51"), "{}", answer.short());
    assert!(
        answer.json()["error"]["code"].is_i64(),
        "{}",
        answer.short()
    );
    guard.assert_alive("2");
}

#[test]
fn twenty_mib_lines_pass_when_the_cap_allows() {
    let mut guard = Guard::mock(&["--max-message-bytes", "32MiB"], &[]);
    guard.initialize("2025-06-18");
    let text = big_text(20 << 20);
    let answer = guard.call_and_recv("1", "echo", json!({ "text": text }));
    assert!(
        answer.assert_result("1") == text,
        "20 MiB echo came back altered"
    );
    let answer = guard.call_and_recv("2", "huge", json!({"bytes": 20 << 20}));
    assert_eq!(answer.assert_result("2").len(), 20 << 20);
}

/// A ping line of exactly `len` bytes (newline excluded).
fn ping_of_len(raw_id: &str, len: usize) -> String {
    let empty = format!(r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"ping","params":{{"p":""}}}}"#);
    let pad = "p".repeat(len - empty.len());
    format!(r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"ping","params":{{"p":"{pad}"}}}}"#)
}

#[test]
fn the_cap_counts_message_bytes_without_the_newline() {
    let mut guard = Guard::mock(&["--max-message-bytes", "4096"], &[]);
    guard.initialize("2025-06-18");
    guard.send(&ping_of_len("1", 4096));
    let answer = guard.recv();
    assert!(answer.json().get("result").is_some(), "{}", answer.short());
    // CRLF: the carriage return is line ending, not message.
    guard.send(&format!("{}\r", ping_of_len("2", 4096)));
    let answer = guard.recv();
    assert!(answer.json().get("result").is_some(), "{}", answer.short());
    guard.send(&ping_of_len("3", 4097));
    guard.recv().assert_error("3", -32600);
    guard.assert_alive("4");

    // Server side: measure the mock's line overhead unguarded, then hit the cap exactly.
    let mut control = Guard::unguarded(&relay_common::mock_bin(), &[]);
    let overhead = control
        .call_and_recv("5", "huge", json!({"bytes": 0}))
        .bytes
        .len();
    let answer = guard.call_and_recv("5", "huge", json!({"bytes": 4096 - overhead}));
    assert_eq!(answer.bytes.len(), 4096, "{}", answer.short());
    assert!(answer.json().get("result").is_some(), "{}", answer.short());
    let answer = guard.call_and_recv("6", "huge", json!({"bytes": 4097 - overhead}));
    assert_eq!(answer.raw_id().as_deref(), Some("6"));
    assert!(
        answer.json()["error"]["code"].is_i64(),
        "{}",
        answer.short()
    );
}
