//! Backpressure: a pipelined flood is relayed completely and in order, whichever side is slow.

mod relay_common;
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use relay_common::{echo_bin, Guard};
use serde_json::json;

const FLOOD: usize = 100_000;

#[test]
fn hundred_thousand_pipelined_requests_all_answered_in_order() {
    let mut guard = Guard::start(&[], &echo_bin(), &[]);
    guard.initialize("2025-06-18");
    let mut stdin = guard.take_stdin();
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..FLOOD {
            let params = json!({"name": "echo", "arguments": {"text": format!("message {i} {}", "z".repeat(100))}});
            writeln!(
                buf,
                r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{params}}}"#,
                i + 1
            )
            .unwrap();
            if buf.len() > 64 << 10 {
                stdin.write_all(&buf).expect("write flood");
                buf.clear();
            }
        }
        stdin.write_all(&buf).expect("write flood");
        stdin
    });
    let start = Instant::now();
    for i in 0..FLOOD {
        // Read slowly for a while: the guard must hold back, not drop or reorder.
        if i < 20_000 && i % 2_000 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let line = guard.recv_within(Duration::from_secs(10));
        let v = line.json();
        assert_eq!(v["id"], i + 1, "answer {i} out of order: {}", line.short());
        let text = v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(
            text.starts_with(&format!("message {i} ")),
            "answer {i} has the wrong text: {}",
            line.short()
        );
    }
    let _stdin = writer.join().expect("writer");
    eprintln!("{FLOOD} round trips in {:?}", start.elapsed());
    guard.expect_silence(Duration::from_millis(100));
}

#[test]
fn host_flood_while_the_server_does_not_read() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    // The server blocks its reader for 500 ms while 5 000 requests pile up.
    guard.call("0", "sleep", json!({"ms": 500}));
    let mut stdin = guard.take_stdin();
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for i in 1..=5_000 {
            writeln!(
                buf,
                r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
                "w".repeat(200)
            )
            .unwrap();
        }
        stdin.write_all(&buf).expect("write flood");
        stdin
    });
    assert_eq!(guard.recv().assert_result("0"), "ok");
    for i in 1..=5_000 {
        let line = guard.recv();
        assert_eq!(line.raw_id(), Some(i.to_string()), "{}", line.short());
    }
    let _stdin = writer.join().expect("writer");
}

/// A guard whose server floods it with duplicate-id requests (each earns an error reply) and
/// never reads its stdin again: the pipe to the server is full and stays full.
fn wedged_server() -> Guard {
    let mut guard = Guard::mock(
        &["--request-timeout", "500ms", "--shutdown-grace", "300ms"],
        &[],
    );
    guard.initialize("2025-06-18");
    guard.call("1", "request_flood", json!({"count": 100_000}));
    std::thread::sleep(Duration::from_millis(200));
    guard
}

/// Reads for up to `limit` and returns the ids answered with the timeout error.
fn timeouts_within(guard: &mut Guard, want: usize, limit: Duration) -> Vec<serde_json::Value> {
    let start = Instant::now();
    let mut timed_out = Vec::new();
    while timed_out.len() < want && start.elapsed() < limit {
        let Some(line) = guard.try_recv(Duration::from_millis(200)) else {
            continue;
        };
        let v = line.json();
        if v["error"]["code"] == -32001 {
            timed_out.push(v["id"].clone());
        }
    }
    timed_out
}

#[test]
fn server_that_stops_reading_does_not_stop_timeouts() {
    let mut guard = wedged_server();
    guard.call("2", "ok", json!({}));
    let timed_out = timeouts_within(&mut guard, 2, Duration::from_secs(4));
    assert_eq!(
        timed_out,
        [json!(1), json!(2)],
        "requests stuck behind a server that does not read were not timed out"
    );
}

#[test]
fn server_that_stops_reading_does_not_stop_shutdown_on_host_eof() {
    let mut guard = wedged_server();
    let start = Instant::now();
    guard.close_stdin();
    guard.wait_exit(Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

/// A server in a long computation (not reading) while the host sends 4 MiB of requests: the
/// guard's writes to the server block; its timers and signal handling must not.
fn busy_server_under_host_flood() -> Guard {
    let mut guard = Guard::mock(
        &["--request-timeout", "500ms", "--shutdown-grace", "300ms"],
        &[],
    );
    guard.initialize("2025-06-18");
    guard.call("1", "sleep", json!({"ms": 60_000}));
    let mut stdin = guard.take_stdin();
    std::thread::spawn(move || {
        let text = "f".repeat(16 << 10);
        for i in 2..258 {
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
            );
            // Fails with EPIPE once the guard is gone: that is the end of the test.
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
    });
    guard
}

#[test]
fn busy_server_under_host_flood_does_not_stop_timeouts() {
    let mut guard = busy_server_under_host_flood();
    let timed_out = timeouts_within(&mut guard, 3, Duration::from_secs(4));
    assert!(
        timed_out.len() >= 3 && timed_out.contains(&json!(1)),
        "requests stuck behind a busy server were not all timed out: {timed_out:?}"
    );
}

#[test]
fn busy_server_under_host_flood_does_not_stop_sigterm() {
    let mut guard = busy_server_under_host_flood();
    std::thread::sleep(Duration::from_millis(700));
    let start = Instant::now();
    guard.signal(libc::SIGTERM);
    guard.wait_exit(Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}
