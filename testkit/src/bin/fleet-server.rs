//! An MCP server with the tools its command line gives, for the cross-server shadowing tests:
//! `fleet-server NAME [TOOL=DESCRIPTION]…` answers `initialize` as `NAME` and lists one tool
//! per argument (input schema: any object); calling one answers `called TOOL`.

use std::io::{self, BufRead, Write};

use serde_json::{json, Value};

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "fleet-server".into());
    let tools: Vec<Value> = args
        .map(|arg| {
            let (tool, description) = arg.split_once('=').unwrap_or((&arg, ""));
            json!({
                "name": tool,
                "description": description,
                "inputSchema": {"type": "object"},
            })
        })
        .collect();
    let stdin = io::stdin();
    let mut out = io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(id) = message.get("id").cloned() else {
            continue; // notifications need no answer
        };
        let result = match message["method"].as_str().unwrap_or_default() {
            "initialize" => json!({
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": name, "version": "1.0.0"},
            }),
            "tools/list" => json!({ "tools": tools }),
            "tools/call" => {
                let tool = message["params"]["name"].as_str().unwrap_or_default();
                json!({"content": [{"type": "text", "text": format!("called {tool}")}]})
            }
            _ => {
                let error = json!({"code": -32601, "message": "method not found"});
                let reply = json!({"jsonrpc": "2.0", "id": id, "error": error});
                let _ = writeln!(out, "{reply}").and_then(|()| out.flush());
                continue;
            }
        };
        let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}
