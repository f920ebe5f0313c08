//! The relay, through the real binary, for generated traffic. The server is `cat`: whatever the
//! guard delivers to the server comes straight back as the server's own output, so the host
//! sees exactly what the server was given (after a second pass through the relay, server to
//! host). Properties:
//! - any sequence of valid requests and notifications is delivered completely, in order, with
//!   the same JSON meaning and byte-identical ids;
//! - every invalid line earns its sender exactly one error, and the valid traffic around it
//!   still passes.

mod relay_common;
mod support;

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use relay_common::{Guard, Line};
use serde_json::{json, Value};
use support::generate::json_value;

/// An id's JSON text: integers (also beyond i64/f64 precision) or strings (also `"007"`,
/// escapes); made unique by the caller.
fn id_text(n: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(n.to_string()),
        Just(format!("-{n}")),
        Just(format!("9007199254740993{n:04}")),
        "[a-z0-9 \"\\\\]{0,6}".prop_map(move |s| json!(format!("{s}#{n}")).to_string()),
        Just(format!("\"{n:03}\"")),
    ]
}

#[derive(Debug, Clone)]
struct Valid {
    line: String,
    id: Option<String>,
}

/// A request (`id` set) or notification with an unknown method (the relay passes those).
fn valid(n: usize) -> impl Strategy<Value = Valid> {
    (
        prop::option::of(id_text(n)),
        "[a-z]{1,8}(/[a-zA-Z_]{1,8})?",
        prop::option::of(prop::collection::btree_map(
            "[a-z_]{1,6}",
            json_value(),
            0..4,
        )),
        0usize..3,
    )
        .prop_map(|(id, method, params, order)| {
            let mut members = vec![
                r#""jsonrpc":"2.0""#.to_owned(),
                format!("\"method\":{}", json!(format!("x.{method}"))),
            ];
            if let Some(p) = params {
                members.push(format!(
                    "\"params\":{}",
                    Value::Object(p.into_iter().collect())
                ));
            }
            if let Some(id) = &id {
                // Ids anywhere: the newer TypeScript SDK writes them last.
                let at = order.min(members.len());
                members.insert(at, format!("\"id\":{id}"));
            }
            Valid {
                line: format!("{{{}}}", members.join(",")),
                id,
            }
        })
}

fn sequence() -> impl Strategy<Value = Vec<Valid>> {
    (1usize..40).prop_flat_map(|len| (0..len).map(valid).collect::<Vec<_>>())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

fn cat_guard() -> Guard {
    Guard::start(&["--no-audit"], Path::new("/bin/cat"), &[])
}

/// The line as delivered must mean the same as the line sent, with the id byte for byte.
fn assert_same(sent: &Valid, got: &Line) -> Result<(), TestCaseError> {
    let want: Value = serde_json::from_str(&sent.line).unwrap();
    prop_assert_eq!(got.json(), want, "sent {}", sent.line);
    prop_assert_eq!(
        got.raw_id(),
        sent.id.clone(),
        "id changed: sent {}",
        sent.line
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn valid_messages_are_delivered_in_order_with_the_same_meaning_and_ids(seq in sequence()) {
        let mut guard = cat_guard();
        let mut all = String::new();
        for m in &seq {
            all.push_str(&m.line);
            all.push('\n');
        }
        guard.send_bytes(all.as_bytes());
        for m in &seq {
            let got = guard.recv();
            assert_same(m, &got)?;
        }
        guard.expect_silence(Duration::from_millis(30));
    }

    #[test]
    fn each_invalid_line_earns_exactly_one_error_and_the_next_valid_passes(
        items in (1usize..10).prop_flat_map(|len| (0..len).map(|n| (invalid(), valid(n))).collect::<Vec<_>>())
    ) {
        let mut guard = cat_guard();
        let mut expected_errors = Vec::new();
        let mut echoes = Vec::new();
        for ((bad, bad_id), good) in &items {
            let mut bytes = bad.clone();
            bytes.push(b'\n');
            bytes.extend_from_slice(good.line.as_bytes());
            bytes.push(b'\n');
            guard.send_bytes(&bytes);
            expected_errors.push(bad_id.clone());
            echoes.push(good.clone());
        }
        // Errors come straight from the guard, echoes via the server: they may interleave,
        // but each kind keeps its order.
        let (mut errors, mut delivered) = (Vec::new(), Vec::new());
        for _ in 0..items.len() * 2 {
            let line = guard.recv();
            if line.json().get("method").is_some() {
                delivered.push(line);
            } else {
                errors.push(line);
            }
        }
        guard.expect_silence(Duration::from_millis(30));
        prop_assert_eq!(errors.len(), items.len(), "one error per invalid line");
        for (line, want_id) in errors.iter().zip(&expected_errors) {
            let v = line.json();
            prop_assert!(v["error"]["code"].is_i64(), "not an error: {}", line.short());
            prop_assert_eq!(line.raw_id(), Some(want_id.clone().unwrap_or_else(|| "null".into())), "{}", line.short());
        }
        for (line, sent) in delivered.iter().zip(&echoes) {
            assert_same(sent, line)?;
        }
    }
}

/// An invalid line and the id its error must carry (`None`: `null`).
fn invalid() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    prop_oneof![
        // Starts with a non-blank: a line of spaces is a blank line, skipped by design.
        "[a-z!?][a-z !?]{0,19}".prop_map(|s| (s.into_bytes(), None)),
        Just((b"{\"jsonrpc\":\"2.0\",\"id\":1,".to_vec(), None)),
        Just((b"\xff\xfe{}".to_vec(), None)),
        Just((b"42".to_vec(), None)),
        Just((b"\"text\"".to_vec(), None)),
        Just((b"[]".to_vec(), None)),
        Just((b"{}".to_vec(), None)),
        Just((
            br#"{"jsonrpc":"1.0","id":5,"method":"x"}"#.to_vec(),
            Some("5".into())
        )),
        Just((
            br#"{"jsonrpc":"2.0","id":"s","method":7}"#.to_vec(),
            Some("\"s\"".into())
        )),
        Just((br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#.to_vec(), None)),
        Just((
            br#"{"jsonrpc":"2.0","id":true,"method":"x"}"#.to_vec(),
            None
        )),
        Just((
            br#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#.to_vec(),
            None
        )),
        Just((
            format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
            None
        )),
        Just((br#"[{"jsonrpc":"2.0","id":9,"method":"x"}]"#.to_vec(), None)),
    ]
}

#[test]
fn invalid_lines_listed_in_the_property_are_all_refused() {
    // The strategy's fixed cases, once each, in one session: a quick, deterministic check.
    let mut guard = cat_guard();
    let cases: Vec<&[u8]> = vec![
        b"nope",
        b"42",
        b"[]",
        b"{}",
        br#"{"jsonrpc":"1.0","id":5,"method":"x"}"#,
    ];
    for c in &cases {
        let mut bytes = c.to_vec();
        bytes.push(b'\n');
        guard.send_bytes(&bytes);
        let line = guard.recv();
        assert!(line.json()["error"]["code"].is_i64(), "{}", line.short());
    }
    guard.send(r#"{"jsonrpc":"2.0","id":1,"method":"x.after"}"#);
    assert_eq!(guard.recv().json()["method"], "x.after");
}
