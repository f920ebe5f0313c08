//! The official MCP SDK clients against the reference servers, directly and through
//! `mcp-guard run`: both runs must print the same (normalised) JSON document.
//!
//! The peers live in tests/peers and are installed by `scripts/setup-peers` (which `scripts/test`
//! runs): the TypeScript SDK drives the node servers, the Python SDK drives the Python servers and
//! server-everything too, so both SDKs cross the relay.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one driver run may take before it is killed (the drivers give up by themselves
/// after `DRIVER_SELF_TIMEOUT_MS`, reporting what they were doing).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const DRIVER_SELF_TIMEOUT_MS: &str = "90000";
/// After a driver exits, how long the processes it started get to disappear.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Paths of the installed peers; panics (the test fails) when they are not installed.
struct Peers {
    dir: PathBuf,
}

impl Peers {
    fn get() -> Peers {
        let dir = peers_dir();
        let peers = Peers { dir };
        let needed = [
            peers.node_server("everything"),
            peers.node_server("filesystem"),
            peers.node_server("memory"),
            peers
                .dir
                .join("node_modules/@modelcontextprotocol/sdk/package.json"),
            peers.venv_bin("python"),
            peers.venv_bin("mcp-server-time"),
            peers.venv_bin("mcp-server-git"),
        ];
        let missing: Vec<String> = needed
            .iter()
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "the real MCP peers are not installed (missing: {}).\n\
             Run `scripts/setup-peers` (or run the tests with `scripts/test`, which does it first).",
            missing.join(", ")
        );
        peers.assert_up_to_date(
            "node_modules/.mcp-guard-setup-stamp",
            &["package.json", "package-lock.json"],
        );
        peers.assert_up_to_date(".venv/.mcp-guard-setup-stamp", &["requirements.txt"]);
        peers
    }

    /// scripts/setup-peers writes `stamp` starting with the SHA-256 of `inputs` concatenated.
    fn assert_up_to_date(&self, stamp: &str, inputs: &[&str]) {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for input in inputs {
            let path = self.dir.join(input);
            hasher
                .update(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
        let want: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let have = std::fs::read_to_string(self.dir.join(stamp)).unwrap_or_default();
        assert!(
            have.starts_with(&format!("{want}-")),
            "the real MCP peers are out of date (tests/peers/{} changed since they were \
             installed).\nRun `scripts/setup-peers` (or run the tests with `scripts/test`).",
            inputs.join(", tests/peers/")
        );
    }

    fn node_server(&self, name: &str) -> PathBuf {
        self.dir.join(format!(
            "node_modules/@modelcontextprotocol/server-{name}/dist/index.js"
        ))
    }

    fn venv_bin(&self, name: &str) -> PathBuf {
        self.dir.join(".venv/bin").join(name)
    }

    /// `node ts_client.mjs SCENARIO OPTS... --`
    fn ts_driver(&self, scenario: &str, opts: &[&str]) -> Vec<String> {
        let mut cmd = vec![
            "node".to_owned(),
            self.dir.join("ts_client.mjs").display().to_string(),
            scenario.to_owned(),
        ];
        cmd.extend(opts.iter().map(|s| s.to_string()));
        cmd
    }

    /// `.venv/bin/python py_client.py SCENARIO OPTS... --`
    fn py_driver(&self, scenario: &str, opts: &[&str]) -> Vec<String> {
        let mut cmd = vec![
            self.venv_bin("python").display().to_string(),
            self.dir.join("py_client.py").display().to_string(),
            scenario.to_owned(),
        ];
        cmd.extend(opts.iter().map(|s| s.to_string()));
        cmd
    }
}

fn node_cmd(script: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = vec!["node".to_owned(), script.display().to_string()];
    cmd.extend(args.iter().map(|s| s.to_string()));
    cmd
}

fn path_cmd(program: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = vec![program.display().to_string()];
    cmd.extend(args.iter().map(|s| s.to_string()));
    cmd
}

/// `mcp-guard run FLAGS... -- SERVER...`: the sandbox is on (the default profile unless
/// `flags` pick another or add grants).
fn guarded(flags: &[&str], server: &[String]) -> Vec<String> {
    let mut cmd = vec![support::guard_bin().display().to_string(), "run".to_owned()];
    cmd.extend(flags.iter().map(|s| s.to_string()));
    cmd.push("--".to_owned());
    cmd.extend(server.iter().cloned());
    cmd
}

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

// -------------------------------------------------------------------------------------------------
// Running a driver with a deadline

/// Environment variable set for every driver run (the drivers pass MCP_GUARD_* variables on to
/// what they launch): it finds the processes of a run even after they left its process group, as
/// the Python SDK's servers do (it starts them in a session of their own).
const MARKER_VAR: &str = "MCP_GUARD_TEST_MARKER";

fn unique_marker() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "real_servers-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live processes (not zombies) of a run: in process group `pgid`, or carrying `marker` in their
/// environment. As "pid (comm) cmdline" lines.
fn live_processes_of_run(pgid: u32, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let marker_entry = format!("{MARKER_VAR}={marker}");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" {
            continue;
        }
        let in_group = fields[2] == pgid.to_string();
        let marked = || {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|kv| kv == marker_entry.as_bytes())
            })
        };
        if in_group || marked() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            found.push(format!("{pid} ({comm}) {}", cmdline.trim_end()));
        }
    }
    found
}

fn kill_run(pgid: u32, marker: &str) {
    kill_group(pgid);
    for line in live_processes_of_run(pgid, marker) {
        if let Some(pid) = line
            .split(' ')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        {
            // SAFETY: plain kill(2) of a process that carries this run's marker.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn kill_group(pgid: u32) {
    // SAFETY: plain kill(2) on a process group we created.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

struct Outcome {
    stdout: String,
    stderr: String,
}

/// Runs `cmd` in its own process group with a deadline; fails the test on a non-zero exit, a
/// timeout, or a process of the group (a server, a guard) still alive after the driver exited.
fn run_driver(what: &str, cmd: &[String]) -> Outcome {
    let start = Instant::now();
    let marker = unique_marker();
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .current_dir(peers_dir())
            .env("PEER_DRIVER_TIMEOUT_MS", DRIVER_SELF_TIMEOUT_MS)
            .env(MARKER_VAR, &marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd[0]))
    };
    let pgid = child.id();
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });

    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if start.elapsed() > RUN_TIMEOUT {
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };

    // Whatever the driver started must be gone soon after it exits (a guard that dies without
    // stopping its server leaves the server running).
    let mut leftovers = Vec::new();
    if status.is_some() {
        let deadline = Instant::now() + LEFTOVER_GRACE;
        loop {
            leftovers = live_processes_of_run(pgid, &marker);
            if leftovers.is_empty() || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    kill_run(pgid, &marker);
    if status.is_none() {
        let _ = child.wait();
    }
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    let elapsed = start.elapsed();
    eprintln!("{what}: finished in {elapsed:.2?}");

    let Some(status) = status else {
        panic!(
            "{what}: did not finish within {RUN_TIMEOUT:?}; killed.\ncommand: {cmd:?}\n\
             --- stderr ---\n{stderr}\n--- stdout ---\n{stdout}"
        );
    };
    assert!(
        status.success(),
        "{what}: driver failed ({status}).\ncommand: {cmd:?}\n--- stderr ---\n{stderr}\n\
         --- stdout ---\n{stdout}"
    );
    assert!(
        leftovers.is_empty(),
        "{what}: processes still running {LEFTOVER_GRACE:?} after the client exited \
         (the server outlived its host):\n{}\ncommand: {cmd:?}\n--- stderr ---\n{stderr}",
        leftovers.join("\n")
    );
    Outcome { stdout, stderr }
}

fn run_json(what: &str, cmd: &[String]) -> Value {
    let outcome = run_driver(what, cmd);
    serde_json::from_str(&outcome.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: the driver did not print one JSON document ({e}).\n--- stdout ---\n{}\n\
             --- stderr ---\n{}",
            outcome.stdout, outcome.stderr
        )
    })
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
