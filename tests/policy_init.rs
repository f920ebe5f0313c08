//! `mcp-guard policy init` against the real server-everything: the starter policy lists what the
//! server offers, passes `policy check`, and runs the server with `run --policy` (the official
//! TypeScript SDK client's full scenario).

mod profile_support;

use std::process::{Command, Stdio};

use profile_support::*;

fn init_cmd(home: &TestHome, out: &std::path::Path, server: &[String]) -> Vec<String> {
    // `env` sets the private HOME (the node base creates ${HOME}/.npm/_npx) for mcp-guard.
    let mut cmd = strings(&["env"]);
    cmd.push(format!("HOME={}", home.path().display()));
    cmd.push(guard_bin().display().to_string());
    cmd.extend(strings(&["policy", "init", "-o"]));
    cmd.push(out.display().to_string());
    cmd.push("--".to_owned());
    cmd.extend(server.iter().cloned());
    cmd
}

#[test]
fn policy_init_everything_writes_a_policy_that_checks_and_runs() {
    let peers = Peers::get();
    let home = TestHome::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("everything.toml");
    let server = node_cmd(&peers.node_server("everything"), &[]);

    let out = run("policy init", &init_cmd(&home, &file, &server));
    assert!(
        out.success,
        "policy init failed: {}\n{}",
        out.status, out.stderr
    );
    let text = std::fs::read_to_string(&file).expect("the policy file was written");
    for needle in [
        "extends = [\"node\"]",
        "mode = \"off\"",
        // Tools the server adds once a client with sampling/elicitation is initialized.
        "\"trigger-sampling-request\"",
        "\"trigger-elicitation-request\"",
        "\"echo\"",
        "\"simple-prompt\"",
        "\"demo://resource/static/document/features.md\"",
        "\"demo://resource/dynamic/text/*\"",
    ] {
        assert!(text.contains(needle), "no {needle} in:\n{text}");
    }
    assert!(
        out.stderr.contains("wrote") && out.stderr.contains("16 tools"),
        "{}",
        out.stderr
    );

    let check = Command::new(guard_bin())
        .args(["policy", "check"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("policy check");
    assert!(
        check.status.success(),
        "policy check refused the starter policy:\n{}\n{text}",
        String::from_utf8_lossy(&check.stderr)
    );

    let policy = file.display().to_string();
    let doc = run_json(
        "run --policy <init's file>: ts everything",
        &with_server(
            &in_home(peers.ts_driver("everything", &[]), &home),
            &guarded(&["--policy", &policy], &server),
        ),
    );
    assert_eq!(
        doc["initialize"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
    assert_eq!(doc["serverToClient"]["samplingRequests"], 2);

    // What the file does not list is refused: without `echo` (as if the server added it after
    // `policy init` ran), the host neither sees nor calls it.
    let trimmed = dir.path().join("without-echo.toml");
    std::fs::write(&trimmed, text.replace("  \"echo\",\n", "")).expect("write trimmed");
    let trimmed = trimmed.display().to_string();
    let calls = serde_json::json!([
        {"name": "echo", "arguments": {"message": "not listed"}},
        {"name": "get-sum", "arguments": {"a": 1, "b": 2}},
    ]);
    let doc = run_json(
        "run --policy <init's file without echo>",
        &with_server(
            &in_home(peers.call_tools(&calls, &[]), &home),
            &guarded(&["--policy", &trimmed], &server),
        ),
    );
    let tools: Vec<&str> = doc["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        !tools.contains(&"echo") && tools.contains(&"get-sum"),
        "{tools:?}"
    );
    assert!(refused(call(&doc, 0)), "echo was not refused: {doc}");
    assert!(!refused(call(&doc, 1)), "get-sum was refused: {doc}");

    // An existing file is not overwritten.
    let again = run(
        "policy init (existing file)",
        &init_cmd(&home, &file, &server),
    );
    assert!(
        !again.success && again.stderr.contains("exists"),
        "{}",
        again.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).expect("still there"), text);
}

#[test]
fn policy_init_reports_a_server_that_does_not_start() {
    let home = TestHome::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("none.toml");
    let server = strings(&["node", "-e", "process.exit(3)"]);
    let out = run(
        "policy init (exiting server)",
        &init_cmd(&home, &file, &server),
    );
    assert!(!out.success, "policy init succeeded on a server that exits");
    assert!(
        out.stderr.contains("cannot inspect the server") && out.stderr.contains("exited"),
        "{}",
        out.stderr
    );
    assert!(!file.exists(), "a policy was written anyway");
}
