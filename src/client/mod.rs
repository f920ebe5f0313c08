//! mcp-guard's one MCP client: starts a server (under `mcp-guard run`, or alone), initializes
//! as a full host would, lists, calls and stops. Used by `pin`, `scan` and `policy init`, and
//! by the integration tests.
//!
//! It answers the server's own requests (ping, roots, sampling, elicitation) while it waits,
//! so a server that asks the host something never hangs the client.

mod error;
mod host_answers;
mod process;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use error::ClientError;
pub use process::Stderr;

/// The protocol version the client asks for (the server may answer with another).
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// Longest list walk, against servers whose cursors never end.
const MAX_PAGES: usize = 1000;
/// How long a server that closed its output gets to exit before the error says "still running".
const EXIT_PATIENCE: Duration = Duration::from_secs(1);

/// A server started under `mcp-guard run`.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Arguments for `mcp-guard run` before `--`.
    pub guard_args: Vec<OsString>,
    pub command: Vec<OsString>,
    /// How long to wait for each answer.
    pub timeout: Duration,
}

impl Launch {
    /// `GUARD run GUARD_ARGS -- COMMAND`; `guard` is the mcp-guard executable.
    pub fn guarded(&self, guard: &Path) -> Command {
        let mut command = Command::new(guard);
        command
            .arg("run")
            .args(&self.guard_args)
            .arg("--")
            .args(&self.command);
        command
    }

    /// Start it under this very executable (`mcp-guard pin`, `mcp-guard scan`).
    pub fn start(&self) -> Result<Client, ClientError> {
        let guard = std::env::current_exe().map_err(ClientError::Spawn)?;
        Client::spawn(self.guarded(&guard), Stderr::Capture, self.timeout)
    }
}

/// What is left once the server has stopped.
#[derive(Debug, Default)]
pub struct Finished {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything it wrote on stderr (empty when inherited).
    pub stderr: String,
    /// Lines on its stdout that were not JSON (a guard must never let one through).
    pub garbage: Vec<String>,
}

pub struct Client {
    process: process::Process,
    next_id: u64,
    timeout: Duration,
    garbage: Vec<String>,
    /// `notifications/*/list_changed` methods, as they arrived.
    list_changed: Vec<String>,
}

impl Client {
    /// Start `command` (a guard around a server, or a server alone) with its stdin and stdout
    /// piped to us; each answer is awaited for `timeout`.
    pub fn spawn(
        command: Command,
        stderr: Stderr,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        Ok(Client {
            process: process::Process::spawn(command, stderr)?,
            next_id: 0,
            timeout,
            garbage: Vec::new(),
            list_changed: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Whether the process has exited (it may still be answering from a buffer until then).
    pub fn has_exited(&mut self) -> bool {
        self.process.has_exited()
    }

    /// How long later answers are awaited.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// `initialize` with the capabilities of a full host, then `notifications/initialized`;
    /// returns the initialize result.
    pub fn initialize(&mut self, client_name: &str) -> Result<Value, ClientError> {
        let result = self.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": host_answers::declared_capabilities(),
                "clientInfo": {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
            }),
        )?;
        self.notify("notifications/initialized", json!({}))?;
        Ok(result)
    }

    /// Every item of a list method (`tools/list`, member `tools`), following `nextCursor`.
    pub fn list_all(&mut self, method: &str, member: &str) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let params = match cursor.take() {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let mut result = self.request(method, params)?;
            if let Some(Value::Array(page)) = result.get_mut(member).map(Value::take) {
                items.extend(page);
            }
            match result.get("nextCursor") {
                Some(c) if !c.is_null() && c != "" => cursor = Some(c.clone()),
                _ => return Ok(items),
            }
        }
        Err(ClientError::EndlessPages {
            method: method.into(),
            pages: MAX_PAGES,
        })
    }

    /// `tools/call`; the result, `isError` or not.
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, ClientError> {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
    }

    pub fn notify(&mut self, method: &str, params: Value) -> Result<(), ClientError> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    /// Send a request and wait for its answer, answering the server's own requests meanwhile.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let Some(message) = self.next_message(deadline, method)? else {
                return Err(ClientError::Timeout {
                    method: method.into(),
                    timeout: self.timeout,
                });
            };
            if message.get("method").is_some() || message.get("id") != Some(&id) {
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

    /// Read (and answer) what the server sends for `quiet`: a moment for late notifications.
    pub fn listen(&mut self, quiet: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + quiet;
        while self.next_message(deadline, "late notifications")?.is_some() {}
        Ok(())
    }

    /// The `notifications/*/list_changed` that arrived since the last call.
    pub fn take_list_changed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.list_changed)
    }

    /// Close the server's input and wait up to `grace` for it to exit (then kill it).
    pub fn finish(mut self, grace: Duration) -> Finished {
        let code = self.process.close(grace);
        while let Ok(line) = self.process.lines.try_recv() {
            if serde_json::from_slice::<Value>(&line).is_err() {
                self.note_garbage(&line);
            }
        }
        Finished {
            code,
            stderr: self.process.stderr_text(),
            garbage: self.garbage,
        }
    }

    /// The next JSON message before `deadline` (`None`: none came), after answering it when it
    /// is a request and noting it when it says a list changed.
    fn next_message(
        &mut self,
        deadline: Instant,
        awaiting: &str,
    ) -> Result<Option<Value>, ClientError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.process.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ClientError::Gone {
                        method: awaiting.into(),
                        status: self.process.exit_status(EXIT_PATIENCE),
                        stderr: self.process.last_words(),
                    })
                }
            };
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                self.note_garbage(&line);
                continue;
            };
            if let Some(method) = message.get("method").and_then(Value::as_str) {
                match message.get("id") {
                    Some(id) => {
                        let reply = host_answers::answer(id, method);
                        self.send(&reply)?;
                    }
                    None if method.ends_with("/list_changed") => {
                        self.list_changed.push(method.to_owned());
                    }
                    None => {}
                }
            }
            return Ok(Some(message));
        }
    }

    fn note_garbage(&mut self, line: &[u8]) {
        self.garbage
            .push(String::from_utf8_lossy(line).into_owned());
    }

    fn send(&mut self, message: &Value) -> Result<(), ClientError> {
        self.process
            .write_line(serde_json::to_vec(message).unwrap_or_default())
    }
}
