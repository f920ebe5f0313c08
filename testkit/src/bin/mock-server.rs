//! A scripted, misbehaving MCP server for mcp-guard's relay tests.
//!
//! It answers `initialize`, `tools/list` and `ping` normally; each `tools/call` performs the
//! misbehaviour named by the tool (see [`TOOLS`]). Ids are echoed back as the exact JSON text
//! received, so big integers and `"007"` survive. Introspection tools (`stats`,
//! `cancelled_log`) report what the server itself saw, which lets a test check what the guard
//! forwarded, cancelled or dropped.
//!
//! Startup flags (all `--name=value`):
//! - `--banner`: print junk lines on stdout before reading anything.
//! - `--exit-on-eof=false`: keep living after stdin closes (default true).
//! - `--eof-exit-code=N`: exit status on stdin EOF (default 0).
//! - `--log=PATH`: append events (`start <pid>`, `eof`, `sigterm`) to PATH.
//! - `--sigterm=MODE`: `default`, `log` (log, then die of SIGTERM), `ignore` (SIG_IGN),
//!   `log-ignore` (log and keep running).
//! - `--protocol-version=V`: the protocolVersion answered to `initialize` (default: the
//!   client's).
//! - `--tools-list=MODE`: how `tools/list` is answered: `normal` (default), `paged` (two pages,
//!   the second after `nextCursor`), `error` (-32601), `never` (no answer).

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Tool names, each one misbehaviour (arguments in parentheses).
const TOOLS: &[&str] = &[
    "ok",             // answer "ok"
    "echo",           // answer with arguments.text
    "notify",         // send a notifications/message, then answer
    "garbage",        // print non-JSON / non-JSON-RPC lines on stdout, then answer
    "crash",          // exit(arguments.code, default 3) without answering
    "crash_signal",   // die of arguments.signal ("SEGV", "KILL", "TERM"...)
    "never",          // never answer
    "delay",          // answer after arguments.ms, without blocking the reader
    "sleep",          // block the reader for arguments.ms, then answer
    "spoof",          // answer with wrong ids, then with the right one
    "near_ids", // answer ids that look like the right one (string/number, last digit), then it
    "duplicate", // answer the same id twice
    "huge",     // a result line of arguments.bytes (default 20 MiB); arguments.wrong_id
    "progress", // arguments.count progress notifications every arguments.ms, then answer
    "partial_exit", // write half a response line without newline, then exit(0)
    "complete_exit", // write the whole response without newline, then exit(0)
    "spawn_child", // spawn `sleep 1000`, write "<own pid> <child pid>" to arguments.path
    "ignore_sigterm", // SIG_IGN for SIGTERM, then answer
    "server_request", // send a request (arguments.method, default roots/list) to the client;
    // answer the call with the client's response line once it arrives
    "server_batch", // answer, then write arguments.line (e.g. a batch of requests to the client)
    "stdout_close", // close stdout (to /dev/null) and keep living, never answering
    "request_flood", // write arguments.count requests all with id "dup", then never read again
    "stats", // answer with what the server saw (lines, max_line, calls, cancelled, responses)
    "cancelled_log", // answer with the JSON list of cancelled requestIds received
];

static LOG_FD: AtomicI32 = AtomicI32::new(-1);
static SIGTERM_MODE: AtomicU8 = AtomicU8::new(0);
const SIGTERM_LOG: u8 = 1;
const SIGTERM_LOG_IGNORE: u8 = 2;

struct Options {
    banner: bool,
    exit_on_eof: bool,
    eof_exit_code: i32,
    protocol_version: Option<String>,
    tools_list: String,
}

/// The server's stdout, shared with the threads that answer late.
#[derive(Clone)]
struct Out(Arc<Mutex<std::io::Stdout>>);

impl Out {
    fn bytes(&self, bytes: &[u8]) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }

    fn line(&self, line: &str) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.bytes(&buf);
    }
}

#[derive(Default)]
struct State {
    lines: u64,
    max_line: usize,
    unparsed: u64,
    calls: Vec<Value>,
    cancelled: Vec<String>,
    responses: Vec<String>,
    /// The batch (array) lines received, as received.
    batches: Vec<String>,
    /// The raw ids of the `tools/list` requests received, and their params.
    tools_lists: Vec<Value>,
    next_server_id: u64,
    /// Our requests to the client, by id text, with the raw id of the tool call to answer.
    server_requests: HashMap<String, String>,
}

fn main() {
    let options = parse_options();
    let out = Out(Arc::new(Mutex::new(std::io::stdout())));
    log_event(&format!("start {}", std::process::id()));
    if options.banner {
        out.bytes(b"mock-server 0.0.0 starting up\n\x1b[32mready\x1b[0m\n{\"not\":\"jsonrpc\"}\n");
    }
    let mut state = State::default();
    let stdin = std::io::stdin();
    let mut reader = BufReader::with_capacity(1 << 16, stdin.lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        state.lines += 1;
        state.max_line = state.max_line.max(line.len());
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        handle_line(&line, &options, &out, &mut state);
    }
    log_event("eof");
    if !options.exit_on_eof {
        loop {
            std::thread::sleep(Duration::from_secs(1000));
        }
    }
    std::process::exit(options.eof_exit_code);
}

fn parse_options() -> Options {
    let mut options = Options {
        banner: false,
        exit_on_eof: true,
        eof_exit_code: 0,
        protocol_version: None,
        tools_list: "normal".into(),
    };
    for arg in std::env::args().skip(1) {
        let (name, value) = arg.split_once('=').unwrap_or((&arg, ""));
        match name {
            "--banner" => options.banner = true,
            "--exit-on-eof" => options.exit_on_eof = value != "false",
            "--eof-exit-code" => options.eof_exit_code = value.parse().expect("--eof-exit-code=N"),
            "--protocol-version" => options.protocol_version = Some(value.to_owned()),
            "--tools-list" => options.tools_list = value.to_owned(),
            "--log" => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(PathBuf::from(value))
                    .expect("--log=PATH must be writable");
                LOG_FD.store(file.as_raw_fd(), Ordering::SeqCst);
                std::mem::forget(file);
            }
            "--sigterm" => match value {
                "default" => {}
                "log" | "log-ignore" => {
                    let mode = if value == "log" {
                        SIGTERM_LOG
                    } else {
                        SIGTERM_LOG_IGNORE
                    };
                    SIGTERM_MODE.store(mode, Ordering::SeqCst);
                    // SAFETY: the handler only makes async-signal-safe calls.
                    unsafe {
                        libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t)
                    };
                }
                "ignore" => {
                    // SAFETY: setting a signal disposition.
                    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
                }
                other => panic!("unknown --sigterm mode {other}"),
            },
            other => panic!("mock-server: unknown option {other}"),
        }
    }
    options
}

extern "C" fn on_sigterm(_: libc::c_int) {
    let fd = LOG_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let msg = b"sigterm\n";
        // SAFETY: write(2) is async-signal-safe; the buffer is static.
        unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
    }
    if SIGTERM_MODE.load(Ordering::SeqCst) == SIGTERM_LOG {
        // SAFETY: signal(2) and raise(3) are async-signal-safe.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::raise(libc::SIGTERM);
        }
    }
}

fn log_event(event: &str) {
    let fd = LOG_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let line = format!("{event}\n");
        // SAFETY: fd is the log file, open for the life of the process.
        unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
    }
}

type Fields = BTreeMap<String, Box<RawValue>>;

fn handle_line(line: &[u8], options: &Options, out: &Out, state: &mut State) {
    if line.first() == Some(&b'[') {
        state
            .batches
            .push(String::from_utf8_lossy(line).into_owned());
        let Ok(items) = serde_json::from_slice::<Vec<Fields>>(line) else {
            state.unparsed += 1;
            return;
        };
        let mut replies = Vec::new();
        for item in items {
            handle_message(&item, options, out, state, Some(&mut replies));
        }
        if !replies.is_empty() {
            out.line(&format!("[{}]", replies.join(",")));
        }
        return;
    }
    match serde_json::from_slice::<Fields>(line) {
        Ok(fields) => handle_message(&fields, options, out, state, None),
        Err(_) => state.unparsed += 1,
    }
}

fn result_line(id: &str, result: &Value) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

fn handle_message(
    fields: &Fields,
    options: &Options,
    out: &Out,
    state: &mut State,
    mut batch: Option<&mut Vec<String>>,
) {
    let parse = |name: &str| -> Value {
        fields
            .get(name)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null)
    };
    let method = parse("method");
    let params = parse("params");
    let Some(id) = fields.get("id").map(|raw| raw.get().to_owned()) else {
        if method == "notifications/cancelled" {
            state.cancelled.push(params["requestId"].to_string());
        }
        return;
    };
    let Some(method) = method.as_str() else {
        // A response to one of our requests.
        let line = serde_json::to_string(fields).unwrap_or_default();
        state.responses.push(line.clone());
        if let Some(call_id) = state.server_requests.remove(&id) {
            out.line(&result_line(&call_id, &text_result(&line)));
        }
        return;
    };
    let mut reply = |line: String| match batch.as_deref_mut() {
        Some(replies) => replies.push(line),
        None => out.line(&line),
    };
    match method {
        "initialize" => {
            let version = options
                .protocol_version
                .clone()
                .or_else(|| params["protocolVersion"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "2025-06-18".to_owned());
            reply(result_line(
                &id,
                &json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "mock-server", "version": "0.0.0"}
                }),
            ));
        }
        "tools/list" => {
            state
                .tools_lists
                .push(json!({"id": id.to_string(), "params": params.clone()}));
            let tools: Vec<Value> = TOOLS
                .iter()
                .map(|name| json!({"name": name, "inputSchema": {"type": "object"}}))
                .collect();
            let (first, second) = tools.split_at(tools.len() / 2);
            match options.tools_list.as_str() {
                "never" => {}
                "error" => reply(format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"Method not found"}}}}"#
                )),
                "paged" if params["cursor"] == "page-2" => {
                    reply(result_line(&id, &json!({ "tools": second })))
                }
                "paged" => reply(result_line(
                    &id,
                    &json!({ "tools": first, "nextCursor": "page-2" }),
                )),
                _ => reply(result_line(&id, &json!({ "tools": tools }))),
            }
        }
        "ping" => reply(result_line(&id, &json!({}))),
        "tools/call" => {
            let name = params["name"].as_str().unwrap_or_default().to_owned();
            state.calls.push(json!({"name": name, "id": id}));
            let args = &params["arguments"];
            let token = params["_meta"]["progressToken"].clone();
            call_tool(&name, args, token, &id, out, state, &mut reply);
        }
        _ => reply(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"method not found"}}}}"#
        )),
    }
}

fn arg_u64(args: &Value, name: &str, default: u64) -> u64 {
    args[name].as_u64().unwrap_or(default)
}

fn call_tool(
    name: &str,
    args: &Value,
    token: Value,
    id: &str,
    out: &Out,
    state: &mut State,
    reply: &mut dyn FnMut(String),
) {
    let ok = result_line(id, &text_result("ok"));
    match name {
        "ok" => reply(ok),
        "echo" => reply(result_line(
            id,
            &text_result(args["text"].as_str().unwrap_or_default()),
        )),
        "notify" => {
            out.line(
                r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hello from mock"}}"#,
            );
            reply(ok);
        }
        "garbage" => {
            out.bytes(b"Starting server... (this is not JSON)\n");
            out.bytes(b"{\"hello\":\"world\"}\n");
            out.bytes(b"{\"jsonrpc\":\"2.0\"}\n");
            out.bytes(b"\xff\xfe not utf-8 \xc3\x28\n");
            out.bytes(b"42\n");
            out.bytes(b"{\"jsonrpc\":\"1.0\",\"method\":\"notifications/message\"}\n");
            reply(ok);
        }
        "crash" => std::process::exit(arg_u64(args, "code", 3) as i32),
        "crash_signal" => {
            let signal = match args["signal"].as_str().unwrap_or("SEGV") {
                "KILL" => libc::SIGKILL,
                "TERM" => libc::SIGTERM,
                "ABRT" => libc::SIGABRT,
                _ => libc::SIGSEGV,
            };
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain syscalls; resetting to SIG_DFL first bypasses std's SIGSEGV handler.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                libc::signal(signal, libc::SIG_DFL);
                libc::kill(libc::getpid(), signal);
            }
            std::thread::sleep(Duration::from_secs(1000));
        }
        "never" | "stdout_close" => {
            if name == "stdout_close" {
                let devnull = OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .expect("/dev/null");
                let _guard = out.0.lock();
                // SAFETY: replaces fd 1 (the pipe to the guard) by /dev/null.
                unsafe { libc::dup2(devnull.as_raw_fd(), 1) };
            }
        }
        "delay" => {
            let (out, ms) = (out.clone(), arg_u64(args, "ms", 1000));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                out.line(&ok);
            });
        }
        "sleep" => {
            std::thread::sleep(Duration::from_millis(arg_u64(args, "ms", 1000)));
            reply(ok);
        }
        "spoof" => {
            out.line(&result_line(r#""spoofed-id""#, &text_result("spoofed")));
            out.line(&result_line("987654321", &text_result("spoofed")));
            reply(ok);
        }
        "near_ids" => {
            for near in near_ids(id) {
                out.line(&result_line(&near, &text_result("near")));
            }
            reply(ok);
        }
        "duplicate" => {
            out.line(&result_line(id, &text_result("first")));
            reply(result_line(id, &text_result("second")));
        }
        "huge" => {
            let bytes = arg_u64(args, "bytes", 20 << 20) as usize;
            let text = "x".repeat(bytes);
            match args["wrong_id"].as_str() {
                Some(wrong) => {
                    out.line(&result_line(
                        &Value::from(wrong).to_string(),
                        &text_result(&text),
                    ));
                    reply(ok);
                }
                None => reply(result_line(id, &text_result(&text))),
            }
        }
        "progress" => {
            let (out, count, ms) = (
                out.clone(),
                arg_u64(args, "count", 3),
                arg_u64(args, "ms", 100),
            );
            std::thread::spawn(move || {
                for i in 1..=count {
                    std::thread::sleep(Duration::from_millis(ms));
                    if !token.is_null() {
                        out.line(
                            &json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": i, "total": count}})
                            .to_string(),
                        );
                    }
                }
                out.line(&ok);
            });
        }
        "partial_exit" | "complete_exit" => {
            let line = if name == "partial_exit" {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"te"#)
            } else {
                result_line(id, &text_result("complete"))
            };
            out.bytes(line.as_bytes());
            std::process::exit(0);
        }
        "spawn_child" => {
            // The grandchild is meant to outlive us: the test checks the guard kills it.
            #[allow(clippy::zombie_processes)]
            let child = std::process::Command::new("sleep")
                .arg("1000")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn sleep");
            let path = args["path"].as_str().expect("arguments.path");
            std::fs::write(path, format!("{} {}", std::process::id(), child.id()))
                .expect("write pid file");
            reply(ok);
        }
        "ignore_sigterm" => {
            // SAFETY: setting a signal disposition.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            reply(ok);
        }
        "server_request" => {
            let server_id = state.next_server_id;
            state.next_server_id += 1;
            state
                .server_requests
                .insert(server_id.to_string(), id.to_owned());
            let method = args["method"].as_str().unwrap_or("roots/list");
            out.line(&format!(
                r#"{{"jsonrpc":"2.0","id":{server_id},"method":"{method}"}}"#
            ));
        }
        "server_batch" => {
            reply(ok);
            out.line(args["line"].as_str().unwrap_or_default());
        }
        "request_flood" => {
            let line = r#"{"jsonrpc":"2.0","id":"dup","method":"roots/list"}"#;
            for _ in 0..arg_u64(args, "count", 100_000) {
                out.line(line);
            }
            loop {
                std::thread::sleep(Duration::from_secs(1000));
            }
        }
        "stats" => {
            let stats = json!({
                "lines": state.lines,
                "max_line": state.max_line,
                "unparsed": state.unparsed,
                "calls": state.calls,
                "cancelled": state.cancelled,
                "responses": state.responses,
                "tools_lists": state.tools_lists,
                "batches": state.batches,
            });
            reply(result_line(id, &text_result(&stats.to_string())));
        }
        "cancelled_log" => {
            let list = Value::from(state.cancelled.clone()).to_string();
            reply(result_line(id, &text_result(&list)));
        }
        other => reply(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32602,"message":"unknown tool {other}"}}}}"#
        )),
    }
}

/// Ids a sloppy tracker could confuse with `id` (the exact JSON text of the real one).
fn near_ids(id: &str) -> Vec<String> {
    let mut near = vec!["null".to_owned()];
    if let Some(inner) = id.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        near.push(format!("\"{inner} \""));
        near.push(format!("\" {inner}\""));
        if let Ok(number) = inner.parse::<i128>() {
            near.push(number.to_string());
        }
    } else {
        near.push(format!("\"{id}\""));
        near.push(format!("{id}.0"));
        let mut digits = id.to_owned();
        if let Some(last) = digits.pop().and_then(|c| c.to_digit(10)) {
            digits.push(char::from_digit((last + 1) % 10, 10).unwrap_or('0'));
            near.push(digits);
        }
    }
    near
}
