//! Lifecycle: the server's death answers every pending request and decides the guard's exit
//! status; the host's EOF shuts the server down (stdin EOF, then SIGTERM, then SIGKILL, each
//! after `--shutdown-grace`), a signal to the guard at once (EOF and SIGTERM; more in
//! `relay_shutdown.rs`); nothing outlives a SIGKILLed guard;
//! server→client requests are relayed both ways.

mod relay_common;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use relay_common::{reap_leftover, wait_gone, Guard};
use serde_json::json;

/// The server's pid, from the `start <pid>` line of its `--log`.
fn server_pid(guard: &Guard) -> i32 {
    relay_common::logged_pid(&guard.path("log"))
}

fn server_log(guard: &Guard) -> Vec<String> {
    std::fs::read_to_string(guard.path("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_server_exit_error(line: &relay_common::Line) -> String {
    let id = line.raw_id().expect("id");
    line.assert_error(&id, -32000);
    let message = line.error_message().to_lowercase();
    assert!(
        message.contains("exit") || message.contains("died") || message.contains("terminated"),
        "the error should say the server exited: {}",
        line.short()
    );
    id
}

#[test]
fn server_crash_fails_every_pending_request_and_sets_the_exit_status() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "never", json!({}));
    guard.call("\"two\"", "never", json!({}));
    guard.call("3", "crash", json!({"code": 3}));
    let ids: BTreeSet<String> = (0..3)
        .map(|_| assert_server_exit_error(&guard.recv()))
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["1".to_owned(), "\"two\"".to_owned(), "3".to_owned()])
    );
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 3);
    assert!(guard.try_recv(Duration::from_millis(200)).is_none());
}

#[test]
fn server_killed_by_sigkill_gives_exit_status_137() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "crash_signal", json!({"signal": "KILL"}));
    assert_eq!(assert_server_exit_error(&guard.recv()), "1");
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 128 + 9);
}

#[test]
fn server_killed_by_sigsegv_gives_exit_status_139() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "crash_signal", json!({"signal": "SEGV"}));
    assert_eq!(assert_server_exit_error(&guard.recv()), "1");
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 128 + 11);
}

#[test]
fn partial_last_line_is_not_forwarded() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("5", "partial_exit", json!({}));
    assert_eq!(assert_server_exit_error(&guard.recv()), "5");
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 0);
    if let Some(line) = guard.try_recv(Duration::from_millis(200)) {
        panic!("forwarded after the exit: {}", line.short());
    }
}

#[test]
fn complete_last_line_without_newline_is_forwarded() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("5", "complete_exit", json!({}));
    assert_eq!(guard.recv().assert_result("5"), "complete");
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 0);
    if let Some(line) = guard.try_recv(Duration::from_millis(200)) {
        panic!("a second answer for an answered request: {}", line.short());
    }
}

#[test]
fn host_eof_closes_the_server_stdin() {
    let mut guard = Guard::mock(&[], &["--eof-exit-code=7", "--log={dir}/log"]);
    guard.initialize("2025-06-18");
    let start = Instant::now();
    guard.close_stdin();
    // The default grace is 5 s: a prompt exit proves the server saw EOF, not a signal.
    assert_eq!(guard.exit_code(Duration::from_secs(4)), 7);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(server_log(&guard)[1..], ["eof"]);
}

#[test]
fn server_that_ignores_eof_gets_sigterm_after_the_grace() {
    let mut guard = Guard::mock(
        &["--shutdown-grace", "300ms"],
        &["--exit-on-eof=false", "--sigterm=log", "--log={dir}/log"],
    );
    guard.initialize("2025-06-18");
    let pid = server_pid(&guard);
    let start = Instant::now();
    guard.close_stdin();
    let code = guard.exit_code(Duration::from_secs(4));
    let elapsed = start.elapsed();
    assert_eq!(server_log(&guard)[1..], ["eof", "sigterm"]);
    assert!(
        elapsed >= Duration::from_millis(250),
        "SIGTERM came after {elapsed:?}, before the grace"
    );
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert_eq!(code, 128 + 15, "the server died of SIGTERM");
    assert!(wait_gone(pid, Duration::from_secs(1)));
}

#[test]
fn server_that_ignores_sigterm_gets_sigkill_after_a_second_grace() {
    let mut guard = Guard::mock(
        &["--shutdown-grace", "300ms"],
        &[
            "--exit-on-eof=false",
            "--sigterm=log-ignore",
            "--log={dir}/log",
        ],
    );
    guard.initialize("2025-06-18");
    let pid = server_pid(&guard);
    let start = Instant::now();
    guard.close_stdin();
    let code = guard.exit_code(Duration::from_secs(4));
    let elapsed = start.elapsed();
    assert_eq!(server_log(&guard)[1..], ["eof", "sigterm"]);
    assert!(
        elapsed >= Duration::from_millis(550),
        "SIGKILL after {elapsed:?}, before two graces"
    );
    assert!(elapsed < Duration::from_millis(2000), "took {elapsed:?}");
    assert_eq!(code, 128 + 9, "the server died of SIGKILL");
    assert!(wait_gone(pid, Duration::from_secs(1)));
}

#[test]
fn sigterm_to_the_guard_shuts_the_server_down() {
    let mut guard = Guard::mock(
        &["--shutdown-grace", "300ms"],
        &["--exit-on-eof=false", "--sigterm=log", "--log={dir}/log"],
    );
    guard.initialize("2025-06-18");
    let pid = server_pid(&guard);
    let start = Instant::now();
    guard.signal(libc::SIGTERM);
    guard.wait_exit(Duration::from_secs(4));
    let elapsed = start.elapsed();
    assert!(
        wait_gone(pid, Duration::from_secs(1)),
        "server {pid} survived"
    );
    // SIGTERM goes out at once; the server may die of it before it reads the EOF.
    assert!(server_log(&guard).contains(&"sigterm".to_owned()));
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
}

#[test]
fn sigint_to_the_guard_closes_the_server_stdin_too() {
    // The server ignores SIGTERM here, so it ends on the EOF the guard sent along.
    let mut guard = Guard::mock(
        &["--shutdown-grace", "2s"],
        &[
            "--eof-exit-code=7",
            "--sigterm=log-ignore",
            "--log={dir}/log",
        ],
    );
    guard.initialize("2025-06-18");
    let pid = server_pid(&guard);
    let start = Instant::now();
    guard.signal(libc::SIGINT);
    assert_eq!(guard.exit_code(Duration::from_secs(4)), 7);
    assert!(
        wait_gone(pid, Duration::from_secs(1)),
        "server {pid} survived"
    );
    assert!(server_log(&guard).contains(&"eof".to_owned()));
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "waited for the grace"
    );
}

#[test]
fn sigkill_to_the_guard_kills_the_server_and_its_children() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    let pid_file = guard.path("pids");
    let answer = guard.call_and_recv(
        "1",
        "spawn_child",
        json!({"path": pid_file.display().to_string()}),
    );
    assert_eq!(answer.assert_result("1"), "ok");
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert!(relay_common::process_alive(pids[0]) && relay_common::process_alive(pids[1]));
    guard.signal(libc::SIGKILL);
    let server_gone = wait_gone(pids[0], Duration::from_secs(2));
    let child_gone = wait_gone(pids[1], Duration::from_secs(2));
    reap_leftover(pids[0]);
    reap_leftover(pids[1]);
    assert!(server_gone, "server {} outlived a SIGKILLed guard", pids[0]);
    assert!(
        child_gone,
        "grandchild {} outlived a SIGKILLed guard",
        pids[1]
    );
}

#[test]
fn server_requests_are_relayed_and_answered() {
    let mut guard = Guard::mock(&[], &[]);
    // The host declares roots: the server may ask for them.
    guard.initialize_with("2025-06-18", json!({"roots": {}}));
    // The host's request 0 stays pending while the server numbers its own request 0 too.
    guard.call("0", "never", json!({}));
    guard.call("1", "server_request", json!({"method": "roots/list"}));
    let request = guard.recv();
    let v = request.json();
    assert_eq!(v["method"], "roots/list", "{}", request.short());
    let server_id = request.raw_id().expect("server request id");
    guard.send(&format!(
        r#"{{"jsonrpc":"2.0","id":{server_id},"result":{{"roots":[{{"uri":"file:///tmp/r"}}]}}}}"#
    ));
    let text = guard.recv().assert_result("1");
    assert!(text.contains("file:///tmp/r"), "server got {text}");
    // A second answer to the same server request is dropped.
    guard.send(&format!(
        r#"{{"jsonrpc":"2.0","id":{server_id},"result":{{"roots":[]}}}}"#
    ));
    guard.expect_silence(Duration::from_millis(100));
    let stats = guard.server_stats("2");
    assert_eq!(
        stats["responses"].as_array().map(Vec::len),
        Some(1),
        "{stats}"
    );
}

#[test]
fn spoofed_host_answers_are_dropped() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    // The server never asked anything: these answers go nowhere.
    guard.send(r#"{"jsonrpc":"2.0","id":0,"result":{"roots":[]}}"#);
    guard.send(r#"{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"no"}}"#);
    guard.expect_silence(Duration::from_millis(100));
    let stats = guard.server_stats("1");
    assert_eq!(stats["responses"], json!([]), "{stats}");
}

#[test]
fn server_closing_stdout_fails_the_pending_request() {
    let mut guard = Guard::mock(&["--shutdown-grace", "300ms"], &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "stdout_close", json!({}));
    let answer = guard.recv();
    assert_eq!(answer.raw_id().as_deref(), Some("1"));
    assert!(
        answer.json()["error"]["code"].is_i64(),
        "{}",
        answer.short()
    );
    guard.close_stdin();
    guard.wait_exit(Duration::from_secs(3));
}

#[test]
fn sigterm_to_the_guard_fails_pending_requests() {
    let mut guard = Guard::mock(&["--shutdown-grace", "300ms"], &["--exit-on-eof=false"]);
    guard.initialize("2025-06-18");
    guard.call("1", "never", json!({}));
    // Make sure the call reached the server before the signal.
    guard.assert_alive("2");
    guard.signal(libc::SIGTERM);
    assert_eq!(assert_server_exit_error(&guard.recv()), "1");
    guard.wait_exit(Duration::from_secs(3));
}

#[test]
fn host_eof_answers_the_server_own_pending_request() {
    // Otherwise a server waiting on its own request may never exit (server-everything does this).
    let mut guard = Guard::mock(&["--shutdown-grace", "2s"], &["--log={dir}/log"]);
    // The host declares roots: the server may ask for them.
    guard.initialize_with("2025-06-18", json!({"roots": {}}));
    guard.call("1", "server_request", json!({}));
    let request = guard.recv();
    assert_eq!(request.json()["method"], "roots/list");
    guard.close_stdin();
    // The mock answers the tool call with the error it got for roots/list.
    let text = guard.recv().assert_result("1");
    let answer: serde_json::Value = serde_json::from_str(&text).expect("response JSON");
    assert!(answer["error"]["code"].is_i64(), "{answer}");
    assert_eq!(answer["id"].to_string(), request.raw_id().unwrap());
    let start = Instant::now();
    assert_eq!(guard.exit_code(Duration::from_secs(4)), 0);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn host_answer_with_a_lookalike_id_is_dropped() {
    let mut guard = Guard::mock(&[], &[]);
    // The host declares roots: the server may ask for them.
    guard.initialize_with("2025-06-18", json!({"roots": {}}));
    guard.call("1", "server_request", json!({}));
    let request = guard.recv();
    let server_id = request.raw_id().expect("id");
    assert_eq!(server_id, "0", "the mock numbers its requests from 0");
    // The string "0" and 0.0 are not the id 0.
    guard.send(r#"{"jsonrpc":"2.0","id":"0","result":{"roots":[{"uri":"file:///wrong"}]}}"#);
    guard.send(r#"{"jsonrpc":"2.0","id":0.0,"result":{"roots":[{"uri":"file:///wrong"}]}}"#);
    // The guard may answer the malformed one (0.0 is not a valid id); the call is still pending.
    while let Some(line) = guard.try_recv(Duration::from_millis(200)) {
        let v = line.json();
        assert!(
            v["id"].is_null() && v["error"].is_object(),
            "unexpected {}",
            line.short()
        );
    }
    guard.send(r#"{"jsonrpc":"2.0","id":0,"result":{"roots":[{"uri":"file:///right"}]}}"#);
    let text = guard.recv().assert_result("1");
    assert!(text.contains("file:///right"), "{text}");
    let stats = guard.server_stats("2");
    assert_eq!(
        stats["responses"].as_array().map(Vec::len),
        Some(1),
        "{stats}"
    );
}

#[test]
fn server_exit_during_a_large_write_fails_the_requests_cleanly() {
    // The guard's write to the server hits EPIPE halfway: no crash (SIGPIPE), each request the
    // guard read gets exactly one error answer, and the exit status is the server's. Requests
    // the guard never read before exiting get nothing (the host's own writes fail).
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call("1", "crash", json!({"code": 4}));
    let mut stdin = guard.take_stdin();
    std::thread::spawn(move || {
        use std::io::Write;
        let text = "z".repeat(8 << 20);
        for id in 2..6 {
            let line = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}});
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
    });
    let mut ids = BTreeSet::new();
    while let Some(line) = guard.try_recv(Duration::from_secs(5)) {
        let id = assert_server_exit_error(&line);
        assert!(ids.insert(id.clone()), "answered twice: {id}");
    }
    assert!(ids.contains("1"), "{ids:?}");
    assert_eq!(guard.exit_code(Duration::from_secs(5)), 4);
}
