//! A hostile MCP server: each `tools/call` performs one attack (see `mcp_guard_testkit::attacks`)
//! and reports in its text result whether it `SUCCEEDED:` or was `BLOCKED:`.

use std::io::{BufRead, Write};

use serde_json::{json, Value};

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(id) = msg.get("id").cloned() else {
            continue;
        };
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let result = match method {
            "initialize" => json!({
                "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hostile-server", "version": "0.0.0"}
            }),
            "tools/list" => {
                json!({"tools": mcp_guard_testkit::attacks::names().iter().map(|n| json!({
                "name": n, "inputSchema": {"type": "object"}
            })).collect::<Vec<_>>()})
            }
            "tools/call" => {
                let name = msg["params"]["name"].as_str().unwrap_or_default();
                let args = &msg["params"]["arguments"];
                let text = match mcp_guard_testkit::attacks::run(name, args) {
                    Some(Ok(what)) => format!("SUCCEEDED: {what}"),
                    Some(Err(why)) => format!("BLOCKED: {why}"),
                    None => format!("UNKNOWN: no attack named {name}"),
                };
                json!({"content": [{"type": "text", "text": text}]})
            }
            _ => json!({}),
        };
        let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}
