//! The guard's own `tools/list`: a host that calls a tool without listing the tools in this
//! session (it may reuse a listing cached earlier) still has its call checked against the
//! server's current listing, which the guard fetches itself while it holds the host's input.
//! Each refusal sits beside an allowed neighbour, and the unguarded control shows the server
//! itself would have taken the call.

mod relay_common;
mod support;

use std::time::Duration;

use relay_common::{echo_bin, Guard};
use serde_json::{json, Value};

/// The guard's own requests carry ids of this form.
const OWN_ID_PREFIX: &str = "\"mcp-guard/tools/list/";

fn tools_lists(stats: &Value) -> Vec<Value> {
    stats["tools_lists"]
        .as_array()
        .expect("tools_lists")
        .clone()
}

#[test]
fn a_call_without_a_listing_is_checked_against_the_servers_tools() {
    let mut guard = Guard::start(&[], &echo_bin(), &[]);
    guard.initialize("2025-06-18");
    // Allowed: a listed tool with arguments that match its inputSchema.
    let text = guard
        .call_and_recv("1", "echo", json!({"text": "hi"}))
        .assert_result("1");
    assert!(text.contains("hi"), "{text}");
    // Refused: arguments against echo's inputSchema (text must be a string).
    let line = guard.call_and_recv("2", "echo", json!({"text": 5}));
    line.assert_error("2", -32602);
    assert!(line.short().contains("inputSchema"), "{}", line.short());
    // Refused: a tool the server never listed.
    let line = guard.call_and_recv("3", "rm_rf", json!({}));
    line.assert_error("3", -32602);
    assert!(line.short().contains("did not list"), "{}", line.short());
    // The guard's listing never reached the host: the next line answers the next request.
    guard.assert_alive("4");

    // Control: without the guard, the server answers both refused calls.
    let mut direct = Guard::unguarded(&echo_bin(), &[]);
    direct.initialize("2025-06-18");
    direct
        .call_and_recv("2", "echo", json!({"text": 5}))
        .assert_result("2");
    direct.call_and_recv("3", "rm_rf", json!({})).json()["id"]
        .as_i64()
        .expect("the server answered the unlisted call");
}

#[test]
fn the_guard_lists_once_and_not_when_the_host_did() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.call_and_recv("1", "ok", json!({})).assert_result("1");
    guard.call_and_recv("2", "ok", json!({})).assert_result("2");
    let stats = guard.server_stats("3");
    let lists = tools_lists(&stats);
    assert_eq!(lists.len(), 1, "one listing for all calls: {stats}");
    assert!(
        lists[0]["id"].as_str().unwrap().starts_with(OWN_ID_PREFIX),
        "{stats}"
    );

    // A host that lists first: the guard has nothing to ask.
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    guard.send(r#"{"jsonrpc":"2.0","id":"l","method":"tools/list"}"#);
    guard.recv().assert_result("\"l\"");
    guard.call_and_recv("1", "ok", json!({})).assert_result("1");
    let stats = guard.server_stats("2");
    let lists = tools_lists(&stats);
    assert_eq!(lists.len(), 1, "{stats}");
    assert_eq!(lists[0]["id"], "\"l\"", "{stats}");
}

#[test]
fn a_paged_listing_is_followed_to_its_last_page() {
    let mut guard = Guard::mock(&[], &["--tools-list=paged"]);
    guard.initialize("2025-06-18");
    // `stats` is on the second page: the call waits for the whole listing.
    let stats: Value = serde_json::from_str(
        &guard
            .call_and_recv("1", "stats", json!({}))
            .assert_result("1"),
    )
    .expect("stats");
    let lists = tools_lists(&stats);
    assert_eq!(lists.len(), 2, "{stats}");
    assert_eq!(lists[1]["params"]["cursor"], "page-2", "{stats}");
    // A tool from the first page, and one listed on neither.
    guard.call_and_recv("2", "ok", json!({})).assert_result("2");
    guard
        .call_and_recv("3", "no_such_tool", json!({}))
        .assert_error("3", -32602);
}

#[test]
fn the_listing_carries_the_calls_meta_without_its_progress_token() {
    let mut guard = Guard::mock(&[], &[]);
    guard.initialize("2025-06-18");
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2025-06-18",
        "io.modelcontextprotocol/clientCapabilities": {},
        "progressToken": "p1"
    });
    guard.send_json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "ok", "arguments": {}, "_meta": meta}}));
    guard.recv().assert_result("1");
    let stats = guard.server_stats("2");
    let sent = &tools_lists(&stats)[0]["params"]["_meta"];
    assert_eq!(
        sent["io.modelcontextprotocol/protocolVersion"], "2025-06-18",
        "{stats}"
    );
    assert!(sent.get("progressToken").is_none(), "{stats}");
}

#[test]
fn a_failed_listing_refuses_the_call_with_the_reason_and_the_guard_serves_on() {
    let mut guard = Guard::mock(&[], &["--tools-list=error"]);
    guard.initialize("2025-06-18");
    let line = guard.call_and_recv("1", "ok", json!({}));
    line.assert_error("1", -32602);
    assert!(
        line.short().contains("tool listing is not available"),
        "{}",
        line.short()
    );
    guard.assert_alive("2");

    // Control: the same server answers the call when nothing checks it.
    let mut direct = Guard::unguarded(&relay_common::mock_bin(), &["--tools-list=error"]);
    direct.initialize("2025-06-18");
    direct
        .call_and_recv("1", "ok", json!({}))
        .assert_result("1");
}

#[test]
fn an_unanswered_listing_times_out_and_order_is_kept() {
    let mut guard = Guard::mock(&["--request-timeout", "1s"], &["--tools-list=never"]);
    guard.initialize("2025-06-18");
    guard.call("1", "ok", json!({}));
    guard.send(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
    // The held call is answered first (refused: no listing), then the ping behind it.
    let first = guard.recv_within(Duration::from_secs(10));
    first.assert_error("1", -32602);
    assert!(first.short().contains("no answer"), "{}", first.short());
    guard.recv().assert_result("2");
}

#[test]
fn a_held_call_is_answered_when_the_guard_is_stopped() {
    let mut guard = Guard::mock(&[], &["--tools-list=never"]);
    guard.initialize("2025-06-18");
    guard.call("1", "ok", json!({}));
    guard.expect_silence(Duration::from_millis(300));
    guard.signal(libc::SIGTERM);
    guard.recv().assert_error("1", -32000);
    guard.wait_exit(Duration::from_secs(10));
}
