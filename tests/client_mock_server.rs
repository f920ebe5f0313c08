//! mcp-guard's one MCP client (`mcp_guard::client`, used by `pin`, `scan`, `policy init` and the
//! tests) against the testkit's scripted mock server, run alone: it pages, answers what the
//! server asks of the host, keeps the garbage it sees, and says when the server is gone.

mod support;

use std::process::Command;
use std::time::Duration;

use mcp_guard::client::{Client, ClientError, Stderr};
use serde_json::{json, Value};

fn mock(args: &[&str], timeout: Duration) -> Client {
    let mut command = Command::new(support::testkit_bin("mock-server"));
    command.args(args);
    let mut client = Client::spawn(command, Stderr::Capture, timeout).expect("spawn mock-server");
    client.initialize("client-test").expect("initialize");
    client
}

/// The text of a tool call's first content item.
fn text(result: &Value) -> Value {
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

#[test]
fn client_lists_every_page() {
    let mut paged = mock(&["--tools-list=paged"], Duration::from_secs(10));
    let tools = paged.list_all("tools/list", "tools").expect("tools/list");
    let mut plain = mock(&[], Duration::from_secs(10));
    let all = plain.list_all("tools/list", "tools").expect("tools/list");
    assert!(all.len() > 1, "{all:?}");
    assert_eq!(tools, all, "both pages, in order");
}

#[test]
fn client_answers_what_the_server_asks_of_the_host() {
    let mut client = mock(&[], Duration::from_secs(10));
    let mut ask = |method: &str| {
        let result = client
            .call_tool("server_request", json!({ "method": method }))
            .expect("the call is answered once the client has answered the server");
        text(&result)
    };
    assert_eq!(ask("ping")["result"], json!({}));
    assert_eq!(ask("roots/list")["result"]["roots"], json!([]));
    assert_eq!(ask("elicitation/create")["result"]["action"], "decline");
    assert_eq!(ask("sampling/createMessage")["error"]["code"], -1);
    assert_eq!(ask("no/such/method")["error"]["code"], -32601);
}

#[test]
fn client_keeps_lines_that_are_not_json() {
    let mut client = mock(&[], Duration::from_secs(10));
    client.call_tool("garbage", json!({})).expect("garbage");
    let finished = client.finish(Duration::from_secs(5));
    assert!(
        finished
            .garbage
            .iter()
            .any(|l| l.contains("this is not JSON")),
        "{:?}",
        finished.garbage
    );
    assert_eq!(finished.code, Some(0));
}

#[test]
fn client_says_when_the_server_is_gone_or_silent() {
    let mut client = mock(&[], Duration::from_secs(10));
    match client.call_tool("crash", json!({"code": 7})) {
        Err(e @ ClientError::Gone { .. }) => {
            assert!(e.to_string().contains("exit status: 7"), "{e}")
        }
        other => panic!("expected Gone, got {other:?}"),
    }
    let mut client = mock(&[], Duration::from_millis(300));
    match client.call_tool("never", json!({})) {
        Err(ClientError::Timeout { method, .. }) => assert_eq!(method, "tools/call"),
        other => panic!("expected Timeout, got {other:?}"),
    }
    let mut client = mock(&[], Duration::from_secs(10));
    match client.call_tool("no_such_tool", json!({})) {
        Ok(result) => assert_eq!(result["isError"], true, "{result}"),
        Err(ClientError::Rpc { method, .. }) => assert_eq!(method, "tools/call"),
        Err(other) => panic!("expected an answer, got {other}"),
    }
}
