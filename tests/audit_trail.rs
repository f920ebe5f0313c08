//! The audit log of `mcp-guard run`: one chained event per decision, verified by
//! `mcp-guard audit verify`, which pinpoints any edit, deletion or reordering.

mod relay_common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use relay_common::{echo_bin, Guard};
use serde_json::{json, Value};

/// A short session through the echo server, logged to `log`.
fn session(log: &Path, extra: &[&str]) -> String {
    let log_arg = log.display().to_string();
    let mut args = vec!["--audit-log", log_arg.as_str()];
    args.extend_from_slice(extra);
    let mut guard = Guard::start(&args, &echo_bin(), &[]);
    guard.initialize("2025-06-18");
    guard.send("not json");
    guard.recv().assert_error("null", -32700);
    guard.call_and_recv("2", "echo", json!({"text": "hi", "api_key": "sk-live-123"}));
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    guard.stderr_text()
}

fn events(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn verify(log: &Path) -> (i32, String) {
    let out = Command::new(support::guard_bin())
        .args(["audit", "verify"])
        .arg(log)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn audit_log_records_every_decision() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("state/audit.jsonl");
    session(&log, &[]);
    let events = events(&log);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"session_start"), "{kinds:?}");
    assert_eq!(&kinds[kinds.len() - 2..], ["server_exit", "session_end"]);
    assert!(kinds.contains(&"invalid"));
    let start = &events[0];
    assert!(start["policy_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(start["guard_version"], env!("CARGO_PKG_VERSION"));
    let session = start["session"].as_str().unwrap();
    assert!(events.iter().all(|e| e["session"] == session));
    let call = events
        .iter()
        .find(|e| e["method"] == "tools/call" && e["kind"] == "request")
        .unwrap();
    assert_eq!(call["tool"], "echo");
    assert_eq!(call["decision"], "forward");
    // Metadata only by default: the size, not the arguments (`[audit] excerpts` adds them).
    assert!(call["bytes"].as_u64().unwrap() > 30, "{call}");
    assert!(call.get("arguments").is_none(), "{call}");
    let answer = events
        .iter()
        .find(|e| e["method"] == "tools/call" && e["kind"] == "result")
        .unwrap();
    assert!(answer["latency_ms"].as_f64().is_some(), "{answer}");
    assert_eq!(answer["tool"], "echo");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("sk-live-123"));
}

#[test]
fn audit_verify_catches_edits_deletions_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    session(&log, &[]);
    session(&log, &[]); // a second session chains on
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("intact") && out.contains("2 sessions"),
        "{out}"
    );

    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let write = |lines: &[String]| {
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
        verify(&bad)
    };
    // Edit a decision. Which line holds the first one depends on whether the sandbox report
    // reached the guard before the session-start event (else it is an event of its own).
    let decision = lines
        .iter()
        .position(|l| l.contains("\"forward\""))
        .expect("a forwarded message");
    let mut edited = lines.clone();
    edited[decision] = edited[decision].replace("\"forward\"", "\"refuse\"");
    let (code, out) = write(&edited);
    assert_eq!(code, 1, "{out}");
    // The next line's `prev` no longer matches (lines are numbered from 1).
    assert!(out.contains(&format!("line {}", decision + 2)), "{out}");

    let mut deleted = lines.clone();
    deleted.remove(4);
    let (code, out) = write(&deleted);
    assert_eq!((code, out.contains("line 5")), (1, true), "{out}");

    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let (code, out) = write(&swapped);
    assert_eq!((code, out.contains("line 3")), (1, true), "{out}");

    let (code, out) = write(&lines[1..]);
    assert_eq!((code, out.contains("line 1")), (1, true), "{out}");
}

#[test]
fn audit_metrics_file_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let metrics = dir.path().join("metrics.prom");
    let metrics_arg = metrics.display().to_string();
    let stderr = session(&log, &["--metrics-file", &metrics_arg, "-v"]);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("# TYPE mcp_guard_invalid_total counter"),
        "{text}"
    );
    assert!(text.contains("mcp_guard_invalid_total{session="), "{text}");
    assert!(stderr.contains("audit summary"), "{stderr}");
    assert!(stderr.contains("invalid messages"), "{stderr}");
}

#[test]
fn audit_to_stderr_and_no_audit() {
    let dir = tempfile::tempdir().unwrap();
    let mut guard = Guard::start(&["--audit-log", "-"], &echo_bin(), &[]);
    guard.initialize("2025-06-18");
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    assert!(guard.stderr_text().contains("\"event\":\"session_start\""));

    // --no-audit writes nothing, even where the default log would go.
    let state = dir.path().join("xdg");
    let mut command = Command::new(support::guard_bin());
    let out = command
        .env("XDG_STATE_HOME", &state)
        .args(["run", "--allow-unsandboxed", "--no-audit", "--"])
        .arg(echo_bin())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!state.join("mcp-guard/audit.jsonl").exists());
    // Without flags the log goes under $XDG_STATE_HOME.
    let out = Command::new(support::guard_bin())
        .env("XDG_STATE_HOME", &state)
        .args(["run", "--allow-unsandboxed", "--"])
        .arg(echo_bin())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(state.join("mcp-guard/audit.jsonl").exists());
}

/// The log is bounded: a long session rotates it, `keep` rotated files stay, each verifies on
/// its own and names the last line of the one before it. Without the bound (the control,
/// `max_size = "unlimited"`) the same traffic makes one file that large.
#[test]
fn audit_log_rotates_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let long_session = |log: &Path, max_size: &str| {
        std::fs::write(
            &policy,
            format!(
                "version = 1\n[audit]\nmax_size = \"{max_size}\"\nkeep = 2\nforwards = \"every\"\n"
            ),
        )
        .unwrap();
        let log_arg = log.display().to_string();
        let policy_arg = policy.display().to_string();
        let mut guard = Guard::start(
            &["--audit-log", &log_arg, "--policy", &policy_arg],
            &echo_bin(),
            &[],
        );
        guard.initialize("2025-06-18");
        for n in 0..300 {
            let id = (n + 2).to_string();
            guard.call_and_recv(&id, "echo", json!({"text": "x".repeat(200)}));
        }
        guard.close_stdin();
        assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    };

    let unbounded = dir.path().join("control/audit.jsonl");
    long_session(&unbounded, "unlimited");
    let whole = std::fs::metadata(&unbounded).unwrap().len();
    assert!(whole > 64 * 1024, "the control wrote {whole} bytes");
    assert!(!dir.path().join("control/audit.jsonl.1").exists());

    let log = dir.path().join("bounded/audit.jsonl");
    long_session(&log, "16KiB");
    let rotated = |n: u32| dir.path().join(format!("bounded/audit.jsonl.{n}"));
    assert!(rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "keep = 2");
    for file in [rotated(2), rotated(1), log.clone()] {
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size <= 16 * 1024 + 8 * 1024, "{file:?}: {size} bytes");
        let (code, out) = verify(&file);
        assert_eq!(code, 0, "{file:?}: {out}");
    }
    for (older, newer) in [(rotated(2), rotated(1)), (rotated(1), log.clone())] {
        let text = std::fs::read_to_string(&older).unwrap();
        let last = text.lines().last().unwrap();
        let last_hash = hex_sha256(last.as_bytes());
        let first = &events(&newer)[0];
        assert_eq!(first["event"], "rotated", "{first}");
        assert_eq!(first["continues"], last_hash.as_str(), "{newer:?}");
    }
    assert_eq!(events(&log).last().unwrap()["event"], "session_end");
}

fn hex_sha256(bytes: &[u8]) -> String {
    mcp_guard::audit::chain::line_hash(bytes)
}

/// A file that never was an audit log is not "TAMPERED": it is said so, with its own status.
#[test]
fn audit_verify_tells_a_file_that_is_not_an_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("notes.txt", "my notes\n"),
        ("other.jsonl", "{\"level\":\"info\",\"msg\":\"hi\"}\n"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (code, out) = verify(&file);
        assert_eq!(code, 3, "{name}: {out}");
        assert!(
            out.contains("not an mcp-guard audit log") && !out.contains("TAMPERED"),
            "{name}: {out}"
        );
    }
}

#[test]
fn audit_verify_json_says_intact_or_where_it_broke() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    session(&log, &[]);
    let json_verify = |file: &Path| {
        let out = Command::new(support::guard_bin())
            .args(["audit", "verify", "--json"])
            .arg(file)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code().unwrap(), report)
    };
    let (code, report) = json_verify(&log);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"], "intact", "{report}");
    assert_eq!(report["sessions"], 1, "{report}");
    assert!(report["events"].as_u64().unwrap() > 3, "{report}");

    let mut lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.remove(2);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let (code, report) = json_verify(&bad);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["status"], "tampered", "{report}");
    assert_eq!(report["line"], 3, "{report}");

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    let (code, report) = json_verify(&notes);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["status"], "not_an_audit_log", "{report}");
}

/// A guard logging to `log` under `policy` (TOML after `version = 1`).
fn start_with_policy(dir: &Path, log: &Path, policy: &str) -> Guard {
    let file = dir.join("policy.toml");
    std::fs::write(&file, format!("version = 1\n{policy}")).unwrap();
    let (log_arg, policy_arg) = (log.display().to_string(), file.display().to_string());
    let mut guard = Guard::start(
        &["--audit-log", &log_arg, "--policy", &policy_arg],
        &echo_bin(),
        &[],
    );
    guard.initialize("2025-06-18");
    guard
}

/// With `[audit] excerpts`, a call's line carries its arguments: sensitive keys and secrets
/// redacted, and a megabyte argument cut to the excerpt (the secret near its start hidden,
/// the rest never reaching the log).
#[test]
fn audit_excerpts_are_cut_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut guard = start_with_policy(dir.path(), &log, "[audit]\nexcerpts = \"256B\"\n");
    let long = format!("key AKIAABCDEFGHIJKLMNOP {}TAIL", "x".repeat(1 << 20));
    guard.call_and_recv("2", "echo", json!({"api_key": "sk-live-123", "text": long}));
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    let call = events(&log)
        .into_iter()
        .find(|e| e["method"] == "tools/call" && e["kind"] == "request")
        .unwrap();
    assert_eq!(call["arguments"]["api_key"], "[REDACTED:key]", "{call}");
    let text = call["arguments"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("key [REDACTED:aws_access_key] xxx"),
        "{text}"
    );
    assert!(text.contains("…[truncated"), "{text}");
    let whole = std::fs::read_to_string(&log).unwrap();
    assert!(whole.len() < 16 * 1024, "{} bytes", whole.len());
    assert!(!whole.contains("sk-live-123") && !whole.contains("AKIA") && !whole.contains("TAIL"));
    assert_eq!(verify(&log).0, 0);
}

/// The `echo` messages of `kind` counted in the `forwards` lines among `events`.
fn counted(events: &[Value], kind: &str) -> u64 {
    events
        .iter()
        .filter(|e| e["event"] == "forwards")
        .flat_map(|e| e["counts"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["tool"] == "echo" && c["kind"] == kind)
        .map(|c| c["messages"].as_u64().unwrap())
        .sum()
}

/// `forwards = "count"`: forwarded messages become counts per method and tool, in `forwards`
/// lines; a refusal keeps its own line, after the counts of what came before it; the chain
/// verifies.
#[test]
fn audit_forwards_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut guard = start_with_policy(dir.path(), &log, "[audit]\nforwards = \"count\"\n");
    for n in 0..5 {
        guard.call_and_recv(&(n + 2).to_string(), "echo", json!({"text": "hi"}));
    }
    guard
        .call_and_recv("9", "not-listed", json!({}))
        .assert_error("9", -32602);
    guard.call_and_recv("10", "echo", json!({"text": "hi"}));
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    let events = events(&log);
    let messages: Vec<&Value> = events.iter().filter(|e| e["event"] == "message").collect();
    assert_eq!(messages.len(), 1, "only the refusal: {messages:?}");
    assert_eq!(messages[0]["decision"], "refuse");
    let refusal = events.iter().position(|e| e["event"] == "message").unwrap();
    let before = counted(&events[..refusal], "request");
    let after = counted(&events[refusal..], "result");
    assert_eq!((before, after), (5, 1), "{events:?}");
    assert_eq!(verify(&log).0, 0);
}

/// The default, `forwards = "auto"`: a line for each forwarded message of an ordinary session,
/// counts for a flood beyond 200 a second, and the counts add up to what was forwarded.
#[test]
fn audit_forwards_auto_counts_only_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut guard = start_with_policy(dir.path(), &log, "");
    // 1 500 calls sent at once: answered in well under the seconds it would take to stay
    // below 200 forwards a second.
    let mut batch = String::new();
    for n in 0..1500 {
        batch.push_str(&format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hi"}}}}}}"#,
            n + 2
        ));
        batch.push('\n');
    }
    guard.send_bytes(batch.as_bytes());
    for _ in 0..1500 {
        guard.recv();
    }
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(10)), 0);
    let events = events(&log);
    let lines = events
        .iter()
        .filter(|e| e["event"] == "message" && e["tool"] == "echo" && e["kind"] == "request")
        .count() as u64;
    let counted = counted(&events, "request");
    assert_eq!(lines + counted, 1500, "{lines} lines, {counted} counted");
    // The 200 lines a second are shared by both directions (and `initialize`).
    assert!(
        lines >= 50 && counted >= 200,
        "{lines} lines, {counted} counted"
    );
    assert_eq!(verify(&log).0, 0);
}
