//! The audit trail: one structured JSON Lines event per decision, hash-chained (issue 6).
//! Message lines carry metadata (method, target, id, decision, size, latency); a call's
//! arguments only when `[audit] excerpts` asks, cut before the secret scan (`excerpt.rs`), and
//! forwards beyond a rate are counted rather than itemised (`[audit] forwards`, `forwarded.rs`),
//! so the log costs the relay about the same whatever the messages' size and rate.
//!
//! The relay calls [`Audit::message`] for every message it judged and [`Audit::invalid`] for
//! lines that were not JSON-RPC; `crate::relay` records the session's start (with the sandbox's
//! enforcement report), limit hits and the server's exit. Events are buffered and written at
//! sensible points (refusals, findings, the relay's periodic tick, exit), never fsync'd per
//! message. The audit only observes: the relay reports what the firewall and the pin stage
//! decided.

pub mod chain;
pub mod config;
mod counters;
pub mod event;
mod excerpt;
mod forwarded;
pub mod redact;
mod session;
pub mod verify;

use std::cell::RefCell;

use crate::filter::{Context, Direction, Verdict};
use crate::launch::SupervisorEvent;
use crate::protocol::Message;

pub use chain::Destination;
pub use config::AuditConfig;
use session::Recorder;
pub use session::{SessionInfo, Severity};

/// The session's audit trail. Everything runs on the relay's one thread.
#[derive(Default)]
pub struct Audit {
    recorder: Option<RefCell<Recorder>>,
    stop: tokio::sync::Notify,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("recording", &self.recorder.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {destination}: {source} (the policy requires the audit log; fix the path or pass --audit-log PATH)")]
    Open {
        destination: Destination,
        source: std::io::Error,
    },
}

impl Audit {
    /// An audit trail that records nothing (`--no-audit`).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Open the audit trail. A log that cannot be opened is an error when audit is required,
    /// and a warning (said once) otherwise.
    pub fn open(config: AuditConfig, info: SessionInfo) -> Result<Self, AuditError> {
        let recorder = Recorder::open(config, info)?;
        Ok(Self {
            recorder: Some(RefCell::new(recorder)),
            ..Self::default()
        })
    }

    /// The session id (empty when nothing is recorded).
    pub fn session_id(&self) -> String {
        self.recorder
            .as_ref()
            .map(|r| r.borrow().session().to_owned())
            .unwrap_or_default()
    }

    /// Record the verdict on one message.
    pub fn message(&self, context: &Context<'_>, message: &Message<'_>, verdict: &Verdict) {
        if let Some(r) = &self.recorder {
            let stop = r.borrow_mut().message(context, message, verdict);
            self.stop_if(stop);
        }
    }

    /// A line that is not a valid JSON-RPC message.
    pub fn invalid(&self, direction: Direction, reason: &str) {
        if let Some(r) = &self.recorder {
            let stop = r.borrow_mut().invalid(direction, reason);
            self.stop_if(stop);
        }
    }

    /// Something worth a reviewer's attention (injection phrase, hidden characters…).
    pub fn finding(&self, severity: Severity, kind: &str, detail: &str) {
        if let Some(r) = &self.recorder {
            let stop = r.borrow_mut().finding(severity, kind, detail);
            self.stop_if(stop);
        }
    }

    /// One connection attempt through the egress proxy (`hosts` mode), with the calls that
    /// were in flight when it opened.
    pub fn egress(&self, record: &crate::egress::ConnectionRecord) {
        if let Some(r) = &self.recorder {
            let stop = r.borrow_mut().egress(record);
            self.stop_if(stop);
        }
    }

    /// What the supervisor said: the sandbox report starts the session's record.
    pub fn supervisor_event(&self, event: Option<&SupervisorEvent>) {
        if let (Some(r), Some(event)) = (&self.recorder, event) {
            let stop = r.borrow_mut().supervisor_event(event);
            self.stop_if(stop);
        }
    }

    /// A limit enforced by the guard itself was reached (wall clock).
    pub fn limit_hit(&self, limit: &str) {
        if let Some(r) = &self.recorder {
            let stop = r.borrow_mut().limit_hit(limit);
            self.stop_if(stop);
        }
    }

    /// The server is gone: record how, write everything, the metrics file and the summary.
    pub fn server_exit(
        &self,
        status: u8,
        exited: Option<&SupervisorEvent>,
        limit: Option<&str>,
        why: &str,
    ) {
        if let Some(r) = &self.recorder {
            r.borrow_mut().server_exit(status, exited, limit, why);
        }
    }

    /// Called periodically by the relay: write what is buffered.
    pub fn tick(&self) {
        if let Some(r) = &self.recorder {
            let stop = r.borrow_mut().flush();
            self.stop_if(stop);
        }
    }

    /// Resolves when the audit asks for the server to be stopped (required audit that cannot
    /// write, `on_suspicious = "kill"`); pending forever otherwise.
    pub async fn stop_requested(&self) -> String {
        loop {
            self.stop.notified().await;
            if let Some(why) = self
                .recorder
                .as_ref()
                .and_then(|r| r.borrow().stop_reason())
            {
                return why;
            }
        }
    }

    fn stop_if(&self, stop: bool) {
        if stop {
            self.stop.notify_one();
        }
    }

    /// A decision of the pin stage (`hidden`: an item kept from the host, not a refused use).
    pub fn pin_event(&self, detail: &str, hidden: bool) {
        if let Some(r) = &self.recorder {
            let stop = r.borrow_mut().pin_event(detail, hidden);
            self.stop_if(stop);
        }
    }
}
