//! The guard's own JSON-RPC error replies, and the verdicts that carry them.

use serde_json::{json, Value};

use super::inspection::{Inspection, Kind};
use super::Verdict;
use crate::protocol::RequestId;

/// Error codes the firewall answers with, besides the JSON-RPC standard ones.
pub mod codes {
    pub use crate::protocol::codes::{
        INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    };
    /// Too many requests (`data.retryAfter` says when to try again, in seconds).
    pub const RATE_LIMITED: i64 = -32003;
}

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

/// Refuse a `tools/call` with a tool result marked `isError` carrying `message` (what 2025-11-25
/// asks for arguments that fail the tool's `inputSchema`): the model sees why and can retry.
pub fn refuse_as_tool_error(m: &Inspection<'_>, message: &str) -> Verdict {
    Verdict::Refuse {
        reason: message.to_owned(),
        reply_to_sender: Some(tool_error_result(m.id(), message)),
        reply_to_receiver: None,
    }
}

/// A `tools/call` result marked `isError` whose one text item is `message`.
pub fn tool_error_result(id: Option<&RequestId>, message: &str) -> Vec<u8> {
    let result = json!({"content": [{"type": "text", "text": message}], "isError": true});
    response(id, "result", &result, message.len())
}

/// One response line: `{"jsonrpc":"2.0","id":…,"<member>":<value>}`.
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

/// Refuse the message: a request gets the error back, a response is replaced by the error on
/// its way to the waiting requester, a notification is dropped.
pub fn refuse(m: &Inspection<'_>, code: i64, message: &str, data: Option<Value>) -> Verdict {
    let reason = message.to_owned();
    match m.kind {
        Kind::Request => Verdict::Refuse {
            reason,
            reply_to_sender: Some(error_response(m.id(), code, message, data)),
            reply_to_receiver: None,
        },
        Kind::Result | Kind::Error => Verdict::Refuse {
            reason,
            reply_to_sender: None,
            reply_to_receiver: m
                .id()
                .map(|id| error_response(Some(id), code, message, data)),
        },
        Kind::Notification => Verdict::Refuse {
            reason,
            reply_to_sender: None,
            reply_to_receiver: None,
        },
    }
}
