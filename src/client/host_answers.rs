//! What the client answers when the server asks something of the host.

use serde_json::{json, Value};

/// The capabilities a full host declares. Servers gate tools on them (server-everything lists
/// three more with sampling and elicitation), and pin, scan and `policy init` must see what a
/// host sees.
pub fn declared_capabilities() -> Value {
    json!({"roots": {"listChanged": false}, "sampling": {}, "elicitation": {}})
}

/// The reply to the server's request `method` (id `id`), minimal so the server never waits on
/// us: no roots, and sampling and elicitation declined (there is no model or user to ask).
pub fn answer(id: &Value, method: &str) -> Value {
    let result = |r: Value| json!({"jsonrpc": "2.0", "id": id, "result": r});
    let error = |code: i64, m: &str| json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": m}});
    match method {
        "ping" => result(json!({})),
        "roots/list" => result(json!({"roots": []})),
        "elicitation/create" => result(json!({"action": "decline"})),
        "sampling/createMessage" => error(
            -1,
            "declined: mcp-guard's client has no model to sample from",
        ),
        _ => error(-32601, "not supported by mcp-guard's client"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_declines_what_needs_a_model_or_a_user() {
        let id = json!(7);
        assert_eq!(answer(&id, "ping")["result"], json!({}));
        assert_eq!(answer(&id, "roots/list")["result"]["roots"], json!([]));
        assert_eq!(
            answer(&id, "elicitation/create")["result"]["action"],
            "decline"
        );
        assert_eq!(answer(&id, "sampling/createMessage")["error"]["code"], -1);
        assert_eq!(answer(&id, "tools/list")["error"]["code"], -32601);
        assert_eq!(answer(&id, "ping")["id"], 7);
    }
}
