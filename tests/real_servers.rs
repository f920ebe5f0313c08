//! The official MCP SDK clients against the reference servers, directly and through
//! `mcp-guard run`: both runs must print the same (normalised) JSON document.
//!
//! The peers live in tests/peers and are installed by `scripts/setup-peers` (which `scripts/test`
//! runs): the TypeScript SDK drives the node servers, the Python SDK drives the Python servers and
//! server-everything too, so both SDKs cross the relay.

mod profile_support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

// The peers, the SDK drivers and the bounded, orphan-checking runner are shared with the
// profile tests.
use profile_support::{guarded, node_cmd, path_cmd, run_json, Peers};

/// Driver options giving mcp-guard a private HOME and XDG directories, so that a profile's
/// `create` directories and caches land there and not in the user's home.
fn private_home_opts(home: &Path) -> Vec<String> {
    let h = home.display();
    [
        format!("HOME={h}"),
        format!("XDG_CACHE_HOME={h}/.cache"),
        format!("XDG_DATA_HOME={h}/.local/share"),
        format!("XDG_CONFIG_HOME={h}/.config"),
        format!("XDG_STATE_HOME={h}/.local/state"),
    ]
    .into_iter()
    .flat_map(|kv| ["--env".to_owned(), kv])
    .collect()
}

/// The first place where two JSON documents differ, as "path: left vs right".
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => first_difference(u, v, &p),
                    (u, v) => Some(format!("{p}: {u:?} vs {v:?}")),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            let common = x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]")));
            common.or_else(|| {
                (x.len() != y.len())
                    .then(|| format!("{path}: {} items vs {} items", x.len(), y.len()))
            })
        }
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 600;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Runs `driver` against `server` directly and through the guard (`mcp-guard run GUARD_FLAGS`);
/// asserts both documents are equal and returns the direct one. `direct_server`/`guarded_server`
/// differ only where the test needs separate state (temporary directories).
fn compare_direct_and_guarded(
    what: &str,
    direct_driver: &[String],
    direct_server: &[String],
    guarded_driver: &[String],
    guard_flags: &[&str],
    guarded_server: &[String],
) -> Value {
    let mut direct_cmd = direct_driver.to_vec();
    direct_cmd.push("--".to_owned());
    direct_cmd.extend(direct_server.iter().cloned());
    let direct = run_json(&format!("{what} (direct)"), &direct_cmd);

    let mut guarded_cmd = guarded_driver.to_vec();
    guarded_cmd.push("--".to_owned());
    guarded_cmd.extend(guarded(guard_flags, guarded_server));
    let through_guard = run_json(&format!("{what} (through mcp-guard)"), &guarded_cmd);

    if let Some(diff) = first_difference(&direct, &through_guard, "$") {
        panic!(
            "{what}: the guarded run differs from the direct run.\nfirst difference: {}\n\
             --- direct ---\n{}\n--- guarded ---\n{}",
            shorten(&diff),
            shorten(&direct.to_string()),
            shorten(&through_guard.to_string()),
        );
    }
    direct
}

/// Direct and under the default sandbox (no policy flags).
fn same_both_ways(what: &str, driver: &[String], server: &[String]) -> Value {
    compare_direct_and_guarded(what, driver, server, driver, &[], server)
}

fn tool_names(doc: &Value) -> Vec<&str> {
    doc["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .map(|t| t["name"].as_str().or(t.as_str()).expect("tool name"))
        .collect()
}

// -------------------------------------------------------------------------------------------------
// TypeScript SDK client

#[test]
fn ts_client_everything_server() {
    let peers = Peers::get();
    let doc = same_both_ways(
        "ts everything",
        &peers.ts_driver("everything", &[]),
        &node_cmd(&peers.node_server("everything"), &[]),
    );
    assert_eq!(
        doc["initialize"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
    assert_eq!(doc["longRunning"]["progressNotifications"], 5);
    assert_eq!(doc["largeEcho"]["bytes"], 1 << 20);
    assert_eq!(doc["serverToClient"]["rootsRequests"], 1);
    assert_eq!(doc["serverToClient"]["samplingRequests"], 2);
    assert_eq!(doc["cancellation"]["outcome"], "cancelled");
    assert_eq!(doc["cancellation"]["echoAfter"], "Echo: still here");
    assert_eq!(doc["concurrent"].as_array().map(Vec::len), Some(22));
    assert_eq!(doc["serverToClient"]["elicitationRequests"], 1);
    assert!(tool_names(&doc).contains(&"echo"));
}

#[test]
fn ts_client_filesystem_server() {
    let peers = Peers::get();
    let direct_dir = tempfile::tempdir().expect("tempdir");
    let guarded_dir = tempfile::tempdir().expect("tempdir");
    let d = direct_dir.path().to_str().expect("utf-8 temp path");
    let g = guarded_dir.path().to_str().expect("utf-8 temp path");
    let server = peers.node_server("filesystem");
    let home = tempfile::tempdir().expect("tempdir");
    let mut guarded_driver = peers.ts_driver("filesystem", &["--dir", g]);
    guarded_driver.extend(private_home_opts(home.path()));
    let doc = compare_direct_and_guarded(
        "ts filesystem",
        &peers.ts_driver("filesystem", &["--dir", d]),
        &node_cmd(&server, &[d]),
        &guarded_driver,
        // The filesystem profile grants the server's root arguments.
        &["--profile", "filesystem", "--allow-net", "off"],
        &node_cmd(&server, &[g]),
    );
    assert_eq!(doc["read"], "first line\nsecond line ✓\n");
    for dir in [direct_dir.path(), guarded_dir.path()] {
        let written = std::fs::read_to_string(dir.join("hello.txt")).expect("hello.txt written");
        assert_eq!(written, "first line\nsecond line ✓\n");
    }
}

#[test]
fn ts_client_memory_server() {
    let peers = Peers::get();
    let direct_dir = tempfile::tempdir().expect("tempdir");
    let guarded_dir = tempfile::tempdir().expect("tempdir");
    let env_for = |dir: &Path| format!("MEMORY_FILE_PATH={}", dir.join("memory.jsonl").display());
    let (d_env, g_env) = (env_for(direct_dir.path()), env_for(guarded_dir.path()));
    let server = node_cmd(&peers.node_server("memory"), &[]);
    // The sandbox scrubs the environment: MEMORY_FILE_PATH goes to the server through --env,
    // and its directory is allowed.
    let g_dir = guarded_dir.path().display().to_string();
    let doc = compare_direct_and_guarded(
        "ts memory",
        &peers.ts_driver("memory", &["--env", &d_env]),
        &server,
        &peers.ts_driver("memory", &[]),
        &["--env", &g_env, "--allow-write", &g_dir],
        &server,
    );
    assert_eq!(doc["initialize"]["serverInfo"]["name"], "memory-server");
    for dir in [direct_dir.path(), guarded_dir.path()] {
        let saved = std::fs::read_to_string(dir.join("memory.jsonl"))
            .expect("the memory server did not write MEMORY_FILE_PATH");
        assert!(saved.contains("relays JSON-RPC"), "memory.jsonl: {saved}");
    }
}

#[test]
fn ts_client_python_time_server() {
    let peers = Peers::get();
    let doc = same_both_ways(
        "ts basic vs mcp-server-time",
        &peers.ts_driver("basic", &[]),
        &path_cmd(
            &peers.venv_bin("mcp-server-time"),
            &["--local-timezone", "Etc/UTC"],
        ),
    );
    assert_eq!(doc["initialize"]["serverInfo"]["name"], "mcp-time");
    assert_eq!(tool_names(&doc), ["convert_time", "get_current_time"]);
}

// -------------------------------------------------------------------------------------------------
// Python SDK client

#[test]
fn py_client_time_server_modern_era() {
    let peers = Peers::get();
    let doc = same_both_ways(
        "py time (server/discover)",
        &peers.py_driver("time", &["--handshake", "auto"]),
        &path_cmd(
            &peers.venv_bin("mcp-server-time"),
            &["--local-timezone", "Etc/UTC"],
        ),
    );
    assert_eq!(doc["initialize"]["era"], "modern");
    assert_eq!(doc["initialize"]["protocolVersion"], "2026-07-28");
    assert_eq!(
        doc["currentTime"]["structuredContent"]["datetime"],
        "<datetime>"
    );
    assert_eq!(doc["unknownTool"]["code"], -32602);
}

#[test]
fn py_client_time_server_initialize_handshake() {
    let peers = Peers::get();
    let doc = same_both_ways(
        "py time (initialize)",
        &peers.py_driver("time", &["--handshake", "legacy"]),
        &path_cmd(
            &peers.venv_bin("mcp-server-time"),
            &["--local-timezone", "Etc/UTC"],
        ),
    );
    assert_eq!(doc["initialize"]["era"], "legacy");
    assert_eq!(
        doc["convertTime"]["structuredContent"]["time_difference"],
        "-3.5h"
    );
}

#[test]
fn py_client_everything_server_falls_back_to_initialize() {
    let peers = Peers::get();
    let doc = same_both_ways(
        "py basic vs server-everything",
        &peers.py_driver("basic", &[]),
        &node_cmd(&peers.node_server("everything"), &[]),
    );
    // server-everything (TypeScript SDK 1.x) does not know server/discover: the SDK's error
    // answer must reach the client so that it falls back to the initialize handshake.
    assert_eq!(doc["initialize"]["era"], "legacy");
    assert_eq!(
        doc["initialize"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
    assert!(tool_names(&doc).contains(&"trigger-long-running-operation"));
}

#[test]
fn py_client_git_server() {
    let peers = Peers::get();
    let repo = tempfile::tempdir().expect("tempdir");
    let r = repo.path().to_str().expect("utf-8 temp path");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args([
                "-C",
                r,
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
            ])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("git is installed");
        assert!(status.success(), "git {args:?} failed");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "initial commit"]);
    let home = tempfile::tempdir().expect("tempdir");
    let mut guarded_driver = peers.py_driver("git", &["--dir", r]);
    guarded_driver.extend(private_home_opts(home.path()));
    let server = path_cmd(&peers.venv_bin("mcp-server-git"), &["--repository", r]);
    let doc = compare_direct_and_guarded(
        "py git",
        &peers.py_driver("git", &["--dir", r]),
        &server,
        &guarded_driver,
        // git in the exec allowlist, the repository writable.
        &["--profile", "git", "--allow-net", "off"],
        &server,
    );
    assert_eq!(doc["initialize"]["serverInfo"]["name"], "mcp-git");
    assert!(doc["status"]
        .as_str()
        .expect("status")
        .contains("On branch main"));
}
