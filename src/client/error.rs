//! What can go wrong talking to a server.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot start the server: {0}")]
    Spawn(std::io::Error),
    #[error("the server did not answer {method} within {timeout:?}; give it longer (`--answer-timeout`) or check that it speaks MCP over stdio")]
    Timeout { method: String, timeout: Duration },
    #[error("the server exited (or closed its output) while mcp-guard waited for {method} ({status}){stderr}")]
    Gone {
        /// What the client was waiting for (a method, or late notifications).
        method: String,
        /// How it exited, as far as known.
        status: String,
        /// Its last words, or where to find them.
        stderr: String,
    },
    #[error("{method} failed: {message} ({code})")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    #[error("cannot write to the server (it exited?): {0}")]
    Write(std::io::Error),
    #[error(
        "{method}: the server was still paginating after {pages} pages; mcp-guard stops there"
    )]
    EndlessPages { method: String, pages: usize },
}
