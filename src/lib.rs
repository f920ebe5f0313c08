//! mcp-guard: a sandbox launcher and JSON-RPC firewall for local stdio MCP servers.
//!
//! The data path reads top-down: host line → [`protocol::framing`] → [`protocol::envelope`] →
//! `relay` ([`conversation`], [`filter`]) → server, and back. The server itself is started by
//! `launch` through a supervisor process that applies the [`sandbox`]. `ARCHITECTURE.md` has
//! the whole picture. Modules that only the binary uses are `pub(crate)`; the public ones are
//! what the integration tests, benches and fuzz targets drive.

pub mod audit;
pub mod cli;
pub mod client;
pub mod conversation;
pub(crate) mod deferred;
pub mod egress;
pub mod filter;
pub(crate) mod hosts;
pub(crate) mod launch;
pub(crate) mod launchers;
pub(crate) mod maps;
pub(crate) mod pin;
pub mod policy;
pub mod protocol;
pub(crate) mod relay;
pub mod sandbox;
pub(crate) mod scan;
pub(crate) mod secrets;
pub(crate) mod shell;
pub(crate) mod status;
pub(crate) mod telemetry;
