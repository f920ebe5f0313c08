//! The OpenTelemetry sink (issue 19): with `[audit] otlp_endpoint` or the guard's own
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, each audit event reaches the collector as an OTLP log record
//! and the session's counters as OTLP metrics; without it nothing is sent; a dead collector
//! costs the telemetry, never the session.

mod relay_common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_common::{echo_bin, Guard};
use serde_json::{json, Value};

/// A fake collector on 127.0.0.1: records the path and the body of every POST.
struct Collector {
    url: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Collector { url, received }
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// HTTP/1.1 with keep-alive: one request after another on the connection.
fn serve(stream: TcpStream, sink: &Mutex<Vec<(String, Value)>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        sink.lock().unwrap().push((path, body));
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A forwarded call and a refused one through the echo server; the guard's stderr.
fn session(env: &[(&str, &str)], policy: &Path, extra: &[&str]) -> String {
    let policy_arg = policy.display().to_string();
    let mut args = vec!["--allow-unsandboxed", "--no-pin", "--policy", &policy_arg];
    args.extend_from_slice(extra);
    let mut guard = Guard::start_run(env, &args, &echo_bin(), &[]);
    guard.initialize("2025-06-18");
    guard.call_and_recv("2", "echo", json!({"text": "hi"}));
    guard.call("3", "delete_all", json!({}));
    guard.recv().assert_error("3", -32602);
    guard.close_stdin();
    assert_eq!(guard.exit_code(Duration::from_secs(15)), 0);
    guard.stderr_text()
}

fn policy(dir: &Path, audit: &str) -> std::path::PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!("version = 1\n[tools]\ndeny = [\"delete_*\"]\n[audit]\n{audit}"),
    )
    .unwrap();
    path
}

/// Every log record of every request, with its attributes as a map.
fn records(collector: &Collector) -> Vec<(Value, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    for body in collector.bodies("/v1/logs") {
        for rl in body["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for r in sl["logRecords"].as_array().into_iter().flatten() {
                    out.push((rl["resource"].clone(), attributes(&r["attributes"])));
                }
            }
        }
    }
    out
}

/// OTLP/JSON `[{key, value: {stringValue | intValue …}}]` as `{key: value}`.
fn attributes(list: &Value) -> serde_json::Map<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let value = kv["value"].as_object()?.values().next()?.clone();
            Some((kv["key"].as_str()?.to_owned(), value))
        })
        .collect()
}

/// `name` → the data points' (attributes, value) of every metrics request.
fn sums(collector: &Collector, name: &str) -> Vec<(serde_json::Map<String, Value>, u64)> {
    let mut out = Vec::new();
    for body in collector.bodies("/v1/metrics") {
        for rm in body["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    if m["name"] != name {
                        continue;
                    }
                    for p in m["sum"]["dataPoints"].as_array().into_iter().flatten() {
                        let value = match &p["asInt"] {
                            Value::String(s) => s.parse().unwrap(),
                            v => v.as_u64().unwrap(),
                        };
                        out.push((attributes(&p["attributes"]), value));
                    }
                }
            }
        }
    }
    out
}

fn wait_for(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !what() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn events_and_counters_reach_the_collector() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        dir.path(),
        &format!("otlp_endpoint = \"{}\"\n", collector.url),
    );
    session(&[], &policy, &[]);
    wait_for(|| !collector.bodies("/v1/metrics").is_empty());
    let records = records(&collector);
    let (resource, _) = records.first().expect("log records arrived");
    let resource = attributes(&resource["attributes"]);
    assert_eq!(resource["service.name"], "mcp-guard", "{resource:?}");
    assert!(resource.contains_key("host.name"), "{resource:?}");
    assert!(
        resource["mcp_guard.server.command"]
            .to_string()
            .contains("echo-server"),
        "{resource:?}"
    );
    let call = |tool: &str, decision: &str| {
        records.iter().any(|(_, a)| {
            a.get("gen_ai.tool.name") == Some(&json!(tool))
                && a.get("mcp.method.name") == Some(&json!("tools/call"))
                && a.get("mcp_guard.decision") == Some(&json!(decision))
                && a.get("mcp.session.id").is_some_and(|s| s != "")
        })
    };
    assert!(call("echo", "forward"), "{records:?}");
    assert!(call("delete_all", "refuse"), "{records:?}");
    let events: Vec<&Value> = records
        .iter()
        .filter_map(|(_, a)| a.get("mcp_guard.event"))
        .collect();
    assert!(events.contains(&&json!("session_start")), "{events:?}");
    assert!(events.contains(&&json!("session_end")), "{events:?}");

    let one = |name: &str| {
        let points = sums(&collector, name);
        points
            .iter()
            .map(|(_, v)| *v)
            .max()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert!(one("mcp_guard.messages") >= 4);
    assert!(one("mcp_guard.forwarded") >= 3);
    let refused = sums(&collector, "mcp_guard.refused");
    assert!(
        refused
            .iter()
            .any(|(a, v)| *v == 1 && a.contains_key("mcp_guard.refusal.reason")),
        "{refused:?}"
    );
}

#[test]
fn the_standard_variable_turns_it_on_but_not_the_servers_env() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), "");
    // The control first: given to the server only, the variable sends nothing.
    let env_arg = format!("OTEL_EXPORTER_OTLP_ENDPOINT={}", collector.url);
    session(&[], &policy, &["--env", &env_arg]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(collector.received.lock().unwrap().is_empty());
    // In the guard's own environment it does.
    session(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)],
        &policy,
        &[],
    );
    wait_for(|| !collector.bodies("/v1/metrics").is_empty());
    assert!(!records(&collector).is_empty());
}

#[test]
fn nothing_is_sent_without_the_setting_or_with_an_empty_one() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    session(&[], &policy(dir.path(), ""), &[]);
    // `""` in the policy wins over the environment.
    session(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)],
        &policy(dir.path(), "otlp_endpoint = \"\"\n"),
        &[],
    );
    // `--no-audit` records nothing, so nothing is exported either.
    session(
        &[],
        &policy(
            dir.path(),
            &format!("otlp_endpoint = \"{}\"\n", collector.url),
        ),
        &["--no-audit"],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(collector.received.lock().unwrap().is_empty());
}

#[test]
fn a_dead_collector_costs_the_telemetry_not_the_session() {
    // A port that was free a moment ago: connections are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let log_arg = log.display().to_string();
    let policy = policy(
        dir.path(),
        &format!("otlp_endpoint = \"http://127.0.0.1:{port}\"\n"),
    );
    let started = Instant::now();
    let stderr = session(&[], &policy, &["--audit-log", &log_arg]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let warnings = stderr.matches("cannot send telemetry").count();
    assert_eq!(warnings, 1, "{stderr}");
    // The file log is written as usual.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("\"delete_all\""), "{log}");
}

#[test]
fn a_collector_that_never_answers_does_not_slow_the_relay() {
    // Accepts connections and reads nothing: every export waits for its timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().flatten().collect();
        drop(held);
    });
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &format!("otlp_endpoint = \"{url}\"\n"));
    let policy_arg = policy.display().to_string();
    let mut guard = Guard::start_run(
        &[],
        &["--allow-unsandboxed", "--no-pin", "--policy", &policy_arg],
        &echo_bin(),
        &[],
    );
    guard.initialize("2025-06-18");
    // Past the batch processor's 1 s delay: its first export is now waiting on the collector.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    for n in 0..50 {
        guard.call_and_recv(&(n + 2).to_string(), "echo", json!({"text": "hi"}));
    }
    // 50 round trips while the exporter is stuck on its first batch.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    guard.close_stdin();
    // The exit waits for the last batch a bounded time (2 × the 3 s export timeout).
    let exiting = Instant::now();
    assert_eq!(guard.exit_code(Duration::from_secs(15)), 0);
    assert!(
        exiting.elapsed() < Duration::from_secs(9),
        "{:?}",
        exiting.elapsed()
    );
}

#[test]
fn policy_check_refuses_an_endpoint_the_exporter_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let check = |endpoint: &str| {
        let path = policy(dir.path(), &format!("otlp_endpoint = \"{endpoint}\"\n"));
        let out = std::process::Command::new(support::guard_bin())
            .args(["policy", "check"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = check("https://collector:4318");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("otlp_endpoint") && stderr.contains("https://"),
        "{stderr}"
    );
    // The control: a plain http:// collector is fine.
    let (code, stderr) = check("http://collector:4318");
    assert_eq!(code, Some(0), "{stderr}");
}
