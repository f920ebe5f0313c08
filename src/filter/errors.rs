//! `[errors] sanitize = true`: the server's error responses reach the host as code + a generic
//! message, so stack traces, paths and internals are not disclosed.

use serde_json::json;

use super::inspection::{Inspection, Kind, Step};
use super::{Direction, Firewall};

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    if !fw.rules.sanitize_errors || m.direction != Direction::ServerToHost || m.kind != Kind::Error
    {
        return Step::Next;
    }
    let code = m
        .body()
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_i64())
        .unwrap_or(-32603);
    m.set_body(json!({ "code": code, "message": generic_message(code) }));
    Step::Next
}

fn generic_message(code: i64) -> &'static str {
    match code {
        -32700 => "Parse error",
        -32600 => "Invalid request",
        -32601 => "Method not found",
        -32602 => "Invalid params",
        -32603 => "Internal error",
        -32002 => "Resource not found",
        _ => "The MCP server reported an error",
    }
}
