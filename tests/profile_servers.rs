//! Every shipped profile with the real server it is for, through `mcp-guard run --profile P`
//! driven by the official SDK clients (tests/peers): the server works, and one thing outside the
//! profile is refused by the sandbox (not by the server's own checks), with a direct run as the
//! control where the refusal could otherwise be the server's doing.
//!
//! Every run gets a private HOME and XDG directories (`TestHome`), so nothing of the user's is
//! read or written. The peers are installed by `scripts/setup-peers` (`scripts/test` runs it).

mod profile_support;

use std::path::Path;
use std::process::{Command, Stdio};

use profile_support::*;
use serde_json::{json, Value};

/// A secret file in a directory no profile grants.
fn secret_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("mcp-guard-profile-outside-")
        .tempdir()
        .expect("tempdir");
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, "outside the profile\n").expect("write secret");
    (dir, path)
}

fn tool_names(doc: &Value) -> Vec<&str> {
    doc["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .map(|t| t["name"].as_str().or(t.as_str()).expect("tool name"))
        .collect()
}

/// server-everything's `gzip-file-as-resource` fetches a URL: the server's own way onto the
/// network. Checks that under `guard_args` the fetch of a local listener (not port 443) is
/// refused and never reaches it, while the same call made directly does.
fn everything_network_refused(what: &str, guard_args: &[&str], home: &TestHome) {
    let peers = Peers::get();
    let server = node_cmd(&peers.node_server("everything"), &[]);
    let listener = CountingListener::start();
    let calls = json!([{
        "name": "gzip-file-as-resource",
        "arguments": {"name": "fetched.gz", "data": listener.url(), "outputType": "resource"},
    }]);

    let direct = run_json(
        &format!("{what}: gzip a local URL (direct)"),
        &with_server(&peers.call_tools(&calls, &[]), &server),
    );
    assert!(!refused(call(&direct, 0)), "direct fetch failed: {direct}");
    let reached = listener.connections();
    assert!(reached >= 1, "the direct fetch never reached the listener");

    let doc = run_json(
        &format!("{what}: gzip a local URL (guarded)"),
        &with_server(
            &in_home(peers.call_tools(&calls, &[]), home),
            &guarded(guard_args, &server),
        ),
    );
    assert!(
        refused(call(&doc, 0)),
        "{what}: the fetch of {} was not refused: {doc}",
        listener.url()
    );
    assert_eq!(
        listener.connections(),
        reached,
        "{what}: the guarded server reached the listener"
    );
}

/// Runs the ts `everything` scenario (every MCP feature, both directions) under `guard_args`.
fn everything_scenario_works(what: &str, guard_args: &[&str], home: &TestHome) {
    let peers = Peers::get();
    let doc = run_json(
        what,
        &with_server(
            &in_home(peers.ts_driver("everything", &[]), home),
            &guarded(guard_args, &node_cmd(&peers.node_server("everything"), &[])),
        ),
    );
    assert_eq!(
        doc["initialize"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
    assert_eq!(doc["longRunning"]["progressNotifications"], 5);
    assert_eq!(doc["serverToClient"]["samplingRequests"], 2);
    assert!(tool_names(&doc).contains(&"gzip-file-as-resource"));
}

// -------------------------------------------------------------------------------------------------
// default, strict, node: server-everything

#[test]
fn profile_default_everything_works_network_refused() {
    // No --profile: what no policy means.
    let home = TestHome::new();
    everything_scenario_works("default: ts everything", &[], &home);
    everything_network_refused("default", &[], &home);
}

#[test]
fn profile_strict_everything_works_network_and_secrets_refused() {
    let home = TestHome::new();
    let peers = Peers::get();
    let server = node_cmd(&peers.node_server("everything"), &[]);
    // The basic scenario (no sampling or elicitation: strict denies both).
    let doc = run_json(
        "strict: ts basic",
        &with_server(
            &in_home(peers.ts_driver("basic", &[]), &home),
            &guarded(&["--profile", "strict"], &server),
        ),
    );
    assert_eq!(
        doc["initialize"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
    // A secret in the host's environment does not reach the server (its get-env tool).
    let secret = "AKIAPROFILETEST00000";
    let calls = json!([
        {"name": "echo", "arguments": {"message": "strict"}},
        {"name": "get-env"},
    ]);
    let mut driver = in_home(peers.call_tools(&calls, &[]), &home);
    driver.extend(strings(&["--env", &format!("AWS_ACCESS_KEY_ID={secret}")]));
    let doc = run_json(
        "strict: echo, get-env",
        &with_server(&driver, &guarded(&["--profile", "strict"], &server)),
    );
    assert_eq!(call(&doc, 0)["text"], "Echo: strict");
    let env = call(&doc, 1)["text"].as_str().expect("get-env text");
    assert!(
        !env.contains(secret) && !env.contains("AWS_ACCESS_KEY_ID"),
        "{env}"
    );
    everything_network_refused("strict", &["--profile", "strict"], &home);
}

#[test]
fn profile_node_everything_works_network_and_launch_refused() {
    let home = TestHome::new();
    everything_scenario_works("node: ts everything", &["--profile", "node"], &home);
    // HTTPS (443) is for the registry; any other port is refused.
    everything_network_refused("node", &["--profile", "node"], &home);
    // node launches node/npx/npm only.
    let out = Command::new(guard_bin())
        .args([
            "run",
            "--profile",
            "node",
            "--",
            "python3",
            "-c",
            "print(1)",
        ])
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run mcp-guard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not allow launching `python3`"),
        "{stderr}"
    );
}

// -------------------------------------------------------------------------------------------------
// everything

#[test]
fn profile_everything_works_network_refused() {
    let home = TestHome::new();
    everything_scenario_works(
        "everything: ts everything",
        &["--profile", "everything"],
        &home,
    );
    everything_network_refused("everything", &["--profile", "everything"], &home);
}

// -------------------------------------------------------------------------------------------------
// filesystem

/// server-filesystem with the one root `r` under `guard_args`: the ts scenario writes a file
/// there and reads it back. Returns the server command.
fn filesystem_scenario_works(
    what: &str,
    guard_args: &[&str],
    r: &str,
    home: &TestHome,
) -> Vec<String> {
    let peers = Peers::get();
    let server = node_cmd(&peers.node_server("filesystem"), &[r]);
    let doc = run_json(
        what,
        &with_server(
            &in_home(peers.ts_driver("filesystem", &["--dir", r]), home),
            &guarded(guard_args, &server),
        ),
    );
    assert_eq!(doc["read"], "first line\nsecond line ✓\n");
    assert_eq!(
        std::fs::read_to_string(Path::new(r).join("hello.txt")).expect("hello.txt"),
        "first line\nsecond line ✓\n"
    );
    server
}

#[test]
fn profile_filesystem_works_outside_root_refused() {
    let home = TestHome::new();
    let peers = Peers::get();
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().to_str().expect("utf-8 temp path");
    let guard = ["--profile", "filesystem"];
    let server = filesystem_scenario_works("filesystem: ts filesystem", &guard, r, &home);

    // The host announces another directory as an MCP root: the server replaces its allowed
    // directories with it (its own check now passes), but the sandbox grants only the argument.
    let (outside, secret) = secret_file();
    let o = outside.path().to_str().expect("utf-8 temp path");
    let calls = json!([
        {"name": "list_allowed_directories"},
        {"name": "read_text_file", "arguments": {"path": secret}},
        {"name": "write_file", "arguments": {"path": format!("{o}/planted.txt"), "content": "x"}},
    ]);
    let doc = run_json(
        "filesystem: roots outside the profile",
        &with_server(
            &in_home(peers.call_tools(&calls, &["--root", o]), &home),
            &guarded(&guard, &server),
        ),
    );
    assert_eq!(doc["roots"], 1, "the server did not ask for roots: {doc}");
    let allowed = call(&doc, 0)["text"].as_str().unwrap_or_default();
    assert!(
        allowed.contains(o),
        "the server did not take the root: {allowed}"
    );
    for i in [1, 2] {
        let c = call(&doc, i);
        assert!(
            refused(c) && c["text"].as_str().is_some_and(|t| t.contains("EACCES")),
            "not refused by the sandbox: {c}"
        );
    }
    assert!(!outside.path().join("planted.txt").exists());
}

/// `strict` validates the server's messages strictly: the reference servers' traffic must still
/// pass (here filesystem and memory, given only the directory each needs; everything above).
#[test]
fn profile_strict_filesystem_and_memory_work() {
    let home = TestHome::new();
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().to_str().expect("utf-8 temp path");
    let guard = ["--profile", "strict", "--allow-write", r];
    filesystem_scenario_works("strict: ts filesystem", &guard, r, &home);

    let file = root.path().join("memory.jsonl");
    let env = format!("MEMORY_FILE_PATH={}", file.display());
    let guard = ["--profile", "strict", "--allow-write", r, "--env", &env];
    memory_scenario_works("strict: ts memory", &guard, &file, &home);
}

/// server-memory under `guard_args`: the ts scenario stores a fact, which lands in `file`.
fn memory_scenario_works(what: &str, guard_args: &[&str], file: &Path, home: &TestHome) {
    let peers = Peers::get();
    let server = node_cmd(&peers.node_server("memory"), &[]);
    let doc = run_json(
        what,
        &with_server(
            &in_home(peers.ts_driver("memory", &[]), home),
            &guarded(guard_args, &server),
        ),
    );
    assert_eq!(doc["initialize"]["serverInfo"]["name"], "memory-server");
    let saved = std::fs::read_to_string(file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the memory file is not where the profile says",
            file.display()
        )
    });
    assert!(saved.contains("relays JSON-RPC"), "{saved}");
}

// -------------------------------------------------------------------------------------------------
// memory

#[test]
fn profile_memory_works_file_elsewhere_refused() {
    let home = TestHome::new();
    let peers = Peers::get();
    let server = node_cmd(&peers.node_server("memory"), &[]);
    let file = home.xdg_data().join("mcp-guard/memory/memory.jsonl");
    memory_scenario_works("memory: ts memory", &["--profile", "memory"], &file, &home);

    // Pointed at a file elsewhere, the server cannot write it.
    let (outside, _secret) = secret_file();
    let elsewhere = outside.path().join("memory.jsonl");
    let env = format!("MEMORY_FILE_PATH={}", elsewhere.display());
    let calls = json!([{
        "name": "create_entities",
        "arguments": {"entities": [{"name": "x", "entityType": "t", "observations": ["o"]}]},
    }]);
    let doc = run_json(
        "memory: a memory file elsewhere",
        &with_server(
            &in_home(peers.call_tools(&calls, &[]), &home),
            &guarded(&["--profile", "memory", "--env", &env], &server),
        ),
    );
    let c = call(&doc, 0);
    assert!(
        refused(c) && c["text"].as_str().is_some_and(|t| t.contains("EACCES")),
        "not refused by the sandbox: {c}"
    );
    assert!(std::fs::read_dir(outside.path())
        .expect("read outside")
        .flatten()
        .all(|e| e.file_name() == "secret.txt"));
}

// -------------------------------------------------------------------------------------------------
// python, time: mcp-server-time

/// Runs the py `time` scenario against `server` directly and under `guard_args` with the probe
/// loaded (a stand-in for a compromised dependency); the probe's file read, connect and exec
/// succeed directly and are refused under the guard.
fn time_works_probe_refused(what: &str, guard_args: &[&str], server: &[String]) {
    let home = TestHome::new();
    let peers = Peers::get();
    let (_outside, secret) = secret_file();
    let listener = CountingListener::start();
    let probe = probe_env(&secret, &listener);

    let mut direct = in_home(peers.py_driver("time", &[]), &home);
    direct.extend(probe.iter().cloned());
    let direct = run(
        &format!("{what}: py time (direct)"),
        &with_server(&direct, server),
    );
    direct.json(what);
    let report = probe_report(what, &direct.stderr);
    assert_eq!(
        report,
        json!({"read": "ok", "connect": "ok", "exec": "ok"}),
        "the control"
    );
    let reached = listener.connections();

    let mut guard: Vec<&str> = guard_args.to_vec();
    let probe_dir = support_dir().join("probe").display().to_string();
    guard.extend(["--allow-read", &probe_dir]);
    guard.extend(probe.iter().map(String::as_str));
    let out = run(
        &format!("{what}: py time (guarded)"),
        &with_server(
            &in_home(peers.py_driver("time", &[]), &home),
            &guarded(&guard, server),
        ),
    );
    let doc = out.json(what);
    assert_eq!(doc["initialize"]["serverInfo"]["name"], "mcp-time");
    assert_eq!(
        doc["convertTime"]["structuredContent"]["time_difference"],
        "-3.5h"
    );
    let report = probe_report(what, &out.stderr);
    for key in ["read", "connect", "exec"] {
        assert_ne!(
            report[key], "ok",
            "{what}: the probe's {key} was not refused: {report}"
        );
    }
    assert_eq!(
        listener.connections(),
        reached,
        "the guarded probe reached the listener"
    );
}

#[test]
fn profile_python_time_works_probe_refused() {
    let peers = Peers::get();
    let python = peers.venv_bin("python");
    time_works_probe_refused(
        "python",
        &["--profile", "python"],
        &path_cmd(
            &python,
            &["-m", "mcp_server_time", "--local-timezone", "Etc/UTC"],
        ),
    );
}

#[test]
fn profile_time_works_probe_refused() {
    let peers = Peers::get();
    time_works_probe_refused(
        "time",
        &["--profile", "time"],
        &path_cmd(
            &peers.venv_bin("mcp-server-time"),
            &["--local-timezone", "Etc/UTC"],
        ),
    );
}

// -------------------------------------------------------------------------------------------------
// git

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("git is installed");
    assert!(out.status.success(), "git {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn profile_git_works_hook_exec_refused() {
    let home = TestHome::new();
    let peers = Peers::get();
    let repo = tempfile::tempdir().expect("tempdir");
    let r = repo.path().to_str().expect("utf-8 temp path");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "initial commit"],
    );
    let server = path_cmd(&peers.venv_bin("mcp-server-git"), &["--repository", r]);
    let guard = ["--profile", "git"];

    let doc = run_json(
        "git: py git",
        &with_server(
            &in_home(peers.py_driver("git", &["--dir", r]), &home),
            &guarded(&guard, &server),
        ),
    );
    assert!(doc["status"]
        .as_str()
        .is_some_and(|s| s.contains("On branch main")));

    // The repository is writable: the server stages a file (git writes .git/index).
    std::fs::write(repo.path().join("notes.txt"), "guarded\n").expect("write notes");
    let calls = json!([{"name": "git_add", "arguments": {"repo_path": r, "files": ["notes.txt"]}}]);
    let doc = run_json(
        "git: add",
        &with_server(
            &in_home(peers.call_tools(&calls, &[]), &home),
            &guarded(&guard, &server),
        ),
    );
    assert!(!refused(call(&doc, 0)), "{doc}");
    assert!(git(repo.path(), &["diff", "--cached", "--name-only"]).contains("notes.txt"));

    // A repository whose config runs a program (core.fsmonitor) on `git status`: the program is
    // outside the exec allowlist. Directly, git_status runs it.
    let (outside, _secret) = secret_file();
    let ran = outside.path().join("hook-ran");
    let hook = outside.path().join("fsmonitor-hook");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch '{}'\n", ran.display())).expect("write hook");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    git(
        repo.path(),
        &["config", "core.fsmonitor", hook.to_str().expect("utf-8")],
    );
    let calls = json!([{"name": "git_status", "arguments": {"repo_path": r}}]);
    run_json(
        "git: status with a hook (direct)",
        &with_server(&peers.call_tools(&calls, &[]), &server),
    );
    assert!(ran.exists(), "the control: the hook did not run directly");
    std::fs::remove_file(&ran).expect("remove marker");
    let doc = run_json(
        "git: status with a hook (guarded)",
        &with_server(
            &in_home(peers.call_tools(&calls, &[]), &home),
            &guarded(&guard, &server),
        ),
    );
    assert!(
        !refused(call(&doc, 0)),
        "git_status itself still works: {doc}"
    );
    assert!(!ran.exists(), "the hook ran under the git profile");
}

/// Committing writes loose objects: a temporary file in .git/objects renamed into
/// .git/objects/xx/, a rename across directories. Landlock refuses that with EXDEV in any layer
/// that does not handle LANDLOCK_ACCESS_FS_REFER; the sandbox's network and scope layers grant
/// it everywhere so that only the filesystem layer decides (regression test).
#[test]
fn profile_git_commit() {
    let home = TestHome::new();
    let peers = Peers::get();
    let repo = tempfile::tempdir().expect("tempdir");
    let r = repo.path().to_str().expect("utf-8 temp path");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "initial commit"],
    );
    let server = path_cmd(&peers.venv_bin("mcp-server-git"), &["--repository", r]);
    std::fs::write(repo.path().join("notes.txt"), "guarded\n").expect("write notes");
    let calls = json!([
        {"name": "git_add", "arguments": {"repo_path": r, "files": ["notes.txt"]}},
        {"name": "git_commit", "arguments": {"repo_path": r, "message": "through the guard"}},
    ]);
    let mut driver = in_home(peers.call_tools(&calls, &[]), &home);
    for kv in [
        "GIT_AUTHOR_NAME=Profile Test",
        "GIT_AUTHOR_EMAIL=profile@example.invalid",
        "GIT_COMMITTER_NAME=Profile Test",
        "GIT_COMMITTER_EMAIL=profile@example.invalid",
    ] {
        driver.extend(strings(&["--env", kv]));
    }
    let doc = run_json(
        "git: add, commit",
        &with_server(&driver, &guarded(&["--profile", "git"], &server)),
    );
    assert!(!refused(call(&doc, 0)) && !refused(call(&doc, 1)), "{doc}");
    assert!(git(repo.path(), &["log", "--format=%s", "-1"]).contains("through the guard"));
}

/// Protected paths (SECURITY.md): under the git profile `.git/hooks` and `.git/config` are
/// read-only to the server, yet mcp-server-git's add, commit, branch and checkout work — git's
/// own writes in `.git` (objects, refs, index, HEAD, logs and their lock-file renames) pass.
#[test]
fn profile_git_branch_checkout_with_protected_paths() {
    let home = TestHome::new();
    let peers = Peers::get();
    let repo = tempfile::tempdir().expect("tempdir");
    let r = repo.path().to_str().expect("utf-8 temp path");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "initial commit"],
    );
    let config_before = std::fs::read(repo.path().join(".git/config")).expect("config");
    let server = path_cmd(&peers.venv_bin("mcp-server-git"), &["--repository", r]);
    std::fs::write(repo.path().join("notes.txt"), "guarded\n").expect("write notes");
    let calls = json!([
        {"name": "git_create_branch", "arguments": {"repo_path": r, "branch_name": "feature"}},
        {"name": "git_checkout", "arguments": {"repo_path": r, "branch_name": "feature"}},
        {"name": "git_add", "arguments": {"repo_path": r, "files": ["notes.txt"]}},
        {"name": "git_commit", "arguments": {"repo_path": r, "message": "on the branch"}},
        {"name": "git_checkout", "arguments": {"repo_path": r, "branch_name": "main"}},
    ]);
    let mut driver = in_home(peers.call_tools(&calls, &[]), &home);
    for kv in [
        "GIT_AUTHOR_NAME=Profile Test",
        "GIT_AUTHOR_EMAIL=profile@example.invalid",
        "GIT_COMMITTER_NAME=Profile Test",
        "GIT_COMMITTER_EMAIL=profile@example.invalid",
    ] {
        driver.extend(strings(&["--env", kv]));
    }
    let doc = run_json(
        "git: branch, checkout, add, commit, checkout",
        &with_server(&driver, &guarded(&["--profile", "git"], &server)),
    );
    for i in 0..5 {
        assert!(!refused(call(&doc, i)), "call {i}: {doc}");
    }
    assert!(git(repo.path(), &["log", "--format=%s", "-1", "feature"]).contains("on the branch"));
    assert!(git(repo.path(), &["rev-parse", "--abbrev-ref", "HEAD"]).contains("main"));
    // Back on main, the file committed on the branch left the work tree.
    assert!(!repo.path().join("notes.txt").exists());
    assert_eq!(
        std::fs::read(repo.path().join(".git/config")).expect("config"),
        config_before
    );
}
