//! The MCP stdio wire format: line framing, JSON-RPC envelopes, protocol versions.

pub mod direction;
pub mod envelope;
pub mod framing;
pub mod id_recovery;
mod members;
pub mod needle;
pub mod reply;
pub mod schema;
pub mod tree;
pub mod version;

pub use direction::Direction;
pub use envelope::{
    codes, parse_line, parse_line_with, Bodies, Body, Invalid, Message, MessageKind, Parsed,
    RequestId,
};
pub use framing::{Frame, LineReader};
