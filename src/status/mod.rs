//! `mcp-guard status`: what the guard knows about each server of each host, gathered from the
//! host configs, the pins and the audit log. This module reads the audit log
//! ([`last_session`]); the host and pin parts come from [`crate::hosts`] and [`crate::pin`].

pub mod last_session;
