//! Shutdown and cleanup, as the official SDKs end a session: close the guard's stdin, SIGTERM it
//! about 2 s later, SIGKILL it 2 s after that. A host signal ends the guard's grace at once (the
//! server gets SIGTERM now, SIGKILL soon after), the audit log ends with the session's end, and
//! the server's private HOME/TMPDIR is gone on every exit path, SIGKILL of the guard included.
//! Runs the real guard with the sandbox on (the private directory exists only then).
#![cfg(target_os = "linux")]

mod relay_common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relay_common::{logged_pid, mock_bin, process_alive, reap_leftover, wait_gone, Guard};
use serde_json::Value;

/// What the brief promises a host: gone within this long of its signal.
const PROMPT_EXIT: Duration = Duration::from_secs(1);

/// A guarded server, its pid and its private directory.
struct Session {
    guard: Guard,
    server: i32,
    dir: PathBuf,
}

/// The mock server under the sandbox, ignoring its stdin's EOF (it would run until killed),
/// logging to `{dir}/out/log`; the guard audits to `{dir}/audit.jsonl` with its default 5 s grace.
fn eof_ignoring_server(sigterm: &str) -> Session {
    let sigterm = format!("--sigterm={sigterm}");
    let mut guard = Guard::confined(
        &[
            "--allow-write",
            "{dir}/out",
            "--audit-log",
            "{dir}/audit.jsonl",
        ],
        &mock_bin(),
        &["--exit-on-eof=false", &sigterm, "--log={dir}/out/log"],
    );
    guard.initialize("2025-06-18");
    let server = logged_pid(&guard.path("out/log"));
    let dir = the_private_dir(&guard);
    Session { guard, server, dir }
}

impl Session {
    /// Once the guard is gone: its server is dead and its private directory removed (the
    /// supervisor may still be at it for a moment).
    fn assert_cleaned_up(&self, what: &str) {
        let server_gone = wait_gone(self.server, Duration::from_secs(2));
        reap_leftover(self.server);
        assert!(
            server_gone,
            "{what}: server {} outlived the guard",
            self.server
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !self.dir.exists(),
            "{what}: {} left behind",
            self.dir.display()
        );
    }
}

/// The private directories under the guard's TMPDIR.
fn private_dirs(base: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(base)
        .expect("the guard's TMPDIR")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("mcp-guard-"))
        .map(|e| e.path())
        .collect()
}

/// The one private directory of a running guard (proves the test looks in the right place).
fn the_private_dir(guard: &Guard) -> PathBuf {
    let dirs = private_dirs(&guard.path("tmp"));
    assert_eq!(dirs.len(), 1, "expected one private directory: {dirs:?}");
    dirs[0].clone()
}

fn audit_events(guard: &Guard) -> Vec<Value> {
    std::fs::read_to_string(guard.path("audit.jsonl"))
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// The audit log ends as a session the guard closed itself: the server's exit, then the end.
fn assert_audit_closed(guard: &Guard) {
    let events = audit_events(guard);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds[kinds.len().saturating_sub(2)..],
        ["server_exit", "session_end"],
        "the audit log lost its last records: {kinds:?}"
    );
}

/// Sends `signal` to the guard and returns how long it took to exit.
fn time_exit_after(guard: &mut Guard, signal: i32) -> Duration {
    let start = Instant::now();
    guard.signal(signal);
    guard.wait_exit(Duration::from_secs(8));
    start.elapsed()
}

#[test]
fn sigterm_after_stdin_closed_ends_the_grace_at_once() {
    let mut session = eof_ignoring_server("log");
    // What the SDKs do (2 s apart); the default grace is 5 s, so only the signal can end it.
    session.guard.close_stdin();
    std::thread::sleep(Duration::from_millis(200));
    let took = time_exit_after(&mut session.guard, libc::SIGTERM);
    session.assert_cleaned_up("SIGTERM after EOF");
    assert!(took < PROMPT_EXIT, "the guard took {took:?} to exit");
    assert_audit_closed(&session.guard);
}

#[test]
fn host_signal_with_stdin_open_ends_the_session_at_once() {
    for (signal, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let mut session = eof_ignoring_server("log");
        let took = time_exit_after(&mut session.guard, signal);
        session.assert_cleaned_up(name);
        assert!(
            took < PROMPT_EXIT,
            "{name}: the guard took {took:?} to exit"
        );
        assert_audit_closed(&session.guard);
    }
}

#[test]
fn server_ignoring_sigterm_is_killed_after_the_short_second_grace() {
    let mut session = eof_ignoring_server("log-ignore");
    session.guard.close_stdin();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    session.guard.signal(libc::SIGTERM);
    let code = session.guard.exit_code(Duration::from_secs(8));
    let took = start.elapsed();
    session.assert_cleaned_up("SIGTERM ignored");
    assert_eq!(code, 128 + 9, "the server should have died of SIGKILL");
    // SIGKILL follows SIGTERM by 500 ms: well before the SDKs' own SIGKILL of the guard (2 s).
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "the guard took {took:?} to exit"
    );
    let log = std::fs::read_to_string(session.guard.path("out/log")).expect("server log");
    assert!(
        log.contains("sigterm"),
        "the server never saw SIGTERM: {log}"
    );
    assert_audit_closed(&session.guard);
}

#[test]
fn sigkill_of_the_guard_leaves_no_private_dir_and_no_server() {
    let mut session = eof_ignoring_server("log");
    session.guard.signal(libc::SIGKILL);
    session.guard.wait_exit(Duration::from_secs(2));
    // The supervisor outlives the guard: it kills the tree, then removes the directory.
    session.assert_cleaned_up("SIGKILL");
}

/// The supervisor of a running guard: the child its main thread spawned.
fn supervisor_of(guard: &Guard) -> i32 {
    let pid = guard.pid();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("the guard's children");
    let pids: Vec<i32> = children
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 1, "expected one supervisor: {pids:?}");
    pids[0]
}

#[test]
fn the_next_start_sweeps_what_a_killed_guard_and_supervisor_left() {
    // Guard and supervisor killed together (a cgroup kill, the OOM killer): nobody could clean.
    let mut killed = Guard::confined(&[], &mock_bin(), &[]);
    killed.initialize("2025-06-18");
    let orphan = the_private_dir(&killed);
    let supervisor = supervisor_of(&killed);
    // SAFETY: signals to processes this test started; the stopped supervisor cannot react.
    unsafe { libc::kill(supervisor, libc::SIGSTOP) };
    // A group stop completes only when every thread of the supervisor has stopped (the watch
    // for protected names is a thread of its own): until then it could still act on its
    // parent-death signal and clean up, which is what this control must rule out.
    let stopped = Instant::now() + Duration::from_secs(2);
    while process_state(supervisor) != Some('T') && Instant::now() < stopped {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        process_state(supervisor),
        Some('T'),
        "the supervisor did not stop"
    );
    killed.signal(libc::SIGKILL);
    killed.wait_exit(Duration::from_secs(2));
    // SAFETY: as above.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    assert!(wait_gone(supervisor, Duration::from_secs(2)));
    // The server ends on its stdin's EOF, its guard being gone.
    std::thread::sleep(Duration::from_millis(300));
    // Usually still there (nobody was left to clean it), but not always on a loaded machine:
    // the sweep under test must meet an orphan either way, so one is put back where it lay.
    eprintln!("orphan left by the kills: {}", orphan.exists());
    std::fs::create_dir_all(orphan.join("home")).expect("the orphan");

    // A live guard shares the directory where the orphan lies: its own must survive the sweep.
    let mut live = Guard::confined(&[], &mock_bin(), &[]);
    live.initialize("2025-06-18");
    let base = live.path("tmp");
    let live_dir = the_private_dir(&live);
    let moved = base.join(orphan.file_name().expect("name"));
    std::fs::rename(&orphan, &moved).expect("move the orphan next to the live guard's");

    let status = Command::new(relay_common::guard_under_test())
        .args(["run", "--no-audit", "--", "/bin/true"])
        .env("TMPDIR", &base)
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run the next guard");
    assert!(status.success(), "the next guard failed: {status}");
    assert!(
        !moved.exists(),
        "the next start left the orphan {}",
        moved.display()
    );
    assert!(live_dir.exists(), "the sweep took a live guard's directory");
    assert_eq!(
        private_dirs(&base),
        [live_dir],
        "the next start left its own"
    );
    live.assert_alive("1");
    assert!(process_alive(live.pid()));
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `T`, `Z`…).
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the state follows the last `)`.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}
