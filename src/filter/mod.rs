//! The message firewall: validation and policy filters applied to every message the relay
//! passes (issue 5). The relay calls [`Firewall::inspect`] once per message, after parsing and
//! (for responses) after matching the response to its request.

use crate::protocol::Message;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HostToServer,
    ServerToHost,
}

/// What the firewall knows about a message beyond the message itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub direction: Direction,
    /// The protocol version in force, when known.
    pub version: Option<&'a str>,
    /// For a response: the method of the request it answers.
    pub answered_method: Option<&'a str>,
}

/// The firewall's decision on one message.
#[derive(Debug)]
pub enum Verdict {
    /// Pass it on unchanged.
    Forward,
    /// Pass on this re-serialised message instead (one JSON-RPC message, no newline).
    Replace(Vec<u8>),
    /// Do not pass it on. `reply_to_sender` (a JSON-RPC error response) goes back to whoever
    /// sent it, when it is a request; `reply_to_receiver` takes its place on the way, when the
    /// receiver is waiting for it (e.g. an error in place of a refused result).
    Refuse {
        reason: String,
        reply_to_sender: Option<Vec<u8>>,
        reply_to_receiver: Option<Vec<u8>>,
    },
}

/// The compiled policy filters; built once at start-up, never per message.
#[derive(Debug, Default)]
pub struct Firewall {}

impl Firewall {
    /// A firewall that forwards everything (no policy filters).
    pub fn permissive() -> Self {
        Self::default()
    }

    pub fn inspect(&mut self, message: &Message<'_>, context: &Context<'_>) -> Verdict {
        let _ = (message, context);
        Verdict::Forward
    }
}
