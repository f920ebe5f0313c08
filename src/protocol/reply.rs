//! The one writer of the JSON-RPC messages the guard composes itself: responses (errors,
//! results, tool results marked `isError`) and cancellation notices.

use serde_json::{json, Value};

use super::RequestId;

/// A JSON-RPC error response (`id: null` when the id is unknown).
pub fn error_response(
    id: Option<&RequestId>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Vec<u8> {
    let error = match data {
        Some(data) => json!({ "code": code, "message": message, "data": data }),
        None => json!({ "code": code, "message": message }),
    };
    response(id, "error", &error, message.len())
}

/// A JSON-RPC result response.
pub fn result_response(id: Option<&RequestId>, result: &Value) -> Vec<u8> {
    response(id, "result", result, 0)
}

/// A `tools/call` result marked `isError` whose one text item is `message`.
pub fn tool_error_result(id: Option<&RequestId>, message: &str) -> Vec<u8> {
    let result = json!({"content": [{"type": "text", "text": message}], "isError": true});
    response(id, "result", &result, message.len())
}

/// `notifications/cancelled` for a request the guard gave up on.
pub fn cancelled_notification(id: &RequestId, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + reason.len());
    out.extend_from_slice(
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"#,
    );
    out.extend_from_slice(id.to_json().as_bytes());
    out.extend_from_slice(br#","reason":"#);
    let _ = serde_json::to_writer(&mut out, reason);
    out.extend_from_slice(b"}}");
    out
}

/// One response line: `{"jsonrpc":"2.0","id":…,"<member>":<value>}` (ids exactly as received:
/// strings stay strings, big integers keep every digit).
fn response(id: Option<&RequestId>, member: &str, value: &Value, size_hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + size_hint);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    match id {
        Some(id) => out.extend_from_slice(id.to_json().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"");
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(b"\":");
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_valid_json_rpc() {
        let id = RequestId::String("a\"b".into());
        let v: Value =
            serde_json::from_slice(&error_response(Some(&id), -32600, "bad \"x\"", None))
                .expect("json");
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["error"]["code"], -32600);
        assert!(v["error"].get("data").is_none());
        let v: Value = serde_json::from_slice(&error_response(None, -32700, "p", Some(json!(1))))
            .expect("json");
        assert!(v["id"].is_null());
        assert_eq!(v["error"]["data"], 1);
        let n = RequestId::Number("123456789012345678901234567890".into());
        let text = String::from_utf8(cancelled_notification(&n, "timed out")).expect("utf8");
        assert!(
            text.contains(r#""requestId":123456789012345678901234567890"#),
            "{text}"
        );
        let text = String::from_utf8(result_response(Some(&n), &json!({"a": 1}))).expect("utf8");
        assert_eq!(
            text,
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":{"a":1}}"#
        );
        let v: Value = serde_json::from_slice(&tool_error_result(Some(&id), "no")).expect("json");
        assert_eq!(v["result"]["isError"], true);
    }
}
