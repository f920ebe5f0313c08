//! Messages the guard writes itself: error responses and cancellation notices.

use serde_json::json;

use crate::protocol::RequestId;

/// A JSON-RPC error response (`id: null` when the id is unknown).
pub fn error_response(id: Option<&RequestId>, code: i64, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    match id {
        Some(id) => out.extend_from_slice(id.to_json().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","error":"#);
    let _ = serde_json::to_writer(&mut out, &json!({ "code": code, "message": message }));
    out.push(b'}');
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_valid_json_rpc() {
        let id = RequestId::String("a\"b".into());
        let v: serde_json::Value =
            serde_json::from_slice(&error_response(Some(&id), -32600, "bad \"x\"")).expect("json");
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["error"]["code"], -32600);
        let v: serde_json::Value =
            serde_json::from_slice(&error_response(None, -32700, "p")).expect("json");
        assert!(v["id"].is_null());
        let n = RequestId::Number("123456789012345678901234567890".into());
        let text = String::from_utf8(cancelled_notification(&n, "timed out")).expect("utf8");
        assert!(
            text.contains(r#""requestId":123456789012345678901234567890"#),
            "{text}"
        );
    }
}
