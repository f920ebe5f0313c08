//! Driving the real `mcp-guard run --allow-unsandboxed -- <server>` as a host would: piped
//! stdin/stdout, one JSON-RPC message per line, a timeout on every wait, and a watchdog that
//! kills the guard if a test outlives its budget (so a stuck write or read fails, never hangs).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::support;

/// How long a test waits for an expected message before failing.
pub const WAIT: Duration = Duration::from_secs(5);
/// Longest a guard may live in a test before the watchdog kills it.
const WATCHDOG: Duration = Duration::from_secs(45);
/// How long an exited guard's stderr may take to reach the end.
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// One line the guard wrote on its stdout.
#[derive(Debug, Clone)]
pub struct Line {
    pub bytes: Vec<u8>,
}

impl Line {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The line as JSON; panics (with the line) when the guard wrote something that is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("guard wrote a non-JSON line ({e}): {}", self.short()))
    }

    /// The exact JSON text of the `id` member (`7`, `"007"`, `null`), if any.
    pub fn raw_id(&self) -> Option<String> {
        let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("guard wrote a non-object line ({e}): {}", self.short()));
        fields.get("id").map(|raw| raw.get().to_owned())
    }

    pub fn short(&self) -> String {
        if self.bytes.len() > 400 {
            let head = String::from_utf8_lossy(&self.bytes[..400]);
            format!("{head}… ({} bytes)", self.bytes.len())
        } else {
            self.text()
        }
    }

    pub fn is_response(&self) -> bool {
        let v = self.json();
        v.get("method").is_none() && (v.get("result").is_some() || v.get("error").is_some())
    }

    /// Asserts the line is an error response with exactly this id text and code.
    pub fn assert_error(&self, raw_id: &str, code: i64) -> &Self {
        let v = self.json();
        assert_eq!(v["jsonrpc"], "2.0", "not JSON-RPC 2.0: {}", self.short());
        assert_eq!(
            self.raw_id().as_deref(),
            Some(raw_id),
            "wrong id in {}",
            self.short()
        );
        assert_eq!(
            v["error"]["code"].as_i64(),
            Some(code),
            "expected error {code}: {}",
            self.short()
        );
        assert!(
            v["error"]["message"].is_string(),
            "error without message: {}",
            self.short()
        );
        assert!(
            v.get("result").is_none(),
            "error with a result: {}",
            self.short()
        );
        self
    }

    /// Asserts the line is a successful tool result with this id text; returns its text.
    pub fn assert_result(&self, raw_id: &str) -> String {
        let v = self.json();
        assert_eq!(
            self.raw_id().as_deref(),
            Some(raw_id),
            "wrong id in {}",
            self.short()
        );
        assert!(
            v.get("error").is_none() && v.get("result").is_some(),
            "expected a result: {}",
            self.short()
        );
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The guard binary; to check that the tests can fail, point them at another relay (e.g. a
/// bare pipe, or an older build) with `RELAY_TESTS_GUARD`.
pub fn guard_under_test() -> PathBuf {
    std::env::var_os("RELAY_TESTS_GUARD")
        .map(PathBuf::from)
        .unwrap_or_else(support::guard_bin)
}

/// A running `mcp-guard run` with its pipes.
pub struct Guard {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Says the stderr reader reached the end: what the guard wrote before exiting is all read.
    stderr_ended: mpsc::Receiver<()>,
    stderr_drained: std::cell::Cell<bool>,
    watchdog: Option<Sender<()>>,
    exited: Option<ExitStatus>,
    /// A scratch directory for logs and pid files, removed on drop.
    pub dir: tempfile::TempDir,
}

pub fn mock_bin() -> PathBuf {
    support::testkit_bin("mock-server")
}

pub fn echo_bin() -> PathBuf {
    support::testkit_bin("echo-server")
}

impl Guard {
    /// `mcp-guard run --allow-unsandboxed GUARD_ARGS -- mock-server SERVER_ARGS`.
    pub fn mock(guard_args: &[&str], server_args: &[&str]) -> Guard {
        Guard::start(guard_args, &mock_bin(), server_args)
    }

    pub fn start(guard_args: &[&str], server: &Path, server_args: &[&str]) -> Guard {
        let mut run_args = vec!["--allow-unsandboxed"];
        run_args.extend_from_slice(guard_args);
        Guard::start_run(&[], &run_args, server, server_args)
    }

    /// `mcp-guard run RUN_ARGS -- SERVER SERVER_ARGS`, sandboxed unless `run_args` say
    /// otherwise, with `env` added to the guard's own environment.
    pub fn start_run(
        env: &[(&str, &str)],
        run_args: &[&str],
        server: &Path,
        server_args: &[&str],
    ) -> Guard {
        let mut command = Command::new(guard_under_test());
        command
            .envs(env.iter().copied())
            .arg("run")
            .args(run_args)
            .arg("--")
            .arg(server);
        Guard::spawn(command, server_args, |_, _| {})
    }

    /// `mcp-guard run GUARD_ARGS -- SERVER SERVER_ARGS` with the sandbox on (`{dir}` replaced in
    /// both). Its private HOME/TMPDIR goes under `{dir}/tmp` (TMPDIR, no XDG_RUNTIME_DIR), where
    /// a test can look for leftovers; `{dir}/out` exists for the server to write to, once the
    /// guard is given `--allow-write {dir}/out`.
    pub fn confined(guard_args: &[&str], server: &Path, server_args: &[&str]) -> Guard {
        let server = server.to_str().expect("UTF-8 server path");
        let mut args = vec!["run"];
        args.extend_from_slice(guard_args);
        args.extend_from_slice(&["--", server]);
        args.extend_from_slice(server_args);
        Guard::spawn(Command::new(guard_under_test()), &args, |command, dir| {
            for sub in ["tmp", "out"] {
                std::fs::create_dir(dir.join(sub)).expect("scratch subdirectory");
            }
            command
                .env("TMPDIR", dir.join("tmp"))
                .env_remove("XDG_RUNTIME_DIR");
        })
    }

    /// The control: the same server with no guard in between (`Guard` is then a misnomer).
    pub fn unguarded(server: &Path, server_args: &[&str]) -> Guard {
        Guard::spawn(Command::new(server), server_args, |_, _| {})
    }

    /// Spawns `command` followed by `server_args` (`{dir}` replaced by the scratch directory),
    /// after `setup` has seen the command and the scratch directory.
    fn spawn(
        mut command: Command,
        server_args: &[&str],
        setup: impl FnOnce(&mut Command, &Path),
    ) -> Guard {
        let dir = tempfile::tempdir().expect("tempdir");
        setup(&mut command, dir.path());
        support::private_state(&mut command, dir.path());
        let server_args: Vec<String> = server_args
            .iter()
            .map(|a| a.replace("{dir}", &dir.path().display().to_string()))
            .collect();
        let mut child = command
            .args(&server_args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the process under test");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        let (stderr_end, stderr_ended) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = stderr_end.send(());
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let pid = child.id() as i32;
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(WATCHDOG) {
                eprintln!("watchdog: killing mcp-guard {pid} after {WATCHDOG:?}");
                // SAFETY: the pid is our unreaped child (the sender is dropped before reaping).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Guard {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            stderr_ended,
            stderr_drained: std::cell::Cell::new(false),
            watchdog: Some(stop),
            exited: None,
            dir,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn stderr_text(&self) -> String {
        // After the exit, the reader may not have drained the pipe yet (seen on a loaded
        // machine: an empty stderr). Waiting is bounded: a leftover holder of the pipe (a
        // stopped supervisor) must not keep it open forever.
        if self.exited.is_some() && !self.stderr_drained.get() {
            let _ = self.stderr_ended.recv_timeout(STDERR_DRAIN);
            self.stderr_drained.set(true);
        }
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        if let Err(e) = stdin.write_all(bytes).and_then(|()| stdin.flush()) {
            panic!(
                "writing to mcp-guard failed ({e}); stderr:\n{}",
                self.stderr_text()
            );
        }
    }

    /// Sends one line (a newline is appended).
    pub fn send(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send_bytes(&bytes);
    }

    pub fn send_json(&mut self, message: &Value) {
        self.send(&message.to_string());
    }

    /// Sends a `tools/call` of `tool`; `raw_id` is the id's JSON text (`7`, `"a"`).
    pub fn call(&mut self, raw_id: &str, tool: &str, arguments: Value) {
        let params = json!({"name": tool, "arguments": arguments});
        self.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"tools/call","params":{params}}}"#
        ));
    }

    /// Calls `tool` and returns the answer line.
    pub fn call_and_recv(&mut self, raw_id: &str, tool: &str, arguments: Value) -> Line {
        self.call(raw_id, tool, arguments);
        self.recv()
    }

    /// The next line, or None if none came within `timeout` or the guard closed its stdout.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<Line> {
        self.lines
            .recv_timeout(timeout)
            .ok()
            .map(|bytes| Line { bytes })
    }

    /// The next line within [`WAIT`]; panics with the guard's stderr otherwise.
    pub fn recv(&mut self) -> Line {
        self.recv_within(WAIT)
    }

    pub fn recv_within(&mut self, timeout: Duration) -> Line {
        match self.lines.recv_timeout(timeout) {
            Ok(bytes) => Line { bytes },
            Err(e) => panic!(
                "no line from mcp-guard within {timeout:?} ({e:?}); stderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Asserts nothing arrives on the guard's stdout for `duration`.
    pub fn expect_silence(&mut self, duration: Duration) {
        if let Some(line) = self.try_recv(duration) {
            panic!("unexpected line from mcp-guard: {}", line.short());
        }
    }

    /// `initialize` (id 0) with `version`, then `notifications/initialized`; returns the result.
    pub fn initialize(&mut self, version: &str) -> Value {
        self.initialize_with(version, json!({}))
    }

    /// [`Guard::initialize`] declaring these client `capabilities` (`roots`, `sampling`, …).
    pub fn initialize_with(&mut self, version: &str, capabilities: Value) -> Value {
        self.send_json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": capabilities,
            "clientInfo": {"name": "relay-tests", "version": "0"}}}),
        );
        let line = self.recv();
        assert_eq!(line.raw_id().as_deref(), Some("0"), "{}", line.short());
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        line.json()["result"].clone()
    }

    /// Sends a request (`id` as a number) and returns the next line.
    pub fn request(&mut self, id: u64, method: &str, params: Value) -> Line {
        self.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.recv()
    }

    /// A `ping` round trip: proves the relay still serves requests in both directions.
    pub fn assert_alive(&mut self, raw_id: &str) {
        self.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"ping"}}"#
        ));
        let line = self.recv();
        assert_eq!(
            line.raw_id().as_deref(),
            Some(raw_id),
            "expected the ping answer, got {}",
            line.short()
        );
        assert!(
            line.json().get("result").is_some(),
            "ping failed: {}",
            line.short()
        );
    }

    /// The mock server's `stats` (what it received), via a tools/call.
    pub fn server_stats(&mut self, raw_id: &str) -> Value {
        let text = self
            .call_and_recv(raw_id, "stats", json!({}))
            .assert_result(raw_id);
        serde_json::from_str(&text).expect("stats JSON")
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin already taken")
    }

    pub fn signal(&self, signal: i32) {
        assert!(self.exited.is_none(), "guard already reaped");
        // SAFETY: our unreaped child.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Waits for the guard to exit; panics (after killing it) if it takes longer than `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.watchdog = None;
                self.exited = Some(status);
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.watchdog = None;
                panic!(
                    "mcp-guard did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The guard's exit code (panics if it died of a signal).
    pub fn exit_code(&mut self, timeout: Duration) -> i32 {
        let status = self.wait_exit(timeout);
        status.code().unwrap_or_else(|| {
            panic!(
                "mcp-guard died of a signal ({status:?}); stderr:\n{}",
                self.stderr_text()
            )
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stdin = None;
        if self.exited.is_none() {
            // Kill first, then stop the watchdog, then reap: the pid stays ours while it may signal.
            let _ = self.child.kill();
            self.watchdog = None;
            let _ = self.child.wait();
        }
    }
}

/// True while `pid` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(
                state.and_then(|s| s.chars().next()),
                Some('Z') | Some('X') | None
            )
        }
    }
}

/// Waits until `pid` is gone (or a zombie); false if it still lives after `timeout`.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    !process_alive(pid)
}

/// Reads a file the server writes (its log or a pid file), waiting up to `timeout` for `ready`.
pub fn read_when(path: &Path, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if ready(&text) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The server's pid, from the `start <pid>` line the mock server writes first to its `--log`.
pub fn logged_pid(log: &Path) -> i32 {
    let text = read_when(log, Duration::from_secs(5), |t| t.starts_with("start "));
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("start "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in the server log {}: {text:?}", log.display()))
}

/// Kills a leftover process if a test failed before the guard could.
pub fn reap_leftover(pid: i32) {
    if process_alive(pid) {
        // SAFETY: best-effort cleanup of a process this test created.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
