//! A small MCP client that drives a server through `mcp-guard run` (a child process), as a host
//! would: used by `pin` and `scan`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pin::Kind;

/// The protocol version the client asks for (the server may answer with another).
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// Longest list walk, against servers that page forever.
const MAX_PAGES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start `mcp-guard run`: {0}")]
    Spawn(std::io::Error),
    #[error("the server did not answer {method} within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    #[error("the server exited (or closed its output) before answering {method}{stderr}")]
    Gone { method: String, stderr: String },
    #[error("{method} failed: {message} ({code})")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    #[error("cannot write to the server: {0}")]
    Write(std::io::Error),
}

/// How to start the guard around the server.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Arguments for `mcp-guard run` before `--`.
    pub guard_args: Vec<OsString>,
    pub command: Vec<OsString>,
    pub timeout: Duration,
}

pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    next_id: u64,
    timeout: Duration,
    /// Every line the guard passed on from the server (for protocol checks).
    pub received: Vec<Value>,
    /// Lines on the guard's stdout that were not JSON (the guard should never let one through).
    pub garbage: Vec<String>,
}

impl Client {
    pub fn start(launch: &Launch) -> Result<Client, ClientError> {
        let exe = std::env::current_exe().map_err(ClientError::Spawn)?;
        let mut child = Command::new(exe)
            .arg("run")
            .args(&launch.guard_args)
            .arg("--")
            .args(&launch.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ClientError::Spawn)?;
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).split(b'\n') {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut err) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
        Ok(Client {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            next_id: 0,
            timeout: launch.timeout,
            received: Vec::new(),
            garbage: Vec::new(),
        })
    }

    /// `initialize` then `notifications/initialized`; returns the initialize result.
    pub fn initialize(&mut self, client_name: &str) -> Result<Value, ClientError> {
        let result = self.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                // What real hosts declare: servers gate tools on these (server-everything
                // lists 3 more with them), and pin and scan must see what a host sees.
                "capabilities": {"roots": {"listChanged": false}, "sampling": {}, "elicitation": {}},
                "clientInfo": {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
            }),
        )?;
        self.notify("notifications/initialized", json!({}))?;
        Ok(result)
    }

    /// Every item of `kind`, following `nextCursor`.
    pub fn list_all(&mut self, kind: Kind) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let result = self.request(kind.list_method(), params)?;
            if let Some(page) = result.get(kind.result_member()).and_then(Value::as_array) {
                items.extend(page.iter().cloned());
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(items)
    }

    pub fn notify(&mut self, method: &str, params: Value) -> Result<(), ClientError> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    /// Send a request and wait for its answer, answering the server's own requests meanwhile.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ClientError::Timeout {
                        method: method.into(),
                        timeout: self.timeout,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ClientError::Gone {
                        method: method.into(),
                        stderr: self.stderr_tail(),
                    })
                }
            };
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                self.garbage
                    .push(String::from_utf8_lossy(&line).into_owned());
                continue;
            };
            self.received.push(message.clone());
            if message.get("method").is_some() {
                if let Some(their_id) = message.get("id") {
                    self.answer_server_request(their_id.clone(), &message)?;
                }
                continue;
            }
            if message.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = message.get("error") {
                return Err(ClientError::Rpc {
                    method: method.into(),
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                });
            }
            return Ok(message.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Answer what the server asks of the host, minimally, so it never waits on us: no roots,
    /// and sampling and elicitation declined (there is no model or user to ask).
    fn answer_server_request(&mut self, id: Value, message: &Value) -> Result<(), ClientError> {
        let result = |r: Value| json!({"jsonrpc": "2.0", "id": id, "result": r});
        let error = |code: i64, m: &str| json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": m}});
        let reply = match message.get("method").and_then(Value::as_str) {
            Some("ping") => result(json!({})),
            Some("roots/list") => result(json!({"roots": []})),
            Some("elicitation/create") => result(json!({"action": "decline"})),
            Some("sampling/createMessage") => error(
                -1,
                "declined: mcp-guard's snapshot client has no model to sample from",
            ),
            _ => error(-32601, "not supported by this client"),
        };
        self.send(&reply)
    }

    fn send(&mut self, message: &Value) -> Result<(), ClientError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(ClientError::Write(std::io::ErrorKind::BrokenPipe.into()));
        };
        let mut bytes = serde_json::to_vec(message).unwrap_or_default();
        bytes.push(b'\n');
        stdin
            .write_all(&bytes)
            .and_then(|()| stdin.flush())
            .map_err(ClientError::Write)
    }

    /// Close the server's input and wait for the guard to exit (killing it after `grace`);
    /// returns its exit code and everything it wrote on stderr.
    pub fn finish(mut self, grace: Duration) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + grace;
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok().and_then(|s| s.code());
                }
            }
        };
        // Let the reader threads drain what is left.
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(line) = self.lines.try_recv() {
            match serde_json::from_slice::<Value>(&line) {
                Ok(v) => self.received.push(v),
                Err(_) => self
                    .garbage
                    .push(String::from_utf8_lossy(&line).into_owned()),
            }
        }
        let stderr = self
            .stderr
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default();
        (code, stderr)
    }

    fn stderr_tail(&self) -> String {
        let text = self
            .stderr
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "; its last words: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )
        }
    }
}
