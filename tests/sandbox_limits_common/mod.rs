//! Shared by the `sandbox_seccomp_*` and `sandbox_limits_*` tests: a hostile-server session
//! started any way a test needs (directly, under `mcp-guard run` with flags, or with a library
//! layer applied in `pre_exec`), one attack per `tools/call`, every wait bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../support/mod.rs"]
pub mod support;

const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

pub fn hostile() -> Command {
    Command::new(support::testkit_bin("hostile-server"))
}

/// `mcp-guard -q run FLAGS... -- hostile-server`.
pub fn guarded(flags: &[&str]) -> Command {
    let mut command = Command::new(support::guard_bin());
    command
        .args(["-q", "run"])
        .args(flags)
        .arg("--")
        .arg(support::testkit_bin("hostile-server"));
    command
}

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
}

/// What a `tools/call` got back.
#[derive(Debug)]
pub enum Reply {
    /// The attack's text: `SUCCEEDED: ...` or `BLOCKED: ...`.
    Text(String),
    /// A JSON-RPC error (from the guard, when the server died).
    Error(Value),
    /// No reply: the output closed.
    Closed,
}

impl Reply {
    #[track_caller]
    pub fn text(&self) -> &str {
        match self {
            Reply::Text(t) => t,
            other => panic!("expected an attack result, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn succeeded(&self) -> &str {
        let t = self.text();
        assert!(
            t.starts_with("SUCCEEDED:"),
            "the control attack did not succeed: {t}"
        );
        t
    }

    #[track_caller]
    pub fn blocked(&self) -> &str {
        let t = self.text();
        assert!(t.starts_with("BLOCKED:"), "the attack was not blocked: {t}");
        t
    }

    /// Blocked with this errno ("os error N").
    #[track_caller]
    pub fn blocked_with(&self, errno: i32) -> &str {
        let t = self.blocked();
        assert!(
            t.contains(&format!("(os error {errno})")),
            "blocked, but not with errno {errno}: {t}"
        );
        t
    }
}

impl Session {
    pub fn start(mut command: Command) -> Session {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawn the server");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut session = Session {
            child,
            stdin,
            lines,
            next_id: 0,
        };
        let init = session.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
        );
        assert!(
            matches!(&init, Some(v) if v.get("result").is_some()),
            "initialize failed: {init:?}"
        );
        session
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn request(&mut self, method: &str, params: Value) -> Option<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let stdin = self.stdin.as_mut()?;
        writeln!(stdin, "{message}")
            .and_then(|()| stdin.flush())
            .ok()?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let reply: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if reply.get("id") == Some(&json!(id)) {
                        return Some(reply);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no reply to {method} within {REPLY_TIMEOUT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    pub fn attack(&mut self, name: &str, arguments: Value) -> Reply {
        match self.request("tools/call", json!({"name": name, "arguments": arguments})) {
            None => Reply::Closed,
            Some(reply) => match reply["result"]["content"][0]["text"].as_str() {
                Some(text) => Reply::Text(text.to_owned()),
                None => Reply::Error(reply.get("error").cloned().unwrap_or(reply)),
            },
        }
    }

    #[track_caller]
    pub fn assert_alive(&mut self) {
        let reply = self.request("tools/list", json!({}));
        assert!(
            matches!(&reply, Some(v) if v.get("result").is_some()),
            "no longer answers: {reply:?}"
        );
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "the process exited"
        );
    }

    /// Close stdin and wait (bounded) for the process to exit.
    pub fn finish(mut self) -> ExitStatus {
        self.close_and_wait()
    }

    fn close_and_wait(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close_and_wait();
    }
}

/// A process to attack in the controls: it must not be the test process itself.
pub struct Victim(Child);

impl Victim {
    pub fn new() -> Victim {
        Victim(
            Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A readable address in `pid`'s memory (its first readable mapping).
pub fn readable_address(pid: i32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines()
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|perms| perms.starts_with('r'))
        })
        .and_then(|l| l.split('-').next())
        .and_then(|start| u64::from_str_radix(start, 16).ok())
        .expect("a readable mapping")
}

/// The pids of `parent`'s children.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')').map(|(_, rest)| {
                        rest.split_whitespace().nth(1) == Some(&parent.to_string())
                    })
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Every cgroup directory named `name` under /sys/fs/cgroup (any hierarchy, any depth <= 6).
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if depth > 0 {
                walk(&path, name, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(std::path::Path::new("/sys/fs/cgroup"), name, 6, &mut found);
    found
}

/// Wait (bounded) until no cgroup directory named `name` is left.
#[track_caller]
pub fn assert_cgroups_removed(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = cgroup_dirs_named(name);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "cgroups left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
