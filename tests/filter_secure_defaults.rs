//! Issue 17, secure by default at the message layer, through the real binary against the lying
//! test server, each with the unguarded control first: hidden characters in tool results,
//! prompts and resources; `roots/list` to a host that declared no `roots`; arguments that fail
//! the `inputSchema` as a tool error from 2025-11-25 on. Then a real client (the TypeScript SDK)
//! sees the same.

mod profile_support;
#[path = "relay_common/mod.rs"]
mod relay_common;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_common::{Guard, Line};
use serde_json::{json, Value};

/// Unicode tag characters spelling "IGNORE", an ANSI escape that hides the text after it, a
/// zero-width space and a bidi override: what a hostile server hides in a result.
const HIDDEN: &str = "sum: 42\u{e0049}\u{e0047}\u{e004e}\u{e004f}\u{e0052}\u{e0045}\u{1b}[8m hidden\u{200b} \u{202e}done";
/// `HIDDEN` without them.
const VISIBLE: &str = "sum: 42 hidden done";

fn lying() -> PathBuf {
    support::testkit_bin("lying-server")
}

/// The guard in front of the lying server with `policy` (after `version = 1`), auditing to
/// `audit.jsonl` in its scratch directory.
fn guarded(policy: &str) -> (Guard, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, format!("version = 1\n{policy}")).expect("write policy");
    let log = dir.path().join("audit.jsonl");
    let (path, log) = (path.display().to_string(), log.display().to_string());
    let guard = Guard::start(&["--policy", &path, "--audit-log", &log], &lying(), &[]);
    (guard, dir)
}

/// `initialize` with `capabilities`, then the tool listing the argument checks need.
fn start(g: &mut Guard, version: &str, capabilities: Value) -> Value {
    let result = g.initialize_with(version, capabilities);
    g.request(1, "tools/list", json!({})).json();
    result
}

/// A tool result with `HIDDEN` in a text item, an embedded resource and `structuredContent`.
fn hidden_result(g: &mut Guard, id: &str) -> Value {
    let result = json!({
        "content": [{"type": "text", "text": HIDDEN},
                    {"type": "resource", "resource": {"uri": "memory://x", "text": HIDDEN}}],
        "structuredContent": {"note": {"deep": [HIDDEN]}}});
    g.call_and_recv(id, "raw", json!({ "result": result }))
        .json()
}

/// The texts of `hidden_result`'s answer, in order.
fn result_texts(answer: &Value) -> Vec<String> {
    let r = &answer["result"];
    [
        &r["content"][0]["text"],
        &r["content"][1]["resource"]["text"],
        &r["structuredContent"]["note"]["deep"][0],
    ]
    .iter()
    .map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("no text: {answer}"))
            .to_owned()
    })
    .collect()
}

/// The prompt's and the resource's text once the server was told to carry `HIDDEN`.
fn prompt_and_resource(g: &mut Guard) -> [String; 2] {
    g.call_and_recv("50", "set_text", json!({ "text": HIDDEN }))
        .assert_result("50");
    let prompt = g
        .request(51, "prompts/get", json!({"name": "summarize"}))
        .json();
    let resource = g
        .request(52, "resources/read", json!({"uri": "memory://notes/1"}))
        .json();
    [
        &prompt["result"]["messages"][0]["content"]["text"],
        &resource["result"]["contents"][0]["text"],
    ]
    .map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("no text: {v}"))
            .to_owned()
    })
}

/// The guard's audit findings (`kind: detail`) once it has exited.
fn findings(mut g: Guard, log: &Path) -> Vec<String> {
    g.close_stdin();
    g.wait_exit(Duration::from_secs(10));
    std::fs::read_to_string(log)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit line"))
        .filter(|e| e["event"] == "finding")
        .map(|e| {
            format!(
                "{}: {}",
                e["kind"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn results_hidden_characters_arrive_unguarded_and_are_stripped_by_default() {
    // The control: straight from the server, every hiding character reaches the host.
    let mut direct = Guard::unguarded(&lying(), &[]);
    direct.initialize("2025-06-18");
    assert!(result_texts(&hidden_result(&mut direct, "1"))
        .iter()
        .all(|t| t == HIDDEN));
    assert_eq!(prompt_and_resource(&mut direct), [HIDDEN, HIDDEN]);

    // The built-in default: stripped everywhere the model reads result text.
    let (mut g, dir) = guarded("");
    start(&mut g, "2025-06-18", json!({}));
    assert_eq!(result_texts(&hidden_result(&mut g, "2")), [VISIBLE; 3]);
    assert_eq!(prompt_and_resource(&mut g), [VISIBLE, VISIBLE]);
    // A result without any is forwarded as sent, and its neighbour stays usable.
    let plain = g.call_and_recv("3", "echo", json!({"text": "plain “quoted” — ©"}));
    assert_eq!(plain.assert_result("3"), "plain “quoted” — ©");

    // One audit line per message, with the count per class (three texts in the tool result).
    let found = findings(g, &dir.path().join("audit.jsonl"));
    // (The server's instructions and a tool's description are sanitised as before.)
    let sanitized: Vec<&String> = found.iter().filter(|f| f.contains(" result: ")).collect();
    assert_eq!(
        sanitized,
        [
            "sanitized: tool `raw` result: hidden characters stripped: tag 18, zero-width 3, bidi 3, escape 3",
            "sanitized: prompts/get result: hidden characters stripped: tag 6, zero-width 1, bidi 1, escape 1",
            "sanitized: resources/read result: hidden characters stripped: tag 6, zero-width 1, bidi 1, escape 1",
        ],
        "{found:#?}"
    );
}

/// With `[sanitize] results = mode`: every text arrives as the server sent it; the audit
/// findings about results.
fn forwarded_as_sent(mode: &str) -> Vec<String> {
    let (mut g, dir) = guarded(&format!("[sanitize]\nresults = \"{mode}\"\n"));
    start(&mut g, "2025-06-18", json!({}));
    assert!(result_texts(&hidden_result(&mut g, "2"))
        .iter()
        .all(|t| t == HIDDEN));
    assert_eq!(prompt_and_resource(&mut g), [HIDDEN, HIDDEN]);
    let found = findings(g, &dir.path().join("audit.jsonl"));
    found
        .into_iter()
        .filter(|f| f.contains(" result: "))
        .collect()
}

#[test]
fn results_flag_forwards_and_records_off_forwards_silently() {
    let flagged = forwarded_as_sent("flag");
    assert_eq!(flagged.len(), 3, "{flagged:#?}");
    assert!(
        flagged.iter().all(|f| f.starts_with("hidden_text: ")),
        "{flagged:#?}"
    );
    assert_eq!(
        flagged[0],
        "hidden_text: tool `raw` result: hidden characters forwarded as sent ([sanitize] results = \"flag\"): tag 18, zero-width 3, bidi 3, escape 3"
    );
    assert_eq!(forwarded_as_sent("off"), Vec::<String>::new());
}

/// Has the server send the host `method` during a call; returns what the host saw (the call's
/// answer, and the request when it got through) and what the server was answered.
fn ask(g: &mut Guard, id: u64, method: &str) -> (Vec<Value>, Value) {
    g.call(&id.to_string(), "ask", json!({ "method": method }));
    let mut seen = vec![g.recv().json()];
    if seen[0].get("method").is_some() {
        seen.push(g.recv().json());
    }
    g.expect_silence(Duration::from_millis(200));
    let last_id = (id + 1).to_string();
    let last = g
        .call_and_recv(&last_id, "last_response", json!({}))
        .assert_result(&last_id);
    (seen, serde_json::from_str(&last).unwrap_or_default())
}

fn requests_of(seen: &[Value], method: &str) -> usize {
    seen.iter().filter(|m| m["method"] == method).count()
}

#[test]
fn server_requests_roots_list_needs_the_roots_capability() {
    // The control: a host that declared no roots still receives the server's request.
    let mut direct = Guard::unguarded(&lying(), &[]);
    direct.initialize("2025-06-18");
    let (seen, _) = ask(&mut direct, 1, "roots/list");
    assert_eq!(requests_of(&seen, "roots/list"), 1, "{seen:?}");

    // Guarded, without the capability: the host sees only the call's answer, the server gets
    // the same error as for an undeclared elicitation.
    let (mut g, _dir) = guarded("");
    start(&mut g, "2025-06-18", json!({"sampling": {}}));
    let (seen, roots) = ask(&mut g, 2, "roots/list");
    assert_eq!(requests_of(&seen, "roots/list"), 0, "{seen:?}");
    assert_eq!(roots["error"]["code"], -32601, "{roots}");
    let message = roots["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("did not declare the `roots` capability"),
        "{message}"
    );
    let (seen, elicitation) = ask(&mut g, 4, "elicitation/create");
    assert_eq!(requests_of(&seen, "elicitation/create"), 0, "{seen:?}");
    assert_eq!(elicitation["error"]["code"], -32601, "{elicitation}");

    // With the capability declared, it reaches the host.
    let (mut g, _dir) = guarded("");
    start(
        &mut g,
        "2025-06-18",
        json!({"roots": {"listChanged": true}}),
    );
    let (seen, _) = ask(&mut g, 2, "roots/list");
    assert_eq!(requests_of(&seen, "roots/list"), 1, "{seen:?}");
}

/// `echo` with a number for its string `text`.
fn bad_echo(g: &mut Guard, id: &str) -> Line {
    g.call_and_recv(id, "echo", json!({"text": 5}))
}

#[test]
fn arguments_failing_input_schema_are_a_tool_error_from_2025_11_25() {
    // The control: the lying server itself accepts anything, so the guard's answer is the check.
    let mut direct = Guard::unguarded(&lying(), &[]);
    direct.initialize("2025-11-25");
    let answer = bad_echo(&mut direct, "1").json();
    assert!(
        answer["result"].is_object() && answer["result"].get("isError").is_none(),
        "{answer}"
    );

    let (mut g, _dir) = guarded("");
    let init = start(&mut g, "2025-11-25", json!({}));
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    let answer = bad_echo(&mut g, "2").json();
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("do not match its inputSchema") && text.contains("text"),
        "{text}"
    );
    // An unknown tool is still a protocol error; a good call still works.
    g.call_and_recv("3", "secret_tool", json!({}))
        .assert_error("3", -32602);
    assert_eq!(
        g.call_and_recv("4", "echo", json!({"text": "ok"}))
            .assert_result("4"),
        "ok"
    );

    // 2025-06-18 keeps -32602.
    let (mut g, _dir) = guarded("");
    start(&mut g, "2025-06-18", json!({}));
    let refused = bad_echo(&mut g, "2");
    refused.assert_error("2", -32602);
    assert!(
        refused.error_message().contains("inputSchema"),
        "{}",
        refused.short()
    );
}

/// A real client, the TypeScript SDK (it negotiates 2025-11-25), against the lying server:
/// directly, then through the guard with its defaults.
#[test]
fn real_client_gets_clean_results_and_argument_errors_as_tool_errors() {
    use profile_support::{call, path_cmd, refused, run_json, with_server, Peers};
    let peers = Peers::get();
    let calls = json!([
        {"name": "raw", "arguments": {"result": {"content": [{"type": "text", "text": HIDDEN}]}}},
        {"name": "echo", "arguments": {"text": 5}},
    ]);
    let driver = peers.call_tools(&calls, &[]);
    let server = path_cmd(&lying(), &[]);
    let direct = run_json("TS client, direct", &with_server(&driver, &server));
    assert_eq!(call(&direct, 0)["text"], HIDDEN, "{direct}");
    assert!(!refused(call(&direct, 1)), "{direct}");

    let guard = profile_support::guarded(&["--allow-unsandboxed", "--no-audit"], &server);
    let through = run_json("TS client, guarded", &with_server(&driver, &guard));
    assert_eq!(call(&through, 0)["text"], VISIBLE, "{through}");
    let bad = call(&through, 1);
    assert_eq!(bad["isError"], true, "{through}");
    let text = bad["text"].as_str().unwrap_or_default();
    assert!(text.contains("do not match its inputSchema"), "{through}");
}
