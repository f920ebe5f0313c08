//! mcp-guard: a sandbox launcher and JSON-RPC firewall for local stdio MCP servers.
//!
//! The data path reads top-down: host line → [`protocol::framing`] → [`protocol::envelope`] →
//! [`relay`] (request tracking, filters) → server, and back. The server itself is started by
//! [`launch`] through a supervisor process that applies the [`sandbox`].

pub mod audit;
pub mod cli;
pub mod client;
pub mod conversation;
pub mod deferred;
pub mod egress;
pub mod filter;
pub mod hosts;
pub mod launch;
pub mod launchers;
pub mod maps;
pub mod pin;
pub mod policy;
pub mod protocol;
pub mod relay;
pub mod sandbox;
pub mod scan;
pub mod secrets;
pub mod shell;
pub mod status;
pub mod telemetry;
