//! The tests' MCP session: mcp-guard's own client (`mcp_guard::client`) around any command that
//! speaks MCP on its stdio (a guard, or a server alone for the unguarded control), one attack
//! per `tools/call`, every wait bounded.

use std::process::Command;
use std::time::Duration;

use mcp_guard::client::{Client, ClientError, Finished, Stderr};
use serde_json::{json, Value};

pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the process gets to exit once its stdin is closed.
const EXIT_GRACE: Duration = Duration::from_secs(15);

/// What a `tools/call` got back.
#[derive(Debug)]
pub enum Reply {
    /// The attack's text: `SUCCEEDED: ...` or `BLOCKED: ...`.
    Text(String),
    /// A JSON-RPC error (from the guard, when the server died): `code` and `message`.
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

/// A running, initialized MCP session; stopped (stdin closed, then killed) on drop.
pub struct Session {
    client: Option<Client>,
}

impl Session {
    /// Start `command` (its stderr goes to the test's) and initialize.
    pub fn try_start(command: Command) -> Result<Session, String> {
        let mut client =
            Client::spawn(command, Stderr::Inherit, REPLY_TIMEOUT).map_err(|e| e.to_string())?;
        client
            .initialize("mcp-guard-tests")
            .map_err(|e| format!("initialize failed: {e}"))?;
        Ok(Session {
            client: Some(client),
        })
    }

    #[track_caller]
    pub fn start(command: Command) -> Session {
        Session::try_start(command).unwrap_or_else(|e| panic!("cannot start the server: {e}"))
    }

    fn client(&mut self) -> &mut Client {
        // Only `finish` takes it, and it consumes the session.
        self.client.as_mut().expect("a running session")
    }

    /// pid of the process started (the guard, for a guarded session).
    pub fn pid(&self) -> i32 {
        self.client.as_ref().map_or(0, |c| c.pid() as i32)
    }

    /// Run attack `name`.
    #[track_caller]
    pub fn attack(&mut self, name: &str, arguments: Value) -> Reply {
        match self.client().call_tool(name, arguments) {
            Ok(result) => match result["content"][0]["text"].as_str() {
                Some(text) => Reply::Text(text.to_owned()),
                None => Reply::Error(result),
            },
            Err(ClientError::Rpc { code, message, .. }) => {
                Reply::Error(json!({"code": code, "message": message}))
            }
            Err(ClientError::Gone { .. } | ClientError::Write(_)) => Reply::Closed,
            Err(e) => panic!("attack {name}: {e}"),
        }
    }

    /// The process still runs and answers.
    #[track_caller]
    pub fn assert_alive(&mut self) {
        if let Err(e) = self.client().request("tools/list", json!({})) {
            panic!("no longer answers: {e}");
        }
        assert!(!self.client().has_exited(), "the process exited");
    }

    /// Close stdin and wait (bounded) for the process to exit.
    pub fn finish(mut self) -> Finished {
        self.client
            .take()
            .map(|c| c.finish(EXIT_GRACE))
            .unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            client.finish(EXIT_GRACE);
        }
    }
}
