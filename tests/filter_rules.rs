//! The message firewall through the real binary, against the lying test server: each rule's
//! refusal, with the allowed neighbour working beside it.

#[path = "relay_common/mod.rs"]
mod relay_common;
mod support;

use relay_common::{Guard, Line};
use serde_json::{json, Value};

fn lying(policy: &str) -> Guard {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, format!("version = 1\n{policy}")).expect("write policy");
    let path = path.display().to_string();
    // The firewall alone: lying-server changes its tools and poisons its instructions on
    // purpose, which trust on first use would hide (tests/pin_tofu.rs covers that).
    let guard = Guard::start(
        &["--policy", &path, "--no-pin"],
        &support::testkit_bin("lying-server"),
        &[],
    );
    // The policy is read at start-up; keep the file until the guard has read it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(dir);
    guard
}

/// `initialize` declaring the client capabilities the server may use.
fn init(guard: &mut Guard, capabilities: Value) -> Value {
    guard.send_json(
        &json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": capabilities,
        "clientInfo": {"name": "filter-test", "version": "0"}}}),
    );
    let answer = guard.recv().json();
    guard.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    answer
}

fn request(guard: &mut Guard, id: u64, method: &str, params: Value) -> Line {
    guard.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    guard.recv()
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list["result"][key]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| t[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn list_tools(guard: &mut Guard, id: u64) -> Value {
    request(guard, id, "tools/list", json!({})).json()
}

#[test]
fn filter_denied_tools_prompts_resources_are_hidden_and_refused() {
    let mut g = lying(
        "[tools]\ndeny = [\"delete_*\"]\n[prompts]\ndeny = [\"debug_*\"]\n\
         [resources]\ndeny = [\"file:///etc/**\"]\n",
    );
    init(&mut g, json!({}));
    let tools = names(&list_tools(&mut g, 1), "tools", "name");
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{tools:?}"
    );
    assert!(tools.contains(&"echo".to_owned()));
    g.call_and_recv("2", "delete_everything", json!({}))
        .assert_error("2", -32602);
    assert_eq!(
        g.call_and_recv("3", "echo", json!({"text": "hi"}))
            .assert_result("3"),
        "hi"
    );

    let prompts = request(&mut g, 4, "prompts/list", json!({})).json();
    assert_eq!(names(&prompts, "prompts", "name"), vec!["summarize"]);
    request(&mut g, 5, "prompts/get", json!({"name": "debug_dump"})).assert_error("5", -32602);
    let ok = request(&mut g, 6, "prompts/get", json!({"name": "summarize"})).json();
    assert!(ok["result"]["messages"].is_array(), "{ok}");

    let resources = request(&mut g, 7, "resources/list", json!({})).json();
    let uris = names(&resources, "resources", "uri");
    assert_eq!(uris, vec!["file:///srv/docs/a.txt", "memory://notes/1"]);
    let templates = request(&mut g, 8, "resources/templates/list", json!({})).json();
    assert_eq!(
        names(&templates, "resourceTemplates", "uriTemplate"),
        vec!["file:///srv/docs/{name}"]
    );
    for (id, uri) in [
        (9, "file:///etc/passwd"),
        (10, "FILE:///etc/passwd"),
        (11, "file:///srv/docs/%2e%2e/%2e%2e/etc/passwd"),
        (12, "file:///srv/docs/..%2f..%2fetc/passwd"),
        (13, "file:///srv/docs/%c0%ae%c0%ae/etc/passwd"),
        (14, "file:///srv/docs\\..\\..\\etc\\passwd"),
    ] {
        request(&mut g, id, "resources/read", json!({"uri": uri}))
            .assert_error(&id.to_string(), -32602);
    }
    let read = request(
        &mut g,
        20,
        "resources/read",
        json!({"uri": "memory://notes/1"}),
    )
    .json();
    assert!(read["result"]["contents"].is_array(), "{read}");
}

#[test]
fn filter_file_roots_and_argument_rules() {
    let mut g = lying(
        "[resources]\nfile_roots = [\"/srv/docs\"]\n\
         [tools.arguments.read_file]\npath = { under = [\"/srv/docs\"], max_length = 64 }\n\
         [tools.arguments.echo]\ntext = { pattern = '[a-z ]*' }\n",
    );
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    let read = request(
        &mut g,
        2,
        "resources/read",
        json!({"uri": "file:///srv/docs/a.txt"}),
    );
    assert!(read.json()["result"].is_object(), "{}", read.short());
    request(
        &mut g,
        3,
        "resources/read",
        json!({"uri": "file:///etc/passwd"}),
    )
    .assert_error("3", -32602);
    let ok = g.call_and_recv("4", "read_file", json!({"path": "/srv/docs/a.txt"}));
    assert_eq!(ok.assert_result("4"), "read /srv/docs/a.txt");
    for (id, path) in [
        ("5", "/etc/passwd"),
        ("6", "/srv/docs/../../etc/passwd"),
        ("7", "srv/docs/a"),
        ("8", "/srv/docs-evil/a"),
    ] {
        g.call_and_recv(id, "read_file", json!({"path": path}))
            .assert_error(id, -32602);
    }
    let long = format!("/srv/docs/{}", "a".repeat(80));
    g.call_and_recv("9", "read_file", json!({"path": long}))
        .assert_error("9", -32602);
    g.call_and_recv("10", "echo", json!({"text": "UPPER"}))
        .assert_error("10", -32602);
    g.call_and_recv("11", "echo", json!({"text": "a\u{0}b"}))
        .assert_error("11", -32602);
    assert_eq!(
        g.call_and_recv("12", "echo", json!({"text": "lower"}))
            .assert_result("12"),
        "lower"
    );
}

#[test]
fn filter_schema_and_input_schema() {
    let mut g = lying("");
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    // Host → server: a tools/call without a name breaks the schema.
    g.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}}"#);
    g.recv().assert_error("2", -32602);
    // Arguments against the tool's inputSchema.
    g.call_and_recv("3", "echo", json!({"text": 5}))
        .assert_error("3", -32602);
    g.call_and_recv("4", "echo", json!({}))
        .assert_error("4", -32602);
    // A tool the server did not list.
    g.call_and_recv("5", "secret_tool", json!({}))
        .assert_error("5", -32602);
    assert_eq!(
        g.call_and_recv("6", "echo", json!({"text": "ok"}))
            .assert_result("6"),
        "ok"
    );
    // Server → host: a schema fault is forwarded by default (real servers keep working).
    let bad = g.call_and_recv("7", "bad_result", json!({})).json();
    assert_eq!(bad["result"]["content"][0]["text"], "no type", "{bad}");
    // structuredContent against outputSchema; content types.
    let lie = g.call_and_recv("8", "add", json!({"a": 13, "b": 1}));
    lie.assert_error("8", -32603);
    let sum = g.call_and_recv("9", "add", json!({"a": 1, "b": 2})).json();
    assert_eq!(sum["result"]["structuredContent"]["sum"], 3.0, "{sum}");
    g.call_and_recv("10", "weird_type", json!({}))
        .assert_error("10", -32603);
}

#[test]
fn filter_tools_that_change_after_listing() {
    let mut g = lying("");
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    let changed = g.call_and_recv("2", "change_tools", json!({"notify": true}));
    assert_eq!(changed.assert_result("2"), "changed");
    let note = g.recv().json();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    list_tools(&mut g, 3);
    // The new listing requires `count`: the old call shape is now refused.
    g.call_and_recv("4", "echo", json!({"text": "x"}))
        .assert_error("4", -32602);
    let ok = g.call_and_recv("5", "echo", json!({"text": "x", "count": 1}));
    assert_eq!(ok.assert_result("5"), "x");
}

#[test]
fn filter_descriptions_and_instructions_are_sanitised() {
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("audit.jsonl");
    let mut g = lying(&format!(
        "[audit]\npath = {:?}\n",
        log.display().to_string()
    ));
    let init = init(&mut g, json!({}));
    let instructions = init["result"]["instructions"].as_str().unwrap_or_default();
    assert!(!instructions.contains('\u{1b}'), "{instructions:?}");
    assert!(
        instructions.starts_with("Use these tools."),
        "{instructions:?}"
    );
    let tools = list_tools(&mut g, 1);
    let poisoned = tools["result"]["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "poisoned"))
        .map(|t| t["description"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    assert!(poisoned.starts_with("Adds numbers."), "{poisoned:?}");
    for hidden in ['\u{1b}', '\u{202e}', '\u{e0041}', '\u{200b}'] {
        assert!(!poisoned.contains(hidden), "{hidden:?} in {poisoned:?}");
    }
    // Injection text is flagged, not rewritten; the neighbour's description is untouched.
    assert!(poisoned.contains("Ignore all previous instructions"));
    let echo = tools["result"]["tools"][0]["description"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(echo, "Echo a text");
    assert!(g.stderr_text().contains("injection"), "{}", g.stderr_text());
    // The audit log rates both as docs/ci-scan.md does: high.
    g.close_stdin();
    g.wait_exit(std::time::Duration::from_secs(10));
    let findings: Vec<Value> = std::fs::read_to_string(&log)
        .expect("audit log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "finding")
        .collect();
    for kind in ["sanitized", "injection"] {
        let found: Vec<&Value> = findings.iter().filter(|e| e["kind"] == kind).collect();
        assert!(!found.is_empty(), "no {kind} finding: {findings:?}");
        assert!(found.iter().all(|e| e["severity"] == "high"), "{found:?}");
    }
}

#[test]
fn filter_secrets_are_redacted_both_ways() {
    let mut g = lying("[redaction]\nallow = ['AKIAIOSFODNN7EXAMPLE']\n[redaction.patterns]\ninternal = 'itk_[a-z]{8}'\n");
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    let text = g.call_and_recv("2", "leak", json!({})).assert_result("2");
    for kind in ["github_token", "connection_string_password", "private_key"] {
        assert!(
            text.contains(&format!("[REDACTED:{kind}]")),
            "{kind}: {text}"
        );
    }
    assert!(
        !text.contains("hunter2secret") && !text.contains("ghp_0123"),
        "{text}"
    );
    // The allow-listed example key stays.
    assert!(text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
    // Host → server: the policy's own pattern.
    let echoed = g.call_and_recv("3", "echo", json!({"text": "key itk_abcdefgh end"}));
    assert_eq!(echoed.assert_result("3"), "key [REDACTED:internal] end");
    let plain = g.call_and_recv("4", "echo", json!({"text": "nothing secret"}));
    assert_eq!(plain.assert_result("4"), "nothing secret");
    // Over the size the relay parses into a tree at once (256 KiB): checked all the same.
    let padding = "x".repeat(300 * 1024);
    let text = format!("key itk_abcdefgh {padding}");
    let big = g.call_and_recv("5", "echo", json!({ "text": text }));
    assert_eq!(
        big.assert_result("5"),
        format!("key [REDACTED:internal] {padding}")
    );
}

#[test]
fn filter_server_requests_follow_policy_and_capabilities() {
    let mut g = lying("[server_requests]\nsampling = \"deny\"\nroots = \"allow\"\n");
    init(&mut g, json!({"sampling": {}, "roots": {}}));
    list_tools(&mut g, 1);
    // Denied by policy: the host sees only the call's result; the server gets an error.
    let r = g.call_and_recv("2", "ask", json!({"method": "sampling/createMessage"}));
    assert_eq!(r.assert_result("2"), "asked");
    g.expect_silence(std::time::Duration::from_millis(200));
    let last = g
        .call_and_recv("3", "last_response", json!({}))
        .assert_result("3");
    let last: Value = serde_json::from_str(&last).unwrap_or_default();
    assert_eq!(last["error"]["code"], -32601, "{last}");
    // Not declared by the host: elicitation.
    g.call_and_recv("4", "ask", json!({"method": "elicitation/create"}));
    g.expect_silence(std::time::Duration::from_millis(200));
    // Allowed and declared: roots/list reaches the host.
    g.call(r#"5"#, "ask", json!({"method": "roots/list"}));
    let first = g.recv().json();
    let second = g.recv().json();
    let request = if first.get("method").is_some() {
        first
    } else {
        second
    };
    assert_eq!(request["method"], "roots/list", "{request}");
    // 2026-07-28 input requests inside a result: same policy.
    g.call_and_recv(
        "6",
        "ask_input",
        json!({"method": "sampling/createMessage"}),
    )
    .assert_error("6", -32603);
    let ok = g
        .call_and_recv("7", "ask_input", json!({"method": "roots/list"}))
        .json();
    assert_eq!(ok["result"]["resultType"], "input_required", "{ok}");
}

#[test]
fn filter_rate_limit_answers_retry_after() {
    let mut g = lying("[tools]\nrate_limit = \"3/min\"\n");
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    for id in ["2", "3", "4"] {
        g.call_and_recv(id, "echo", json!({"text": "x"}))
            .assert_result(id);
    }
    let refused = g.call_and_recv("5", "echo", json!({"text": "x"}));
    refused.assert_error("5", -32003);
    let v = refused.json();
    assert_eq!(v["error"]["message"], "Rate limit exceeded");
    let retry = v["error"]["data"]["retryAfter"].as_f64().unwrap_or(0.0);
    assert!(retry > 0.0 && retry <= 20.0, "{v}");
    // Other methods have their own (here: no) bucket.
    let prompt = request(&mut g, 6, "prompts/get", json!({"name": "summarize"})).json();
    assert!(prompt["result"].is_object(), "{prompt}");
}

#[test]
fn filter_error_messages_sanitised_on_request() {
    let mut g = lying("[errors]\nsanitize = true\n");
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    let e = g.call_and_recv("2", "error_leak", json!({}));
    e.assert_error("2", -32603);
    assert_eq!(e.error_message(), "Internal error");
    assert!(e.json()["error"].get("data").is_none(), "{}", e.short());

    let mut plain = lying("");
    init(&mut plain, json!({}));
    list_tools(&mut plain, 1);
    let e = plain.call_and_recv("2", "error_leak", json!({}));
    assert!(e.error_message().contains("ENOENT"), "{}", e.short());
}

/// The guard's stderr once it contains `needle` (it is read on another thread: wait a little).
fn stderr_with(guard: &Guard, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = guard.stderr_text();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in stderr:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A `tools/call` result the lying server returns exactly as given.
fn raw(guard: &mut Guard, id: &str, result: Value) -> Line {
    guard.call_and_recv(id, "raw", json!({ "result": result }))
}

#[test]
fn filter_strict_refuses_invalid_server_results_default_forwards_them() {
    let untyped = json!({"content": [{"text": "no type"}]});
    let mut g = lying("[validation]\nstrict = true\n");
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    let refused = raw(&mut g, "2", untyped.clone());
    refused.assert_error("2", -32603);
    assert!(
        refused
            .error_message()
            .contains("does not conform to the MCP"),
        "{}",
        refused.short()
    );
    // The valid neighbour passes, and the session goes on.
    assert_eq!(
        g.call_and_recv("3", "echo", json!({"text": "fine"}))
            .assert_result("3"),
        "fine"
    );

    // Without `strict` (the built-in default) the same result reaches the host, recorded.
    let mut plain = lying("");
    init(&mut plain, json!({}));
    list_tools(&mut plain, 1);
    let forwarded = raw(&mut plain, "2", untyped).json();
    assert_eq!(forwarded["result"]["content"][0]["text"], "no type");
    stderr_with(&plain, "does not conform");
}

#[test]
fn filter_tolerated_faults_pass_strict_other_faults_do_not() {
    let mut g = lying(
        "[validation]\nstrict = true\n\
         tolerate = [\"null-optional-fields\", \"content-without-type\", \"tool-without-input-schema\"]\n",
    );
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    // Tolerated, alone and together: forwarded as sent.
    let sloppy = json!({"content": [{"text": "a", "annotations": null}, {"type": "text", "text": "b"}], "isError": null});
    let passed = raw(&mut g, "2", sloppy.clone()).json();
    assert_eq!(passed["result"], sloppy, "{passed}");
    // The same kinds of message with a fault that is not tolerated beside them.
    for (id, result) in [
        // An untyped item whose annotations are wrong too.
        (
            "3",
            json!({"content": [{"text": "a", "annotations": {"priority": "high"}}]}),
        ),
        // null for an optional field, and a text that is not a string.
        (
            "4",
            json!({"content": [{"type": "text", "text": 5}], "isError": null}),
        ),
        // null for a required field is no optional field.
        ("5", json!({"content": null})),
    ] {
        raw(&mut g, id, result).assert_error(id, -32603);
    }
    // A listing with a tool without inputSchema passes; its calls are not checked.
    g.call_and_recv(
        "6",
        "extra_tools",
        json!({"tools": [{"name": "bare", "description": "No schema"}]}),
    )
    .assert_result("6");
    let tools = names(&list_tools(&mut g, 7), "tools", "name");
    assert!(tools.contains(&"bare".to_owned()), "{tools:?}");
    // A listing where that tool also has a description that is not a string is refused.
    g.call_and_recv(
        "8",
        "extra_tools",
        json!({"tools": [{"name": "bare", "description": 5}]}),
    )
    .assert_result("8");
    request(&mut g, 9, "tools/list", json!({})).assert_error("9", -32603);

    // Without strict, tolerated faults are not even recorded; the others are.
    let mut plain = lying("[validation]\ntolerate = [\"content-without-type\"]\n");
    init(&mut plain, json!({}));
    list_tools(&mut plain, 1);
    raw(&mut plain, "2", json!({"content": [{"text": "a"}]})).assert_result("2");
    let other = raw(
        &mut plain,
        "3",
        json!({"content": [{"type": "text", "text": "a"}], "isError": null}),
    );
    assert_eq!(other.json()["result"]["content"][0]["text"], "a");
    let stderr = stderr_with(&plain, "does not conform");
    assert!(
        stderr.contains("isError") && !stderr.contains("\"type\" is a required property"),
        "{stderr}"
    );
}

#[test]
fn filter_require_listing_refuses_unlisted_tool_calls() {
    // The default: before the host lists the tools, the guard lists them itself, so a listed
    // tool is checked and served, and an unlisted one is refused even before any host listing.
    let mut g = lying("");
    init(&mut g, json!({}));
    assert_eq!(
        g.call_and_recv("1", "echo", json!({"text": "early"}))
            .assert_result("1"),
        "early"
    );
    let refused = g.call_and_recv("2", "secret_tool", json!({}));
    refused.assert_error("2", -32602);
    assert!(
        refused.short().contains("did not list"),
        "{}",
        refused.short()
    );
    list_tools(&mut g, 3);
    assert_eq!(
        g.call_and_recv("4", "echo", json!({"text": "listed"}))
            .assert_result("4"),
        "listed"
    );
    g.call_and_recv("5", "secret_tool", json!({}))
        .assert_error("5", -32602);

    // `require_listing = false` forwards a call made before any listing, unchecked.
    let mut plain = lying("[validation]\nrequire_listing = false\n");
    init(&mut plain, json!({}));
    let answer = plain.call_and_recv("1", "secret_tool", json!({}));
    // The server's own answer: the call reached it.
    assert!(
        answer.short().contains("Unknown tool: secret_tool"),
        "{}",
        answer.short()
    );
}

/// The host reuses the id of a call still in flight. The ledger refuses the second call before
/// any stage or the audit sees it as forwarded, and the first call's answer is still checked
/// against the first tool's `outputSchema` (it used to be checked against the second tool's,
/// or not at all, and the audit logged the refused call as forwarded).
#[test]
fn a_reused_id_in_flight_is_refused_before_any_stage_and_the_first_answer_keeps_its_tool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let mut g = Guard::start(
        &["--no-pin", "--audit-log", &audit.display().to_string()],
        &support::testkit_bin("lying-server"),
        &[],
    );
    init(&mut g, json!({}));
    list_tools(&mut g, 1);
    // `add` with a = 13 answers a string sum, against its outputSchema; `echo` has none.
    let add = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 13, "b": 1}}});
    let echo = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}}});
    // One write: the guard judges both lines before the server can answer the first.
    g.send_bytes(format!("{add}\n{echo}\n").as_bytes());
    let answers = [g.recv().json(), g.recv().json()];
    let codes: Vec<i64> = answers
        .iter()
        .map(|a| a["error"]["code"].as_i64().unwrap_or(0))
        .collect();
    assert!(
        codes.contains(&-32600),
        "the second call must be refused as a duplicate id: {answers:?}"
    );
    assert!(
        codes.contains(&-32603),
        "the first call's answer must be checked against add's outputSchema: {answers:?}"
    );
    // The server saw one call with id 5, never the second.
    let after = g.call_and_recv("6", "echo", json!({"text": "after"}));
    assert_eq!(after.assert_result("6"), "after");
    g.close_stdin();
    g.wait_exit(std::time::Duration::from_secs(10));
    let log = std::fs::read_to_string(&audit).expect("audit log");
    let calls: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "request" && e["id"] == "5")
        .collect();
    let decisions: Vec<(&str, &str)> = calls
        .iter()
        .map(|e| {
            (
                e["tool"].as_str().unwrap_or(""),
                e["decision"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [("add", "forward"), ("echo", "refuse")],
        "audit lines of the two calls with id 5: {calls:?}"
    );
}
