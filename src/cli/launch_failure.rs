//! `run` could not start the server: say why once, answer the host's pending requests (its
//! `initialize` first of all) with a JSON-RPC error naming the reason, and exit as a shell
//! would: 127 when the command is not found, 126 when it cannot be started.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Exit status when the server command does not exist (as `sh` has it).
pub const NOT_FOUND: u8 = 127;
/// Exit status when the server exists but could not be started.
pub const CANNOT_START: u8 = 126;

/// How long the host gets to send its first message: hosts write `initialize` at once.
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(2);
/// After a request is answered, how long to wait for more before leaving.
const NEXT_MESSAGE_WAIT: Duration = Duration::from_millis(300);

/// Why the server was not started, and the status `run` exits with.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct LaunchFailure {
    pub status: u8,
    pub reason: String,
}

impl LaunchFailure {
    pub fn cannot_start(reason: impl Into<String>) -> Self {
        Self {
            status: CANNOT_START,
            reason: reason.into(),
        }
    }

    /// The program was not found on PATH: or it exists and is not something one can run.
    pub fn not_found(command: &str, path_var: &str) -> Self {
        let named = Path::new(command);
        if command.contains('/') {
            return match named.metadata() {
                Ok(m) if m.is_dir() => Self::cannot_start(format!(
                    "`{command}` is a directory, not a program; give the server's executable or script"
                )),
                Ok(_) => Self::cannot_start(format!(
                    "`{command}` is not executable; make it so (`chmod +x {command}`) or run it through \
                     its interpreter (e.g. `node {command}`, `python3 {command}`)"
                )),
                Err(_) => Self {
                    status: NOT_FOUND,
                    reason: format!("`{command}` does not exist; check the path"),
                },
            };
        }
        let not_executable = crate::sandbox::path_search::searched_dirs(path_var)
            .map(|dir| dir.join(command))
            .find(|p| p.is_file());
        match not_executable {
            Some(file) => Self::cannot_start(format!(
                "`{command}` ({}) is not executable; make it so (`chmod +x {}`) or give another program",
                file.display(),
                file.display()
            )),
            None => Self {
                status: NOT_FOUND,
                reason: format!(
                    "command not found: `{command}` (searched PATH={path_var}{}); install it, or \
                     give its absolute path",
                    relative_note(path_var)
                ),
            },
        }
    }

    /// Say why on stderr, answer the host, and give the exit status.
    pub fn report(&self) -> ExitCode {
        eprintln!("mcp-guard: error: cannot start the server: {}", self.reason);
        answer_pending_requests(&self.reason);
        ExitCode::from(self.status)
    }
}

/// `; relative entries ".", "bin" are never searched` when PATH has some.
fn relative_note(path_var: &str) -> String {
    let skipped = crate::sandbox::path_search::relative_entries(path_var);
    if skipped.is_empty() {
        return String::new();
    }
    format!(
        "; relative entries {} are never searched: write them as absolute paths",
        skipped.join(", ")
    )
}

/// Answer every request the host sends in the next moments with an error: a host waiting on
/// `initialize` learns why, instead of reporting a server that closed without a word.
fn answer_pending_requests(reason: &str) {
    let stdin = std::io::stdin();
    if std::io::IsTerminal::is_terminal(&stdin) {
        return;
    }
    let message = format!("mcp-guard could not start the MCP server: {reason}");
    let mut input = Vec::new();
    let mut deadline = Instant::now() + FIRST_MESSAGE_WAIT;
    let mut chunk = [0u8; 64 * 1024];
    while wait_readable(stdin.as_raw_fd(), deadline) {
        let n = match stdin.lock().read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&chunk[..n]);
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = input.drain(..=end).collect();
            if let Some(reply) = error_replies(&line, &message) {
                let mut stdout = std::io::stdout().lock();
                if writeln!(stdout, "{reply}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return;
                }
                deadline = Instant::now() + NEXT_MESSAGE_WAIT;
            }
        }
    }
}

/// The error replies for the requests in one line (a message or a batch); `None` when it holds
/// no request (a notification, or not JSON at all).
fn error_replies(line: &[u8], message: &str) -> Option<Value> {
    let reply = |m: &Value| {
        let id = m.get("id").filter(|id| !id.is_null())?;
        m.get("method")?;
        Some(json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": crate::protocol::codes::SERVER_EXITED, "message": message},
        }))
    };
    match serde_json::from_slice::<Value>(line).ok()? {
        Value::Array(batch) => {
            let replies: Vec<Value> = batch.iter().filter_map(reply).collect();
            (!replies.is_empty()).then_some(Value::Array(replies))
        }
        single => reply(&single),
    }
}

/// Whether `fd` has input (or EOF) before `deadline`.
fn wait_readable(fd: i32, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut poll, 1, ms) > 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_errors_and_notifications_nothing() {
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
        let reply = error_replies(init, "why").unwrap();
        assert_eq!(reply["id"], 0);
        assert_eq!(reply["error"]["message"], "why");
        let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(error_replies(note, "why").is_none());
        let batch =
            br#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"n"}]"#;
        assert_eq!(
            error_replies(batch, "why")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(error_replies(b"not json", "why").is_none());
    }

    #[test]
    fn not_found_and_not_executable_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("server.js");
        std::fs::write(&script, "").unwrap();
        let named = LaunchFailure::not_found(script.to_str().unwrap(), "/usr/bin");
        assert_eq!(named.status, CANNOT_START);
        assert!(named.reason.contains("not executable"), "{}", named.reason);
        let on_path = LaunchFailure::not_found("server.js", dir.path().to_str().unwrap());
        assert_eq!(on_path.status, CANNOT_START);
        assert!(
            on_path.reason.contains("not executable"),
            "{}",
            on_path.reason
        );
        let missing = LaunchFailure::not_found("no-such-server-xyz", "/usr/bin");
        assert_eq!(missing.status, NOT_FOUND);
        assert!(missing.reason.contains("not found"), "{}", missing.reason);
    }
}
