//! A JSON object may repeat a member name; the guard's checks keep the last of each, as most
//! parsers do, but a server whose parser keeps the first would act on a value nobody checked.
//! So a message with repeated members reaches the server as the guard checked it. The server
//! here is a few lines of shell that answers `initialize` and writes every other line it
//! receives, as received, to a file.

mod relay_common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use relay_common::Guard;

const RECORDER: &str = r#"while IFS= read -r line; do
  case "$line" in
    *'"initialize"'*) printf '%s\n' '{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"recorder","version":"0"}}}' ;;
    *) printf '%s\n' "$line" >> "$1/received" ;;
  esac
done"#;

const REPEATED: &str = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1,"progress":2}}"#;
const PLAIN: &str = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":3}}"#;

fn recorder(guarded: bool) -> Guard {
    let args = ["-c", RECORDER, "recorder", "{dir}"];
    if guarded {
        Guard::start(&["--no-audit"], Path::new("/bin/sh"), &args)
    } else {
        Guard::unguarded(Path::new("/bin/sh"), &args)
    }
}

/// The lines the server received after `initialize`, once `count` of them are there.
fn received(guard: &Guard, count: usize) -> Vec<String> {
    let file = guard.path("received");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn progress_members(line: &str) -> usize {
    line.matches("\"progress\":").count()
}

#[test]
fn repeated_members_reach_the_server_as_checked_and_the_neighbour_as_sent() {
    let mut guard = recorder(true);
    guard.initialize("2025-06-18");
    guard.send(REPEATED);
    guard.send(PLAIN);
    let lines = received(&guard, 3);
    assert_eq!(lines.len(), 3, "server received: {lines:?}");
    let repeated = &lines[1];
    assert_eq!(progress_members(repeated), 1, "{repeated}");
    assert!(repeated.contains("\"progress\":2"), "{repeated}");
    // The neighbour without repeated members passes byte for byte.
    assert_eq!(lines[2], PLAIN);
    assert!(
        guard.stderr_text().contains("repeats a member name"),
        "{}",
        guard.stderr_text()
    );
}

#[test]
fn without_the_guard_the_server_receives_both_members() {
    let mut direct = recorder(false);
    direct.initialize("2025-06-18");
    direct.send(REPEATED);
    let lines = received(&direct, 2);
    assert_eq!(lines.len(), 2, "server received: {lines:?}");
    assert_eq!(progress_members(&lines[1]), 2, "{}", lines[1]);
}
