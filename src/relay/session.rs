//! What the relay remembers about the conversation: the one ledger of requests in flight and
//! the negotiated protocol version.

use std::time::Duration;

use crate::conversation::Ledger;
use crate::protocol::version::KNOWN_VERSIONS;

#[derive(Debug)]
pub struct Session {
    /// Every request in flight, both ways.
    pub ledger: Ledger,
    /// The protocol version in force: from `initialize`'s result, or the latest per-request
    /// `_meta` version (2026-07-28 sessions may never initialize).
    pub version: Option<&'static str>,
    pub request_timeout: Duration,
}

impl Session {
    pub fn new(request_timeout: Duration, ledger: Ledger) -> Self {
        Self {
            ledger,
            version: None,
            request_timeout,
        }
    }

    /// Note a version the peers declared; unknown versions are logged, not adopted.
    pub fn observe_version(&mut self, version: &str, source: &str) {
        if self.version == Some(version) {
            return;
        }
        if let Some(known) = KNOWN_VERSIONS.iter().find(|known| **known == version) {
            tracing::debug!(version, source, "protocol version");
            self.version = Some(known);
        } else {
            tracing::warn!(
                version,
                source,
                "unknown MCP protocol version; relaying as the latest known"
            );
        }
    }
}
