//! The MCP stdio wire format: line framing, JSON-RPC envelopes, protocol versions.
