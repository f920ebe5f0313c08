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
