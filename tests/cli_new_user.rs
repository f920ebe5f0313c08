//! What a new user hit first (issue 19): output piped into `head`, `~` in path flags, launch
//! failures, contradictory flags, colours and warnings that cannot matter.

mod support;

use std::process::{Command, Output, Stdio};

/// Run the guard with `args` and nothing on stdin.
fn guard(args: &[&str]) -> Output {
    Command::new(support::guard_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the guard")
}

/// Run the guard with its stdout already closed at the other end, as `… | head -1` leaves it
/// once head has read its line: every write fails with EPIPE, deterministically.
fn with_closed_stdout(args: &[&str]) -> Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe fills both descriptors, which are then owned here and nowhere else.
    let writer = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0, "pipe");
        drop(OwnedFd::from_raw_fd(fds[0]));
        OwnedFd::from_raw_fd(fds[1])
    };
    Command::new(support::guard_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run mcp-guard")
}

fn assert_quiet_on_closed_stdout(args: &[&str], expected: i32) {
    let out = with_closed_stdout(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{args:?} complained about the closed pipe: {stderr}"
    );
    assert_eq!(out.status.code(), Some(expected), "{args:?}: {stderr}");
}

#[test]
fn closed_stdout_is_not_a_panic_in_policy_commands() {
    let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/node.toml");
    assert_quiet_on_closed_stdout(&["policy", "list"], 0);
    assert_quiet_on_closed_stdout(&["policy", "show", "--profile", "node"], 0);
    assert_quiet_on_closed_stdout(&["policy", "check", policy.to_str().unwrap()], 0);
    assert_quiet_on_closed_stdout(&["check"], quiet_check_status());
}

#[test]
fn closed_stdout_is_not_a_panic_in_scan() {
    let echo = support::testkit_bin("echo-server");
    assert_quiet_on_closed_stdout(
        &["scan", "--fail-on", "never", "--", echo.to_str().unwrap()],
        0,
    );
}

/// `check` exits 1 on a kernel missing a layer: whatever it says with stdout open.
fn quiet_check_status() -> i32 {
    Command::new(support::guard_bin())
        .arg("check")
        .stdout(Stdio::null())
        .status()
        .expect("run check")
        .code()
        .expect("an exit code")
}

/// `"args": ["run", "--allow-write", "~/notes", …]` in a host config: no shell expands the `~`.
#[test]
fn tilde_in_a_path_flag_is_the_users_home() {
    let home = tempfile::tempdir().expect("home");
    let cwd = tempfile::tempdir().expect("cwd");
    let notes = home.path().join("notes");
    std::fs::create_dir(&notes).expect("mkdir notes");
    let out = Command::new(support::guard_bin())
        .args(["run", "--no-audit", "--allow-write", "~/notes", "--"])
        .args(["sh", "-c", "echo kept > \"$0/note.txt\""])
        .arg(&notes)
        .env("HOME", home.path())
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .output()
        .expect("run the guard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !cwd.path().join("~").exists(),
        "a directory named ~ appeared under the CWD: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(notes.join("note.txt"))
            .ok()
            .as_deref(),
        Some("kept\n"),
        "the server could not write to ~/notes (exit {:?}): {stderr}",
        out.status
    );
}

#[test]
fn tilde_in_a_file_flag_is_the_users_home() {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join("p.toml"), "version = 1\n").expect("write policy");
    let out = Command::new(support::guard_bin())
        .args(["policy", "check", "~/p.toml"])
        .env("HOME", home.path())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run the guard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// `mcp-guard run --no-audit ARGS` started as a host would (its `initialize` already
/// written); the guard's output.
fn launch_as_host(args: &[&str], cwd: &std::path::Path) -> Output {
    use std::io::Write;
    let mut child = Command::new(support::guard_bin())
        .args(["run", "--no-audit"])
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the guard");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{INITIALIZE}").expect("write initialize");
    // Held open, as a host does while it waits for the answer.
    let out = child.wait_with_output().expect("wait");
    drop(stdin);
    out
}

/// The host's answer to its `initialize`: the error message in it.
fn initialize_error(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reply: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no JSON-RPC answer to initialize: stdout {stdout:?}, stderr {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(reply["id"], 0, "{reply}");
    reply["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {reply}"))
        .to_owned()
}

#[test]
fn a_command_not_found_exits_127_and_answers_initialize() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = launch_as_host(&["--", "mcpg-no-such-server-xyz"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(initialize_error(&out).contains("mcpg-no-such-server-xyz"));
}

#[test]
fn a_file_that_is_not_executable_is_not_called_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("server.sh"), "#!/bin/sh\nexit 0\n").expect("write");
    let out = launch_as_host(&["--", "./server.sh"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert!(
        stderr.contains("not executable") && !stderr.contains("not found"),
        "{stderr}"
    );
    assert!(initialize_error(&out).contains("not executable"));
}

#[test]
fn an_error_cause_is_said_once() {
    let out = Command::new(support::guard_bin())
        .args([
            "run",
            "--policy",
            "/nonexistent/mcpg-policy.toml",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the guard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

#[test]
fn run_help_documents_the_launch_failure_statuses() {
    let out = guard(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("127 when the"), "{help}");
    assert!(help.contains("126 when"), "{help}");
}

/// `off,443` would print a policy (`policy show`) that `policy check` refuses.
#[test]
fn contradictory_allow_net_values_are_refused_with_what_to_write() {
    for value in ["off,443", "open,bind:8080", "off,open"] {
        let out = guard(&["policy", "show", "--allow-net", value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("write"), "{value}: {stderr}");
    }
    let out = guard(&["policy", "show", "--allow-net", "443,bind:8080"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The host config in `mcp-guard --help` names a profile that exists and a command the policy
/// launches (`policy show` runs the same launch check as `run`).
#[test]
fn the_help_example_is_accepted() {
    let out = guard(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let start = help.find("\"args\": [").expect("a host config example") + "\"args\": ".len();
    let end = start + help[start..].find(']').expect("the end of args") + 1;
    let args: Vec<String> = serde_json::from_str(&help[start..end]).expect("JSON args");
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    let show: Vec<&str> = ["policy", "show"]
        .into_iter()
        .chain(args[1..].iter().map(String::as_str))
        .collect();
    let out = guard(&show);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node server whose module the default policy does not let it read: the host's
/// `initialize` is answered with what to do, promptly.
#[test]
fn a_server_refused_at_startup_is_reported_with_the_fix() {
    let server_dir = tempfile::tempdir().expect("server dir");
    let elsewhere = tempfile::tempdir().expect("module dir");
    let module = elsewhere.path().join("helper.js");
    std::fs::write(&module, "module.exports = 1;\n").expect("write module");
    std::fs::write(
        server_dir.path().join("server.js"),
        format!("require({:?});\n", module.display().to_string()),
    )
    .expect("write server");
    let started = std::time::Instant::now();
    let out = launch_as_host(&["--", "node", "server.js"], server_dir.path());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let message = initialize_error(&out);
    assert!(
        message.contains("before answering initialize") && message.contains("--allow-read"),
        "{message}"
    );
    assert!(stderr.contains("--allow-read"), "{stderr}");
}

/// An ordinary user has no capabilities to drop: nothing to warn about at every start. `check`
/// still says how capabilities stand.
#[test]
fn an_ordinary_user_is_not_warned_about_the_bounding_set_at_every_start() {
    for identity in support::users::identities() {
        let state = identity.scratch_dir();
        let as_user = |args: &[&str]| {
            let mut command = Command::new(identity.binary(&support::guard_bin()));
            command.args(args).stdin(Stdio::null());
            identity.apply(&mut command);
            support::private_state(&mut command, state.path());
            command.output().expect("run the guard")
        };
        let out = as_user(&["run", "--no-audit", "--", "true"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", identity.label());
        assert!(
            !stderr.contains("Capabilities only partly enforced"),
            "{}: {stderr}",
            identity.label()
        );
        let check = as_user(&["check"]);
        let text = String::from_utf8_lossy(&check.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("yes capabilities") || l.contains("NO  capabilities"))
            .unwrap_or_else(|| panic!("{}: no capabilities layer in {text}", identity.label()));
        if matches!(identity, support::users::Identity::Ordinary { .. }) {
            assert!(line.contains("bounding set"), "{line}");
        }
    }
}

/// Diagnostics on stderr: `--color always|never`, and `auto` (the default) colours only a
/// terminal, which a pipe is not.
#[test]
fn color_flag_decides_escapes_in_diagnostics() {
    let warn = |color: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        // A grant on a path that does not exist: one warning on stderr.
        let missing = dir.path().join("missing");
        let out = guard(&[
            "--color",
            color,
            "run",
            "--no-audit",
            "--allow-read",
            missing.to_str().unwrap(),
            "--",
            "true",
        ]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let always = warn("always");
    assert!(always.contains("\u{1b}["), "{always:?}");
    for color in ["never", "auto"] {
        let text = warn(color);
        assert!(
            text.contains("WARN") && !text.contains('\u{1b}'),
            "{color}: {text:?}"
        );
    }
}

/// The sandbox refuses to execute the server itself (a policy `deny` covers it): one message,
/// with the way out, and the host's `initialize` answered.
#[test]
fn a_server_the_sandbox_cannot_execute_is_said_once_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a sleep binary");
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        format!("version = 1\n[filesystem]\ndeny = [\"{sleep}\"]\n"),
    )
    .expect("write policy");
    let out = launch_as_host(
        &["--policy", policy.to_str().unwrap(), "--", sleep, "5"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert_eq!(stderr.matches("cannot execute").count(), 1, "{stderr}");
    assert!(stderr.contains("--allow-exec"), "{stderr}");
    assert!(initialize_error(&out).contains("cannot execute"));
}
