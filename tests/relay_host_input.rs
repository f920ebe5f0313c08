//! What the guard does with each line the host writes: valid messages reach the server with their
//! ids intact; anything else is answered by the guard itself with a JSON-RPC error and never
//! desynchronises the stream.

mod relay_common;
mod support;

use relay_common::Guard;
use serde_json::json;

#[test]
fn ids_pass_through_exactly() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    for raw_id in [
        "1",
        "\"1\"",
        "\"007\"",
        "123456789012345678901234567890",
        "-5",
        "0",
        "\"\"",
        "9007199254740993",
        "\"é ✓\"",
    ] {
        let text = guard
            .call_and_recv(raw_id, "ok", json!({}))
            .assert_result(raw_id);
        assert_eq!(text, "ok");
    }
    // A string id written with escapes comes back with the same escapes, byte for byte.
    let raw_id = r#""with \"quotes\", \\ and \u00e9 \ud83d\ude00""#;
    guard.call(raw_id, "ok", json!({}));
    let answer = guard.recv();
    assert_eq!(
        answer.raw_id().as_deref(),
        Some(raw_id),
        "{}",
        answer.short()
    );
    assert_eq!(answer.json()["id"], "with \"quotes\", \\ and é 😀");
}

#[test]
fn non_json_lines_get_a_parse_error() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    let lines: [&[u8]; 6] = [
        b"hello, not json",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"",
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}}",
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"pi\xffng\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\",\"params\":{\"a\":\"\xc3\x28\"}}",
        b"{'jsonrpc':'2.0','id':5,'method':'ping'}",
    ];
    for (i, line) in lines.iter().enumerate() {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        guard.send_bytes(&bytes);
        guard.recv().assert_error("null", -32700);
        guard.assert_alive(&format!("\"alive-{i}\""));
    }
}

#[test]
fn invalid_jsonrpc_gets_invalid_request_with_the_id_when_valid() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    let cases = [
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, "1"),
        (r#"{"id":2,"method":"ping"}"#, "2"),
        (r#"{"jsonrpc":2.0,"id":"s3","method":"ping"}"#, "\"s3\""),
        (
            r#"{"jsonrpc":"2.0","id":4,"result":{},"error":{"code":1,"message":"x"}}"#,
            "4",
        ),
        (r#"{"jsonrpc":"2.0","id":5,"method":5}"#, "5"),
        (r#"{"jsonrpc":"2.0","id":6,"method":null}"#, "6"),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"ping","params":"x"}"#,
            "7",
        ),
        (
            r#"{"jsonrpc":"2.0","id":8,"method":"ping","params":3}"#,
            "8",
        ),
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, "null"),
        (r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#, "null"),
        (r#"{"jsonrpc":"2.0","id":[9],"method":"ping"}"#, "null"),
        (r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#, "null"),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, "null"),
        (r#"{"jsonrpc":"2.0"}"#, "null"),
        (r#"{}"#, "null"),
        ("42", "null"),
        (r#""a string""#, "null"),
        ("null", "null"),
        ("true", "null"),
    ];
    for (i, (line, raw_id)) in cases.iter().enumerate() {
        guard.send(line);
        let answer = guard.recv();
        assert_eq!(
            answer.json()["error"]["code"],
            -32600,
            "for {line}: {}",
            answer.short()
        );
        assert_eq!(
            answer.raw_id().as_deref(),
            Some(*raw_id),
            "for {line}: {}",
            answer.short()
        );
        guard.assert_alive(&format!("\"alive-{i}\""));
    }
    // None of them reached the server: it saw initialize, the notification, the pings, the
    // guard's own tools/list (before the first tools/call) and stats.
    let stats = guard.server_stats("\"stats\"");
    assert_eq!(
        stats["lines"],
        2 + cases.len() + 2,
        "invalid lines reached the server: {stats}"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.send(&"[".repeat(100_000));
    let answer = guard.recv();
    let code = answer.json()["error"]["code"].as_i64();
    assert!(
        matches!(code, Some(-32700) | Some(-32600)),
        "{}",
        answer.short()
    );
    assert_eq!(answer.raw_id().as_deref(), Some("null"));
    guard.assert_alive("1");

    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"ping","params":{{"a":{}{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    guard.send(&nested);
    let answer = guard.recv();
    let code = answer.json()["error"]["code"].as_i64();
    assert!(
        matches!(code, Some(-32700) | Some(-32600)),
        "{}",
        answer.short()
    );
    guard.assert_alive("3");

    guard.send(&"{\"a\":".repeat(100_000));
    assert!(guard.recv().json()["error"]["code"].is_i64());
    guard.assert_alive("4");
}

#[test]
fn batch_is_rejected_unless_2025_03_26_was_negotiated() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.send(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
    );
    guard.recv().assert_error("null", -32600);
    guard.send("[]");
    guard.recv().assert_error("null", -32600);
    // Exactly one error per batch line: the next line is the ping answer.
    guard.assert_alive("3");
    let stats = guard.server_stats("4");
    // initialize, initialized, ping 3, the guard's own tools/list, stats.
    assert_eq!(
        stats["lines"], 5,
        "a rejected batch reached the server: {stats}"
    );
}

#[test]
fn batch_is_rejected_when_the_server_answered_a_newer_version() {
    // The client asked for 2025-03-26, but the server's answer is what counts.
    let mut guard = Guard::mock(&[], &["--protocol-version=2025-06-18"]);
    let result = guard.initialize("2025-03-26");
    assert_eq!(result["protocolVersion"], "2025-06-18");
    guard.send(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
    guard.recv().assert_error("null", -32600);
    guard.assert_alive("2");
}

/// Collects answers (single lines or batch arrays) until every id in `want` was seen once.
fn collect_batch_answers(guard: &mut Guard, want: &[&str]) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    while seen.len() < want.len() {
        let line = guard.recv();
        let value = line.json();
        let items = match value {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        for item in items {
            let id = item["id"].to_string();
            assert!(
                want.contains(&id.as_str()),
                "unexpected answer {item} in {}",
                line.short()
            );
            assert!(
                !seen
                    .iter()
                    .any(|s: &serde_json::Value| s["id"] == item["id"]),
                "answered twice: {item}"
            );
            seen.push(item);
        }
    }
    seen
}

#[test]
fn batch_is_accepted_when_the_server_negotiated_2025_03_26() {
    let mut guard = Guard::mock(&[], &["--protocol-version=2025-03-26"]);
    let result = guard.initialize("2025-06-18");
    assert_eq!(result["protocolVersion"], "2025-03-26");
    guard.send(concat!(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},"#,
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x","progress":1}},"#,
        r#"{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"ok","arguments":{}}}]"#
    ));
    let answers = collect_batch_answers(&mut guard, &["1", "\"two\""]);
    assert!(
        answers.iter().all(|a| a.get("result").is_some()),
        "{answers:?}"
    );
    // An empty batch is never valid.
    guard.send("[]");
    guard.recv().assert_error("null", -32600);
    guard.assert_alive("3");
}

#[test]
fn host_notifications_get_no_answer() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.send(r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#);
    guard.send(r#"{"jsonrpc":"2.0","method":"some/unknown_notification","params":{}}"#);
    guard.expect_silence(std::time::Duration::from_millis(200));
    guard.assert_alive("1");
}

#[test]
fn relay_works_without_initialize() {
    // Newer clients may start with server/discover or skip initialize: nothing is required.
    let mut guard = Guard::mock(&[], &[]);
    let text = guard.call_and_recv("0", "echo", json!({"text": "no handshake"}));
    assert_eq!(text.assert_result("0"), "no handshake");
    guard.send(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#);
    let answer = guard.recv();
    assert_eq!(answer.raw_id().as_deref(), Some("1"));
    // The mock does not know the method: the server's own error comes back, not the guard's.
    assert_eq!(answer.json()["error"]["code"], -32601, "{}", answer.short());
}

#[test]
fn crlf_line_endings_are_accepted() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.send_bytes(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n");
    let answer = guard.recv();
    assert_eq!(answer.raw_id().as_deref(), Some("1"), "{}", answer.short());
    assert!(answer.json().get("result").is_some(), "{}", answer.short());
}

#[test]
fn an_id_already_in_flight_is_refused() {
    // Forwarding it would make the server's second answer look like a duplicate and be dropped.
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "delay", json!({"ms": 300}));
    guard.call("1", "ok", json!({}));
    guard.recv().assert_error("1", -32600);
    assert_eq!(guard.recv().assert_result("1"), "ok");
    guard.assert_alive("2");
}

#[test]
fn batch_members_are_checked_one_by_one() {
    let mut guard = Guard::mock(&[], &["--protocol-version=2025-03-26"]);
    guard.initialize("2025-03-26");
    guard.send(concat!(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"bad":1},5,"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ok","arguments":{}}}]"#
    ));
    let mut answers = Vec::new();
    while answers.len() < 4 {
        match guard.recv().json() {
            serde_json::Value::Array(items) => answers.extend(items),
            one => answers.push(one),
        }
    }
    let invalid = answers
        .iter()
        .filter(|a| a["id"].is_null() && a["error"]["code"] == -32600)
        .count();
    assert_eq!(invalid, 2, "{answers:?}");
    assert!(answers
        .iter()
        .any(|a| a["id"] == 1 && a["result"].is_object()));
    assert!(answers
        .iter()
        .any(|a| a["id"] == 2 && a["result"].is_object()));
    guard.assert_alive("3");
    // Only the two valid members reached the server.
    let stats = guard.server_stats("4");
    let calls = stats["calls"].as_array().map(Vec::len);
    assert_eq!(calls, Some(2), "{stats}");
}
