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
    // The firewall, not the sandbox, is under test here.
    guard_with(&[], &["--allow-unsandboxed"], policy, &[], server, args)
}

/// `mcp-guard run --policy P RUN_ARGS -- LAUNCH node SERVER ARGS` (sandboxed unless
/// `run_args` say otherwise; `launch`: e.g. `env NAME=VALUE`, or nothing), with `env` in the
/// guard's environment.
fn guard_with(
    env: &[(&str, &str)],
    run_args: &[&str],
    policy: &str,
    launch: &[&str],
    server: &str,
    args: &[&str],
) -> (relay_common::Guard, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        format!("version = 1\nextends = [\"node\"]\n{policy}"),
    )
    .expect("policy");
    let path = path.display().to_string();
    let script = node_server(server).display().to_string();
    let mut command = launch.to_vec();
    command.extend(["node", script.as_str()]);
    command.extend_from_slice(args);
    let mut all_args = vec!["--policy", path.as_str()];
    all_args.extend_from_slice(run_args);
    let g = relay_common::Guard::start_run(
        env,
        &all_args,
        std::path::Path::new(command[0]),
        &command[1..],
    );
    (g, dir)
}

/// server-everything's tool that prints its environment, called: its text.
fn server_environment(g: &mut relay_common::Guard) -> String {
    let tools = init_and_list(g);
    let get_env = ["get-env", "printEnv"]
        .into_iter()
        .find(|t| tools.iter().any(|n| n == t))
        .unwrap_or_else(|| panic!("no environment tool in {tools:?}"));
    g.call_and_recv("2", get_env, json!({})).assert_result("2")
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

/// Initialize, then the names of the tools the host is shown.
fn init_and_list(g: &mut relay_common::Guard) -> Vec<String> {
    init(g);
    g.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    tool_names(&response(g))
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
    let tools = init_and_list(&mut g);
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
    let tools = init_and_list(&mut g);
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

/// Values given with `--env NAME=VALUE` or passed through with `--env NAME` are the server's
/// secrets: server-everything's `get-env` prints its whole environment, and the host sees
/// markers where those values were, as does the audit log. A value too short to be a secret
/// (under 8 characters) is left alone. Sandboxed: only the sandbox gives the server exactly
/// the `--env` variables.
#[test]
fn filter_env_flag_values_are_redacted_in_results_and_the_audit_log() {
    if !node_server("everything").exists() {
        eprintln!("skipped: run scripts/setup-peers");
        return;
    }
    const GIVEN: &str = "given-1f3a9c-secret";
    const PASSED: &str = "passed-77b2e4-secret";
    let logs = tempfile::tempdir().expect("logs");
    let log = logs.path().join("audit.jsonl");
    let log_arg = log.display().to_string();
    let (mut g, _dir) = guard_with(
        &[("MCPG_TEST_PASSED", PASSED)],
        &[
            "--env",
            &format!("MCPG_TEST_GIVEN={GIVEN}"),
            "--env",
            "MCPG_TEST_PASSED",
            "--env",
            "MCPG_TEST_SHORT=abc123",
            "--audit-log",
            &log_arg,
        ],
        "",
        &[],
        "everything",
        &[],
    );
    let env = server_environment(&mut g);
    // The server did hold the values (its variables are there, with markers for values)…
    assert!(
        env.contains("[REDACTED:env:MCPG_TEST_GIVEN]")
            && env.contains("[REDACTED:env:MCPG_TEST_PASSED]"),
        "{env}"
    );
    // …and the host never sees them; the short one is not worth hiding.
    assert!(!env.contains(GIVEN) && !env.contains(PASSED), "{env}");
    assert!(env.contains("abc123"), "{env}");
    // Host → server as well: a value in a call's arguments (recorded in the audit log).
    let echoed = g
        .call_and_recv("3", "echo", json!({ "message": format!("token {GIVEN}") }))
        .assert_result("3");
    assert!(
        echoed.contains("token [REDACTED:env:MCPG_TEST_GIVEN]"),
        "{echoed}"
    );
    g.close_stdin();
    g.wait_exit(std::time::Duration::from_secs(10));
    let audit = std::fs::read_to_string(&log).expect("audit log");
    assert!(
        !audit.contains(GIVEN) && !audit.contains(PASSED),
        "a value reached the audit log:\n{audit}"
    );
    assert!(
        audit.contains("env:MCPG_TEST_GIVEN") && audit.contains("env:MCPG_TEST_PASSED"),
        "the redactions are recorded by name:\n{audit}"
    );
}

/// `env NAME=VALUE node server.js` (as host configs write it): the guard looks through `env`,
/// and the value is redacted as if given with `--env`.
#[test]
fn filter_env_launcher_values_are_redacted_too() {
    if !node_server("everything").exists() {
        eprintln!("skipped: run scripts/setup-peers");
        return;
    }
    const VALUE: &str = "via-env-5d0c1e-secret";
    let assignment = format!("MCPG_TEST_VIA_ENV={VALUE}");
    let (mut g, _dir) = guard_with(&[], &[], "", &["env", &assignment], "everything", &[]);
    let env = server_environment(&mut g);
    assert!(env.contains("[REDACTED:env:MCPG_TEST_VIA_ENV]"), "{env}");
    assert!(!env.contains(VALUE), "{env}");
}
