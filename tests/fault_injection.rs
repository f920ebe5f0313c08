//! Faults with real processes: the server killed in the middle of a line, a server that closes
//! its stdout but lives on, the host closing stdin in the middle of a request, SIGTERM to the
//! guard under load both ways, and the audit disk filling up under load. Each: the right
//! errors, no hang (every wait is bounded), no orphan (the server's pid is gone afterwards),
//! and the guard's exit status, documented at each assertion.
//!
//! Not repeated here (see tests/relay_lifecycle.rs, relay_flood.rs, audit_unwritable.rs): a
//! server that crashes or exits with a partial last line, SIGTERM with a busy server, SIGKILL
//! to the guard, and audit disk-full semantics with an idle session.

mod relay_common;
mod support;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use relay_common::{echo_bin, read_when, reap_leftover, wait_gone, Guard};
use serde_json::json;

/// The pid the server wrote to `{dir}/pid` (or as `start <pid>` in the mock's `--log`).
fn server_pid(guard: &Guard, file: &str) -> i32 {
    let text = read_when(&guard.path(file), Duration::from_secs(5), |t| {
        t.trim_end().ends_with(|c: char| c.is_ascii_digit()) || t.contains('\n')
    });
    text.lines()
        .next()
        .map(|l| l.trim_start_matches("start ").trim())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {file}: {text:?}"))
}

/// Every process below `pid` (the supervisor, the server, its children), from /proc.
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(child);
                todo.push(child);
            }
        }
    }
    out
}

fn assert_no_orphan(pid: i32) {
    let gone = wait_gone(pid, Duration::from_secs(2));
    reap_leftover(pid);
    assert!(gone, "server {pid} outlived the guard");
}

/// A shell "server" that reads one request, writes `prefix` and `pad` bytes of a response line
/// (no newline), then dies of SIGKILL.
fn killed_mid_line(pad: usize) {
    let script = format!(
        "echo $$ > {{dir}}/pid; read line; \
         printf '%s' '{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"'; \
         head -c {pad} /dev/zero | tr '\\0' x; kill -9 $$"
    );
    let mut guard = Guard::start(&[], Path::new("/bin/sh"), &["-c", &script]);
    let pid = server_pid(&guard, "pid");
    guard.send(r#"{"jsonrpc":"2.0","id":1,"method":"x.slow"}"#);
    let line = guard.recv();
    line.assert_error("1", -32000);
    // The torn line is never forwarded, and nothing else comes.
    assert!(guard.try_recv(Duration::from_millis(200)).is_none());
    // Exit status: 128 + 9, the server's death by SIGKILL, passed on.
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 137);
    assert_no_orphan(pid);
}

#[test]
fn server_killed_mid_line_small() {
    killed_mid_line(10);
}

#[test]
fn server_killed_mid_line_after_4_mib() {
    // More than a pipe's capacity: the guard is inside the line when the server dies.
    killed_mid_line(4 << 20);
}

/// The server closes its stdout and goes on living (and reading): it can never answer again.
/// The guard takes a closed stdout as the end of the server: it fails the pending request at
/// once, stops the server (stdin EOF, then SIGTERM) and exits without waiting for the host.
#[test]
fn server_closing_stdout_but_living_on() {
    let mut guard = Guard::mock(
        &["--shutdown-grace", "300ms"],
        &["--log={dir}/log", "--exit-on-eof=false", "--sigterm=log"],
    );
    guard.initialize("2025-06-18");
    let pid = server_pid(&guard, "log");
    let start = Instant::now();
    guard.call("1", "stdout_close", json!({}));
    let line = guard.recv();
    line.assert_error("1", -32000);
    // Exit status: 143 = 128 + SIGTERM, the signal the guard stopped the server with.
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 143);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let log = std::fs::read_to_string(guard.path("log")).unwrap_or_default();
    assert_eq!(
        log.lines().skip(1).collect::<Vec<_>>(),
        ["eof", "sigterm"],
        "{log}"
    );
    assert!(guard.try_recv(Duration::from_millis(100)).is_none());
    assert_no_orphan(pid);
}

/// The host writes half a request and closes stdin. The half line is not a message: the host
/// gets one parse error (its stdout is still open), the server gets EOF and exits.
#[test]
fn host_closing_stdin_mid_request() {
    let mut guard = Guard::mock(&["--shutdown-grace", "2s"], &["--log={dir}/log"]);
    guard.initialize("2025-06-18");
    let pid = server_pid(&guard, "log");
    guard.send_bytes(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ec"#);
    let start = Instant::now();
    guard.close_stdin();
    let line = guard.recv();
    line.assert_error("null", -32700);
    // Exit status: 0, the server's own, after a clean exit on stdin EOF (no grace waited).
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 0);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let log = std::fs::read_to_string(guard.path("log")).unwrap_or_default();
    assert_eq!(log.lines().skip(1).collect::<Vec<_>>(), ["eof"], "{log}");
    assert_no_orphan(pid);
}

/// The host sends a whole request and closes stdin before the answer: the answer still
/// arrives (the server finishes its work before it sees EOF), exactly once.
#[test]
fn host_closing_stdin_with_a_request_in_flight() {
    let mut guard = Guard::mock(&["--shutdown-grace", "2s"], &["--log={dir}/log"]);
    guard.initialize("2025-06-18");
    let pid = server_pid(&guard, "log");
    guard.call("1", "sleep", json!({"ms": 300}));
    guard.close_stdin();
    assert_eq!(guard.recv().assert_result("1"), "ok");
    // Exit status: 0, the server's, after EOF.
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 0);
    assert!(guard.try_recv(Duration::from_millis(100)).is_none());
    assert_no_orphan(pid);
}

/// SIGTERM while 1 KiB requests flood in and answers flood out (a fast server, both pipes
/// full). The guard stops promptly; every line the host got is whole JSON; the answers
/// received are a prefix of the requests in order, then at most errors for the rest.
#[test]
fn sigterm_to_the_guard_under_load_both_ways() {
    let mut guard = Guard::start(&["--shutdown-grace", "500ms"], &echo_bin(), &[]);
    guard.initialize("2025-06-18");
    let mut stdin = guard.take_stdin();
    let writer = std::thread::spawn(move || {
        let text = "l".repeat(1000);
        let mut sent = 0u64;
        for id in 1..=1_000_000u64 {
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
            );
            // EPIPE once the guard is gone: the end of the flood.
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
            sent = id;
        }
        sent
    });
    // Let the flood run, reading answers meanwhile.
    let mut next = 1u64;
    let flood_until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < flood_until {
        let line = guard.recv();
        assert_eq!(line.raw_id(), Some(next.to_string()), "{}", line.short());
        next += 1;
    }
    assert!(next > 100, "the flood did not flow: {next} answers");
    let below = descendants(guard.pid());
    assert!(!below.is_empty(), "no server process under the guard");
    let start = Instant::now();
    guard.signal(libc::SIGTERM);
    let mut errors = 0;
    while let Some(line) = guard.try_recv(Duration::from_secs(3)) {
        let v = line.json(); // panics on a torn line
        if v["error"].is_object() {
            assert_eq!(v["error"]["code"], -32000, "{}", line.short());
            errors += 1;
        } else {
            assert_eq!(line.raw_id(), Some(next.to_string()), "{}", line.short());
            assert_eq!(errors, 0, "an answer after an error: {}", line.short());
            next += 1;
        }
    }
    let status = guard.wait_exit(Duration::from_secs(5));
    let took = start.elapsed();
    let sent = writer.join().expect("writer");
    eprintln!("SIGTERM under load: {next} answers, {errors} errors, {sent} sent, exit {status:?} in {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Exit status: the guard gives echo-server EOF and SIGTERM together (a host signal ends
    // the grace at once): it exits 0 on the EOF or dies of the SIGTERM (128 + 15).
    assert!(matches!(status.code(), Some(0 | 143)), "{status:?}");
    for pid in below {
        assert_no_orphan(pid);
    }
}

/// The audit log on a full disk (`/dev/full`: opens, every write fails with ENOSPC) while the
/// host floods: with `required = true` the guard stops the server and exits, nothing hangs,
/// and the server does not outlive it.
#[test]
fn audit_disk_full_under_load_stops_the_server_without_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[audit]\nrequired = true\nsuspicious_refusals = 1000000\n",
    )
    .unwrap();
    let policy = policy.display().to_string();
    let mut guard = Guard::mock(
        &[
            "--policy",
            &policy,
            "--audit-log",
            "/dev/full",
            "--shutdown-grace",
            "300ms",
        ],
        &["--log={dir}/log", "--exit-on-eof=false"],
    );
    let pid = server_pid(&guard, "log");
    let mut stdin = guard.take_stdin();
    std::thread::spawn(move || {
        for id in 1..=200_000u64 {
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"a"}}}}}}"#
            );
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    while guard.try_recv(Duration::from_secs(5)).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the guard keeps relaying"
        );
    }
    let status = guard.wait_exit(Duration::from_secs(10));
    let stderr = guard.stderr_text();
    assert!(stderr.contains("cannot write the audit log"), "{stderr}");
    eprintln!(
        "audit disk full under load: exit {status:?} after {:?}",
        start.elapsed()
    );
    // Exit status: not success (the guard stopped the server: 143, SIGTERM after the grace,
    // since this server ignores EOF).
    assert!(!status.success(), "{status:?}");
    assert_no_orphan(pid);
}
