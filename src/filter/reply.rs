//! The verdicts that carry the guard's own JSON-RPC replies (written by `protocol::reply`).

use serde_json::Value;

use super::inspection::{Inspection, Kind};
use super::Verdict;
pub use crate::protocol::reply::{error_response, tool_error_result};

/// Error codes the firewall answers with, besides the JSON-RPC standard ones.
pub mod codes {
    pub use crate::protocol::codes::{
        INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    };
    /// Too many requests (`data.retryAfter` says when to try again, in seconds).
    pub const RATE_LIMITED: i64 = -32003;
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
