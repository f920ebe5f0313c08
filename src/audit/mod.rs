//! The audit trail: one structured JSON-lines event per decision (issue 6). The relay calls
//! [`Audit::message`] for every message it judged; the session's start and end are recorded by
//! `crate::relay`.

use crate::filter::{Direction, Verdict};
use crate::protocol::Message;

#[derive(Debug, Default)]
pub struct Audit {}

impl Audit {
    /// An audit trail that records nothing (`--no-audit`).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Record the verdict on one message.
    pub fn message(&self, direction: Direction, message: &Message<'_>, verdict: &Verdict) {
        let _ = (direction, message, verdict);
    }
}
