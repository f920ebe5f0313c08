//! The message firewall in front of the reference servers (installed by `scripts/setup-peers`),
//! their traffic passes the schema checks untouched, and a
//! policy's refusals sit beside working neighbours.

#[path = "relay_common/mod.rs"]
mod relay_common;
mod support;

use std::path::PathBuf;

use serde_json::{json, Value};

fn node_server(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/peers/node_modules/@modelcontextprotocol/server-{name}/dist/index.js"
    ))
}

fn guard(policy: &str, server: &str, args: &[&str]) -> (relay_common::Guard, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        format!("version = 1\nextends = [\"node\"]\n{policy}"),
    )
    .expect("policy");
    let path = path.display().to_string();
    let script = node_server(server).display().to_string();
    let mut server_args = vec![script.as_str()];
    server_args.extend_from_slice(args);
    // relay_common's driver always passes --allow-unsandboxed (its spawn is private); the
    // firewall, not the sandbox, is under test here.
    let g = relay_common::Guard::start(
        &["--policy", &path],
        std::path::Path::new("node"),
        &server_args,
    );
    (g, dir)
}

fn init(g: &mut relay_common::Guard) {
    g.send_json(
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "filter-test", "version": "0"}}}),
    );
    let answer = g.recv_within(std::time::Duration::from_secs(20)).json();
    assert!(answer["result"]["protocolVersion"].is_string(), "{answer}");
    g.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
}

/// The next response, skipping the server's own notifications and requests.
fn response(g: &mut relay_common::Guard) -> Value {
    loop {
        let line = g.recv();
        if line.is_response() {
            return line.json();
        }
    }
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn filter_everything_denied_tool_hidden_and_refused_echo_works() {
    if !node_server("everything").exists() {
        eprintln!("skipped: run scripts/setup-peers");
        return;
    }
    let (mut g, _dir) = guard(
        "[tools]\ndeny = [\"*Env*\", \"*env*\"]\n",
        "everything",
        &[],
    );
    init(&mut g);
    g.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let tools = tool_names(&response(&mut g));
    assert!(tools.iter().any(|t| t == "echo"), "{tools:?}");
    let hidden: Vec<_> = tools
        .iter()
        .filter(|t| t.to_lowercase().contains("env"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    g.call_and_recv("2", "printEnv", json!({}))
        .assert_error("2", -32602);
    g.call_and_recv("3", "get-env", json!({}))
        .assert_error("3", -32602);
    let text = g
        .call_and_recv("4", "echo", json!({"message": "hello"}))
        .assert_result("4");
    assert!(text.contains("hello"), "{text}");
    // Arguments are checked against the listed inputSchema.
    g.call_and_recv("5", "echo", json!({"message": 7}))
        .assert_error("5", -32602);
    // The reference server's own traffic conforms: no schema findings on stderr.
    assert!(
        !g.stderr_text().contains("does not conform"),
        "{}",
        g.stderr_text()
    );
}

#[test]
fn filter_filesystem_path_rule_refuses_outside_root() {
    if !node_server("filesystem").exists() {
        eprintln!("skipped: run scripts/setup-peers");
        return;
    }
    let root = tempfile::tempdir().expect("root");
    std::fs::write(root.path().join("a.txt"), "inside").expect("write");
    let root_text = root.path().display().to_string();
    let policy = format!(
        "[filesystem]\narg_paths = \"write\"\n[tools.arguments.read_text_file]\npath = {{ under = [\"{root_text}\"] }}\n[tools.arguments.read_file]\npath = {{ under = [\"{root_text}\"] }}\n"
    );
    let (mut g, _dir) = guard(&policy, "filesystem", &[&root_text]);
    init(&mut g);
    g.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let tools = tool_names(&response(&mut g));
    let tool = if tools.iter().any(|t| t == "read_text_file") {
        "read_text_file"
    } else {
        "read_file"
    };
    let inside = format!("{root_text}/a.txt");
    let text = g
        .call_and_recv("2", tool, json!({"path": inside}))
        .assert_result("2");
    assert!(text.contains("inside"), "{text}");
    g.call_and_recv("3", tool, json!({"path": "/etc/passwd"}))
        .assert_error("3", -32602);
    let sneaky = format!("{root_text}/../../etc/passwd");
    g.call_and_recv("4", tool, json!({"path": sneaky}))
        .assert_error("4", -32602);
    g.call_and_recv("5", tool, json!({"path": format!("{inside}\u{0}.png")}))
        .assert_error("5", -32602);
}
