//! `mcp-guard scan`: vet a server before trusting it (issue 6). The server runs under
//! `mcp-guard run` (sandboxed, audited to a temporary log); the scan talks to it as a client,
//! checks what it says about itself and what it outputs, then reads what the guard saw.

pub mod checks;
pub mod exercise;
pub mod findings;
pub mod report;

pub use exercise::scan;
pub use findings::Severity;
